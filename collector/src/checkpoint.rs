//! Where each container's log stream was delivered up to.
//!
//! A position is advanced only by a Kafka delivery acknowledgement, so it never runs ahead
//! of what the topic holds. It is saved to one file (atomically: write, fsync, rename) every
//! second and at shutdown. The records acknowledged after the last save and before a crash
//! are found again at start by reading the logs topic from the offsets saved with the
//! positions ([`Checkpoints::recover`] in `sink.rs`), so a restart neither repeats nor loses
//! a line.
use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};
use drover_schema::{LogRecord, Stream};
use serde::{Deserialize, Serialize};

/// How far one stream (stdout or stderr) of a container was delivered: the timestamp of the
/// last delivered Docker log entry and how many complete lines ended at exactly that
/// timestamp (Docker timestamps can repeat, and all 16 KB chunks of a long line share one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPos {
    /// Unix nanoseconds of the last delivered entry; 0 = nothing delivered.
    pub ts: i64,
    /// Complete lines delivered that ended at `ts`.
    pub lines_at_ts: u32,
}

impl StreamPos {
    /// The position after delivering a record that started at `ts`, ended at `end_ts`, and
    /// holds `lines` lines.
    pub fn after(self, ts: i64, end_ts: i64, lines: u32) -> StreamPos {
        // Lines that ended exactly at end_ts: all of them when the record has one timestamp,
        // else (we do not know each line's timestamp) the last one.
        let at_end = if ts == end_ts { lines.max(1) } else { 1 };
        if end_ts == self.ts {
            StreamPos {
                ts: end_ts,
                lines_at_ts: self.lines_at_ts + at_end,
            }
        } else {
            StreamPos {
                ts: end_ts,
                lines_at_ts: at_end,
            }
        }
    }

    /// The position after a record read back from the topic.
    pub fn after_record(self, rec: &LogRecord) -> StreamPos {
        let ts = nanos(rec.ts);
        let end = rec.end_ts.map_or(ts, nanos);
        let lines = rec.line.split('\n').count() as u32;
        self.after(ts, end, lines)
    }
}

/// Unix nanoseconds of a timestamp (saturating outside ±292 years).
pub fn nanos(ts: DateTime<Utc>) -> i64 {
    ts.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Delivery state of one container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerPos {
    /// Position of the stdout stream.
    pub stdout: StreamPos,
    /// Position of the stderr stream.
    pub stderr: StreamPos,
    /// Sequence number of the last delivered record (0 = none).
    pub seq: u64,
}

impl ContainerPos {
    /// The position of one stream.
    pub fn stream(&self, s: Stream) -> StreamPos {
        match s {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        }
    }

    /// Record a delivered record's position.
    pub fn advance(&mut self, s: Stream, pos: StreamPos, seq: u64) {
        let slot = match s {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        if (pos.ts, pos.lines_at_ts) > (slot.ts, slot.lines_at_ts) {
            *slot = pos;
        }
        self.seq = self.seq.max(seq);
    }

    /// The earliest position of the two streams, in whole seconds, for Docker's `since`.
    pub fn since_secs(&self) -> i64 {
        let min = self.stdout.ts.min(self.stderr.ts);
        if min <= 0 {
            0
        } else {
            min / 1_000_000_000
        }
    }
}

/// Everything saved: per container positions and, per logs-topic partition, the offset of
/// the last acknowledged record covered by them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoints {
    /// File format version.
    #[serde(default = "one")]
    pub v: u32,
    /// When this state was saved (Unix seconds).
    #[serde(default)]
    pub saved_at: i64,
    /// Container ID → delivery position.
    #[serde(default)]
    pub containers: BTreeMap<String, ContainerPos>,
    /// Logs-topic partition → offset of the last acknowledged record (positions cover
    /// every record up to and including it).
    #[serde(default)]
    pub partitions: BTreeMap<i32, i64>,
}

fn one() -> u32 {
    1
}

/// Why the checkpoint file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing the file failed.
    #[error("checkpoint file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a checkpoint file this build reads.
    #[error("checkpoint file {path} is unreadable ({source}); move it away to start over (the collector then re-reads only what Docker still holds since its last start)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
}

impl Checkpoints {
    /// Load the file, or an empty state when it does not exist.
    pub fn load(path: &Path) -> Result<Option<Checkpoints>, CheckpointError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|source| {
                CheckpointError::Corrupt {
                    path: path.to_path_buf(),
                    source,
                }
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CheckpointError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Save atomically: a crash leaves either the old or the new file, never half of one.
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(self).expect("checkpoints serialise");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(())
    }

    /// Fold a record read back from the topic (acknowledged after the last save) into the
    /// positions.
    pub fn apply_record(&mut self, rec: &LogRecord) {
        let pos = self
            .containers
            .entry(rec.source.container_id.clone())
            .or_default();
        // Only the next record in sequence: after a gap (a record Kafka refused and the
        // collector had not sent again), stop, so the gap is re-read rather than skipped.
        if rec.seq != pos.seq + 1 {
            return;
        }
        let next = pos.stream(rec.stream).after_record(rec);
        pos.advance(rec.stream, next, rec.seq);
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn lines_at_the_same_timestamp_add_up() {
        let p = StreamPos::default().after(10, 10, 1);
        assert_eq!(
            p,
            StreamPos {
                ts: 10,
                lines_at_ts: 1
            }
        );
        let p = p.after(10, 10, 1);
        assert_eq!(p.lines_at_ts, 2);
        let p = p.after(11, 12, 3);
        assert_eq!(
            p,
            StreamPos {
                ts: 12,
                lines_at_ts: 1
            }
        );
        let p = p.after(12, 12, 2);
        assert_eq!(
            p,
            StreamPos {
                ts: 12,
                lines_at_ts: 3
            }
        );
    }

    #[test]
    fn advance_never_goes_back() {
        let mut c = ContainerPos::default();
        c.advance(
            Stream::Stdout,
            StreamPos {
                ts: 5,
                lines_at_ts: 1,
            },
            3,
        );
        c.advance(
            Stream::Stdout,
            StreamPos {
                ts: 4,
                lines_at_ts: 9,
            },
            2,
        );
        assert_eq!(
            c.stdout,
            StreamPos {
                ts: 5,
                lines_at_ts: 1
            }
        );
        assert_eq!(c.seq, 3);
        assert_eq!(c.stderr, StreamPos::default());
        assert_eq!(
            c.since_secs(),
            0,
            "stderr has nothing delivered: read from the start"
        );
        c.advance(
            Stream::Stderr,
            StreamPos {
                ts: 7_500_000_000,
                lines_at_ts: 1,
            },
            4,
        );
        c.advance(
            Stream::Stdout,
            StreamPos {
                ts: 9_200_000_000,
                lines_at_ts: 1,
            },
            5,
        );
        assert_eq!(c.since_secs(), 7);
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/checkpoints.json");
        assert_eq!(Checkpoints::load(&path).unwrap(), None);
        let mut c = Checkpoints::default();
        c.containers.insert("abc".into(), ContainerPos::default());
        c.partitions.insert(2, 41);
        c.save(&path).unwrap();
        assert_eq!(Checkpoints::load(&path).unwrap(), Some(c));
    }

    #[test]
    fn corrupt_file_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints.json");
        std::fs::write(&path, "{not json").unwrap();
        let err = Checkpoints::load(&path).unwrap_err().to_string();
        assert!(err.contains("move it away"), "{err}");
    }

    #[test]
    fn records_read_back_advance_positions() {
        let mut c = Checkpoints::default();
        let mut rec = LogRecord {
            v: 1,
            ts: Utc.timestamp_nanos(100),
            end_ts: None,
            source: drover_schema::Source {
                container_id: "c1".into(),
                ..Default::default()
            },
            stream: Stream::Stderr,
            seq: 1,
            line: "a".into(),
        };
        c.apply_record(&rec);
        rec.seq = 2;
        c.apply_record(&rec);
        c.apply_record(&rec); // already applied: ignored
        let pos = &c.containers["c1"];
        assert_eq!(
            pos.stderr,
            StreamPos {
                ts: 100,
                lines_at_ts: 2
            }
        );
        assert_eq!(pos.seq, 2);
    }
}
