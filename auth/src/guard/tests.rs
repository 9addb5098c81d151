use axum::{
    body::Body,
    http::{Request, StatusCode},
    routing::get,
    Router,
};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;

fn app(g: &Guard) -> Router {
    let api = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/v2/apps",
            get(|| async { "[]" }).post(|| async { "created" }),
        )
        .route("/", get(|| async { "index" }))
        .route("/ui/app.js", get(|| async { "js" }))
        .route("/ui/config.json", get(|| async { "{}" }))
        .merge(g.router())
        .fallback(|| async { (StatusCode::NOT_FOUND, "nope") });
    g.layer(api)
}

fn guard_with_tokens() -> (tempfile::TempDir, Guard, String, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let store = TokenStore::in_data_dir(tmp.path());
    let admin = store.create("root", Role::Admin).unwrap();
    let op = store.create("ci", Role::Operator).unwrap();
    let viewer = store.create("eve", Role::Viewer).unwrap();
    let cfg =
        GuardConfig::for_addr("0.0.0.0:8080".parse().unwrap(), false, Some(store), None).unwrap();
    assert_eq!(cfg.mode, Mode::Required);
    (tmp, Guard::new(cfg), admin, op, viewer)
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn req(method: &str, uri: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

#[test]
fn off_loopback_without_auth_is_refused_with_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TokenStore::in_data_dir(tmp.path());
    let err = GuardConfig::for_addr(
        "0.0.0.0:8080".parse().unwrap(),
        false,
        Some(store.clone()),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("drover token create") && err.contains("--insecure-no-auth"),
        "{err}"
    );
    let cfg = GuardConfig::for_addr(
        "0.0.0.0:8080".parse().unwrap(),
        true,
        Some(store.clone()),
        None,
    )
    .unwrap();
    assert_eq!(cfg.mode, Mode::InsecureNoAuth);
    let cfg = GuardConfig::for_addr(
        "127.0.0.1:8080".parse().unwrap(),
        false,
        Some(store.clone()),
        None,
    )
    .unwrap();
    assert_eq!(cfg.mode, Mode::Loopback);
    let cfg = GuardConfig::for_addr("[::1]:8080".parse().unwrap(), false, None, None).unwrap();
    assert_eq!(cfg.mode, Mode::Loopback);
    let cluster = Secret::new(&"k".repeat(40)).unwrap();
    let cfg = GuardConfig::for_addr(
        "10.1.2.3:8080".parse().unwrap(),
        false,
        Some(store),
        Some(cluster),
    )
    .unwrap();
    assert_eq!(cfg.mode, Mode::Required);
}

#[tokio::test]
async fn loopback_without_tokens_is_open_until_one_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TokenStore::in_data_dir(tmp.path());
    let g = Guard::new(
        GuardConfig::for_addr(
            "127.0.0.1:8080".parse().unwrap(),
            false,
            Some(store.clone()),
            None,
        )
        .unwrap(),
    );
    let app = app(&g);
    assert_eq!(g.health(), "off");
    assert_eq!(
        send(&app, req("POST", "/v2/apps", None)).await.0,
        StatusCode::OK
    );
    let t = store.create("ci", Role::Operator).unwrap();
    assert_eq!(g.health(), "on");
    assert_eq!(
        send(&app, req("POST", "/v2/apps", None)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, req("POST", "/v2/apps", Some(&t))).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn roles_by_method_and_admin_paths() {
    let (_tmp, g, admin, op, viewer) = guard_with_tokens();
    let app = app(&g);
    let cases: &[(&str, &str, Option<&str>, StatusCode)] = &[
        ("GET", "/v2/apps", None, StatusCode::UNAUTHORIZED),
        (
            "GET",
            "/v2/apps",
            Some("drover_wrong"),
            StatusCode::UNAUTHORIZED,
        ),
        ("GET", "/v2/apps", Some(&viewer), StatusCode::OK),
        ("HEAD", "/v2/apps", Some(&viewer), StatusCode::OK),
        ("POST", "/v2/apps", None, StatusCode::UNAUTHORIZED),
        ("POST", "/v2/apps", Some(&viewer), StatusCode::FORBIDDEN),
        ("POST", "/v2/apps", Some(&op), StatusCode::OK),
        ("POST", "/v2/apps", Some(&admin), StatusCode::OK),
        ("GET", "/api/audit", Some(&op), StatusCode::FORBIDDEN),
        ("GET", "/api/audit", Some(&admin), StatusCode::OK),
        ("GET", "/api/auth/tokens", Some(&op), StatusCode::FORBIDDEN),
        ("GET", "/api/auth/tokens", Some(&admin), StatusCode::OK),
        ("GET", "/api/auth/whoami", Some(&viewer), StatusCode::OK),
        // The fallback is guarded too (an unknown path tells nothing without a token).
        ("GET", "/not/a/route", None, StatusCode::UNAUTHORIZED),
        (
            "DELETE",
            "/not/a/route",
            Some(&viewer),
            StatusCode::FORBIDDEN,
        ),
        // Public.
        ("GET", "/healthz", None, StatusCode::OK),
        ("GET", "/", None, StatusCode::OK),
        ("GET", "/ui/app.js", None, StatusCode::OK),
        ("GET", "/login", None, StatusCode::OK),
        ("GET", "/ui/config.json", None, StatusCode::UNAUTHORIZED),
    ];
    for (m, p, t, want) in cases {
        let (got, headers, body) = send(&app, req(m, p, *t)).await;
        assert_eq!(got, *want, "{m} {p} with {t:?}: {body}");
        if got == StatusCode::UNAUTHORIZED {
            assert!(headers.contains_key(header::WWW_AUTHENTICATE));
            assert!(body.contains("\"error\""), "{body}");
        }
    }
}

#[tokio::test]
async fn the_cluster_token_is_an_operator() {
    let cluster = "c".repeat(48);
    let g = Guard::new(
        GuardConfig::for_addr(
            "0.0.0.0:1".parse().unwrap(),
            false,
            None,
            Some(Secret::new(&cluster).unwrap()),
        )
        .unwrap(),
    );
    let app = app(&g);
    assert_eq!(
        send(&app, req("POST", "/v2/apps", Some(&cluster))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, req("GET", "/api/audit", Some(&cluster))).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&app, req("POST", "/v2/apps", None)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn writes_are_audited_without_the_token() {
    let (_tmp, g, admin, op, viewer) = guard_with_tokens();
    let app = app(&g);
    send(&app, req("POST", "/v2/apps?secret=x", Some(&op))).await;
    send(&app, req("POST", "/v2/apps", Some(&viewer))).await;
    send(&app, req("POST", "/v2/apps", None)).await;
    send(&app, req("GET", "/v2/apps", Some(&viewer))).await;
    let (status, _, body) = send(&app, req("GET", "/api/audit", Some(&admin))).await;
    assert_eq!(status, StatusCode::OK);
    let recs: Vec<AuditRecord> = serde_json::from_str(&body).unwrap();
    let got: Vec<_> = recs
        .iter()
        .map(|r| (r.who.as_str(), r.method.as_str(), r.path.as_str(), r.status))
        .collect();
    assert_eq!(
        got,
        [
            ("-", "POST", "/v2/apps", 401),
            ("eve", "POST", "/v2/apps", 403),
            ("ci", "POST", "/v2/apps", 200),
        ]
    );
    for t in [&admin, &op, &viewer] {
        assert!(!body.contains(t.as_str()));
    }
    assert!(!body.contains("secret=x"), "no query strings");
}

fn set_cookies(h: &HeaderMap) -> Vec<String> {
    h.get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn login_req(token: &str, origin: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("host", "drover.example:8080");
    if let Some(o) = origin {
        b = b.header("origin", o);
    }
    b.body(Body::from(format!("token={token}"))).unwrap()
}

#[tokio::test]
async fn login_session_csrf_and_logout() {
    let (_tmp, g, _admin, op, _viewer) = guard_with_tokens();
    let app = app(&g);
    let (status, _, body) = send(&app, login_req("drover_bad", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("not valid"));
    let (status, _, _) = send(&app, login_req(&op, Some("http://evil.example"))).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a cross-site login form is refused"
    );

    let (status, headers, _) = send(&app, login_req(&op, Some("http://drover.example:8080"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookies = set_cookies(&headers);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("drover_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    let csrf_c = cookies
        .iter()
        .find(|c| c.starts_with("drover_csrf="))
        .unwrap();
    assert!(!csrf_c.contains("HttpOnly"));
    let sid = session
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("drover_session=");
    let csrf = csrf_c
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("drover_csrf=");
    let cookie_hdr = format!("drover_session={sid}; drover_csrf={csrf}");
    let with_cookie = |m: &str, p: &str, csrf: Option<&str>, origin: Option<&str>| {
        let mut b = Request::builder()
            .method(m)
            .uri(p)
            .header("cookie", &cookie_hdr)
            .header("host", "drover.example:8080");
        if let Some(c) = csrf {
            b = b.header("x-csrf-token", c);
        }
        if let Some(o) = origin {
            b = b.header("origin", o);
        }
        b.body(Body::empty()).unwrap()
    };
    assert_eq!(
        send(&app, with_cookie("GET", "/v2/apps", None, None))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, with_cookie("POST", "/v2/apps", None, None))
            .await
            .0,
        StatusCode::FORBIDDEN,
        "a cookie write without the CSRF header"
    );
    assert_eq!(
        send(&app, with_cookie("POST", "/v2/apps", Some("0000"), None))
            .await
            .0,
        StatusCode::FORBIDDEN,
        "a wrong CSRF header"
    );
    assert_eq!(
        send(
            &app,
            with_cookie("POST", "/v2/apps", Some(csrf), Some("http://evil.example"))
        )
        .await
        .0,
        StatusCode::FORBIDDEN,
        "another origin"
    );
    assert_eq!(
        send(
            &app,
            with_cookie(
                "POST",
                "/v2/apps",
                Some(csrf),
                Some("http://drover.example:8080")
            )
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, with_cookie("POST", "/logout", None, None))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (status, headers, _) = send(&app, with_cookie("POST", "/logout", Some(csrf), None)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(set_cookies(&headers)
        .iter()
        .any(|c| c.contains("Max-Age=0")));
    assert_eq!(
        send(&app, with_cookie("GET", "/v2/apps", None, None))
            .await
            .0,
        StatusCode::UNAUTHORIZED,
        "logged out"
    );
}

#[tokio::test]
async fn revoking_the_token_ends_its_sessions() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TokenStore::in_data_dir(tmp.path());
    let t = store.create("alice", Role::Viewer).unwrap();
    store.create("root", Role::Admin).unwrap();
    let g = Guard::new(
        GuardConfig::for_addr(
            "0.0.0.0:1".parse().unwrap(),
            false,
            Some(store.clone()),
            None,
        )
        .unwrap(),
    );
    let app = app(&g);
    let (_, headers, _) = send(&app, login_req(&t, None)).await;
    let sid = set_cookies(&headers)[0]
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let get = || {
        Request::get("/v2/apps")
            .header("cookie", &sid)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(send(&app, get()).await.0, StatusCode::OK);
    store.revoke("alice").unwrap();
    assert_eq!(send(&app, get()).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_attempts_are_rate_limited() {
    let (_tmp, g, _admin, op, _viewer) = guard_with_tokens();
    let app = app(&g);
    for _ in 0..10 {
        assert_eq!(
            send(&app, login_req("drover_guess", None)).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (status, headers, _) = send(&app, login_req(&op, None)).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right token, once over the limit"
    );
    assert!(headers.contains_key(header::RETRY_AFTER));
}

#[test]
fn public_allowlist_is_small() {
    for (m, p) in [
        ("GET", "/healthz"),
        ("GET", "/login"),
        ("POST", "/login"),
        ("POST", "/logout"),
        ("GET", "/"),
        ("GET", "/ui/app.js"),
        ("GET", "/ui/app.css"),
        ("GET", "/favicon.svg"),
    ] {
        assert_eq!(required_role(&m.parse().unwrap(), p), None, "{m} {p}");
    }
    for (m, p, r) in [
        ("GET", "/ui/config.json", Role::Viewer),
        ("GET", "/ui/../metrics.js", Role::Viewer),
        ("POST", "/", Role::Operator),
        ("PUT", "/ui/app.js", Role::Operator),
        ("GET", "/metrics", Role::Viewer),
        ("DELETE", "/v2/apps/x", Role::Operator),
        ("POST", "/api/auth/tokens", Role::Admin),
        ("GET", "/api/audit", Role::Admin),
    ] {
        assert_eq!(required_role(&m.parse().unwrap(), p), Some(r), "{m} {p}");
    }
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    fn method() -> impl Strategy<Value = Method> {
        prop_oneof![
            Just(Method::GET),
            Just(Method::HEAD),
            Just(Method::POST),
            Just(Method::PUT),
            Just(Method::DELETE),
            Just(Method::PATCH),
            Just(Method::OPTIONS),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the method, path, cookie and Authorization header, a request without a
        /// valid credential reaches no handler but the public ones, and nothing panics.
        #[test]
        fn no_credential_no_access(
            m in method(),
            path in "/[a-z0-9/._%-]{0,40}",
            cookie in proptest::option::of("[ -~]{0,80}"),
            auth in proptest::option::of("[ -~]{0,80}"),
            csrf in proptest::option::of("[ -~]{0,70}"),
        ) {
            let app = shared_app();
            let mut b = Request::builder().method(m.clone()).uri(&path);
            if let Some(c) = &cookie { b = b.header("cookie", c.as_str()); }
            if let Some(a) = &auth { b = b.header("authorization", a.as_str()); }
            if let Some(c) = &csrf { b = b.header("x-csrf-token", c.as_str()); }
            let Ok(req) = b.body(Body::empty()) else { return Ok(()) };
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let status = rt.block_on(async { app.clone().oneshot(req).await.unwrap().status() });
            let public = required_role(&m, req_path(&path)).is_none();
            if !public {
                prop_assert!(status == StatusCode::UNAUTHORIZED, "{m} {path}: {status}");
            }
            prop_assert!(!status.is_server_error(), "{m} {path}: {status}");
        }
    }

    /// One guard with tokens for every case (the token file is written once).
    fn shared_app() -> Router {
        static APP: std::sync::OnceLock<(tempfile::TempDir, Router)> = std::sync::OnceLock::new();
        APP.get_or_init(|| {
            let (tmp, g, ..) = guard_with_tokens();
            (tmp, app(&g))
        })
        .1
        .clone()
    }

    fn req_path(p: &str) -> &str {
        p.split('?').next().unwrap_or(p)
    }
}

#[test]
fn heartbeats_are_recognised() {
    assert!(is_heartbeat("/v1/agents/vm/heartbeat"));
    assert!(!is_heartbeat("/v1/agents/heartbeat"));
    assert!(!is_heartbeat("/v1/agents//heartbeat"));
    assert!(!is_heartbeat("/v1/agents/a/b/heartbeat"));
    assert!(!is_heartbeat("/v1/agents/register"));
}
