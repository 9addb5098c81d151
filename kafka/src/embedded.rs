//! The embedded Kafka-protocol broker: tansu, run as a supervised child process.
//!
//! Why a child process and not a library: tansu with its SQLite engine takes ~15 minutes to
//! compile on two cores. Installed once by `scripts/setup.sh` into a tools directory outside
//! the clone, it costs nothing on later builds of Drover, and a broker crash cannot take the
//! rest of `drover up` with it. Messages and committed offsets live in `tansu.db` (SQLite)
//! under the broker's data dir, so they survive a restart.
use std::{
    fs::OpenOptions,
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::{Registry, Unit},
};
use tokio::{
    process::{Child, Command},
    sync::watch,
    task::JoinHandle,
};

use crate::KafkaError;

/// Environment variable naming the tansu program explicitly.
pub const PROGRAM_ENV: &str = "DROVER_TANSU_BIN";
/// Environment variable naming the tools directory the setup script installs into.
pub const TOOLS_ENV: &str = "DROVER_TOOLS";

/// How to run the embedded broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Address the broker listens on and advertises to clients.
    pub listen: SocketAddr,
    /// Directory for the broker's database and log (created if missing).
    pub data_dir: PathBuf,
    /// The tansu program; found with [`find_program`] when `None`.
    pub program: Option<PathBuf>,
    /// How long to wait for the broker to accept connections.
    pub ready_timeout: Duration,
    /// How often the broker deletes records past their topic's `retention.ms` (tansu's
    /// maintenance; it also runs once at start). tansu's own default is 10 minutes.
    pub maintenance_interval: Duration,
}

/// Drover's default for [`BrokerConfig::maintenance_interval`]: often enough that a
/// retention of hours or days is kept to within minutes, rarely enough that the deletion's
/// scan of the record table (it blocks the broker's other storage calls while it runs) is
/// rare.
pub const DEFAULT_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5 * 60);

impl BrokerConfig {
    /// A config with the default timeout.
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            data_dir: data_dir.into(),
            program: None,
            ready_timeout: Duration::from_secs(30),
            maintenance_interval: DEFAULT_MAINTENANCE_INTERVAL,
        }
    }
}

/// Metrics of the broker supervisor, registered under the caller's prefix.
#[derive(Debug, Clone, Default)]
pub struct BrokerMetrics {
    up: Gauge,
    restarts: Counter,
    rss: Gauge,
}

impl BrokerMetrics {
    /// Register `up`, `restarts_total` and `resident_memory_bytes` in `registry`
    /// (give it a `drover_broker` prefixed sub-registry).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "up",
            "Whether the embedded broker process is running and accepting connections (1) or not (0)",
            m.up.clone(),
        );
        registry.register(
            "restarts",
            "Times the embedded broker exited unexpectedly and was restarted",
            m.restarts.clone(),
        );
        registry.register_with_unit(
            "resident_memory",
            "Resident memory of the embedded broker process",
            Unit::Bytes,
            m.rss.clone(),
        );
        m
    }
}

/// Where the setup script installs tools: `$DROVER_TOOLS`, else `~/.cache/drover/tools`.
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(TOOLS_ENV) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/drover/tools")
}

/// Find the tansu program: the explicit path, `$DROVER_TANSU_BIN`, the tools directory,
/// then `PATH`.
pub fn find_program(explicit: Option<&Path>) -> Result<PathBuf, KafkaError> {
    let not_installed = || KafkaError::BrokerNotInstalled {
        hint: tools_dir().join("bin").display().to_string(),
    };
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(not_installed())
        };
    }
    if let Some(p) = std::env::var_os(PROGRAM_ENV) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(not_installed())
        };
    }
    let in_tools = tools_dir().join("bin/tansu");
    if in_tools.is_file() {
        return Ok(in_tools);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("tansu"))
        .find(|p| p.is_file())
        .ok_or_else(not_installed)
}

/// Whether the embedded broker is up; cloneable, for health endpoints.
#[derive(Debug, Clone)]
pub struct BrokerStatus(Arc<AtomicBool>);

impl BrokerStatus {
    /// True while the broker process runs and accepted connections when last started.
    pub fn is_up(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A running embedded broker and the task that restarts it when it dies.
#[derive(Debug)]
pub struct EmbeddedBroker {
    listen: SocketAddr,
    log: PathBuf,
    up: Arc<AtomicBool>,
    pid: Arc<AtomicU32>,
    stop: watch::Sender<Option<bool>>,
    supervisor: JoinHandle<()>,
}

impl EmbeddedBroker {
    /// Start the broker and wait until it accepts connections.
    pub async fn start(cfg: BrokerConfig, metrics: BrokerMetrics) -> Result<Self, KafkaError> {
        let program = find_program(cfg.program.as_deref())?;
        std::fs::create_dir_all(&cfg.data_dir).map_err(|source| KafkaError::Io {
            what: format!("cannot create the broker dir {}", cfg.data_dir.display()),
            source,
        })?;
        // A broker left running by a drover that was killed (SIGKILL leaves its children)
        // holds the port and the database: stop it first. The caller holds the data dir's
        // lock, so no live drover owns it.
        stop_leftover(&cfg.data_dir).await;
        match TcpListener::bind(cfg.listen) {
            Ok(probe) => drop(probe),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(KafkaError::PortInUse { addr: cfg.listen })
            }
            Err(source) => {
                return Err(KafkaError::Io {
                    what: format!("cannot listen on {}", cfg.listen),
                    source,
                })
            }
        }
        let log = cfg.data_dir.join("tansu.log");
        let child = spawn_ready(&program, &cfg, &log).await?;
        let up = Arc::new(AtomicBool::new(true));
        let pid = Arc::new(AtomicU32::new(child.id().unwrap_or(0)));
        metrics.up.set(1);
        tracing::info!(listen = %cfg.listen, pid = pid.load(Ordering::Relaxed), program = %program.display(), "embedded broker ready");
        let (stop, stop_rx) = watch::channel(None);
        let supervisor = tokio::spawn(supervise(
            child,
            program,
            cfg.clone(),
            log.clone(),
            metrics,
            up.clone(),
            pid.clone(),
            stop_rx,
        ));
        Ok(Self {
            listen: cfg.listen,
            log,
            up,
            pid,
            stop,
            supervisor,
        })
    }

    /// The bootstrap address for clients.
    pub fn bootstrap(&self) -> String {
        self.listen.to_string()
    }

    /// Whether the broker process is running and accepted connections last time we looked.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// A cheap handle that tells whether the broker is up, for health endpoints.
    pub fn status(&self) -> BrokerStatus {
        BrokerStatus(self.up.clone())
    }

    /// The broker's process ID (0 while it is restarting).
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// The broker's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Stop the broker: SIGTERM, then SIGKILL after 10 s.
    pub async fn stop(self) {
        let _ = self.stop.send(Some(false));
        let _ = self.supervisor.await;
    }

    /// Kill the broker with SIGKILL, as a crash or a power cut would (for tests).
    pub async fn kill(self) {
        let _ = self.stop.send(Some(true));
        let _ = self.supervisor.await;
    }
}

/// tansu's `--storage-engine` URL: the SQLite file in the working directory and the
/// maintenance interval (`?maintenance_interval=`, a humantime duration, read by tansu 0.6's
/// broker builder).
fn storage_url(maintenance_interval: Duration) -> String {
    format!(
        "sqlite://tansu.db?maintenance_interval={}ms",
        maintenance_interval.as_millis().max(1)
    )
}

async fn spawn_ready(program: &Path, cfg: &BrokerConfig, log: &Path) -> Result<Child, KafkaError> {
    let io = |what: String| move |source| KafkaError::Io { what, source };
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io(format!("cannot open the broker log {}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(io(format!("cannot open the broker log {}", log.display())))?;
    let advertised = if cfg.listen.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], cfg.listen.port()))
    } else {
        cfg.listen
    };
    let mut cmd = Command::new(program);
    cmd.arg("broker")
        .arg("--listener-url")
        .arg(format!("tcp://{}", cfg.listen))
        .arg("--advertised-listener-url")
        .arg(format!("tcp://{advertised}"))
        // The SQLite file is resolved against the working directory; tansu takes the
        // maintenance interval from the storage URL's query (and strips it).
        .arg("--storage-engine")
        .arg(storage_url(cfg.maintenance_interval))
        .arg("--cluster-id")
        .arg("drover")
        .current_dir(&cfg.data_dir)
        .env(
            "RUST_LOG",
            std::env::var("DROVER_BROKER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group: a Ctrl-C in the terminal reaches drover only, which stops
        // its components (the collector's last sends, the logpipe's last commit) and then
        // the broker, instead of the broker dying first under them.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(io(format!("cannot run {}", program.display())))?;
    let deadline = tokio::time::Instant::now() + cfg.ready_timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(start_error(cfg, log, format!("it exited with {status}")));
        }
        if tokio::net::TcpStream::connect(cfg.listen).await.is_ok() {
            if let Some(id) = child.id() {
                let path = cfg.data_dir.join(PID_FILE);
                if let Err(e) = std::fs::write(&path, format!("{id}\n")) {
                    tracing::warn!(error = %e, path = %path.display(), "cannot record the broker's PID; a broker left by a crash will not be found");
                }
            }
            return Ok(child);
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = child.kill().await;
            return Err(start_error(
                cfg,
                log,
                "it never accepted a connection".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn start_error(cfg: &BrokerConfig, log: &Path, what: String) -> KafkaError {
    let tail = std::fs::read_to_string(log)
        .map(|s| {
            let lines: Vec<&str> = s.lines().rev().take(3).collect();
            lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
        })
        .unwrap_or_default();
    KafkaError::BrokerStart {
        addr: cfg.listen,
        secs: cfg.ready_timeout.as_secs(),
        detail: if tail.is_empty() {
            what
        } else {
            format!("{what}; last log lines: {tail}")
        },
        log: log.to_path_buf(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn supervise(
    mut child: Child,
    program: PathBuf,
    cfg: BrokerConfig,
    log: PathBuf,
    metrics: BrokerMetrics,
    up: Arc<AtomicBool>,
    pid: Arc<AtomicU32>,
    mut stop: watch::Receiver<Option<bool>>,
) {
    let mut backoff = Duration::from_millis(500);
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = stop.changed() => {
                if *stop.borrow() == Some(true) {
                    let _ = child.kill().await;
                } else {
                    terminate(&mut child).await;
                }
                up.store(false, Ordering::Relaxed);
                metrics.up.set(0);
                return;
            }
            _ = tick.tick() => {
                if let Some(rss) = child.id().and_then(resident_bytes) {
                    metrics.rss.set(rss as i64);
                }
            }
            status = child.wait() => {
                up.store(false, Ordering::Relaxed);
                pid.store(0, Ordering::Relaxed);
                metrics.up.set(0);
                metrics.restarts.inc();
                tracing::error!(status = ?status.ok(), log = %log.display(), "embedded broker exited; restarting");
                loop {
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    match spawn_ready(&program, &cfg, &log).await {
                        Ok(c) => {
                            child = c;
                            break;
                        }
                        Err(e) => tracing::error!(error = %e, "embedded broker restart failed"),
                    }
                }
                backoff = Duration::from_millis(500);
                pid.store(child.id().unwrap_or(0), Ordering::Relaxed);
                up.store(true, Ordering::Relaxed);
                metrics.up.set(1);
                tracing::info!(listen = %cfg.listen, "embedded broker restarted");
            }
        }
    }
}

/// The file in the broker's directory holding its PID while it runs.
pub const PID_FILE: &str = "broker.pid";

/// A broker process recorded in `dir`'s PID file that still runs with `dir` as its working
/// directory (so it is ours, not a recycled PID).
pub fn leftover(dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    let dir = std::fs::canonicalize(dir).ok()?;
    (cwd == dir).then_some(pid)
}

/// Stop a broker left by a killed drover (see [`leftover`]): SIGTERM, then SIGKILL after 10 s.
async fn stop_leftover(dir: &Path) {
    let Some(id) = leftover(dir) else {
        return;
    };
    tracing::warn!(pid = id, dir = %dir.display(), "found a broker left running by a previous drover; stopping it");
    eprintln!("stopping the embedded broker a previous drover left running (PID {id})…");
    let pid = nix::unistd::Pid::from_raw(id as i32);
    // Gone, or a zombie (no working directory any more) waiting for init to reap it.
    let gone = || leftover(dir).is_none();
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !gone() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !gone() {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        while !gone() && tokio::time::Instant::now() < deadline + Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn terminate(child: &mut Child) {
    if let Some(id) = child.id() {
        let pid = nix::unistd::Pid::from_raw(id as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_ok()
        {
            tracing::info!("embedded broker stopped");
            return;
        }
        tracing::warn!("embedded broker ignored SIGTERM for 10s; killing it");
    }
    let _ = child.kill().await;
}

/// Resident set size of a process, from `/proc/PID/statm`.
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_missing_program_says_how_to_install() {
        let err = find_program(Some(Path::new("/nonexistent/tansu"))).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("scripts/setup.sh"), "{msg}");
        assert!(msg.contains("--kafka"), "{msg}");
    }

    #[test]
    fn storage_url_carries_the_maintenance_interval_in_a_form_humantime_reads() {
        assert_eq!(
            storage_url(Duration::from_secs(300)),
            "sqlite://tansu.db?maintenance_interval=300000ms"
        );
        // Never 0 ms (a zero-period interval panics in tokio).
        assert_eq!(
            storage_url(Duration::ZERO),
            "sqlite://tansu.db?maintenance_interval=1ms"
        );
        let url = storage_url(Duration::from_millis(1500));
        let v = url.split_once('=').unwrap().1;
        assert_eq!(
            humantime::parse_duration(v).unwrap(),
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn own_resident_memory_is_readable() {
        let rss = resident_bytes(std::process::id()).unwrap();
        assert!(rss > 0);
    }
}
