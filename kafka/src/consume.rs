//! The one consume loop every Drover consumer runs (the logpipe, the metrics store, and the
//! components that act on what they read).
//!
//! The loop owns the Kafka side: it waits for the topic and its partitions, assigns them
//! from where the component says to start, polls in bursts, logs read errors at most every
//! ten seconds, sets malformed messages aside on the dead-letter topic, and, every
//! `flush_interval` (or sooner when the component asks), makes the dead letters safe, asks
//! the component to make what it handled durable, and only then commits the offsets read so
//! far to the consumer group. The component supplies what only it knows ([`Handler`]):
//! where to start, how to handle one message, and how to make a batch durable — the shape of
//! Quickwit's `Source` and Vector's kafka source.
//!
//! A crash between the component's flush and the offset commit re-reads the batch: the
//! component either keeps its own position with the data (the logpipe's index payloads) or
//! skips what it already holds (the metrics store's series timestamps).
use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::{BorrowedMessage, OwnedMessage},
    producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext},
    ClientContext, Message, Offset, TopicPartitionList,
};

/// The dead-letter producer's context: a dead letter the broker refused (tansu answers the
/// requests in flight with an error when it stops gracefully) is kept and sent again before
/// the offsets past it are committed, so none is lost.
#[derive(Debug, Default)]
struct DeadLetters {
    failed: std::sync::Mutex<Vec<OwnedMessage>>,
}

impl ClientContext for DeadLetters {}

impl ProducerContext for DeadLetters {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, msg)) = result {
            tracing::warn!(error = %e, "a dead letter was refused; it is sent again before the commit");
            self.failed
                .lock()
                .expect("dead letters lock")
                .push(msg.detach());
        }
    }
}

/// Waits until every dead letter is acknowledged, sending refused ones again (three rounds at
/// most); an error means the commit must wait.
fn flush_dead_letters(producer: &BaseProducer<DeadLetters>) -> Result<(), KafkaError> {
    for _ in 0..3 {
        producer.flush(Duration::from_secs(10))?;
        let failed =
            std::mem::take(&mut *producer.context().failed.lock().expect("dead letters lock"));
        if failed.is_empty() {
            return Ok(());
        }
        for (i, m) in failed.iter().enumerate() {
            let mut rec = BaseRecord::to(m.topic()).payload(m.payload().unwrap_or_default());
            if let Some(k) = m.key() {
                rec = rec.key(k);
            }
            if let Some(h) = m.headers() {
                rec = rec.headers(h.clone());
            }
            if let Err((e, _)) = producer.send(rec) {
                // Keep this one and the rest for the next flush (the ones before it are
                // queued again); the commit waits.
                producer
                    .context()
                    .failed
                    .lock()
                    .expect("dead letters lock")
                    .extend(failed[i..].iter().cloned());
                return Err(e);
            }
        }
    }
    producer.flush(Duration::from_secs(10))?;
    if producer
        .context()
        .failed
        .lock()
        .expect("dead letters lock")
        .is_empty()
    {
        Ok(())
    } else {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::Fail))
    }
}

/// Settings of one consume loop.
#[derive(Debug, Clone)]
pub struct ConsumeConfig {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// The topic read.
    pub topic: String,
    /// The consumer group (offsets are committed there).
    pub group: String,
    /// `client.id` of the consumer; the dead-letter producer's is this plus `-deadletter`.
    pub client_id: String,
    /// Where malformed messages go.
    pub dead_letter_topic: String,
    /// Flush and commit at least this often.
    pub flush_interval: Duration,
    /// Messages handled in one go before the timers are looked at again.
    pub burst: usize,
    /// How the group offsets are committed: `Sync` when the commit is the acknowledgement,
    /// `Async` when the component keeps its own position and the group's is for lag only.
    pub commit_mode: CommitMode,
    /// Extra librdkafka consumer settings (e.g. `queued.max.messages.kbytes`).
    pub consumer_settings: Vec<(String, String)>,
}

impl ConsumeConfig {
    /// A loop reading `topic` in `group`: Drover's dead-letter topic, a flush every 5 s,
    /// bursts of 1,000, synchronous commits.
    pub fn new(brokers: &str, topic: &str, group: &str, client_id: &str) -> Self {
        Self {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            group: group.to_string(),
            client_id: client_id.to_string(),
            dead_letter_topic: drover_schema::topics::DEAD_LETTER.to_string(),
            flush_interval: Duration::from_secs(5),
            burst: 1000,
            commit_mode: CommitMode::Sync,
            consumer_settings: Vec::new(),
        }
    }
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The component took it (or chose to skip it).
    Handled,
    /// Malformed or invalid: set aside on the dead-letter topic with this reason (a stable
    /// word such as `invalid_json`) and detail.
    DeadLetter {
        /// Stable reason, the `drover-error` header.
        reason: String,
        /// What exactly is wrong, the `drover-detail` header.
        detail: String,
    },
}

/// What the loop tells the component when it asks for a flush.
#[derive(Debug)]
pub struct Flush<'a> {
    /// Per partition, the next offset to read: everything before it was handled.
    pub position: &'a BTreeMap<i32, i64>,
    /// Whether anything was read since the last completed flush.
    pub changed: bool,
    /// The last flush before the loop returns.
    pub last: bool,
}

/// Whether the component made its batch durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Durable: commit the offsets.
    Done,
    /// Nothing was there to make durable: no commit needed.
    Nothing,
    /// Not now (e.g. the disk is full): keep the offsets uncommitted and try again at the
    /// next flush.
    Later,
}

/// Where the loop is, for the component's periodic work.
#[derive(Clone, Copy)]
pub struct Reading<'a> {
    /// The consumer (e.g. for watermarks).
    pub consumer: &'a BaseConsumer,
    /// The topic read.
    pub topic: &'a str,
    /// Per partition, the next offset to read.
    pub position: &'a BTreeMap<i32, i64>,
}

impl std::fmt::Debug for Reading<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reading")
            .field("topic", &self.topic)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl Reading<'_> {
    /// The lag per partition: the high watermark minus the position (partitions whose
    /// watermark cannot be read within 500 ms are left out).
    pub fn lag(&self) -> Vec<(i32, i64)> {
        self.position
            .iter()
            .filter_map(|(p, pos)| {
                self.consumer
                    .fetch_watermarks(self.topic, *p, Duration::from_millis(500))
                    .ok()
                    .map(|(_, high)| (*p, (high - pos).max(0)))
            })
            .collect()
    }
}

/// What a component supplies to the loop.
pub trait Handler {
    /// The component's error; Kafka client errors convert into it.
    type Error: From<KafkaError>;

    /// Where to start each of the topic's partitions (`Offset::Stored` for the group's
    /// committed offset, `Offset::Offset(n)` for a position the component keeps itself).
    fn start(&mut self, partitions: &[i32]) -> Result<Vec<(i32, Offset)>, Self::Error>;

    /// Called before each burst of messages (read a clock once for the burst, run periodic
    /// work such as a lag check). Returning true asks for a flush now.
    fn before_burst(&mut self, _reading: Reading<'_>) -> Result<bool, Self::Error> {
        Ok(false)
    }

    /// Handle one message.
    fn handle(&mut self, msg: &BorrowedMessage<'_>) -> Result<Outcome, Self::Error>;

    /// Whether enough waits to flush before the interval is up.
    fn wants_flush(&self) -> bool {
        false
    }

    /// Make everything handled so far durable.
    fn flush(&mut self, flush: Flush<'_>) -> Result<Flushed, Self::Error>;

    /// After the offsets of a [`Flushed::Done`] batch were committed (or the commit failed:
    /// `committed` says which).
    fn after_commit(&mut self, _committed: bool) {}

    /// Reading, committing or setting aside failed (counted by the component; the loop logs).
    fn kafka_error(&mut self) {}
}

/// Runs `handler` on `cfg.topic` until `stop` is set, then flushes and commits what it has.
/// Blocking: run it on its own thread. Kafka being away (or the topic missing) is waited
/// out, not an error; only the handler's errors end the loop.
pub fn run<H: Handler>(
    cfg: &ConsumeConfig,
    handler: &mut H,
    stop: &AtomicBool,
) -> Result<(), H::Error> {
    let mut cc = crate::config::consumer(&cfg.brokers, &cfg.client_id, &cfg.group);
    for (k, v) in &cfg.consumer_settings {
        cc.set(k, v);
    }
    let consumer: BaseConsumer = cc.create()?;
    // Polled from the loop: an idle ThreadedProducer's poll thread costs a few percent of a
    // core for nothing.
    // Not idempotent: a broker restarted after a graceful stop refuses an idempotent producer
    // it knew, and a refused dead letter is sent again (at least once, as documented).
    let dead_letters: BaseProducer<DeadLetters> =
        crate::config::producer(&cfg.brokers, &format!("{}-deadletter", cfg.client_id))
            .set("enable.idempotence", "false")
            .create_with_context(DeadLetters::default())?;
    let Some(partitions) =
        crate::admin::wait_for_partitions(&consumer, &cfg.topic, stop, || handler.kafka_error())
    else {
        return Ok(()); // stopped before the topic appeared
    };
    let starts = handler.start(&partitions)?;
    let mut tpl = TopicPartitionList::new();
    let mut position = BTreeMap::new();
    for (p, offset) in starts {
        if let Offset::Offset(n) = offset {
            position.insert(p, n);
        }
        tpl.add_partition_offset(&cfg.topic, p, offset)?;
    }
    consumer.assign(&tpl)?;
    tracing::info!(
        topic = %cfg.topic,
        group = %cfg.group,
        partitions = partitions.len(),
        "consuming"
    );
    let mut l = Loop {
        cfg,
        dead_letters,
        committed: position.clone(),
        position,
        last_flush: Instant::now(),
        last_error_log: None,
    };
    let result = l.main(&consumer, handler, stop);
    let end = l.flush(&consumer, handler, true);
    result.and(end)
}

struct Loop<'a> {
    cfg: &'a ConsumeConfig,
    dead_letters: BaseProducer<DeadLetters>,
    /// Next offset to read per partition.
    position: BTreeMap<i32, i64>,
    /// Position at the last completed flush.
    committed: BTreeMap<i32, i64>,
    last_flush: Instant,
    last_error_log: Option<Instant>,
}

impl Loop<'_> {
    fn main<H: Handler>(
        &mut self,
        consumer: &BaseConsumer,
        handler: &mut H,
        stop: &AtomicBool,
    ) -> Result<(), H::Error> {
        while !stop.load(Ordering::Relaxed) {
            let mut flush_now = handler.before_burst(Reading {
                consumer,
                topic: &self.cfg.topic,
                position: &self.position,
            })?;
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(msg)) => {
                    self.one(handler, &msg)?;
                    // What is already fetched is handled in a burst before the timers are
                    // looked at again.
                    let mut burst = 1;
                    while burst < self.cfg.burst && !handler.wants_flush() {
                        match consumer.poll(Duration::ZERO) {
                            Some(Ok(msg)) => self.one(handler, &msg)?,
                            Some(Err(e)) => {
                                self.read_error(handler, &e);
                                break;
                            }
                            None => break,
                        }
                        burst += 1;
                    }
                    self.dead_letters.poll(Duration::ZERO);
                }
                Some(Err(e)) => self.read_error(handler, &e),
            }
            flush_now |= handler.wants_flush();
            if flush_now || self.last_flush.elapsed() >= self.cfg.flush_interval {
                self.flush(consumer, handler, false)?;
            }
        }
        Ok(())
    }

    fn one<H: Handler>(
        &mut self,
        handler: &mut H,
        msg: &BorrowedMessage<'_>,
    ) -> Result<(), H::Error> {
        let cfg = self.cfg;
        self.position.insert(msg.partition(), msg.offset() + 1);
        if let Outcome::DeadLetter { reason, detail } = handler.handle(msg)? {
            tracing::warn!(
                topic = %cfg.topic,
                partition = msg.partition(),
                offset = msg.offset(),
                reason = %reason,
                detail = %detail,
                "malformed message: sent to the dead-letter topic"
            );
            if let Err((e, _)) = self.dead_letters.send(crate::deadletter::record(
                &cfg.dead_letter_topic,
                msg,
                &reason,
                &detail,
            )) {
                // The queue is full or the message too large: it still is not handled; the
                // component's count and this log say so.
                handler.kafka_error();
                tracing::error!(error = %e, partition = msg.partition(), offset = msg.offset(), "cannot queue the dead letter");
            }
        }
        Ok(())
    }

    fn read_error<H: Handler>(&mut self, handler: &mut H, e: &KafkaError) {
        handler.kafka_error();
        if self
            .last_error_log
            .is_none_or(|t| t.elapsed() > Duration::from_secs(10))
        {
            tracing::warn!(topic = %self.cfg.topic, error = %e, "reading the topic failed; retrying");
            self.last_error_log = Some(Instant::now());
        }
    }

    /// Dead letters first (they must be safe before their offsets count as done), then the
    /// component's flush, then the offset commit.
    fn flush<H: Handler>(
        &mut self,
        consumer: &BaseConsumer,
        handler: &mut H,
        last: bool,
    ) -> Result<(), H::Error> {
        self.last_flush = Instant::now();
        let changed = self.position != self.committed;
        if changed {
            if let Err(e) = flush_dead_letters(&self.dead_letters) {
                handler.kafka_error();
                tracing::warn!(error = %e, "dead letters not yet delivered; the commit waits");
                return Ok(());
            }
        }
        let flushed = handler.flush(Flush {
            position: &self.position,
            changed,
            last,
        })?;
        if flushed == Flushed::Later {
            return Ok(());
        }
        if !changed {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &self.position {
            tpl.add_partition_offset(&self.cfg.topic, *p, Offset::Offset(*o))?;
        }
        let committed = match consumer.commit(&tpl, self.cfg.commit_mode) {
            Ok(()) => true,
            Err(e) => {
                handler.kafka_error();
                tracing::warn!(topic = %self.cfg.topic, error = %e, "cannot commit the offsets; will retry");
                false
            }
        };
        if committed || matches!(self.cfg.commit_mode, CommitMode::Async) {
            self.committed = self.position.clone();
        }
        handler.after_commit(committed);
        Ok(())
    }
}
