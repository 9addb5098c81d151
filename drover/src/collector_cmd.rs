//! `drover collector`: the per-host collector alone.
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::Args;
use drover_collector::{tags::AppIdSource, CollectorConfig, CollectorMetrics};
use drover_kafka::admin;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::{
    datadir,
    http::{self, bind_http},
    telemetry::ProcessMetrics,
};

/// Collector options shared by `drover collector` and `drover up`.
#[derive(Debug, Clone, Args)]
pub struct CollectorOpts {
    /// Docker engine to collect from: unix:///PATH or tcp://HOST:PORT (default: $DOCKER_HOST
    /// or the local socket).
    #[arg(
        long,
        value_name = "URI",
        default_value = "",
        hide_default_value = true
    )]
    pub docker: String,
    /// How often to sample each container's stats (e.g. 10s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub stats_interval: Duration,
    /// Host name put on every record (default: this machine's).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Where a container's app ID comes from, first match wins: label (drover.app), env
    /// (DROVER_APP_ID, MARATHON_APP_ID), compose (service label), name.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "label,env,compose,name", value_parser = parse_app_id_source)]
    pub app_id_order: Vec<AppIdSource>,
    /// Collect only containers that have this label (KEY or KEY=VALUE); repeat to require
    /// several. Default: every container on the engine, whoever started it.
    #[arg(long, value_name = "LABEL")]
    pub include_label: Vec<String>,
}

fn parse_app_id_source(s: &str) -> Result<AppIdSource, String> {
    match s.trim() {
        "label" => Ok(AppIdSource::Label),
        "env" => Ok(AppIdSource::Env),
        "compose" => Ok(AppIdSource::Compose),
        "name" => Ok(AppIdSource::Name),
        other => Err(format!(
            "unknown app ID source {other:?}: use label, env, compose or name"
        )),
    }
}

impl CollectorOpts {
    /// The collector's config for these brokers and state dir.
    pub fn config(&self, brokers: &str, data_dir: PathBuf) -> CollectorConfig {
        let mut cfg = CollectorConfig::new(brokers, data_dir);
        cfg.docker = self.docker.clone();
        cfg.stats_interval = self.stats_interval;
        cfg.app_id_order = self.app_id_order.clone();
        cfg.include_labels = self.include_label.clone();
        if let Some(h) = &self.host {
            cfg.host = h.clone();
        }
        cfg
    }
}

/// Options of `drover collector`.
#[derive(Debug, Args)]
pub struct CollectorArgs {
    /// Kafka bootstrap servers (host:port,...).
    #[arg(long, value_name = "BROKERS", env = "DROVER_KAFKA")]
    pub kafka: String,
    /// Directory for the collector's checkpoints.
    #[arg(long, value_name = "DIR", default_value = "./drover-data/collector")]
    pub data_dir: PathBuf,
    /// Address of /healthz and /metrics.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8082")]
    pub http: SocketAddr,
    #[command(flatten)]
    pub opts: CollectorOpts,
}

/// Run the collector until Ctrl-C or SIGTERM.
pub async fn run(args: CollectorArgs) -> anyhow::Result<()> {
    let dir = datadir::prepare(&args.data_dir)?;
    let _lock = datadir::lock(&dir, "drover collector")?;
    let listener = bind_http(args.http).await?;
    admin::check_reachable(&args.kafka, Duration::from_secs(5)).await?;
    let mut registry = Registry::default();
    let process = ProcessMetrics::register(&mut registry);
    let metrics = CollectorMetrics::register(
        registry
            .sub_registry_with_prefix("drover")
            .sub_registry_with_prefix("collector"),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let docker = crate::docker::connect(&args.opts.docker).await?;
    let collector = tokio::spawn(drover_collector::run(
        args.opts.config(&args.kafka, dir),
        docker,
        metrics,
        stop_rx,
    ));
    println!("collector shipping to {}", args.kafka);
    println!("  health and metrics  http://{}/metrics", args.http);
    let served = http::serve_role(
        listener,
        registry,
        process,
        &args.kafka,
        axum::Router::new(),
    )
    .await;
    let _ = stop_tx.send(true);
    collector
        .await
        .context("the collector task panicked")?
        .context("the collector failed")?;
    served
}
