//! The role scaffolding every `drover` role uses: binding the HTTP address, the shutdown
//! signal, and the one server (`/healthz`, `/metrics`, the role's routes; in `drover up`
//! the UI and every API on one address), every route of it behind the auth guard
//! (drover-auth).
use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, OnceLock},
};

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use drover_auth::{Guard, GuardConfig, Secret, TokenStore};
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
    /// Who may do what (applied to every route by [`app_with`]).
    pub guard: Guard,
}

// === auth ===

/// The security options every role shares (global flags of `drover`): auth, and the Kafka
/// client's SASL/TLS properties. `Debug` never shows the cluster token.
#[derive(Clone, clap::Args)]
pub struct AuthOpts {
    /// Serve the HTTP APIs without authentication even on a non-loopback address. Anyone
    /// who can reach the server can then deploy, scale and remove apps; said loudly in the
    /// log and on /healthz.
    #[arg(long, global = true, env = "DROVER_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// The cluster token (32+ characters; `drover token generate` makes one): agents and
    /// roles on other hosts join the master with it, and a server accepts it as an
    /// operator named `cluster`. Prefer the environment variable: a flag shows in `ps`.
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "DROVER_CLUSTER_TOKEN",
        hide_env_values = true
    )]
    pub cluster_token: Option<String>,
    /// A file of librdkafka properties (`key=value` lines, e.g. security.protocol=SASL_SSL,
    /// sasl.mechanism, sasl.username, sasl.password, ssl.ca.location) applied to every
    /// Kafka client, for an external cluster that needs SASL or TLS.
    #[arg(long, global = true, value_name = "FILE", env = "DROVER_KAFKA_CONFIG")]
    pub kafka_config: Option<std::path::PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key); re-read when it
    /// changes.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "DROVER_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert; re-read when it changes.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "DROVER_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for AuthOpts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthOpts")
            .field("insecure_no_auth", &self.insecure_no_auth)
            .field("cluster_token", &self.cluster_token.as_ref().map(|_| ".."))
            .field("kafka_config", &self.kafka_config)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .finish()
    }
}

/// The process's auth settings (set once by `main`).
#[derive(Debug)]
struct AuthSettings {
    insecure_no_auth: bool,
    cluster: Option<Secret>,
    tls: Option<crate::tls::TlsFiles>,
}

static AUTH: OnceLock<AuthSettings> = OnceLock::new();

/// Take the global auth flags: a cluster token is checked (long enough) and becomes the
/// token this process's own clients send (an agent to its master, the autoscaler to the
/// scheduler).
pub fn init_auth(opts: &AuthOpts, server_role: bool) -> anyhow::Result<()> {
    if let Some(path) = &opts.kafka_config {
        drover_kafka::config::set_extra_properties(drover_kafka::config::load_properties(path)?);
    }
    let cluster = match opts.cluster_token.as_deref().map(str::trim) {
        Some(t) if !t.is_empty() => {
            let secret = Secret::new(t)?;
            if server_role {
                drover_auth::client::set_process_token(t);
            }
            Some(secret)
        }
        _ => None,
    };
    let tls = match (&opts.tls_cert, &opts.tls_key) {
        (Some(cert), Some(key)) => {
            let files = crate::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            };
            // A bad certificate or key is an error now, before anything starts.
            crate::tls::check(&files)?;
            Some(files)
        }
        _ => None,
    };
    let _ = AUTH.set(AuthSettings {
        insecure_no_auth: opts.insecure_no_auth,
        cluster,
        tls,
    });
    Ok(())
}

/// Whether the HTTP server speaks TLS (`--tls-cert`, `--tls-key`).
pub fn tls_on() -> bool {
    AUTH.get().is_some_and(|s| s.tls.is_some())
}

/// Serve `app` on `listener` until `shutdown` resolves: HTTPS with `--tls-cert` and
/// `--tls-key`, else plain HTTP; each connection's client address is given to the
/// handlers (the audit trail, the login rate limit).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use axum::serve::ListenerExt;
    match AUTH.get().and_then(|s| s.tls.clone()) {
        Some(files) => {
            let acceptor = crate::tls::acceptor(files)?;
            let listener = crate::tls::TlsListener::new(listener, acceptor)
                .map_err(|e| anyhow::anyhow!("cannot serve HTTPS: {e}"))?
                .tap_io(|_| {});
            axum::serve(listener, into_service(app))
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(listener, into_service(app))
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
    .map_err(|e| anyhow::anyhow!("the HTTP server failed: {e}"))
}

/// The guard of a server bound to `addr`, with the tokens of `data_dir` (when the role has
/// one): refuses (with what to do) to serve off loopback without authentication.
pub fn guard_for(addr: SocketAddr, data_dir: Option<&Path>) -> anyhow::Result<GuardConfig> {
    let settings = AUTH.get_or_init(|| AuthSettings {
        insecure_no_auth: false,
        cluster: None,
        tls: None,
    });
    let store = data_dir.map(TokenStore::in_data_dir);
    let mut cfg = GuardConfig::for_addr(
        addr,
        settings.insecure_no_auth,
        store,
        settings.cluster.clone(),
    )?;
    cfg.secure_cookies = settings.tls.is_some();
    if cfg.mode == drover_auth::Mode::InsecureNoAuth {
        eprintln!(
            "WARNING: --insecure-no-auth: the HTTP APIs on {addr} are open to anyone who can reach them (no token needed)"
        );
        // Repeated, so it is in any window of the log someone reads.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
                every.tick().await;
                loop {
                    every.tick().await;
                    tracing::warn!(addr = %addr, "INSECURE: started with --insecure-no-auth: every API is open without a token");
                }
            });
        }
    }
    Ok(cfg)
}

/// The router, pulled out of `main` so handlers are tested with `oneshot`.
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new())
}

/// The router plus each component's own routes (`extra`: routers whose state is already
/// applied, merged with `Router::merge`). Components add their API here, e.g. the
/// scheduler's `/v2/...` and the log search's `/api/logs/...`.
///
/// The guard wraps the whole merged router (every route and the fallback), so a route a
/// component adds later is guarded by default; the routes served are recorded for
/// `GET /api/auth/routes` (read from the router itself).
pub fn app_with(state: AppState, extra: Router) -> Router {
    let guard = state.guard.clone();
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(guard.router())
        .merge(extra)
        .fallback(not_found);
    guard.set_routes(drover_auth::routes::served_routes(&router));
    guard.layer(router)
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
    let addr = listener
        .local_addr()
        .map_err(|e| anyhow::anyhow!("cannot read the HTTP address: {e}"))?;
    let state = AppState {
        registry: Arc::new(registry),
        process,
        kafka: kafka.to_string(),
        broker: None,
        guard: Guard::new(guard_for(addr, None)?),
    };
    serve(listener, app_with(state, routes), shutdown_signal()).await
}

/// The router as the server's service, with each connection's client address (for the
/// audit trail and the login rate limit).
fn into_service(
    router: Router,
) -> axum::extract::connect_info::IntoMakeServiceWithConnectInfo<Router, SocketAddr> {
    router.into_make_service_with_connect_info::<SocketAddr>()
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
    /// `on`, `off` (loopback, no token yet) or `INSECURE-NO-AUTH`.
    auth: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<&'static str>,
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let broker_up = state.broker.as_ref().map(BrokerStatus::is_up);
    let ok = broker_up.unwrap_or(true);
    let body = Health {
        status: if ok { "ok" } else { "degraded" },
        kafka: state.kafka.clone(),
        embedded_broker: broker_up.map(|up| if up { "up" } else { "down" }),
        auth: state.guard.health(),
        warning: (state.guard.mode() == drover_auth::Mode::InsecureNoAuth).then_some(
            "INSECURE: started with --insecure-no-auth: every API is open without a token",
        ),
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
            guard: Guard::open(),
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
    async fn a_route_a_component_adds_is_guarded_by_default_and_listed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = TokenStore::in_data_dir(tmp.path());
        let viewer = store.create("v", drover_auth::Role::Viewer).unwrap();
        let mut st = state();
        st.guard = Guard::new(
            GuardConfig::for_addr("127.0.0.1:1".parse().unwrap(), false, Some(store), None)
                .unwrap(),
        );
        let guard = st.guard.clone();
        // A component's router that knows nothing of auth.
        let extra = Router::new().route(
            "/api/new/{x}",
            axum::routing::post(|| async { "done" }).get(|| async { "read" }),
        );
        let app = app_with(st, extra);
        let send = |method: &str, uri: &str, token: Option<&str>| {
            let mut b = Request::builder().method(method).uri(uri);
            if let Some(t) = token {
                b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
            }
            app.clone().oneshot(b.body(Body::empty()).unwrap())
        };
        assert_eq!(
            send("POST", "/api/new/1", None).await.unwrap().status(),
            401
        );
        assert_eq!(
            send("POST", "/api/new/1", Some(&viewer))
                .await
                .unwrap()
                .status(),
            403
        );
        assert_eq!(
            send("GET", "/api/new/1", Some(&viewer))
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(send("GET", "/metrics", None).await.unwrap().status(), 401);
        assert_eq!(send("GET", "/healthz", None).await.unwrap().status(), 200);
        let routes = guard_routes(&guard).await;
        for (m, p) in [
            ("POST", "/api/new/{x}"),
            ("GET", "/metrics"),
            ("POST", "/login"),
        ] {
            assert!(
                routes
                    .iter()
                    .any(|r| r.path == p && r.methods.iter().any(|x| x == m)),
                "{m} {p} not in {routes:?}"
            );
        }
    }

    /// The routes the guard recorded (what `GET /api/auth/routes` serves).
    async fn guard_routes(g: &Guard) -> Vec<drover_auth::routes::RouteInfo> {
        let resp = g
            .router()
            .oneshot(
                Request::get("/api/auth/routes")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn unknown_path_is_json_404() {
        let (status, body) = get("/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, r#"{"error":"not found"}"#);
    }
}
