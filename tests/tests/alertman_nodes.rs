//! `remove_node` on a real multi-node cluster: a `drover up` (embedded broker, metrics store,
//! scheduler with its local agent, Alertman) and three more `drover agent` processes on the
//! same Docker engine — four nodes. An app's instances run spread over them; the test plays
//! the collectors, producing each running task's container stats to `drover.metrics.v1`
//! tagged with the task's node, hot on the nodes it calls bad. A rule `cpu_pct by [node] >
//! 80` with `action: remove_node` then has to:
//! - with two of four nodes bad, drain exactly one (the cap: max(1, 10 %) of the nodes per
//!   window), its tasks moving to the other nodes while the app keeps its instance count, the
//!   other refused in the history with the cap; the removal an event on `drover.events.v1`
//!   naming the rule;
//! - uncordon the drained node once healthy, after its back-off (20 s here);
//! - with three of four nodes bad, drain none and notify "suspect the monitoring".
use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use drover_schema::{topics, Event};
use drover_tests::{
    docker::{ensure_images, BUSYBOX_IMAGE},
    drover::{DroverProcess, DroverUp},
    hooks::HookServer,
    kafka::{container_stats, produce_all, read_records},
    scheduler::{agent_args, port_range, wait_for, NodeContainers},
    unique,
};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);

/// A container-stats record of one task, keyed by the task, as its node's collector sends it.
fn stats(app: &str, task: &str, node: &str, cpu: f64) -> (String, Vec<u8>) {
    (task.to_string(), container_stats(app, task, node, cpu))
}

struct Nodes {
    up: DroverUp,
    agents: Vec<DroverProcess>,
    ids: Vec<String>,
    http: reqwest::Client,
    _containers: NodeContainers,
}

impl Nodes {
    async fn get(&self, path: &str) -> Value {
        let r = self.http.get(self.up.url(path)).send().await.unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Node ID → (status, task count).
    async fn nodes(&self) -> Vec<(String, String, u64)> {
        self.get("/v1/nodes").await["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["id"].as_str().unwrap().to_string(),
                    n["status"].as_str().unwrap().to_string(),
                    n["tasks"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    }

    async fn status(&self, node: &str) -> String {
        self.nodes()
            .await
            .into_iter()
            .find(|n| n.0 == node)
            .map(|n| n.1)
            .unwrap_or_default()
    }

    /// Running tasks of the app: (task ID, node).
    async fn running(&self, app: &str) -> Vec<(String, String)> {
        let v = self.get(&format!("/v2/apps{app}/tasks")).await;
        v["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["state"] == "TASK_RUNNING")
            .map(|t| {
                (
                    t["id"].as_str().unwrap().to_string(),
                    t["slaveId"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    async fn actions(&self) -> Vec<Value> {
        self.get("/api/alerts/history?kind=action&since=1h&limit=500")
            .await["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    async fn debug(&self, app: &str) -> String {
        let mut s = format!(
            "nodes {:?}\ntasks {:?}\nactions {:#}\n",
            self.nodes().await,
            self.running(app).await,
            json!(self.actions().await)
        );
        s.push_str(&self.up.logs());
        for a in &self.agents {
            s.push('\n');
            s.push_str(&a.logs());
        }
        s
    }
}

/// A `drover up` with its local agent and `agents` more agents; Alertman with `rules`.
async fn cluster(agents: usize, rules: &str) -> Nodes {
    ensure_images();
    let run = unique("an").replace('-', "");
    let mut ids: Vec<String> = (0..=agents).map(|i| format!("n{i}-{run}")).collect();
    let containers = NodeContainers(ids.clone());
    let (lo, hi) = port_range();
    let range = format!("{lo}-{hi}");
    let up = DroverUp::start(&[
        "--no-collector",
        "--no-logpipe",
        "--no-gateway",
        "--no-autoscaler",
        "--node-id",
        &ids[0],
        "--port-range",
        &range,
        "--cpus",
        "4",
        "--mem",
        "4096",
        "--heartbeat-interval",
        "300ms",
        "--reconcile-interval",
        "200ms",
        "--default-image",
        BUSYBOX_IMAGE,
        "--rules",
        rules,
        "--eval-interval",
        "1s",
        "--metrics-flush-interval",
        "200ms",
        "--commit-interval",
        "500ms",
        "--node-readmit-backoff",
        "20s",
    ])
    .await;
    let master = up.url("");
    let mut procs = Vec::new();
    for id in ids.iter().skip(1) {
        let (args, _) = agent_args(&master, id);
        procs.push(DroverProcess::start(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        ));
    }
    let nodes = Nodes {
        up,
        agents: procs,
        ids: std::mem::take(&mut ids),
        http: reqwest::Client::new(),
        _containers: containers,
    };
    let want: BTreeSet<String> = nodes.ids.iter().cloned().collect();
    let r = wait_for(T, "every agent registers", || async {
        let have: BTreeSet<String> = nodes.nodes().await.into_iter().map(|n| n.0).collect();
        have == want
    })
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}", nodes.debug("/none").await);
    }
    nodes
}

#[tokio::test(flavor = "multi_thread")]
async fn remove_node_drains_one_node_within_the_cap_readmits_it_and_suspects_the_monitoring() {
    let hooks = HookServer::start();
    let hook = format!("{}/hook", hooks.base);
    let tmp = tempfile::tempdir().unwrap();
    let app = format!("/hot-{}", unique("n").replace('-', "").to_lowercase());
    let rules = tmp.path().join("rules.yaml");
    std::fs::write(
        &rules,
        format!(
            r#"version: 1
receivers:
  - name: hook
    type: webhook
    url: {hook}
route:
  group_wait: 1s
  group_interval: 5s
  receivers: [hook]
rules:
  - name: NodeHot
    kind: metric
    metric: cpu_pct
    filter: {{app: "{app}"}}
    by: [node]
    window: 10s
    threshold: 80
    for: 2s
    annotations:
      summary: "mean CPU {{{{ value | round(1) }}}}% on node {{{{ labels.node }}}}"
    receivers: [hook]
    action: {{type: remove_node}}
"#
        ),
    )
    .unwrap();
    let c = cluster(3, rules.to_str().unwrap()).await;
    let brokers = c.up.broker.to_string();

    // Eight instances, spread over the four nodes.
    let r = c
        .http
        .post(c.up.url("/v2/apps"))
        .json(&json!({
            "id": app, "cmd": "sleep 3600", "cpus": 0.1, "mem": 32, "instances": 8,
            "container": {"type": "DOCKER", "docker": {"image": BUSYBOX_IMAGE}},
            "taskKillGracePeriodSeconds": 0,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    let r = wait_for(T, "8 instances run on all 4 nodes", || async {
        let t = c.running(&app).await;
        t.len() == 8 && t.iter().map(|x| &x.1).collect::<BTreeSet<_>>().len() == 4
    })
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}", c.debug(&app).await);
    }

    // The collectors' stand-in: every second, each running task's stats, tagged with its
    // node; hot (95 %) on the nodes in `bad`.
    let bad: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let producer = {
        let bad = Arc::clone(&bad);
        let app = app.clone();
        let url = c.up.url(&format!("/v2/apps{app}/tasks"));
        let brokers = brokers.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let tasks: Value = match http.get(&url).send().await {
                    Ok(r) => r.json().await.unwrap_or(Value::Null),
                    Err(_) => Value::Null,
                };
                let hot = bad.lock().unwrap().clone();
                let recs: Vec<(String, Vec<u8>)> = tasks["tasks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|t| t["state"] == "TASK_RUNNING")
                    .map(|t| {
                        let node = t["slaveId"].as_str().unwrap_or_default();
                        let cpu = if hot.contains(node) { 95.0 } else { 10.0 };
                        stats(&app, t["id"].as_str().unwrap_or_default(), node, cpu)
                    })
                    .collect();
                if !recs.is_empty() {
                    produce_all(&brokers, topics::METRICS, &recs).await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    // 1. Two of four nodes bad: exactly one is drained (max(1, 10 %) of 4 = 1 per window).
    let (a, b) = (c.ids[1].clone(), c.ids[2].clone());
    bad.lock().unwrap().extend([a.clone(), b.clone()]);
    let r = wait_for(T, "one of the two bad nodes is drained", || async {
        c.nodes()
            .await
            .iter()
            .any(|n| (n.0 == a || n.0 == b) && n.1 == "DRAINING")
    })
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}", c.debug(&app).await);
    }
    let drained = if c.status(&a).await == "DRAINING" {
        a.clone()
    } else {
        b.clone()
    };
    let other = if drained == a { b.clone() } else { a.clone() };
    // Its tasks move to the other nodes; the app keeps its eight instances.
    let r = wait_for(T, "the drained node's tasks run elsewhere", || async {
        let t = c.running(&app).await;
        t.len() == 8 && t.iter().all(|x| x.1 != drained)
    })
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}", c.debug(&app).await);
    }
    // The cap holds: past the 10 s between removals, the other bad node is still in, and
    // the history says why.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(c.status(&other).await, "ACTIVE", "{}", c.debug(&app).await);
    let actions = c.actions().await;
    let done: Vec<&Value> = actions.iter().filter(|e| e["state"] == "done").collect();
    assert_eq!(done.len(), 1, "{actions:#?}");
    assert_eq!(done[0]["labels"]["node"], drained.as_str(), "{actions:#?}");
    assert!(
        done[0]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("cordon and drain node {drained}: NodeHot fires")),
        "{actions:#?}"
    );
    assert!(
        actions.iter().any(|e| e["state"] == "refused"
            && e["labels"]["node"] == other.as_str()
            && e["message"]
                .as_str()
                .unwrap()
                .contains("1 of 4 in nodes already removed")),
        "the other bad node refused with the cap: {actions:#?}"
    );
    assert_eq!(c.running(&app).await.len(), 8);
    // The removal is an event on drover.events.v1, with its reason.
    let events: Vec<Event> = read_records(
        &brokers,
        topics::EVENTS,
        |e: &Event| e.kind == "node_removed" && e.node.as_deref() == Some(drained.as_str()),
        |v| !v.is_empty(),
        Duration::from_secs(30),
        Duration::ZERO,
    );
    assert_eq!(events.len(), 1, "one node_removed event for {drained}");
    assert!(
        events[0].message.contains("NodeHot fires"),
        "{:?}",
        events[0]
    );
    assert_eq!(events[0].attrs["rule"], "NodeHot");

    // 2. The other node recovers; the drained one has no tasks, so no hot stats: healthy.
    // It is uncordoned once its back-off (20 s) has passed.
    bad.lock().unwrap().clear();
    // (The history entry is written just after the scheduler's answer: wait for both.)
    let r = wait_for(T, "the drained node is uncordoned", || async {
        c.status(&drained).await == "ACTIVE"
            && c.actions()
                .await
                .iter()
                .any(|e| e["state"] == "readmitted" && e["labels"]["node"] == drained.as_str())
    })
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}", c.debug(&app).await);
    }
    let actions = c.actions().await;
    let readmitted = actions
        .iter()
        .find(|e| e["state"] == "readmitted" && e["labels"]["node"] == drained.as_str())
        .unwrap_or_else(|| panic!("{actions:#?}"));
    let removed_at = chrono::DateTime::parse_from_rfc3339(done[0]["ts"].as_str().unwrap()).unwrap();
    let back_at = chrono::DateTime::parse_from_rfc3339(readmitted["ts"].as_str().unwrap()).unwrap();
    assert!(
        back_at - removed_at >= chrono::Duration::seconds(20),
        "readmitted {back_at} before its 20 s back-off from {removed_at}"
    );
    let events: Vec<Event> = read_records(
        &brokers,
        topics::EVENTS,
        |e: &Event| e.kind == "node_readmitted" && e.node.as_deref() == Some(drained.as_str()),
        |v| !v.is_empty(),
        Duration::from_secs(30),
        Duration::ZERO,
    );
    assert_eq!(events.len(), 1, "one node_readmitted event");

    // 3. Three of the four nodes bad (every node that runs tasks): suspect the monitoring,
    // drain none, and say so through the rule's receivers.
    let busy: BTreeSet<String> = c.running(&app).await.into_iter().map(|x| x.1).collect();
    assert_eq!(busy.len(), 3, "{busy:?}");
    *bad.lock().unwrap() = busy;
    let r = wait_for(T, "the 'suspect the monitoring' notification", || async {
        hooks
            .on("/hook")
            .iter()
            .any(|v| v["groupLabels"]["alertname"] == "AlertmanSuspectMonitoring")
    })
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}", c.debug(&app).await);
    }
    tokio::time::sleep(Duration::from_secs(12)).await;
    let nodes = c.nodes().await;
    assert!(
        nodes.iter().all(|n| n.1 == "ACTIVE"),
        "no node drained while most look unhealthy: {nodes:?}"
    );
    let note = hooks
        .on("/hook")
        .into_iter()
        .find(|v| v["groupLabels"]["alertname"] == "AlertmanSuspectMonitoring")
        .unwrap();
    assert!(
        note["alerts"][0]["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("3 of 4 in nodes look unhealthy: suspect the monitoring, not the hosts"),
        "{note:#}"
    );
    let actions = c.actions().await;
    assert_eq!(
        actions.iter().filter(|e| e["state"] == "done").count(),
        1,
        "still only the first removal: {actions:#?}"
    );
    let events: Vec<Event> = read_records(
        &brokers,
        topics::EVENTS,
        |e: &Event| e.kind == "action_suspect_monitoring",
        |v| !v.is_empty(),
        Duration::from_secs(30),
        Duration::ZERO,
    );
    assert!(!events.is_empty());
    assert_eq!(c.running(&app).await.len(), 8);
    producer.abort();
}
