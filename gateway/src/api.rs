//! `GET /v1/gateway/routes`: every route → its groups (apps) → their backends, with passive
//! health, ejection, requests in flight, and the last reporting interval's requests per
//! second and p99; the refused routes with why; and where the routes come from.
use std::sync::Arc;

use axum::{extract::State, routing::get, Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{
    backend::HealthView,
    labels::{HashKey, LabelSource},
    stats::Summary,
    table::{Refused, RouteTable},
    Shared, SourceStatus,
};

/// The answer of `GET /v1/gateway/routes`.
#[derive(Debug, Clone, Serialize)]
pub struct RoutesView {
    /// When the table in use was built.
    pub built_at: Option<DateTime<Utc>>,
    /// Where the routes come from.
    pub source: SourceStatus,
    /// Every route, by host then path.
    pub routes: Vec<RouteView>,
    /// Routes the labels ask for that are not served, and why.
    pub refused: Vec<Refused>,
}

/// One route.
#[derive(Debug, Clone, Serialize)]
pub struct RouteView {
    /// Host, or null for any host.
    pub host: Option<String>,
    /// Path prefix.
    pub path: String,
    /// The Marathon group whose apps are the route's instance groups.
    pub service: Option<String>,
    /// How a request picks a group.
    pub hash_key: HashKey,
    /// Which labels made it.
    pub labels: LabelSource,
    /// Its groups.
    pub groups: Vec<GroupView>,
}

/// One group (app) of a route.
#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    /// App ID.
    pub app: String,
    /// Its tasks in all states.
    pub tasks: usize,
    /// Requests in flight.
    pub in_flight: u64,
    /// The last interval.
    #[serde(flatten)]
    pub last: Summary,
    /// Its backends.
    pub backends: Vec<BackendView>,
}

/// One backend.
#[derive(Debug, Clone, Serialize)]
pub struct BackendView {
    /// Task ID.
    pub task: String,
    /// `host:port`.
    pub addr: String,
    /// Node.
    pub node: String,
    /// Takes traffic: not ejected (or every backend is used in panic mode).
    pub healthy: bool,
    /// Passive health.
    #[serde(flatten)]
    pub health: HealthView,
    /// Requests in flight.
    pub in_flight: u64,
    /// The last interval.
    #[serde(flatten)]
    pub last: Summary,
}

/// The view of a table.
pub fn view(table: &RouteTable, source: SourceStatus, now: DateTime<Utc>) -> RoutesView {
    RoutesView {
        built_at: table.built_at,
        source,
        routes: table
            .routes
            .iter()
            .map(|r| RouteView {
                host: r.host.clone(),
                path: r.path.clone(),
                service: r.service.clone(),
                hash_key: r.hash_key.clone(),
                labels: r.source,
                groups: r
                    .groups
                    .iter()
                    .map(|g| GroupView {
                        app: g.app.clone(),
                        tasks: g.tasks,
                        in_flight: g.stats.in_flight(),
                        last: g.stats.summary(),
                        backends: g
                            .backends
                            .iter()
                            .map(|b| {
                                let health = b.health(now);
                                BackendView {
                                    task: b.task.clone(),
                                    addr: b.addr.clone(),
                                    node: b.node.clone(),
                                    healthy: !health.ejected,
                                    health,
                                    in_flight: b.in_flight(),
                                    last: b.stats.summary(),
                                }
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
        refused: table.refused.clone(),
    }
}

/// The router of the routes API.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/gateway/routes", get(routes))
        .with_state(shared)
}

async fn routes(State(shared): State<Arc<Shared>>) -> Json<RoutesView> {
    let source = shared
        .source
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let table = shared.table.load_full();
    Json(view(&table, source, shared.clock.now()))
}
