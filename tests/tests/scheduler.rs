//! The scheduler against the real Docker engine: `drover master` and `drover agent`
//! processes (and `drover up`), apps as labelled containers, failures noticed and repaired,
//! nodes cordoned, drained and lost, master restarts, rolling updates, bad definitions, and
//! a third-party Marathon client.
use std::time::Duration;

use drover_scheduler::{
    client::{Client, ClientEvent},
    events::EventKind,
    model::TaskState,
};
use drover_tests::{
    docker::{docker, BUSYBOX_IMAGE, DEMO_IMAGE},
    drover::{run_drover, DroverUp},
    repo_root,
    scheduler::{running_containers, wait_for, Cluster, NodeContainers},
};
use futures::{stream::BoxStream, StreamExt};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(40);

fn sleeper(id: &str, instances: u32) -> Value {
    json!({
        "id": id, "cmd": "sleep 3600", "cpus": 0.1, "mem": 32, "instances": instances,
        "container": {"type": "DOCKER", "docker": {"image": BUSYBOX_IMAGE}},
        "taskKillGracePeriodSeconds": 0,
    })
}

async fn wait_running(
    c: &Cluster,
    app: &str,
    n: usize,
) -> Vec<drover_tests::scheduler::TaskContainer> {
    let r = wait_for(T, &format!("{n} containers of {app} run"), || async {
        running_containers(app).await.len() == n
            && c.tasks(app)
                .await
                .iter()
                .filter(|t| t["state"] == "TASK_RUNNING")
                .count()
                == n
    })
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}\n{}", c.debug(app).await, c.all_logs());
    }
    running_containers(app).await
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_run_as_labelled_containers_and_a_killed_one_is_replaced() {
    let c = Cluster::start(1, &[]).await;
    let app = c.app_id("web");
    c.create_app(&sleeper(&app, 3)).await;
    let containers = wait_running(&c, &app, 3).await;
    let node = &c.agents[0].node_id;
    let d = docker().await;
    for ct in &containers {
        assert_eq!(ct.labels["drover.app"], app);
        assert_eq!(&ct.labels["drover.node"], node);
        assert_eq!(ct.labels["drover.group"], "/");
        assert!(ct
            .task_id
            .starts_with(&format!("{}.", app.trim_start_matches('/'))));
        let env = d
            .inspect_container(&ct.id, None)
            .await
            .unwrap()
            .config
            .and_then(|c| c.env)
            .unwrap_or_default();
        for want in [
            format!("DROVER_APP_ID={app}"),
            format!("MARATHON_APP_ID={app}"),
            "HOST=127.0.0.1".into(),
        ] {
            assert!(env.contains(&want), "{want} not in {env:?}");
        }
        let port0 = env
            .iter()
            .find_map(|e| e.strip_prefix("PORT0="))
            .expect("PORT0");
        let port: u16 = port0.parse().unwrap();
        let (lo, hi) = c.agents[0].ports;
        assert!(
            (lo..=hi).contains(&port),
            "PORT0 {port} outside the agent's range"
        );
    }
    c.wait_deployed(&app, T).await;

    // docker kill one: noticed, replaced.
    let victim = containers[0].clone();
    let out = std::process::Command::new("docker")
        .args(["kill", &victim.id])
        .output()
        .unwrap();
    assert!(out.status.success());
    let r = wait_for(T, "the killed task is replaced", || async {
        let now = running_containers(&app).await;
        now.len() == 3 && !now.iter().any(|x| x.task_id == victim.task_id)
    })
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}\n{}", c.debug(&app).await, c.all_logs());
    }
    let v = c
        .get(&format!("/v2/apps{app}?embed=app.lastTaskFailure"))
        .await;
    assert_eq!(
        v["app"]["lastTaskFailure"]["taskId"],
        victim.task_id.as_str(),
        "{v}"
    );
    assert_eq!(v["app"]["lastTaskFailure"]["state"], "TASK_FAILED");
    // The exited container was cleaned up by the agent.
    wait_for(T, "the killed container is removed", || async {
        d.inspect_container(&victim.id, None).await.is_err()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_health_check_gets_the_task_replaced() {
    let c = Cluster::start(1, &[]).await;
    let app = c.app_id("healthy");
    c.create_app(&json!({
        "id": app, "cpus": 0.1, "mem": 32, "instances": 1,
        "container": {"docker": {"image": DEMO_IMAGE}},
        "env": {"LOG_RATE": "0"},
        "healthChecks": [{"protocol": "HTTP", "path": "/healthz", "portIndex": 0,
            "gracePeriodSeconds": 5, "intervalSeconds": 0.3, "timeoutSeconds": 1, "maxConsecutiveFailures": 2}],
        "taskKillGracePeriodSeconds": 1,
    }))
    .await;
    c.wait_deployed(&app, T).await;
    let tasks = c.tasks(&app).await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        tasks[0]["healthCheckResults"][0]["alive"], true,
        "{tasks:?}"
    );
    let first = tasks[0]["id"].as_str().unwrap().to_string();
    let port = tasks[0]["ports"][0].as_u64().unwrap();
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/admin/unhealthy"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let r = wait_for(
        T,
        "a new healthy task replaces the unhealthy one",
        || async {
            let t = c.tasks(&app).await;
            t.len() == 1
                && t[0]["id"] != first.as_str()
                && t[0]["healthCheckResults"][0]["alive"] == true
        },
    )
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}\n{}", c.debug(&app).await, c.all_logs());
    }
    let running = running_containers(&app).await;
    assert_eq!(running.len(), 1);
    assert_ne!(running[0].task_id, first);
}

#[tokio::test(flavor = "multi_thread")]
async fn cordon_drain_and_a_lost_agent_move_tasks_between_nodes() {
    let mut c = Cluster::start(2, &[]).await;
    let (a, b) = (c.agents[0].node_id.clone(), c.agents[1].node_id.clone());
    let app = c.app_id("moves");
    let on = |node: String| {
        let app = app.clone();
        async move {
            running_containers(&app)
                .await
                .iter()
                .filter(|x| x.node_id == node)
                .count()
        }
    };

    // A cordoned node gets no new tasks.
    let (s, _) = c.call("POST", &format!("/v1/nodes/{a}/cordon"), None).await;
    assert_eq!(s, 200);
    c.create_app(&sleeper(&app, 3)).await;
    wait_running(&c, &app, 3).await;
    assert_eq!(on(a.clone()).await, 0, "tasks on the cordoned node");
    assert_eq!(on(b.clone()).await, 3);

    // Uncordon A, drain B: every task ends on A, B has none.
    c.call("POST", &format!("/v1/nodes/{a}/uncordon"), None)
        .await;
    let out = run_drover(
        &[
            "node",
            "drain",
            &b,
            "--master",
            &c.url(""),
            "--timeout",
            "40s",
        ],
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "drover node drain: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = wait_for(T, "all tasks run on A", || async {
        on(a.clone()).await == 3 && on(b.clone()).await == 0
    })
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}\n{}", c.debug(&app).await, c.all_logs());
    }
    let nodes = c.get("/v1/nodes").await;
    let nb = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == b.as_str())
        .unwrap()
        .clone();
    assert_eq!(nb["status"], "DRAINING");
    assert_eq!(nb["tasks"], 0);

    // Stop agent A: its tasks move to B (uncordoned) after the heartbeat timeout.
    c.call("POST", &format!("/v1/nodes/{b}/uncordon"), None)
        .await;
    c.agents[0].process.terminate(Duration::from_secs(10));
    let r = wait_for(
        Duration::from_secs(45),
        "the lost node's tasks run on B",
        || async {
            let nodes = c.get("/v1/nodes").await;
            let a_unreachable = nodes["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["id"] == a.as_str() && n["status"] == "UNREACHABLE");
            a_unreachable && on(b.clone()).await == 3 && {
                let t = c.tasks(&app).await;
                t.len() == 3
                    && t.iter()
                        .all(|t| t["slaveId"] == b.as_str() && t["state"] == "TASK_RUNNING")
            }
        },
    )
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}\n{}", c.debug(&app).await, c.all_logs());
    }
    // A comes back: it stops its old containers, which the master replaced.
    c.agents[0].process.restart();
    let r = wait_for(
        T,
        "the returning node stops its replaced containers",
        || async { on(a.clone()).await == 0 && on(b.clone()).await == 3 },
    )
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}\n{}", c.debug(&app).await, c.all_logs());
    }
    let _ = &mut c;
}

#[tokio::test(flavor = "multi_thread")]
async fn restarting_the_master_or_an_agent_leaves_exactly_the_same_containers() {
    let mut c = Cluster::start(
        1,
        &[
            "--heartbeat-timeout",
            "10s",
            "--unreachable-replace-after",
            "30s",
        ],
    )
    .await;
    let app = c.app_id("stay");
    c.create_app(&sleeper(&app, 2)).await;
    wait_running(&c, &app, 2).await;
    c.wait_deployed(&app, T).await;
    let mut before: Vec<String> = running_containers(&app)
        .await
        .into_iter()
        .map(|x| x.id)
        .collect();
    before.sort();
    c.master.terminate(Duration::from_secs(10));
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.master.restart();
    wait_for(T, "the master answers again", || async {
        reqwest::get(c.url("/ping"))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await
    .unwrap();
    // Several heartbeats and reconciliations later, nothing changed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut after: Vec<String> = running_containers(&app)
        .await
        .into_iter()
        .map(|x| x.id)
        .collect();
    after.sort();
    assert_eq!(before, after, "{}", c.all_logs());
    let tasks = c.tasks(&app).await;
    assert_eq!(tasks.len(), 2);
    assert!(
        tasks.iter().all(|t| t["state"] == "TASK_RUNNING"),
        "{tasks:?}"
    );
    // The agent restarting adopts its running containers: no duplicates, none stopped.
    c.agents[0].process.terminate(Duration::from_secs(10));
    c.agents[0].process.restart();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut adopted: Vec<String> = running_containers(&app)
        .await
        .into_iter()
        .map(|x| x.id)
        .collect();
    adopted.sort();
    assert_eq!(before, adopted, "{}", c.all_logs());
    assert!(c.agents[0]
        .process
        .logs()
        .contains("registered with the master"));
    let _ = &mut c;
}

#[tokio::test(flavor = "multi_thread")]
async fn restarting_drover_up_adopts_its_containers() {
    let node = drover_tests::unique("up").replace('-', "");
    let _guard = NodeContainers(vec![node.clone()]);
    let (lo, hi) = drover_tests::scheduler::port_range();
    let range = format!("{lo}-{hi}");
    let args = [
        "--no-collector",
        "--no-logpipe",
        "--node-id",
        node.as_str(),
        "--port-range",
        range.as_str(),
        "--heartbeat-interval",
        "300ms",
        "--reconcile-interval",
        "200ms",
        "--default-image",
        BUSYBOX_IMAGE,
    ];
    drover_tests::docker::ensure_images();
    let mut up = DroverUp::start(&args).await;
    let app = format!("/up-{}", node.to_lowercase());
    let client = reqwest::Client::new();
    let resp = client
        .post(up.url("/v2/apps"))
        .json(&sleeper(&app, 2))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let r = wait_for(T, "2 containers run", || async {
        running_containers(&app).await.len() == 2
    })
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}", up.logs());
    }
    // The scheduler's events are on Kafka too.
    let brokers = up.broker.to_string();
    let app2 = app.clone();
    let events = tokio::task::spawn_blocking(move || {
        drover_tests::kafka::read_records::<drover_schema::Event>(
            &brokers,
            drover_schema::topics::EVENTS,
            |e| e.app.as_deref() == Some(app2.as_str()),
            |es| es.iter().any(|e| e.kind == "deployment_success"),
            T,
            Duration::ZERO,
        )
    })
    .await
    .unwrap();
    assert!(
        events.iter().any(|e| e.kind == "deployment_success"),
        "no deployment_success on drover.events.v1: {events:?}"
    );
    assert!(events
        .iter()
        .any(|e| e.kind == "status_update_event" && e.attrs["taskStatus"] == "TASK_RUNNING"));
    let mut before: Vec<String> = running_containers(&app)
        .await
        .into_iter()
        .map(|x| x.id)
        .collect();
    before.sort();
    let status = up.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", up.logs());
    up.restart(&args).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut after: Vec<String> = running_containers(&app)
        .await
        .into_iter()
        .map(|x| x.id)
        .collect();
    after.sort();
    assert_eq!(before, after, "{}", up.logs());
    let v: Value = client
        .get(up.url(&format!("/v2/apps{app}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["app"]["tasksRunning"], 2, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_update_never_drops_below_minimum_health_capacity() {
    let c = Cluster::start(
        1,
        &[
            "--heartbeat-timeout",
            "10s",
            "--unreachable-replace-after",
            "30s",
        ],
    )
    .await;
    let app = c.app_id("roll");
    let hc = json!([{"protocol": "HTTP", "path": "/healthz", "portIndex": 0, "gracePeriodSeconds": 10,
        "intervalSeconds": 0.3, "timeoutSeconds": 3, "maxConsecutiveFailures": 3}]);
    c.create_app(&json!({
        "id": app, "cpus": 0.1, "mem": 32, "instances": 4,
        "container": {"docker": {"image": DEMO_IMAGE}},
        "env": {"LOG_RATE": "0"},
        "healthChecks": hc,
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0},
        "taskKillGracePeriodSeconds": 1,
    }))
    .await;
    c.wait_deployed(&app, T).await;
    // To another image: busybox's httpd serving /healthz on $PORT.
    let (s, v) = c
        .call(
            "PUT",
            &format!("/v2/apps{app}"),
            Some(&json!({
                "container": {"docker": {"image": BUSYBOX_IMAGE}},
                "cmd": "mkdir -p /www && echo ok > /www/healthz && exec httpd -f -p $PORT -h /www",
            })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut min_seen = usize::MAX;
    loop {
        let tasks = c.tasks(&app).await;
        let healthy = tasks
            .iter()
            .filter(|t| t["state"] == "TASK_RUNNING" && t["healthCheckResults"][0]["alive"] == true)
            .count();
        min_seen = min_seen.min(healthy);
        assert!(
            healthy >= 2,
            "only {healthy} healthy tasks during the update: {tasks:?}"
        );
        let (_, a) = c.call("GET", &format!("/v2/apps{app}"), None).await;
        if a["app"]["deployments"]
            .as_array()
            .is_some_and(|d| d.is_empty())
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "update not done: {}\n{}",
            c.debug(&app).await,
            c.all_logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let running = running_containers(&app).await;
    assert_eq!(running.len(), 4);
    let d = docker().await;
    for ct in running {
        let image = d
            .inspect_container(&ct.id, None)
            .await
            .unwrap()
            .config
            .and_then(|c| c.image);
        assert_eq!(image.as_deref(), Some(BUSYBOX_IMAGE));
    }
    assert!(min_seen >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_definitions_are_rejected_naming_the_field() {
    let c = Cluster::start(1, &[]).await;
    let id = c.app_id("bad");
    let cases = [
        (json!({"id": id, "cpus": 0.1}), "/", "cmd"),
        (
            json!({"id": id, "cmd": "x", "instances": -1}),
            "/instances",
            "-1",
        ),
        (
            json!({"id": id, "cmd": "x", "constraints": [["hostname", "SOMETIMES"]]}),
            "/constraints/0",
            "SOMETIMES",
        ),
        (
            json!({"id": id, "cmd": "x", "cpus": 64}),
            "/cpus",
            "largest",
        ),
        (
            json!({"id": id, "cmd": "x", "instancs": 2}),
            "/instancs",
            "instancs",
        ),
    ];
    for (def, path, word) in cases {
        let (s, v) = c.call("POST", "/v2/apps", Some(&def)).await;
        assert_eq!(s, 422, "{def}: {v}");
        assert_eq!(v["message"], "Object is not valid");
        let detail = v["details"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["path"] == path)
            .unwrap_or_else(|| panic!("no {path} in {v}"));
        assert!(detail["errors"].to_string().contains(word), "{v}");
    }
    // The CLI says the same, per field.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, format!("id: {id}\ncmd: sleep 1\ninstances: -3\n")).unwrap();
    let out = run_drover(
        &[
            "app",
            "deploy",
            file.to_str().unwrap(),
            "--master",
            &c.url(""),
        ],
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/instances"), "{err}");
    // Nothing was created.
    let (s, _) = c.call("GET", &format!("/v2/apps{id}"), None).await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_deploys_lists_scales_and_removes() {
    let c = Cluster::start(1, &[]).await;
    let app = c.app_id("cli");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        format!("id: {app}\ncmd: sleep 3600\ncpus: 0.1\nmem: 32\ninstances: 2\ncontainer:\n  docker:\n    image: {BUSYBOX_IMAGE}\ntaskKillGracePeriodSeconds: 0\n"),
    )
    .unwrap();
    let m = c.url("");
    let drover = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--master", &m]);
        let out = run_drover(&all, Duration::from_secs(60));
        assert!(
            out.status.success(),
            "drover {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let out = drover(&["app", "deploy", file.to_str().unwrap()]);
    assert!(out.contains("deployed"), "{out}");
    assert_eq!(running_containers(&app).await.len(), 2);
    let ls: Value = serde_json::from_str(&drover(&["app", "ls", "--json"])).unwrap();
    assert!(ls["apps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"] == app.as_str()));
    let table = drover(&["app", "ls"]);
    assert!(table.contains(&app) && table.contains("2/2"), "{table}");
    drover(&["app", "scale", &app, "3"]);
    assert_eq!(running_containers(&app).await.len(), 3);
    let tasks: Value = serde_json::from_str(&drover(&["app", "tasks", &app, "--json"])).unwrap();
    assert_eq!(tasks["tasks"].as_array().unwrap().len(), 3);
    let nodes = drover(&["node", "ls"]);
    assert!(nodes.contains(&c.agents[0].node_id), "{nodes}");
    let show = drover(&["app", "show", &app]);
    assert!(show.contains("3 running"), "{show}");
    drover(&["app", "rm", &app]);
    wait_for(T, "the containers are gone", || async {
        running_containers(&app).await.is_empty()
    })
    .await
    .unwrap();
    // An unreachable master gets an error that says what to do.
    let out = run_drover(
        &["app", "ls", "--master", "http://127.0.0.1:9"],
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the master") && err.contains("--master"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_marathon_python_client_works_unchanged() {
    let c = Cluster::start(1, &[]).await;
    let check = std::process::Command::new("python3")
        .args(["-c", "import marathon"])
        .output();
    match check {
        Ok(o) if o.status.success() => {}
        _ => panic!("python3 with the `marathon` package is needed: run scripts/setup.sh (pip install marathon)"),
    }
    let app = c.app_id("py");
    let script = repo_root().join("tests/scheduler/marathon_client.py");
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .args([c.url(""), app.clone()])
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("the client script finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok"),
        "marathon client failed:\n{stdout}\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.debug(&app).await,
        c.all_logs()
    );
    wait_for(T, "the deleted app's containers are gone", || async {
        running_containers(&app).await.is_empty()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn events_stream_and_metrics() {
    let c = Cluster::start(1, &[]).await;
    let app = c.app_id("ev");
    let mut resp = reqwest::get(c.url("/v2/events")).await.unwrap();
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    c.create_app(&sleeper(&app, 1)).await;
    let mut seen = String::new();
    let wanted = [
        "event: event_stream_attached",
        "event: api_post_event",
        "event: deployment_info",
        "event: status_update_event",
        "TASK_RUNNING",
        "event: deployment_success",
    ];
    let r = tokio::time::timeout(T, async {
        while !wanted.iter().all(|w| seen.contains(w)) {
            match resp.chunk().await {
                Ok(Some(b)) => seen.push_str(&String::from_utf8_lossy(&b)),
                _ => break,
            }
        }
    })
    .await;
    assert!(
        r.is_ok() && wanted.iter().all(|w| seen.contains(w)),
        "events so far:\n{seen}"
    );
    let metrics = reqwest::get(c.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for m in [
        "drover_scheduler_apps 1",
        "drover_scheduler_tasks{state=\"RUNNING\"} 1",
        "drover_scheduler_heartbeats_total",
        "drover_scheduler_nodes{status=\"ACTIVE\"} 1",
    ] {
        assert!(metrics.contains(m), "{m} not in:\n{metrics}");
    }
    // An open event stream does not hold up a graceful stop.
    let mut c = c;
    let status = c.master.terminate(Duration::from_secs(8));
    assert!(
        status.is_some_and(|s| s.success()),
        "the master did not stop within 8 s with an event stream open: {status:?}"
    );
    drop(resp);
}

#[tokio::test(flavor = "multi_thread")]
async fn bridge_port_mappings_and_command_health_checks() {
    let c = Cluster::start(1, &[]).await;
    // Bridge networking: container port 8080 mapped to a host port from the agent's range;
    // a TCP check on that host port.
    let web = c.app_id("bridge");
    c.create_app(&json!({
        "id": web, "cpus": 0.1, "mem": 32, "instances": 1,
        "container": {"docker": {"image": DEMO_IMAGE, "network": "BRIDGE",
            "portMappings": [{"containerPort": 8080, "hostPort": 0}]}},
        "env": {"PORT": "8080", "LOG_RATE": "0"},
        "healthChecks": [{"protocol": "TCP", "portIndex": 0, "gracePeriodSeconds": 5,
            "intervalSeconds": 0.3, "timeoutSeconds": 1, "maxConsecutiveFailures": 3}],
        "taskKillGracePeriodSeconds": 1,
    }))
    .await;
    c.wait_deployed(&web, T).await;
    let t = c.tasks(&web).await;
    let port = t[0]["ports"][0].as_u64().unwrap();
    let (lo, hi) = c.agents[0].ports;
    assert!((lo as u64..=hi as u64).contains(&port));
    let body = reqwest::get(format!("http://127.0.0.1:{port}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok\n");

    // COMMAND check inside the container: healthy while /tmp/ok exists.
    let cmd = c.app_id("cmdcheck");
    c.create_app(&json!({
        "id": cmd, "cpus": 0.1, "mem": 32, "instances": 1,
        "cmd": "touch /tmp/ok && exec sleep 3600",
        "container": {"docker": {"image": BUSYBOX_IMAGE}},
        "healthChecks": [{"protocol": "COMMAND", "command": {"value": "test -f /tmp/ok"},
            "gracePeriodSeconds": 5, "intervalSeconds": 0.3, "timeoutSeconds": 2, "maxConsecutiveFailures": 2}],
        "taskKillGracePeriodSeconds": 0,
    }))
    .await;
    c.wait_deployed(&cmd, T).await;
    let first = running_containers(&cmd).await;
    assert_eq!(first.len(), 1);
    let out = std::process::Command::new("docker")
        .args(["exec", &first[0].id, "rm", "/tmp/ok"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let r = wait_for(
        T,
        "the task failing its COMMAND check is replaced",
        || async {
            let now = running_containers(&cmd).await;
            now.len() == 1 && now[0].task_id != first[0].task_id && {
                let t = c.tasks(&cmd).await;
                t.len() == 1 && t[0]["healthCheckResults"][0]["alive"] == true
            }
        },
    )
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}\n{}", c.debug(&cmd).await, c.all_logs());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn constraints_spread_over_agents_and_the_queue_says_why() {
    let mut c = Cluster::start(0, &[]).await;
    c.add_agent("ra", &["--attribute", "rack=r1"]).await;
    c.add_agent("rb", &["--attribute", "rack=r2"]).await;
    let (a, b) = (c.agents[0].node_id.clone(), c.agents[1].node_id.clone());
    let app = c.app_id("uniq");
    let mut def = sleeper(&app, 3);
    def["constraints"] = json!([["hostname", "UNIQUE"]]);
    c.create_app(&def).await;
    let r = wait_for(T, "one task per node, one waiting", || async {
        let running = running_containers(&app).await;
        let queue = c.get("/v2/queue").await;
        running.len() == 2
            && running.iter().any(|x| x.node_id == a)
            && running.iter().any(|x| x.node_id == b)
            && queue["queue"].as_array().is_some_and(|q| {
                q.iter().any(|e| {
                    e["app"]["id"] == app.as_str()
                        && e["count"] == 1
                        && e["processedOffersSummary"]["rejectSummaryLastOffers"][0]["reason"]
                            .as_str()
                            .is_some_and(|r| r.contains("hostname:UNIQUE"))
                })
            })
    })
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}\n{}", c.debug(&app).await, c.all_logs());
    }
    // CLUSTER on an attribute: every task on rack r2.
    let app2 = c.app_id("rack");
    let mut def = sleeper(&app2, 2);
    def["constraints"] = json!([["rack", "CLUSTER", "r2"]]);
    c.create_app(&def).await;
    wait_running(&c, &app2, 2).await;
    assert!(running_containers(&app2)
        .await
        .iter()
        .all(|x| x.node_id == b));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_clusters_sharing_an_engine_and_a_node_id_leave_each_other_alone() {
    let node = drover_tests::unique("shared").replace('-', "");
    let mut one = Cluster::start(0, &[]).await;
    one.add_agent_with_id(&node, &[]).await;
    let mut two = Cluster::start(0, &[]).await;
    two.add_agent_with_id(&node, &[]).await;
    let (a, b) = (one.app_id("one"), two.app_id("two"));
    one.create_app(&sleeper(&a, 2)).await;
    two.create_app(&sleeper(&b, 1)).await;
    wait_running(&one, &a, 2).await;
    wait_running(&two, &b, 1).await;
    let info = one.get("/v2/info").await;
    let cluster = info["frameworkId"].as_str().unwrap().to_string();
    let containers = running_containers(&a).await;
    assert!(containers
        .iter()
        .all(|x| x.labels["drover.cluster"] == cluster));
    let before: Vec<String> = containers.into_iter().map(|x| x.id).collect();
    // Several heartbeats of both agents later, neither stopped the other's containers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut after: Vec<String> = running_containers(&a)
        .await
        .into_iter()
        .map(|x| x.id)
        .collect();
    let mut before = before;
    before.sort();
    after.sort();
    assert_eq!(before, after, "{}", one.all_logs());
    assert_eq!(running_containers(&b).await.len(), 1, "{}", two.all_logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_starts_a_task_container_left_created() {
    let mut c = Cluster::start(1, &["--heartbeat-timeout", "10s"]).await;
    let app = c.app_id("created");
    c.create_app(&sleeper(&app, 1)).await;
    let ct = wait_running(&c, &app, 1).await.remove(0);
    // The agent stops mid-launch: its task's container exists but was never started.
    c.agents[0].process.terminate(Duration::from_secs(10));
    let rm = std::process::Command::new("docker")
        .args(["rm", "-f", &ct.id])
        .output()
        .unwrap();
    assert!(rm.status.success());
    let mut args: Vec<String> = vec!["create".into()];
    for (k, v) in &ct.labels {
        args.push("--label".into());
        args.push(format!("{k}={v}"));
    }
    args.extend([BUSYBOX_IMAGE.to_string(), "sleep".into(), "3600".into()]);
    let created = std::process::Command::new("docker")
        .args(&args)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    c.agents[0].process.restart();
    let r = wait_for(T, "the created container of the same task runs", || async {
        let now = running_containers(&app).await;
        now.len() == 1 && now[0].task_id == ct.task_id
    })
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}\n{}", c.debug(&app).await, c.all_logs());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_node_stops_its_tasks_and_they_run_elsewhere() {
    let c = Cluster::start(2, &[]).await;
    let (a, b) = (c.agents[0].node_id.clone(), c.agents[1].node_id.clone());
    let app = c.app_id("rm");
    c.create_app(&sleeper(&app, 2)).await;
    let spread = wait_running(&c, &app, 2).await;
    assert!(
        spread.iter().any(|x| x.node_id == b),
        "spread over both nodes"
    );
    let out = run_drover(
        &["node", "rm", &b, "--master", &c.url("")],
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = wait_for(T, "both tasks run on A and B has none", || async {
        let now = running_containers(&app).await;
        now.len() == 2 && now.iter().all(|x| x.node_id == a)
    })
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}\n{}", c.debug(&app).await, c.all_logs());
    }
    let nodes = c.get("/v1/nodes").await;
    assert!(
        !nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == b.as_str()),
        "{nodes}"
    );
}

/// A standalone `drover master --kafka` publishes its events on `drover.events.v1` (before,
/// only `drover up` did: the multi-host setup, where other roles need them, published
/// nothing). The topic is created by the master; the events are read with a plain consumer.
#[tokio::test(flavor = "multi_thread")]
async fn a_standalone_master_publishes_its_events_on_kafka() {
    let mut broker = drover_tests::kafka::TestBroker::start().await;
    let brokers = broker.bootstrap();
    let c = Cluster::start(1, &["--kafka", &brokers]).await;
    let app = c.app_id("events");
    c.create_app(&sleeper(&app, 2)).await;
    wait_running(&c, &app, 2).await;
    let app2 = app.clone();
    let events = tokio::task::spawn_blocking(move || {
        drover_tests::kafka::read_records::<drover_schema::Event>(
            &brokers,
            drover_schema::topics::EVENTS,
            |e| e.app.as_deref() == Some(app2.as_str()),
            |es| {
                es.iter().any(|e| e.kind == "deployment_success")
                    && es
                        .iter()
                        .filter(|e| {
                            e.kind == "status_update_event"
                                && e.attrs["taskStatus"] == "TASK_RUNNING"
                        })
                        .count()
                        >= 2
            },
            T,
            Duration::ZERO,
        )
    })
    .await
    .unwrap();
    assert!(
        events.iter().any(|e| e.kind == "deployment_success"),
        "no deployment_success on drover.events.v1: {events:?}\n{}",
        c.all_logs()
    );
    let running: Vec<&drover_schema::Event> = events
        .iter()
        .filter(|e| e.kind == "status_update_event" && e.attrs["taskStatus"] == "TASK_RUNNING")
        .collect();
    assert_eq!(running.len(), 2, "{events:?}");
    for e in &running {
        assert_eq!(
            e.node.as_deref(),
            Some(c.agents[0].node_id.as_str()),
            "{e:?}"
        );
        assert!(e.task.is_some(), "{e:?}");
    }
    assert!(
        c.master.logs().contains("topic drover.events.v1"),
        "the master says where its events go: {}",
        c.master.logs()
    );

    // The broker stops gracefully and comes back (tansu then refuses the producers it knew):
    // the events of a scale after that still arrive.
    broker.restart().await;
    let (status, _) = c
        .call(
            "PUT",
            &format!("/v2/apps{app}"),
            Some(&serde_json::json!({"instances": 3})),
        )
        .await;
    assert!(status == 200 || status == 201, "scale: {status}");
    wait_running(&c, &app, 3).await;
    let brokers = broker.bootstrap();
    let app2 = app.clone();
    let events = tokio::task::spawn_blocking(move || {
        drover_tests::kafka::read_records::<drover_schema::Event>(
            &brokers,
            drover_schema::topics::EVENTS,
            |e| e.app.as_deref() == Some(app2.as_str()),
            |es| {
                es.iter()
                    .filter(|e| {
                        e.kind == "status_update_event" && e.attrs["taskStatus"] == "TASK_RUNNING"
                    })
                    .count()
                    >= 3
            },
            T,
            Duration::ZERO,
        )
    })
    .await
    .unwrap();
    let running = events
        .iter()
        .filter(|e| e.kind == "status_update_event" && e.attrs["taskStatus"] == "TASK_RUNNING")
        .count();
    assert!(
        running >= 3,
        "the third task's TASK_RUNNING, after the broker restart, is on the topic: {events:?}\n{}",
        c.master.logs()
    );
}

/// The next item of a client's event stream, within `T`.
async fn next_event(c: &Cluster, events: &mut BoxStream<'static, ClientEvent>) -> ClientEvent {
    match tokio::time::timeout(T, events.next()).await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("the event stream ended\n{}", c.all_logs()),
        Err(_) => panic!("no event for {T:?}\n{}", c.all_logs()),
    }
}

/// `drover_scheduler::client`'s event stream against a `drover master`: the state first, then
/// typed events as an app is deployed; when the master restarts, the stream reconnects by
/// itself and starts again with the full state (the app and its running tasks), and events
/// flow again.
#[tokio::test(flavor = "multi_thread")]
async fn the_client_event_stream_reconnects_and_resyncs_across_a_master_restart() {
    let mut c = Cluster::start(
        1,
        &[
            "--heartbeat-timeout",
            "10s",
            "--unreachable-replace-after",
            "30s",
        ],
    )
    .await;
    let app = c.app_id("stream");
    let client = Client::new(&c.url("")).unwrap();
    let mut events = client.events();
    match next_event(&c, &mut events).await {
        ClientEvent::Resync(apps) => assert!(apps.is_empty(), "{apps:?}"),
        other => panic!("the stream starts with the state, not {other:?}"),
    }
    c.create_app(&sleeper(&app, 2)).await;
    let (mut posted, mut running, mut deployed) = (false, Vec::new(), false);
    while !(posted && running.len() == 2 && deployed) {
        let ClientEvent::Event(e) = next_event(&c, &mut events).await else {
            panic!("the stream dropped\n{}", c.all_logs());
        };
        match &e.kind {
            EventKind::ApiPost { app_definition, .. } => {
                assert_eq!(app_definition.id, app);
                assert_eq!(app_definition.instances, 2);
                posted = true;
            }
            EventKind::StatusUpdate {
                app_id,
                task_id,
                task_status: TaskState::Running,
                slave_id,
                ..
            } if app_id == &app => {
                assert_eq!(slave_id, &c.agents[0].node_id);
                running.push(task_id.clone());
            }
            EventKind::DeploymentSuccess { plan, .. } => {
                deployed = plan.affected_apps == [app.clone()];
            }
            _ => {}
        }
    }
    running.sort();
    c.master.terminate(Duration::from_secs(10));
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.master.restart();
    // The drop, then (once the master answers again) the state as it is now.
    let mut dropped = 0;
    let apps = loop {
        match next_event(&c, &mut events).await {
            ClientEvent::Disconnected { .. } => dropped += 1,
            ClientEvent::Resync(apps) => break apps,
            ClientEvent::Event(e) => assert_eq!(dropped, 0, "an event after the drop: {e:?}"),
        }
    };
    assert!(
        dropped >= 1,
        "the stream reconnected without saying it dropped"
    );
    let a = apps
        .iter()
        .find(|a| a.definition.id == app)
        .unwrap_or_else(|| panic!("{app} not in the resync: {apps:?}"));
    let mut tasks: Vec<String> = a
        .tasks
        .as_ref()
        .expect("tasks in the resync")
        .iter()
        .filter(|t| t.state == TaskState::Running)
        .map(|t| t.id.clone())
        .collect();
    tasks.sort();
    assert_eq!(tasks, running, "the same tasks run after the restart");
    // Events flow again on the new connection.
    let (s, v) = c
        .call(
            "PUT",
            &format!("/v2/apps{app}"),
            Some(&json!({"instances": 3})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let mut new_task = None;
    while new_task.is_none() {
        let ClientEvent::Event(e) = next_event(&c, &mut events).await else {
            panic!("the stream dropped again\n{}", c.all_logs());
        };
        if let EventKind::StatusUpdate {
            app_id,
            task_id,
            task_status: TaskState::Running,
            ..
        } = &e.kind
        {
            if app_id == &app && !running.contains(task_id) {
                new_task = Some(task_id.clone());
            }
        }
    }
    let _ = &mut c;
}
