//! The audit trail: one record per write request (every method but GET/HEAD, and login
//! attempts), kept in a bounded buffer (`GET /api/audit`) and published as an `audit` event
//! on `drover.events.v1`. With a data dir it is also appended to `auth/audit.jsonl` (one
//! JSON record a line, rotated to `audit.jsonl.1` past 16 MiB), and the newest records are
//! read back from there at start, so `GET /api/audit` survives a restart. A record names the token (never the token itself), the role, the
//! method and path (no query string: it may carry secrets), the status and the source.
use std::{
    collections::{BTreeMap, VecDeque},
    io::Write as _,
    path::{Path, PathBuf},
    sync::Mutex,
};

use chrono::{DateTime, Utc};
use drover_schema::{Event, EventSource, Severity};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// One audited request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When it was answered.
    pub ts: DateTime<Utc>,
    /// The token's name (`cluster`, `anonymous` when auth is off, `-` when none was valid).
    pub who: String,
    /// Its role, when it had one.
    pub role: Option<String>,
    /// `bearer`, `session` or `none`.
    pub via: String,
    /// The method.
    pub method: String,
    /// The path (no query string).
    pub path: String,
    /// The answer's status code.
    pub status: u16,
    /// The client's address, when known.
    pub source: Option<String>,
}

impl AuditRecord {
    /// The record as an event for `drover.events.v1` (kind `audit`).
    pub fn to_event(&self) -> Event {
        let mut attrs = BTreeMap::new();
        attrs.insert("who".into(), self.who.clone().into());
        if let Some(r) = &self.role {
            attrs.insert("role".into(), r.clone().into());
        }
        attrs.insert("via".into(), self.via.clone().into());
        attrs.insert("method".into(), self.method.clone().into());
        attrs.insert("path".into(), self.path.clone().into());
        attrs.insert("status".into(), self.status.into());
        if let Some(s) = &self.source {
            attrs.insert("source".into(), s.clone().into());
        }
        Event {
            v: drover_schema::SCHEMA_VERSION,
            ts: self.ts,
            id: uuid::Uuid::new_v4().to_string(),
            source: EventSource::Auth,
            kind: "audit".into(),
            severity: if self.status == 401 || self.status == 403 {
                Severity::Warning
            } else {
                Severity::Info
            },
            app: None,
            task: None,
            node: None,
            message: format!(
                "{} {} {} by {}",
                self.method, self.path, self.status, self.who
            ),
            attrs,
        }
    }
}

/// The newest records (bounded), and where they are published.
#[derive(Debug)]
pub struct AuditLog {
    capacity: usize,
    records: Mutex<VecDeque<AuditRecord>>,
    events: Option<mpsc::UnboundedSender<Event>>,
    /// The file records are appended to, when there is a data dir.
    file: Option<Mutex<AuditFile>>,
}

/// `audit.jsonl`, kept open between records (one `write` per record).
#[derive(Debug)]
struct AuditFile {
    path: PathBuf,
    /// Open for appending; `None` until the first record, or after an error (reopened then).
    out: Option<std::fs::File>,
    /// Its size, to rotate without asking the file system on every record.
    len: u64,
    /// Size past which it is rotated.
    rotate_at: u64,
}

impl AuditFile {
    fn append(&mut self, line: &[u8]) -> std::io::Result<()> {
        let mut out = match self.out.take() {
            Some(f) => f,
            None => self.open()?,
        };
        if self.len >= self.rotate_at {
            drop(out);
            std::fs::rename(&self.path, rotated(&self.path))?;
            out = self.open()?;
        }
        out.write_all(line)?;
        self.len += line.len() as u64;
        // Kept open only after a good write: an error reopens it next time.
        self.out = Some(out);
        Ok(())
    }

    fn open(&mut self) -> std::io::Result<std::fs::File> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.len = f.metadata()?.len();
        Ok(f)
    }
}

/// Size past which `audit.jsonl` is renamed to `audit.jsonl.1` (the one before is dropped).
const ROTATE_AT: u64 = 16 << 20;

impl AuditLog {
    /// Keep the newest `capacity` records; publish each on `events` when given.
    pub fn new(capacity: usize, events: Option<mpsc::UnboundedSender<Event>>) -> Self {
        Self {
            capacity: capacity.max(1),
            records: Mutex::default(),
            events,
            file: None,
        }
    }

    /// Like [`AuditLog::new`], also appending every record to `file` (created when missing),
    /// and starting with the newest `capacity` records already in it. A line that cannot be
    /// read (one cut by a crash) is skipped and counted in a warning.
    pub fn durable(
        capacity: usize,
        events: Option<mpsc::UnboundedSender<Event>>,
        file: PathBuf,
    ) -> Self {
        let mut log = Self::new(capacity, events);
        let mut kept = VecDeque::new();
        let mut unreadable = 0usize;
        for path in [rotated(&file), file.clone()] {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            if path == file && !text.is_empty() && !text.ends_with('\n') {
                // A line cut by a crash: end it, so the next record starts a line of its own.
                if let Err(e) = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .and_then(|mut f| f.write_all(b"\n"))
                {
                    tracing::warn!(file = %path.display(), error = %e, "cannot end the audit file's last line");
                }
            }
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                match serde_json::from_str::<AuditRecord>(line) {
                    Ok(r) => {
                        if kept.len() == log.capacity {
                            kept.pop_front();
                        }
                        kept.push_back(r);
                    }
                    Err(_) => unreadable += 1,
                }
            }
        }
        if unreadable > 0 {
            tracing::warn!(file = %file.display(), lines = unreadable, "audit lines that cannot be read were skipped");
        }
        log.records = Mutex::new(kept);
        log.file = Some(Mutex::new(AuditFile {
            path: file,
            out: None,
            len: 0,
            rotate_at: ROTATE_AT,
        }));
        log
    }

    /// Record `r`.
    pub fn record(&self, r: AuditRecord) {
        tracing::info!(
            who = %r.who,
            role = r.role.as_deref().unwrap_or("-"),
            method = %r.method,
            path = %r.path,
            status = r.status,
            source = r.source.as_deref().unwrap_or("-"),
            "audit"
        );
        if let Some(tx) = &self.events {
            let _ = tx.send(r.to_event());
        }
        if let Some(f) = &self.file {
            let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
            let mut line = serde_json::to_vec(&r).unwrap_or_default();
            line.push(b'\n');
            if let Err(e) = f.append(&line) {
                // The request is answered anyway: the event and the log line above hold it.
                tracing::warn!(file = %f.path.display(), error = %e, "cannot append to the audit file");
            }
        }
        let mut q = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == self.capacity {
            q.pop_front();
        }
        q.push_back(r);
    }

    /// The newest `limit` records, newest first.
    pub fn recent(&self, limit: usize) -> Vec<AuditRecord> {
        let q = self.records.lock().unwrap_or_else(|p| p.into_inner());
        q.iter().rev().take(limit).cloned().collect()
    }
}

fn rotated(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(path: &str, status: u16) -> AuditRecord {
        AuditRecord {
            ts: Utc::now(),
            who: "ci".into(),
            role: Some("operator".into()),
            via: "bearer".into(),
            method: "POST".into(),
            path: path.into(),
            status,
            source: Some("127.0.0.1:5000".into()),
        }
    }

    #[test]
    fn bounded_newest_first_and_published() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let log = AuditLog::new(2, Some(tx));
        log.record(rec("/a", 200));
        log.record(rec("/b", 403));
        log.record(rec("/c", 201));
        let paths: Vec<_> = log.recent(10).into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["/c", "/b"]);
        let e = rx.try_recv().unwrap();
        assert_eq!(e.kind, "audit");
        assert_eq!(e.source, EventSource::Auth);
        assert_eq!(e.attrs["path"], "/a");
        let e = rx.try_recv().unwrap();
        assert_eq!(e.severity, Severity::Warning);
    }

    #[test]
    fn a_durable_log_is_read_back_after_a_restart_and_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth").join("audit.jsonl");
        let log = AuditLog::durable(2, None, file.clone());
        assert!(log.recent(10).is_empty(), "no file yet: empty");
        log.record(rec("/a", 200));
        log.record(rec("/b", 403));
        log.record(rec("/c", 201));
        drop(log);
        // A line cut by a crash is skipped, the rest read back: the newest `capacity`.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap()
            .write_all(b"{\"ts\":\"2026-")
            .unwrap();
        let again = AuditLog::durable(2, None, file.clone());
        let paths: Vec<_> = again.recent(10).into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["/c", "/b"]);
        // The cut line was ended: the next record is a line of its own.
        again.record(rec("/c2", 200));
        let paths: Vec<_> = AuditLog::durable(2, None, file.clone())
            .recent(10)
            .into_iter()
            .map(|r| r.path)
            .collect();
        assert_eq!(paths, ["/c2", "/c"]);
        // Past the size limit the file is rotated; both files are read back.
        let small = AuditLog::durable(10, None, file.clone());
        small.file.as_ref().unwrap().lock().unwrap().rotate_at = 1;
        small.record(rec("/d", 200));
        assert!(rotated(&file).exists());
        let lines = std::fs::read_to_string(&file).unwrap();
        assert_eq!(lines.lines().count(), 1, "{lines}");
        let back: Vec<_> = AuditLog::durable(10, None, file)
            .recent(10)
            .into_iter()
            .map(|r| r.path)
            .collect();
        assert_eq!(back, ["/d", "/c2", "/c", "/b", "/a"]);
    }
}
