//! What a job is (its definition, as `/v1/jobs` takes it) and what the master keeps about it
//! (next scheduled time, runs and their attempts). Types only.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::TaskSpec;

/// What to do when a run is due while an earlier one still runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConcurrencyPolicy {
    /// Start it anyway.
    Allow,
    /// Skip it (recorded as skipped).
    #[default]
    Forbid,
    /// Stop the running one, then start it.
    Replace,
}

/// Retries of a failed run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Attempts after the first (0 = none).
    #[serde(default)]
    pub retries: u32,
    /// Wait before the first retry, seconds.
    #[serde(default = "default_backoff")]
    pub backoff_seconds: f64,
    /// Each further retry waits this many times longer.
    #[serde(default = "default_factor")]
    pub backoff_factor: f64,
    /// The longest wait, seconds.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_seconds: f64,
}

fn default_backoff() -> f64 {
    1.0
}
fn default_factor() -> f64 {
    2.0
}
fn default_max_backoff() -> f64 {
    300.0
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 0,
            backoff_seconds: default_backoff(),
            backoff_factor: default_factor(),
            max_backoff_seconds: default_max_backoff(),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `n` (2 = the first retry).
    pub fn backoff(&self, attempt: u32) -> f64 {
        let exp = attempt.saturating_sub(2).min(64) as i32;
        (self.backoff_seconds * self.backoff_factor.powi(exp)).min(self.max_backoff_seconds)
    }
}

/// A job as `/v1/jobs` takes it (JSON or YAML through the CLI). Either `schedule` or
/// `parents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobDefinition {
    /// Name: lowercase letters, digits, `-`, `_`, `.` (e.g. `nightly-backup`).
    pub id: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Docker image; without one, `cmd` runs in the agent's default image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Shell command (`sh -c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// Exec-form arguments (instead of `cmd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// CPU shares, as for apps.
    #[serde(default = "default_cpus")]
    pub cpus: f64,
    /// Memory limit, MiB.
    #[serde(default = "default_mem")]
    pub mem: f64,
    /// Marathon constraints (`[["hostname", "UNIQUE"]]`), placed as apps are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Vec<Value>>,
    /// Environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Container labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Cron (`*/5 * * * *`, seconds optional) or ISO 8601 `R[n]/start/period`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// IANA timezone of the schedule (UTC by default).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub timezone: String,
    /// A run later than this after its scheduled time is skipped (and recorded), seconds.
    #[serde(default = "default_epsilon")]
    pub epsilon_seconds: f64,
    /// When a run is due while another runs.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// Retries of a failed run.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// A run still going after this many seconds is stopped and failed (0 = no limit).
    #[serde(default)]
    pub timeout_seconds: f64,
    /// Jobs that must all have succeeded (their latest run) since this job last ran; it
    /// runs when the last of them succeeds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
    /// Scheduled and dependent runs happen only when enabled (run now works either way).
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_cpus() -> f64 {
    0.1
}
fn default_mem() -> f64 {
    64.0
}
fn default_epsilon() -> f64 {
    60.0
}
fn default_true() -> bool {
    true
}

/// What the master keeps about a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// The definition.
    pub def: JobDefinition,
    /// Resolved start of an ISO schedule with no start (fixed when it was defined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_schedule: Option<String>,
    /// The next scheduled time (persisted: a restarted master neither repeats nor forgets).
    pub next_run: Option<DateTime<Utc>>,
    /// When the latest run was created (by any trigger).
    pub last_triggered: Option<DateTime<Utc>>,
    /// When the latest successful run ended.
    pub last_success: Option<DateTime<Utc>>,
    /// When the latest failed run ended.
    pub last_failure: Option<DateTime<Utc>>,
    /// Scheduled times skipped in all.
    pub skipped: u64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its definition last changed.
    pub updated_at: DateTime<Utc>,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunState {
    /// Waiting for a node (no room yet) or for its retry's back-off.
    Pending,
    /// Placed; the agent is starting it.
    Starting,
    /// Its container runs.
    Running,
    /// Exited 0.
    Succeeded,
    /// Failed every attempt (or timed out, or was replaced or stopped).
    Failed,
    /// Not run: missed by more than epsilon, or an earlier run was still going (forbid).
    Skipped,
}

impl RunState {
    /// Over.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Skipped)
    }
}

/// Why a run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// Its schedule.
    Schedule,
    /// `POST /v1/jobs/{id}/run`.
    Manual,
    /// Its parents succeeded.
    Parents,
}

/// One attempt of a run: one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// 1, 2, …
    pub number: u32,
    /// The task the agent runs (`job-ID.UUID`).
    pub task_id: String,
    /// The node.
    pub node_id: String,
    /// Its hostname.
    pub host: String,
    /// Container ID, once the agent reports it.
    pub container_id: Option<String>,
    /// Placed.
    pub placed_at: DateTime<Utc>,
    /// Its container started.
    pub started_at: Option<DateTime<Utc>>,
    /// It ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Exit code, when it exited.
    pub exit_code: Option<i64>,
    /// Why it ended (exit status, launch failure, timeout, lost).
    pub reason: Option<String>,
    /// What the agent runs (kept while the attempt is active).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<TaskSpec>,
}

/// One run of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRun {
    /// Run ID (`JOB.TIMESTAMP-RANDOM`).
    pub id: String,
    /// The job.
    pub job_id: String,
    /// Why it runs.
    pub trigger: Trigger,
    /// The scheduled time it stands for (scheduled runs).
    pub scheduled_for: Option<DateTime<Utc>>,
    /// Where it is.
    pub state: RunState,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// The next attempt may not start before this (retry back-off).
    pub not_before: Option<DateTime<Utc>>,
    /// Ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it ended or waits (no room, skipped, the last attempt's reason).
    pub reason: Option<String>,
    /// Its attempts, oldest first.
    pub attempts: Vec<Attempt>,
    /// Scheduled times a skipped record stands for (first, last, count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<(DateTime<Utc>, DateTime<Utc>, u64)>,
}

impl JobRun {
    /// The attempt in progress (placed, not ended).
    pub fn active_attempt(&self) -> Option<&Attempt> {
        self.attempts.last().filter(|a| a.ended_at.is_none())
    }

    /// The latest attempt.
    pub fn last_attempt(&self) -> Option<&Attempt> {
        self.attempts.last()
    }
}

/// The app ID job containers carry (`drover.app`, `DROVER_APP_ID`): logs of a job's runs
/// are found in the log search with `app:/jobs/ID`.
pub fn job_app_id(job_id: &str) -> String {
    format!("/jobs/{job_id}")
}

/// Container label naming the job of a run's container.
pub const LABEL_JOB: &str = "drover.job";
/// Container label naming the run.
pub const LABEL_RUN: &str = "drover.job.run";
