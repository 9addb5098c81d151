//! The decision engine: pure, no IO, the time given by the caller (the live loop reads its
//! injected [`Clock`](drover_schema::time::Clock); the simulator its own). One call per tick:
//!
//! 1. no change while a deployment of the target is in progress;
//! 2. per metric, HPA's proportional rule — desired = ceil(ready × value / target) (for a
//!    total such as concurrency: ceil(total / target)) — unless the value is within the
//!    tolerance of the target (then: the current count); a latency over its SLO asks for at
//!    least one more instance (×value/SLO, at most doubling) and never for fewer; a latency
//!    within its SLO has no opinion; the largest recommendation wins;
//! 3. missing or stale metrics never lower the count;
//! 4. KPA's panic mode: when the short window asks for `threshold` × the ready instances,
//!    panic until one (stable) window passes without that; while panicking the count only
//!    rises;
//! 5. HPA's stabilization: the recommendation history; up-window → its minimum, down-window
//!    → its maximum;
//! 6. cooldowns, then HPA's rate policies (`behavior`), then the policy's bounds;
//! 7. the split over the service's groups ([`crate::plan`]).
//!
//! The answer is a [`Decision`] that says all of it: the inputs, each metric's
//! recommendation, which rule won, and what held the count back.
use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{
    plan::{self, GroupChange, GroupObs},
    policy::{MetricSpec, Policy, RateKind, Rules, Select, Target},
};

/// A metric as read for one tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MetricObs {
    /// Over the policy's window (None: no samples, or stale).
    pub value: Option<f64>,
    /// Over the short (panic) window: the panic mode's input for totals, and what a
    /// latency SLO is judged on (a symptom that answers at once to added capacity: averaged
    /// over the long window it would keep asking for more after the fix has landed).
    pub recent: Option<f64>,
}

/// What a tick sees.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Observation {
    /// The groups in order (an app: itself).
    pub groups: Vec<GroupObs>,
    /// A deployment of the target is in progress.
    pub deploying: bool,
    /// One per policy metric, same order.
    pub metrics: Vec<MetricObs>,
}

/// Panic mode's state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PanicState {
    /// When it began.
    pub since: DateTime<Utc>,
    /// The last tick over the threshold.
    pub last_over: DateTime<Utc>,
    /// The highest count asked for while panicking.
    pub max: u32,
}

/// What the engine remembers between ticks of one policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct State {
    /// Recommendations (time, total) for the stabilization windows.
    pub recommendations: VecDeque<(DateTime<Utc>, u32)>,
    /// Changes made (time, +/- instances) for the rate policies.
    pub changes: VecDeque<(DateTime<Utc>, i64)>,
    /// Panic mode, when on.
    pub panic: Option<PanicState>,
    /// The last scale-up.
    pub last_up: Option<DateTime<Utc>>,
    /// The last change of either direction.
    pub last_change: Option<DateTime<Utc>>,
    /// Since when the load has fit in one group fewer (below the fill threshold).
    pub below_fill_since: Option<DateTime<Utc>>,
    /// When every instance of the last scale-up was first seen ready.
    pub ready_since: Option<DateTime<Utc>>,
    /// Each metric's last two distinct short-window values (is a queue draining?).
    pub last_recent: Vec<(Option<f64>, Option<f64>)>,
}

/// A rule that held the count back (or the reason nothing was done).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    /// `deployment`, `missing_metrics`, `latency_slo`, `panic`, `stabilization_up`,
    /// `stabilization_down`, `cooldown_up`, `cooldown_down`, `rate_up`, `rate_down`,
    /// `bounds`, `groups`.
    pub rule: String,
    /// The count before the rule.
    pub from: u32,
    /// The count after it.
    pub to: u32,
    /// Why, for a person.
    pub detail: String,
}

/// One metric's part in a decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricRec {
    /// `concurrency`, `latency_p95`, `series:in_flight`, ….
    pub metric: String,
    /// The metrics-store series.
    pub series: String,
    /// The value read (None: missing).
    pub value: Option<f64>,
    /// The target (latency: the SLO).
    pub target: f64,
    /// value per ready instance / target (latency: value / SLO).
    pub ratio: Option<f64>,
    /// The count it asks for (None: no opinion).
    pub recommendation: Option<u32>,
    /// Why.
    pub note: String,
}

/// What happened to a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Outcome {
    /// Nothing to change.
    Unchanged,
    /// To be done (the engine's answer; the live loop turns it into one of the others).
    Planned,
    /// `dry_run`: said, not done.
    DryRun,
    /// Done.
    Applied,
    /// The scheduler refused; retried after a back-off.
    Refused {
        /// What the scheduler said.
        reason: String,
        /// When it is tried again.
        retry_at: DateTime<Utc>,
    },
    /// The policy is paused (its app disappeared, …).
    Paused {
        /// Why.
        reason: String,
    },
}

/// One tick of one policy, explained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The policy.
    pub policy: String,
    /// The app or service.
    pub target: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Instances asked for before, in total.
    pub current: u32,
    /// Instances ready before, in total.
    pub ready: u32,
    /// The groups before.
    pub groups_before: Vec<GroupObs>,
    /// Each metric's recommendation.
    pub metrics: Vec<MetricRec>,
    /// The largest recommendation (or the current count when there is none).
    pub recommended: u32,
    /// The rule that won (`concurrency`, `latency_p95`, `panic`, `none`).
    pub winner: String,
    /// Panic mode after this tick.
    pub panic: bool,
    /// The rules that held the count back, in order.
    pub held: Vec<Hold>,
    /// The total asked for after every rule.
    pub desired: u32,
    /// Groups resized (only those that change).
    pub resize: Vec<GroupChange>,
    /// Groups added.
    pub add: Vec<GroupChange>,
    /// The group drained and removed.
    pub remove: Option<String>,
    /// What happened.
    pub outcome: Outcome,
}

impl Decision {
    /// Whether it changes anything.
    pub fn changes(&self) -> bool {
        !self.resize.is_empty() || !self.add.is_empty() || self.remove.is_some()
    }

    /// Whether it is worth keeping: it changes something, or could have (a recommendation
    /// other than the current count, a rule that held, panic, a refusal or a pause).
    pub fn interesting(&self) -> bool {
        self.changes()
            || self.recommended != self.current
            || !self.held.is_empty()
            || self.panic
            || !matches!(self.outcome, Outcome::Unchanged | Outcome::Planned)
    }

    /// Several lines for a person (`drover autoscale explain APP`): the inputs, each
    /// metric's recommendation, the winner, what held the count back, what was done.
    pub fn explain(&self) -> String {
        let outcome = match &self.outcome {
            Outcome::Unchanged => "unchanged".to_string(),
            Outcome::Planned => "planned".to_string(),
            Outcome::DryRun => "dry run: not done".to_string(),
            Outcome::Applied => "applied".to_string(),
            Outcome::Refused { reason, retry_at } => format!(
                "refused: {reason}; retried after {}",
                retry_at.format("%H:%M:%S")
            ),
            Outcome::Paused { reason } => format!("paused: {reason}"),
        };
        let mut s = format!(
            "{} ({}) at {}: {} → {} instances — {outcome}\n",
            self.target,
            self.policy,
            self.at.format("%Y-%m-%d %H:%M:%S"),
            self.current,
            self.desired
        );
        for g in &self.groups_before {
            s.push_str(&format!(
                "  group {}: {} asked, {} ready\n",
                g.app, g.instances, g.ready
            ));
        }
        for m in &self.metrics {
            let value = m.value.map_or("missing".to_string(), |v| format!("{v:.2}"));
            let rec = m
                .recommendation
                .map_or("no opinion".to_string(), |n| n.to_string());
            s.push_str(&format!(
                "  {}: {value} (target {}) → {rec}: {}\n",
                m.metric, m.target, m.note
            ));
        }
        s.push_str(&format!(
            "  largest: {} ({}){}\n",
            self.recommended,
            self.winner,
            if self.panic { ", in panic mode" } else { "" }
        ));
        for h in &self.held {
            s.push_str(&format!(
                "  held by {}: {} → {}: {}\n",
                h.rule, h.from, h.to, h.detail
            ));
        }
        for g in &self.resize {
            s.push_str(&format!("  resize {}: {} → {}\n", g.app, g.from, g.to));
        }
        for g in &self.add {
            s.push_str(&format!("  add {} with {}\n", g.app, g.to));
        }
        if let Some(r) = &self.remove {
            s.push_str(&format!("  drain and remove {r}\n"));
        }
        s
    }

    /// One line for a person and for events.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}: {} → {} instances ({} wins",
            self.target, self.current, self.desired, self.winner
        );
        if let Some(h) = self.held.last() {
            s.push_str(&format!(", held by {}", h.rule));
        }
        s.push(')');
        for a in &self.add {
            s.push_str(&format!("; add {} with {}", a.app, a.to));
        }
        if let Some(r) = &self.remove {
            s.push_str(&format!("; remove {r}"));
        }
        s
    }
}

/// One metric's recommendation from `value` with `current` instances asked for and `ready`
/// ready.
pub fn recommend(
    spec: &MetricSpec,
    value: Option<f64>,
    current: u32,
    ready: u32,
    tolerance: f64,
) -> MetricRec {
    let mut rec = MetricRec {
        metric: spec.label(),
        series: spec.series.clone(),
        value,
        target: spec.target,
        ratio: None,
        recommendation: None,
        note: String::new(),
    };
    let Some(v) = value.filter(|v| v.is_finite() && *v >= 0.0) else {
        rec.note = "no data in the window: holds the count, never lowers it".into();
        return rec;
    };
    if spec.kind.is_latency() {
        let ratio = v / spec.target;
        rec.ratio = Some(ratio);
        if ratio > 1.0 + tolerance && ready < current {
            // instances asked for are still starting: their capacity is not in the figure
            // yet, so hold (never fall) rather than add again on the same evidence
            rec.recommendation = Some(current);
            rec.note = format!(
                "{v:.0} ms over the SLO {:.0} ms, {} instance(s) still starting: holds",
                spec.target,
                current - ready
            );
        } else if ratio > 1.0 + tolerance {
            let n = ((current as f64) * ratio.min(2.0)).ceil() as u32;
            rec.recommendation = Some(n.max(current + 1));
            rec.note = format!(
                "{v:.0} ms over the SLO {:.0} ms: at least one more",
                spec.target
            );
        } else {
            rec.note = "within the SLO: no opinion".into();
        }
        return rec;
    }
    if spec.kind.is_total() {
        let ratio = v / (spec.target * ready.max(1) as f64);
        rec.ratio = Some(ratio);
        if ready > 0 && (ratio - 1.0).abs() <= tolerance {
            rec.recommendation = Some(current);
            rec.note = "within the tolerance".into();
        } else {
            rec.recommendation = Some((v / spec.target).ceil() as u32);
            rec.note = format!("{v:.2} in total / {} per instance", spec.target);
        }
        return rec;
    }
    if ready == 0 {
        rec.note = "no ready instance to average over: holds the count".into();
        return rec;
    }
    let ratio = v / spec.target;
    rec.ratio = Some(ratio);
    if (ratio - 1.0).abs() <= tolerance {
        rec.recommendation = Some(current);
        rec.note = "within the tolerance".into();
    } else {
        rec.recommendation = Some((ratio * ready as f64).ceil() as u32);
        rec.note = format!("{v:.2} per instance / {}", spec.target);
    }
    rec
}

impl State {
    /// Rebuilds the stabilization history from the metrics' history (time, one value per
    /// policy metric) with `current`/`ready` instances, so that a restart does not forget a
    /// recent peak.
    pub fn seed(
        &mut self,
        policy: &Policy,
        history: &[(DateTime<Utc>, Vec<Option<f64>>)],
        current: u32,
        ready: u32,
    ) {
        for (t, values) in history {
            let recs: Vec<u32> = policy
                .metrics
                .iter()
                .zip(values)
                .filter_map(|(m, v)| {
                    recommend(m, *v, current, ready, policy.tolerance).recommendation
                })
                .collect();
            if let Some(&max) = recs.iter().max() {
                self.recommendations.push_back((*t, max));
            }
        }
        self.recommendations
            .make_contiguous()
            .sort_by_key(|(t, _)| *t);
    }

    /// Records what was done about `d` (call it once the scheduler accepted the change): the
    /// rate policies and cooldowns count from here.
    pub fn applied(&mut self, d: &Decision) {
        let delta = d.desired as i64 - d.current as i64;
        if !d.changes() {
            return;
        }
        if delta != 0 {
            self.changes.push_back((d.at, delta));
        }
        if delta > 0 {
            self.last_up = Some(d.at);
            self.ready_since = None;
        }
        self.last_change = Some(d.at);
        if d.remove.is_some() {
            self.below_fill_since = None;
        }
    }

    fn forget_before(&mut self, policy: &Policy, now: DateTime<Utc>) {
        let keep = policy.stabilize_up.max(policy.stabilize_down);
        let cut = now - chrono::Duration::from_std(keep).unwrap_or_default();
        while self.recommendations.front().is_some_and(|(t, _)| *t < cut) {
            self.recommendations.pop_front();
        }
        let keep = policy.up.longest().max(policy.down.longest());
        let cut = now - chrono::Duration::from_std(keep).unwrap_or_default();
        while self.changes.front().is_some_and(|(t, _)| *t <= cut) {
            self.changes.pop_front();
        }
    }
}

fn within(now: DateTime<Utc>, t: DateTime<Utc>, d: std::time::Duration) -> bool {
    !d.is_zero() && now - t < chrono::Duration::from_std(d).unwrap_or_default()
}

/// HPA's limit on scaling up from `current`, given the changes of each policy's period.
fn up_limit(
    rules: &Rules,
    changes: &VecDeque<(DateTime<Utc>, i64)>,
    current: u32,
    now: DateTime<Utc>,
) -> u32 {
    if rules.select == Select::Disabled || rules.policies.is_empty() {
        return current;
    }
    let mut limit: Option<u32> = None;
    for p in &rules.policies {
        let added: i64 = changes
            .iter()
            .filter(|(t, d)| *d > 0 && within(now, *t, p.period))
            .map(|(_, d)| d)
            .sum();
        let start = (current as i64 - added).max(0) as f64;
        let l = match p.kind {
            RateKind::Instances => start + p.value,
            RateKind::Percent => (start * (1.0 + p.value / 100.0)).ceil(),
        } as u32;
        limit = Some(match (limit, rules.select) {
            (None, _) => l,
            (Some(x), Select::Min) => x.min(l),
            (Some(x), _) => x.max(l),
        });
    }
    limit.unwrap_or(current).max(current)
}

/// HPA's limit on scaling down from `current`.
fn down_limit(
    rules: &Rules,
    changes: &VecDeque<(DateTime<Utc>, i64)>,
    current: u32,
    now: DateTime<Utc>,
) -> u32 {
    if rules.select == Select::Disabled || rules.policies.is_empty() {
        return current;
    }
    let mut limit: Option<u32> = None;
    for p in &rules.policies {
        let removed: i64 = changes
            .iter()
            .filter(|(t, d)| *d < 0 && within(now, *t, p.period))
            .map(|(_, d)| -d)
            .sum();
        let start = (current as i64 + removed) as f64;
        let l = match p.kind {
            RateKind::Instances => (start - p.value).max(0.0),
            RateKind::Percent => (start * (1.0 - p.value / 100.0)).max(0.0).floor(),
        } as u32;
        limit = Some(match (limit, rules.select) {
            (None, _) => l,
            (Some(x), Select::Min) => x.max(l),
            (Some(x), _) => x.min(l),
        });
    }
    limit.unwrap_or(current).min(current)
}

/// One tick of `policy` at `now`: the decision, and the state moved on (recommendation
/// history, panic mode, the fill timer). Call [`State::applied`] once a change is made.
pub fn decide(
    policy: &Policy,
    state: &mut State,
    obs: &Observation,
    now: DateTime<Utc>,
) -> Decision {
    state.forget_before(policy, now);
    let current: u32 = obs.groups.iter().map(|g| g.instances).sum();
    let ready: u32 = obs.groups.iter().map(|g| g.ready).sum();
    let mut d = Decision {
        policy: policy.name.clone(),
        target: policy.target.id().to_string(),
        at: now,
        current,
        ready,
        groups_before: obs.groups.clone(),
        metrics: Vec::new(),
        recommended: current,
        winner: "none".into(),
        panic: state.panic.is_some(),
        held: Vec::new(),
        desired: current,
        resize: Vec::new(),
        add: Vec::new(),
        remove: None,
        outcome: Outcome::Unchanged,
    };
    // Is a metric's short window falling (a queue draining, a latency recovering)? Then
    // the capacity already there is answering it: no scale-up on that evidence.
    let falling: Vec<bool> = (0..policy.metrics.len())
        .map(|i| {
            let recent = obs.metrics.get(i).and_then(|o| o.recent);
            // the value before the latest report (ticks may see one report twice)
            let before = state
                .last_recent
                .get(i)
                .and_then(|&(prev, last)| if last == recent { prev } else { last });
            policy.confirm_up
                && matches!((recent, before), (Some(r), Some(b)) if r < b * (1.0 - policy.tolerance))
        })
        .collect();
    for (i, m) in policy.metrics.iter().enumerate() {
        let o = obs.metrics.get(i);
        let v = if m.kind.is_latency() {
            o.and_then(|o| o.recent.or(o.value))
        } else {
            o.and_then(|o| o.value)
        };
        let mut r = recommend(m, v, current, ready, policy.tolerance);
        let recent = o.and_then(|o| o.recent);
        if let (true, Some(n)) = (policy.confirm_up, r.recommendation) {
            let confirmed = if falling[i] {
                current
            } else if let (true, Some(recent)) = (m.kind.is_total(), recent) {
                ((recent / m.target).ceil() as u32).max(current)
            } else {
                n
            };
            if n > confirmed {
                r.note = if falling[i] {
                    format!(
                        "{}; the short window is falling (a queue draining): holds",
                        r.note
                    )
                } else {
                    format!("{}; the short window confirms only {confirmed}", r.note)
                };
                r.recommendation = Some(confirmed);
            }
        }
        d.metrics.push(r);
    }
    state.last_recent.resize(obs.metrics.len(), (None, None));
    for (slot, o) in state.last_recent.iter_mut().zip(&obs.metrics) {
        if slot.1 != o.recent {
            *slot = (slot.1, o.recent);
        }
    }
    if obs.deploying {
        d.held.push(Hold {
            rule: "deployment".into(),
            from: current,
            to: current,
            detail: "a deployment of the app is in progress: no change until it ends".into(),
        });
        return d;
    }

    // 2. the largest recommendation
    let mut raw = current;
    if let Some((i, n)) = d
        .metrics
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.recommendation.map(|n| (i, n)))
        .max_by_key(|&(i, n)| (n, std::cmp::Reverse(i)))
    {
        raw = n;
        d.winner = d.metrics[i].metric.clone();
    }
    d.recommended = raw;
    // 3. missing metrics and latency SLOs never lower the count
    let missing: Vec<&str> = d
        .metrics
        .iter()
        .filter(|r| r.value.is_none())
        .map(|r| r.metric.as_str())
        .collect();
    if !missing.is_empty() && raw < current {
        d.held.push(Hold {
            rule: "missing_metrics".into(),
            from: raw,
            to: current,
            detail: format!("no data for {}: never scales down", missing.join(", ")),
        });
        raw = current;
    }
    let over_slo = d
        .metrics
        .iter()
        .zip(&policy.metrics)
        .any(|(r, m)| m.kind.is_latency() && r.recommendation.is_some());
    if over_slo && raw < current {
        d.held.push(Hold {
            rule: "latency_slo".into(),
            from: raw,
            to: current,
            detail: "a latency is over its SLO: capacity does not fall".into(),
        });
        raw = current;
    }

    // 4. panic mode
    if policy.panic.enabled {
        let panic_want = policy
            .metrics
            .iter()
            .zip(&obs.metrics)
            .zip(&falling)
            .filter(|((m, _), falling)| m.kind.is_total() && !**falling)
            .filter_map(|((m, o), _)| o.recent.map(|v| v / m.target))
            .fold(None, |acc: Option<f64>, x| {
                Some(acc.map_or(x, |a| a.max(x)))
            });
        let over = panic_want.is_some_and(|w| w / ready.max(1) as f64 >= policy.panic.threshold);
        match (&mut state.panic, over) {
            (None, true) => {
                state.panic = Some(PanicState {
                    since: now,
                    last_over: now,
                    max: current,
                })
            }
            (Some(p), true) => p.last_over = now,
            (Some(p), false) if !within(now, p.last_over, policy.window) => state.panic = None,
            _ => {}
        }
        if let Some(p) = &mut state.panic {
            let want = panic_want.map(|w| w.ceil() as u32).unwrap_or(0);
            let n = raw.max(want).max(current);
            if n != raw {
                if n > raw && want >= n {
                    d.winner = "panic".into();
                }
                d.held.push(Hold {
                    rule: "panic".into(),
                    from: raw,
                    to: n,
                    detail: format!(
                        "panic mode since {}: the {}s window asks for {want}; no scale-down until {}s without panic",
                        p.since.format("%H:%M:%S"),
                        policy.panic.window.as_secs(),
                        policy.window.as_secs()
                    ),
                });
            }
            p.max = p.max.max(n);
            raw = n;
        }
        d.panic = state.panic.is_some();
    }

    // 5. stabilization
    let load = raw;
    state.recommendations.push_back((now, raw));
    let cut = |w: std::time::Duration| now - chrono::Duration::from_std(w).unwrap_or_default();
    let up_rec = state
        .recommendations
        .iter()
        .filter(|(t, _)| *t > cut(policy.stabilize_up) || *t == now)
        .map(|(_, n)| *n)
        .min()
        .unwrap_or(raw);
    let down_rec = state
        .recommendations
        .iter()
        .filter(|(t, _)| *t > cut(policy.stabilize_down) || *t == now)
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(raw);
    let mut n = current;
    if n < up_rec {
        n = up_rec;
    }
    if n > down_rec {
        n = down_rec;
    }
    if n != raw {
        let (rule, w) = if raw > n {
            ("stabilization_up", policy.stabilize_up)
        } else {
            ("stabilization_down", policy.stabilize_down)
        };
        d.held.push(Hold {
            rule: rule.into(),
            from: raw,
            to: n,
            detail: format!(
                "the {}s window's {} recommendation is {}",
                w.as_secs(),
                if raw > n { "lowest" } else { "highest" },
                if raw > n { up_rec } else { down_rec }
            ),
        });
    }

    // 6. settling, cooldowns, rate policies, bounds
    if ready >= current && state.ready_since.is_none() {
        state.ready_since = Some(now);
    }
    if n > current && !policy.settle.is_zero() {
        if let Some(up) = state.last_up {
            let starting = ready < current && within(now, up, std::time::Duration::from_secs(60));
            let settling = state
                .ready_since
                .is_some_and(|t| t >= up && within(now, t, policy.settle));
            if starting || settling {
                d.held.push(Hold {
                    rule: "settle".into(),
                    from: n,
                    to: current,
                    detail: if starting {
                        format!(
                            "{} instance(s) of the last scale-up still starting: their effect is not in the metrics yet",
                            current - ready
                        )
                    } else {
                        format!(
                            "the last scale-up's instances are ready for less than {}s: their effect is not in the metrics yet",
                            policy.settle.as_secs()
                        )
                    },
                });
                n = current;
            }
        }
    }
    if n > current
        && state
            .last_up
            .is_some_and(|t| within(now, t, policy.cooldown_up))
    {
        d.held.push(Hold {
            rule: "cooldown_up".into(),
            from: n,
            to: current,
            detail: format!(
                "the last scale-up was less than {}s ago",
                policy.cooldown_up.as_secs()
            ),
        });
        n = current;
    }
    if n < current
        && state
            .last_change
            .is_some_and(|t| within(now, t, policy.cooldown_down))
    {
        d.held.push(Hold {
            rule: "cooldown_down".into(),
            from: n,
            to: current,
            detail: format!(
                "the last change was less than {}s ago",
                policy.cooldown_down.as_secs()
            ),
        });
        n = current;
    }
    if n > current {
        let l = up_limit(&policy.up, &state.changes, current, now);
        if n > l {
            d.held.push(Hold {
                rule: "rate_up".into(),
                from: n,
                to: l,
                detail: "the scale-up rate policies allow no more in their periods".into(),
            });
            n = l;
        }
    } else if n < current {
        let l = down_limit(&policy.down, &state.changes, current, now);
        if n < l {
            d.held.push(Hold {
                rule: "rate_down".into(),
                from: n,
                to: l,
                detail: "the scale-down rate policies allow no less in their periods".into(),
            });
            n = l;
        }
    }
    let b = policy.total_bounds();
    let clamped = b.clamp(n);
    if clamped != n {
        d.held.push(Hold {
            rule: "bounds".into(),
            from: n,
            to: clamped,
            detail: format!(
                "the policy allows {} to {} instances in total",
                b.min, b.max
            ),
        });
        n = clamped;
    }

    // 7. the split over the groups
    let p = match &policy.target {
        Target::App(app) => {
            let g = obs.groups.first();
            plan::Plan {
                groups: vec![GroupChange {
                    app: g.map(|g| g.app.clone()).unwrap_or_else(|| app.clone()),
                    from: current,
                    to: policy.instances.clamp(n),
                }],
                ..plan::Plan::default()
            }
        }
        Target::Service(service) => {
            let g = obs.groups.len();
            let fits_fewer = g > policy.groups.min as usize
                && g > 1
                && (load as f64)
                    <= policy.fill_threshold * ((g - 1) as f64) * policy.instances.max as f64;
            if fits_fewer {
                state.below_fill_since.get_or_insert(now);
            } else {
                state.below_fill_since = None;
            }
            let remove_ok = !d.panic
                && state
                    .below_fill_since
                    .is_some_and(|t| !within(now, t, policy.stabilize_down));
            if fits_fewer && !remove_ok {
                d.held.push(Hold {
                    rule: "groups".into(),
                    from: n,
                    to: n,
                    detail: format!(
                        "the load fits in {} groups below the fill threshold {}: the last group goes after {}s of that",
                        g - 1,
                        policy.fill_threshold,
                        policy.stabilize_down.as_secs()
                    ),
                });
            }
            plan::plan(
                service,
                n,
                &obs.groups,
                policy.instances,
                policy.groups,
                remove_ok,
            )
        }
    };
    for note in &p.notes {
        d.held.push(Hold {
            rule: "groups".into(),
            from: n,
            to: p.total(),
            detail: note.clone(),
        });
    }
    d.desired = p.total();
    d.resize = p.groups.into_iter().filter(|g| g.from != g.to).collect();
    d.add = p.add;
    d.remove = p.remove;
    if d.changes() {
        d.outcome = if policy.dry_run {
            Outcome::DryRun
        } else {
            Outcome::Planned
        };
    }
    d
}

#[cfg(test)]
mod tests;
