//! `drover master` and `drover agent`: the scheduler's roles alone, for many hosts.
use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use clap::Args;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use super::{spawn_agent, AgentOpts, MasterOpts};
use crate::{
    datadir,
    http::{self, bind_http, shutdown_signal, AppState},
    telemetry::ProcessMetrics,
};

// === drover master ===

/// Options of `drover master`.
#[derive(Debug, Args)]
pub struct MasterArgs {
    /// Address of the API (Marathon's /v2, Drover's /v1, /healthz, /metrics).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8080",
        env = "DROVER_HTTP"
    )]
    pub http: SocketAddr,
    /// Directory for the scheduler's store (`scheduler/scheduler.redb` inside).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "./drover-data",
        env = "DROVER_DATA_DIR"
    )]
    pub data_dir: PathBuf,
    /// Kafka bootstrap servers (host:port,…): publish the master's events on
    /// `drover.events.v1` there (created if missing), for Alertman, the autoscaler or any
    /// consumer. Without it the events are only on `/v2/events`.
    #[arg(long, value_name = "BROKERS", env = "DROVER_KAFKA")]
    pub kafka: Option<String>,
    #[command(flatten)]
    pub opts: MasterOpts,
}

/// Run the master until Ctrl-C or SIGTERM.
pub async fn run_master(args: MasterArgs) -> anyhow::Result<()> {
    let dir = datadir::prepare(&args.data_dir)?;
    let _lock = datadir::lock(&dir.join("scheduler"), "drover master")?;
    let listener = bind_http(args.http).await?;
    // Off loopback without auth is refused here, before anything starts.
    let mut guard = http::guard_for(args.http, Some(&dir))?;
    let mut registry = Registry::default();
    let process = ProcessMetrics::register(&mut registry);
    let master = args.opts.open(&dir, &mut registry)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let events = match &args.kafka {
        Some(brokers) => {
            drover_kafka::admin::check_reachable(brokers, Duration::from_secs(10)).await?;
            drover_kafka::admin::ensure_topics(brokers, &drover_kafka::admin::default_topics(3))
                .await?;
            // The audit trail of writes also goes to drover.events.v1.
            let (audit_tx, audit_rx) = tokio::sync::mpsc::unbounded_channel();
            guard.events = Some(audit_tx);
            crate::events::spawn_publisher(brokers, "drover-audit", audit_rx, stop_rx.clone())?;
            Some(
                drover_scheduler::publish::spawn(&master, brokers, stop_rx.clone())
                    .context("cannot create the scheduler's Kafka producer")?,
            )
        }
        None => None,
    };
    let guard = drover_auth::Guard::new(guard);
    let looped = tokio::spawn(master.clone().run(args.opts.reconcile_interval, stop_rx));
    let state = AppState {
        registry: Arc::new(registry),
        process,
        kafka: args
            .kafka
            .clone()
            .unwrap_or_else(|| "(none: events only on /v2/events)".into()),
        broker: None,
        guard,
    };
    println!("drover master is up");
    println!("  api       http://{}/v2/apps", args.http);
    println!(
        "  agents    drover agent --master http://{} --node-id ID",
        args.http
    );
    println!("  store     {}", dir.join("scheduler").display());
    if let Some(brokers) = &args.kafka {
        println!(
            "  events    {brokers} topic {}",
            drover_schema::topics::EVENTS
        );
    }
    let closer = master.clone();
    let served = http::serve(
        listener,
        http::app_with(state, drover_scheduler::api::router(master)),
        async move {
            shutdown_signal().await;
            closer.close_event_streams();
        },
    )
    .await;
    let _ = stop_tx.send(true);
    let _ = looped.await;
    if let Some(events) = events {
        let _ = events.await;
    }
    served
}

// === drover agent ===

/// Options of `drover agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The master's URL.
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080",
        env = "DROVER_MASTER"
    )]
    pub master: String,
    /// Docker engine: unix:///PATH or tcp://HOST:PORT (default: $DOCKER_HOST or the local
    /// socket).
    #[arg(
        long,
        value_name = "URI",
        default_value = "",
        hide_default_value = true
    )]
    pub docker: String,
    /// Address of the agent's /healthz and /metrics.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8083")]
    pub http: SocketAddr,
    #[command(flatten)]
    pub opts: AgentOpts,
}

/// Run an agent until Ctrl-C or SIGTERM. Its containers keep running when it stops.
pub async fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    let listener = bind_http(args.http).await?;
    let mut registry = Registry::default();
    let process = ProcessMetrics::register(&mut registry);
    let (stop_tx, stop_rx) = watch::channel(false);
    let cfg = args.opts.config(&args.master, &args.docker);
    println!("drover agent {} → master {}", cfg.node_id, args.master);
    println!(
        "  offers   {} cpus, {} MiB, ports {}-{}",
        cfg.resources.cpus, cfg.resources.mem, cfg.port_range.0, cfg.port_range.1
    );
    println!("  metrics  http://{}/metrics", args.http);
    let docker = crate::docker::connect(&args.docker).await?;
    let agent = spawn_agent(cfg, docker, &mut registry, stop_rx);
    let served = http::serve_role(
        listener,
        registry,
        process,
        "(not used by the agent)",
        axum::Router::new(),
    )
    .await;
    let _ = stop_tx.send(true);
    let _ = agent.await;
    served
}
