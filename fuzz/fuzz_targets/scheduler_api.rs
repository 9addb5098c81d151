//! The scheduler's Marathon-compatible API (`drover_scheduler::api::router` on an in-memory
//! master), with what a Marathon client sends: app definitions (`POST /v2/apps`,
//! `PUT /v2/apps[/{id}]`), group definitions (`POST|PUT /v2/groups[/{id}]`), jobs, node
//! actions and agents' registrations and heartbeats, as raw bodies and query strings. Each
//! input is up to four requests on one fresh master, so a PUT can meet the app a POST made.
//! Besides "no panic": no answer is a 5xx.
#![no_main]

use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use drover_scheduler::{
    api::router,
    clock::SystemClock,
    master::{Master, MasterConfig},
};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

#[derive(Debug, Arbitrary)]
struct Call {
    route: u8,
    id: String,
    query: String,
    yaml: bool,
    body: Vec<u8>,
}

const ROUTES: [(&str, &str); 24] = [
    ("POST", "/v2/apps"),
    ("PUT", "/v2/apps"),
    ("PUT", "/v2/apps/{id}"),
    ("POST", "/v2/apps/{id}"),
    ("DELETE", "/v2/apps/{id}"),
    ("GET", "/v2/apps/{id}"),
    ("GET", "/v2/apps"),
    ("POST", "/v2/groups"),
    ("PUT", "/v2/groups"),
    ("PUT", "/v2/groups/{id}"),
    ("DELETE", "/v2/groups/{id}"),
    ("GET", "/v2/groups/{id}"),
    ("POST", "/v1/jobs"),
    ("PUT", "/v1/jobs/{id}"),
    ("POST", "/v1/jobs/{id}/run"),
    ("GET", "/v1/jobs/{id}/runs"),
    ("POST", "/v1/nodes/{id}"),
    ("POST", "/v1/agents/register"),
    ("POST", "/v1/agents/{id}/heartbeat"),
    ("POST", "/v1/agents/{id}/cleanup"),
    ("GET", "/v2/tasks"),
    ("DELETE", "/v2/queue/{id}"),
    ("DELETE", "/v2/deployments/{id}"),
    ("GET", "/v2/queue"),
];

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    })
}

fuzz_target!(|calls: Vec<Call>| {
    let app = router(Master::in_memory(
        MasterConfig::default(),
        Arc::new(SystemClock),
    ));
    for call in calls.iter().take(4) {
        let (method, pattern) = ROUTES[usize::from(call.route) % ROUTES.len()];
        let mut uri = pattern.replace("{id}", &call.id);
        if !call.query.is_empty() {
            uri = format!("{uri}?{}", call.query);
        }
        let ct = if call.yaml {
            "application/yaml"
        } else {
            "application/json"
        };
        let Ok(req) = Request::builder()
            .method(method)
            .uri(uri.as_str())
            .header("content-type", ct)
            .body(Body::from(call.body.clone()))
        else {
            continue; // a URI no HTTP server would accept
        };
        let status = rt().block_on(async {
            let resp = app.clone().oneshot(req).await.unwrap();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, body)
        });
        assert!(
            status.0 != StatusCode::INTERNAL_SERVER_ERROR && !status.0.is_server_error(),
            "{method} {uri}: {} {}",
            status.0,
            String::from_utf8_lossy(&status.1)
        );
    }
});
