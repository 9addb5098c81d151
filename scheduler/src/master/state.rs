//! The master's state and every decision it makes, as pure functions of the state and the
//! time passed in: API changes, agent heartbeats, and the reconciliation tick (node
//! timeouts, scaling, rolling updates, backoff, deployments). No IO: tests drive it with any
//! `now`.
use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{
    events::{CurrentStep, EventKind, FailedPlan, MarathonEvent},
    model::{
        group_of, normalize_id, task_id, uuid, AgentReport, App, AppDefinition, Deployment,
        DeploymentAction, HeartbeatReply, Node, Resources, Task, TaskSpec, TaskState,
    },
    placement::{self, Candidate, Constraint, Demand},
    store::Snapshot,
    validate::{parse_app, validate_app, ValidationErrors},
};

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
        }
    }

    fn event(&mut self, now: DateTime<Utc>, kind: EventKind) {
        self.events.push(MarathonEvent::new(now, kind));
    }

    // === apps ===

    /// The biggest node's resources (None without nodes).
    pub fn largest_node(&self) -> Option<Resources> {
        self.nodes
            .values()
            .filter(|n| !n.removed)
            .map(|n| n.resources)
            .reduce(|a, b| Resources {
                cpus: a.cpus.max(b.cpus),
                mem: a.mem.max(b.mem),
                disk: a.disk.max(b.disk),
            })
    }

    fn check(&self, def: &AppDefinition) -> Result<(), MasterError> {
        let errs = validate_app(def, self.largest_node());
        if errs.is_empty() {
            Ok(())
        } else {
            Err(MasterError::Invalid(errs))
        }
    }

    fn deployment_of(&self, app_id: &str) -> Option<&Deployment> {
        self.deployments.values().find(|d| d.app_id == app_id)
    }

    fn lock(&mut self, app_id: &str, force: bool, now: DateTime<Utc>) -> Result<(), MasterError> {
        if let Some(d) = self.deployment_of(app_id) {
            if !force {
                return Err(MasterError::Locked(d.id.clone()));
            }
            let id = d.id.clone();
            self.deployments.remove(&id);
            self.event(
                now,
                EventKind::DeploymentFailed {
                    plan: FailedPlan::Id { id: id.clone() },
                    id,
                    reason: "superseded by a forced change".into(),
                },
            );
        }
        Ok(())
    }

    fn start_deployment(
        &mut self,
        app_id: &str,
        action: &str,
        version: DateTime<Utc>,
        previous: Option<App>,
        now: DateTime<Utc>,
    ) -> Deployment {
        let d = Deployment {
            id: uuid(),
            app_id: app_id.to_string(),
            action: action.to_string(),
            version,
            started_at: now,
            previous,
        };
        self.deployments.insert(d.id.clone(), d.clone());
        self.event(
            now,
            EventKind::DeploymentInfo {
                plan: d.plan(),
                current_step: CurrentStep {
                    actions: vec![DeploymentAction {
                        action: action.to_string(),
                        app: app_id.to_string(),
                    }],
                },
            },
        );
        self.dirty = true;
        d
    }

    /// POST /v2/apps.
    pub fn create_app(
        &mut self,
        body: Value,
        now: DateTime<Utc>,
    ) -> Result<(App, Deployment), MasterError> {
        let mut def = parse_app(body).map_err(MasterError::Invalid)?;
        def.id = normalize_id(&def.id);
        self.check(&def)?;
        if self.apps.contains_key(&def.id) {
            return Err(MasterError::AppExists(def.id));
        }
        let app = App {
            def,
            version: now,
            config_version: now,
            last_scaling_at: now,
        };
        let id = app.def.id.clone();
        self.apps.insert(id.clone(), app.clone());
        self.event(
            now,
            EventKind::ApiPost {
                client_ip: None,
                uri: format!("/v2/apps{id}"),
                app_definition: Box::new(app.def.clone()),
            },
        );
        let d = self.start_deployment(&id, "StartApplication", now, None, now);
        Ok((app, d))
    }

    /// PUT /v2/apps/{id}: a partial update over the current definition (or, with
    /// `partial` false, a replacement), or a new app.
    pub fn update_app(
        &mut self,
        id: &str,
        patch: Value,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<Deployment, MasterError> {
        self.put_app(id, patch, force, true, now)
    }

    /// PUT /v2/apps/{id}, `partialUpdate` as given.
    pub fn put_app(
        &mut self,
        id: &str,
        patch: Value,
        force: bool,
        partial: bool,
        now: DateTime<Utc>,
    ) -> Result<Deployment, MasterError> {
        let id = normalize_id(id);
        let Some(old) = self.apps.get(&id).cloned() else {
            let mut body = patch;
            if body.is_object() {
                body["id"] = json!(id);
            }
            return self.create_app(body, now).map(|(_, d)| d);
        };
        let Value::Object(patch) = patch else {
            let mut e = ValidationErrors::default();
            e.details.push(crate::validate::FieldError {
                path: "/".into(),
                errors: vec!["expected a JSON object".into()],
            });
            return Err(MasterError::Invalid(e));
        };
        let mut merged = if partial {
            serde_json::to_value(&old.def).unwrap_or_else(|_| json!({}))
        } else {
            json!({})
        };
        for (k, v) in patch {
            merged[k] = v;
        }
        merged["id"] = json!(id);
        let mut def = parse_app(merged).map_err(MasterError::Invalid)?;
        def.id = id.clone();
        self.check(&def)?;
        self.lock(&id, force, now)?;
        let mut app = old.clone();
        let action = if def.config_eq(&old.def) {
            app.last_scaling_at = now;
            "ScaleApplication"
        } else {
            app.config_version = now;
            self.delays.remove(&id);
            "RestartApplication"
        };
        app.def = def;
        app.version = now;
        self.apps.insert(id.clone(), app);
        Ok(self.start_deployment(&id, action, now, Some(old), now))
    }

    /// PUT /v2/apps (and group deployments): create or update several apps, all or none.
    /// Returns the deployments started.
    pub fn put_apps(
        &mut self,
        defs: Vec<Value>,
        force: bool,
        partial: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Deployment>, MasterError> {
        let (apps, deployments, delays, n_events, dirty) = (
            self.apps.clone(),
            self.deployments.clone(),
            self.delays.clone(),
            self.events.len(),
            self.dirty,
        );
        let mut out = Vec::new();
        for (i, def) in defs.into_iter().enumerate() {
            let id = def["id"].as_str().unwrap_or("").to_string();
            let result = if id.trim().is_empty() {
                let mut e = ValidationErrors::default();
                e.details.push(crate::validate::FieldError {
                    path: "/id".into(),
                    errors: vec!["id is required, e.g. \"/shop/web\"".into()],
                });
                Err(MasterError::Invalid(e))
            } else {
                self.put_app(&id, def, force, partial, now)
            };
            match result {
                Ok(d) => out.push(d),
                Err(e) => {
                    // All or nothing: put back what the earlier apps changed.
                    self.apps = apps;
                    self.deployments = deployments;
                    self.delays = delays;
                    self.events.truncate(n_events);
                    self.dirty = dirty;
                    return Err(match e {
                        MasterError::Invalid(mut errs) => {
                            for d in &mut errs.details {
                                d.path =
                                    format!("/{i}{}", if d.path == "/" { "" } else { &d.path });
                            }
                            MasterError::Invalid(errs)
                        }
                        other => other,
                    });
                }
            }
        }
        Ok(out)
    }

    /// DELETE /v2/groups/{id}: remove every app in the group.
    pub fn delete_group(
        &mut self,
        group: &str,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Deployment>, MasterError> {
        let group = normalize_id(group);
        let prefix = if group == "/" {
            "/".to_string()
        } else {
            format!("{group}/")
        };
        let ids: Vec<String> = self
            .apps
            .keys()
            .filter(|id| id.starts_with(&prefix))
            .cloned()
            .collect();
        if ids.is_empty() {
            return Err(MasterError::AppNotFound(format!("{group} (group)")));
        }
        if !force {
            if let Some(d) = self.deployments.values().find(|d| ids.contains(&d.app_id)) {
                return Err(MasterError::Locked(d.id.clone()));
            }
        }
        ids.iter()
            .map(|id| self.delete_app(id, force, now))
            .collect()
    }

    /// DELETE /v2/queue/{id}/delay: launch again now, forgetting the backoff.
    pub fn reset_delay(&mut self, id: &str) -> Result<(), MasterError> {
        let id = normalize_id(id);
        if !self.apps.contains_key(&id) {
            return Err(MasterError::AppNotFound(id));
        }
        self.delays.remove(&id);
        Ok(())
    }

    /// POST /v2/apps/{id}/restart: replace every task (rolling).
    pub fn restart_app(
        &mut self,
        id: &str,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<Deployment, MasterError> {
        let id = normalize_id(id);
        let old = self
            .apps
            .get(&id)
            .cloned()
            .ok_or_else(|| MasterError::AppNotFound(id.clone()))?;
        self.lock(&id, force, now)?;
        let mut app = old.clone();
        app.version = now;
        app.config_version = now;
        self.apps.insert(id.clone(), app);
        self.delays.remove(&id);
        Ok(self.start_deployment(&id, "RestartApplication", now, Some(old), now))
    }

    /// DELETE /v2/apps/{id}: remove the app and kill its tasks.
    pub fn delete_app(
        &mut self,
        id: &str,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<Deployment, MasterError> {
        let id = normalize_id(id);
        if !self.apps.contains_key(&id) {
            return Err(MasterError::AppNotFound(id));
        }
        self.lock(&id, force, now)?;
        let old = self.apps.remove(&id);
        self.delays.remove(&id);
        self.queue.remove(&id);
        let tasks: Vec<String> = self
            .tasks
            .values()
            .filter(|t| t.spec.app_id == id)
            .map(|t| t.spec.task_id.clone())
            .collect();
        for t in tasks {
            self.kill(&t, "app deleted", now);
        }
        self.event(now, EventKind::AppTerminated { app_id: id.clone() });
        Ok(self.start_deployment(&id, "StopApplication", now, old, now))
    }

    /// DELETE /v2/deployments/{id}: with `force`, just forget it; else roll the app back to
    /// the definition before it (a new deployment).
    pub fn delete_deployment(
        &mut self,
        id: &str,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<Deployment>, MasterError> {
        let d = self
            .deployments
            .remove(id)
            .ok_or_else(|| MasterError::DeploymentNotFound(id.to_string()))?;
        self.dirty = true;
        self.event(
            now,
            EventKind::DeploymentFailed {
                id: d.id.clone(),
                plan: FailedPlan::Plan(d.plan()),
                reason: "canceled".into(),
            },
        );
        if force {
            return Ok(None);
        }
        let current = self.apps.get(&d.app_id).cloned();
        match (d.previous.clone(), current) {
            (Some(mut prev), current) => {
                prev.version = now;
                if current.as_ref().is_none_or(|c| !c.def.config_eq(&prev.def)) {
                    prev.config_version = now;
                }
                self.apps.insert(d.app_id.clone(), prev);
                Ok(Some(self.start_deployment(
                    &d.app_id,
                    "RestartApplication",
                    now,
                    self.apps.get(&d.app_id).cloned(),
                    now,
                )))
            }
            (None, Some(_)) => self.delete_app(&d.app_id, true, now).map(Some),
            (None, None) => Ok(None),
        }
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
        let t = t.clone();
        self.dirty = true;
        tracing::info!(task = %task_id, app = %t.spec.app_id, node = %t.node_id, reason, "killing task");
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

    // === nodes ===

    /// A heartbeat (or registration, `register`) from an agent: update the node and its
    /// tasks, answer with the tasks it should run.
    pub fn heartbeat(
        &mut self,
        report: AgentReport,
        register: bool,
        now: DateTime<Utc>,
    ) -> HeartbeatReply {
        let id = report.node_id.clone();
        let node = self.nodes.entry(id.clone()).or_insert_with(|| Node {
            id: id.clone(),
            hostname: report.hostname.clone(),
            resources: report.resources,
            port_range: report.port_range,
            attributes: report.attributes.clone(),
            cordoned: false,
            draining: false,
            removed: false,
            last_seen: now,
            unreachable: false,
            registered_at: now,
        });
        let changed = node.hostname != report.hostname
            || node.resources != report.resources
            || node.port_range != report.port_range
            || node.attributes != report.attributes
            || (register && node.removed);
        node.hostname = report.hostname.clone();
        node.resources = report.resources;
        node.port_range = report.port_range;
        node.attributes = report.attributes.clone();
        node.last_seen = now;
        if register && node.removed {
            node.removed = false;
            node.cordoned = false;
            node.draining = false;
        }
        let was_unreachable = std::mem::replace(&mut node.unreachable, false);
        let removed = node.removed;
        if changed {
            self.dirty = true;
        }
        if was_unreachable {
            tracing::info!(node = %id, "node is reachable again");
            self.dirty = true;
            self.event(
                now,
                EventKind::NodeReachable {
                    node_id: id.clone(),
                },
            );
            for t in self.tasks.values_mut().filter(|t| t.node_id == id) {
                if t.state == TaskState::Unreachable {
                    t.state = t
                        .state_before_unreachable
                        .take()
                        .unwrap_or(TaskState::Running);
                    t.unreachable_since = None;
                }
            }
        }
        if removed {
            return HeartbeatReply {
                tasks: Vec::new(),
                removed: true,
                cluster_id: String::new(),
            };
        }
        let mut seen = std::collections::HashSet::new();
        for r in report.tasks {
            seen.insert(r.task_id.clone());
            let Some(t) = self.tasks.get(&r.task_id) else {
                continue; // unknown: not in the reply, so the agent stops it
            };
            if t.node_id != id {
                continue;
            }
            let t = t.clone();
            if r.state.is_terminal() {
                self.tasks.remove(&r.task_id);
                self.dirty = true;
                let msg = r.message.clone().unwrap_or_default();
                self.status_event(&t, r.state, &msg, now);
                if t.state != TaskState::Killing {
                    tracing::warn!(task = %t.spec.task_id, app = %t.spec.app_id, state = r.state.name(), message = %msg, "task ended");
                    self.record_failure(&t, r.state, &msg, now);
                }
                continue;
            }
            let mut new = t.clone();
            if t.state != TaskState::Killing {
                new.state = r.state;
            }
            new.container_id = r.container_id.clone().or(new.container_id);
            new.started_at = r.started_at.or(new.started_at);
            if r.healthy.is_some() {
                new.healthy = r.healthy;
            }
            new.consecutive_failures = r.consecutive_failures;
            new.last_success = r.last_success.or(new.last_success);
            new.last_failure = r.last_failure.or(new.last_failure);
            new.last_failure_cause = r.last_failure_cause.clone().or(new.last_failure_cause);
            if new.state != t.state {
                self.dirty = true;
                self.status_event(&new, new.state, "", now);
            }
            if new.healthy != t.healthy {
                self.dirty = true;
                self.event(
                    now,
                    EventKind::HealthStatusChanged {
                        app_id: new.spec.app_id.clone(),
                        task_id: new.spec.task_id.clone(),
                        instance_id: new.spec.task_id.clone(),
                        version: new.spec.config_version,
                        alive: new.healthy == Some(true),
                    },
                );
            }
            self.tasks.insert(r.task_id.clone(), new);
        }
        // Tasks this node should have but did not report.
        let missing: Vec<Task> = self
            .tasks
            .values()
            .filter(|t| t.node_id == id && !seen.contains(&t.spec.task_id))
            .cloned()
            .collect();
        for t in missing {
            match t.state {
                TaskState::Staging if now - t.staged_at < secs(self.cfg.launch_timeout) => {}
                TaskState::Killing => {
                    self.tasks.remove(&t.spec.task_id);
                    self.dirty = true;
                    self.status_event(&t, TaskState::Killed, "", now);
                }
                _ => {
                    self.tasks.remove(&t.spec.task_id);
                    self.dirty = true;
                    let msg = "the agent no longer has the task's container";
                    tracing::warn!(task = %t.spec.task_id, node = %id, "task lost");
                    self.status_event(&t, TaskState::Failed, msg, now);
                    self.record_failure(&t, TaskState::Failed, msg, now);
                }
            }
        }
        HeartbeatReply {
            tasks: self
                .tasks
                .values()
                .filter(|t| t.node_id == id && t.is_active())
                .map(|t| t.spec.clone())
                .collect(),
            removed: false,
            cluster_id: String::new(),
        }
    }

    /// Cordon (no new tasks), uncordon, drain (cordon and move its tasks away) or remove a
    /// node.
    pub fn node_action(
        &mut self,
        id: &str,
        action: NodeAction,
        now: DateTime<Utc>,
    ) -> Result<Node, MasterError> {
        let node = self
            .nodes
            .get_mut(id)
            .filter(|n| !n.removed)
            .ok_or_else(|| MasterError::NodeNotFound(id.to_string()))?;
        match action {
            NodeAction::Cordon => node.cordoned = true,
            NodeAction::Uncordon => {
                node.cordoned = false;
                node.draining = false;
            }
            NodeAction::Drain => {
                node.cordoned = true;
                node.draining = true;
            }
            NodeAction::Remove => {
                node.removed = true;
                node.cordoned = true;
                node.draining = true;
            }
        }
        let node = node.clone();
        tracing::info!(node = %id, action = ?action, "node changed");
        self.dirty = true;
        self.event(
            now,
            EventKind::NodeUpdate {
                node_id: id.to_string(),
                action,
                status: node.status().to_string(),
            },
        );
        Ok(node)
    }

    // === the reconciliation tick ===

    /// Bring the cluster one step closer to what the apps ask for.
    pub fn tick(&mut self, now: DateTime<Utc>) {
        self.check_nodes(now);
        // Tasks of deleted apps go. (Tasks of drained and removed nodes are replaced like
        // those of an older version, in `reconcile_app`: new ones first, within
        // upgradeStrategy.)
        let doomed: Vec<(String, &'static str)> = self
            .tasks
            .values()
            .filter(|t| t.is_active() && !self.apps.contains_key(&t.spec.app_id))
            .map(|t| (t.spec.task_id.clone(), "app deleted"))
            .collect();
        for (t, why) in doomed {
            self.kill(&t, why, now);
        }
        let mut candidates = self.candidates();
        let index: HashMap<String, usize> = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        let ids: Vec<String> = self.apps.keys().cloned().collect();
        for id in ids {
            self.reconcile_app(&id, &mut candidates, &index, now);
        }
        self.finish_deployments(now);
        // Forget delays long expired.
        let reset = secs(self.cfg.backoff_reset_after);
        self.delays.retain(|_, d| now - d.until < reset);
    }

    fn check_nodes(&mut self, now: DateTime<Utc>) {
        let timeout = secs(self.cfg.heartbeat_timeout);
        let lost: Vec<String> = self
            .nodes
            .values()
            .filter(|n| !n.unreachable && !n.removed && now - n.last_seen > timeout)
            .map(|n| n.id.clone())
            .collect();
        for id in lost {
            tracing::warn!(node = %id, "node missed its heartbeats: unreachable");
            if let Some(n) = self.nodes.get_mut(&id) {
                n.unreachable = true;
            }
            self.dirty = true;
            self.event(
                now,
                EventKind::NodeUnreachable {
                    node_id: id.clone(),
                },
            );
            let ids: Vec<String> = self
                .tasks
                .values()
                .filter(|t| t.node_id == id)
                .map(|t| t.spec.task_id.clone())
                .collect();
            for tid in ids {
                let Some(t) = self.tasks.get_mut(&tid) else {
                    continue;
                };
                if t.state == TaskState::Killing {
                    self.tasks.remove(&tid);
                    continue;
                }
                t.state_before_unreachable = Some(t.state);
                t.state = TaskState::Unreachable;
                t.unreachable_since = Some(now);
                let t = t.clone();
                self.status_event(&t, TaskState::Unreachable, "node unreachable", now);
            }
        }
        // Replace tasks unreachable for too long.
        let after = secs(self.cfg.unreachable_replace_after);
        let expunge: Vec<Task> = self
            .tasks
            .values()
            .filter(|t| {
                t.state == TaskState::Unreachable
                    && t.unreachable_since.is_some_and(|s| now - s >= after)
            })
            .cloned()
            .collect();
        for t in expunge {
            tracing::warn!(task = %t.spec.task_id, node = %t.node_id, "unreachable task replaced");
            self.tasks.remove(&t.spec.task_id);
            self.dirty = true;
            self.status_event(
                &t,
                TaskState::Unreachable,
                "expunged: node unreachable too long",
                now,
            );
        }
    }

    /// The nodes as placement sees them, with what their tasks take.
    pub fn candidates(&self) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = self
            .nodes
            .values()
            .filter(|n| !n.removed)
            .map(|n| {
                let mut c = Candidate::new(n.id.clone(), n.resources, n.port_range);
                c.attributes = n.attributes.clone();
                c.unschedulable = if n.unreachable {
                    Some("unreachable")
                } else if n.draining {
                    Some("draining")
                } else if n.cordoned {
                    Some("cordoned")
                } else {
                    None
                };
                c
            })
            .collect();
        let index: HashMap<&str, usize> = out
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.as_str(), i))
            .collect();
        let mut taken: Vec<(usize, f64, f64, Vec<u16>)> = Vec::new();
        for t in self.tasks.values().filter(|t| !t.state.is_terminal()) {
            if let Some(&i) = index.get(t.node_id.as_str()) {
                taken.push((i, t.spec.cpus, t.spec.mem, t.spec.host_ports.clone()));
            }
        }
        for (i, cpus, mem, ports) in taken {
            let c = &mut out[i];
            c.free.cpus -= cpus;
            c.free.mem -= mem;
            c.used_ports.extend(ports);
        }
        out
    }

    fn reconcile_app(
        &mut self,
        id: &str,
        candidates: &mut [Candidate],
        index: &HashMap<String, usize>,
        now: DateTime<Utc>,
    ) {
        let Some(app) = self.apps.get(id).cloned() else {
            return;
        };
        let def = &app.def;
        // Unhealthy tasks are killed (and count as failures).
        let unhealthy: Vec<Task> = self
            .tasks
            .values()
            .filter(|t| t.spec.app_id == id && t.state == TaskState::Running)
            .filter(|t| {
                t.spec.health_checks.iter().any(|hc| {
                    hc.max_consecutive_failures > 0
                        && t.consecutive_failures as i64 >= hc.max_consecutive_failures
                })
            })
            .cloned()
            .collect();
        for t in unhealthy {
            let why = format!(
                "{} consecutive health check failures{}",
                t.consecutive_failures,
                t.last_failure_cause
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            );
            self.event(
                now,
                EventKind::UnhealthyTaskKill {
                    app_id: id.to_string(),
                    task_id: t.spec.task_id.clone(),
                    instance_id: t.spec.task_id.clone(),
                    version: t.spec.config_version,
                    reason: why.clone(),
                    host: t.host.clone(),
                    slave_id: t.node_id.clone(),
                },
            );
            self.kill(&t.spec.task_id, &why, now);
            self.record_failure(&t, TaskState::Killed, &why, now);
        }
        let active: Vec<Task> = self
            .tasks
            .values()
            .filter(|t| t.spec.app_id == id && t.is_active())
            .cloned()
            .collect();
        let n = def.instances.max(0) as usize;
        // Tasks of an older configuration, or on a draining node, are replaced.
        let (current, old): (Vec<&Task>, Vec<&Task>) = active.iter().partition(|t| {
            t.spec.config_version == app.config_version
                && self.nodes.get(&t.node_id).is_some_and(|n| !n.draining)
        });
        let mut to_launch = 0usize;
        let mut to_kill: Vec<String> = Vec::new();
        if old.is_empty() {
            if current.len() > n {
                to_kill = kill_order(&current, &def.kill_selection)
                    .into_iter()
                    .take(current.len() - n)
                    .collect();
            } else {
                to_launch = n - current.len();
            }
        } else {
            // Rolling update: stay within [minimumHealthCapacity, 1 + maximumOverCapacity].
            let us = &def.upgrade_strategy;
            let min_healthy = (n as f64 * us.minimum_health_capacity).ceil() as usize;
            let max_total = n + (n as f64 * us.maximum_over_capacity).floor() as usize;
            to_launch = n
                .saturating_sub(current.len())
                .min(max_total.saturating_sub(active.len()));
            if current.len() > n {
                to_kill.extend(
                    kill_order(&current, &def.kill_selection)
                        .into_iter()
                        .take(current.len() - n),
                );
            }
            let mut healthy = active.iter().filter(|t| t.is_healthy()).count();
            let mut old_sorted = old.clone();
            // Unhealthy and youngest old tasks go first.
            old_sorted.sort_by_key(|t| (t.is_healthy(), std::cmp::Reverse(t.staged_at)));
            for t in &old_sorted {
                if !t.is_healthy() {
                    to_kill.push(t.spec.task_id.clone());
                } else if healthy > min_healthy {
                    to_kill.push(t.spec.task_id.clone());
                    healthy -= 1;
                }
            }
            // Neither may a new task start (maximumOverCapacity) nor an old one stop
            // (minimumHealthCapacity), and no new task is on its way to healthy: replace one
            // old task anyway, or nothing ever moves.
            if to_launch == 0
                && to_kill.is_empty()
                && current.len() < n
                && current.iter().all(|t| t.is_healthy())
            {
                if let Some(t) = old_sorted.first() {
                    to_kill.push(t.spec.task_id.clone());
                }
            }
        }
        for t in &to_kill {
            self.kill(t, "scaled down or replaced by a new version", now);
        }
        if to_launch == 0 {
            self.queue.remove(id);
            return;
        }
        let since = self.queue.get(id).map(|q| q.since).unwrap_or(now);
        if let Some(d) = self.delays.get(id).filter(|d| d.until > now) {
            let left = (d.until - now).num_milliseconds() as f64 / 1000.0;
            self.queue.insert(
                id.to_string(),
                QueueEntry {
                    count: to_launch,
                    reason: format!(
                        "launch delayed {left:.1}s more (backoff after a task failure)"
                    ),
                    since,
                },
            );
            return;
        }
        let constraints: Vec<Constraint> = def
            .constraints
            .iter()
            .filter_map(|c| Constraint::parse(c).ok())
            .collect();
        let demand = Demand {
            resources: Resources {
                cpus: def.cpus,
                mem: def.mem,
                disk: def.disk,
            },
            ports: def.host_ports(),
            constraints,
        };
        let existing: Vec<usize> = active
            .iter()
            .filter_map(|t| index.get(&t.node_id).copied())
            .collect();
        let placement = placement::place(candidates, &existing, &demand, to_launch);
        for (i, ports) in &placement.placed {
            let node = &candidates[*i];
            let host = self
                .nodes
                .get(&node.id)
                .map(|n| n.hostname.clone())
                .unwrap_or_default();
            let task = new_task(&app, &node.id, &host, ports.clone(), now);
            tracing::info!(task = %task.spec.task_id, app = %id, node = %node.id, "task placed");
            self.status_event(&task, TaskState::Staging, "", now);
            self.tasks.insert(task.spec.task_id.clone(), task);
            self.dirty = true;
        }
        match placement.reason {
            Some(reason) => {
                self.queue.insert(
                    id.to_string(),
                    QueueEntry {
                        count: to_launch - placement.placed.len(),
                        reason,
                        since,
                    },
                );
            }
            None => {
                self.queue.remove(id);
            }
        }
    }

    fn finish_deployments(&mut self, now: DateTime<Utc>) {
        let done: Vec<Deployment> = self
            .deployments
            .values()
            .filter(|d| match self.apps.get(&d.app_id) {
                None => !self.tasks.values().any(|t| t.spec.app_id == d.app_id),
                Some(app) => {
                    let tasks: Vec<&Task> = self
                        .tasks
                        .values()
                        .filter(|t| t.spec.app_id == d.app_id)
                        .collect();
                    tasks.len() == app.def.instances.max(0) as usize
                        && tasks
                            .iter()
                            .all(|t| t.spec.config_version == app.config_version && t.is_healthy())
                }
            })
            .cloned()
            .collect();
        for d in done {
            tracing::info!(deployment = %d.id, app = %d.app_id, action = %d.action, "deployment finished");
            self.deployments.remove(&d.id);
            self.dirty = true;
            self.event(
                now,
                EventKind::DeploymentSuccess {
                    id: d.id.clone(),
                    plan: d.plan(),
                },
            );
        }
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

/// Task IDs in the order they are killed when scaling down.
fn kill_order(tasks: &[&Task], selection: &str) -> Vec<String> {
    let mut v: Vec<&&Task> = tasks.iter().collect();
    // Not yet running (or unreachable) first, then by age.
    v.sort_by(|a, b| {
        let ra = a.state == TaskState::Running;
        let rb = b.state == TaskState::Running;
        ra.cmp(&rb).then_with(|| {
            if selection == "OLDEST_FIRST" {
                a.staged_at.cmp(&b.staged_at)
            } else {
                b.staged_at.cmp(&a.staged_at)
            }
        })
    });
    v.into_iter().map(|t| t.spec.task_id.clone()).collect()
}

/// A new task of `app` on a node.
pub fn new_task(
    app: &App,
    node_id: &str,
    host: &str,
    host_ports: Vec<u16>,
    now: DateTime<Utc>,
) -> Task {
    let def = &app.def;
    let container_ports = if def.bridge() {
        def.port_mappings()
            .iter()
            .map(|p| (p.container_port.clamp(0, 65535) as u16, p.protocol.clone()))
            .collect()
    } else {
        Vec::new()
    };
    let docker = def.container.as_ref().and_then(|c| c.docker.as_ref());
    Task {
        spec: TaskSpec {
            task_id: task_id(&def.id),
            app_id: def.id.clone(),
            group: group_of(&def.id),
            config_version: app.config_version,
            image: def.image().map(str::to_string),
            cmd: def.cmd.clone().filter(|c| !c.trim().is_empty()),
            args: def.args.clone().filter(|a| !a.is_empty()),
            user: def.user.clone(),
            env: def
                .env
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect(),
            labels: def.labels.clone(),
            cpus: def.cpus,
            mem: def.mem,
            host_ports,
            container_ports,
            bridge: def.bridge(),
            health_checks: def.health_checks.clone(),
            kill_grace_secs: def.task_kill_grace_period_seconds.unwrap_or(3.0),
            force_pull: docker.and_then(|d| d.force_pull_image).unwrap_or(false),
            privileged: docker.and_then(|d| d.privileged).unwrap_or(false),
        },
        node_id: node_id.to_string(),
        host: host.to_string(),
        state: TaskState::Staging,
        staged_at: now,
        started_at: None,
        container_id: None,
        healthy: None,
        consecutive_failures: 0,
        last_success: None,
        last_failure: None,
        last_failure_cause: None,
        kill_reason: None,
        unreachable_since: None,
        state_before_unreachable: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskReport;

    fn t0() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn at(s: f64) -> DateTime<Utc> {
        t0() + secs_f(s)
    }

    fn state() -> State {
        let cfg = MasterConfig {
            heartbeat_timeout: Duration::from_secs(5),
            unreachable_replace_after: Duration::from_secs(10),
            launch_timeout: Duration::from_secs(30),
            backoff_reset_after: Duration::from_secs(60),
        };
        State::new(Snapshot::default(), cfg, t0())
    }

    fn report(node: &str, tasks: Vec<TaskReport>) -> AgentReport {
        AgentReport {
            node_id: node.into(),
            hostname: "127.0.0.1".into(),
            resources: Resources {
                cpus: 4.0,
                mem: 4096.0,
                disk: 1000.0,
            },
            port_range: (31000, 31999),
            attributes: Default::default(),
            tasks,
        }
    }

    fn running(spec: &TaskSpec, healthy: Option<bool>) -> TaskReport {
        TaskReport {
            task_id: spec.task_id.clone(),
            app_id: spec.app_id.clone(),
            state: TaskState::Running,
            container_id: Some("c".into()),
            message: None,
            started_at: Some(t0()),
            healthy,
            consecutive_failures: 0,
            last_success: None,
            last_failure: None,
            last_failure_cause: None,
        }
    }

    fn app(s: &mut State, body: Value, now: DateTime<Utc>) {
        s.create_app(body, now).unwrap();
    }

    /// An agent that runs everything it is given: heartbeat `node` reporting every active
    /// task the master placed there as running and healthy (killed ones are gone).
    fn all_running(s: &mut State, node: &str, now: DateTime<Utc>) -> Vec<TaskSpec> {
        let reports: Vec<TaskReport> = s
            .tasks
            .values()
            .filter(|t| t.node_id == node && t.is_active())
            .map(|t| running(&t.spec, Some(true)))
            .collect();
        s.heartbeat(report(node, reports), false, now).tasks
    }

    #[test]
    fn scale_up_then_down_youngest_first() {
        let mut s = state();
        s.heartbeat(report("n1", vec![]), true, t0());
        app(
            &mut s,
            json!({"id": "/a", "cmd": "sleep 1", "cpus": 0.1, "mem": 10, "instances": 3}),
            t0(),
        );
        s.tick(t0());
        assert_eq!(s.tasks.len(), 3);
        all_running(&mut s, "n1", at(1.0));
        s.tick(at(1.0));
        assert!(s.deployments.is_empty(), "start deployment done");
        // one more, younger
        s.update_app("/a", json!({"instances": 4}), false, at(2.0))
            .unwrap();
        s.tick(at(2.0));
        let youngest = s
            .tasks
            .values()
            .max_by_key(|t| t.staged_at)
            .unwrap()
            .spec
            .task_id
            .clone();
        all_running(&mut s, "n1", at(3.0));
        s.tick(at(3.0));
        s.update_app("/a", json!({"instances": 3}), false, at(4.0))
            .unwrap();
        s.tick(at(4.0));
        assert_eq!(s.tasks[&youngest].state, TaskState::Killing);
        assert_eq!(s.tasks.values().filter(|t| t.is_active()).count(), 3);
    }

    #[test]
    fn failed_task_is_replaced_after_backoff() {
        let mut s = state();
        s.heartbeat(report("n1", vec![]), true, t0());
        app(
            &mut s,
            json!({"id": "/a", "cmd": "x", "cpus": 0.1, "mem": 10}),
            t0(),
        );
        s.tick(t0());
        let spec = all_running(&mut s, "n1", t0())[0].clone();
        let mut r = running(&spec, None);
        r.state = TaskState::Failed;
        r.message = Some("exit 137".into());
        s.heartbeat(report("n1", vec![r.clone()]), false, at(1.0));
        assert!(s.tasks.is_empty());
        assert_eq!(s.delays["/a"].seconds, 1.0);
        s.tick(at(1.5));
        assert!(s.tasks.is_empty(), "still delayed");
        assert!(s.queue["/a"].reason.contains("backoff"));
        s.tick(at(2.1));
        assert_eq!(s.tasks.len(), 1);
        // fails again: 1.15 s
        let spec = s.tasks.values().next().unwrap().spec.clone();
        r = running(&spec, None);
        r.state = TaskState::Failed;
        s.heartbeat(report("n1", vec![r]), false, at(3.0));
        assert!((s.delays["/a"].seconds - 1.15).abs() < 1e-9);
    }

    #[test]
    fn backoff_is_capped_and_resets() {
        let mut s = state();
        s.heartbeat(report("n1", vec![]), true, t0());
        app(
            &mut s,
            json!({"id": "/a", "cmd": "x", "cpus": 0.1, "mem": 10, "backoffSeconds": 100, "backoffFactor": 2, "maxLaunchDelaySeconds": 300}),
            t0(),
        );
        let mut now = t0();
        for want in [100.0, 200.0, 300.0, 300.0] {
            s.tick(now);
            let spec = s.tasks.values().next().expect("a task").spec.clone();
            let mut r = running(&spec, None);
            r.state = TaskState::Failed;
            s.heartbeat(report("n1", vec![r]), false, now);
            assert_eq!(s.delays["/a"].seconds, want);
            now += secs_f(want + 0.1);
            s.heartbeat(report("n1", vec![]), false, now);
        }
        s.tick(now + secs_f(61.0));
        assert!(!s.delays.contains_key("/a"));
    }

    #[test]
    fn unreachable_node_tasks_are_replaced_elsewhere() {
        let mut s = state();
        s.heartbeat(report("n1", vec![]), true, t0());
        app(
            &mut s,
            json!({"id": "/a", "cmd": "x", "cpus": 0.1, "mem": 10, "instances": 2, "constraints": [["hostname", "LIKE", "n1"]]}),
            t0(),
        );
        s.tick(t0());
        all_running(&mut s, "n1", t0());
        // now allow n2 too
        s.update_app("/a", json!({"constraints": []}), true, at(0.5))
            .unwrap();
        s.heartbeat(report("n2", vec![]), true, at(1.0));
        // n1 goes silent
        for i in 0..20 {
            let now = at(1.0 + i as f64);
            all_running(&mut s, "n2", now);
            s.tick(now);
        }
        assert!(s.nodes["n1"].unreachable);
        let on_n2 = s
            .tasks
            .values()
            .filter(|t| t.node_id == "n2" && t.is_active())
            .count();
        assert_eq!(on_n2, 2);
        assert!(!s.tasks.values().any(|t| t.node_id == "n1"));
        // n1 is back with its old containers: they are not in its reply (so they stop)
        let old: Vec<TaskReport> = vec![];
        let reply = s.heartbeat(report("n1", old), false, at(30.0));
        assert!(reply.tasks.is_empty());
        assert!(!s.nodes["n1"].unreachable);
    }

    #[test]
    fn unhealthy_task_is_killed() {
        let mut s = state();
        s.heartbeat(report("n1", vec![]), true, t0());
        app(
            &mut s,
            json!({"id": "/a", "cmd": "x", "cpus": 0.1, "mem": 10, "healthChecks": [{"protocol": "TCP", "maxConsecutiveFailures": 2}]}),
            t0(),
        );
        s.tick(t0());
        let spec = all_running(&mut s, "n1", t0())[0].clone();
        let mut r = running(&spec, Some(false));
        r.consecutive_failures = 2;
        s.heartbeat(report("n1", vec![r]), false, at(1.0));
        s.tick(at(1.0));
        assert_eq!(s.tasks[&spec.task_id].state, TaskState::Killing);
        assert!(s
            .events
            .iter()
            .any(|e| e.event_type() == "unhealthy_task_kill_event"));
    }

    #[test]
    fn rolling_update_keeps_minimum_health_capacity() {
        let mut s = state();
        s.heartbeat(report("n1", vec![]), true, t0());
        app(
            &mut s,
            json!({"id": "/a", "cmd": "v1", "cpus": 0.1, "mem": 10, "instances": 4,
            "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0}}),
            t0(),
        );
        s.tick(t0());
        all_running(&mut s, "n1", t0());
        s.tick(t0());
        s.update_app("/a", json!({"cmd": "v2"}), false, at(1.0))
            .unwrap();
        let mut now = at(1.0);
        for _ in 0..20 {
            s.tick(now);
            let healthy = s
                .tasks
                .values()
                .filter(|t| t.is_active() && t.is_healthy())
                .count();
            let active = s.tasks.values().filter(|t| t.is_active()).count();
            assert!(
                healthy >= 2,
                "healthy {healthy}: {:#?}",
                s.tasks
                    .values()
                    .map(|t| (t.state, t.healthy))
                    .collect::<Vec<_>>()
            );
            assert!(active <= 4, "active {active}");
            // New tasks take a while to start: rounds where they are only STARTING, during
            // which nothing more may be killed.
            for _ in 0..2 {
                let starting: Vec<TaskReport> = s
                    .tasks
                    .values()
                    .filter(|t| t.is_active())
                    .map(|t| {
                        let mut r = running(&t.spec, Some(true));
                        if matches!(t.state, TaskState::Staging | TaskState::Starting) {
                            r.state = TaskState::Starting;
                            r.healthy = None;
                        }
                        r
                    })
                    .collect();
                s.heartbeat(report("n1", starting), false, now);
                s.tick(now);
                let healthy = s
                    .tasks
                    .values()
                    .filter(|t| t.is_active() && t.is_healthy())
                    .count();
                assert!(healthy >= 2, "healthy {healthy} while new tasks start");
            }
            // the agent kills what it is no longer given and runs what it is given
            all_running(&mut s, "n1", now);
            now += secs_f(1.0);
        }
        let app = s.apps["/a"].clone();
        assert_eq!(s.tasks.len(), 4);
        assert!(s
            .tasks
            .values()
            .all(|t| t.spec.config_version == app.config_version));
        assert!(s.deployments.is_empty());
    }

    #[test]
    fn locked_app_needs_force() {
        let mut s = state();
        app(&mut s, json!({"id": "/a", "cmd": "x"}), t0());
        let err = s
            .update_app("/a", json!({"instances": 2}), false, at(1.0))
            .unwrap_err();
        assert!(matches!(err, MasterError::Locked(_)));
        s.update_app("/a", json!({"instances": 2}), true, at(1.0))
            .unwrap();
        assert_eq!(s.deployments.len(), 1);
    }

    #[test]
    fn cordon_and_drain() {
        let mut s = state();
        s.heartbeat(report("n1", vec![]), true, t0());
        s.heartbeat(report("n2", vec![]), true, t0());
        s.node_action("n1", NodeAction::Cordon, t0()).unwrap();
        app(
            &mut s,
            json!({"id": "/a", "cmd": "x", "cpus": 0.1, "mem": 10, "instances": 3}),
            t0(),
        );
        s.tick(t0());
        assert!(s.tasks.values().all(|t| t.node_id == "n2"));
        all_running(&mut s, "n2", t0());
        s.tick(t0());
        s.node_action("n1", NodeAction::Uncordon, t0()).unwrap();
        s.node_action("n2", NodeAction::Drain, t0()).unwrap();
        // Replacements start on n1 first; the drained tasks stop once they are healthy.
        s.tick(at(1.0));
        let healthy = |s: &State| {
            s.tasks
                .values()
                .filter(|t| t.is_active() && t.is_healthy())
                .count()
        };
        assert_eq!(healthy(&s), 3, "the drained tasks still serve");
        assert_eq!(s.tasks.values().filter(|t| t.node_id == "n1").count(), 3);
        for i in 2..6 {
            all_running(&mut s, "n1", at(i as f64));
            all_running(&mut s, "n2", at(i as f64));
            s.tick(at(i as f64));
            assert!(healthy(&s) >= 3);
        }
        let active: Vec<&Task> = s.tasks.values().filter(|t| t.is_active()).collect();
        assert_eq!(active.len(), 3);
        assert!(active.iter().all(|t| t.node_id == "n1"));
        assert!(!s.tasks.values().any(|t| t.node_id == "n2"));
    }

    #[test]
    fn unknown_tasks_are_not_adopted_and_known_ones_survive_a_restart() {
        let mut s = state();
        s.heartbeat(report("n1", vec![]), true, t0());
        app(
            &mut s,
            json!({"id": "/a", "cmd": "x", "cpus": 0.1, "mem": 10}),
            t0(),
        );
        s.tick(t0());
        let spec = all_running(&mut s, "n1", t0())[0].clone();
        // master restart: state from the snapshot
        let mut s2 = State::new(s.snapshot(), s.cfg.clone(), at(100.0));
        let mut stray = running(&spec, Some(true));
        stray.task_id = "a.stray".into();
        let reply = s2.heartbeat(
            report("n1", vec![running(&spec, Some(true)), stray]),
            false,
            at(100.0),
        );
        assert_eq!(reply.tasks.len(), 1);
        assert_eq!(reply.tasks[0].task_id, spec.task_id);
        s2.tick(at(100.0));
        assert_eq!(s2.tasks.len(), 1, "no new task launched");
    }

    #[test]
    fn deleting_a_deployment_rolls_back() {
        let mut s = state();
        s.heartbeat(report("n1", vec![]), true, t0());
        app(
            &mut s,
            json!({"id": "/a", "cmd": "v1", "cpus": 0.1, "mem": 10}),
            t0(),
        );
        s.tick(t0());
        all_running(&mut s, "n1", t0());
        s.tick(t0());
        let d = s
            .update_app("/a", json!({"cmd": "v2"}), false, at(1.0))
            .unwrap();
        let rollback = s
            .delete_deployment(&d.id, false, at(2.0))
            .unwrap()
            .expect("a rollback");
        assert_eq!(s.apps["/a"].def.cmd.as_deref(), Some("v1"));
        assert_eq!(s.deployments.len(), 1);
        assert!(s.deployments.contains_key(&rollback.id));
        // forced: just forgotten
        let d = s
            .update_app("/a", json!({"cmd": "v3"}), true, at(3.0))
            .unwrap();
        assert!(s.delete_deployment(&d.id, true, at(4.0)).unwrap().is_none());
        assert_eq!(s.apps["/a"].def.cmd.as_deref(), Some("v3"));
        assert!(s.deployments.is_empty());
    }

    #[test]
    fn a_stuck_upgrade_strategy_still_moves() {
        // 1 instance, minimumHealthCapacity 1, maximumOverCapacity 0.5 (floors to 0 extra).
        let mut s = state();
        s.heartbeat(report("n1", vec![]), true, t0());
        app(
            &mut s,
            json!({"id": "/a", "cmd": "v1", "cpus": 0.1, "mem": 10,
            "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 0.5}}),
            t0(),
        );
        s.tick(t0());
        all_running(&mut s, "n1", t0());
        s.tick(t0());
        s.update_app("/a", json!({"cmd": "v2"}), false, at(1.0))
            .unwrap();
        for i in 1..6 {
            s.tick(at(i as f64));
            all_running(&mut s, "n1", at(i as f64));
        }
        s.tick(at(6.0));
        let v = s.apps["/a"].config_version;
        assert_eq!(s.tasks.len(), 1);
        assert!(s.tasks.values().all(|t| t.spec.config_version == v));
        assert!(s.deployments.is_empty());
    }
}
