//! A scheduler cluster for a test: a `drover master` and `drover agent`s as child processes
//! on free ports, each agent with a unique node ID and its own host-port range, all on the
//! local Docker engine. Every container an agent started is removed when the cluster drops
//! (by its `drover.node` label), even when the test fails.
use std::{
    future::Future,
    net::SocketAddr,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;
use tempfile::TempDir;

use crate::{drover::DroverProcess, free_port, unique};

/// Removes every container labelled with one of these node IDs when dropped.
#[derive(Debug, Default)]
pub struct NodeContainers(pub Vec<String>);

impl NodeContainers {
    /// Remove them now.
    pub fn remove_all(&self) {
        for node in &self.0 {
            let out = Command::new("docker")
                .args([
                    "ps",
                    "-aq",
                    "--filter",
                    &format!("label=drover.node={node}"),
                ])
                .output();
            let Ok(out) = out else { continue };
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            if !ids.is_empty() {
                let mut args = vec!["rm".to_string(), "-f".into(), "-v".into()];
                args.extend(ids);
                let _ = Command::new("docker").args(&args).output();
            }
        }
    }
}

impl Drop for NodeContainers {
    fn drop(&mut self) {
        self.remove_all();
    }
}

/// A host-port range of 40 ports, picked at random among 200 below the kernel's ephemeral
/// range (agents skip ports something else holds, so an overlap only costs a relaunch).
pub fn port_range() -> (u16, u16) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let slot = (std::process::id().wrapping_mul(7) ^ nanos).wrapping_add(n * 13) % 200;
    let lo = 20_000 + (slot as u16) * 50;
    (lo, lo + 39)
}

/// One agent process.
#[derive(Debug)]
pub struct Agent {
    /// Its process.
    pub process: DroverProcess,
    /// Its node ID.
    pub node_id: String,
    /// Its host ports.
    pub ports: (u16, u16),
}

/// A master and its agents.
#[derive(Debug)]
pub struct Cluster {
    /// The master process.
    pub master: DroverProcess,
    /// Its HTTP address.
    pub http: SocketAddr,
    /// The agents.
    pub agents: Vec<Agent>,
    /// An ID unique to this test run, for app IDs.
    pub run: String,
    http_client: reqwest::Client,
    // Dropped last: containers go after the processes stop.
    _data: TempDir,
    containers: NodeContainers,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for a in &mut self.agents {
            a.process.terminate(Duration::from_secs(10));
        }
        self.master.terminate(Duration::from_secs(10));
        self.containers.remove_all();
    }
}

/// Master flags that keep tests fast.
pub const FAST_MASTER: &[&str] = &[
    "--heartbeat-timeout",
    "4s",
    "--unreachable-replace-after",
    "1s",
    "--reconcile-interval",
    "200ms",
];

impl Cluster {
    /// A master (with `master_args`, and [`FAST_MASTER`]'s flags it does not set) and `agents` agents, each
    /// offering 4 cpus and 4096 MiB; waits until every agent has registered.
    pub async fn start(agents: usize, master_args: &[&str]) -> Self {
        crate::docker::ensure_images();
        let data = tempfile::tempdir().expect("temp dir");
        let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut args: Vec<String> = vec![
            "master".into(),
            "--http".into(),
            http.to_string(),
            "--data-dir".into(),
            data.path().display().to_string(),
        ];
        // FAST_MASTER's flags unless the test sets them itself.
        for pair in FAST_MASTER.chunks(2) {
            if !master_args.contains(&pair[0]) {
                args.extend(pair.iter().map(|s| s.to_string()));
            }
        }
        args.extend(master_args.iter().map(|s| s.to_string()));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let master = DroverProcess::start(&argv);
        let run = unique("t").replace('-', "");
        let mut c = Self {
            master,
            http,
            agents: Vec::new(),
            run,
            http_client: reqwest::Client::new(),
            _data: data,
            containers: NodeContainers::default(),
        };
        c.wait_ready().await;
        for i in 0..agents {
            c.add_agent(&format!("n{i}"), &[]).await;
        }
        c
    }

    async fn wait_ready(&self) {
        let url = self.url("/ping");
        wait_for(
            Duration::from_secs(30),
            "the master answers /ping",
            || async {
                reqwest::get(&url)
                    .await
                    .is_ok_and(|r| r.status().is_success())
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", self.master.logs()));
    }

    /// Start one more agent named `name` (made unique), with `extra` flags; waits until it
    /// registered.
    pub async fn add_agent(&mut self, name: &str, extra: &[&str]) -> usize {
        let node_id = format!("{name}-{}", self.run);
        self.add_agent_with_id(&node_id, extra).await
    }

    /// Start one more agent with exactly this node ID.
    pub async fn add_agent_with_id(&mut self, node_id: &str, extra: &[&str]) -> usize {
        let node_id = node_id.to_string();
        self.containers.0.push(node_id.clone());
        let master = format!("http://{}", self.http);
        let (mut args, ports) = agent_args(&master, &node_id);
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = DroverProcess::start(&args);
        self.agents.push(Agent {
            process,
            node_id: node_id.clone(),
            ports,
        });
        let idx = self.agents.len() - 1;
        let r = wait_for(Duration::from_secs(30), "the agent registers", || async {
            self.get("/v1/nodes").await["nodes"]
                .as_array()
                .is_some_and(|n| n.iter().any(|x| x["id"] == Value::String(node_id.clone())))
        })
        .await;
        if let Err(e) = r {
            panic!(
                "{e}\n{}\n{}",
                self.agents[idx].process.logs(),
                self.master.logs()
            );
        }
        idx
    }

    /// `http://ADDR/PATH` of the master.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// An app ID unique to this run: `/NAME-RUN`.
    pub fn app_id(&self, name: &str) -> String {
        format!("/{name}-{}", self.run.to_lowercase())
    }

    /// Call the master's API: (status, JSON body or Null).
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http_client.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("the master answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// GET that must answer 2xx.
    pub async fn get(&self, path: &str) -> Value {
        let (s, v) = self.call("GET", path, None).await;
        assert!((200..300).contains(&s), "GET {path}: {s} {v}");
        v
    }

    /// POST an app and check it was accepted.
    pub async fn create_app(&self, def: &Value) {
        let (s, v) = self.call("POST", "/v2/apps", Some(def)).await;
        assert_eq!(s, 201, "POST /v2/apps: {v}");
    }

    /// The app's tasks from the API.
    pub async fn tasks(&self, app_id: &str) -> Vec<Value> {
        let (s, v) = self
            .call("GET", &format!("/v2/apps{app_id}/tasks"), None)
            .await;
        if s != 200 {
            return Vec::new();
        }
        v["tasks"].as_array().cloned().unwrap_or_default()
    }

    /// Wait until no deployment is in progress for the app.
    pub async fn wait_deployed(&self, app_id: &str, timeout: Duration) {
        let r = wait_for(timeout, "the deployment finishes", || async {
            let (s, v) = self.call("GET", &format!("/v2/apps{app_id}"), None).await;
            s == 200
                && v["app"]["deployments"]
                    .as_array()
                    .is_some_and(|d| d.is_empty())
        })
        .await;
        if let Err(e) = r {
            panic!("{e}: {}\n{}", self.debug(app_id).await, self.all_logs());
        }
    }

    /// The app, queue and nodes as JSON, for failure messages.
    pub async fn debug(&self, app_id: &str) -> String {
        let app = self
            .call(
                "GET",
                &format!("/v2/apps{app_id}?embed=app.tasks&embed=app.lastTaskFailure"),
                None,
            )
            .await;
        let queue = self.call("GET", "/v2/queue", None).await;
        let nodes = self.call("GET", "/v1/nodes", None).await;
        format!("app {}\nqueue {}\nnodes {}", app.1, queue.1, nodes.1)
    }

    /// Every process's output.
    pub fn all_logs(&self) -> String {
        let mut s = self.master.logs();
        for a in &self.agents {
            s.push('\n');
            s.push_str(&a.process.logs());
        }
        s
    }
}

/// A running container of the scheduler, as Docker lists it.
#[derive(Debug, Clone)]
pub struct TaskContainer {
    /// Container ID.
    pub id: String,
    /// `drover.task` label.
    pub task_id: String,
    /// `drover.node` label.
    pub node_id: String,
    /// All labels.
    pub labels: std::collections::HashMap<String, String>,
}

/// The running containers labelled `drover.app=APP`.
pub async fn running_containers(app_id: &str) -> Vec<TaskContainer> {
    use bollard::query_parameters::ListContainersOptionsBuilder;
    let docker = crate::docker::docker().await;
    let filters = std::collections::HashMap::from([
        ("label".to_string(), vec![format!("drover.app={app_id}")]),
        ("status".to_string(), vec!["running".to_string()]),
    ]);
    let list = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(false)
                .filters(&filters)
                .build(),
        ))
        .await
        .expect("list containers");
    list.into_iter()
        .map(|c| {
            let labels = c.labels.unwrap_or_default();
            TaskContainer {
                id: c.id.unwrap_or_default(),
                task_id: labels.get("drover.task").cloned().unwrap_or_default(),
                node_id: labels.get("drover.node").cloned().unwrap_or_default(),
                labels,
            }
        })
        .collect()
}

/// Poll `check` every 100 ms until it is true, at most `timeout`.
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(format!("timed out after {timeout:?} waiting until {what}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The command line of a `drover agent` joining `master` as `node_id`: its own HTTP port
/// and host-port range (returned), 4 CPUs, 4 GiB, 300 ms heartbeats, busybox by default.
pub fn agent_args(master: &str, node_id: &str) -> (Vec<String>, (u16, u16)) {
    let ports = port_range();
    let args = [
        "agent",
        "--master",
        master,
        "--node-id",
        node_id,
        "--http",
        format!("127.0.0.1:{}", free_port()).as_str(),
        "--port-range",
        format!("{}-{}", ports.0, ports.1).as_str(),
        "--cpus",
        "4",
        "--mem",
        "4096",
        "--heartbeat-interval",
        "300ms",
        "--advertise-host",
        "127.0.0.1",
        "--default-image",
        crate::docker::BUSYBOX_IMAGE,
    ]
    .map(str::to_string)
    .to_vec();
    (args, ports)
}
