//! Apps, their tasks, groups, deployments and the launch queue (`/v2/apps`, `/v2/tasks`,
//! `/v2/groups`, `/v2/deployments`, `/v2/queue`).

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};

use super::{
    parse_json, query_flag, query_values,
    render::{app_json, group_json, task_json},
    ApiError, ApiResult,
};
use crate::{
    master::{Master, MasterError, State as MState},
    model::{normalize_id, ts, AppDefinition, Deployment},
    validate::{parse_app, FieldError, ValidationErrors},
};

// === decoding definitions ===

/// The definition in a POST body.
fn decode_app(body: Value) -> Result<AppDefinition, MasterError> {
    parse_app(body).map_err(MasterError::Invalid)
}

/// The definition a PUT of app `id` asks for: with `partial` (Marathon's default) the body's
/// fields over the `current` definition, else the body alone; for a new app (no `current`)
/// the body with the ID of the path.
pub fn put_definition(
    current: Option<&AppDefinition>,
    id: &str,
    body: Value,
    partial: bool,
) -> Result<AppDefinition, MasterError> {
    let id = normalize_id(id);
    let Some(old) = current else {
        let mut body = body;
        if body.is_object() {
            body["id"] = json!(id);
        }
        return decode_app(body);
    };
    let Value::Object(patch) = body else {
        let mut e = ValidationErrors::default();
        e.details.push(FieldError {
            path: "/".into(),
            errors: vec!["expected a JSON object".into()],
        });
        return Err(MasterError::Invalid(e));
    };
    let mut merged = if partial {
        serde_json::to_value(old).unwrap_or_else(|_| json!({}))
    } else {
        json!({})
    };
    for (k, v) in patch {
        merged[k] = v;
    }
    merged["id"] = json!(id);
    let mut def = decode_app(merged)?;
    def.id = id;
    Ok(def)
}

/// PUT of app `id` (the body decoded against the app's current definition).
fn put(
    s: &mut MState,
    id: &str,
    body: Value,
    force: bool,
    partial: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Deployment, MasterError> {
    let current = s.apps.get(&normalize_id(id)).map(|a| &a.def);
    let def = put_definition(current, id, body, partial)?;
    s.put_app(def, force, now)
}

/// PUT /v2/apps and group deployments: create or update several apps, all or none; an
/// invalid field is named with the app's index (`/1/instances`).
fn put_all(
    s: &mut MState,
    defs: Vec<Value>,
    force: bool,
    partial: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Deployment>, MasterError> {
    s.all_or_none(|s| {
        let mut out = Vec::new();
        for (i, def) in defs.into_iter().enumerate() {
            let id = def["id"].as_str().unwrap_or("").to_string();
            let result = if id.trim().is_empty() {
                let mut e = ValidationErrors::default();
                e.details.push(FieldError {
                    path: "/id".into(),
                    errors: vec!["id is required, e.g. \"/shop/web\"".into()],
                });
                Err(MasterError::Invalid(e))
            } else {
                put(s, &id, def, force, partial, now)
            };
            match result {
                Ok(d) => out.push(d),
                Err(MasterError::Invalid(mut errs)) => {
                    for d in &mut errs.details {
                        d.path = format!("/{i}{}", if d.path == "/" { "" } else { &d.path });
                    }
                    return Err(MasterError::Invalid(errs));
                }
                Err(other) => return Err(other),
            }
        }
        Ok(out)
    })
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

pub(super) async fn list_apps(State(m): State<Master>, RawQuery(q): RawQuery) -> Json<Value> {
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

pub(super) async fn create_app(State(m): State<Master>, body: Bytes) -> ApiResult {
    let body = parse_json(&body)?;
    let def = decode_app(body)?;
    let (app, d) = m.write(|s, now| s.create_app(def, now))?;
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

pub(super) async fn app_get(
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

pub(super) async fn app_put(
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
    let d = m.write(|s, now| put(s, &id, body, force, partial, now))?;
    Ok((
        StatusCode::OK,
        deployment_headers(&d.id),
        Json(json!({"version": ts(d.version), "deploymentId": d.id})),
    )
        .into_response())
}

pub(super) async fn app_delete(
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

pub(super) async fn app_post(
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

pub(super) async fn list_tasks(State(m): State<Master>, RawQuery(q): RawQuery) -> Json<Value> {
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

pub(super) async fn put_apps(
    State(m): State<Master>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    let body = parse_json(&body)?;
    let Value::Array(defs) = body else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "PUT /v2/apps takes a JSON array of app definitions",
        ));
    };
    let force = query_flag(&q, "force");
    let partial = !query_values(&q, "partialUpdate").contains(&"false");
    let ds = m.write(|s, now| put_all(s, defs, force, partial, now))?;
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
        // (Indexing a non-object by key would panic; a non-object app fails validation.)
        if !aid.starts_with('/') && app.is_object() {
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

pub(super) async fn group_put(
    State(m): State<Master>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    group_deploy(m, "/", q, body, StatusCode::CREATED).await
}

pub(super) async fn group_put_at(
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

pub(super) async fn group_deploy(
    m: Master,
    at: &str,
    q: Option<String>,
    body: Bytes,
    status: StatusCode,
) -> ApiResult {
    let mut group = parse_json(&body)?;
    // Indexing a JSON number or array by key panics: refuse anything but an object.
    if !group.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Invalid JSON: the body must be a JSON object (a group)".to_string(),
        ));
    }
    if at != "/" && group["id"].as_str().is_none_or(str::is_empty) {
        group["id"] = json!(at);
    }
    let mut apps = Vec::new();
    flatten_group(&group, "/", &mut apps)?;
    let force = query_flag(&q, "force");
    let ds = m.write(|s, now| put_all(s, apps, force, true, now))?;
    Ok(deployments_reply(&ds, status))
}

pub(super) async fn group_delete(
    State(m): State<Master>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let force = query_flag(&q, "force");
    let ds = m.write(|s, now| s.delete_group(&id, force, now))?;
    Ok(deployments_reply(&ds, StatusCode::OK))
}

pub(super) async fn queue_reset_delay(
    State(m): State<Master>,
    Path(rest): Path<String>,
) -> ApiResult {
    let Some(id) = rest.trim_end_matches('/').strip_suffix("/delay") else {
        return Err(not_found());
    };
    let id = id.to_string();
    m.write(|s, _| s.reset_delay(&id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn groups_root(State(m): State<Master>) -> ApiResult {
    let v = m.read(|s| group_json(s, "/"));
    Ok(Json(v.unwrap_or(Value::Null)).into_response())
}

pub(super) async fn group_get(State(m): State<Master>, Path(id): Path<String>) -> ApiResult {
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

pub(super) async fn list_deployments(State(m): State<Master>) -> Json<Value> {
    Json(m.read(|s| {
        json!(s
            .deployments
            .values()
            .map(|d| d.to_json())
            .collect::<Vec<_>>())
    }))
}

pub(super) async fn delete_deployment(
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

pub(super) async fn queue(State(m): State<Master>) -> Json<Value> {
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
