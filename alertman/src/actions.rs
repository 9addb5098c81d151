//! Actions on firing alerts, capped like the most careful systems (Envoy's outlier
//! detection): `remove_instance` kills the alert's task (the scheduler replaces it; the
//! gateway has already ejected it), `remove_node` cordons and drains the alert's node (no new
//! tasks go there and the scheduler moves its tasks to other nodes).
//!
//! The caps, per scope (an app's instances, or the nodes):
//! - never more than max(1, 10 %) of the scope removed within the window (5 min);
//! - at most one removal per 10 s, over all scopes;
//! - when more than half of the scope looks unhealthy, act on none and say "suspect the
//!   monitoring, not the hosts";
//! - a cordoned node is uncordoned, once healthy, after a back-off that doubles with each
//!   repeat (5 min, 10 min, … at most 1 h).
//!
//! [`Limiter`] is pure (a clock in, decisions out); [`Actuator`] does it through the
//! scheduler's API.
use std::{
    collections::{BTreeMap, VecDeque},
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;

use crate::rules::ActionKind;

/// The caps.
#[derive(Debug, Clone, PartialEq)]
pub struct Caps {
    /// The window the share is counted over.
    pub window: Duration,
    /// The largest share of a scope removed within the window (at least one).
    pub max_share: f64,
    /// At least this long between two removals.
    pub min_interval: Duration,
    /// More than this share unhealthy: suspect the monitoring, act on none.
    pub suspect_share: f64,
    /// First re-admission back-off of a node.
    pub readmit_base: Duration,
    /// Longest re-admission back-off.
    pub readmit_max: Duration,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(300),
            max_share: 0.1,
            min_interval: Duration::from_secs(10),
            suspect_share: 0.5,
            readmit_base: Duration::from_secs(300),
            readmit_max: Duration::from_secs(3600),
        }
    }
}

/// What to do about one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision", content = "reason")]
pub enum Decision {
    /// Remove it.
    Act,
    /// Would remove it (dry run); nothing is counted.
    DryRun,
    /// Not now: the reason names the cap.
    Refused(String),
    /// More than half the scope looks unhealthy: act on none.
    SuspectMonitoring(String),
}

#[derive(Debug, Clone)]
struct NodeOut {
    since: DateTime<Utc>,
    repeats: u32,
    readmit_at: DateTime<Utc>,
}

/// The caps' memory.
#[derive(Debug, Clone, Default)]
pub struct Limiter {
    caps: Caps,
    removals: VecDeque<(DateTime<Utc>, String)>,
    last: Option<DateTime<Utc>>,
    nodes_out: BTreeMap<String, NodeOut>,
    /// Repeats per node (kept after re-admission, so the back-off grows).
    repeats: BTreeMap<String, u32>,
}

fn std_to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_default()
}

impl Limiter {
    /// A limiter with these caps.
    pub fn new(caps: Caps) -> Self {
        Self {
            caps,
            ..Self::default()
        }
    }

    /// How many of `total` may be removed within the window.
    pub fn allowed(&self, total: usize) -> usize {
        ((total as f64 * self.caps.max_share).floor() as usize).max(1)
    }

    /// Decides about removing one target of `scope` (an app, or `nodes`) that has `total`
    /// members of which `unhealthy` look unhealthy; records the removal when it is `Act`.
    pub fn decide(
        &mut self,
        now: DateTime<Utc>,
        scope: &str,
        total: usize,
        unhealthy: usize,
        dry_run: bool,
    ) -> Decision {
        let window = std_to_chrono(self.caps.window);
        while self
            .removals
            .front()
            .is_some_and(|(t, _)| *t + window <= now)
        {
            self.removals.pop_front();
        }
        if total == 0 {
            return Decision::Refused(format!("{scope} has no members the scheduler knows"));
        }
        if unhealthy as f64 > total as f64 * self.caps.suspect_share {
            return Decision::SuspectMonitoring(format!(
                "{unhealthy} of {total} in {scope} look unhealthy: suspect the monitoring, not the hosts; acting on none"
            ));
        }
        let allowed = self.allowed(total);
        let recent = self.removals.iter().filter(|(_, s)| s == scope).count();
        if recent >= allowed {
            return Decision::Refused(format!(
                "cap: {recent} of {total} in {scope} already removed in the last {} (at most {allowed})",
                humantime::format_duration(self.caps.window)
            ));
        }
        if let Some(last) = self.last {
            let next = last + std_to_chrono(self.caps.min_interval);
            if now < next {
                return Decision::Refused(format!(
                    "cap: one removal per {}; the last was {}s ago",
                    humantime::format_duration(self.caps.min_interval),
                    (now - last).num_seconds()
                ));
            }
        }
        if dry_run {
            return Decision::DryRun;
        }
        self.removals.push_back((now, scope.to_string()));
        self.last = Some(now);
        Decision::Act
    }

    /// Records that `node` was cordoned now: it is re-admitted after the back-off, once
    /// healthy. Returns the back-off.
    pub fn node_removed(&mut self, node: &str, now: DateTime<Utc>) -> Duration {
        let repeats = self.repeats.entry(node.to_string()).or_insert(0);
        *repeats += 1;
        let factor = 2u32.saturating_pow(repeats.saturating_sub(1).min(16));
        let backoff = (self.caps.readmit_base * factor).min(self.caps.readmit_max);
        self.nodes_out.insert(
            node.to_string(),
            NodeOut {
                since: now,
                repeats: *repeats,
                readmit_at: now + std_to_chrono(backoff),
            },
        );
        backoff
    }

    /// Nodes due for re-admission at `now` among those `healthy` says are healthy; they
    /// leave the list (the caller uncordons them).
    pub fn readmit(&mut self, now: DateTime<Utc>, healthy: impl Fn(&str) -> bool) -> Vec<String> {
        let due: Vec<String> = self
            .nodes_out
            .iter()
            .filter(|(n, o)| o.readmit_at <= now && healthy(n))
            .map(|(n, _)| n.clone())
            .collect();
        for n in &due {
            self.nodes_out.remove(n);
        }
        due
    }

    /// Nodes out, with since when and their repeat count.
    pub fn nodes_out(&self) -> Vec<(String, DateTime<Utc>, u32)> {
        self.nodes_out
            .iter()
            .map(|(n, o)| (n.clone(), o.since, o.repeats))
            .collect()
    }
}

/// Does actions: the scheduler's API.
pub trait Actuator: Send + Sync + std::fmt::Debug {
    /// How many instances (tasks) `app` has.
    fn instances<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<usize, String>>;
    /// How many nodes there are.
    fn nodes(&self) -> BoxFuture<'_, Result<usize, String>>;
    /// Kills a task of an app (the scheduler replaces it).
    fn kill_task<'a>(&'a self, app: &'a str, task: &'a str) -> BoxFuture<'a, Result<(), String>>;
    /// Takes a node out (true: cordon and drain it, so the scheduler moves its tasks to other
    /// nodes) or back in (false: uncordon it).
    fn cordon<'a>(&'a self, node: &'a str, on: bool) -> BoxFuture<'a, Result<(), String>>;
}

/// The scheduler's API through its typed client.
#[derive(Debug, Clone)]
pub struct SchedulerActuator {
    client: drover_scheduler::client::Client,
}

impl SchedulerActuator {
    /// Acts on the master at `base`.
    pub fn new(base: &str) -> Result<Self, String> {
        Ok(Self {
            client: drover_scheduler::client::Client::new(base).map_err(|e| e.to_string())?,
        })
    }
}

impl Actuator for SchedulerActuator {
    fn instances<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<usize, String>> {
        Box::pin(async move {
            match self.client.app(app).await.map_err(|e| e.to_string())? {
                Some(a) => Ok(a
                    .tasks
                    .as_ref()
                    .map_or(a.definition.instances.max(0) as usize, Vec::len)),
                None => Err(format!("the scheduler has no app {app}")),
            }
        })
    }

    fn nodes(&self) -> BoxFuture<'_, Result<usize, String>> {
        Box::pin(async move {
            let v = self
                .client
                .ok(reqwest::Method::GET, "/v1/nodes", None)
                .await
                .map_err(|e| e.to_string())?;
            Ok(v["nodes"].as_array().map_or(0, Vec::len))
        })
    }

    fn kill_task<'a>(&'a self, app: &'a str, task: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let path = format!("/v2/apps/{}/tasks/{task}", app.trim_matches('/'));
            self.client
                .ok(reqwest::Method::DELETE, &path, None)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }

    fn cordon<'a>(&'a self, node: &'a str, on: bool) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let path = node_action_path(node, on);
            self.client
                .ok(reqwest::Method::POST, &path, None)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

/// The scheduler's call that takes a node out (`drain`: cordoned, and its tasks replaced on
/// other nodes; a bare `cordon` would only stop new tasks) or back in (`uncordon`, which also
/// ends the drain).
pub fn node_action_path(node: &str, out: bool) -> String {
    format!(
        "/v1/nodes/{node}/{}",
        if out { "drain" } else { "uncordon" }
    )
}

/// The scope of an action on an alert's labels: the app (remove_instance) or `nodes`.
pub fn scope(kind: ActionKind, app: &str) -> String {
    match kind {
        ActionKind::RemoveInstance => app.to_string(),
        ActionKind::RemoveNode => "nodes".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use drover_schema::time::{Clock as _, ManualClock};

    use super::*;

    #[test]
    fn removing_a_node_drains_it_and_readmitting_uncordons_it() {
        assert_eq!(node_action_path("n1", true), "/v1/nodes/n1/drain");
        assert_eq!(node_action_path("n1", false), "/v1/nodes/n1/uncordon");
    }

    #[test]
    fn at_most_ten_percent_per_window_and_one_per_ten_seconds() {
        let clock = ManualClock::at_ms(1_800_000_000_000);
        let mut l = Limiter::new(Caps::default());
        // 30 instances: 3 per 5 minutes.
        assert_eq!(l.allowed(30), 3);
        assert_eq!(l.allowed(5), 1, "at least one");
        assert_eq!(l.decide(clock.now(), "/shop", 30, 1, false), Decision::Act);
        clock.advance(Duration::from_secs(9));
        let d = l.decide(clock.now(), "/shop", 30, 2, false);
        assert!(
            matches!(&d, Decision::Refused(r) if r.contains("one removal per 10s")),
            "{d:?}"
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(l.decide(clock.now(), "/shop", 30, 2, false), Decision::Act);
        clock.advance(Duration::from_secs(10));
        assert_eq!(l.decide(clock.now(), "/shop", 30, 3, false), Decision::Act);
        clock.advance(Duration::from_secs(10));
        let d = l.decide(clock.now(), "/shop", 30, 4, false);
        assert!(
            matches!(&d, Decision::Refused(r) if r.contains("3 of 30 in /shop already removed")),
            "{d:?}"
        );
        // Another app has its own share.
        assert_eq!(l.decide(clock.now(), "/cart", 4, 1, false), Decision::Act);
        // The window slides: 5 minutes after the first removal, one more is allowed.
        clock.advance(Duration::from_secs(300 - 30));
        assert_eq!(l.decide(clock.now(), "/shop", 30, 4, false), Decision::Act);
    }

    #[test]
    fn more_than_half_unhealthy_acts_on_none_and_dry_run_counts_nothing() {
        let now = ManualClock::at_ms(1_800_000_000_000).now();
        let mut l = Limiter::new(Caps::default());
        let d = l.decide(now, "/shop", 10, 6, false);
        assert!(
            matches!(&d, Decision::SuspectMonitoring(r) if r.contains("suspect the monitoring")),
            "{d:?}"
        );
        assert_eq!(l.decide(now, "/shop", 10, 5, true), Decision::DryRun);
        assert_eq!(
            l.decide(now, "/shop", 10, 5, false),
            Decision::Act,
            "the dry run counted nothing"
        );
        assert!(matches!(
            l.decide(now, "/x", 0, 0, false),
            Decision::Refused(_)
        ));
    }

    #[test]
    fn node_readmission_backs_off_with_repeats_once_healthy() {
        let clock = ManualClock::at_ms(1_800_000_000_000);
        let mut l = Limiter::new(Caps::default());
        assert_eq!(l.node_removed("n1", clock.now()), Duration::from_secs(300));
        clock.advance(Duration::from_secs(299));
        assert!(l.readmit(clock.now(), |_| true).is_empty());
        clock.advance(Duration::from_secs(1));
        assert!(
            l.readmit(clock.now(), |_| false).is_empty(),
            "not healthy yet"
        );
        assert_eq!(l.readmit(clock.now(), |_| true), ["n1"]);
        // Again: 10 minutes, then 20, … at most 1 hour.
        assert_eq!(l.node_removed("n1", clock.now()), Duration::from_secs(600));
        clock.advance(Duration::from_secs(599));
        assert!(l.readmit(clock.now(), |_| true).is_empty());
        clock.advance(Duration::from_secs(1));
        assert_eq!(l.readmit(clock.now(), |_| true), ["n1"]);
        assert_eq!(l.node_removed("n1", clock.now()), Duration::from_secs(1200));
        l.readmit(clock.now() + chrono::Duration::hours(1), |_| true);
        assert_eq!(l.node_removed("n1", clock.now()), Duration::from_secs(2400));
        assert_eq!(l.node_removed("n1", clock.now()), Duration::from_secs(3600));
        assert_eq!(l.node_removed("n1", clock.now()), Duration::from_secs(3600));
        assert_eq!(l.nodes_out()[0].2, 6);
    }
}
