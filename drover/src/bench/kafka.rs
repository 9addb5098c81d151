//! `drover bench kafka`: produce and consume throughput, with Python confluent-kafka as the
//! baseline against the same broker in the same run.
use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use clap::Args;
use drover_kafka::{
    admin::{self, TopicSpec},
    config,
};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    producer::{BaseRecord, Producer, ThreadedProducer},
    util::Timeout,
    Message,
};
use serde::Serialize;

use super::{send_waiting, DeliveryCounter};

const PYTHON_BENCH: &str = include_str!("confluent_kafka_bench.py");

/// Options of `drover bench kafka`.
#[derive(Debug, Args)]
pub struct KafkaBenchArgs {
    /// Bootstrap servers of the broker to measure; default: start an embedded broker in a
    /// temporary directory.
    #[arg(long, value_name = "BROKERS")]
    brokers: Option<String>,
    /// Messages to produce and then consume, per client.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 200)]
    size: usize,
    /// Partitions of the benchmark topics.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Python interpreter with confluent-kafka for the baseline.
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// Skip the confluent-kafka baseline.
    #[arg(long)]
    no_baseline: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize, Clone, Copy)]
struct Throughput {
    messages: u64,
    secs: f64,
    msgs_per_sec: f64,
    mb_per_sec: f64,
}

impl Throughput {
    fn new(messages: u64, secs: f64, size: usize) -> Self {
        let secs = secs.max(1e-9);
        Self {
            messages,
            secs,
            msgs_per_sec: messages as f64 / secs,
            mb_per_sec: messages as f64 * size as f64 / secs / 1e6,
        }
    }
}

#[derive(Debug, Serialize)]
struct ClientResult {
    client: String,
    produce: Throughput,
    consume: Throughput,
}

#[derive(Debug, Serialize)]
struct Report {
    broker: String,
    messages: u64,
    size_bytes: usize,
    partitions: i32,
    settings: &'static str,
    drover: ClientResult,
    baseline: Option<ClientResult>,
    baseline_error: Option<String>,
    produce_ratio: Option<f64>,
    consume_ratio: Option<f64>,
}

/// Run the benchmark.
pub async fn run(args: KafkaBenchArgs) -> anyhow::Result<()> {
    if args.messages == 0 {
        bail!("--messages must be at least 1");
    }
    let tmp = tempfile::tempdir().context("failed to create a temporary directory")?;
    let (brokers, broker, label) = super::bench_broker(args.brokers.as_deref(), tmp.path()).await?;
    let result = measure(&args, &brokers, label).await;
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

async fn measure(args: &KafkaBenchArgs, brokers: &str, label: String) -> anyhow::Result<Report> {
    let run_id = std::process::id();
    let topic = format!("bench.drover.{run_id}");
    let py_topic = format!("bench.python.{run_id}");
    admin::ensure_topics(
        brokers,
        &[
            TopicSpec {
                name: topic.clone(),
                partitions: args.partitions,
                configs: Vec::new(),
            },
            TopicSpec {
                name: py_topic.clone(),
                partitions: args.partitions,
                configs: Vec::new(),
            },
        ],
    )
    .await?;

    eprintln!(
        "drover (rdkafka): producing {} messages of {} B…",
        args.messages, args.size
    );
    let (b, t, n, s, p) = (
        brokers.to_string(),
        topic.clone(),
        args.messages,
        args.size,
        args.partitions,
    );
    let drover = tokio::task::spawn_blocking(move || rdkafka_run(&b, &t, n, s, p))
        .await
        .context("benchmark thread panicked")??;

    let (baseline, baseline_error) = if args.no_baseline {
        (None, Some("skipped (--no-baseline)".to_string()))
    } else {
        eprintln!(
            "baseline (python confluent-kafka): producing {} messages…",
            args.messages
        );
        match python_run(args, brokers, &py_topic).await {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(format!("{e:#}"))),
        }
    };
    let ratio =
        |f: fn(&ClientResult) -> f64| baseline.as_ref().map(|b| f(&drover) / f(b).max(1e-9));
    Ok(Report {
        broker: label,
        messages: args.messages,
        size_bytes: args.size,
        partitions: args.partitions,
        settings: "acks=all, idempotent, uncompressed, linger.ms=5",
        produce_ratio: ratio(|r| r.produce.msgs_per_sec),
        consume_ratio: ratio(|r| r.consume.msgs_per_sec),
        drover,
        baseline,
        baseline_error,
    })
}

fn rdkafka_run(
    brokers: &str,
    topic: &str,
    n: u64,
    size: usize,
    partitions: i32,
) -> anyhow::Result<ClientResult> {
    let payload = vec![b'x'; size];
    let producer: ThreadedProducer<DeliveryCounter> =
        config::producer(brokers, "drover-bench").create_with_context(DeliveryCounter::default())?;
    let keys: Vec<String> = (0..partitions).map(|p| p.to_string()).collect();
    let start = Instant::now();
    for i in 0..n {
        let key = &keys[(i % partitions as u64) as usize];
        send_waiting(&producer, BaseRecord::to(topic).key(key).payload(&payload))?;
    }
    producer
        .flush(Timeout::After(Duration::from_secs(300)))
        .context("failed to flush the producer")?;
    let produce_secs = start.elapsed().as_secs_f64();
    let (ok, failed) = producer.context().counts();
    if ok != n || failed != 0 {
        bail!("only {ok} of {n} messages were acknowledged ({failed} failed)");
    }
    drop(producer);

    eprintln!("drover (rdkafka): consuming…");
    let group = format!("bench-drover-{}", std::process::id());
    let consumer: BaseConsumer = config::consumer(brokers, "drover-bench", &group).create()?;
    consumer.subscribe(&[topic])?;
    let mut got = 0u64;
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    while got < n && Instant::now() < deadline {
        match consumer.poll(Duration::from_secs(1)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                if m.payload().map(<[u8]>::len) == Some(size) {
                    got += 1;
                }
            }
            Some(Err(e)) => return Err(e).context("failed to consume"),
            None => {}
        }
    }
    if got != n {
        bail!("consumed only {got} of {n} messages within 300s");
    }
    let consume_secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    Ok(ClientResult {
        client: "drover (rdkafka 0.39)".into(),
        produce: Throughput::new(n, produce_secs, size),
        consume: Throughput::new(got, consume_secs, size),
    })
}

#[derive(Debug, serde::Deserialize)]
struct PythonOut {
    error: Option<String>,
    produced: Option<u64>,
    failed: Option<u64>,
    produce_secs: Option<f64>,
    consumed: Option<u64>,
    consume_secs: Option<f64>,
}

async fn python_run(
    args: &KafkaBenchArgs,
    brokers: &str,
    topic: &str,
) -> anyhow::Result<ClientResult> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("confluent_kafka_bench.py");
    std::fs::write(&script, PYTHON_BENCH)?;
    let out = tokio::process::Command::new(&args.python)
        .arg(&script)
        .arg(brokers)
        .arg(topic)
        .arg(args.messages.to_string())
        .arg(args.size.to_string())
        .arg(args.partitions.to_string())
        .output()
        .await
        .with_context(|| format!("cannot run {}", args.python.display()))?;
    if !out.status.success() {
        bail!(
            "the python baseline failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let parsed: PythonOut = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "unreadable baseline output: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    if let Some(e) = parsed.error {
        bail!(e);
    }
    let (produced, consumed) = (parsed.produced.unwrap_or(0), parsed.consumed.unwrap_or(0));
    if produced != args.messages || parsed.failed.unwrap_or(0) != 0 || consumed != args.messages {
        bail!(
            "baseline incomplete: produced {produced}, consumed {consumed} of {}",
            args.messages
        );
    }
    Ok(ClientResult {
        client: "python confluent-kafka".into(),
        produce: Throughput::new(produced, parsed.produce_secs.unwrap_or(0.0), args.size),
        consume: Throughput::new(consumed, parsed.consume_secs.unwrap_or(0.0), args.size),
    })
}

fn print_report(r: &Report) {
    println!(
        "kafka: {} messages x {} B, {}, {} partitions, broker {}",
        r.messages, r.size_bytes, r.settings, r.partitions, r.broker
    );
    println!(
        "{:<26} {:>14} {:>9} {:>14} {:>9}",
        "client", "produce msg/s", "MB/s", "consume msg/s", "MB/s"
    );
    for c in std::iter::once(&r.drover).chain(r.baseline.as_ref()) {
        println!(
            "{:<26} {:>14.0} {:>9.2} {:>14.0} {:>9.2}",
            c.client,
            c.produce.msgs_per_sec,
            c.produce.mb_per_sec,
            c.consume.msgs_per_sec,
            c.consume.mb_per_sec
        );
    }
    match (r.produce_ratio, r.consume_ratio) {
        (Some(p), Some(c)) => println!("ratio drover / baseline: produce {p:.2}x, consume {c:.2}x"),
        _ => println!(
            "baseline: {}",
            r.baseline_error.as_deref().unwrap_or("not measured")
        ),
    }
}
