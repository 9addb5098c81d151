//! `drover bench collector`: lines/s and MB/s the collector ships from Docker to Kafka, from
//! one container and from many, with its CPU and memory; in the same run the baseline
//! `docker logs -f CONTAINER | python3 confluent-kafka producer` for the same container and
//! broker; and the CPU cost of stats sampling per 100 containers.
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use bollard::{
    models::ContainerCreateBody,
    query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder},
    Docker,
};
use clap::Args;
use drover_collector::{CollectorConfig, CollectorMetrics};
use drover_kafka::admin;
use serde::Serialize;
use tokio::sync::watch;

const BASELINE: &str = include_str!("docker_logs_producer.py");

/// Options of `drover bench collector`.
#[derive(Debug, Args)]
pub struct CollectorBenchArgs {
    /// Kafka bootstrap servers; default: an embedded broker in a temporary directory.
    #[arg(long, value_name = "BROKERS")]
    brokers: Option<String>,
    /// Lines printed by the single container.
    #[arg(long, default_value_t = 100_000)]
    lines: u64,
    /// Rounds of the single-container comparison (collector, then baseline); the medians
    /// are reported.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Containers in the many-containers run (each prints lines/containers lines).
    #[arg(long, default_value_t = 50)]
    containers: u64,
    /// Idle containers for the stats-cost run (0 skips it).
    #[arg(long, default_value_t = 100)]
    stats_containers: u64,
    /// How long to measure the stats cost (at a 10 s interval).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    stats_duration: Duration,
    /// Image of the log-printing app (built by tests/images/build.sh).
    #[arg(long, default_value = "drover-demo:latest")]
    image: String,
    /// Image for the idle containers.
    #[arg(long, default_value = "drover-busybox:latest")]
    idle_image: String,
    /// Python interpreter with confluent-kafka for the baseline.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Run {
    what: String,
    lines: u64,
    bytes: u64,
    secs: f64,
    lines_per_sec: f64,
    mb_per_sec: f64,
    /// CPU of the shipping process in percent of one core (collector: this process).
    cpu_pct: Option<f64>,
    /// Peak resident memory of the collector (this process), MiB.
    peak_rss_mib: Option<f64>,
}

impl Run {
    fn new(what: &str, lines: u64, bytes: u64, secs: f64) -> Self {
        let secs = secs.max(1e-9);
        Self {
            what: what.into(),
            lines,
            bytes,
            secs,
            lines_per_sec: lines as f64 / secs,
            mb_per_sec: bytes as f64 / secs / 1e6,
            cpu_pct: None,
            peak_rss_mib: None,
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    broker: String,
    /// The container alone, nobody shipping its logs: how fast it and Docker produce lines,
    /// the most any shipper can reach.
    source: Run,
    single: Run,
    baseline: Option<Run>,
    baseline_error: Option<String>,
    /// Median of the rounds' ratios.
    ratio_vs_baseline: Option<f64>,
    /// Each round's collector / baseline (rounds whose baseline failed every try are left out).
    round_ratios: Vec<f64>,
    many: Run,
    stats_cpu_pct_per_100_containers: Option<f64>,
}

/// Run the benchmark.
pub async fn run(args: CollectorBenchArgs) -> anyhow::Result<()> {
    let docker = crate::docker::connect("").await?;
    docker
        .ping()
        .await
        .context("the Docker engine does not answer")?;
    for image in [&args.image, &args.idle_image] {
        docker.inspect_image(image).await.with_context(|| {
            format!("image {image} not found: build it with tests/images/build.sh")
        })?;
    }
    let tmp = tempfile::tempdir()?;
    let (brokers, broker, label) = super::bench_broker(args.brokers.as_deref(), tmp.path()).await?;
    let mut cleanup = Vec::new();
    let result = measure(&args, &docker, &brokers, label, tmp.path(), &mut cleanup).await;
    eprintln!("removing {} bench containers…", cleanup.len());
    for id in cleanup {
        let _ = docker
            .remove_container(
                &id,
                Some(RemoveContainerOptionsBuilder::default().force(true).build()),
            )
            .await;
    }
    if let Some(b) = broker {
        b.stop().await;
    }
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

async fn measure(
    args: &CollectorBenchArgs,
    docker: &Docker,
    brokers: &str,
    broker_label: String,
    dir: &std::path::Path,
    cleanup: &mut Vec<String>,
) -> anyhow::Result<Report> {
    admin::ensure_topics(brokers, &admin::default_topics(3)).await?;
    let run_id = std::process::id();

    // 0. The source alone: the container printing into Docker's json-file log, no shipper.
    eprintln!("single container alone (no shipper): {} lines…", args.lines);
    let source_label = format!("bench-source-{run_id}");
    let ids = create(docker, &args.image, &source_label, args.lines, 1, cleanup).await?;
    let source = source_alone(docker, &ids[0], args.lines).await?;

    // 1. One container printing as fast as it can, the collector already running, then the
    // baseline on a fresh container; `--rounds` times, alternating, since the broker and
    // Docker share the machine and a single pair moves by ±0.1 in ratio.
    let (mut singles, mut baselines, mut ratios, mut baseline_errors) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=args.rounds.max(1) {
        eprintln!(
            "round {round}/{}: single container, {} lines, collector shipping…",
            args.rounds.max(1),
            args.lines
        );
        let single_label = format!("bench-single-{run_id}-{round}");
        let ids = create(docker, &args.image, &single_label, args.lines, 1, cleanup).await?;
        let single = ship(
            docker,
            brokers,
            &single_label,
            dir.join(format!("c1-{round}")),
            &ids,
            args.lines,
            "collector, 1 container",
        )
        .await?;
        // `docker logs -f` often ends before the container's last line on this engine (the
        // collector re-opens its stream in that case; the baseline cannot): up to
        // BASELINE_ATTEMPTS tries, each on a fresh container, and the failures are reported.
        for attempt in 1..=BASELINE_ATTEMPTS {
            eprintln!(
                "round {round}: baseline docker logs -f | python confluent-kafka (attempt {attempt}/{BASELINE_ATTEMPTS})…"
            );
            let base_label = format!("bench-base-{run_id}-{round}-{attempt}");
            let base_ids = create(docker, &args.image, &base_label, args.lines, 1, cleanup).await?;
            match baseline(args, docker, brokers, &base_ids[0], args.lines).await {
                Ok(r) => {
                    ratios.push(single.lines_per_sec / r.lines_per_sec);
                    baselines.push(r);
                    break;
                }
                Err(e) => {
                    eprintln!("  {e:#}");
                    baseline_errors.push(format!("round {round} attempt {attempt}: {e:#}"));
                }
            }
        }
        singles.push(single);
    }
    let single = median_run(singles);
    let baseline = (!baselines.is_empty()).then(|| median_run(baselines));
    let baseline_error = (!baseline_errors.is_empty()).then(|| baseline_errors.join("; "));
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    let ratio_vs_baseline = sorted.get(sorted.len() / 2).copied();

    // 2. Many containers started at once.
    let per = (args.lines / args.containers.max(1)).max(1);
    eprintln!(
        "{} containers x {per} lines, collector shipping…",
        args.containers
    );
    let many_label = format!("bench-many-{run_id}");
    let ids = create(
        docker,
        &args.image,
        &many_label,
        per,
        args.containers,
        cleanup,
    )
    .await?;
    let many = ship(
        docker,
        brokers,
        &many_label,
        dir.join("c2"),
        &ids,
        per * args.containers,
        &format!("collector, {} containers", args.containers),
    )
    .await?;

    // 3. Stats cost.
    let stats = if args.stats_containers > 0 {
        Some(stats_cost(args, docker, brokers, dir.join("c3"), cleanup).await?)
    } else {
        None
    };

    Ok(Report {
        broker: broker_label,
        source,
        ratio_vs_baseline,
        round_ratios: ratios,
        single,
        baseline,
        baseline_error,
        many,
        stats_cpu_pct_per_100_containers: stats,
    })
}

/// Create `count` containers that print `lines` lines each as fast as they can (not started).
async fn create(
    docker: &Docker,
    image: &str,
    label: &str,
    lines: u64,
    count: u64,
    cleanup: &mut Vec<String>,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for _ in 0..count {
        let body = ContainerCreateBody {
            image: Some(image.into()),
            env: Some(vec![
                format!("EXIT_AFTER_LINES={lines}"),
                "LOG_RATE=0".into(),
                "LOG_FORMAT=mixed".into(),
            ]),
            labels: Some(HashMap::from([(
                "drover.bench".to_string(),
                label.to_string(),
            )])),
            ..Default::default()
        };
        let name = format!("{label}-{}", cleanup.len());
        let created = docker
            .create_container(
                Some(CreateContainerOptionsBuilder::default().name(&name).build()),
                body,
            )
            .await?;
        cleanup.push(created.id.clone());
        ids.push(created.id);
    }
    Ok(ids)
}

type CollectorTask = tokio::task::JoinHandle<Result<(), drover_collector::CollectorError>>;

fn label_filter(label: &str) -> String {
    format!("drover.bench={label}")
}

/// Run a collector in this process for the containers with `filter`; stop it with the sender.
fn spawn_collector(
    docker: Docker,
    brokers: &str,
    filter: &str,
    dir: std::path::PathBuf,
    stats_interval: Duration,
) -> (CollectorMetrics, watch::Sender<bool>, CollectorTask) {
    let mut cfg = CollectorConfig::new(brokers, dir);
    cfg.include_labels = vec![filter.to_string()];
    cfg.stats_interval = stats_interval;
    let metrics = CollectorMetrics::default();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(drover_collector::run(cfg, docker, metrics.clone(), stop_rx));
    (metrics, stop, task)
}

async fn start_all(docker: &Docker, ids: &[String]) -> anyhow::Result<()> {
    let starts = ids.iter().map(|id| docker.start_container(id, None));
    for r in futures::future::join_all(starts).await {
        r?;
    }
    Ok(())
}

/// Run a collector (in this process) for the labelled containers, start them, and measure
/// until `lines` records are acknowledged.
async fn ship(
    docker: &Docker,
    brokers: &str,
    label: &str,
    dir: std::path::PathBuf,
    ids: &[String],
    lines: u64,
    what: &str,
) -> anyhow::Result<Run> {
    let (metrics, stop, task) = spawn_collector(
        docker.clone(),
        brokers,
        &label_filter(label),
        dir,
        Duration::from_secs(3600),
    );
    // Let it connect and subscribe to Docker's events first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu0 = crate::telemetry::cpu_seconds().unwrap_or(0.0);
    let start = Instant::now();
    start_all(docker, ids).await?;
    let deadline = start + Duration::from_secs(600);
    while metrics.lines.get() < lines {
        if Instant::now() > deadline || task.is_finished() {
            let _ = stop.send(true);
            bail!(
                "{what}: only {} of {lines} lines shipped",
                metrics.lines.get()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = crate::telemetry::cpu_seconds().unwrap_or(0.0) - cpu0;
    let bytes = metrics.bytes.get();
    let _ = stop.send(true);
    let _ = task.await;
    let mut r = Run::new(what, lines, bytes, secs);
    r.cpu_pct = Some(cpu / secs * 100.0);
    r.peak_rss_mib = peak_rss_mib();
    Ok(r)
}

/// The run with the median lines/s.
fn median_run(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.lines_per_sec.total_cmp(&b.lines_per_sec));
    runs.swap_remove(runs.len() / 2)
}

/// Starts the container and waits for it to exit after printing its lines.
async fn source_alone(docker: &Docker, id: &str, lines: u64) -> anyhow::Result<Run> {
    use futures::StreamExt;
    let start = Instant::now();
    start_all(docker, &[id.to_string()]).await?;
    let mut wait =
        docker.wait_container(id, None::<bollard::query_parameters::WaitContainerOptions>);
    while let Some(r) = wait.next().await {
        r.context("waiting for the source container to exit")?;
    }
    Ok(Run::new(
        "source: the container alone, no shipper",
        lines,
        0,
        start.elapsed().as_secs_f64(),
    ))
}

/// Tries of the baseline before giving up.
const BASELINE_ATTEMPTS: u32 = 3;

async fn baseline(
    args: &CollectorBenchArgs,
    docker: &Docker,
    brokers: &str,
    id: &str,
    lines: u64,
) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("docker_logs_producer.py");
    std::fs::write(&script, BASELINE)?;
    let start = Instant::now();
    start_all(docker, &[id.to_string()]).await?;
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; docker logs -f --timestamps {id} 2>&1 | {} {} {} {} {id}",
            args.python,
            script.display(),
            brokers,
            drover_schema::topics::LOGS
        ))
        .output()
        .await?;
    let secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "baseline failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut parts = stdout.split_whitespace();
    let delivered: u64 = parts
        .next()
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("baseline output: {stdout}"))?;
    let bytes: u64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    if delivered != lines {
        bail!(
            "the baseline delivered only {delivered} of {lines} lines ({}) (docker logs -f also loses lines across a json-file rotation: use fewer --lines than one log file holds)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(Run::new(
        "baseline: docker logs -f | python confluent-kafka",
        lines,
        bytes,
        secs,
    ))
}

async fn stats_cost(
    args: &CollectorBenchArgs,
    docker: &Docker,
    brokers: &str,
    dir: std::path::PathBuf,
    cleanup: &mut Vec<String>,
) -> anyhow::Result<f64> {
    let label = format!("bench-stats-{}", std::process::id());
    eprintln!(
        "stats cost: starting {} idle containers…",
        args.stats_containers
    );
    for i in 0..args.stats_containers {
        let body = ContainerCreateBody {
            image: Some(args.idle_image.clone()),
            cmd: Some(vec!["sleep".into(), "3600".into()]),
            labels: Some(HashMap::from([("drover.bench".to_string(), label.clone())])),
            ..Default::default()
        };
        let name = format!("{label}-{i}");
        let created = docker
            .create_container(
                Some(CreateContainerOptionsBuilder::default().name(&name).build()),
                body,
            )
            .await?;
        cleanup.push(created.id.clone());
        docker.start_container(&created.id, None).await?;
    }
    let (metrics, stop, task) = spawn_collector(
        docker.clone(),
        brokers,
        &label_filter(&label),
        dir,
        Duration::from_secs(10),
    );
    // Let it find the containers, then measure whole intervals.
    tokio::time::sleep(Duration::from_secs(5)).await;
    eprintln!(
        "stats cost: measuring for {:?} at a 10s interval…",
        args.stats_duration
    );
    let cpu0 = crate::telemetry::cpu_seconds().unwrap_or(0.0);
    let samples0 = metrics.stats_samples.get();
    let start = Instant::now();
    tokio::time::sleep(args.stats_duration).await;
    let cpu = crate::telemetry::cpu_seconds().unwrap_or(0.0) - cpu0;
    let secs = start.elapsed().as_secs_f64();
    let samples = metrics.stats_samples.get() - samples0;
    let _ = stop.send(true);
    let _ = task.await;
    if samples == 0 {
        bail!("no stats sample was shipped during the stats-cost run");
    }
    Ok(cpu / secs * 100.0 * 100.0 / args.stats_containers as f64)
}

/// Peak resident memory of this process (VmHWM), MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn print_report(r: &Report) {
    println!("collector: broker {}", r.broker);
    println!(
        "{:<52} {:>10} {:>12} {:>8} {:>8} {:>10}",
        "run", "lines", "lines/s", "MB/s", "CPU %", "peak MiB"
    );
    for run in std::iter::once(&r.source)
        .chain(std::iter::once(&r.single))
        .chain(r.baseline.as_ref())
        .chain(std::iter::once(&r.many))
    {
        println!(
            "{:<52} {:>10} {:>12.0} {:>8.2} {:>8} {:>10}",
            run.what,
            run.lines,
            run.lines_per_sec,
            run.mb_per_sec,
            run.cpu_pct.map_or("-".into(), |c| format!("{c:.0}")),
            run.peak_rss_mib.map_or("-".into(), |m| format!("{m:.1}")),
        );
    }
    match r.ratio_vs_baseline {
        Some(x) => {
            let each: Vec<String> = r.round_ratios.iter().map(|x| format!("{x:.2}")).collect();
            println!(
                "collector / baseline (1 container): {x:.2}x, median of rounds [{}]",
                each.join(", ")
            );
            if let Some(e) = &r.baseline_error {
                println!("baseline tries that failed first: {e}");
            }
        }
        None => println!(
            "baseline: {}",
            r.baseline_error.as_deref().unwrap_or("not measured")
        ),
    }
    if let Some(s) = r.stats_cpu_pct_per_100_containers {
        println!("stats sampling cost: {s:.1}% of one core per 100 containers at a 10s interval");
    }
}
