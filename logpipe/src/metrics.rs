//! The logpipe's Prometheus metrics (registered under `drover_logpipe_` by the caller).
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Label set of the dead-letter and filter counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why.
    pub reason: String,
}

/// Label set of per-partition gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    /// Kafka partition.
    pub partition: String,
}

/// Counters and gauges of one logpipe.
#[derive(Debug, Clone)]
pub struct LogpipeMetrics {
    /// Messages read from Kafka.
    pub records: Counter,
    /// Documents added to the index.
    pub indexed: Counter,
    /// Bytes of line text indexed.
    pub indexed_bytes: Counter,
    /// Messages skipped on replay because their partition's commit already holds them.
    pub replay_skipped: Counter,
    /// Lines dropped by a rule, by rule name.
    pub filtered: Family<ReasonLabels, Counter>,
    /// Messages sent to the dead-letter topic, by reason.
    pub dead_lettered: Family<ReasonLabels, Counter>,
    /// Commit rounds completed.
    pub commits: Counter,
    /// Seconds per commit round.
    pub commit_seconds: Histogram,
    /// Kafka errors seen (broker down, fetch failures).
    pub kafka_errors: Counter,
    /// Messages behind the end of each partition at the last check.
    pub lag: Family<PartitionLabels, Gauge>,
    /// Open index partitions (days).
    pub partitions: Gauge,
    /// Partitions removed by retention.
    pub retention_dropped: Counter,
}

impl Default for LogpipeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl LogpipeMetrics {
    /// Unregistered metrics (tests, benchmarks).
    pub fn new() -> Self {
        Self {
            records: Counter::default(),
            indexed: Counter::default(),
            indexed_bytes: Counter::default(),
            replay_skipped: Counter::default(),
            filtered: Family::default(),
            dead_lettered: Family::default(),
            commits: Counter::default(),
            commit_seconds: Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            kafka_errors: Counter::default(),
            lag: Family::default(),
            partitions: Gauge::default(),
            retention_dropped: Counter::default(),
        }
    }

    /// Creates the metrics and registers them.
    pub fn register(reg: &mut Registry) -> Self {
        let m = Self::new();
        reg.register(
            "records",
            "Messages read from the logs topic",
            m.records.clone(),
        );
        reg.register("indexed", "Log lines added to the index", m.indexed.clone());
        reg.register(
            "indexed_bytes",
            "Bytes of log text indexed",
            m.indexed_bytes.clone(),
        );
        reg.register(
            "replay_skipped",
            "Messages skipped after a restart because the index already holds them",
            m.replay_skipped.clone(),
        );
        reg.register("filtered", "Lines dropped by a rule", m.filtered.clone());
        reg.register(
            "dead_lettered",
            "Malformed messages sent to the dead-letter topic",
            m.dead_lettered.clone(),
        );
        reg.register("commits", "Index commit rounds", m.commits.clone());
        reg.register(
            "commit_seconds",
            "Duration of a commit round",
            m.commit_seconds.clone(),
        );
        reg.register("kafka_errors", "Kafka errors seen", m.kafka_errors.clone());
        reg.register(
            "lag",
            "Messages behind the end of the partition",
            m.lag.clone(),
        );
        reg.register(
            "partitions",
            "Open index partitions (days)",
            m.partitions.clone(),
        );
        reg.register(
            "retention_dropped",
            "Index partitions removed by retention",
            m.retention_dropped.clone(),
        );
        // Known reasons start at 0: the series exist before the first bad message.
        for reason in drover_schema::SchemaError::REASONS {
            let _ = m.dead_lettered.get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            });
        }
        m
    }
}
