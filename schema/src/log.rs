use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{default_version, Source, Versioned};

/// Which output stream of the container a line was written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output (also every line of a TTY container).
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The stream's name as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One line (or one joined multi-line event) a container printed.
/// Topic `drover.logs.v1`, key = container ID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "LogRecordWire")]
pub struct LogRecord {
    /// Schema version, always [`crate::SCHEMA_VERSION`] when written by this build.
    #[serde(default = "default_version")]
    pub v: u32,
    /// When the container wrote the line (Docker's timestamp), RFC 3339 with nanoseconds.
    /// For a record joined from several Docker log entries (a line over 16 KB split by
    /// Docker, or a multi-line event), the first entry's timestamp.
    pub ts: DateTime<Utc>,
    /// For a joined record, the last entry's timestamp when it differs from `ts` (the
    /// collector resumes after it); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ts: Option<DateTime<Utc>>,
    /// Which app, task, node and container the line comes from.
    #[serde(flatten)]
    pub source: Source,
    /// `stdout` or `stderr`.
    pub stream: Stream,
    /// Per-container sequence number, increasing by one per record, kept across collector
    /// restarts: a consumer detects gaps and duplicates with it.
    pub seq: u64,
    /// The line without its trailing newline (lines of a joined multi-line event are
    /// separated by `\n`).
    pub line: String,
}

/// How a [`LogRecord`] is read: the same fields with the source's inline, since
/// `#[serde(flatten)]` makes serde buffer every field of the record first (a third of the
/// logpipe's decoding time).
#[derive(Deserialize)]
struct LogRecordWire {
    #[serde(default = "default_version")]
    v: u32,
    ts: DateTime<Utc>,
    #[serde(default)]
    end_ts: Option<DateTime<Utc>>,
    host: String,
    #[serde(default)]
    node: Option<String>,
    app: String,
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    group: Option<String>,
    container_id: String,
    container_name: String,
    #[serde(default)]
    image: String,
    stream: Stream,
    seq: u64,
    line: String,
}

impl From<LogRecordWire> for LogRecord {
    fn from(w: LogRecordWire) -> Self {
        LogRecord {
            v: w.v,
            ts: w.ts,
            end_ts: w.end_ts,
            source: Source {
                host: w.host,
                node: w.node,
                app: w.app,
                task: w.task,
                group: w.group,
                container_id: w.container_id,
                container_name: w.container_name,
                image: w.image,
            },
            stream: w.stream,
            seq: w.seq,
            line: w.line,
        }
    }
}

impl Versioned for LogRecord {
    fn version(&self) -> u32 {
        self.v
    }
}
