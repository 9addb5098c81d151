//! `drover bench scheduler`: (1) placement of 10,000 tasks with constraints onto 1,000
//! simulated nodes, pure and through the master's reconciliation tick; (2) an app scaled
//! from 0 to 100 real containers until all are RUNNING, with the same containers created
//! and started straight through the Docker API as the baseline, so the difference is what
//! Drover adds (placement, heartbeats, reporting).
use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use bollard::{
    models::{ContainerCreateBody, HostConfig},
    query_parameters::{
        CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    },
};
use clap::Args;
use drover_scheduler::{
    agent::AgentConfig,
    clock::SystemClock,
    master::{Master, MasterConfig, State},
    metrics::{AgentMetrics, MasterMetrics},
    model::{AgentReport, Resources},
    placement::{self, Candidate, Constraint, Demand},
    store::Snapshot,
};
use serde::Serialize;
use serde_json::{json, Value};

/// Options of `drover bench scheduler`.
#[derive(Debug, Args)]
pub struct SchedulerBenchArgs {
    /// Simulated nodes for the placement run.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Tasks to place (in apps of 100).
    #[arg(long, default_value_t = 10_000)]
    tasks: usize,
    /// Real containers for the scale run (0 skips it).
    #[arg(long, default_value_t = 100)]
    containers: usize,
    /// Image of the scale run (must be on the engine).
    #[arg(long, default_value = "drover-busybox:latest")]
    image: String,
    /// The agent's heartbeat interval in the scale run.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    heartbeat_interval: Duration,
    /// Containers the agent (and the baseline) create at once.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    placement_tasks: usize,
    placement_nodes: usize,
    placement_placed: usize,
    placement_secs: f64,
    placement_tasks_per_sec: f64,
    tick_secs: f64,
    tick_tasks_per_sec: f64,
    scale: Option<ScaleReport>,
}

#[derive(Debug, Serialize)]
struct ScaleReport {
    containers: usize,
    drover_secs: f64,
    drover_containers_per_sec: f64,
    first_running_secs: f64,
    /// Scale request → the master placed every task.
    placed_secs: f64,
    /// Scale request → the agent's first container started.
    first_started_secs: f64,
    /// Scale request → the agent started the last container (Docker done).
    all_started_secs: f64,
    docker_secs: f64,
    docker_containers_per_sec: f64,
    drover_overhead_secs: f64,
    heartbeat_interval_ms: u128,
    parallel: usize,
}

fn constraint_sets() -> Vec<Vec<Value>> {
    vec![
        vec![],
        vec![json!(["hostname", "UNIQUE"])],
        vec![json!(["zone", "GROUP_BY"])],
        vec![json!(["rack", "MAX_PER", "3"])],
        vec![json!(["rack", "LIKE", "r[0-2][0-9]"])],
        vec![
            json!(["hostname", "UNLIKE", "n9.*"]),
            json!(["zone", "GROUP_BY"]),
        ],
        vec![json!(["zone", "CLUSTER", "z1"])],
    ]
}

fn node_attrs(i: usize) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("zone".to_string(), format!("z{}", i % 5)),
        ("rack".to_string(), format!("r{}", i % 50)),
    ])
}

/// Run the benchmark.
pub async fn run(args: SchedulerBenchArgs) -> anyhow::Result<()> {
    let node_res = Resources {
        cpus: 32.0,
        mem: 131072.0,
        disk: 1_000_000.0,
    };
    let apps = args.tasks.div_ceil(100);
    let sets = constraint_sets();

    // (1a) pure placement
    let mut nodes: Vec<Candidate> = (0..args.nodes)
        .map(|i| {
            let mut c = Candidate::new(format!("n{i}"), node_res, (31000, 32000));
            c.attributes = node_attrs(i);
            c
        })
        .collect();
    let demands: Vec<Demand> = (0..apps)
        .map(|a| Demand {
            resources: Resources {
                cpus: 0.25,
                mem: 256.0,
                disk: 0.0,
            },
            ports: vec![0],
            constraints: sets[a % sets.len()]
                .iter()
                .map(|c| Constraint::parse(c.as_array().expect("array")).expect("valid"))
                .collect(),
        })
        .collect();
    let started = Instant::now();
    let mut placed = 0;
    for (a, d) in demands.iter().enumerate() {
        let n = (args.tasks - a * 100).min(100);
        placed += placement::place(&mut nodes, &[], d, n).placed.len();
    }
    let placement_secs = started.elapsed().as_secs_f64();

    // (1b) the same through the master's state and tick
    let mut state = State::new(
        Snapshot::default(),
        MasterConfig::default(),
        chrono::Utc::now(),
    );
    let now = chrono::Utc::now();
    for i in 0..args.nodes {
        state.heartbeat(
            AgentReport {
                node_id: format!("n{i}"),
                hostname: format!("n{i}"),
                resources: node_res,
                port_range: (31000, 32000),
                attributes: node_attrs(i),
                tasks: Vec::new(),
            },
            true,
            now,
        );
    }
    for a in 0..apps {
        let n = (args.tasks - a * 100).min(100);
        let def = drover_scheduler::validate::parse_app(
            json!({"id": format!("/bench/app{a}"), "cmd": "sleep 1", "cpus": 0.25, "mem": 256,
                   "instances": n, "constraints": sets[a % sets.len()]}),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        state
            .create_app(def, now)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let started = Instant::now();
    state.tick(now);
    let tick_secs = started.elapsed().as_secs_f64();
    let tick_placed = state.tasks.len();

    let mut report = Report {
        placement_tasks: args.tasks,
        placement_nodes: args.nodes,
        placement_placed: placed,
        placement_secs,
        placement_tasks_per_sec: placed as f64 / placement_secs.max(1e-9),
        tick_secs,
        tick_tasks_per_sec: tick_placed as f64 / tick_secs.max(1e-9),
        scale: None,
    };
    if !args.json {
        println!(
            "placement: {placed} of {} tasks with constraints on {} nodes in {:.1} ms → {:.0} tasks/s",
            args.tasks,
            args.nodes,
            placement_secs * 1000.0,
            report.placement_tasks_per_sec
        );
        println!(
            "master tick placing the same (task records, events): {tick_placed} tasks in {:.1} ms → {:.0} tasks/s",
            tick_secs * 1000.0,
            report.tick_tasks_per_sec
        );
    }
    if args.containers > 0 {
        report.scale = Some(scale_run(&args).await?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

async fn scale_run(args: &SchedulerBenchArgs) -> anyhow::Result<ScaleReport> {
    let docker = crate::docker::connect("").await?;
    docker
        .ping()
        .await
        .context("the Docker engine does not answer")?;
    docker.inspect_image(&args.image).await.with_context(|| {
        format!(
            "image {} is not on the engine: run tests/images/build.sh",
            args.image
        )
    })?;
    let run = format!("bench{}", std::process::id());
    let node_id = format!("bench-{run}");

    // Baseline: the same containers, straight through the Docker API.
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(args.parallel.max(1)));
    let mut jobs = tokio::task::JoinSet::new();
    for i in 0..args.containers {
        let docker = docker.clone();
        let sem = sem.clone();
        let image = args.image.clone();
        let label = format!("{run}-baseline");
        jobs.spawn(async move {
            let _p = sem.acquire().await;
            let name = format!("drover-bench-{label}-{i}");
            let body = ContainerCreateBody {
                image: Some(image),
                cmd: Some(vec!["sh".into(), "-c".into(), "sleep 3600".into()]),
                labels: Some(HashMap::from([("drover.bench".to_string(), label)])),
                host_config: Some(HostConfig {
                    network_mode: Some("host".into()),
                    memory: Some(16 * 1024 * 1024),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let c = docker
                .create_container(
                    Some(CreateContainerOptionsBuilder::default().name(&name).build()),
                    body,
                )
                .await?;
            docker.start_container(&c.id, None).await
        });
    }
    let mut failures = 0;
    while let Some(r) = jobs.join_next().await {
        if !matches!(r, Ok(Ok(()))) {
            failures += 1;
        }
    }
    let docker_secs = started.elapsed().as_secs_f64();
    remove_labelled(&docker, &format!("drover.bench={run}-baseline")).await;
    if failures > 0 {
        bail!("{failures} baseline containers failed to start");
    }

    // Drover: a master and an agent in this process, over HTTP.
    let dir = tempfile::tempdir()?;
    let master = Master::open(
        dir.path(),
        MasterConfig::default(),
        Arc::new(SystemClock),
        MasterMetrics::default(),
    )?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let router = drover_scheduler::api::router(master.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let looper = tokio::spawn(
        master
            .clone()
            .run(Duration::from_millis(200), stop_rx.clone()),
    );
    let agent_cfg = AgentConfig {
        master: format!("http://{addr}"),
        node_id: node_id.clone(),
        hostname: "127.0.0.1".into(),
        resources: Resources {
            cpus: 64.0,
            mem: 65536.0,
            disk: 0.0,
        },
        port_range: (40000, 40999),
        attributes: BTreeMap::new(),
        docker: String::new(),
        heartbeat_interval: args.heartbeat_interval,
        default_image: args.image.clone(),
        max_parallel_launches: args.parallel,
        cleanup: Default::default(),
    };
    // A clone of the agent's counters tells when Docker has started every container.
    let agent_metrics = AgentMetrics::default();
    let agent = tokio::spawn(drover_scheduler::agent::run(
        agent_cfg,
        docker.clone(),
        agent_metrics.clone(),
        stop_rx,
    ));
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let app_id = format!("/bench-{run}");
    // Wait for the agent to register.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v: Value = http
            .get(format!("{base}/v1/nodes"))
            .send()
            .await?
            .json()
            .await?;
        if v["nodes"].as_array().is_some_and(|n| !n.is_empty()) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the agent did not register");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let def = json!({"id": app_id, "cmd": "sleep 3600", "cpus": 0.01, "mem": 16, "instances": 0,
                     "container": {"docker": {"image": args.image}}, "taskKillGracePeriodSeconds": 0});
    let r = http
        .post(format!("{base}/v2/apps"))
        .json(&def)
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("cannot create the bench app: {}", r.text().await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let r = http
        .put(format!("{base}/v2/apps{app_id}?force=true"))
        .json(&json!({"instances": args.containers}))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("cannot scale the bench app: {}", r.text().await?);
    }
    let mut first_running = None;
    let mut all_placed = None;
    let mut first_started = None;
    let mut all_started = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    let result = loop {
        let v: Value = http
            .get(format!("{base}/v2/apps{app_id}"))
            .send()
            .await?
            .json()
            .await?;
        let running = v["app"]["tasksRunning"].as_u64().unwrap_or(0) as usize;
        let placed = running + v["app"]["tasksStaged"].as_u64().unwrap_or(0) as usize;
        let launched = agent_metrics.containers_started.get() as usize;
        let t = started.elapsed().as_secs_f64();
        if placed >= args.containers && all_placed.is_none() {
            all_placed = Some(t);
        }
        if launched > 0 && first_started.is_none() {
            first_started = Some(t);
        }
        if launched >= args.containers && all_started.is_none() {
            all_started = Some(t);
        }
        if running > 0 && first_running.is_none() {
            first_running = Some(started.elapsed().as_secs_f64());
        }
        if running >= args.containers {
            break Ok(started.elapsed().as_secs_f64());
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "only {running} of {} running after 300 s",
                args.containers
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = stop_tx.send(true);
    let _ = agent.await;
    let _ = looper.await;
    server.abort();
    remove_labelled(&docker, &format!("drover.node={node_id}")).await;
    let drover_secs = result?;
    let s = ScaleReport {
        containers: args.containers,
        drover_secs,
        drover_containers_per_sec: args.containers as f64 / drover_secs,
        first_running_secs: first_running.unwrap_or(drover_secs),
        placed_secs: all_placed.unwrap_or(drover_secs),
        first_started_secs: first_started.unwrap_or(drover_secs),
        all_started_secs: all_started.unwrap_or(drover_secs),
        docker_secs,
        docker_containers_per_sec: args.containers as f64 / docker_secs,
        drover_overhead_secs: drover_secs - docker_secs,
        heartbeat_interval_ms: args.heartbeat_interval.as_millis(),
        parallel: args.parallel,
    };
    if !args.json {
        println!(
            "scale 0→{}: all RUNNING in {:.2} s → {:.1} containers/s (first running after {:.2} s)",
            s.containers, s.drover_secs, s.drover_containers_per_sec, s.first_running_secs
        );
        println!(
            "  docker create+start alone ({} at once): {:.2} s → {:.1} containers/s",
            s.parallel, s.docker_secs, s.docker_containers_per_sec
        );
        println!(
            "  drover's share: {:.2} s ({:.0}%; heartbeats every {} ms)",
            s.drover_overhead_secs,
            100.0 * s.drover_overhead_secs / s.drover_secs,
            s.heartbeat_interval_ms
        );
        println!(
            "  timeline: all placed by the master {:.2} s · first container started {:.2} s · last started (agent, Docker done) {:.2} s · master sees all RUNNING {:.2} s",
            s.placed_secs, s.first_started_secs, s.all_started_secs, s.drover_secs
        );
        println!(
            "  so: Docker create+start inside the agent {:.2} s (alone {:.2} s), before the first start {:.2} s, reporting after the last {:.2} s",
            s.all_started_secs - s.first_started_secs,
            s.docker_secs,
            s.first_started_secs,
            s.drover_secs - s.all_started_secs
        );
    }
    Ok(s)
}

async fn remove_labelled(docker: &bollard::Docker, label: &str) {
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let Ok(list) = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
    else {
        return;
    };
    let mut jobs = tokio::task::JoinSet::new();
    for c in list {
        let Some(id) = c.id else { continue };
        let docker = docker.clone();
        jobs.spawn(async move {
            let _ = docker
                .remove_container(
                    &id,
                    Some(RemoveContainerOptionsBuilder::default().force(true).build()),
                )
                .await;
        });
    }
    while jobs.join_next().await.is_some() {}
}
