//! The master's events (Marathon's JSON, as `/v2/events` streams them) as Drover's
//! [`drover_schema::Event`] records for the `drover.events.v1` topic, so any Kafka consumer
//! (alertman, a billing job) sees deployments, task states and node changes.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use drover_schema::{Event, EventSource, Severity};
use serde_json::Value;

/// The record for one Marathon event; None for stream bookkeeping
/// (`event_stream_attached`).
pub fn to_schema_event(v: &Value) -> Option<Event> {
    let kind = v["eventType"].as_str()?.to_string();
    if kind == "event_stream_attached" {
        return None;
    }
    let s = |k: &str| v[k].as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let app = s("appId").or_else(|| {
        v["plan"]["affectedApps"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let task = s("taskId");
    let node = s("slaveId").or_else(|| s("nodeId"));
    let status = s("taskStatus").unwrap_or_default();
    let severity = match kind.as_str() {
        "status_update_event" if matches!(status.as_str(), "TASK_FAILED" | "TASK_UNREACHABLE") => {
            Severity::Warning
        }
        "unhealthy_task_kill_event" | "node_unreachable_event" | "deployment_failed" => {
            Severity::Warning
        }
        _ => Severity::Info,
    };
    let or = |o: &Option<String>| o.clone().unwrap_or_else(|| "?".into());
    let message = match kind.as_str() {
        "status_update_event" => {
            let mut m = format!(
                "task {} of {} is {} on {}",
                or(&task),
                or(&app),
                status,
                or(&node)
            );
            if let Some(why) = s("message") {
                m.push_str(&format!(": {why}"));
            }
            m
        }
        "health_status_changed_event" => format!(
            "task {} of {} is {}",
            or(&task),
            or(&app),
            if v["alive"] == Value::Bool(true) {
                "healthy"
            } else {
                "unhealthy"
            }
        ),
        "unhealthy_task_kill_event" => format!(
            "killing unhealthy task {} of {}: {}",
            or(&task),
            or(&app),
            s("reason").unwrap_or_default()
        ),
        "deployment_info" => format!("deployment of {} started", or(&app)),
        "deployment_success" => format!("deployment of {} finished", or(&app)),
        "deployment_failed" => format!(
            "deployment of {} stopped: {}",
            or(&app),
            s("reason").unwrap_or_default()
        ),
        "api_post_event" => format!("app {} created or changed", or(&app)),
        "app_terminated_event" => format!("app {} removed", or(&app)),
        "node_unreachable_event" => format!("node {} missed its heartbeats", or(&node)),
        "node_reachable_event" => format!("node {} is reachable again", or(&node)),
        "node_update_event" => format!("node {}: {}", or(&node), s("action").unwrap_or_default()),
        other => other.to_string(),
    };
    let ts = s("timestamp")
        .and_then(|t| t.parse::<DateTime<Utc>>().ok())
        .unwrap_or_else(Utc::now);
    let attrs: BTreeMap<String, Value> = v
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| *k != "eventType" && *k != "timestamp")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    Some(Event {
        v: 1,
        ts,
        id: crate::model::uuid(),
        source: EventSource::Scheduler,
        kind,
        severity,
        app,
        task,
        node,
        message,
        attrs,
    })
}

/// The Kafka key of an event: its app, else its node (order is kept per key).
pub fn key(e: &Event) -> String {
    e.app.clone().or_else(|| e.node.clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn task_failures_are_warnings_with_app_task_and_node() {
        let e = to_schema_event(
            &json!({"eventType": "status_update_event", "timestamp": "2026-01-01T00:00:00.000Z",
            "appId": "/web", "taskId": "web.1", "slaveId": "n1", "taskStatus": "TASK_FAILED",
            "message": "the container exited with status 137"}),
        )
        .unwrap();
        assert_eq!(e.kind, "status_update_event");
        assert_eq!(e.severity, Severity::Warning);
        assert_eq!(e.app.as_deref(), Some("/web"));
        assert_eq!(e.node.as_deref(), Some("n1"));
        assert!(
            e.message
                .contains("TASK_FAILED on n1: the container exited"),
            "{}",
            e.message
        );
        assert_eq!(key(&e), "/web");
        let back: Event = drover_schema::decode(&serde_json::to_vec(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn deployments_and_nodes() {
        let e = to_schema_event(
            &json!({"eventType": "deployment_success", "plan": {"affectedApps": ["/a"]}}),
        )
        .unwrap();
        assert_eq!(e.app.as_deref(), Some("/a"));
        assert_eq!(e.severity, Severity::Info);
        let e = to_schema_event(&json!({"eventType": "node_unreachable_event", "nodeId": "n2"}))
            .unwrap();
        assert_eq!(key(&e), "n2");
        assert_eq!(e.severity, Severity::Warning);
        assert!(to_schema_event(&json!({"eventType": "event_stream_attached"})).is_none());
    }
}
