//! The gateway's Prometheus metrics (`drover_gateway_*`). Label values are bounded: the app
//! label takes the IDs of routed apps (what the operator deployed), never a task ID, a host
//! or a path from a request; per-instance figures go to Kafka and the routes API instead.
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

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
    pub requests: Family<StatusLabels, Counter>,
    /// Request duration (arrival to end of response) by app.
    pub duration: Family<AppLabels, Histogram>,
    /// Requests in flight by app.
    pub in_flight: Family<AppLabels, Gauge>,
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
                Histogram::new([
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
    pub in_flight: Gauge,
    /// `request_duration_seconds{app}`.
    pub duration: Histogram,
    /// `requests_total{app,class}` for 1xx … 5xx.
    requests: [Counter; 5],
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
