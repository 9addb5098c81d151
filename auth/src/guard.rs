//! The guard: one axum middleware in front of every route of a Drover server (applied to the
//! whole merged router, so a route added later is guarded by default), its policy, and its
//! own routes (`/login`, `/logout`, `/api/audit`, `/api/auth/...`).
//!
//! Policy, per request:
//! - public (no credential): `/healthz`, `GET /login`, `POST /login`, `POST /logout`, and the
//!   UI's static assets (`GET /`, `/favicon.svg`, `/ui/*.js|css`);
//! - `/api/audit`, `/api/auth/tokens`, `/api/auth/routes`: admin;
//! - GET and HEAD: viewer; every other method: operator.
//!
//! A credential is `Authorization: Bearer TOKEN` (a stored token or the cluster token, which
//! acts as an operator named `cluster`) or the UI's session cookie; a write with the cookie
//! must also carry `X-CSRF-Token` equal to the session's CSRF token, and an `Origin`, when
//! sent, must be this server's.
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Instant,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{Html, IntoResponse, Response},
    routing::{get, post},
    Form, Json, Router,
};
use chrono::Utc;
use drover_schema::{api::ApiError, Event};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::{
    audit::{AuditLog, AuditRecord},
    is_loopback,
    routes::RouteInfo,
    session::{
        cookie, LoginLimiter, Sessions, CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, SESSION_TTL,
    },
    store::Principal,
    AuthError, Role, Secret, TokenStore,
};

/// Whether credentials are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Bound to loopback: checked once a token exists (or a cluster token is set), open as
    /// before otherwise.
    Loopback,
    /// Bound off loopback with auth configured: always checked (revoking the last token
    /// locks the API, it does not open it).
    Required,
    /// `--insecure-no-auth`: never checked, and said loudly.
    InsecureNoAuth,
}

/// What a guard is built from.
#[derive(Debug)]
pub struct GuardConfig {
    /// Whether credentials are checked.
    pub mode: Mode,
    /// The token file (none: only the cluster token, if any).
    pub store: Option<TokenStore>,
    /// The cluster token agents and roles join with.
    pub cluster: Option<Secret>,
    /// A token of this process's own components calling its API (`drover up`'s local agent,
    /// autoscaler, Alertman), when no cluster token is given: accepted as an operator named
    /// `drover`; unlike a cluster token it does not turn authentication on.
    pub internal: Option<Secret>,
    /// Where audit events go (`drover.events.v1`).
    pub events: Option<mpsc::UnboundedSender<Event>>,
    /// Audit records kept for `GET /api/audit`.
    pub audit_capacity: usize,
    /// Mark cookies `Secure` (served over TLS).
    pub secure_cookies: bool,
}

impl GuardConfig {
    /// The policy for a server bound to `addr`: off loopback, auth must be configured (a
    /// token in `store` or a cluster token) unless `insecure_no_auth`.
    pub fn for_addr(
        addr: SocketAddr,
        insecure_no_auth: bool,
        store: Option<TokenStore>,
        cluster: Option<Secret>,
    ) -> Result<Self, AuthError> {
        let configured = cluster.is_some()
            || match &store {
                Some(s) => s.has_tokens()?,
                None => false,
            };
        let mode = if insecure_no_auth {
            Mode::InsecureNoAuth
        } else if is_loopback(addr.ip()) {
            Mode::Loopback
        } else if configured {
            Mode::Required
        } else {
            return Err(AuthError::Unprotected { addr });
        };
        Ok(Self {
            mode,
            store,
            cluster,
            internal: None,
            events: None,
            audit_capacity: 10_000,
            secure_cookies: false,
        })
    }
}

/// The guard's state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    mode: Mode,
    store: Option<TokenStore>,
    cluster: Option<Secret>,
    internal: Option<Secret>,
    sessions: Sessions,
    limiter: LoginLimiter,
    audit: AuditLog,
    secure_cookies: bool,
    routes: std::sync::OnceLock<Vec<RouteInfo>>,
}

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Bearer,
    Session,
    /// The login form.
    Form,
    None,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Bearer => "bearer",
            Via::Session => "session",
            Via::Form => "form",
            Via::None => "none",
        }
    }
}

/// Who made a request, as the guard found it (an extension handlers may read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name and role.
    pub principal: Principal,
}

impl Guard {
    /// A guard with `cfg`.
    pub fn new(cfg: GuardConfig) -> Self {
        if cfg.mode == Mode::InsecureNoAuth {
            tracing::warn!(
                "INSECURE: --insecure-no-auth: every API is open to anyone who can reach this server, without a token"
            );
        }
        // With a token file (a data dir) the trail is kept next to it.
        let audit = match &cfg.store {
            Some(store) => AuditLog::durable(
                cfg.audit_capacity,
                cfg.events,
                store.path().with_file_name("audit.jsonl"),
            ),
            None => AuditLog::new(cfg.audit_capacity, cfg.events),
        };
        Self {
            inner: Arc::new(Inner {
                mode: cfg.mode,
                store: cfg.store,
                cluster: cfg.cluster,
                internal: cfg.internal,
                sessions: Sessions::default(),
                limiter: LoginLimiter::default(),
                audit,
                secure_cookies: cfg.secure_cookies,
                routes: std::sync::OnceLock::new(),
            }),
        }
    }

    /// An open guard (loopback, no token file): what tests and old callers get.
    pub fn open() -> Self {
        Self::new(GuardConfig {
            mode: Mode::Loopback,
            store: None,
            cluster: None,
            internal: None,
            events: None,
            audit_capacity: 10_000,
            secure_cookies: false,
        })
    }

    /// Whether credentials are checked now.
    pub fn enforced(&self) -> bool {
        match self.inner.mode {
            Mode::InsecureNoAuth => false,
            Mode::Required => true,
            Mode::Loopback => {
                self.inner.cluster.is_some()
                    || self.inner.store.as_ref().is_some_and(|s| {
                        // A token file that cannot be read locks the API rather than opening it.
                        s.has_tokens().unwrap_or_else(|e| {
                            tracing::error!(error = %e, "cannot read the token file; refusing every request");
                            true
                        })
                    })
            }
        }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// What `/healthz` says about auth: `on`, `off` (loopback, no token yet) or
    /// `INSECURE-NO-AUTH`.
    pub fn health(&self) -> &'static str {
        match self.inner.mode {
            Mode::InsecureNoAuth => "INSECURE-NO-AUTH",
            _ if self.enforced() => "on",
            _ => "off",
        }
    }

    /// The audit trail.
    pub fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }

    /// Remember the routes the server serves (for `GET /api/auth/routes`).
    pub fn set_routes(&self, routes: Vec<RouteInfo>) {
        let _ = self.inner.routes.set(routes);
    }

    /// The guard's own routes: the login page and form, logout, the audit and auth APIs.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/login", get(login_page).post(login))
            .route("/logout", post(logout))
            .route("/api/audit", get(audit_route))
            .route("/api/auth/whoami", get(whoami))
            .route("/api/auth/tokens", get(tokens_route))
            .route("/api/auth/routes", get(routes_route))
            .with_state(self.clone())
    }

    /// Apply the guard to every route (and the fallback) of `router`.
    pub fn layer(&self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(self.clone(), guard))
    }

    fn bearer(&self, token: &str) -> Option<Principal> {
        if let Some(c) = &self.inner.cluster {
            if c.matches(token) {
                return Some(Principal {
                    name: "cluster".into(),
                    role: Role::Operator,
                });
            }
        }
        if let Some(c) = &self.inner.internal {
            if c.matches(token) {
                return Some(Principal {
                    name: "drover".into(),
                    role: Role::Operator,
                });
            }
        }
        let store = self.inner.store.as_ref()?;
        match store.verify(token) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the token file");
                None
            }
        }
    }
}

/// The role a request needs (`None`: public).
pub fn required_role(method: &Method, path: &str) -> Option<Role> {
    let read = method == Method::GET || method == Method::HEAD;
    let public = path == "/healthz"
        || (path == "/login" && (read || method == Method::POST))
        || (path == "/logout" && method == Method::POST)
        || (read
            && (path == "/"
                || path == "/favicon.svg"
                || (path.starts_with("/ui/")
                    && (path.ends_with(".js") || path.ends_with(".css"))
                    && !path.contains(".."))));
    if public {
        None
    } else if path == "/api/audit"
        || path.starts_with("/api/audit/")
        || path.starts_with("/api/auth/tokens")
        || path == "/api/auth/routes"
    {
        Some(Role::Admin)
    } else if read {
        Some(Role::Viewer)
    } else {
        Some(Role::Operator)
    }
}

fn is_write(method: &Method) -> bool {
    method != Method::GET && method != Method::HEAD
}

fn deny(status: StatusCode, msg: &str) -> Response {
    let mut r = ApiError::new(status.as_u16(), msg).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"drover\""),
        );
    }
    r
}

fn client_addr(req: &Request) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

/// Whether an `Origin` header, when sent, names this server (the `Host` header).
fn origin_ok(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let origin = origin.to_str().unwrap_or("");
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    authority.eq_ignore_ascii_case(host)
}

/// Why a request is refused, and by whom when known (a session without its CSRF header).
#[derive(Debug)]
struct Denied {
    status: StatusCode,
    message: &'static str,
    who: Option<(Principal, Via)>,
}

impl From<(StatusCode, &'static str)> for Denied {
    fn from((status, message): (StatusCode, &'static str)) -> Self {
        Self {
            status,
            message,
            who: None,
        }
    }
}

/// Who the request is from, or why it is refused.
fn authenticate(g: &Guard, req: &Request) -> Result<(Principal, Via), Denied> {
    let headers = req.headers();
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        return match token.and_then(|t| g.bearer(t)) {
            Some(p) => Ok((p, Via::Bearer)),
            None => Err((
                StatusCode::UNAUTHORIZED,
                "invalid token: send Authorization: Bearer TOKEN with a token from `drover token create`",
            )
                .into()),
        };
    }
    let session_id = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| cookie(c, SESSION_COOKIE));
    if let Some(id) = session_id {
        let session = g.inner.sessions.get(id, Instant::now());
        let role = session.as_ref().and_then(|s| {
            g.inner
                .store
                .as_ref()
                .and_then(|st| st.role_of(&s.token_name).ok().flatten())
        });
        let (Some(session), Some(role)) = (session, role) else {
            return Err((
                StatusCode::UNAUTHORIZED,
                "the session has expired or its token was revoked: log in again at /login",
            )
                .into());
        };
        if is_write(req.method()) {
            let csrf = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if !session.csrf_ok(csrf) || !origin_ok(headers) {
                return Err(Denied {
                    status: StatusCode::FORBIDDEN,
                    message: "a write with the session cookie needs the X-CSRF-Token header (the drover_csrf cookie) from this server's own pages",
                    who: Some((
                        Principal {
                            name: session.token_name,
                            role,
                        },
                        Via::Session,
                    )),
                });
            }
        }
        return Ok((
            Principal {
                name: session.token_name,
                role,
            },
            Via::Session,
        ));
    }
    Err((
        StatusCode::UNAUTHORIZED,
        "authentication required: send Authorization: Bearer TOKEN (drover token create), or log in at /login",
    )
        .into())
}

/// The middleware.
async fn guard(State(g): State<Guard>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let source = client_addr(&req);
    let write = is_write(&method);
    let needed = required_role(&method, &path);
    let (principal, via) = match needed {
        None => (
            Principal {
                name: "anonymous".into(),
                role: Role::Viewer,
            },
            Via::None,
        ),
        Some(_) if !g.enforced() => (
            Principal {
                name: "anonymous".into(),
                role: Role::Admin,
            },
            Via::None,
        ),
        Some(needed) => match authenticate(&g, &req) {
            Ok((p, via)) if p.role.covers(needed) => (p, via),
            Ok((p, via)) => {
                let r = deny(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "token {:?} has role {}; {method} {path} needs {needed}",
                        p.name, p.role
                    ),
                );
                if write {
                    record(&g, &method, &path, source, Some(&(p, via)), r.status());
                }
                return r;
            }
            Err(d) => {
                if write {
                    record(&g, &method, &path, source, d.who.as_ref(), d.status);
                }
                return deny(d.status, d.message);
            }
        },
    };
    req.extensions_mut().insert(Caller {
        principal: principal.clone(),
    });
    let resp = next.run(req).await;
    // Login attempts are recorded by the login handler (it knows who logged in); an agent's
    // accepted heartbeat (every few seconds) is not a change anyone audits.
    if write && path != "/login" && !(is_heartbeat(&path) && resp.status().is_success()) {
        record(
            &g,
            &method,
            &path,
            source,
            Some(&(principal, via)),
            resp.status(),
        );
    }
    resp
}

/// `POST /v1/agents/{id}/heartbeat`.
fn is_heartbeat(path: &str) -> bool {
    path.strip_prefix("/v1/agents/")
        .and_then(|rest| rest.strip_suffix("/heartbeat"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

fn record(
    g: &Guard,
    method: &Method,
    path: &str,
    source: Option<SocketAddr>,
    who: Option<&(Principal, Via)>,
    status: StatusCode,
) {
    g.inner.audit.record(AuditRecord {
        ts: Utc::now(),
        who: who.map_or_else(|| "-".to_string(), |(p, _)| p.name.clone()),
        role: who.map(|(p, _)| p.role.to_string()),
        via: who.map_or(Via::None, |(_, v)| *v).as_str().to_string(),
        method: method.to_string(),
        path: path.to_string(),
        status: status.as_u16(),
        source: source.map(|s| s.to_string()),
    });
}

// === the guard's routes ===

const LOGIN_HTML: &str = include_str!("login.html");

fn login_html(message: &str) -> Html<String> {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    Html(LOGIN_HTML.replace("{{message}}", &escaped))
}

async fn login_page(State(g): State<Guard>) -> Html<String> {
    if g.enforced() {
        login_html("")
    } else {
        login_html("Authentication is off on this server (loopback, no token yet): the UI is open.")
    }
}

/// The login form.
#[derive(Debug, Deserialize)]
struct LoginForm {
    /// The token pasted into the form.
    token: String,
}

async fn login(
    State(g): State<Guard>,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let source = connect.map(|c| c.0 .0);
    let ip = source.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |s| s.ip());
    let method = Method::POST;
    if !origin_ok(&headers) {
        record(&g, &method, "/login", source, None, StatusCode::FORBIDDEN);
        return (
            StatusCode::FORBIDDEN,
            login_html("This form must be sent from this server's own login page."),
        )
            .into_response();
    }
    if let Err(wait) = g.inner.limiter.attempt(ip, Instant::now()) {
        record(
            &g,
            &method,
            "/login",
            source,
            None,
            StatusCode::TOO_MANY_REQUESTS,
        );
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            login_html(&format!(
                "Too many login attempts from your address: try again in {} s.",
                wait.as_secs().max(1)
            )),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    // Only stored tokens log in to the UI (not the cluster token).
    let principal = g
        .inner
        .store
        .as_ref()
        .and_then(|s| s.verify(form.token.trim()).ok().flatten());
    let Some(p) = principal else {
        record(
            &g,
            &method,
            "/login",
            source,
            None,
            StatusCode::UNAUTHORIZED,
        );
        return (
            StatusCode::UNAUTHORIZED,
            login_html("That token is not valid."),
        )
            .into_response();
    };
    let (id, csrf) = match g.inner.sessions.create(&p.name, Instant::now()) {
        Ok(x) => x,
        Err(e) => return ApiError::internal(e.to_string()).into_response(),
    };
    record(
        &g,
        &method,
        "/login",
        source,
        Some(&(p, Via::Form)),
        StatusCode::SEE_OTHER,
    );
    let secure = if g.inner.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let age = SESSION_TTL.as_secs();
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    for c in [
        format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{secure}"),
        format!("{CSRF_COOKIE}={csrf}; Path=/; SameSite=Strict; Max-Age={age}{secure}"),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

async fn logout(State(g): State<Guard>, headers: HeaderMap) -> Response {
    let id = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| cookie(c, SESSION_COOKIE));
    if let Some(id) = id {
        if let Some(s) = g.inner.sessions.get(id, Instant::now()) {
            let csrf = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if !s.csrf_ok(csrf) {
                return deny(
                    StatusCode::FORBIDDEN,
                    "logout needs the X-CSRF-Token header",
                );
            }
        }
        g.inner.sessions.remove(id);
    }
    let mut r = (StatusCode::NO_CONTENT, ()).into_response();
    for c in [
        format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        format!("{CSRF_COOKIE}=; Path=/; SameSite=Strict; Max-Age=0"),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

/// `GET /api/audit?limit=N`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// At most this many records, newest first (default 100).
    limit: Option<usize>,
}

async fn audit_route(
    State(g): State<Guard>,
    axum::extract::Query(q): axum::extract::Query<AuditQuery>,
) -> Json<Vec<AuditRecord>> {
    Json(g.inner.audit.recent(q.limit.unwrap_or(100)))
}

/// `GET /api/auth/whoami`.
#[derive(Debug, Serialize)]
struct WhoAmI {
    name: String,
    role: Role,
    auth: &'static str,
}

async fn whoami(State(g): State<Guard>, caller: Option<axum::Extension<Caller>>) -> Json<WhoAmI> {
    let p = caller.map(|c| c.0.principal).unwrap_or(Principal {
        name: "anonymous".into(),
        role: Role::Admin,
    });
    Json(WhoAmI {
        name: p.name,
        role: p.role,
        auth: g.health(),
    })
}

async fn tokens_route(State(g): State<Guard>) -> Result<Response, ApiError> {
    let Some(store) = &g.inner.store else {
        return Ok(Json(Vec::<crate::store::TokenInfo>::new()).into_response());
    };
    let list = store
        .list()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(list).into_response())
}

async fn routes_route(State(g): State<Guard>) -> Json<Vec<RouteInfo>> {
    Json(g.inner.routes.get().cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests;
