//! An isolated `drover` process: `drover up` on free ports in a temp data dir, killed when
//! dropped, with its output kept for failure messages.
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use tempfile::TempDir;

use crate::free_port;

/// The `drover` binary next to the test executable (`target/debug/drover`), or `$DROVER_BIN`.
pub fn drover_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DROVER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("exe dir");
    let dir = if dir.ends_with("deps") {
        dir.parent().expect("target dir")
    } else {
        dir
    };
    let bin = dir.join("drover");
    assert!(
        bin.is_file(),
        "{} not found: build it first (cargo build -p drover), or set DROVER_BIN",
        bin.display()
    );
    bin
}

/// Run `drover ARGS` to completion (at most `timeout`), for bad-input tests.
pub fn run_drover(args: &[&str], timeout: Duration) -> Output {
    let mut child = Command::new(drover_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn drover");
    let deadline = Instant::now() + timeout;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "drover {args:?} did not exit within {timeout:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    keep_run_output(args, &out);
    out
}

/// Keeps what `drover ARGS` printed for the suite's secret scan ([`crate::secrets`]), except
/// the stdout of `drover token create|generate`: printing the new token once is its job.
fn keep_run_output(args: &[&str], out: &Output) {
    let role = args.first().copied().unwrap_or("drover");
    let prints_a_secret = role == "token" && matches!(args.get(1), Some(&"create" | &"generate"));
    let mut files: Vec<(&str, &[u8])> = vec![("stderr.log", &out.stderr)];
    if !prints_a_secret {
        files.push(("stdout.log", &out.stdout));
    }
    crate::secrets::keep_output(role, &files);
}

/// A running `drover up`.
#[derive(Debug)]
pub struct DroverUp {
    child: Option<Child>,
    /// Address of the HTTP server.
    pub http: SocketAddr,
    /// Address of the embedded broker.
    pub broker: SocketAddr,
    /// Address of the gateway.
    pub gateway: SocketAddr,
    dir: TempDir,
}

impl DroverUp {
    /// Start `drover up` on free ports in a new temp data dir, with `extra` arguments, and
    /// wait until `/healthz` answers 200.
    pub async fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let broker: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let gateway: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut up = Self {
            child: None,
            http,
            broker,
            gateway,
            dir,
        };
        up.spawn(extra).await;
        up
    }

    /// The data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn spawn(&mut self, extra: &[&str]) {
        let data = self.data_dir();
        let (http, broker) = (self.http.to_string(), self.broker.to_string());
        let gateway = self.gateway.to_string();
        let mut args = vec![
            "up",
            "--http",
            &http,
            "--broker-listen",
            &broker,
            "--gateway",
            &gateway,
            "--data-dir",
            data.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        let log = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join(name))
                .expect("log file")
        };
        let child = Command::new(drover_bin())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log("stdout.log"))
            .stderr(log("stderr.log"))
            .spawn()
            .expect("spawn drover up");
        self.child = Some(child);
        let url = self.url("/healthz");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("drover up exited with {status}:\n{}", self.logs());
            }
            if let Ok(r) = reqwest::get(&url).await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "drover up not healthy within 60s:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://ADDR/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// What the process printed so far.
    pub fn logs(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            read("stdout.log"),
            read("stderr.log")
        )
    }

    /// Send SIGTERM and wait (at most `timeout`) for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "drover up ignored SIGTERM for {timeout:?}:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kill it hard (SIGKILL), as a crash or the OOM killer would: its children (the embedded
    /// broker) are left running.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The arguments of a `drover up` on this one's ports and data dir (for a second process).
    pub fn args(&self) -> Vec<String> {
        vec![
            "up".into(),
            "--http".into(),
            self.http.to_string(),
            "--broker-listen".into(),
            self.broker.to_string(),
            "--gateway".into(),
            self.gateway.to_string(),
            "--data-dir".into(),
            self.data_dir().display().to_string(),
        ]
    }

    /// Start again on the same ports and data dir after [`DroverUp::terminate`].
    pub async fn restart(&mut self, extra: &[&str]) {
        assert!(self.child.is_none(), "terminate first");
        self.spawn(extra).await;
    }

    /// The temp dir holding logs and data.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for DroverUp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM first so drover stops its broker child; then make sure.
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut exited = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    exited = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !exited {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        // What every run of it printed, its broker's log and records, for the secret scan.
        crate::secrets::keep_process(
            "up",
            self.dir.path(),
            &["stdout.log", "stderr.log"],
            Some(&self.data_dir()),
        );
    }
}

/// Any long-running `drover` role (`collector`, `broker`, …) as a child process, with its
/// output in a temp dir; SIGKILL-able and restartable with the same arguments.
#[derive(Debug)]
pub struct DroverProcess {
    child: Option<Child>,
    args: Vec<String>,
    dir: TempDir,
    runs: u32,
}

impl DroverProcess {
    /// Start `drover ARGS` (it is not waited on: poll what it should do).
    pub fn start(args: &[&str]) -> Self {
        let mut p = Self {
            child: None,
            args: args.iter().map(|s| s.to_string()).collect(),
            dir: tempfile::tempdir().expect("temp dir"),
            runs: 0,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        self.runs += 1;
        let log = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join(name))
                .expect("log file")
        };
        let child = Command::new(drover_bin())
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log("stdout.log"))
            .stderr(log("stderr.log"))
            .spawn()
            .expect("spawn drover");
        self.child = Some(child);
    }

    /// A directory for this process's data that lives as long as it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kill it hard (SIGKILL), as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again with the same arguments.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "kill or terminate first");
        self.spawn();
    }

    /// SIGTERM and wait.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// What it printed so far (all runs).
    pub fn logs(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "--- {} run(s) of drover {:?} ---\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.runs,
            self.args,
            read("stdout.log"),
            read("stderr.log")
        )
    }
}

impl Drop for DroverProcess {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(10));
        // What every run of it printed (and a `drover up`'s broker log and records), for the
        // secret scan. The arguments are not kept: they may hold a secret (--cluster-token).
        let role = self.args.first().map_or("drover", String::as_str);
        let data_dir = (role == "up")
            .then(|| {
                self.args
                    .iter()
                    .position(|a| a == "--data-dir")
                    .and_then(|i| self.args.get(i + 1))
                    .map(PathBuf::from)
            })
            .flatten();
        crate::secrets::keep_process(
            role,
            self.dir.path(),
            &["stdout.log", "stderr.log"],
            data_dir.as_deref(),
        );
    }
}
