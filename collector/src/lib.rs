//! The per-host collector: finds every container on the Docker engine, follows its
//! stdout/stderr and samples its stats, and ships both to Kafka, tagged by app.
//!
//! Data flow (one folder or file per stage):
//! [`discovery`] (list + events, reconnect) → per container: [`logs`] (follow from the
//! checkpoint, rejoin partial lines, multi-line joining) and [`stats`] (CPU %, RSS,
//! rssPercent, I/O) → [`sink`] (Kafka producer; delivery acks advance the [`checkpoint`]).
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod discovery;
pub mod logs;
pub mod metrics;
pub mod sink;
pub mod stats;
pub mod tags;

use std::{path::PathBuf, sync::Arc, time::Duration};

use bollard::Docker;
use tokio::sync::watch;

pub use metrics::CollectorMetrics;

use crate::{
    checkpoint::Checkpoints,
    discovery::{DiscoveryConfig, Tracker},
    logs::follow::{FollowConfig, FollowCtx},
    sink::{Sink, SinkConfig},
    tags::AppIdSource,
};

/// Everything the collector needs to run.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// Docker engine: `unix:///var/run/docker.sock`, `tcp://HOST:PORT`, or empty for the
    /// local default (`DOCKER_HOST` or the unix socket).
    pub docker: String,
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Host name on every record.
    pub host: String,
    /// Where to find a container's app ID, in order.
    pub app_id_order: Vec<AppIdSource>,
    /// Stats sampling interval.
    pub stats_interval: Duration,
    /// Directory of the checkpoint file.
    pub data_dir: PathBuf,
    /// Topic for log records.
    pub logs_topic: String,
    /// Topic for stats samples.
    pub metrics_topic: String,
    /// Bound on what the producer buffers (KiB): also while the broker is down. Default 1 MiB:
    /// with more, the idempotent producer keeps its five requests in flight to a slow broker,
    /// and librdkafka's broker thread then busy-loops until an ack (see README). At least the
    /// largest record (`max_line_bytes` and its JSON).
    pub queue_kbytes: u32,
    /// Collect only containers with all these labels (`KEY` or `KEY=VALUE`); empty: every
    /// container on the engine.
    pub include_labels: Vec<String>,
    /// Log follower settings.
    pub follow: FollowConfig,
}

impl CollectorConfig {
    /// Defaults for everything but the broker list.
    pub fn new(brokers: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            docker: String::new(),
            brokers: brokers.into(),
            host: hostname(),
            app_id_order: tags::DEFAULT_APP_ID_ORDER.to_vec(),
            stats_interval: Duration::from_secs(10),
            data_dir: data_dir.into(),
            logs_topic: drover_schema::topics::LOGS.into(),
            metrics_topic: drover_schema::topics::METRICS.into(),
            queue_kbytes: 1024,
            include_labels: Vec::new(),
            follow: FollowConfig::default(),
        }
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Why the collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// The checkpoint file.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// The Kafka producer could not be created.
    #[error("cannot create the Kafka producer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// Run the collector on `docker` (connected by the caller) until `shutdown` becomes true. Waits for Kafka (to read back what was
/// delivered after the last checkpoint) before following any container.
pub async fn run(
    cfg: CollectorConfig,
    docker: Docker,
    metrics: CollectorMetrics,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), CollectorError> {
    let started_at = chrono::Utc::now().timestamp();
    let checkpoint_path = cfg.data_dir.join("checkpoints.json");
    let saved = Checkpoints::load(&checkpoint_path)?;
    let created_since = saved
        .as_ref()
        .map(|c| c.saved_at)
        .filter(|t| *t > 0)
        .unwrap_or(started_at);
    let checkpoints = loop {
        let (brokers, topic, host, saved) = (
            cfg.brokers.clone(),
            cfg.logs_topic.clone(),
            cfg.host.clone(),
            saved.clone(),
        );
        let recovered = tokio::task::spawn_blocking(move || {
            sink::recover(&brokers, &topic, &host, saved, Duration::from_secs(10))
        })
        .await
        .expect("recover task does not panic");
        match recovered {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the logs topic to recover checkpoints; waiting for Kafka (if the topic does not exist: `drover up` and `drover broker` create it, or create it on your cluster)");
                tokio::select! {
                    _ = shutdown.changed() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    };
    let sink = Arc::new(Sink::new(
        &SinkConfig {
            brokers: cfg.brokers.clone(),
            logs_topic: cfg.logs_topic.clone(),
            metrics_topic: cfg.metrics_topic.clone(),
            checkpoint_path,
            queue_kbytes: cfg.queue_kbytes,
        },
        checkpoints,
        metrics.clone(),
    )?);
    sink.save_checkpoints()?;
    let ctx = FollowCtx {
        docker: docker.clone(),
        sink: sink.clone(),
        metrics: metrics.clone(),
        cfg: cfg.follow.clone(),
        shutdown: shutdown.clone(),
    };
    let saver = {
        let sink = sink.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tick.tick() => {}
                }
                if let Err(e) = sink.save_checkpoints() {
                    tracing::error!(error = %e, "cannot save checkpoints");
                }
            }
        })
    };
    let tracker = Tracker::default();
    let sampler = tokio::spawn(discovery::sample_stats(
        ctx.clone(),
        docker,
        tracker.clone(),
        cfg.stats_interval,
    ));
    tracing::info!(host = %cfg.host, brokers = %cfg.brokers, "collector started");
    discovery::run(
        ctx,
        DiscoveryConfig {
            host: cfg.host.clone(),
            app_id_order: cfg.app_id_order.clone(),
            include_labels: cfg.include_labels.clone(),
            created_since,
        },
        tracker,
    )
    .await;
    let _ = saver.await;
    let _ = sampler.await;
    let sink2 = sink.clone();
    tokio::task::spawn_blocking(move || sink2.flush(Duration::from_secs(10)))
        .await
        .expect("flush task does not panic");
    tracing::info!("collector stopped");
    Ok(())
}
