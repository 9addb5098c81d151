//! Drover's gateway: an HTTP reverse proxy in front of the apps the scheduler runs.
//!
//! Requests come in over HTTP/1.1 or h2c ([`server`]); the route table ([`table`]) — built
//! from the apps' labels ([`labels`]) and their running, healthy tasks, followed live from
//! the master's event stream with a periodic full resync ([`discovery`]) and swapped whole,
//! never reloaded — says which app answers a Host and path; a consistent hash picks one of
//! a service's instance groups and the power of two choices a backend inside it
//! ([`balance`]); passive health ejects failing backends ([`backend`]); the proxy
//! ([`proxy`]) forwards and counts; the reporter ([`report`]) sends per-instance, per-app
//! and per-service request statistics ([`stats`]) to Kafka; the routes API ([`api`]) shows
//! it all.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod api;
pub mod backend;
pub mod balance;
pub mod discovery;
pub mod labels;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod report;
pub mod server;
pub mod shard;
pub mod stats;
pub mod table;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use arc_swap::ArcSwap;
use drover_schema::time::SharedClock;

pub use crate::{
    backend::OutlierConfig,
    labels::GroupFilter,
    metrics::GatewayMetrics,
    table::{AppView, RouteTable, TaskView},
};

/// How the gateway behaves.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Longest wait for a TCP connection to a backend.
    pub connect_timeout: Duration,
    /// Longest wait for a backend's response headers (then 504).
    pub request_timeout: Duration,
    /// Idle keep-alive connections (clients' and backends') are closed after this long.
    pub idle_timeout: Duration,
    /// Retry an idempotent request without body once on another backend when the connection
    /// to the first failed.
    pub retry: bool,
    /// Passive health.
    pub outlier: OutlierConfig,
    /// The marathon-lb groups served.
    pub groups: GroupFilter,
    /// Full resync with the master this often, on top of its events.
    pub resync_interval: Duration,
    /// Request statistics are reported this often.
    pub report_interval: Duration,
    /// On shutdown, connections get this long to finish their requests.
    pub shutdown_grace: Duration,
    /// Which requests go to the access log (when one is attached).
    pub access_log: access::AccessLog,
    /// Worker threads serving clients, each with its own runtime and backend pool (0: one
    /// per core).
    pub workers: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            retry: true,
            outlier: OutlierConfig::default(),
            groups: GroupFilter::All,
            resync_interval: Duration::from_secs(30),
            report_interval: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
            access_log: access::AccessLog::Errors,
            workers: 0,
        }
    }
}

/// Where the routes come from, for the routes API.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SourceStatus {
    /// The master's URL (none when routes are applied by hand).
    pub master: Option<String>,
    /// The event stream is attached.
    pub connected: bool,
    /// The last problem, if the last attempt failed.
    pub last_error: Option<String>,
    /// When the apps were last read in full.
    pub last_resync: Option<chrono::DateTime<chrono::Utc>>,
}

/// What the proxy, discovery, reporter and API share.
#[derive(Debug)]
pub struct Shared {
    pub(crate) table: ArcSwap<RouteTable>,
    pub(crate) registry: Mutex<table::Registry>,
    pub(crate) cfg: GatewayConfig,
    pub(crate) clock: SharedClock,
    pub(crate) metrics: GatewayMetrics,
    pub(crate) source: Mutex<SourceStatus>,
    pub(crate) access: access::AccessSender,
    access_rx: Mutex<Option<tokio::sync::mpsc::Receiver<access::Entry>>>,
}

/// The gateway. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

impl Gateway {
    /// A gateway with no routes yet.
    pub fn new(cfg: GatewayConfig, metrics: GatewayMetrics, clock: SharedClock) -> Self {
        let (access, access_rx) = match cfg.access_log {
            access::AccessLog::Off => (access::AccessSender::off(), None),
            mode => {
                let (tx, rx) = access::AccessSender::new(mode, 10_000);
                (tx, Some(rx))
            }
        };
        Self {
            shared: Arc::new(Shared {
                table: ArcSwap::from_pointee(RouteTable::default()),
                registry: Mutex::new(table::Registry {
                    metrics: metrics.clone(),
                    ..table::Registry::default()
                }),
                cfg,
                clock,
                metrics,
                source: Mutex::new(SourceStatus::default()),
                access,
                access_rx: Mutex::new(access_rx),
            }),
        }
    }

    /// Build the route table from these apps and swap it in.
    pub fn apply(&self, apps: &[AppView]) {
        discovery::apply(&self.shared, apps);
    }

    /// The route table in use.
    pub fn table(&self) -> Arc<RouteTable> {
        self.shared.table.load_full()
    }

    /// `GET /v1/gateway/routes`.
    pub fn router(&self) -> axum::Router {
        api::router(Arc::clone(&self.shared))
    }

    /// Serve clients on `listener` until `stop` turns true, then let open connections finish
    /// (at most `shutdown_grace`).
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        server::serve(Arc::clone(&self.shared), listener, stop).await;
    }

    /// Follow the master's apps and tasks until `stop` turns true.
    pub async fn follow(
        &self,
        master: drover_scheduler::client::Client,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        discovery::follow(Arc::clone(&self.shared), master, stop).await;
    }

    /// Report request statistics to `sink` every `report_interval` until `stop` turns true
    /// (and once more then).
    pub async fn report<S: report::Sink>(&self, sink: S, stop: tokio::sync::watch::Receiver<bool>) {
        report::run(Arc::clone(&self.shared), sink, stop).await;
    }

    /// Produce the access log to `topic` on `brokers` until `stop` turns true (once: a
    /// second call, or `access_log: Off`, returns at once).
    pub async fn access_log(
        &self,
        brokers: &str,
        topic: &str,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), report::ReportError> {
        let rx = self
            .shared
            .access_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match rx {
            Some(rx) => access::run(brokers, topic, rx, self.shared.metrics.clone(), stop).await,
            None => Ok(()),
        }
    }

    /// Access-log lines dropped because the queue was full (or no log is attached).
    pub fn access_dropped(&self) -> u64 {
        self.shared.access.dropped()
    }

    /// Take the request statistics of the interval that ends now (what the reporter sends).
    pub fn take_stats(&self) -> Vec<drover_schema::RequestStats> {
        report::take(&self.shared)
    }
}
