//! The master's state and every decision it makes, as pure functions of the state and the
//! time passed in: API changes, agent heartbeats, and the reconciliation tick (node
//! timeouts, scaling, rolling updates, backoff, deployments). No IO: tests drive it with any
//! `now`. Definitions come typed: decoding requests and merging partial updates is the
//! API's ([`crate::api::apps`]).
//!
//! Here the state, its errors and the task bookkeeping every entry point shares (kill,
//! status events, failures and backoff); the entry points by room: `apps.rs` (the API's
//! changes), `agents.rs` (heartbeats, node operations), `reconcile.rs` (the tick).
use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    events::{CurrentStep, EventKind, FailedPlan, MarathonEvent},
    model::{
        group_of, normalize_id, task_id, uuid, AgentReport, App, AppDefinition, Deployment,
        DeploymentAction, HeartbeatReply, Node, Resources, Task, TaskSpec, TaskState,
    },
    placement::{self, Candidate, Constraint, Demand},
    store::Snapshot,
    validate::{validate_app, ValidationErrors},
};

mod agents;
mod apps;
mod reconcile;

pub use reconcile::new_task;

/// Timing of the master's decisions.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// A node that has not sent a heartbeat for this long is UNREACHABLE.
    pub heartbeat_timeout: Duration,
    /// Tasks of an unreachable node are replaced elsewhere after this long.
    pub unreachable_replace_after: Duration,
    /// A task placed on a node that the agent has not reported within this long is lost.
    pub launch_timeout: Duration,
    /// An app's launch delay resets when no task failed for this long after it expired.
    pub backoff_reset_after: Duration,
}

impl Default for MasterConfig {
    fn default() -> Self {
        Self {
            heartbeat_timeout: Duration::from_secs(15),
            unreachable_replace_after: Duration::from_secs(60),
            launch_timeout: Duration::from_secs(120),
            backoff_reset_after: Duration::from_secs(60),
        }
    }
}

/// What an API call can fail with (messages as Marathon words them).
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// No such app.
    #[error("App '{0}' does not exist")]
    AppNotFound(String),
    /// POST of an existing app.
    #[error("An app with id [{0}] already exists.")]
    AppExists(String),
    /// A deployment is running for the app.
    #[error("App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/{0}'.")]
    Locked(String),
    /// The definition is not valid.
    #[error("{0}")]
    Invalid(ValidationErrors),
    /// No such node.
    #[error("Node '{0}' does not exist")]
    NodeNotFound(String),
    /// No such deployment.
    #[error("DeploymentPlan {0} does not exist")]
    DeploymentNotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// An app's launch delay after failures.
#[derive(Debug, Clone, PartialEq)]
pub struct Delay {
    /// The current delay, seconds.
    pub seconds: f64,
    /// No launch before this.
    pub until: DateTime<Utc>,
}

/// Why an app is short of tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueEntry {
    /// Tasks still to launch.
    pub count: usize,
    /// Why they are not running yet.
    pub reason: String,
    /// Since when the app has waited.
    pub since: DateTime<Utc>,
}

/// The last failure of an app's task.
#[derive(Debug, Clone)]
pub struct TaskFailure {
    /// Task ID.
    pub task_id: String,
    /// Node.
    pub host: String,
    /// Why.
    pub message: String,
    /// State it ended in.
    pub state: TaskState,
    /// When.
    pub timestamp: DateTime<Utc>,
    /// App version of the task.
    pub version: DateTime<Utc>,
}

/// Everything the master knows.
#[derive(Debug)]
pub struct State {
    /// Apps by ID.
    pub apps: BTreeMap<String, App>,
    /// Tasks by ID.
    pub tasks: BTreeMap<String, Task>,
    /// Nodes by ID.
    pub nodes: BTreeMap<String, Node>,
    /// Deployments by ID.
    pub deployments: BTreeMap<String, Deployment>,
    /// Launch delays by app ID.
    pub delays: HashMap<String, Delay>,
    /// Apps waiting for tasks, by app ID.
    pub queue: BTreeMap<String, QueueEntry>,
    /// Last failure per app.
    pub failures: HashMap<String, TaskFailure>,
    /// Events not yet published.
    pub events: Vec<MarathonEvent>,
    /// Something to persist changed.
    pub dirty: bool,
    /// Timing.
    pub cfg: MasterConfig,
    /// Jobs and their runs ([`crate::jobs`]).
    pub jobs: crate::jobs::JobBook,
    /// Per node, where the next dynamic host port search starts: it moves on with every
    /// placement, so a port held by something outside Drover (the task fails with "host
    /// port … is not free") is not handed out again at once.
    pub next_port: HashMap<String, u16>,
}

fn secs(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn secs_f(s: f64) -> chrono::Duration {
    chrono::Duration::milliseconds((s.max(0.0) * 1000.0) as i64)
}

impl State {
    /// A state from what the store holds; nodes count as just seen (their agents get a
    /// heartbeat timeout's grace after a master restart).
    pub fn new(snapshot: Snapshot, cfg: MasterConfig, now: DateTime<Utc>) -> Self {
        let mut s = Self {
            apps: snapshot.apps,
            tasks: snapshot.tasks,
            nodes: snapshot.nodes,
            deployments: snapshot.deployments,
            delays: HashMap::new(),
            queue: BTreeMap::new(),
            failures: HashMap::new(),
            events: Vec::new(),
            dirty: false,
            cfg,
            jobs: crate::jobs::JobBook::load(snapshot.jobs, snapshot.job_runs),
            next_port: HashMap::new(),
        };
        for n in s.nodes.values_mut() {
            n.last_seen = now;
        }
        s
    }

    /// What to persist.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            apps: self.apps.clone(),
            tasks: self.tasks.clone(),
            nodes: self.nodes.clone(),
            deployments: self.deployments.clone(),
            jobs: self.jobs.jobs.clone(),
            job_runs: self.jobs.runs.clone(),
        }
    }

    fn event(&mut self, now: DateTime<Utc>, kind: EventKind) {
        self.events.push(MarathonEvent::new(now, kind));
    }

    /// Mark a task to be killed (the agent stops it); tasks on unreachable nodes are simply
    /// forgotten (their agent stops them when it is back).
    pub fn kill(&mut self, task_id: &str, reason: &str, now: DateTime<Utc>) {
        let Some(t) = self.tasks.get_mut(task_id) else {
            return;
        };
        if t.state == TaskState::Killing {
            return;
        }
        let unreachable = t.state == TaskState::Unreachable
            || self.nodes.get(&t.node_id).is_none_or(|n| n.unreachable);
        t.state = TaskState::Killing;
        t.kill_reason = Some(reason.to_string());
        let drain = crate::model::drain_secs(&t.spec);
        if drain > 0.0 && !unreachable {
            t.drain_until = Some(now + chrono::Duration::milliseconds((drain * 1000.0) as i64));
        }
        let t = t.clone();
        self.dirty = true;
        tracing::info!(task = %task_id, app = %t.spec.app_id, node = %t.node_id, reason, drain_secs = drain, "killing task");
        self.status_event(&t, TaskState::Killing, reason, now);
        if unreachable {
            self.tasks.remove(task_id);
        }
    }

    fn status_event(&mut self, t: &Task, state: TaskState, message: &str, now: DateTime<Utc>) {
        self.event(
            now,
            EventKind::StatusUpdate {
                slave_id: t.node_id.clone(),
                task_id: t.spec.task_id.clone(),
                instance_id: t.spec.task_id.clone(),
                task_status: state,
                message: message.to_string(),
                app_id: t.spec.app_id.clone(),
                host: t.host.clone(),
                ports: t.spec.host_ports.clone(),
                ip_addresses: Vec::new(),
                version: t.spec.config_version,
            },
        );
    }

    fn record_failure(&mut self, t: &Task, state: TaskState, message: &str, now: DateTime<Utc>) {
        let app_id = t.spec.app_id.clone();
        self.failures.insert(
            app_id.clone(),
            TaskFailure {
                task_id: t.spec.task_id.clone(),
                host: t.host.clone(),
                message: message.to_string(),
                state,
                timestamp: now,
                version: t.spec.config_version,
            },
        );
        let Some(app) = self.apps.get(&app_id) else {
            return;
        };
        // Only failures of the current configuration slow launches down.
        if t.spec.config_version != app.config_version {
            return;
        }
        let d = &app.def;
        let seconds = match self.delays.get(&app_id) {
            Some(prev) => (prev.seconds * d.backoff_factor).min(d.max_launch_delay_seconds),
            None => d.backoff_seconds.min(d.max_launch_delay_seconds),
        };
        tracing::info!(app = %app_id, delay_secs = seconds, "task failed; launches of the app delayed");
        self.delays.insert(
            app_id,
            Delay {
                seconds,
                until: now + secs_f(seconds),
            },
        );
    }
}

/// A node operation of `/v1/nodes/{id}/…` (`cordon`, `uncordon`, `drain`, `remove` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeAction {
    /// No new tasks.
    Cordon,
    /// New tasks again.
    Uncordon,
    /// Cordon and move its tasks away.
    Drain,
    /// Drain and forget.
    Remove,
}

impl NodeAction {
    /// `cordon`, `uncordon`, `drain`, `remove`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cordon => "cordon",
            Self::Uncordon => "uncordon",
            Self::Drain => "drain",
            Self::Remove => "remove",
        }
    }
}

#[cfg(test)]
mod tests;
