//! `drover`: every role and every client command of Drover in one binary.
#![forbid(unsafe_code)]

/// mimalloc instead of glibc's malloc: allocation was ~7 % of the gateway's CPU under load
/// (measured with `perf` on `drover bench gateway`), ~2 % with mimalloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod alertman_cmd;
mod api_client;
mod auth_cmd;
mod autoscaler_cmd;
mod bench;
mod broker_cmd;
mod cleanup_cmd;
mod collector_cmd;
mod dashboards_cmd;
mod datadir;
mod demo;
mod docker;
mod events;
mod gateway_cmd;
mod http;
mod logs_cmd;
mod metrics_cmd;
mod scheduler_cmd;
mod telemetry;
mod tls;
mod up;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Drover runs containers and watches them: a small Marathon-like scheduler, per-host
/// collectors that ship container logs and stats to Kafka, log search, alerting and
/// autoscaling — one binary.
///
/// Start everything on this machine with `drover up`, then open the printed URL.
#[derive(Debug, Parser)]
#[command(name = "drover", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    auth: http::AuthOpts,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every role on this machine: the embedded Kafka broker (unless --kafka), the HTTP
    /// server with the UI and all APIs, and the components. Ctrl-C or SIGTERM stops it cleanly.
    Up(Box<up::UpArgs>),
    /// Run only the embedded Kafka-protocol broker (tansu, supervised), for a multi-host
    /// setup or for trying Kafka clients against it.
    Broker(broker_cmd::BrokerArgs),
    /// Run only the per-host collector: every container's logs and stats from the Docker
    /// engine to Kafka.
    Collector(collector_cmd::CollectorArgs),
    /// Run only the logpipe: the logs topic into the search index, with the search API.
    Logpipe(logs_cmd::LogpipeArgs),
    /// Search and follow the logs of every container (client of `drover up`).
    #[command(subcommand)]
    Logs(logs_cmd::LogsCommand),
    /// Run only the metrics store: the metrics topic into in-memory windows and hourly
    /// Parquet history, with the query API (/api/metrics/...).
    MetricsStore(metrics_cmd::MetricsStoreArgs),
    /// Query container and request metrics: series as text charts, top N, latest values
    /// (client of `drover up`).
    #[command(subcommand)]
    Metrics(metrics_cmd::MetricsCommand),
    /// Run only the scheduler's master: apps, tasks, nodes and deployments, with the
    /// Marathon-compatible API (/v2/apps, …) and Drover's /v1/nodes.
    Master(scheduler_cmd::MasterArgs),
    /// Run a scheduler agent on this host: registers with the master and runs the tasks it
    /// is given as Docker containers. Several agents may share one Docker engine.
    Agent(scheduler_cmd::AgentArgs),
    /// Deploy, list, show, scale, restart and remove apps (client of the master).
    App(scheduler_cmd::AppArgs),
    /// List, cordon, uncordon, drain and remove nodes (client of the master).
    Node(scheduler_cmd::NodeArgs),
    /// Chronos-style jobs: add, list, show, run now, enable, disable, remove, and their
    /// runs (client of the master).
    Job(scheduler_cmd::JobArgs),
    /// Exited task containers: what a cleanup would remove now (`drover cleanup plan`, a
    /// dry run against this host's Docker engine).
    #[command(subcommand)]
    Cleanup(cleanup_cmd::CleanupCommand),
    /// Run only the gateway (the HTTP reverse proxy in front of the apps, routed by their
    /// labels, following a master), or list its routes (`drover gateway routes`).
    Gateway(gateway_cmd::GatewayArgs),
    /// Serve only the web UI, its pages backed by the APIs of other hosts' roles (a proxy to
    /// --search, --metrics and --master), for a multi-host setup.
    Dashboards(dashboards_cmd::DashboardsArgs),
    /// Run only Alertman: alert rules over the metrics and logs of a `drover up` (read over
    /// HTTP), notifications, silences, history and the Alertmanager v2 API.
    Alertman(alertman_cmd::AlertmanArgs),
    /// Alerts, their history, silences and rule files (client of `drover up`).
    #[command(subcommand)]
    Alerts(alertman_cmd::AlertsCommand),
    /// Run only the autoscaler: policy files that resize apps and services (groups of apps)
    /// from the metrics of a `drover up` (read over HTTP), through its master.
    Autoscaler(autoscaler_cmd::AutoscalerArgs),
    /// Autoscale policies, decisions and why (client of `drover up`), and policy files
    /// checked and simulated against HPA- and KPA-equivalents offline.
    #[command(subcommand)]
    Autoscale(autoscaler_cmd::AutoscaleCommand),
    /// API tokens of a data dir: create (printed once), ls, revoke; generate a cluster
    /// token.
    #[command(subcommand)]
    Token(auth_cmd::TokenCommand),
    /// The audit trail of writes (who, role, method and path, status, source), newest first
    /// (client of `drover up`; needs an admin token in DROVER_TOKEN when auth is on).
    Audit(auth_cmd::AuditArgs),
    /// Measure Drover's components on this machine and print the figures (and the baseline
    /// the issue names, measured in the same run).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

impl Command {
    /// Whether this command runs a server role (whose own HTTP clients send the cluster
    /// token), rather than a client command (which sends DROVER_TOKEN).
    fn is_server(&self) -> bool {
        matches!(
            self,
            Command::Up(_)
                | Command::Broker(_)
                | Command::Collector(_)
                | Command::Logpipe(_)
                | Command::MetricsStore(_)
                | Command::Master(_)
                | Command::Agent(_)
                | Command::Gateway(_)
                | Command::Dashboards(_)
                | Command::Alertman(_)
                | Command::Autoscaler(_)
        )
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_tracing();
    if let Err(e) = http::init_auth(&cli.auth, cli.command.is_server()) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => up::run(*args).await,
            Command::Broker(args) => broker_cmd::run(args).await,
            Command::Collector(args) => collector_cmd::run(args).await,
            Command::Bench(cmd) => bench::run(cmd).await,
            Command::Master(args) => scheduler_cmd::run_master(args).await,
            Command::Agent(args) => scheduler_cmd::run_agent(args).await,
            Command::App(args) => scheduler_cmd::run_app(args).await,
            Command::Node(args) => scheduler_cmd::run_node(args).await,
            Command::Job(args) => scheduler_cmd::run_job(args).await,
            Command::Cleanup(cmd) => cleanup_cmd::run(cmd).await,
            Command::Logpipe(args) => logs_cmd::run(args).await,
            Command::Logs(cmd) => logs_cmd::client(cmd).await,
            Command::MetricsStore(args) => metrics_cmd::run(args).await,
            Command::Metrics(cmd) => metrics_cmd::client(cmd).await,
            Command::Dashboards(args) => dashboards_cmd::run(args).await,
            Command::Gateway(args) => gateway_cmd::run(args).await,
            Command::Alertman(args) => alertman_cmd::run(args).await,
            Command::Alerts(cmd) => alertman_cmd::client(cmd).await,
            Command::Autoscaler(args) => autoscaler_cmd::run(args).await,
            Command::Autoscale(cmd) => autoscaler_cmd::client(cmd).await,
            Command::Token(cmd) => auth_cmd::run_token(cmd),
            Command::Audit(args) => auth_cmd::run_audit(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
