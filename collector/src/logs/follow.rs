//! One container's log stream: follow it from the delivered position, skip what was
//! delivered, rejoin 16 KB partial lines, join multi-line events, and hand records to the
//! sink. Re-follows when the stream ends while the container still runs (json-file
//! rotation, moby#37646).
use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use bollard::{container::LogOutput, query_parameters::LogsOptionsBuilder, Docker};
use chrono::{DateTime, Utc};
use drover_schema::{LogRecord, Source, Stream, SCHEMA_VERSION};
use futures::StreamExt;
use tokio::sync::watch;

use super::{
    frame::{parse_entry, Entry, Joined, PartialJoiner},
    multiline::{MultilineJoiner, MultilineRule},
};
use crate::{
    checkpoint::{nanos, ContainerPos, StreamPos},
    metrics::CollectorMetrics,
    sink::Sink,
};

/// Settings of the log followers.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// Longest record; longer lines are split into several records.
    pub max_line_bytes: usize,
    /// A pending multi-line event is emitted after this long without a new line.
    pub multiline_flush: Duration,
    /// Most lines in one multi-line event.
    pub multiline_max_lines: usize,
}

impl Default for FollowConfig {
    fn default() -> Self {
        Self {
            max_line_bytes: 512 * 1024,
            multiline_flush: Duration::from_millis(500),
            multiline_max_lines: 500,
        }
    }
}

/// What the followers share.
#[derive(Debug, Clone)]
pub struct FollowCtx {
    /// Docker client.
    pub docker: Docker,
    /// Where records go.
    pub sink: Arc<Sink>,
    /// Collector metrics.
    pub metrics: CollectorMetrics,
    /// Settings.
    pub cfg: FollowConfig,
    /// Becomes true at shutdown.
    pub shutdown: watch::Receiver<bool>,
}

/// One container being followed.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    /// Full container ID (the Kafka key).
    pub id: Arc<str>,
    /// Tags put on every record; updated in place on rename.
    pub source: Arc<RwLock<Source>>,
    /// Whether the container has a TTY (one stream, lines split by the client).
    pub tty: bool,
    /// Multi-line joining chosen by the `drover.multiline` label.
    pub multiline: Option<MultilineRule>,
    /// Set by discovery when the container started again while this follower was still
    /// finishing: the follower then goes on instead of stopping.
    pub started_again: Arc<std::sync::atomic::AtomicBool>,
}

/// Why a follower stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum FollowEnd {
    /// The container stopped; every line it printed was handed to the sink.
    Exited,
    /// The container no longer exists.
    Gone,
    /// The collector is shutting down.
    Shutdown,
    /// Docker did not answer; discovery reconnects and starts a new follower.
    DockerError,
}

/// Shortest quiet period after which the stream is re-opened (Docker's follow can stall
/// for good at a json-file rotation, moby#37646); doubles while re-opening brings nothing new.
const IDLE_MIN: Duration = Duration::from_secs(2);
/// Longest quiet period before re-opening.
const IDLE_MAX: Duration = Duration::from_secs(30);

enum StreamEnd {
    /// Docker closed the stream (the container stopped, or the daemon went away).
    Eof,
    /// The stream failed.
    Error,
    /// Nothing arrived for a while: the stream may be stalled.
    Idle,
    /// Kafka refused a record for good: rewind to what was delivered.
    Failed,
}

/// Follow a container's logs until it stops, disappears, or the collector shuts down.
///
/// One `Run` (what was read and sent) lives across re-opened streams, so re-opening after a
/// stall or a hiccup neither repeats nor skips a line: Docker re-sends from the `since`
/// second and the skipper drops what already went through. Only a record Kafka refused
/// for good starts a new run from the delivered position.
pub async fn follow(ctx: FollowCtx, info: ContainerInfo) -> FollowEnd {
    let mut shutdown = ctx.shutdown.clone();
    let name: Arc<str> = info
        .source
        .read()
        .expect("source lock")
        .container_name
        .clone()
        .into();
    let mut failures_in_a_row = 0u32;
    // A follower that stopped before (daemon gone) may have left records in flight: their
    // acknowledgements complete the position this one starts from.
    if !wait_delivered(&ctx, &info.id, &mut shutdown).await {
        return FollowEnd::Shutdown;
    }
    'run: loop {
        let pos = ctx.sink.position(&info.id);
        let resend = ctx.sink.take_failure(&info.id);
        let mut run = Run::new(&ctx, &info, &pos, name.clone(), resend);
        let mut backoff = Duration::from_millis(200);
        let mut idle = IDLE_MIN;
        loop {
            let since = run.since_secs();
            let opts = LogsOptionsBuilder::default()
                .follow(true)
                .stdout(true)
                .stderr(true)
                .timestamps(true)
                .since(i32::try_from(since).unwrap_or(0))
                .build();
            run.skipper.new_pass();
            let mut stream = ctx.docker.logs(&info.id, Some(opts));
            tracing::debug!(container = %name, since, seq = run.next_seq, "following logs");
            let mut got_new = false;
            // Only new entries push the deadline back: a stream that keeps re-sending old
            // entries (seen at json-file rotations) is as stalled as a silent one.
            let mut deadline = tokio::time::Instant::now() + idle;
            let end = loop {
                let flush_after = ctx.cfg.multiline_flush;
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => return FollowEnd::Shutdown,
                    item = stream.next() => match item {
                        Some(Ok(out)) => {
                            if run.handle(out).await {
                                got_new = true;
                                if !ctx.sink.failed(&info.id) && ctx.sink.pending(&info.id) == 0 {
                                    failures_in_a_row = 0;
                                }
                                idle = IDLE_MIN;
                                deadline = tokio::time::Instant::now() + idle;
                            }
                        }
                        Some(Err(e)) => {
                            tracing::debug!(container = %name, error = %e, "log stream error");
                            break StreamEnd::Error;
                        }
                        None => break StreamEnd::Eof,
                    },
                    _ = tokio::time::sleep(flush_after), if run.multiline_pending() => run.flush_multiline().await,
                    _ = tokio::time::sleep_until(deadline) => break StreamEnd::Idle,
                }
                if ctx.sink.failed(&info.id) {
                    break StreamEnd::Failed;
                }
                // Checked here too: a stream that is always ready (re-sending old entries in
                // a loop) would otherwise never let the deadline branch be polled.
                if tokio::time::Instant::now() >= deadline {
                    break StreamEnd::Idle;
                }
            };
            match end {
                StreamEnd::Failed => {
                    failures_in_a_row += 1;
                    tracing::warn!(container = %name, "kafka refused a record; re-reading from the last delivered line");
                    if !settle_failure(&ctx, &info.id, &mut shutdown, failures_in_a_row).await {
                        return FollowEnd::Shutdown;
                    }
                    continue 'run;
                }
                StreamEnd::Idle => {
                    tracing::debug!(container = %name, replays = run.skipper.rewinds, "no new entries for {idle:?}; re-opening the stream");
                    if !got_new {
                        idle = (idle * 2).min(IDLE_MAX);
                    }
                    continue;
                }
                StreamEnd::Eof | StreamEnd::Error => {
                    tracing::debug!(container = %name, eof = matches!(end, StreamEnd::Eof), "log stream ended");
                }
            }
            match ctx.docker.inspect_container(&info.id, None).await {
                Ok(i) if i.state.as_ref().and_then(|s| s.running) == Some(true) => {
                    // The stream ended but the container runs: a log rotation or a daemon
                    // hiccup. Re-open it; the run keeps what was read.
                    if matches!(end, StreamEnd::Error) {
                        ctx.metrics.errors("docker_stream").inc();
                    }
                    tracing::info!(container = %name, "log stream ended while the container runs; re-opening");
                    tokio::select! {
                        _ = shutdown.changed() => return FollowEnd::Shutdown,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Ok(_) if got_new => {
                    // Stopped. Docker's stream can end early when it missed a json-file
                    // rotation (another reader of the same log took the notification):
                    // read once more from where we are until a read brings nothing new.
                    tracing::debug!(container = %name, "container stopped; reading its log once more");
                    continue;
                }
                Ok(_)
                | Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {
                    // The container stopped (or is gone): send what is buffered and wait for
                    // Kafka's answer, so that a refused record is read again while Docker
                    // still has it.
                    run.flush_all().await;
                    tracing::debug!(container = %name, "container stopped; waiting for kafka");
                    if !wait_delivered(&ctx, &info.id, &mut shutdown).await {
                        return FollowEnd::Shutdown;
                    }
                    if ctx.sink.failed(&info.id) {
                        failures_in_a_row += 1;
                        tracing::warn!(container = %name, "kafka refused a record; re-reading from the last delivered line");
                        if !settle_failure(&ctx, &info.id, &mut shutdown, failures_in_a_row).await {
                            return FollowEnd::Shutdown;
                        }
                        continue 'run;
                    }
                    // It may have been started again meanwhile (its start event found this
                    // follower still busy): then go on following it.
                    if info
                        .started_again
                        .swap(false, std::sync::atomic::Ordering::SeqCst)
                    {
                        continue;
                    }
                    match ctx.docker.inspect_container(&info.id, None).await {
                        Ok(i) if i.state.as_ref().and_then(|s| s.running) == Some(true) => continue,
                        Ok(_) => return FollowEnd::Exited,
                        Err(_) => return FollowEnd::Gone,
                    }
                }
                Err(e) => {
                    tracing::warn!(container = %name, error = %e, "cannot inspect container after its log stream ended");
                    return FollowEnd::DockerError;
                }
            }
        }
    }
}

/// Wait until Kafka answered for every record of the container sent so far. False on
/// shutdown.
async fn wait_delivered(ctx: &FollowCtx, id: &str, shutdown: &mut watch::Receiver<bool>) -> bool {
    let mut waited = 0u32;
    while ctx.sink.pending(id) > 0 {
        waited += 1;
        if waited.is_multiple_of(100) {
            tracing::debug!(
                container = id,
                pending = ctx.sink.pending(id),
                "waiting for kafka to answer"
            );
        }
        ctx.sink.renew(false);
        tokio::select! {
            _ = shutdown.changed() => return false,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    true
}

/// Before re-reading after a refusal: let every sent record be answered, replace the
/// producer if it is broken, and pause a moment so a broker that refuses everything (going
/// down) is not hammered. False on shutdown.
async fn settle_failure(
    ctx: &FollowCtx,
    id: &str,
    shutdown: &mut watch::Receiver<bool>,
    failures_in_a_row: u32,
) -> bool {
    if !wait_delivered(ctx, id, shutdown).await {
        return false;
    }
    // Refused again right after re-reading: the broker has given up on this producer.
    ctx.sink.renew(failures_in_a_row >= 2);
    tokio::select! {
        _ = shutdown.changed() => false,
        _ = tokio::time::sleep(Duration::from_secs(1)) => true,
    }
}

/// Lets each Docker log entry through once.
///
/// After a restart it starts at the delivered position: per stream, every entry older than
/// it is skipped, and at its timestamp the first `lines_at_ts` complete lines. From then on
/// it remembers the keys (stream, timestamp, text) of the last [`RECENT`] entries it let
/// through: Docker's follow stream (json-file, Docker 20.10) re-sends entries, and across
/// a log rotation also delivers some late, out of order. An entry behind the position is
/// dropped when its key was seen (a re-send) and let through when not (a late one).
#[derive(Debug)]
struct Skipper {
    pos: [StreamPos; 2],
    skipped: [u32; 2],
    past: [bool; 2],
    /// Entries dropped as re-sent.
    rewinds: u64,
    /// Entries let through behind the position (out of order).
    late: u64,
    opened: bool,
    recent: Recent,
    /// Per stream: the timestamp of the previous entry, its occurrence number, and whether it
    /// was a partial chunk.
    last: [(i64, u32, bool); 2],
    /// The positions the run started from (what was delivered before it).
    start: [StreamPos; 2],
}

/// How many entry keys the skipper remembers.
const RECENT: usize = 65_536;

#[derive(Debug, Default)]
struct Recent {
    order: std::collections::VecDeque<(i64, u64)>,
    keys: std::collections::HashSet<u64>,
}

impl Recent {
    /// The key of an entry: stream, timestamp, text, and its place among the consecutive
    /// entries of the stream with the same timestamp (the 16 KB chunks of one long line
    /// share a timestamp and can be byte-identical).
    fn key(e: &Entry, occurrence: u32) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        idx(e.stream).hash(&mut h);
        nanos(e.ts).hash(&mut h);
        e.bytes.hash(&mut h);
        e.partial.hash(&mut h);
        occurrence.hash(&mut h);
        h.finish()
    }

    fn insert(&mut self, ts: i64, key: u64) {
        if self.order.len() == RECENT {
            if let Some((_, old)) = self.order.pop_front() {
                self.keys.remove(&old);
            }
        }
        self.order.push_back((ts, key));
        self.keys.insert(key);
    }

    /// Timestamp of the oldest remembered entry.
    fn oldest(&self) -> Option<i64> {
        self.order.iter().map(|(ts, _)| *ts).min()
    }
}

impl Skipper {
    fn new(pos: &ContainerPos) -> Self {
        Self {
            pos: [pos.stdout, pos.stderr],
            skipped: [0, 0],
            past: [pos.stdout.ts == 0, pos.stderr.ts == 0],
            rewinds: 0,
            late: 0,
            opened: false,
            recent: Recent::default(),
            last: [(i64::MIN, 0, false); 2],
            start: [pos.stdout, pos.stderr],
        }
    }

    /// A new stream was opened: Docker starts again from the `since` second.
    ///
    /// A stream still at its delivered position (nothing new since the run started) gets
    /// the entries at that timestamp again, so its count of them starts over: counted
    /// across passes, a re-open while the container is idle after a restart let the last
    /// delivered line through a second time (issue 14: the line before a graceful restart
    /// shipped twice with consecutive `seq`).
    fn new_pass(&mut self) {
        self.last = [(i64::MIN, 0, false); 2];
        for i in 0..2 {
            if !self.past[i] {
                self.skipped[i] = 0;
            }
        }
    }

    fn keep(&mut self, e: &Entry) -> bool {
        let i = idx(e.stream);
        let ts = nanos(e.ts);
        let p = self.pos[i];
        // Only the chunks of one long line (after a partial entry) are numbered apart: a
        // complete entry equal to the one just before it (same stream, timestamp, text) is
        // Docker sending it twice in a row, seen in the 100,000-line test (two records of one
        // line, the same nanosecond).
        let (last_ts, last_occurrence, last_partial) = self.last[i];
        let occurrence = if last_ts == ts && last_partial {
            last_occurrence + 1
        } else {
            0
        };
        self.last[i] = (ts, occurrence, e.partial);
        let key = Recent::key(e, occurrence);
        if !self.past[i] {
            if ts < p.ts {
                return false;
            }
            if ts == p.ts && self.skipped[i] < p.lines_at_ts {
                if !e.partial {
                    self.skipped[i] += 1;
                }
                return false;
            }
            self.past[i] = true;
        } else if ts <= p.ts {
            if self.recent.keys.contains(&key) {
                self.rewinds += 1;
                return false;
            }
            if ts < p.ts {
                let forgotten = self.recent.order.len() == RECENT
                    && self.recent.oldest().is_some_and(|oldest| ts < oldest);
                if ts <= self.start[i].ts || forgotten {
                    // Delivered before this run, or older than anything remembered: it
                    // went through before.
                    self.rewinds += 1;
                    return false;
                }
                // Not seen: Docker delivers it late. Let it through; the position stays.
                self.late += 1;
                self.recent.insert(ts, key);
                return true;
            }
        }
        self.recent.insert(ts, key);
        let done = u32::from(!e.partial);
        self.pos[i] = if ts == p.ts {
            StreamPos {
                ts,
                lines_at_ts: p.lines_at_ts + done,
            }
        } else {
            StreamPos {
                ts,
                lines_at_ts: done,
            }
        };
        true
    }
}

fn idx(s: Stream) -> usize {
    match s {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

struct Run<'a> {
    ctx: &'a FollowCtx,
    info: &'a ContainerInfo,
    name: Arc<str>,
    skipper: Skipper,
    next_seq: u64,
    pos: [StreamPos; 2],
    partial: PartialJoiner,
    multiline: Option<MultilineJoiner>,
    last_ts: Option<DateTime<Utc>>,
    /// Sequence numbers Kafka already holds from before a rewind: not sent again.
    delivered: std::collections::BTreeSet<u64>,
}

impl<'a> Run<'a> {
    fn new(
        ctx: &'a FollowCtx,
        info: &'a ContainerInfo,
        pos: &ContainerPos,
        name: Arc<str>,
        delivered: std::collections::BTreeSet<u64>,
    ) -> Self {
        Self {
            ctx,
            info,
            name,
            skipper: Skipper::new(pos),
            next_seq: pos.seq + 1,
            pos: [pos.stdout, pos.stderr],
            partial: PartialJoiner::new(ctx.cfg.max_line_bytes),
            multiline: info.multiline.clone().map(|rule| {
                MultilineJoiner::new(rule, ctx.cfg.multiline_max_lines, ctx.cfg.max_line_bytes)
            }),
            last_ts: None,
            delivered,
        }
    }

    /// Where to re-open Docker's stream: the earliest second either stream has reached
    /// (a stream with nothing yet does not hold it back: entries come in file order, so
    /// everything before the other stream's position was read already). The very first
    /// open of a run uses the delivered position, where an empty stream means "from the
    /// start".
    fn since_secs(&self) -> i64 {
        let ts: Vec<i64> = self
            .skipper
            .pos
            .iter()
            .map(|p| p.ts)
            .filter(|t| *t > 0)
            .collect();
        if !self.skipper.opened {
            return ContainerPos {
                stdout: self.skipper.pos[0],
                stderr: self.skipper.pos[1],
                seq: 0,
            }
            .since_secs();
        }
        ts.into_iter().min().map_or(0, |t| t / 1_000_000_000)
    }

    /// Take one entry from Docker; true when it was new (not a replay).
    async fn handle(&mut self, out: LogOutput) -> bool {
        self.skipper.opened = true;
        let (stream, bytes) = match out {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                (Stream::Stdout, message)
            }
            LogOutput::StdErr { message } => (Stream::Stderr, message),
            LogOutput::StdIn { .. } => return false,
        };
        let entry = match parse_entry(stream, &bytes) {
            Ok(e) => e,
            Err(e) => match (self.info.tty, self.last_ts) {
                // A TTY entry can hold several lines; only the first carries the timestamp.
                (true, Some(ts)) => {
                    let partial = !bytes.ends_with(b"\n");
                    let mut b = bytes.to_vec();
                    while matches!(b.last(), Some(b'\n' | b'\r')) {
                        b.pop();
                    }
                    Entry {
                        ts,
                        stream,
                        bytes: b,
                        partial,
                    }
                }
                _ => {
                    self.ctx.metrics.errors("frame").inc();
                    tracing::warn!(container = %self.name, error = %e, "unreadable log entry skipped");
                    return false;
                }
            },
        };
        self.last_ts = Some(entry.ts);
        self.ctx.metrics.read(&self.name, nanos(entry.ts));
        let (rewinds, late) = (self.skipper.rewinds, self.skipper.late);
        let keep = self.skipper.keep(&entry);
        if self.skipper.rewinds != rewinds {
            self.ctx.metrics.errors("docker_replay").inc();
        }
        if self.skipper.late != late {
            self.ctx.metrics.errors("docker_out_of_order").inc();
        }
        if !keep {
            return false;
        }
        for line in self.partial.push(entry) {
            self.line(line).await;
        }
        true
    }

    async fn line(&mut self, line: Joined) {
        match self.multiline.as_mut() {
            Some(ml) => {
                if let Some(event) = ml.push(line) {
                    self.produce(event).await;
                }
            }
            None => self.produce(line).await,
        }
    }

    fn multiline_pending(&self) -> bool {
        self.multiline
            .as_ref()
            .is_some_and(MultilineJoiner::has_pending)
    }

    async fn flush_multiline(&mut self) {
        if let Some(event) = self.multiline.as_mut().and_then(MultilineJoiner::flush) {
            self.produce(event).await;
        }
    }

    async fn flush_all(&mut self) {
        for line in self.partial.flush() {
            self.line(line).await;
        }
        self.flush_multiline().await;
    }

    async fn produce(&mut self, j: Joined) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let i = idx(j.stream);
        let lines = j.text.split('\n').count() as u32;
        let pos = self.pos[i].after(nanos(j.ts), nanos(j.end_ts), lines);
        // A late entry (see `Skipper`) does not move the position back.
        let pos = if (pos.ts, pos.lines_at_ts) < (self.pos[i].ts, self.pos[i].lines_at_ts) {
            self.pos[i]
        } else {
            pos
        };
        self.pos[i] = pos;
        if self.delivered.remove(&seq) {
            // Kafka has it from before the rewind.
            self.ctx
                .sink
                .mark_delivered(&self.info.id, j.stream, pos, seq);
            return;
        }
        let source = self.info.source.read().expect("source lock").clone();
        let rec = LogRecord {
            v: SCHEMA_VERSION,
            ts: j.ts,
            end_ts: (j.end_ts != j.ts).then_some(j.end_ts),
            source,
            stream: j.stream,
            seq,
            line: j.text,
        };
        self.ctx
            .sink
            .send_log(&rec, &self.name, &self.info.id, pos)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn entry(stream: Stream, ts: i64, text: &str, partial: bool) -> Entry {
        Entry {
            ts: Utc.timestamp_nanos(ts),
            stream,
            bytes: text.as_bytes().to_vec(),
            partial,
        }
    }

    fn line(ts: i64) -> Entry {
        entry(Stream::Stdout, ts, &format!("line {ts}"), false)
    }

    #[test]
    fn after_a_restart_skips_what_was_delivered_per_stream() {
        let pos = ContainerPos {
            stdout: StreamPos {
                ts: 100,
                lines_at_ts: 2,
            },
            stderr: StreamPos::default(),
            seq: 7,
        };
        let mut s = Skipper::new(&pos);
        let out = |ts, text: &str, partial| entry(Stream::Stdout, ts, text, partial);
        assert!(!s.keep(&out(90, "old", false)), "older");
        assert!(
            s.keep(&entry(Stream::Stderr, 50, "err", false)),
            "stderr had nothing delivered"
        );
        assert!(
            !s.keep(&out(100, "a1", true)),
            "chunk of the 1st line at ts"
        );
        assert!(!s.keep(&out(100, "a2", false)), "1st line at ts");
        assert!(!s.keep(&out(100, "b", false)), "2nd line at ts");
        assert!(s.keep(&out(100, "c", false)), "3rd line at ts is new");
        assert!(s.keep(&out(101, "d", false)), "new");
        assert_eq!(
            s.pos[0],
            StreamPos {
                ts: 101,
                lines_at_ts: 1
            }
        );
    }

    #[test]
    fn re_opening_before_anything_new_skips_the_delivered_lines_again() {
        // Restarted at a position whose last delivered entry is at ts 100; the container is
        // idle, so each re-open (idle timeout) re-sends the same second and nothing new.
        let pos = ContainerPos {
            stdout: StreamPos {
                ts: 100,
                lines_at_ts: 1,
            },
            stderr: StreamPos::default(),
            seq: 9_999,
        };
        let mut s = Skipper::new(&pos);
        for pass in 0..3 {
            s.new_pass();
            assert!(!s.keep(&line(99)), "pass {pass}: older");
            assert!(!s.keep(&line(100)), "pass {pass}: the delivered line again");
        }
        s.new_pass();
        assert!(!s.keep(&line(100)));
        assert!(s.keep(&line(101)), "the first new line");
        assert_eq!(s.rewinds, 0, "nothing was let through to be dropped later");
    }

    #[test]
    fn re_opening_at_a_second_with_several_delivered_lines_skips_all_of_them() {
        let pos = ContainerPos {
            stdout: StreamPos {
                ts: 100,
                lines_at_ts: 2,
            },
            ..ContainerPos::default()
        };
        let mut s = Skipper::new(&pos);
        let out = |text: &str| entry(Stream::Stdout, 100, text, false);
        s.new_pass();
        assert!(!s.keep(&out("a")));
        // The stream ends between the two lines at ts 100 (idle time-out, daemon hiccup).
        s.new_pass();
        assert!(!s.keep(&out("a")));
        assert!(!s.keep(&out("b")));
        assert!(s.keep(&out("c")), "the third line at ts 100 is new");
    }

    #[test]
    fn drops_what_docker_re_sends() {
        let mut s = Skipper::new(&ContainerPos::default());
        for ts in [1, 2, 3, 4, 5] {
            assert!(s.keep(&line(ts)));
        }
        // Docker re-sends 3, 4, 5, then goes on with 6.
        for ts in [3, 4, 5] {
            assert!(!s.keep(&line(ts)), "re-sent {ts}");
        }
        assert!(s.keep(&line(6)));
        assert_eq!(s.rewinds, 3);
        assert_eq!(s.late, 0);
    }

    #[test]
    fn an_entry_sent_twice_in_a_row_goes_through_once() {
        let mut s = Skipper::new(&ContainerPos::default());
        assert!(s.keep(&line(1)));
        assert!(s.keep(&line(2)));
        assert!(!s.keep(&line(2)), "the same entry again");
        assert!(s.keep(&line(3)));
        assert_eq!(s.rewinds, 1);
        assert_eq!(
            s.pos[0],
            StreamPos {
                ts: 3,
                lines_at_ts: 1
            }
        );
    }

    #[test]
    fn lets_late_entries_through_once() {
        let mut s = Skipper::new(&ContainerPos::default());
        // Across a rotation Docker delivers 4 and 5 after 6.
        for ts in [1, 2, 3, 6] {
            assert!(s.keep(&line(ts)));
        }
        assert!(s.keep(&line(4)), "late, never seen");
        assert!(s.keep(&line(5)), "late, never seen");
        assert!(!s.keep(&line(4)), "and not twice");
        assert!(s.keep(&line(7)));
        assert_eq!(s.late, 2);
        assert_eq!(s.pos[0].ts, 7, "late entries do not move the position back");
    }

    #[test]
    fn identical_chunks_at_one_timestamp_are_all_kept_and_replays_dropped() {
        let mut s = Skipper::new(&ContainerPos::default());
        let chunk = |partial| entry(Stream::Stdout, 7, "aaaa", partial);
        for _ in 0..5 {
            assert!(
                s.keep(&chunk(true)),
                "each identical chunk is its own entry"
            );
        }
        assert!(s.keep(&chunk(false)));
        s.new_pass();
        for _ in 0..5 {
            assert!(!s.keep(&chunk(true)), "replayed chunk");
        }
        assert!(!s.keep(&chunk(false)), "replayed end");
        assert!(s.keep(&line(8)));
    }

    #[test]
    fn chunks_of_one_long_line_share_a_timestamp() {
        let mut s = Skipper::new(&ContainerPos::default());
        let chunk = |text: &str, partial| entry(Stream::Stdout, 7, text, partial);
        assert!(s.keep(&chunk("aaa", true)));
        assert!(s.keep(&chunk("bbb", true)));
        assert!(s.keep(&chunk("c", false)));
        assert_eq!(
            s.pos[0],
            StreamPos {
                ts: 7,
                lines_at_ts: 1
            }
        );
        s.new_pass();
        assert!(!s.keep(&chunk("aaa", true)), "re-sent chunk");
        assert!(!s.keep(&chunk("bbb", true)), "re-sent chunk");
        assert!(!s.keep(&chunk("c", false)), "re-sent end");
    }
}
