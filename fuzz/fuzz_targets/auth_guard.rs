//! The guard every Drover server runs behind (`drover_auth::Guard`), with what a client sends
//! it: the method and path, `Authorization`, `Cookie` (the UI's session), `X-CSRF-Token`,
//! `Origin`, `Host`, and the login form. A header value may name a real credential with a
//! placeholder (`{admin}`, `{operator}`, `{viewer}`, `{session}`, `{csrf}`), so the fuzzer
//! reaches the role checks and the session's CSRF check, not only the refusals.
//!
//! Besides "no panic": no answer is a 5xx, and a request that carries no real credential to a
//! route that needs one is refused with 401 (it never reaches the route).
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use axum::{
    body::Body,
    http::{Method, Request, StatusCode},
    routing::get,
    Router,
};
use drover_auth::{
    guard::{required_role, Guard, GuardConfig},
    Role, TokenStore,
};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

#[derive(Debug, Arbitrary)]
struct Input {
    method: u8,
    path: u8,
    suffix: String,
    headers: Vec<(u8, String)>,
    body: Vec<u8>,
}

const METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
];

const PATHS: [&str; 14] = [
    "",
    "/",
    "/healthz",
    "/login",
    "/logout",
    "/api/audit",
    "/api/auth/whoami",
    "/api/auth/tokens",
    "/api/auth/routes",
    "/v2/apps",
    "/ui/app.js",
    "/favicon.svg",
    "/v1/agents/a/heartbeat",
    "/nope",
];

const HEADERS: [&str; 7] = [
    "authorization",
    "cookie",
    "x-csrf-token",
    "origin",
    "host",
    "content-type",
    "x-forwarded-for",
];

struct World {
    rt: tokio::runtime::Runtime,
    app: Router,
    secrets: Vec<(&'static str, String)>,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::in_data_dir(dir.path());
        let admin = store.create("root", Role::Admin).unwrap();
        let operator = store.create("ci", Role::Operator).unwrap();
        let viewer = store.create("eve", Role::Viewer).unwrap();
        let cfg = GuardConfig::for_addr("0.0.0.0:8080".parse().unwrap(), false, Some(store), None)
            .unwrap();
        let g = Guard::new(cfg);
        let api = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/v2/apps",
                get(|| async { "[]" }).post(|| async { "created" }),
            )
            .route(
                "/v1/agents/{id}/heartbeat",
                axum::routing::post(|| async { "{}" }),
            )
            .route("/", get(|| async { "index" }))
            .route("/ui/app.js", get(|| async { "js" }))
            .merge(g.router())
            .fallback(|| async { (StatusCode::NOT_FOUND, "nope") });
        let app = g.layer(api);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // A real session: log in with the admin token, keep the two cookies.
        let login = Request::builder()
            .method("POST")
            .uri("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={admin}")))
            .unwrap();
        let resp = rt.block_on(app.clone().oneshot(login)).unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let cookie = |name: &str| {
            resp.headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(|c| c.strip_prefix(&format!("{name}=")))
                .and_then(|c| c.split(';').next())
                .unwrap()
                .to_string()
        };
        let (session, csrf) = (cookie("drover_session"), cookie("drover_csrf"));
        World {
            rt,
            app,
            secrets: vec![
                ("{admin}", admin),
                ("{operator}", operator),
                ("{viewer}", viewer),
                ("{session}", session),
                ("{csrf}", csrf),
            ],
            _dir: dir,
        }
    })
}

fuzz_target!(|input: Input| {
    let w = world();
    let method = METHODS[usize::from(input.method) % METHODS.len()].clone();
    let uri = format!(
        "{}{}",
        PATHS[usize::from(input.path) % PATHS.len()],
        input.suffix
    );
    let mut credential = false;
    let mut b = Request::builder().method(method.clone()).uri(uri.as_str());
    for (h, v) in input.headers.iter().take(8) {
        let mut v = v.clone();
        for (placeholder, secret) in &w.secrets {
            if v.contains(placeholder) {
                v = v.replace(placeholder, secret);
                credential = true;
            }
        }
        b = b.header(HEADERS[usize::from(*h) % HEADERS.len()], v);
    }
    let body = String::from_utf8_lossy(&input.body);
    let mut body = body.into_owned();
    for (placeholder, secret) in &w.secrets {
        body = body.replace(placeholder, secret);
    }
    let Ok(req) = b.body(Body::from(body)) else {
        return; // not a request http accepts (a bad URI or header value): no server sees it
    };
    let path = req.uri().path().to_string();
    let resp = w.rt.block_on(async {
        let resp = w.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let _ = resp.into_body().collect().await;
        status
    });
    assert!(
        !resp.is_server_error(),
        "{method} {uri}: {resp} (a 5xx from the guard)"
    );
    if !credential && required_role(&method, &path).is_some() {
        assert_eq!(
            resp,
            StatusCode::UNAUTHORIZED,
            "{method} {uri} without a credential was not refused"
        );
    }
});
