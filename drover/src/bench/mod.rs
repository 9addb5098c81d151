//! `drover bench …`: benchmarks that print figures and their baselines from the same run.
use clap::Subcommand;

mod kafka;

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Produce and consume throughput against the embedded broker (or --brokers), and the
    /// same measured with Python's confluent-kafka as the baseline.
    Kafka(kafka::KafkaBenchArgs),
}

/// Run one benchmark.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Kafka(args) => kafka::run(args).await,
    }
}
