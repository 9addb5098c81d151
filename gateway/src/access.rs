//! The access log: each request (`all`) or each failed one (`errors`, 5xx and the gateway's
//! own 404/502/503/504) as a JSON line on `drover.logs.v1`, tagged with the app and the task
//! like a container's line, so the log search answers "which requests got 502 from which
//! instance" with one query (`status:502 AND app:/shop/web`). Lines leave through a bounded
//! queue: when Kafka falls behind, lines are dropped and counted, requests never wait.
use std::{
    str::FromStr,
    sync::atomic::{AtomicU64, Ordering},
};

use chrono::{DateTime, Utc};
use drover_schema::{LogRecord, Source, Stream};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::{metrics::GatewayMetrics, report::ReportError};

/// Which requests are logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessLog {
    /// None.
    Off,
    /// 5xx answers and the gateway's own errors (404 no route included).
    #[default]
    Errors,
    /// Every request.
    All,
}

impl FromStr for AccessLog {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Self::Off),
            "errors" => Ok(Self::Errors),
            "all" => Ok(Self::All),
            _ => Err(format!(
                "{s:?} is not an access-log mode: write errors, all or off"
            )),
        }
    }
}

impl AccessLog {
    /// Whether a request with this status (made by the gateway or not) is logged.
    pub fn logs(self, status: u16, gateway_error: bool) -> bool {
        match self {
            Self::Off => false,
            Self::All => true,
            Self::Errors => gateway_error || status >= 500,
        }
    }
}

/// One logged request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// When it arrived.
    #[serde(skip)]
    pub ts: DateTime<Utc>,
    /// `info`, or `warn` for 5xx and gateway errors (the log search's level).
    pub level: &'static str,
    /// Always `access`.
    pub msg: &'static str,
    /// Method.
    pub method: String,
    /// Host as the client sent it.
    pub host: String,
    /// Path and query (at most 2,048 bytes).
    pub path: String,
    /// Status sent to the client.
    pub status: u16,
    /// Arrival to end of response, milliseconds.
    pub latency_ms: f64,
    /// Response body bytes.
    pub bytes: u64,
    /// The client's IP.
    pub client: String,
    /// Request ID.
    pub request_id: String,
    /// The app (absent when no route matched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The task that answered, or failed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Its node.
    #[serde(skip)]
    pub node: Option<String>,
    /// Its address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Why the gateway answered itself (`no_route`, `no_backend`, `connect`,
    /// `bad_response`, `timeout`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_error: Option<&'static str>,
}

/// Where entries go: the proxy's end of the queue.
#[derive(Debug, Clone)]
pub struct AccessSender {
    mode: AccessLog,
    tx: Option<mpsc::Sender<Entry>>,
    dropped: std::sync::Arc<AtomicU64>,
}

impl AccessSender {
    /// Entries are logged in `mode` into a queue of `capacity`; the receiver goes to [`run`].
    pub fn new(mode: AccessLog, capacity: usize) -> (Self, mpsc::Receiver<Entry>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Self {
                mode,
                tx: Some(tx),
                dropped: Default::default(),
            },
            rx,
        )
    }

    /// Logs nothing.
    pub fn off() -> Self {
        Self {
            mode: AccessLog::Off,
            tx: None,
            dropped: Default::default(),
        }
    }

    /// Whether a request with this outcome is logged.
    pub fn wants(&self, status: u16, gateway_error: bool) -> bool {
        self.tx.is_some() && self.mode.logs(status, gateway_error)
    }

    /// Queue an entry; dropped (and counted) when the queue is full.
    pub fn send(&self, e: Entry) {
        if let Some(tx) = &self.tx {
            if tx.try_send(e).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Entries dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The log record of an entry, as the collector would write a container's line.
pub fn record(e: &Entry, host: &str, container_id: &str, seq: u64) -> LogRecord {
    LogRecord {
        v: drover_schema::SCHEMA_VERSION,
        ts: e.ts,
        end_ts: None,
        source: Source {
            host: host.to_string(),
            node: e.node.clone(),
            app: e.app.clone().unwrap_or_else(|| "drover-gateway".into()),
            task: e.instance.clone(),
            group: None,
            container_id: container_id.to_string(),
            container_name: "drover-gateway".into(),
            image: String::new(),
        },
        stream: Stream::Stdout,
        seq,
        line: serde_json::to_string(e).unwrap_or_default(),
    }
}

/// Produce queued entries to `topic` on `brokers` until `stop` turns true. Each gateway
/// process writes as its own pseudo-container (`drover-gateway-HOST-PID`), `seq` from 1.
pub async fn run(
    brokers: &str,
    topic: &str,
    mut rx: mpsc::Receiver<Entry>,
    metrics: GatewayMetrics,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ReportError> {
    let producer: FutureProducer = drover_kafka::config::producer(brokers, "drover-gateway-access")
        .create()
        .map_err(|source| ReportError::Producer {
            brokers: brokers.to_string(),
            source,
        })?;
    let host = hostname();
    let container_id = format!(
        "drover-gateway-{host}-{}-{}",
        std::process::id(),
        Utc::now().timestamp_millis()
    );
    let mut seq = 0u64;
    loop {
        let e = tokio::select! {
            e = rx.recv() => match e { Some(e) => e, None => return Ok(()) },
            _ = crate::server::stopped(&mut stop) => return Ok(()),
        };
        seq += 1;
        let rec = record(&e, &host, &container_id, seq);
        let value = drover_schema::encode(&rec);
        let result =
            producer.send_result(FutureRecord::to(topic).key(&container_id).payload(&value));
        let counted = match result {
            Ok(_) => "ok",
            Err(_) => "error",
        };
        metrics
            .access_lines
            .get_or_create(&crate::metrics::ResultLabels { result: counted })
            .inc();
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(status: u16, gateway_error: Option<&'static str>) -> Entry {
        Entry {
            ts: Utc::now(),
            level: if status >= 500 { "warn" } else { "info" },
            msg: "access",
            method: "GET".into(),
            host: "shop".into(),
            path: "/x?y=1".into(),
            status,
            latency_ms: 1.5,
            bytes: 3,
            client: "10.0.0.1".into(),
            request_id: "r1".into(),
            app: Some("/web".into()),
            instance: Some("web.1".into()),
            node: Some("n1".into()),
            upstream: Some("127.0.0.1:1".into()),
            gateway_error,
        }
    }

    #[test]
    fn modes() {
        assert!(!AccessLog::Off.logs(502, true));
        assert!(AccessLog::Errors.logs(502, true));
        assert!(AccessLog::Errors.logs(404, true));
        assert!(AccessLog::Errors.logs(500, false));
        assert!(!AccessLog::Errors.logs(200, false));
        assert!(AccessLog::All.logs(200, false));
        assert_eq!("errors".parse::<AccessLog>(), Ok(AccessLog::Errors));
        assert!("loud"
            .parse::<AccessLog>()
            .unwrap_err()
            .contains("errors, all or off"));
    }

    #[test]
    fn a_line_is_a_container_line_of_the_app_with_json_fields() {
        let rec = record(&entry(502, Some("connect")), "h", "drover-gateway-h-1-2", 7);
        assert_eq!(rec.source.app, "/web");
        assert_eq!(rec.source.task.as_deref(), Some("web.1"));
        assert_eq!(rec.source.node.as_deref(), Some("n1"));
        assert_eq!(rec.seq, 7);
        let v: serde_json::Value = serde_json::from_str(&rec.line).unwrap();
        assert_eq!(v["status"], 502);
        assert_eq!(v["level"], "warn");
        assert_eq!(v["gateway_error"], "connect");
        assert_eq!(v["instance"], "web.1");
        let (s, mut rx) = AccessSender::new(AccessLog::Errors, 1);
        assert!(s.wants(503, true) && !s.wants(200, false));
        s.send(entry(500, None));
        s.send(entry(500, None));
        assert_eq!(s.dropped(), 1, "the queue holds one");
        assert_eq!(rx.try_recv().unwrap().status, 500);
    }
}
