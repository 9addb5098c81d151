//! `drover metrics-store` (the metrics topic into windows and Parquet history, with the query
//! API) and the client commands `drover metrics query|top|latest`.
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use clap::{Args, Subcommand};
use drover_kafka::admin;
use drover_metrics::{Ingest, IngestConfig, MetricsStore, StoreConfig, StoreMetrics};
use prometheus_client::registry::Registry;

use crate::{
    datadir,
    http::{self, bind_http},
    telemetry::ProcessMetrics,
    worker::Worker,
};

/// Metrics store options shared by `drover metrics-store` and `drover up`.
#[derive(Debug, Clone, Args)]
pub struct MetricsOpts {
    /// Remove metrics history older than this; `0s` keeps everything.
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub metrics_retention: Duration,
    /// How much recent data the metrics store keeps in memory at full resolution (the
    /// window that `top`, alerting and autoscaling read).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub metrics_window: Duration,
    /// Write new samples to Parquet and acknowledge them to Kafka at least this often.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub metrics_flush_interval: Duration,
}

impl MetricsOpts {
    fn configs(&self, brokers: &str) -> (StoreConfig, IngestConfig) {
        let store = StoreConfig {
            window: self.metrics_window.max(Duration::from_secs(60)),
            retention: (!self.metrics_retention.is_zero()).then_some(self.metrics_retention),
            ..StoreConfig::default()
        };
        let mut ingest = IngestConfig::new(brokers);
        ingest.flush_interval = self.metrics_flush_interval;
        (store, ingest)
    }
}

/// A metrics store consuming on its own thread.
#[derive(Debug)]
pub struct RunningMetricsStore {
    /// The store (the API reads it).
    pub store: Arc<MetricsStore>,
    worker: Worker,
}

impl RunningMetricsStore {
    /// Opens the store in `dir` and starts consuming `brokers`.
    pub fn start(
        opts: &MetricsOpts,
        brokers: &str,
        dir: &Path,
        registry: &mut Registry,
    ) -> anyhow::Result<Self> {
        let (store_cfg, ingest_cfg) = opts.configs(brokers);
        let store =
            Arc::new(MetricsStore::open(dir, store_cfg).context("cannot open the metrics store")?);
        let metrics = StoreMetrics::register(registry);
        let ingest = Ingest::new(ingest_cfg, Arc::clone(&store), metrics);
        let worker = Worker::spawn("metrics store", move |stop| ingest.run(stop))?;
        Ok(Self { store, worker })
    }

    /// Writes and acknowledges what is pending, and stops.
    pub async fn stop(self) {
        self.worker.stop().await;
    }
}

/// Options of `drover metrics-store`.
#[derive(Debug, Args)]
pub struct MetricsStoreArgs {
    /// Kafka bootstrap servers (host:port,...).
    #[arg(long, value_name = "BROKERS", env = "DROVER_KAFKA")]
    pub kafka: String,
    /// Directory of the history (hourly Parquet files).
    #[arg(long, value_name = "DIR", default_value = "./drover-data/metrics")]
    pub data_dir: PathBuf,
    /// Address of the query API (/api/metrics/...), /healthz and /metrics.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8084")]
    pub http: SocketAddr,
    #[command(flatten)]
    pub opts: MetricsOpts,
}

/// Run the metrics store alone until Ctrl-C or SIGTERM.
pub async fn run(args: MetricsStoreArgs) -> anyhow::Result<()> {
    let dir = datadir::prepare(&args.data_dir)?;
    let _lock = datadir::lock(&dir, "drover metrics-store")?;
    let listener = bind_http(args.http).await?;
    admin::check_reachable(&args.kafka, Duration::from_secs(5)).await?;
    let mut registry = Registry::default();
    let process = ProcessMetrics::register(&mut registry);
    let running = RunningMetricsStore::start(
        &args.opts,
        &args.kafka,
        &dir,
        registry
            .sub_registry_with_prefix("drover")
            .sub_registry_with_prefix("metrics_store"),
    )?;
    println!(
        "metrics store reading {} from {}",
        drover_schema::topics::METRICS,
        args.kafka
    );
    println!("  history            {}", dir.display());
    println!(
        "  query api          http://{}/api/metrics/query?metric=cpu_pct&by=app",
        args.http
    );
    let router = drover_metrics::api::router(Arc::clone(&running.store));
    let served = http::serve_role(listener, registry, process, &args.kafka, router).await;
    running.stop().await;
    served
}

/// `drover metrics …`: container and request metrics (client of `drover up`).
#[derive(Debug, Subcommand)]
pub enum MetricsCommand {
    /// A metric over time, downsampled to a step, as a small text chart (or JSON). Example:
    /// `drover metrics query --metric cpu_pct --app /shop/web --by instance --since 6h --step 5m`.
    Query(QueryArgs),
    /// The top instances (or apps, nodes: --by) by a metric over the last minutes.
    Top(TopArgs),
    /// The latest value of a metric for every instance.
    Latest(LatestArgs),
}

/// Options every client command shares.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The metric: cpu_pct, rss_bytes, rss_pct, working_set_bytes, blkio_read_bytes,
    /// blkio_write_bytes, net_rx_bytes, net_tx_bytes, requests, request_rate, in_flight,
    /// error_rate, latency_p50_ms, latency_p95_ms, latency_p99_ms, concurrency_mean,
    /// concurrency_max.
    #[arg(long, value_name = "METRIC")]
    pub metric: String,
    /// Only these apps (comma-separated).
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,
    /// Only these nodes.
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// Only these instances.
    #[arg(long, value_name = "INSTANCE")]
    pub instance: Option<String>,
    /// Drover's HTTP address.
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080",
        env = "DROVER_URL"
    )]
    pub server: String,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

impl ClientArgs {
    fn params(&self) -> Vec<(&'static str, String)> {
        let mut p = vec![("metric", self.metric.clone())];
        for (k, v) in [
            ("app", &self.app),
            ("node", &self.node),
            ("instance", &self.instance),
        ] {
            if let Some(v) = v {
                p.push((k, v.clone()));
            }
        }
        p
    }
}

/// Options of `drover metrics query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Split into one series per value of these labels (app, instance, node, group, host).
    #[arg(long, value_name = "LABELS")]
    pub by: Option<String>,
    /// The last DURATION (15m, 6h, 7d).
    #[arg(
        long,
        value_name = "DURATION",
        conflicts_with = "from",
        default_value = "1h"
    )]
    pub since: String,
    /// Start: RFC 3339, epoch ms, or now-2h.
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End (default now).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Bucket width (default: about 120 points).
    #[arg(long, value_name = "DURATION")]
    pub step: Option<String>,
    /// mean, max, min, p50, p95, p99, sum, rate (counters), count, last.
    #[arg(long, value_name = "AGG", default_value = "mean")]
    pub agg: String,
}

/// Options of `drover metrics top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Rank these groups (instance, app, node, …).
    #[arg(long, value_name = "LABELS", default_value = "instance")]
    pub by: String,
    /// Over the last DURATION (at most the store's window).
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub since: String,
    /// mean, max, p95, rate, …
    #[arg(long, value_name = "AGG", default_value = "mean")]
    pub agg: String,
    /// How many.
    #[arg(long, short, default_value_t = 10)]
    pub n: usize,
}

/// Options of `drover metrics latest`.
#[derive(Debug, Args)]
pub struct LatestArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs a `drover metrics` command.
pub async fn client(cmd: MetricsCommand) -> anyhow::Result<()> {
    match cmd {
        MetricsCommand::Query(a) => query(a).await,
        MetricsCommand::Top(a) => top(a).await,
        MetricsCommand::Latest(a) => latest(a).await,
    }
}

async fn get(
    server: &str,
    path: &str,
    params: &[(&str, String)],
) -> anyhow::Result<serde_json::Value> {
    crate::api_client::call(server, reqwest::Method::GET, path, params, None).await
}

async fn query(a: QueryArgs) -> anyhow::Result<()> {
    let mut params = a.client.params();
    params.push(("agg", a.agg.clone()));
    match &a.from {
        Some(f) => params.push(("from", f.clone())),
        None => params.push(("since", a.since.clone())),
    }
    for (k, v) in [("to", &a.to), ("step", &a.step), ("by", &a.by)] {
        if let Some(v) = v {
            params.push((k, v.clone()));
        }
    }
    let body = get(&a.client.server, "/api/metrics/query", &params).await?;
    if a.client.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    print!("{}", chart(&body));
    Ok(())
}

/// The text chart of a query answer: one sparkline per series, on a shared time axis.
fn chart(body: &serde_json::Value) -> String {
    let from = body["from"].as_str().unwrap_or("");
    let to = body["to"].as_str().unwrap_or("");
    let step = body["step_ms"].as_i64().unwrap_or(60_000).max(1);
    let from_ms = chrono::DateTime::parse_from_rfc3339(from)
        .map(|t| t.timestamp_millis())
        .unwrap_or(0);
    let to_ms = chrono::DateTime::parse_from_rfc3339(to)
        .map(|t| t.timestamp_millis())
        .unwrap_or(from_ms);
    let first = from_ms.div_euclid(step) * step;
    let buckets = usize::try_from((to_ms - first).div_euclid(step) + 1)
        .unwrap_or(1)
        .clamp(1, 400);
    let mut out = format!(
        "{} {} from {from} to {to}, step {}\n",
        body["metric"].as_str().unwrap_or("?"),
        body["agg"].as_str().unwrap_or("?"),
        humantime::format_duration(Duration::from_millis(step as u64)),
    );
    let series = body["series"].as_array().cloned().unwrap_or_default();
    if series.is_empty() {
        out.push_str("(no samples in this range)\n");
        return out;
    }
    for s in &series {
        let labels = s["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| "all".into());
        let mut cells: Vec<Option<f64>> = vec![None; buckets];
        let points = s["points"].as_array().cloned().unwrap_or_default();
        for p in &points {
            let (Some(t), Some(v)) = (p[0].as_i64(), p[1].as_f64()) else {
                continue;
            };
            let i = (t - first).div_euclid(step);
            if let Some(c) = usize::try_from(i).ok().and_then(|i| cells.get_mut(i)) {
                *c = Some(v);
            }
        }
        let values: Vec<f64> = cells.iter().flatten().copied().collect();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let last = values.last().copied().unwrap_or(f64::NAN);
        out.push_str(&format!(
            "{labels:<32} {}  min {} max {} last {}\n",
            sparkline(&cells, min, max),
            num(min),
            num(max),
            num(last)
        ));
    }
    out
}

fn sparkline(cells: &[Option<f64>], min: f64, max: f64) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    cells
        .iter()
        .map(|c| match c {
            None => ' ',
            Some(v) if max > min => {
                let i = ((v - min) / (max - min) * 7.0).round() as usize;
                BARS[i.min(7)]
            }
            Some(_) => BARS[3],
        })
        .collect()
}

fn num(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if v.abs() >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.2}")
    }
}

async fn top(a: TopArgs) -> anyhow::Result<()> {
    let mut params = a.client.params();
    params.push(("by", a.by.clone()));
    params.push(("since", a.since.clone()));
    params.push(("agg", a.agg.clone()));
    params.push(("n", a.n.to_string()));
    let body = get(&a.client.server, "/api/metrics/top", &params).await?;
    if a.client.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    println!(
        "top {} by {} {} over the last {}",
        a.n, a.agg, a.client.metric, a.since
    );
    for g in body["top"].as_array().into_iter().flatten() {
        let labels = g["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        println!(
            "{:>12}  {labels}",
            num(g["value"].as_f64().unwrap_or(f64::NAN))
        );
    }
    Ok(())
}

async fn latest(a: LatestArgs) -> anyhow::Result<()> {
    let body = get(&a.client.server, "/api/metrics/latest", &a.client.params()).await?;
    if a.client.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    for s in body["series"].as_array().into_iter().flatten() {
        let l = &s["labels"];
        println!(
            "{:>12}  {:.0}s ago  app={} instance={} node={} host={}",
            num(s["value"].as_f64().unwrap_or(f64::NAN)),
            s["age_s"].as_f64().unwrap_or(0.0),
            l["app"].as_str().unwrap_or(""),
            l["instance"].as_str().unwrap_or(""),
            l["node"].as_str().unwrap_or(""),
            l["host"].as_str().unwrap_or(""),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_draws_one_line_per_series_with_gaps() {
        let body = serde_json::json!({
            "metric": "cpu_pct", "agg": "mean",
            "from": "2026-11-22T10:00:00Z", "to": "2026-11-22T10:05:00Z", "step_ms": 60000,
            "series": [{"labels": {"app": "a"}, "points": [
                [1795341600000i64, 1.0], [1795341720000i64, 5.0], [1795341780000i64, 9.0]
            ]}]
        });
        let text = chart(&body);
        let line = text.lines().nth(1).unwrap();
        assert!(line.starts_with("app=a"), "{text}");
        assert!(line.contains("▁ ▅█"), "{text}");
        assert!(line.contains("max 9.00 last 9.00"), "{text}");
        let empty = serde_json::json!({"metric": "cpu_pct", "series": []});
        assert!(chart(&empty).contains("no samples"));
    }
}
