//! The consumer: reads `drover.metrics.v1` in a consumer group, decodes and validates each
//! record, adds its samples to the store, and every `flush_interval` writes the new samples
//! to Parquet (fsync'd) and *then* commits the Kafka offsets.
//!
//! **Acknowledged** means: the offset is committed to the consumer group, which happens only
//! after every sample before it is in a fsync'd Parquet file. A crash loses nothing
//! acknowledged; what was read but not acknowledged is read again after the restart, and the
//! samples the store already has (same series, same timestamp) are skipped, so nothing is
//! counted twice. Malformed or invalid messages go to the dead-letter topic (header
//! `drover-error` = the reason) before their offsets are committed.
use std::{
    sync::{atomic::AtomicBool, Arc},
    time::{Duration, Instant},
};

use drover_kafka::consume::{self, ConsumeConfig, Flush, Flushed, Handler, Outcome, Reading};
use drover_schema::{MetricRecord, SchemaError};
use rdkafka::{consumer::CommitMode, message::BorrowedMessage, Message, Offset};

use crate::{
    metrics::{ReasonLabels, StoreMetrics},
    sample::{classify_undecodable, flatten},
    store::MetricsStore,
    MetricsError,
};

/// Settings of the consumer.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// The metrics topic.
    pub topic: String,
    /// Where malformed messages go.
    pub dead_letter_topic: String,
    /// Consumer group (its committed offsets are the acknowledgement).
    pub group: String,
    /// Write to Parquet and commit at least this often.
    pub flush_interval: Duration,
    /// …or when this many samples wait.
    pub flush_samples: usize,
    /// Prune the window, compact and apply retention this often.
    pub maintain_interval: Duration,
}

impl IngestConfig {
    /// Defaults for these brokers: Drover's topics, group `drover-metrics-store`, flush every
    /// 5 s or 200,000 samples, maintenance every minute.
    pub fn new(brokers: &str) -> Self {
        Self {
            brokers: brokers.to_string(),
            topic: drover_schema::topics::METRICS.to_string(),
            dead_letter_topic: drover_schema::topics::DEAD_LETTER.to_string(),
            group: "drover-metrics-store".into(),
            flush_interval: Duration::from_secs(5),
            flush_samples: 200_000,
            maintain_interval: Duration::from_secs(60),
        }
    }
}

/// The consumer's inputs.
#[derive(Debug)]
pub struct Ingest {
    cfg: IngestConfig,
    store: Arc<MetricsStore>,
    metrics: StoreMetrics,
}

impl Ingest {
    /// A consumer feeding `store`.
    pub fn new(cfg: IngestConfig, store: Arc<MetricsStore>, metrics: StoreMetrics) -> Self {
        Self {
            cfg,
            store,
            metrics,
        }
    }

    /// Runs until `stop` is set, then flushes and commits what it has. Blocking: run it on its
    /// own thread. Kafka being away is waited out, not an error.
    pub fn run(self, stop: Arc<AtomicBool>) -> Result<(), MetricsError> {
        let cc = ConsumeConfig {
            dead_letter_topic: self.cfg.dead_letter_topic.clone(),
            flush_interval: self.cfg.flush_interval,
            // The commit is the acknowledgement: synchronous.
            commit_mode: CommitMode::Sync,
            ..ConsumeConfig::new(
                &self.cfg.brokers,
                &self.cfg.topic,
                &self.cfg.group,
                "drover-metrics-store",
            )
        };
        let mut sink = StoreSink {
            ingest: &self,
            last_maintain: Instant::now(),
            flush_started: None,
        };
        consume::run(&cc, &mut sink, &stop)
    }
}

/// The metrics store's side of the consume loop.
struct StoreSink<'a> {
    ingest: &'a Ingest,
    last_maintain: Instant,
    /// When the flush whose offsets are being committed started.
    flush_started: Option<Instant>,
}

impl Handler for StoreSink<'_> {
    type Error = MetricsError;

    fn start(&mut self, partitions: &[i32]) -> Result<Vec<(i32, Offset)>, MetricsError> {
        // Every partition, from the group's committed offsets (the acknowledged position).
        Ok(partitions.iter().map(|p| (*p, Offset::Stored)).collect())
    }

    fn before_burst(&mut self, _reading: Reading<'_>) -> Result<bool, MetricsError> {
        if self.last_maintain.elapsed() >= self.ingest.cfg.maintain_interval {
            self.maintain();
        }
        Ok(false)
    }

    fn handle(&mut self, msg: &BorrowedMessage<'_>) -> Result<Outcome, MetricsError> {
        let ingest = self.ingest;
        ingest.metrics.records.inc();
        let payload = msg.payload().unwrap_or_default();
        let rec: MetricRecord = match drover_schema::decode(payload) {
            Ok(r) => r,
            Err(e) => {
                let reason = match &e {
                    SchemaError::Json(_) => classify_undecodable(payload).unwrap_or(e.reason()),
                    _ => e.reason(),
                };
                return Ok(self.dead_letter(reason, e.to_string()));
            }
        };
        let samples = match flatten(&rec) {
            Ok(s) => s,
            Err(invalid) => return Ok(self.dead_letter(invalid.reason(), invalid.to_string())),
        };
        let added = ingest.store.add(&samples);
        ingest.metrics.samples.inc_by(added.added);
        ingest.metrics.duplicates.inc_by(added.duplicates);
        ingest.metrics.pending.set(ingest.store.pending() as i64);
        Ok(Outcome::Handled)
    }

    fn wants_flush(&self) -> bool {
        self.ingest.store.pending() >= self.ingest.cfg.flush_samples
    }

    /// Writes pending samples to Parquet (fsync'd); the loop then commits the offsets.
    fn flush(&mut self, flush: Flush<'_>) -> Result<Flushed, MetricsError> {
        let ingest = self.ingest;
        if !flush.changed && ingest.store.pending() == 0 {
            return Ok(Flushed::Nothing);
        }
        self.flush_started = Some(Instant::now());
        match ingest.store.flush() {
            Ok(w) => {
                ingest.metrics.parquet_files.inc_by(w.files);
                ingest.metrics.parquet_bytes.inc_by(w.bytes);
                Ok(Flushed::Done)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot write the metrics history; retrying, offsets not committed");
                Ok(Flushed::Later)
            }
        }
    }

    fn after_commit(&mut self, committed: bool) {
        // Not committed: the samples are on disk; a replay of them is deduplicated.
        let Some(started) = self.flush_started.take() else {
            return;
        };
        if !committed {
            return;
        }
        let m = &self.ingest.metrics;
        m.flush_seconds.observe(started.elapsed().as_secs_f64());
        let w = self.ingest.store.window();
        m.series.set(w.series_count() as i64);
        m.window_samples.set(w.len() as i64);
        drop(w);
        m.pending.set(self.ingest.store.pending() as i64);
        tracing::debug!(
            took_ms = started.elapsed().as_millis() as u64,
            "metrics flushed"
        );
    }

    fn kafka_error(&mut self) {
        self.ingest.metrics.kafka_errors.inc();
    }
}

impl StoreSink<'_> {
    /// Counts a bad sample by reason; the loop sets it aside on the dead-letter topic.
    fn dead_letter(&self, reason: &str, detail: String) -> Outcome {
        self.ingest
            .metrics
            .dead_lettered
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
        Outcome::DeadLetter {
            reason: reason.to_string(),
            detail,
        }
    }

    fn maintain(&mut self) {
        self.last_maintain = Instant::now();
        match self.ingest.store.maintain() {
            Ok((written, removed)) => {
                let m = &self.ingest.metrics;
                m.compactions.inc_by(written.files);
                m.parquet_files.inc_by(written.files);
                m.parquet_bytes.inc_by(written.bytes);
                m.retention_removed.inc_by(removed as u64);
            }
            Err(e) => tracing::error!(error = %e, "metrics history maintenance failed"),
        }
    }
}
