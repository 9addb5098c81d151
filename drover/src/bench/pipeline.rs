//! `drover bench pipeline`: the whole path as a user sees it. K containers print numbered
//! lines at a set total rate; the collector ships them through the embedded broker; the
//! logpipe indexes them; and the search API is asked, every 250 ms, for the newest line of
//! the run: how long ago it was printed is the printed → searchable latency of that moment.
//! Per rate: latency p50/p99/max, lines missing (every line is counted in the index; what is
//! not searchable 120 s after the printing stopped is missing: lost, or still behind), and
//! the CPU of Drover's process (collector + logpipe + search) and of the broker. Measure a
//! release build: a debug build's collector and logpipe are several times slower.
use std::{
    collections::HashMap,
    sync::{atomic::AtomicBool, Arc},
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
use drover_logpipe::{Logpipe, LogpipeConfig, LogpipeMetrics};
use drover_search::{LogStore, Search, SearchRequest, TrackTotal};
use serde::Serialize;
use tokio::sync::watch;

use crate::telemetry::{cpu_seconds, pid_cpu_seconds};

/// Options of `drover bench pipeline`.
#[derive(Debug, Args)]
pub struct PipelineBenchArgs {
    /// Total lines/s to try, one run each, in this order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "2000,5000,10000,20000,50000"
    )]
    rates: Vec<u64>,
    /// How long the containers print at each rate.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Containers printing at once (the rate is split between them).
    #[arg(long, default_value_t = 10)]
    containers: u64,
    /// The image that prints the lines (`LOG_RATE`, `EXIT_AFTER_LINES`, `LOG_FORMAT=plain`).
    #[arg(long, default_value = "drover-demo:latest")]
    image: String,
    /// The logpipe's commit interval (a line is searchable about this long after it is read).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    commit_interval: Duration,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct RateResult {
    rate: u64,
    lines: u64,
    /// Lines/s the containers actually printed (Docker's timestamps, first to last).
    printed_per_sec: f64,
    latency_ms_p50: f64,
    latency_ms_p99: f64,
    latency_ms_max: f64,
    samples: usize,
    /// Lines not searchable 120 s after the containers stopped printing (lost, or still
    /// behind); negative = more lines than printed (doubled).
    missing: i64,
    drover_cpu_pct: f64,
    broker_cpu_pct: f64,
}

/// Run the benchmark.
pub async fn run(args: PipelineBenchArgs) -> anyhow::Result<()> {
    if args.rates.is_empty() || args.containers == 0 {
        bail!("--rates and --containers must not be empty or 0");
    }
    let docker = crate::docker::connect("").await?;
    docker.inspect_image(&args.image).await.with_context(|| {
        format!(
            "image {} not found: build it with tests/images/build.sh demo",
            args.image
        )
    })?;
    let tmp = tempfile::tempdir().context("failed to create a temporary directory")?;
    let (brokers, broker, label) = super::bench_broker(None, tmp.path()).await?;
    let broker = broker.expect("an embedded broker");
    drover_kafka::admin::ensure_topics(&brokers, &drover_kafka::admin::default_topics(3)).await?;
    let run_label = format!("bench-pipeline-{}", std::process::id());

    // The pipeline, in this process: collector → broker → logpipe → search.
    let mut ccfg = CollectorConfig::new(&brokers, tmp.path().join("collector"));
    ccfg.include_labels = vec![format!("drover.bench={run_label}")];
    ccfg.stats_interval = Duration::from_secs(3600);
    let (stop_tx, stop_rx) = watch::channel(false);
    let collector = tokio::spawn(drover_collector::run(
        ccfg,
        docker.clone(),
        CollectorMetrics::default(),
        stop_rx,
    ));
    let store = Arc::new(LogStore::open(tmp.path().join("logs"))?);
    let mut lcfg = LogpipeConfig::new(&brokers);
    lcfg.commit_interval = args.commit_interval;
    lcfg.retention = None;
    let stop = Arc::new(AtomicBool::new(false));
    let pipe = Logpipe::new(lcfg, Arc::clone(&store), LogpipeMetrics::new());
    let flag = Arc::clone(&stop);
    let logpipe = std::thread::spawn(move || pipe.run(flag));
    let search = Search::new(Arc::clone(&store));

    let mut results = Vec::new();
    let mut cleanup = Vec::new();
    let outcome = async {
        for &rate in &args.rates {
            results.push(
                one_rate(
                    &args,
                    &docker,
                    &search,
                    rate,
                    &run_label,
                    broker.pid(),
                    &mut cleanup,
                )
                .await?,
            );
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    for id in &cleanup {
        let _ = docker
            .remove_container(
                id,
                Some(RemoveContainerOptionsBuilder::default().force(true).build()),
            )
            .await;
    }
    let _ = stop_tx.send(true);
    let _ = collector.await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = logpipe.join();
    broker.stop().await;
    outcome?;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(());
    }
    println!(
        "pipeline: {} containers → collector → broker ({label}) → logpipe (commit every {:?}) → search, {:?} per rate",
        args.containers, args.commit_interval, args.duration
    );
    println!(
        "{:>8} {:>10} {:>10} {:>9} {:>9} {:>9} {:>8} {:>11} {:>11}",
        "rate",
        "printed/s",
        "indexed",
        "p50 ms",
        "p99 ms",
        "max ms",
        "missing",
        "drover cpu",
        "broker cpu"
    );
    for r in &results {
        println!(
            "{:>8} {:>10.0} {:>10} {:>9.0} {:>9.0} {:>9.0} {:>8} {:>10.0}% {:>10.0}%",
            r.rate,
            r.printed_per_sec,
            r.lines,
            r.latency_ms_p50,
            r.latency_ms_p99,
            r.latency_ms_max,
            r.missing,
            r.drover_cpu_pct,
            r.broker_cpu_pct
        );
    }
    match results
        .iter()
        .filter(|r| r.latency_ms_p99 < 2000.0 && r.missing == 0)
        .map(|r| r.rate)
        .max()
    {
        Some(best) => println!("highest rate with p99 < 2 s and nothing missing: {best} lines/s"),
        None => println!("no rate kept p99 under 2 s with nothing missing"),
    }
    Ok(())
}

async fn one_rate(
    args: &PipelineBenchArgs,
    docker: &Docker,
    search: &Search,
    rate: u64,
    run_label: &str,
    broker_pid: u32,
    cleanup: &mut Vec<String>,
) -> anyhow::Result<RateResult> {
    let per_container = (rate / args.containers).max(1);
    let lines_each = per_container * args.duration.as_secs().max(1);
    let app = format!("pipeline-{rate}-{}", std::process::id());
    eprintln!(
        "{rate} lines/s: {} containers × {per_container} lines/s for {:?}…",
        args.containers, args.duration
    );
    let mut ids = Vec::new();
    for i in 0..args.containers {
        let body = ContainerCreateBody {
            image: Some(args.image.clone()),
            env: Some(vec![
                format!("LOG_RATE={per_container}"),
                format!("EXIT_AFTER_LINES={lines_each}"),
                "LOG_FORMAT=plain".into(),
                format!("DROVER_APP_ID={app}"),
            ]),
            labels: Some(HashMap::from([(
                "drover.bench".to_string(),
                run_label.to_string(),
            )])),
            ..Default::default()
        };
        let created = docker
            .create_container(
                Some(
                    CreateContainerOptionsBuilder::default()
                        .name(&format!("{app}-{i}"))
                        .build(),
                ),
                body,
            )
            .await?;
        cleanup.push(created.id.clone());
        ids.push(created.id);
    }
    let cpu0 = (
        cpu_seconds().unwrap_or(0.0),
        pid_cpu_seconds(broker_pid).unwrap_or(0.0),
    );
    let t0 = Instant::now();
    let started_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    for id in &ids {
        docker.start_container(id, None).await?;
    }
    let expected = lines_each * args.containers;
    // Sample the freshness of the index until every line is searchable.
    let mut samples = Vec::new();
    let deadline = Instant::now() + args.duration + Duration::from_secs(120);
    let newest = SearchRequest {
        app: vec![app.clone()],
        limit: 1,
        track_total: TrackTotal::Exact,
        ..SearchRequest::default()
    };
    let mut found;
    let mut last_ts = started_ns;
    loop {
        let req = newest.clone();
        let s = search.clone();
        let r = tokio::task::spawn_blocking(move || s.search(&req)).await??;
        let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        found = r.total;
        if let Some(h) = r.hits.first() {
            // While lines are still being printed, the newest searchable line's age is the
            // latency of that moment.
            if found < expected {
                samples.push((now_ns - h.ts_ns) as f64 / 1e6);
            }
            last_ts = h.ts_ns;
        }
        if found >= expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (
        cpu_seconds().unwrap_or(0.0) - cpu0.0,
        pid_cpu_seconds(broker_pid).unwrap_or(0.0) - cpu0.1,
    );
    // From the start to the newest line's timestamp: the rate the containers really printed.
    let span_secs = ((last_ts - started_ns) as f64 / 1e9).max(1e-9);
    samples.sort_by(f64::total_cmp);
    let q = |p: f64| {
        samples
            .get(((samples.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok(RateResult {
        rate,
        lines: found,
        printed_per_sec: found as f64 / span_secs,
        latency_ms_p50: q(0.5),
        latency_ms_p99: q(0.99),
        latency_ms_max: q(1.0),
        samples: samples.len(),
        missing: expected as i64 - found as i64,
        drover_cpu_pct: cpu.0 / secs * 100.0,
        broker_cpu_pct: cpu.1 / secs * 100.0,
    })
}
