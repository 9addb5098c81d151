//! Drover's web UI: one page of plain HTML, CSS and JavaScript embedded in the binary (no
//! build step, no CDN: it works offline), served at `/` by `drover up` and `drover
//! dashboards`. The page talks to the same JSON APIs as the CLI:
//!
//! | page | APIs |
//! |---|---|
//! | Logs | `/api/logs/search`, `/histogram`, `/context`, `/fields`, `/tail` (SSE) |
//! | Apps, an app | `/v2/apps`, `/v2/apps/{id}/tasks`, `/v2/deployments`, `/api/metrics/query`, `/api/logs/search` |
//! | Nodes | `/v1/nodes`, `/v1/nodes/{id}/{cordon,uncordon,drain}`, `DELETE /v1/nodes/{id}` |
//! | Events | `/v1/events` (the latest), `/v2/events` (SSE, live) |
//! | Routes | `/v1/gateway/routes` |
//!
//! `GET /ui/config.json` tells the page which parts this server has, so a role without the
//! scheduler (say) hides its pages instead of showing errors.
use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::IntoResponse,
    routing::{get, MethodRouter},
    Json, Router,
};
use serde::Serialize;

const INDEX_HTML: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const APP_CSS: &str = include_str!("../ui/app.css");
const ALERTS_JS: &str = include_str!("../ui/alerts.js");
const AUTOSCALER_JS: &str = include_str!("../ui/autoscaler.js");
const JOBS_JS: &str = include_str!("../ui/jobs.js");
const CHARTS_JS: &str = include_str!("../ui/charts.js");
const FAVICON_SVG: &str = include_str!("../ui/favicon.svg");

/// Which parts the server behind the page has.
#[derive(Debug, Clone, Serialize)]
pub struct UiConfig {
    /// The log search API (`/api/logs/...`).
    pub logs: bool,
    /// The metrics API (`/api/metrics/...`).
    pub metrics: bool,
    /// The scheduler's APIs (`/v2/...`, `/v1/nodes`, `/v1/events`).
    pub scheduler: bool,
    /// The gateway's routes API (`/v1/gateway/routes`).
    pub gateway: bool,
    /// Alertman's APIs (`/api/alerts`, `/api/v2/...`).
    pub alerts: bool,
    /// The autoscaler's API (`/api/autoscaler/...`).
    pub autoscaler: bool,
    /// Drover's version, shown in the footer.
    pub version: String,
}

impl UiConfig {
    /// Every part present.
    pub fn all() -> Self {
        Self {
            logs: true,
            metrics: true,
            scheduler: true,
            gateway: true,
            alerts: true,
            autoscaler: true,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// The UI's routes: `/`, `/ui/*` assets and `/ui/config.json`.
pub fn router(config: UiConfig) -> Router {
    Router::new()
        .route("/", asset(INDEX_HTML, "text/html; charset=utf-8"))
        .route(
            "/ui/app.js",
            asset(APP_JS, "text/javascript; charset=utf-8"),
        )
        .route(
            "/ui/charts.js",
            asset(CHARTS_JS, "text/javascript; charset=utf-8"),
        )
        .route("/ui/app.css", asset(APP_CSS, "text/css; charset=utf-8"))
        .route(
            "/ui/alerts.js",
            asset(ALERTS_JS, "text/javascript; charset=utf-8"),
        )
        .route(
            "/ui/autoscaler.js",
            asset(AUTOSCALER_JS, "text/javascript; charset=utf-8"),
        )
        .route(
            "/ui/jobs.js",
            asset(JOBS_JS, "text/javascript; charset=utf-8"),
        )
        .route("/favicon.svg", asset(FAVICON_SVG, "image/svg+xml"))
        .route("/ui/config.json", get(config_route))
        .with_state(config)
}

/// One embedded asset. `no-cache` makes the browser revalidate, so a new binary's UI shows
/// at once; the ETag (computed once, here) lets an unchanged asset answer 304 without a body.
fn asset(body: &'static str, content_type: &'static str) -> MethodRouter<UiConfig> {
    let etag = HeaderValue::from_str(&format!(
        "\"{}-{:x}\"",
        env!("CARGO_PKG_VERSION"),
        fnv(body)
    ))
    .unwrap_or(HeaderValue::from_static("\"0\""));
    get(move |headers: HeaderMap| async move {
        let fresh = headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == etag.as_bytes());
        let common = [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::ETAG, etag),
        ];
        if fresh {
            return (StatusCode::NOT_MODIFIED, common).into_response();
        }
        (
            common,
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(
                        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
                    ),
                ),
            ],
            body,
        )
            .into_response()
    })
}

/// FNV-1a: a stable content hash for the ETag (not security relevant).
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

async fn config_route(State(config): State<UiConfig>) -> Json<UiConfig> {
    Json(config)
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get(uri: &str) -> (u16, String, String) {
        let resp = router(UiConfig::all())
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn index_links_only_local_assets() {
        let (status, ct, body) = get("/").await;
        assert_eq!(status, 200);
        assert!(ct.starts_with("text/html"), "{ct}");
        for asset in [
            "/ui/app.js",
            "/ui/charts.js",
            "/ui/app.css",
            "/ui/alerts.js",
            "/ui/autoscaler.js",
            "/ui/jobs.js",
        ] {
            assert!(body.contains(asset), "index must load {asset}");
            let (status, _, body) = get(asset).await;
            assert_eq!(status, 200, "{asset}");
            assert!(!body.is_empty());
        }
        // Works offline: nothing is fetched from another origin.
        // (The SVG namespace is a name, not a fetch.)
        for page in [
            INDEX_HTML,
            APP_JS,
            CHARTS_JS,
            APP_CSS,
            ALERTS_JS,
            AUTOSCALER_JS,
            JOBS_JS,
        ] {
            let page = page.replace("http://www.w3.org/2000/svg", "");
            assert!(!page.contains("http://") && !page.contains("https://"));
        }
    }

    #[tokio::test]
    async fn an_unchanged_asset_is_a_304_without_body() {
        let first = router(UiConfig::all())
            .oneshot(Request::get("/ui/app.js").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let etag = first.headers().get(header::ETAG).unwrap().clone();
        let again = router(UiConfig::all())
            .oneshot(
                Request::get("/ui/app.js")
                    .header(header::IF_NONE_MATCH, etag.clone())
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(again.status(), 304);
        assert_eq!(again.headers().get(header::ETAG), Some(&etag));
        let body = again.into_body().collect().await.unwrap().to_bytes();
        assert!(body.is_empty());
        // Another tag (an older binary's): the whole asset.
        let stale = router(UiConfig::all())
            .oneshot(
                Request::get("/ui/app.js")
                    .header(header::IF_NONE_MATCH, "\"0.0.0-0\"")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(stale.status(), 200);
    }

    #[tokio::test]
    async fn config_says_which_parts_exist() {
        let (status, ct, body) = get("/ui/config.json").await;
        assert_eq!(status, 200);
        assert!(ct.starts_with("application/json"), "{ct}");
        assert!(body.contains("\"scheduler\":true"), "{body}");
    }
}
