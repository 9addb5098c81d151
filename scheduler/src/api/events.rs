//! `/v2/events` (SSE: every event as it happens) and `/v1/events` (the latest, for
//! timelines).
use std::convert::Infallible;

use axum::{
    extract::{RawQuery, State},
    http::StatusCode,
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse,
    },
    Json,
};
use futures::{Stream, StreamExt};
use serde_json::{json, Value};

use super::{query_values, ApiError, ApiResult};
use crate::{
    events::{EventKind, MarathonEvent},
    master::Master,
};

pub(super) async fn events(
    State(m): State<Master>,
    RawQuery(q): RawQuery,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let wanted: Vec<String> = query_values(&q, "event_type")
        .into_iter()
        .map(str::to_string)
        .collect();
    let rx = m.subscribe();
    let attached = MarathonEvent::new(
        m.now(),
        EventKind::StreamAttached {
            remote_address: None,
        },
    );
    let first = futures::stream::once(async move { Ok(sse_event(&attached)) });
    let rest = futures::stream::unfold((rx, wanted), |(mut rx, wanted)| async move {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    if !wanted.is_empty() && !wanted.iter().any(|w| w == e.event_type()) {
                        continue;
                    }
                    return Some((Ok(sse_event(&e)), (rx, wanted)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(first.chain(rest).take_until(m.closing())).keep_alive(KeepAlive::default())
}

/// `GET /v1/events?limit=N&event_type=T`: the latest events (the master keeps 1,000),
/// newest first — a timeline for the dashboards, where `/v2/events` only streams what comes.
pub(super) async fn recent_events(State(m): State<Master>, RawQuery(q): RawQuery) -> ApiResult {
    let limit = match query_values(&q, "limit").first() {
        None => 200,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=crate::master::RECENT_EVENTS).contains(&n) => n,
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "limit must be a number from 1 to {}, not {v:?}",
                        crate::master::RECENT_EVENTS
                    ),
                ))
            }
        },
    };
    let wanted = query_values(&q, "event_type");
    let events: Vec<Value> = m
        .recent_events(crate::master::RECENT_EVENTS)
        .into_iter()
        .filter(|e| wanted.is_empty() || wanted.contains(&e.event_type()))
        .take(limit)
        .map(|e| e.to_json())
        .collect();
    Ok(Json(json!({ "events": events })).into_response())
}

/// One event on `/v2/events`: `event: TYPE`, `data: JSON`.
fn sse_event(e: &MarathonEvent) -> Event {
    Event::default()
        .event(e.event_type())
        .data(e.to_json().to_string())
}
