//! The scheduler's Prometheus metrics, registered per component (master, agent) under the
//! prefix the parent hands in (`drover_scheduler_…`, `drover_agent_…`).
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

/// A task-state label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// STAGING, RUNNING, …
    pub state: String,
}

/// A node-status label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// ACTIVE, CORDONED, DRAINING, UNREACHABLE.
    pub status: String,
}

/// A result label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// ok, failed.
    pub result: String,
}

/// A job-run event label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobEventLabel {
    /// started, finished, retrying, failed, skipped.
    pub event: String,
}

/// The master's metrics.
#[derive(Debug, Clone)]
pub struct MasterMetrics {
    /// Apps defined.
    pub apps: Gauge,
    /// Tasks by state.
    pub tasks: Family<StateLabel, Gauge>,
    /// Nodes by status.
    pub nodes: Family<StatusLabel, Gauge>,
    /// Heartbeats received.
    pub heartbeats: Counter,
    /// Tasks placed.
    pub tasks_launched: Counter,
    /// Time of one reconciliation tick.
    pub reconcile_seconds: Histogram,
    /// Deployments in progress.
    pub deployments: Gauge,
    /// Jobs defined.
    pub jobs: Gauge,
    /// Job run events (attempts started, runs finished, retried, failed, skipped).
    pub job_runs: Family<JobEventLabel, Counter>,
}

impl Default for MasterMetrics {
    fn default() -> Self {
        Self {
            apps: Gauge::default(),
            tasks: Family::default(),
            nodes: Family::default(),
            heartbeats: Counter::default(),
            tasks_launched: Counter::default(),
            reconcile_seconds: Histogram::new([0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0]),
            deployments: Gauge::default(),
            jobs: Gauge::default(),
            job_runs: Family::default(),
        }
    }
}

impl MasterMetrics {
    /// Register under `registry` (e.g. the `drover_scheduler` sub-registry).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register("apps", "Apps defined", m.apps.clone());
        registry.register("tasks", "Tasks by state", m.tasks.clone());
        registry.register("nodes", "Nodes by status", m.nodes.clone());
        registry.register(
            "heartbeats",
            "Agent heartbeats received",
            m.heartbeats.clone(),
        );
        registry.register(
            "tasks_launched",
            "Tasks placed on nodes",
            m.tasks_launched.clone(),
        );
        registry.register(
            "deployments",
            "Deployments in progress",
            m.deployments.clone(),
        );
        registry.register("jobs", "Jobs defined", m.jobs.clone());
        registry.register(
            "job_runs",
            "Job run events: attempts started, runs finished, retrying, failed, skipped",
            m.job_runs.clone(),
        );
        registry.register_with_unit(
            "reconcile",
            "Duration of one reconciliation tick",
            Unit::Seconds,
            m.reconcile_seconds.clone(),
        );
        m
    }
}

/// An agent's metrics.
#[derive(Debug, Clone)]
pub struct AgentMetrics {
    /// Docker create+start time per container.
    pub launch_seconds: Histogram,
    /// Containers started.
    pub containers_started: Counter,
    /// Containers stopped.
    pub containers_stopped: Counter,
    /// Container create+start failures.
    pub launch_failures: Counter,
    /// Health checks by result.
    pub health_checks: Family<ResultLabel, Counter>,
    /// Heartbeats that failed to reach the master.
    pub heartbeat_failures: Counter,
    /// Exited containers removed by cleanup.
    pub cleanup_removed: Counter,
    /// Exited containers cleanup could not remove.
    pub cleanup_failures: Counter,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self {
            launch_seconds: Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            containers_started: Counter::default(),
            containers_stopped: Counter::default(),
            launch_failures: Counter::default(),
            health_checks: Family::default(),
            heartbeat_failures: Counter::default(),
            cleanup_removed: Counter::default(),
            cleanup_failures: Counter::default(),
        }
    }
}

impl AgentMetrics {
    /// Register under `registry` (e.g. the `drover_agent` sub-registry).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register_with_unit(
            "launch",
            "Docker create and start of a task's container",
            Unit::Seconds,
            m.launch_seconds.clone(),
        );
        registry.register(
            "containers_started",
            "Task containers started",
            m.containers_started.clone(),
        );
        registry.register(
            "containers_stopped",
            "Task containers stopped",
            m.containers_stopped.clone(),
        );
        registry.register(
            "launch_failures",
            "Task containers that failed to start",
            m.launch_failures.clone(),
        );
        registry.register(
            "health_checks",
            "Health checks by result",
            m.health_checks.clone(),
        );
        registry.register(
            "heartbeat_failures",
            "Heartbeats that did not reach the master",
            m.heartbeat_failures.clone(),
        );
        registry.register(
            "cleanup_removed",
            "Exited containers removed by the cleanup policy",
            m.cleanup_removed.clone(),
        );
        registry.register(
            "cleanup_failures",
            "Exited containers the cleanup could not remove",
            m.cleanup_failures.clone(),
        );
        m
    }
}
