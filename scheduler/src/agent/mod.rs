//! The agent: one per host (several may share one Docker engine). Every heartbeat it lists
//! the containers labelled with its node ID, reports their states and health to the master,
//! and gets back the tasks it should run: it starts the missing ones and stops every other
//! container it owns. Level-triggered, so a restarted agent adopts its running containers
//! and a restarted master loses nothing.
pub mod cleanup;
pub mod docker;
pub mod health;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bollard::{models::ContainerSummaryStateEnum, Docker};
use chrono::{DateTime, Utc};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    metrics::{AgentMetrics, ResultLabel},
    model::{AgentReport, HeartbeatReply, Resources, TaskReport, TaskSpec, TaskState},
};

use self::{docker::Owned, health::Health};

/// How long a KILLED or launch-FAILED task is still reported after the fact.
const REPORT_GONE_FOR: Duration = Duration::from_secs(30);

/// What the agent needs to know.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The master's base URL, e.g. `http://127.0.0.1:8080`.
    pub master: String,
    /// This node's ID (unique in the cluster; also the `hostname` constraint field).
    pub node_id: String,
    /// Address tasks are reached at (their `HOST`).
    pub hostname: String,
    /// What this node offers to tasks.
    pub resources: Resources,
    /// Host ports tasks may use, inclusive.
    pub port_range: (u16, u16),
    /// Attributes for constraints.
    pub attributes: BTreeMap<String, String>,
    /// Docker engine: `""` (local), `unix:///PATH`, `tcp://HOST:PORT`.
    pub docker: String,
    /// Time between heartbeats.
    pub heartbeat_interval: Duration,
    /// Image of apps that give only `cmd`.
    pub default_image: String,
    /// Container launches at once.
    pub max_parallel_launches: usize,
    /// Cleanup of exited containers ([`cleanup`]).
    pub cleanup: cleanup::CleanupConfig,
}

/// What the agent can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The HTTP client.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

#[derive(Debug, Default)]
struct Local {
    launching: HashSet<String>,
    stopping: HashSet<String>,
    killed: HashMap<String, (String, Instant)>,
    failed: HashMap<String, (String, String, Instant)>,
    health: HashMap<String, Health>,
    checkers: HashMap<String, JoinHandle<()>>,
}

#[derive(Debug)]
struct Agent {
    cfg: AgentConfig,
    docker: Docker,
    http: reqwest::Client,
    checks_http: reqwest::Client,
    local: Mutex<Local>,
    metrics: AgentMetrics,
    launches: tokio::sync::Semaphore,
    /// Wakes the loop for an early heartbeat (a launch or stop finished).
    changed: tokio::sync::Notify,
    /// The master's cluster ID (its `/v2/info` frameworkId), once known.
    cluster: Mutex<String>,
}

/// Run the agent until `stop` turns true. Its containers keep running after it stops (a
/// restarted agent adopts them).
pub async fn run(
    cfg: AgentConfig,
    docker: bollard::Docker,
    metrics: AgentMetrics,
    mut stop: watch::Receiver<bool>,
) -> Result<(), AgentError> {
    let agent = Arc::new(Agent {
        // The master's API (with this process's token); not the tasks' health checks.
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .default_headers(drover_auth::client::default_headers())
            .build()?,
        checks_http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        launches: tokio::sync::Semaphore::new(cfg.max_parallel_launches.max(1)),
        changed: tokio::sync::Notify::new(),
        cluster: Mutex::new(String::new()),
        cfg,
        docker,
        local: Mutex::new(Local::default()),
        metrics,
    });
    tracing::info!(node = %agent.cfg.node_id, master = %agent.cfg.master, "agent started");
    let cleanup_loop = agent.cfg.cleanup.schedule.clone().map(|schedule| {
        let a = agent.clone();
        tokio::spawn(async move { a.cleanup_loop(schedule).await })
    });
    let mut every = tokio::time::interval(agent.cfg.heartbeat_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut registered = false;
    let mut master_down_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            // Report finished launches and stops early, at most every 250 ms (more often only
            // adds list calls competing with the launches on the engine).
            _ = agent.changed.notified() => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            _ = stop.changed() => {
                if *stop.borrow() {
                    break;
                }
            }
        }
        // Which cluster's containers are ours: learnt from the master before anything else.
        let cluster = agent.cluster.lock().expect("agent lock").clone();
        if cluster.is_empty() {
            match agent.fetch_cluster_id().await {
                Ok(id) => {
                    tracing::info!(cluster = %id, "joined the master's cluster");
                    *agent.cluster.lock().expect("agent lock") = id;
                }
                Err(e) => {
                    agent.metrics.heartbeat_failures.inc();
                    if master_down_since.is_none() {
                        tracing::warn!(error = %e, "cannot reach the master yet; retrying");
                        master_down_since = Some(Instant::now());
                    }
                }
            }
            continue;
        }
        let owned = match docker::list_owned(&agent.docker, &agent.cfg.node_id, &cluster).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list this node's containers; skipping this heartbeat");
                continue;
            }
        };
        let report = agent.report(&owned);
        match agent.send(&report, registered).await {
            Ok(reply) => {
                if !registered {
                    tracing::info!(node = %agent.cfg.node_id, "registered with the master");
                }
                if master_down_since.take().is_some() {
                    tracing::info!("the master answers again");
                }
                registered = true;
                if !reply.cluster_id.is_empty() && reply.cluster_id != cluster {
                    tracing::warn!(was = %cluster, now = %reply.cluster_id, "the master belongs to another cluster now (a new data dir?): managing that cluster's containers from now on");
                    *agent.cluster.lock().expect("agent lock") = reply.cluster_id.clone();
                    continue;
                }
                agent.apply(reply, owned);
            }
            Err(e) => {
                agent.metrics.heartbeat_failures.inc();
                if master_down_since.is_none() {
                    tracing::warn!(error = %e, "heartbeat failed; tasks keep running, retrying");
                    master_down_since = Some(Instant::now());
                }
            }
        }
    }
    if let Some(h) = cleanup_loop {
        h.abort();
    }
    let local = agent.local.lock().expect("agent lock");
    for h in local.checkers.values() {
        h.abort();
    }
    tracing::info!("agent stopped; its containers keep running");
    Ok(())
}

impl Agent {
    async fn send(&self, report: &AgentReport, registered: bool) -> Result<HeartbeatReply, String> {
        let base = self.cfg.master.trim_end_matches('/');
        let url = if registered {
            format!("{base}/v1/agents/{}/heartbeat", self.cfg.node_id)
        } else {
            format!("{base}/v1/agents/register")
        };
        let resp = self
            .http
            .post(&url)
            .json(report)
            .send()
            .await
            .map_err(|e| format!("cannot reach the master at {base}: {e}"))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(format!("the master answered {status}: {body}"));
        }
        resp.json()
            .await
            .map_err(|e| format!("the master's answer does not decode: {e}"))
    }

    async fn fetch_cluster_id(&self) -> Result<String, String> {
        let base = self.cfg.master.trim_end_matches('/');
        let resp = self
            .http
            .get(format!("{base}/v2/info"))
            .send()
            .await
            .map_err(|e| format!("cannot reach the master at {base}: {e}"))?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(format!(
                "the master at {base} refused the agent ({status}): give it the cluster token (--cluster-token or DROVER_CLUSTER_TOKEN)"
            ));
        }
        let v: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| format!("the master's /v2/info does not decode: {e}"))?;
        v["frameworkId"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("{base}/v2/info has no frameworkId: is it a Drover master?"))
    }

    /// What to tell the master.
    fn report(&self, owned: &[Owned]) -> AgentReport {
        let mut local = self.local.lock().expect("agent lock");
        local
            .killed
            .retain(|_, (_, at)| at.elapsed() < REPORT_GONE_FOR);
        local
            .failed
            .retain(|_, (_, _, at)| at.elapsed() < REPORT_GONE_FOR);
        let mut tasks = Vec::new();
        let mut seen = HashSet::new();
        for c in owned {
            seen.insert(c.task_id.clone());
            let (state, message) = if local.stopping.contains(&c.task_id) {
                (TaskState::Killing, None)
            } else {
                use ContainerSummaryStateEnum as S;
                match c.state {
                    S::RUNNING | S::PAUSED => (TaskState::Running, None),
                    S::CREATED | S::RESTARTING | S::EMPTY => (TaskState::Starting, None),
                    S::REMOVING | S::STOPPING => (TaskState::Killing, None),
                    S::EXITED | S::DEAD => {
                        if local.killed.contains_key(&c.task_id) {
                            (TaskState::Killed, None)
                        } else {
                            let code = c.exit_code.unwrap_or(-1);
                            let state = if code == 0 {
                                TaskState::Finished
                            } else {
                                TaskState::Failed
                            };
                            (
                                state,
                                Some(format!("the container exited with status {code}")),
                            )
                        }
                    }
                }
            };
            let h = local.health.get(&c.task_id).cloned().unwrap_or_default();
            tasks.push(TaskReport {
                task_id: c.task_id.clone(),
                app_id: c.app_id.clone(),
                state,
                container_id: Some(c.id.clone()),
                message,
                started_at: c.created,
                healthy: h.healthy,
                consecutive_failures: h.consecutive_failures,
                last_success: h.last_success,
                last_failure: h.last_failure,
                last_failure_cause: h.last_failure_cause,
            });
        }
        let bare = |task_id: &str, app_id: &str, state, message: Option<String>| TaskReport {
            task_id: task_id.to_string(),
            app_id: app_id.to_string(),
            state,
            container_id: None,
            message,
            started_at: None,
            healthy: None,
            consecutive_failures: 0,
            last_success: None,
            last_failure: None,
            last_failure_cause: None,
        };
        for t in &local.launching {
            if !seen.contains(t) {
                tasks.push(bare(t, "", TaskState::Staging, None));
                seen.insert(t.clone());
            }
        }
        for (t, (app, msg, _)) in &local.failed {
            if seen.insert(t.clone()) {
                tasks.push(bare(t, app, TaskState::Failed, Some(msg.clone())));
            }
        }
        for (t, (app, _)) in &local.killed {
            if seen.insert(t.clone()) {
                tasks.push(bare(t, app, TaskState::Killed, None));
            }
        }
        AgentReport {
            node_id: self.cfg.node_id.clone(),
            hostname: self.cfg.hostname.clone(),
            resources: self.cfg.resources,
            port_range: self.cfg.port_range,
            attributes: self.cfg.attributes.clone(),
            tasks,
        }
    }

    /// Start what is missing, stop what is not wanted, keep health checks in step.
    fn apply(self: &Arc<Self>, reply: HeartbeatReply, owned: Vec<Owned>) {
        if reply.removed {
            tracing::warn!(node = %self.cfg.node_id, "this node was removed from the cluster: stopping its tasks (restart the agent to rejoin)");
        }
        let desired: HashMap<String, TaskSpec> = reply
            .tasks
            .into_iter()
            .map(|t| (t.task_id.clone(), t))
            .collect();
        let owned_by_task: HashMap<&str, &Owned> =
            owned.iter().map(|c| (c.task_id.as_str(), c)).collect();
        let mut local = self.local.lock().expect("agent lock");
        for (id, spec) in &desired {
            if local.launching.contains(id) || local.failed.contains_key(id) {
                continue;
            }
            if let Some(c) = owned_by_task.get(id.as_str()) {
                // Created but never started (an agent that stopped mid-launch): start it.
                if c.state == ContainerSummaryStateEnum::CREATED {
                    local.launching.insert(id.clone());
                    let me = self.clone();
                    let (task, container) = (id.clone(), c.id.clone());
                    tokio::spawn(async move { me.start_created(task, container).await });
                }
                continue;
            }
            local.launching.insert(id.clone());
            let me = self.clone();
            let spec = spec.clone();
            tokio::spawn(async move { me.launch(spec).await });
        }
        for c in &owned {
            if desired.contains_key(&c.task_id)
                || local.launching.contains(&c.task_id)
                || local.stopping.contains(&c.task_id)
            {
                continue;
            }
            // An exited container of an app with a cleanup policy stays until its cleanup.
            if !reply.removed && cleanup::retained(c, &self.cfg.cleanup) {
                continue;
            }
            local.stopping.insert(c.task_id.clone());
            let me = self.clone();
            let c = c.clone();
            tokio::spawn(async move { me.stop(c).await });
        }
        // Health checks: one checker per running, wanted task that has checks.
        let want_checks: HashSet<String> = owned
            .iter()
            .filter(|c| c.state == ContainerSummaryStateEnum::RUNNING)
            .filter(|c| {
                desired
                    .get(&c.task_id)
                    .is_some_and(|s| !s.health_checks.is_empty())
            })
            .map(|c| c.task_id.clone())
            .collect();
        let stale: Vec<String> = local
            .checkers
            .keys()
            .filter(|t| !want_checks.contains(*t))
            .cloned()
            .collect();
        for t in stale {
            if let Some(h) = local.checkers.remove(&t) {
                h.abort();
            }
            local.health.remove(&t);
        }
        for t in want_checks {
            if local.checkers.contains_key(&t) {
                continue;
            }
            let (Some(spec), Some(c)) = (desired.get(&t), owned_by_task.get(t.as_str())) else {
                continue;
            };
            let me = self.clone();
            let spec = spec.clone();
            let container = c.id.clone();
            let started = c.created.unwrap_or_else(Utc::now);
            let h = tokio::spawn(async move { me.check_loop(spec, container, started).await });
            local.checkers.insert(t, h);
        }
    }

    async fn launch(self: Arc<Self>, spec: TaskSpec) {
        let _permit = self.launches.acquire().await;
        let cluster = self.cluster.lock().expect("agent lock").clone();
        let started = Instant::now();
        let result = docker::launch(
            &self.docker,
            &spec,
            &self.cfg.node_id,
            &cluster,
            &self.cfg.hostname,
            &self.cfg.default_image,
        )
        .await;
        let mut local = self.local.lock().expect("agent lock");
        local.launching.remove(&spec.task_id);
        self.changed.notify_one();
        match result {
            Ok(id) => {
                self.metrics.containers_started.inc();
                self.metrics
                    .launch_seconds
                    .observe(started.elapsed().as_secs_f64());
                tracing::info!(task = %spec.task_id, app = %spec.app_id, container = %&id[..12.min(id.len())], ms = started.elapsed().as_millis() as u64, "task container started");
            }
            Err(e) => {
                let message = e.to_string();
                self.metrics.launch_failures.inc();
                tracing::warn!(task = %spec.task_id, app = %spec.app_id, error = %message, "task container failed to start");
                local.failed.insert(
                    spec.task_id.clone(),
                    (spec.app_id.clone(), message, Instant::now()),
                );
            }
        }
    }

    async fn start_created(self: Arc<Self>, task: String, container: String) {
        let result = self.docker.start_container(&container, None).await;
        if result.is_err() {
            // Gone, so the failure is reported and the master places a replacement.
            let _ = docker::remove(&self.docker, &container).await;
        }
        let mut local = self.local.lock().expect("agent lock");
        local.launching.remove(&task);
        self.changed.notify_one();
        match result {
            Ok(()) => {
                self.metrics.containers_started.inc();
                tracing::info!(task = %task, "started a task container left created");
            }
            Err(e) => {
                self.metrics.launch_failures.inc();
                tracing::warn!(task = %task, error = %e, "cannot start a task container left created");
                local.failed.insert(
                    task.clone(),
                    (
                        String::new(),
                        format!("cannot start the container: {e}"),
                        Instant::now(),
                    ),
                );
            }
        }
    }

    async fn stop(self: Arc<Self>, c: Owned) {
        let was_running = c.state == ContainerSummaryStateEnum::RUNNING;
        let result = docker::stop_and_remove(&self.docker, &c.id, c.kill_grace).await;
        let mut local = self.local.lock().expect("agent lock");
        local.stopping.remove(&c.task_id);
        self.changed.notify_one();
        match result {
            Ok(()) => {
                self.metrics.containers_stopped.inc();
                if was_running {
                    tracing::info!(task = %c.task_id, app = %c.app_id, "task container stopped");
                    local
                        .killed
                        .insert(c.task_id.clone(), (c.app_id.clone(), Instant::now()));
                }
            }
            Err(e) => {
                tracing::warn!(task = %c.task_id, error = %e, "cannot stop the task's container; will retry")
            }
        }
    }

    async fn check_loop(
        self: Arc<Self>,
        spec: TaskSpec,
        container: String,
        started: DateTime<Utc>,
    ) {
        let Some(first) = spec.health_checks.first().cloned() else {
            return;
        };
        let interval = Duration::from_secs_f64(first.interval_seconds.max(0.05));
        loop {
            let mut result = Ok(());
            for hc in &spec.health_checks {
                if let Err(e) =
                    health::check_once(hc, &spec, &container, &self.docker, &self.checks_http).await
                {
                    result = Err(e);
                    break;
                }
            }
            let label = ResultLabel {
                result: if result.is_ok() { "ok" } else { "failed" }.into(),
            };
            self.metrics.health_checks.get_or_create(&label).inc();
            {
                let mut local = self.local.lock().expect("agent lock");
                let h = local.health.entry(spec.task_id.clone()).or_default();
                let before = h.healthy;
                if let Err(e) = &result {
                    tracing::debug!(task = %spec.task_id, error = %e, "health check failed");
                }
                h.record(result, &first, started, Utc::now());
                if h.healthy != before {
                    self.changed.notify_one();
                    tracing::info!(task = %spec.task_id, healthy = ?h.healthy, failures = h.consecutive_failures, "task health changed");
                }
            }
            tokio::time::sleep(interval).await;
        }
    }
}
