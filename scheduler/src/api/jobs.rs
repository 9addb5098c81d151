//! `/v1/jobs`: Chronos-style jobs (Drover's own API). Definitions in (JSON, the same 422
//! shape as apps), jobs with their next run and last outcome out, runs with their attempts
//! and a link to each one's logs in the log search.

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{parse_json, ApiError, ApiResult};
use crate::{
    jobs::{job_app_id, validate::parse_job, Job, JobError, JobRun},
    master::{Master, State as MState},
    model::ts,
};

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        let msg = e.to_string();
        match e {
            JobError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, msg),
            JobError::Exists(_) | JobError::Conflict(_) => Self::new(StatusCode::CONFLICT, msg),
            JobError::Invalid(errs) => Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                body: errs.to_json(),
            },
        }
    }
}

// === views ===

/// `s` with everything but RFC 3986's unreserved characters percent-encoded (for the
/// query of a UI link).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The UI's log search over `[from − 1 min, to + 1 min]` (open-ended while running).
pub fn logs_link(query: &str, app: &str, from: DateTime<Utc>, to: Option<DateTime<Utc>>) -> String {
    let minute = chrono::Duration::minutes(1);
    let mut link = format!("/#/logs?q={}&from={}", enc(query), enc(&ts(from - minute)));
    if let Some(to) = to {
        link.push_str(&format!("&to={}", enc(&ts(to + minute))));
    }
    if !app.is_empty() {
        link.push_str(&format!("&app={}", enc(app)));
    }
    link
}

/// A run for the API: its record, a `logs` link for the run (every attempt) and for each
/// attempt (its task).
pub fn run_json(r: &JobRun) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    let app = job_app_id(&r.job_id);
    if let Some(first) = r.attempts.first() {
        let tasks: Vec<String> = r
            .attempts
            .iter()
            .map(|a| format!("task:\"{}\"", a.task_id))
            .collect();
        v["logs"] = json!(logs_link(
            &tasks.join(" OR "),
            &app,
            first.placed_at,
            r.ended_at
        ));
    }
    if let Some(attempts) = v["attempts"].as_array_mut() {
        for (a, view) in r.attempts.iter().zip(attempts) {
            view["logs"] = json!(logs_link(
                &format!("task:\"{}\"", a.task_id),
                &app,
                a.placed_at,
                a.ended_at
            ));
            if let Some(o) = view.as_object_mut() {
                o.remove("spec");
            }
        }
    }
    if let Some(a) = r.last_attempt() {
        v["node"] = json!(a.node_id);
        v["containerId"] = json!(a.container_id);
        v["exitCode"] = json!(a.exit_code);
        v["startedAt"] = json!(a.started_at.map(ts));
    }
    v
}

/// A job for the API: its definition, next run, last outcome and runs going.
pub fn job_json(s: &MState, j: &Job) -> Value {
    let mut v = serde_json::to_value(&j.def).unwrap_or(Value::Null);
    let last = s
        .jobs
        .runs_of(&j.def.id)
        .rev()
        .find(|r| r.state.is_final() && r.state != crate::jobs::RunState::Skipped);
    let active = s
        .jobs
        .runs_of(&j.def.id)
        .filter(|r| !r.state.is_final())
        .count();
    if let Some(o) = v.as_object_mut() {
        o.insert("nextRun".into(), json!(j.next_run.map(ts)));
        o.insert("lastSuccess".into(), json!(j.last_success.map(ts)));
        o.insert("lastFailure".into(), json!(j.last_failure.map(ts)));
        o.insert("lastRun".into(), last.map(run_json).unwrap_or(Value::Null));
        o.insert("activeRuns".into(), json!(active));
        o.insert("skipped".into(), json!(j.skipped));
        o.insert("createdAt".into(), json!(ts(j.created_at)));
        o.insert("updatedAt".into(), json!(ts(j.updated_at)));
        if let Some(r) = &j.resolved_schedule {
            o.insert("resolvedSchedule".into(), json!(r));
        }
        o.insert(
            "logs".into(),
            json!(format!(
                "/#/logs?since=24h&app={}",
                enc(&job_app_id(&j.def.id))
            )),
        );
    }
    v
}

fn job_view(m: &Master, id: &str) -> Result<Value, ApiError> {
    m.read(|s| s.jobs.jobs.get(id).map(|j| job_json(s, j)))
        .ok_or_else(|| JobError::NotFound(id.to_string()).into())
}

// === handlers ===

pub(super) async fn list_jobs(State(m): State<Master>) -> Json<Value> {
    Json(m.read(
        |s| json!({"jobs": s.jobs.jobs.values().map(|j| job_json(s, j)).collect::<Vec<_>>()}),
    ))
}

pub(super) async fn create_job(State(m): State<Master>, body: Bytes) -> ApiResult {
    let def = parse_job(parse_json(&body)?).map_err(JobError::Invalid)?;
    let id = def.id.clone();
    m.write(|s, now| Ok(s.job_create(def, now)))??;
    Ok((StatusCode::CREATED, Json(job_view(&m, &id)?)).into_response())
}

pub(super) async fn job_get(State(m): State<Master>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(job_view(&m, &id)?).into_response())
}

pub(super) async fn job_put(
    State(m): State<Master>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let mut v = parse_json(&body)?;
    if let Some(o) = v.as_object_mut() {
        match o.get("id").and_then(Value::as_str) {
            Some(given) if given != id => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("the body's id {given:?} differs from the path's {id:?}"),
                ))
            }
            _ => {
                o.insert("id".into(), json!(id));
            }
        }
    }
    let def = parse_job(v).map_err(JobError::Invalid)?;
    let (_, created) = m.write(|s, now| Ok(s.job_put(def, now)))??;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(job_view(&m, &id)?)).into_response())
}

pub(super) async fn job_delete(State(m): State<Master>, Path(id): Path<String>) -> ApiResult {
    m.write(|s, now| Ok(s.job_delete(&id, now)))??;
    Ok(Json(json!({"id": id, "deleted": true})).into_response())
}

pub(super) async fn job_run(State(m): State<Master>, Path(id): Path<String>) -> ApiResult {
    let run = m.write(|s, now| Ok(s.job_run_now(&id, now)))??;
    Ok((StatusCode::CREATED, Json(run_json(&run))).into_response())
}

async fn enable(m: Master, id: String, on: bool) -> ApiResult {
    m.write(|s, now| Ok(s.job_enable(&id, on, now)))??;
    Ok(Json(job_view(&m, &id)?).into_response())
}

pub(super) async fn job_enable(State(m): State<Master>, Path(id): Path<String>) -> ApiResult {
    enable(m, id, true).await
}

pub(super) async fn job_disable(State(m): State<Master>, Path(id): Path<String>) -> ApiResult {
    enable(m, id, false).await
}

/// `?limit=N` (50 by default).
#[derive(Debug, Deserialize)]
pub(super) struct RunsQuery {
    limit: Option<usize>,
}

pub(super) async fn job_runs(
    State(m): State<Master>,
    Path(id): Path<String>,
    Query(q): Query<RunsQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(50);
    let runs = m.read(|s| {
        s.jobs.jobs.contains_key(&id).then(|| {
            s.jobs
                .runs_of(&id)
                .rev()
                .take(limit)
                .map(run_json)
                .collect::<Vec<_>>()
        })
    });
    match runs {
        Some(r) => Ok(Json(json!({"id": id, "runs": r})).into_response()),
        None => Err(JobError::NotFound(id).into()),
    }
}
