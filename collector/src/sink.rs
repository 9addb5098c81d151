//! The Kafka side: one idempotent producer for logs and stats; delivery acknowledgements
//! advance the checkpoints; a bounded producer queue pushes back on the followers when the
//! broker is slow or down, so memory stays bounded and nothing is dropped.
use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use drover_schema::{LogRecord, MetricRecord, Stream};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    error::{KafkaError, RDKafkaErrorCode},
    producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer},
    ClientContext, Message, Offset, TopicPartitionList,
};

use crate::{
    checkpoint::{nanos, CheckpointError, Checkpoints, ContainerPos, StreamPos},
    metrics::CollectorMetrics,
};

/// What a delivery report is about.
#[derive(Debug)]
pub enum Ack {
    /// A log record: advance the container's position when it is acknowledged.
    Log {
        /// Container ID.
        container: Arc<str>,
        /// Container name (metrics label).
        name: Arc<str>,
        /// Which stream.
        stream: Stream,
        /// Position after this record.
        pos: StreamPos,
        /// Its sequence number.
        seq: u64,
        /// Its size, for the bytes counter.
        bytes: usize,
    },
    /// A stats sample.
    Metric,
}

#[derive(Debug, Default)]
struct AckState {
    checkpoints: Checkpoints,
    dirty: bool,
    pending: HashMap<Arc<str>, u64>,
    /// Containers with a record Kafka refused for good: the lowest refused sequence
    /// number, and the later ones Kafka did take (not to be sent again).
    failures: HashMap<Arc<str>, (u64, std::collections::BTreeSet<u64>)>,
}

/// Producer context: turns delivery reports into checkpoint positions and metrics.
#[derive(Debug)]
pub struct AckContext {
    state: Arc<Mutex<AckState>>,
    metrics: CollectorMetrics,
}

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<Ack>;

    fn delivery(&self, result: &DeliveryResult<'_>, ack: Box<Ack>) {
        match (*ack, result) {
            (
                Ack::Log {
                    container,
                    name,
                    stream,
                    pos,
                    seq,
                    bytes,
                },
                Ok(msg),
            ) => {
                let mut st = self.state.lock().expect("ack state lock");
                if let Some(p) = st.pending.get_mut(&container) {
                    *p = p.saturating_sub(1);
                }
                if let Some((lowest, taken)) = st.failures.get_mut(&container) {
                    if seq > *lowest {
                        // After a refused record: remember it, but do not move the
                        // position past the gap (the follower rewinds to fill it).
                        taken.insert(seq);
                        return;
                    }
                }
                st.checkpoints
                    .containers
                    .entry(container.to_string())
                    .or_default()
                    .advance(stream, pos, seq);
                let off = st
                    .checkpoints
                    .partitions
                    .entry(msg.partition())
                    .or_insert(-1);
                *off = (*off).max(msg.offset());
                st.dirty = true;
                drop(st);
                self.metrics.lines.inc();
                self.metrics.bytes.inc_by(bytes as u64);
                self.metrics.delivered(&name, pos.ts);
            }
            (Ack::Log { container, seq, .. }, Err((e, _))) => {
                // With message.timeout.ms=0 librdkafka retries transient errors for ever;
                // a permanent error lands here (tansu answers in-flight requests with an
                // unknown error while it shuts down). The follower re-reads from the last
                // delivered line and sends it again.
                let mut st = self.state.lock().expect("ack state lock");
                if let Some(p) = st.pending.get_mut(&container) {
                    *p = p.saturating_sub(1);
                }
                let failure = st
                    .failures
                    .entry(container.clone())
                    .or_insert((seq, Default::default()));
                failure.0 = failure.0.min(seq);
                failure.1.retain(|s| *s < failure.0);
                drop(st);
                self.metrics.errors("kafka_delivery").inc();
                tracing::warn!(container = %container, seq, error = %e, "kafka refused a log record; it will be sent again");
            }
            (Ack::Metric, Ok(_)) => {
                self.metrics.stats_samples.inc();
            }
            (Ack::Metric, Err((e, _))) => {
                self.metrics.errors("kafka_stats").inc();
                tracing::warn!(error = %e, "stats sample not delivered");
            }
        }
    }
}

/// The producer and the checkpoint state it advances.
pub struct Sink {
    producer: std::sync::RwLock<Arc<ThreadedProducer<AckContext>>>,
    config: rdkafka::ClientConfig,
    state: Arc<Mutex<AckState>>,
    logs_topic: String,
    metrics_topic: String,
    checkpoint_path: PathBuf,
    metrics: CollectorMetrics,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("logs_topic", &self.logs_topic)
            .finish_non_exhaustive()
    }
}

/// The largest encoded log record sent: under librdkafka's default `message.max.bytes`
/// (1,000,000), which refuses a larger one for good.
const MAX_RECORD_BYTES: usize = 900_000;

/// The record with its line cut (at a character boundary) so that it encodes under
/// [`MAX_RECORD_BYTES`], and a note of how much was cut.
fn truncated(rec: &LogRecord) -> Vec<u8> {
    let mut keep = rec.line.len();
    loop {
        keep /= 2;
        while !rec.line.is_char_boundary(keep) {
            keep -= 1;
        }
        let mut short = rec.clone();
        short.line = format!(
            "{} …[truncated by drover: {} of {} bytes cut]",
            &rec.line[..keep],
            rec.line.len() - keep,
            rec.line.len()
        );
        let payload = drover_schema::encode(&short);
        if payload.len() <= MAX_RECORD_BYTES || keep == 0 {
            return payload;
        }
    }
}

/// How long a stats sample waits for room in a queue that log lines keep full.
const METRIC_QUEUE_WAIT: Duration = Duration::from_secs(1);

/// Settings of the sink.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Bootstrap servers.
    pub brokers: String,
    /// Topic for log records.
    pub logs_topic: String,
    /// Topic for stats samples.
    pub metrics_topic: String,
    /// The checkpoint file.
    pub checkpoint_path: PathBuf,
    /// Bound on the producer queue (KiB): what is buffered while the broker is down.
    pub queue_kbytes: u32,
}

impl Sink {
    /// Create the producer, starting from recovered checkpoints.
    pub fn new(
        cfg: &SinkConfig,
        checkpoints: Checkpoints,
        metrics: CollectorMetrics,
    ) -> Result<Self, KafkaError> {
        let state = Arc::new(Mutex::new(AckState {
            checkpoints,
            dirty: true,
            pending: HashMap::new(),
            failures: HashMap::new(),
        }));
        let mut config = drover_kafka::config::producer(&cfg.brokers, "drover-collector");
        config
            // Never give up on a record: while the broker is down, the queue fills, the
            // followers wait, and Docker keeps the lines.
            .set("message.timeout.ms", "0")
            .set("queue.buffering.max.kbytes", cfg.queue_kbytes.to_string())
            .set("queue.buffering.max.messages", "100000")
            .set("linger.ms", "20")
            .set("batch.num.messages", "10000");
        let producer = config.create_with_context(AckContext {
            state: state.clone(),
            metrics: metrics.clone(),
        })?;
        Ok(Self {
            producer: std::sync::RwLock::new(Arc::new(producer)),
            config,
            state,
            logs_topic: cfg.logs_topic.clone(),
            metrics_topic: cfg.metrics_topic.clone(),
            checkpoint_path: cfg.checkpoint_path.clone(),
            metrics,
        })
    }

    fn producer(&self) -> Arc<ThreadedProducer<AckContext>> {
        self.producer.read().expect("producer lock").clone()
    }

    /// Replace the producer when librdkafka declared it unusable (a fatal idempotence
    /// error), or when `force`d: tansu 0.6, restarted after a graceful stop, refuses every
    /// record of an idempotent producer it knew before, and only a new producer (a new
    /// producer ID) gets through. The old producer's undelivered records fail back to their
    /// followers, which re-read them. Returns whether it was replaced.
    pub fn renew(&self, force: bool) -> bool {
        let current = self.producer();
        let fatal = current.client().fatal_error();
        if fatal.is_none() && !force {
            return false;
        }
        let mut slot = self.producer.write().expect("producer lock");
        if !Arc::ptr_eq(&slot, &current) {
            return true; // someone else renewed it
        }
        let context = AckContext {
            state: self.state.clone(),
            metrics: self.metrics.clone(),
        };
        match self.config.create_with_context(context) {
            Ok(p) => {
                let old = std::mem::replace(&mut *slot, Arc::new(p));
                drop(slot);
                self.metrics.errors("kafka_producer_renewed").inc();
                tracing::warn!(fatal = ?fatal, "replaced the kafka producer");
                // Dropping purges its queue (delivery errors go back to the followers);
                // do it off the caller's thread.
                std::thread::spawn(move || drop(old));
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot create a new kafka producer");
                false
            }
        }
    }

    /// The delivered position of a container (what to resume from).
    pub fn position(&self, container: &str) -> ContainerPos {
        let st = self.state.lock().expect("ack state lock");
        st.checkpoints
            .containers
            .get(container)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether the container was seen before (has a checkpoint).
    pub fn knows(&self, container: &str) -> bool {
        let st = self.state.lock().expect("ack state lock");
        st.checkpoints.containers.contains_key(container)
    }

    /// When the checkpoints were last saved by the previous run (Unix seconds).
    pub fn saved_at(&self) -> i64 {
        self.state
            .lock()
            .expect("ack state lock")
            .checkpoints
            .saved_at
    }

    /// Whether Kafka refused a record of this container that was not sent again yet.
    pub fn failed(&self, container: &str) -> bool {
        let st = self.state.lock().expect("ack state lock");
        st.failures.contains_key(container)
    }

    /// Clear a container's failure, returning the sequence numbers after the refused one
    /// that Kafka took (the re-read must not send them again).
    pub fn take_failure(&self, container: &str) -> std::collections::BTreeSet<u64> {
        let mut st = self.state.lock().expect("ack state lock");
        st.failures
            .remove(container)
            .map(|(_, taken)| taken)
            .unwrap_or_default()
    }

    /// Advance a container's position for a record Kafka already holds.
    pub fn mark_delivered(&self, container: &str, stream: Stream, pos: StreamPos, seq: u64) {
        let mut st = self.state.lock().expect("ack state lock");
        st.checkpoints
            .containers
            .entry(container.to_string())
            .or_default()
            .advance(stream, pos, seq);
        st.dirty = true;
    }

    /// Records sent for this container and not yet acknowledged.
    pub fn pending(&self, container: &str) -> u64 {
        let st = self.state.lock().expect("ack state lock");
        st.pending.get(container).copied().unwrap_or(0)
    }

    /// Send one log record, waiting while the producer queue is full (back-pressure).
    pub async fn send_log(
        &self,
        rec: &LogRecord,
        name: &Arc<str>,
        container: &Arc<str>,
        pos: StreamPos,
    ) {
        let mut payload = drover_schema::encode(rec);
        if payload.len() > MAX_RECORD_BYTES {
            // Only a line JSON escaping blows up (quotes, control characters) gets here: the
            // followers cut lines at `max_line_bytes`. Kafka would refuse it for good.
            payload = truncated(rec);
            self.metrics.errors("line_truncated").inc();
            tracing::warn!(container = %name, seq = rec.seq, bytes = rec.line.len(), "a line too large for one Kafka message once encoded was truncated");
        }
        let mut ack = Box::new(Ack::Log {
            container: container.clone(),
            name: name.clone(),
            stream: rec.stream,
            pos,
            seq: rec.seq,
            bytes: rec.line.len(),
        });
        {
            let mut st = self.state.lock().expect("ack state lock");
            *st.pending.entry(container.clone()).or_default() += 1;
        }
        let mut waited = false;
        loop {
            let record = BaseRecord::with_opaque_to(&self.logs_topic, ack)
                .key(container.as_bytes())
                .payload(&payload);
            match self.producer().send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    if !waited {
                        self.metrics.backpressure.inc();
                        waited = true;
                    }
                    ack = r.delivery_opaque;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, r)) => {
                    // Not retriable (e.g. unknown topic while the broker is misconfigured):
                    // wait and retry rather than lose the line.
                    self.metrics.errors("kafka_send").inc();
                    tracing::warn!(error = %e, "cannot queue a log record; retrying in 1s");
                    ack = r.delivery_opaque;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Send a stats sample (keyed by app). While log lines keep the (small) queue full, the
    /// sample waits for room for up to [`METRIC_QUEUE_WAIT`]; after that, or on any other
    /// error, it is dropped and counted: stats are periodic and the next one supersedes it.
    /// Log lines are never dropped.
    pub async fn send_metric(&self, rec: &MetricRecord) {
        let payload = drover_schema::encode(rec);
        let deadline = std::time::Instant::now() + METRIC_QUEUE_WAIT;
        loop {
            let record = BaseRecord::with_opaque_to(&self.metrics_topic, Box::new(Ack::Metric))
                .key(rec.app().as_bytes())
                .payload(&payload);
            match self.producer().send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                    if std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, _)) => {
                    self.metrics.errors("kafka_stats").inc();
                    tracing::debug!(error = %e, "stats sample not queued");
                    return;
                }
            }
        }
    }

    /// Save the checkpoints if anything was acknowledged since the last save.
    pub fn save_checkpoints(&self) -> Result<(), CheckpointError> {
        let snapshot = {
            let mut st = self.state.lock().expect("ack state lock");
            if !st.dirty {
                return Ok(());
            }
            st.dirty = false;
            st.checkpoints.saved_at = chrono::Utc::now().timestamp();
            st.checkpoints.clone()
        };
        snapshot.save(&self.checkpoint_path)
    }

    /// Wait (at most `timeout`) for queued records to be acknowledged, then save.
    pub fn flush(&self, timeout: Duration) {
        let producer = self.producer();
        if let Err(e) = producer.flush(timeout) {
            tracing::warn!(error = %e, in_flight = producer.in_flight_count(), "not every record was acknowledged before shutdown; they will be re-read from Docker at the next start");
        }
        if let Err(e) = self.save_checkpoints() {
            tracing::error!(error = %e, "cannot save checkpoints");
        }
    }

    /// Forget a destroyed container.
    pub fn forget(&self, container: &str) {
        let mut st = self.state.lock().expect("ack state lock");
        st.checkpoints.containers.remove(container);
        st.pending.remove(container);
        st.dirty = true;
    }
}

/// Bring saved checkpoints up to date with the logs topic: records acknowledged after the
/// last save (before a crash) are read back from the saved offsets so that they are not
/// sent again. On a first start, note the partitions' current ends. Only records of this
/// host's containers are applied.
pub fn recover(
    brokers: &str,
    topic: &str,
    host: &str,
    saved: Option<Checkpoints>,
    timeout: Duration,
) -> Result<Checkpoints, KafkaError> {
    let consumer: BaseConsumer = drover_kafka::config::consumer(
        brokers,
        "drover-collector-recover",
        "drover-collector-recover",
    )
    .create()?;
    let md = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(KafkaError::MetadataFetch(
            RDKafkaErrorCode::UnknownTopicOrPartition,
        ));
    }
    let mut highs = HashMap::new();
    for &p in &partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, timeout)?;
        highs.insert(p, high);
    }
    let Some(mut cp) = saved else {
        let mut cp = Checkpoints::default();
        for (p, high) in highs {
            cp.partitions.insert(p, high - 1);
        }
        return Ok(cp);
    };
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0;
    for &p in &partitions {
        let from = cp.partitions.get(&p).map_or(0, |o| o + 1);
        if from < highs[&p] {
            tpl.add_partition_offset(topic, p, Offset::Offset(from))?;
            remaining += 1;
        }
    }
    if remaining > 0 {
        consumer.assign(&tpl)?;
        drop(tpl);
        let deadline = std::time::Instant::now() + timeout * 4;
        let mut done: HashMap<i32, bool> = HashMap::new();
        while done.len() < remaining && std::time::Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    let p = m.partition();
                    if m.offset() + 1 >= highs[&p] {
                        done.insert(p, true);
                    }
                    let off = cp.partitions.entry(p).or_insert(-1);
                    *off = (*off).max(m.offset());
                    if let Some(Ok(rec)) = m.payload().map(drover_schema::decode::<LogRecord>) {
                        if rec.source.host == host {
                            cp.apply_record(&rec);
                        }
                    }
                }
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        if done.len() < remaining {
            return Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::OperationTimedOut,
            ));
        }
    }
    Ok(cp)
}

/// Nanoseconds since the epoch, now.
pub fn now_nanos() -> i64 {
    nanos(chrono::Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_that_escapes_past_the_limit_is_cut_to_fit() {
        let rec = LogRecord {
            v: 1,
            ts: chrono::Utc::now(),
            end_ts: None,
            source: drover_schema::Source::default(),
            stream: Stream::Stdout,
            seq: 3,
            line: "\"".repeat(512 * 1024),
        };
        assert!(drover_schema::encode(&rec).len() > MAX_RECORD_BYTES);
        let payload = truncated(&rec);
        assert!(payload.len() <= MAX_RECORD_BYTES);
        let back: LogRecord = drover_schema::decode(&payload).unwrap();
        assert_eq!(back.seq, 3);
        assert!(back.line.starts_with("\"\"\""));
        assert!(
            back.line
                .ends_with("…[truncated by drover: 262144 of 524288 bytes cut]"),
            "{}",
            &back.line[back.line.len() - 80..]
        );
    }
}
