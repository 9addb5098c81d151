//! Where the live loop reads its metrics: one small trait, [`MetricsSource`], with an HTTP
//! implementation against the metrics store's window API (`GET /api/metrics/window`) and its
//! query API for the history a restart seeds from (`GET /api/metrics/query`), and a fake for
//! tests. (`drover up` may implement the trait in process over the store's window, as
//! Alertman does, without this crate depending on the store.)
//!
//! What a policy metric reads: the gateway writes one `RequestStats` per instance, per app
//! and per service (a service's record has `app` = the Marathon group's ID, an app's has no
//! `instance`), the collector one `ContainerStats` per container (`app` = the app's ID). So
//! totals (concurrency, requests/s) and latencies are read from the app-wide record of the
//! app or service (else the instances' records: summed, or for latency the highest), and
//! averages (CPU, memory, any series) from the instances of every group.
use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;

use crate::policy::{MetricKind, MetricSpec, Target};

/// Values over time, oldest first.
pub type Points = Vec<(DateTime<Utc>, f64)>;

/// How the rows of a window answer become one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// The app-wide rows (else the instances' rows) summed over apps: concurrency, rates.
    Sum,
    /// The app-wide rows (else the instances' highest) at their highest: latency.
    Max,
    /// The instances' rows averaged: CPU, memory, any series.
    Mean,
}

/// One read of one series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricQuery {
    /// The metrics-store series (`concurrency_mean`).
    pub series: String,
    /// The apps whose samples count (`app` filter).
    pub apps: Vec<String>,
    /// How rows become one value.
    pub combine: Combine,
    /// The window, up to now.
    pub range: Duration,
    /// Apps whose app-wide rows stand in when `apps` has none: a service's groups (the
    /// gateway writes a service's own record only once it has two groups or more).
    pub fallback: Vec<String>,
}

impl MetricQuery {
    /// The query for `spec` of a policy on `target` whose groups are `groups`, over `range`.
    pub fn for_metric(
        spec: &MetricSpec,
        target: &Target,
        groups: &[String],
        range: Duration,
    ) -> Self {
        let service_groups = || match target {
            Target::Service(_) => groups.to_vec(),
            Target::App(_) => Vec::new(),
        };
        let (apps, combine, fallback) = match spec.kind {
            MetricKind::Concurrency | MetricKind::RequestRate => (
                vec![target.id().to_string()],
                Combine::Sum,
                service_groups(),
            ),
            MetricKind::LatencyP95 | MetricKind::LatencyP99 => (
                vec![target.id().to_string()],
                Combine::Max,
                service_groups(),
            ),
            MetricKind::CpuPct | MetricKind::RssPct | MetricKind::Series => {
                let apps = if groups.is_empty() {
                    vec![target.id().to_string()]
                } else {
                    groups.to_vec()
                };
                (apps, Combine::Mean, Vec::new())
            }
        };
        Self {
            series: spec.series.clone(),
            apps,
            combine,
            range,
            fallback,
        }
    }
}

/// A read that failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
    /// No answer.
    #[error("cannot reach the metrics store at {url}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// An error answer.
    #[error("the metrics store answered {status} to {url}: {body}")]
    Status {
        /// The URL called.
        url: String,
        /// The status.
        status: u16,
        /// What it said.
        body: String,
    },
    /// An answer that does not decode.
    #[error("unexpected answer from {url}")]
    Decode {
        /// The URL called.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
}

/// Where metrics come from.
pub trait MetricsSource: Send + Sync + std::fmt::Debug {
    /// The value of `q` over its window up to now; None when no sample is in the window
    /// (missing or stale).
    fn window<'a>(&'a self, q: &'a MetricQuery) -> BoxFuture<'a, Result<Option<f64>, SourceError>>;

    /// The values of `q` in `step` buckets over `q.range` up to now, oldest first (for the
    /// stabilization state a restart rebuilds). Default: none.
    fn history<'a>(
        &'a self,
        q: &'a MetricQuery,
        step: Duration,
    ) -> BoxFuture<'a, Result<Points, SourceError>> {
        let _ = (q, step);
        Box::pin(async { Ok(Vec::new()) })
    }
}

// === one value from the rows ===

/// A row of an answer: its labels and value.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Row {
    /// `app`, `instance` (absent or empty: app-wide).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
    /// Samples in it (0: none).
    #[serde(default = "one")]
    pub samples: u64,
}

fn one() -> u64 {
    1
}

/// Combines the rows of a window answer (grouped by `app` and `instance`) into one value.
pub fn combine(rows: &[Row], how: Combine) -> Option<f64> {
    let rows: Vec<&Row> = rows
        .iter()
        .filter(|r| r.samples > 0 && r.value.is_finite())
        .collect();
    let is_app = |r: &&&Row| r.labels.get("instance").is_none_or(|i| i.is_empty());
    let mut by_app: BTreeMap<&str, (Option<f64>, Vec<f64>)> = BTreeMap::new();
    for r in &rows {
        let app = r.labels.get("app").map(String::as_str).unwrap_or("");
        let e = by_app.entry(app).or_default();
        if is_app(&r) {
            e.0 = Some(r.value);
        } else {
            e.1.push(r.value);
        }
    }
    if by_app.is_empty() {
        return None;
    }
    match how {
        Combine::Sum => Some(
            by_app
                .values()
                .map(|(a, inst)| a.unwrap_or_else(|| inst.iter().sum()))
                .sum(),
        ),
        Combine::Max => by_app
            .values()
            .filter_map(|(a, inst)| a.or_else(|| inst.iter().copied().reduce(f64::max)))
            .reduce(f64::max),
        Combine::Mean => {
            let inst: Vec<f64> = by_app
                .values()
                .flat_map(|(_, i)| i.iter().copied())
                .collect();
            let vals = if inst.is_empty() {
                by_app.values().filter_map(|(a, _)| *a).collect()
            } else {
                inst
            };
            (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
        }
    }
}

// === HTTP ===

/// The metrics store over HTTP.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    base: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct WindowAnswer {
    groups: Vec<Row>,
}

#[derive(Deserialize)]
struct QueryAnswer {
    series: Vec<QuerySeries>,
}

#[derive(Deserialize)]
struct QuerySeries {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    points: Vec<(i64, f64)>,
}

impl HttpMetrics {
    /// The store at `base` (`http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Result<Self, SourceError> {
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .default_headers(drover_auth::client::default_headers())
                .build()
                .map_err(SourceError::Build)?,
        })
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<T, SourceError> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .get(&url)
            .query(params)
            .send()
            .await
            .map_err(|source| SourceError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let body = resp.text().await.unwrap_or_default();
            return Err(SourceError::Status { url, status, body });
        }
        resp.json()
            .await
            .map_err(|source| SourceError::Decode { url, source })
    }
}

impl MetricsSource for HttpMetrics {
    fn window<'a>(&'a self, q: &'a MetricQuery) -> BoxFuture<'a, Result<Option<f64>, SourceError>> {
        Box::pin(async move {
            let p = [
                ("metric", q.series.clone()),
                ("agg", "mean".to_string()),
                ("since", format!("{}ms", q.range.as_millis().max(1))),
                ("by", "app,instance".to_string()),
                ("app", q.apps.join(",")),
            ];
            let a: WindowAnswer = self.get("/api/metrics/window", &p).await?;
            Ok(combine(&a.groups, q.combine))
        })
    }

    fn history<'a>(
        &'a self,
        q: &'a MetricQuery,
        step: Duration,
    ) -> BoxFuture<'a, Result<Points, SourceError>> {
        Box::pin(async move {
            let p = [
                ("metric", q.series.clone()),
                ("agg", "mean".to_string()),
                ("since", format!("{}ms", q.range.as_millis().max(1))),
                ("step", format!("{}ms", step.as_millis().max(1000))),
                ("by", "app,instance".to_string()),
                ("app", q.apps.join(",")),
            ];
            let a: QueryAnswer = self.get("/api/metrics/query", &p).await?;
            // per bucket, the rows of every series, combined as the window would be
            let mut buckets: BTreeMap<i64, Vec<Row>> = BTreeMap::new();
            for s in a.series {
                for (t, v) in s.points {
                    buckets.entry(t).or_default().push(Row {
                        labels: s.labels.clone(),
                        value: v,
                        samples: 1,
                    });
                }
            }
            Ok(buckets
                .into_iter()
                .filter_map(|(t, rows)| {
                    Some((
                        DateTime::from_timestamp_millis(t)?,
                        combine(&rows, q.combine)?,
                    ))
                })
                .collect())
        })
    }
}

// === a fake for tests ===

/// Metrics set by hand: a value per (series, first app), for the window and the short
/// window by range.
#[derive(Debug, Default)]
pub struct FakeMetrics {
    values: Mutex<HashMap<(String, String, u128), f64>>,
    history: Mutex<HashMap<(String, String), Points>>,
}

impl FakeMetrics {
    /// Sets the value of `series` for `app` over windows of `range`.
    pub fn set(&self, series: &str, app: &str, range: Duration, value: f64) {
        self.values
            .lock()
            .expect("fake metrics lock")
            .insert((series.into(), app.into(), range.as_millis()), value);
    }

    /// Removes every value (metrics gone missing).
    pub fn clear(&self) {
        self.values.lock().expect("fake metrics lock").clear();
    }

    /// Sets the history of `series` for `app`.
    pub fn set_history(&self, series: &str, app: &str, points: Points) {
        self.history
            .lock()
            .expect("fake metrics lock")
            .insert((series.into(), app.into()), points);
    }
}

impl MetricsSource for FakeMetrics {
    fn window<'a>(&'a self, q: &'a MetricQuery) -> BoxFuture<'a, Result<Option<f64>, SourceError>> {
        let app = q.apps.first().cloned().unwrap_or_default();
        let v = self
            .values
            .lock()
            .expect("fake metrics lock")
            .get(&(q.series.clone(), app, q.range.as_millis()))
            .copied();
        Box::pin(async move { Ok(v) })
    }

    fn history<'a>(
        &'a self,
        q: &'a MetricQuery,
        _step: Duration,
    ) -> BoxFuture<'a, Result<Points, SourceError>> {
        let app = q.apps.first().cloned().unwrap_or_default();
        let v = self
            .history
            .lock()
            .expect("fake metrics lock")
            .get(&(q.series.clone(), app))
            .cloned()
            .unwrap_or_default();
        Box::pin(async move { Ok(v) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(app: &str, instance: &str, value: f64) -> Row {
        let mut labels = BTreeMap::from([("app".to_string(), app.to_string())]);
        if !instance.is_empty() {
            labels.insert("instance".into(), instance.into());
        }
        Row {
            labels,
            value,
            samples: 3,
        }
    }

    /// A stand-in for the metrics store's API on a local port: answers the window and
    /// query routes as the store does, and keeps the query strings it was sent.
    #[tokio::test]
    async fn the_http_source_asks_the_store_and_combines_its_answer() {
        use axum::{extract::RawQuery, routing::get, Json, Router};
        let seen = std::sync::Arc::new(Mutex::new(Vec::<String>::new()));
        let (s1, s2) = (seen.clone(), seen.clone());
        let app = Router::new()
            .route(
                "/api/metrics/window",
                get(move |RawQuery(q): RawQuery| async move {
                    s1.lock().expect("lock").push(q.unwrap_or_default());
                    Json(serde_json::json!({"range_ms": 30000, "now_ms": 0, "groups": [
                        {"labels": {"app": "/shop/api"}, "value": 12.5, "samples": 6},
                        {"labels": {"app": "/shop/api", "instance": "t1"}, "value": 7.0, "samples": 6}
                    ]}))
                }),
            )
            .route(
                "/api/metrics/query",
                get(move |RawQuery(q): RawQuery| async move {
                    s2.lock().expect("lock").push(q.unwrap_or_default());
                    Json(serde_json::json!({"metric": "concurrency_mean", "series": [
                        {"labels": {"app": "/shop/api"}, "points": [[1000, 3.0], [2000, 4.0]]},
                        {"labels": {"app": "/shop/api", "instance": "t1"}, "points": [[1000, 1.0]]}
                    ]}))
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let h = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let src = HttpMetrics::new(&format!("http://{addr}/")).expect("client");
        let q = MetricQuery {
            series: "concurrency_mean".into(),
            apps: vec!["/shop/api".into()],
            combine: Combine::Sum,
            range: Duration::from_secs(30),
            fallback: Vec::new(),
        };
        assert_eq!(src.window(&q).await.expect("answer"), Some(12.5));
        let h1 = src
            .history(&q, Duration::from_secs(10))
            .await
            .expect("answer");
        assert_eq!(h1.len(), 2);
        assert_eq!(h1[0].1, 3.0, "the app-wide row of the bucket");
        assert_eq!(h1[1].0.timestamp_millis(), 2000);
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(
            seen[0],
            "metric=concurrency_mean&agg=mean&since=30000ms&by=app%2Cinstance&app=%2Fshop%2Fapi"
        );
        assert!(seen[1].contains("step=10000ms"), "{}", seen[1]);
        // an error answer is an error, not a zero
        let bad = HttpMetrics::new(&format!("http://{addr}/elsewhere")).expect("client");
        let e = bad.window(&q).await.expect_err("404");
        assert!(
            matches!(e, SourceError::Status { status: 404, .. }),
            "{e:?}"
        );
        h.abort();
    }

    #[test]
    fn rows_combine_app_wide_first_then_instances() {
        let rows = vec![
            row("/s", "", 12.0),
            row("/s", "t1", 5.0),
            row("/s", "t2", 6.0),
            row("/x", "t3", 2.0),
            row("/x", "t4", 4.0),
        ];
        // the app-wide row of /s, the instances of /x
        assert_eq!(combine(&rows, Combine::Sum), Some(18.0));
        assert_eq!(combine(&rows, Combine::Max), Some(12.0));
        // instances only
        assert_eq!(combine(&rows, Combine::Mean), Some(4.25));
        // nothing with samples: missing, not zero
        let empty = vec![Row {
            samples: 0,
            ..row("/s", "", 1.0)
        }];
        assert_eq!(combine(&empty, Combine::Sum), None);
        assert_eq!(combine(&[], Combine::Mean), None);
    }

    #[test]
    fn queries_read_the_service_record_for_totals_and_the_groups_for_averages() {
        let spec = |kind| MetricSpec {
            kind,
            series: crate::policy::series_of(kind).into(),
            target: 1.0,
        };
        let t = Target::Service("/shop/api".into());
        let groups = vec!["/shop/api/g1".to_string(), "/shop/api/g2".to_string()];
        let q = MetricQuery::for_metric(
            &spec(MetricKind::Concurrency),
            &t,
            &groups,
            Duration::from_secs(30),
        );
        assert_eq!(
            (q.apps.clone(), q.combine),
            (vec!["/shop/api".to_string()], Combine::Sum)
        );
        assert_eq!(q.series, "concurrency_mean");
        let q = MetricQuery::for_metric(
            &spec(MetricKind::CpuPct),
            &t,
            &groups,
            Duration::from_secs(30),
        );
        assert_eq!((q.apps, q.combine), (groups, Combine::Mean));
    }
}
