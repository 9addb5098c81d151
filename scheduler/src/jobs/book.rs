//! The master's decisions about jobs, pure, on [`State`] with an explicit `now`: the API's
//! changes (create, replace, delete, run now, enable/disable), the tick (scheduled runs
//! with epsilon, dependent runs, concurrency, placement, retries, timeouts, lost nodes) and
//! the agents' reports of job tasks (in [`State::heartbeat_with_jobs`]).
use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::{
    model::{
        job_app_id, Attempt, ConcurrencyPolicy, Job, JobDefinition, JobRun, RunState, Trigger,
        LABEL_JOB, LABEL_RUN,
    },
    schedule::{self, parse_timezone, Schedule},
    validate::check_job,
    JobError,
};
use crate::{
    events::{EventKind, JobRunInfo, MarathonEvent},
    master::State,
    model::{task_id, AgentReport, HeartbeatReply, Resources, TaskSpec, TaskState},
    placement::{self, Constraint, Demand},
};

/// Finished runs kept per job (older ones are forgotten).
pub const HISTORY: usize = 50;

/// Jobs and their runs, as the master keeps them (persisted in the store's `jobs` and
/// `job_runs` tables).
#[derive(Debug, Clone, Default)]
pub struct JobBook {
    /// Jobs by ID.
    pub jobs: BTreeMap<String, Job>,
    /// Runs by run ID (`JOB:TIME-RANDOM`, so a job's runs are a key range, oldest first).
    pub runs: BTreeMap<String, JobRun>,
    /// Runs not over yet (an index, rebuilt on load).
    open: BTreeSet<String>,
    /// Parsed schedules by job ID (a cache).
    schedules: HashMap<String, Schedule>,
}

impl JobBook {
    /// From what the store holds.
    pub fn load(jobs: BTreeMap<String, Job>, runs: BTreeMap<String, JobRun>) -> Self {
        let open = runs
            .iter()
            .filter(|(_, r)| !r.state.is_final())
            .map(|(k, _)| k.clone())
            .collect();
        Self {
            jobs,
            runs,
            open,
            schedules: HashMap::new(),
        }
    }

    /// A job's runs, oldest first.
    pub fn runs_of<'a>(&'a self, job_id: &str) -> impl DoubleEndedIterator<Item = &'a JobRun> + 'a {
        self.runs
            .range(format!("{job_id}:")..format!("{job_id};"))
            .map(|(_, r)| r)
    }

    /// Runs not over yet.
    pub fn open_runs(&self) -> impl Iterator<Item = &JobRun> {
        self.open.iter().filter_map(|id| self.runs.get(id))
    }

    /// What the active attempts take, per node (cpus, mem).
    pub fn usage(&self) -> Vec<(String, f64, f64)> {
        self.open_runs()
            .filter_map(|r| r.active_attempt())
            .filter_map(|a| {
                let s = a.spec.as_ref()?;
                Some((a.node_id.clone(), s.cpus, s.mem))
            })
            .collect()
    }

    fn schedule(&mut self, job: &Job) -> Option<&Schedule> {
        let id = &job.def.id;
        if !self.schedules.contains_key(id) {
            let expr = job
                .resolved_schedule
                .as_ref()
                .or(job.def.schedule.as_ref())?;
            let tz = parse_timezone(&job.def.timezone).ok()?;
            let s = Schedule::parse(expr, tz, job.created_at).ok()?;
            self.schedules.insert(id.clone(), s);
        }
        self.schedules.get(id)
    }
}

fn secs(s: f64) -> chrono::Duration {
    chrono::Duration::milliseconds((s.max(0.0) * 1000.0) as i64)
}

/// The exit status in an agent's message (`the container exited with status 3`).
pub fn exit_code_of(message: &str) -> Option<i64> {
    let rest = &message[message.find("exited with status ")? + "exited with status ".len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn run_id(job_id: &str, now: DateTime<Utc>) -> String {
    format!(
        "{job_id}:{}-{:04x}",
        now.format("%Y%m%dT%H%M%S%.3fZ"),
        fastrand::u16(..)
    )
}

fn info(run: &JobRun, attempt: Option<&Attempt>, reason: &str) -> JobRunInfo {
    JobRunInfo {
        job_id: run.job_id.clone(),
        run_id: run.id.clone(),
        trigger: match run.trigger {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Parents => "parents",
        }
        .into(),
        scheduled_for: run.scheduled_for,
        attempt: attempt.map(|a| a.number).unwrap_or(0),
        task_id: attempt.map(|a| a.task_id.clone()).unwrap_or_default(),
        node_id: attempt.map(|a| a.node_id.clone()).unwrap_or_default(),
        container_id: attempt.and_then(|a| a.container_id.clone()),
        exit_code: attempt.and_then(|a| a.exit_code),
        reason: reason.to_string(),
    }
}

impl State {
    fn job_event(&mut self, now: DateTime<Utc>, kind: EventKind) {
        self.events.push(MarathonEvent::new(now, kind));
    }

    // === the API's changes ===

    /// Create a job (`POST /v1/jobs`).
    pub fn job_create(&mut self, def: JobDefinition, now: DateTime<Utc>) -> Result<Job, JobError> {
        if self.jobs.jobs.contains_key(&def.id) {
            return Err(JobError::Exists(def.id));
        }
        self.job_put(def, now).map(|(j, _)| j)
    }

    /// Create or replace a job (`PUT /v1/jobs/{id}`); true when created. Runs in progress
    /// go on with the definition they started with.
    pub fn job_put(
        &mut self,
        def: JobDefinition,
        now: DateTime<Utc>,
    ) -> Result<(Job, bool), JobError> {
        let resolved = check_job(&def, &self.jobs.jobs, now).map_err(JobError::Invalid)?;
        let id = def.id.clone();
        let old = self.jobs.jobs.get(&id).cloned();
        let created = old.is_none();
        let same_schedule = old
            .as_ref()
            .is_some_and(|o| o.def.schedule == def.schedule && o.def.timezone == def.timezone);
        let mut job = old.unwrap_or(Job {
            def: def.clone(),
            resolved_schedule: None,
            next_run: None,
            last_triggered: None,
            last_success: None,
            last_failure: None,
            skipped: 0,
            created_at: now,
            updated_at: now,
        });
        job.def = def;
        job.updated_at = now;
        if !same_schedule {
            job.resolved_schedule = resolved;
            self.jobs.schedules.remove(&id);
            job.next_run = None;
            if job.def.schedule.is_some() {
                let job_for_sched = job.clone();
                job.next_run = self
                    .jobs
                    .schedule(&job_for_sched)
                    .and_then(|s| s.first_from(now));
            }
        }
        tracing::info!(job = %id, created, next_run = ?job.next_run, "job defined");
        self.jobs.jobs.insert(id, job.clone());
        self.dirty = true;
        Ok((job, created))
    }

    /// Remove a job, stop its runs and forget them; refused while other jobs list it as a
    /// parent.
    pub fn job_delete(&mut self, id: &str, _now: DateTime<Utc>) -> Result<(), JobError> {
        if !self.jobs.jobs.contains_key(id) {
            return Err(JobError::NotFound(id.to_string()));
        }
        let children: Vec<String> = self
            .jobs
            .jobs
            .values()
            .filter(|j| j.def.parents.iter().any(|p| p == id))
            .map(|j| j.def.id.clone())
            .collect();
        if !children.is_empty() {
            return Err(JobError::Conflict(format!(
                "job '{id}' is a parent of {}: remove it from their parents first",
                children.join(", ")
            )));
        }
        self.jobs.jobs.remove(id);
        self.jobs.schedules.remove(id);
        let runs: Vec<String> = self.jobs.runs_of(id).map(|r| r.id.clone()).collect();
        for r in runs {
            self.jobs.runs.remove(&r);
            self.jobs.open.remove(&r);
        }
        tracing::info!(job = %id, "job removed; its running containers are stopped");
        self.dirty = true;
        Ok(())
    }

    /// Run a job now (`POST /v1/jobs/{id}/run`), whether enabled or not, within its
    /// concurrency policy (under `forbid` with a run going: refused).
    pub fn job_run_now(&mut self, id: &str, now: DateTime<Utc>) -> Result<JobRun, JobError> {
        if !self.jobs.jobs.contains_key(id) {
            return Err(JobError::NotFound(id.to_string()));
        }
        match self.job_trigger(id, Trigger::Manual, None, now) {
            Ok(run) => Ok(run),
            Err(reason) => Err(JobError::Conflict(reason)),
        }
    }

    /// Enable or disable a job's scheduled and dependent runs.
    pub fn job_enable(
        &mut self,
        id: &str,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<Job, JobError> {
        let job = self
            .jobs
            .jobs
            .get(id)
            .cloned()
            .ok_or_else(|| JobError::NotFound(id.to_string()))?;
        if job.def.enabled == enabled {
            return Ok(job);
        }
        let mut job = job;
        job.def.enabled = enabled;
        job.updated_at = now;
        if enabled {
            // Scheduled times while disabled are not made up for.
            job.next_run = self.jobs.schedule(&job).and_then(|s| s.first_from(now));
        }
        tracing::info!(job = %id, enabled, "job enabled or disabled");
        self.jobs.jobs.insert(id.to_string(), job.clone());
        self.dirty = true;
        Ok(job)
    }

    // === runs ===

    /// A new run of `id`, by its concurrency policy: Err(why) when it is not started (the
    /// skip is recorded for scheduled and dependent runs).
    fn job_trigger(
        &mut self,
        id: &str,
        trigger: Trigger,
        scheduled_for: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<JobRun, String> {
        let Some(job) = self.jobs.jobs.get(id).cloned() else {
            return Err(format!("job '{id}' does not exist"));
        };
        let active: Vec<String> = self
            .jobs
            .runs_of(id)
            .filter(|r| !r.state.is_final())
            .map(|r| r.id.clone())
            .collect();
        if !active.is_empty() {
            match job.def.concurrency_policy {
                ConcurrencyPolicy::Allow => {}
                ConcurrencyPolicy::Forbid => {
                    let reason = format!(
                        "run {} is still going (concurrencyPolicy forbid)",
                        active[0]
                    );
                    if trigger != Trigger::Manual {
                        self.job_record_skip(
                            id,
                            trigger,
                            scheduled_for.map(|s| (s, s, 1)),
                            &reason,
                            now,
                        );
                    }
                    return Err(reason);
                }
                ConcurrencyPolicy::Replace => {
                    for r in active {
                        self.job_end_run(
                            &r,
                            false,
                            "replaced by a newer run (concurrencyPolicy replace)",
                            now,
                        );
                    }
                }
            }
        }
        let run = JobRun {
            id: run_id(id, now),
            job_id: id.to_string(),
            trigger,
            scheduled_for,
            state: RunState::Pending,
            created_at: now,
            not_before: None,
            ended_at: None,
            reason: None,
            attempts: Vec::new(),
            skipped: None,
        };
        tracing::info!(job = %id, run = %run.id, trigger = ?trigger, "job run created");
        if let Some(j) = self.jobs.jobs.get_mut(id) {
            j.last_triggered = Some(now);
        }
        self.jobs.open.insert(run.id.clone());
        self.jobs.runs.insert(run.id.clone(), run.clone());
        self.dirty = true;
        Ok(run)
    }

    fn job_record_skip(
        &mut self,
        id: &str,
        trigger: Trigger,
        skipped: Option<(DateTime<Utc>, DateTime<Utc>, u64)>,
        reason: &str,
        now: DateTime<Utc>,
    ) {
        let run = JobRun {
            id: run_id(id, now),
            job_id: id.to_string(),
            trigger,
            scheduled_for: skipped.map(|s| s.0),
            state: RunState::Skipped,
            created_at: now,
            not_before: None,
            ended_at: Some(now),
            reason: Some(reason.to_string()),
            attempts: Vec::new(),
            skipped,
        };
        tracing::warn!(job = %id, reason, "job run skipped");
        if let Some(j) = self.jobs.jobs.get_mut(id) {
            j.skipped += skipped.map(|s| s.2).unwrap_or(1);
        }
        self.job_event(now, EventKind::JobRunSkipped(info(&run, None, reason)));
        self.jobs.runs.insert(run.id.clone(), run);
        self.job_prune(id);
        self.dirty = true;
    }

    /// End a run: succeeded, or failed for good (its active attempt, if any, is stopped: the
    /// agent stops a container the master no longer lists).
    fn job_end_run(&mut self, run_id: &str, success: bool, reason: &str, now: DateTime<Utc>) {
        let Some(run) = self.jobs.runs.get_mut(run_id) else {
            return;
        };
        if run.state.is_final() {
            return;
        }
        if let Some(a) = run.attempts.last_mut().filter(|a| a.ended_at.is_none()) {
            a.ended_at = Some(now);
            a.reason.get_or_insert_with(|| reason.to_string());
            a.spec = None;
        }
        run.state = if success {
            RunState::Succeeded
        } else {
            RunState::Failed
        };
        run.ended_at = Some(now);
        run.reason = Some(reason.to_string());
        let run = run.clone();
        self.jobs.open.remove(run_id);
        if let Some(j) = self.jobs.jobs.get_mut(&run.job_id) {
            if success {
                j.last_success = Some(now);
            } else {
                j.last_failure = Some(now);
            }
        }
        let i = info(&run, run.last_attempt(), reason);
        if success {
            tracing::info!(job = %run.job_id, run = %run.id, "job run succeeded");
            self.job_event(now, EventKind::JobRunFinished(i));
        } else {
            tracing::warn!(job = %run.job_id, run = %run.id, reason, "job run failed");
            self.job_event(now, EventKind::JobRunFailed(i));
        }
        self.job_prune(&run.job_id);
        self.dirty = true;
    }

    /// The active attempt of a run ended without success: retry after the back-off while
    /// attempts are left, else the run failed.
    fn job_attempt_failed(
        &mut self,
        run_id: &str,
        reason: &str,
        exit_code: Option<i64>,
        now: DateTime<Utc>,
    ) {
        let Some(run) = self.jobs.runs.get_mut(run_id) else {
            return;
        };
        let Some(job) = self.jobs.jobs.get(&run.job_id) else {
            return;
        };
        let retry = job.def.retry.clone();
        if let Some(a) = run.attempts.last_mut().filter(|a| a.ended_at.is_none()) {
            a.ended_at = Some(now);
            a.exit_code = exit_code.or(a.exit_code);
            a.reason = Some(reason.to_string());
            a.spec = None;
        }
        let done = run.attempts.len() as u32;
        if done <= retry.retries {
            let wait = retry.backoff(done + 1);
            run.state = RunState::Pending;
            run.not_before = Some(now + secs(wait));
            run.reason = Some(format!(
                "attempt {done} failed ({reason}); attempt {} in {wait:.1} s",
                done + 1
            ));
            let run = run.clone();
            tracing::warn!(job = %run.job_id, run = %run.id, attempt = done, reason, wait_secs = wait, "job run attempt failed; retrying");
            self.job_event(
                now,
                EventKind::JobRunRetrying(info(&run, run.last_attempt(), reason)),
            );
            self.dirty = true;
        } else {
            let why = if done > 1 {
                format!("{reason} (attempt {done} of {done})")
            } else {
                reason.to_string()
            };
            self.job_end_run(run_id, false, &why, now);
        }
    }

    fn job_prune(&mut self, job_id: &str) {
        let done: Vec<String> = self
            .jobs
            .runs_of(job_id)
            .filter(|r| r.state.is_final())
            .map(|r| r.id.clone())
            .collect();
        if done.len() > HISTORY {
            for r in &done[..done.len() - HISTORY] {
                self.jobs.runs.remove(r);
            }
        }
    }

    // === the tick ===

    /// Jobs' part of a reconciliation tick: timeouts and lost nodes, scheduled runs (within
    /// epsilon, never twice), dependent runs, then placement of waiting runs.
    pub fn jobs_tick(&mut self, now: DateTime<Utc>) {
        self.jobs_check_attempts(now);
        self.jobs_schedule(now);
        self.jobs_dependents(now);
        self.jobs_place(now);
    }

    fn jobs_check_attempts(&mut self, now: DateTime<Utc>) {
        let replace_after = chrono::Duration::from_std(self.cfg.unreachable_replace_after)
            .unwrap_or(chrono::Duration::MAX);
        let mut failed = Vec::new();
        for r in self.jobs.open_runs() {
            let Some(a) = r.active_attempt() else {
                continue;
            };
            let timeout = self
                .jobs
                .jobs
                .get(&r.job_id)
                .map(|j| j.def.timeout_seconds)
                .unwrap_or(0.0);
            let since = a.started_at.unwrap_or(a.placed_at);
            if timeout > 0.0 && now - since > secs(timeout) {
                failed.push((r.id.clone(), format!("timed out after {timeout} s")));
                continue;
            }
            match self.nodes.get(&a.node_id) {
                None => failed.push((r.id.clone(), "its node is gone".into())),
                Some(n) if n.removed => failed.push((r.id.clone(), "its node was removed".into())),
                Some(n) if n.unreachable && now - n.last_seen > replace_after => {
                    failed.push((r.id.clone(), format!("its node {} is unreachable", n.id)))
                }
                _ => {}
            }
        }
        for (r, why) in failed {
            self.job_attempt_failed(&r, &why, None, now);
        }
    }

    fn jobs_schedule(&mut self, now: DateTime<Utc>) {
        let due: Vec<String> = self
            .jobs
            .jobs
            .values()
            .filter(|j| j.def.enabled && j.next_run.is_some_and(|n| n <= now))
            .map(|j| j.def.id.clone())
            .collect();
        for id in due {
            let Some(job) = self.jobs.jobs.get(&id).cloned() else {
                continue;
            };
            let Some(next) = job.next_run else { continue };
            let eps = std::time::Duration::from_secs_f64(job.def.epsilon_seconds.max(0.0));
            let Some(sched) = self.jobs.schedule(&job) else {
                continue;
            };
            let d = schedule::due(sched, next, now, eps);
            if let Some(j) = self.jobs.jobs.get_mut(&id) {
                j.next_run = d.next;
            }
            self.dirty = true;
            if let Some((first, last, n)) = d.skipped {
                let why = if d.run.is_some() {
                    format!("{n} scheduled time(s) from {first} to {last} passed at once; one run stands for them")
                } else {
                    format!(
                        "{n} scheduled time(s) from {first} to {last} missed by more than epsilon ({} s)",
                        job.def.epsilon_seconds
                    )
                };
                self.job_record_skip(&id, Trigger::Schedule, Some((first, last, n)), &why, now);
            }
            if let Some(at) = d.run {
                let _ = self.job_trigger(&id, Trigger::Schedule, Some(at), now);
            }
        }
    }

    fn jobs_dependents(&mut self, now: DateTime<Utc>) {
        let ready: Vec<String> = self
            .jobs
            .jobs
            .values()
            .filter(|j| j.def.enabled && !j.def.parents.is_empty())
            .filter(|j| {
                let since = j.last_triggered;
                j.def.parents.iter().all(|p| {
                    self.jobs.jobs.get(p).is_some_and(|pj| {
                        // The parent's latest run succeeded, after this job last ran.
                        pj.last_success.is_some_and(|s| {
                            since.is_none_or(|t| s > t) && pj.last_failure.is_none_or(|f| f <= s)
                        })
                    })
                })
            })
            .map(|j| j.def.id.clone())
            .collect();
        for id in ready {
            if self.job_trigger(&id, Trigger::Parents, None, now).is_err() {
                // Skipped under forbid: do not try again until the parents succeed anew.
                if let Some(j) = self.jobs.jobs.get_mut(&id) {
                    j.last_triggered = Some(now);
                }
            }
        }
    }

    fn jobs_place(&mut self, now: DateTime<Utc>) {
        let waiting: Vec<String> = self
            .jobs
            .open_runs()
            .filter(|r| r.state == RunState::Pending && r.not_before.is_none_or(|t| t <= now))
            .map(|r| r.id.clone())
            .collect();
        if waiting.is_empty() {
            return;
        }
        // What apps and active job attempts take is already off (State::candidates).
        let mut candidates = self.candidates();
        for rid in waiting {
            let Some(run) = self.jobs.runs.get(&rid) else {
                continue;
            };
            let Some(job) = self.jobs.jobs.get(&run.job_id).cloned() else {
                // Its job was removed.
                self.job_end_run(&rid, false, "its job was removed", now);
                continue;
            };
            let def = &job.def;
            let demand = Demand {
                resources: Resources {
                    cpus: def.cpus,
                    mem: def.mem,
                    disk: 0.0,
                },
                ports: Vec::new(),
                constraints: def
                    .constraints
                    .iter()
                    .filter_map(|c| Constraint::parse(c).ok())
                    .collect(),
            };
            let existing: Vec<usize> = self
                .jobs
                .runs_of(&def.id)
                .filter_map(|r| r.active_attempt())
                .filter_map(|a| candidates.iter().position(|c| c.id == a.node_id))
                .collect();
            let placed = placement::place(&mut candidates, &existing, &demand, 1);
            let Some((i, _)) = placed.placed.first() else {
                let reason = placed
                    .reason
                    .unwrap_or_else(|| "no node can take it".into());
                if let Some(r) = self.jobs.runs.get_mut(&rid) {
                    if r.reason.as_deref() != Some(reason.as_str()) {
                        r.reason = Some(format!("waiting: {reason}"));
                    }
                }
                continue;
            };
            let node_id = candidates[*i].id.clone();
            let host = self
                .nodes
                .get(&node_id)
                .map(|n| n.hostname.clone())
                .unwrap_or_default();
            let Some(run) = self.jobs.runs.get_mut(&rid) else {
                continue;
            };
            let app_id = job_app_id(&def.id);
            let mut labels = def.labels.clone();
            labels.insert(LABEL_JOB.into(), def.id.clone());
            labels.insert(LABEL_RUN.into(), rid.clone());
            let spec = TaskSpec {
                task_id: task_id(&app_id),
                app_id: app_id.clone(),
                group: "/jobs".into(),
                config_version: job.updated_at,
                image: def.image.clone().filter(|i| !i.trim().is_empty()),
                cmd: def.cmd.clone().filter(|c| !c.trim().is_empty()),
                args: def.args.clone().filter(|a| !a.is_empty()),
                user: None,
                env: def.env.clone(),
                labels,
                cpus: def.cpus,
                mem: def.mem,
                host_ports: Vec::new(),
                container_ports: Vec::new(),
                bridge: false,
                health_checks: Vec::new(),
                kill_grace_secs: 3.0,
                force_pull: false,
                privileged: false,
            };
            let attempt = Attempt {
                number: run.attempts.len() as u32 + 1,
                task_id: spec.task_id.clone(),
                node_id: node_id.clone(),
                host,
                container_id: None,
                placed_at: now,
                started_at: None,
                ended_at: None,
                exit_code: None,
                reason: None,
                spec: Some(spec),
            };
            run.attempts.push(attempt);
            run.state = RunState::Starting;
            run.reason = None;
            run.not_before = None;
            let run = run.clone();
            tracing::info!(job = %run.job_id, run = %run.id, node = %node_id, attempt = run.attempts.len(), "job run placed");
            self.job_event(
                now,
                EventKind::JobRunStarted(info(&run, run.last_attempt(), "")),
            );
            self.dirty = true;
        }
    }

    // === agents ===

    /// A heartbeat with the job tasks in it: the apps' part ([`State::heartbeat`]), then
    /// the reports of job attempts on the node (started, exited with a code, lost), and the
    /// reply lists the node's active job attempts after its app tasks.
    pub fn heartbeat_with_jobs(
        &mut self,
        report: AgentReport,
        register: bool,
        now: DateTime<Utc>,
    ) -> HeartbeatReply {
        let node_id = report.node_id.clone();
        let reports: HashMap<String, crate::model::TaskReport> = report
            .tasks
            .iter()
            .filter(|t| t.app_id.is_empty() || t.app_id.starts_with("/jobs/"))
            .map(|t| (t.task_id.clone(), t.clone()))
            .collect();
        let mut reply = self.heartbeat(report, register, now);
        if reply.removed {
            return reply;
        }
        reply
            .tasks
            .extend(self.jobs_heartbeat(&node_id, &reports, now));
        reply
    }

    fn jobs_heartbeat(
        &mut self,
        node_id: &str,
        reports: &HashMap<String, crate::model::TaskReport>,
        now: DateTime<Utc>,
    ) -> Vec<TaskSpec> {
        let launch_timeout =
            chrono::Duration::from_std(self.cfg.launch_timeout).unwrap_or(chrono::Duration::MAX);
        let mine: Vec<(String, Attempt)> = self
            .jobs
            .open_runs()
            .filter_map(|r| Some((r.id.clone(), r.active_attempt()?.clone())))
            .filter(|(_, a)| a.node_id == node_id)
            .collect();
        for (rid, a) in mine {
            match reports.get(&a.task_id) {
                Some(rep) if rep.state.is_terminal() => {
                    let msg = rep.message.clone().unwrap_or_default();
                    let code = exit_code_of(&msg);
                    if let Some(run) = self.jobs.runs.get_mut(&rid) {
                        if let Some(at) = run.attempts.last_mut() {
                            at.container_id = rep.container_id.clone().or(at.container_id.take());
                            at.exit_code = code;
                            at.started_at = at.started_at.or(rep.started_at);
                        }
                    }
                    if rep.state == TaskState::Finished {
                        if let Some(run) = self.jobs.runs.get_mut(&rid) {
                            if let Some(at) = run.attempts.last_mut() {
                                at.reason = Some(msg.clone());
                            }
                        }
                        self.job_end_run(&rid, true, &msg, now);
                    } else {
                        let why = if msg.is_empty() {
                            format!("the container ended {}", rep.state.name())
                        } else {
                            msg
                        };
                        self.job_attempt_failed(&rid, &why, code, now);
                    }
                }
                Some(rep) => {
                    let Some(run) = self.jobs.runs.get_mut(&rid) else {
                        continue;
                    };
                    let state = if rep.state == TaskState::Running {
                        RunState::Running
                    } else {
                        RunState::Starting
                    };
                    let at = run.attempts.last_mut().expect("an active attempt");
                    let before = (run.state, at.container_id.clone(), at.started_at);
                    run.state = state;
                    at.container_id = rep.container_id.clone().or(at.container_id.take());
                    at.started_at = at.started_at.or(rep.started_at);
                    if before != (run.state, at.container_id.clone(), at.started_at) {
                        self.dirty = true;
                    }
                }
                None => {
                    let seen = a.container_id.is_some();
                    if !seen && now - a.placed_at < launch_timeout {
                        continue;
                    }
                    tracing::warn!(run = %rid, task = %a.task_id, node = %node_id, "job run's container is gone");
                    self.job_attempt_failed(
                        &rid,
                        "the agent no longer has the run's container",
                        None,
                        now,
                    );
                }
            }
        }
        self.jobs
            .open_runs()
            .filter_map(|r| r.active_attempt())
            .filter(|a| a.node_id == node_id)
            .filter_map(|a| a.spec.clone())
            .collect()
    }
}
