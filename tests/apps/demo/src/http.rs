//! The HTTP API: the business endpoint `/`, health, admin switches, echo and metrics.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::config::Config;
use crate::logline::{Access, Output, Stream};

/// How long `/admin/exit` waits after replying before it exits, so the reply reaches the client.
const EXIT_DELAY: Duration = Duration::from_millis(100);

const OK_BODY: &str = "ok\n";
const ERROR_BODY: &str = "error\n";

/// Shared by every handler.
#[derive(Debug)]
pub struct AppState {
    config: Config,
    out: Output,
    healthy: AtomicBool,
    /// The share of `GET /` answered 500, as f64 bits: `ERROR_RATE`, changed by
    /// `POST /admin/errors?rate=R`.
    error_rate: AtomicU64,
    metrics: Metrics,
    registry: Registry,
}

impl AppState {
    pub fn new(config: Config, out: Output) -> Arc<Self> {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        Arc::new(Self {
            error_rate: AtomicU64::new(config.error_rate.to_bits()),
            config,
            out,
            healthy: AtomicBool::new(true),
            metrics,
            registry,
        })
    }
}

/// The router; serve it with `into_make_service_with_connect_info::<SocketAddr>()` so access-log
/// lines carry the client address.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/healthz", get(healthz))
        .route("/admin/healthy", post(set_healthy))
        .route("/admin/unhealthy", post(set_unhealthy))
        .route("/admin/errors", post(set_errors))
        .route("/admin/exit", post(exit))
        .route("/echo", get(echo))
        .route("/metrics", get(metrics))
        .with_state(state)
}

// === metrics ===

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

/// Metrics of `GET /` requests.
#[derive(Debug)]
struct Metrics {
    /// `demo_requests_total{status}`
    requests: Family<StatusLabels, Counter>,
    /// `demo_request_duration_seconds`
    duration: Histogram,
    /// `demo_in_flight_requests`
    in_flight: Gauge,
}

impl Metrics {
    fn register(registry: &mut Registry) -> Self {
        let requests = Family::<StatusLabels, Counter>::default();
        registry.register(
            "demo_requests",
            "Requests to / by status code",
            requests.clone(),
        );
        let duration = Histogram::new([
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        registry.register_with_unit(
            "demo_request_duration",
            "Time to answer a request to /",
            Unit::Seconds,
            duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "demo_in_flight_requests",
            "Requests to / being answered",
            in_flight.clone(),
        );
        Self {
            requests,
            duration,
            in_flight,
        }
    }
}

/// Counts a request in flight until dropped, also when the client goes away mid-request.
struct InFlight<'a>(&'a Gauge);

impl<'a> InFlight<'a> {
    fn start(gauge: &'a Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

// === handlers ===

/// Sleeps `LATENCY_MS` plus jitter, then answers 200 `ok`, or 500 for an `ERROR_RATE` fraction;
/// prints an access-log line.
async fn root(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let ts = SystemTime::now();
    let _in_flight = InFlight::start(&state.metrics.in_flight);

    let config = &state.config;
    let jitter = match config.latency_jitter_ms {
        0 => 0,
        max => fastrand::u64(0..=max),
    };
    let delay = Duration::from_millis(config.latency_ms.saturating_add(jitter));
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let error_rate = f64::from_bits(state.error_rate.load(Ordering::Relaxed));
    let fail = error_rate > 0.0 && fastrand::f64() < error_rate;
    let (status, body) = if fail {
        (StatusCode::INTERNAL_SERVER_ERROR, ERROR_BODY)
    } else {
        (StatusCode::OK, OK_BODY)
    };

    let latency = started.elapsed();
    state
        .metrics
        .requests
        .get_or_create(&StatusLabels {
            status: status.as_u16(),
        })
        .inc();
    state.metrics.duration.observe(latency.as_secs_f64());

    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "-".to_owned(), |ConnectInfo(addr)| addr.ip().to_string());
    let headers = request.headers();
    let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let access = Access {
        remote: &remote,
        ts,
        method: request.method().as_str(),
        path,
        version: version_str(request.version()),
        status: status.as_u16(),
        bytes: body.len(),
        referer: header_str(headers, header::REFERER),
        user_agent: header_str(headers, header::USER_AGENT),
        latency,
    };
    state.out.line(Stream::Stdout, &access.format());

    (status, body).into_response()
}

async fn healthz(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    if state.healthy.load(Ordering::Relaxed) {
        (StatusCode::OK, OK_BODY)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n")
    }
}

async fn set_healthy(State(state): State<Arc<AppState>>) -> &'static str {
    state.healthy.store(true, Ordering::Relaxed);
    OK_BODY
}

async fn set_unhealthy(State(state): State<Arc<AppState>>) -> &'static str {
    state.healthy.store(false, Ordering::Relaxed);
    OK_BODY
}

/// `POST /admin/errors?rate=R`: from now on answer a share R (0–1) of `GET /` with 500.
async fn set_errors(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match params.get("rate").map(|r| r.parse::<f64>()) {
        Some(Ok(r)) if (0.0..=1.0).contains(&r) => {
            state.error_rate.store(r.to_bits(), Ordering::Relaxed);
            OK_BODY.into_response()
        }
        _ => (
            StatusCode::BAD_REQUEST,
            "rate must be a number from 0 to 1, e.g. /admin/errors?rate=1\n",
        )
            .into_response(),
    }
}

/// `POST /admin/exit?code=N`: replies, then exits the process with code N (default 0).
async fn exit(Query(params): Query<HashMap<String, String>>) -> Response {
    let code = match params.get("code").map(|c| c.parse::<u8>()) {
        None => 0,
        Some(Ok(code)) => code,
        Some(Err(_)) => {
            return bad_request(
                "invalid code",
                "code must be a whole number from 0 to 255, e.g. /admin/exit?code=3",
            )
        }
    };
    tokio::spawn(async move {
        tokio::time::sleep(EXIT_DELAY).await;
        std::process::exit(i32::from(code));
    });
    format!("exiting with code {code}\n").into_response()
}

/// `GET /echo?line=TEXT`: prints TEXT to stdout as a line.
async fn echo(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match params.get("line") {
        Some(line) => {
            state.out.line(Stream::Stdout, line);
            OK_BODY.into_response()
        }
        None => bad_request(
            "missing line",
            "give the text to print as a query parameter, e.g. /echo?line=hello",
        ),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut body = String::new();
    if let Err(e) = encode(&mut body, &state.registry) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": "failed to encode metrics", "detail": e.to_string()})),
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

fn bad_request(error: &str, detail: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({"error": error, "detail": detail})),
    )
        .into_response()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn version_str(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logline::Captured as Lines;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Serves the app on a loopback port; returns its address and the captured output.
    async fn serve(config: Config) -> (SocketAddr, Lines) {
        let lines = Lines::default();
        let state = AppState::new(config, Output::Capture(Arc::clone(&lines)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app(state).into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        (addr, lines)
    }

    /// A minimal HTTP/1.1 client: returns the status and the body.
    async fn call(addr: SocketAddr, method: &str, target: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "{method} {target} HTTP/1.1\r\nHost: demo\r\nUser-Agent: unit-test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    }

    #[tokio::test]
    async fn root_answers_ok_and_logs_an_access_line() {
        let (addr, lines) = serve(Config::default()).await;
        assert_eq!(call(addr, "GET", "/").await, (200, "ok\n".to_owned()));

        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1);
        let (stream, line) = &lines[0];
        assert_eq!(*stream, Stream::Stdout);
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
        assert!(
            line.contains(r#"] "GET / HTTP/1.1" 200 3 "-" "unit-test" 0.0"#),
            "{line}"
        );
    }

    #[tokio::test]
    async fn error_rate_one_always_fails() {
        let config = Config {
            error_rate: 1.0,
            ..Config::default()
        };
        let (addr, lines) = serve(config).await;
        for _ in 0..3 {
            assert_eq!(call(addr, "GET", "/").await.0, 500);
        }
        assert!(lines.lock().unwrap()[0].1.contains("\" 500 6 "));

        let (_, body) = call(addr, "GET", "/metrics").await;
        assert!(
            body.contains("demo_requests_total{status=\"500\"} 3"),
            "{body}"
        );
        assert!(
            body.contains("demo_request_duration_seconds_count 3"),
            "{body}"
        );
        assert!(body.contains("demo_in_flight_requests 0"), "{body}");
    }

    #[tokio::test]
    async fn errors_can_be_switched_on_and_off_at_runtime() {
        let (addr, _lines) = serve(Config::default()).await;
        assert_eq!(call(addr, "GET", "/").await.0, 200);
        assert_eq!(call(addr, "POST", "/admin/errors?rate=1").await.0, 200);
        assert_eq!(call(addr, "GET", "/").await.0, 500);
        assert_eq!(call(addr, "POST", "/admin/errors?rate=2").await.0, 400);
        assert_eq!(call(addr, "POST", "/admin/errors?rate=0").await.0, 200);
        assert_eq!(call(addr, "GET", "/").await.0, 200);
    }

    #[tokio::test]
    async fn latency_is_added() {
        let config = Config {
            latency_ms: 50,
            latency_jitter_ms: 10,
            ..Config::default()
        };
        let (addr, _) = serve(config).await;
        let started = Instant::now();
        assert_eq!(call(addr, "GET", "/").await.0, 200);
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn health_can_be_switched() {
        let (addr, _) = serve(Config::default()).await;
        assert_eq!(call(addr, "GET", "/healthz").await.0, 200);
        assert_eq!(call(addr, "POST", "/admin/unhealthy").await.0, 200);
        assert_eq!(call(addr, "GET", "/healthz").await.0, 503);
        assert_eq!(call(addr, "POST", "/admin/healthy").await.0, 200);
        assert_eq!(call(addr, "GET", "/healthz").await.0, 200);
    }

    #[tokio::test]
    async fn echo_prints_the_line() {
        let (addr, lines) = serve(Config::default()).await;
        assert_eq!(call(addr, "GET", "/echo?line=token%20123").await.0, 200);
        assert_eq!(
            *lines.lock().unwrap(),
            vec![(Stream::Stdout, "token 123".to_owned())]
        );
        let (status, body) = call(addr, "GET", "/echo").await;
        assert_eq!(status, 400);
        assert!(body.contains("\"error\":\"missing line\""), "{body}");
    }

    #[tokio::test]
    async fn exit_rejects_a_bad_code() {
        let (addr, _) = serve(Config::default()).await;
        let (status, body) = call(addr, "POST", "/admin/exit?code=300").await;
        assert_eq!(status, 400);
        assert!(body.contains("invalid code"), "{body}");
    }

    #[tokio::test]
    async fn metrics_are_exposed() {
        let (addr, _) = serve(Config::default()).await;
        call(addr, "GET", "/").await;
        let (status, body) = call(addr, "GET", "/metrics").await;
        assert_eq!(status, 200);
        for want in [
            "# TYPE demo_requests counter",
            "demo_requests_total{status=\"200\"} 1",
            "# TYPE demo_request_duration_seconds histogram",
            "# UNIT demo_request_duration_seconds seconds",
            "demo_request_duration_seconds_bucket{le=\"0.005\"} 1",
            "# TYPE demo_in_flight_requests gauge",
            "demo_in_flight_requests 0",
            "# EOF",
        ] {
            assert!(body.contains(want), "missing {want:?} in\n{body}");
        }
    }
}
