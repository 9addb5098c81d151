use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{default_version, Versioned};

/// Which component emitted an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    /// The scheduler master (deployments, task status, nodes).
    Scheduler,
    /// An agent (container start/stop, health).
    Agent,
    /// Alertman (alerts firing and resolved, node removals).
    Alertman,
    /// The autoscaler (scaling decisions).
    Autoscaler,
    /// The gateway (backend ejected or restored).
    Gateway,
    /// The collector (daemon reconnects, dropped data).
    Collector,
    /// The API guard (the audit trail of writes).
    Auth,
}

/// How much attention an event deserves.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Routine: a task started, a deployment finished.
    #[default]
    Info,
    /// Something an operator may want to look at.
    Warning,
    /// Something is broken.
    Critical,
}

/// A scheduler, alert or scaling event. Topic `drover.events.v1`, key = app ID (or node ID
/// for node events). `kind` uses Marathon's event type names where Marathon has the event
/// (`status_update_event`, `deployment_success`, …) and Drover's own otherwise
/// (`alert_firing`, `alert_resolved`, `node_removed`, `scaling_decision`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Schema version.
    #[serde(default = "default_version")]
    pub v: u32,
    /// When it happened.
    pub ts: DateTime<Utc>,
    /// Unique ID of the event (for de-duplication by consumers).
    pub id: String,
    /// Which component emitted it.
    pub source: EventSource,
    /// Event type.
    pub kind: String,
    /// How much attention it deserves.
    #[serde(default)]
    pub severity: Severity,
    /// App the event concerns, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Task the event concerns, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Node the event concerns, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// One line for a person.
    pub message: String,
    /// Event-specific details (task state, alert labels, scaling inputs and outputs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, serde_json::Value>,
}

impl Versioned for Event {
    fn version(&self) -> u32 {
        self.v
    }
}
