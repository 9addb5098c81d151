//! `drover bench broker`: how the embedded broker carries Drover's own load, per producer
//! codec, with the collector's and the logpipe's real client settings: a backlog of log
//! records produced, then read from offset 0 — time to the first record, records/s per
//! 100,000 (does the rate depend on the backlog?), the longest wait between two records, time
//! to drain; then a steady rate produced while the consumer reads on (end-to-end latency
//! p50/p99/max) — and the broker's CPU, RSS and bytes on disk per million records.
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use drover_kafka::{
    admin::{self, TopicSpec},
    config,
};
use drover_schema::{LogRecord, Source, Stream, SCHEMA_VERSION};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    producer::{BaseRecord, Producer, ThreadedProducer},
    util::Timeout,
    Message, Offset, TopicPartitionList,
};
use serde::Serialize;

use super::{send_waiting, DeliveryCounter};
use crate::telemetry::pid_cpu_seconds;

/// Options of `drover bench broker`.
#[derive(Debug, Args)]
pub struct BrokerBenchArgs {
    /// Log records to produce (the backlog), per codec.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Producer codecs to compare, each against a fresh embedded broker (lz4 is what
    /// Drover's clients used before; snappy does not read back on tansu 0.6).
    #[arg(long, value_delimiter = ',', default_value = "lz4,none")]
    codecs: Vec<String>,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// After the backlog: records/s produced at a steady rate while the consumer keeps up,
    /// for the end-to-end latency (0 skips the phase).
    #[arg(long, default_value_t = 5_000)]
    steady_rate: u64,
    /// How long the steady phase lasts.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    steady_for: Duration,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct CodecResult {
    codec: String,
    records: u64,
    record_bytes: usize,
    produce_per_sec: f64,
    first_record_secs: f64,
    drain_secs: f64,
    read_per_sec: f64,
    /// Records/s of each successive 100,000 read.
    read_per_sec_by_100k: Vec<f64>,
    longest_wait_secs: f64,
    /// Produce-to-consume latency at the steady rate, milliseconds (p50, p99, max).
    steady_latency_ms: Option<[f64; 3]>,
    /// Records of the steady phase that did not arrive within 30 s of its end.
    steady_missing: u64,
    broker_cpu_secs: f64,
    broker_rss_mib: f64,
    disk_mib_per_million: f64,
}

/// Run the benchmark.
pub async fn run(args: BrokerBenchArgs) -> anyhow::Result<()> {
    if args.records == 0 {
        bail!("--records must be at least 1");
    }
    let mut results = Vec::new();
    for codec in &args.codecs {
        let codec = codec.trim().to_string();
        if !["none", "gzip", "lz4", "zstd", "snappy"].contains(&codec.as_str()) {
            bail!("--codecs: unknown codec {codec:?}; use none, gzip, lz4, zstd or snappy");
        }
        let tmp = tempfile::tempdir().context("failed to create a temporary directory")?;
        let (brokers, broker, _) = super::bench_broker(None, tmp.path()).await?;
        let broker = broker.expect("an embedded broker");
        let pid = broker.pid();
        let r = measure(&args, &brokers, &codec, pid, &tmp.path().join("broker")).await;
        broker.stop().await;
        results.push(r?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print_table(&args, &results);
    }
    Ok(())
}

/// A collector record of realistic size (an nginx access line, Drover's tags).
fn record(i: u64, container: usize) -> LogRecord {
    LogRecord {
        v: SCHEMA_VERSION,
        ts: chrono::Utc::now(),
        end_ts: None,
        source: Source {
            host: "bench-host".into(),
            app: format!("/shop/app-{}", container % 10),
            container_id: format!("{container:064x}"),
            container_name: format!("shop-app-{container}"),
            image: "registry.local/shop/app:1.4.2".into(),
            task: Some(format!("shop_app.{container}")),
            node: Some("bench-node".into()),
            group: Some("/shop".into()),
        },
        stream: Stream::Stdout,
        seq: i,
        line: format!(
            "10.0.{}.{} - - [02/Dec/2026:03:25:09 +0000] \"GET /api/v1/items/{i}?page=2 HTTP/1.1\" 200 {} \"-\" \"curl/8.5.0\" 0.0{}",
            i % 200, i % 250, 512 + i % 4096, i % 90
        ),
    }
}

async fn measure(
    args: &BrokerBenchArgs,
    brokers: &str,
    codec: &str,
    pid: u32,
    dir: &std::path::Path,
) -> anyhow::Result<CodecResult> {
    let topic = format!("bench.broker.{codec}");
    admin::ensure_topics(
        brokers,
        &[TopicSpec {
            name: topic.clone(),
            partitions: args.partitions,
            configs: Vec::new(),
        }],
    )
    .await?;
    let cpu0 = pid_cpu_seconds(pid).unwrap_or(0.0);
    let (b, t, n, c) = (
        brokers.to_string(),
        topic.clone(),
        args.records,
        codec.to_string(),
    );
    let (partitions, rate, steady_for) = (args.partitions, args.steady_rate, args.steady_for);
    let r =
        tokio::task::spawn_blocking(move || run_codec(&b, &t, n, &c, partitions, rate, steady_for))
            .await
            .context("benchmark thread panicked")??;
    let cpu = pid_cpu_seconds(pid).unwrap_or(0.0) - cpu0;
    let rss = drover_kafka::embedded::resident_bytes(pid).unwrap_or(0) as f64 / 1_048_576.0;
    let disk: u64 = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("tansu.db"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    Ok(CodecResult {
        broker_cpu_secs: cpu,
        broker_rss_mib: rss,
        disk_mib_per_million: disk as f64 / 1_048_576.0 * 1e6 / args.records as f64,
        ..r
    })
}

/// The collector's producer settings, with this codec.
fn collector_producer(
    brokers: &str,
    codec: &str,
) -> anyhow::Result<ThreadedProducer<DeliveryCounter>> {
    let mut pc = config::producer(brokers, "drover-bench-broker");
    pc.set("compression.type", codec)
        .set("queue.buffering.max.kbytes", "1024")
        .set("queue.buffering.max.messages", "100000")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000");
    Ok(pc.create_with_context(DeliveryCounter::default())?)
}

fn run_codec(
    brokers: &str,
    topic: &str,
    n: u64,
    codec: &str,
    partitions: i32,
    steady_rate: u64,
    steady_for: Duration,
) -> anyhow::Result<CodecResult> {
    let producer = collector_producer(brokers, codec)?;
    let containers = 30;
    let keys: Vec<String> = (0..containers).map(|c| format!("{c:064x}")).collect();
    let mut record_bytes = 0;
    eprintln!("{codec}: producing {n} log records…");
    let start = Instant::now();
    for i in 0..n {
        let c = (i % containers as u64) as usize;
        let payload = drover_schema::encode(&record(i, c));
        record_bytes = payload.len();
        send_waiting(
            &producer,
            BaseRecord::to(topic).key(&keys[c]).payload(&payload),
        )?;
    }
    producer
        .flush(Timeout::After(Duration::from_secs(600)))
        .context("failed to flush the producer")?;
    let produce_secs = start.elapsed().as_secs_f64();
    let (ok, failed) = producer.context().counts();
    if ok != n || failed != 0 {
        bail!("{codec}: only {ok} of {n} records acknowledged ({failed} failed)");
    }
    drop(producer);

    // The logpipe's consumer settings, every partition from offset 0.
    eprintln!("{codec}: reading them back from offset 0…");
    let mut cc = config::consumer(brokers, "drover-bench-broker", &format!("bench-{codec}"));
    cc.set("queued.max.messages.kbytes", "16384");
    let consumer: BaseConsumer = cc.create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let start = Instant::now();
    let (mut got, mut first, mut last, mut longest) = (0u64, None, Instant::now(), 0.0f64);
    let mut chunk_start = Instant::now();
    let mut by_100k = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(1800);
    while got < n {
        if Instant::now() > deadline {
            bail!("{codec}: read only {got} of {n} records within 30 minutes");
        }
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let now = Instant::now();
                if first.is_none() {
                    first = Some(start.elapsed().as_secs_f64());
                    chunk_start = now;
                } else {
                    longest = longest.max(now.duration_since(last).as_secs_f64());
                }
                last = now;
                if m.payload().is_some() {
                    got += 1;
                }
                if got.is_multiple_of(100_000) {
                    by_100k
                        .push(100_000.0 / now.duration_since(chunk_start).as_secs_f64().max(1e-9));
                    chunk_start = now;
                }
            }
            Some(Err(e)) => eprintln!("{codec}: consume error (retrying): {e}"),
            None => {}
        }
    }
    let drain_secs = start.elapsed().as_secs_f64();

    // Steady phase: a fixed rate produced while the same consumer reads on.
    let (steady_latency_ms, steady_missing) = if steady_rate == 0 {
        (None, 0)
    } else {
        eprintln!("{codec}: {steady_rate} records/s for {steady_for:?} while consuming…");
        let (b, t, c) = (brokers.to_string(), topic.to_string(), codec.to_string());
        let total = steady_rate * steady_for.as_secs().max(1);
        let sender = std::thread::spawn(move || -> anyhow::Result<()> {
            let producer = collector_producer(&b, &c)?;
            let start = Instant::now();
            for i in 0..total {
                // Paced: record i leaves at i / rate seconds.
                let due = start + Duration::from_secs_f64(i as f64 / steady_rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let container = (i % 30) as usize;
                let payload = drover_schema::encode(&record(n + i, container));
                let key = format!("{container:064x}");
                send_waiting(&producer, BaseRecord::to(&t).key(&key).payload(&payload))?;
            }
            producer
                .flush(Timeout::After(Duration::from_secs(60)))
                .context("failed to flush the steady producer")?;
            Ok(())
        });
        let mut latencies = Vec::with_capacity(total as usize);
        let deadline = Instant::now() + steady_for + Duration::from_secs(30);
        while (latencies.len() as u64) < total && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                if let Some(Ok(rec)) = m.payload().map(drover_schema::decode::<LogRecord>) {
                    let ms = (chrono::Utc::now() - rec.ts)
                        .num_microseconds()
                        .unwrap_or(0) as f64
                        / 1000.0;
                    latencies.push(ms);
                }
            }
        }
        sender
            .join()
            .map_err(|_| anyhow::anyhow!("the steady producer panicked"))??;
        let missing = total.saturating_sub(latencies.len() as u64);
        latencies.sort_by(f64::total_cmp);
        let q = |p: f64| {
            latencies
                .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        (Some([q(0.5), q(0.99), q(1.0)]), missing)
    };
    Ok(CodecResult {
        codec: codec.to_string(),
        records: n,
        record_bytes,
        produce_per_sec: n as f64 / produce_secs.max(1e-9),
        first_record_secs: first.unwrap_or(0.0),
        drain_secs,
        read_per_sec: n as f64 / drain_secs.max(1e-9),
        read_per_sec_by_100k: by_100k,
        longest_wait_secs: longest,
        steady_latency_ms,
        steady_missing,
        broker_cpu_secs: 0.0,
        broker_rss_mib: 0.0,
        disk_mib_per_million: 0.0,
    })
}

fn print_table(args: &BrokerBenchArgs, rs: &[CodecResult]) {
    println!(
        "broker: embedded tansu (sqlite), {} log records of ~{} B over {} partitions, 30 keys; collector producer and logpipe consumer settings",
        args.records,
        rs.first().map_or(0, |r| r.record_bytes),
        args.partitions
    );
    println!(
        "{:<7} {:>12} {:>10} {:>10} {:>10} {:>12} {:>12} {:>10} {:>12}",
        "codec",
        "produced/s",
        "1st rec s",
        "drain s",
        "read/s",
        "longest wait",
        "broker cpu s",
        "rss MiB",
        "MiB/million"
    );
    for r in rs {
        println!(
            "{:<7} {:>12.0} {:>10.2} {:>10.1} {:>10.0} {:>12.2} {:>12.1} {:>10.0} {:>12.0}",
            r.codec,
            r.produce_per_sec,
            r.first_record_secs,
            r.drain_secs,
            r.read_per_sec,
            r.longest_wait_secs,
            r.broker_cpu_secs,
            r.broker_rss_mib,
            r.disk_mib_per_million
        );
    }
    for r in rs {
        match r.steady_latency_ms {
            Some([p50, p99, max]) => println!(
                "{:<7} steady {} records/s: latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms, {} missing",
                r.codec, args.steady_rate, p50, p99, max, r.steady_missing
            ),
            None => println!("{:<7} steady phase skipped", r.codec),
        }
    }
    for r in rs {
        let rates: Vec<String> = r
            .read_per_sec_by_100k
            .iter()
            .map(|x| format!("{:.0}", x))
            .collect();
        println!("{:<7} read/s per 100,000: {}", r.codec, rates.join(" "));
    }
}
