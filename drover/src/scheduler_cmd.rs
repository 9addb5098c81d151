//! The scheduler's commands: the roles `drover master` and `drover agent`, the options
//! `drover up` shares with them, and the clients `drover app …` and `drover node …`.
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use drover_scheduler::{
    agent::AgentConfig,
    clock::SystemClock,
    master::{Master, MasterConfig},
    metrics::{AgentMetrics, MasterMetrics},
    model::Resources,
};
use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::{
    datadir,
    http::{self, AppState},
    telemetry::ProcessMetrics,
    up::{bind_http, shutdown_signal},
};

// === options shared with `drover up` ===

/// Master options (also of `drover up`).
#[derive(Debug, Clone, Args)]
pub struct MasterOpts {
    /// A node whose agent has not sent a heartbeat for this long is UNREACHABLE.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub heartbeat_timeout: Duration,
    /// The tasks of an UNREACHABLE node are replaced on other nodes after this long.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub unreachable_replace_after: Duration,
    /// How often the master reconciles (places missing tasks, kills surplus ones).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub reconcile_interval: Duration,
    /// A placed task its agent has not reported within this long is lost (and replaced).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
    pub launch_timeout: Duration,
}

impl MasterOpts {
    /// The master's config.
    pub fn config(&self) -> MasterConfig {
        MasterConfig {
            heartbeat_timeout: self.heartbeat_timeout,
            unreachable_replace_after: self.unreachable_replace_after,
            launch_timeout: self.launch_timeout,
            ..MasterConfig::default()
        }
    }

    /// Open the master's store under `data_dir/scheduler` and register its metrics.
    pub fn open(&self, data_dir: &Path, registry: &mut Registry) -> anyhow::Result<Master> {
        let metrics = MasterMetrics::register(
            registry
                .sub_registry_with_prefix("drover")
                .sub_registry_with_prefix("scheduler"),
        );
        Master::open(
            &data_dir.join("scheduler"),
            self.config(),
            Arc::new(SystemClock),
            metrics,
        )
        .context("cannot open the scheduler's store (is another drover using this --data-dir?)")
    }
}

/// Agent options (also of `drover up`, for its local agent).
#[derive(Debug, Clone, Args)]
pub struct AgentOpts {
    /// This node's ID, unique in the cluster (default: the machine's hostname). Also the
    /// `hostname` field of constraints.
    #[arg(long, value_name = "ID", env = "DROVER_NODE_ID")]
    pub node_id: Option<String>,
    /// Address tasks on this node are reached at, given to them as HOST (default: the
    /// machine's hostname).
    #[arg(long, value_name = "ADDR")]
    pub advertise_host: Option<String>,
    /// CPUs offered to tasks (default: this machine's).
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// Memory offered to tasks, MiB (default: this machine's).
    #[arg(long, value_name = "MIB")]
    pub mem: Option<f64>,
    /// Disk offered to tasks, MiB (accounted, not enforced).
    #[arg(long, value_name = "MIB", default_value_t = 10240.0)]
    pub disk: f64,
    /// Host ports tasks may use.
    #[arg(long, value_name = "LO-HI", default_value = "31000-32000", value_parser = parse_range)]
    pub port_range: (u16, u16),
    /// Node attribute for constraints, e.g. rack=r1 (repeat for several).
    #[arg(long = "attribute", value_name = "KEY=VALUE", value_parser = parse_attribute)]
    pub attributes: Vec<(String, String)>,
    /// Time between the agent's heartbeats.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,
    /// Image for apps that give only `cmd` (no container.docker.image). It must be on the
    /// Docker engine: Drover does not pull.
    #[arg(long, value_name = "IMAGE", default_value = "busybox:latest")]
    pub default_image: String,
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not a port range: use LO-HI, e.g. 31000-32000"))?;
    let lo: u16 = lo
        .trim()
        .parse()
        .map_err(|_| format!("{lo:?} is not a port"))?;
    let hi: u16 = hi
        .trim()
        .parse()
        .map_err(|_| format!("{hi:?} is not a port"))?;
    if lo == 0 || hi < lo {
        return Err(format!("{s:?}: use LO-HI with 0 < LO <= HI"));
    }
    Ok((lo, hi))
}

fn parse_attribute(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    if k.trim().is_empty() {
        return Err(format!("{s:?}: the key is empty"));
    }
    Ok((k.trim().to_string(), v.trim().to_string()))
}

fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn machine_mem_mib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| (kb / 1024.0).floor())
        .unwrap_or(1024.0)
}

impl AgentOpts {
    /// The agent's config for this master and Docker engine.
    pub fn config(&self, master: &str, docker: &str) -> AgentConfig {
        let hostname = machine_hostname();
        AgentConfig {
            master: master.to_string(),
            node_id: self.node_id.clone().unwrap_or_else(|| hostname.clone()),
            hostname: self.advertise_host.clone().unwrap_or(hostname),
            resources: Resources {
                cpus: self.cpus.unwrap_or_else(|| {
                    std::thread::available_parallelism()
                        .map(|n| n.get() as f64)
                        .unwrap_or(1.0)
                }),
                mem: self.mem.unwrap_or_else(machine_mem_mib),
                disk: self.disk,
            },
            port_range: self.port_range,
            attributes: self.attributes.iter().cloned().collect::<BTreeMap<_, _>>(),
            docker: docker.to_string(),
            heartbeat_interval: self.heartbeat_interval,
            default_image: self.default_image.clone(),
            max_parallel_launches: 8,
        }
    }
}

/// Start the agent in the background.
pub fn spawn_agent(
    cfg: AgentConfig,
    registry: &mut Registry,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let metrics = AgentMetrics::register(
        registry
            .sub_registry_with_prefix("drover")
            .sub_registry_with_prefix("agent"),
    );
    tokio::spawn(async move {
        if let Err(e) = drover_scheduler::agent::run(cfg, metrics, stop).await {
            tracing::error!(error = %e, "the agent stopped");
        }
    })
}

/// Publish the master's events to Kafka (`drover.events.v1`, keyed by app or node) until
/// `stop` turns true.
pub fn spawn_event_forwarder(
    master: &Master,
    brokers: &str,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
    let producer: FutureProducer = drover_kafka::config::producer(brokers, "drover-scheduler")
        .create()
        .context("cannot create the scheduler's Kafka producer")?;
    let mut rx = master.subscribe();
    Ok(tokio::spawn(async move {
        loop {
            let v = tokio::select! {
                r = rx.recv() => match r {
                    Ok(v) => v,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "scheduler events not published: the forwarder fell behind");
                        continue;
                    }
                    Err(_) => break,
                },
                _ = stop.changed() => break,
            };
            let Some(event) = drover_scheduler::events::to_schema_event(&v) else {
                continue;
            };
            let key = drover_scheduler::events::key(&event);
            let Ok(payload) = serde_json::to_vec(&event) else {
                continue;
            };
            let record = FutureRecord::to(drover_schema::topics::EVENTS)
                .key(&key)
                .payload(&payload);
            if let Err((e, _)) = producer.send(record, Duration::from_secs(5)).await {
                tracing::warn!(error = %e, kind = %event.kind, "cannot publish a scheduler event");
            }
        }
        let _ = producer.flush(Duration::from_secs(5));
    }))
}

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
    #[command(flatten)]
    pub opts: MasterOpts,
}

/// Run the master until Ctrl-C or SIGTERM.
pub async fn run_master(args: MasterArgs) -> anyhow::Result<()> {
    let dir = datadir::prepare(&args.data_dir)?;
    let listener = bind_http(args.http).await?;
    let mut registry = Registry::default();
    let process = ProcessMetrics::register(&mut registry);
    let master = args.opts.open(&dir, &mut registry)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let looped = tokio::spawn(master.clone().run(args.opts.reconcile_interval, stop_rx));
    let state = AppState {
        registry: Arc::new(registry),
        process,
        kafka: "(not used by the master)".into(),
        broker: None,
    };
    println!("drover master is up");
    println!("  api       http://{}/v2/apps", args.http);
    println!(
        "  agents    drover agent --master http://{} --node-id ID",
        args.http
    );
    println!("  store     {}", dir.join("scheduler").display());
    let closer = master.clone();
    let served = axum::serve(
        listener,
        http::app_with(state, drover_scheduler::api::router(master)),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        closer.close_event_streams();
    })
    .await
    .context("the HTTP server failed");
    let _ = stop_tx.send(true);
    let _ = looped.await;
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
    let agent = spawn_agent(cfg, &mut registry, stop_rx);
    let state = AppState {
        registry: Arc::new(registry),
        process,
        kafka: "(not used by the agent)".into(),
        broker: None,
    };
    let served = axum::serve(listener, http::app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed");
    let _ = stop_tx.send(true);
    let _ = agent.await;
    served
}

// === clients ===

/// Options every client command takes.
#[derive(Debug, Clone, Args)]
pub struct ClientOpts {
    /// The master's URL (`drover up` serves it on its --http address).
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080",
        env = "DROVER_MASTER",
        global = true
    )]
    pub master: String,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Waiting for a deployment.
#[derive(Debug, Clone, Args)]
pub struct WaitOpts {
    /// Return at once instead of waiting for the deployment to finish.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this long.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Replace a deployment in progress for the app.
    #[arg(long)]
    pub force: bool,
}

/// `drover app …`.
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Create or replace an app from a Marathon app definition (JSON or YAML) and wait
    /// until it runs.
    #[command(
        after_help = "Example (web.yaml):\n\n  id: /shop/web\n  instances: 2\n  cpus: 0.25\n  mem: 64\n  container:\n    docker:\n      image: drover-demo:latest\n  healthChecks:\n    - protocol: HTTP\n      path: /healthz\n      intervalSeconds: 5\n  upgradeStrategy:\n    minimumHealthCapacity: 0.5\n  constraints:\n    - [hostname, MAX_PER, \"2\"]\n\nThe app listens on $PORT (a host port from the agent's range). Invalid definitions are\nrefused with one line per field."
    )]
    Deploy {
        /// The definition file (`-` for stdin).
        file: PathBuf,
        #[command(flatten)]
        wait: WaitOpts,
    },
    /// List the apps.
    Ls,
    /// Show an app: definition, task counts, deployments, why tasks wait.
    Show {
        /// App ID, e.g. /shop/web.
        id: String,
    },
    /// Change the number of instances and wait until they run.
    Scale {
        /// App ID.
        id: String,
        /// Instances.
        instances: u32,
        #[command(flatten)]
        wait: WaitOpts,
    },
    /// Replace every task of the app (rolling, as its upgradeStrategy says).
    Restart {
        /// App ID.
        id: String,
        #[command(flatten)]
        wait: WaitOpts,
    },
    /// Remove an app and stop its tasks.
    Rm {
        /// App ID.
        id: String,
        #[command(flatten)]
        wait: WaitOpts,
    },
    /// List an app's tasks.
    Tasks {
        /// App ID.
        id: String,
    },
}

/// `drover node …`.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List the nodes (agents): status, resources, tasks.
    Ls,
    /// No new tasks on the node; its tasks stay.
    Cordon {
        /// Node ID.
        id: String,
    },
    /// New tasks may go to the node again.
    Uncordon {
        /// Node ID.
        id: String,
    },
    /// Cordon the node and move its tasks to other nodes.
    Drain {
        /// Node ID.
        id: String,
        /// Return at once instead of waiting until the node has no tasks.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this long.
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Drain the node and remove it from the cluster (restarting its agent brings it back).
    Rm {
        /// Node ID.
        id: String,
    },
}

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    fn new(master: &str) -> anyhow::Result<Self> {
        Ok(Self {
            base: master.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the master at {}: {e}; is `drover up` (or `drover master`) running? pass --master URL",
                self.base
            )
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, v))
    }

    /// A call that must succeed; the error says what the master said.
    async fn ok(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let (status, v) = self.call(method, path, body).await?;
        if (200..300).contains(&status) {
            return Ok(v);
        }
        bail!("{}", explain(status, &v))
    }
}

/// The master's error in words a person can act on.
fn explain(status: u16, v: &Value) -> String {
    let msg = v["message"].as_str().unwrap_or("").to_string();
    match status {
        422 => {
            let details: Vec<String> = v["details"]
                .as_array()
                .map(|d| {
                    d.iter()
                        .map(|f| {
                            let errs: Vec<&str> = f["errors"]
                                .as_array()
                                .map(|e| e.iter().filter_map(Value::as_str).collect())
                                .unwrap_or_default();
                            format!("  {}: {}", f["path"].as_str().unwrap_or("/"), errs.join("; "))
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!("the app definition is not valid:\n{}", details.join("\n"))
        }
        409 if v["deployments"].is_array() => format!(
            "a deployment is in progress for this app ({}): wait for it, or pass --force to replace it",
            v["deployments"][0]["id"].as_str().unwrap_or("?")
        ),
        _ if !msg.is_empty() => format!("{msg} (HTTP {status})"),
        _ => format!("the master answered HTTP {status}: {v}"),
    }
}

fn app_path(id: &str) -> String {
    format!("/v2/apps/{}", id.trim_matches('/'))
}

fn normalize(id: &str) -> String {
    format!("/{}", id.trim_matches('/'))
}

/// Run `drover app …`.
pub async fn app(cmd: AppCommand, opts: ClientOpts) -> anyhow::Result<()> {
    let c = Client::new(&opts.master)?;
    use reqwest::Method;
    match cmd {
        AppCommand::Deploy { file, wait } => {
            let def = read_definition(&file)?;
            let id = def["id"].as_str().map(normalize).with_context(|| {
                format!(
                    "{}: the definition has no \"id\" (e.g. \"id\": \"/shop/web\")",
                    file.display()
                )
            })?;
            let q = format!(
                "{}?partialUpdate=false{}",
                app_path(&id),
                if wait.force { "&force=true" } else { "" }
            );
            let v = c
                .ok(Method::PUT, &q, Some(&def))
                .await
                .with_context(|| format!("cannot deploy {}", file.display()))?;
            finish(&c, &opts, &id, &v, &wait, "deployed").await
        }
        AppCommand::Ls => {
            let v = c.ok(Method::GET, "/v2/apps", None).await?;
            if opts.json {
                return print_json(&v);
            }
            let rows: Vec<Vec<String>> = v["apps"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|a| {
                    vec![
                        a["id"].as_str().unwrap_or("").to_string(),
                        format!("{}/{}", a["tasksRunning"], a["instances"]),
                        if a["healthChecks"].as_array().is_some_and(|h| !h.is_empty()) {
                            a["tasksHealthy"].to_string()
                        } else {
                            "-".into()
                        },
                        a["cpus"].to_string(),
                        a["mem"].to_string(),
                        what_runs(a),
                        if a["deployments"].as_array().is_some_and(|d| !d.is_empty()) {
                            "deploying".into()
                        } else {
                            "".into()
                        },
                    ]
                })
                .collect();
            table(
                &["ID", "RUNNING", "HEALTHY", "CPUS", "MEM", "RUNS", ""],
                rows,
            );
            Ok(())
        }
        AppCommand::Show { id } => {
            let v = c
                .ok(
                    Method::GET,
                    &format!(
                        "{}?embed=app.tasks&embed=app.lastTaskFailure",
                        app_path(&id)
                    ),
                    None,
                )
                .await?;
            let queue = c.ok(Method::GET, "/v2/queue", None).await?;
            let waiting = queue["queue"]
                .as_array()
                .and_then(|q| q.iter().find(|e| e["app"]["id"] == json!(normalize(&id))))
                .cloned();
            if opts.json {
                let mut out = v.clone();
                out["queue"] = waiting.unwrap_or(Value::Null);
                return print_json(&out);
            }
            let a = &v["app"];
            println!("app        {}", a["id"].as_str().unwrap_or(""));
            println!("runs       {}", what_runs(a));
            println!(
                "instances  {} wanted, {} running, {} staged, {} healthy, {} unhealthy",
                a["instances"],
                a["tasksRunning"],
                a["tasksStaged"],
                a["tasksHealthy"],
                a["tasksUnhealthy"]
            );
            println!(
                "resources  {} cpus, {} MiB mem per task",
                a["cpus"], a["mem"]
            );
            println!("version    {}", a["version"].as_str().unwrap_or(""));
            if let Some(d) = a["deployments"].as_array().filter(|d| !d.is_empty()) {
                println!(
                    "deploying  {}",
                    d.iter()
                        .filter_map(|x| x["id"].as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            if let Some(w) = waiting {
                println!(
                    "waiting    {} task(s): {}",
                    w["count"],
                    queue_reason(&w).unwrap_or_default()
                );
            }
            if let Some(f) = a.get("lastTaskFailure").filter(|f| f.is_object()) {
                println!(
                    "last fail  {} {} on {}: {}",
                    f["timestamp"].as_str().unwrap_or(""),
                    f["state"].as_str().unwrap_or(""),
                    f["host"].as_str().unwrap_or(""),
                    f["message"].as_str().unwrap_or("")
                );
            }
            println!();
            print_tasks(a["tasks"].as_array().cloned().unwrap_or_default());
            Ok(())
        }
        AppCommand::Scale {
            id,
            instances,
            wait,
        } => {
            let q = format!(
                "{}{}",
                app_path(&id),
                if wait.force { "?force=true" } else { "" }
            );
            let exists = c.call(Method::GET, &app_path(&id), None).await?;
            if exists.0 == 404 {
                bail!("there is no app {}: see `drover app ls`", normalize(&id));
            }
            let v = c
                .ok(Method::PUT, &q, Some(&json!({"instances": instances})))
                .await?;
            finish(
                &c,
                &opts,
                &normalize(&id),
                &v,
                &wait,
                &format!("scaled to {instances}"),
            )
            .await
        }
        AppCommand::Restart { id, wait } => {
            let q = format!(
                "{}/restart{}",
                app_path(&id),
                if wait.force { "?force=true" } else { "" }
            );
            let v = c.ok(Method::POST, &q, None).await?;
            finish(&c, &opts, &normalize(&id), &v, &wait, "restarted").await
        }
        AppCommand::Rm { id, wait } => {
            let q = format!(
                "{}{}",
                app_path(&id),
                if wait.force { "?force=true" } else { "" }
            );
            let v = c.ok(Method::DELETE, &q, None).await?;
            finish(&c, &opts, &normalize(&id), &v, &wait, "removed").await
        }
        AppCommand::Tasks { id } => {
            let v = c
                .ok(Method::GET, &format!("{}/tasks", app_path(&id)), None)
                .await?;
            if opts.json {
                return print_json(&v);
            }
            print_tasks(v["tasks"].as_array().cloned().unwrap_or_default());
            Ok(())
        }
    }
}

/// Why a queued app waits (Drover puts it where Marathon reports declined offers).
fn queue_reason(entry: &Value) -> Option<String> {
    entry["processedOffersSummary"]["rejectSummaryLastOffers"][0]["reason"]
        .as_str()
        .map(str::to_string)
}

fn what_runs(a: &Value) -> String {
    let image = a["container"]["docker"]["image"].as_str();
    let cmd = a["cmd"].as_str();
    match (image, cmd) {
        (Some(i), Some(c)) => format!("{i} sh -c {c:?}"),
        (Some(i), None) => i.to_string(),
        (None, Some(c)) => format!("sh -c {c:?}"),
        (None, None) => a["args"].to_string(),
    }
}

fn print_tasks(tasks: Vec<Value>) {
    let rows = tasks
        .iter()
        .map(|t| {
            let health = match t["healthCheckResults"].as_array().and_then(|h| h.first()) {
                None => "-".to_string(),
                Some(h) if h["alive"] == json!(true) => "healthy".into(),
                Some(h) => format!("unhealthy ({} failures)", h["consecutiveFailures"]),
            };
            vec![
                t["id"].as_str().unwrap_or("").to_string(),
                t["slaveId"].as_str().unwrap_or("").to_string(),
                t["state"]
                    .as_str()
                    .unwrap_or("")
                    .trim_start_matches("TASK_")
                    .to_string(),
                health,
                t["ports"]
                    .as_array()
                    .map(|p| {
                        p.iter()
                            .map(|x| x.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default(),
                t["startedAt"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    table(
        &["TASK", "NODE", "STATE", "HEALTH", "PORTS", "STARTED"],
        rows,
    );
}

fn read_definition(file: &Path) -> anyhow::Result<Value> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .context("cannot read the definition from stdin")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let is_yaml = file
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    let v: Value = if is_yaml || !text.trim_start().starts_with('{') {
        serde_norway::from_str(&text)
            .with_context(|| format!("{} is not valid YAML (or JSON)", file.display()))?
    } else {
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", file.display()))?
    };
    if !v.is_object() {
        bail!(
            "{}: expected one app definition (an object with \"id\")",
            file.display()
        );
    }
    Ok(v)
}

/// After a change: print, and wait for the deployment unless told not to.
async fn finish(
    c: &Client,
    opts: &ClientOpts,
    id: &str,
    v: &Value,
    wait: &WaitOpts,
    done: &str,
) -> anyhow::Result<()> {
    let deployment = v["deploymentId"].as_str().unwrap_or("").to_string();
    if wait.no_wait || deployment.is_empty() {
        if opts.json {
            return print_json(v);
        }
        println!("{id}: deployment {deployment} started (not waiting; see `drover app show {id}`)");
        return Ok(());
    }
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let deployments = c.ok(reqwest::Method::GET, "/v2/deployments", None).await?;
        let running = deployments
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x["id"] == json!(deployment)));
        let (status, app) = c.call(reqwest::Method::GET, &app_path(id), None).await?;
        let progress = if status == 404 {
            "no app".to_string()
        } else {
            let a = &app["app"];
            let mut p = format!("{}/{} running", a["tasksRunning"], a["instances"]);
            if a["healthChecks"].as_array().is_some_and(|h| !h.is_empty()) {
                p.push_str(&format!(", {} healthy", a["tasksHealthy"]));
            }
            p
        };
        if !running {
            if opts.json {
                return print_json(&json!({"id": id, "deploymentId": deployment, "done": true}));
            }
            println!(
                "{id}: {done} ({progress}) in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        let queue = c.ok(reqwest::Method::GET, "/v2/queue", None).await?;
        let reason = queue["queue"]
            .as_array()
            .and_then(|q| q.iter().find(|e| e["app"]["id"] == json!(id)))
            .and_then(|e| queue_reason(e));
        let line = match reason {
            Some(r) => format!("{id}: {progress}; waiting: {r}"),
            None => format!("{id}: {progress}"),
        };
        if line != last && !opts.json {
            eprintln!("{line}");
            last = line;
        }
        if started.elapsed() > wait.timeout {
            bail!(
                "deployment {deployment} of {id} still running after {}: see `drover app show {id}`, or wait longer with --timeout",
                humantime::format_duration(wait.timeout)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Run `drover node …`.
pub async fn node(cmd: NodeCommand, opts: ClientOpts) -> anyhow::Result<()> {
    let c = Client::new(&opts.master)?;
    use reqwest::Method;
    let (id, action) = match &cmd {
        NodeCommand::Ls => {
            let v = c.ok(Method::GET, "/v1/nodes", None).await?;
            if opts.json {
                return print_json(&v);
            }
            let rows = v["nodes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|n| {
                    vec![
                        n["id"].as_str().unwrap_or("").to_string(),
                        n["status"].as_str().unwrap_or("").to_string(),
                        n["hostname"].as_str().unwrap_or("").to_string(),
                        format!("{}/{}", n["used"]["cpus"], n["resources"]["cpus"]),
                        format!("{}/{}", n["used"]["mem"], n["resources"]["mem"]),
                        n["tasks"].to_string(),
                        n["lastSeen"].as_str().unwrap_or("").to_string(),
                    ]
                })
                .collect();
            table(
                &[
                    "NODE",
                    "STATUS",
                    "HOST",
                    "CPUS USED",
                    "MEM USED",
                    "TASKS",
                    "LAST SEEN",
                ],
                rows,
            );
            return Ok(());
        }
        NodeCommand::Cordon { id } => (id, "cordon"),
        NodeCommand::Uncordon { id } => (id, "uncordon"),
        NodeCommand::Drain { id, .. } => (id, "drain"),
        NodeCommand::Rm { id } => (id, "remove"),
    };
    let v = c
        .ok(Method::POST, &format!("/v1/nodes/{id}/{action}"), None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}; see `drover node ls`"))?;
    if let NodeCommand::Drain {
        no_wait: false,
        timeout,
        ..
    } = cmd
    {
        let started = Instant::now();
        loop {
            let n = c.ok(Method::GET, &format!("/v1/nodes/{id}"), None).await?;
            let left = n["node"]["tasks"].as_u64().unwrap_or(0);
            if left == 0 {
                break;
            }
            if started.elapsed() > timeout {
                bail!(
                    "node {id} still has {left} task(s) after {}",
                    humantime::format_duration(timeout)
                );
            }
            if !opts.json {
                eprintln!("{id}: {left} task(s) left");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    if opts.json {
        return print_json(&v);
    }
    println!(
        "node {id}: {}",
        v["node"]["status"].as_str().unwrap_or(action)
    );
    Ok(())
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(headers.iter().map(|h| h.to_string()).collect()));
    for r in rows {
        println!("{}", line(r));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_attributes() {
        assert_eq!(parse_range("31000-32000").unwrap(), (31000, 32000));
        assert!(parse_range("5-1").is_err());
        assert!(parse_range("x").is_err());
        assert_eq!(
            parse_attribute("rack=r1").unwrap(),
            ("rack".into(), "r1".into())
        );
        assert!(parse_attribute("rack").is_err());
    }

    #[test]
    fn explains_422_by_field() {
        let v = json!({"message": "Object is not valid", "details": [{"path": "/instances", "errors": ["got -1"]}]});
        let s = explain(422, &v);
        assert!(s.contains("/instances: got -1"), "{s}");
    }
}

/// `drover app` with its client options.
#[derive(Debug, Args)]
pub struct AppArgs {
    #[command(subcommand)]
    cmd: AppCommand,
    #[command(flatten)]
    client: ClientOpts,
}

/// `drover node` with its client options.
#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    cmd: NodeCommand,
    #[command(flatten)]
    client: ClientOpts,
}

/// Run `drover app …`.
pub async fn run_app(args: AppArgs) -> anyhow::Result<()> {
    app(args.cmd, args.client).await
}

/// Run `drover node …`.
pub async fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    node(args.cmd, args.client).await
}

/// The URL the local agent of `drover up` reaches the master at.
pub fn local_master_url(http: SocketAddr) -> String {
    let ip = if http.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        http.ip()
    };
    format!("http://{}", SocketAddr::new(ip, http.port()))
}
