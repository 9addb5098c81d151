//! The master's events: [`MarathonEvent`], typed, rendered as Marathon's JSON for
//! `/v2/events` (SSE) and `/v1/events`, and turned into Drover's [`drover_schema::Event`]
//! records for the `drover.events.v1` topic ([`to_schema_event`]), so any Kafka consumer
//! (alertman, a billing job) sees deployments, task states and node changes.
use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use drover_schema::{Event, EventSource, Severity};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    master::NodeAction,
    model::{marathon_task_state, marathon_time, AppDefinition, DeploymentPlan, TaskState},
};

/// One event of the master, as Marathon's event stream has it: `eventType`, `timestamp`
/// (Marathon's format) and the fields of its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarathonEvent {
    /// When it happened.
    #[serde(with = "marathon_time")]
    pub timestamp: DateTime<Utc>,
    /// What happened: `eventType` and its fields.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened, by Marathon's `eventType` (Drover's own node events end in
/// `node_…_event`). Field names are Marathon's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "eventType")]
pub enum EventKind {
    /// A client attached to `/v2/events` (the first event of each stream).
    #[serde(rename = "event_stream_attached", rename_all = "camelCase")]
    StreamAttached {
        /// Always null.
        remote_address: Option<String>,
    },
    /// An app was created or changed through the API.
    #[serde(rename = "api_post_event", rename_all = "camelCase")]
    ApiPost {
        /// Always null.
        client_ip: Option<String>,
        /// `/v2/apps/ID`.
        uri: String,
        /// The definition (defaults filled in).
        app_definition: Box<AppDefinition>,
    },
    /// A task changed state.
    #[serde(rename = "status_update_event", rename_all = "camelCase")]
    StatusUpdate {
        /// The node.
        slave_id: String,
        /// The task.
        task_id: String,
        /// The task again (Marathon's instance).
        instance_id: String,
        /// Its new state.
        #[serde(with = "marathon_task_state")]
        task_status: TaskState,
        /// Why (empty when nothing to say).
        message: String,
        /// The app.
        app_id: String,
        /// The node's hostname.
        host: String,
        /// Its host ports.
        ports: Vec<u16>,
        /// Always empty.
        ip_addresses: Vec<Value>,
        /// The app configuration it runs.
        #[serde(with = "marathon_time")]
        version: DateTime<Utc>,
    },
    /// A task's health changed.
    #[serde(rename = "health_status_changed_event", rename_all = "camelCase")]
    HealthStatusChanged {
        /// The app.
        app_id: String,
        /// The task.
        task_id: String,
        /// The task again.
        instance_id: String,
        /// The app configuration it runs.
        #[serde(with = "marathon_time")]
        version: DateTime<Utc>,
        /// Healthy now.
        alive: bool,
    },
    /// A task failed its health checks too often and is killed.
    #[serde(rename = "unhealthy_task_kill_event", rename_all = "camelCase")]
    UnhealthyTaskKill {
        /// The app.
        app_id: String,
        /// The task.
        task_id: String,
        /// The task again.
        instance_id: String,
        /// The app configuration it runs.
        #[serde(with = "marathon_time")]
        version: DateTime<Utc>,
        /// How many checks failed, and the last cause.
        reason: String,
        /// The node's hostname.
        host: String,
        /// The node.
        slave_id: String,
    },
    /// A deployment started.
    #[serde(rename = "deployment_info", rename_all = "camelCase")]
    DeploymentInfo {
        /// The deployment.
        plan: DeploymentPlan,
        /// What it does now.
        current_step: CurrentStep,
    },
    /// A deployment finished.
    #[serde(rename = "deployment_success")]
    DeploymentSuccess {
        /// Deployment ID.
        id: String,
        /// The deployment.
        plan: DeploymentPlan,
    },
    /// A deployment was canceled, or replaced by a forced change.
    #[serde(rename = "deployment_failed")]
    DeploymentFailed {
        /// Deployment ID.
        id: String,
        /// The deployment (only its ID when a forced change replaced it).
        plan: FailedPlan,
        /// Why.
        reason: String,
    },
    /// An app was removed.
    #[serde(rename = "app_terminated_event", rename_all = "camelCase")]
    AppTerminated {
        /// The app.
        app_id: String,
    },
    /// A node missed its heartbeats (Drover's).
    #[serde(rename = "node_unreachable_event", rename_all = "camelCase")]
    NodeUnreachable {
        /// The node.
        node_id: String,
    },
    /// A node is back (Drover's).
    #[serde(rename = "node_reachable_event", rename_all = "camelCase")]
    NodeReachable {
        /// The node.
        node_id: String,
    },
    /// A node was cordoned, uncordoned, drained or removed (Drover's).
    #[serde(rename = "node_update_event", rename_all = "camelCase")]
    NodeUpdate {
        /// The node.
        node_id: String,
        /// `cordon`, `uncordon`, `drain`, `remove`.
        action: NodeAction,
        /// Its status now: ACTIVE, CORDONED, DRAINING, UNREACHABLE.
        status: String,
    },
    /// An agent removed exited containers by their apps' cleanup policies (Drover's).
    #[serde(rename = "containers_cleaned_event", rename_all = "camelCase")]
    ContainersCleaned {
        /// The node.
        node_id: String,
        /// How many.
        count: usize,
        /// Each one: `id`, `app`, `task`, `exitedAt`.
        removed: Vec<Value>,
    },
    /// An attempt of a job's run was placed on a node (Drover's jobs).
    #[serde(rename = "job_run_started")]
    JobRunStarted(JobRunInfo),
    /// A job's run exited 0.
    #[serde(rename = "job_run_finished")]
    JobRunFinished(JobRunInfo),
    /// An attempt failed and another one follows after the back-off.
    #[serde(rename = "job_run_retrying")]
    JobRunRetrying(JobRunInfo),
    /// A job's run failed for good (every attempt, a timeout, replaced, stopped).
    #[serde(rename = "job_run_failed")]
    JobRunFailed(JobRunInfo),
    /// Scheduled times of a job passed without a run (missed by more than epsilon, or an
    /// earlier run still going under `forbid`).
    #[serde(rename = "job_run_skipped")]
    JobRunSkipped(JobRunInfo),
}

/// What a `job_run_*` event says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRunInfo {
    /// The job.
    pub job_id: String,
    /// The run.
    pub run_id: String,
    /// `schedule`, `manual`, `parents`.
    pub trigger: String,
    /// The scheduled time it stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The attempt (1, 2, …; 0 for a skip).
    pub attempt: u32,
    /// The attempt's task.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub task_id: String,
    /// Its node.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_id: String,
    /// Its container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Why (failures, skips, retries).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// `currentStep` of a `deployment_info` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrentStep {
    /// What the step does.
    pub actions: Vec<crate::model::DeploymentAction>,
}

/// The `plan` of a `deployment_failed` event: the whole plan, or only its ID when a forced
/// change replaced the deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FailedPlan {
    /// The deployment.
    Plan(DeploymentPlan),
    /// Only its ID.
    Id {
        /// Deployment ID.
        id: String,
    },
}

impl MarathonEvent {
    /// An event of `kind` at `timestamp`.
    pub fn new(timestamp: DateTime<Utc>, kind: EventKind) -> Self {
        Self { timestamp, kind }
    }

    /// Its `eventType`, e.g. `status_update_event`.
    pub fn event_type(&self) -> &'static str {
        self.kind.event_type()
    }

    /// Marathon's JSON for it (keys sorted, as `/v2/events` has always sent them).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The app it is about: its `appId`, else the first app its deployment plan changes.
    pub fn app_id(&self) -> Option<&str> {
        let app = match &self.kind {
            EventKind::StatusUpdate { app_id, .. }
            | EventKind::HealthStatusChanged { app_id, .. }
            | EventKind::UnhealthyTaskKill { app_id, .. }
            | EventKind::AppTerminated { app_id } => Some(app_id.as_str()),
            EventKind::DeploymentInfo { plan, .. }
            | EventKind::DeploymentSuccess { plan, .. }
            | EventKind::DeploymentFailed {
                plan: FailedPlan::Plan(plan),
                ..
            } => plan.affected_apps.first().map(String::as_str),
            EventKind::ApiPost { app_definition, .. } => Some(app_definition.id.as_str()),
            _ => None,
        };
        app.filter(|s| !s.is_empty())
    }

    /// The task it is about.
    pub fn task_id(&self) -> Option<&str> {
        let task = match &self.kind {
            EventKind::StatusUpdate { task_id, .. }
            | EventKind::HealthStatusChanged { task_id, .. }
            | EventKind::UnhealthyTaskKill { task_id, .. } => Some(task_id.as_str()),
            _ => self.job_run().map(|j| j.task_id.as_str()),
        };
        task.filter(|s| !s.is_empty())
    }

    /// The node it is about (`slaveId` or `nodeId`).
    pub fn node_id(&self) -> Option<&str> {
        let node = match &self.kind {
            EventKind::StatusUpdate { slave_id, .. }
            | EventKind::UnhealthyTaskKill { slave_id, .. } => Some(slave_id.as_str()),
            EventKind::NodeUnreachable { node_id }
            | EventKind::NodeReachable { node_id }
            | EventKind::NodeUpdate { node_id, .. }
            | EventKind::ContainersCleaned { node_id, .. } => Some(node_id.as_str()),
            _ => self.job_run().map(|j| j.node_id.as_str()),
        };
        node.filter(|s| !s.is_empty())
    }

    /// The run of a `job_run_*` event.
    pub fn job_run(&self) -> Option<&JobRunInfo> {
        match &self.kind {
            EventKind::JobRunStarted(j)
            | EventKind::JobRunFinished(j)
            | EventKind::JobRunRetrying(j)
            | EventKind::JobRunFailed(j)
            | EventKind::JobRunSkipped(j) => Some(j),
            _ => None,
        }
    }
}

impl EventKind {
    /// Its `eventType`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::StreamAttached { .. } => "event_stream_attached",
            Self::ApiPost { .. } => "api_post_event",
            Self::StatusUpdate { .. } => "status_update_event",
            Self::HealthStatusChanged { .. } => "health_status_changed_event",
            Self::UnhealthyTaskKill { .. } => "unhealthy_task_kill_event",
            Self::DeploymentInfo { .. } => "deployment_info",
            Self::DeploymentSuccess { .. } => "deployment_success",
            Self::DeploymentFailed { .. } => "deployment_failed",
            Self::AppTerminated { .. } => "app_terminated_event",
            Self::NodeUnreachable { .. } => "node_unreachable_event",
            Self::NodeReachable { .. } => "node_reachable_event",
            Self::NodeUpdate { .. } => "node_update_event",
            Self::ContainersCleaned { .. } => "containers_cleaned_event",
            Self::JobRunStarted(_) => "job_run_started",
            Self::JobRunFinished(_) => "job_run_finished",
            Self::JobRunRetrying(_) => "job_run_retrying",
            Self::JobRunFailed(_) => "job_run_failed",
            Self::JobRunSkipped(_) => "job_run_skipped",
        }
    }
}

/// The record for one event; None for stream bookkeeping (`event_stream_attached`).
pub fn to_schema_event(e: &MarathonEvent) -> Option<Event> {
    let kind = e.event_type();
    if let EventKind::StreamAttached { .. } = e.kind {
        return None;
    }
    let app = match e.kind {
        // Its record has never named the app (the JSON has no `appId`); kept so.
        EventKind::ApiPost { .. } => None,
        _ => match e.job_run() {
            Some(j) => Some(crate::jobs::job_app_id(&j.job_id)),
            None => e.app_id().map(str::to_string),
        },
    };
    let task = e.task_id().map(str::to_string);
    let node = e.node_id().map(str::to_string);
    let severity = match &e.kind {
        EventKind::StatusUpdate {
            task_status: TaskState::Failed | TaskState::Unreachable,
            ..
        }
        | EventKind::UnhealthyTaskKill { .. }
        | EventKind::NodeUnreachable { .. }
        | EventKind::DeploymentFailed { .. }
        | EventKind::JobRunFailed(_)
        | EventKind::JobRunRetrying(_)
        | EventKind::JobRunSkipped(_) => Severity::Warning,
        _ => Severity::Info,
    };
    let or = |o: &Option<String>| o.clone().unwrap_or_else(|| "?".into());
    let message = match &e.kind {
        EventKind::StatusUpdate {
            task_status,
            message,
            ..
        } => {
            let mut m = format!(
                "task {} of {} is {} on {}",
                or(&task),
                or(&app),
                task_status.marathon(),
                or(&node)
            );
            if !message.is_empty() {
                m.push_str(&format!(": {message}"));
            }
            m
        }
        EventKind::HealthStatusChanged { alive, .. } => format!(
            "task {} of {} is {}",
            or(&task),
            or(&app),
            if *alive { "healthy" } else { "unhealthy" }
        ),
        EventKind::UnhealthyTaskKill { reason, .. } => format!(
            "killing unhealthy task {} of {}: {reason}",
            or(&task),
            or(&app),
        ),
        EventKind::DeploymentInfo { .. } => format!("deployment of {} started", or(&app)),
        EventKind::DeploymentSuccess { .. } => format!("deployment of {} finished", or(&app)),
        EventKind::DeploymentFailed { reason, .. } => {
            format!("deployment of {} stopped: {reason}", or(&app))
        }
        EventKind::ApiPost { .. } => format!("app {} created or changed", or(&app)),
        EventKind::AppTerminated { .. } => format!("app {} removed", or(&app)),
        EventKind::NodeUnreachable { .. } => format!("node {} missed its heartbeats", or(&node)),
        EventKind::NodeReachable { .. } => format!("node {} is reachable again", or(&node)),
        EventKind::NodeUpdate { action, .. } => {
            format!("node {}: {}", or(&node), action.name())
        }
        EventKind::StreamAttached { .. } => kind.to_string(),
        EventKind::ContainersCleaned { count, .. } => format!(
            "node {} removed {count} exited container(s) by their cleanup policy",
            or(&node)
        ),
        EventKind::JobRunStarted(j) => format!(
            "job {} run {} attempt {} started on {} ({})",
            j.job_id, j.run_id, j.attempt, j.node_id, j.trigger
        ),
        EventKind::JobRunFinished(j) => format!("job {} run {} succeeded", j.job_id, j.run_id),
        EventKind::JobRunRetrying(j) => format!(
            "job {} run {} attempt {} failed, retrying: {}",
            j.job_id, j.run_id, j.attempt, j.reason
        ),
        EventKind::JobRunFailed(j) => {
            format!("job {} run {} failed: {}", j.job_id, j.run_id, j.reason)
        }
        EventKind::JobRunSkipped(j) => {
            format!("job {} skipped a run: {}", j.job_id, j.reason)
        }
    };
    let attrs: BTreeMap<String, Value> = match e.to_json() {
        Value::Object(o) => o
            .into_iter()
            .filter(|(k, _)| k != "eventType" && k != "timestamp")
            .collect(),
        _ => BTreeMap::new(),
    };
    Some(Event {
        v: 1,
        // The JSON's precision: Marathon's timestamps have milliseconds.
        ts: e.timestamp.trunc_subsecs(3),
        id: crate::model::uuid(),
        source: EventSource::Scheduler,
        kind: kind.to_string(),
        severity,
        app,
        task,
        node,
        message,
        attrs,
    })
}

/// The Kafka key of an event: its app, else its node (order is kept per key).
pub fn key(e: &Event) -> String {
    e.app.clone().or_else(|| e.node.clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{ts, Deployment};

    fn t() -> DateTime<Utc> {
        "2026-01-01T00:00:00.123456Z".parse().unwrap()
    }

    fn deployment() -> Deployment {
        Deployment {
            id: "d1".into(),
            app_id: "/a".into(),
            action: "StartApplication".into(),
            version: t(),
            started_at: t(),
            previous: None,
        }
    }

    /// What the master built with `json!` before events were typed, eventType and
    /// timestamp added as it did.
    fn old(kind: &str, mut body: Value) -> Value {
        body["eventType"] = json!(kind);
        body["timestamp"] = json!(ts(t()));
        body
    }

    fn check(kind: EventKind, want: Value) {
        let e = MarathonEvent::new(t(), kind);
        assert_eq!(e.to_json(), want);
        assert_eq!(e.event_type(), want["eventType"]);
        // The rendered JSON is exactly the old one, byte for byte.
        assert_eq!(e.to_json().to_string(), want.to_string());
        // And it reads back (the client decodes what the stream sends).
        let back: MarathonEvent = serde_json::from_value(want).unwrap();
        assert_eq!(back.to_json(), e.to_json());
    }

    #[test]
    fn every_kind_renders_the_json_the_master_always_sent() {
        let d = deployment();
        let def: AppDefinition =
            serde_json::from_value(json!({"id": "/a", "cmd": "sleep 1", "instances": 2})).unwrap();
        check(
            EventKind::StreamAttached {
                remote_address: None,
            },
            json!({"eventType": "event_stream_attached", "timestamp": ts(t()), "remoteAddress": null}),
        );
        check(
            EventKind::ApiPost {
                client_ip: None,
                uri: "/v2/apps/a".into(),
                app_definition: Box::new(def.clone()),
            },
            old(
                "api_post_event",
                json!({"clientIp": null, "uri": "/v2/apps/a", "appDefinition": def.to_json()}),
            ),
        );
        check(
            EventKind::StatusUpdate {
                slave_id: "n1".into(),
                task_id: "a.1".into(),
                instance_id: "a.1".into(),
                task_status: TaskState::Running,
                message: "".into(),
                app_id: "/a".into(),
                host: "h".into(),
                ports: vec![31000, 31001],
                ip_addresses: vec![],
                version: t(),
            },
            old(
                "status_update_event",
                json!({
                    "slaveId": "n1", "taskId": "a.1", "instanceId": "a.1",
                    "taskStatus": "TASK_RUNNING", "message": "", "appId": "/a",
                    "host": "h", "ports": [31000, 31001], "ipAddresses": [],
                    "version": ts(t()),
                }),
            ),
        );
        check(
            EventKind::HealthStatusChanged {
                app_id: "/a".into(),
                task_id: "a.1".into(),
                instance_id: "a.1".into(),
                version: t(),
                alive: true,
            },
            old(
                "health_status_changed_event",
                json!({"appId": "/a", "taskId": "a.1", "instanceId": "a.1",
                       "version": ts(t()), "alive": true}),
            ),
        );
        check(
            EventKind::UnhealthyTaskKill {
                app_id: "/a".into(),
                task_id: "a.1".into(),
                instance_id: "a.1".into(),
                version: t(),
                reason: "3 consecutive health check failures".into(),
                host: "h".into(),
                slave_id: "n1".into(),
            },
            old(
                "unhealthy_task_kill_event",
                json!({"appId": "/a", "taskId": "a.1", "instanceId": "a.1",
                       "version": ts(t()), "reason": "3 consecutive health check failures",
                       "host": "h", "slaveId": "n1"}),
            ),
        );
        check(
            EventKind::DeploymentInfo {
                plan: d.plan(),
                current_step: CurrentStep {
                    actions: vec![crate::model::DeploymentAction {
                        action: "StartApplication".into(),
                        app: "/a".into(),
                    }],
                },
            },
            old(
                "deployment_info",
                json!({"plan": {
                    "id": "d1",
                    "version": ts(t()),
                    "affectedApps": ["/a"],
                    "affectedPods": [],
                    "steps": [{"actions": [{"action": "StartApplication", "app": "/a"}]}],
                    "currentActions": [{"action": "StartApplication", "app": "/a", "readinessCheckResults": []}],
                    "currentStep": 1,
                    "totalSteps": 1,
                }, "currentStep": {"actions": [{"action": "StartApplication", "app": "/a"}]}}),
            ),
        );
        check(
            EventKind::DeploymentSuccess {
                id: "d1".into(),
                plan: d.plan(),
            },
            old(
                "deployment_success",
                json!({"id": "d1", "plan": d.to_json()}),
            ),
        );
        check(
            EventKind::DeploymentFailed {
                id: "d1".into(),
                plan: FailedPlan::Plan(d.plan()),
                reason: "canceled".into(),
            },
            old(
                "deployment_failed",
                json!({"id": "d1", "plan": d.to_json(), "reason": "canceled"}),
            ),
        );
        check(
            EventKind::DeploymentFailed {
                id: "d1".into(),
                plan: FailedPlan::Id { id: "d1".into() },
                reason: "superseded by a forced change".into(),
            },
            old(
                "deployment_failed",
                json!({"id": "d1", "plan": {"id": "d1"}, "reason": "superseded by a forced change"}),
            ),
        );
        check(
            EventKind::AppTerminated {
                app_id: "/a".into(),
            },
            old("app_terminated_event", json!({"appId": "/a"})),
        );
        check(
            EventKind::NodeUnreachable {
                node_id: "n1".into(),
            },
            old("node_unreachable_event", json!({"nodeId": "n1"})),
        );
        check(
            EventKind::NodeReachable {
                node_id: "n1".into(),
            },
            old("node_reachable_event", json!({"nodeId": "n1"})),
        );
        for (action, name) in [
            (NodeAction::Cordon, "cordon"),
            (NodeAction::Uncordon, "uncordon"),
            (NodeAction::Drain, "drain"),
            (NodeAction::Remove, "remove"),
        ] {
            check(
                EventKind::NodeUpdate {
                    node_id: "n1".into(),
                    action,
                    status: "CORDONED".into(),
                },
                old(
                    "node_update_event",
                    json!({"nodeId": "n1", "action": name, "status": "CORDONED"}),
                ),
            );
        }
    }

    fn decode(v: Value) -> MarathonEvent {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn task_failures_are_warnings_with_app_task_and_node() {
        let e = to_schema_event(&decode(
            json!({"eventType": "status_update_event", "timestamp": "2026-01-01T00:00:00.000Z",
            "appId": "/web", "taskId": "web.1", "slaveId": "n1", "taskStatus": "TASK_FAILED",
            "message": "the container exited with status 137", "instanceId": "web.1",
            "host": "h", "ports": [], "ipAddresses": [], "version": "2026-01-01T00:00:00.000Z"}),
        ))
        .unwrap();
        assert_eq!(e.kind, "status_update_event");
        assert_eq!(e.severity, Severity::Warning);
        assert_eq!(e.app.as_deref(), Some("/web"));
        assert_eq!(e.node.as_deref(), Some("n1"));
        assert!(
            e.message
                .contains("TASK_FAILED on n1: the container exited"),
            "{}",
            e.message
        );
        assert_eq!(key(&e), "/web");
        let back: Event = drover_schema::decode(&serde_json::to_vec(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn deployments_and_nodes() {
        let mut d = deployment();
        d.action = "ScaleApplication".into();
        let e = to_schema_event(&MarathonEvent::new(
            t(),
            EventKind::DeploymentSuccess {
                id: d.id.clone(),
                plan: d.plan(),
            },
        ))
        .unwrap();
        assert_eq!(e.app.as_deref(), Some("/a"));
        assert_eq!(e.severity, Severity::Info);
        assert_eq!(
            e.ts,
            "2026-01-01T00:00:00.123Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(e.attrs["plan"]["affectedApps"], json!(["/a"]));
        let e = to_schema_event(&MarathonEvent::new(
            t(),
            EventKind::NodeUnreachable {
                node_id: "n2".into(),
            },
        ))
        .unwrap();
        assert_eq!(key(&e), "n2");
        assert_eq!(e.severity, Severity::Warning);
        assert!(to_schema_event(&MarathonEvent::new(
            t(),
            EventKind::StreamAttached {
                remote_address: None
            }
        ))
        .is_none());
    }
}
