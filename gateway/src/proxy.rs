//! The proxy: one request from a client to a backend and back. Finds the route, picks the
//! backend, forwards with `X-Forwarded-*`, `Forwarded` and `X-Request-Id`, passes upgrades
//! (WebSocket) through, times out, retries an idempotent request that could not connect once
//! on another backend, feeds passive health, and counts the request for its instance, app
//! and service when its response ends. Every failure is a response, never a crash.
use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{
    header::{self, HeaderMap, HeaderName, HeaderValue},
    uri::PathAndQuery,
    Method, Request, Response, StatusCode, Uri, Version,
};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::time::Instant;

use crate::{
    access::Entry,
    backend::Backend,
    balance,
    labels::HashKey,
    metrics::{status_class, AppLabels, ErrorLabels, ErrorReason, StatusLabels},
    pool::{Pool, SendError, Sender},
    stats::Outcome,
    table::{Group, Route},
    Shared,
};

/// The body type of requests to backends and responses to clients.
pub type Body = UnsyncBoxBody<Bytes, hyper::Error>;

/// The request ID header.
pub const REQUEST_ID: &str = "x-request-id";
static X_REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID);
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Headers that belong to one connection (RFC 9110 §7.6.1), never forwarded as they are
/// (names, not strings: removing by a string parses it on every request).
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// What one worker thread's requests share: the gateway, and the worker's own keep-alive
/// pool. One per worker (not the gateway's `Arc<Shared>` itself), so the reference each
/// request holds is counted on a cache line only its worker writes.
#[derive(Debug)]
pub struct Local {
    /// The gateway.
    pub shared: Arc<Shared>,
    /// This worker's connections to the backends.
    pub pool: Pool,
}

/// Serve one request from `peer`.
pub async fn handle(
    local: Arc<Local>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let rid = request_id(req.headers());
    let mut resp = proxy(&local, peer, req, started, &rid).await;
    resp.headers_mut().insert(X_REQUEST_ID.clone(), rid);
    Ok(resp)
}

async fn proxy(
    local: &Arc<Local>,
    peer: SocketAddr,
    mut req: Request<Incoming>,
    started: Instant,
    rid: &HeaderValue,
) -> Response<Body> {
    let (shared, pool) = (&local.shared, &local.pool);
    // Checked by `request_id`: visible ASCII.
    let request_id = rid.to_str().unwrap_or_default();
    let host = request_host(&req);
    let path = req.uri().path();
    let table = shared.table.load();
    let Some(route) = table.find(&host, path) else {
        shared
            .metrics
            .gateway_errors
            .get_or_create(&ErrorLabels {
                app: "-".into(),
                reason: ErrorReason::NoRoute.as_str(),
            })
            .inc();
        count_no_route(shared);
        if shared.access.wants(404, true) {
            let mut e = access_start(&req, &host, peer, request_id).entry();
            e.status = 404;
            e.level = "warn";
            e.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            e.gateway_error = Some(ErrorReason::NoRoute.as_str());
            shared.access.send(e);
        }
        return error_response(
            StatusCode::NOT_FOUND,
            format!("no route for host {host:?} and path {path:?}"),
            "no app is labelled for this host and path: give an app the label drover.gateway.host (and drover.gateway.path) or HAPROXY_0_VHOST; GET /v1/gateway/routes lists the routes, and the refused ones with why",
            request_id,
        );
    };
    let route = Arc::clone(route);
    drop(table);
    // The key picks one of several instance groups; a route of one app needs none.
    let key = if route.groups.len() > 1 {
        balance::hash(&key_bytes(&route.hash_key, req.headers(), peer.ip()))
    } else {
        0
    };
    let now = shared.clock.now();
    let Some(pick) = route.pick(key, now, &shared.cfg.outlier, None) else {
        // A route always has a group; an empty one is a bug, answered as no backend.
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("route {} has no app", route.name()),
            "report this: a route without apps should not exist",
            request_id,
        );
    };
    let group = pick.group;
    let Some(mut backend) = pick.backend else {
        let detail = format!(
            "no running{} task of {} to send to ({} task{} in all); GET /v1/gateway/routes shows each backend, drover app show {} says why tasks wait",
            if group.backends.is_empty() { " and healthy" } else { " non-ejected" },
            group.app,
            group.tasks,
            if group.tasks == 1 { "" } else { "s" },
            group.app,
        );
        let mut req_stats = RequestCounters::new(local, &route, group, None, started);
        req_stats.access = access_of(shared, &req, &host, peer, request_id);
        let resp = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no healthy backend for {}", route.name()),
            &detail,
            request_id,
        );
        return req_stats.gateway_error(ErrorReason::NoBackend, resp);
    };

    let access = access_of(shared, &req, &host, peer, request_id);
    let upgrade = is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let retryable =
        shared.cfg.retry && !upgrade && is_idempotent(&parts.method) && body.is_end_stream();
    prepare_headers(
        &mut parts.headers,
        &parts.uri,
        peer.ip(),
        &host,
        rid,
        upgrade,
    );
    // Origin-form (`/path?query`) on the backend's connection, as HTTP/1.1.
    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = Uri::from(path_and_query);
    parts.version = Version::HTTP_11;
    let bytes_in = Arc::new(AtomicU64::new(0));
    let body = CountingBody {
        inner: body,
        count: Arc::clone(&bytes_in),
    }
    .boxed_unsync();
    let mut out = Request::from_parts(parts, body);
    let mut counters = RequestCounters::new(local, &route, group, Some(backend), started);
    counters.bytes_in = Some(Arc::clone(&bytes_in));
    counters.access = access;
    let mut retried = false;
    let (resp, sender) = loop {
        let sent =
            tokio::time::timeout(shared.cfg.request_timeout, pool.send(&backend.addr, out)).await;
        match sent {
            Ok(Ok(r)) => break r,
            Ok(Err(SendError::Connect(e, back))) if retryable && !retried => {
                // Nothing reached the app: the same request goes to another backend.
                backend.on_failure_counted(shared, group);
                let again = route
                    .pick(key, shared.clock.now(), &shared.cfg.outlier, Some(backend))
                    .and_then(|p| p.backend);
                let Some(next) = again else {
                    return counters.failed(
                        shared,
                        backend,
                        group,
                        ErrorReason::Connect,
                        &error_chain(&e),
                        request_id,
                    );
                };
                tracing::debug!(app = %group.app, from = %backend.task, to = %next.task, error = %e, "retrying on another backend");
                shared
                    .metrics
                    .retries
                    .get_or_create(&AppLabels {
                        app: group.app.clone(),
                    })
                    .inc();
                counters.move_to(next);
                backend = next;
                retried = true;
                out = *back;
            }
            Ok(Err(SendError::Connect(e, _))) => {
                return counters.failed(
                    shared,
                    backend,
                    group,
                    ErrorReason::Connect,
                    &error_chain(&e),
                    request_id,
                );
            }
            Ok(Err(SendError::Failed(e))) => {
                return counters.failed(
                    shared,
                    backend,
                    group,
                    ErrorReason::BadResponse,
                    &error_chain(&e),
                    request_id,
                );
            }
            Err(_) => {
                return counters.failed(
                    shared,
                    backend,
                    group,
                    ErrorReason::Timeout,
                    &format!("no answer within {:?}", shared.cfg.request_timeout),
                    request_id,
                );
            }
        }
    };
    let mut resp = resp;
    let status = resp.status();
    if status.is_server_error() {
        backend.on_failure_counted(shared, group);
    } else {
        backend.on_success();
    }
    if status == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let backend_upgrade = hyper::upgrade::on(&mut resp);
            tunnel(shared, client_upgrade, backend_upgrade, &group.app);
            // The 101 keeps its Connection and Upgrade headers.
            let (rparts, _) = resp.into_parts();
            counters.status = status.as_u16();
            return counters.into_response(Response::from_parts(rparts, empty()));
        }
    }
    let (mut rparts, rbody) = resp.into_parts();
    strip_hop_by_hop(&mut rparts.headers);
    counters.status = status.as_u16();
    // The connection goes back to the pool when the response has been read to the end.
    counters.conn = Some(sender);
    counters.into_response(Response::from_parts(rparts, rbody.boxed_unsync()))
}

impl Backend {
    /// A failure of this backend: passive health, and the ejection counted.
    fn on_failure_counted(&self, shared: &Shared, group: &Group) {
        if self.on_failure(shared.clock.now(), &group.backends, &shared.cfg.outlier) {
            tracing::warn!(app = %group.app, task = %self.task, addr = %self.addr, "backend ejected after consecutive failures");
            shared
                .metrics
                .ejections
                .get_or_create(&AppLabels {
                    app: group.app.clone(),
                })
                .inc();
        }
    }
}

/// Join the client's and the backend's upgraded connections and copy both ways.
fn tunnel(
    shared: &Arc<Shared>,
    client: hyper::upgrade::OnUpgrade,
    backend: hyper::upgrade::OnUpgrade,
    app: &str,
) {
    let metrics = shared.metrics.clone();
    let app = app.to_string();
    tokio::spawn(async move {
        let (c, b) = match tokio::try_join!(client, backend) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(app = %app, error = %e, "upgrade did not complete");
                return;
            }
        };
        metrics.tunnels.inc();
        let (mut c, mut b) = (TokioIo::new(c), TokioIo::new(b));
        if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut b).await {
            tracing::debug!(app = %app, error = %e, "upgraded connection ended");
        }
        metrics.tunnels.dec();
    });
}

/// The counting of one request: in flight on its backend, app and service from the start,
/// counted (status, latency, bytes) once its response ends.
struct RequestCounters {
    local: Arc<Local>,
    /// The route, and which of its groups (apps) the request went to: the app's and the
    /// service's counters are found through it (one reference count, no copies).
    route: Arc<Route>,
    group: usize,
    backend: Option<Arc<Backend>>,
    started: Instant,
    status: u16,
    gateway_error: bool,
    bytes_in: Option<Arc<AtomicU64>>,
    bytes_out: u64,
    done: bool,
    /// The access-log entry, filled in at the end (when an access log is kept).
    access: Option<Box<AccessStart>>,
    /// Why the gateway answered itself.
    reason: Option<ErrorReason>,
    /// The backend connection, given back to its pool when the response ends cleanly.
    conn: Option<Sender>,
}

impl RequestCounters {
    fn new(
        local: &Arc<Local>,
        route: &Arc<Route>,
        group: &Group,
        backend: Option<&Arc<Backend>>,
        started: Instant,
    ) -> Self {
        let index = route
            .groups
            .iter()
            .position(|g| std::ptr::eq(g, group))
            .unwrap_or(0);
        let now = started;
        if let Some(b) = backend {
            b.stats.start(now);
        }
        group.stats.start(now);
        if let Some(s) = &route.service_stats {
            s.start(now);
        }
        group.prom.in_flight.inc();
        Self {
            local: Arc::clone(local),
            route: Arc::clone(route),
            group: index,
            backend: backend.cloned(),
            started,
            status: 0,
            gateway_error: false,
            bytes_in: None,
            bytes_out: 0,
            done: false,
            access: None,
            reason: None,
            conn: None,
        }
    }

    fn group(&self) -> &Group {
        &self.route.groups[self.group]
    }

    /// The request goes to another backend (a retry).
    fn move_to(&mut self, next: &Arc<Backend>) {
        let now = Instant::now();
        if let Some(old) = self.backend.replace(Arc::clone(next)) {
            old.stats.abandon(now);
        }
        next.stats.start(now);
    }

    /// A response the gateway made: counted now.
    fn gateway_error(mut self, reason: ErrorReason, resp: Response<Body>) -> Response<Body> {
        self.status = resp.status().as_u16();
        self.gateway_error = true;
        self.reason = Some(reason);
        self.local
            .shared
            .metrics
            .gateway_errors
            .get_or_create(&ErrorLabels {
                app: self.group().app.clone(),
                reason: reason.as_str(),
            })
            .inc();
        self.bytes_out = resp.body().size_hint().exact().unwrap_or(0);
        self.finish();
        resp
    }

    /// The backend gave no good answer: passive health, a 502 or 504 that says why.
    fn failed(
        self,
        shared: &Shared,
        backend: &Backend,
        group: &Group,
        reason: ErrorReason,
        error: &str,
        request_id: &str,
    ) -> Response<Body> {
        backend.on_failure_counted(shared, group);
        tracing::info!(app = %group.app, task = %backend.task, addr = %backend.addr, reason = reason.as_str(), error = %error, request_id = %request_id, "backend failed");
        let (status, what) = match reason {
            ErrorReason::Timeout => (StatusCode::GATEWAY_TIMEOUT, "did not answer in time"),
            ErrorReason::Connect => (StatusCode::BAD_GATEWAY, "refused or dropped the connection"),
            _ => (StatusCode::BAD_GATEWAY, "sent no valid HTTP answer"),
        };
        let resp = error_response(
            status,
            format!(
                "{} instance {} at {} {what}",
                group.app, backend.task, backend.addr
            ),
            &format!(
                "{error}; the app's logs say why (drover logs search --app {})",
                group.app
            ),
            request_id,
        );
        self.gateway_error(reason, resp)
    }

    /// The backend's response, counted when its body ends (or is dropped).
    fn into_response(self, resp: Response<Body>) -> Response<Body> {
        let (parts, body) = resp.into_parts();
        Response::from_parts(
            parts,
            TrackedBody {
                inner: body,
                counters: self,
            }
            .boxed_unsync(),
        )
    }

    /// The response was read to the end: its connection can carry the next request.
    fn release_conn(&mut self) {
        if let (Some(tx), Some(b)) = (self.conn.take(), &self.backend) {
            self.local.pool.put(&b.addr, tx);
        }
    }

    fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let now = Instant::now();
        let outcome = Outcome {
            status: self.status,
            latency_ms: now.saturating_duration_since(self.started).as_secs_f64() * 1000.0,
            bytes_in: self
                .bytes_in
                .as_ref()
                .map_or(0, |b| b.load(Ordering::Relaxed)),
            bytes_out: self.bytes_out,
            gateway_error: self.gateway_error,
        };
        if let Some(b) = &self.backend {
            b.stats.finish(now, &outcome);
        }
        let group = self.group();
        group.stats.finish(now, &outcome);
        if let Some(s) = &self.route.service_stats {
            s.finish(now, &outcome);
        }
        group.prom.in_flight.dec();
        group.prom.count(self.status);
        group
            .prom
            .duration
            .observe(now.saturating_duration_since(self.started).as_secs_f64());
        if let Some(start) = self.access.take() {
            if self
                .local
                .shared
                .access
                .wants(self.status, self.gateway_error)
            {
                let mut e = start.entry();
                e.status = self.status;
                e.level = if self.status >= 500 || self.gateway_error {
                    "warn"
                } else {
                    "info"
                };
                e.latency_ms = outcome.latency_ms;
                e.bytes = outcome.bytes_out;
                e.app = Some(self.group().app.clone());
                if let Some(b) = &self.backend {
                    e.instance = Some(b.task.clone());
                    e.node = Some(b.node.clone()).filter(|n| !n.is_empty());
                    e.upstream = Some(b.addr.clone());
                }
                e.gateway_error = self.reason.map(ErrorReason::as_str);
                self.local.shared.access.send(e);
            }
        }
    }
}

impl Drop for RequestCounters {
    fn drop(&mut self) {
        // A client that goes away mid-response still ends the request.
        self.finish();
    }
}

/// A response without an app (404): counted under app `-`.
fn count_no_route(shared: &Shared) {
    shared
        .metrics
        .requests
        .get_or_create(&StatusLabels {
            app: "-".into(),
            class: status_class(404),
        })
        .inc();
}

/// A response body that counts its bytes and ends the request's counting when it ends.
struct TrackedBody {
    inner: Body,
    counters: RequestCounters,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.counters.bytes_out += d.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.counters.release_conn();
                    this.counters.finish();
                }
            }
            Poll::Ready(None) => {
                this.counters.release_conn();
                this.counters.finish();
            }
            Poll::Ready(Some(Err(_))) => this.counters.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        // A body with nothing left (HEAD, 204, 304, or read to its end without a last poll)
        // leaves its connection reusable; one dropped midway closes it.
        if self.inner.is_end_stream() {
            self.counters.release_conn();
        }
    }
}

/// A request body that counts its bytes.
struct CountingBody {
    inner: Incoming,
    count: Arc<AtomicU64>,
}

impl HttpBody for CountingBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(d) = frame.data_ref() {
                self.count.fetch_add(d.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request's part of an access-log entry, kept while the request runs when an access
/// log is kept; the entry itself is only built for the requests the log wants.
struct AccessStart {
    ts: chrono::DateTime<chrono::Utc>,
    method: Method,
    uri: Uri,
    host: String,
    client: IpAddr,
    request_id: String,
}

impl AccessStart {
    fn entry(self) -> Entry {
        let mut path = self
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        if path.len() > 2048 {
            let mut end = 2048;
            while !path.is_char_boundary(end) {
                end -= 1;
            }
            path.truncate(end);
        }
        Entry {
            ts: self.ts,
            level: "info",
            msg: "access",
            method: self.method.to_string(),
            host: self.host,
            path,
            status: 0,
            latency_ms: 0.0,
            bytes: 0,
            client: self.client.to_string(),
            request_id: self.request_id,
            app: None,
            instance: None,
            node: None,
            upstream: None,
            gateway_error: None,
        }
    }
}

/// The request's part of an access-log entry, when an access log is kept.
fn access_of<B>(
    shared: &Shared,
    req: &Request<B>,
    host: &str,
    peer: SocketAddr,
    request_id: &str,
) -> Option<Box<AccessStart>> {
    shared
        .access
        .wants(500, true)
        .then(|| Box::new(access_start(req, host, peer, request_id)))
}

fn access_start<B>(
    req: &Request<B>,
    host: &str,
    peer: SocketAddr,
    request_id: &str,
) -> AccessStart {
    AccessStart {
        ts: chrono::Utc::now(),
        method: req.method().clone(),
        uri: req.uri().clone(),
        host: host.to_string(),
        client: peer.ip(),
        request_id: request_id.to_string(),
    }
}

pub(crate) fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A JSON error the gateway answers itself: `{"error", "detail", "request_id"}`.
pub fn error_response(
    status: StatusCode,
    error: String,
    detail: &str,
    request_id: &str,
) -> Response<Body> {
    let body =
        json!({"error": error, "detail": detail, "request_id": request_id}).to_string() + "\n";
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert("x-drover-gateway", HeaderValue::from_static("error"));
    resp
}

/// The client's `X-Request-Id` when it is sane (1-200 visible ASCII characters), else a new
/// one (32 hex digits); made once per request and shared by the request and the response.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID).filter(|v| {
        let b = v.as_bytes();
        !b.is_empty() && b.len() <= 200 && b.iter().all(u8::is_ascii_graphic)
    }) {
        return v.clone();
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n = fastrand::u128(..);
    let mut id = [0u8; 32];
    for d in id.iter_mut().rev() {
        *d = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
    HeaderValue::from_bytes(&id).expect("hex digits are a valid header value")
}

/// The host a request is for: `Host`, else the URI's authority (HTTP/2's `:authority`).
fn request_host<B>(req: &Request<B>) -> String {
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// The bytes a request is hashed on to pick an instance group: the header or cookie the
/// route names, or the client's IP when it names none or the request lacks it.
pub fn key_bytes(key: &HashKey, headers: &HeaderMap, ip: IpAddr) -> Vec<u8> {
    let found = match key {
        HashKey::Ip => None,
        HashKey::Header(name) => headers.get(name.as_str()).map(|v| v.as_bytes().to_vec()),
        HashKey::Cookie(name) => headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().as_bytes().to_vec()),
    };
    found.unwrap_or_else(|| ip.to_string().into_bytes())
}

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// `Connection: upgrade` with an `Upgrade` header.
fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Remove hop-by-hop headers, and those `Connection` names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // This runs twice per request, and most messages carry none of these or only
    // `Connection: keep-alive`: compare the names present (no hashing) before removing any.
    if !headers.keys().any(|k| HOP_BY_HOP.contains(k)) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            // `keep-alive` is hop-by-hop anyway (below): no name to make for it.
            .filter(|t| !t.eq_ignore_ascii_case("keep-alive"))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for h in named {
            headers.remove(h);
        }
    }
    for h in &HOP_BY_HOP {
        if headers.keys().any(|k| k == h) {
            headers.remove(h);
        }
    }
}

/// The headers a backend gets: hop-by-hop ones removed (an upgrade's kept), `Host` set (from
/// HTTP/2's authority), `X-Forwarded-For` and `Forwarded` appended, `X-Forwarded-Proto` and
/// `-Host` set unless a proxy in front set them, and the request ID.
pub fn prepare_headers(
    headers: &mut HeaderMap,
    uri: &Uri,
    client: IpAddr,
    host: &str,
    request_id: &HeaderValue,
    upgrade: bool,
) {
    use std::fmt::Write as _;
    let upgrade_value = upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten();
    strip_hop_by_hop(headers);
    if let Some(u) = upgrade_value {
        headers.insert(header::UPGRADE, u);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if !headers.contains_key(header::HOST) {
        if let Some(a) = uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            headers.insert(header::HOST, a);
        }
    }
    // One buffer for both appended headers (this runs on every request).
    let mut buf = String::with_capacity(96);
    if let Some(prev) = headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        if !prev.trim().is_empty() {
            buf.push_str(prev);
            buf.push_str(", ");
        }
    }
    let _ = write!(buf, "{client}");
    if let Ok(v) = HeaderValue::from_str(&buf) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    if !headers.contains_key(&X_FORWARDED_HOST) {
        if let Ok(v) = HeaderValue::from_str(host) {
            headers.insert(X_FORWARDED_HOST.clone(), v);
        }
    }
    buf.clear();
    if let Some(prev) = headers.get(&FORWARDED).and_then(|v| v.to_str().ok()) {
        if !prev.trim().is_empty() {
            buf.push_str(prev);
            buf.push_str(", ");
        }
    }
    let _ = match client {
        IpAddr::V4(v4) => write!(buf, "for={v4}"),
        IpAddr::V6(v6) => write!(buf, "for=\"[{v6}]\""),
    };
    buf.push_str(";host=\"");
    buf.extend(host.chars().filter(|c| !matches!(c, '"' | '\\')));
    buf.push_str("\";proto=http");
    if let Ok(v) = HeaderValue::from_str(&buf) {
        headers.insert(FORWARDED.clone(), v);
    }
    headers.insert(X_REQUEST_ID.clone(), request_id.clone());
}

/// An error and its causes, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_stripped_and_the_rest_kept() {
        // A response as nginx sends it: `Connection: keep-alive` and its `Keep-Alive`.
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        h.insert("connection", HeaderValue::from_static("Keep-Alive"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["content-type"]);
        // Names listed in `Connection` go too, whatever their case and spacing.
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close ,X-Hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("x-keep", HeaderValue::from_static("2"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-keep"]);
        // None of them: nothing changes.
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("a"));
        h.append("x-many", HeaderValue::from_static("1"));
        h.append("x-many", HeaderValue::from_static("2"));
        let before = h.clone();
        strip_hop_by_hop(&mut h);
        assert_eq!(h, before);
    }

    #[test]
    fn forwarding_headers_append_and_keep() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("host", HeaderValue::from_static("shop.example.com"));
        let uri: Uri = "/x".parse().unwrap();
        prepare_headers(
            &mut h,
            &uri,
            "192.168.1.2".parse().unwrap(),
            "shop.example.com",
            &HeaderValue::from_static("rid"),
            false,
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 192.168.1.2");
        assert_eq!(
            h["x-forwarded-proto"], "https",
            "kept from the proxy in front"
        );
        assert_eq!(h["x-forwarded-host"], "shop.example.com");
        assert_eq!(
            h["forwarded"],
            "for=192.168.1.2;host=\"shop.example.com\";proto=http"
        );
        assert_eq!(h["x-request-id"], "rid");
        for gone in ["connection", "x-secret", "te"] {
            assert!(!h.contains_key(gone), "{gone}");
        }
    }

    #[test]
    fn http2_authority_becomes_host_and_v6_is_quoted() {
        let mut h = HeaderMap::new();
        let uri: Uri = "http://api.example.com/x".parse().unwrap();
        prepare_headers(
            &mut h,
            &uri,
            "::1".parse().unwrap(),
            "api.example.com",
            &HeaderValue::from_static("r"),
            false,
        );
        assert_eq!(h["host"], "api.example.com");
        assert_eq!(
            h["forwarded"],
            "for=\"[::1]\";host=\"api.example.com\";proto=http"
        );
    }

    #[test]
    fn upgrades_keep_their_headers() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("Upgrade"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&h));
        prepare_headers(
            &mut h,
            &"/".parse().unwrap(),
            "1.2.3.4".parse().unwrap(),
            "h",
            &HeaderValue::from_static("r"),
            true,
        );
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn request_ids_are_kept_when_sane() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h), "abc-123");
        h.insert("x-request-id", HeaderValue::from_static("has space"));
        let id = request_id(&h);
        assert_eq!(id.len(), 32);
        assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit), "{id:?}");
        assert_ne!(request_id(&HeaderMap::new()), id);
    }

    #[test]
    fn hash_keys_from_header_cookie_or_ip() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-user", HeaderValue::from_static("alice"));
        h.append("cookie", HeaderValue::from_static("a=1; session=s42"));
        assert_eq!(
            key_bytes(&HashKey::Header("x-user".into()), &h, ip),
            b"alice"
        );
        assert_eq!(
            key_bytes(&HashKey::Cookie("session".into()), &h, ip),
            b"s42"
        );
        assert_eq!(
            key_bytes(&HashKey::Cookie("none".into()), &h, ip),
            b"10.1.2.3"
        );
        assert_eq!(key_bytes(&HashKey::Ip, &h, ip), b"10.1.2.3");
    }
}
