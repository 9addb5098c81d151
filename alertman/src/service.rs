//! The running Alertman: evaluates the rules every `eval_interval`, routes and notifies every
//! second, persists its state after each step, reloads its rules on SIGHUP and when a rule
//! file changes (a bad reload keeps the running rules and says why), and answers the API.
//!
//! Locks: the evaluator sits behind an async mutex (evaluation awaits its source); routing,
//! silences and the pending history behind a plain mutex that is never held across an await.
//! Deliveries run on their own tasks: a receiver that is down never holds up evaluation.
use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use chrono::{DateTime, Utc};
use drover_schema::{Event, EventSource, Severity as EventSeverity};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::{
    actions::{self, Actuator, Caps, Decision, Limiter},
    alert::{fingerprint_hex, Alert, AlertState, Fingerprint, LabelSet},
    eval::{Evaluator, RuleHealth},
    metrics::{AlertmanMetrics, ReceiverLabels, StateLabels},
    receivers::{self, Delivery},
    route::{Muted, Notification, Router},
    rules::{self, Config, LoadError},
    silence::{Silence, Silences},
    source::Source,
    store::{Changes, HistoryEntry, HistoryKind, HistoryQuery, Store},
    AlertmanError, Clock,
};

/// Settings of an Alertman.
#[derive(Clone)]
pub struct AlertmanConfig {
    /// Rule files or directories.
    pub rule_paths: Vec<PathBuf>,
    /// The state directory (`alertman.redb` in it).
    pub data_dir: PathBuf,
    /// How often rules are evaluated.
    pub eval_interval: Duration,
    /// The UI's URL, for links in notifications.
    pub ui_url: String,
    /// The clock.
    pub clock: Clock,
    /// First retry of a failed delivery after this (doubling, at most 30 s).
    pub retry_backoff: Duration,
    /// How long the history is kept.
    pub history_retention: Duration,
    /// Where Alertman's events go (`drover.events.v1` in `drover up`).
    pub events: Option<mpsc::UnboundedSender<Event>>,
    /// Who carries out actions (the scheduler); without one, actions are refused.
    pub actuator: Option<Arc<dyn Actuator>>,
    /// The caps on actions.
    pub caps: Caps,
}

impl std::fmt::Debug for AlertmanConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertmanConfig")
            .field("rule_paths", &self.rule_paths)
            .field("data_dir", &self.data_dir)
            .field("eval_interval", &self.eval_interval)
            .field("ui_url", &self.ui_url)
            .finish()
    }
}

impl AlertmanConfig {
    /// Defaults: 15 s evaluations, 1 s first retry, 30 days of history, the wall clock.
    pub fn new(rule_paths: Vec<PathBuf>, data_dir: PathBuf, ui_url: &str) -> Self {
        Self {
            rule_paths,
            data_dir,
            eval_interval: Duration::from_secs(15),
            ui_url: ui_url.to_string(),
            clock: drover_schema::time::system_clock(),
            retry_backoff: Duration::from_secs(1),
            history_retention: Duration::from_secs(30 * 86_400),
            events: None,
            actuator: None,
            caps: Caps::default(),
        }
    }
}

/// The last (re)load of the rules.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadStatus {
    /// Whether the last attempt loaded.
    pub ok: bool,
    /// When.
    pub at: DateTime<Utc>,
    /// Why not, with file:line:field.
    pub error: Option<String>,
    /// The files in force.
    pub files: Vec<PathBuf>,
    /// Rules in force.
    pub rules: usize,
}

struct Core {
    config: Arc<Config>,
    router: Router,
    silences: Silences,
    history: Vec<HistoryEntry>,
    silences_changed: Vec<Silence>,
    silences_removed: Vec<String>,
    reload: ReloadStatus,
    /// Modification times of the rule files, to notice changes.
    stamps: Vec<(PathBuf, Option<SystemTime>)>,
}

struct Inner {
    cfg: AlertmanConfig,
    source: Arc<dyn Source>,
    store: Store,
    metrics: AlertmanMetrics,
    delivery: Delivery,
    evaluator: tokio::sync::Mutex<Evaluator>,
    core: Mutex<Core>,
    started: DateTime<Utc>,
    acts: tokio::sync::Mutex<ActState>,
    /// Wakes the loop when alerts are posted (a new group's `group_wait` starts now).
    wake: tokio::sync::Notify,
}

/// What the action loop remembers.
#[derive(Debug, Default)]
struct ActState {
    limiter: Limiter,
    /// Alerts acted on (or dry-run) in their current firing episode: alert → fired at.
    acted: BTreeMap<Fingerprint, DateTime<Utc>>,
    /// Alerts whose refusal is already in the history (said once per episode).
    refused: BTreeMap<Fingerprint, String>,
    /// Scopes already reported as "suspect the monitoring", until they recover.
    suspect: BTreeMap<String, DateTime<Utc>>,
}

/// A running Alertman (cheap to clone).
#[derive(Clone)]
pub struct Alertman {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Alertman {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alertman")
            .field("cfg", &self.inner.cfg)
            .finish()
    }
}

fn send_resolved_of(cfg: &Config) -> BTreeMap<String, bool> {
    cfg.receivers
        .iter()
        .map(|(k, r)| (k.clone(), r.send_resolved && cfg.route.send_resolved))
        .collect()
}

fn stamps(paths: &[PathBuf]) -> Vec<(PathBuf, Option<SystemTime>)> {
    rules::files_of(paths)
        .unwrap_or_default()
        .into_iter()
        .map(|f| {
            let m = std::fs::metadata(&f).and_then(|m| m.modified()).ok();
            (f, m)
        })
        .collect()
}

impl Alertman {
    /// Loads the rules (refusing bad ones), opens the store and resumes its state.
    pub fn open(
        cfg: AlertmanConfig,
        source: Arc<dyn Source>,
        metrics: AlertmanMetrics,
    ) -> Result<Self, AlertmanError> {
        let config = rules::load(&cfg.rule_paths)?;
        let store = Store::open(&cfg.data_dir.join("alertman.redb"))?;
        let loaded = store.load()?;
        let now = cfg.clock.now();
        let router = Router::new(
            config.route.clone(),
            config.inhibit.clone(),
            send_resolved_of(&config),
            loaded.alerts,
            loaded.nflog,
            now,
        );
        let resumed: usize = loaded.rule_alerts.values().map(BTreeMap::len).sum();
        tracing::info!(
            rules = config.rules.len(),
            receivers = config.receivers.len(),
            resumed_alerts = resumed,
            silences = loaded.silences.len(),
            "alertman loaded"
        );
        metrics.rules.set(config.rules.len() as i64);
        let reload = ReloadStatus {
            ok: true,
            at: now,
            error: None,
            files: config.files.clone(),
            rules: config.rules.len(),
        };
        let core = Core {
            stamps: stamps(&cfg.rule_paths),
            config: Arc::new(config),
            router,
            silences: Silences::from_stored(loaded.silences),
            history: Vec::new(),
            silences_changed: Vec::new(),
            silences_removed: Vec::new(),
            reload,
        };
        let evaluator = Evaluator::new(&cfg.ui_url, loaded.rule_alerts);
        let acts = ActState {
            limiter: Limiter::new(cfg.caps.clone()),
            ..ActState::default()
        };
        Ok(Self {
            inner: Arc::new(Inner {
                delivery: Delivery::new(&cfg.ui_url, cfg.retry_backoff),
                cfg,
                source,
                store,
                metrics,
                evaluator: tokio::sync::Mutex::new(evaluator),
                core: Mutex::new(core),
                started: now,
                acts: tokio::sync::Mutex::new(acts),
                wake: tokio::sync::Notify::new(),
            }),
        })
    }

    fn core(&self) -> std::sync::MutexGuard<'_, Core> {
        self.inner.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.cfg.clock.now()
    }

    /// The rules in force.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.core().config)
    }

    /// Its metrics.
    pub fn metrics(&self) -> &AlertmanMetrics {
        &self.inner.metrics
    }

    fn emit(&self, e: Event) {
        if let Some(tx) = &self.inner.cfg.events {
            let _ = tx.send(e);
        }
    }

    /// Evaluates every rule once and hands the alerts to routing.
    pub async fn evaluate(&self) {
        let started = std::time::Instant::now();
        let now = self.now();
        let config = self.config();
        let (out, states) = {
            let mut ev = self.inner.evaluator.lock().await;
            let out = ev
                .evaluate(&config.rules, self.inner.source.as_ref(), now)
                .await;
            (out, ev.states.clone())
        };
        let m = &self.inner.metrics;
        m.evaluations.inc();
        m.evaluation_seconds
            .observe(started.elapsed().as_secs_f64());
        m.template_errors.inc_by(out.template_errors);
        let mut firing = 0;
        for s in states.values() {
            firing += s.values().filter(|a| a.state == AlertState::Firing).count();
        }
        m.firing.set(firing as i64);
        {
            let mut core = self.core();
            for t in &out.transitions {
                m.transitions
                    .get_or_create(&StateLabels {
                        state: t.to.as_str().into(),
                    })
                    .inc();
                let app = t.labels.get("app").cloned();
                let what = if t.labels.len() <= 2
                    && (t.to == AlertState::NoData
                        || t.to == AlertState::Error
                        || t.from == AlertState::NoData
                        || t.from == AlertState::Error)
                {
                    "rule"
                } else {
                    "alert"
                };
                let message = t.message.clone().unwrap_or_else(|| {
                    format!(
                        "{what} {} {} → {}{}",
                        t.rule,
                        t.from.as_str(),
                        t.to.as_str(),
                        t.value
                            .map(|v| format!(" (value {})", receivers::fmt_value(Some(v))))
                            .unwrap_or_default()
                    )
                });
                if matches!(
                    t.to,
                    AlertState::Firing | AlertState::Resolved | AlertState::Error
                ) {
                    tracing::info!(rule = %t.rule, from = t.from.as_str(), to = t.to.as_str(), labels = ?t.labels, "alert transition");
                    let sev = match (t.to, t.labels.get("severity").map(String::as_str)) {
                        (AlertState::Resolved, _) => EventSeverity::Info,
                        (_, Some("critical")) => EventSeverity::Critical,
                        _ => EventSeverity::Warning,
                    };
                    self.emit(Event {
                        v: 1,
                        ts: t.at,
                        id: uuid::Uuid::new_v4().to_string(),
                        source: EventSource::Alertman,
                        kind: format!("alert_{}", t.to.as_str()),
                        severity: sev,
                        app: app.clone(),
                        task: t.labels.get("instance").cloned(),
                        node: t.labels.get("node").cloned(),
                        message: message.clone(),
                        attrs: [
                            ("rule".to_string(), serde_json::json!(t.rule)),
                            ("labels".to_string(), serde_json::json!(t.labels)),
                            ("value".to_string(), serde_json::json!(t.value)),
                        ]
                        .into(),
                    });
                }
                core.history.push(HistoryEntry {
                    ts: t.at,
                    kind: HistoryKind::Transition,
                    rule: Some(t.rule.clone()),
                    app,
                    state: t.to.as_str().into(),
                    from: Some(t.from.as_str().into()),
                    labels: t.labels.clone(),
                    value: t.value,
                    receiver: None,
                    message,
                });
            }
            core.router.ingest(out.alerts, now);
        }
        self.act(&config, &states, now).await;
        self.persist(Some(states));
    }

    /// Takes the rules' actions on their firing alerts, within the caps.
    async fn act(
        &self,
        config: &Config,
        states: &BTreeMap<String, BTreeMap<Fingerprint, crate::eval::RuleAlert>>,
        now: DateTime<Utc>,
    ) {
        let mut st = self.inner.acts.lock().await;
        // Forget alerts that stopped firing: acting again on a new episode is allowed.
        let firing: std::collections::BTreeSet<Fingerprint> = states
            .values()
            .flat_map(|m| {
                m.iter()
                    .filter(|(_, a)| a.state == AlertState::Firing)
                    .map(|(fp, _)| *fp)
            })
            .collect();
        st.acted.retain(|fp, _| firing.contains(fp));
        st.refused.retain(|fp, _| firing.contains(fp));
        let mut entries = Vec::new();
        let mut suspects = Vec::new();
        let mut unhealthy_nodes = std::collections::BTreeSet::new();
        for rule in &config.rules {
            let Some(action) = &rule.action else { continue };
            let Some(alerts) = states.get(&rule.name) else {
                continue;
            };
            let mut by_scope: BTreeMap<String, Vec<(Fingerprint, &crate::eval::RuleAlert)>> =
                BTreeMap::new();
            for (fp, a) in alerts.iter().filter(|(_, a)| a.state == AlertState::Firing) {
                let app = a.labels.get("app").cloned().unwrap_or_default();
                if action.kind == rules::ActionKind::RemoveNode {
                    if let Some(n) = a.labels.get("node") {
                        unhealthy_nodes.insert(n.clone());
                    }
                }
                by_scope
                    .entry(actions::scope(action.kind, &app))
                    .or_default()
                    .push((*fp, a));
            }
            for (scope, list) in by_scope {
                // A node already out (cordoned and drained by an earlier alert) is not
                // removed again: its other alerts count as acted on.
                if action.kind == rules::ActionKind::RemoveNode {
                    let out: std::collections::BTreeSet<String> = st
                        .limiter
                        .nodes_out()
                        .into_iter()
                        .map(|(n, _, _)| n)
                        .collect();
                    for (fp, a) in &list {
                        if a.labels.get("node").is_some_and(|n| out.contains(n)) {
                            st.acted.entry(*fp).or_insert(now);
                        }
                    }
                }
                let pending: Vec<_> = list
                    .iter()
                    .filter(|(fp, _)| !st.acted.contains_key(fp))
                    .collect();
                if pending.is_empty() {
                    continue;
                }
                // How many members of the scope look unhealthy: instances, or distinct
                // nodes (a rule grouped by node and instance has one alert per instance).
                let unhealthy = unhealthy_members(action.kind, &list);
                let Some(actuator) = self.inner.cfg.actuator.clone() else {
                    for (fp, a) in pending {
                        let why = "no scheduler to act through (drover up runs one; drover alertman takes --master URL)".to_string();
                        if st.refused.insert(*fp, why.clone()).is_none() {
                            entries.push(action_entry(now, &rule.name, a, "refused", why));
                        }
                    }
                    continue;
                };
                let total = match action.kind {
                    rules::ActionKind::RemoveInstance => actuator.instances(&scope).await,
                    rules::ActionKind::RemoveNode => actuator.nodes().await,
                };
                let total = match total {
                    Ok(t) => t,
                    Err(e) => {
                        for (fp, a) in pending {
                            let why = format!("cannot count {scope}: {e}");
                            if st.refused.insert(*fp, why.clone()).is_none() {
                                entries.push(action_entry(now, &rule.name, a, "refused", why));
                            }
                        }
                        continue;
                    }
                };
                for (fp, a) in pending {
                    if action.kind == rules::ActionKind::RemoveNode
                        && a.labels
                            .get("node")
                            .is_some_and(|n| st.limiter.nodes_out().iter().any(|(o, _, _)| o == n))
                    {
                        // Removed a moment ago through another alert of the same node.
                        st.acted.insert(*fp, now);
                        continue;
                    }
                    let decision = st
                        .limiter
                        .decide(now, &scope, total, unhealthy, action.dry_run);
                    let target = match action.kind {
                        rules::ActionKind::RemoveInstance => {
                            a.labels.get("instance").cloned().unwrap_or_default()
                        }
                        rules::ActionKind::RemoveNode => {
                            a.labels.get("node").cloned().unwrap_or_default()
                        }
                    };
                    let what = match action.kind {
                        rules::ActionKind::RemoveInstance => {
                            format!("kill task {target} of {scope}")
                        }
                        rules::ActionKind::RemoveNode => {
                            format!("cordon and drain node {target}")
                        }
                    };
                    match decision {
                        Decision::Act => {
                            let r = match action.kind {
                                rules::ActionKind::RemoveInstance => {
                                    actuator.kill_task(&scope, &target).await
                                }
                                rules::ActionKind::RemoveNode => {
                                    actuator.cordon(&target, true).await
                                }
                            };
                            st.acted.insert(*fp, now);
                            let (state, msg) = match r {
                                Ok(()) => {
                                    if action.kind == rules::ActionKind::RemoveNode {
                                        let b = st.limiter.node_removed(&target, now);
                                        ("done", format!("{what}: {} fires; re-admitted after {} once healthy", rule.name, humantime::format_duration(b)))
                                    } else {
                                        ("done", format!("{what}: {} fires", rule.name))
                                    }
                                }
                                Err(e) => ("failed", format!("{what} failed: {e}")),
                            };
                            self.action_event(
                                now,
                                action.kind,
                                &scope,
                                &target,
                                &rule.name,
                                state,
                                &msg,
                            );
                            entries.push(action_entry(now, &rule.name, a, state, msg));
                        }
                        Decision::DryRun => {
                            st.acted.insert(*fp, now);
                            let msg = format!("dry run: would {what} ({} fires)", rule.name);
                            self.action_event(
                                now,
                                action.kind,
                                &scope,
                                &target,
                                &rule.name,
                                "dry_run",
                                &msg,
                            );
                            entries.push(action_entry(now, &rule.name, a, "dry_run", msg));
                        }
                        Decision::Refused(why) => {
                            // Said once per alert and kind of refusal (the numbers change).
                            let kind: String =
                                why.chars().filter(|c| !c.is_ascii_digit()).collect();
                            if st.refused.get(fp) != Some(&kind) {
                                entries.push(action_entry(
                                    now,
                                    &rule.name,
                                    a,
                                    "refused",
                                    format!("not now: {what}: {why}"),
                                ));
                            }
                            st.refused.insert(*fp, kind);
                        }
                        Decision::SuspectMonitoring(why) => {
                            if !st.suspect.contains_key(&scope) {
                                st.suspect.insert(scope.clone(), now);
                                entries.push(action_entry(
                                    now,
                                    &rule.name,
                                    a,
                                    "suspect_monitoring",
                                    why.clone(),
                                ));
                                self.action_event(
                                    now,
                                    action.kind,
                                    &scope,
                                    &target,
                                    &rule.name,
                                    "suspect_monitoring",
                                    &why,
                                );
                            }
                            suspects.push((rule, scope.clone(), why));
                            break;
                        }
                    }
                }
            }
        }
        // Scopes that recovered may be suspected again later.
        let suspect_now: std::collections::BTreeSet<String> =
            suspects.iter().map(|s| s.1.clone()).collect();
        st.suspect.retain(|s, _| suspect_now.contains(s));
        // Nodes out that are healthy again and past their back-off come back.
        let readmit = st.limiter.readmit(now, |n| !unhealthy_nodes.contains(n));
        drop(st);
        if let Some(actuator) = self.inner.cfg.actuator.clone() {
            for node in readmit {
                let (state, msg) = match actuator.cordon(&node, false).await {
                    Ok(()) => (
                        "readmitted",
                        format!("uncordoned node {node}: healthy again after its back-off"),
                    ),
                    Err(e) => ("failed", format!("uncordon node {node} failed: {e}")),
                };
                self.action_event(
                    now,
                    rules::ActionKind::RemoveNode,
                    "nodes",
                    &node,
                    "",
                    state,
                    &msg,
                );
                entries.push(HistoryEntry {
                    ts: now,
                    kind: HistoryKind::Action,
                    rule: None,
                    app: None,
                    state: state.into(),
                    from: None,
                    labels: [("node".to_string(), node.clone())].into(),
                    value: None,
                    receiver: None,
                    message: msg,
                });
            }
        }
        // "Suspect the monitoring, not the hosts": a notification through the rule's receivers.
        let suspect_alerts: Vec<Alert> = suspects
            .into_iter()
            .map(|(rule, scope, why)| Alert {
                labels: [
                    ("alertname", "AlertmanSuspectMonitoring"),
                    ("rule", rule.name.as_str()),
                    ("scope", scope.as_str()),
                    ("severity", "critical"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
                annotations: [("summary".to_string(), why)].into(),
                starts_at: now,
                ends_at: Some(
                    now + chrono::Duration::from_std(self.inner.cfg.eval_interval * 3)
                        .unwrap_or_default(),
                ),
                updated_at: now,
                generator_url: String::new(),
                receivers: rule.receivers.clone(),
                value: None,
                rule: Some(rule.name.clone()),
            })
            .collect();
        let m = &self.inner.metrics;
        for e in &entries {
            m.actions
                .get_or_create(&StateLabels {
                    state: e.state.clone(),
                })
                .inc();
            tracing::info!(rule = ?e.rule, state = %e.state, message = %e.message, "alert action");
        }
        let mut core = self.core();
        if !suspect_alerts.is_empty() {
            // Keep the start time of one already firing.
            let mut list = suspect_alerts;
            for a in &mut list {
                if let Some(old) = core
                    .router
                    .alerts()
                    .find(|o| o.labels == a.labels && !o.is_resolved(now))
                {
                    a.starts_at = old.starts_at;
                }
            }
            core.router.ingest(list, now);
        }
        core.history.extend(entries);
    }

    #[allow(clippy::too_many_arguments)]
    fn action_event(
        &self,
        now: DateTime<Utc>,
        kind: rules::ActionKind,
        scope: &str,
        target: &str,
        rule: &str,
        state: &str,
        message: &str,
    ) {
        let (app, task, node, ekind) = match kind {
            rules::ActionKind::RemoveInstance => (
                Some(scope.to_string()),
                Some(target.to_string()),
                None,
                "instance_removed",
            ),
            rules::ActionKind::RemoveNode => (None, None, Some(target.to_string()), "node_removed"),
        };
        let ekind = match state {
            "done" => ekind.to_string(),
            "readmitted" => "node_readmitted".to_string(),
            other => format!("action_{other}"),
        };
        self.emit(Event {
            v: 1,
            ts: now,
            id: uuid::Uuid::new_v4().to_string(),
            source: EventSource::Alertman,
            kind: ekind,
            severity: if state == "suspect_monitoring" {
                EventSeverity::Critical
            } else {
                EventSeverity::Warning
            },
            app,
            task,
            node,
            message: message.to_string(),
            attrs: [
                ("rule".to_string(), serde_json::json!(rule)),
                ("outcome".to_string(), serde_json::json!(state)),
            ]
            .into(),
        });
    }

    /// Sends the notifications due now; returns their delivery tasks.
    pub fn flush(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let now = self.now();
        let (notes, config) = {
            let mut core = self.core();
            let core = &mut *core;
            let notes = core.router.flush(now, &core.silences);
            (notes, Arc::clone(&core.config))
        };
        let mut tasks = Vec::new();
        for n in notes {
            let me = self.clone();
            let receiver = config.receivers.get(&n.receiver).cloned();
            tasks.push(tokio::spawn(async move {
                me.deliver(receiver, n).await;
            }));
        }
        self.persist(None);
        tasks
    }

    async fn deliver(&self, receiver: Option<rules::Receiver>, n: Notification) {
        let (outcome, kind) = match &receiver {
            Some(r) => (
                receivers::deliver(&self.inner.delivery, r, &n).await,
                receivers::kind(r),
            ),
            None => (
                receivers::Outcome {
                    attempts: 0,
                    error: Some(format!(
                        "the receiver {} is no longer configured",
                        n.receiver
                    )),
                },
                "none",
            ),
        };
        let m = &self.inner.metrics;
        let ok = outcome.error.is_none();
        m.notifications
            .get_or_create(&ReceiverLabels {
                kind: kind.into(),
                outcome: if ok { "sent" } else { "failed" }.into(),
            })
            .inc();
        m.delivery_failures
            .inc_by(u64::from(outcome.attempts.saturating_sub(u32::from(ok))));
        let names: Vec<String> = n
            .alerts
            .iter()
            .map(|a| a.name().to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let message = match &outcome.error {
            None => {
                tracing::info!(receiver = %n.receiver, group = %n.group_key, alerts = n.alerts.len(), status = n.status, attempts = outcome.attempts, "notification sent");
                format!(
                    "{} {} alert(s) ({}) to {} in {} attempt(s)",
                    n.status,
                    n.alerts.len(),
                    names.join(", "),
                    n.receiver,
                    outcome.attempts
                )
            }
            Some(e) => {
                tracing::error!(receiver = %n.receiver, group = %n.group_key, attempts = outcome.attempts, error = %e, "notification failed; the next group interval tries again");
                format!(
                    "{} {} alert(s) to {} failed after {} attempt(s): {e}",
                    n.status,
                    n.alerts.len(),
                    n.receiver,
                    outcome.attempts
                )
            }
        };
        {
            let mut core = self.core();
            if !ok {
                core.router.delivery_failed(&n);
            }
            core.history.push(HistoryEntry {
                ts: self.now(),
                kind: HistoryKind::Notification,
                rule: (names.len() == 1).then(|| names[0].clone()),
                app: n
                    .group_labels
                    .get("app")
                    .cloned()
                    .or_else(|| n.alerts.first().and_then(|a| a.labels.get("app").cloned())),
                state: if ok { "sent" } else { "failed" }.into(),
                from: None,
                labels: n.group_labels.clone(),
                value: None,
                receiver: Some(n.receiver.clone()),
                message,
            });
        }
        self.persist(None);
    }

    /// Writes what changed (routing, silences, history; the evaluator's alerts when given).
    fn persist(
        &self,
        rule_alerts: Option<BTreeMap<String, BTreeMap<u64, crate::eval::RuleAlert>>>,
    ) {
        let changes = {
            let mut core = self.core();
            let (alerts, nflog) = core.router.take_dirty();
            Changes {
                alerts,
                rule_alerts,
                silences: std::mem::take(&mut core.silences_changed),
                silences_removed: std::mem::take(&mut core.silences_removed),
                nflog,
                history: std::mem::take(&mut core.history),
            }
        };
        if let Err(e) = self.inner.store.save(&changes) {
            tracing::error!(error = %e, "cannot save alertman state");
        }
    }

    /// Reloads the rule files. A bad reload keeps the running rules; the error says why.
    pub fn reload(&self) -> Result<usize, LoadError> {
        let now = self.now();
        let result = rules::load(&self.inner.cfg.rule_paths);
        let mut core = self.core();
        core.stamps = stamps(&self.inner.cfg.rule_paths);
        match result {
            Ok(cfg) => {
                let n = cfg.rules.len();
                core.router.configure(
                    cfg.route.clone(),
                    cfg.inhibit.clone(),
                    send_resolved_of(&cfg),
                    now,
                );
                core.reload = ReloadStatus {
                    ok: true,
                    at: now,
                    error: None,
                    files: cfg.files.clone(),
                    rules: n,
                };
                core.config = Arc::new(cfg);
                self.inner.metrics.rules.set(n as i64);
                tracing::info!(rules = n, "alert rules reloaded");
                core.history
                    .push(rules_entry(now, "loaded", format!("{n} rule(s) loaded")));
                drop(core);
                self.persist(None);
                Ok(n)
            }
            Err(e) => {
                self.inner.metrics.reload_failures.inc();
                tracing::error!(error = %e, "alert rules not reloaded: the running rules stay in force");
                core.reload.ok = false;
                core.reload.at = now;
                core.reload.error = Some(e.to_string());
                core.history.push(rules_entry(
                    now,
                    "refused",
                    format!("reload refused, the running rules stay in force: {e}"),
                ));
                drop(core);
                self.persist(None);
                Err(e)
            }
        }
    }

    /// Whether a rule file changed (or appeared or went) since the last load.
    pub fn files_changed(&self) -> bool {
        let now = stamps(&self.inner.cfg.rule_paths);
        self.core().stamps != now
    }

    /// The status of the last reload.
    pub fn reload_status(&self) -> ReloadStatus {
        self.core().reload.clone()
    }

    /// Runs until `stop` turns true: evaluations, notifications, reloads, history retention.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut next_eval = tokio::time::Instant::now();
        let mut next_file_check = tokio::time::Instant::now() + Duration::from_secs(2);
        let mut next_prune = tokio::time::Instant::now();
        loop {
            let hup_recv = async {
                match hup.as_mut() {
                    Some(h) => {
                        h.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                _ = hup_recv => {
                    tracing::info!("SIGHUP: reloading alert rules");
                    let _ = self.reload();
                }
                // Until the next group is due (not the next whole second: a group's
                // notification goes out at its group_wait / group_interval, as in
                // Alertmanager), at most a second; or alerts were posted.
                _ = tokio::time::sleep(self.nap()) => {}
                _ = self.inner.wake.notified() => {}
            }
            let t = tokio::time::Instant::now();
            if t >= next_file_check {
                next_file_check = t + Duration::from_secs(2);
                if self.files_changed() {
                    tracing::info!("a rule file changed: reloading alert rules");
                    let _ = self.reload();
                }
            }
            if t >= next_eval {
                next_eval = t + self.inner.cfg.eval_interval;
                self.evaluate().await;
            }
            drop(self.flush());
            if t >= next_prune {
                next_prune = t + Duration::from_secs(3600);
                let now = self.now();
                let keep = chrono::Duration::from_std(self.inner.cfg.history_retention)
                    .unwrap_or_default();
                if let Err(e) = self.inner.store.prune_history(now - keep) {
                    tracing::warn!(error = %e, "cannot prune the alert history");
                }
                let removed = self.core().silences.gc(now, chrono::Duration::days(5));
                if !removed.is_empty() {
                    self.core().silences_removed.extend(removed);
                    self.persist(None);
                }
            }
        }
        self.persist(None);
    }

    // === API ===

    /// Every alert: firing ones (rules' and posted ones) and pending ones, with why each is
    /// muted.
    pub async fn alerts(&self) -> Vec<AlertView> {
        let now = self.now();
        let pending: Vec<(String, crate::eval::RuleAlert)> = {
            let ev = self.inner.evaluator.lock().await;
            ev.states
                .iter()
                .flat_map(|(r, m)| {
                    m.values()
                        .filter(|a| a.state == AlertState::Pending)
                        .map(move |a| (r.clone(), a.clone()))
                })
                .collect()
        };
        let core = self.core();
        let mut out: Vec<AlertView> = core
            .router
            .alerts()
            .filter(|a| !a.is_resolved(now))
            .map(|a| {
                let muted = core.router.muted(a, &core.silences, now);
                AlertView::new(a, AlertState::Firing, muted)
            })
            .collect();
        for (rule, a) in pending {
            let alert = Alert {
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at: a.active_at,
                ends_at: None,
                updated_at: a.last_true,
                generator_url: String::new(),
                receivers: core
                    .config
                    .rules
                    .iter()
                    .find(|r| r.name == rule)
                    .map(|r| r.receivers.clone())
                    .unwrap_or_default(),
                value: a.value,
                rule: Some(rule),
            };
            let muted = core.router.muted(&alert, &core.silences, now);
            out.push(AlertView::new(&alert, AlertState::Pending, muted));
        }
        out.sort_by(|a, b| (a.state, &a.labels).cmp(&(b.state, &b.labels)));
        out
    }

    /// The rules with their health.
    pub async fn rules(&self) -> Vec<RuleView> {
        let health = self.inner.evaluator.lock().await.health.clone();
        let config = self.config();
        config
            .rules
            .iter()
            .map(|r| RuleView {
                name: r.name.clone(),
                kind: match r.kind {
                    rules::RuleKind::Metric { .. } => "metric",
                    rules::RuleKind::Log { .. } => "log",
                    rules::RuleKind::Absence { .. } => "absence",
                },
                expr: r.expr(),
                for_s: r.for_.as_secs(),
                keep_firing_for_s: r.keep_firing_for.as_secs(),
                severity: r.severity.as_str(),
                receivers: r.receivers.clone(),
                action: r.action.clone(),
                file: r.file.clone(),
                line: r.line,
                health: health.get(&r.name).cloned(),
            })
            .collect()
    }

    /// The history.
    pub fn history(&self, q: &HistoryQuery) -> Result<Vec<HistoryEntry>, AlertmanError> {
        self.persist(None);
        self.inner.store.history(q)
    }

    /// Every silence.
    pub fn silences(&self) -> Vec<(Silence, &'static str)> {
        let now = self.now();
        let core = self.core();
        let mut v: Vec<(Silence, &'static str)> = core
            .silences
            .all()
            .map(|s| {
                let st = match s.state(now) {
                    crate::silence::SilenceState::Active => "active",
                    crate::silence::SilenceState::Pending => "pending",
                    crate::silence::SilenceState::Expired => "expired",
                };
                (s.clone(), st)
            })
            .collect();
        v.sort_by_key(|s| std::cmp::Reverse(s.0.updated_at));
        v
    }

    /// One silence.
    pub fn silence(&self, id: &str) -> Option<(Silence, &'static str)> {
        self.silences().into_iter().find(|s| s.0.id == id)
    }

    /// Adds (or updates) a silence.
    pub fn add_silence(&self, s: Silence) -> Result<Silence, AlertmanError> {
        let now = self.now();
        let mut core = self.core();
        let s = core
            .silences
            .upsert(s, now)
            .map_err(AlertmanError::BadRequest)?;
        tracing::info!(silence = %s.id, by = %s.created_by, matchers = ?s.matchers.iter().map(|m| m.to_string()).collect::<Vec<_>>(), "silence created");
        core.silences_changed.push(s.clone());
        core.history.push(silence_entry(now, &s, "created"));
        drop(core);
        self.persist(None);
        Ok(s)
    }

    /// Expires a silence now.
    pub fn expire_silence(&self, id: &str) -> Result<Silence, AlertmanError> {
        let now = self.now();
        let mut core = self.core();
        let s = core.silences.expire(id, now).map_err(|e| {
            if e.starts_with("no silence") {
                AlertmanError::NotFound(e)
            } else {
                AlertmanError::BadRequest(e)
            }
        })?;
        core.silences_changed.push(s.clone());
        core.history.push(silence_entry(now, &s, "expired"));
        drop(core);
        self.persist(None);
        Ok(s)
    }

    /// Takes alerts posted by Prometheus (or anyone): each fires until its `ends_at` (5 min
    /// from now when it has none) unless posted again.
    pub fn post_alerts(&self, alerts: Vec<Alert>) {
        let now = self.now();
        let mut core = self.core();
        let receivers = core.config.route.receivers.clone();
        let known: std::collections::BTreeSet<u64> = core
            .router
            .alerts()
            .filter(|a| !a.is_resolved(now))
            .map(Alert::fingerprint)
            .collect();
        let mut list = Vec::new();
        for mut a in alerts {
            if a.receivers.is_empty() {
                a.receivers = receivers.clone();
            }
            if a.ends_at.is_none() {
                a.ends_at = Some(now + chrono::Duration::minutes(5));
            }
            a.updated_at = now;
            if !known.contains(&a.fingerprint()) && !a.is_resolved(now) {
                core.history.push(HistoryEntry {
                    ts: now,
                    kind: HistoryKind::Transition,
                    rule: Some(a.name().to_string()),
                    app: a.labels.get("app").cloned(),
                    state: "firing".into(),
                    from: Some("inactive".into()),
                    labels: a.labels.clone(),
                    value: None,
                    receiver: None,
                    message: format!("alert {} posted through the API", a.name()),
                });
            }
            list.push(a);
        }
        core.router.ingest(list, now);
        drop(core);
        self.persist(None);
        self.inner.wake.notify_one();
    }

    /// How long the loop sleeps: until the next group is due, at most a second.
    fn nap(&self) -> Duration {
        let due = self.core().router.next_due();
        nap_until(self.now(), due)
    }

    /// For `/api/v2/status`.
    pub fn started(&self) -> DateTime<Utc> {
        self.inner.started
    }
}

/// How long to sleep at `now` when the next group is due at `due`: until then, at least
/// 5 ms (no busy loop on a clock that does not move), at most a second (evaluations, file
/// checks and history pruning are looked at every second).
fn nap_until(now: DateTime<Utc>, due: Option<DateTime<Utc>>) -> Duration {
    let most = Duration::from_secs(1);
    due.map_or(most, |d| {
        (d - now)
            .to_std()
            .unwrap_or_default()
            .clamp(Duration::from_millis(5), most)
    })
}

/// How many members of an action's scope the firing alerts of one rule name: each alert is
/// an instance for `remove_instance`; for `remove_node`, alerts of the same node are one.
fn unhealthy_members(
    kind: rules::ActionKind,
    alerts: &[(Fingerprint, &crate::eval::RuleAlert)],
) -> usize {
    match kind {
        rules::ActionKind::RemoveInstance => alerts.len(),
        rules::ActionKind::RemoveNode => alerts
            .iter()
            .filter_map(|(_, a)| a.labels.get("node"))
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
    }
}

fn action_entry(
    now: DateTime<Utc>,
    rule: &str,
    a: &crate::eval::RuleAlert,
    state: &str,
    message: String,
) -> HistoryEntry {
    HistoryEntry {
        ts: now,
        kind: HistoryKind::Action,
        rule: Some(rule.to_string()),
        app: a.labels.get("app").cloned(),
        state: state.into(),
        from: None,
        labels: a.labels.clone(),
        value: a.value,
        receiver: None,
        message,
    }
}

fn rules_entry(now: DateTime<Utc>, state: &str, message: String) -> HistoryEntry {
    HistoryEntry {
        ts: now,
        kind: HistoryKind::Rules,
        rule: None,
        app: None,
        state: state.into(),
        from: None,
        labels: LabelSet::new(),
        value: None,
        receiver: None,
        message,
    }
}

fn silence_entry(now: DateTime<Utc>, s: &Silence, state: &str) -> HistoryEntry {
    let matchers: Vec<String> = s.matchers.iter().map(|m| m.to_string()).collect();
    HistoryEntry {
        ts: now,
        kind: HistoryKind::Silence,
        rule: s
            .matchers
            .iter()
            .find(|m| m.name == "alertname" && m.is_equal && !m.is_regex)
            .map(|m| m.value.clone()),
        app: s
            .matchers
            .iter()
            .find(|m| m.name == "app" && m.is_equal && !m.is_regex)
            .map(|m| m.value.clone()),
        state: state.into(),
        from: None,
        labels: LabelSet::new(),
        value: None,
        receiver: None,
        message: format!(
            "silence {} {state} by {} until {}: {} ({})",
            s.id,
            s.created_by,
            receivers::fmt_time(s.ends_at),
            matchers.join(", "),
            s.comment
        ),
    }
}

/// An alert as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    /// 16 hex digits.
    pub fingerprint: String,
    /// `firing` or `pending`.
    pub state: AlertState,
    /// The rule (none for posted alerts).
    pub rule: Option<String>,
    /// Labels.
    pub labels: LabelSet,
    /// Annotations.
    pub annotations: LabelSet,
    /// Value.
    pub value: Option<f64>,
    /// Since.
    pub starts_at: DateTime<Utc>,
    /// Until (posted alerts).
    pub ends_at: Option<DateTime<Utc>>,
    /// Last update.
    pub updated_at: DateTime<Utc>,
    /// Receivers.
    pub receivers: Vec<String>,
    /// Why it is not notified.
    #[serde(flatten)]
    pub muted: Muted,
    /// A link to what produced it.
    pub generator_url: String,
}

impl AlertView {
    fn new(a: &Alert, state: AlertState, muted: Muted) -> Self {
        Self {
            fingerprint: fingerprint_hex(a.fingerprint()),
            state,
            rule: a.rule.clone(),
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            value: a.value,
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            updated_at: a.updated_at,
            receivers: a.receivers.clone(),
            muted,
            generator_url: a.generator_url.clone(),
        }
    }
}

/// A rule as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    /// Name.
    pub name: String,
    /// metric, log, absence.
    pub kind: &'static str,
    /// One line.
    pub expr: String,
    /// `for`, seconds.
    pub for_s: u64,
    /// `keep_firing_for`, seconds.
    pub keep_firing_for_s: u64,
    /// Severity.
    pub severity: &'static str,
    /// Receivers.
    pub receivers: Vec<String>,
    /// Action.
    pub action: Option<rules::ActionConfig>,
    /// File.
    pub file: PathBuf,
    /// Line.
    pub line: usize,
    /// Health after the last evaluation.
    pub health: Option<RuleHealth>,
}

#[cfg(test)]
mod tests {
    use drover_schema::time::{Clock as _, ManualClock};

    use super::*;
    use crate::{matcher::Matcher, source::Fake};

    fn inst(i: &str) -> LabelSet {
        [("instance".to_string(), i.to_string())].into()
    }

    async fn hook_server() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = Arc::clone(&got);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
                let g = Arc::clone(&g);
                async move {
                    g.lock().unwrap().push(v);
                    "ok"
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        (format!("http://{addr}/hook"), got)
    }

    fn rules_file(dir: &std::path::Path, url: &str, threshold: &str) -> PathBuf {
        let p = dir.join("rules.yaml");
        std::fs::write(
            &p,
            format!(
                "version: 1\nreceivers:\n  - name: hook\n    type: webhook\n    url: {url}\nroute:\n  group_wait: 30s\nrules:\n  - name: HighCpu\n    kind: metric\n    metric: cpu_pct\n    by: [instance]\n    threshold: {threshold}\n    for: 1m\n    receivers: [hook]\n"
            ),
        )
        .unwrap();
        p
    }

    #[tokio::test]
    async fn fires_notifies_once_survives_a_restart_and_keeps_silences() {
        let dir = tempfile::tempdir().unwrap();
        let (url, got) = hook_server().await;
        let rules = rules_file(dir.path(), &url, "90");
        let clock = ManualClock::at_ms(1_800_000_000_000);
        let fake = Arc::new(Fake::default());
        fake.set_metric("cpu_pct", vec![(inst("a"), 95.0)]);
        let mut cfg =
            AlertmanConfig::new(vec![rules.clone()], dir.path().join("state"), "http://ui");
        cfg.clock = clock.shared();
        let am = Alertman::open(cfg.clone(), fake.clone(), AlertmanMetrics::new()).unwrap();
        let step = |secs: u64| {
            let am = am.clone();
            let clock = clock.clone();
            async move {
                clock.advance(Duration::from_secs(secs));
                am.evaluate().await;
                for t in am.flush() {
                    t.await.unwrap();
                }
            }
        };
        step(0).await;
        assert_eq!(am.alerts().await[0].state, AlertState::Pending);
        step(60).await; // firing; group_wait starts
        step(30).await; // group_wait over: notified
        assert_eq!(got.lock().unwrap().len(), 1);
        assert_eq!(
            got.lock().unwrap()[0]["alerts"][0]["labels"]["instance"],
            "a"
        );
        // A silence on another alert, kept across the restart.
        let sil = am
            .add_silence(Silence {
                id: String::new(),
                matchers: vec![Matcher::eq("alertname", "Other")],
                starts_at: clock.now(),
                ends_at: clock.now() + chrono::Duration::hours(2),
                created_by: "ana".into(),
                comment: "test".into(),
                updated_at: clock.now(),
            })
            .unwrap();
        drop(am);
        // Restart mid-alert: nothing is sent again within the repeat interval.
        let am = Alertman::open(cfg.clone(), fake.clone(), AlertmanMetrics::new()).unwrap();
        assert_eq!(am.silences()[0].0.id, sil.id);
        for _ in 0..12 {
            clock.advance(Duration::from_secs(300));
            am.evaluate().await;
            for t in am.flush() {
                t.await.unwrap();
            }
        }
        assert_eq!(got.lock().unwrap().len(), 1, "no repeat after the restart");
        let views = am.alerts().await;
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].state, AlertState::Firing);
        // Resolve: notified once.
        fake.set_metric("cpu_pct", vec![(inst("a"), 10.0)]);
        clock.advance(Duration::from_secs(300));
        am.evaluate().await;
        for t in am.flush() {
            t.await.unwrap();
        }
        let got = got.lock().unwrap().clone();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1]["status"], "resolved");
        let h = am
            .history(&HistoryQuery {
                rule: Some("HighCpu".into()),
                ..HistoryQuery::default()
            })
            .unwrap();
        let states: Vec<&str> = h.iter().rev().map(|e| e.state.as_str()).collect();
        assert_eq!(states, ["pending", "firing", "sent", "resolved", "sent"]);
    }

    #[derive(Debug, Default)]
    struct FakeScheduler {
        killed: Mutex<Vec<String>>,
        /// (node, out) per call.
        cordoned: Mutex<Vec<(String, bool)>>,
        instances: usize,
        nodes: usize,
    }

    impl Actuator for FakeScheduler {
        fn instances<'a>(
            &'a self,
            _app: &'a str,
        ) -> futures::future::BoxFuture<'a, Result<usize, String>> {
            Box::pin(async move { Ok(self.instances) })
        }
        fn nodes(&self) -> futures::future::BoxFuture<'_, Result<usize, String>> {
            Box::pin(async move { Ok(self.nodes) })
        }
        fn kill_task<'a>(
            &'a self,
            _app: &'a str,
            task: &'a str,
        ) -> futures::future::BoxFuture<'a, Result<(), String>> {
            Box::pin(async move {
                self.killed.lock().unwrap().push(task.to_string());
                Ok(())
            })
        }
        fn cordon<'a>(
            &'a self,
            node: &'a str,
            on: bool,
        ) -> futures::future::BoxFuture<'a, Result<(), String>> {
            Box::pin(async move {
                self.cordoned.lock().unwrap().push((node.to_string(), on));
                Ok(())
            })
        }
    }

    async fn action_run(
        instances: usize,
        bad: usize,
        dry_run: bool,
        steps: usize,
    ) -> (Vec<String>, Vec<HistoryEntry>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.yaml");
        std::fs::write(
            &p,
            format!("version: 1\nrules:\n  - name: Bad5xx\n    kind: metric\n    metric: error_rate\n    by: [app, instance]\n    threshold: 0.5\n    action: {{type: remove_instance, dry_run: {dry_run}}}\n"),
        )
        .unwrap();
        let clock = ManualClock::at_ms(1_800_000_000_000);
        let fake = Arc::new(Fake::default());
        let groups = (0..instances)
            .map(|i| {
                let l: LabelSet = [
                    ("app".to_string(), "/shop".to_string()),
                    ("instance".to_string(), format!("t{i:02}")),
                ]
                .into();
                (l, if i < bad { 0.9 } else { 0.0 })
            })
            .collect();
        fake.set_metric("error_rate", groups);
        let sched = Arc::new(FakeScheduler {
            instances,
            ..FakeScheduler::default()
        });
        let mut cfg = AlertmanConfig::new(vec![p], dir.path().join("s"), "http://ui");
        cfg.clock = clock.shared();
        cfg.actuator = Some(sched.clone());
        let am = Alertman::open(cfg, fake, AlertmanMetrics::new()).unwrap();
        for _ in 0..steps {
            am.evaluate().await;
            clock.advance(Duration::from_secs(5));
        }
        let h = am
            .history(&HistoryQuery {
                kind: Some(HistoryKind::Action),
                ..HistoryQuery::default()
            })
            .unwrap();
        let killed = sched.killed.lock().unwrap().clone();
        (killed, h)
    }

    #[tokio::test]
    async fn actions_stay_within_the_caps() {
        // 30 instances, 5 bad: at most 3 per 5 minutes, one per 10 s (evaluations every 5 s).
        let (killed, h) = action_run(30, 5, false, 12).await;
        assert_eq!(killed.len(), 3, "{killed:?}");
        assert!(
            killed.iter().all(|t| t.as_str() < "t05"),
            "only unhealthy ones: {killed:?}"
        );
        assert!(
            h.iter()
                .any(|e| e.state == "refused" && e.message.contains("cap: 3 of 30")),
            "{h:#?}"
        );
        // 10 instances, 6 bad: suspect the monitoring, remove none, and say so.
        let (killed, h) = action_run(10, 6, false, 4).await;
        assert!(killed.is_empty());
        assert_eq!(
            h.iter().filter(|e| e.state == "suspect_monitoring").count(),
            1,
            "{h:#?}"
        );
        // Dry run: says what it would do, does nothing.
        let (killed, h) = action_run(30, 1, true, 3).await;
        assert!(killed.is_empty());
        assert_eq!(h.iter().filter(|e| e.state == "dry_run").count(), 1);
        assert!(
            h[0].message.contains("would kill task t00 of /shop"),
            "{h:#?}"
        );
    }

    #[test]
    fn the_loop_wakes_when_the_next_group_is_due() {
        let now = ManualClock::at_ms(1_800_000_000_000).now();
        let ms = chrono::Duration::milliseconds;
        assert_eq!(nap_until(now, None), Duration::from_secs(1));
        assert_eq!(
            nap_until(now, Some(now + ms(2_300))),
            Duration::from_secs(1)
        );
        assert_eq!(
            nap_until(now, Some(now + ms(250))),
            Duration::from_millis(250)
        );
        assert_eq!(nap_until(now, Some(now - ms(10))), Duration::from_millis(5));
    }

    /// Three instances on each of `nodes` nodes, a rule by node and instance: the instances
    /// of the nodes in `bad` are unhealthy.
    fn node_groups(nodes: usize, bad: &[usize]) -> Vec<(LabelSet, f64)> {
        (0..nodes * 3)
            .map(|i| {
                let node = i % nodes;
                let l: LabelSet = [
                    ("node".to_string(), format!("n{node}")),
                    ("instance".to_string(), format!("t{i:02}")),
                ]
                .into();
                (l, if bad.contains(&node) { 95.0 } else { 5.0 })
            })
            .collect()
    }

    #[tokio::test]
    async fn remove_node_counts_nodes_not_alerts_drains_once_and_readmits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.yaml");
        std::fs::write(
            &p,
            "version: 1\nrules:\n  - name: NodeHot\n    kind: metric\n    metric: cpu_pct\n    by: [node, instance]\n    threshold: 90\n    action: {type: remove_node}\n",
        )
        .unwrap();
        let clock = ManualClock::at_ms(1_800_000_000_000);
        let fake = Arc::new(Fake::default());
        // 4 nodes, one bad: its 3 instances fire 3 alerts, yet 1 of 4 nodes is unhealthy
        // (counting alerts, 3 of 4 would have looked like "suspect the monitoring").
        fake.set_metric("cpu_pct", node_groups(4, &[0]));
        let sched = Arc::new(FakeScheduler {
            nodes: 4,
            ..FakeScheduler::default()
        });
        let mut cfg = AlertmanConfig::new(vec![p], dir.path().join("s"), "http://ui");
        cfg.clock = clock.shared();
        cfg.actuator = Some(sched.clone());
        cfg.caps.readmit_base = Duration::from_secs(60);
        let am = Alertman::open(cfg, fake.clone(), AlertmanMetrics::new()).unwrap();
        for _ in 0..6 {
            am.evaluate().await;
            clock.advance(Duration::from_secs(5));
        }
        assert_eq!(
            *sched.cordoned.lock().unwrap(),
            [("n0".to_string(), true)],
            "drained once, though three alerts name it"
        );
        let h = am
            .history(&HistoryQuery {
                kind: Some(HistoryKind::Action),
                ..HistoryQuery::default()
            })
            .unwrap();
        assert!(
            !h.iter()
                .any(|e| e.state == "suspect_monitoring" || e.state == "refused"),
            "{h:#?}"
        );
        assert!(
            h.iter()
                .any(|e| e.state == "done" && e.message.contains("cordon and drain node n0")),
            "{h:#?}"
        );
        // Healthy again (its tasks moved away): uncordoned once the back-off (60 s) passed.
        fake.set_metric("cpu_pct", node_groups(4, &[]));
        am.evaluate().await;
        assert_eq!(sched.cordoned.lock().unwrap().len(), 1, "not before 60 s");
        clock.advance(Duration::from_secs(31));
        am.evaluate().await;
        assert_eq!(
            sched.cordoned.lock().unwrap().last().unwrap(),
            &("n0".to_string(), false)
        );
        // Three of four nodes bad: act on none.
        fake.set_metric("cpu_pct", node_groups(4, &[1, 2, 3]));
        for _ in 0..4 {
            clock.advance(Duration::from_secs(15));
            am.evaluate().await;
        }
        assert_eq!(sched.cordoned.lock().unwrap().len(), 2, "nothing drained");
        let h = am
            .history(&HistoryQuery {
                kind: Some(HistoryKind::Action),
                ..HistoryQuery::default()
            })
            .unwrap();
        assert!(
            h.iter()
                .any(|e| e.state == "suspect_monitoring" && e.message.contains("3 of 4 in nodes")),
            "{h:#?}"
        );
    }

    #[tokio::test]
    async fn a_bad_reload_keeps_the_running_rules_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let rules = rules_file(dir.path(), "http://127.0.0.1:9/hook", "90");
        let cfg = AlertmanConfig::new(vec![rules.clone()], dir.path().join("state"), "http://ui");
        let am = Alertman::open(cfg, Arc::new(Fake::default()), AlertmanMetrics::new()).unwrap();
        assert!(!am.files_changed());
        std::fs::write(&rules, "version: 1\nrules:\n  - name: X\n    kind: metric\n    metric: nope\n    threshold: 1\n").unwrap();
        let e = am.reload().unwrap_err();
        assert!(
            e.to_string()
                .contains("rules.yaml:5: rules[0] (X).metric: unknown metric"),
            "{e}"
        );
        assert_eq!(am.config().rules[0].name, "HighCpu");
        let st = am.reload_status();
        assert!(!st.ok && st.error.unwrap().contains("unknown metric"));
        assert_eq!(am.metrics().reload_failures.get(), 1);
        rules_file(dir.path(), "http://127.0.0.1:9/hook", "80");
        assert_eq!(am.reload().unwrap(), 1);
        assert!(am.reload_status().ok);
    }
}
