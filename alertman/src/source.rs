//! Where rules read their data: the metrics store's window API and the log search's counts.
//! One trait, two implementations: [`InProcess`] inside `drover up` (the store and the index
//! in this process) and [`Http`] for `drover alertman` alone (the same APIs over HTTP).
use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use drover_metrics::{GroupValue, MetricsStore, Window, WindowQuery};
use drover_search::{Search, SearchRequest, TrackTotal};
use futures::future::BoxFuture;
use serde::Deserialize;

use crate::{alert::LabelSet, rules::LogDim};

/// Why a rule's data could not be read (the rule's health becomes Error).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// The metrics store refused or failed.
    #[error("metrics store: {0}")]
    Metrics(String),
    /// The log search refused or failed.
    #[error("log search: {0}")]
    Search(String),
    /// The server did not answer as expected.
    #[error("{url}: {message}")]
    Http {
        /// What was asked.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// This Alertman has no such data (e.g. `drover up --no-metrics-store`).
    #[error("{0}")]
    Unavailable(String),
}

/// A log count: lines matching `query` between `from` and `to`, per value of `by`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogCount {
    /// The search query (empty: every line).
    pub query: String,
    /// Group by this (none: one total).
    pub by: Option<LogDim>,
    /// From (inclusive).
    pub from: DateTime<Utc>,
    /// To (inclusive).
    pub to: DateTime<Utc>,
}

/// The most groups a log count returns.
pub const MAX_LOG_GROUPS: usize = 100;

/// Data for rules.
pub trait Source: Send + Sync + std::fmt::Debug {
    /// The window aggregation (the last `q.range` up to now) per group.
    fn metric_window<'a>(
        &'a self,
        q: &'a WindowQuery,
    ) -> BoxFuture<'a, Result<Vec<GroupValue>, SourceError>>;

    /// Matching log lines per group (without `by`: one entry with no labels, even when 0).
    fn log_counts<'a>(
        &'a self,
        q: &'a LogCount,
    ) -> BoxFuture<'a, Result<Vec<(LabelSet, u64)>, SourceError>>;
}

// === impl InProcess ===

/// The metrics store and the log index of this process.
#[derive(Debug, Clone, Default)]
pub struct InProcess {
    /// The metrics store (`None`: metric rules are in Error).
    pub metrics: Option<Arc<MetricsStore>>,
    /// The log search (`None`: log rules are in Error).
    pub search: Option<Search>,
}

fn search_request(q: &LogCount) -> SearchRequest {
    SearchRequest {
        q: q.query.clone(),
        from: Some(q.from),
        to: Some(q.to),
        limit: 1,
        snippets: false,
        track_total: TrackTotal::Exact,
        ..SearchRequest::default()
    }
}

impl Source for InProcess {
    fn metric_window<'a>(
        &'a self,
        q: &'a WindowQuery,
    ) -> BoxFuture<'a, Result<Vec<GroupValue>, SourceError>> {
        Box::pin(async move {
            let store = self.metrics.as_ref().ok_or_else(|| {
                SourceError::Unavailable(
                    "this drover runs no metrics store (started with --no-metrics-store)".into(),
                )
            })?;
            aggregate(&store.window(), q)
        })
    }

    fn log_counts<'a>(
        &'a self,
        q: &'a LogCount,
    ) -> BoxFuture<'a, Result<Vec<(LabelSet, u64)>, SourceError>> {
        Box::pin(async move {
            let search = self.search.clone().ok_or_else(|| {
                SourceError::Unavailable("this drover serves no log search".into())
            })?;
            let q = q.clone();
            tokio::task::spawn_blocking(move || count_in(&search, &q))
                .await
                .map_err(|e| SourceError::Search(e.to_string()))?
        })
    }
}

/// The window API's answer ([`Window::aggregate`], one pass over the window's series, no
/// data frame per query), with an error that tells a rule's author what to change.
pub fn aggregate(w: &Window, q: &WindowQuery) -> Result<Vec<GroupValue>, SourceError> {
    if q.range > w.horizon() {
        return Err(SourceError::Metrics(format!(
            "range: the window keeps {}; use a shorter window in the rule (or a longer --metrics-window)",
            humantime::format_duration(w.horizon())
        )));
    }
    w.aggregate(q)
        .map_err(|e| SourceError::Metrics(e.to_string()))
}

fn count_in(search: &Search, q: &LogCount) -> Result<Vec<(LabelSet, u64)>, SourceError> {
    let req = search_request(q);
    let err = |e: drover_search::SearchError| SourceError::Search(e.to_string());
    match q.by {
        None => {
            let total = search.search(&req).map_err(err)?.total;
            Ok(vec![(LabelSet::new(), total)])
        }
        Some(by) => Ok(search
            .field_values(&req, by.field(), MAX_LOG_GROUPS)
            .map_err(err)?
            .values
            .into_iter()
            .map(|v| ([(by.label().to_string(), v.value)].into(), v.count))
            .collect()),
    }
}

// === impl Http ===

/// The APIs of a `drover up` (or `drover metrics-store` and `drover logpipe`) over HTTP.
#[derive(Debug, Clone)]
pub struct Http {
    metrics_url: String,
    search_url: String,
    client: reqwest::Client,
}

impl Http {
    /// Reads metrics from `metrics_url` and logs from `search_url` (base URLs).
    pub fn new(metrics_url: &str, search_url: &str) -> Self {
        Self {
            metrics_url: metrics_url.trim_end_matches('/').to_string(),
            search_url: search_url.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .default_headers(drover_auth::client::default_headers())
                .build()
                .unwrap_or_default(),
        }
    }

    async fn get<T: for<'de> Deserialize<'de>>(
        &self,
        base: &str,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<T, SourceError> {
        let url = format!("{base}{path}");
        let http = |message: String| SourceError::Http {
            url: url.clone(),
            message,
        };
        let resp = self
            .client
            .get(&url)
            .query(params)
            .send()
            .await
            .map_err(|e| http(format!("{e}; is the server up?")))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| http(e.to_string()))?;
        if !status.is_success() {
            let msg = serde_json::from_slice::<drover_schema::api::ApiError>(&body)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            return Err(http(format!("{status}: {msg}")));
        }
        serde_json::from_slice(&body).map_err(|e| http(format!("unexpected answer: {e}")))
    }
}

#[derive(Deserialize)]
struct WindowAnswer {
    groups: Vec<GroupAnswer>,
}

#[derive(Deserialize)]
struct GroupAnswer {
    labels: BTreeMap<String, String>,
    value: f64,
    samples: u64,
}

#[derive(Deserialize)]
struct FieldsAnswer {
    values: Vec<FieldValueAnswer>,
}

#[derive(Deserialize)]
struct FieldValueAnswer {
    value: String,
    count: u64,
}

#[derive(Deserialize)]
struct SearchAnswer {
    total: u64,
}

impl Source for Http {
    fn metric_window<'a>(
        &'a self,
        q: &'a WindowQuery,
    ) -> BoxFuture<'a, Result<Vec<GroupValue>, SourceError>> {
        Box::pin(async move {
            let mut p = vec![
                ("metric", q.metric.as_str().to_string()),
                ("agg", q.agg.as_str().to_string()),
                ("since", format!("{}ms", q.range.as_millis())),
            ];
            if !q.by.is_empty() {
                let by: Vec<&str> = q.by.iter().map(|d| d.as_str()).collect();
                p.push(("by", by.join(",")));
            }
            for d in drover_metrics::Dim::ALL {
                let v = q.filter.values(d);
                if !v.is_empty() {
                    p.push((d.as_str(), v.join(",")));
                }
            }
            let a: WindowAnswer = self
                .get(&self.metrics_url, "/api/metrics/window", &p)
                .await?;
            Ok(a.groups
                .into_iter()
                .map(|g| GroupValue {
                    labels: g.labels,
                    value: g.value,
                    samples: g.samples,
                })
                .collect())
        })
    }

    fn log_counts<'a>(
        &'a self,
        q: &'a LogCount,
    ) -> BoxFuture<'a, Result<Vec<(LabelSet, u64)>, SourceError>> {
        Box::pin(async move {
            let mut p = vec![
                ("from", q.from.timestamp_millis().to_string()),
                ("to", q.to.timestamp_millis().to_string()),
            ];
            if !q.query.trim().is_empty() {
                p.push(("q", q.query.clone()));
            }
            match q.by {
                None => {
                    p.extend([
                        ("limit", "1".to_string()),
                        ("snippets", "false".to_string()),
                        ("track_total", "true".to_string()),
                    ]);
                    let a: SearchAnswer =
                        self.get(&self.search_url, "/api/logs/search", &p).await?;
                    Ok(vec![(LabelSet::new(), a.total)])
                }
                Some(by) => {
                    p.extend([
                        ("field", by.field().to_string()),
                        ("size", MAX_LOG_GROUPS.to_string()),
                    ]);
                    let a: FieldsAnswer =
                        self.get(&self.search_url, "/api/logs/fields", &p).await?;
                    Ok(a.values
                        .into_iter()
                        .map(|v| ([(by.label().to_string(), v.value)].into(), v.count))
                        .collect())
                }
            }
        })
    }
}

// === impl Fake ===

type MetricAnswer = Result<Vec<GroupValue>, SourceError>;
type LogAnswer = Result<Vec<(LabelSet, u64)>, SourceError>;

/// Data set by hand: unit tests and the benchmark.
#[derive(Debug, Default)]
pub struct Fake {
    /// Metric answers by metric name (the same for every query of that metric), or an error.
    pub metrics: std::sync::Mutex<BTreeMap<String, MetricAnswer>>,
    /// Log answers by query text.
    pub logs: std::sync::Mutex<BTreeMap<String, LogAnswer>>,
}

impl Fake {
    /// Sets what a metric answers.
    pub fn set_metric(&self, metric: &str, groups: Vec<(LabelSet, f64)>) {
        let v = groups
            .into_iter()
            .map(|(labels, value)| GroupValue {
                labels,
                value,
                samples: 1,
            })
            .collect();
        self.metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(metric.into(), Ok(v));
    }

    /// Makes a metric fail.
    pub fn fail_metric(&self, metric: &str, message: &str) {
        self.metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(metric.into(), Err(SourceError::Metrics(message.into())));
    }

    /// Sets what a log query answers.
    pub fn set_logs(&self, query: &str, counts: Vec<(LabelSet, u64)>) {
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(query.into(), Ok(counts));
    }
}

impl Source for Fake {
    fn metric_window<'a>(
        &'a self,
        q: &'a WindowQuery,
    ) -> BoxFuture<'a, Result<Vec<GroupValue>, SourceError>> {
        let r = self
            .metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(q.metric.as_str())
            .cloned()
            .unwrap_or(Ok(Vec::new()))
            .map(|groups| {
                groups
                    .into_iter()
                    .filter(|g| {
                        // Keep only the `by` labels, as the store does.
                        g.labels
                            .keys()
                            .all(|k| q.by.iter().any(|d| d.as_str() == k))
                    })
                    .collect()
            });
        Box::pin(async move { r })
    }

    fn log_counts<'a>(
        &'a self,
        q: &'a LogCount,
    ) -> BoxFuture<'a, Result<Vec<(LabelSet, u64)>, SourceError>> {
        let r = self
            .logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&q.query)
            .cloned()
            .unwrap_or(Ok(Vec::new()))
            .map(|mut v| {
                if q.by.is_none() {
                    let total = v.iter().map(|x| x.1).sum();
                    v = vec![(LabelSet::new(), total)];
                }
                v
            });
        Box::pin(async move { r })
    }
}

#[cfg(test)]
mod tests {
    use drover_metrics::{Agg, Filter, Metric};

    use super::*;

    #[test]
    fn a_window_longer_than_the_store_keeps_says_what_to_change() {
        let w = Window::new(Duration::from_secs(3600), drover_metrics::system_clock());
        let too_long = WindowQuery {
            metric: Metric::CpuPct,
            range: Duration::from_secs(7200),
            by: vec![],
            agg: Agg::Mean,
            filter: Filter::default(),
        };
        assert!(aggregate(&w, &too_long)
            .unwrap_err()
            .to_string()
            .contains("the window keeps 1h"));
    }
}
