//! The agent protocol (Drover's own, not part of the Marathon API): what an agent reports
//! with each heartbeat, and the tasks the master answers it should run.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{HealthCheck, Resources, TaskState};

/// What an agent needs to run one task. Fixed when the task is placed, so a rolling update
/// changes new tasks only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Task ID, e.g. `shop_web.3f2a…`.
    pub task_id: String,
    /// App ID, e.g. `/shop/web`.
    pub app_id: String,
    /// The app's group, e.g. `/shop`.
    pub group: String,
    /// The app's configuration version the task runs.
    pub config_version: DateTime<Utc>,
    /// Docker image (busybox-like default for cmd-only apps is the agent's).
    pub image: Option<String>,
    /// Shell command.
    pub cmd: Option<String>,
    /// Exec-form arguments.
    pub args: Option<Vec<String>>,
    /// User.
    pub user: Option<String>,
    /// Environment from the definition (the agent adds HOST, PORTn, …).
    pub env: BTreeMap<String, String>,
    /// Labels from the definition.
    pub labels: BTreeMap<String, String>,
    /// CPU shares.
    pub cpus: f64,
    /// Memory limit, MiB.
    pub mem: f64,
    /// Host ports assigned by the master.
    pub host_ports: Vec<u16>,
    /// Container ports (bridge networking; empty for host networking).
    pub container_ports: Vec<(u16, String)>,
    /// Bridge networking.
    pub bridge: bool,
    /// Health checks.
    pub health_checks: Vec<HealthCheck>,
    /// Seconds between SIGTERM and SIGKILL.
    pub kill_grace_secs: f64,
    /// Pull the image before starting.
    pub force_pull: bool,
    /// Privileged.
    pub privileged: bool,
}

/// What an agent sends with each heartbeat (and at registration).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentReport {
    /// Node ID.
    pub node_id: String,
    /// Address tasks are reached at.
    pub hostname: String,
    /// What the node offers.
    pub resources: Resources,
    /// Host ports tasks may use, inclusive.
    pub port_range: (u16, u16),
    /// Attributes.
    pub attributes: BTreeMap<String, String>,
    /// Every task the agent has a container (or a launch in progress) for.
    pub tasks: Vec<TaskReport>,
}

/// One task as an agent sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskReport {
    /// Task ID.
    pub task_id: String,
    /// App ID (from the container's label).
    pub app_id: String,
    /// State.
    pub state: TaskState,
    /// Container ID.
    pub container_id: Option<String>,
    /// Why it failed or finished.
    pub message: Option<String>,
    /// When the container started.
    pub started_at: Option<DateTime<Utc>>,
    /// Latest health result: None = no result yet or no checks.
    pub healthy: Option<bool>,
    /// Failed checks in a row.
    pub consecutive_failures: u32,
    /// Last passing check.
    pub last_success: Option<DateTime<Utc>>,
    /// Last failing check.
    pub last_failure: Option<DateTime<Utc>>,
    /// Last failing check's reason.
    pub last_failure_cause: Option<String>,
}

/// The master's answer to a heartbeat: the tasks this node should run (the agent starts the
/// missing ones and stops every other container it owns).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// Tasks to run.
    pub tasks: Vec<TaskSpec>,
    /// The node was removed from the cluster: stop everything.
    #[serde(default)]
    pub removed: bool,
    /// The cluster's ID: the agent manages only containers labelled with it.
    #[serde(default)]
    pub cluster_id: String,
}
