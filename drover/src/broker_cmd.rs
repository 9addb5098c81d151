//! `drover broker`: only the embedded Kafka-protocol broker.
use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use clap::Args;
use drover_kafka::embedded::{BrokerConfig, BrokerMetrics, EmbeddedBroker};
use prometheus_client::registry::Registry;

use crate::{
    datadir,
    http::{self, bind_http, shutdown_signal, AppState},
    telemetry::ProcessMetrics,
};

/// Options of `drover broker`.
#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Address the broker listens on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9092")]
    pub listen: SocketAddr,
    /// Directory for the broker's messages and offsets (a SQLite file) and its log.
    #[arg(long, value_name = "DIR", default_value = "./drover-data/broker")]
    pub data_dir: PathBuf,
    /// Address of the /healthz and /metrics endpoints.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    pub http: SocketAddr,
    /// Path of the tansu program (default: the one scripts/setup.sh installed).
    #[arg(long, value_name = "PATH", env = "DROVER_TANSU_BIN")]
    pub tansu_bin: Option<PathBuf>,
    /// Partitions for each of Drover's topics, created when missing (as `drover up` does), so
    /// that collectors and logpipes started separately find them.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=256))]
    pub partitions: i32,
    /// Retention of one of Drover's topics, `TOPIC=DURATION` (repeatable; TOPIC is a topic
    /// name or logs, metrics, events, deadletter). Defaults: logs 3d, metrics 2d, events 30d,
    /// deadletter 30d. Set when a topic is created and on existing topics at every start; the
    /// embedded broker deletes older records in its maintenance (see
    /// --maintenance-interval).
    #[arg(long, value_name = "TOPIC=DURATION", value_parser = crate::broker_cmd::parse_topic_retention)]
    pub topic_retention: Vec<String>,
    /// How often the broker deletes the records past their topic's retention (it also does at
    /// start). Each pass scans the stored records and holds up the broker's other work while
    /// it runs, so minutes, not seconds, on a busy host.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub maintenance_interval: std::time::Duration,
}

/// Run the broker until Ctrl-C or SIGTERM.
pub async fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let dir = datadir::prepare(&args.data_dir)?;
    let _lock = datadir::lock(&dir, "drover broker")?;
    let listener = bind_http(args.http).await?;
    let mut registry = Registry::default();
    let process = ProcessMetrics::register(&mut registry);
    let metrics = BrokerMetrics::register(
        registry
            .sub_registry_with_prefix("drover")
            .sub_registry_with_prefix("broker"),
    );
    let broker = start_broker(
        args.listen,
        dir,
        args.tansu_bin,
        args.maintenance_interval,
        metrics,
    )
    .await?;
    if let Err(e) = drover_kafka::admin::ensure_topics(
        &broker.bootstrap(),
        &drover_kafka::admin::default_topics_with(
            args.partitions,
            &topic_retention(&args.topic_retention),
        ),
    )
    .await
    {
        broker.stop().await;
        return Err(
            anyhow::Error::new(e).context("cannot create Drover's topics on the embedded broker")
        );
    }
    println!("kafka broker listening on {}", broker.bootstrap());
    println!(
        "  topics {} ({} partitions each, created if missing)",
        drover_kafka::admin::default_topics(args.partitions)
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        args.partitions
    );
    println!("  health and metrics  http://{}/metrics", args.http);
    let state = AppState {
        registry: Arc::new(registry),
        process,
        kafka: broker.bootstrap(),
        broker: Some(broker.status()),
        guard: drover_auth::Guard::new(http::guard_for(args.http, None)?),
    };
    let served = http::serve(listener, http::app(state), shutdown_signal()).await;
    broker.stop().await;
    served
}

/// Start the embedded broker in `dir`.
pub async fn start_broker(
    listen: SocketAddr,
    dir: PathBuf,
    program: Option<PathBuf>,
    maintenance_interval: std::time::Duration,
    metrics: BrokerMetrics,
) -> anyhow::Result<EmbeddedBroker> {
    eprintln!("starting the embedded Kafka broker on {listen}…");
    let mut cfg = BrokerConfig::new(listen, dir);
    cfg.program = program;
    cfg.maintenance_interval = maintenance_interval;
    Ok(EmbeddedBroker::start(cfg, metrics).await?)
}

/// Checks one `--topic-retention TOPIC=DURATION` (a usage error when it does not read).
pub fn parse_topic_retention(s: &str) -> Result<String, String> {
    drover_kafka::admin::TopicRetention::default().with_overrides(&[s.to_string()])?;
    Ok(s.to_string())
}

/// The topics' retention: the defaults with the `--topic-retention` flags (already checked).
pub fn topic_retention(flags: &[String]) -> drover_kafka::admin::TopicRetention {
    drover_kafka::admin::TopicRetention::default()
        .with_overrides(flags)
        .unwrap_or_default()
}
