//! The API with `oneshot`: requests in, Marathon's answers out.
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

#[tokio::test]
async fn jobs_create_run_now_and_history() {
    let m = master();
    let r = router(m.clone());
    let (st, v) = call(
        &r,
        "POST",
        "/v1/jobs",
        json!({"id": "backup", "cmd": "echo hi", "schedule": "0 3 * * *", "timezone": "Europe/Berlin"}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["id"], "backup");
    assert!(v["nextRun"].as_str().is_some(), "{v}");
    let (st, _) = call(
        &r,
        "POST",
        "/v1/jobs",
        json!({"id": "backup", "cmd": "x", "schedule": "* * * * *"}),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, v) = call(
        &r,
        "POST",
        "/v1/jobs",
        json!({"id": "bad", "cmd": "x", "schedule": "99 * * * *"}),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["details"][0]["path"], "/schedule", "{v}");
    let (st, v) = call(
        &r,
        "POST",
        "/v1/jobs",
        json!({"id": "kid", "cmd": "x", "parents": ["nope"]}),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["details"][0]["path"], "/parents/0", "{v}");
    // Run now: a run, pending until a node takes it.
    let (st, v) = call(&r, "POST", "/v1/jobs/backup/run", Value::Null).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["state"], "PENDING");
    assert_eq!(v["trigger"], "manual");
    let (st, v) = call(&r, "GET", "/v1/jobs/backup/runs", Value::Null).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["runs"].as_array().unwrap().len(), 1);
    // Disable, then the list shows it.
    let (st, v) = call(&r, "POST", "/v1/jobs/backup/disable", Value::Null).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["enabled"], false);
    let (_, v) = call(&r, "GET", "/v1/jobs", Value::Null).await;
    assert_eq!(v["jobs"][0]["activeRuns"], 1);
    // PUT replaces; the path names the job.
    let (st, v) = call(
        &r,
        "PUT",
        "/v1/jobs/backup",
        json!({"cmd": "echo 2", "schedule": "R//PT1H"}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["cmd"], "echo 2");
    assert!(
        v["resolvedSchedule"].as_str().unwrap().starts_with("R/20"),
        "{v}"
    );
    let (st, _) = call(&r, "DELETE", "/v1/jobs/backup", Value::Null).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = call(&r, "GET", "/v1/jobs/backup", Value::Null).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[test]
fn run_links_open_the_log_search_on_the_runs_tasks() {
    let t: chrono::DateTime<chrono::Utc> = "2026-01-01T10:00:00Z".parse().unwrap();
    let link = jobs::logs_link("task:\"jobs_a.1\"", "/jobs/a", t, None);
    assert_eq!(
        link,
        "/#/logs?q=task%3A%22jobs_a.1%22&from=2026-01-01T09%3A59%3A00.000Z&app=%2Fjobs%2Fa"
    );
}

#[tokio::test]
async fn a_group_that_is_not_an_object_is_a_400_not_a_panic() {
    // Found by the fuzz run of tests/tests/auth.rs: `PUT /v2/groups/x` with the body `0`
    // panicked (a JSON number indexed by key) and the connection was dropped.
    let r = router(master());
    for (uri, body) in [
        ("/v2/groups/x", json!(0)),
        ("/v2/groups", json!([1])),
        ("/v2/groups/x", json!("s")),
    ] {
        let (st, v) = call(&r, "PUT", uri, body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{uri}: {v}");
    }
    let (st, v) = call(&r, "PUT", "/v2/groups/x", json!({"apps": [1, "a"]})).await;
    assert!(st.is_client_error(), "{st} {v}");
}
