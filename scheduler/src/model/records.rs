//! What the master keeps (and persists): apps, tasks, nodes and deployments.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    AppDefinition, CurrentAction, DeploymentAction, DeploymentPlan, DeploymentStep, TaskSpec,
};

// === what the master keeps ===

/// An app as the master keeps it: the definition plus versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct App {
    /// The definition (validated, defaults filled in).
    pub def: AppDefinition,
    /// Changes with every change (scale included).
    pub version: DateTime<Utc>,
    /// Changes with every change of configuration (not with a scale); tasks of an older
    /// configuration are replaced by a rolling update.
    pub config_version: DateTime<Utc>,
    /// When the app was last scaled.
    pub last_scaling_at: DateTime<Utc>,
}

/// Task states (Marathon's, without the `TASK_` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    /// Placed on a node; the agent has not started it yet.
    Staging,
    /// The agent is creating/starting the container.
    Starting,
    /// The container runs.
    Running,
    /// The container exited with status 0.
    Finished,
    /// The container exited with another status, or could not start.
    Failed,
    /// Drover is stopping it.
    Killing,
    /// Drover stopped it.
    Killed,
    /// Its node stopped answering.
    Unreachable,
}

impl TaskState {
    /// No more changes come for it.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Finished | Self::Failed | Self::Killed)
    }

    /// Marathon's name: `TASK_RUNNING`, …
    pub fn marathon(self) -> &'static str {
        match self {
            Self::Staging => "TASK_STAGING",
            Self::Starting => "TASK_STARTING",
            Self::Running => "TASK_RUNNING",
            Self::Finished => "TASK_FINISHED",
            Self::Failed => "TASK_FAILED",
            Self::Killing => "TASK_KILLING",
            Self::Killed => "TASK_KILLED",
            Self::Unreachable => "TASK_UNREACHABLE",
        }
    }

    /// `RUNNING`, …
    pub fn name(self) -> &'static str {
        &self.marathon()[5..]
    }

    /// From Marathon's name (`TASK_RUNNING`); None for a state Drover does not have.
    pub fn from_marathon(s: &str) -> Option<Self> {
        [
            Self::Staging,
            Self::Starting,
            Self::Running,
            Self::Finished,
            Self::Failed,
            Self::Killing,
            Self::Killed,
            Self::Unreachable,
        ]
        .into_iter()
        .find(|t| t.marathon() == s)
    }
}

/// A task as the master keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    /// What to run.
    pub spec: TaskSpec,
    /// Node it is placed on.
    pub node_id: String,
    /// The node's hostname (for clients).
    pub host: String,
    /// State.
    pub state: TaskState,
    /// When it was placed.
    pub staged_at: DateTime<Utc>,
    /// When its container started running.
    pub started_at: Option<DateTime<Utc>>,
    /// Docker container ID.
    pub container_id: Option<String>,
    /// Health: None = unknown (no result yet or no checks).
    pub healthy: Option<bool>,
    /// Failed checks in a row.
    pub consecutive_failures: u32,
    /// Last passing check.
    pub last_success: Option<DateTime<Utc>>,
    /// Last failing check.
    pub last_failure: Option<DateTime<Utc>>,
    /// Last failing check's reason.
    pub last_failure_cause: Option<String>,
    /// Why it is being killed.
    pub kill_reason: Option<String>,
    /// Being killed, it keeps running until then (the drain: a gateway routing to it has
    /// stopped sending it new requests, and those in flight finish); then the agent stops it.
    #[serde(default)]
    pub drain_until: Option<DateTime<Utc>>,
    /// Since when its node has been unreachable.
    pub unreachable_since: Option<DateTime<Utc>>,
    /// The state before it went unreachable.
    pub state_before_unreachable: Option<TaskState>,
}

impl Task {
    /// Running and passing its health checks (or running without health checks).
    pub fn is_healthy(&self) -> bool {
        self.state == TaskState::Running
            && (self.spec.health_checks.is_empty() || self.healthy == Some(true))
    }

    /// Counts towards the app's instances (not being killed, not terminal).
    pub fn is_active(&self) -> bool {
        !self.state.is_terminal() && self.state != TaskState::Killing
    }

    /// Its agent should keep running it: active, or being killed but still draining.
    pub fn keep_running(&self, now: DateTime<Utc>) -> bool {
        self.is_active()
            || (self.state == TaskState::Killing && self.drain_until.is_some_and(|t| now < t))
    }
}

/// The default drain of a routed task (see [`drain_secs`]).
pub const DEFAULT_DRAIN_SECS: f64 = 2.0;

/// The label that sets a task's drain, seconds (`0` turns it off).
pub const LABEL_DRAIN: &str = "drover.gateway.drain-seconds";

/// How long a task being killed keeps running before its agent stops it, seconds: the
/// `drover.gateway.drain-seconds` label, else [`DEFAULT_DRAIN_SECS`] for an app a gateway
/// routes (a `drover.gateway.*` or marathon-lb `HAPROXY_*` label), else 0; never more than
/// the task's kill grace period (`taskKillGracePeriodSeconds`, Marathon's bound on how long a
/// kill may take).
pub fn drain_secs(spec: &TaskSpec) -> f64 {
    let routed = spec
        .labels
        .keys()
        .any(|k| k.starts_with("drover.gateway.") || k.starts_with("HAPROXY_"));
    let asked = spec
        .labels
        .get(LABEL_DRAIN)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0);
    let d = match asked {
        Some(d) => d,
        None if routed => DEFAULT_DRAIN_SECS,
        None => 0.0,
    };
    d.min(spec.kill_grace_secs.max(0.0))
}

/// Resources of a node or a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// CPUs.
    pub cpus: f64,
    /// Memory, MiB.
    pub mem: f64,
    /// Disk, MiB.
    pub disk: f64,
}

/// A node (an agent) as the master keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    /// Node ID (`--node-id`); also the `hostname` constraint field.
    pub id: String,
    /// Address tasks are reached at (`HOST`).
    pub hostname: String,
    /// What the node offers.
    pub resources: Resources,
    /// Host ports tasks may use, inclusive.
    pub port_range: (u16, u16),
    /// Attributes for constraints (e.g. `rack`, `zone`).
    pub attributes: BTreeMap<String, String>,
    /// No new tasks.
    pub cordoned: bool,
    /// Its tasks are being moved away (implies cordoned).
    pub draining: bool,
    /// Removed: gets no tasks and is not listed.
    pub removed: bool,
    /// Last heartbeat.
    pub last_seen: DateTime<Utc>,
    /// Missed heartbeats for longer than the timeout.
    pub unreachable: bool,
    /// When it registered.
    pub registered_at: DateTime<Utc>,
}

impl Node {
    /// Its state for people: ACTIVE, CORDONED, DRAINING, UNREACHABLE.
    pub fn status(&self) -> &'static str {
        if self.unreachable {
            "UNREACHABLE"
        } else if self.draining {
            "DRAINING"
        } else if self.cordoned {
            "CORDONED"
        } else {
            "ACTIVE"
        }
    }

    /// New tasks may go here.
    pub fn schedulable(&self) -> bool {
        !self.unreachable && !self.cordoned && !self.draining && !self.removed
    }
}

/// A deployment: a change to an app in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deployment {
    /// Deployment ID (a UUID).
    pub id: String,
    /// The app it changes.
    pub app_id: String,
    /// StartApplication, ScaleApplication, RestartApplication, StopApplication.
    pub action: String,
    /// The app version it deploys.
    pub version: DateTime<Utc>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The app before (for a rollback), None for a new app.
    pub previous: Option<App>,
}

impl Deployment {
    /// Marathon's deployment plan for it.
    pub fn plan(&self) -> DeploymentPlan {
        DeploymentPlan {
            id: self.id.clone(),
            version: self.version,
            affected_apps: vec![self.app_id.clone()],
            affected_pods: Vec::new(),
            steps: vec![DeploymentStep {
                actions: vec![DeploymentAction {
                    action: self.action.clone(),
                    app: self.app_id.clone(),
                }],
            }],
            current_actions: vec![CurrentAction {
                action: self.action.clone(),
                app: self.app_id.clone(),
                readiness_check_results: Vec::new(),
            }],
            current_step: 1,
            total_steps: 1,
        }
    }

    /// Marathon's JSON for it.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.plan()).unwrap_or(Value::Null)
    }
}
