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
