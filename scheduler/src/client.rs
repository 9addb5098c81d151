//! A client of the master's API (Marathon's `/v2`, Drover's `/v1`): calls that return the
//! JSON as the master sent it (for `--json` output and scripts), typed reads of apps and
//! tasks, and [`Client::events`], the event stream (`/v2/events`) as typed items that
//! reconnects by itself and starts each connection with the full state, so a consumer
//! never misses a change. The CLI (`drover app`, `drover node`) is built on it.
use std::{collections::VecDeque, time::Duration};

use futures::{stream::BoxStream, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    events::MarathonEvent,
    model::{MarathonApp, MarathonTask},
};

/// What a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
    /// No answer from the master.
    #[error("cannot reach the master at {base}")]
    Unreachable {
        /// The master's URL.
        base: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The master answered with an error; the message says what it said ([`explain`]).
    #[error("{}", explain(*.status, .body))]
    Api {
        /// HTTP status.
        status: u16,
        /// The master's JSON (`{"message": …}`), or its text as a string.
        body: Value,
    },
    /// The answer is not what the API returns.
    #[error("unexpected answer to {path}")]
    Decode {
        /// The path called.
        path: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// A client of one master. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    /// For the event stream: no overall timeout (it stays open), only for connecting.
    stream_http: reqwest::Client,
}

impl Client {
    /// A client of the master at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Result<Self, ClientError> {
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .default_headers(drover_auth::client::default_headers())
                .build()
                .map_err(ClientError::Build)?,
            stream_http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .default_headers(drover_auth::client::default_headers())
                .build()
                .map_err(ClientError::Build)?,
        })
    }

    /// The master's URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Call `path` (e.g. `/v2/apps?embed=apps.tasks`): the status and the JSON answer (or
    /// its text as a JSON string), whatever the status.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), ClientError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                base: self.base.clone(),
                source,
            })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, v))
    }

    /// A call that must answer 2xx; otherwise [`ClientError::Api`] with what the master said.
    pub async fn ok(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let (status, body) = self.call(method, path, body).await?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        Err(ClientError::Api { status, body })
    }

    /// GET `path` and decode `field` of the answer (the whole answer when `field` is empty).
    async fn get<T: DeserializeOwned>(&self, path: &str, field: &str) -> Result<T, ClientError> {
        let mut v = self.ok(reqwest::Method::GET, path, None).await?;
        if !field.is_empty() {
            v = v[field].take();
        }
        serde_json::from_value(v).map_err(|source| ClientError::Decode {
            path: path.to_string(),
            source,
        })
    }

    /// Every app, with its tasks (`GET /v2/apps?embed=apps.tasks`).
    pub async fn apps(&self) -> Result<Vec<MarathonApp>, ClientError> {
        self.get("/v2/apps?embed=apps.tasks", "apps").await
    }

    /// One app with its tasks and last failure; None when there is no such app.
    pub async fn app(&self, id: &str) -> Result<Option<MarathonApp>, ClientError> {
        let path = format!(
            "/v2/apps/{}?embed=app.tasks&embed=app.lastTaskFailure",
            id.trim_matches('/')
        );
        match self.get(&path, "app").await {
            Err(ClientError::Api { status: 404, .. }) => Ok(None),
            r => r.map(Some),
        }
    }

    /// Every task (`GET /v2/tasks`).
    pub async fn tasks(&self) -> Result<Vec<MarathonTask>, ClientError> {
        self.get("/v2/tasks", "tasks").await
    }

    // === jobs (`/v1/jobs`) ===

    /// Every job with its next run and last outcome (`GET /v1/jobs`, the `jobs` array).
    pub async fn jobs(&self) -> Result<Value, ClientError> {
        Ok(self.ok(reqwest::Method::GET, "/v1/jobs", None).await?["jobs"].take())
    }

    /// One job; None when there is no such job.
    pub async fn job(&self, id: &str) -> Result<Option<Value>, ClientError> {
        match self.ok(reqwest::Method::GET, &job_path(id, ""), None).await {
            Err(ClientError::Api { status: 404, .. }) => Ok(None),
            r => r.map(Some),
        }
    }

    /// Create or replace a job from its definition (`PUT /v1/jobs/{id}`).
    pub async fn put_job(&self, def: &Value) -> Result<Value, ClientError> {
        let id = def["id"].as_str().unwrap_or_default();
        self.ok(reqwest::Method::PUT, &job_path(id, ""), Some(def))
            .await
    }

    /// Remove a job.
    pub async fn delete_job(&self, id: &str) -> Result<Value, ClientError> {
        self.ok(reqwest::Method::DELETE, &job_path(id, ""), None)
            .await
    }

    /// Run a job now: the new run.
    pub async fn run_job(&self, id: &str) -> Result<Value, ClientError> {
        self.ok(reqwest::Method::POST, &job_path(id, "/run"), None)
            .await
    }

    /// Enable or disable a job's scheduled and dependent runs.
    pub async fn enable_job(&self, id: &str, enabled: bool) -> Result<Value, ClientError> {
        let action = if enabled { "/enable" } else { "/disable" };
        self.ok(reqwest::Method::POST, &job_path(id, action), None)
            .await
    }

    /// A job's runs, newest first (at most `limit`).
    pub async fn job_runs(&self, id: &str, limit: usize) -> Result<Value, ClientError> {
        let path = format!("{}?limit={limit}", job_path(id, "/runs"));
        Ok(self.ok(reqwest::Method::GET, &path, None).await?["runs"].take())
    }

    /// The master's events, typed, for as long as the stream is polled: first a
    /// [`ClientEvent::Resync`] with every app and its tasks, then each event as it happens.
    /// When the connection drops (the master restarts, the network fails) it yields
    /// [`ClientEvent::Disconnected`], reconnects with backoff (0.1 s doubling up to 5 s)
    /// and starts again with a resync, so a consumer that applies each item never misses a
    /// change. The stream is attached before the state is read: an event right after a
    /// resync may repeat what it shows.
    pub fn events(&self) -> BoxStream<'static, ClientEvent> {
        let state = EventStream {
            client: self.clone(),
            resp: None,
            parser: SseParser::default(),
            queue: VecDeque::new(),
            failures: 0,
            wait: None,
        };
        futures::stream::unfold(state, |mut st| async move {
            let item = st.next().await;
            Some((item, st))
        })
        .boxed()
    }
}

fn job_path(id: &str, rest: &str) -> String {
    format!("/v1/jobs/{}{rest}", id.trim_matches('/'))
}

/// One item of [`Client::events`].
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// (Re)connected: every app with its tasks as of now. What follows applies on top.
    Resync(Vec<MarathonApp>),
    /// An event of the master.
    Event(Box<MarathonEvent>),
    /// The stream dropped, or could not be opened; the next attempt is in `retry_in`.
    Disconnected {
        /// What happened.
        error: String,
        /// When the stream tries again.
        retry_in: Duration,
    },
}

/// The master sends a keep-alive every 15 s: a stream silent for this long is dead.
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// The first wait before reconnecting.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest wait before reconnecting.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The wait before reconnecting after `failures` failures in a row (1, 2, …), with up to
/// 20 % jitter so that many clients of a restarted master do not come back at once.
fn backoff(failures: u32) -> Duration {
    let exp = BACKOFF_MIN.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let base = exp.min(BACKOFF_MAX);
    base + base.mul_f64(fastrand::f64() * 0.2)
}

/// The state of [`Client::events`].
struct EventStream {
    client: Client,
    resp: Option<reqwest::Response>,
    parser: SseParser,
    queue: VecDeque<ClientEvent>,
    failures: u32,
    wait: Option<Duration>,
}

impl EventStream {
    async fn next(&mut self) -> ClientEvent {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return item;
            }
            match self.resp.take() {
                None => self.connect().await,
                Some(mut resp) => match tokio::time::timeout(IDLE_TIMEOUT, resp.chunk()).await {
                    Ok(Ok(Some(bytes))) => {
                        for frame in self.parser.push(&bytes) {
                            self.decode(frame);
                        }
                        self.resp = Some(resp);
                    }
                    Ok(Ok(None)) => self.dropped("the master closed the event stream".into()),
                    Ok(Err(e)) => self.dropped(format!("the event stream broke: {e}")),
                    Err(_) => self.dropped(format!(
                        "nothing on the event stream for {}s",
                        IDLE_TIMEOUT.as_secs()
                    )),
                },
            }
        }
    }

    /// Open `/v2/events`, then read the state: a resync, or a failure to retry.
    async fn connect(&mut self) {
        if let Some(wait) = self.wait.take() {
            tokio::time::sleep(wait).await;
        }
        let base = &self.client.base;
        let resp = self
            .client
            .stream_http
            .get(format!("{base}/v2/events"))
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await;
        let resp = match resp {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                return self.dropped(format!("{base}/v2/events answered HTTP {}", r.status()));
            }
            Err(e) => return self.dropped(format!("cannot reach the master at {base}: {e}")),
        };
        match self.client.apps().await {
            Ok(apps) => {
                tracing::debug!(master = %base, apps = apps.len(), "event stream attached");
                self.failures = 0;
                self.parser = SseParser::default();
                self.resp = Some(resp);
                self.queue.push_back(ClientEvent::Resync(apps));
            }
            Err(e) => self.dropped(format!("cannot read the apps: {}", error_chain(&e))),
        }
    }

    fn dropped(&mut self, error: String) {
        self.resp = None;
        self.failures = self.failures.saturating_add(1);
        let retry_in = backoff(self.failures);
        tracing::info!(master = %self.client.base, error = %error, retry_in_ms = retry_in.as_millis() as u64, "event stream dropped; reconnecting");
        self.wait = Some(retry_in);
        self.queue
            .push_back(ClientEvent::Disconnected { error, retry_in });
    }

    fn decode(&mut self, frame: SseFrame) {
        match serde_json::from_str::<MarathonEvent>(&frame.data) {
            Ok(e) => self.queue.push_back(ClientEvent::Event(Box::new(e))),
            // A newer master's event kind: nothing this client could apply.
            Err(e) => {
                tracing::warn!(event_type = %frame.event, error = %e, "event not understood; skipped")
            }
        }
    }
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

/// One event of a `text/event-stream`.
#[derive(Debug, Clone, PartialEq)]
struct SseFrame {
    /// `event:` (`message` when not given).
    event: String,
    /// The `data:` lines, joined with newlines.
    data: String,
}

/// Splits a `text/event-stream` into events, whatever the chunks' boundaries.
#[derive(Debug, Default)]
struct SseParser {
    /// Bytes of an unfinished line.
    line: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    /// Take the next bytes; the events they complete.
    fn push(&mut self, bytes: &[u8]) -> Vec<SseFrame> {
        let mut out = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if !self.data.is_empty() {
                    out.push(SseFrame {
                        event: self.event.take().unwrap_or_else(|| "message".into()),
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
                self.event = None;
                continue;
            }
            if line.starts_with(':') {
                continue; // a comment: the keep-alive
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_ref(), ""),
            };
            match field {
                "event" => self.event = Some(value.to_string()),
                "data" => self.data.push(value.to_string()),
                _ => {} // id, retry: not used by the master
            }
        }
        out
    }
}

/// The master's error in words a person can act on.
pub fn explain(status: u16, v: &Value) -> String {
    let msg = v["message"].as_str().unwrap_or("").to_string();
    match status {
        422 => {
            let details: Vec<String> = v["details"]
                .as_array()
                .map(|d| {
                    d.iter()
                        .map(|f| {
                            let errs: Vec<&str> = f["errors"]
                                .as_array()
                                .map(|e| e.iter().filter_map(Value::as_str).collect())
                                .unwrap_or_default();
                            format!("  {}: {}", f["path"].as_str().unwrap_or("/"), errs.join("; "))
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!("the app definition is not valid:\n{}", details.join("\n"))
        }
        409 if v["deployments"].is_array() => format!(
            "a deployment is in progress for this app ({}): wait for it, or pass --force to replace it",
            v["deployments"][0]["id"].as_str().unwrap_or("?")
        ),
        _ if !msg.is_empty() => format!("{msg} (HTTP {status})"),
        _ => format!("the master answered HTTP {status}: {v}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn explains_422_by_field() {
        let v = json!({"message": "Object is not valid", "details": [{"path": "/instances", "errors": ["got -1"]}]});
        let s = explain(422, &v);
        assert!(s.contains("/instances: got -1"), "{s}");
        let e = ClientError::Api {
            status: 409,
            body: json!({"message": "locked", "deployments": [{"id": "d1"}]}),
        };
        assert!(e.to_string().contains("(d1)"), "{e}");
    }

    #[test]
    fn sse_frames_across_any_chunk_boundaries() {
        let text = ": keep-alive\n\nevent: api_post_event\ndata: {\"a\":1}\n\nevent: x\r\ndata: one\r\ndata: two\r\n\r\ndata: plain\n\n";
        let want = vec![
            SseFrame {
                event: "api_post_event".into(),
                data: "{\"a\":1}".into(),
            },
            SseFrame {
                event: "x".into(),
                data: "one\ntwo".into(),
            },
            SseFrame {
                event: "message".into(),
                data: "plain".into(),
            },
        ];
        for size in 1..text.len() {
            let mut p = SseParser::default();
            let mut got = Vec::new();
            for chunk in text.as_bytes().chunks(size) {
                got.extend(p.push(chunk));
            }
            assert_eq!(got, want, "chunks of {size}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_five_seconds() {
        assert!(backoff(1) >= BACKOFF_MIN && backoff(1) <= BACKOFF_MIN.mul_f64(1.2));
        assert!(backoff(2) >= Duration::from_millis(200));
        for n in [7, 8, 20, 1000] {
            let b = backoff(n);
            assert!(
                b >= BACKOFF_MAX && b <= BACKOFF_MAX.mul_f64(1.2),
                "{n}: {b:?}"
            );
        }
    }

    async fn next(events: &mut BoxStream<'static, ClientEvent>) -> ClientEvent {
        tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an item within 10 s")
            .expect("the stream never ends")
    }

    /// The stream against a master that goes away and comes back on the same port:
    /// resync, events, a drop, a resync with what changed meanwhile.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_stream_resyncs_after_the_master_comes_back() {
        use std::sync::Arc;

        use crate::{
            api::apps::put_definition,
            clock::SystemClock,
            master::{Master, MasterConfig},
            metrics::MasterMetrics,
            validate::parse_app,
        };

        let dir = tempfile::tempdir().unwrap();
        let open = || {
            Master::open(
                dir.path(),
                MasterConfig::default(),
                Arc::new(SystemClock),
                MasterMetrics::default(),
            )
            .unwrap()
        };
        let master = open();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let serve = |listener: tokio::net::TcpListener, m: Master| {
            let closer = m.clone();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                axum::serve(listener, crate::api::router(m))
                    .with_graceful_shutdown(async move {
                        let _ = rx.await;
                        closer.close_event_streams();
                    })
                    .await
                    .unwrap();
            });
            (tx, task)
        };
        let (stop, task) = serve(listener, master.clone());
        let client = Client::new(&format!("http://{addr}")).unwrap();
        let mut events = client.events();
        assert_eq!(next(&mut events).await, ClientEvent::Resync(vec![]));
        master
            .write(|s, now| s.create_app(parse_app(json!({"id": "/a", "cmd": "x"})).unwrap(), now))
            .unwrap();
        let mut kinds = Vec::new();
        while kinds.len() < 3 {
            match next(&mut events).await {
                ClientEvent::Event(e) => kinds.push(e.event_type()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            kinds,
            ["event_stream_attached", "api_post_event", "deployment_info"]
        );
        // The master stops; meanwhile the app changes; it comes back on the same port.
        stop.send(()).unwrap();
        task.await.unwrap();
        drop(master);
        let master = open();
        master
            .write(|s, now| {
                let def = put_definition(
                    s.apps.get("/a").map(|a| &a.def),
                    "/a",
                    json!({"instances": 3}),
                    true,
                )?;
                s.put_app(def, true, now)
            })
            .unwrap();
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let (_stop, _task) = serve(listener, master.clone());
        let mut disconnected = 0;
        loop {
            match next(&mut events).await {
                ClientEvent::Disconnected { .. } => disconnected += 1,
                ClientEvent::Resync(apps) => {
                    assert!(disconnected >= 1);
                    assert_eq!(apps.len(), 1);
                    assert_eq!(apps[0].definition.id, "/a");
                    assert_eq!(apps[0].definition.instances, 3, "the state of now");
                    break;
                }
                ClientEvent::Event(e) => panic!("an event between the drop and the resync: {e:?}"),
            }
        }
        master
            .write(|s, now| s.delete_app("/a", true, now))
            .unwrap();
        let mut kinds = Vec::new();
        while !kinds.contains(&"app_terminated_event") {
            match next(&mut events).await {
                ClientEvent::Event(e) => kinds.push(e.event_type()),
                other => panic!("{other:?}"),
            }
        }
    }
}
