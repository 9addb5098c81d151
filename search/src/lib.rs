//! Drover's log search: the **logpipe** (Kafka `drover.logs.v1` → parsed lines → day-partitioned
//! Tantivy indexes, exactly once through offsets in the commit payload) and the **search**
//! side (queries, histogram, context, top field values, live tail) with its HTTP API.
//!
//! Data flow, one module per step:
//! `pipe` (consume, decode, dead-letter) → `parse` + `rules` (fields, level, filters) →
//! `index` (schema) + `store` (partitions) + `checkpoint` (offsets) → `query` → `api`.
#![forbid(unsafe_code)]

pub mod api;
pub mod checkpoint;
pub mod index;
pub mod metrics;
pub mod parse;
pub mod pipe;
pub mod query;
pub mod rules;
pub mod store;
pub mod timespec;

use std::path::Path;

pub use index::{Level, LogFields};
pub use pipe::{Logpipe, LogpipeConfig};
pub use query::{Search, SearchRequest, TrackTotal};
pub use store::LogStore;

/// Errors of the log index and search.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A file or directory problem.
    #[error("{path}: {source}")]
    Io {
        /// Which path.
        path: String,
        /// What happened.
        source: std::io::Error,
    },
    /// Tantivy failed.
    #[error("index error: {0}")]
    Index(String),
    /// The query text could not be parsed.
    #[error("invalid query: {0}")]
    Query(String),
    /// A request parameter is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// Kafka failed.
    #[error("kafka: {0}")]
    Kafka(String),
}

impl SearchError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Whether the caller sent something wrong (an HTTP 400), as opposed to a server fault.
    pub fn is_client_error(&self) -> bool {
        matches!(self, Self::Query(_) | Self::BadRequest(_))
    }
}

impl From<tantivy::TantivyError> for SearchError {
    fn from(e: tantivy::TantivyError) -> Self {
        Self::Index(e.to_string())
    }
}

impl From<rdkafka::error::KafkaError> for SearchError {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        Self::Kafka(e.to_string())
    }
}

#[cfg(test)]
mod tests;
