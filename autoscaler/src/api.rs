//! The autoscaler's HTTP API, under `/api/autoscaler`:
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/autoscaler/policies` | every policy: checked, as written, status, panic, retry, last decision |
//! | `PUT /api/autoscaler/policies/{name}` | a policy as YAML or JSON, checked as a file is (400 with file `api`, line and field) and its app checked against the scheduler |
//! | `GET /api/autoscaler/decisions?app=&limit=` | the kept decisions, newest first (default limit 100) |
//! | `GET /api/autoscaler/explain/{app}` | the policy of an app or service: its last decision, its state, its recent decisions |
//! | `GET /api/autoscaler/history/{app}` | per tick, the last hour: instances, ready, groups, each metric's value, changes, panic (the UI's chart) |
//!
//! Errors are Drover's `{"error", "detail"}` ([`ApiError`]).
use axum::{
    body::Bytes,
    extract::{rejection::QueryRejection, Path, Query, State},
    routing::{get, put},
    Json, Router,
};
use drover_schema::api::ApiError;
use serde::{Deserialize, Serialize};

use crate::{
    decide::Decision,
    service::{Autoscaler, Explain, History, PolicyView, PutError},
};

/// The router; merge it into the role's server.
pub fn router(autoscaler: Autoscaler) -> Router {
    Router::new()
        .route("/api/autoscaler/policies", get(policies))
        .route("/api/autoscaler/policies/{name}", put(put_policy))
        .route("/api/autoscaler/decisions", get(decisions))
        .route("/api/autoscaler/explain/{*app}", get(explain))
        .route("/api/autoscaler/history/{*app}", get(history))
        .with_state(autoscaler)
}

async fn policies(State(a): State<Autoscaler>) -> Json<Vec<PolicyView>> {
    Json(a.policies())
}

async fn put_policy(
    State(a): State<Autoscaler>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<PolicyView>, ApiError> {
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::bad_request("the body is not UTF-8: send the policy as YAML or JSON")
    })?;
    a.put_policy(&name, text)
        .await
        .map(Json)
        .map_err(|e| match e {
            PutError::Invalid(load) => ApiError::bad_request(
                load.errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
            .with_detail(serde_json::json!({ "errors": load.errors })),
            PutError::Scheduler(s) => ApiError::new(
                503,
                format!("cannot check the policy's app: {s}; try again when the scheduler answers"),
            ),
        })
}

/// `GET /api/autoscaler/decisions` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionParams {
    /// Only this app's (the target or one of its groups).
    pub app: Option<String>,
    /// At most this many (default 100).
    pub limit: Option<usize>,
}

/// `GET /api/autoscaler/decisions`'s answer.
#[derive(Debug, Serialize)]
pub struct DecisionsResponse {
    /// Newest first.
    pub decisions: Vec<Decision>,
}

async fn decisions(
    State(a): State<Autoscaler>,
    q: Result<Query<DecisionParams>, QueryRejection>,
) -> Result<Json<DecisionsResponse>, ApiError> {
    let Query(q) = q.map_err(|e| {
        ApiError::bad_request(e.body_text())
            .with_detail(serde_json::json!({ "parameters": ["app", "limit"] }))
    })?;
    Ok(Json(DecisionsResponse {
        decisions: a.decisions(q.app.as_deref(), q.limit.unwrap_or(100)),
    }))
}

async fn explain(
    State(a): State<Autoscaler>,
    Path(app): Path<String>,
) -> Result<Json<Explain>, ApiError> {
    let app = format!("/{}", app.trim_matches('/'));
    a.explain(&app).map(Json).ok_or_else(|| {
        ApiError::not_found(format!(
            "no policy scales {app}: see GET /api/autoscaler/policies"
        ))
    })
}

async fn history(
    State(a): State<Autoscaler>,
    Path(app): Path<String>,
) -> Result<Json<History>, ApiError> {
    let app = format!("/{}", app.trim_matches('/'));
    a.history(&app).map(Json).ok_or_else(|| {
        ApiError::not_found(format!(
            "no policy scales {app}: see GET /api/autoscaler/policies"
        ))
    })
}
