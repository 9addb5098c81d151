//! `drover alertman` (the alert rules, routing and notifications alone, reading a `drover
//! up`'s metrics and logs over HTTP), Alertman inside `drover up`, and the client commands
//! `drover alerts ls|history|silence|unsilence|reload|rules check`.
use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use clap::{Args, Subcommand};
use drover_alertman::{metrics::AlertmanMetrics, source::Source, Alertman, AlertmanConfig};
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};

use crate::{
    api_client::{call, ClientArgs},
    datadir, events,
    http::{self, bind_http},
    telemetry::ProcessMetrics,
};

/// Alertman options shared by `drover alertman` and `drover up`.
#[derive(Debug, Clone, Args)]
pub struct AlertmanOpts {
    /// Alert rule files, or directories of *.yaml rule files (repeatable). Reloaded on SIGHUP
    /// and when a file changes; a bad reload keeps the running rules.
    #[arg(long = "rules", value_name = "DIR|FILE", env = "DROVER_RULES")]
    pub rules: Vec<PathBuf>,
    /// How often the rules are evaluated.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub eval_interval: Duration,
    /// The first retry of a failed notification waits this long (doubling, at most 30s).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub notify_retry_backoff: Duration,
    /// How long the alert history is kept.
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = humantime::parse_duration)]
    pub alert_history_retention: Duration,
    /// Actions (remove_instance, remove_node) remove at most 10 % (at least one) of an app's
    /// instances, or of the nodes, within this window.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub action_window: Duration,
    /// At least this long between two removals.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub action_min_interval: Duration,
    /// A node taken out by remove_node is uncordoned, once healthy, after this back-off,
    /// doubled at each repeat.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub node_readmit_backoff: Duration,
    /// The longest re-admission back-off.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub node_readmit_max: Duration,
}

impl AlertmanOpts {
    /// Alertman's settings, state in `dir`, links to `ui_url`.
    pub fn config(&self, dir: PathBuf, ui_url: &str) -> AlertmanConfig {
        let mut cfg = AlertmanConfig::new(self.rules.clone(), dir, ui_url);
        cfg.eval_interval = self.eval_interval.max(Duration::from_secs(1));
        cfg.retry_backoff = self.notify_retry_backoff;
        cfg.history_retention = self.alert_history_retention;
        cfg.caps.window = self.action_window;
        cfg.caps.min_interval = self.action_min_interval;
        cfg.caps.readmit_base = self.node_readmit_backoff;
        cfg.caps.readmit_max = self.node_readmit_max.max(self.node_readmit_backoff);
        cfg
    }
}

/// A running Alertman.
#[derive(Debug)]
pub struct RunningAlertman {
    /// The handle the API uses.
    pub alertman: Alertman,
    task: tokio::task::JoinHandle<()>,
    events: Option<tokio::task::JoinHandle<()>>,
}

impl RunningAlertman {
    /// Loads the rules (refusing bad ones before anything starts), resumes the state in `dir`
    /// and starts evaluating; its events go to `kafka` when given.
    pub fn start(
        mut cfg: AlertmanConfig,
        source: Arc<dyn Source>,
        kafka: Option<&str>,
        registry: &mut Registry,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let events = match kafka {
            Some(brokers) => {
                let (tx, rx) = mpsc::unbounded_channel();
                cfg.events = Some(tx);
                Some(events::spawn_publisher(
                    brokers,
                    "drover-alertman",
                    rx,
                    stop.clone(),
                )?)
            }
            None => None,
        };
        let metrics = AlertmanMetrics::register(registry);
        let alertman = Alertman::open(cfg, source, metrics)?;
        let task = tokio::spawn(alertman.clone().run(stop));
        Ok(Self {
            alertman,
            task,
            events,
        })
    }

    /// Waits for the loop to stop (after the stop signal) and saves the state.
    pub async fn stop(self) {
        let _ = self.task.await;
        if let Some(e) = self.events {
            let _ = e.await;
        }
    }
}

/// Options of `drover alertman`.
#[derive(Debug, Args)]
pub struct AlertmanArgs {
    /// Address of the API (/api/alerts, the Alertmanager v2 API), /healthz and /metrics.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9093")]
    pub http: SocketAddr,
    /// Directory of Alertman's state (alertman.redb: alerts, silences, notification log,
    /// history).
    #[arg(long, value_name = "DIR", default_value = "./drover-data/alertman")]
    pub data_dir: PathBuf,
    /// Where the metrics store's API is (a `drover up` or `drover metrics-store`).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub metrics_url: String,
    /// Where the log search API is (a `drover up` or `drover logpipe`).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub search_url: String,
    /// The web UI's URL, for links in notifications.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub ui_url: String,
    /// The scheduler's master that actions (remove_instance, remove_node) go through;
    /// without it, actions are refused (and say so in the history).
    #[arg(long, value_name = "URL")]
    pub master: Option<String>,
    /// Publish alert events on drover.events.v1 of these Kafka brokers.
    #[arg(long, value_name = "BROKERS", env = "DROVER_KAFKA")]
    pub kafka: Option<String>,
    #[command(flatten)]
    pub opts: AlertmanOpts,
}

/// Run Alertman alone until Ctrl-C or SIGTERM.
pub async fn run(args: AlertmanArgs) -> anyhow::Result<()> {
    let dir = datadir::prepare(&args.data_dir)?;
    let _lock = datadir::lock(&dir, "drover alertman")?;
    let listener = bind_http(args.http).await?;
    let mut registry = Registry::default();
    let process = ProcessMetrics::register(&mut registry);
    let (stop_tx, stop_rx) = watch::channel(false);
    let source = Arc::new(drover_alertman::source::Http::new(
        &args.metrics_url,
        &args.search_url,
    ));
    let mut cfg = args.opts.config(dir.clone(), &args.ui_url);
    if let Some(m) = &args.master {
        cfg.actuator = Some(Arc::new(
            drover_alertman::actions::SchedulerActuator::new(m)
                .map_err(|e| anyhow::anyhow!("--master {m}: {e}"))?,
        ));
    }
    let running = RunningAlertman::start(
        cfg,
        source,
        args.kafka.as_deref(),
        registry
            .sub_registry_with_prefix("drover")
            .sub_registry_with_prefix("alertman"),
        stop_rx,
    )?;
    let cfg = running.alertman.config();
    println!(
        "alertman: {} rule(s), {} receiver(s), metrics from {}, logs from {}",
        cfg.rules.len(),
        cfg.receivers.len(),
        args.metrics_url,
        args.search_url
    );
    println!("  state       {}", dir.display());
    println!(
        "  api         http://{}/api/alerts   (amtool --alertmanager.url=http://{})",
        args.http, args.http
    );
    let router = drover_alertman::api::router(running.alertman.clone());
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

// === the client ===

/// `drover alerts …`: alerts, history, silences and rules (client of `drover up` or
/// `drover alertman`).
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Firing and pending alerts (and what silences or inhibits them).
    Ls(ClientArgs),
    /// Transitions, notifications, actions and silence changes, newest first.
    History(HistoryArgs),
    /// Silence alerts matching the matchers, e.g.
    /// `drover alerts silence alertname=HighCpu app=/shop --for 2h --comment deploying`.
    Silence(SilenceArgs),
    /// Expire a silence now.
    Unsilence(UnsilenceArgs),
    /// Reload the rule files of the running Alertman (like SIGHUP).
    Reload(ClientArgs),
    /// Rule files.
    #[command(subcommand)]
    Rules(RulesCommand),
}

/// `drover alerts rules …`.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Check rule files (or directories) without loading them into a running Alertman:
    /// every problem with its file, line and field. Exit status 1 when there is one.
    Check(CheckArgs),
}

/// Options of `drover alerts history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The last DURATION.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "24h",
        conflicts_with = "from"
    )]
    pub since: String,
    /// Start: RFC 3339, epoch ms, now-2h.
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End.
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Only this rule.
    #[arg(long)]
    pub rule: Option<String>,
    /// Only this app.
    #[arg(long)]
    pub app: Option<String>,
    /// Only this state (pending, firing, resolved, nodata, error, sent, failed, …).
    #[arg(long)]
    pub state: Option<String>,
    /// Only this kind (transition, notification, action, silence, rules).
    #[arg(long)]
    pub kind: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

/// Options of `drover alerts silence`.
#[derive(Debug, Args)]
pub struct SilenceArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Matchers: name=value, name!=value, name=~regex, name!~regex.
    #[arg(required = true, value_name = "MATCHER")]
    pub matchers: Vec<String>,
    /// How long.
    #[arg(long = "for", value_name = "DURATION", default_value = "1h")]
    pub duration: String,
    /// Who (default: $USER).
    #[arg(long)]
    pub author: Option<String>,
    /// Why.
    #[arg(long, default_value = "")]
    pub comment: String,
}

/// Options of `drover alerts unsilence`.
#[derive(Debug, Args)]
pub struct UnsilenceArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The silence's ID.
    pub id: String,
}

/// Options of `drover alerts rules check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Rule files or directories.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `drover alerts` command.
pub async fn client(cmd: AlertsCommand) -> anyhow::Result<()> {
    match cmd {
        AlertsCommand::Ls(a) => ls(a).await,
        AlertsCommand::History(a) => history(a).await,
        AlertsCommand::Silence(a) => silence(a).await,
        AlertsCommand::Unsilence(a) => unsilence(a).await,
        AlertsCommand::Reload(a) => {
            let body = call(
                &a.server,
                reqwest::Method::POST,
                "/api/alerts/reload",
                &[],
                None,
            )
            .await?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                println!("reloaded: {} rule(s)", body["rules"]);
            }
            Ok(())
        }
        AlertsCommand::Rules(RulesCommand::Check(a)) => check(a),
    }
}

fn labels_text(v: &serde_json::Value) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() != "alertname")
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

async fn ls(a: ClientArgs) -> anyhow::Result<()> {
    let body = call(&a.server, reqwest::Method::GET, "/api/alerts", &[], None).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let alerts = body["alerts"].as_array().cloned().unwrap_or_default();
    if alerts.is_empty() {
        println!("no alerts");
    } else {
        println!(
            "{:<8} {:<24} {:<10} {:<20} LABELS",
            "STATE", "ALERT", "VALUE", "SINCE"
        );
    }
    for al in &alerts {
        let muted = if al["silencedBy"].as_array().is_some_and(|v| !v.is_empty()) {
            " (silenced)"
        } else if al["inhibitedBy"].as_array().is_some_and(|v| !v.is_empty()) {
            " (inhibited)"
        } else {
            ""
        };
        println!(
            "{:<8} {:<24} {:<10} {:<20} {}{muted}",
            al["state"].as_str().unwrap_or(""),
            al["labels"]["alertname"].as_str().unwrap_or(""),
            al["value"]
                .as_f64()
                .map(|v| format!("{v:.2}"))
                .unwrap_or_else(|| "-".into()),
            al["starts_at"]
                .as_str()
                .unwrap_or("")
                .get(..19)
                .unwrap_or(""),
            labels_text(&al["labels"]),
        );
    }
    let bad: Vec<String> = body["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| matches!(r["health"]["state"].as_str(), Some("error" | "nodata")))
        .map(|r| {
            format!(
                "  {} {}: {}",
                r["name"].as_str().unwrap_or(""),
                r["health"]["state"].as_str().unwrap_or(""),
                r["health"]["last_error"].as_str().unwrap_or("no data")
            )
        })
        .collect();
    if !bad.is_empty() {
        println!("rules without a result:\n{}", bad.join("\n"));
    }
    if body["reload"]["ok"] == false {
        println!(
            "the last reload was refused: {}",
            body["reload"]["error"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

async fn history(a: HistoryArgs) -> anyhow::Result<()> {
    let mut p = vec![("limit", a.limit.to_string())];
    match &a.from {
        Some(f) => p.push(("from", f.clone())),
        None => p.push(("since", a.since.clone())),
    }
    for (k, v) in [
        ("to", &a.to),
        ("rule", &a.rule),
        ("app", &a.app),
        ("state", &a.state),
        ("kind", &a.kind),
    ] {
        if let Some(v) = v {
            p.push((k, v.clone()));
        }
    }
    let body = call(
        &a.client.server,
        reqwest::Method::GET,
        "/api/alerts/history",
        &p,
        None,
    )
    .await?;
    if a.client.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let entries = body["entries"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        println!("nothing in this range");
    }
    for e in entries {
        println!(
            "{}  {:<12} {:<9} {}",
            e["ts"].as_str().unwrap_or("").get(..19).unwrap_or(""),
            e["kind"].as_str().unwrap_or(""),
            e["state"].as_str().unwrap_or(""),
            e["message"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

async fn silence(a: SilenceArgs) -> anyhow::Result<()> {
    let matchers =
        drover_alertman::matcher::parse_list(&a.matchers).map_err(|e| anyhow::anyhow!("{e}"))?;
    let d = drover_schema::time::parse_duration(&a.duration)?;
    let now = chrono::Utc::now();
    let author = a
        .author
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "drover".into());
    let body = serde_json::json!({
        "matchers": matchers,
        "startsAt": now,
        "endsAt": now + chrono::Duration::from_std(d)?,
        "createdBy": author,
        "comment": a.comment,
    });
    let r = call(
        &a.client.server,
        reqwest::Method::POST,
        "/api/v2/silences",
        &[],
        Some(body),
    )
    .await?;
    if a.client.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("{}", r["silenceID"].as_str().unwrap_or(""));
    }
    Ok(())
}

async fn unsilence(a: UnsilenceArgs) -> anyhow::Result<()> {
    call(
        &a.client.server,
        reqwest::Method::DELETE,
        &format!("/api/v2/silence/{}", a.id),
        &[],
        None,
    )
    .await?;
    if a.client.json {
        println!("{}", serde_json::json!({"expired": a.id}));
    } else {
        println!("expired {}", a.id);
    }
    Ok(())
}

fn check(a: CheckArgs) -> anyhow::Result<()> {
    let report = drover_alertman::rules::check(&a.files);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.ok {
        println!(
            "ok: {} file(s), {} rule(s) ({}), {} receiver(s)",
            report.files.len(),
            report.rules.len(),
            report.rules.join(", "),
            report.receivers.len()
        );
    } else {
        for e in &report.errors {
            eprintln!("{e}");
        }
    }
    if report.ok {
        Ok(())
    } else {
        anyhow::bail!("{} problem(s) in the rule files", report.errors.len())
    }
}
