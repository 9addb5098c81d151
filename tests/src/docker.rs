//! The local Docker engine: a client, the test images, and containers removed on drop.
use std::{process::Command, sync::OnceLock};

use bollard::Docker;

/// The demo app image built by `tests/images/build.sh`.
pub const DEMO_IMAGE: &str = "drover-demo:latest";
/// The busybox image built by `tests/images/build.sh`.
pub const BUSYBOX_IMAGE: &str = "drover-busybox:latest";

/// A client for the local engine, with the API version negotiated (the engine may be
/// older than bollard's default).
pub async fn docker() -> Docker {
    let d = Docker::connect_with_local_defaults().expect("docker client");
    d.negotiate_version()
        .await
        .expect("the Docker engine answers on its local socket (is dockerd running?)")
}

/// Build the test images if they are not current (once per test process; the script
/// itself serialises concurrent runs with a lock file and skips current images).
pub fn ensure_images() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let script = crate::repo_root().join("tests/images/build.sh");
        let status = Command::new("bash")
            .arg(&script)
            .status()
            .expect("run tests/images/build.sh");
        assert!(status.success(), "tests/images/build.sh failed: {status}");
    });
}

/// Removes the named container (`docker rm -f`) when dropped.
#[derive(Debug)]
pub struct ContainerGuard(pub String);

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.0])
            .output();
    }
}

/// What to run in a test container.
#[derive(Debug, Default, Clone)]
pub struct Spec {
    /// Image.
    pub image: String,
    /// Name (default: a unique one).
    pub name: Option<String>,
    /// `KEY=VALUE` environment.
    pub env: Vec<String>,
    /// Command (default: the image's).
    pub cmd: Option<Vec<String>>,
    /// Labels.
    pub labels: std::collections::HashMap<String, String>,
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// Allocate a TTY.
    pub tty: bool,
    /// json-file `max-size` (e.g. `1m`): rotate the log that often.
    pub log_max_size: Option<String>,
}

impl Spec {
    /// A spec for this image.
    pub fn new(image: &str) -> Self {
        Self {
            image: image.into(),
            ..Default::default()
        }
    }

    /// A shell script run by the busybox image.
    pub fn sh(script: &str) -> Self {
        Self {
            image: BUSYBOX_IMAGE.into(),
            cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
            ..Default::default()
        }
    }
}

/// Create and start a container; it is removed when the guard drops. Returns the guard and
/// the full container ID.
pub async fn start(docker: &Docker, spec: Spec) -> (ContainerGuard, String) {
    use bollard::{
        models::{ContainerCreateBody, HostConfig, HostConfigLogConfig},
        query_parameters::CreateContainerOptionsBuilder,
    };
    ensure_images();
    let name = spec
        .name
        .clone()
        .unwrap_or_else(|| crate::unique("drover-test"));
    let guard = ContainerGuard(name.clone());
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        env: Some(spec.env.clone()),
        cmd: spec.cmd.clone(),
        labels: Some(spec.labels.clone()),
        tty: Some(spec.tty),
        host_config: Some(HostConfig {
            memory: spec.memory,
            log_config: spec.log_max_size.as_ref().map(|size| HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(std::collections::HashMap::from([
                    ("max-size".to_string(), size.clone()),
                    ("max-file".to_string(), "5".to_string()),
                ])),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(&name).build()),
            body,
        )
        .await
        .unwrap_or_else(|e| panic!("create container {name}: {e}"));
    docker
        .start_container(&name, None)
        .await
        .unwrap_or_else(|e| panic!("start container {name}: {e}"));
    (guard, created.id)
}

/// Wait until the container has exited (at most `timeout`).
pub async fn wait_exit(docker: &Docker, id: &str, timeout: std::time::Duration) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let i = docker.inspect_container(id, None).await.expect("inspect");
        if i.state.and_then(|s| s.running) == Some(false) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "container {id} still running after {timeout:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A stand-in for the Docker daemon's socket that the test can take down and bring back: a
/// proxy from a unix socket in a temp dir to the real `/var/run/docker.sock`. Stopping it
/// drops every connection and refuses new ones, as a daemon restart does for its clients.
#[derive(Debug)]
pub struct DaemonProxy {
    dir: tempfile::TempDir,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl DaemonProxy {
    /// Start proxying.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut p = Self { dir, task: None };
        p.up();
        p
    }

    /// `unix://…` address for `--docker`.
    pub fn uri(&self) -> String {
        format!("unix://{}", self.path().display())
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// Take the "daemon" down: close the listener and every proxied connection.
    pub fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        let _ = std::fs::remove_file(self.path());
    }

    /// Bring it back.
    pub fn up(&mut self) {
        assert!(self.task.is_none(), "already up");
        let _ = std::fs::remove_file(self.path());
        let listener = tokio::net::UnixListener::bind(self.path()).expect("bind proxy socket");
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                conns.spawn(async move {
                    if let Ok(mut daemon) =
                        tokio::net::UnixStream::connect("/var/run/docker.sock").await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut daemon).await;
                    }
                });
            }
        }));
    }
}

impl Drop for DaemonProxy {
    fn drop(&mut self) {
        self.down();
    }
}
