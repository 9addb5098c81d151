//! The HTTP API of the log search, merged into the `drover up` server:
//!
//! | route | what |
//! |---|---|
//! | `GET /api/logs/search` | a page of lines, newest first (`q`, `from`, `to`, `since`, `app`, `host`, `level`, `stream`, `container`, `limit`, `cursor`, `snippets`, `track_total`) |
//! | `GET /api/logs/histogram` | counts per time bucket split by level (same filters, `buckets`) |
//! | `GET /api/logs/context` | lines around one line of a container (`container`, `seq`, `before`, `after`) |
//! | `GET /api/logs/fields` | top values of a field for the query (`field`, `size`, same filters) |
//! | `GET /api/logs/tail` | live tail (Server-Sent Events, one `log` event per line; same filters) |
//!
//! Errors are JSON `{"error": "...", "detail": {...}}` with status 400 for a bad query or
//! parameter.
use std::{collections::VecDeque, convert::Infallible, sync::Arc, time::Duration};

use axum::{
    extract::{rejection::QueryRejection, Query, State},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    routing::get,
    Json, Router,
};
use chrono::Utc;
pub use drover_schema::api::ApiError;
use futures::Stream;
use serde::Deserialize;

use crate::{
    query::{Cursor, Hit, Search, SearchRequest, TrackTotal},
    SearchError,
};

/// Query-string parameters of every route (each route uses the ones it needs).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Query text.
    pub q: Option<String>,
    /// Start (RFC 3339, `now-15m`, epoch ms).
    pub from: Option<String>,
    /// End.
    pub to: Option<String>,
    /// Alternative to `from`: a duration back from now (`15m`).
    pub since: Option<String>,
    /// Comma-separated app IDs.
    pub app: Option<String>,
    /// Comma-separated hosts.
    pub host: Option<String>,
    /// Comma-separated levels (`none` for lines without one).
    pub level: Option<String>,
    /// `stdout` or `stderr`.
    pub stream: Option<String>,
    /// Container ID (search filter; context: the container).
    pub container: Option<String>,
    /// Page size.
    pub limit: Option<usize>,
    /// Continue after this cursor.
    pub cursor: Option<String>,
    /// Add highlighted snippets (default true).
    pub snippets: Option<bool>,
    /// Histogram: most buckets wanted (default 60).
    pub buckets: Option<usize>,
    /// Fields: the field.
    pub field: Option<String>,
    /// Fields: how many values.
    pub size: Option<usize>,
    /// Context: the line's sequence number.
    pub seq: Option<u64>,
    /// Context: lines before.
    pub before: Option<u64>,
    /// Context: lines after.
    pub after: Option<u64>,
    /// Search: `true` counts every match; a number counts exactly up to it (default 10000,
    /// past which `total` is a lower bound and `total_relation` is `gte`).
    pub track_total: Option<String>,
}

impl Params {
    /// The search request these parameters describe.
    pub fn request(&self) -> Result<SearchRequest, SearchError> {
        let (from, to) = drover_schema::time::range(
            self.from.as_deref(),
            self.to.as_deref(),
            self.since.as_deref(),
            Utc::now(),
        )
        .map_err(|e| SearchError::BadRequest(e.to_string()))?;
        let list = |v: &Option<String>| -> Vec<String> {
            v.as_deref()
                .map(|s| {
                    s.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        };
        let limit = self.limit.unwrap_or(100);
        if limit == 0 || limit > 1000 {
            return Err(SearchError::BadRequest(format!(
                "limit must be between 1 and 1000, not {limit}"
            )));
        }
        Ok(SearchRequest {
            q: self.q.clone().unwrap_or_default(),
            from,
            to,
            app: list(&self.app),
            host: list(&self.host),
            level: list(&self.level),
            stream: list(&self.stream),
            container: list(&self.container),
            limit,
            cursor: self.cursor.as_deref().map(Cursor::parse).transpose()?,
            snippets: self.snippets.unwrap_or(true),
            track_total: match self.track_total.as_deref() {
                None => TrackTotal::default(),
                Some("true") => TrackTotal::Exact,
                Some(n) => TrackTotal::UpTo(n.parse().map_err(|_| {
                    SearchError::BadRequest(format!(
                        "track_total must be true or a number of matches, not {n:?}"
                    ))
                })?),
            },
        })
    }
}

/// The routes, bound to a [`Search`].
pub fn router(search: Search) -> Router {
    Router::new()
        .route("/api/logs/search", get(search_route))
        .route("/api/logs/histogram", get(histogram_route))
        .route("/api/logs/context", get(context_route))
        .route("/api/logs/fields", get(fields_route))
        .route("/api/logs/tail", get(tail_route))
        .with_state(Arc::new(search))
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        if e.is_client_error() {
            ApiError::bad_request(e.to_string())
        } else {
            tracing::error!(error = %e, "log search failed");
            ApiError::internal(e.to_string())
        }
    }
}

fn params(p: Result<Query<Params>, QueryRejection>) -> Result<Params, ApiError> {
    p.map(|Query(p)| p).map_err(|e| {
        ApiError::bad_request(format!("invalid parameters: {}", e.body_text())).with_detail(
            serde_json::json!({
                "parameters": ["q", "from", "to", "since", "app", "host", "level", "stream",
                    "container", "limit", "cursor", "snippets", "buckets", "field", "size",
                    "seq", "before", "after"]
            }),
        )
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SearchError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(ApiError::from)
}

async fn search_route(
    State(s): State<Arc<Search>>,
    p: Result<Query<Params>, QueryRejection>,
) -> Result<Response, ApiError> {
    let req = params(p)?.request()?;
    let result = blocking(move || s.search(&req)).await?;
    Ok(Json(result).into_response())
}

async fn histogram_route(
    State(s): State<Arc<Search>>,
    p: Result<Query<Params>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = params(p)?;
    let req = p.request()?;
    let buckets = p.buckets.unwrap_or(60);
    let result = blocking(move || s.histogram(&req, buckets, Utc::now())).await?;
    Ok(Json(result).into_response())
}

async fn context_route(
    State(s): State<Arc<Search>>,
    p: Result<Query<Params>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = params(p)?;
    let (Some(container), Some(seq)) = (p.container.clone(), p.seq) else {
        return Err(ApiError::bad_request(
            "context needs container and seq (from a search hit)",
        ));
    };
    let (before, after) = (p.before.unwrap_or(10), p.after.unwrap_or(10));
    let lines = blocking(move || s.context(&container, seq, before, after)).await?;
    Ok(Json(serde_json::json!({ "lines": lines })).into_response())
}

async fn fields_route(
    State(s): State<Arc<Search>>,
    p: Result<Query<Params>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = params(p)?;
    let Some(field) = p.field.clone() else {
        return Err(ApiError::bad_request(
            "fields needs field= (app, host, level, stream, container, node, group, or a parsed field such as status)",
        ));
    };
    let req = p.request()?;
    let size = p.size.unwrap_or(10);
    let result = blocking(move || s.field_values(&req, &field, size)).await?;
    Ok(Json(result).into_response())
}

async fn tail_route(
    State(s): State<Arc<Search>>,
    p: Result<Query<Params>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let p = params(p)?;
    let mut req = p.request()?;
    // Validate the query once so a bad one is a 400, not a silent stream.
    {
        let mut probe = req.clone();
        probe.limit = 1;
        let s = Arc::clone(&s);
        blocking(move || s.search(&probe)).await?;
    }
    let start = req.from.unwrap_or_else(Utc::now);
    req.to = None;
    let cursor = Cursor {
        ts_ns: start.timestamp_nanos_opt().unwrap_or_default(),
        uid: 0,
    };
    let state = (s, req, cursor, VecDeque::<Hit>::new());
    let stream = futures::stream::unfold(state, |(s, req, mut cursor, mut queue)| async move {
        loop {
            if let Some(hit) = queue.pop_front() {
                let event = Event::default()
                    .event("log")
                    .json_data(&hit)
                    .unwrap_or_else(|_| Event::default().comment("unserialisable"));
                return Some((Ok(event), (s, req, cursor, queue)));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (s2, r2) = (Arc::clone(&s), req.clone());
            let found = tokio::task::spawn_blocking(move || {
                s2.store().reload_if_older(Duration::from_millis(400))?;
                s2.newer_than(&r2, cursor, 500)
            })
            .await;
            if let Ok(Ok(hits)) = found {
                if let Some(last) = hits.last() {
                    cursor = Cursor::parse(&last.cursor).unwrap_or(cursor);
                }
                queue.extend(hits);
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
