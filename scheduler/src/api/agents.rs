//! The agent protocol (Drover's own, not part of the Marathon API): `POST
//! /v1/agents/register` and `POST /v1/agents/{id}/heartbeat`, a report in and the tasks to
//! run out.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};

use super::{ApiError, ApiResult};
use crate::{master::Master, model::AgentReport};

// === agents ===

fn parse_report(body: &Bytes) -> Result<AgentReport, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("not an agent report: {e} (agent and master versions differ?)"),
        )
    })
}

pub(super) async fn agent_register(State(m): State<Master>, body: Bytes) -> ApiResult {
    let report = parse_report(&body)?;
    tracing::info!(node = %report.node_id, hostname = %report.hostname, cpus = report.resources.cpus, "agent registered");
    m.metrics().heartbeats.inc();
    let mut reply = m.write(|s, now| Ok(s.heartbeat_with_jobs(report, true, now)))?;
    reply.cluster_id = m.cluster_id().to_string();
    Ok(Json(reply).into_response())
}

pub(super) async fn agent_heartbeat(
    State(m): State<Master>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let report = parse_report(&body)?;
    if report.node_id != id {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "node ID in the path ({id}) and the body ({}) differ",
                report.node_id
            ),
        ));
    }
    m.metrics().heartbeats.inc();
    let mut reply = m.write(|s, now| Ok(s.heartbeat_with_jobs(report, false, now)))?;
    reply.cluster_id = m.cluster_id().to_string();
    Ok(Json(reply).into_response())
}

/// `POST /v1/agents/{id}/cleanup`: what an agent's cleanup removed (`{"removed": [...]}`),
/// recorded as a `containers_cleaned_event`.
pub(super) async fn agent_cleanup(
    State(m): State<Master>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("not a cleanup report: {e}"),
        )
    })?;
    let removed = v["removed"].as_array().cloned().unwrap_or_default();
    tracing::info!(node = %id, removed = removed.len(), "agent cleaned up exited containers");
    m.write(|s, now| {
        s.events.push(crate::events::MarathonEvent::new(
            now,
            crate::events::EventKind::ContainersCleaned {
                node_id: id.clone(),
                count: removed.len(),
                removed,
            },
        ));
        Ok(())
    })?;
    Ok(Json(serde_json::json!({"ok": true})).into_response())
}
