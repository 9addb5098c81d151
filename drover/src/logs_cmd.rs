//! `drover logpipe` (the logs topic into the search index, with the search API) and the client
//! commands `drover logs search` and `drover logs tail`.
use std::{
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use clap::{Args, Subcommand};
use drover_kafka::admin;
use drover_logpipe::{Logpipe, LogpipeConfig, LogpipeMetrics, Rules};
use drover_search::{LogStore, Search};
use prometheus_client::registry::Registry;

use crate::{
    datadir,
    http::{self, bind_http, shutdown_signal},
    telemetry::ProcessMetrics,
    worker::Worker,
};

/// Logpipe options shared by `drover logpipe` and `drover up`.
#[derive(Debug, Clone, Args)]
pub struct LogpipeOpts {
    /// Drop index partitions (days) older than this; `0s` keeps everything.
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub retention: Duration,
    /// Commit the index at least this often: a printed line is searchable within about this
    /// long (plus the collector's and Kafka's delay).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub commit_interval: Duration,
    /// …or after this many lines, whichever comes first.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub commit_docs: usize,
    /// Memory for indexing, MB (bounded: lines beyond it are flushed to disk).
    #[arg(long, value_name = "MB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(15..=4096))]
    pub index_memory_mb: u64,
    /// Filter and routing rules (TOML: [[rule]] with app, app_regex, level, stream, regex,
    /// action = "keep" | "drop", add_fields); see search/README.md.
    #[arg(long, value_name = "FILE")]
    pub log_rules: Option<PathBuf>,
}

impl LogpipeOpts {
    /// The logpipe's config.
    pub fn config(&self, brokers: &str) -> anyhow::Result<LogpipeConfig> {
        let mut cfg = LogpipeConfig::new(brokers);
        cfg.retention = (!self.retention.is_zero()).then_some(self.retention);
        cfg.commit_interval = self.commit_interval;
        cfg.commit_docs = self.commit_docs.max(1);
        cfg.writer_heap_bytes = usize::try_from(self.index_memory_mb << 20).unwrap_or(64 << 20);
        if let Some(path) = &self.log_rules {
            cfg.rules = Arc::new(Rules::load(path)?);
        }
        Ok(cfg)
    }
}

/// A logpipe running on its own thread, and the search over its index.
#[derive(Debug)]
pub struct RunningLogpipe {
    /// Search over the same store.
    pub search: Search,
    worker: Worker,
}

impl RunningLogpipe {
    /// Starts the logpipe on `dir` (the index) reading `brokers`.
    pub fn start(
        opts: &LogpipeOpts,
        brokers: &str,
        dir: &Path,
        registry: &mut Registry,
    ) -> anyhow::Result<Self> {
        let cfg = opts.config(brokers)?;
        let store = Arc::new(LogStore::open(dir).context("cannot open the log index")?);
        let metrics = LogpipeMetrics::register(registry);
        let pipe = Logpipe::new(cfg, Arc::clone(&store), metrics);
        let worker = Worker::spawn("logpipe", move |stop| pipe.run(stop))?;
        Ok(Self {
            search: Search::new(store),
            worker,
        })
    }

    /// Commits what is pending and stops.
    pub async fn stop(self) {
        self.worker.stop().await;
    }
}

/// Options of `drover logpipe`.
#[derive(Debug, Args)]
pub struct LogpipeArgs {
    /// Kafka bootstrap servers (host:port,...).
    #[arg(long, value_name = "BROKERS", env = "DROVER_KAFKA")]
    pub kafka: String,
    /// Directory of the index (one Tantivy index per day).
    #[arg(long, value_name = "DIR", default_value = "./drover-data/logs")]
    pub data_dir: PathBuf,
    /// Address of the search API (/api/logs/...), /healthz and /metrics.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8083")]
    pub http: SocketAddr,
    #[command(flatten)]
    pub opts: LogpipeOpts,
}

/// Run the logpipe alone until Ctrl-C or SIGTERM.
pub async fn run(args: LogpipeArgs) -> anyhow::Result<()> {
    // A bad rules file is reported before anything starts.
    args.opts.config(&args.kafka)?;
    let dir = datadir::prepare(&args.data_dir)?;
    let _lock = datadir::lock(&dir, "drover logpipe")?;
    let listener = bind_http(args.http).await?;
    admin::check_reachable(&args.kafka, Duration::from_secs(5)).await?;
    let mut registry = Registry::default();
    let process = ProcessMetrics::register(&mut registry);
    let pipe = RunningLogpipe::start(
        &args.opts,
        &args.kafka,
        &dir,
        registry
            .sub_registry_with_prefix("drover")
            .sub_registry_with_prefix("logpipe"),
    )?;
    println!(
        "logpipe indexing {} from {}",
        drover_schema::topics::LOGS,
        args.kafka
    );
    println!("  index              {}", dir.display());
    println!(
        "  search api         http://{}/api/logs/search?q=...",
        args.http
    );
    let router = drover_search::api::router(pipe.search.clone());
    let served = http::serve_role(listener, registry, process, &args.kafka, router).await;
    pipe.stop().await;
    served
}

/// `drover logs …`: search the logs of every container.
#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Search log lines, newest first. QUERY uses Lucene-like syntax: words (AND between
    /// them), "a phrase", OR, NOT, field:value (app, host, level, stream, container, or any
    /// parsed field such as status), ranges status:[500 TO 599], wildcards. Examples:
    /// `drover logs search 'connection refused' --since 1h`,
    /// `drover logs search 'level:error AND status:502' --app shop/web --json`.
    Search(SearchArgs),
    /// Follow new log lines as they are indexed (Ctrl-C to stop).
    Tail(TailArgs),
}

/// Filters shared by search and tail.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only these apps (comma-separated).
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,
    /// Only these hosts.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Only these levels (trace, debug, info, warn, error, fatal, none).
    #[arg(long, value_name = "LEVEL")]
    pub level: Option<String>,
    /// Only stdout or stderr.
    #[arg(long, value_name = "STREAM")]
    pub stream: Option<String>,
    /// Drover's HTTP address.
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080",
        env = "DROVER_URL"
    )]
    pub server: String,
    /// Print JSON (one object per line for tail) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Options of `drover logs search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The query (empty: every line).
    #[arg(default_value = "")]
    pub query: String,
    /// Lines of the last DURATION (15m, 2h, 7d).
    #[arg(long, value_name = "DURATION", conflicts_with = "from")]
    pub since: Option<String>,
    /// Start: RFC 3339 (2026-11-22T10:00:00Z) or now-1h.
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End: RFC 3339 or now-5m (default: now).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// How many lines (1–1000).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,
    /// Count every match (slower on big ranges); by default the count is exact up to
    /// 10,000 and shown as "10000+" past that.
    #[arg(long)]
    pub exact_total: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// Options of `drover logs tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Only lines matching this query.
    #[arg(default_value = "")]
    pub query: String,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// Runs a `drover logs` command.
pub async fn client(cmd: LogsCommand) -> anyhow::Result<()> {
    match cmd {
        LogsCommand::Search(a) => search(a).await,
        LogsCommand::Tail(a) => tail(a).await,
    }
}

fn filter_params(f: &FilterArgs, q: &str) -> Vec<(&'static str, String)> {
    let mut p = vec![("q", q.to_string())];
    for (k, v) in [
        ("app", &f.app),
        ("host", &f.host),
        ("level", &f.level),
        ("stream", &f.stream),
    ] {
        if let Some(v) = v {
            p.push((k, v.clone()));
        }
    }
    p
}

async fn get(
    server: &str,
    path: &str,
    params: &[(&str, String)],
) -> anyhow::Result<reqwest::Response> {
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let resp = reqwest::Client::builder()
        .default_headers(drover_auth::client::default_headers())
        .build()?
        .get(&url)
        .query(params)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot reach Drover at {server} ({e}): is `drover up` running? pass --server URL"
            )
        })?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let msg = body["error"].as_str().unwrap_or("no details").to_string();
        anyhow::bail!("{msg} (HTTP {status})");
    }
    Ok(resp)
}

async fn search(a: SearchArgs) -> anyhow::Result<()> {
    let mut params = filter_params(&a.filter, &a.query);
    for (k, v) in [("since", &a.since), ("from", &a.from), ("to", &a.to)] {
        if let Some(v) = v {
            params.push((k, v.clone()));
        }
    }
    params.push(("limit", a.limit.to_string()));
    params.push(("snippets", "false".into()));
    if a.exact_total {
        params.push(("track_total", "true".into()));
    }
    let body: serde_json::Value = get(&a.filter.server, "/api/logs/search", &params)
        .await?
        .json()
        .await
        .context("unreadable answer from the search API")?;
    if a.filter.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for hit in body["hits"].as_array().into_iter().flatten() {
        print_hit(&mut out, hit)?;
    }
    let shown = body["hits"].as_array().map_or(0, Vec::len);
    eprintln!(
        "{shown} of {}{} matching lines ({:.1} ms){}",
        body["total"],
        if body["total_relation"] == "gte" {
            "+"
        } else {
            ""
        },
        body["took_ms"].as_f64().unwrap_or_default(),
        if body["next_cursor"].is_string() {
            "; --limit N for more"
        } else {
            ""
        }
    );
    Ok(())
}

fn print_hit(out: &mut impl Write, hit: &serde_json::Value) -> std::io::Result<()> {
    let s = |k: &str| hit[k].as_str().unwrap_or("").to_string();
    writeln!(
        out,
        "{} {} {} {:5} {}",
        s("ts"),
        s("app"),
        s("container_name"),
        s("level"),
        s("line")
    )
}

async fn tail(a: TailArgs) -> anyhow::Result<()> {
    let params = filter_params(&a.filter, &a.query);
    let mut resp = get(&a.filter.server, "/api/logs/tail", &params).await?;
    eprintln!("following new lines (Ctrl-C to stop)…");
    let mut buf = String::new();
    let mut out = std::io::stdout();
    loop {
        tokio::select! {
            chunk = resp.chunk() => {
                let Some(chunk) = chunk.context("the tail stream broke")? else {
                    anyhow::bail!("the server closed the tail stream");
                };
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let event: String = buf.drain(..end + 2).collect();
                    for line in event.lines() {
                        if let Some(data) = line.strip_prefix("data:") {
                            let data = data.trim_start();
                            if a.filter.json {
                                writeln!(out, "{data}")?;
                            } else if let Ok(hit) = serde_json::from_str::<serde_json::Value>(data) {
                                print_hit(&mut out, &hit)?;
                            }
                        }
                    }
                    out.flush()?;
                }
            }
            _ = shutdown_signal() => return Ok(()),
        }
    }
}
