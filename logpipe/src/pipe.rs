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
    collections::{HashMap, HashSet},
    sync::{atomic::AtomicBool, Arc},
    time::{Duration, Instant},
};

use chrono::NaiveDate;
use drover_kafka::consume::{self, ConsumeConfig, Flush, Flushed, Handler, Outcome, Reading};
use drover_schema::LogRecord;
use drover_search::{checkpoint::Checkpoint, index::build_doc, parse::parse_line, LogStore};
use rdkafka::{consumer::CommitMode, message::BorrowedMessage, Message, Offset};
use serde_json::{Map, Value};
use tantivy::{IndexWriter, TantivyDocument};

use crate::{
    metrics::{LogpipeMetrics, PartitionLabels, ReasonLabels},
    rules::{Rules, Subject},
    LogpipeError,
};

/// A clock, injectable for tests (retention).
pub type Clock = drover_schema::time::SharedClock;

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
            clock: drover_schema::time::system_clock(),
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
    pub fn run(self, stop: Arc<AtomicBool>) -> Result<(), LogpipeError> {
        let cfg = &self.cfg;
        let cc = ConsumeConfig {
            dead_letter_topic: cfg.dead_letter_topic.clone(),
            flush_interval: cfg.commit_interval,
            burst: BURST,
            // For lag dashboards only: the index payload is the truth.
            commit_mode: CommitMode::Async,
            consumer_settings: vec![("queued.max.messages.kbytes".into(), "16384".into())],
            ..ConsumeConfig::new(&cfg.brokers, &cfg.topic, &cfg.group, "drover-logpipe")
        };
        let mut sink = PipeSink {
            pipe: &self,
            part_cps: HashMap::new(),
            writers: HashMap::new(),
            pending: 0,
            last_retention: None,
            last_lag: Instant::now(),
            retention_cutoff: None,
            commit_started: None,
        };
        consume::run(&cc, &mut sink, &stop)
    }
}

/// The logpipe's side of the consume loop.
struct PipeSink<'a> {
    pipe: &'a Logpipe,
    /// Each index partition's committed checkpoint (for skipping on replay).
    part_cps: HashMap<NaiveDate, Checkpoint>,
    writers: HashMap<NaiveDate, Writer>,
    pending: usize,
    last_retention: Option<Instant>,
    last_lag: Instant,
    /// Lines of days before this one are older than the retention and not indexed.
    retention_cutoff: Option<NaiveDate>,
    /// When the commit round whose offsets go to the group started.
    commit_started: Option<(Instant, usize)>,
}

impl Handler for PipeSink<'_> {
    type Error = LogpipeError;

    /// Resume from `checkpoint.json` (or the lowest index payload).
    fn start(&mut self, partitions: &[i32]) -> Result<Vec<(i32, Offset)>, LogpipeError> {
        let pipe = self.pipe;
        let mut lowest: Option<Checkpoint> = None;
        for p in pipe.store.partitions() {
            let cp = p.checkpoint()?;
            lowest = Some(match lowest {
                None => cp.clone(),
                Some(l) => l.min(&cp),
            });
            self.part_cps.insert(p.day, cp);
        }
        let resume = match Checkpoint::load_file(pipe.store.dir())? {
            Some(cp) => cp,
            None => lowest.unwrap_or_default(),
        };
        tracing::info!(
            topic = %pipe.cfg.topic,
            partitions = partitions.len(),
            resume = ?resume.offsets,
            index_partitions = self.part_cps.len(),
            "logpipe started"
        );
        pipe.metrics.partitions.set(self.part_cps.len() as i64);
        Ok(partitions
            .iter()
            .map(|p| {
                (
                    *p,
                    resume.next(*p).map_or(Offset::Beginning, Offset::Offset),
                )
            })
            .collect())
    }

    fn before_burst(&mut self, reading: Reading<'_>) -> Result<bool, LogpipeError> {
        let pipe = self.pipe;
        let mut flush_now = false;
        if self
            .last_retention
            .is_none_or(|t| t.elapsed() >= RETENTION_CHECK)
        {
            if self.retention()? {
                self.last_retention = Some(Instant::now());
            } else {
                // Writers of days past the retention still hold uncommitted documents:
                // commit them first (now), then drop the days at the next burst.
                flush_now = true;
            }
        }
        // The oldest day kept, read from the clock once per burst.
        self.retention_cutoff = pipe.cfg.retention.map(|ret| {
            (pipe.cfg.clock.now() - chrono::Duration::from_std(ret).unwrap_or_default())
                .date_naive()
        });
        let now = Instant::now();
        for w in self.writers.values_mut().filter(|w| w.dirty) {
            w.last_used = now;
        }
        if self.last_lag.elapsed() >= LAG_CHECK {
            for (p, lag) in reading.lag() {
                pipe.metrics
                    .lag
                    .get_or_create(&PartitionLabels {
                        partition: p.to_string(),
                    })
                    .set(lag);
            }
            self.last_lag = Instant::now();
        }
        Ok(flush_now)
    }

    fn handle(&mut self, msg: &BorrowedMessage<'_>) -> Result<Outcome, LogpipeError> {
        let pipe = self.pipe;
        let (partition, offset) = (msg.partition(), msg.offset());
        pipe.metrics.records.inc();
        let payload = msg.payload().unwrap_or_default();
        let rec: LogRecord = match drover_schema::decode(payload) {
            Ok(r) => r,
            Err(e) => {
                pipe.metrics
                    .dead_lettered
                    .get_or_create(&ReasonLabels {
                        reason: e.reason().to_string(),
                    })
                    .inc();
                return Ok(Outcome::DeadLetter {
                    reason: e.reason().to_string(),
                    detail: e.to_string(),
                });
            }
        };
        let day = rec.ts.date_naive();
        if self
            .part_cps
            .get(&day)
            .is_some_and(|cp| cp.covers(partition, offset))
        {
            pipe.metrics.replay_skipped.inc();
            return Ok(Outcome::Handled);
        }
        if let Some(cutoff) = self.retention_cutoff {
            if day < cutoff {
                pipe.metrics
                    .filtered
                    .get_or_create(&ReasonLabels {
                        reason: "older_than_retention".into(),
                    })
                    .inc();
                return Ok(Outcome::Handled);
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
            return Ok(Outcome::Handled);
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
        let writer = self.writer(day)?;
        writer.writer.add_document(doc)?;
        writer.dirty = true;
        self.pending += 1;
        pipe.metrics.indexed.inc();
        pipe.metrics.indexed_bytes.inc_by(rec.line.len() as u64);
        Ok(Outcome::Handled)
    }

    fn wants_flush(&self) -> bool {
        self.pending >= self.pipe.cfg.commit_docs
    }

    /// Commits every partition with new documents, payload = the offsets read so far, then
    /// records the round in `checkpoint.json`.
    fn flush(&mut self, flush: Flush<'_>) -> Result<Flushed, LogpipeError> {
        let pipe = self.pipe;
        if !flush.changed && self.pending == 0 {
            self.close_idle_writers(flush.last);
            return Ok(Flushed::Nothing);
        }
        let started = Instant::now();
        let cp = Checkpoint {
            topic: pipe.cfg.topic.clone(),
            offsets: flush.position.clone(),
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
        self.pending = 0;
        self.commit_started = Some((started, days.len()));
        self.close_idle_writers(flush.last);
        Ok(Flushed::Done)
    }

    fn after_commit(&mut self, _committed: bool) {
        let Some((started, partitions)) = self.commit_started.take() else {
            return;
        };
        let m = &self.pipe.metrics;
        m.commits.inc();
        m.commit_seconds.observe(started.elapsed().as_secs_f64());
        tracing::debug!(
            partitions,
            took_ms = started.elapsed().as_millis() as u64,
            "committed"
        );
    }

    fn kafka_error(&mut self) {
        self.pipe.metrics.kafka_errors.inc();
    }
}

impl PipeSink<'_> {
    fn writer(&mut self, day: NaiveDate) -> Result<&mut Writer, LogpipeError> {
        let pipe = self.pipe;
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

    fn close_idle_writers(&mut self, all: bool) {
        self.writers
            .retain(|_, w| w.dirty || (!all && w.last_used.elapsed() < WRITER_IDLE));
    }

    /// Drops the index days past the retention. False (nothing done) while a writer of such a
    /// day holds uncommitted documents: they are committed first, so that the checkpoint stays
    /// consistent.
    fn retention(&mut self) -> Result<bool, LogpipeError> {
        let pipe = self.pipe;
        let Some(ret) = pipe.cfg.retention else {
            return Ok(true);
        };
        let cutoff = pipe.cfg.clock.now() - chrono::Duration::from_std(ret).unwrap_or_default();
        let old: HashSet<NaiveDate> = self
            .writers
            .keys()
            .filter(|d| **d < cutoff.date_naive())
            .copied()
            .collect();
        if old.iter().any(|d| self.writers[d].dirty) {
            return Ok(false);
        }
        self.writers.retain(|d, _| !old.contains(d));
        for day in pipe.store.drop_before(cutoff)? {
            self.part_cps.remove(&day);
            pipe.metrics.retention_dropped.inc();
        }
        pipe.metrics
            .partitions
            .set(pipe.store.partitions().len() as i64);
        Ok(true)
    }
}
