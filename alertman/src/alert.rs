//! The alert as it travels from evaluation to routing, the API and the store.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Label name → value; sorted, so equal sets compare and hash alike.
pub type LabelSet = BTreeMap<String, String>;

/// A label set's identity (Alertmanager's fingerprint): 64 bits, shown as 16 hex digits.
pub type Fingerprint = u64;

/// The label every alert carries: the rule's name.
pub const ALERTNAME: &str = "alertname";

/// The stable fingerprint of a label set (FNV-1a over the sorted names and values).
pub fn fingerprint(labels: &LabelSet) -> Fingerprint {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k
            .as_bytes()
            .iter()
            .chain(&[0xff])
            .chain(v.as_bytes())
            .chain(&[0xfe])
        {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// A fingerprint as Alertmanager prints it.
pub fn fingerprint_hex(fp: Fingerprint) -> String {
    format!("{fp:016x}")
}

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition does not hold.
    Inactive,
    /// The condition holds, for less than the rule's `for`.
    Pending,
    /// The condition has held for `for` (or held within `keep_firing_for`).
    Firing,
    /// It was firing and no longer is.
    Resolved,
    /// The rule's query found no data at all (a rule health, not an alert's).
    NoData,
    /// The rule's query failed (a rule health, not an alert's).
    Error,
}

impl AlertState {
    /// Its name in the API and the history.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
            AlertState::NoData => "nodata",
            AlertState::Error => "error",
        }
    }

    /// Parses [`AlertState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            AlertState::Inactive,
            AlertState::Pending,
            AlertState::Firing,
            AlertState::Resolved,
            AlertState::NoData,
            AlertState::Error,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// An alert handed to routing: from a rule of this Alertman, or posted by Prometheus
/// (`POST /api/v2/alerts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Its identity: `alertname`, the rule's labels, the group's labels.
    pub labels: LabelSet,
    /// Rendered annotations (`summary`, `description`, links).
    pub annotations: LabelSet,
    /// Since when it fires.
    pub starts_at: DateTime<Utc>,
    /// When it resolved (or, for a posted alert, when it resolves unless refreshed).
    pub ends_at: Option<DateTime<Utc>>,
    /// When it was last updated.
    pub updated_at: DateTime<Utc>,
    /// A link to what produced it.
    #[serde(default)]
    pub generator_url: String,
    /// The receivers it goes to (none: only the API and the UI show it).
    #[serde(default)]
    pub receivers: Vec<String>,
    /// The value that made it fire, last seen.
    #[serde(default)]
    pub value: Option<f64>,
    /// The rule, for alerts of this Alertman.
    #[serde(default)]
    pub rule: Option<String>,
}

impl Alert {
    /// Its fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        fingerprint(&self.labels)
    }

    /// Its `alertname`.
    pub fn name(&self) -> &str {
        self.labels.get(ALERTNAME).map(String::as_str).unwrap_or("")
    }

    /// Whether it is resolved at `now`.
    pub fn is_resolved(&self, now: DateTime<Utc>) -> bool {
        self.ends_at.is_some_and(|e| e <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_depend_on_the_labels_only_and_are_stable() {
        let a: LabelSet = [("alertname", "A"), ("app", "/x")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut b = a.clone();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        b.insert("app".into(), "/y".into());
        assert_ne!(fingerprint(&a), fingerprint(&b));
        // ("ab","") and ("a","b") must differ.
        let c: LabelSet = [("ab".to_string(), String::new())].into();
        let d: LabelSet = [("a".to_string(), "b".to_string())].into();
        assert_ne!(fingerprint(&c), fingerprint(&d));
        assert_eq!(fingerprint_hex(1), "0000000000000001");
        assert_eq!(AlertState::parse("firing"), Some(AlertState::Firing));
    }
}
