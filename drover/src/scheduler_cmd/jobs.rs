//! `drover job …`: Chronos-style jobs through the master's `/v1/jobs`, with tables or
//! `--json`.
use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};
use drover_scheduler::client::ClientError;
use serde_json::Value;

use super::client::{cli_error, print_json, read_definition, table, ClientOpts};

/// `drover job …`.
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// List the jobs: schedule, next run, last outcome.
    Ls,
    /// Show a job: its definition, next run, last outcome and latest runs.
    Show {
        /// Job ID.
        id: String,
    },
    /// Create or replace a job from its definition (JSON or YAML).
    #[command(
        after_help = "Example (backup.yaml):\n\n  id: backup\n  image: busybox:latest\n  cmd: tar czf /backup/db.tgz /data\n  schedule: \"0 3 * * *\"        # or R/2026-01-01T03:00:00Z/P1D, or parents: [dump]\n  timezone: Europe/Berlin\n  epsilonSeconds: 60\n  concurrencyPolicy: forbid     # allow | forbid | replace\n  retry: {retries: 2, backoffSeconds: 10}\n  timeoutSeconds: 3600\n  cpus: 0.5\n  mem: 256\n\nInvalid definitions are refused with one line per field."
    )]
    Add {
        /// The definition file (`-` for stdin).
        file: PathBuf,
    },
    /// Remove a job (its running containers are stopped).
    Rm {
        /// Job ID.
        id: String,
    },
    /// Run a job now.
    Run {
        /// Job ID.
        id: String,
    },
    /// Enable a job's scheduled and dependent runs.
    Enable {
        /// Job ID.
        id: String,
    },
    /// Disable a job's scheduled and dependent runs (run now still works).
    Disable {
        /// Job ID.
        id: String,
    },
    /// A job's runs, newest first: state, attempts, exit code, node, and a link to the logs.
    Runs {
        /// Job ID.
        id: String,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

/// `drover job` with its client options.
#[derive(Debug, Args)]
pub struct JobArgs {
    #[command(subcommand)]
    cmd: JobCommand,
    #[command(flatten)]
    client: ClientOpts,
}

/// Errors worded for jobs: a 422 field by field, a 404 with what to do.
fn job_error(e: ClientError, id: &str) -> anyhow::Error {
    match e {
        ClientError::Api { status: 422, body } => {
            let lines: Vec<String> = body["details"]
                .as_array()
                .map(|d| {
                    d.iter()
                        .map(|f| {
                            let errs: Vec<&str> = f["errors"]
                                .as_array()
                                .map(|e| e.iter().filter_map(Value::as_str).collect())
                                .unwrap_or_default();
                            format!(
                                "  {}: {}",
                                f["path"].as_str().unwrap_or("/"),
                                errs.join("; ")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if lines.is_empty() {
                anyhow::anyhow!("the job definition is not valid: {}", body["message"])
            } else {
                anyhow::anyhow!("the job definition is not valid:\n{}", lines.join("\n"))
            }
        }
        ClientError::Api { status: 404, .. } => {
            anyhow::anyhow!("no job {id:?}: `drover job ls` lists them")
        }
        other => cli_error(other),
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn when(v: &Value) -> String {
    let t = s(v);
    if t == "-" {
        return t;
    }
    // 2026-01-01T10:00:00.000Z → 2026-01-01 10:00:00 UTC
    let day_time = t.replace('T', " ");
    format!(
        "{} UTC",
        day_time
            .split('.')
            .next()
            .unwrap_or("-")
            .trim_end_matches('Z')
    )
}

fn trigger_of(j: &Value) -> String {
    if let Some(p) = j["parents"].as_array() {
        let names: Vec<String> = p.iter().map(s).collect();
        return format!("after {}", names.join(", "));
    }
    let mut t = s(&j["schedule"]);
    if let Some(tz) = j["timezone"].as_str() {
        t.push_str(&format!(" ({tz})"));
    }
    t
}

fn outcome(run: &Value) -> String {
    if run.is_null() {
        return "-".into();
    }
    let mut o = s(&run["state"]);
    if let Some(c) = run["exitCode"].as_i64() {
        o.push_str(&format!(" (exit {c})"));
    }
    o
}

fn run_rows(runs: &[Value]) -> Vec<Vec<String>> {
    runs.iter()
        .map(|r| {
            vec![
                s(&r["id"]),
                s(&r["state"]),
                s(&r["trigger"]),
                when(&r["createdAt"]),
                when(&r["endedAt"]),
                r["attempts"]
                    .as_array()
                    .map(|a| a.len())
                    .unwrap_or(0)
                    .to_string(),
                r["exitCode"]
                    .as_i64()
                    .map(|c| c.to_string())
                    .unwrap_or("-".into()),
                s(&r["node"]),
                s(&r["reason"]),
            ]
        })
        .collect()
}

const RUN_HEADERS: [&str; 9] = [
    "RUN", "STATE", "TRIGGER", "CREATED", "ENDED", "ATTEMPTS", "EXIT", "NODE", "REASON",
];

/// Run `drover job …`.
pub async fn run_job(args: JobArgs) -> anyhow::Result<()> {
    let opts = args.client;
    let c = drover_scheduler::client::Client::new(&opts.master)?;
    match args.cmd {
        JobCommand::Ls => {
            let jobs = c.jobs().await.map_err(|e| job_error(e, ""))?;
            if opts.json {
                return print_json(&jobs);
            }
            let rows = jobs
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|j| {
                    vec![
                        s(&j["id"]),
                        trigger_of(j),
                        if j["enabled"] == Value::Bool(true) {
                            "yes"
                        } else {
                            "no"
                        }
                        .into(),
                        when(&j["nextRun"]),
                        outcome(&j["lastRun"]),
                        s(&j["activeRuns"]),
                    ]
                })
                .collect();
            table(
                &["JOB", "SCHEDULE", "ENABLED", "NEXT RUN", "LAST", "RUNNING"],
                rows,
            );
        }
        JobCommand::Show { id } => {
            let Some(j) = c.job(&id).await.map_err(|e| job_error(e, &id))? else {
                bail!("no job {id:?}: `drover job ls` lists them");
            };
            let runs = c.job_runs(&id, 5).await.map_err(|e| job_error(e, &id))?;
            if opts.json {
                return print_json(&serde_json::json!({"job": j, "runs": runs}));
            }
            println!("job {}", s(&j["id"]));
            if let Some(d) = j["description"].as_str() {
                println!("  {d}");
            }
            let what = j["cmd"]
                .as_str()
                .map(str::to_string)
                .or_else(|| {
                    j["args"]
                        .as_array()
                        .map(|a| a.iter().map(s).collect::<Vec<_>>().join(" "))
                })
                .unwrap_or_else(|| "(the image's command)".into());
            println!(
                "  runs:        {what} in {}",
                j["image"].as_str().unwrap_or("the agent's default image")
            );
            println!("  when:        {}", trigger_of(&j));
            println!("  enabled:     {}", j["enabled"]);
            println!("  next run:    {}", when(&j["nextRun"]));
            println!("  last:        {}", outcome(&j["lastRun"]));
            let timeout = match j["timeoutSeconds"].as_f64() {
                Some(t) if t > 0.0 => format!("timeout {t} s"),
                _ => "no timeout".into(),
            };
            println!(
                "  policy:      concurrency {}, {} retries, {timeout}, epsilon {} s",
                s(&j["concurrencyPolicy"]),
                j["retry"]["retries"],
                j["epsilonSeconds"]
            );
            println!("  skipped:     {}", j["skipped"]);
            println!(
                "  logs:        {}{}",
                opts.master.trim_end_matches('/'),
                s(&j["logs"])
            );
            let runs = runs.as_array().cloned().unwrap_or_default();
            if !runs.is_empty() {
                println!();
                table(&RUN_HEADERS, run_rows(&runs));
            }
        }
        JobCommand::Add { file } => {
            let def = read_definition(&file)?;
            let id = def["id"].as_str().unwrap_or_default().to_string();
            if id.is_empty() {
                bail!("{}: the job has no \"id\"", file.display());
            }
            let j = c.put_job(&def).await.map_err(|e| job_error(e, &id))?;
            if opts.json {
                return print_json(&j);
            }
            println!("job {id} saved; next run: {}", when(&j["nextRun"]));
        }
        JobCommand::Rm { id } => {
            let v = c.delete_job(&id).await.map_err(|e| job_error(e, &id))?;
            if opts.json {
                return print_json(&v);
            }
            println!("job {id} removed");
        }
        JobCommand::Run { id } => {
            let r = c.run_job(&id).await.map_err(|e| job_error(e, &id))?;
            if opts.json {
                return print_json(&r);
            }
            println!(
                "job {id}: run {} created (`drover job runs {id}` follows it)",
                s(&r["id"])
            );
        }
        JobCommand::Enable { id } => enable(&c, &id, true, opts.json).await?,
        JobCommand::Disable { id } => enable(&c, &id, false, opts.json).await?,
        JobCommand::Runs { id, limit } => {
            let runs = c
                .job_runs(&id, limit)
                .await
                .map_err(|e| job_error(e, &id))?;
            if opts.json {
                return print_json(&runs);
            }
            let runs = runs.as_array().cloned().unwrap_or_default();
            if runs.is_empty() {
                println!("job {id} has not run yet");
                return Ok(());
            }
            table(&RUN_HEADERS, run_rows(&runs));
            if let Some(l) = runs[0]["logs"].as_str() {
                println!(
                    "\nlogs of the latest run: {}{l}",
                    opts.master.trim_end_matches('/')
                );
            }
        }
    }
    Ok(())
}

async fn enable(
    c: &drover_scheduler::client::Client,
    id: &str,
    on: bool,
    json: bool,
) -> anyhow::Result<()> {
    let j = c.enable_job(id, on).await.map_err(|e| job_error(e, id))?;
    if json {
        return print_json(&j);
    }
    println!(
        "job {id} {}; next run: {}",
        if on { "enabled" } else { "disabled" },
        if on { when(&j["nextRun"]) } else { "-".into() }
    );
    Ok(())
}
