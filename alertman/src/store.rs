//! Alertman's state in one embedded redb file (`<data-dir>/alertman/alertman.redb`): the
//! active alerts (routing's and each rule's, so `for` timers and firing alerts survive), the
//! silences, the notification log, and the history of every transition, notification, action
//! and silence change (kept `history_retention`, 30 days by default). Each evaluation's
//! changes are written in one transaction.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use chrono::{DateTime, Utc};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::{
    alert::{Alert, Fingerprint, LabelSet},
    eval::RuleAlert,
    route::NflogEntry,
    silence::Silence,
    AlertmanError,
};

const ALERTS: TableDefinition<u64, &[u8]> = TableDefinition::new("alerts");
const RULE_ALERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("rule_alerts");
const SILENCES: TableDefinition<&str, &[u8]> = TableDefinition::new("silences");
const NFLOG: TableDefinition<&str, &[u8]> = TableDefinition::new("nflog");
const HISTORY: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("history");

/// What a history entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    /// An alert (or a rule's health) changed state.
    Transition,
    /// A notification was delivered or failed.
    Notification,
    /// An action was taken, dry-run, or refused by the caps.
    Action,
    /// A silence was created, changed or expired.
    Silence,
    /// Rules were (re)loaded, or a reload was refused.
    Rules,
}

/// One entry of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When.
    pub ts: DateTime<Utc>,
    /// What.
    pub kind: HistoryKind,
    /// The rule (alert name), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The app, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The new state: pending/firing/resolved/inactive/nodata/error (transitions),
    /// sent/failed (notifications), done/dry_run/refused/failed (actions),
    /// created/expired (silences), loaded/refused (rules).
    pub state: String,
    /// The previous state, for transitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The alert's labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: LabelSet,
    /// The value at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The receiver (notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    /// For a person.
    pub message: String,
}

/// A history question.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// From (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// To (inclusive).
    pub to: Option<DateTime<Utc>>,
    /// Only this rule.
    pub rule: Option<String>,
    /// Only this app.
    pub app: Option<String>,
    /// Only this state.
    pub state: Option<String>,
    /// Only this kind.
    pub kind: Option<HistoryKind>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// What the store held at start.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Routing's alerts.
    pub alerts: Vec<Alert>,
    /// Each rule's alerts.
    pub rule_alerts: BTreeMap<String, BTreeMap<Fingerprint, RuleAlert>>,
    /// Silences.
    pub silences: Vec<Silence>,
    /// The notification log.
    pub nflog: BTreeMap<String, NflogEntry>,
}

/// Changes to write in one transaction.
#[derive(Debug, Default)]
pub struct Changes {
    /// Routing's alerts (`None`: gone).
    pub alerts: Vec<(Fingerprint, Option<Alert>)>,
    /// Every rule's alerts, replacing what is stored (`None`: unchanged).
    pub rule_alerts: Option<BTreeMap<String, BTreeMap<Fingerprint, RuleAlert>>>,
    /// Silences added or changed.
    pub silences: Vec<Silence>,
    /// Silences removed.
    pub silences_removed: Vec<String>,
    /// Notification log entries (`None`: gone).
    pub nflog: Vec<(String, Option<NflogEntry>)>,
    /// New history entries.
    pub history: Vec<HistoryEntry>,
}

impl Changes {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
            && self.rule_alerts.is_none()
            && self.silences.is_empty()
            && self.silences_removed.is_empty()
            && self.nflog.is_empty()
            && self.history.is_empty()
    }
}

/// The store.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
    seq: AtomicU64,
}

impl Store {
    /// Opens (or creates) the store file.
    pub fn open(path: &Path) -> Result<Self, AlertmanError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| AlertmanError::Store {
                path: dir.display().to_string(),
                message: e.to_string(),
            })?;
        }
        let db = Database::create(path).map_err(|e| AlertmanError::Store {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let s = Self {
            db,
            path: path.to_path_buf(),
            // Unique across restarts within one millisecond.
            seq: AtomicU64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0),
            ),
        };
        // Create the tables, so readers never meet a missing one.
        s.write(|tx| {
            tx.open_table(ALERTS)?;
            tx.open_table(RULE_ALERTS)?;
            tx.open_table(SILENCES)?;
            tx.open_table(NFLOG)?;
            tx.open_table(HISTORY)?;
            Ok(())
        })?;
        Ok(s)
    }

    fn err(&self, e: impl std::fmt::Display) -> AlertmanError {
        AlertmanError::Store {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), Box<dyn std::error::Error>>,
    ) -> Result<(), AlertmanError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        f(&tx).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// Everything needed to resume.
    pub fn load(&self) -> Result<Loaded, AlertmanError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let mut out = Loaded::default();
        let bad = |what: &str, e: serde_json::Error| {
            tracing::warn!(what, error = %e, "unreadable stored entry skipped");
        };
        let t = tx.open_table(ALERTS).map_err(|e| self.err(e))?;
        for row in t.iter().map_err(|e| self.err(e))? {
            let (_, v) = row.map_err(|e| self.err(e))?;
            match serde_json::from_slice(v.value()) {
                Ok(a) => out.alerts.push(a),
                Err(e) => bad("alert", e),
            }
        }
        let t = tx.open_table(RULE_ALERTS).map_err(|e| self.err(e))?;
        for row in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let key = k.value().to_string();
            let Some((rule, fp)) = key.rsplit_once('\u{0}') else {
                continue;
            };
            let Ok(fp) = u64::from_str_radix(fp, 16) else {
                continue;
            };
            match serde_json::from_slice::<RuleAlert>(v.value()) {
                Ok(a) => {
                    out.rule_alerts
                        .entry(rule.to_string())
                        .or_default()
                        .insert(fp, a);
                }
                Err(e) => bad("rule alert", e),
            }
        }
        let t = tx.open_table(SILENCES).map_err(|e| self.err(e))?;
        for row in t.iter().map_err(|e| self.err(e))? {
            let (_, v) = row.map_err(|e| self.err(e))?;
            match serde_json::from_slice(v.value()) {
                Ok(s) => out.silences.push(s),
                Err(e) => bad("silence", e),
            }
        }
        let t = tx.open_table(NFLOG).map_err(|e| self.err(e))?;
        for row in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            match serde_json::from_slice(v.value()) {
                Ok(n) => {
                    out.nflog.insert(k.value().to_string(), n);
                }
                Err(e) => bad("notification log entry", e),
            }
        }
        Ok(out)
    }

    /// Writes the changes in one transaction.
    pub fn save(&self, c: &Changes) -> Result<(), AlertmanError> {
        if c.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            {
                let mut t = tx.open_table(ALERTS)?;
                for (fp, a) in &c.alerts {
                    match a {
                        Some(a) => {
                            t.insert(*fp, serde_json::to_vec(a)?.as_slice())?;
                        }
                        None => {
                            t.remove(*fp)?;
                        }
                    }
                }
            }
            if let Some(all) = &c.rule_alerts {
                let mut t = tx.open_table(RULE_ALERTS)?;
                t.retain(|_, _| false)?;
                for (rule, alerts) in all {
                    for (fp, a) in alerts {
                        let key = format!("{rule}\u{0}{fp:016x}");
                        t.insert(key.as_str(), serde_json::to_vec(a)?.as_slice())?;
                    }
                }
            }
            {
                let mut t = tx.open_table(SILENCES)?;
                for s in &c.silences {
                    t.insert(s.id.as_str(), serde_json::to_vec(s)?.as_slice())?;
                }
                for id in &c.silences_removed {
                    t.remove(id.as_str())?;
                }
            }
            {
                let mut t = tx.open_table(NFLOG)?;
                for (k, e) in &c.nflog {
                    match e {
                        Some(e) => {
                            t.insert(k.as_str(), serde_json::to_vec(e)?.as_slice())?;
                        }
                        None => {
                            t.remove(k.as_str())?;
                        }
                    }
                }
            }
            {
                let mut t = tx.open_table(HISTORY)?;
                for h in &c.history {
                    let ts = u64::try_from(h.ts.timestamp_millis()).unwrap_or(0);
                    let seq = self.seq.fetch_add(1, Ordering::Relaxed);
                    t.insert((ts, seq), serde_json::to_vec(h)?.as_slice())?;
                }
            }
            Ok(())
        })
    }

    /// History entries matching `q`, newest first.
    pub fn history(&self, q: &HistoryQuery) -> Result<Vec<HistoryEntry>, AlertmanError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(HISTORY).map_err(|e| self.err(e))?;
        let from = q
            .from
            .map_or(0, |t| u64::try_from(t.timestamp_millis()).unwrap_or(0));
        let to = q.to.map_or(u64::MAX, |t| {
            u64::try_from(t.timestamp_millis()).unwrap_or(0)
        });
        let limit = if q.limit == 0 { 1000 } else { q.limit };
        let mut out = Vec::new();
        for row in t
            .range((from, 0)..=(to, u64::MAX))
            .map_err(|e| self.err(e))?
            .rev()
        {
            let (_, v) = row.map_err(|e| self.err(e))?;
            let Ok(h) = serde_json::from_slice::<HistoryEntry>(v.value()) else {
                continue;
            };
            if q.rule.as_ref().is_some_and(|r| h.rule.as_ref() != Some(r))
                || q.app.as_ref().is_some_and(|a| h.app.as_ref() != Some(a))
                || q.state.as_ref().is_some_and(|s| &h.state != s)
                || q.kind.is_some_and(|k| h.kind != k)
            {
                continue;
            }
            out.push(h);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Removes history older than `before`; returns how many entries.
    pub fn prune_history(&self, before: DateTime<Utc>) -> Result<u64, AlertmanError> {
        let cutoff = u64::try_from(before.timestamp_millis()).unwrap_or(0);
        let mut n = 0;
        self.write(|tx| {
            let mut t = tx.open_table(HISTORY)?;
            let keys: Vec<(u64, u64)> = t
                .range((0, 0)..(cutoff, 0))?
                .filter_map(|r| r.ok().map(|(k, _)| k.value()))
                .collect();
            for k in keys {
                t.remove(k)?;
                n += 1;
            }
            Ok(())
        })?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use drover_schema::time::{Clock as _, ManualClock};

    use super::*;
    use crate::{alert::AlertState, matcher::Matcher};

    fn entry(ts: DateTime<Utc>, rule: &str, app: &str, state: &str) -> HistoryEntry {
        HistoryEntry {
            ts,
            kind: HistoryKind::Transition,
            rule: Some(rule.into()),
            app: Some(app.into()),
            state: state.into(),
            from: None,
            labels: LabelSet::new(),
            value: None,
            receiver: None,
            message: String::new(),
        }
    }

    #[test]
    fn state_survives_a_reopen_and_history_is_queryable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alertman/alertman.redb");
        let clock = ManualClock::at_ms(1_800_000_000_000);
        let now = clock.now();
        let alert = Alert {
            labels: [("alertname".to_string(), "A".to_string())].into(),
            annotations: LabelSet::new(),
            starts_at: now,
            ends_at: None,
            updated_at: now,
            generator_url: String::new(),
            receivers: vec!["ops".into()],
            value: Some(2.0),
            rule: Some("A".into()),
        };
        let ra = RuleAlert {
            labels: alert.labels.clone(),
            state: AlertState::Firing,
            active_at: now,
            fired_at: Some(now),
            last_true: now,
            value: Some(2.0),
            annotations: LabelSet::new(),
        };
        let sil = Silence {
            id: "s1".into(),
            matchers: vec![Matcher::eq("alertname", "A")],
            starts_at: now,
            ends_at: now + chrono::Duration::hours(1),
            created_by: "ana".into(),
            comment: "c".into(),
            updated_at: now,
        };
        {
            let s = Store::open(&path).unwrap();
            let mut c = Changes {
                alerts: vec![(alert.fingerprint(), Some(alert.clone()))],
                rule_alerts: Some(
                    [("A".to_string(), [(alert.fingerprint(), ra.clone())].into())].into(),
                ),
                silences: vec![sil.clone()],
                ..Changes::default()
            };
            for i in 0..10 {
                let t = now + chrono::Duration::minutes(i);
                c.history.push(entry(
                    t,
                    if i % 2 == 0 { "A" } else { "B" },
                    "/x",
                    if i < 5 { "pending" } else { "firing" },
                ));
            }
            s.save(&c).unwrap();
        }
        let s = Store::open(&path).unwrap();
        let l = s.load().unwrap();
        assert_eq!(l.alerts, std::slice::from_ref(&alert));
        assert_eq!(l.rule_alerts["A"][&alert.fingerprint()], ra);
        assert_eq!(l.silences, [sil]);
        let h = s
            .history(&HistoryQuery {
                rule: Some("A".into()),
                state: Some("firing".into()),
                ..HistoryQuery::default()
            })
            .unwrap();
        assert_eq!(h.len(), 2, "i = 6, 8");
        assert!(h[0].ts > h[1].ts, "newest first");
        let h = s
            .history(&HistoryQuery {
                from: Some(now + chrono::Duration::minutes(3)),
                to: Some(now + chrono::Duration::minutes(4)),
                ..HistoryQuery::default()
            })
            .unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(
            s.prune_history(now + chrono::Duration::minutes(5)).unwrap(),
            5
        );
        assert_eq!(s.history(&HistoryQuery::default()).unwrap().len(), 5);
        // Removing.
        s.save(&Changes {
            alerts: vec![(alert.fingerprint(), None)],
            rule_alerts: Some(BTreeMap::new()),
            silences_removed: vec!["s1".into()],
            ..Changes::default()
        })
        .unwrap();
        let l = s.load().unwrap();
        assert!(l.alerts.is_empty() && l.rule_alerts.is_empty() && l.silences.is_empty());
    }
}
