//! `drover gateway` (the gateway alone, following a master) and `drover gateway routes`
//! (client of the routes API); the gateway's options and its start inside `drover up`.
use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use clap::{Args, Subcommand};
use drover_gateway::{report::KafkaSink, Gateway, GatewayConfig, GatewayMetrics, GroupFilter};
use prometheus_client::registry::Registry;
use serde_json::Value;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::{
    http::{self, bind_http},
    telemetry::ProcessMetrics,
};

/// Gateway options shared by `drover gateway` and `drover up`.
#[derive(Debug, Clone, Args)]
pub struct GatewayOpts {
    /// Longest wait for a TCP connection to a backend (then the request is retried on
    /// another backend when it is idempotent, or answered 502).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub gateway_connect_timeout: Duration,
    /// Longest wait for a backend's response headers (then 504).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub gateway_request_timeout: Duration,
    /// Idle keep-alive connections, from clients and to backends, close after this long.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub gateway_idle_timeout: Duration,
    /// Read every app in full this often, on top of following the master's events.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub gateway_resync_interval: Duration,
    /// Report request statistics per instance, app and service this often (to
    /// drover.metrics.v1).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub report_interval: Duration,
    /// Serve only apps whose marathon-lb HAPROXY_GROUP is one of these (repeatable; `*`, the
    /// default, serves every app; apps without HAPROXY_GROUP are always served).
    #[arg(long, value_name = "GROUP")]
    pub haproxy_group: Vec<String>,
    /// Do not retry idempotent requests on another backend after a failed connect.
    #[arg(long)]
    pub no_gateway_retry: bool,
    /// Which requests the gateway writes to the log search (drover.logs.v1, as lines of the
    /// app and instance): `errors` (5xx and the gateway's own 404/502/503/504), `all`, `off`.
    #[arg(long, value_name = "MODE", default_value = "errors")]
    pub access_log: drover_gateway::access::AccessLog,
    /// Threads serving the gateway's clients, each with its own event loop and keep-alive
    /// pool to the backends (0: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub gateway_workers: usize,
}

impl GatewayOpts {
    /// The gateway's config.
    pub fn config(&self) -> GatewayConfig {
        GatewayConfig {
            connect_timeout: self.gateway_connect_timeout,
            request_timeout: self.gateway_request_timeout,
            idle_timeout: self.gateway_idle_timeout,
            retry: !self.no_gateway_retry,
            groups: GroupFilter::from_args(&self.haproxy_group),
            resync_interval: self.gateway_resync_interval.max(Duration::from_secs(1)),
            report_interval: self.report_interval.max(Duration::from_millis(100)),
            access_log: self.access_log,
            workers: self.gateway_workers,
            ..GatewayConfig::default()
        }
    }
}

/// Bind the gateway's address, with an error that says what to do when it is taken.
pub async fn bind_gateway(addr: SocketAddr, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "cannot serve the gateway on {addr}: the address is already in use; pass {flag} ADDR to use another port{}",
                if flag == "--gateway" { " (or --no-gateway)" } else { "" }
            )
        } else {
            anyhow::anyhow!("cannot serve the gateway on {addr}: {e}; pass {flag} ADDR")
        }
    })
}

/// A gateway serving, following a master and reporting.
#[derive(Debug)]
pub struct RunningGateway {
    /// The gateway (its router serves the routes API).
    pub gateway: Gateway,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningGateway {
    /// Start serving `listener`, following `master`, reporting to `kafka` (when given),
    /// until `stop` turns true.
    pub fn start(
        opts: &GatewayOpts,
        listener: TcpListener,
        master: &str,
        kafka: Option<&str>,
        registry: &mut Registry,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let metrics = GatewayMetrics::register(registry);
        let gateway = Gateway::new(
            opts.config(),
            metrics.clone(),
            drover_schema::time::system_clock(),
        );
        let client = drover_scheduler::client::Client::new(master)
            .context("cannot make the gateway's client of the master")?;
        let mut tasks = Vec::new();
        let g = gateway.clone();
        let s = stop.clone();
        tasks.push(tokio::spawn(async move { g.serve(listener, s).await }));
        let g = gateway.clone();
        let s = stop.clone();
        tasks.push(tokio::spawn(async move { g.follow(client, s).await }));
        if let Some(brokers) = kafka {
            let sink = KafkaSink::new(brokers, drover_schema::topics::METRICS, metrics)?;
            let g = gateway.clone();
            let s = stop.clone();
            tasks.push(tokio::spawn(async move { g.report(sink, s).await }));
            let g = gateway.clone();
            let brokers = brokers.to_string();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = g
                    .access_log(&brokers, drover_schema::topics::LOGS, stop)
                    .await
                {
                    tracing::error!(error = %e, "the gateway's access log stopped");
                }
            }));
        }
        Ok(Self { gateway, tasks })
    }

    /// Wait for it to stop (after `stop` turned true).
    pub async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// `drover gateway`: run the gateway, or `drover gateway routes`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GatewayArgs {
    #[command(subcommand)]
    pub command: Option<GatewayCommand>,
    #[command(flatten)]
    pub run: GatewayRunArgs,
}

/// `drover gateway …` client commands.
#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// List the routes: host and path → app → backends with health, ejection, in-flight
    /// requests, requests/s and p99 over the last report interval; and the refused routes
    /// with why.
    Routes(RoutesArgs),
}

/// Options of `drover gateway routes`.
pub type RoutesArgs = crate::api_client::ClientArgs;

/// Options of `drover gateway` run alone.
#[derive(Debug, Args)]
pub struct GatewayRunArgs {
    /// The master to follow (`drover up`'s --http address, or `drover master`'s).
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080",
        env = "DROVER_MASTER"
    )]
    pub master: String,
    /// Address the gateway serves clients on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Address of the routes API (/v1/gateway/routes), /healthz and /metrics.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8085")]
    pub http: SocketAddr,
    /// Kafka bootstrap servers for the request statistics (drover.metrics.v1); without it
    /// the statistics are only on /metrics and the routes API.
    #[arg(long, value_name = "BROKERS", env = "DROVER_KAFKA")]
    pub kafka: Option<String>,
    #[command(flatten)]
    pub opts: GatewayOpts,
}

/// `drover gateway [routes]`.
pub async fn run(args: GatewayArgs) -> anyhow::Result<()> {
    match args.command {
        Some(GatewayCommand::Routes(r)) => routes(r).await,
        None => run_alone(args.run).await,
    }
}

async fn run_alone(args: GatewayRunArgs) -> anyhow::Result<()> {
    let http_listener = bind_http(args.http).await?;
    let listener = bind_gateway(args.listen, "--listen").await?;
    if let Some(k) = &args.kafka {
        drover_kafka::admin::check_reachable(k, Duration::from_secs(5)).await?;
    }
    let mut registry = Registry::default();
    let process = ProcessMetrics::register(&mut registry);
    let (stop_tx, stop_rx) = watch::channel(false);
    let running = RunningGateway::start(
        &args.opts,
        listener,
        &args.master,
        args.kafka.as_deref(),
        registry
            .sub_registry_with_prefix("drover")
            .sub_registry_with_prefix("gateway"),
        stop_rx,
    )?;
    println!("gateway following {}", args.master);
    println!("  serving        http://{}/", args.listen);
    println!(
        "  routes api     http://{}/v1/gateway/routes   (drover gateway routes --server http://{})",
        args.http, args.http
    );
    let router = running.gateway.router();
    let served = http::serve_role(
        http_listener,
        registry,
        process,
        args.kafka.as_deref().unwrap_or("-"),
        router,
    )
    .await;
    let _ = stop_tx.send(true);
    running.wait().await;
    served
}

async fn routes(args: RoutesArgs) -> anyhow::Result<()> {
    let path = "/v1/gateway/routes";
    let (status, v) =
        crate::api_client::call_raw(&args.server, reqwest::Method::GET, path, &[], None).await?;
    if status == reqwest::StatusCode::NOT_FOUND {
        anyhow::bail!("{}{path} answered 404: this server runs no gateway (drover up --no-gateway?); pass --server URL of one that does", args.server.trim_end_matches('/'));
    }
    if !status.is_success() {
        anyhow::bail!(
            "{}{path} answered HTTP {status}: {v}",
            args.server.trim_end_matches('/')
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    print!("{}", render_routes(&v));
    Ok(())
}

/// The routes API's answer as a table.
pub fn render_routes(v: &Value) -> String {
    let mut out = String::new();
    let empty = Vec::new();
    let routes = v["routes"].as_array().unwrap_or(&empty);
    if routes.is_empty() {
        out.push_str(
            "no routes: label an app with drover.gateway.host (or HAPROXY_0_VHOST) to route it\n",
        );
    }
    for r in routes {
        let host = r["host"].as_str().unwrap_or("*");
        let path = r["path"].as_str().unwrap_or("/");
        let service = r["service"]
            .as_str()
            .map(|s| format!("  service {s}, hash {}", hash_key(&r["hash_key"])))
            .unwrap_or_default();
        out.push_str(&format!("{host}{path}{service}\n"));
        for g in r["groups"].as_array().unwrap_or(&empty) {
            let backends = g["backends"].as_array().unwrap_or(&empty);
            out.push_str(&format!(
                "  {}  {} backend{} of {} task{}  in-flight {}  {:.1} req/s  p99 {}\n",
                g["app"].as_str().unwrap_or("?"),
                backends.len(),
                if backends.len() == 1 { "" } else { "s" },
                g["tasks"],
                if g["tasks"] == 1 { "" } else { "s" },
                g["in_flight"],
                g["rps"].as_f64().unwrap_or(0.0),
                ms(&g["p99_ms"]),
            ));
            for b in backends {
                let state = if b["ejected"] == true {
                    format!(
                        "EJECTED until {}",
                        b["ejected_until"].as_str().unwrap_or("?")
                    )
                } else {
                    "ok".into()
                };
                out.push_str(&format!(
                    "    {:<21} {:<10} in-flight {:<3} {:>7.1} req/s  p99 {:<9} {}\n",
                    b["addr"].as_str().unwrap_or("?"),
                    state,
                    b["in_flight"],
                    b["rps"].as_f64().unwrap_or(0.0),
                    ms(&b["p99_ms"]),
                    b["task"].as_str().unwrap_or("?"),
                ));
            }
        }
    }
    let refused = v["refused"].as_array().unwrap_or(&empty);
    if !refused.is_empty() {
        out.push_str("\nrefused:\n");
        for r in refused {
            out.push_str(&format!(
                "  {}: {}\n",
                r["app"].as_str().unwrap_or("?"),
                r["reason"].as_str().unwrap_or("?")
            ));
        }
    }
    if v["source"]["connected"] == false && v["source"]["master"].is_string() {
        out.push_str(&format!(
            "\nnot connected to the master {} ({}): serving the last routes known\n",
            v["source"]["master"].as_str().unwrap_or("?"),
            v["source"]["last_error"].as_str().unwrap_or("connecting")
        ));
    }
    out
}

fn ms(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |x| format!("{x:.1}ms"))
}

fn hash_key(v: &Value) -> String {
    match (v["kind"].as_str(), v["name"].as_str()) {
        (Some(k), Some(n)) => format!("{k}:{n}"),
        (Some(k), None) => k.to_string(),
        _ => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn routes_render_as_a_table() {
        let v = json!({
            "routes": [{"host": "shop", "path": "/", "service": null, "hash_key": {"kind": "ip"},
                "groups": [{"app": "/web", "tasks": 2, "in_flight": 1, "rps": 12.5, "p99_ms": 3.2,
                    "backends": [{"addr": "127.0.0.1:31000", "task": "web.1", "ejected": false, "in_flight": 1, "rps": 12.5, "p99_ms": 3.2}]}]}],
            "refused": [{"app": "/bad", "reason": "port index 2 is out of range"}],
            "source": {"master": "http://m", "connected": true},
        });
        let s = render_routes(&v);
        assert!(s.contains("shop/\n"), "{s}");
        assert!(
            s.contains("/web  1 backend of 2 tasks  in-flight 1  12.5 req/s  p99 3.2ms"),
            "{s}"
        );
        assert!(s.contains("127.0.0.1:31000"), "{s}");
        assert!(s.contains("/bad: port index 2 is out of range"), "{s}");
    }
}
