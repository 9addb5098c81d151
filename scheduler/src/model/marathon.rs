//! Marathon's wire types: app definitions (with Marathon's field names and defaults), the
//! views of apps and tasks that `/v2/apps` and `/v2/tasks` return, and deployment plans.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{marathon_task_state, marathon_time, Task, TaskState};

// === app definitions (Marathon's AppDefinition) ===

/// A Marathon app definition. Every field Marathon documents is known: the ones Drover acts
/// on are typed, the others are kept as given (`Value`) so clients can round-trip them. A
/// field Marathon does not have is an error (reported by [`crate::validate::parse_app`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppDefinition {
    /// Absolute path, e.g. `/shop/web`; a relative one is made absolute.
    #[serde(default)]
    pub id: String,
    /// Shell command (`sh -c CMD`), or the image's command with `container.docker.image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// Arguments (exec form) instead of `cmd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// User inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Environment; values are strings (Marathon's `{"secret": …}` values are refused).
    #[serde(default)]
    pub env: BTreeMap<String, Value>,
    /// Number of tasks to keep running (default 1).
    #[serde(default = "defaults::instances")]
    pub instances: i64,
    /// CPU shares per task (default 1).
    #[serde(default = "defaults::cpus")]
    pub cpus: f64,
    /// Memory per task, MiB (default 128); also the container's memory limit.
    #[serde(default = "defaults::mem")]
    pub mem: f64,
    /// Disk per task, MiB (default 0; accounted, not enforced).
    #[serde(default)]
    pub disk: f64,
    /// GPUs (must be 0: Drover places no GPUs).
    #[serde(default)]
    pub gpus: f64,
    /// Placement constraints: `[field, OPERATOR, value?]`.
    #[serde(default)]
    pub constraints: Vec<Vec<Value>>,
    /// The Docker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// Health checks (HTTP, HTTPS, TCP, COMMAND and their MESOS_ variants).
    #[serde(default)]
    pub health_checks: Vec<HealthCheck>,
    /// How rolling updates proceed.
    #[serde(default)]
    pub upgrade_strategy: UpgradeStrategy,
    /// First launch delay after a failure, seconds (default 1).
    #[serde(default = "defaults::backoff_seconds")]
    pub backoff_seconds: f64,
    /// Factor the delay grows by with each failure (default 1.15).
    #[serde(default = "defaults::backoff_factor")]
    pub backoff_factor: f64,
    /// Upper bound of the launch delay, seconds (default 300).
    #[serde(default = "defaults::max_launch_delay_seconds")]
    pub max_launch_delay_seconds: f64,
    /// Labels, also put on the containers.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Host ports for host networking (`port: 0` = any from the agent's range). Default: one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_definitions: Option<Vec<PortDefinition>>,
    /// Legacy form of `portDefinitions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<i64>>,
    /// Use the ports in `portDefinitions` as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_ports: Option<bool>,
    /// Which tasks go first when scaling down: YOUNGEST_FIRST (default) or OLDEST_FIRST.
    #[serde(default = "defaults::kill_selection")]
    pub kill_selection: String,
    /// Seconds between SIGTERM and SIGKILL when a task is killed (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_kill_grace_period_seconds: Option<f64>,

    // --- Marathon fields kept as given, not acted on ---
    /// Marathon field, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable_strategy: Option<Value>,
    /// Marathon field, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uris: Option<Value>,
    /// Marathon field, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch: Option<Value>,
    /// Marathon field, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_urls: Option<Value>,
    /// Marathon field, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Value>,
    /// Marathon field, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_resource_roles: Option<Value>,
    /// Marathon field, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<Value>,
    /// Marathon field, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<Value>,
    /// Marathon field, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residency: Option<Value>,
    /// Marathon field, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Value>,
    /// Marathon field, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_checks: Option<Value>,
    /// Marathon field, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Value>,
    /// Marathon field, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Value>,
    /// Marathon field, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_rate_limit: Option<Value>,

    // --- read-only fields of Marathon's responses: accepted in requests (clients send back
    // what they read) and ignored ---
    /// Read-only, ignored.
    #[serde(default, skip_serializing)]
    pub version: Option<Value>,
    /// Read-only, ignored.
    #[serde(default, skip_serializing)]
    pub version_info: Option<Value>,
    /// Read-only, ignored.
    #[serde(default, skip_serializing)]
    pub tasks_staged: Option<Value>,
    /// Read-only, ignored.
    #[serde(default, skip_serializing)]
    pub tasks_running: Option<Value>,
    /// Read-only, ignored.
    #[serde(default, skip_serializing)]
    pub tasks_healthy: Option<Value>,
    /// Read-only, ignored.
    #[serde(default, skip_serializing)]
    pub tasks_unhealthy: Option<Value>,
    /// Read-only, ignored.
    #[serde(default, skip_serializing)]
    pub deployments: Option<Value>,
    /// Read-only, ignored.
    #[serde(default, skip_serializing)]
    pub tasks: Option<Value>,
    /// Read-only, ignored.
    #[serde(default, skip_serializing)]
    pub last_task_failure: Option<Value>,
    /// Read-only, ignored.
    #[serde(default, skip_serializing)]
    pub task_stats: Option<Value>,
    /// Read-only, ignored.
    #[serde(default, skip_serializing)]
    pub readiness_check_results: Option<Value>,
}

/// Marathon's defaults, in one place.
pub mod defaults {
    /// instances
    pub fn instances() -> i64 {
        1
    }
    /// cpus
    pub fn cpus() -> f64 {
        1.0
    }
    /// mem (MiB)
    pub fn mem() -> f64 {
        128.0
    }
    /// backoffSeconds
    pub fn backoff_seconds() -> f64 {
        1.0
    }
    /// backoffFactor
    pub fn backoff_factor() -> f64 {
        1.15
    }
    /// maxLaunchDelaySeconds
    pub fn max_launch_delay_seconds() -> f64 {
        300.0
    }
    /// killSelection
    pub fn kill_selection() -> String {
        "YOUNGEST_FIRST".into()
    }
    /// upgradeStrategy.minimumHealthCapacity and maximumOverCapacity
    pub fn one() -> f64 {
        1.0
    }
    /// container.type
    pub fn docker() -> String {
        "DOCKER".into()
    }
    /// healthChecks[].protocol
    pub fn http() -> String {
        "HTTP".into()
    }
    /// healthChecks[].path
    pub fn slash() -> String {
        "/".into()
    }
    /// healthChecks[].gracePeriodSeconds
    pub fn grace_period_seconds() -> f64 {
        300.0
    }
    /// healthChecks[].intervalSeconds
    pub fn interval_seconds() -> f64 {
        60.0
    }
    /// healthChecks[].timeoutSeconds
    pub fn timeout_seconds() -> f64 {
        20.0
    }
    /// healthChecks[].maxConsecutiveFailures
    pub fn max_consecutive_failures() -> i64 {
        3
    }
    /// portMappings[].protocol
    pub fn tcp() -> String {
        "tcp".into()
    }
}

impl AppDefinition {
    /// The Docker image, if any.
    pub fn image(&self) -> Option<&str> {
        self.container
            .as_ref()
            .and_then(|c| c.docker.as_ref())
            .map(|d| d.image.as_str())
            .filter(|i| !i.is_empty())
    }

    /// The port mappings (bridge networking), from `container.portMappings` or
    /// `container.docker.portMappings`.
    pub fn port_mappings(&self) -> Vec<PortMapping> {
        let Some(c) = &self.container else {
            return Vec::new();
        };
        if let Some(pm) = c.port_mappings.as_ref().filter(|p| !p.is_empty()) {
            return pm.clone();
        }
        c.docker
            .as_ref()
            .and_then(|d| d.port_mappings.clone())
            .unwrap_or_default()
    }

    /// Bridge networking (port mappings) rather than the host's network.
    pub fn bridge(&self) -> bool {
        let network = self
            .container
            .as_ref()
            .and_then(|c| c.docker.as_ref())
            .and_then(|d| d.network.as_deref());
        match network {
            Some(n) => n.eq_ignore_ascii_case("BRIDGE") || n.eq_ignore_ascii_case("USER"),
            None => !self.port_mappings().is_empty(),
        }
    }

    /// The host ports each task needs: `0` = any port from the node's range.
    pub fn host_ports(&self) -> Vec<u16> {
        if self.bridge() {
            return self
                .port_mappings()
                .iter()
                .map(|p| p.host_port.clamp(0, 65535) as u16)
                .collect();
        }
        if let Some(defs) = &self.port_definitions {
            let fixed = self.require_ports.unwrap_or(false);
            return defs
                .iter()
                .map(|p| {
                    if fixed {
                        p.port.clamp(0, 65535) as u16
                    } else {
                        0
                    }
                })
                .collect();
        }
        if let Some(ports) = &self.ports {
            return ports.iter().map(|_| 0).collect();
        }
        vec![0]
    }

    /// The fields that make a new configuration (everything but `instances`), to tell a
    /// scale from a config change.
    pub fn config_eq(&self, other: &AppDefinition) -> bool {
        let mut a = self.clone();
        a.instances = other.instances;
        &a == other
    }

    /// The definition as Marathon returns it (defaults filled in).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// `container`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Container {
    /// DOCKER (MESOS is accepted as a synonym: Drover only runs Docker).
    #[serde(rename = "type", default = "defaults::docker")]
    pub kind: String,
    /// The Docker part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerContainer>,
    /// Port mappings (Marathon 1.5+ place).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_mappings: Option<Vec<PortMapping>>,
    /// Kept as given (not mounted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Value>,
}

/// `container.docker`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DockerContainer {
    /// The image; it must exist on the agents' engines (Drover pulls only when
    /// `forcePullImage` is set).
    #[serde(default)]
    pub image: String,
    /// HOST (default without port mappings) or BRIDGE (default with them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Port mappings (pre-1.5 place).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_mappings: Option<Vec<PortMapping>>,
    /// `docker run` parameters, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Privileged container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// Pull the image before each launch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_pull_image: Option<bool>,
    /// Kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_config: Option<Value>,
}

/// A port mapping (bridge networking).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortMapping {
    /// Port inside the container.
    #[serde(default)]
    pub container_port: i64,
    /// Host port; 0 = any from the agent's range.
    #[serde(default)]
    pub host_port: i64,
    /// Kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_port: Option<i64>,
    /// tcp (default) or udp.
    #[serde(default = "defaults::tcp")]
    pub protocol: String,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_names: Option<Value>,
}

/// A port definition (host networking).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortDefinition {
    /// The port; 0 = any.
    #[serde(default)]
    pub port: i64,
    /// tcp (default) or udp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// A health check, with Marathon's fields and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// HTTP (default), HTTPS, TCP, COMMAND, or MESOS_HTTP/MESOS_HTTPS/MESOS_TCP.
    #[serde(default = "defaults::http")]
    pub protocol: String,
    /// Path of an HTTP check (default `/`).
    #[serde(default = "defaults::slash")]
    pub path: String,
    /// Which of the task's ports (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_index: Option<i64>,
    /// A fixed port instead of `portIndex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// COMMAND check: `{"value": "shell command"}` run in the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandCheck>,
    /// Failures are ignored this long after the task starts (default 300).
    #[serde(default = "defaults::grace_period_seconds")]
    pub grace_period_seconds: f64,
    /// Seconds between checks (default 60).
    #[serde(default = "defaults::interval_seconds")]
    pub interval_seconds: f64,
    /// A check slower than this fails (default 20).
    #[serde(default = "defaults::timeout_seconds")]
    pub timeout_seconds: f64,
    /// The task is killed after this many failures in a row (default 3; 0 = never).
    #[serde(default = "defaults::max_consecutive_failures")]
    pub max_consecutive_failures: i64,
    /// Treat 1xx answers as healthy.
    #[serde(default)]
    pub ignore_http1xx: bool,
    /// Marathon field, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<f64>,
}

/// The command of a COMMAND health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandCheck {
    /// Shell command; exit 0 = healthy.
    pub value: String,
}

/// `upgradeStrategy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpgradeStrategy {
    /// Fraction of `instances` kept healthy during an update (default 1).
    #[serde(default = "defaults::one")]
    pub minimum_health_capacity: f64,
    /// Fraction of `instances` that may run on top during an update (default 1).
    #[serde(default = "defaults::one")]
    pub maximum_over_capacity: f64,
}

impl Default for UpgradeStrategy {
    fn default() -> Self {
        Self {
            minimum_health_capacity: 1.0,
            maximum_over_capacity: 1.0,
        }
    }
}

// === deployment plans ===

/// A deployment as Marathon shows it (`/v2/deployments`, the `plan` of deployment events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentPlan {
    /// Deployment ID.
    pub id: String,
    /// The app version it deploys.
    #[serde(with = "marathon_time")]
    pub version: DateTime<Utc>,
    /// The apps it changes (one in Drover).
    pub affected_apps: Vec<String>,
    /// Always empty: no pods.
    pub affected_pods: Vec<String>,
    /// Its steps (one in Drover).
    pub steps: Vec<DeploymentStep>,
    /// What the current step does.
    pub current_actions: Vec<CurrentAction>,
    /// The current step, from 1.
    pub current_step: u32,
    /// How many steps.
    pub total_steps: u32,
}

/// One step of a deployment plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentStep {
    /// What it does.
    pub actions: Vec<DeploymentAction>,
}

/// One action of a deployment step: StartApplication, ScaleApplication, RestartApplication,
/// StopApplication of an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentAction {
    /// The action.
    pub action: String,
    /// The app.
    pub app: String,
}

/// An action of the current step, with its readiness checks (none in Drover).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrentAction {
    /// The action.
    pub action: String,
    /// The app.
    pub app: String,
    /// Always empty: no readiness checks.
    pub readiness_check_results: Vec<Value>,
}

// === Marathon's views of apps and tasks (`/v2/apps`, `/v2/tasks`) ===

/// An app as Marathon's API returns it: the definition (defaults filled in) with its
/// versions, task counts, deployments and, when asked for (`embed=`), its tasks and last
/// failure.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MarathonApp {
    /// The definition.
    #[serde(flatten)]
    pub definition: AppDefinition,
    /// Changes with every change (scale included).
    #[serde(with = "marathon_time")]
    pub version: DateTime<Utc>,
    /// When it was last scaled and last changed.
    pub version_info: VersionInfo,
    /// Tasks staging or starting.
    pub tasks_staged: usize,
    /// Tasks running.
    pub tasks_running: usize,
    /// Tasks passing their health checks (0 without checks).
    pub tasks_healthy: usize,
    /// Tasks failing their health checks.
    pub tasks_unhealthy: usize,
    /// Its deployments in progress.
    pub deployments: Vec<DeploymentRef>,
    /// Its tasks (`embed=app.tasks`, `embed=apps.tasks`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<MarathonTask>>,
    /// Its last task failure (`embed=…lastTaskFailure`), when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_task_failure: Option<LastTaskFailure>,
}

impl<'de> Deserialize<'de> for MarathonApp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        /// The fields of the response around the definition.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Status {
            #[serde(with = "marathon_time")]
            version: DateTime<Utc>,
            version_info: VersionInfo,
            tasks_staged: usize,
            tasks_running: usize,
            tasks_healthy: usize,
            tasks_unhealthy: usize,
            deployments: Vec<DeploymentRef>,
            #[serde(default)]
            tasks: Option<Vec<MarathonTask>>,
            #[serde(default)]
            last_task_failure: Option<LastTaskFailure>,
        }
        let v = Value::deserialize(d)?;
        let status: Status = serde_json::from_value(v.clone()).map_err(D::Error::custom)?;
        // The definition takes (and ignores) the read-only fields of the response.
        let definition: AppDefinition = serde_json::from_value(v).map_err(D::Error::custom)?;
        Ok(Self {
            definition,
            version: status.version,
            version_info: status.version_info,
            tasks_staged: status.tasks_staged,
            tasks_running: status.tasks_running,
            tasks_healthy: status.tasks_healthy,
            tasks_unhealthy: status.tasks_unhealthy,
            deployments: status.deployments,
            tasks: status.tasks,
            last_task_failure: status.last_task_failure,
        })
    }
}

/// `versionInfo` of an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// When it was last scaled.
    #[serde(with = "marathon_time")]
    pub last_scaling_at: DateTime<Utc>,
    /// When its configuration last changed.
    #[serde(with = "marathon_time")]
    pub last_config_change_at: DateTime<Utc>,
}

/// A deployment named by its ID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRef {
    /// Deployment ID.
    pub id: String,
}

/// `lastTaskFailure` of an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastTaskFailure {
    /// The app.
    pub app_id: String,
    /// The node's hostname.
    pub host: String,
    /// Why.
    pub message: String,
    /// The task.
    pub task_id: String,
    /// The task again.
    pub instance_id: String,
    /// Always null.
    pub slave_id: Option<String>,
    /// The state it ended in.
    #[serde(with = "marathon_task_state")]
    pub state: TaskState,
    /// When.
    #[serde(with = "marathon_time")]
    pub timestamp: DateTime<Utc>,
    /// The app configuration it ran.
    #[serde(with = "marathon_time")]
    pub version: DateTime<Utc>,
}

/// A task as Marathon's API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MarathonTask {
    /// Task ID.
    pub id: String,
    /// The app.
    pub app_id: String,
    /// The node's hostname.
    pub host: String,
    /// Its host ports.
    pub ports: Vec<u16>,
    /// Always empty.
    pub service_ports: Vec<u16>,
    /// The node.
    pub slave_id: String,
    /// When it was placed.
    #[serde(with = "marathon_time")]
    pub staged_at: DateTime<Utc>,
    /// When its container started.
    #[serde(default, with = "marathon_time::option")]
    pub started_at: Option<DateTime<Utc>>,
    /// The app configuration it runs.
    #[serde(with = "marathon_time")]
    pub version: DateTime<Utc>,
    /// Its address (the node's hostname).
    pub ip_addresses: Vec<IpAddress>,
    /// Its state.
    #[serde(with = "marathon_task_state")]
    pub state: TaskState,
    /// Its health (one result for all its checks; empty without checks).
    pub health_check_results: Vec<HealthCheckResult>,
}

/// An address of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpAddress {
    /// The address.
    pub ip_address: String,
    /// `IPv4`.
    pub protocol: String,
}

/// A task's health as Marathon reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckResult {
    /// Healthy.
    pub alive: bool,
    /// Failed checks in a row.
    pub consecutive_failures: u32,
    /// The last passing check (Drover keeps only the last).
    #[serde(default, with = "marathon_time::option")]
    pub first_success: Option<DateTime<Utc>>,
    /// The last failing check.
    #[serde(default, with = "marathon_time::option")]
    pub last_failure: Option<DateTime<Utc>>,
    /// The last passing check.
    #[serde(default, with = "marathon_time::option")]
    pub last_success: Option<DateTime<Utc>>,
    /// Why the last check failed.
    pub last_failure_cause: Option<String>,
    /// The task.
    pub task_id: String,
    /// The task again.
    pub instance_id: String,
}

impl MarathonTask {
    /// The view of a task the master keeps.
    pub fn of(t: &Task) -> Self {
        let health_check_results = if t.spec.health_checks.is_empty() {
            Vec::new()
        } else {
            vec![HealthCheckResult {
                alive: t.healthy == Some(true),
                consecutive_failures: t.consecutive_failures,
                first_success: t.last_success,
                last_failure: t.last_failure,
                last_success: t.last_success,
                last_failure_cause: t.last_failure_cause.clone(),
                task_id: t.spec.task_id.clone(),
                instance_id: t.spec.task_id.clone(),
            }]
        };
        Self {
            id: t.spec.task_id.clone(),
            app_id: t.spec.app_id.clone(),
            host: t.host.clone(),
            ports: t.spec.host_ports.clone(),
            service_ports: Vec::new(),
            slave_id: t.node_id.clone(),
            staged_at: t.staged_at,
            started_at: t.started_at,
            version: t.spec.config_version,
            ip_addresses: vec![IpAddress {
                ip_address: t.host.clone(),
                protocol: "IPv4".into(),
            }],
            state: t.state,
            health_check_results,
        }
    }
}
