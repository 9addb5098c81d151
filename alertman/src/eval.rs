//! Rule evaluation and the alert lifecycle, as Prometheus users expect: per rule and label
//! set, inactive → pending (the condition holds) → firing (it held for `for`) → resolved (it
//! stopped, and `keep_firing_for` has passed since it last held). A rule whose query finds
//! nothing is NoData (its alerts resolve); one whose query fails is Error (its alerts stay as
//! they were: a broken query neither fires nor resolves anything).
//!
//! [`Evaluator::apply`] is pure (a result and `now` in, transitions and alerts out), so every
//! timing rule is tested with a hand-moved clock; [`Evaluator::evaluate`] queries a
//! [`Source`] for each rule.
use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use chrono::{DateTime, Utc};
use drover_metrics::{Agg, Dim, Filter, WindowQuery};
use serde::{Deserialize, Serialize};

use crate::{
    alert::{fingerprint, Alert, AlertState, Fingerprint, LabelSet},
    rules::{AbsenceOf, Rule, RuleKind},
    source::{LogCount, Source, SourceError},
    template::{self, Links},
};

/// One group's result of a rule query.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The group's labels (the rule's `by`); a metric rule leaves them empty for a group
    /// whose condition does not hold (only active groups make alerts; no copy for the rest).
    pub labels: LabelSet,
    /// The value (`None`: absence).
    pub value: Option<f64>,
    /// Whether the condition holds.
    pub active: bool,
}

/// A rule's evaluation result: the groups, or why there are none.
pub type RuleResult = Result<Vec<Sample>, SourceError>;

/// One query's answer: a value per label set, shared by the rules that asked it.
type Answer = Result<Arc<Vec<(LabelSet, f64)>>, SourceError>;
/// Positions in an answer by one label's value.
type LabelIndex = Arc<HashMap<String, Vec<usize>>>;

/// Answers of one evaluation, by query: rules asking the same question share one.
#[derive(Debug, Default)]
pub struct QueryCache {
    answers: HashMap<String, Answer>,
    /// Shared answers indexed by one label's value.
    index: HashMap<(String, &'static str), LabelIndex>,
}

/// What the evaluator keeps per alert of a rule (persisted, so a restart keeps `for` timers
/// and firing alerts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleAlert {
    /// Every label of the alert.
    pub labels: LabelSet,
    /// Pending or firing.
    pub state: AlertState,
    /// When the condition started holding.
    pub active_at: DateTime<Utc>,
    /// When it started firing.
    pub fired_at: Option<DateTime<Utc>>,
    /// The last evaluation at which the condition held.
    pub last_true: DateTime<Utc>,
    /// The last value.
    pub value: Option<f64>,
    /// Rendered annotations.
    pub annotations: LabelSet,
}

/// A rule's health after its last evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleHealth {
    /// `inactive` (ok), `nodata` or `error`; `pending`/`firing` when it has such alerts.
    pub state: AlertState,
    /// When it was last evaluated.
    pub last_eval: Option<DateTime<Utc>>,
    /// The error, if the last evaluation failed.
    pub last_error: Option<String>,
    /// How long the last evaluation took, ms.
    pub took_ms: f64,
}

/// A change of state, for the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// The rule.
    pub rule: String,
    /// The alert's labels (a rule's NoData/Error: the rule's own labels).
    pub labels: LabelSet,
    /// From.
    pub from: AlertState,
    /// To.
    pub to: AlertState,
    /// The value at the time.
    pub value: Option<f64>,
    /// When.
    pub at: DateTime<Utc>,
    /// Why (the error of an Error transition).
    pub message: Option<String>,
}

/// What one evaluation produced.
#[derive(Debug, Default)]
pub struct Output {
    /// Changes of state.
    pub transitions: Vec<Transition>,
    /// Firing alerts (and the ones that just resolved, with `ends_at` now), for routing.
    pub alerts: Vec<Alert>,
    /// Annotation templates that failed (sent as their raw text).
    pub template_errors: u64,
}

/// The evaluator's state: the alerts of every rule.
#[derive(Debug, Clone, Default)]
pub struct Evaluator {
    /// Rule → fingerprint → alert.
    pub states: BTreeMap<String, BTreeMap<Fingerprint, RuleAlert>>,
    /// Rule → health.
    pub health: BTreeMap<String, RuleHealth>,
    /// The UI's base URL, for links in annotations.
    pub ui_url: String,
}

impl Evaluator {
    /// An evaluator with these persisted alerts; `ui_url` for links.
    pub fn new(ui_url: &str, states: BTreeMap<String, BTreeMap<Fingerprint, RuleAlert>>) -> Self {
        Self {
            states,
            health: BTreeMap::new(),
            ui_url: ui_url.to_string(),
        }
    }

    /// Evaluates every rule at `now` against `source`.
    pub async fn evaluate(
        &mut self,
        rules: &[Rule],
        source: &dyn Source,
        now: DateTime<Utc>,
    ) -> Output {
        let mut out = Output::default();
        // Rules asking the very same question share one answer within an evaluation.
        let mut cache = QueryCache::default();
        for rule in rules {
            let started = std::time::Instant::now();
            let result = query(rule, source, now, &mut cache).await;
            let took = started.elapsed().as_secs_f64() * 1000.0;
            self.apply(rule, now, result, &mut out);
            if let Some(h) = self.health.get_mut(&rule.name) {
                h.took_ms = took;
            }
        }
        // Rules that are gone: their alerts resolve.
        let known: std::collections::BTreeSet<&str> =
            rules.iter().map(|r| r.name.as_str()).collect();
        let gone: Vec<String> = self
            .states
            .keys()
            .filter(|k| !known.contains(k.as_str()))
            .cloned()
            .collect();
        for name in gone {
            for (_, a) in self.states.remove(&name).unwrap_or_default() {
                if a.state == AlertState::Firing {
                    out.alerts.push(resolved_alert(&name, &a, now, &[]));
                }
                out.transitions.push(Transition {
                    rule: name.clone(),
                    labels: a.labels.clone(),
                    from: a.state,
                    to: if a.state == AlertState::Firing {
                        AlertState::Resolved
                    } else {
                        AlertState::Inactive
                    },
                    value: a.value,
                    at: now,
                    message: Some("the rule was removed".into()),
                });
            }
            self.health.remove(&name);
        }
        out
    }

    /// Applies one rule's result at `now`: the lifecycle.
    pub fn apply(&mut self, rule: &Rule, now: DateTime<Utc>, result: RuleResult, out: &mut Output) {
        let states = self.states.entry(rule.name.clone()).or_default();
        let health = self.health.entry(rule.name.clone()).or_insert(RuleHealth {
            state: AlertState::Inactive,
            last_eval: None,
            last_error: None,
            took_ms: 0.0,
        });
        health.last_eval = Some(now);
        let samples = match result {
            Err(e) => {
                // Alerts stay as they are: a failing query neither fires nor resolves.
                let msg = e.to_string();
                if health.state != AlertState::Error || health.last_error.as_deref() != Some(&msg) {
                    out.transitions.push(Transition {
                        rule: rule.name.clone(),
                        labels: rule.labels.clone(),
                        from: health.state,
                        to: AlertState::Error,
                        value: None,
                        at: now,
                        message: Some(msg.clone()),
                    });
                }
                health.state = AlertState::Error;
                health.last_error = Some(msg);
                for a in states.values() {
                    if a.state == AlertState::Firing {
                        out.alerts.push(firing_alert(rule, a));
                    }
                }
                return;
            }
            Ok(s) => s,
        };
        let rule_state = if samples.is_empty() {
            AlertState::NoData
        } else {
            AlertState::Inactive
        };
        let mut seen = std::collections::BTreeSet::new();
        for s in samples.iter().filter(|s| s.active) {
            let mut labels = rule.labels.clone();
            labels.extend(s.labels.clone());
            let fp = fingerprint(&labels);
            seen.insert(fp);
            match states.get_mut(&fp) {
                None => {
                    let firing = rule.for_.is_zero();
                    let to = if firing {
                        AlertState::Firing
                    } else {
                        AlertState::Pending
                    };
                    out.transitions.push(Transition {
                        rule: rule.name.clone(),
                        labels: labels.clone(),
                        from: AlertState::Inactive,
                        to,
                        value: s.value,
                        at: now,
                        message: None,
                    });
                    states.insert(
                        fp,
                        RuleAlert {
                            labels,
                            state: to,
                            active_at: now,
                            fired_at: firing.then_some(now),
                            last_true: now,
                            value: s.value,
                            annotations: LabelSet::new(),
                        },
                    );
                }
                Some(a) => {
                    a.last_true = now;
                    a.value = s.value;
                    if a.state == AlertState::Pending && elapsed(a.active_at, now) >= rule.for_ {
                        a.state = AlertState::Firing;
                        a.fired_at = Some(now);
                        out.transitions.push(Transition {
                            rule: rule.name.clone(),
                            labels: a.labels.clone(),
                            from: AlertState::Pending,
                            to: AlertState::Firing,
                            value: s.value,
                            at: now,
                            message: None,
                        });
                    }
                }
            }
        }
        // Alerts whose condition no longer holds.
        let mut ended = Vec::new();
        for (fp, a) in states.iter() {
            if seen.contains(fp) {
                continue;
            }
            let keep = a.state == AlertState::Firing
                && !rule.keep_firing_for.is_zero()
                && elapsed(a.last_true, now) < rule.keep_firing_for;
            if !keep {
                ended.push(*fp);
            }
        }
        for fp in ended {
            let Some(a) = states.remove(&fp) else {
                continue;
            };
            let to = if a.state == AlertState::Firing {
                out.alerts
                    .push(resolved_alert(&rule.name, &a, now, &rule.receivers));
                AlertState::Resolved
            } else {
                AlertState::Inactive
            };
            out.transitions.push(Transition {
                rule: rule.name.clone(),
                labels: a.labels.clone(),
                from: a.state,
                to,
                value: a.value,
                at: now,
                message: None,
            });
        }
        // Annotations of firing alerts, rendered with their latest value.
        let ui = self.ui_url.clone();
        for a in states.values_mut() {
            if a.state != AlertState::Firing {
                continue;
            }
            let app = a.labels.get("app").map(String::as_str);
            let ctx = template::Context {
                rule: &rule.name,
                labels: &a.labels,
                value: a.value,
                threshold: rule.threshold(),
                severity: rule.severity.as_str(),
                links: Links::new(&ui, app, rule.log_query()),
            };
            let mut rendered = LabelSet::new();
            for (k, src) in &rule.annotations {
                let text = match template::render(src, &ctx) {
                    Ok(t) => t,
                    Err(e) => {
                        out.template_errors += 1;
                        tracing::warn!(rule = %rule.name, annotation = %k, error = %e, "annotation template failed: sending its raw text");
                        src.clone()
                    }
                };
                rendered.insert(k.clone(), text);
            }
            a.annotations = rendered;
            out.alerts.push(firing_alert(rule, a));
        }
        let new_state = if states.values().any(|a| a.state == AlertState::Firing) {
            AlertState::Firing
        } else if states.values().any(|a| a.state == AlertState::Pending) {
            AlertState::Pending
        } else {
            rule_state
        };
        let was = health.state;
        if (was == AlertState::NoData
            || new_state == AlertState::NoData
            || was == AlertState::Error)
            && was != new_state
        {
            out.transitions.push(Transition {
                rule: rule.name.clone(),
                labels: rule.labels.clone(),
                from: was,
                to: new_state,
                value: None,
                at: now,
                message: (new_state == AlertState::NoData)
                    .then(|| "the query found no data".to_string()),
            });
        }
        health.state = new_state;
        health.last_error = None;
    }
}

fn elapsed(since: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - since).to_std().unwrap_or_default()
}

fn firing_alert(rule: &Rule, a: &RuleAlert) -> Alert {
    Alert {
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        starts_at: a.active_at,
        ends_at: None,
        updated_at: a.last_true,
        generator_url: String::new(),
        receivers: rule.receivers.clone(),
        value: a.value,
        rule: Some(rule.name.clone()),
    }
}

fn resolved_alert(rule: &str, a: &RuleAlert, now: DateTime<Utc>, receivers: &[String]) -> Alert {
    Alert {
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        starts_at: a.active_at,
        ends_at: Some(now),
        updated_at: now,
        generator_url: String::new(),
        receivers: receivers.to_vec(),
        value: a.value,
        rule: Some(rule.to_string()),
    }
}

/// The groups of a rule at `now`, with whether its condition holds for each.
pub async fn query(
    rule: &Rule,
    source: &dyn Source,
    now: DateTime<Utc>,
    cache: &mut QueryCache,
) -> RuleResult {
    match &rule.kind {
        RuleKind::Metric {
            query,
            op,
            threshold,
        } => {
            let groups = metric(source, query, cache).await?;
            Ok(groups
                .iter()
                .map(|(labels, v)| {
                    let active = op.holds(*v, *threshold);
                    Sample {
                        // Only an active group's labels are read (they make its alert).
                        labels: if active {
                            labels.clone()
                        } else {
                            LabelSet::new()
                        },
                        value: Some(*v),
                        active,
                    }
                })
                .collect())
        }
        RuleKind::Log {
            query,
            by,
            window,
            ratio,
            op,
            threshold,
        } => {
            let from = now - chrono::Duration::from_std(*window).unwrap_or_default();
            let count = |q: &str| LogCount {
                query: q.to_string(),
                by: by.first().copied(),
                from,
                to: now,
            };
            let matching = source.log_counts(&count(query)).await?;
            if !ratio {
                return Ok(matching
                    .into_iter()
                    .map(|(labels, n)| Sample {
                        labels,
                        value: Some(n as f64),
                        active: op.holds(n as f64, *threshold),
                    })
                    .collect());
            }
            let all: BTreeMap<LabelSet, u64> =
                source.log_counts(&count("")).await?.into_iter().collect();
            let m: BTreeMap<LabelSet, u64> = matching.into_iter().collect();
            Ok(all
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(labels, n)| {
                    let v = *m.get(&labels).unwrap_or(&0) as f64 / n as f64;
                    Sample {
                        labels,
                        value: Some(v),
                        active: op.holds(v, *threshold),
                    }
                })
                .collect())
        }
        RuleKind::Absence {
            of,
            window,
            lookback,
        } => {
            let (recent, known) = match of {
                AbsenceOf::Metric { metric, filter, by } => {
                    let q = |range: Duration| WindowQuery {
                        metric: *metric,
                        range,
                        by: by.clone(),
                        agg: Agg::Count,
                        filter: filter.clone(),
                    };
                    let recent = metric_groups(source, &q(*window), cache).await?;
                    let known = if by.is_empty() {
                        vec![LabelSet::new()]
                    } else {
                        metric_groups(source, &q(*lookback), cache).await?
                    };
                    (recent, known)
                }
                AbsenceOf::Log { query, by } => {
                    let c = |range: Duration| LogCount {
                        query: query.clone(),
                        by: by.first().copied(),
                        from: now - chrono::Duration::from_std(range).unwrap_or_default(),
                        to: now,
                    };
                    let nonzero = |v: Vec<(LabelSet, u64)>| -> Vec<LabelSet> {
                        v.into_iter().filter(|x| x.1 > 0).map(|x| x.0).collect()
                    };
                    let recent = nonzero(source.log_counts(&c(*window)).await?);
                    let known = if by.is_empty() {
                        vec![LabelSet::new()]
                    } else {
                        nonzero(source.log_counts(&c(*lookback)).await?)
                    };
                    (recent, known)
                }
            };
            Ok(known
                .into_iter()
                .map(|labels| {
                    let active = !recent.contains(&labels);
                    Sample {
                        labels,
                        value: None,
                        active,
                    }
                })
                .collect())
        }
    }
}

/// A metric rule's groups. When every filtered label is also a grouping label, each group
/// falls wholly inside or outside the filter: the query runs once without the filter for all
/// the rules that share metric, window, aggregation and grouping (one pass over the window
/// instead of one per rule), and each rule picks its groups through an index of that answer
/// by the filtered label.
async fn metric(
    source: &dyn Source,
    q: &WindowQuery,
    cache: &mut QueryCache,
) -> Result<Groups, SourceError> {
    let filtered: Vec<Dim> = Dim::ALL
        .into_iter()
        .filter(|d| !q.filter.values(*d).is_empty())
        .collect();
    if filtered.is_empty() || !filtered.iter().all(|d| q.by.contains(d)) {
        let key = format!("{q:?}");
        return Ok(Groups {
            all: metric_exact(source, q, key, cache).await?,
            pick: None,
        });
    }
    let all_q = WindowQuery {
        filter: Filter::default(),
        ..q.clone()
    };
    let all_key = format!("{all_q:?}");
    let all = metric_exact(source, &all_q, all_key.clone(), cache).await?;
    // Index the shared answer by the first filtered label (once per evaluation).
    let first = filtered[0];
    let index = cache
        .index
        .entry((all_key, first.as_str()))
        .or_insert_with(|| {
            let mut m: HashMap<String, Vec<usize>> = HashMap::new();
            for (i, (labels, _)) in all.iter().enumerate() {
                let v = labels.get(first.as_str()).cloned().unwrap_or_default();
                m.entry(v).or_default().push(i);
            }
            Arc::new(m)
        })
        .clone();
    let keeps = |labels: &LabelSet| {
        filtered[1..].iter().all(|d| {
            let v = labels.get(d.as_str()).map(String::as_str).unwrap_or("");
            q.filter.values(*d).iter().any(|w| w == v)
        })
    };
    let mut pick = Vec::new();
    for w in q.filter.values(first) {
        for &i in index.get(w).map(Vec::as_slice).unwrap_or(&[]) {
            if keeps(&all[i].0) {
                pick.push(i);
            }
        }
    }
    Ok(Groups {
        all,
        pick: Some(pick),
    })
}

/// A rule's groups: a shared answer, or the part of it the rule's filter keeps (no copies).
struct Groups {
    all: Arc<Vec<(LabelSet, f64)>>,
    pick: Option<Vec<usize>>,
}

impl Groups {
    fn iter(&self) -> Box<dyn Iterator<Item = &(LabelSet, f64)> + '_> {
        match &self.pick {
            None => Box::new(self.all.iter()),
            Some(p) => Box::new(p.iter().map(|&i| &self.all[i])),
        }
    }
}

async fn metric_exact(
    source: &dyn Source,
    q: &WindowQuery,
    key: String,
    cache: &mut QueryCache,
) -> Result<Arc<Vec<(LabelSet, f64)>>, SourceError> {
    if let Some(r) = cache.answers.get(&key) {
        return r.clone();
    }
    let r = source.metric_window(q).await.map(|groups| {
        Arc::new(
            groups
                .into_iter()
                .map(|g| (g.labels.into_iter().collect(), g.value))
                .collect::<Vec<_>>(),
        )
    });
    cache.answers.insert(key, r.clone());
    r
}

async fn metric_groups(
    source: &dyn Source,
    q: &WindowQuery,
    cache: &mut QueryCache,
) -> Result<Vec<LabelSet>, SourceError> {
    Ok(metric(source, q, cache)
        .await?
        .iter()
        .filter(|(_, n)| *n > 0.0)
        .map(|(l, _)| l.clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use drover_schema::time::{Clock as _, ManualClock};

    use super::*;
    use crate::{rules, source::Fake};

    const T0: i64 = 1_800_000_000_000;

    fn rule(extra: &str) -> Rule {
        let text = format!(
            "version: 1\nrules:\n  - name: HighCpu\n    kind: metric\n    metric: cpu_pct\n    by: [instance]\n    threshold: 90\n    annotations:\n      summary: \"{{{{ labels.instance }}}} at {{{{ value }}}}\"\n{extra}"
        );
        rules::load_sources(&[(PathBuf::from("r.yaml"), text)], &|_| None)
            .unwrap()
            .rules
            .remove(0)
    }

    fn inst(i: &str) -> LabelSet {
        [("instance".to_string(), i.to_string())].into()
    }

    fn sample(i: &str, v: f64) -> Sample {
        Sample {
            labels: inst(i),
            value: Some(v),
            active: v > 90.0,
        }
    }

    struct Run {
        ev: Evaluator,
        clock: ManualClock,
        rule: Rule,
    }

    impl Run {
        fn new(extra: &str) -> Self {
            Self {
                ev: Evaluator::new("http://ui", BTreeMap::new()),
                clock: ManualClock::at_ms(T0),
                rule: rule(extra),
            }
        }

        /// Advances by `secs` and applies `samples`; returns the transitions as (instance, from, to).
        fn step(
            &mut self,
            secs: u64,
            samples: RuleResult,
        ) -> (Vec<(String, AlertState, AlertState)>, Output) {
            self.clock.advance(Duration::from_secs(secs));
            let mut out = Output::default();
            self.ev
                .apply(&self.rule, self.clock.now(), samples, &mut out);
            let t = out
                .transitions
                .iter()
                .map(|t| {
                    (
                        t.labels.get("instance").cloned().unwrap_or_default(),
                        t.from,
                        t.to,
                    )
                })
                .collect();
            (t, out)
        }
    }

    use AlertState::*;

    #[test]
    fn pending_then_firing_after_for_then_resolved() {
        let mut r = Run::new("    for: 2m\n");
        let (t, out) = r.step(0, Ok(vec![sample("a", 95.0), sample("b", 10.0)]));
        assert_eq!(t, [("a".into(), Inactive, Pending)]);
        assert!(out.alerts.is_empty(), "pending alerts are not routed");
        let (t, _) = r.step(60, Ok(vec![sample("a", 95.0)]));
        assert!(t.is_empty());
        let (t, _) = r.step(59, Ok(vec![sample("a", 95.0)]));
        assert!(t.is_empty(), "1m59s < for");
        let (t, out) = r.step(1, Ok(vec![sample("a", 96.0)]));
        assert_eq!(t, [("a".into(), Pending, Firing)]);
        assert_eq!(out.alerts.len(), 1);
        let a = &out.alerts[0];
        assert_eq!(
            a.starts_at.timestamp_millis(),
            T0,
            "starts when it became active"
        );
        assert_eq!(a.annotations["summary"], "a at 96.0");
        assert_eq!(a.labels["alertname"], "HighCpu");
        assert_eq!(a.ends_at, None);
        let (t, out) = r.step(30, Ok(vec![sample("a", 50.0)]));
        assert_eq!(t, [("a".into(), Firing, Resolved)]);
        assert_eq!(out.alerts.len(), 1);
        assert_eq!(out.alerts[0].ends_at, Some(r.clock.now()));
    }

    #[test]
    fn a_flap_resets_the_for_timer() {
        let mut r = Run::new("    for: 2m\n");
        r.step(0, Ok(vec![sample("a", 95.0)]));
        let (t, _) = r.step(90, Ok(vec![sample("a", 10.0)]));
        assert_eq!(t, [("a".into(), Pending, Inactive)]);
        r.step(30, Ok(vec![sample("a", 95.0)]));
        let (t, _) = r.step(90, Ok(vec![sample("a", 95.0)]));
        assert!(t.is_empty(), "only 90s since it became active again");
        let (t, _) = r.step(30, Ok(vec![sample("a", 95.0)]));
        assert_eq!(t, [("a".into(), Pending, Firing)]);
    }

    #[test]
    fn for_zero_fires_at_once() {
        let mut r = Run::new("");
        let (t, out) = r.step(0, Ok(vec![sample("a", 95.0)]));
        assert_eq!(t, [("a".into(), Inactive, Firing)]);
        assert_eq!(out.alerts.len(), 1);
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert_after_the_condition_stops() {
        let mut r = Run::new("    keep_firing_for: 5m\n");
        r.step(0, Ok(vec![sample("a", 95.0)]));
        let (t, out) = r.step(60, Ok(vec![sample("a", 10.0)]));
        assert!(t.is_empty());
        assert_eq!(out.alerts.len(), 1, "still firing");
        let (t, _) = r.step(239, Ok(vec![]));
        assert!(t.is_empty(), "4m59s since it last held");
        // Holding again restarts the count.
        r.step(0, Ok(vec![sample("a", 99.0)]));
        let (t, _) = r.step(299, Ok(vec![sample("a", 10.0)]));
        assert!(t.is_empty());
        let (t, out) = r.step(1, Ok(vec![sample("a", 10.0)]));
        assert_eq!(t, [("a".into(), Firing, Resolved)]);
        assert_eq!(out.alerts[0].ends_at, Some(r.clock.now()));
    }

    #[test]
    fn nodata_resolves_and_error_keeps_alerts_as_they_are() {
        let mut r = Run::new("");
        r.step(0, Ok(vec![sample("a", 95.0)]));
        // Error: nothing changes, the alert is still routed as firing.
        let (_, out) = r.step(15, Err(SourceError::Metrics("polars: boom".into())));
        assert_eq!(out.transitions.len(), 1);
        assert_eq!(out.transitions[0].to, Error);
        assert_eq!(
            out.transitions[0].message.as_deref(),
            Some("metrics store: polars: boom")
        );
        assert_eq!(out.alerts.len(), 1);
        assert_eq!(r.ev.health["HighCpu"].state, Error);
        // The same error again is not a new transition.
        let (_, out) = r.step(15, Err(SourceError::Metrics("polars: boom".into())));
        assert!(out.transitions.is_empty());
        // NoData: the alert resolves and the rule says NoData.
        let (t, out) = r.step(15, Ok(vec![]));
        assert!(t.contains(&("a".into(), Firing, Resolved)), "{t:?}");
        assert!(out
            .transitions
            .iter()
            .any(|t| t.from == Error && t.to == NoData));
        assert_eq!(r.ev.health["HighCpu"].state, NoData);
        let (_, out) = r.step(15, Ok(vec![sample("b", 1.0)]));
        assert!(out
            .transitions
            .iter()
            .any(|t| t.from == NoData && t.to == Inactive));
    }

    #[test]
    fn a_removed_rule_resolves_its_alerts() {
        let clock = ManualClock::at_ms(T0);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let fake = Fake::default();
        fake.set_metric("cpu_pct", vec![(inst("a"), 99.0)]);
        let r = rule("");
        let mut ev = Evaluator::new("", BTreeMap::new());
        let out = rt.block_on(ev.evaluate(std::slice::from_ref(&r), &fake, clock.now()));
        assert_eq!(out.alerts.len(), 1);
        let out = rt.block_on(ev.evaluate(&[], &fake, clock.now()));
        assert_eq!(out.alerts.len(), 1);
        assert!(out.alerts[0].ends_at.is_some());
        assert_eq!(out.transitions[0].to, Resolved);
        assert!(ev.states.is_empty());
    }

    #[test]
    fn rules_filtering_on_grouped_labels_share_one_query() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let text = "version: 1\nrules:\n  - name: A\n    kind: metric\n    metric: cpu_pct\n    filter: {app: /a}\n    by: [app]\n    threshold: 1\n  - name: B\n    kind: metric\n    metric: cpu_pct\n    filter: {app: [/b, /c]}\n    by: [app]\n    threshold: 1\n";
        let cfg =
            rules::load_sources(&[(PathBuf::from("r.yaml"), text.into())], &|_| None).unwrap();
        let fake = Fake::default();
        let app = |a: &str| -> LabelSet { [("app".to_string(), a.to_string())].into() };
        fake.set_metric(
            "cpu_pct",
            vec![
                (app("/a"), 5.0),
                (app("/b"), 5.0),
                (app("/c"), 0.5),
                (app("/d"), 9.0),
            ],
        );
        let mut ev = Evaluator::new("", BTreeMap::new());
        let out = rt.block_on(ev.evaluate(&cfg.rules, &fake, ManualClock::at_ms(T0).now()));
        let firing: Vec<(String, String)> = out
            .alerts
            .iter()
            .map(|a| (a.name().to_string(), a.labels["app"].clone()))
            .collect();
        assert_eq!(
            firing,
            [
                ("A".to_string(), "/a".to_string()),
                ("B".into(), "/b".into())
            ]
        );
        assert_eq!(ev.health["B"].state, AlertState::Firing);
    }

    #[test]
    fn log_ratio_and_absence_rules_query_their_source() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let text = r#"version: 1
rules:
  - name: Errors
    kind: log
    query: "level:error"
    by: [app]
    threshold: 2
  - name: ErrorShare
    kind: log
    query: "level:error"
    by: [app]
    ratio: true
    threshold: 0.5
  - name: Silent
    kind: absence
    metric: cpu_pct
    by: [app]
"#;
        let cfg =
            rules::load_sources(&[(PathBuf::from("r.yaml"), text.into())], &|_| None).unwrap();
        let fake = Fake::default();
        let app = |a: &str| -> LabelSet { [("app".to_string(), a.to_string())].into() };
        fake.set_logs("level:error", vec![(app("/a"), 3), (app("/b"), 1)]);
        fake.set_logs("", vec![(app("/a"), 4), (app("/b"), 10)]);
        // cpu_pct count: /a has samples (in both windows: the fake answers alike), /b none.
        fake.set_metric("cpu_pct", vec![(app("/a"), 5.0)]);
        let mut ev = Evaluator::new("", BTreeMap::new());
        let now = ManualClock::at_ms(T0).now();
        let out = rt.block_on(ev.evaluate(&cfg.rules, &fake, now));
        let firing: Vec<(String, String)> = out
            .alerts
            .iter()
            .map(|a| (a.name().to_string(), a.labels["app"].clone()))
            .collect();
        assert_eq!(
            firing,
            [
                ("Errors".to_string(), "/a".to_string()),
                ("ErrorShare".into(), "/a".into())
            ]
        );
        assert_eq!(out.alerts[1].value, Some(0.75));
    }
}
