//! `drover bench …`: benchmarks that print figures and their baselines from the same run.
use clap::Subcommand;

mod collector;
mod kafka;

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Produce and consume throughput against the embedded broker (or --brokers), and the
    /// same measured with Python's confluent-kafka as the baseline.
    Kafka(kafka::KafkaBenchArgs),
    /// Lines/s and MB/s the collector ships from Docker to Kafka (1 and N containers), its
    /// CPU and memory, the `docker logs -f | python producer` baseline for the same container
    /// and broker, and the CPU cost of stats sampling per 100 containers.
    Collector(collector::CollectorBenchArgs),
}

/// Run one benchmark.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Kafka(args) => kafka::run(args).await,
        BenchCommand::Collector(args) => collector::run(args).await,
    }
}
