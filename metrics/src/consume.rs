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
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use drover_schema::{MetricRecord, SchemaError};
use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer},
    message::BorrowedMessage,
    producer::{DefaultProducerContext, Producer, ThreadedProducer},
    Message, Offset, TopicPartitionList,
};

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
        let Some(mut state) = State::start(&self, &stop)? else {
            return Ok(());
        };
        while !stop.load(Ordering::Relaxed) {
            let consumer = Arc::clone(&state.consumer);
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(msg)) => state.handle(&self, &msg),
                Some(Err(e)) => {
                    self.metrics.kafka_errors.inc();
                    if state
                        .last_error_log
                        .is_none_or(|t| t.elapsed() > Duration::from_secs(10))
                    {
                        tracing::warn!(error = %e, "reading the metrics topic failed; retrying");
                        state.last_error_log = Some(Instant::now());
                    }
                }
            }
            if self.store.pending() >= self.cfg.flush_samples
                || state.last_flush.elapsed() >= self.cfg.flush_interval
            {
                state.flush(&self);
            }
            if state.last_maintain.elapsed() >= self.cfg.maintain_interval {
                state.maintain(&self);
            }
        }
        state.flush(&self);
        Ok(())
    }
}

struct State {
    consumer: Arc<BaseConsumer>,
    dead_letters: ThreadedProducer<DefaultProducerContext>,
    /// Next offset to read per partition.
    position: BTreeMap<i32, i64>,
    /// Position at the last commit.
    committed: BTreeMap<i32, i64>,
    last_flush: Instant,
    last_maintain: Instant,
    last_error_log: Option<Instant>,
}

impl State {
    fn start(ingest: &Ingest, stop: &AtomicBool) -> Result<Option<State>, MetricsError> {
        let cfg = &ingest.cfg;
        let consumer: BaseConsumer =
            drover_kafka::config::consumer(&cfg.brokers, "drover-metrics-store", &cfg.group)
                .create()?;
        let dead_letters: ThreadedProducer<DefaultProducerContext> =
            drover_kafka::config::producer(&cfg.brokers, "drover-metrics-store-deadletter")
                .create()?;
        let Some(partitions) =
            drover_kafka::admin::wait_for_partitions(&consumer, &cfg.topic, stop, || {
                ingest.metrics.kafka_errors.inc();
            })
        else {
            return Ok(None); // stopped before the topic appeared
        };
        // Every partition, from the group's committed offsets (the acknowledged position).
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition_offset(&cfg.topic, *p, Offset::Stored)?;
        }
        consumer.assign(&tpl)?;
        tracing::info!(
            topic = %cfg.topic,
            group = %cfg.group,
            partitions = partitions.len(),
            "metrics store consuming"
        );
        Ok(Some(State {
            consumer: Arc::new(consumer),
            dead_letters,
            position: BTreeMap::new(),
            committed: BTreeMap::new(),
            last_flush: Instant::now(),
            last_maintain: Instant::now(),
            last_error_log: None,
        }))
    }

    fn handle(&mut self, ingest: &Ingest, msg: &BorrowedMessage<'_>) {
        ingest.metrics.records.inc();
        self.position.insert(msg.partition(), msg.offset() + 1);
        let payload = msg.payload().unwrap_or_default();
        let rec: MetricRecord = match drover_schema::decode(payload) {
            Ok(r) => r,
            Err(e) => {
                let reason = match &e {
                    SchemaError::Json(_) => classify_undecodable(payload).unwrap_or(e.reason()),
                    _ => e.reason(),
                };
                self.dead_letter(ingest, msg, reason, &e.to_string());
                return;
            }
        };
        let samples = match flatten(&rec) {
            Ok(s) => s,
            Err(invalid) => {
                self.dead_letter(ingest, msg, invalid.reason(), &invalid.to_string());
                return;
            }
        };
        let added = ingest.store.add(&samples);
        ingest.metrics.samples.inc_by(added.added);
        ingest.metrics.duplicates.inc_by(added.duplicates);
        ingest.metrics.pending.set(ingest.store.pending() as i64);
    }

    fn dead_letter(
        &mut self,
        ingest: &Ingest,
        msg: &BorrowedMessage<'_>,
        reason: &str,
        detail: &str,
    ) {
        ingest
            .metrics
            .dropped
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
        tracing::warn!(
            partition = msg.partition(),
            offset = msg.offset(),
            reason,
            detail,
            "bad metrics sample dropped: sent to the dead-letter topic"
        );
        if let Err(e) = drover_kafka::deadletter::send(
            &self.dead_letters,
            &ingest.cfg.dead_letter_topic,
            msg,
            reason,
            detail,
        ) {
            // The queue is full or the message too large: it still is not stored; the count
            // above and this log say so.
            tracing::error!(error = %e, partition = msg.partition(), offset = msg.offset(), "cannot queue the dead letter");
        }
    }

    /// Writes pending samples to Parquet, then commits the offsets read so far.
    fn flush(&mut self, ingest: &Ingest) {
        self.last_flush = Instant::now();
        let m = &ingest.metrics;
        if self.position == self.committed && ingest.store.pending() == 0 {
            return;
        }
        let started = Instant::now();
        if let Err(e) = self.dead_letters.flush(Duration::from_secs(10)) {
            m.kafka_errors.inc();
            tracing::warn!(error = %e, "dead letters not yet delivered; the commit waits");
            return;
        }
        match ingest.store.flush() {
            Ok(w) => {
                m.parquet_files.inc_by(w.files);
                m.parquet_bytes.inc_by(w.bytes);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot write the metrics history; retrying, offsets not committed");
                return;
            }
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &self.position {
            let _ = tpl.add_partition_offset(&ingest.cfg.topic, *p, Offset::Offset(*o));
        }
        if tpl.count() > 0 {
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Sync) {
                // The samples are on disk; a replay of them is deduplicated.
                m.kafka_errors.inc();
                tracing::warn!(error = %e, "cannot commit the metrics offsets; will retry");
                return;
            }
        }
        self.committed = self.position.clone();
        m.flush_seconds.observe(started.elapsed().as_secs_f64());
        let w = ingest.store.window();
        m.series.set(w.series_count() as i64);
        m.window_samples.set(w.len() as i64);
        drop(w);
        m.pending.set(ingest.store.pending() as i64);
        tracing::debug!(
            took_ms = started.elapsed().as_millis() as u64,
            "metrics flushed"
        );
    }

    fn maintain(&mut self, ingest: &Ingest) {
        self.last_maintain = Instant::now();
        match ingest.store.maintain() {
            Ok((written, removed)) => {
                let m = &ingest.metrics;
                m.compactions.inc_by(written.files);
                m.parquet_files.inc_by(written.files);
                m.parquet_bytes.inc_by(written.bytes);
                m.retention_removed.inc_by(removed as u64);
            }
            Err(e) => tracing::error!(error = %e, "metrics history maintenance failed"),
        }
    }
}
