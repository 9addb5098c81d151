//! `drover bench …`: benchmarks that print figures and their baselines from the same run.
use std::time::Duration;

use clap::Subcommand;
use drover_kafka::{
    admin,
    embedded::{BrokerConfig, BrokerMetrics, EmbeddedBroker},
};

mod alertman;
mod autoscaler;
mod broker;
mod collector;
mod gateway;
mod kafka;
mod metrics;
mod pipeline;
mod scheduler;
mod search;

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Produce and consume throughput against the embedded broker (or --brokers), and the
    /// same measured with Python's confluent-kafka as the baseline.
    Kafka(kafka::KafkaBenchArgs),
    /// The embedded broker under Drover's own load, per producer codec: a backlog of log
    /// records produced with the collector's settings, then read from offset 0 with the
    /// logpipe's (time to the first record, records/s per 100,000, longest wait, drain time),
    /// and the broker's CPU, RSS and bytes on disk per million records.
    Broker(broker::BrokerBenchArgs),
    /// Lines/s and MB/s the collector ships from Docker to Kafka (1 and N containers), its
    /// CPU and memory, the `docker logs -f | python producer` baseline for the same container
    /// and broker, and the CPU cost of stats sampling per 100 containers.
    Collector(collector::CollectorBenchArgs),
    /// Indexing throughput of the logpipe from Kafka against raw Tantivy on the same generated
    /// corpus (nginx, JSON, plain and Java stack-trace lines), and search and histogram
    /// latency percentiles over a 10-million-line index.
    Search(search::SearchBenchArgs),
    /// Placement of 10,000 tasks with constraints onto 1,000 simulated nodes (pure and
    /// through the master's tick), and an app scaled from 0 to 100 real containers until
    /// all run, against the same containers started straight through Docker.
    Scheduler(scheduler::SchedulerBenchArgs),
    /// Metrics store: ingest samples/s (in process and from Kafka), a 24-hour query over
    /// 1,000 series at 1-minute steps, a 5-minute window aggregation over 10,000 series.
    Metrics(metrics::MetricsBenchArgs),
    /// The whole path as a user sees it: containers printing numbered lines at set total
    /// rates through the collector, the embedded broker and the logpipe, each rate's printed →
    /// searchable latency p50/p99/max (the newest searchable line's age, sampled every
    /// 250 ms), lines lost, and the CPU of Drover and of the broker.
    Pipeline(pipeline::PipelineBenchArgs),
    /// wrk straight to a backend, through Drover's gateway, through HAProxy and through
    /// nginx (same two backends, configured by the bench): requests/s, p50/p99 and the
    /// latency each adds, the proxy's CPU and RSS, and Drover's throughput over HAProxy's.
    Gateway(gateway::GatewayBenchArgs),
    /// Alertman: one evaluation of 1,000 rules over 10,000 series and a 5-minute window, in
    /// process against a real metrics store (target < 100 ms).
    Alertman(alertman::AlertmanBenchArgs),
    /// The autoscaler: Drover's default policy against its HPA-equivalent (and a
    /// KPA-equivalent) on the generated step, spike, ramp and diurnal traces over several
    /// seeds: seconds over the latency SLO, instance-hours, direction changes, and the ratios
    /// to the HPA-equivalent; the cost of one decision.
    Autoscaler(autoscaler::AutoscalerBenchArgs),
}

/// The broker a benchmark measures against: `--brokers` when given (checked), else an
/// embedded broker in `dir` on a free port. Returns the bootstrap list, the broker to stop,
/// and a label for the report.
async fn bench_broker(
    brokers: Option<&str>,
    dir: &std::path::Path,
) -> anyhow::Result<(String, Option<EmbeddedBroker>, String)> {
    if let Some(b) = brokers {
        admin::check_reachable(b, Duration::from_secs(5)).await?;
        return Ok((b.to_string(), None, format!("{b} (external)")));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let cfg = BrokerConfig::new(([127, 0, 0, 1], port).into(), dir.join("broker"));
    eprintln!("starting an embedded broker on 127.0.0.1:{port}…");
    let b = EmbeddedBroker::start(cfg, BrokerMetrics::default()).await?;
    Ok((
        b.bootstrap(),
        Some(b),
        format!("127.0.0.1:{port} (embedded tansu, sqlite)"),
    ))
}

/// Run one benchmark.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Kafka(args) => kafka::run(args).await,
        BenchCommand::Broker(args) => broker::run(args).await,
        BenchCommand::Collector(args) => collector::run(args).await,
        BenchCommand::Scheduler(args) => scheduler::run(args).await,
        BenchCommand::Search(args) => search::run(args).await,
        BenchCommand::Metrics(args) => metrics::run(args).await,
        BenchCommand::Pipeline(args) => pipeline::run(args).await,
        BenchCommand::Gateway(args) => gateway::run(args).await,
        BenchCommand::Alertman(args) => alertman::run(args).await,
        BenchCommand::Autoscaler(args) => autoscaler::run(args).await,
    }
}

/// Counts a producer's delivery reports (the benches check every record was acknowledged).
#[derive(Debug, Default)]
struct DeliveryCounter {
    ok: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
}

impl rdkafka::ClientContext for DeliveryCounter {}

impl rdkafka::producer::ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        let n = match result {
            Ok(_) => &self.ok,
            Err(_) => &self.failed,
        };
        n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl DeliveryCounter {
    /// (acknowledged, failed) so far.
    fn counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.ok.load(Relaxed), self.failed.load(Relaxed))
    }
}

/// Queue `record`, waiting while the producer's queue is full.
fn send_waiting<C, K, P>(
    producer: &rdkafka::producer::ThreadedProducer<C>,
    mut record: rdkafka::producer::BaseRecord<'_, K, P, C::DeliveryOpaque>,
) -> anyhow::Result<()>
where
    C: rdkafka::producer::ProducerContext + 'static,
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(anyhow::Error::new(e).context("failed to produce")),
        }
    }
}
