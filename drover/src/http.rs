//! The role scaffolding every `drover` role uses: binding the HTTP address, the shutdown
//! signal, and the one server (`/healthz`, `/metrics`, the role's routes; in `drover up`
//! the UI and every API on one address).
use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use drover_kafka::embedded::BrokerStatus;
pub use drover_schema::api::ApiError;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::net::TcpListener;

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
    listener: TcpListener,
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
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| anyhow::anyhow!("the HTTP server failed: {e}"))
}

/// Bind the HTTP address, with an error that says what to do when it is taken.
pub async fn bind_http(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "cannot serve HTTP on {addr}: the address is already in use (another drover up?); pass --http ADDR to use another port"
            )
        } else {
            anyhow::anyhow!("cannot serve HTTP on {addr}: {e}; pass --http ADDR")
        }
    })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    eprintln!("stopping…");
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
    ApiError::not_found("not found")
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
