//! Request statistics over one reporting interval, for one instance, one app or one
//! service (a Marathon group of instance groups): requests, status classes, bytes, a latency
//! histogram, gateway-made errors, and the concurrency — the time-weighted mean and the
//! maximum of the requests in flight — which a point sample at the end of the interval
//! would miss.
use std::sync::{
    atomic::{AtomicU64, Ordering},
    Mutex,
};

use drover_schema::{LatencyHistogram, StatusClasses};
use serde::Serialize;
use tokio::time::Instant;

use crate::shard::{self, Padded};

/// What one finished request adds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// The status sent to the client.
    pub status: u16,
    /// From the request's arrival to the end of the response, milliseconds.
    pub latency_ms: f64,
    /// Request body bytes read from the client.
    pub bytes_in: u64,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// The gateway made the response (502/503/504), not the app.
    pub gateway_error: bool,
}

/// The statistics of one interval, taken by [`Tracker::take`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Length of the interval, milliseconds.
    pub interval_ms: u64,
    /// Requests in flight at its end.
    pub in_flight: u64,
    /// Time-weighted mean of the requests in flight.
    pub concurrency_mean: f64,
    /// Most requests in flight at once.
    pub concurrency_max: u64,
    /// Requests finished.
    pub requests: u64,
    /// By status class.
    pub status: StatusClasses,
    /// Latency of the finished requests.
    pub latency: LatencyHistogram,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
    /// Responses the gateway made (502/503/504).
    pub gateway_errors: u64,
}

/// The last interval in short, for the routes API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Requests per second.
    pub rps: f64,
    /// 99th percentile latency, milliseconds (None without requests).
    pub p99_ms: Option<f64>,
    /// Time-weighted mean concurrency.
    pub concurrency_mean: f64,
    /// Share of the responses that were 5xx.
    pub error_rate: f64,
}

/// Counts requests of one instance, app or service. Cheap to update from many tasks: each
/// gateway worker counts into its own shard (see [`crate::shard`]); only the number in
/// flight, which balancing reads, is shared.
///
/// A request is finished on the thread that started it (a worker's connections never leave
/// its thread); the shards add up to the whole — the time-weighted mean is a sum of each
/// shard's own, and each shard's maximum is of the shared count, so their maximum is the
/// whole's.
#[derive(Debug)]
pub struct Tracker {
    in_flight: AtomicU64,
    shards: Box<[Padded<Mutex<Interval>>]>,
    /// When the current interval started.
    started: Mutex<Instant>,
    last: Mutex<Summary>,
}

#[derive(Debug)]
struct Interval {
    /// When this shard's `in_flight` last changed.
    changed: Instant,
    /// Requests in flight that this shard started.
    in_flight: u64,
    /// ∫ in_flight dt since the interval started, request-seconds.
    area: f64,
    /// Most requests in flight (all shards) seen when this shard started one.
    max: u64,
    requests: u64,
    status: StatusClasses,
    latency: LatencyHistogram,
    bytes_in: u64,
    bytes_out: u64,
    gateway_errors: u64,
}

impl Interval {
    fn new(now: Instant) -> Self {
        Self {
            changed: now,
            in_flight: 0,
            area: 0.0,
            max: 0,
            requests: 0,
            status: StatusClasses::default(),
            latency: LatencyHistogram::default(),
            bytes_in: 0,
            bytes_out: 0,
            gateway_errors: 0,
        }
    }

    fn advance(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.changed).as_secs_f64();
        self.area += self.in_flight as f64 * dt;
        self.changed = now.max(self.changed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves counters, not invariants: keep counting.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Tracker {
    /// An empty tracker whose first interval starts at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            in_flight: AtomicU64::new(0),
            shards: shard::shards(|| Mutex::new(Interval::new(now))),
            started: Mutex::new(now),
            last: Mutex::new(Summary::default()),
        }
    }

    /// The calling thread's shard.
    fn lock(&self) -> std::sync::MutexGuard<'_, Interval> {
        lock(&self.shards[shard::current() % self.shards.len()].0)
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A request starts.
    pub fn start(&self, now: Instant) {
        let all = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        let mut i = self.lock();
        i.advance(now);
        i.in_flight += 1;
        i.max = i.max.max(all);
    }

    /// A request started with [`Tracker::start`] (on this thread) ends.
    pub fn finish(&self, now: Instant, outcome: &Outcome) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        let mut i = self.lock();
        i.advance(now);
        i.in_flight = i.in_flight.saturating_sub(1);
        i.requests += 1;
        i.status.record(outcome.status);
        i.latency.observe(outcome.latency_ms);
        i.bytes_in += outcome.bytes_in;
        i.bytes_out += outcome.bytes_out;
        if outcome.gateway_error {
            i.gateway_errors += 1;
        }
    }

    /// A request started with [`Tracker::start`] went elsewhere (a retry): no longer in
    /// flight here, not counted.
    pub fn abandon(&self, now: Instant) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        let mut i = self.lock();
        i.advance(now);
        i.in_flight = i.in_flight.saturating_sub(1);
    }

    /// A request that was never in flight here (answered before reaching a backend).
    pub fn record(&self, now: Instant, outcome: &Outcome) {
        self.start(now);
        self.finish(now, outcome);
    }

    /// The interval that ends at `now`; the next one starts.
    pub fn take(&self, now: Instant) -> Snapshot {
        let mut started = lock(&self.started);
        let elapsed = now.saturating_duration_since(*started);
        let secs = elapsed.as_secs_f64();
        let mut area = 0.0;
        let mut snap = Snapshot {
            interval_ms: elapsed.as_millis() as u64,
            ..Snapshot::default()
        };
        // The next interval's maximum starts at what is in flight as it begins.
        let next_max = self.in_flight();
        for shard in self.shards.iter() {
            let mut i = lock(&shard.0);
            i.advance(now);
            area += i.area;
            snap.in_flight += i.in_flight;
            snap.concurrency_max = snap.concurrency_max.max(i.max);
            snap.requests += i.requests;
            add_classes(&mut snap.status, &i.status);
            snap.latency.merge(&i.latency);
            snap.bytes_in += i.bytes_in;
            snap.bytes_out += i.bytes_out;
            snap.gateway_errors += i.gateway_errors;
            i.changed = now;
            i.area = 0.0;
            i.max = next_max;
            i.requests = 0;
            i.status = StatusClasses::default();
            i.latency.counts.fill(0);
            i.latency.sum_ms = 0.0;
            i.bytes_in = 0;
            i.bytes_out = 0;
            i.gateway_errors = 0;
        }
        snap.concurrency_mean = if secs > 0.0 {
            area / secs
        } else {
            snap.in_flight as f64
        };
        *started = now;
        drop(started);
        let total = snap.status.total();
        *lock(&self.last) = Summary {
            rps: if secs > 0.0 {
                snap.requests as f64 / secs
            } else {
                0.0
            },
            p99_ms: snap.latency.quantile(0.99),
            concurrency_mean: snap.concurrency_mean,
            error_rate: if total > 0 {
                snap.status.s5xx as f64 / total as f64
            } else {
                0.0
            },
        };
        snap
    }

    /// The last interval taken, in short.
    pub fn summary(&self) -> Summary {
        *lock(&self.last)
    }
}

/// `into += from`, class by class.
fn add_classes(into: &mut StatusClasses, from: &StatusClasses) {
    into.s1xx += from.s1xx;
    into.s2xx += from.s2xx;
    into.s3xx += from.s3xx;
    into.s4xx += from.s4xx;
    into.s5xx += from.s5xx;
    into.s502_504 += from.s502_504;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ok(ms: f64) -> Outcome {
        Outcome {
            status: 200,
            latency_ms: ms,
            bytes_in: 0,
            bytes_out: 3,
            gateway_error: false,
        }
    }

    #[test]
    fn concurrency_is_time_weighted() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let t = Tracker::new(t0);
        // Requests over [0, 500) and [250, 750) ms of a 1 s interval: 1.0 request-second,
        // so a mean of 1.0, and 2 at once at most (a sample at the end would say 0).
        t.start(ms(0));
        t.start(ms(250));
        t.finish(ms(500), &ok(500.0));
        t.finish(ms(750), &ok(500.0));
        let s = t.take(ms(1000));
        assert_eq!(s.interval_ms, 1000);
        assert!((s.concurrency_mean - 1.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s.concurrency_max, 2);
        assert_eq!(s.requests, 2);
        assert_eq!(s.status.s2xx, 2);
        assert_eq!(s.bytes_out, 6);
        assert_eq!(s.in_flight, 0);
        assert_eq!(t.summary().rps, 2.0);
    }

    #[test]
    fn a_request_spanning_intervals_counts_in_both() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let t = Tracker::new(t0);
        t.start(ms(500));
        let a = t.take(ms(1000));
        assert!((a.concurrency_mean - 0.5).abs() < 1e-9);
        assert_eq!((a.in_flight, a.concurrency_max, a.requests), (1, 1, 0));
        t.finish(ms(1500), &ok(1000.0));
        let b = t.take(ms(2000));
        assert!((b.concurrency_mean - 0.5).abs() < 1e-9);
        // The max of an interval starts at what was in flight when it began.
        assert_eq!((b.in_flight, b.concurrency_max, b.requests), (0, 1, 1));
        let c = t.take(ms(3000));
        assert_eq!((c.concurrency_mean, c.concurrency_max), (0.0, 0));
    }

    #[test]
    fn workers_count_into_their_own_shards_and_the_interval_adds_them_up() {
        let t0 = Instant::now();
        let ms = move |n: u64| t0 + Duration::from_millis(n);
        let t = std::sync::Arc::new(Tracker::new(t0));
        // This thread (shard 0) has [0, 500) ms in flight; a worker on shard 1 [100, 600).
        t.start(ms(0));
        let worker = {
            let t = std::sync::Arc::clone(&t);
            std::thread::spawn(move || {
                crate::shard::enter(1);
                t.start(ms(100));
                assert_eq!(t.in_flight(), 2, "the number in flight is shared");
                t.finish(ms(600), &ok(500.0));
            })
        };
        worker.join().unwrap();
        t.finish(ms(500), &ok(500.0));
        let s = t.take(ms(1000));
        assert!((s.concurrency_mean - 1.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s.concurrency_max, 2, "both were in flight at once");
        assert_eq!((s.requests, s.status.s2xx, s.bytes_out), (2, 2, 6));
        assert_eq!(s.latency.count(), 2);
        assert_eq!(s.in_flight, 0);
        // Taken: every shard starts again from nothing.
        let next = t.take(ms(2000));
        assert_eq!(
            (next.requests, next.concurrency_max, next.latency.count()),
            (0, 0, 0)
        );
    }

    #[test]
    fn gateway_errors_are_apart() {
        let t0 = Instant::now();
        let t = Tracker::new(t0);
        t.record(
            t0,
            &Outcome {
                status: 503,
                latency_ms: 0.1,
                bytes_in: 0,
                bytes_out: 10,
                gateway_error: true,
            },
        );
        t.record(
            t0,
            &Outcome {
                status: 500,
                ..ok(1.0)
            },
        );
        let s = t.take(t0 + Duration::from_secs(1));
        assert_eq!(s.status.s5xx, 2);
        assert_eq!(s.gateway_errors, 1);
        assert_eq!(t.in_flight(), 0);
    }
}
