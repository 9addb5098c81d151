//! Demo apps behind a real `drover up`'s scheduler and gateway: a `drover up` with fast
//! reconciliation on its own node, app definitions, deploys, tasks and their health, what an
//! instance served, and a load generator through the gateway.
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::{
    docker::{ensure_images, DEMO_IMAGE},
    drover::DroverUp,
    scheduler::{port_range, wait_for, NodeContainers},
    unique,
};

/// How long the helpers wait for tasks.
pub const WAIT: Duration = Duration::from_secs(60);

/// `drover up` with the scheduler (its own node ID and port range, 200 ms heartbeats and
/// reconciliation) and these flags; its containers are removed when the guard drops.
pub async fn up_scheduled(flags: &[&str]) -> (DroverUp, NodeContainers) {
    ensure_images();
    let node = unique("apps").replace('-', "");
    let guard = NodeContainers(vec![node.clone()]);
    let (lo, hi) = port_range();
    let range = format!("{lo}-{hi}");
    let mut args = vec![
        "--node-id",
        &node,
        "--port-range",
        &range,
        "--heartbeat-interval",
        "200ms",
        "--reconcile-interval",
        "200ms",
    ];
    args.extend_from_slice(flags);
    let up = DroverUp::start(&args).await;
    (up, guard)
}

/// A demo-app definition with these labels, health-checked every 200 ms, no log lines, a
/// 1 s kill grace period (set `env` and the rest on the value).
pub fn demo(id: &str, instances: u32, labels: Value) -> Value {
    json!({
        "id": id, "instances": instances, "cpus": 0.1, "mem": 32,
        "container": {"docker": {"image": DEMO_IMAGE}},
        "env": {"LOG_RATE": "0"},
        "labels": labels,
        "healthChecks": [{"protocol": "HTTP", "path": "/healthz", "portIndex": 0,
            "gracePeriodSeconds": 10, "intervalSeconds": 0.2, "timeoutSeconds": 1,
            "maxConsecutiveFailures": 3}],
        "taskKillGracePeriodSeconds": 1,
    })
}

/// `POST /v2/apps`; panics with the master's answer when refused.
pub async fn deploy(up: &DroverUp, def: &Value) {
    let r = reqwest::Client::new()
        .post(up.url("/v2/apps"))
        .json(def)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "deploy {}: {} {}",
        def["id"],
        r.status(),
        r.text().await.unwrap_or_default()
    );
}

/// `GET` a JSON API of `up` (`Null` when the answer is not JSON).
pub async fn get(up: &DroverUp, path: &str) -> Value {
    reqwest::get(up.url(path))
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null)
}

/// The app's tasks, every state.
pub async fn tasks(up: &DroverUp, app: &str) -> Vec<Value> {
    get(up, &format!("/v2/apps{app}/tasks")).await["tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Running and passing its health check.
pub fn healthy(t: &Value) -> bool {
    t["state"] == "TASK_RUNNING" && t["healthCheckResults"][0]["alive"] == true
}

/// Waits until the app has `n` healthy tasks (panics with `up`'s log after [`WAIT`]).
pub async fn wait_healthy(up: &DroverUp, app: &str, n: usize) -> Vec<Value> {
    let r = wait_for(WAIT, &format!("{n} healthy tasks of {app}"), || async {
        tasks(up, app).await.iter().filter(|t| healthy(t)).count() == n
    })
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}", up.logs());
    }
    tasks(up, app).await
}

/// The `GET /` count of one demo instance, read from it directly (`demo_requests_total`);
/// 0 when it does not answer.
pub async fn served(task: &Value) -> u64 {
    let port = task["ports"][0].as_u64().unwrap_or(0);
    let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await else {
        return 0;
    };
    r.text()
        .await
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("demo_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Requests answered, and each failure with when it came back and what it was.
pub type Answers = (u64, Vec<(Instant, String)>);

/// Clients that GET `host` through the gateway in a loop until stopped, each with its own
/// `x-user` header (a service's groups can be picked by it); `active` of them send at a
/// time (change it with [`Load::set`]).
#[derive(Debug)]
pub struct Load {
    active: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<Answers>>,
}

impl Load {
    /// `max` clients, `active` of them sending.
    pub fn start(gateway: SocketAddr, host: &'static str, max: usize, active: usize) -> Self {
        let active = Arc::new(AtomicUsize::new(active));
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..max)
            .map(|i| {
                let (active, stop) = (active.clone(), stop.clone());
                tokio::spawn(async move {
                    let c = reqwest::Client::new();
                    let (mut ok, mut failed) = (0u64, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        if i >= active.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                        let r = c
                            .get(format!("http://{gateway}/"))
                            .header("host", host)
                            .header("x-user", format!("user-{i}"))
                            .send()
                            .await;
                        match r {
                            Ok(r) if r.status().is_success() => {
                                r.bytes().await.ok();
                                ok += 1
                            }
                            Ok(r) => failed.push((
                                Instant::now(),
                                format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                            )),
                            Err(e) => failed.push((Instant::now(), e.to_string())),
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        Self {
            active,
            stop,
            workers,
        }
    }

    /// From now on `active` clients send.
    pub fn set(&self, active: usize) {
        self.active.store(active, Ordering::Relaxed);
    }

    /// Stops the clients and adds up what they got.
    pub async fn stop(self) -> Answers {
        self.stop.store(true, Ordering::Relaxed);
        let (mut ok, mut failed) = (0, Vec::new());
        for w in self.workers {
            let (o, f) = w.await.unwrap();
            ok += o;
            failed.extend(f);
        }
        (ok, failed)
    }
}
