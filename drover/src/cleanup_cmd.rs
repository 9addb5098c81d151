//! `drover cleanup plan`: which exited task containers on this host's Docker engine a cleanup
//! would remove now, by their apps' `drover.cleanup.*` labels and the given defaults (a dry
//! run: nothing is removed; each agent removes them itself at its `--cleanup-schedule`).
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use drover_scheduler::agent::cleanup::{plan, Policy};

/// `drover cleanup …`.
#[derive(Debug, Subcommand)]
pub enum CleanupCommand {
    /// Show the exited containers a cleanup would remove now (dry run).
    Plan(PlanArgs),
}

/// `drover cleanup plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Only this node's containers.
    #[arg(long, value_name = "ID")]
    node: Option<String>,
    /// The agents' --cleanup-keep (for apps without cleanup labels).
    #[arg(long, value_name = "N")]
    keep: Option<usize>,
    /// The agents' --cleanup-max-age (for apps without cleanup labels).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    max_age: Option<Duration>,
    /// Docker engine: empty for the local one, unix:///PATH or tcp://HOST:PORT.
    #[arg(long, value_name = "ADDR", default_value = "", env = "DROVER_DOCKER")]
    docker: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Run `drover cleanup …`.
pub async fn run(cmd: CleanupCommand) -> anyhow::Result<()> {
    let CleanupCommand::Plan(a) = cmd;
    let docker = crate::docker::connect(&a.docker).await?;
    let labels: Vec<String> = a
        .node
        .iter()
        .map(|n| format!("{}={n}", drover_scheduler::agent::docker::LABEL_NODE))
        .collect();
    let default = Policy {
        keep: a.keep,
        max_age: a.max_age,
    };
    let (doomed, problems) = plan(&docker, &labels, default, chrono::Utc::now())
        .await
        .context("cannot list the exited containers on the Docker engine")?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"remove": doomed, "problems": problems})
            )?
        );
        return Ok(());
    }
    for p in &problems {
        eprintln!("left alone: {p}");
    }
    if doomed.is_empty() {
        println!("a cleanup now would remove nothing");
        return Ok(());
    }
    println!(
        "a cleanup now would remove {} exited container(s):",
        doomed.len()
    );
    for c in &doomed {
        println!(
            "  {}  {}  {}  exited {}",
            &c.id[..12.min(c.id.len())],
            c.app,
            c.task,
            c.exited_at.format("%Y-%m-%d %H:%M:%S")
        );
    }
    Ok(())
}
