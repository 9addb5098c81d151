//! The live loop: every tick, for each policy that is due, read the target through the
//! [`Scaler`] and its metrics through the [`MetricsSource`], [`decide`], and carry the
//! decision out — or say why not. A scheduler refusal is kept on the decision with its
//! reason and retried after a back-off (doubling, at most 5 minutes), never in a loop; a
//! policy whose app disappears is paused and reported, and resumes when it is back. The
//! last decisions are kept in memory for the API; each change is an [`Event`] handed to the
//! caller (who publishes it on `drover.events.v1`).
use std::{
    collections::{BTreeMap, VecDeque},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use drover_schema::{time::SharedClock, Event, EventSource, Severity};
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{info, warn, Instrument};

use crate::{
    decide::{decide, Decision, MetricObs, Observation, Outcome, State},
    metrics::{AutoscalerMetrics, OutcomeLabels, PolicyLabels},
    policy::{self, LoadError, Policy, PolicyError, Target},
    scaler::{ScaleError, Scaler},
    source::{MetricQuery, MetricsSource},
};

/// How the autoscaler runs.
#[derive(Clone)]
pub struct AutoscalerConfig {
    /// Policy files or directories (may be empty: policies come through the API).
    pub policy_paths: Vec<PathBuf>,
    /// The clock.
    pub clock: SharedClock,
    /// Decisions kept in memory (the interesting ones: see [`Decision::interesting`]).
    pub keep_decisions: usize,
    /// Where events go (`drover.events.v1` in `drover up`).
    pub events: Option<mpsc::UnboundedSender<Event>>,
    /// First retry after a refused change (doubling, at most 5 minutes).
    pub retry_backoff: Duration,
    /// Rebuild each policy's stabilization state from the metrics' history on its first
    /// tick.
    pub seed_from_history: bool,
}

impl std::fmt::Debug for AutoscalerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoscalerConfig")
            .field("policy_paths", &self.policy_paths)
            .field("keep_decisions", &self.keep_decisions)
            .field("retry_backoff", &self.retry_backoff)
            .field("seed_from_history", &self.seed_from_history)
            .finish()
    }
}

impl AutoscalerConfig {
    /// Defaults: 1,000 decisions kept, 5 s first retry, seeding on, the wall clock, no events.
    pub fn new(policy_paths: Vec<PathBuf>) -> Self {
        Self {
            policy_paths,
            clock: drover_schema::time::system_clock(),
            keep_decisions: 1000,
            events: None,
            retry_backoff: Duration::from_secs(5),
            seed_from_history: true,
        }
    }
}

/// Whether a policy runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PolicyStatus {
    /// Deciding every tick.
    Active,
    /// Its app or service is gone: it waits for it to come back.
    Paused {
        /// Why.
        reason: String,
        /// Since when.
        since: DateTime<Utc>,
    },
}

/// A refused change waiting for its retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Retry {
    /// Refusals in a row.
    pub attempts: u32,
    /// Not before.
    pub at: DateTime<Utc>,
    /// What the scheduler said last.
    pub reason: String,
}

/// One tick of one policy, for charts: instances and groups against the load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// When.
    pub t: DateTime<Utc>,
    /// Instances asked for after the tick.
    pub instances: u32,
    /// Instances ready before it.
    pub ready: u32,
    /// Groups after the tick.
    pub groups: u32,
    /// Each policy metric's value (None: missing), in the policy's order.
    pub values: Vec<Option<f64>>,
    /// The tick changed something (a decision to mark on the chart).
    pub changed: bool,
    /// In panic mode.
    pub panic: bool,
}

/// Points kept per policy (an hour at the default 2 s tick).
pub const HISTORY_POINTS: usize = 1800;

#[derive(Debug, Clone)]
struct Entry {
    policy: Arc<Policy>,
    state: State,
    generation: u64,
    next_at: Option<DateTime<Utc>>,
    status: PolicyStatus,
    retry: Option<Retry>,
    seeded: bool,
    last: Option<Decision>,
    history: VecDeque<Point>,
    /// What the last kept decision said (a repeat of it is not kept again).
    last_kept: Option<String>,
}

impl Entry {
    fn new(policy: Policy, generation: u64) -> Self {
        Self {
            policy: Arc::new(policy),
            state: State::default(),
            generation,
            next_at: None,
            status: PolicyStatus::Active,
            retry: None,
            seeded: false,
            last: None,
            history: VecDeque::new(),
            last_kept: None,
        }
    }
}

/// A policy as `GET /api/autoscaler/policies` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyView {
    /// The policy, checked, with its defaults and as written.
    #[serde(serialize_with = "ser_policy")]
    pub policy: Arc<Policy>,
    /// Running or paused.
    pub status: PolicyStatus,
    /// In panic mode now.
    pub panic: bool,
    /// A refused change waiting for its retry.
    pub retry: Option<Retry>,
    /// The last decision, one line.
    pub last: Option<String>,
}

/// What `GET /api/autoscaler/explain/{app}` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Explain {
    /// The policy.
    pub policy: PolicyView,
    /// The last decision (every tick's, interesting or not).
    pub last: Option<Decision>,
    /// The engine's state: recommendation history, panic mode, rate-policy changes.
    pub state: State,
    /// The last interesting decisions for the app, newest first.
    pub recent: Vec<Decision>,
    /// The last decision in words ([`Decision::explain`]): what `drover autoscale explain`
    /// prints.
    pub text: Option<String>,
}

/// A `PUT` that was refused.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// The policy does not check (file `api`, the body's line, the field).
    #[error(transparent)]
    Invalid(#[from] LoadError),
    /// The scheduler could not say whether the app exists.
    #[error("cannot check the policy's app")]
    Scheduler(#[source] ScaleError),
}

struct Inner {
    cfg: AutoscalerConfig,
    source: Arc<dyn MetricsSource>,
    scaler: Arc<dyn Scaler>,
    metrics: AutoscalerMetrics,
    policies: Mutex<BTreeMap<String, Entry>>,
    decisions: Mutex<VecDeque<Decision>>,
    generation: Mutex<u64>,
    /// The policy files as last loaded (path, modified, length): hot reload compares it.
    files: Mutex<Vec<FileStamp>>,
}

type FileStamp = (PathBuf, Option<std::time::SystemTime>, u64);

fn stamps(paths: &[PathBuf]) -> Vec<FileStamp> {
    policy::files_of(paths)
        .unwrap_or_default()
        .into_iter()
        .map(|f| {
            let m = std::fs::metadata(&f).ok();
            let modified = m.as_ref().and_then(|m| m.modified().ok());
            let len = m.map_or(0, |m| m.len());
            (f, modified, len)
        })
        .collect()
}

/// The autoscaler. Cheap to clone.
#[derive(Clone)]
pub struct Autoscaler {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Autoscaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Autoscaler")
            .field("cfg", &self.inner.cfg)
            .finish()
    }
}

/// The error with its sources, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl Autoscaler {
    /// Loads the policy files of `cfg` (every problem reported, nothing started) and builds
    /// the autoscaler over `source` and `scaler`, with `metrics` (registered by the caller,
    /// or `AutoscalerMetrics::default()`).
    pub fn new(
        cfg: AutoscalerConfig,
        source: Arc<dyn MetricsSource>,
        scaler: Arc<dyn Scaler>,
        metrics: AutoscalerMetrics,
    ) -> Result<Self, LoadError> {
        let policies = if cfg.policy_paths.is_empty() {
            Vec::new()
        } else {
            policy::load(&cfg.policy_paths)?
        };
        let a = Self {
            inner: Arc::new(Inner {
                cfg,
                source,
                scaler,
                metrics,
                policies: Mutex::new(BTreeMap::new()),
                decisions: Mutex::new(VecDeque::new()),
                generation: Mutex::new(0),
                files: Mutex::new(Vec::new()),
            }),
        };
        *a.inner.files.lock().unwrap_or_else(|e| e.into_inner()) =
            stamps(&a.inner.cfg.policy_paths);
        {
            let mut map = a.lock_policies();
            for p in policies {
                let g = a.next_generation();
                map.insert(p.name.clone(), Entry::new(p, g));
            }
        }
        Ok(a)
    }

    fn lock_policies(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.inner
            .policies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn lock_decisions(&self) -> std::sync::MutexGuard<'_, VecDeque<Decision>> {
        self.inner
            .decisions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn next_generation(&self) -> u64 {
        let mut g = self
            .inner
            .generation
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *g += 1;
        *g
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.cfg.clock.now()
    }

    /// The policies whose app or service the scheduler does not know, as load errors (file,
    /// line, field): `drover up` refuses to start on them. A scheduler that cannot be reached
    /// is an error of its own.
    pub async fn check_targets(&self) -> Result<Vec<PolicyError>, ScaleError> {
        let policies: Vec<Arc<Policy>> = self
            .lock_policies()
            .values()
            .map(|e| e.policy.clone())
            .collect();
        let mut out = Vec::new();
        for p in policies {
            if self.inner.scaler.read(&p.target).await?.is_none() {
                out.push(policy::unknown_target(&p));
            }
        }
        Ok(out)
    }

    /// Reloads the policy files: on success the file policies are replaced (a policy whose
    /// name and target stay keeps its state; policies put through the API stay unless a file
    /// names them); on failure the running policies are kept and the errors returned.
    pub fn reload(&self) -> Result<usize, LoadError> {
        let loaded = match policy::load(&self.inner.cfg.policy_paths) {
            Ok(p) => p,
            Err(e) => {
                self.inner.metrics.reload_failures.inc();
                return Err(e);
            }
        };
        let n = loaded.len();
        let mut map = self.lock_policies();
        let names: Vec<String> = loaded.iter().map(|p| p.name.clone()).collect();
        map.retain(|name, e| names.contains(name) || e.policy.origin.file.as_os_str() == "api");
        for p in loaded {
            let g = self.next_generation();
            match map.get_mut(&p.name) {
                Some(e) if e.policy.target == p.target => {
                    e.policy = Arc::new(p);
                    e.generation = g;
                }
                _ => {
                    map.insert(p.name.clone(), Entry::new(p, g));
                }
            }
        }
        Ok(n)
    }

    /// Hot reload: when a policy file was changed, added or removed since the last load,
    /// [`Autoscaler::reload`] (None: nothing changed). [`Autoscaler::run`] calls it every
    /// tick; a refused reload is logged and tried again only after the next change.
    pub fn reload_if_changed(&self) -> Option<Result<usize, LoadError>> {
        if self.inner.cfg.policy_paths.is_empty() {
            return None;
        }
        let now = stamps(&self.inner.cfg.policy_paths);
        {
            let mut seen = self.inner.files.lock().unwrap_or_else(|e| e.into_inner());
            if *seen == now {
                return None;
            }
            *seen = now;
        }
        let r = self.reload();
        match &r {
            Ok(n) => info!(policies = n, "policy files reloaded"),
            Err(e) => warn!(error = %e, "policy files not reloaded: the running policies stay"),
        }
        Some(r)
    }

    /// `PUT /api/autoscaler/policies/{name}`: checks `body` (YAML or JSON) as a file would
    /// be, and that its app exists; then adds or replaces the policy (its state is kept when
    /// the target stays).
    pub async fn put_policy(&self, name: &str, body: &str) -> Result<PolicyView, PutError> {
        let p = policy::load_one(name, body)?;
        let clash = self
            .lock_policies()
            .values()
            .find(|e| e.policy.name != p.name && e.policy.target == p.target)
            .map(|e| e.policy.name.clone());
        if let Some(other) = clash {
            return Err(PutError::Invalid(LoadError {
                errors: vec![PolicyError {
                    file: p.origin.file.clone(),
                    line: p.origin.target_line,
                    field: p.origin.target_field.clone(),
                    message: format!(
                        "{} is already scaled by the policy {other}: one policy per app or service",
                        p.target.id()
                    ),
                }],
            }));
        }
        if self
            .inner
            .scaler
            .read(&p.target)
            .await
            .map_err(PutError::Scheduler)?
            .is_none()
        {
            return Err(PutError::Invalid(LoadError {
                errors: vec![policy::unknown_target(&p)],
            }));
        }
        let g = self.next_generation();
        let mut map = self.lock_policies();
        match map.get_mut(name) {
            Some(e) if e.policy.target == p.target => {
                e.policy = Arc::new(p);
                e.generation = g;
            }
            _ => {
                map.insert(name.to_string(), Entry::new(p, g));
            }
        }
        Ok(view(&map[name]))
    }

    /// Every policy, by name.
    pub fn policies(&self) -> Vec<PolicyView> {
        self.lock_policies().values().map(view).collect()
    }

    /// The kept decisions, newest first: only those for `app` (the target or one of its
    /// groups) when given, at most `limit`.
    pub fn decisions(&self, app: Option<&str>, limit: usize) -> Vec<Decision> {
        self.lock_decisions()
            .iter()
            .rev()
            .filter(|d| app.is_none_or(|a| concerns(d, a)))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Everything about the policy of `app` (its target, or one of its groups).
    pub fn explain(&self, app: &str) -> Option<Explain> {
        let (policy, last, state) = {
            let map = self.lock_policies();
            let e = map.values().find(|e| targets(&e.policy, app))?;
            (view(e), e.last.clone(), e.state.clone())
        };
        let target = policy.policy.target.id().to_string();
        Some(Explain {
            policy,
            text: last.as_ref().map(Decision::explain),
            last,
            state,
            recent: self.decisions(Some(&target), 20),
        })
    }

    /// The per-tick history of the policy of `app` (its target or one of its groups),
    /// oldest first, with the policy's metric targets: what the UI charts.
    pub fn history(&self, app: &str) -> Option<History> {
        let map = self.lock_policies();
        let e = map.values().find(|e| targets(&e.policy, app))?;
        Some(History {
            policy: e.policy.name.clone(),
            target: e.policy.target.id().to_string(),
            metrics: e
                .policy
                .metrics
                .iter()
                .map(|m| (m.label(), m.target))
                .collect(),
            points: e.history.iter().cloned().collect(),
        })
    }

    /// Runs every policy that is due now, once.
    pub async fn tick(&self) {
        let started = std::time::Instant::now();
        let now = self.now();
        let due: Vec<(String, Entry)> = self
            .lock_policies()
            .iter()
            .filter(|(_, e)| e.next_at.is_none_or(|t| t <= now))
            .map(|(n, e)| (n.clone(), e.clone()))
            .collect();
        for (name, mut e) in due {
            let span = tracing::info_span!(
                "autoscaler_tick",
                policy = %name,
                target = %e.policy.target.id()
            );
            self.run_policy(&mut e, now).instrument(span).await;
            e.next_at = Some(now + chrono::Duration::from_std(e.policy.tick).unwrap_or_default());
            let mut map = self.lock_policies();
            if let Some(cur) = map.get_mut(&name) {
                if cur.generation == e.generation {
                    *cur = e;
                } else {
                    // replaced while it ran: keep the new policy, carry the state over
                    cur.state = e.state;
                    cur.last = e.last;
                    cur.status = e.status;
                    cur.retry = e.retry;
                    cur.seeded = e.seeded;
                    cur.next_at = e.next_at;
                    cur.history = e.history;
                }
            }
        }
        self.inner.metrics.ticks.inc();
        self.inner
            .metrics
            .tick_seconds
            .observe(started.elapsed().as_secs_f64());
    }

    /// Ticks every `every` (the policies' own ticks decide which run) until `shutdown`.
    pub async fn run(self, every: Duration, shutdown: impl std::future::Future<Output = ()>) {
        let mut interval = tokio::time::interval(every.max(Duration::from_millis(100)));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = interval.tick() => {
                    let _ = self.reload_if_changed();
                    self.tick().await;
                }
            }
        }
        info!("autoscaler stopped");
    }

    async fn run_policy(&self, e: &mut Entry, now: DateTime<Utc>) {
        let p = e.policy.clone();
        let labels = PolicyLabels {
            policy: p.name.clone(),
        };
        let m = &self.inner.metrics;
        let ts = match self.inner.scaler.read(&p.target).await {
            Err(err) => {
                warn!(error = %chain(&err), "cannot read the target: no decision this tick");
                return;
            }
            Ok(None) => {
                if !matches!(e.status, PolicyStatus::Paused { .. }) {
                    let reason = format!(
                        "{} is gone: the policy is paused until it is back",
                        p.target.id()
                    );
                    warn!("{reason}");
                    e.status = PolicyStatus::Paused {
                        reason: reason.clone(),
                        since: now,
                    };
                    let mut d = empty_decision(&p, now);
                    d.outcome = Outcome::Paused {
                        reason: reason.clone(),
                    };
                    self.emit(&p, now, "autoscaler_paused", Severity::Warning, &reason, &d);
                    self.record(e, d);
                }
                m.paused.get_or_create(&labels).set(1);
                return;
            }
            Ok(Some(ts)) => ts,
        };
        if matches!(e.status, PolicyStatus::Paused { .. }) {
            e.status = PolicyStatus::Active;
            let msg = format!("{} is back: the policy runs again", p.target.id());
            info!("{msg}");
            self.emit(
                &p,
                now,
                "autoscaler_resumed",
                Severity::Info,
                &msg,
                &empty_decision(&p, now),
            );
        }
        m.paused.get_or_create(&labels).set(0);
        let group_ids: Vec<String> = ts.groups.iter().map(|g| g.app.clone()).collect();
        let current: u32 = ts.groups.iter().map(|g| g.instances).sum();
        let ready: u32 = ts.groups.iter().map(|g| g.ready).sum();
        if !e.seeded && self.inner.cfg.seed_from_history {
            self.seed(&p, &mut e.state, &group_ids, current, ready)
                .await;
        }
        e.seeded = true;
        let mut metrics = Vec::new();
        for spec in &p.metrics {
            let q = MetricQuery::for_metric(spec, &p.target, &group_ids, p.window);
            let value = self.read(&q).await;
            let recent = if spec.kind.is_total() || spec.kind.is_latency() {
                let q = MetricQuery::for_metric(spec, &p.target, &group_ids, p.panic.window);
                self.read(&q).await
            } else {
                None
            };
            metrics.push(MetricObs { value, recent });
        }
        let obs = Observation {
            groups: ts.groups,
            deploying: ts.deploying,
            metrics,
        };
        let mut d = decide(&p, &mut e.state, &obs, now);
        if d.changes() && !p.dry_run {
            match &e.retry {
                Some(r) if now < r.at => {
                    d.outcome = Outcome::Refused {
                        reason: r.reason.clone(),
                        retry_at: r.at,
                    };
                }
                _ => match self.apply(&p, &d).await {
                    Ok(()) => {
                        d.outcome = Outcome::Applied;
                        e.state.applied(&d);
                        e.retry = None;
                        info!(from = d.current, to = d.desired, winner = %d.winner, "scaled");
                        self.emit(
                            &p,
                            now,
                            "scaling_decision",
                            Severity::Info,
                            &d.summary(),
                            &d,
                        );
                    }
                    Err(err) => {
                        let reason = chain(&err);
                        let attempts = e.retry.as_ref().map_or(0, |r| r.attempts) + 1;
                        let wait = self
                            .inner
                            .cfg
                            .retry_backoff
                            .saturating_mul(1 << (attempts - 1).min(10))
                            .min(Duration::from_secs(300));
                        let at = now + chrono::Duration::from_std(wait).unwrap_or_default();
                        warn!(error = %reason, attempts, "the scheduler refused the change");
                        d.outcome = Outcome::Refused {
                            reason: reason.clone(),
                            retry_at: at,
                        };
                        e.retry = Some(Retry {
                            attempts,
                            at,
                            reason: reason.clone(),
                        });
                        let msg = format!("{} — refused: {reason}", d.summary());
                        self.emit(&p, now, "scaling_refused", Severity::Warning, &msg, &d);
                    }
                },
            }
        }
        let outcome = match &d.outcome {
            Outcome::Unchanged | Outcome::Planned => "unchanged",
            Outcome::DryRun => "dry_run",
            Outcome::Applied => "applied",
            Outcome::Refused { .. } => "refused",
            Outcome::Paused { .. } => "paused",
        };
        m.decisions
            .get_or_create(&OutcomeLabels {
                policy: p.name.clone(),
                outcome,
            })
            .inc();
        let after = if matches!(d.outcome, Outcome::Applied) {
            d.desired
        } else {
            d.current
        };
        m.instances.get_or_create(&labels).set(after as i64);
        m.ready.get_or_create(&labels).set(d.ready as i64);
        let groups = if matches!(d.outcome, Outcome::Applied) {
            d.groups_before.len() + d.add.len() - usize::from(d.remove.is_some())
        } else {
            d.groups_before.len()
        };
        m.groups.get_or_create(&labels).set(groups as i64);
        m.panic.get_or_create(&labels).set(i64::from(d.panic));
        self.record(e, d);
    }

    async fn read(&self, q: &MetricQuery) -> Option<f64> {
        let answer = match self.inner.source.window(q).await {
            Ok(None) if !q.fallback.is_empty() => {
                let q = MetricQuery {
                    apps: q.fallback.clone(),
                    fallback: Vec::new(),
                    ..q.clone()
                };
                self.inner.source.window(&q).await
            }
            a => a,
        };
        match answer {
            Ok(v) => v,
            Err(err) => {
                warn!(series = %q.series, error = %chain(&err), "cannot read a metric: counted as missing");
                None
            }
        }
    }

    /// The stabilization history from the metrics' history over the down-window.
    async fn seed(&self, p: &Policy, st: &mut State, groups: &[String], current: u32, ready: u32) {
        let range = p.stabilize_down.max(p.stabilize_up);
        if range.is_zero() {
            return;
        }
        let step = p.tick.max(Duration::from_secs(10));
        let mut points: BTreeMap<DateTime<Utc>, Vec<Option<f64>>> = BTreeMap::new();
        for (i, spec) in p.metrics.iter().enumerate() {
            let q = MetricQuery::for_metric(spec, &p.target, groups, range);
            match self.inner.source.history(&q, step).await {
                Ok(h) => {
                    for (t, v) in h {
                        points
                            .entry(t)
                            .or_insert_with(|| vec![None; p.metrics.len()])[i] = Some(v);
                    }
                }
                Err(err) => {
                    warn!(error = %chain(&err), "cannot read the history: starting without it")
                }
            }
        }
        let history: Vec<(DateTime<Utc>, Vec<Option<f64>>)> = points.into_iter().collect();
        if !history.is_empty() {
            info!(
                points = history.len(),
                "stabilization state seeded from the metrics history"
            );
        }
        st.seed(p, &history, current, ready);
    }

    /// Carries a decision out: groups that grow, new groups, groups that shrink, then the
    /// removed group (its share is already on the others, which the plan checked are ready).
    async fn apply(&self, p: &Policy, d: &Decision) -> Result<(), ScaleError> {
        let s = &self.inner.scaler;
        for r in d.resize.iter().filter(|r| r.to > r.from) {
            s.scale(&r.app, r.to).await?;
        }
        if !d.add.is_empty() {
            let template = p
                .template
                .clone()
                .or_else(|| d.groups_before.first().map(|g| g.app.clone()))
                .unwrap_or_default();
            for a in &d.add {
                s.add_group(&template, &a.app, a.to).await?;
            }
        }
        for r in d.resize.iter().filter(|r| r.to < r.from) {
            s.scale(&r.app, r.to).await?;
        }
        if let Some(r) = &d.remove {
            s.remove_group(r).await?;
        }
        Ok(())
    }

    fn record(&self, e: &mut Entry, d: Decision) {
        let applied = matches!(d.outcome, Outcome::Applied);
        e.history.push_back(Point {
            t: d.at,
            instances: if applied { d.desired } else { d.current },
            ready: d.ready,
            groups: if applied {
                (d.groups_before.len() + d.add.len() - usize::from(d.remove.is_some())) as u32
            } else {
                d.groups_before.len() as u32
            },
            values: d.metrics.iter().map(|m| m.value).collect(),
            changed: applied,
            panic: d.panic,
        });
        while e.history.len() > HISTORY_POINTS {
            e.history.pop_front();
        }
        // the same holding pattern tick after tick (a missing metric holding a scale-down,
        // a down-window) is kept once, not every tick
        let sig = signature(&d);
        if d.interesting() && (d.changes() || e.last_kept.as_deref() != Some(sig.as_str())) {
            e.last_kept = Some(sig);
            let mut q = self.lock_decisions();
            q.push_back(d.clone());
            while q.len() > self.inner.cfg.keep_decisions.max(1) {
                q.pop_front();
            }
        }
        e.last = Some(d);
    }

    fn emit(
        &self,
        p: &Policy,
        now: DateTime<Utc>,
        kind: &str,
        severity: Severity,
        message: &str,
        d: &Decision,
    ) {
        let Some(tx) = &self.inner.cfg.events else {
            return;
        };
        let mut attrs = BTreeMap::new();
        attrs.insert("policy".to_string(), serde_json::json!(p.name));
        attrs.insert("from".to_string(), serde_json::json!(d.current));
        attrs.insert("to".to_string(), serde_json::json!(d.desired));
        attrs.insert("winner".to_string(), serde_json::json!(d.winner));
        attrs.insert(
            "held".to_string(),
            serde_json::json!(d.held.iter().map(|h| h.rule.as_str()).collect::<Vec<_>>()),
        );
        attrs.insert("resize".to_string(), serde_json::json!(d.resize));
        attrs.insert("add".to_string(), serde_json::json!(d.add));
        attrs.insert("remove".to_string(), serde_json::json!(d.remove));
        attrs.insert(
            "outcome".to_string(),
            serde_json::to_value(&d.outcome).unwrap_or_default(),
        );
        let _ = tx.send(Event {
            v: 1,
            ts: now,
            id: uuid::Uuid::new_v4().to_string(),
            source: EventSource::Autoscaler,
            kind: kind.to_string(),
            severity,
            app: Some(p.target.id().to_string()),
            task: None,
            node: None,
            message: message.to_string(),
            attrs,
        });
    }
}

fn ser_policy<S: serde::Serializer>(p: &Arc<Policy>, s: S) -> Result<S::Ok, S::Error> {
    p.as_ref().serialize(s)
}

fn view(e: &Entry) -> PolicyView {
    PolicyView {
        policy: e.policy.clone(),
        status: e.status.clone(),
        panic: e.state.panic.is_some(),
        retry: e.retry.clone(),
        last: e.last.as_ref().map(Decision::summary),
    }
}

/// What a decision said, without its time and values: equal for a repeat.
fn signature(d: &Decision) -> String {
    let held: Vec<String> = d
        .held
        .iter()
        .map(|h| format!("{}:{}>{}", h.rule, h.from, h.to))
        .collect();
    let outcome = match &d.outcome {
        Outcome::Refused { reason, .. } => format!("refused:{reason}"),
        o => format!("{o:?}"),
    };
    format!(
        "{}|{}|{}|{}|{}|{}|{}",
        d.current,
        d.recommended,
        d.desired,
        d.winner,
        d.panic,
        held.join(","),
        outcome
    )
}

/// Whether `p` scales `app` (its target, or a group of its service).
fn targets(p: &Policy, app: &str) -> bool {
    p.target.id() == app
        || matches!(&p.target, Target::Service(s) if app.starts_with(&format!("{s}/")))
}

/// What `GET /api/autoscaler/history/{app}` answers.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    /// The policy.
    pub policy: String,
    /// Its app or service.
    pub target: String,
    /// Its metrics (name, target), the order of each point's values.
    pub metrics: Vec<(String, f64)>,
    /// Oldest first.
    pub points: Vec<Point>,
}

fn concerns(d: &Decision, app: &str) -> bool {
    d.target == app
        || d.groups_before.iter().any(|g| g.app == app)
        || d.add.iter().any(|g| g.app == app)
}

fn empty_decision(p: &Policy, now: DateTime<Utc>) -> Decision {
    Decision {
        policy: p.name.clone(),
        target: p.target.id().to_string(),
        at: now,
        current: 0,
        ready: 0,
        groups_before: Vec::new(),
        metrics: Vec::new(),
        recommended: 0,
        winner: "none".into(),
        panic: false,
        held: Vec::new(),
        desired: 0,
        resize: Vec::new(),
        add: Vec::new(),
        remove: None,
        outcome: Outcome::Unchanged,
    }
}

#[cfg(test)]
mod tests;
