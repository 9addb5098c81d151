//! Silences, as Alertmanager's: matchers, a start and an end, an author and a comment. An
//! active silence mutes the notifications of the alerts it matches; expiring one sets its end
//! to now. Expired silences are kept (for the record) until `retention` after their end.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    alert::LabelSet,
    matcher::{self, CompiledMatcher, Matcher},
};

/// A silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    /// Its ID (a UUID).
    pub id: String,
    /// The alerts it mutes match all of these.
    pub matchers: Vec<Matcher>,
    /// From.
    pub starts_at: DateTime<Utc>,
    /// Until.
    pub ends_at: DateTime<Utc>,
    /// Who.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Where a silence is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    /// Starts later.
    Pending,
    /// Mutes now.
    Active,
    /// Over.
    Expired,
}

impl Silence {
    /// Its state at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> SilenceState {
        if now >= self.ends_at {
            SilenceState::Expired
        } else if now < self.starts_at {
            SilenceState::Pending
        } else {
            SilenceState::Active
        }
    }

    /// Checks it can be stored: matchers (at least one, regexes compile), end after start.
    pub fn validate(&self) -> Result<Vec<CompiledMatcher>, String> {
        if self.matchers.is_empty() {
            return Err("a silence needs at least one matcher (e.g. alertname=\"HighCpu\")".into());
        }
        if self.ends_at <= self.starts_at {
            return Err("endsAt must be after startsAt".into());
        }
        if self.matchers.iter().all(|m| {
            m.compile()
                .map(|c| c.matches(&LabelSet::new()))
                .unwrap_or(false)
        }) {
            return Err("the matchers match every alert (even one with no labels): add a matcher that names something".into());
        }
        self.matchers.iter().map(Matcher::compile).collect()
    }
}

/// The silences.
#[derive(Debug, Clone, Default)]
pub struct Silences {
    by_id: BTreeMap<String, (Silence, Vec<CompiledMatcher>)>,
}

impl Silences {
    /// From stored silences (ones that no longer validate are skipped with a warning).
    pub fn from_stored(list: Vec<Silence>) -> Self {
        let mut s = Self::default();
        for sil in list {
            match sil.validate() {
                Ok(c) => {
                    s.by_id.insert(sil.id.clone(), (sil, c));
                }
                Err(e) => tracing::warn!(silence = %sil.id, error = %e, "stored silence skipped"),
            }
        }
        s
    }

    /// Adds a silence, or updates it when `id` names an existing one (Alertmanager expires the
    /// old one and creates a new one when the matchers change; here a silence is updated in
    /// place). Returns the stored silence.
    pub fn upsert(&mut self, mut s: Silence, now: DateTime<Utc>) -> Result<Silence, String> {
        if s.id.is_empty() {
            s.id = uuid::Uuid::new_v4().to_string();
        } else if !self.by_id.contains_key(&s.id) {
            return Err(format!(
                "no silence {}: leave the id out to create one",
                s.id
            ));
        } else if self.by_id[&s.id].0.state(now) == SilenceState::Expired {
            return Err(format!("the silence {} is expired: create a new one", s.id));
        }
        s.updated_at = now;
        let c = s.validate()?;
        self.by_id.insert(s.id.clone(), (s.clone(), c));
        Ok(s)
    }

    /// Expires a silence now. Returns it.
    pub fn expire(&mut self, id: &str, now: DateTime<Utc>) -> Result<Silence, String> {
        let (s, _) = self
            .by_id
            .get_mut(id)
            .ok_or_else(|| format!("no silence {id}: list them with drover alerts silences"))?;
        if s.state(now) == SilenceState::Expired {
            return Err(format!("the silence {id} is already expired"));
        }
        if s.starts_at > now {
            s.starts_at = now;
        }
        s.ends_at = now;
        s.updated_at = now;
        Ok(s.clone())
    }

    /// One silence.
    pub fn get(&self, id: &str) -> Option<&Silence> {
        self.by_id.get(id).map(|x| &x.0)
    }

    /// Every silence.
    pub fn all(&self) -> impl Iterator<Item = &Silence> {
        self.by_id.values().map(|x| &x.0)
    }

    /// IDs of the active silences that mute these labels at `now`.
    pub fn muting(&self, labels: &LabelSet, now: DateTime<Utc>) -> Vec<String> {
        self.by_id
            .values()
            .filter(|(s, c)| s.state(now) == SilenceState::Active && matcher::all_match(c, labels))
            .map(|(s, _)| s.id.clone())
            .collect()
    }

    /// Drops silences that ended more than `retention` before `now`; returns their IDs.
    pub fn gc(&mut self, now: DateTime<Utc>, retention: chrono::Duration) -> Vec<String> {
        let old: Vec<String> = self
            .by_id
            .values()
            .filter(|(s, _)| s.ends_at + retention < now)
            .map(|(s, _)| s.id.clone())
            .collect();
        for id in &old {
            self.by_id.remove(id);
        }
        old
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use drover_schema::time::{Clock as _, ManualClock};

    use super::*;

    fn silence(now: DateTime<Utc>, mins: i64) -> Silence {
        Silence {
            id: String::new(),
            matchers: vec![Matcher::eq("alertname", "HighCpu")],
            starts_at: now,
            ends_at: now + chrono::Duration::minutes(mins),
            created_by: "ana".into(),
            comment: "deploying".into(),
            updated_at: now,
        }
    }

    #[test]
    fn a_silence_mutes_until_it_expires_on_its_own() {
        let clock = ManualClock::at_ms(1_800_000_000_000);
        let mut s = Silences::default();
        let sil = s.upsert(silence(clock.now(), 60), clock.now()).unwrap();
        assert_eq!(sil.id.len(), 36);
        let hit: LabelSet = [("alertname".to_string(), "HighCpu".to_string())].into();
        let miss: LabelSet = [("alertname".to_string(), "Other".to_string())].into();
        assert_eq!(s.muting(&hit, clock.now()), std::slice::from_ref(&sil.id));
        assert!(s.muting(&miss, clock.now()).is_empty());
        clock.advance(Duration::from_secs(59 * 60 + 59));
        assert_eq!(s.muting(&hit, clock.now()).len(), 1);
        clock.advance(Duration::from_secs(1));
        assert!(s.muting(&hit, clock.now()).is_empty(), "expired at its end");
        assert_eq!(
            s.get(&sil.id).unwrap().state(clock.now()),
            SilenceState::Expired
        );
        // Kept for the record, then collected.
        assert!(s.gc(clock.now(), chrono::Duration::hours(1)).is_empty());
        clock.advance(Duration::from_secs(3601));
        assert_eq!(s.gc(clock.now(), chrono::Duration::hours(1)), [sil.id]);
    }

    #[test]
    fn pending_silences_start_later_and_expire_ends_them_now() {
        let clock = ManualClock::at_ms(1_800_000_000_000);
        let mut s = Silences::default();
        let mut later = silence(clock.now(), 60);
        later.starts_at = clock.now() + chrono::Duration::minutes(10);
        let sil = s.upsert(later, clock.now()).unwrap();
        let hit: LabelSet = [("alertname".to_string(), "HighCpu".to_string())].into();
        assert!(s.muting(&hit, clock.now()).is_empty());
        clock.advance(Duration::from_secs(600));
        assert_eq!(s.muting(&hit, clock.now()).len(), 1);
        let e = s.expire(&sil.id, clock.now()).unwrap();
        assert_eq!(e.ends_at, clock.now());
        assert!(s.muting(&hit, clock.now()).is_empty());
        assert!(s
            .expire(&sil.id, clock.now())
            .unwrap_err()
            .contains("already expired"));
        assert!(s
            .expire("nope", clock.now())
            .unwrap_err()
            .contains("no silence"));
    }

    #[test]
    fn bad_silences_are_refused() {
        let now = ManualClock::at_ms(1_800_000_000_000).now();
        let mut s = Silences::default();
        let mut empty = silence(now, 60);
        empty.matchers.clear();
        assert!(s
            .upsert(empty, now)
            .unwrap_err()
            .contains("at least one matcher"));
        let mut backwards = silence(now, 60);
        backwards.ends_at = now - chrono::Duration::minutes(1);
        assert!(s
            .upsert(backwards, now)
            .unwrap_err()
            .contains("after startsAt"));
        let mut all = silence(now, 60);
        all.matchers = vec![Matcher::parse("alertname=~\".*\"").unwrap()];
        assert!(s.upsert(all, now).unwrap_err().contains("every alert"));
    }
}
