//! `drover bench metrics`: the metrics store's ingest rate (in process, and end to end from
//! Kafka), a 24-hour query over 1,000 series downsampled to 1-minute steps, and a 5-minute
//! window aggregation over 10,000 series. Prints figures; asserts nothing.
use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use drover_metrics::{
    history::{History, PendingSample},
    query::{query_with, Bucketing, QueryRequest},
    Agg, Dim, Filter, Ingest, IngestConfig, Labels, Metric, MetricsStore, StoreConfig,
    StoreMetrics, Window, WindowQuery,
};
use drover_schema::{ContainerStats, MetricRecord, Source};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use serde::Serialize;

/// Options of `drover bench metrics`.
#[derive(Debug, Args)]
pub struct MetricsBenchArgs {
    /// Records (ContainerStats, 8 samples each) for the in-process ingest figure.
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Records produced to Kafka for the end-to-end ingest figure (0: skip; needs the
    /// embedded broker or --brokers).
    #[arg(long, default_value_t = 50_000)]
    kafka_records: u64,
    /// Bootstrap servers for the end-to-end figure; default: an embedded broker.
    #[arg(long, value_name = "BROKERS")]
    brokers: Option<String>,
    /// Series of the 24-hour query.
    #[arg(long, default_value_t = 1_000)]
    query_series: u64,
    /// Series of the window aggregation.
    #[arg(long, default_value_t = 10_000)]
    window_series: u64,
    /// Sample interval of the generated series (the collector's default is 10 s).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Runs of each query for the percentiles.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Latency {
    what: String,
    rows: u64,
    series_out: usize,
    /// The first run: for the rollup queries, before the hour cache holds the hours.
    first_ms: f64,
    p50_ms: f64,
    max_ms: f64,
    target_ms: f64,
}

#[derive(Debug, Serialize, Default)]
struct Report {
    ingest_in_process_samples_per_sec: f64,
    ingest_in_process_records_per_sec: f64,
    ingest_kafka_samples_per_sec: Option<f64>,
    history_files_mb: f64,
    compaction_secs: f64,
    latencies: Vec<Latency>,
}

const HOUR_MS: i64 = 3_600_000;

fn labels(i: u64, apps: u64, nodes: u64) -> Labels {
    Labels {
        app: format!("/app-{}", i % apps),
        instance: format!("task-{i}"),
        node: format!("node-{}", i % nodes),
        group: String::new(),
        host: format!("host-{}", i % nodes),
    }
}

fn record(i: u64, ts: DateTime<Utc>, rng: &mut fastrand::Rng) -> MetricRecord {
    MetricRecord::Container(ContainerStats {
        v: 1,
        ts,
        source: Source {
            host: format!("host-{}", i % 10),
            node: Some(format!("node-{}", i % 10)),
            app: format!("/app-{}", i % 50),
            task: Some(format!("task-{i}")),
            group: None,
            container_id: format!("{i:064x}"),
            container_name: format!("c{i}"),
            image: "img".into(),
        },
        cpu_pct: rng.f64() * 200.0,
        cpu_limit: 2.0,
        rss_bytes: rng.u64(1 << 20..1 << 30),
        working_set_bytes: rng.u64(1 << 20..1 << 30),
        mem_limit_bytes: 1 << 31,
        rss_pct: rng.f64() * 100.0,
        blkio_read_bytes: ts.timestamp_millis() as u64,
        blkio_write_bytes: ts.timestamp_millis() as u64 * 2,
        net_rx_bytes: ts.timestamp_millis() as u64 * 3,
        net_tx_bytes: ts.timestamp_millis() as u64 * 4,
    })
}

/// Run the benchmark.
pub async fn run(args: MetricsBenchArgs) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir().context("temp dir")?;
    let mut report = Report::default();
    let interval_ms = i64::try_from(args.interval.as_millis())?.max(1);

    // 1. In process: decode → validate → window + pending → Parquet, as the consumer does.
    {
        let mut rng = fastrand::Rng::with_seed(7);
        let series = 2_000u64;
        let start = Utc::now() - chrono::Duration::minutes(50);
        let payloads: Vec<Vec<u8>> = (0..args.records)
            .map(|n| {
                let ts = start + chrono::Duration::milliseconds((n / series) as i64 * interval_ms);
                drover_schema::encode(&record(n % series, ts, &mut rng))
            })
            .collect();
        let store = MetricsStore::open(&tmp.path().join("ingest"), StoreConfig::default())?;
        let started = Instant::now();
        let mut samples = 0u64;
        for (n, p) in payloads.iter().enumerate() {
            let rec: MetricRecord = drover_schema::decode(p)?;
            let s = drover_metrics::sample::flatten(&rec).map_err(|e| anyhow::anyhow!("{e}"))?;
            samples += store.add(&s).added;
            if n % 25_000 == 24_999 {
                store.flush()?;
            }
        }
        store.flush()?;
        let secs = started.elapsed().as_secs_f64();
        report.ingest_in_process_samples_per_sec = samples as f64 / secs;
        report.ingest_in_process_records_per_sec = args.records as f64 / secs;
        eprintln!(
            "ingest (in process): {} records, {samples} samples in {secs:.2} s",
            args.records
        );
    }

    // 2. End to end from Kafka.
    if args.kafka_records > 0 {
        match kafka_ingest(&args, tmp.path()).await {
            Ok(rate) => report.ingest_kafka_samples_per_sec = Some(rate),
            Err(e) => eprintln!("skipping the Kafka ingest figure: {e:#}"),
        }
    }

    // 3. 24 hours of history for `query_series` series, one hourly file each.
    let end = (Utc::now().timestamp_millis() / HOUR_MS) * HOUR_MS;
    let start = end - 24 * HOUR_MS;
    let dir = tmp.path().join("history");
    {
        let history = History::open(&dir)?;
        let mut rng = fastrand::Rng::with_seed(11);
        let labels: Vec<Arc<Labels>> = (0..args.query_series)
            .map(|i| Arc::new(labels(i, 10, 10)))
            .collect();
        let gen = Instant::now();
        for h in 0..24 {
            let mut batch = Vec::new();
            let mut ts = start + h * HOUR_MS;
            while ts < start + (h + 1) * HOUR_MS {
                for l in &labels {
                    batch.push(PendingSample {
                        metric: Metric::CpuPct,
                        labels: Arc::clone(l),
                        ts_ms: ts,
                        value: rng.f64() * 100.0,
                    });
                }
                ts += interval_ms;
            }
            history.write(&batch)?;
        }
        let bytes: u64 = walk_size(&dir);
        report.history_files_mb = bytes as f64 / 1e6;
        eprintln!(
            "generated 24 h × {} series every {:?} ({:.1} MB of Parquet) in {:.1} s",
            args.query_series,
            args.interval,
            bytes as f64 / 1e6,
            gen.elapsed().as_secs_f64()
        );
    }
    {
        // Two minutes past the last hour: the window holds the last hour, history the rest.
        let clock_ms = end + 120_000;
        let cfg = StoreConfig {
            clock: drover_schema::time::ManualClock::at_ms(clock_ms).shared(),
            ..StoreConfig::default()
        };
        let store = MetricsStore::open(&dir, cfg)?;
        let t = Instant::now();
        let (written, _) = store.maintain()?;
        report.compaction_secs = t.elapsed().as_secs_f64();
        eprintln!(
            "compacted the closed hours with their 1-minute rollups ({} files) in {:.1} s",
            written.files, report.compaction_secs
        );
        let rows = (24 * HOUR_MS / interval_ms) as u64 * args.query_series;
        for (by, agg, bucketing) in [
            (vec![Dim::App], Agg::Mean, Bucketing::Floor),
            (vec![Dim::Instance], Agg::Mean, Bucketing::Floor),
            (vec![Dim::App], Agg::Max, Bucketing::Floor),
            (vec![Dim::App], Agg::P95, Bucketing::Floor),
            (vec![Dim::App], Agg::Mean, Bucketing::Dynamic),
        ] {
            let req = QueryRequest {
                metric: Metric::CpuPct,
                filter: Filter::default(),
                by: by.clone(),
                from_ms: start,
                to_ms: end,
                step_ms: 60_000,
                agg,
            };
            let mut times = Vec::new();
            let mut series_out = 0;
            for _ in 0..args.runs.max(1) {
                let t = Instant::now();
                let r = query_with(&store, &req, bucketing)?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                series_out = r.series.len();
            }
            report.latencies.push(latency(
                format!(
                    "24 h query, {} series, 1 min steps, {} by {}, {}",
                    args.query_series,
                    agg.as_str(),
                    by[0].as_str(),
                    match (bucketing, agg) {
                        (Bucketing::Dynamic, _) => "raw samples, group_by_dynamic",
                        (_, Agg::P95) => "raw samples, group_by",
                        _ => "1-minute rollups + raw last hour, group_by",
                    }
                ),
                rows,
                series_out,
                times,
                100.0,
            ));
        }
    }

    // 4. The 5-minute window over `window_series` series (10 minutes held).
    {
        let now = Utc::now();
        let clock_now = now;
        let window_clock = drover_schema::time::ManualClock::new(clock_now).shared();
        let mut w = Window::new(Duration::from_secs(3600), window_clock);
        let mut rng = fastrand::Rng::with_seed(13);
        let labels: Vec<Labels> = (0..args.window_series)
            .map(|i| labels(i, 100, 10))
            .collect();
        let now_ms = now.timestamp_millis();
        let mut ts = now_ms - 600_000;
        while ts <= now_ms {
            for l in &labels {
                w.insert(Metric::CpuPct, l, ts, rng.f64() * 100.0);
                w.insert(Metric::NetRxBytes, l, ts, (ts - now_ms + 600_000) as f64);
            }
            ts += interval_ms;
        }
        let rows = (300_000 / interval_ms + 1) as u64 * args.window_series;
        let w = Mutex::new(w);
        for (metric, agg, by) in [
            (Metric::CpuPct, Agg::Mean, vec![Dim::App, Dim::Node]),
            (Metric::CpuPct, Agg::P95, vec![Dim::App, Dim::Node]),
            (Metric::CpuPct, Agg::Max, vec![Dim::Instance]),
            (Metric::NetRxBytes, Agg::Rate, vec![Dim::App, Dim::Node]),
        ] {
            let q = WindowQuery {
                metric,
                range: Duration::from_secs(300),
                by: by.clone(),
                agg,
                filter: Filter::default(),
            };
            let mut times = Vec::new();
            let mut series_out = 0;
            for _ in 0..args.runs.max(1) {
                let t = Instant::now();
                let r = w
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .aggregate(&q)?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                series_out = r.len();
            }
            let by: Vec<&str> = by.iter().map(|d| d.as_str()).collect();
            report.latencies.push(latency(
                format!(
                    "5 min window, {} series, {} {metric} by {}",
                    args.window_series,
                    agg.as_str(),
                    by.join("+")
                ),
                rows,
                series_out,
                times,
                50.0,
            ));
        }
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "ingest in process (decode, validate, window, Parquet): {:.0} samples/s ({:.0} records/s)",
        report.ingest_in_process_samples_per_sec, report.ingest_in_process_records_per_sec
    );
    if let Some(r) = report.ingest_kafka_samples_per_sec {
        println!("ingest from Kafka, end to end (produce first, then consume): {r:.0} samples/s");
    }
    println!(
        "history for the query: {:.1} MB of Parquet; compacting its 23 closed hours with rollups: {:.1} s",
        report.history_files_mb, report.compaction_secs
    );
    println!(
        "| what | rows read | series out | first run ms | p50 ms | max ms | target ms |\n|---|---|---|---|---|---|---|"
    );
    for l in &report.latencies {
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0} |",
            l.what, l.rows, l.series_out, l.first_ms, l.p50_ms, l.max_ms, l.target_ms
        );
    }
    Ok(())
}

fn latency(
    what: String,
    rows: u64,
    series_out: usize,
    mut times: Vec<f64>,
    target: f64,
) -> Latency {
    let first_ms = times.first().copied().unwrap_or(0.0);
    times.sort_by(f64::total_cmp);
    Latency {
        what,
        rows,
        series_out,
        first_ms,
        p50_ms: times[times.len() / 2],
        max_ms: *times.last().unwrap_or(&0.0),
        target_ms: target,
    }
}

fn walk_size(dir: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            n += walk_size(&p);
        } else {
            n += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    n
}

/// Produce `kafka_records` records, then time a consumer (the real [`Ingest`]) until it has
/// stored all their samples. Returns samples/s.
async fn kafka_ingest(args: &MetricsBenchArgs, dir: &std::path::Path) -> anyhow::Result<f64> {
    let (brokers, broker, label) = super::bench_broker(args.brokers.as_deref(), dir).await?;
    let result = async {
        let topic = format!("bench.metrics.{}", fastrand::u32(..));
        drover_kafka::admin::ensure_topics(
            &brokers,
            &[drover_kafka::admin::TopicSpec {
                name: topic.clone(),
                partitions: 3,
                configs: Vec::new(),
            }],
        )
        .await?;
        let producer: ThreadedProducer<_> =
            drover_kafka::config::producer(&brokers, "drover-bench").create()?;
        let mut rng = fastrand::Rng::with_seed(5);
        let start = Utc::now() - chrono::Duration::minutes(30);
        for n in 0..args.kafka_records {
            let i = n % 1000;
            let ts = start + chrono::Duration::milliseconds((n / 1000) as i64 * 10_000);
            let payload = drover_schema::encode(&record(i, ts, &mut rng));
            let key = format!("/app-{}", i % 50);
            loop {
                match producer.send(BaseRecord::to(&topic).key(&key).payload(&payload)) {
                    Ok(()) => break,
                    Err((_, _)) => producer.poll(Duration::from_millis(10)),
                }
            }
        }
        producer.flush(Duration::from_secs(120))?;
        eprintln!("produced {} records to {label}", args.kafka_records);
        let store = Arc::new(MetricsStore::open(
            &dir.join("kafka-store"),
            StoreConfig::default(),
        )?);
        let mut cfg = IngestConfig::new(&brokers);
        cfg.topic = topic;
        cfg.group = format!("bench-{}", fastrand::u32(..));
        let metrics = StoreMetrics::new();
        let ingest = Ingest::new(cfg, Arc::clone(&store), metrics.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let started = Instant::now();
        let thread = std::thread::spawn(move || ingest.run(flag));
        let want = args.kafka_records * 8;
        let deadline = Instant::now() + Duration::from_secs(600);
        while metrics.samples.get() < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        let got = metrics.samples.get();
        eprintln!("consumed {got} samples from Kafka in {secs:.2} s");
        anyhow::Ok(got as f64 / secs)
    }
    .await;
    if let Some(b) = broker {
        b.stop().await;
    }
    result
}
