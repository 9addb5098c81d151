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

/// Follow a container's logs until it stops, disappears, or the collector shuts down.
pub async fn follow(ctx: FollowCtx, info: ContainerInfo) -> FollowEnd {
    let mut shutdown = ctx.shutdown.clone();
    let mut backoff = Duration::from_millis(200);
    let name: Arc<str> = info
        .source
        .read()
        .expect("source lock")
        .container_name
        .clone()
        .into();
    loop {
        let pos = ctx.sink.position(&info.id);
        let mut run = Run::new(&ctx, &info, &pos, name.clone());
        let opts = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .since(i32::try_from(pos.since_secs()).unwrap_or(0))
            .build();
        let mut stream = ctx.docker.logs(&info.id, Some(opts));
        tracing::debug!(container = %name, since = pos.since_secs(), seq = pos.seq, "following logs");
        let ended_cleanly = loop {
            let flush_after = ctx.cfg.multiline_flush;
            tokio::select! {
                biased;
                _ = shutdown.changed() => return FollowEnd::Shutdown,
                item = stream.next() => match item {
                    Some(Ok(out)) => run.handle(out).await,
                    Some(Err(e)) => {
                        tracing::debug!(container = %name, error = %e, "log stream error");
                        break false;
                    }
                    None => break true,
                },
                _ = tokio::time::sleep(flush_after), if run.multiline_pending() => run.flush_multiline().await,
            }
        };
        run.flush_all().await;
        match ctx.docker.inspect_container(&info.id, None).await {
            Ok(i) if i.state.as_ref().and_then(|s| s.running) == Some(true) => {
                // The stream ended but the container runs: a log rotation or a daemon
                // hiccup. Resume from what was delivered.
                if !ended_cleanly {
                    ctx.metrics.errors("docker_stream").inc();
                }
                tracing::info!(container = %name, "log stream ended while the container runs; resuming");
                tokio::select! {
                    _ = shutdown.changed() => return FollowEnd::Shutdown,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            Ok(_) => return FollowEnd::Exited,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return FollowEnd::Gone,
            Err(e) => {
                tracing::warn!(container = %name, error = %e, "cannot inspect container after its log stream ended");
                return FollowEnd::DockerError;
            }
        }
    }
}

/// Lets each Docker log entry through once. It starts at the delivered position (skipping,
/// per stream, every entry older than it and, at its timestamp, the first `lines_at_ts`
/// complete lines), then tracks the position of the entries it let through. Docker's
/// follow stream sometimes re-sends a few entries it already sent (seen with json-file on
/// Docker 20.10); an entry older than the position is such a rewind, and the skipper then
/// skips again up to the position.
#[derive(Debug)]
struct Skipper {
    pos: [StreamPos; 2],
    skipped: [u32; 2],
    past: [bool; 2],
    rewinds: u64,
}

impl Skipper {
    fn new(pos: &ContainerPos) -> Self {
        Self {
            pos: [pos.stdout, pos.stderr],
            skipped: [0, 0],
            past: [pos.stdout.ts == 0, pos.stderr.ts == 0],
            rewinds: 0,
        }
    }

    fn keep(&mut self, e: &Entry) -> bool {
        let i = idx(e.stream);
        let ts = nanos(e.ts);
        let p = self.pos[i];
        if self.past[i] && ts < p.ts {
            // Docker went back: skip until we are past what we already let through.
            self.rewinds += 1;
            self.past[i] = false;
            self.skipped[i] = 0;
        }
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
        }
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
}

impl<'a> Run<'a> {
    fn new(
        ctx: &'a FollowCtx,
        info: &'a ContainerInfo,
        pos: &ContainerPos,
        name: Arc<str>,
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
        }
    }

    async fn handle(&mut self, out: LogOutput) {
        let (stream, bytes) = match out {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                (Stream::Stdout, message)
            }
            LogOutput::StdErr { message } => (Stream::Stderr, message),
            LogOutput::StdIn { .. } => return,
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
                    return;
                }
            },
        };
        self.last_ts = Some(entry.ts);
        self.ctx.metrics.read(&self.name, nanos(entry.ts));
        let rewinds = self.skipper.rewinds;
        let keep = self.skipper.keep(&entry);
        if self.skipper.rewinds != rewinds {
            self.ctx.metrics.errors("docker_replay").inc();
            tracing::debug!(container = %self.name, "docker re-sent log entries; skipping them");
        }
        if !keep {
            return;
        }
        for line in self.partial.push(entry) {
            self.line(line).await;
        }
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
        self.pos[i] = pos;
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

    fn entry(stream: Stream, ts: i64, partial: bool) -> Entry {
        Entry {
            ts: Utc.timestamp_nanos(ts),
            stream,
            bytes: b"x".to_vec(),
            partial,
        }
    }

    #[test]
    fn skipper_skips_delivered_lines_per_stream() {
        let pos = ContainerPos {
            stdout: StreamPos {
                ts: 100,
                lines_at_ts: 2,
            },
            stderr: StreamPos::default(),
            seq: 7,
        };
        let mut s = Skipper::new(&pos);
        assert!(!s.keep(&entry(Stream::Stdout, 90, false)), "older");
        assert!(
            s.keep(&entry(Stream::Stderr, 50, false)),
            "stderr had nothing delivered"
        );
        assert!(
            !s.keep(&entry(Stream::Stdout, 100, true)),
            "chunk of the 1st line at ts"
        );
        assert!(
            !s.keep(&entry(Stream::Stdout, 100, false)),
            "1st line at ts"
        );
        assert!(
            !s.keep(&entry(Stream::Stdout, 100, false)),
            "2nd line at ts"
        );
        assert!(
            s.keep(&entry(Stream::Stdout, 100, false)),
            "3rd line at ts is new"
        );
        assert!(
            !s.keep(&entry(Stream::Stdout, 99, false)),
            "older than what went through"
        );
        assert!(
            !s.keep(&entry(Stream::Stdout, 100, false)),
            "replayed 3rd line"
        );
        assert!(s.keep(&entry(Stream::Stdout, 101, false)), "new");
        assert_eq!(s.rewinds, 1);
    }
}
