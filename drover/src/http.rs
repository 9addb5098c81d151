//! The one HTTP server of `drover up`: UI and every API on one address.
use std::sync::Arc;

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use drover_kafka::embedded::BrokerStatus;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::telemetry::{self, ProcessMetrics};

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Every component's metrics.
    pub registry: Arc<Registry>,
    /// Refreshed before each scrape.
    pub process: ProcessMetrics,
    /// The bootstrap servers in use.
    pub kafka: String,
    /// The embedded broker's status, when Drover runs one.
    pub broker: Option<BrokerStatus>,
}

/// The router, pulled out of `main` so handlers are tested with `oneshot`.
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new())
}

/// The router plus each component's own routes (`extra`: routers whose state is already
/// applied, merged with `Router::merge`). Components add their API here, e.g. the
/// scheduler's `/v2/...` and the log search's `/api/logs/...`.
pub fn app_with(state: AppState, extra: Router) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(extra)
        .fallback(not_found)
}

/// Serve a single role (`drover collector`, `agent`, `logpipe`, `metrics-store`, `dashboards`):
/// `/healthz`, `/metrics` of `registry`, and the role's `routes`, until Ctrl-C or SIGTERM.
pub async fn serve_role(
    listener: tokio::net::TcpListener,
    registry: Registry,
    process: ProcessMetrics,
    kafka: &str,
    routes: Router,
) -> anyhow::Result<()> {
    let state = AppState {
        registry: Arc::new(registry),
        process,
        kafka: kafka.to_string(),
        broker: None,
    };
    axum::serve(listener, app_with(state, routes))
        .with_graceful_shutdown(crate::up::shutdown_signal())
        .await
        .map_err(|e| anyhow::anyhow!("the HTTP server failed: {e}"))
}

#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    kafka: String,
    embedded_broker: Option<&'static str>,
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let broker_up = state.broker.as_ref().map(BrokerStatus::is_up);
    let ok = broker_up.unwrap_or(true);
    let body = Health {
        status: if ok { "ok" } else { "degraded" },
        kafka: state.kafka.clone(),
        embedded_broker: broker_up.map(|up| if up { "up" } else { "down" }),
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// OpenMetrics for scrapers that ask for it (Prometheus does), the Prometheus text format
/// 0.0.4 for everything else (curl, promtool).
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    state.process.refresh();
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, &state.registry)
        .map_err(|e| ApiError::internal(format!("cannot encode metrics: {e}")))?;
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let (content_type, body) = if wants_openmetrics {
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            body,
        )
    } else {
        (
            "text/plain; version=0.0.4; charset=utf-8",
            telemetry::openmetrics_to_prometheus_text(&body),
        )
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        error: "not found".into(),
        detail: None,
    }
}

/// An API error: a status code and a JSON body `{"error": "...", "detail": ...}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: String,
    detail: Option<serde_json::Value>,
}

#[allow(dead_code)] // constructors used by the component APIs as they land
impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
            detail: None,
        }
    }

    /// A 400 with this message.
    pub fn bad_request(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
    }

    /// Adds a machine-readable `detail` (e.g. field-level messages, a query error position).
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// A 500 with this message.
    pub fn internal(error: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: error.into(),
            detail: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.error });
        if let Some(d) = self.detail {
            body["detail"] = d;
        }
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    fn state() -> AppState {
        let mut reg = Registry::default();
        let process = ProcessMetrics::register(&mut reg);
        AppState {
            registry: Arc::new(reg),
            process,
            kafka: "127.0.0.1:9".into(),
            broker: None,
        }
    }

    async fn get(uri: &str) -> (StatusCode, String) {
        get_with(uri, "*/*").await
    }

    async fn get_with(uri: &str, accept: &str) -> (StatusCode, String) {
        let resp = app(state())
            .oneshot(
                Request::get(uri)
                    .header(header::ACCEPT, accept)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn healthz_is_ok_without_embedded_broker() {
        let (status, body) = get("/healthz").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("\"status\":\"ok\""), "{body}");
    }

    #[tokio::test]
    async fn metrics_has_process_metrics() {
        let (status, body) = get("/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("process_resident_memory_bytes "), "{body}");
        assert!(body.contains("drover_build_info{version="), "{body}");
        assert!(
            body.contains("# TYPE process_cpu_seconds_total counter"),
            "{body}"
        );
        assert!(!body.contains("# EOF"), "{body}");
    }

    #[tokio::test]
    async fn metrics_in_openmetrics_when_asked() {
        let (_, body) = get_with("/metrics", "application/openmetrics-text;version=1.0.0").await;
        assert!(
            body.contains("# TYPE process_cpu_seconds counter"),
            "{body}"
        );
        assert!(body.ends_with("# EOF\n"), "{body}");
    }

    #[tokio::test]
    async fn unknown_path_is_json_404() {
        let (status, body) = get("/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, r#"{"error":"not found"}"#);
    }
}
