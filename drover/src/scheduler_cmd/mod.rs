//! The scheduler's commands: the options `drover up` shares with the roles and the helpers
//! that start them (here), the roles `drover master` and `drover agent` (`roles.rs`), and the
//! clients `drover app …` and `drover node …` (`client.rs`) and `drover job …` (`jobs.rs`).
mod client;
mod jobs;
mod roles;

use std::{collections::BTreeMap, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use clap::Args;
use drover_scheduler::{
    agent::AgentConfig,
    clock::SystemClock,
    master::{Master, MasterConfig},
    metrics::{AgentMetrics, MasterMetrics},
    model::Resources,
};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

pub use client::{run_app, run_node, AppArgs, NodeArgs};
pub use jobs::{run_job, JobArgs};
pub use roles::{run_agent, run_master, AgentArgs, MasterArgs};

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
    /// Keep the newest N exited containers of each app on this node, for apps without
    /// their own `drover.cleanup.keep`/`drover.cleanup.max-age` labels (default: apps
    /// without labels keep none: their containers are removed as they end).
    #[arg(long, value_name = "N")]
    pub cleanup_keep: Option<usize>,
    /// Keep exited containers younger than this, for apps without cleanup labels.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub cleanup_max_age: Option<Duration>,
    /// When this agent removes the exited containers its policies do not keep: a cron
    /// expression in UTC (seconds optional) or R/start/period; `never` to keep them.
    #[arg(long, value_name = "CRON", default_value = "0 3 * * *", value_parser = parse_cleanup_schedule)]
    pub cleanup_schedule: CleanupSchedule,
    /// At most this many container removals per second during a cleanup.
    #[arg(long, value_name = "N", default_value_t = 2.0)]
    pub cleanup_rate: f64,
}

/// `--cleanup-schedule`: a schedule, or never.
#[derive(Debug, Clone)]
pub struct CleanupSchedule(Option<drover_scheduler::jobs::schedule::Schedule>);

fn parse_cleanup_schedule(s: &str) -> Result<CleanupSchedule, String> {
    if s.trim() == "never" {
        return Ok(CleanupSchedule(None));
    }
    drover_scheduler::jobs::schedule::Schedule::parse(s, chrono_tz_utc(), chrono::Utc::now())
        .map(|s| CleanupSchedule(Some(s)))
        .map_err(|e| format!("{e} (or `never`)"))
}

fn chrono_tz_utc() -> drover_scheduler::jobs::schedule::Tz {
    drover_scheduler::jobs::schedule::Tz::UTC
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
            cleanup: drover_scheduler::agent::cleanup::CleanupConfig {
                default: drover_scheduler::agent::cleanup::Policy {
                    keep: self.cleanup_keep,
                    max_age: self.cleanup_max_age,
                },
                schedule: self.cleanup_schedule.0.clone(),
                rate: self.cleanup_rate,
            },
        }
    }
}

/// Start the agent in the background.
pub fn spawn_agent(
    cfg: AgentConfig,
    docker: bollard::Docker,
    registry: &mut Registry,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let metrics = AgentMetrics::register(
        registry
            .sub_registry_with_prefix("drover")
            .sub_registry_with_prefix("agent"),
    );
    tokio::spawn(async move {
        if let Err(e) = drover_scheduler::agent::run(cfg, docker, metrics, stop).await {
            tracing::error!(error = %e, "the agent stopped");
        }
    })
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
}
