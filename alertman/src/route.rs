//! Notification routing as Alertmanager does it: alerts are grouped per receiver by the
//! route's `group_by` labels; a new group waits `group_wait` before its first notification,
//! then changes are notified at most every `group_interval`, and an unchanged firing group is
//! notified again after `repeat_interval`. Silenced and inhibited alerts are left out. The
//! notification log (what each group was last told, and when) is what makes a restart repeat
//! nothing: it is persisted with the active alerts.
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    alert::{fingerprint_hex, Alert, Fingerprint, LabelSet},
    matcher,
    rules::{InhibitRule, Route},
    silence::Silences,
};

/// What a group was last told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NflogEntry {
    /// The receiver.
    pub receiver: String,
    /// The group's labels.
    pub group_labels: LabelSet,
    /// The firing alerts it was told about.
    pub firing: BTreeSet<Fingerprint>,
    /// The resolved alerts it was told about.
    pub resolved: BTreeSet<Fingerprint>,
    /// When.
    pub sent_at: DateTime<Utc>,
}

/// A notification to send.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    /// The receiver.
    pub receiver: String,
    /// The group's key (receiver and group labels).
    pub group_key: String,
    /// The group's labels.
    pub group_labels: LabelSet,
    /// `firing` when any alert fires, else `resolved`.
    pub status: &'static str,
    /// The alerts: firing ones, then resolved ones.
    pub alerts: Vec<Alert>,
    /// When it was decided.
    pub at: DateTime<Utc>,
    /// The log entry before this notification (restored if delivery fails).
    #[serde(skip)]
    pub previous: Option<NflogEntry>,
}

#[derive(Debug, Clone)]
struct Group {
    receiver: String,
    labels: LabelSet,
    alerts: BTreeSet<Fingerprint>,
    next_flush: DateTime<Utc>,
}

/// Why an alert is not notified.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Muted {
    /// Active silences that match it.
    pub silenced_by: Vec<String>,
    /// Firing alerts that inhibit it (fingerprints).
    pub inhibited_by: Vec<String>,
}

impl Muted {
    /// Whether it is muted at all.
    pub fn is_muted(&self) -> bool {
        !self.silenced_by.is_empty() || !self.inhibited_by.is_empty()
    }
}

/// The router: alerts, groups and the notification log.
#[derive(Debug)]
pub struct Router {
    route: Route,
    inhibit: Vec<InhibitRule>,
    send_resolved: BTreeMap<String, bool>,
    /// Every alert routing knows: firing ones, and resolved ones not yet notified.
    alerts: BTreeMap<Fingerprint, Alert>,
    groups: BTreeMap<String, Group>,
    nflog: BTreeMap<String, NflogEntry>,
    dirty_alerts: BTreeSet<Fingerprint>,
    dirty_nflog: BTreeSet<String>,
}

impl Router {
    /// A router with the persisted alerts and notification log; groups are formed again, so
    /// each waits `group_wait` once more — and the log keeps it from repeating itself.
    pub fn new(
        route: Route,
        inhibit: Vec<InhibitRule>,
        send_resolved: BTreeMap<String, bool>,
        alerts: Vec<Alert>,
        nflog: BTreeMap<String, NflogEntry>,
        now: DateTime<Utc>,
    ) -> Self {
        let mut r = Self {
            route,
            inhibit,
            send_resolved,
            alerts: BTreeMap::new(),
            groups: BTreeMap::new(),
            nflog,
            dirty_alerts: BTreeSet::new(),
            dirty_nflog: BTreeSet::new(),
        };
        r.ingest(alerts, now);
        r.dirty_alerts.clear();
        r
    }

    /// New configuration (reload): groups are formed again by the new `group_by`.
    pub fn configure(
        &mut self,
        route: Route,
        inhibit: Vec<InhibitRule>,
        send_resolved: BTreeMap<String, bool>,
        now: DateTime<Utc>,
    ) {
        let regroup = route.group_by != self.route.group_by;
        self.route = route;
        self.inhibit = inhibit;
        self.send_resolved = send_resolved;
        if regroup {
            let old = std::mem::take(&mut self.groups);
            let alerts: Vec<Alert> = self.alerts.values().cloned().collect();
            self.ingest(alerts, now);
            // Keep the timers of groups that still exist.
            for (k, g) in old {
                if let Some(n) = self.groups.get_mut(&k) {
                    n.next_flush = g.next_flush;
                }
            }
        }
    }

    /// The route in force.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// The group key of an alert for a receiver, and the group's labels.
    fn group_of(&self, receiver: &str, labels: &LabelSet) -> (String, LabelSet) {
        let gl: LabelSet = match &self.route.group_by {
            None => labels.clone(),
            Some(by) => by
                .iter()
                .filter_map(|k| labels.get(k).map(|v| (k.clone(), v.clone())))
                .collect(),
        };
        let key = format!(
            "{receiver}:{{{}}}",
            gl.iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        (key, gl)
    }

    /// Takes alerts in (new, updated, or resolved).
    pub fn ingest(&mut self, alerts: Vec<Alert>, now: DateTime<Utc>) {
        for a in alerts {
            let fp = a.fingerprint();
            if let Some(old) = self.alerts.get(&fp) {
                // A resolved alert that fires again starts anew.
                if old == &a {
                    continue;
                }
            }
            for r in &a.receivers {
                let (key, labels) = self.group_of(r, &a.labels);
                let wait = chrono::Duration::from_std(self.route.group_wait).unwrap_or_default();
                self.groups
                    .entry(key)
                    .or_insert_with(|| Group {
                        receiver: r.clone(),
                        labels,
                        alerts: BTreeSet::new(),
                        next_flush: now + wait,
                    })
                    .alerts
                    .insert(fp);
            }
            self.dirty_alerts.insert(fp);
            self.alerts.insert(fp, a);
        }
    }

    /// Every alert routing knows.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    /// The notification log.
    pub fn nflog(&self) -> &BTreeMap<String, NflogEntry> {
        &self.nflog
    }

    /// Alerts and log entries changed since the last call (to persist): changed alerts
    /// (`None`: removed) and changed entries (`None`: removed).
    #[allow(clippy::type_complexity)]
    pub fn take_dirty(
        &mut self,
    ) -> (
        Vec<(Fingerprint, Option<Alert>)>,
        Vec<(String, Option<NflogEntry>)>,
    ) {
        let a = std::mem::take(&mut self.dirty_alerts)
            .into_iter()
            .map(|fp| (fp, self.alerts.get(&fp).cloned()))
            .collect();
        let n = std::mem::take(&mut self.dirty_nflog)
            .into_iter()
            .map(|k| {
                let e = self.nflog.get(&k).cloned();
                (k, e)
            })
            .collect();
        (a, n)
    }

    /// Why an alert is muted at `now` (silences, and inhibition by firing alerts).
    pub fn muted(&self, a: &Alert, silences: &Silences, now: DateTime<Utc>) -> Muted {
        let mut m = Muted {
            silenced_by: silences.muting(&a.labels, now),
            inhibited_by: Vec::new(),
        };
        // A resolved alert is inhibited too (Alertmanager's inhibitor does not look at the
        // target's state): only the muting alert must be firing.
        let fp = a.fingerprint();
        for rule in &self.inhibit {
            if !matcher::all_match(&rule.target, &a.labels) {
                continue;
            }
            for (sfp, s) in &self.alerts {
                if *sfp == fp || s.is_resolved(now) || !matcher::all_match(&rule.source, &s.labels)
                {
                    continue;
                }
                if rule
                    .equal
                    .iter()
                    .all(|k| s.labels.get(k) == a.labels.get(k))
                {
                    m.inhibited_by.push(fingerprint_hex(*sfp));
                }
            }
        }
        m
    }

    /// The notifications due at `now`.
    pub fn flush(&mut self, now: DateTime<Utc>, silences: &Silences) -> Vec<Notification> {
        let due: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.next_flush <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let interval = chrono::Duration::from_std(self.route.group_interval).unwrap_or_default();
        let repeat = chrono::Duration::from_std(self.route.repeat_interval).unwrap_or_default();
        let mut out = Vec::new();
        for key in due {
            let Some(g) = self.groups.get(&key).cloned() else {
                continue;
            };
            let send_resolved = *self
                .send_resolved
                .get(&g.receiver)
                .unwrap_or(&self.route.send_resolved);
            let entry = self.nflog.get(&key).cloned();
            let mut firing = Vec::new();
            let mut resolved = Vec::new();
            // Firing, muted or not: a muted alert is not news when its silence ends.
            let mut active = BTreeSet::new();
            for fp in &g.alerts {
                let Some(a) = self.alerts.get(fp) else {
                    continue;
                };
                if !a.is_resolved(now) {
                    active.insert(*fp);
                }
                // As in Alertmanager, every resolved alert the group still holds goes with the
                // group's next notification, also one that fired and resolved between two
                // flushes (the receiver never heard it fire); muted ones, firing or
                // resolved, are left out.
                if self.muted(a, silences, now).is_muted() {
                    continue;
                }
                if a.is_resolved(now) {
                    resolved.push(a.clone());
                } else {
                    firing.push(a.clone());
                }
            }
            let firing_set: BTreeSet<Fingerprint> = firing.iter().map(Alert::fingerprint).collect();
            let resolved_set: BTreeSet<Fingerprint> =
                resolved.iter().map(Alert::fingerprint).collect();
            // Alertmanager's `needsUpdate`: a group never notified only when something fires;
            // then when an alert fires that it was not told about; when all its alerts
            // resolved (if it was told some fired), when one more resolved, or after
            // repeat_interval.
            let needs = match &entry {
                None => !firing.is_empty(),
                Some(e) => {
                    !firing_set.is_subset(&e.firing)
                        || if firing.is_empty() {
                            send_resolved && !resolved.is_empty() && !e.firing.is_empty()
                        } else {
                            (send_resolved && !resolved_set.is_subset(&e.resolved))
                                || now - e.sent_at >= repeat
                        }
                }
            };
            if needs {
                let status = if firing.is_empty() {
                    "resolved"
                } else {
                    "firing"
                };
                let mut alerts = firing;
                if send_resolved {
                    alerts.extend(resolved);
                }
                self.nflog.insert(
                    key.clone(),
                    NflogEntry {
                        receiver: g.receiver.clone(),
                        group_labels: g.labels.clone(),
                        firing: firing_set,
                        resolved: resolved_set,
                        sent_at: now,
                    },
                );
                self.dirty_nflog.insert(key.clone());
                out.push(Notification {
                    receiver: g.receiver.clone(),
                    group_key: key.clone(),
                    group_labels: g.labels.clone(),
                    status,
                    alerts,
                    at: now,
                    previous: entry,
                });
            } else if let Some(mut e) = entry {
                // Quietly forget alerts that stopped firing (notified without send_resolved),
                // so that firing again is news. Muted ones are still firing: kept, so a
                // silence that ends repeats nothing (as in Alertmanager).
                let kept: BTreeSet<Fingerprint> = e.firing.intersection(&active).copied().collect();
                if kept != e.firing {
                    e.firing = kept;
                    self.nflog.insert(key.clone(), e);
                    self.dirty_nflog.insert(key.clone());
                }
            }
            // Resolved alerts have had their say: they leave the group.
            let group = self.groups.get_mut(&key).expect("group");
            group.next_flush = now + interval;
            let alerts = &self.alerts;
            group
                .alerts
                .retain(|fp| alerts.get(fp).is_some_and(|a| !a.is_resolved(now)));
            if group.alerts.is_empty() {
                self.groups.remove(&key);
                if self.nflog.remove(&key).is_some() {
                    self.dirty_nflog.insert(key.clone());
                }
            }
        }
        // Resolved alerts no group holds any more are done.
        let held: BTreeSet<Fingerprint> = self
            .groups
            .values()
            .flat_map(|g| g.alerts.iter().copied())
            .collect();
        let done: Vec<Fingerprint> = self
            .alerts
            .iter()
            .filter(|(fp, a)| a.is_resolved(now) && !held.contains(fp))
            .map(|(fp, _)| *fp)
            .collect();
        for fp in done {
            self.alerts.remove(&fp);
            self.dirty_alerts.insert(fp);
        }
        out
    }

    /// A notification was not delivered: restore the log so the next flush tries again.
    pub fn delivery_failed(&mut self, n: &Notification) {
        match &n.previous {
            Some(p) => {
                self.nflog.insert(n.group_key.clone(), p.clone());
            }
            None => {
                self.nflog.remove(&n.group_key);
            }
        }
        self.dirty_nflog.insert(n.group_key.clone());
    }

    /// The next time a group is due (for the loop's sleep).
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.groups.values().map(|g| g.next_flush).min()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use drover_schema::time::{Clock as _, ManualClock};

    use super::*;
    use crate::{matcher::Matcher, silence::Silence};

    const T0: i64 = 1_800_000_000_000;

    fn alert(name: &str, app: &str, inst: &str, now: DateTime<Utc>) -> Alert {
        Alert {
            labels: [
                ("alertname", name),
                ("app", app),
                ("instance", inst),
                ("severity", "warning"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            annotations: LabelSet::new(),
            starts_at: now,
            ends_at: None,
            updated_at: now,
            generator_url: String::new(),
            receivers: vec!["ops".into()],
            value: Some(1.0),
            rule: Some(name.into()),
        }
    }

    fn router(clock: &ManualClock) -> Router {
        Router::new(
            Route {
                group_by: Some(vec!["alertname".into(), "app".into()]),
                ..Route::default()
            },
            Vec::new(),
            BTreeMap::new(),
            Vec::new(),
            BTreeMap::new(),
            clock.now(),
        )
    }

    fn names(ns: &[Notification]) -> Vec<(String, usize)> {
        ns.iter()
            .map(|n| (n.status.to_string(), n.alerts.len()))
            .collect()
    }

    #[test]
    fn group_wait_then_group_interval_then_repeat_interval() {
        let clock = ManualClock::at_ms(T0);
        let s = Silences::default();
        let mut r = router(&clock);
        r.ingest(vec![alert("A", "/x", "1", clock.now())], clock.now());
        assert!(r.flush(clock.now(), &s).is_empty(), "group_wait");
        clock.advance(Duration::from_secs(10));
        // A second alert of the same group joins the first notification.
        r.ingest(vec![alert("A", "/x", "2", clock.now())], clock.now());
        clock.advance(Duration::from_secs(19));
        assert!(r.flush(clock.now(), &s).is_empty(), "29s < group_wait");
        clock.advance(Duration::from_secs(1));
        let n = r.flush(clock.now(), &s);
        assert_eq!(names(&n), [("firing".into(), 2)]);
        assert_eq!(n[0].group_labels["app"], "/x");
        // A third alert waits for group_interval (5m after the flush).
        clock.advance(Duration::from_secs(60));
        r.ingest(vec![alert("A", "/x", "3", clock.now())], clock.now());
        assert!(r.flush(clock.now(), &s).is_empty());
        clock.advance(Duration::from_secs(239));
        assert!(r.flush(clock.now(), &s).is_empty(), "4m59s");
        clock.advance(Duration::from_secs(1));
        assert_eq!(names(&r.flush(clock.now(), &s)), [("firing".into(), 3)]);
        // Unchanged: nothing at each group_interval until repeat_interval (4h) has passed.
        let mut sent = 0;
        for _ in 0..(4 * 12 - 1) {
            clock.advance(Duration::from_secs(300));
            sent += r.flush(clock.now(), &s).len();
        }
        assert_eq!(sent, 0, "3h55m: no repeat");
        clock.advance(Duration::from_secs(300));
        assert_eq!(
            names(&r.flush(clock.now(), &s)),
            [("firing".into(), 3)],
            "4h: repeated"
        );
    }

    #[test]
    fn resolved_is_notified_by_default_and_the_group_then_ends() {
        let clock = ManualClock::at_ms(T0);
        let s = Silences::default();
        let mut r = router(&clock);
        let a = alert("A", "/x", "1", clock.now());
        r.ingest(vec![a.clone()], clock.now());
        clock.advance(Duration::from_secs(30));
        assert_eq!(r.flush(clock.now(), &s).len(), 1);
        clock.advance(Duration::from_secs(100));
        let mut res = a.clone();
        res.ends_at = Some(clock.now());
        r.ingest(vec![res], clock.now());
        clock.advance(Duration::from_secs(200));
        let n = r.flush(clock.now(), &s);
        assert_eq!(names(&n), [("resolved".into(), 1)]);
        assert!(n[0].alerts[0].ends_at.is_some());
        assert_eq!(r.alerts().count(), 0, "done");
        assert!(r.nflog().is_empty());
        assert_eq!(r.next_due(), None);
        // Firing again is news: a new group, group_wait again.
        r.ingest(vec![alert("A", "/x", "1", clock.now())], clock.now());
        clock.advance(Duration::from_secs(30));
        assert_eq!(r.flush(clock.now(), &s).len(), 1);
    }

    #[test]
    fn an_alert_that_fired_and_resolved_between_flushes_is_notified_resolved_as_in_alertmanager() {
        // Alertmanager 0.25 does this (tests/alertman/side_by_side.py, the Flapping group):
        // a resolved alert the group still holds goes with its next notification, even if the
        // receiver never heard it fire.
        let clock = ManualClock::at_ms(T0);
        let s = Silences::default();
        let mut r = router(&clock);
        // Before the first flush: w1 fires, w2 fires and resolves.
        let w1 = alert("A", "/x", "1", clock.now());
        let w2 = alert("A", "/x", "2", clock.now());
        r.ingest(vec![w1.clone(), w2.clone()], clock.now());
        clock.advance(Duration::from_secs(1));
        let mut res = w2.clone();
        res.ends_at = Some(clock.now());
        r.ingest(vec![res], clock.now());
        clock.advance(Duration::from_secs(29));
        let n = r.flush(clock.now(), &s);
        assert_eq!(names(&n), [("firing".into(), 2)]);
        assert!(n[0].alerts[1].ends_at.is_some(), "w2 resolved");
        // Between two flushes: w3 fires and resolves; the next flush tells it resolved.
        clock.advance(Duration::from_secs(60));
        let w3 = alert("A", "/x", "3", clock.now());
        r.ingest(vec![w3.clone()], clock.now());
        clock.advance(Duration::from_secs(60));
        let mut res = w3;
        res.ends_at = Some(clock.now());
        r.ingest(vec![res], clock.now());
        clock.advance(Duration::from_secs(180));
        let n = r.flush(clock.now(), &s);
        assert_eq!(names(&n), [("firing".into(), 2)]);
        assert_eq!(n[0].alerts[1].labels["instance"], "3");
        assert!(n[0].alerts[1].ends_at.is_some());
        // Nothing new: nothing sent.
        clock.advance(Duration::from_secs(300));
        assert!(r.flush(clock.now(), &s).is_empty());
        // A silenced resolved alert is left out, as Alertmanager's mute stage does.
        let mut s2 = Silences::default();
        s2.upsert(
            Silence {
                id: String::new(),
                matchers: vec![Matcher::eq("instance", "1")],
                starts_at: clock.now(),
                ends_at: clock.now() + chrono::Duration::hours(1),
                created_by: "ana".into(),
                comment: "quiet".into(),
                updated_at: clock.now(),
            },
            clock.now(),
        )
        .unwrap();
        let mut res = w1;
        res.ends_at = Some(clock.now());
        r.ingest(vec![res], clock.now());
        clock.advance(Duration::from_secs(300));
        assert!(r.flush(clock.now(), &s2).is_empty(), "muted");
        assert_eq!(r.next_due(), None, "the group ended");
    }

    #[test]
    fn without_send_resolved_nothing_is_sent_and_a_new_firing_is_news() {
        let clock = ManualClock::at_ms(T0);
        let s = Silences::default();
        let mut r = router(&clock);
        r.configure(
            Route {
                send_resolved: false,
                ..r.route().clone()
            },
            Vec::new(),
            BTreeMap::new(),
            clock.now(),
        );
        let a1 = alert("A", "/x", "1", clock.now());
        let a2 = alert("A", "/x", "2", clock.now());
        r.ingest(vec![a1.clone(), a2], clock.now());
        clock.advance(Duration::from_secs(30));
        assert_eq!(r.flush(clock.now(), &s).len(), 1);
        let mut res = a1.clone();
        res.ends_at = Some(clock.now());
        r.ingest(vec![res], clock.now());
        clock.advance(Duration::from_secs(300));
        assert!(r.flush(clock.now(), &s).is_empty());
        r.ingest(vec![a1], clock.now());
        clock.advance(Duration::from_secs(300));
        assert_eq!(names(&r.flush(clock.now(), &s)), [("firing".into(), 2)]);
    }

    #[test]
    fn silences_mute_until_they_expire_and_inhibition_mutes_warnings() {
        let clock = ManualClock::at_ms(T0);
        let mut s = Silences::default();
        let mut r = router(&clock);
        let sil = s
            .upsert(
                Silence {
                    id: String::new(),
                    matchers: vec![Matcher::eq("alertname", "A")],
                    starts_at: clock.now(),
                    ends_at: clock.now() + chrono::Duration::minutes(10),
                    created_by: "ana".into(),
                    comment: "known".into(),
                    updated_at: clock.now(),
                },
                clock.now(),
            )
            .unwrap();
        let a = alert("A", "/x", "1", clock.now());
        r.ingest(vec![a.clone()], clock.now());
        clock.advance(Duration::from_secs(30));
        assert!(r.flush(clock.now(), &s).is_empty(), "silenced");
        assert_eq!(r.muted(&a, &s, clock.now()).silenced_by, [sil.id]);
        clock.advance(Duration::from_secs(570));
        // The silence ended: never notified, so notified at the next group_interval.
        clock.advance(Duration::from_secs(30));
        assert_eq!(r.flush(clock.now(), &s).len(), 1);
        // A silence over an alert already notified: when it ends, nothing is repeated
        // before repeat_interval.
        let sil2 = s
            .upsert(
                Silence {
                    id: String::new(),
                    matchers: vec![Matcher::eq("alertname", "A")],
                    starts_at: clock.now(),
                    ends_at: clock.now() + chrono::Duration::minutes(60),
                    created_by: "ana".into(),
                    comment: "again".into(),
                    updated_at: clock.now(),
                },
                clock.now(),
            )
            .unwrap();
        for _ in 0..4 {
            clock.advance(Duration::from_secs(300));
            assert!(r.flush(clock.now(), &s).is_empty(), "silenced");
        }
        s.expire(&sil2.id, clock.now()).unwrap();
        for _ in 0..4 {
            clock.advance(Duration::from_secs(300));
            assert!(
                r.flush(clock.now(), &s).is_empty(),
                "already notified: no repeat when the silence ends"
            );
        }

        // Inhibition: a critical alert of the same app mutes the warnings.
        let mut r = router(&clock);
        r.configure(
            r.route().clone(),
            vec![InhibitRule {
                source: vec![Matcher::eq("severity", "critical").compile().unwrap()],
                target: vec![Matcher::eq("severity", "warning").compile().unwrap()],
                equal: vec!["app".into()],
            }],
            BTreeMap::new(),
            clock.now(),
        );
        let mut crit = alert("Down", "/x", "", clock.now());
        crit.labels.insert("severity".into(), "critical".into());
        let warn_same = alert("A", "/x", "1", clock.now());
        let warn_other = alert("A", "/y", "1", clock.now());
        r.ingest(
            vec![crit.clone(), warn_same.clone(), warn_other],
            clock.now(),
        );
        clock.advance(Duration::from_secs(30));
        let n = r.flush(clock.now(), &Silences::default());
        let mut got: Vec<String> = n.iter().map(|n| n.group_key.clone()).collect();
        got.sort();
        assert_eq!(
            got,
            [
                "ops:{alertname=\"A\",app=\"/y\"}",
                "ops:{alertname=\"Down\",app=\"/x\"}"
            ]
        );
        assert_eq!(
            r.muted(&warn_same, &Silences::default(), clock.now())
                .inhibited_by,
            [fingerprint_hex(crit.fingerprint())]
        );
    }

    #[test]
    fn a_restart_with_the_log_repeats_nothing_and_a_failed_delivery_is_retried() {
        let clock = ManualClock::at_ms(T0);
        let s = Silences::default();
        let mut r = router(&clock);
        r.ingest(vec![alert("A", "/x", "1", clock.now())], clock.now());
        clock.advance(Duration::from_secs(30));
        assert_eq!(r.flush(clock.now(), &s).len(), 1);
        let (alerts, log) = r.take_dirty();
        assert_eq!((alerts.len(), log.len()), (1, 1));
        // Restart: the persisted alerts and log.
        let alerts: Vec<Alert> = r.alerts().cloned().collect();
        let mut r2 = Router::new(
            r.route().clone(),
            Vec::new(),
            BTreeMap::new(),
            alerts,
            r.nflog().clone(),
            clock.now(),
        );
        for _ in 0..40 {
            clock.advance(Duration::from_secs(300));
            assert!(
                r2.flush(clock.now(), &s).is_empty(),
                "3h20m after the notification: no repeat"
            );
        }
        // A delivery that fails restores the log: the next group_interval tries again.
        let mut r3 = router(&clock);
        r3.ingest(vec![alert("B", "/x", "1", clock.now())], clock.now());
        clock.advance(Duration::from_secs(30));
        let n = r3.flush(clock.now(), &s);
        assert_eq!(n.len(), 1);
        r3.delivery_failed(&n[0]);
        clock.advance(Duration::from_secs(300));
        assert_eq!(r3.flush(clock.now(), &s).len(), 1, "retried");
        clock.advance(Duration::from_secs(300));
        assert!(r3.flush(clock.now(), &s).is_empty(), "delivered: no repeat");
    }
}
