//! The master's HTTP API: Marathon-compatible `/v2/…` and `/ping`, Drover's own `/v1/nodes`
//! and the agent protocol `/v1/agents/…`. [`router`] returns a `Router` with its state
//! applied, for `drover up` and `drover master` to merge.
use std::{collections::BTreeMap, convert::Infallible};

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    routing::{get, post},
    Json, Router,
};
use futures::{Stream, StreamExt};
use serde_json::{json, Value};

use crate::{
    events::{EventKind, MarathonEvent},
    master::{Master, MasterError, NodeAction, State as MState},
    model::{
        ts, AgentReport, App, DeploymentRef, LastTaskFailure, MarathonApp, MarathonTask, Task,
        VersionInfo,
    },
};

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
        .route("/v1/agents/register", post(agent_register))
        .route("/v1/agents/{id}/heartbeat", post(agent_heartbeat))
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

// === apps ===

/// What `embed=` asked for.
#[derive(Debug, Default, Clone, Copy)]
struct Embed {
    tasks: bool,
    failure: bool,
}

fn embed(q: &Option<String>) -> Embed {
    let vals = query_values(q, "embed");
    Embed {
        tasks: vals.iter().any(|v| v.ends_with(".tasks")),
        failure: vals
            .iter()
            .any(|v| v.ends_with(".lastTaskFailure") || v.ends_with(".failures")),
    }
}

/// An app as Marathon returns it.
pub fn app_json(s: &MState, app: &App, embed_tasks: bool, embed_failure: bool) -> Value {
    serde_json::to_value(app_view(s, app, embed_tasks, embed_failure)).unwrap_or(Value::Null)
}

/// An app as Marathon returns it, typed.
pub fn app_view(s: &MState, app: &App, embed_tasks: bool, embed_failure: bool) -> MarathonApp {
    let tasks: Vec<&Task> = s
        .tasks
        .values()
        .filter(|t| t.spec.app_id == app.def.id && t.is_active())
        .collect();
    let count = |f: &dyn Fn(&Task) -> bool| tasks.iter().filter(|t| f(t)).count();
    MarathonApp {
        definition: app.def.clone(),
        version: app.version,
        version_info: VersionInfo {
            last_scaling_at: app.last_scaling_at,
            last_config_change_at: app.config_version,
        },
        tasks_staged: count(&|t| {
            matches!(
                t.state,
                crate::model::TaskState::Staging | crate::model::TaskState::Starting
            )
        }),
        tasks_running: count(&|t| t.state == crate::model::TaskState::Running),
        tasks_healthy: count(&|t| !t.spec.health_checks.is_empty() && t.is_healthy()),
        tasks_unhealthy: count(&|t| !t.spec.health_checks.is_empty() && t.healthy == Some(false)),
        deployments: s
            .deployments
            .values()
            .filter(|d| d.app_id == app.def.id)
            .map(|d| DeploymentRef { id: d.id.clone() })
            .collect(),
        tasks: embed_tasks.then(|| tasks.iter().map(|t| MarathonTask::of(t)).collect()),
        last_task_failure: s
            .failures
            .get(&app.def.id)
            .filter(|_| embed_failure)
            .map(|f| LastTaskFailure {
                app_id: app.def.id.clone(),
                host: f.host.clone(),
                message: f.message.clone(),
                task_id: f.task_id.clone(),
                instance_id: f.task_id.clone(),
                slave_id: None,
                state: f.state,
                timestamp: f.timestamp,
                version: f.version,
            }),
    }
}

/// A task as Marathon returns it.
pub fn task_json(t: &Task) -> Value {
    serde_json::to_value(MarathonTask::of(t)).unwrap_or(Value::Null)
}

async fn list_apps(State(m): State<Master>, RawQuery(q): RawQuery) -> Json<Value> {
    let e = embed(&q);
    let id_filter = query_values(&q, "id").first().map(|s| s.to_string());
    let cmd_filter = query_values(&q, "cmd").first().map(|s| s.to_string());
    let apps = m.read(|s| {
        s.apps
            .values()
            .filter(|a| {
                id_filter
                    .as_ref()
                    .is_none_or(|f| a.def.id.contains(f.as_str()))
            })
            .filter(|a| {
                cmd_filter
                    .as_ref()
                    .is_none_or(|f| a.def.cmd.as_deref().is_some_and(|c| c.contains(f.as_str())))
            })
            .map(|a| app_json(s, a, e.tasks, e.failure))
            .collect::<Vec<_>>()
    });
    Json(json!({ "apps": apps }))
}

fn deployment_headers(id: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(id) {
        h.insert("Marathon-Deployment-Id", v);
    }
    h
}

async fn create_app(State(m): State<Master>, body: Bytes) -> ApiResult {
    let body = parse_json(&body)?;
    let (app, d) = m.write(|s, now| s.create_app(body, now))?;
    let v = m.read(|s| app_json(s, &app, false, false));
    let mut headers = deployment_headers(&d.id);
    if let Ok(loc) = HeaderValue::from_str(&format!("/v2/apps{}", app.def.id)) {
        headers.insert("Location", loc);
    }
    Ok((StatusCode::CREATED, headers, Json(v)).into_response())
}

/// `/v2/apps/{*id}` may end in `/tasks`, `/tasks/{taskId}` or `/restart`.
enum AppPath {
    App(String),
    Tasks(String),
    Task(String, String),
    Restart(String),
}

fn app_path(raw: &str) -> AppPath {
    let raw = format!("/{}", raw.trim_matches('/'));
    if let Some(app) = raw.strip_suffix("/tasks") {
        return AppPath::Tasks(app.to_string());
    }
    if let Some(app) = raw.strip_suffix("/restart") {
        return AppPath::Restart(app.to_string());
    }
    if let Some((app, task)) = raw.rsplit_once("/tasks/") {
        return AppPath::Task(app.to_string(), task.to_string());
    }
    AppPath::App(raw)
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not found")
}

async fn app_get(
    State(m): State<Master>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    match app_path(&id) {
        AppPath::App(id) => {
            let e = embed(&q);
            let v = m.read(|s| s.apps.get(&id).map(|a| app_json(s, a, e.tasks, e.failure)));
            match v {
                Some(v) => Ok(Json(json!({ "app": v })).into_response()),
                None => Err(MasterError::AppNotFound(id).into()),
            }
        }
        AppPath::Tasks(id) => {
            let v = m.read(|s| {
                s.apps.contains_key(&id).then(|| {
                    s.tasks
                        .values()
                        .filter(|t| t.spec.app_id == id && t.is_active())
                        .map(task_json)
                        .collect::<Vec<_>>()
                })
            });
            match v {
                Some(tasks) => Ok(Json(json!({ "tasks": tasks })).into_response()),
                None => Err(MasterError::AppNotFound(id).into()),
            }
        }
        _ => Err(not_found()),
    }
}

async fn app_put(
    State(m): State<Master>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    let AppPath::App(id) = app_path(&id) else {
        return Err(not_found());
    };
    let body = parse_json(&body)?;
    let force = query_flag(&q, "force");
    let partial = !query_values(&q, "partialUpdate").contains(&"false");
    let d = m.write(|s, now| s.put_app(&id, body, force, partial, now))?;
    Ok((
        StatusCode::OK,
        deployment_headers(&d.id),
        Json(json!({"version": ts(d.version), "deploymentId": d.id})),
    )
        .into_response())
}

async fn app_delete(
    State(m): State<Master>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let force = query_flag(&q, "force");
    match app_path(&id) {
        AppPath::App(id) => {
            let d = m.write(|s, now| s.delete_app(&id, force, now))?;
            Ok((
                StatusCode::OK,
                deployment_headers(&d.id),
                Json(json!({"version": ts(d.version), "deploymentId": d.id})),
            )
                .into_response())
        }
        AppPath::Task(app, task) => {
            let scale = query_flag(&q, "scale");
            let v = m.write(|s, now| {
                let t = s
                    .tasks
                    .get(&task)
                    .filter(|t| t.spec.app_id == app)
                    .cloned()
                    .ok_or_else(|| MasterError::AppNotFound(format!("{app} task {task}")))?;
                if scale {
                    if let Some(a) = s.apps.get_mut(&app) {
                        a.def.instances = (a.def.instances - 1).max(0);
                        a.version = now;
                        a.last_scaling_at = now;
                        s.dirty = true;
                    }
                }
                s.kill(&task, "killed through the API", now);
                Ok(task_json(&t))
            })?;
            Ok(Json(json!({ "task": v })).into_response())
        }
        _ => Err(not_found()),
    }
}

async fn app_post(
    State(m): State<Master>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let AppPath::Restart(id) = app_path(&id) else {
        return Err(not_found());
    };
    let force = query_flag(&q, "force");
    let d = m.write(|s, now| s.restart_app(&id, force, now))?;
    Ok((
        StatusCode::OK,
        deployment_headers(&d.id),
        Json(json!({"version": ts(d.version), "deploymentId": d.id})),
    )
        .into_response())
}

async fn list_tasks(State(m): State<Master>, RawQuery(q): RawQuery) -> Json<Value> {
    let status = query_values(&q, "status")
        .first()
        .map(|s| s.to_ascii_uppercase());
    let tasks = m.read(|s| {
        s.tasks
            .values()
            .filter(|t| t.is_active())
            .filter(|t| {
                status
                    .as_deref()
                    .is_none_or(|st| t.state.name().eq_ignore_ascii_case(st))
            })
            .map(task_json)
            .collect::<Vec<_>>()
    });
    Json(json!({ "tasks": tasks }))
}

/// `{"version", "deploymentId"}` for the deployments of a multi-app change.
fn deployments_reply(ds: &[crate::model::Deployment], status: StatusCode) -> Response {
    let Some(first) = ds.first() else {
        return (StatusCode::OK, Json(json!({}))).into_response();
    };
    (
        status,
        deployment_headers(&first.id),
        Json(
            json!({"version": ts(first.version), "deploymentId": first.id,
                    "deployments": ds.iter().map(|d| json!({"id": d.id})).collect::<Vec<_>>()}),
        ),
    )
        .into_response()
}

async fn put_apps(State(m): State<Master>, RawQuery(q): RawQuery, body: Bytes) -> ApiResult {
    let body = parse_json(&body)?;
    let Value::Array(defs) = body else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "PUT /v2/apps takes a JSON array of app definitions",
        ));
    };
    let force = query_flag(&q, "force");
    let partial = !query_values(&q, "partialUpdate").contains(&"false");
    let ds = m.write(|s, now| s.put_apps(defs, force, partial, now))?;
    Ok(deployments_reply(&ds, StatusCode::OK))
}

/// The apps of a group definition (`{"id", "apps", "groups"}`), with absolute IDs.
fn flatten_group(group: &Value, parent: &str, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let id = group["id"].as_str().unwrap_or("");
    let base = if id.starts_with('/') {
        id.trim_end_matches('/').to_string()
    } else if id.is_empty() {
        parent.trim_end_matches('/').to_string()
    } else {
        format!(
            "{}/{}",
            parent.trim_end_matches('/'),
            id.trim_end_matches('/')
        )
    };
    for app in group["apps"].as_array().into_iter().flatten() {
        let mut app = app.clone();
        let aid = app["id"].as_str().unwrap_or("").to_string();
        if !aid.starts_with('/') {
            app["id"] = json!(format!("{base}/{aid}"));
        }
        out.push(app);
    }
    for g in group["groups"].as_array().into_iter().flatten() {
        flatten_group(g, &base, out)?;
    }
    for k in group.as_object().into_iter().flat_map(|o| o.keys()) {
        if ![
            "id",
            "apps",
            "groups",
            "dependencies",
            "version",
            "pods",
            "enforceRole",
        ]
        .contains(&k.as_str())
        {
            return Err(ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                body: json!({"message": "Object is not valid",
                    "details": [{"path": format!("/{k}"), "errors": [format!("unknown field `{k}` in a group: use id, apps, groups")]}]}),
            });
        }
    }
    Ok(())
}

async fn group_put(State(m): State<Master>, RawQuery(q): RawQuery, body: Bytes) -> ApiResult {
    group_deploy(m, "/", q, body, StatusCode::CREATED).await
}

async fn group_put_at(
    State(m): State<Master>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    group_deploy(
        m,
        &format!("/{}", id.trim_matches('/')),
        q,
        body,
        StatusCode::OK,
    )
    .await
}

async fn group_deploy(
    m: Master,
    at: &str,
    q: Option<String>,
    body: Bytes,
    status: StatusCode,
) -> ApiResult {
    let mut group = parse_json(&body)?;
    if at != "/" && group["id"].as_str().is_none_or(str::is_empty) {
        group["id"] = json!(at);
    }
    let mut apps = Vec::new();
    flatten_group(&group, "/", &mut apps)?;
    let force = query_flag(&q, "force");
    let ds = m.write(|s, now| s.put_apps(apps, force, true, now))?;
    Ok(deployments_reply(&ds, status))
}

async fn group_delete(
    State(m): State<Master>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let force = query_flag(&q, "force");
    let ds = m.write(|s, now| s.delete_group(&id, force, now))?;
    Ok(deployments_reply(&ds, StatusCode::OK))
}

async fn queue_reset_delay(State(m): State<Master>, Path(rest): Path<String>) -> ApiResult {
    let Some(id) = rest.trim_end_matches('/').strip_suffix("/delay") else {
        return Err(not_found());
    };
    let id = id.to_string();
    m.write(|s, _| s.reset_delay(&id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// === groups ===

fn group_json(s: &MState, id: &str) -> Option<Value> {
    let prefix = if id == "/" {
        "/".to_string()
    } else {
        format!("{id}/")
    };
    let mut apps = Vec::new();
    let mut subgroups: BTreeMap<String, ()> = BTreeMap::new();
    for app in s.apps.values() {
        let Some(rest) = app.def.id.strip_prefix(&prefix) else {
            continue;
        };
        match rest.split_once('/') {
            None => apps.push(app_json(s, app, false, false)),
            Some((g, _)) => {
                subgroups.insert(format!("{prefix}{g}"), ());
            }
        }
    }
    if apps.is_empty() && subgroups.is_empty() && id != "/" {
        return None;
    }
    let groups: Vec<Value> = subgroups.keys().filter_map(|g| group_json(s, g)).collect();
    let version = s.apps.values().map(|a| a.version).max().map(ts);
    Some(json!({
        "id": id, "apps": apps, "groups": groups, "pods": [], "dependencies": [],
        "version": version,
    }))
}

async fn groups_root(State(m): State<Master>) -> ApiResult {
    let v = m.read(|s| group_json(s, "/"));
    Ok(Json(v.unwrap_or(Value::Null)).into_response())
}

async fn group_get(State(m): State<Master>, Path(id): Path<String>) -> ApiResult {
    let id = format!("/{}", id.trim_matches('/'));
    match m.read(|s| group_json(s, &id)) {
        Some(v) => Ok(Json(v).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Group '{id}' does not exist"),
        )),
    }
}

// === deployments, queue, events ===

async fn list_deployments(State(m): State<Master>) -> Json<Value> {
    Json(m.read(|s| {
        json!(s
            .deployments
            .values()
            .map(|d| d.to_json())
            .collect::<Vec<_>>())
    }))
}

async fn delete_deployment(
    State(m): State<Master>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let force = query_flag(&q, "force");
    let d = m.write(|s, now| s.delete_deployment(&id, force, now))?;
    Ok(match d {
        Some(d) => (
            StatusCode::OK,
            deployment_headers(&d.id),
            Json(json!({"version": ts(d.version), "deploymentId": d.id})),
        )
            .into_response(),
        None => StatusCode::ACCEPTED.into_response(),
    })
}

async fn queue(State(m): State<Master>) -> Json<Value> {
    let now = m.now();
    let items = m.read(|s| {
        let nodes = s.nodes.values().filter(|n| !n.removed).count();
        s.queue
            .iter()
            .filter_map(|(id, q)| {
                let app = s.apps.get(id)?;
                let delay = s.delays.get(id);
                let left = delay
                    .map(|d| ((d.until - now).num_milliseconds().max(0) as f64) / 1000.0)
                    .unwrap_or(0.0);
                // Why the tasks wait goes where Marathon reports why offers were declined
                // (Marathon's clients know no other field).
                Some(json!({
                    "app": app_json(s, app, false, false),
                    "count": q.count,
                    "delay": {"timeLeftSeconds": left, "overdue": left == 0.0},
                    "since": ts(q.since),
                    "processedOffersSummary": {
                        "processedOffersCount": nodes,
                        "unusedOffersCount": nodes,
                        "rejectSummaryLastOffers": [{"reason": q.reason, "declined": nodes, "processed": nodes}],
                    },
                    "lastUnusedOffers": [],
                }))
            })
            .collect::<Vec<_>>()
    });
    Json(json!({ "queue": items }))
}

async fn events(
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
async fn recent_events(State(m): State<Master>, RawQuery(q): RawQuery) -> ApiResult {
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

async fn list_nodes(State(m): State<Master>) -> Json<Value> {
    Json(m.read(|s| {
        json!({"nodes": s.nodes.values().filter(|n| !n.removed).map(|n| node_json(s, n)).collect::<Vec<_>>()})
    }))
}

async fn node_get(State(m): State<Master>, Path(id): Path<String>) -> ApiResult {
    m.read(|s| {
        s.nodes
            .get(&id)
            .filter(|n| !n.removed)
            .map(|n| Json(json!({"node": node_json(s, n)})).into_response())
    })
    .ok_or_else(|| MasterError::NodeNotFound(id).into())
}

async fn node_action(
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

async fn node_remove(State(m): State<Master>, Path(id): Path<String>) -> ApiResult {
    node_action(State(m), Path((id, "remove".into()))).await
}

// === agents ===

fn parse_report(body: &Bytes) -> Result<AgentReport, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("not an agent report: {e} (agent and master versions differ?)"),
        )
    })
}

async fn agent_register(State(m): State<Master>, body: Bytes) -> ApiResult {
    let report = parse_report(&body)?;
    tracing::info!(node = %report.node_id, hostname = %report.hostname, cpus = report.resources.cpus, "agent registered");
    m.metrics().heartbeats.inc();
    let mut reply = m.write(|s, now| Ok(s.heartbeat(report, true, now)))?;
    reply.cluster_id = m.cluster_id().to_string();
    Ok(Json(reply).into_response())
}

async fn agent_heartbeat(
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
    let mut reply = m.write(|s, now| Ok(s.heartbeat(report, false, now)))?;
    reply.cluster_id = m.cluster_id().to_string();
    Ok(Json(reply).into_response())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::{body::Body, http::Request};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::{clock::SystemClock, master::MasterConfig};

    async fn call(r: &Router, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(if body.is_null() {
                Body::empty()
            } else {
                Body::from(body.to_string())
            })
            .unwrap();
        let resp = r.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn master() -> Master {
        Master::in_memory(MasterConfig::default(), Arc::new(SystemClock))
    }

    #[tokio::test]
    async fn create_list_scale_delete() {
        let r = router(master());
        let (st, v) = call(
            &r,
            "POST",
            "/v2/apps",
            json!({"id": "shop/web", "cmd": "sleep 1"}),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        assert_eq!(v["id"], "/shop/web");
        assert_eq!(v["deployments"].as_array().unwrap().len(), 1);
        let (st, _) = call(
            &r,
            "POST",
            "/v2/apps",
            json!({"id": "/shop/web", "cmd": "x"}),
        )
        .await;
        assert_eq!(st, StatusCode::CONFLICT);
        let (st, v) = call(&r, "GET", "/v2/apps", Value::Null).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(v["apps"][0]["id"], "/shop/web");
        let (st, v) = call(&r, "PUT", "/v2/apps/shop/web", json!({"instances": 2})).await;
        assert_eq!(st, StatusCode::CONFLICT, "locked: {v}");
        let (st, v) = call(
            &r,
            "PUT",
            "/v2/apps/shop/web?force=true",
            json!({"instances": 2}),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert!(v["deploymentId"].is_string());
        let (_, v) = call(&r, "GET", "/v2/apps/shop/web", Value::Null).await;
        assert_eq!(v["app"]["instances"], 2);
        let (_, v) = call(&r, "GET", "/v2/groups", Value::Null).await;
        assert_eq!(v["groups"][0]["id"], "/shop");
        let (st, _) = call(&r, "GET", "/v2/apps/shop/web/tasks", Value::Null).await;
        assert_eq!(st, StatusCode::OK);
        let (st, _) = call(&r, "DELETE", "/v2/apps/shop/web?force=true", Value::Null).await;
        assert_eq!(st, StatusCode::OK);
        let (st, v) = call(&r, "GET", "/v2/apps/shop/web", Value::Null).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert_eq!(v["message"], "App '/shop/web' does not exist");
    }

    #[tokio::test]
    async fn recent_events_newest_first_with_limit_and_type() {
        let r = router(master());
        for id in ["/e1", "/e2"] {
            let (st, v) = call(&r, "POST", "/v2/apps", json!({"id": id, "cmd": "x"})).await;
            assert_eq!(st, StatusCode::CREATED, "{v}");
        }
        let (st, v) = call(&r, "GET", "/v1/events", Value::Null).await;
        assert_eq!(st, StatusCode::OK);
        let evs = v["events"].as_array().unwrap();
        assert!(evs.len() >= 2, "{v}");
        let (_, v) = call(
            &r,
            "GET",
            "/v1/events?event_type=api_post_event&limit=1",
            Value::Null,
        )
        .await;
        let evs = v["events"].as_array().unwrap();
        assert_eq!(evs.len(), 1, "{v}");
        assert_eq!(evs[0]["appDefinition"]["id"], "/e2", "newest first: {v}");
        let (st, v) = call(&r, "GET", "/v1/events?limit=0", Value::Null).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert!(v["message"].as_str().unwrap().contains("limit"), "{v}");
    }

    #[tokio::test]
    async fn invalid_definitions_get_422_with_fields() {
        let r = router(master());
        let (st, v) = call(
            &r,
            "POST",
            "/v2/apps",
            json!({"id": "/a", "cmd": "x", "instances": -2}),
        )
        .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["message"], "Object is not valid");
        assert_eq!(v["details"][0]["path"], "/instances");
        let (st, v) = call(
            &r,
            "POST",
            "/v2/apps",
            json!({"id": "/a", "cmd": "x", "foo": 1}),
        )
        .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["details"][0]["path"], "/foo");
        let req = Request::post("/v2/apps").body(Body::from("{nope")).unwrap();
        let resp = r.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn groups_and_bulk_updates() {
        let r = router(master());
        let (st, v) = call(
            &r,
            "POST",
            "/v2/groups",
            json!({"id": "/shop", "apps": [{"id": "web", "cmd": "x"}],
            "groups": [{"id": "back", "apps": [{"id": "db", "cmd": "y"}]}]}),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        let (_, v) = call(&r, "GET", "/v2/groups/shop", Value::Null).await;
        assert_eq!(v["apps"][0]["id"], "/shop/web");
        assert_eq!(v["groups"][0]["apps"][0]["id"], "/shop/back/db");
        // all or nothing: the second app is invalid, the first is not changed
        let (st, v) = call(
            &r,
            "PUT",
            "/v2/apps?force=true",
            json!([{"id": "/shop/web", "instances": 3}, {"id": "/shop/back/db", "instances": -1}]),
        )
        .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["details"][0]["path"], "/1/instances");
        let (_, v) = call(&r, "GET", "/v2/apps/shop/web", Value::Null).await;
        assert_eq!(v["app"]["instances"], 1);
        let (st, _) = call(
            &r,
            "PUT",
            "/v2/apps?force=true",
            json!([{"id": "/shop/web", "instances": 3}]),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        let (_, v) = call(&r, "GET", "/v2/apps/shop/web", Value::Null).await;
        assert_eq!(v["app"]["instances"], 3);
        let (st, v) = call(&r, "DELETE", "/v2/groups/shop?force=true", Value::Null).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let (_, v) = call(&r, "GET", "/v2/apps", Value::Null).await;
        assert_eq!(v["apps"].as_array().unwrap().len(), 0);
        let (st, _) = call(&r, "DELETE", "/v2/queue/nope/delay", Value::Null).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
    }

    /// `app_json` before the views were typed.
    fn old_app_json(s: &MState, app: &App, embed_tasks: bool, embed_failure: bool) -> Value {
        let mut v = app.def.to_json();
        let tasks: Vec<&Task> = s
            .tasks
            .values()
            .filter(|t| t.spec.app_id == app.def.id && t.is_active())
            .collect();
        let count = |f: &dyn Fn(&Task) -> bool| tasks.iter().filter(|t| f(t)).count();
        v["version"] = json!(ts(app.version));
        v["versionInfo"] = json!({
            "lastScalingAt": ts(app.last_scaling_at),
            "lastConfigChangeAt": ts(app.config_version),
        });
        v["tasksStaged"] = json!(count(&|t| matches!(
            t.state,
            crate::model::TaskState::Staging | crate::model::TaskState::Starting
        )));
        v["tasksRunning"] = json!(count(&|t| t.state == crate::model::TaskState::Running));
        v["tasksHealthy"] = json!(count(
            &|t| !t.spec.health_checks.is_empty() && t.is_healthy()
        ));
        v["tasksUnhealthy"] = json!(count(
            &|t| !t.spec.health_checks.is_empty() && t.healthy == Some(false)
        ));
        v["deployments"] = json!(s
            .deployments
            .values()
            .filter(|d| d.app_id == app.def.id)
            .map(|d| json!({"id": d.id}))
            .collect::<Vec<_>>());
        if embed_tasks {
            v["tasks"] = json!(tasks.iter().map(|t| old_task_json(t)).collect::<Vec<_>>());
        }
        if embed_failure {
            if let Some(f) = s.failures.get(&app.def.id) {
                v["lastTaskFailure"] = json!({
                    "appId": app.def.id, "host": f.host, "message": f.message, "taskId": f.task_id,
                    "instanceId": f.task_id, "slaveId": null, "state": f.state.marathon(),
                    "timestamp": ts(f.timestamp), "version": ts(f.version),
                });
            }
        }
        v
    }

    /// `task_json` before the views were typed.
    fn old_task_json(t: &Task) -> Value {
        let checks: Vec<Value> = if t.spec.health_checks.is_empty() {
            Vec::new()
        } else {
            vec![json!({
                "alive": t.healthy == Some(true),
                "consecutiveFailures": t.consecutive_failures,
                "firstSuccess": t.last_success.map(ts),
                "lastFailure": t.last_failure.map(ts),
                "lastSuccess": t.last_success.map(ts),
                "lastFailureCause": t.last_failure_cause,
                "taskId": t.spec.task_id,
                "instanceId": t.spec.task_id,
            })]
        };
        json!({
            "id": t.spec.task_id,
            "appId": t.spec.app_id,
            "host": t.host,
            "ports": t.spec.host_ports,
            "servicePorts": [],
            "slaveId": t.node_id,
            "stagedAt": ts(t.staged_at),
            "startedAt": t.started_at.map(ts),
            "version": ts(t.spec.config_version),
            "ipAddresses": [{"ipAddress": t.host, "protocol": "IPv4"}],
            "state": t.state.marathon(),
            "healthCheckResults": checks,
        })
    }

    #[test]
    fn typed_views_render_the_json_the_api_always_sent() {
        use crate::model::{AgentReport, Resources, TaskReport, TaskState};
        let m = master();
        m.write(|s, now| {
            s.heartbeat(
                AgentReport {
                    node_id: "n1".into(),
                    hostname: "h1".into(),
                    resources: Resources {
                        cpus: 4.0,
                        mem: 4096.0,
                        disk: 0.0,
                    },
                    port_range: (31000, 31010),
                    attributes: Default::default(),
                    tasks: vec![],
                },
                true,
                now,
            );
            s.create_app(
                json!({"id": "/a", "cmd": "x", "cpus": 0.1, "mem": 10, "instances": 3,
                       "healthChecks": [{"protocol": "TCP"}], "labels": {"k": "v"}}),
                now,
            )?;
            s.create_app(json!({"id": "/b", "cmd": "y", "cpus": 0.1, "mem": 10}), now)?;
            s.tick(now);
            // One task running and healthy, one failing its checks, one failed.
            let specs: Vec<_> = s
                .tasks
                .values()
                .filter(|t| t.spec.app_id == "/a")
                .map(|t| t.spec.clone())
                .collect();
            let report = |i: usize, state, healthy| TaskReport {
                task_id: specs[i].task_id.clone(),
                app_id: "/a".into(),
                state,
                container_id: Some("c".into()),
                message: Some("exit 1".into()),
                started_at: Some(now),
                healthy,
                consecutive_failures: if healthy == Some(false) { 2 } else { 0 },
                last_success: Some(now),
                last_failure: (healthy == Some(false)).then_some(now),
                last_failure_cause: (healthy == Some(false)).then(|| "refused".to_string()),
            };
            s.heartbeat(
                AgentReport {
                    node_id: "n1".into(),
                    hostname: "h1".into(),
                    resources: Resources {
                        cpus: 4.0,
                        mem: 4096.0,
                        disk: 0.0,
                    },
                    port_range: (31000, 31010),
                    attributes: Default::default(),
                    tasks: vec![
                        report(0, TaskState::Running, Some(true)),
                        report(1, TaskState::Running, Some(false)),
                        report(2, TaskState::Failed, None),
                    ],
                },
                false,
                now,
            );
            Ok(())
        })
        .unwrap();
        m.read(|s| {
            assert!(s.failures.contains_key("/a"));
            for app in s.apps.values() {
                for (tasks, failure) in [(false, false), (true, false), (false, true), (true, true)]
                {
                    let new = app_json(s, app, tasks, failure);
                    assert_eq!(new, old_app_json(s, app, tasks, failure));
                    assert_eq!(
                        new.to_string(),
                        old_app_json(s, app, tasks, failure).to_string()
                    );
                    // and it reads back, typed, as the client reads it
                    let back: MarathonApp = serde_json::from_value(new.clone()).unwrap();
                    assert_eq!(serde_json::to_value(&back).unwrap(), new);
                    assert_eq!(back.tasks_running, if app.def.id == "/a" { 2 } else { 0 });
                }
            }
            for t in s.tasks.values() {
                assert_eq!(task_json(t).to_string(), old_task_json(t).to_string());
            }
        });
    }

    #[tokio::test]
    async fn ping_and_info() {
        let r = router(master());
        let req = Request::get("/ping").body(Body::empty()).unwrap();
        assert_eq!(
            r.clone().oneshot(req).await.unwrap().status(),
            StatusCode::OK
        );
        let (_, v) = call(&r, "GET", "/v2/info", Value::Null).await;
        assert_eq!(v["name"], "drover");
    }
}
