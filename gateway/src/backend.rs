//! One backend (a running task's address) and its passive health: Envoy's outlier
//! detection with its defaults — consecutive 5xx or gateway failures eject the backend for a
//! time that grows with each ejection, never more than a share of an app's backends at once,
//! and panic mode (balance across all of them) when more than half are ejected. Time comes
//! from an injectable [`Clock`](drover_schema::time::Clock), so tests move it by hand.
use std::{
    sync::{
        atomic::{AtomicI64, AtomicU32, Ordering},
        Mutex,
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::stats::Tracker;

/// Outlier detection settings (Envoy's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierConfig {
    /// Consecutive failures (5xx from the app, or no answer) that eject a backend.
    pub consecutive_failures: u32,
    /// Ejection time per ejection so far (30 s, 60 s, …).
    pub base_ejection: Duration,
    /// Longest ejection.
    pub max_ejection: Duration,
    /// Most of an app's backends ejected at once, percent (at least one may be).
    pub max_ejection_percent: f64,
    /// Below this share of available backends, percent, balance across all (panic mode).
    pub panic_threshold_percent: f64,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejection_percent: 10.0,
            panic_threshold_percent: 50.0,
        }
    }
}

/// A task's address that receives traffic, with its counters and passive health. Kept
/// across route table swaps (same task, same address → same `Backend`).
#[derive(Debug)]
pub struct Backend {
    /// The task.
    pub task: String,
    /// Its app.
    pub app: String,
    /// Its node.
    pub node: String,
    /// `host:port`.
    pub addr: String,
    /// Its request statistics (its in-flight count is what balancing reads).
    pub stats: Tracker,
    /// Failures in a row: read on every answer, written only when it changes.
    consecutive: AtomicU32,
    /// End of the current or last ejection, nanoseconds since the epoch (0: never
    /// ejected): read on every pick without a lock.
    ejected_until_ns: AtomicI64,
    /// The ejection record, changed only when a backend is ejected.
    outlier: Mutex<Outlier>,
}

#[derive(Debug, Default)]
struct Outlier {
    ejections: u32,
    ejected_until: Option<DateTime<Utc>>,
}

fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// A backend's passive health, for the routes API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthView {
    /// Ejected now.
    pub ejected: bool,
    /// Until when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ejected_until: Option<DateTime<Utc>>,
    /// Times ejected (decides the next ejection's length).
    pub ejections: u32,
    /// Failures in a row.
    pub consecutive_failures: u32,
}

impl Backend {
    /// A backend with no history.
    pub fn new(task: &str, app: &str, node: &str, addr: &str, now: tokio::time::Instant) -> Self {
        Self {
            task: task.to_string(),
            app: app.to_string(),
            node: node.to_string(),
            addr: addr.to_string(),
            stats: Tracker::new(now),
            consecutive: AtomicU32::new(0),
            ejected_until_ns: AtomicI64::new(0),
            outlier: Mutex::new(Outlier::default()),
        }
    }

    fn outlier(&self) -> std::sync::MutexGuard<'_, Outlier> {
        self.outlier.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Requests in flight on it now.
    pub fn in_flight(&self) -> u64 {
        self.stats.in_flight()
    }

    /// Ejected at `now`.
    pub fn is_ejected(&self, now: DateTime<Utc>) -> bool {
        let until = self.ejected_until_ns.load(Ordering::Relaxed);
        until != 0 && nanos(now) < until
    }

    /// Its passive health at `now`.
    pub fn health(&self, now: DateTime<Utc>) -> HealthView {
        let o = self.outlier();
        let ejected = o.ejected_until.is_some_and(|t| now < t);
        HealthView {
            ejected,
            ejected_until: o.ejected_until.filter(|_| ejected),
            ejections: o.ejections,
            consecutive_failures: self.consecutive.load(Ordering::Relaxed),
        }
    }

    /// It answered well: the failure streak ends (a write only when there was one, so the
    /// common case shares the cache line between workers).
    pub fn on_success(&self) {
        if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
    }

    /// It failed (a 5xx, or no good answer). Ejects it when that makes `consecutive_failures`
    /// in a row and fewer than the cap of `peers` (its app's backends, itself included) are
    /// ejected at `now`. True when this call ejected it.
    pub fn on_failure(
        &self,
        now: DateTime<Utc>,
        peers: &[std::sync::Arc<Backend>],
        cfg: &OutlierConfig,
    ) -> bool {
        let consecutive = self
            .consecutive
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(1))
            })
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        if consecutive < cfg.consecutive_failures || self.is_ejected(now) {
            return false;
        }
        let mut o = self.outlier();
        // An ejection long ago no longer lengthens the next one.
        if o.ejected_until.is_some_and(|t| {
            now - t > chrono::Duration::from_std(cfg.max_ejection).unwrap_or_default()
        }) {
            o.ejections = 0;
        }
        drop(o);
        let ejected_peers = peers
            .iter()
            .filter(|p| !std::ptr::eq(p.as_ref(), self) && p.is_ejected(now))
            .count();
        if ejected_peers >= ejection_cap(peers.len().max(1), cfg) {
            return false;
        }
        let mut o = self.outlier();
        o.ejections = o.ejections.saturating_add(1);
        let time = cfg
            .base_ejection
            .saturating_mul(o.ejections)
            .min(cfg.max_ejection);
        let until = now + chrono::Duration::from_std(time).unwrap_or_default();
        o.ejected_until = Some(until);
        self.ejected_until_ns.store(nanos(until), Ordering::Relaxed);
        self.consecutive.store(0, Ordering::Relaxed);
        true
    }
}

/// How many of `n` backends may be ejected at once: `max_ejection_percent` of them, and at
/// least one.
pub fn ejection_cap(n: usize, cfg: &OutlierConfig) -> usize {
    ((n as f64 * cfg.max_ejection_percent / 100.0).floor() as usize).max(1)
}

/// The backend a request goes to among `backends` at `now`, never `exclude`: the power of
/// two choices among those not ejected, or among all of them (panic mode, the `bool`) when
/// fewer than `panic_threshold_percent` are available. No candidate list is built in the
/// common case (none ejected, or panic mode): this runs on every request.
pub fn pick<'a>(
    backends: &'a [std::sync::Arc<Backend>],
    now: DateTime<Utc>,
    cfg: &OutlierConfig,
    exclude: Option<&Backend>,
) -> (Option<&'a std::sync::Arc<Backend>>, bool) {
    let ejected = backends.iter().filter(|b| b.is_ejected(now)).count();
    let panic = !backends.is_empty()
        && ((backends.len() - ejected) as f64)
            < backends.len() as f64 * cfg.panic_threshold_percent / 100.0;
    if exclude.is_none() && (ejected == 0 || panic) {
        let i = crate::balance::p2c_index(backends.len(), |i| backends[i].in_flight());
        return (i.map(|i| &backends[i]), panic);
    }
    let candidates: Vec<&std::sync::Arc<Backend>> = backends
        .iter()
        .filter(|b| {
            (panic || !b.is_ejected(now)) && exclude.is_none_or(|x| !std::ptr::eq(b.as_ref(), x))
        })
        .collect();
    (crate::balance::p2c(&candidates), panic)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use drover_schema::time::{Clock, ManualClock};

    use super::*;

    fn backends(n: usize) -> Vec<Arc<Backend>> {
        let now = tokio::time::Instant::now();
        (0..n)
            .map(|i| {
                Arc::new(Backend::new(
                    &format!("t{i}"),
                    "/a",
                    "n",
                    &format!("127.0.0.1:{}", 1000 + i),
                    now,
                ))
            })
            .collect()
    }

    fn fail(b: &Backend, times: u32, clock: &ManualClock, peers: &[Arc<Backend>]) -> bool {
        let cfg = OutlierConfig::default();
        // Every failure is applied (no short circuit).
        let mut ejected = false;
        for _ in 0..times {
            ejected |= b.on_failure(clock.now(), peers, &cfg);
        }
        ejected
    }

    #[test]
    fn five_failures_in_a_row_eject_for_30s_then_60s() {
        let clock = ManualClock::at_ms(1_800_000_000_000);
        let bs = backends(10);
        let b = &bs[0];
        assert!(!fail(b, 4, &clock, &bs));
        b.on_success();
        assert!(!fail(b, 4, &clock, &bs), "a success ends the streak");
        assert!(fail(b, 1, &clock, &bs));
        assert!(b.is_ejected(clock.now()));
        clock.advance(Duration::from_secs(29));
        assert!(b.is_ejected(clock.now()));
        clock.advance(Duration::from_secs(1));
        assert!(!b.is_ejected(clock.now()), "back after 30 s");
        assert!(fail(b, 5, &clock, &bs));
        clock.advance(Duration::from_secs(59));
        assert!(b.is_ejected(clock.now()), "the second ejection lasts 60 s");
        clock.advance(Duration::from_secs(1));
        assert!(!b.is_ejected(clock.now()));
        assert_eq!(b.health(clock.now()).ejections, 2);
    }

    #[test]
    fn ejection_time_is_capped_at_300s() {
        let clock = ManualClock::at_ms(1_800_000_000_000);
        let bs = backends(10);
        for n in 1..=12u64 {
            assert!(fail(&bs[0], 5, &clock, &bs));
            let until = bs[0].health(clock.now()).ejected_until.unwrap();
            let secs = (until - clock.now()).num_seconds() as u64;
            assert_eq!(secs, (30 * n).min(300));
            clock.set(until);
        }
    }

    #[test]
    fn at_most_ten_percent_ejected_but_at_least_one() {
        let clock = ManualClock::at_ms(1_800_000_000_000);
        let cfg = OutlierConfig::default();
        assert_eq!(ejection_cap(1, &cfg), 1);
        assert_eq!(ejection_cap(9, &cfg), 1);
        assert_eq!(ejection_cap(20, &cfg), 2);
        let bs = backends(20);
        assert!(fail(&bs[0], 5, &clock, &bs));
        assert!(fail(&bs[1], 5, &clock, &bs));
        assert!(!fail(&bs[2], 5, &clock, &bs), "a third of 20 is over 10 %");
        assert!(!bs[2].is_ejected(clock.now()));
        // One of two may be ejected (at least one).
        let two = backends(2);
        assert!(fail(&two[0], 5, &clock, &two));
        assert!(!fail(&two[1], 5, &clock, &two));
    }

    #[test]
    fn panic_mode_balances_across_all_when_more_than_half_are_out() {
        let clock = ManualClock::at_ms(1_800_000_000_000);
        let cfg = OutlierConfig::default();
        let task = |(b, panic): (Option<&Arc<Backend>>, bool)| (b.map(|b| b.task.clone()), panic);
        let one = backends(1);
        assert!(fail(&one[0], 5, &clock, &one));
        assert_eq!(
            task(pick(&one, clock.now(), &cfg, None)),
            (Some("t0".to_string()), true),
            "the only backend is ejected: use it anyway"
        );
        let two = backends(2);
        assert!(fail(&two[0], 5, &clock, &two));
        for _ in 0..50 {
            assert_eq!(
                task(pick(&two, clock.now(), &cfg, None)),
                (Some("t1".to_string()), false),
                "half is not more than half"
            );
        }
        assert_eq!(task(pick(&[], clock.now(), &cfg, None)), (None, false));
    }

    #[test]
    fn pick_never_takes_an_ejected_or_excluded_backend_outside_panic_mode() {
        let clock = ManualClock::at_ms(1_800_000_000_000);
        let cfg = OutlierConfig::default();
        let bs = backends(4);
        for _ in 0..50 {
            let (b, panic) = pick(&bs, clock.now(), &cfg, None);
            assert!(b.is_some() && !panic);
        }
        assert!(fail(&bs[0], 5, &clock, &bs));
        for _ in 0..100 {
            let (b, panic) = pick(&bs, clock.now(), &cfg, Some(&bs[1]));
            let t = &b.unwrap().task;
            assert!(!panic && t != "t0" && t != "t1", "{t}");
        }
        // One of one ejected and excluded (a retry): panic mode, and none is left.
        let one = backends(1);
        assert!(fail(&one[0], 5, &clock, &one));
        let (b, panic) = pick(&one, clock.now(), &cfg, Some(&one[0]));
        assert!(b.is_none() && panic);
    }
}
