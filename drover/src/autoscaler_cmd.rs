//! `drover autoscaler` (the autoscaler alone: a `drover up`'s metrics read over HTTP, its
//! master driven over HTTP), the autoscaler inside `drover up`, and the commands `drover
//! autoscale policies|decisions|explain|check|simulate|trace`.
use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use clap::{Args, Subcommand};
use drover_autoscaler::{
    metrics::AutoscalerMetrics,
    policy,
    scaler::SchedulerScaler,
    service::{Autoscaler, AutoscalerConfig},
    simulate::{self, AppModel},
    source::HttpMetrics,
    trace::{self, Trace, TraceKind},
};
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};

use crate::{
    api_client::{call, ClientArgs},
    events,
    http::{self, bind_http},
    telemetry::ProcessMetrics,
};

/// Autoscaler options shared by `drover autoscaler` and `drover up`.
#[derive(Debug, Clone, Args)]
pub struct AutoscalerOpts {
    /// Autoscale policy files, or directories of *.yaml policy files (repeatable); reloaded
    /// when a file changes (a bad file keeps the running policies). Policies can also be
    /// PUT to /api/autoscaler/policies/{name}. See autoscaler/README.md for the format.
    #[arg(long = "policies", value_name = "DIR|FILE", env = "DROVER_POLICIES")]
    pub policies: Vec<PathBuf>,
    /// How often the autoscaler wakes; each policy decides on its own `tick` (default 2s).
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub autoscaler_wake: Duration,
}

/// A running autoscaler.
#[derive(Debug)]
pub struct RunningAutoscaler {
    /// The handle the API uses.
    pub autoscaler: Autoscaler,
    task: tokio::task::JoinHandle<()>,
    events: Option<tokio::task::JoinHandle<()>>,
}

impl RunningAutoscaler {
    /// Loads the policies (refusing bad files before anything starts) and starts deciding:
    /// metrics from the metrics store at `metrics_url`, changes through the master at
    /// `master_url`, events to `kafka` when given.
    pub fn start(
        opts: &AutoscalerOpts,
        metrics_url: &str,
        master_url: &str,
        kafka: Option<&str>,
        registry: &mut Registry,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let mut cfg = AutoscalerConfig::new(opts.policies.clone());
        let events = match kafka {
            Some(brokers) => {
                let (tx, rx) = mpsc::unbounded_channel();
                cfg.events = Some(tx);
                Some(events::spawn_publisher(
                    brokers,
                    "drover-autoscaler",
                    rx,
                    stop.clone(),
                )?)
            }
            None => None,
        };
        let source = HttpMetrics::new(metrics_url)
            .map_err(|e| anyhow::anyhow!("metrics store at {metrics_url}: {e}"))?;
        let client = drover_scheduler::client::Client::new(master_url)
            .map_err(|e| anyhow::anyhow!("master at {master_url}: {e}"))?;
        let autoscaler = Autoscaler::new(
            cfg,
            Arc::new(source),
            Arc::new(SchedulerScaler::new(client)),
            AutoscalerMetrics::register(registry),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut stopped = stop.clone();
        let task = tokio::spawn(autoscaler.clone().run(opts.autoscaler_wake, async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        Ok(Self {
            autoscaler,
            task,
            events,
        })
    }

    /// Waits for the loop to stop (after the stop signal).
    pub async fn stop(self) {
        let _ = self.task.await;
        if let Some(e) = self.events {
            let _ = e.await;
        }
    }
}

/// Checks the policy files (syntax, bounds, windows, metrics) before anything starts.
pub fn check_files(paths: &[PathBuf]) -> anyhow::Result<usize> {
    if paths.is_empty() {
        return Ok(0);
    }
    policy::load(paths)
        .map(|p| p.len())
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Options of `drover autoscaler`.
#[derive(Debug, Args)]
pub struct AutoscalerArgs {
    /// Address of the API (/api/autoscaler/*), /healthz and /metrics.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9095")]
    pub http: SocketAddr,
    /// Where the metrics store's API is (a `drover up` or `drover metrics-store`).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub metrics_url: String,
    /// The scheduler's master the autoscaler scales through.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub master: String,
    /// Publish scaling events on drover.events.v1 of these Kafka brokers.
    #[arg(long, value_name = "BROKERS", env = "DROVER_KAFKA")]
    pub kafka: Option<String>,
    #[command(flatten)]
    pub opts: AutoscalerOpts,
}

/// Run the autoscaler alone until Ctrl-C or SIGTERM. Policies whose app or service the
/// master does not know are refused before it starts.
pub async fn run(args: AutoscalerArgs) -> anyhow::Result<()> {
    check_files(&args.opts.policies)?;
    let listener = bind_http(args.http).await?;
    let mut registry = Registry::default();
    let process = ProcessMetrics::register(&mut registry);
    let (stop_tx, stop_rx) = watch::channel(false);
    let running = RunningAutoscaler::start(
        &args.opts,
        &args.metrics_url,
        &args.master,
        args.kafka.as_deref(),
        registry
            .sub_registry_with_prefix("drover")
            .sub_registry_with_prefix("autoscaler"),
        stop_rx,
    )?;
    let unknown = running.autoscaler.check_targets().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot check the policies' apps against the master at {}: {e}; is it running? pass --master URL",
            args.master
        )
    })?;
    if !unknown.is_empty() {
        let _ = stop_tx.send(true);
        let lines: Vec<String> = unknown.iter().map(|e| e.to_string()).collect();
        anyhow::bail!("{}", lines.join("\n"));
    }
    println!(
        "autoscaler: {} polic(ies), metrics from {}, scaling through {}",
        running.autoscaler.policies().len(),
        args.metrics_url,
        args.master
    );
    println!(
        "  api         http://{}/api/autoscaler/policies   (drover autoscale policies --server http://{})",
        args.http, args.http
    );
    let router = drover_autoscaler::api::router(running.autoscaler.clone());
    let served = http::serve_role(
        listener,
        registry,
        process,
        args.kafka.as_deref().unwrap_or(""),
        router,
    )
    .await;
    let _ = stop_tx.send(true);
    running.stop().await;
    served
}

// === the commands ===

/// `drover autoscale …`: policies, decisions and explanations of a running autoscaler, and
/// policy files checked and simulated offline.
#[derive(Debug, Subcommand)]
pub enum AutoscaleCommand {
    /// The policies: target, status (active or paused, and why), panic mode, the last
    /// decision in one line.
    Policies(ClientArgs),
    /// The decisions that changed something or could have (held back by a window, a bound,
    /// a rate policy, a missing metric), newest first.
    Decisions(DecisionsArgs),
    /// Why an app (or service) has the instances it has: the last decision with each
    /// metric's value, target and recommendation, the rule that won and what held it back.
    Explain(ExplainArgs),
    /// Check policy files without loading them: every problem with its file, line and
    /// field. Exit status 1 when there is one.
    Check(CheckArgs),
    /// Replay a request-rate trace through a model of the app under a policy, and in the
    /// same run under an HPA-equivalent and a KPA-equivalent policy: seconds over the
    /// latency SLO, instance-hours, scale events, direction changes; and a chart (SVG).
    Simulate(SimulateArgs),
    /// Write a generated request-rate trace (CSV: time_s,rps) for `simulate`.
    Trace(TraceArgs),
}

/// Options of `drover autoscale decisions`.
#[derive(Debug, Args)]
pub struct DecisionsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Only this app's (or service's).
    #[arg(long)]
    pub app: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

/// Options of `drover autoscale explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The app or service (Marathon group) ID, e.g. /shop/api.
    pub app: String,
}

/// Options of `drover autoscale check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Policy files or directories.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `drover autoscale simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The policy file (its first policy, or the one named by --name).
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// Which policy of the file.
    #[arg(long)]
    pub name: Option<String>,
    /// The trace: CSV `time_s,rps` (a header line is allowed), e.g. from `drover autoscale
    /// trace`.
    #[arg(long, value_name = "FILE", conflicts_with = "kind")]
    pub trace: Option<PathBuf>,
    /// Instead of --trace: a generated trace of this kind (step, spike, ramp, diurnal).
    #[arg(long)]
    pub kind: Option<TraceKind>,
    /// The generated trace's seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the chart of instances against load here (SVG).
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,
    /// The model: mean service time of one request, ms.
    #[arg(long, default_value_t = AppModel::default().service_time_ms)]
    pub service_time_ms: f64,
    /// The model: requests one instance serves at once.
    #[arg(long, default_value_t = AppModel::default().slots)]
    pub slots: f64,
    /// The model: seconds from asking for an instance to its taking traffic.
    #[arg(long, default_value_t = AppModel::default().startup_s)]
    pub startup_s: f64,
    /// The latency SLO the report counts against: p95, ms.
    #[arg(long, default_value_t = AppModel::default().slo_p95_ms)]
    pub slo_p95_ms: f64,
    /// Instances at the start.
    #[arg(long, default_value_t = AppModel::default().initial_instances)]
    pub initial_instances: u32,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `drover autoscale trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// step, spike, ramp or diurnal.
    #[arg(long)]
    pub kind: TraceKind,
    /// The seed (the same seed gives the same trace).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write here instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Runs a `drover autoscale` command.
pub async fn client(cmd: AutoscaleCommand) -> anyhow::Result<()> {
    match cmd {
        AutoscaleCommand::Policies(a) => policies(a).await,
        AutoscaleCommand::Decisions(a) => decisions(a).await,
        AutoscaleCommand::Explain(a) => explain(a).await,
        AutoscaleCommand::Check(a) => check(a),
        AutoscaleCommand::Simulate(a) => run_simulation(a),
        AutoscaleCommand::Trace(a) => write_trace(a),
    }
}

fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

async fn policies(a: ClientArgs) -> anyhow::Result<()> {
    let v = call(
        &a.server,
        reqwest::Method::GET,
        "/api/autoscaler/policies",
        &[],
        None,
    )
    .await?;
    if a.json {
        return print_json(&v);
    }
    let list = v.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no policies: give `drover up --policies DIR|FILE`, or PUT one to /api/autoscaler/policies/NAME");
        return Ok(());
    }
    println!(
        "{:<20} {:<24} {:<8} {:<6} LAST",
        "POLICY", "TARGET", "STATUS", "PANIC"
    );
    for p in list {
        let pol = &p["policy"];
        let target = pol["app"]
            .as_str()
            .or(pol["service"].as_str())
            .or(pol["target"]["app"].as_str())
            .or(pol["target"]["service"].as_str())
            .unwrap_or("?");
        let status = p["status"]["state"].as_str().unwrap_or("?");
        println!(
            "{:<20} {:<24} {:<8} {:<6} {}",
            pol["name"].as_str().unwrap_or("?"),
            target,
            status,
            if p["panic"] == true { "yes" } else { "no" },
            p["last"].as_str().unwrap_or("–")
        );
        if let Some(r) = p["status"]["reason"].as_str() {
            println!("    paused: {r}");
        }
    }
    Ok(())
}

async fn decisions(a: DecisionsArgs) -> anyhow::Result<()> {
    let mut params = vec![("limit", a.limit.to_string())];
    if let Some(app) = &a.app {
        params.push(("app", app.clone()));
    }
    let v = call(
        &a.client.server,
        reqwest::Method::GET,
        "/api/autoscaler/decisions",
        &params,
        None,
    )
    .await?;
    if a.client.json {
        return print_json(&v);
    }
    let list = v["decisions"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no decisions yet (a policy decides every tick; only changes and near-changes are kept)");
    }
    for d in list {
        println!(
            "{}  {:<20} {} → {}  {}  ({})",
            d["at"].as_str().unwrap_or("?"),
            d["target"].as_str().or(d["policy"].as_str()).unwrap_or("?"),
            d["current"],
            d["desired"],
            d["winner"].as_str().unwrap_or(""),
            d["outcome"]["state"].as_str().unwrap_or("?"),
        );
    }
    Ok(())
}

async fn explain(a: ExplainArgs) -> anyhow::Result<()> {
    let app = format!("/{}", a.app.trim_matches('/'));
    let v = call(
        &a.client.server,
        reqwest::Method::GET,
        &format!("/api/autoscaler/explain{app}"),
        &[],
        None,
    )
    .await?;
    if a.client.json {
        return print_json(&v);
    }
    match v["text"].as_str() {
        Some(t) => println!("{t}"),
        None => println!("the policy of {app} has not decided yet (it decides every tick)"),
    }
    Ok(())
}

fn check(a: CheckArgs) -> anyhow::Result<()> {
    match policy::load(&a.files) {
        Ok(ps) => {
            let names: Vec<&str> = ps.iter().map(|p| p.name.as_str()).collect();
            if a.json {
                print_json(&serde_json::json!({"ok": true, "policies": names, "errors": []}))?;
            } else {
                println!("ok: {} polic(ies) ({})", ps.len(), names.join(", "));
            }
            Ok(())
        }
        Err(e) => {
            if a.json {
                print_json(&serde_json::json!({"ok": false, "errors": e.errors}))?;
            } else {
                eprintln!("{e}");
            }
            std::process::exit(1);
        }
    }
}

fn run_simulation(a: SimulateArgs) -> anyhow::Result<()> {
    let policies =
        policy::load(std::slice::from_ref(&a.policy)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let policy = match &a.name {
        Some(n) => policies.iter().find(|p| &p.name == n).with_context(|| {
            format!(
                "{} has no policy {n:?} (it has: {})",
                a.policy.display(),
                policies
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?,
        None => policies
            .first()
            .with_context(|| format!("{} has no policies", a.policy.display()))?,
    };
    let (trace, trace_name) = match (&a.trace, a.kind) {
        (Some(path), _) => (
            Trace::read(path).map_err(|e| anyhow::anyhow!("{e}"))?,
            path.display().to_string(),
        ),
        (None, Some(kind)) => (
            trace::generate(kind, a.seed),
            format!("{} (seed {})", kind.as_str(), a.seed),
        ),
        (None, None) => anyhow::bail!(
            "give a trace: --trace FILE (CSV time_s,rps) or --kind step|spike|ramp|diurnal"
        ),
    };
    let model = AppModel {
        service_time_ms: a.service_time_ms,
        slots: a.slots,
        startup_s: a.startup_s,
        slo_p95_ms: a.slo_p95_ms,
        initial_instances: a.initial_instances,
        ..AppModel::default()
    };
    anyhow::ensure!(
        model.service_time_ms > 0.0 && model.slots > 0.0 && model.slo_p95_ms > 0.0,
        "--service-time-ms, --slots and --slo-p95-ms must be more than 0"
    );
    eprintln!(
        "simulating {:.0} s of {trace_name} under {:?} and its HPA- and KPA-equivalents…",
        trace.duration_s(),
        policy.name
    );
    let report = simulate::simulate(policy, &trace, &model, a.chart.as_deref())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
        if let Some(c) = &a.chart {
            println!("chart: {}", c.display());
        }
    }
    Ok(())
}

fn write_trace(a: TraceArgs) -> anyhow::Result<()> {
    let t = trace::generate(a.kind, a.seed);
    match &a.output {
        Some(p) => std::fs::write(p, t.to_csv())
            .with_context(|| format!("cannot write {}", p.display()))?,
        None => print!("{}", t.to_csv()),
    }
    Ok(())
}
