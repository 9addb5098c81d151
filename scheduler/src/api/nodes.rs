//! `/v1/nodes`: nodes, and cordon, uncordon, drain and remove.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use serde_json::{json, Value};

use super::{ApiError, ApiResult};
use crate::{
    master::{Master, MasterError, NodeAction, State as MState},
    model::{ts, Task},
};

// === nodes ===

/// A node for `/v1/nodes`.
fn node_json(s: &MState, n: &crate::model::Node) -> Value {
    let tasks: Vec<&Task> = s
        .tasks
        .values()
        .filter(|t| t.node_id == n.id && !t.state.is_terminal())
        .collect();
    let used_cpus: f64 = tasks.iter().map(|t| t.spec.cpus).sum();
    let used_mem: f64 = tasks.iter().map(|t| t.spec.mem).sum();
    json!({
        "id": n.id,
        "hostname": n.hostname,
        "status": n.status(),
        "cordoned": n.cordoned,
        "draining": n.draining,
        "unreachable": n.unreachable,
        "resources": n.resources,
        "used": {"cpus": used_cpus, "mem": used_mem},
        "portRange": [n.port_range.0, n.port_range.1],
        "attributes": n.attributes,
        "tasks": tasks.len(),
        "lastSeen": ts(n.last_seen),
        "registeredAt": ts(n.registered_at),
    })
}

pub(super) async fn list_nodes(State(m): State<Master>) -> Json<Value> {
    Json(m.read(|s| {
        json!({"nodes": s.nodes.values().filter(|n| !n.removed).map(|n| node_json(s, n)).collect::<Vec<_>>()})
    }))
}

pub(super) async fn node_get(State(m): State<Master>, Path(id): Path<String>) -> ApiResult {
    m.read(|s| {
        s.nodes
            .get(&id)
            .filter(|n| !n.removed)
            .map(|n| Json(json!({"node": node_json(s, n)})).into_response())
    })
    .ok_or_else(|| MasterError::NodeNotFound(id).into())
}

pub(super) async fn node_action(
    State(m): State<Master>,
    Path((id, action)): Path<(String, String)>,
) -> ApiResult {
    let action = match action.as_str() {
        "cordon" => NodeAction::Cordon,
        "uncordon" => NodeAction::Uncordon,
        "drain" => NodeAction::Drain,
        "remove" => NodeAction::Remove,
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown node action {other:?}: use cordon, uncordon, drain or remove"),
            ))
        }
    };
    let node = m.write(|s, now| s.node_action(&id, action, now))?;
    let v = m.read(|s| node_json(s, &node));
    Ok(Json(json!({ "node": v })).into_response())
}

pub(super) async fn node_remove(State(m): State<Master>, Path(id): Path<String>) -> ApiResult {
    node_action(State(m), Path((id, "remove".into()))).await
}
