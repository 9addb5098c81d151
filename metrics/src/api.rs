//! The HTTP API of the metrics store, merged into the `drover up` server:
//!
//! | route | what |
//! |---|---|
//! | `GET /api/metrics/query` | series downsampled to a step: `metric`, `by`, `from`, `to` (or `since`), `step`, `agg`, filters |
//! | `GET /api/metrics/top` | the top `n` groups (`by`, default `instance`) of a window aggregation over `since` (default `5m`) |
//! | `GET /api/metrics/latest` | the latest value of every series of `metric` |
//! | `GET /api/metrics/window` | the window aggregation (`Window::aggregate`) over `since` (default `5m`) per group of `by` (none: one group): what alerting evaluates |
//!
//! Filters (comma-separated values): `app`, `instance`, `node`, `group`, `host`. Errors are
//! JSON `{"error": "..."}`, status 400 for a bad parameter (the message starts with its name).
use std::{sync::Arc, time::Duration};

use axum::{
    extract::{rejection::QueryRejection, Query, State},
    routing::get,
    Json, Router,
};
use chrono::DateTime;
pub use drover_schema::api::ApiError;
use drover_schema::time::{parse_duration, parse_instant as parse_time};
use serde::{Deserialize, Serialize};

use crate::{
    query::{self, auto_step, Latest, QueryRequest},
    sample::{Dim, Metric},
    store::MetricsStore,
    window::{Agg, Filter, GroupValue, WindowQuery},
    MetricsError,
};

/// Query-string parameters (each route uses the ones it needs).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The metric (`cpu_pct`, `rss_pct`, `net_rx_bytes`, `request_rate`, …).
    pub metric: Option<String>,
    /// Only these apps.
    pub app: Option<String>,
    /// Only these instances.
    pub instance: Option<String>,
    /// Only these nodes.
    pub node: Option<String>,
    /// Only these groups.
    pub group: Option<String>,
    /// Only these hosts.
    pub host: Option<String>,
    /// Group by these labels (comma-separated: app, instance, node, group, host).
    pub by: Option<String>,
    /// Start: RFC 3339, epoch ms, `now-1h`.
    pub from: Option<String>,
    /// End (default now).
    pub to: Option<String>,
    /// Instead of `from`: this long back from now (`1h`); top: the window (`5m`).
    pub since: Option<String>,
    /// Bucket width (`1m`; default: about 120 points).
    pub step: Option<String>,
    /// mean, max, min, p50, p95, p99, sum, rate, count, last.
    pub agg: Option<String>,
    /// Top: how many (default 10).
    pub n: Option<String>,
}

fn list(v: &Option<String>) -> Vec<String> {
    v.as_deref()
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

impl Params {
    fn metric(&self) -> Result<Metric, MetricsError> {
        let m = self.metric.as_deref().ok_or_else(|| {
            MetricsError::bad("metric", format!("required (one of {})", Metric::names()))
        })?;
        m.parse().map_err(|e| MetricsError::bad("metric", e))
    }

    fn filter(&self) -> Filter {
        Filter {
            app: list(&self.app),
            instance: list(&self.instance),
            node: list(&self.node),
            group: list(&self.group),
            host: list(&self.host),
        }
    }

    fn by(&self, default: &[Dim]) -> Result<Vec<Dim>, MetricsError> {
        if self.by.is_none() {
            return Ok(default.to_vec());
        }
        let mut out = Vec::new();
        for d in list(&self.by) {
            let d: Dim = d.parse().map_err(|e| MetricsError::bad("by", e))?;
            if !out.contains(&d) {
                out.push(d);
            }
        }
        Ok(out)
    }

    fn agg(&self) -> Result<Agg, MetricsError> {
        match &self.agg {
            None => Ok(Agg::Mean),
            Some(a) => a.parse().map_err(|e| MetricsError::bad("agg", e)),
        }
    }

    /// The series query these parameters describe, at `now_ms`.
    pub fn query_request(&self, now_ms: i64) -> Result<QueryRequest, MetricsError> {
        let now = DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
        let to = match &self.to {
            Some(t) => parse_time(t, now).map_err(|e| MetricsError::bad("to", e.to_string()))?,
            // Include a sample stamped this very millisecond.
            None => now + chrono::Duration::milliseconds(1),
        };
        let from = match (&self.from, &self.since) {
            (Some(_), Some(_)) => {
                return Err(MetricsError::bad(
                    "since",
                    "give either from or since, not both",
                ))
            }
            (Some(f), None) => {
                parse_time(f, now).map_err(|e| MetricsError::bad("from", e.to_string()))?
            }
            (None, Some(s)) => {
                let d = parse_duration(s).map_err(|e| MetricsError::bad("since", e.to_string()))?;
                to - chrono::Duration::from_std(d)
                    .map_err(|e| MetricsError::bad("since", e.to_string()))?
            }
            (None, None) => to - chrono::Duration::hours(1),
        };
        let range = (to - from).to_std().unwrap_or_default();
        let step = match &self.step {
            Some(s) => parse_duration(s).map_err(|e| MetricsError::bad("step", e.to_string()))?,
            None => auto_step(range, 120),
        };
        let req = QueryRequest {
            metric: self.metric()?,
            filter: self.filter(),
            by: self.by(&[])?,
            from_ms: from.timestamp_millis(),
            to_ms: to.timestamp_millis(),
            step_ms: i64::try_from(step.as_millis()).unwrap_or(i64::MAX),
            agg: self.agg()?,
        };
        req.validate()?;
        Ok(req)
    }

    /// The window aggregation of `/api/metrics/window` (`by` may be empty: one group).
    pub fn window_request(&self) -> Result<WindowQuery, MetricsError> {
        let range = match &self.since {
            Some(s) => parse_duration(s).map_err(|e| MetricsError::bad("since", e.to_string()))?,
            None => Duration::from_secs(300),
        };
        let metric = self.metric()?;
        let agg = self.agg()?;
        agg.check(metric)?;
        Ok(WindowQuery {
            metric,
            range,
            by: self.by(&[])?,
            agg,
            filter: self.filter(),
        })
    }

    /// The window aggregation of `top`, and `n`.
    pub fn top_request(&self) -> Result<(WindowQuery, usize), MetricsError> {
        let range = match &self.since {
            Some(s) => parse_duration(s).map_err(|e| MetricsError::bad("since", e.to_string()))?,
            None => Duration::from_secs(300),
        };
        let n = match &self.n {
            Some(n) => n
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| MetricsError::bad("n", format!("{n:?}: must be 1 to 1000")))?,
            None => 10,
        };
        let metric = self.metric()?;
        let agg = self.agg()?;
        agg.check(metric)?;
        let by = self.by(&[Dim::Instance])?;
        if by.is_empty() {
            return Err(MetricsError::bad("by", "top needs at least one label"));
        }
        Ok((
            WindowQuery {
                metric,
                range,
                by,
                agg,
                filter: self.filter(),
            },
            n,
        ))
    }
}

/// The routes, bound to a store.
pub fn router(store: Arc<MetricsStore>) -> Router {
    Router::new()
        .route("/api/metrics/query", get(query_route))
        .route("/api/metrics/top", get(top_route))
        .route("/api/metrics/latest", get(latest_route))
        .route("/api/metrics/window", get(window_route))
        .with_state(store)
}

impl From<MetricsError> for ApiError {
    fn from(e: MetricsError) -> Self {
        if e.is_client_error() {
            ApiError::bad_request(e.to_string())
        } else {
            tracing::error!(error = %e, "metrics query failed");
            ApiError::internal(e.to_string())
        }
    }
}

fn params(p: Result<Query<Params>, QueryRejection>) -> Result<Params, ApiError> {
    p.map(|Query(p)| p)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, MetricsError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(ApiError::from)
}

async fn query_route(
    State(store): State<Arc<MetricsStore>>,
    p: Result<Query<Params>, QueryRejection>,
) -> Result<Json<query::QueryResponse>, ApiError> {
    let req = params(p)?.query_request(store.now_ms())?;
    Ok(Json(blocking(move || query::query(&store, &req)).await?))
}

/// The answer of `/api/metrics/top`.
#[derive(Debug, Serialize)]
pub struct TopResponse {
    /// The metric.
    pub metric: Metric,
    /// The aggregation.
    pub agg: Agg,
    /// The window, seconds.
    pub range_s: u64,
    /// Largest first.
    pub top: Vec<GroupValue>,
}

async fn top_route(
    State(store): State<Arc<MetricsStore>>,
    p: Result<Query<Params>, QueryRejection>,
) -> Result<Json<TopResponse>, ApiError> {
    let (q, n) = params(p)?.top_request()?;
    let horizon = store.window().horizon();
    if q.range > horizon {
        return Err(MetricsError::bad(
            "since",
            format!(
                "top looks at the in-memory window, which keeps {}",
                humantime::format_duration(horizon)
            ),
        )
        .into());
    }
    let top = blocking({
        let q = q.clone();
        move || query::top(&store, &q, n)
    })
    .await?;
    Ok(Json(TopResponse {
        metric: q.metric,
        agg: q.agg,
        range_s: q.range.as_secs(),
        top,
    }))
}

/// The answer of `/api/metrics/window`.
#[derive(Debug, Serialize)]
pub struct WindowResponse {
    /// The window, ms.
    pub range_ms: u64,
    /// The end of the window (now by the store's clock), ms since the epoch.
    pub now_ms: i64,
    /// One per group with samples, sorted by labels.
    pub groups: Vec<GroupValue>,
}

async fn window_route(
    State(store): State<Arc<MetricsStore>>,
    p: Result<Query<Params>, QueryRejection>,
) -> Result<Json<WindowResponse>, ApiError> {
    let q = params(p)?.window_request()?;
    let range_ms = q.range.as_millis() as u64;
    let (now_ms, groups) = blocking(move || {
        let w = store.window();
        Ok((w.now_ms(), w.aggregate(&q)?))
    })
    .await?;
    Ok(Json(WindowResponse {
        range_ms,
        now_ms,
        groups,
    }))
}

/// The answer of `/api/metrics/latest`.
#[derive(Debug, Serialize)]
pub struct LatestResponse {
    /// The metric.
    pub metric: Metric,
    /// One per series.
    pub series: Vec<Latest>,
}

async fn latest_route(
    State(store): State<Arc<MetricsStore>>,
    p: Result<Query<Params>, QueryRejection>,
) -> Result<Json<LatestResponse>, ApiError> {
    let p = params(p)?;
    let metric = p.metric()?;
    let filter = p.filter();
    let series = blocking(move || Ok(query::latest(&store, metric, &filter))).await?;
    Ok(Json(LatestResponse { metric, series }))
}

#[cfg(test)]
mod tests {
    use axum::{
        body::Body,
        http::{Request, StatusCode},
    };
    use drover_schema::time::{Clock as _, ManualClock as FakeClock};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::{
        sample::{Labels, Samples},
        store::StoreConfig,
    };

    async fn get(app: Router, uri: &str) -> (StatusCode, serde_json::Value) {
        let resp = app
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    fn app() -> (tempfile::TempDir, Router) {
        let dir = tempfile::tempdir().unwrap();
        let clock = FakeClock::at_ms(1_800_000_000_000);
        let store = MetricsStore::open(
            dir.path(),
            StoreConfig {
                clock: clock.shared(),
                ..StoreConfig::default()
            },
        )
        .unwrap();
        let now = clock.now().timestamp_millis();
        for i in 0..30 {
            for inst in ["1", "2", "3"] {
                store.add(&Samples {
                    labels: Labels {
                        app: "/shop".into(),
                        instance: inst.into(),
                        ..Labels::default()
                    },
                    ts_ms: now - i * 10_000,
                    values: vec![(Metric::CpuPct, inst.parse::<f64>().unwrap() * 10.0)],
                });
            }
        }
        (dir, router(Arc::new(store)))
    }

    #[tokio::test]
    async fn query_top_latest() {
        let (_d, app) = app();
        let (s, body) = get(
            app.clone(),
            "/api/metrics/query?metric=cpu_pct&app=/shop&by=instance&since=10m&step=1m&agg=max",
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(body["series"].as_array().unwrap().len(), 3);
        assert_eq!(body["series"][2]["labels"]["instance"], "3");
        assert_eq!(body["series"][2]["points"][0][1], 30.0);
        let (s, body) = get(app.clone(), "/api/metrics/top?metric=cpu_pct&n=2").await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(body["top"].as_array().unwrap().len(), 2);
        assert_eq!(body["top"][0]["value"], 30.0);
        assert_eq!(body["top"][0]["samples"], 30);
        let (s, body) = get(app.clone(), "/api/metrics/window?metric=cpu_pct&agg=max").await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(body["groups"].as_array().unwrap().len(), 1);
        assert_eq!(body["groups"][0]["value"], 30.0);
        assert_eq!(body["range_ms"], 300_000);
        let (s, body) = get(
            app.clone(),
            "/api/metrics/window?metric=cpu_pct&by=instance&agg=mean&since=1m&instance=1,2",
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(body["groups"].as_array().unwrap().len(), 2);
        assert_eq!(body["groups"][1]["labels"]["instance"], "2");
        assert_eq!(body["groups"][1]["value"], 20.0);
        let (s, body) = get(app, "/api/metrics/latest?metric=cpu_pct").await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(body["series"].as_array().unwrap().len(), 3);
        assert_eq!(body["series"][0]["labels"]["app"], "/shop");
    }

    #[tokio::test]
    async fn bad_parameters_are_400_naming_the_parameter() {
        let (_d, app) = app();
        for (uri, starts) in [
            ("/api/metrics/query", "metric:"),
            ("/api/metrics/query?metric=cpu", "metric:"),
            ("/api/metrics/query?metric=cpu_pct&by=pod", "by:"),
            ("/api/metrics/query?metric=cpu_pct&agg=median", "agg:"),
            ("/api/metrics/query?metric=cpu_pct&agg=rate", "agg:"),
            ("/api/metrics/query?metric=cpu_pct&step=soon", "step:"),
            (
                "/api/metrics/query?metric=cpu_pct&since=1h&from=now-1h",
                "since:",
            ),
            ("/api/metrics/query?metric=cpu_pct&from=yesterday", "from:"),
            (
                "/api/metrics/query?metric=cpu_pct&since=30d&step=1s",
                "step:",
            ),
            ("/api/metrics/top?metric=cpu_pct&n=0", "n:"),
            ("/api/metrics/top?metric=cpu_pct&since=2h", "since:"),
            ("/api/metrics/latest?metric=nope", "metric:"),
        ] {
            let (s, body) = get(app.clone(), uri).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {body}");
            let e = body["error"].as_str().unwrap();
            assert!(e.starts_with(starts), "{uri}: {e}");
        }
        let (s, body) = get(app, "/api/metrics/query?metric=cpu_pct&colour=red").await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(body["error"].as_str().unwrap().contains("colour"), "{body}");
    }
}
