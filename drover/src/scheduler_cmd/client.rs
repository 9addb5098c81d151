//! `drover app …` and `drover node …`: clients of the master's API, with tables or
//! `--json`, and waiting with progress while a deployment runs.
use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use drover_scheduler::client::ClientError;
use serde_json::{json, Value};

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

/// The master's client ([`drover_scheduler::client::Client`]), with errors worded for the
/// command line.
struct Client(drover_scheduler::client::Client);

impl Client {
    fn new(master: &str) -> anyhow::Result<Self> {
        Ok(Self(drover_scheduler::client::Client::new(master)?))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        self.0.call(method, path, body).await.map_err(cli_error)
    }

    /// A call that must succeed; the error says what the master said.
    async fn ok(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        self.0.ok(method, path, body).await.map_err(cli_error)
    }
}

/// A client error, with what to do when the master cannot be reached.
pub(super) fn cli_error(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Unreachable { base, source } => anyhow::anyhow!(
            "cannot reach the master at {base}: {source}; is `drover up` (or `drover master`) running? pass --master URL"
        ),
        other => other.into(),
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

pub(super) fn read_definition(file: &Path) -> anyhow::Result<Value> {
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
            .and_then(queue_reason);
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

pub(super) fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub(super) fn table(headers: &[&str], rows: Vec<Vec<String>>) {
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
