//! The gateway's Prometheus metrics (`drover_gateway_*`). Label values are bounded: the app
//! label takes the IDs of routed apps (what the operator deployed), never a task ID, a host
//! or a path from a request; per-instance figures go to Kafka and the routes API instead.
use std::sync::{
    atomic::{AtomicI64, Ordering},
    Arc, Mutex,
};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, MetricType, TypedMetric},
    registry::{Registry, Unit},
};

use crate::shard::{self, Padded};

/// A Prometheus histogram that each gateway worker observes into its own shard (see
/// [`crate::shard`]): `prometheus_client`'s own takes one lock shared by all workers on
/// every request. A scrape adds the shards up.
#[derive(Debug, Clone)]
pub struct ShardedHistogram(Arc<HistogramShards>);

#[derive(Debug)]
struct HistogramShards {
    /// Upper bounds, increasing, `+Inf` last.
    bounds: Vec<f64>,
    shards: Box<[Padded<Mutex<HistogramShard>>]>,
}

#[derive(Debug)]
struct HistogramShard {
    sum: f64,
    /// Per bucket, not cumulative.
    counts: Vec<u64>,
}

impl ShardedHistogram {
    /// Empty, with these upper bounds (`+Inf` is added).
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Self {
        let bounds: Vec<f64> = bounds
            .into_iter()
            .filter(|b| b.is_finite())
            .chain(std::iter::once(f64::INFINITY))
            .collect();
        let n = bounds.len();
        Self(Arc::new(HistogramShards {
            bounds,
            shards: shard::shards(|| {
                Mutex::new(HistogramShard {
                    sum: 0.0,
                    counts: vec![0; n],
                })
            }),
        }))
    }

    /// Count one value.
    pub fn observe(&self, v: f64) {
        let h = &*self.0;
        let i = h.bounds.partition_point(|b| *b < v).min(h.bounds.len() - 1);
        let mut s = h.shards[shard::current() % h.shards.len()]
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        s.sum += v;
        s.counts[i] += 1;
    }

    /// Sum, count and (upper bound, count) per bucket over all shards.
    pub fn get(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let h = &*self.0;
        let mut sum = 0.0;
        let mut buckets: Vec<(f64, u64)> = h.bounds.iter().map(|b| (*b, 0)).collect();
        for s in h.shards.iter() {
            let s = s.0.lock().unwrap_or_else(|e| e.into_inner());
            sum += s.sum;
            for (b, c) in buckets.iter_mut().zip(&s.counts) {
                b.1 += c;
            }
        }
        let count = buckets.iter().map(|b| b.1).sum();
        (sum, count, buckets)
    }
}

impl TypedMetric for ShardedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for ShardedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.get();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// A Prometheus gauge or counter that each gateway worker changes in its own shard; a
/// scrape adds the shards up.
#[derive(Debug, Clone, Default)]
pub struct Sharded<const COUNTER: bool>(Arc<ShardedCells>);

/// A gauge of [`Sharded`] cells (requests in flight).
pub type ShardedGauge = Sharded<false>;
/// A counter of [`Sharded`] cells (requests by status class).
pub type ShardedCounter = Sharded<true>;

#[derive(Debug)]
struct ShardedCells(Box<[Padded<AtomicI64>]>);

impl Default for ShardedCells {
    fn default() -> Self {
        Self(shard::shards(|| AtomicI64::new(0)))
    }
}

impl<const COUNTER: bool> Sharded<COUNTER> {
    fn add(&self, n: i64) {
        let cells = &self.0 .0;
        // Atomic all the same: threads that are not workers share shard 0.
        cells[shard::current() % cells.len()]
            .0
            .fetch_add(n, Ordering::Relaxed);
    }

    /// The sum over the shards.
    pub fn get(&self) -> i64 {
        self.0 .0.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }

    /// Add one.
    pub fn inc(&self) {
        self.add(1);
    }
}

impl ShardedGauge {
    /// Take one away.
    pub fn dec(&self) {
        self.add(-1);
    }
}

impl<const COUNTER: bool> TypedMetric for Sharded<COUNTER> {
    const TYPE: MetricType = if COUNTER {
        MetricType::Counter
    } else {
        MetricType::Gauge
    };
}

impl<const COUNTER: bool> EncodeMetric for Sharded<COUNTER> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        if COUNTER {
            encoder.encode_counter::<NoLabelSet, _, u64>(&(self.get().max(0) as u64), None)
        } else {
            encoder.encode_gauge(&self.get())
        }
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// `app` and `class` (`2xx`, …).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// The app (`-` when no route matched).
    pub app: String,
    /// Status class ([`status_class`]).
    pub class: &'static str,
}

/// The class of a status code: `1xx` … `5xx`.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// `app`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabels {
    /// The app.
    pub app: String,
}

/// `app` and `reason` of a response the gateway made itself.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The app (`-` when no route matched).
    pub app: String,
    /// Why ([`ErrorReason::as_str`]).
    pub reason: &'static str,
}

/// Why the gateway answered itself: the `reason` label.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum ErrorReason {
    /// 404: no route for the host and path.
    NoRoute,
    /// 503: the route has no backend.
    NoBackend,
    /// 502: the backend refused or reset the connection.
    Connect,
    /// 502: the backend answered garbage or closed early.
    BadResponse,
    /// 504: no answer in time.
    Timeout,
}

impl ErrorReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoRoute => "no_route",
            Self::NoBackend => "no_backend",
            Self::Connect => "connect",
            Self::BadResponse => "bad_response",
            Self::Timeout => "timeout",
        }
    }
}

/// `result` of a report to Kafka.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok` or `error`.
    pub result: &'static str,
}

/// The gateway's metrics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    /// Responses by app and status class.
    pub requests: Family<StatusLabels, ShardedCounter>,
    /// Request duration (arrival to end of response) by app.
    pub duration: Family<AppLabels, ShardedHistogram>,
    /// Requests in flight by app.
    pub in_flight: Family<AppLabels, ShardedGauge>,
    /// Responses the gateway made itself, by app and reason.
    pub gateway_errors: Family<ErrorLabels, Counter>,
    /// Requests retried on another backend after a failed connect.
    pub retries: Family<AppLabels, Counter>,
    /// Backends ejected by passive health checks.
    pub ejections: Family<AppLabels, Counter>,
    /// Routes served.
    pub routes: Gauge,
    /// Routes refused (bad labels, conflicts).
    pub refused: Gauge,
    /// Backends in the table.
    pub backends: Gauge,
    /// Route table swaps.
    pub table_updates: Counter,
    /// Request-stats records produced to Kafka, by result.
    pub reports: Family<ResultLabels, Counter>,
    /// Upgraded connections (WebSocket) open.
    pub tunnels: Gauge,
    /// Access-log lines produced to Kafka, by result.
    pub access_lines: Family<ResultLabels, Counter>,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| {
                ShardedHistogram::new([
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ])
            }),
            in_flight: Family::default(),
            gateway_errors: Family::default(),
            retries: Family::default(),
            ejections: Family::default(),
            routes: Gauge::default(),
            refused: Gauge::default(),
            backends: Gauge::default(),
            table_updates: Counter::default(),
            reports: Family::default(),
            tunnels: Gauge::default(),
            access_lines: Family::default(),
        }
    }
}

/// One app's metric handles, looked up when the route table is built instead of on every
/// request (a family lookup hashes and allocates its label set).
#[derive(Debug, Clone)]
pub struct AppHandles {
    /// `in_flight_requests{app}`.
    pub in_flight: ShardedGauge,
    /// `request_duration_seconds{app}`.
    pub duration: ShardedHistogram,
    /// `requests_total{app,class}` for 1xx … 5xx.
    requests: [ShardedCounter; 5],
}

impl AppHandles {
    /// Count one response.
    pub fn count(&self, status: u16) {
        let i = match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            _ => 4,
        };
        self.requests[i].inc();
    }
}

impl GatewayMetrics {
    /// The handles of `app`.
    pub fn app(&self, app: &str) -> AppHandles {
        let labels = AppLabels {
            app: app.to_string(),
        };
        let class = |status: u16| {
            self.requests
                .get_or_create(&StatusLabels {
                    app: app.to_string(),
                    class: status_class(status),
                })
                .clone()
        };
        AppHandles {
            in_flight: self.in_flight.get_or_create(&labels).clone(),
            duration: self.duration.get_or_create(&labels).clone(),
            requests: [class(100), class(200), class(300), class(400), class(500)],
        }
    }

    /// Register in `registry` (the caller gives it the `drover_gateway` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "requests",
            "Responses by app and status class",
            m.requests.clone(),
        );
        registry.register_with_unit(
            "request_duration",
            "From a request's arrival to the end of its response",
            Unit::Seconds,
            m.duration.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Requests in flight by app",
            m.in_flight.clone(),
        );
        registry.register(
            "gateway_errors",
            "Responses the gateway made itself (404 no route, 502, 503, 504), by reason",
            m.gateway_errors.clone(),
        );
        registry.register(
            "retries",
            "Idempotent requests retried on another backend after a failed connect",
            m.retries.clone(),
        );
        registry.register(
            "ejections",
            "Backends ejected after consecutive failures",
            m.ejections.clone(),
        );
        registry.register("routes", "Routes served", m.routes.clone());
        registry.register(
            "refused_routes",
            "Routes refused (bad labels, conflicts)",
            m.refused.clone(),
        );
        registry.register(
            "backends",
            "Backends in the route table",
            m.backends.clone(),
        );
        registry.register(
            "table_updates",
            "Route table swaps",
            m.table_updates.clone(),
        );
        registry.register(
            "reports",
            "Request-stats records produced to Kafka, by result",
            m.reports.clone(),
        );
        registry.register(
            "tunnels",
            "Upgraded (WebSocket) connections open",
            m.tunnels.clone(),
        );
        m
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::{
        encoding::text::encode,
        metrics::{counter::Counter, histogram::Histogram},
    };

    use super::*;

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        encode(&mut out, registry).unwrap();
        out
    }

    /// The sharded metrics read exactly as `prometheus_client`'s own given the same values,
    /// whichever worker counted them.
    #[test]
    fn sharded_metrics_encode_as_the_plain_ones() {
        // Binary fractions: the sums are exact whatever order the shards add them in.
        let bounds = [0.125, 0.25, 1.0, 2.0];
        let values = [0.0625, 0.125, 0.25, 0.5, 1.0, 3.0, 0.125];
        let (plain_h, plain_c, plain_g) = (
            Histogram::new(bounds),
            Counter::<u64>::default(),
            Gauge::<i64>::default(),
        );
        let (sh_h, sh_c, sh_g) = (
            ShardedHistogram::new(bounds),
            ShardedCounter::default(),
            ShardedGauge::default(),
        );
        for v in values {
            plain_h.observe(v);
            plain_c.inc();
            plain_g.inc();
        }
        plain_g.dec();
        // Half on this thread (shard 0), half on a worker's shard; the gauge goes up on one
        // and down on the other.
        let (a, b) = values.split_at(3);
        for v in a {
            sh_h.observe(*v);
            sh_c.inc();
            sh_g.inc();
        }
        let (h, c, g) = (sh_h.clone(), sh_c.clone(), sh_g.clone());
        let b = b.to_vec();
        std::thread::spawn(move || {
            crate::shard::enter(1);
            for v in b {
                h.observe(v);
                c.inc();
                g.inc();
            }
            g.dec();
        })
        .join()
        .unwrap();
        let mut plain = Registry::default();
        plain.register("d", "d", plain_h);
        plain.register("r", "r", plain_c);
        plain.register("f", "f", plain_g);
        let mut sharded = Registry::default();
        sharded.register("d", "d", sh_h);
        sharded.register("r", "r", sh_c);
        sharded.register("f", "f", sh_g.clone());
        assert_eq!(text(&sharded), text(&plain));
        assert_eq!(sh_g.get(), 6);
        assert!(
            text(&sharded).contains("d_bucket{le=\"+Inf\"} 7"),
            "{}",
            text(&sharded)
        );
    }
}
