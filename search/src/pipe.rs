//! The logpipe: reads `drover.logs.v1`, parses and filters each line, indexes it into the day's
//! partition, and commits every few seconds with the Kafka offsets in the commit payload.
//!
//! Exactly once: each partition's commit payload holds the offsets consumed when it committed
//! (all partitions with new documents commit in one round, with the same offsets), and
//! `checkpoint.json` records the round's offsets once every partition has committed. On start the
//! pipe resumes from `checkpoint.json` (or the lowest payload) and skips any message whose
//! partition's payload already covers it — so a crash between two partitions' commits neither
//! loses nor repeats a line.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, NaiveDate, Utc};
use drover_schema::LogRecord;
use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer},
    message::BorrowedMessage,
    producer::{BaseProducer, DefaultProducerContext, Producer},
    Message, Offset, TopicPartitionList,
};
use serde_json::{Map, Value};
use tantivy::{IndexWriter, TantivyDocument};

use crate::{
    checkpoint::Checkpoint,
    index::{indexed_fields, uid, LogFields},
    metrics::{LogpipeMetrics, PartitionLabels, ReasonLabels},
    parse::parse_line,
    rules::{Rules, Subject},
    store::LogStore,
    SearchError,
};

/// A clock, injectable for tests (retention).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Settings of a logpipe.
#[derive(Clone)]
pub struct LogpipeConfig {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// The logs topic.
    pub topic: String,
    /// Where malformed messages go.
    pub dead_letter_topic: String,
    /// Consumer group (offsets are also committed there, for lag monitoring; the index is the
    /// truth).
    pub group: String,
    /// Commit at least this often (a line is searchable within about this long).
    pub commit_interval: Duration,
    /// …or after this many documents.
    pub commit_docs: usize,
    /// Indexing threads per open partition writer.
    pub writer_threads: usize,
    /// Memory budget per open partition writer, bytes (Tantivy's minimum is 15 MB per thread).
    pub writer_heap_bytes: usize,
    /// Drop partitions older than this (None: keep forever).
    pub retention: Option<Duration>,
    /// Filter and routing rules.
    pub rules: Arc<Rules>,
    /// The clock.
    pub clock: Clock,
}

impl std::fmt::Debug for LogpipeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogpipeConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("group", &self.group)
            .field("commit_interval", &self.commit_interval)
            .field("commit_docs", &self.commit_docs)
            .field("retention", &self.retention)
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl LogpipeConfig {
    /// Defaults for these brokers: Drover's topics, commit every 2 s or 100,000 lines, one
    /// indexing thread with 64 MB, 7 days of retention, no rules.
    pub fn new(brokers: &str) -> Self {
        Self {
            brokers: brokers.to_string(),
            topic: drover_schema::topics::LOGS.to_string(),
            dead_letter_topic: drover_schema::topics::DEAD_LETTER.to_string(),
            group: "drover-logpipe".into(),
            commit_interval: Duration::from_secs(2),
            commit_docs: 100_000,
            writer_threads: 1,
            writer_heap_bytes: 64 << 20,
            retention: Some(Duration::from_secs(7 * 86_400)),
            rules: Arc::new(Rules::none()),
            clock: Arc::new(Utc::now),
        }
    }
}

/// A running logpipe's inputs.
#[derive(Debug)]
pub struct Logpipe {
    cfg: LogpipeConfig,
    store: Arc<LogStore>,
    metrics: LogpipeMetrics,
}

struct Writer {
    writer: IndexWriter<TantivyDocument>,
    dirty: bool,
    last_used: Instant,
}

const RETENTION_CHECK: Duration = Duration::from_secs(600);
const LAG_CHECK: Duration = Duration::from_secs(10);
const WRITER_IDLE: Duration = Duration::from_secs(120);
/// Messages handled in one go before the commit, retention and lag timers are looked at.
const BURST: usize = 1000;

impl Logpipe {
    /// A logpipe writing into `store`.
    pub fn new(cfg: LogpipeConfig, store: Arc<LogStore>, metrics: LogpipeMetrics) -> Self {
        Self {
            cfg,
            store,
            metrics,
        }
    }

    /// Runs until `stop` is set (then commits what it has and returns). Blocking: run it on
    /// its own thread. Kafka being down is waited out, not an error.
    pub fn run(self, stop: Arc<AtomicBool>) -> Result<(), SearchError> {
        let mut state = State::start(&self, &stop)?;
        let Some(state_ref) = state.as_mut() else {
            return Ok(()); // stopped before the topic appeared
        };
        let result = state_ref.main_loop(&self, &stop);
        let end = state_ref.commit_round(&self, true);
        result.and(end)
    }
}

struct State {
    consumer: Arc<BaseConsumer>,
    /// Polled from the main loop (no thread of its own: an idle ThreadedProducer's poll
    /// thread was a few percent of the logpipe's CPU).
    dead_letters: BaseProducer<DefaultProducerContext>,
    /// Next offset to read per Kafka partition.
    position: BTreeMap<i32, i64>,
    /// Position at the last completed commit round.
    committed: BTreeMap<i32, i64>,
    /// Each index partition's committed checkpoint (for skipping on replay).
    part_cps: HashMap<NaiveDate, Checkpoint>,
    writers: HashMap<NaiveDate, Writer>,
    pending: usize,
    last_commit: Instant,
    last_retention: Option<Instant>,
    last_lag: Instant,
    last_error_log: Option<Instant>,
    /// Lines of days before this one are older than the retention and not indexed.
    retention_cutoff: Option<NaiveDate>,
}

impl State {
    fn start(pipe: &Logpipe, stop: &AtomicBool) -> Result<Option<State>, SearchError> {
        let cfg = &pipe.cfg;
        let mut cc = drover_kafka::config::consumer(&cfg.brokers, "drover-logpipe", &cfg.group);
        cc.set("queued.max.messages.kbytes", "16384");
        let consumer: BaseConsumer = cc.create()?;
        let dead_letters: BaseProducer<DefaultProducerContext> =
            drover_kafka::config::producer(&cfg.brokers, "drover-logpipe-deadletter").create()?;

        // Wait for the topic (the broker may be starting, or down).
        let Some(partitions) =
            drover_kafka::admin::wait_for_partitions(&consumer, &cfg.topic, stop, || {
                pipe.metrics.kafka_errors.inc();
            })
        else {
            return Ok(None); // stopped before the topic appeared
        };

        let mut part_cps = HashMap::new();
        let mut lowest: Option<Checkpoint> = None;
        for p in pipe.store.partitions() {
            let cp = p.checkpoint()?;
            lowest = Some(match lowest {
                None => cp.clone(),
                Some(l) => l.min(&cp),
            });
            part_cps.insert(p.day, cp);
        }
        let resume = match Checkpoint::load_file(pipe.store.dir())? {
            Some(cp) => cp,
            None => lowest.unwrap_or_default(),
        };
        let mut tpl = TopicPartitionList::new();
        let mut position = BTreeMap::new();
        for p in &partitions {
            let offset = match resume.next(*p) {
                Some(n) => {
                    position.insert(*p, n);
                    Offset::Offset(n)
                }
                None => Offset::Beginning,
            };
            tpl.add_partition_offset(&cfg.topic, *p, offset)?;
        }
        consumer.assign(&tpl)?;
        tracing::info!(
            topic = %cfg.topic,
            partitions = partitions.len(),
            resume = ?resume.offsets,
            index_partitions = part_cps.len(),
            "logpipe started"
        );
        pipe.metrics.partitions.set(part_cps.len() as i64);
        Ok(Some(State {
            consumer: Arc::new(consumer),
            dead_letters,
            committed: position.clone(),
            position,
            part_cps,
            writers: HashMap::new(),
            pending: 0,
            last_commit: Instant::now(),
            last_retention: None,
            last_lag: Instant::now(),
            last_error_log: None,
            retention_cutoff: None,
        }))
    }

    fn main_loop(&mut self, pipe: &Logpipe, stop: &AtomicBool) -> Result<(), SearchError> {
        while !stop.load(Ordering::Relaxed) {
            if self
                .last_retention
                .is_none_or(|t| t.elapsed() >= RETENTION_CHECK)
            {
                self.retention(pipe)?;
                self.last_retention = Some(Instant::now());
            }
            // The oldest day kept, read from the clock once per burst.
            self.retention_cutoff = pipe.cfg.retention.map(|ret| {
                ((pipe.cfg.clock)() - chrono::Duration::from_std(ret).unwrap_or_default())
                    .date_naive()
            });
            let consumer = Arc::clone(&self.consumer);
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(msg)) => {
                    self.handle(pipe, &msg)?;
                    // What is already fetched is handled in a burst before the timers below
                    // are looked at again (up to a commit's worth): the clock is read once per
                    // burst, not several times per line.
                    let mut burst = 1;
                    while burst < BURST && self.pending < pipe.cfg.commit_docs {
                        match consumer.poll(Duration::ZERO) {
                            Some(Ok(msg)) => self.handle(pipe, &msg)?,
                            Some(Err(e)) => {
                                self.kafka_error(pipe, &e);
                                break;
                            }
                            None => break,
                        }
                        burst += 1;
                    }
                    self.dead_letters.poll(Duration::ZERO);
                    let now = Instant::now();
                    for w in self.writers.values_mut().filter(|w| w.dirty) {
                        w.last_used = now;
                    }
                }
                Some(Err(e)) => self.kafka_error(pipe, &e),
            }
            if self.pending >= pipe.cfg.commit_docs
                || self.last_commit.elapsed() >= pipe.cfg.commit_interval
            {
                self.commit_round(pipe, false)?;
            }
            if self.last_lag.elapsed() >= LAG_CHECK {
                self.update_lag(pipe);
                self.last_lag = Instant::now();
            }
        }
        Ok(())
    }

    fn kafka_error(&mut self, pipe: &Logpipe, e: &rdkafka::error::KafkaError) {
        pipe.metrics.kafka_errors.inc();
        if self
            .last_error_log
            .is_none_or(|t| t.elapsed() > Duration::from_secs(10))
        {
            tracing::warn!(error = %e, "reading the logs topic failed; retrying");
            self.last_error_log = Some(Instant::now());
        }
    }

    fn handle(&mut self, pipe: &Logpipe, msg: &BorrowedMessage<'_>) -> Result<(), SearchError> {
        let (partition, offset) = (msg.partition(), msg.offset());
        pipe.metrics.records.inc();
        self.position.insert(partition, offset + 1);
        let payload = msg.payload().unwrap_or_default();
        let rec: LogRecord = match drover_schema::decode(payload) {
            Ok(r) => r,
            Err(e) => {
                self.dead_letter(pipe, msg, e.reason(), &e.to_string());
                return Ok(());
            }
        };
        let day = rec.ts.date_naive();
        if self
            .part_cps
            .get(&day)
            .is_some_and(|cp| cp.covers(partition, offset))
        {
            pipe.metrics.replay_skipped.inc();
            return Ok(());
        }
        if let Some(cutoff) = self.retention_cutoff {
            if day < cutoff {
                pipe.metrics
                    .filtered
                    .get_or_create(&ReasonLabels {
                        reason: "older_than_retention".into(),
                    })
                    .inc();
                return Ok(());
            }
        }
        let parsed = parse_line(&rec.line);
        let decision = pipe.cfg.rules.decide(Subject {
            app: &rec.source.app,
            level: parsed.level,
            stream: rec.stream.as_str(),
            line: &rec.line,
        });
        if let Some(rule) = decision.dropped_by {
            pipe.metrics
                .filtered
                .get_or_create(&ReasonLabels {
                    reason: rule.to_string(),
                })
                .inc();
            return Ok(());
        }
        let added: Map<String, Value> = decision
            .add_fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::from(v)))
            .collect();
        let doc = build_doc(
            pipe.store.fields(),
            &rec,
            parsed.level,
            parsed.fields,
            added,
        );
        let writer = self.writer(pipe, day)?;
        writer.writer.add_document(doc)?;
        writer.dirty = true;
        self.pending += 1;
        pipe.metrics.indexed.inc();
        pipe.metrics.indexed_bytes.inc_by(rec.line.len() as u64);
        Ok(())
    }

    fn writer(&mut self, pipe: &Logpipe, day: NaiveDate) -> Result<&mut Writer, SearchError> {
        if !self.writers.contains_key(&day) {
            let part = pipe
                .store
                .open_partition(day, true)?
                .expect("created when asked");
            let writer = part.index.writer_with_num_threads(
                pipe.cfg.writer_threads.max(1),
                pipe.cfg
                    .writer_heap_bytes
                    .max(15_000_000 * pipe.cfg.writer_threads.max(1)),
            )?;
            self.part_cps.entry(day).or_insert(part.checkpoint()?);
            pipe.metrics
                .partitions
                .set(pipe.store.partitions().len() as i64);
            self.writers.insert(
                day,
                Writer {
                    writer,
                    dirty: false,
                    last_used: Instant::now(),
                },
            );
        }
        Ok(self.writers.get_mut(&day).expect("inserted above"))
    }

    fn dead_letter(
        &mut self,
        pipe: &Logpipe,
        msg: &BorrowedMessage<'_>,
        reason: &str,
        detail: &str,
    ) {
        pipe.metrics
            .dead_lettered
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
        tracing::warn!(
            partition = msg.partition(),
            offset = msg.offset(),
            reason,
            detail,
            "malformed message: sent to the dead-letter topic"
        );
        if let Err((e, _)) = self.dead_letters.send(drover_kafka::deadletter::record(
            &pipe.cfg.dead_letter_topic,
            msg,
            reason,
            detail,
        )) {
            // The queue is full or the message too large: it still is not stored; the count
            // above and this log say so.
            tracing::error!(error = %e, partition = msg.partition(), offset = msg.offset(), "cannot queue the dead letter");
        }
    }

    /// Commits every partition with new documents, payload = the offsets read so far, then
    /// records the round in `checkpoint.json`.
    fn commit_round(&mut self, pipe: &Logpipe, last: bool) -> Result<(), SearchError> {
        self.last_commit = Instant::now();
        if self.position == self.committed && self.pending == 0 {
            self.close_idle_writers(last);
            return Ok(());
        }
        let started = Instant::now();
        // Dead letters must be safe before their offsets count as done.
        if let Err(e) = self.dead_letters.flush(Duration::from_secs(10)) {
            pipe.metrics.kafka_errors.inc();
            tracing::warn!(error = %e, "dead letters not yet delivered; the commit waits");
            return Ok(());
        }
        let cp = Checkpoint {
            topic: pipe.cfg.topic.clone(),
            offsets: self.position.clone(),
        };
        let payload = cp.to_payload();
        let mut days = Vec::new();
        for (day, w) in self.writers.iter_mut().filter(|(_, w)| w.dirty) {
            let mut prepared = w.writer.prepare_commit()?;
            prepared.set_payload(&payload);
            prepared.commit()?;
            w.dirty = false;
            self.part_cps.insert(*day, cp.clone());
            days.push(*day);
        }
        cp.save_file(pipe.store.dir())?;
        for day in &days {
            if let Some(p) = pipe.store.open_partition(*day, false)? {
                p.reader.reload()?;
            }
        }
        self.committed = self.position.clone();
        self.pending = 0;
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &self.position {
            let _ = tpl.add_partition_offset(&pipe.cfg.topic, *p, Offset::Offset(*o));
        }
        // For lag dashboards only: the index payload is the truth.
        let _ = self.consumer.commit(&tpl, CommitMode::Async);
        pipe.metrics.commits.inc();
        pipe.metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        tracing::debug!(
            partitions = days.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "committed"
        );
        self.close_idle_writers(last);
        Ok(())
    }

    fn close_idle_writers(&mut self, all: bool) {
        self.writers
            .retain(|_, w| w.dirty || (!all && w.last_used.elapsed() < WRITER_IDLE));
    }

    fn retention(&mut self, pipe: &Logpipe) -> Result<(), SearchError> {
        let Some(ret) = pipe.cfg.retention else {
            return Ok(());
        };
        let cutoff = (pipe.cfg.clock)() - chrono::Duration::from_std(ret).unwrap_or_default();
        let old: HashSet<NaiveDate> = self
            .writers
            .keys()
            .filter(|d| **d < cutoff.date_naive())
            .copied()
            .collect();
        if !old.is_empty() {
            // Commit what they hold first so the checkpoint stays consistent, then close them.
            self.commit_round(pipe, false)?;
            self.writers.retain(|d, _| !old.contains(d));
        }
        for day in pipe.store.drop_before(cutoff)? {
            self.part_cps.remove(&day);
            pipe.metrics.retention_dropped.inc();
        }
        pipe.metrics
            .partitions
            .set(pipe.store.partitions().len() as i64);
        Ok(())
    }

    fn update_lag(&self, pipe: &Logpipe) {
        for (p, pos) in &self.position {
            if let Ok((_, high)) =
                self.consumer
                    .fetch_watermarks(&pipe.cfg.topic, *p, Duration::from_millis(500))
            {
                pipe.metrics
                    .lag
                    .get_or_create(&PartitionLabels {
                        partition: p.to_string(),
                    })
                    .set((high - pos).max(0));
            }
        }
    }
}

/// The Tantivy document of a record: `fields` is what parsing found (indexed as
/// [`indexed_fields`] says, not stored), `added` what rules added (indexed and stored).
pub fn build_doc(
    f: &LogFields,
    rec: &LogRecord,
    level: Option<crate::Level>,
    mut fields: Map<String, Value>,
    added: Map<String, Value>,
) -> TantivyDocument {
    let mut doc = TantivyDocument::new();
    let ns = rec.ts.timestamp_nanos_opt().unwrap_or_default();
    doc.add_date(f.ts, tantivy::DateTime::from_timestamp_nanos(ns));
    let s = &rec.source;
    doc.add_text(f.app, &s.app);
    doc.add_text(f.host, &s.host);
    for (field, v) in [(f.node, &s.node), (f.task, &s.task), (f.group, &s.group)] {
        if let Some(v) = v {
            doc.add_text(field, v);
        }
    }
    doc.add_text(f.container, &s.container_id);
    doc.add_text(f.container_name, &s.container_name);
    doc.add_text(f.image, &s.image);
    doc.add_text(f.stream, rec.stream.as_str());
    if let Some(l) = level {
        doc.add_text(f.level, l.as_str());
    }
    doc.add_u64(f.level_code, level.map_or(0, crate::Level::code));
    doc.add_text(f.message, &rec.line);
    doc.add_text(f.line, &rec.line);
    if !added.is_empty() {
        fields.extend(added.iter().map(|(k, v)| (k.clone(), v.clone())));
        doc.add_field_value(f.extra, &Value::Object(added));
    }
    let fields = indexed_fields(fields);
    if !fields.is_empty() {
        doc.add_field_value(f.fields, &Value::Object(fields));
    }
    doc.add_u64(f.seq, rec.seq);
    doc.add_u64(f.uid, uid(&s.container_id, rec.seq));
    doc
}
