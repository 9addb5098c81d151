//! The master's HTTP API: Marathon-compatible `/v2/…` and `/ping`, Drover's own `/v1/nodes`
//! `/v1/events` and `/v1/jobs`, and the agent protocol `/v1/agents/…`. [`router`] returns a `Router` with
//! its state applied, for `drover up` and `drover master` to merge.
//!
//! Here the router and the errors; the rooms: [`apps`] (apps, tasks, groups, deployments,
//! queue), [`render`] (Marathon's JSON views of apps, tasks and groups), [`events`] (the SSE
//! stream and the recent events), [`nodes`], and [`agents`] (the agent protocol, internal,
//! not part of the Marathon API).
pub mod agents;
pub mod apps;
pub mod events;
pub mod jobs;
pub mod nodes;
pub mod render;
#[cfg(test)]
mod tests;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};

pub use render::{app_json, app_view, task_json};

use self::{agents::*, apps::*, events::*, jobs::*, nodes::*};
use crate::master::{Master, MasterError};

// === errors ===

/// An API error with Marathon's body: `{"message": …}` (plus `details` for a 422).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({"message": message.into()}),
        }
    }
}

impl From<MasterError> for ApiError {
    fn from(e: MasterError) -> Self {
        let msg = e.to_string();
        match e {
            MasterError::AppNotFound(_)
            | MasterError::NodeNotFound(_)
            | MasterError::DeploymentNotFound(_) => Self::new(StatusCode::NOT_FOUND, msg),
            MasterError::AppExists(_) => Self::new(StatusCode::CONFLICT, msg),
            MasterError::Locked(id) => Self {
                status: StatusCode::CONFLICT,
                body: json!({"message": msg, "deployments": [{"id": id}]}),
            },
            MasterError::Invalid(errs) => Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                body: errs.to_json(),
            },
            MasterError::Store(_) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, msg),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn parse_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("Invalid JSON: {e} (the body must be a JSON object)"),
        )
    })
}

fn query_flag(q: &Option<String>, name: &str) -> bool {
    q.as_deref().unwrap_or("").split('&').any(|kv| {
        let mut it = kv.splitn(2, '=');
        it.next() == Some(name) && it.next().is_some_and(|v| v.eq_ignore_ascii_case("true"))
    })
}

fn query_values<'a>(q: &'a Option<String>, name: &str) -> Vec<&'a str> {
    q.as_deref()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then_some(v)
        })
        .collect()
}

// === the router ===

/// Every route of the master, state applied.
pub fn router(master: Master) -> Router {
    Router::new()
        .route("/ping", get(ping))
        .route("/v2/info", get(info))
        .route("/v2/leader", get(leader))
        .route("/v2/apps", get(list_apps).post(create_app).put(put_apps))
        .route(
            "/v2/apps/{*id}",
            get(app_get).put(app_put).delete(app_delete).post(app_post),
        )
        .route("/v2/tasks", get(list_tasks))
        .route(
            "/v2/groups",
            get(groups_root).post(group_put).put(group_put),
        )
        .route(
            "/v2/groups/{*id}",
            get(group_get).put(group_put_at).delete(group_delete),
        )
        .route("/v2/deployments", get(list_deployments))
        .route(
            "/v2/deployments/{id}",
            axum::routing::delete(delete_deployment),
        )
        .route("/v2/queue", get(queue))
        .route("/v2/queue/{*id}", axum::routing::delete(queue_reset_delay))
        .route("/v2/events", get(events))
        .route("/v1/events", get(recent_events))
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/nodes/{id}", get(node_get).delete(node_remove))
        .route("/v1/nodes/{id}/{action}", post(node_action))
        .route("/v1/jobs", get(list_jobs).post(create_job))
        .route(
            "/v1/jobs/{id}",
            get(job_get).put(job_put).delete(job_delete),
        )
        .route("/v1/jobs/{id}/run", post(job_run))
        .route("/v1/jobs/{id}/enable", post(job_enable))
        .route("/v1/jobs/{id}/disable", post(job_disable))
        .route("/v1/jobs/{id}/runs", get(job_runs))
        .route("/v1/agents/register", post(agent_register))
        .route("/v1/agents/{id}/heartbeat", post(agent_heartbeat))
        .route("/v1/agents/{id}/cleanup", post(agent_cleanup))
        .with_state(master)
}

async fn ping() -> &'static str {
    "pong\n"
}

async fn info(State(m): State<Master>) -> Json<Value> {
    Json(json!({
        "name": "drover",
        "version": env!("CARGO_PKG_VERSION"),
        "buildref": "drover",
        "elected": true,
        "leader": null,
        "frameworkId": m.cluster_id(),
        "marathon_config": {
            "master": "drover",
            "task_launch_timeout": m.read(|s| s.cfg.launch_timeout.as_millis() as u64),
        },
        "http_config": {},
        "event_subscriber": {"type": "sse"},
        "zookeeper_config": {},
    }))
}

async fn leader(headers: HeaderMap) -> Json<Value> {
    // One master: whoever answers leads.
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    Json(json!({ "leader": host }))
}
