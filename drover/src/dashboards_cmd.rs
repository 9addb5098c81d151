//! `drover dashboards`: the web UI alone, for a multi-host setup. The page's API calls are
//! passed through to the roles that answer them: `/api/logs/...` to a logpipe (`--search`),
//! `/api/metrics/...` to a metrics store (`--metrics`), `/v2/...`, `/v1/...` to the master
//! (`--master`). Responses are streamed, so live tails and event streams work through it.
use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::any,
    Router,
};
use clap::Args;
use prometheus_client::registry::Registry;

use crate::{
    http::{self, bind_http, ApiError},
    telemetry::ProcessMetrics,
};

/// Options of `drover dashboards`.
#[derive(Debug, Args)]
pub struct DashboardsArgs {
    /// Address the UI is served on.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8090",
        env = "DROVER_HTTP"
    )]
    pub http: SocketAddr,
    /// Base URL of the log search (a `drover logpipe` or `drover up`), e.g.
    /// http://logs-1:8083. Without it the Logs page is hidden.
    #[arg(long, value_name = "URL")]
    pub search: Option<String>,
    /// Base URL of the metrics store (`drover metrics-store` or `drover up`). Without it the
    /// app pages show no charts.
    #[arg(long, value_name = "URL")]
    pub metrics: Option<String>,
    /// Base URL of the scheduler's master (`drover master` or `drover up`). Without it the
    /// Apps, Nodes and Events pages are hidden.
    #[arg(long, value_name = "URL")]
    pub master: Option<String>,
}

/// Where one family of API paths goes.
#[derive(Debug, Clone)]
struct Upstream {
    base: Arc<str>,
    client: reqwest::Client,
}

/// Run the UI alone until Ctrl-C or SIGTERM.
pub async fn run(args: DashboardsArgs) -> anyhow::Result<()> {
    if args.search.is_none() && args.metrics.is_none() && args.master.is_none() {
        anyhow::bail!(
            "nothing to show: give at least one of --search URL, --metrics URL, --master URL (the roles whose APIs the pages use)"
        );
    }
    // Calls the roles' APIs with this process's cluster token (the UI's own users are
    // checked by this server's guard first).
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .default_headers(drover_auth::client::default_headers())
        .build()
        .context("cannot build the HTTP client")?;
    let upstream = |url: &Option<String>, flag: &str| -> anyhow::Result<Option<Upstream>> {
        url.as_ref()
            .map(|u| {
                let parsed = reqwest::Url::parse(u).with_context(|| {
                    format!("{flag} {u:?} is not a URL: write it like http://host:port")
                })?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    anyhow::bail!("{flag} {u:?} must be an http:// or https:// URL");
                }
                Ok(Upstream {
                    base: u.trim_end_matches('/').into(),
                    client: client.clone(),
                })
            })
            .transpose()
    };
    let search = upstream(&args.search, "--search")?;
    let metrics = upstream(&args.metrics, "--metrics")?;
    let master = upstream(&args.master, "--master")?;
    let listener = bind_http(args.http).await?;
    let mut extra = Router::new().merge(drover_dashboards::router(drover_dashboards::UiConfig {
        logs: search.is_some(),
        metrics: metrics.is_some(),
        scheduler: master.is_some(),
        // The gateway's routes API is served by `drover up` or `drover gateway`, not proxied here.
        gateway: false,
        alerts: false,
        autoscaler: false,
        ..drover_dashboards::UiConfig::all()
    }));
    if let Some(up) = search {
        extra = extra.merge(proxy_routes(&["/api/logs/{*rest}"], up));
    }
    if let Some(up) = metrics {
        extra = extra.merge(proxy_routes(&["/api/metrics/{*rest}"], up));
    }
    if let Some(up) = master {
        extra = extra.merge(proxy_routes(&["/v2/{*rest}", "/v1/{*rest}", "/ping"], up));
    }
    let mut registry = Registry::default();
    let process = ProcessMetrics::register(&mut registry);
    println!("drover dashboards on http://{}/", args.http);
    for (name, url) in [
        ("logs", &args.search),
        ("metrics", &args.metrics),
        ("master", &args.master),
    ] {
        if let Some(u) = url {
            println!("  {name:<8} {u}");
        }
    }
    http::serve_role(listener, registry, process, "", extra).await
}

fn proxy_routes(paths: &[&str], up: Upstream) -> Router {
    let mut r = Router::new();
    for p in paths {
        r = r.route(p, any(proxy));
    }
    r.with_state(up)
}

/// Pass one request through to the upstream and stream its answer back.
async fn proxy(State(up): State<Upstream>, req: Request) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let url = format!("{}{}", up.base, path);
    let method = req.method().clone();
    let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
    let accept = req.headers().get(header::ACCEPT).cloned();
    let body = match axum::body::to_bytes(req.into_body(), 16 << 20).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::bad_request(format!("cannot read the body: {e}")).into_response()
        }
    };
    let mut out = up.client.request(method, &url).body(body);
    if let Some(ct) = content_type {
        out = out.header(header::CONTENT_TYPE, ct);
    }
    if let Some(a) = accept {
        out = out.header(header::ACCEPT, a);
    }
    match out.send().await {
        Ok(resp) => {
            let status = resp.status();
            let mut builder = Response::builder().status(status);
            for h in [header::CONTENT_TYPE, header::CACHE_CONTROL, header::LOCATION] {
                if let Some(v) = resp.headers().get(&h) {
                    builder = builder.header(h, v);
                }
            }
            builder
                .body(Body::from_stream(resp.bytes_stream()))
                .unwrap_or_else(|e| {
                    ApiError::internal(format!("cannot relay the answer: {e}")).into_response()
                })
        }
        Err(e) => ApiError::new(
            StatusCode::BAD_GATEWAY.as_u16(),
            format!(
                "cannot reach {} ({e}); is that role running, and is the URL given to drover dashboards right?",
                up.base
            ),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::get;

    use super::*;

    #[tokio::test]
    async fn requests_pass_through_and_an_unreachable_upstream_is_a_502() {
        // A real upstream on loopback.
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = upstream.local_addr().unwrap();
        let app = Router::new().route(
            "/v2/apps",
            get(
                |uri: axum::http::Uri| async move { format!("apps {}", uri.query().unwrap_or("")) },
            ),
        );
        tokio::spawn(async move { axum::serve(upstream, app).await.unwrap() });
        let up = Upstream {
            base: format!("http://{addr}").into(),
            client: reqwest::Client::new(),
        };
        let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front_addr = front.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(front, proxy_routes(&["/v2/{*rest}"], up))
                .await
                .unwrap()
        });
        let body = reqwest::get(format!("http://{front_addr}/v2/apps?embed=x"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "apps embed=x");

        // Nothing listens on this one.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_addr = closed.local_addr().unwrap();
        drop(closed);
        let resp = proxy(
            State(Upstream {
                base: format!("http://{closed_addr}").into(),
                client: reqwest::Client::new(),
            }),
            Request::get("/v2/apps").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    }
}
