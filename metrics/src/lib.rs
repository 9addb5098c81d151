//! Drover's **metrics store**: the metrics topic (`drover.metrics.v1`) into in-memory windows
//! (the last hour at full resolution) and hourly Parquet history, both queried with polars.
//!
//! Data flow, one module per step:
//! `consume` (Kafka, decode, dead-letter) → `sample` (validate, flatten a record into named
//! series) → `window` (recent samples in memory; the reusable window aggregation that alerting
//! and autoscaling call) + `history` (hourly Parquet files, compaction, retention) → `query`
//! (series downsampled to a step, top N, latest) → `api` (HTTP). `metrics` holds the store's
//! own Prometheus counters; `store` ties memory and history together.
#![forbid(unsafe_code)]

pub mod api;
pub mod consume;
pub mod history;
pub mod metrics;
pub mod partials;
pub mod query;
pub mod sample;
pub mod store;
pub mod window;

use std::path::Path;

pub use consume::{Ingest, IngestConfig};
pub use history::History;
pub use metrics::StoreMetrics;
pub use query::{QueryRequest, QueryResponse};
pub use sample::{Dim, Labels, Metric, Samples};
pub use store::{MetricsStore, StoreConfig};
pub use window::{Agg, Filter, GroupValue, Window, WindowQuery};

/// A clock, injectable so that a 5-minute window is tested in milliseconds.
pub type Clock = drover_schema::time::SharedClock;

pub use drover_schema::time::system_clock;

/// Errors of the metrics store.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A file or directory problem.
    #[error("{path}: {source}")]
    Io {
        /// Which path.
        path: String,
        /// What happened.
        source: std::io::Error,
    },
    /// polars failed (reading or writing Parquet, or computing a frame).
    #[error("polars: {0}")]
    Polars(#[from] polars::error::PolarsError),
    /// A request parameter is wrong: names the parameter.
    #[error("{param}: {message}")]
    BadParam {
        /// The parameter (`metric`, `step`, …).
        param: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Kafka failed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

impl MetricsError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn bad(param: &'static str, message: impl Into<String>) -> Self {
        Self::BadParam {
            param,
            message: message.into(),
        }
    }

    /// Whether the caller sent something wrong (an HTTP 400), as opposed to a server fault.
    pub fn is_client_error(&self) -> bool {
        matches!(self, Self::BadParam { .. })
    }
}
