//! The records that travel on Drover's Kafka topics and through its APIs.
//!
//! Types only: this crate does no IO and depends on no other Drover crate, so every
//! component (and any third-party consumer written in Rust) can depend on it.
//!
//! Every record is JSON with a `"v"` schema version. Readers accept records without
//! fields added in later minor revisions (they have defaults) and ignore fields they do
//! not know, so producers can add fields without breaking old consumers; a record whose
//! `v` is not one this build understands is refused with [`SchemaError::UnsupportedVersion`]
//! so that a consumer can dead-letter it instead of misreading it.
#![forbid(unsafe_code)]

mod error;
mod event;
mod log;
mod metrics;
mod source;

pub use error::SchemaError;
pub use event::{Event, EventSource, Severity};
pub use log::{LogRecord, Stream};
pub use metrics::{ContainerStats, LatencyHistogram, MetricRecord, RequestStats, StatusClasses};
pub use source::Source;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Default topic names. Every component takes the name as a setting; these are the defaults.
pub mod topics {
    /// Container log lines ([`crate::LogRecord`]), keyed by container ID so order holds per container.
    pub const LOGS: &str = "drover.logs.v1";
    /// Container and request metrics ([`crate::MetricRecord`]), keyed by app ID.
    pub const METRICS: &str = "drover.metrics.v1";
    /// Scheduler, alert and scaling events ([`crate::Event`]), keyed by app ID (or node ID).
    pub const EVENTS: &str = "drover.events.v1";
    /// Messages a consumer could not read, with the reason in the `drover-error` header.
    pub const DEAD_LETTER: &str = "drover.deadletter.v1";
    /// All of Drover's default topics.
    pub const ALL: [&str; 4] = [LOGS, METRICS, EVENTS, DEAD_LETTER];
}

/// The labels and environment variables that tie a container to Drover: the agent puts them
/// on every task's container, the collector reads them to tag records. One definition for
/// both sides.
pub mod labels {
    /// Label: the app ID (`/shop/web`).
    pub const APP: &str = "drover.app";
    /// Label: the task ID.
    pub const TASK: &str = "drover.task";
    /// Label: the app's group (its parent in the app tree; a scaling group of a service).
    pub const GROUP: &str = "drover.group";
    /// Label: the node (agent) that owns the container.
    pub const NODE: &str = "drover.node";
    /// Label: the cluster (master) the container belongs to.
    pub const CLUSTER: &str = "drover.cluster";
    /// Label: the app configuration version the task runs.
    pub const VERSION: &str = "drover.version";
    /// Label: seconds between SIGTERM and SIGKILL when the task is stopped.
    pub const KILL_GRACE: &str = "drover.kill-grace";
    /// Label: the multi-line rule the collector joins the container's lines with.
    pub const MULTILINE: &str = "drover.multiline";
    /// Environment: the app ID, as Drover sets it.
    pub const ENV_APP_ID: &str = "DROVER_APP_ID";
    /// Environment: the app ID, as Marathon sets it (and apps written for Marathon read).
    pub const ENV_MARATHON_APP_ID: &str = "MARATHON_APP_ID";
    /// Environment variables holding the app ID, in the collector's order of preference.
    pub const APP_ID_ENV: [&str; 2] = [ENV_APP_ID, ENV_MARATHON_APP_ID];
}

/// A record that carries a schema version and can be checked after decoding.
pub trait Versioned {
    /// The record's `v` field.
    fn version(&self) -> u32;
}

/// Decode one record from JSON bytes (a Kafka message value), checking its schema version.
pub fn decode<T>(bytes: &[u8]) -> Result<T, SchemaError>
where
    T: serde::de::DeserializeOwned + Versioned,
{
    // One parse in the common case: the logpipe decodes every log line. The version probe
    // runs only to explain a refusal, so that a record from a newer schema is reported as
    // such, not as whatever field it happens to fail on.
    if let Ok(record) = serde_json::from_slice::<T>(bytes) {
        if record.version() == SCHEMA_VERSION {
            return Ok(record);
        }
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        v: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(SchemaError::Json)?;
    match probe.v {
        None => return Err(SchemaError::MissingVersion),
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(u64::from(SCHEMA_VERSION)) => {}
        Some(other) => return Err(SchemaError::UnsupportedVersion(other.to_string())),
    }
    let record: T = serde_json::from_slice(bytes).map_err(SchemaError::Json)?;
    Ok(record)
}

/// Encode one record as JSON bytes (a Kafka message value).
pub fn encode<T: serde::Serialize>(record: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail: no maps with non-string keys, no
    // custom serialisers that error.
    serde_json::to_vec(record).expect("schema records always serialise")
}

/// The `v` of a record that has none: 0, which [`decode`] refuses as
/// [`SchemaError::MissingVersion`].
fn default_version() -> u32 {
    0
}

#[cfg(test)]
mod tests;
