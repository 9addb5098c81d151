//! The audit trail: one record per write request (every method but GET/HEAD, and login
//! attempts), kept in a bounded buffer (`GET /api/audit`) and published as an `audit` event
//! on `drover.events.v1`. A record names the token (never the token itself), the role, the
//! method and path (no query string: it may carry secrets), the status and the source.
use std::{
    collections::{BTreeMap, VecDeque},
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
}

impl AuditLog {
    /// Keep the newest `capacity` records; publish each on `events` when given.
    pub fn new(capacity: usize, events: Option<mpsc::UnboundedSender<Event>>) -> Self {
        Self {
            capacity: capacity.max(1),
            records: Mutex::default(),
            events,
        }
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
}
