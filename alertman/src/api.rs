//! The HTTP API, merged into the `drover up` server (the same base URL as the UI, so
//! `amtool --alertmanager.url=http://127.0.0.1:8080` works):
//!
//! | route | what |
//! |---|---|
//! | `GET /api/alerts` | firing and pending alerts (with what mutes them), the rules and their health, the silences, the last reload |
//! | `GET /api/alerts/history` | transitions, notifications, actions, silence changes; `from`, `to`, `since`, `rule`, `app`, `state`, `kind`, `limit` (newest first) |
//! | `POST /api/alerts/reload` | reload the rule files (like SIGHUP); 400 with file:line:field when they are bad (the running rules stay) |
//! | `GET /api/v2/status` | Alertmanager v2: status |
//! | `GET`/`POST /api/v2/alerts` | Alertmanager v2: alerts (`filter`, `active`, `silenced`, `inhibited`, `receiver`); Prometheus posts here |
//! | `GET /api/v2/alerts/groups` | Alertmanager v2: alerts by group |
//! | `GET`/`POST /api/v2/silences`, `GET`/`DELETE /api/v2/silence/{id}` | Alertmanager v2: silences |
//! | `GET /api/v2/receivers` | Alertmanager v2: receiver names |
//!
//! Errors are `{"error": "..."}` with 400 for bad input (Alertmanager's own routes answer
//! 400 with a plain string, as amtool expects).
use std::collections::BTreeMap;

use axum::{
    extract::{rejection::JsonRejection, rejection::QueryRejection, Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, get, post},
    Json, Router,
};
use chrono::{DateTime, Utc};
pub use drover_schema::api::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{
    alert::{Alert, AlertState, LabelSet},
    matcher::{self, Matcher},
    service::{AlertView, Alertman},
    silence::Silence,
    store::{HistoryKind, HistoryQuery},
    AlertmanError,
};

/// The routes, bound to an Alertman.
pub fn router(am: Alertman) -> Router {
    Router::new()
        .route("/api/alerts", get(alerts_route))
        .route("/api/alerts/history", get(history_route))
        .route("/api/alerts/reload", post(reload_route))
        .route("/api/v2/status", get(v2_status))
        .route("/api/v2/alerts", get(v2_alerts).post(v2_post_alerts))
        .route("/api/v2/alerts/groups", get(v2_groups))
        .route("/api/v2/silences", get(v2_silences).post(v2_post_silence))
        .route(
            "/api/v2/silence/{id}",
            get(v2_silence).delete(v2_delete_silence),
        )
        .route("/api/v2/receivers", get(v2_receivers))
        .route("/api/v1/alerts", delete(gone).get(gone).post(gone))
        .with_state(am)
}

impl From<AlertmanError> for ApiError {
    fn from(e: AlertmanError) -> Self {
        match e {
            AlertmanError::BadRequest(m) => ApiError::bad_request(m),
            AlertmanError::NotFound(m) => ApiError::not_found(m),
            AlertmanError::Load(e) => {
                ApiError::bad_request(e.to_string()).with_detail(json!({ "errors": e.errors }))
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

async fn gone() -> ApiError {
    ApiError::new(
        410,
        "the Alertmanager v1 API is gone: use /api/v2 (amtool and Prometheus ≥ 2.x do)",
    )
}

// === Drover's routes ===

async fn alerts_route(State(am): State<Alertman>) -> Json<Value> {
    let alerts = am.alerts().await;
    let rules = am.rules().await;
    let silences: Vec<Value> = am
        .silences()
        .into_iter()
        .map(|(s, st)| gettable_silence(&s, st))
        .collect();
    Json(json!({
        "alerts": alerts,
        "rules": rules,
        "silences": silences,
        "reload": am.reload_status(),
    }))
}

/// Query parameters of `/api/alerts/history`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// From: RFC 3339, `now-1h`, epoch ms.
    pub from: Option<String>,
    /// To.
    pub to: Option<String>,
    /// Instead of from: this long back.
    pub since: Option<String>,
    /// Only this rule.
    pub rule: Option<String>,
    /// Only this app.
    pub app: Option<String>,
    /// Only this state.
    pub state: Option<String>,
    /// transition, notification, action, silence, rules.
    pub kind: Option<String>,
    /// At most (default 200, at most 5000).
    pub limit: Option<usize>,
}

impl HistoryParams {
    /// The store question.
    pub fn query(&self, now: DateTime<Utc>) -> Result<HistoryQuery, ApiError> {
        let (from, to) = drover_schema::time::range(
            self.from.as_deref(),
            self.to.as_deref(),
            self.since.as_deref(),
            now,
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let kind = match self.kind.as_deref() {
            None => None,
            Some(k) => Some(
                serde_json::from_value::<HistoryKind>(json!(k)).map_err(|_| {
                    ApiError::bad_request(format!(
                        "kind: unknown {k:?} (known: transition, notification, action, silence, rules)"
                    ))
                })?,
            ),
        };
        let limit = self.limit.unwrap_or(200);
        if limit == 0 || limit > 5000 {
            return Err(ApiError::bad_request(format!(
                "limit: must be 1 to 5000, not {limit}"
            )));
        }
        Ok(HistoryQuery {
            from,
            to,
            rule: self.rule.clone(),
            app: self.app.clone(),
            state: self.state.clone(),
            kind,
            limit,
        })
    }
}

async fn history_route(
    State(am): State<Alertman>,
    p: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = p.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let q = p.query(Utc::now())?;
    let entries = tokio::task::spawn_blocking(move || am.history(&q))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(json!({ "entries": entries })))
}

async fn reload_route(State(am): State<Alertman>) -> Result<Json<Value>, ApiError> {
    let n = am.reload().map_err(AlertmanError::Load)?;
    Ok(Json(json!({ "ok": true, "rules": n })))
}

// === Alertmanager v2 ===

/// Alertmanager's error answer: a JSON string.
fn am_error(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(Value::String(msg.into()))).into_response()
}

fn fmt(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn v2_status(State(am): State<Alertman>) -> Json<Value> {
    let cfg = am.config();
    let original = format!(
        "# Drover Alertman: rules from {}\n# receivers: {}\n",
        cfg.files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        cfg.receivers.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    Json(json!({
        "cluster": { "name": "drover", "status": "disabled", "peers": [] },
        "versionInfo": {
            "branch": "drover",
            "buildDate": "",
            "buildUser": "drover",
            "goVersion": "none (Rust)",
            "revision": "",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "config": { "original": original },
        "uptime": fmt(am.started()),
    }))
}

/// Query parameters of `GET /api/v2/alerts` (and groups).
#[derive(Debug, Default, Deserialize)]
pub struct AlertsParams {
    /// Matchers, repeated (`filter=alertname="A"`).
    #[serde(default)]
    pub filter: Vec<String>,
    /// Show active (not muted) alerts (default true).
    pub active: Option<bool>,
    /// Show silenced alerts (default true).
    pub silenced: Option<bool>,
    /// Show inhibited alerts (default true).
    pub inhibited: Option<bool>,
    /// Show unprocessed alerts (default true; Alertman has none).
    pub unprocessed: Option<bool>,
    /// Only alerts going to receivers matching this regex.
    pub receiver: Option<String>,
}

fn parse_alert_params(uri_query: Option<&str>) -> Result<AlertsParams, String> {
    // Repeated keys (`filter=a&filter=b`) are not something serde_urlencoded folds into a
    // Vec, so the query is read by hand.
    let mut p = AlertsParams::default();
    let Some(q) = uri_query else { return Ok(p) };
    for pair in q.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        let flag = |v: &str| -> Result<bool, String> {
            v.parse::<bool>()
                .map_err(|_| format!("{k}: {v:?} is not true or false"))
        };
        match k {
            "filter" => p.filter.push(v),
            "active" => p.active = Some(flag(&v)?),
            "silenced" => p.silenced = Some(flag(&v)?),
            "inhibited" => p.inhibited = Some(flag(&v)?),
            "unprocessed" => p.unprocessed = Some(flag(&v)?),
            "receiver" => p.receiver = Some(v),
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    Ok(p)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn gettable_alert(v: &AlertView, now: DateTime<Utc>) -> Value {
    let state = if v.muted.is_muted() {
        "suppressed"
    } else {
        "active"
    };
    let ends = v.ends_at.unwrap_or(now + chrono::Duration::minutes(5));
    json!({
        "labels": v.labels,
        "annotations": v.annotations,
        "receivers": v.receivers.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
        "fingerprint": v.fingerprint,
        "startsAt": fmt(v.starts_at),
        "updatedAt": fmt(v.updated_at),
        "endsAt": fmt(ends),
        "generatorURL": v.generator_url,
        "status": {
            "state": state,
            "silencedBy": v.muted.silenced_by,
            "inhibitedBy": v.muted.inhibited_by,
            "mutedBy": [],
        },
    })
}

async fn filtered_alerts(am: &Alertman, uri: &axum::http::Uri) -> Result<Vec<AlertView>, Response> {
    let p = parse_alert_params(uri.query()).map_err(|e| am_error(StatusCode::BAD_REQUEST, e))?;
    let ms = matcher::parse_list(&p.filter)
        .and_then(|ms| {
            ms.iter()
                .map(Matcher::compile)
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| am_error(StatusCode::BAD_REQUEST, format!("filter: {e}")))?;
    let receiver = match p.receiver.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => Some(
            regex::Regex::new(&format!("^(?:{r})$"))
                .map_err(|e| am_error(StatusCode::BAD_REQUEST, format!("receiver: {e}")))?,
        ),
        None => None,
    };
    Ok(am
        .alerts()
        .await
        .into_iter()
        // Pending alerts are not Alertmanager's business.
        .filter(|v| v.state == AlertState::Firing)
        .filter(|v| matcher::all_match(&ms, &v.labels))
        .filter(|v| {
            let silenced = !v.muted.silenced_by.is_empty();
            let inhibited = !v.muted.inhibited_by.is_empty();
            (p.silenced.unwrap_or(true) || !silenced)
                && (p.inhibited.unwrap_or(true) || !inhibited)
                && (p.active.unwrap_or(true) || silenced || inhibited)
        })
        .filter(|v| {
            receiver
                .as_ref()
                .is_none_or(|re| v.receivers.iter().any(|r| re.is_match(r)))
        })
        .collect())
}

async fn v2_alerts(State(am): State<Alertman>, uri: axum::http::Uri) -> Response {
    match filtered_alerts(&am, &uri).await {
        Ok(list) => {
            let now = Utc::now();
            Json(
                list.iter()
                    .map(|v| gettable_alert(v, now))
                    .collect::<Vec<_>>(),
            )
            .into_response()
        }
        Err(r) => r,
    }
}

async fn v2_groups(State(am): State<Alertman>, uri: axum::http::Uri) -> Response {
    let list = match filtered_alerts(&am, &uri).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let cfg = am.config();
    let now = Utc::now();
    let mut groups: BTreeMap<(String, LabelSet), Vec<Value>> = BTreeMap::new();
    for v in &list {
        let gl: LabelSet = match &cfg.route.group_by {
            None => v.labels.clone(),
            Some(by) => by
                .iter()
                .filter_map(|k| v.labels.get(k).map(|x| (k.clone(), x.clone())))
                .collect(),
        };
        for r in &v.receivers {
            groups
                .entry((r.clone(), gl.clone()))
                .or_default()
                .push(gettable_alert(v, now));
        }
    }
    Json(
        groups
            .into_iter()
            .map(|((r, labels), alerts)| json!({"labels": labels, "receiver": {"name": r}, "alerts": alerts}))
            .collect::<Vec<_>>(),
    )
    .into_response()
}

/// A posted alert (Alertmanager's `postableAlert`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    /// Labels (at least `alertname`).
    pub labels: LabelSet,
    /// Annotations.
    #[serde(default)]
    pub annotations: LabelSet,
    /// Since.
    pub starts_at: Option<DateTime<Utc>>,
    /// Until (default: 5 minutes after it is received, unless posted again).
    pub ends_at: Option<DateTime<Utc>>,
    /// Link to the source.
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
}

async fn v2_post_alerts(
    State(am): State<Alertman>,
    body: Result<Json<Vec<PostableAlert>>, JsonRejection>,
) -> Response {
    let Json(list) = match body {
        Ok(b) => b,
        Err(e) => return am_error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let now = Utc::now();
    let mut alerts = Vec::with_capacity(list.len());
    for (i, p) in list.into_iter().enumerate() {
        if p.labels.is_empty() {
            return am_error(
                StatusCode::BAD_REQUEST,
                format!("alert {i}: labels must not be empty"),
            );
        }
        if let (Some(s), Some(e)) = (p.starts_at, p.ends_at) {
            if e < s {
                return am_error(
                    StatusCode::BAD_REQUEST,
                    format!("alert {i}: endsAt is before startsAt"),
                );
            }
        }
        alerts.push(Alert {
            labels: p.labels,
            annotations: p.annotations,
            starts_at: p.starts_at.unwrap_or(now),
            ends_at: p.ends_at,
            updated_at: now,
            generator_url: p.generator_url,
            receivers: Vec::new(),
            value: None,
            rule: None,
        });
    }
    am.post_alerts(alerts);
    StatusCode::OK.into_response()
}

fn gettable_silence(s: &Silence, state: &str) -> Value {
    json!({
        "id": s.id,
        "status": { "state": state },
        "updatedAt": fmt(s.updated_at),
        "matchers": s.matchers,
        "startsAt": fmt(s.starts_at),
        "endsAt": fmt(s.ends_at),
        "createdBy": s.created_by,
        "comment": s.comment,
    })
}

async fn v2_silences(State(am): State<Alertman>, uri: axum::http::Uri) -> Response {
    let p = match parse_alert_params(uri.query()) {
        Ok(p) => p,
        Err(e) => return am_error(StatusCode::BAD_REQUEST, e),
    };
    // A silence matches the filter when each filter matcher equals one of its matchers.
    let want = match matcher::parse_list(&p.filter) {
        Ok(w) => w,
        Err(e) => return am_error(StatusCode::BAD_REQUEST, format!("filter: {e}")),
    };
    Json(
        am.silences()
            .into_iter()
            .filter(|(s, _)| want.iter().all(|w| s.matchers.contains(w)))
            .map(|(s, st)| gettable_silence(&s, st))
            .collect::<Vec<_>>(),
    )
    .into_response()
}

/// A posted silence (Alertmanager's `postableSilence`).
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableSilence {
    /// Set to update an existing silence.
    #[serde(default)]
    pub id: Option<String>,
    /// Matchers.
    pub matchers: Vec<Matcher>,
    /// From.
    pub starts_at: DateTime<Utc>,
    /// Until.
    pub ends_at: DateTime<Utc>,
    /// Who.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

async fn v2_post_silence(
    State(am): State<Alertman>,
    body: Result<Json<PostableSilence>, JsonRejection>,
) -> Response {
    let Json(p) = match body {
        Ok(b) => b,
        Err(e) => return am_error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    if p.created_by.trim().is_empty() {
        return am_error(StatusCode::BAD_REQUEST, "createdBy: say who silences");
    }
    let s = Silence {
        id: p.id.unwrap_or_default(),
        matchers: p.matchers,
        starts_at: p.starts_at,
        ends_at: p.ends_at,
        created_by: p.created_by,
        comment: p.comment,
        updated_at: Utc::now(),
    };
    match am.add_silence(s) {
        Ok(s) => Json(json!({ "silenceID": s.id })).into_response(),
        Err(AlertmanError::NotFound(m)) => am_error(StatusCode::NOT_FOUND, m),
        Err(e) => am_error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn v2_silence(State(am): State<Alertman>, Path(id): Path<String>) -> Response {
    match am.silence(&id) {
        Some((s, st)) => Json(gettable_silence(&s, st)).into_response(),
        None => am_error(StatusCode::NOT_FOUND, format!("no silence {id}")),
    }
}

async fn v2_delete_silence(State(am): State<Alertman>, Path(id): Path<String>) -> Response {
    match am.expire_silence(&id) {
        Ok(_) => StatusCode::OK.into_response(),
        Err(AlertmanError::NotFound(m)) => am_error(StatusCode::NOT_FOUND, m),
        Err(e) => am_error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn v2_receivers(State(am): State<Alertman>) -> Json<Value> {
    Json(json!(am
        .config()
        .receivers
        .keys()
        .map(|k| json!({"name": k}))
        .collect::<Vec<_>>()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::{metrics::AlertmanMetrics, service::AlertmanConfig, source::Fake};

    async fn call(
        app: &Router,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(match body {
                Some(b) => Body::from(b.to_string()),
                None => Body::empty(),
            })
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn app() -> (tempfile::TempDir, Alertman, Router) {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("r.yaml");
        std::fs::write(&rules, "version: 1\nreceivers:\n  - name: hook\n    type: webhook\n    url: http://127.0.0.1:9/\nroute:\n  receivers: [hook]\n").unwrap();
        let cfg = AlertmanConfig::new(vec![rules], dir.path().join("state"), "http://ui");
        let am = Alertman::open(cfg, Arc::new(Fake::default()), AlertmanMetrics::new()).unwrap();
        (dir, am.clone(), router(am))
    }

    #[tokio::test]
    async fn posted_alerts_silences_and_status_in_alertmanager_shape() {
        let (_d, _am, app) = app();
        let (s, _) = call(
            &app,
            "POST",
            "/api/v2/alerts",
            Some(json!([
                {"labels": {"alertname": "Up", "job": "node"}, "annotations": {"summary": "s"}},
                {"labels": {"alertname": "Other", "job": "x"}}
            ])),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = call(&app, "GET", "/api/v2/alerts", None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v.as_array().unwrap().len(), 2);
        assert_eq!(v[1]["labels"]["alertname"], "Up");
        assert_eq!(v[1]["receivers"][0]["name"], "hook");
        assert_eq!(v[1]["status"]["state"], "active");
        let (_, v) = call(
            &app,
            "GET",
            "/api/v2/alerts?filter=alertname%3D%22Up%22",
            None,
        )
        .await;
        assert_eq!(v.as_array().unwrap().len(), 1);
        // Silence it.
        let now = Utc::now();
        let (s, v) = call(&app, "POST", "/api/v2/silences", Some(json!({
            "matchers": [{"name": "alertname", "value": "Up", "isRegex": false, "isEqual": true}],
            "startsAt": fmt(now), "endsAt": fmt(now + chrono::Duration::hours(1)),
            "createdBy": "ana", "comment": "maintenance"
        }))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let id = v["silenceID"].as_str().unwrap().to_string();
        let (_, v) = call(&app, "GET", "/api/v2/alerts?silenced=false", None).await;
        assert_eq!(v.as_array().unwrap().len(), 1);
        assert_eq!(v[0]["labels"]["alertname"], "Other");
        let (_, v) = call(
            &app,
            "GET",
            "/api/v2/alerts?filter=alertname%3D%22Up%22",
            None,
        )
        .await;
        assert_eq!(v[0]["status"]["state"], "suppressed");
        assert_eq!(v[0]["status"]["silencedBy"][0], id);
        let (_, v) = call(&app, "GET", "/api/v2/silences", None).await;
        assert_eq!(v[0]["status"]["state"], "active");
        assert_eq!(v[0]["createdBy"], "ana");
        let (s, _) = call(&app, "DELETE", &format!("/api/v2/silence/{id}"), None).await;
        assert_eq!(s, StatusCode::OK);
        let (_, v) = call(&app, "GET", &format!("/api/v2/silence/{id}"), None).await;
        assert_eq!(v["status"]["state"], "expired");
        let (s, _) = call(&app, "DELETE", "/api/v2/silence/nope", None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, v) = call(&app, "GET", "/api/v2/status", None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["cluster"]["status"], "disabled");
        assert!(v["versionInfo"]["version"].is_string());
        // History of the silence.
        let (s, v) = call(&app, "GET", "/api/alerts/history?kind=silence", None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let states: Vec<&str> = v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["expired", "created"]);
        let (s, v) = call(&app, "GET", "/api/alerts/history?kind=nope", None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(v["error"].as_str().unwrap().starts_with("kind:"));
        let (s, v) = call(&app, "GET", "/api/alerts", None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["alerts"].as_array().unwrap().len(), 2);
        assert_eq!(v["reload"]["ok"], true);
    }

    #[tokio::test]
    async fn bad_input_is_400() {
        let (_d, _am, app) = app();
        let (s, _) = call(
            &app,
            "POST",
            "/api/v2/alerts",
            Some(json!([{"labels": {}}])),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, v) = call(&app, "GET", "/api/v2/alerts?filter=alertname", None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(v.as_str().unwrap().contains("not a matcher"), "{v}");
        let now = Utc::now();
        let (s, v) = call(&app, "POST", "/api/v2/silences", Some(json!({
            "matchers": [], "startsAt": fmt(now), "endsAt": fmt(now + chrono::Duration::hours(1)),
            "createdBy": "ana", "comment": "c"
        }))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(v.as_str().unwrap().contains("at least one matcher"), "{v}");
        assert_eq!(percent_decode("a%3D%22b%22+c"), "a=\"b\" c");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
