//! The metrics store's own Prometheus metrics (registered under `drover_metrics_store_` by
//! the caller).
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

/// Label set of the drop counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why.
    pub reason: String,
}

/// Counters and gauges of one metrics store.
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    /// Messages read from Kafka.
    pub records: Counter,
    /// Samples (one value of one series) kept.
    pub samples: Counter,
    /// Samples skipped because the store already had them (replays after a crash).
    pub duplicates: Counter,
    /// Messages set aside on the dead-letter topic (never stored), by reason: the same name
    /// as the logpipe's.
    pub dead_lettered: Family<ReasonLabels, Counter>,
    /// Parquet files written (flushes and compactions).
    pub parquet_files: Counter,
    /// Bytes of Parquet written.
    pub parquet_bytes: Counter,
    /// Hours compacted.
    pub compactions: Counter,
    /// Hours removed by retention.
    pub retention_removed: Counter,
    /// Seconds per flush (write, fsync, commit).
    pub flush_seconds: Histogram,
    /// Kafka errors seen.
    pub kafka_errors: Counter,
    /// Series in the window.
    pub series: Gauge,
    /// Samples in the window.
    pub window_samples: Gauge,
    /// Samples waiting to be written.
    pub pending: Gauge,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl StoreMetrics {
    /// Unregistered metrics (tests, benchmarks).
    pub fn new() -> Self {
        Self {
            records: Counter::default(),
            samples: Counter::default(),
            duplicates: Counter::default(),
            dead_lettered: Family::default(),
            parquet_files: Counter::default(),
            parquet_bytes: Counter::default(),
            compactions: Counter::default(),
            retention_removed: Counter::default(),
            flush_seconds: Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            kafka_errors: Counter::default(),
            series: Gauge::default(),
            window_samples: Gauge::default(),
            pending: Gauge::default(),
        }
    }

    /// Creates the metrics and registers them.
    pub fn register(reg: &mut Registry) -> Self {
        let m = Self::new();
        reg.register(
            "records",
            "Messages read from the metrics topic",
            m.records.clone(),
        );
        reg.register(
            "samples",
            "Samples stored (one value of one series)",
            m.samples.clone(),
        );
        reg.register(
            "duplicates",
            "Samples skipped because the store already had them (replays)",
            m.duplicates.clone(),
        );
        reg.register(
            "dead_lettered",
            "Messages sent to the dead-letter topic (never stored), by reason",
            m.dead_lettered.clone(),
        );
        reg.register(
            "parquet_files",
            "Parquet files written",
            m.parquet_files.clone(),
        );
        reg.register_with_unit(
            "parquet",
            "Parquet written",
            Unit::Bytes,
            m.parquet_bytes.clone(),
        );
        reg.register("compactions", "Hours compacted", m.compactions.clone());
        reg.register(
            "retention_removed",
            "Hours of history removed by retention",
            m.retention_removed.clone(),
        );
        reg.register_with_unit(
            "flush",
            "Duration of a flush (Parquet write, fsync, offset commit)",
            Unit::Seconds,
            m.flush_seconds.clone(),
        );
        reg.register("kafka_errors", "Kafka errors seen", m.kafka_errors.clone());
        reg.register("series", "Series in the in-memory window", m.series.clone());
        reg.register(
            "window_samples",
            "Samples in the in-memory window",
            m.window_samples.clone(),
        );
        reg.register(
            "pending",
            "Samples not yet written to Parquet",
            m.pending.clone(),
        );
        // Known reasons start at 0: the series exist before the first bad message.
        for reason in drover_schema::SchemaError::REASONS
            .iter()
            .chain(crate::sample::Invalid::REASONS.iter())
        {
            let _ = m.dead_lettered.get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            });
        }
        m
    }
}
