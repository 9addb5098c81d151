//! Chronos-style jobs: containers run to completion on agents, on a schedule (cron or ISO
//! 8601 `R[n]/start/period`, in a timezone, with `epsilon`), after their parents succeeded,
//! or on demand; with a concurrency policy, retries with back-off and a timeout.
//!
//! A run's attempt is a task like an app's: placed with [`crate::placement`] against what
//! apps and other runs take, sent to its agent in the heartbeat reply as a
//! [`crate::model::TaskSpec`] (labelled `drover.job`), and reported back FINISHED or FAILED
//! with the exit code. No second launcher: the agent runs it as it runs any task, and stops
//! its container once the master no longer lists it.
//!
//! Rooms: [`schedule`] (pure time arithmetic), [`model`] (types), [`validate`] (definitions
//! in, field errors out), [`book`] (the master's decisions about jobs, pure, with an
//! explicit `now`, on [`crate::master::State`]).
pub mod book;
pub mod model;
pub mod schedule;
pub mod validate;

#[cfg(test)]
mod tests;

pub use book::JobBook;
pub use model::{
    job_app_id, Attempt, ConcurrencyPolicy, Job, JobDefinition, JobRun, RetryPolicy, RunState,
    Trigger, LABEL_JOB, LABEL_RUN,
};

use crate::validate::ValidationErrors;

/// What a job call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No such job.
    #[error("job '{0}' does not exist")]
    NotFound(String),
    /// POST of a job that exists.
    #[error("job '{0}' already exists (PUT /v1/jobs/{0} replaces it)")]
    Exists(String),
    /// The definition is not valid (field by field).
    #[error("invalid job definition: {}", .0.summary())]
    Invalid(ValidationErrors),
    /// The change would break another job (a parent still in use).
    #[error("{0}")]
    Conflict(String),
}
