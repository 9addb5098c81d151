//! Drover's logpipe: Kafka `drover.logs.v1` → parsed lines → rules → one Tantivy index per
//! day, exactly once through the Kafka offsets in each commit payload; malformed messages go
//! to `drover.deadletter.v1`. The index format (schema, partitions, line parser, checkpoint)
//! is `drover-search`'s, which serves the queries.
//!
//! Data flow, one module per step: `pipe` (the consume loop's handler: decode, skip replays,
//! retention) → `drover_search::parse` + `rules` (fields, level, filters) →
//! `drover_search::index::build_doc` → the day's writer → commit with the offsets.
#![forbid(unsafe_code)]

pub mod metrics;
pub mod pipe;
pub mod rules;

pub use metrics::LogpipeMetrics;
pub use pipe::{Clock, Logpipe, LogpipeConfig};
pub use rules::{Rules, RulesError};

/// Why the logpipe stopped.
#[derive(Debug, thiserror::Error)]
pub enum LogpipeError {
    /// The index (a partition, a commit, the checkpoint file) failed.
    #[error(transparent)]
    Search(#[from] drover_search::SearchError),
    /// Tantivy failed while writing.
    #[error("index error: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// The Kafka client could not be set up.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}
