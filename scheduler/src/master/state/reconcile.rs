//! The reconciliation tick: node timeouts, then per app unhealthy kills, scaling, rolling
//! updates, backoff and placement, then finished deployments.
use chrono::{DateTime, Utc};

use super::*;

impl State {
    /// Bring the cluster one step closer to what the apps ask for.
    pub fn tick(&mut self, now: DateTime<Utc>) {
        self.check_nodes(now);
        // Tasks of deleted apps go. (Tasks of drained and removed nodes are replaced like
        // those of an older version, in `reconcile_app`: new ones first, within
        // upgradeStrategy.)
        let doomed: Vec<(String, &'static str)> = self
            .tasks
            .values()
            .filter(|t| t.is_active() && !self.apps.contains_key(&t.spec.app_id))
            .map(|t| (t.spec.task_id.clone(), "app deleted"))
            .collect();
        for (t, why) in doomed {
            self.kill(&t, why, now);
        }
        let mut candidates = self.candidates();
        let index: HashMap<String, usize> = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        let ids: Vec<String> = self.apps.keys().cloned().collect();
        for id in ids {
            self.reconcile_app(&id, &mut candidates, &index, now);
        }
        for c in &candidates {
            self.next_port.insert(c.id.clone(), c.next_port);
        }
        self.finish_deployments(now);
        // Forget delays long expired.
        let reset = secs(self.cfg.backoff_reset_after);
        self.delays.retain(|_, d| now - d.until < reset);
    }

    fn check_nodes(&mut self, now: DateTime<Utc>) {
        let timeout = secs(self.cfg.heartbeat_timeout);
        let lost: Vec<String> = self
            .nodes
            .values()
            .filter(|n| !n.unreachable && !n.removed && now - n.last_seen > timeout)
            .map(|n| n.id.clone())
            .collect();
        for id in lost {
            tracing::warn!(node = %id, "node missed its heartbeats: unreachable");
            if let Some(n) = self.nodes.get_mut(&id) {
                n.unreachable = true;
            }
            self.dirty = true;
            self.event(
                now,
                EventKind::NodeUnreachable {
                    node_id: id.clone(),
                },
            );
            let ids: Vec<String> = self
                .tasks
                .values()
                .filter(|t| t.node_id == id)
                .map(|t| t.spec.task_id.clone())
                .collect();
            for tid in ids {
                let Some(t) = self.tasks.get_mut(&tid) else {
                    continue;
                };
                if t.state == TaskState::Killing {
                    self.tasks.remove(&tid);
                    continue;
                }
                t.state_before_unreachable = Some(t.state);
                t.state = TaskState::Unreachable;
                t.unreachable_since = Some(now);
                let t = t.clone();
                self.status_event(&t, TaskState::Unreachable, "node unreachable", now);
            }
        }
        // Replace tasks unreachable for too long.
        let after = secs(self.cfg.unreachable_replace_after);
        let expunge: Vec<Task> = self
            .tasks
            .values()
            .filter(|t| {
                t.state == TaskState::Unreachable
                    && t.unreachable_since.is_some_and(|s| now - s >= after)
            })
            .cloned()
            .collect();
        for t in expunge {
            tracing::warn!(task = %t.spec.task_id, node = %t.node_id, "unreachable task replaced");
            self.tasks.remove(&t.spec.task_id);
            self.dirty = true;
            self.status_event(
                &t,
                TaskState::Unreachable,
                "expunged: node unreachable too long",
                now,
            );
        }
    }

    /// The nodes as placement sees them, with what their tasks take.
    pub fn candidates(&self) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = self
            .nodes
            .values()
            .filter(|n| !n.removed)
            .map(|n| {
                let mut c = Candidate::new(n.id.clone(), n.resources, n.port_range);
                if let Some(&p) = self.next_port.get(&n.id) {
                    c.next_port = p;
                }
                c.attributes = n.attributes.clone();
                c.unschedulable = if n.unreachable {
                    Some("unreachable")
                } else if n.draining {
                    Some("draining")
                } else if n.cordoned {
                    Some("cordoned")
                } else {
                    None
                };
                c
            })
            .collect();
        let index: HashMap<&str, usize> = out
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.as_str(), i))
            .collect();
        let mut taken: Vec<(usize, f64, f64, Vec<u16>)> = Vec::new();
        for t in self.tasks.values().filter(|t| !t.state.is_terminal()) {
            if let Some(&i) = index.get(t.node_id.as_str()) {
                taken.push((i, t.spec.cpus, t.spec.mem, t.spec.host_ports.clone()));
            }
        }
        // Job runs take their share too (crate::jobs).
        for (node, cpus, mem) in self.jobs.usage() {
            if let Some(&i) = index.get(node.as_str()) {
                taken.push((i, cpus, mem, Vec::new()));
            }
        }
        for (i, cpus, mem, ports) in taken {
            let c = &mut out[i];
            c.free.cpus -= cpus;
            c.free.mem -= mem;
            c.used_ports.extend(ports);
        }
        out
    }

    /// One app, in named steps: kill its unhealthy tasks; decide what to launch and kill
    /// (a scale, or a step of a rolling update); kill; then launch, unless the app waits out
    /// its backoff.
    fn reconcile_app(
        &mut self,
        id: &str,
        candidates: &mut [Candidate],
        index: &HashMap<String, usize>,
        now: DateTime<Utc>,
    ) {
        let Some(app) = self.apps.get(id).cloned() else {
            return;
        };
        self.kill_unhealthy(id, now);
        let active: Vec<Task> = self
            .tasks
            .values()
            .filter(|t| t.spec.app_id == id && t.is_active())
            .cloned()
            .collect();
        let step = self.next_step(&app, &active);
        for t in &step.kill {
            self.kill(t, "scaled down or replaced by a new version", now);
        }
        if step.launch == 0 {
            self.queue.remove(id);
            return;
        }
        if self.launch_delayed(id, step.launch, now) {
            return;
        }
        self.launch(&app, step.launch, &active, candidates, index, now);
    }

    /// Unhealthy tasks (`maxConsecutiveFailures` failed checks in a row) are killed (and
    /// count as failures).
    fn kill_unhealthy(&mut self, id: &str, now: DateTime<Utc>) {
        let unhealthy: Vec<Task> = self
            .tasks
            .values()
            .filter(|t| t.spec.app_id == id && t.state == TaskState::Running)
            .filter(|t| {
                t.spec.health_checks.iter().any(|hc| {
                    hc.max_consecutive_failures > 0
                        && t.consecutive_failures as i64 >= hc.max_consecutive_failures
                })
            })
            .cloned()
            .collect();
        for t in unhealthy {
            let why = format!(
                "{} consecutive health check failures{}",
                t.consecutive_failures,
                t.last_failure_cause
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            );
            self.event(
                now,
                EventKind::UnhealthyTaskKill {
                    app_id: id.to_string(),
                    task_id: t.spec.task_id.clone(),
                    instance_id: t.spec.task_id.clone(),
                    version: t.spec.config_version,
                    reason: why.clone(),
                    host: t.host.clone(),
                    slave_id: t.node_id.clone(),
                },
            );
            self.kill(&t.spec.task_id, &why, now);
            self.record_failure(&t, TaskState::Killed, &why, now);
        }
    }

    /// What the app's `active` tasks need next: tasks of an older configuration, or on a
    /// draining node, are replaced by a rolling update; otherwise a scale to `instances`.
    fn next_step(&self, app: &App, active: &[Task]) -> Step {
        let def = &app.def;
        let n = def.instances.max(0) as usize;
        let (current, old): (Vec<&Task>, Vec<&Task>) = active.iter().partition(|t| {
            t.spec.config_version == app.config_version
                && self.nodes.get(&t.node_id).is_some_and(|n| !n.draining)
        });
        if old.is_empty() {
            scale_step(&current, n, &def.kill_selection)
        } else {
            rolling_step(def, n, active, &current, &old)
        }
    }

    /// The app waits out its backoff: it is queued with the time left. True when it waits.
    fn launch_delayed(&mut self, id: &str, to_launch: usize, now: DateTime<Utc>) -> bool {
        let since = self.queue.get(id).map(|q| q.since).unwrap_or(now);
        let Some(d) = self.delays.get(id).filter(|d| d.until > now) else {
            return false;
        };
        let left = (d.until - now).num_milliseconds() as f64 / 1000.0;
        self.queue.insert(
            id.to_string(),
            QueueEntry {
                count: to_launch,
                reason: format!("launch delayed {left:.1}s more (backoff after a task failure)"),
                since,
            },
        );
        true
    }

    /// Place `to_launch` new tasks of the app (spread away from the nodes of its `active`
    /// ones); what does not fit waits in the queue with the reason.
    fn launch(
        &mut self,
        app: &App,
        to_launch: usize,
        active: &[Task],
        candidates: &mut [Candidate],
        index: &HashMap<String, usize>,
        now: DateTime<Utc>,
    ) {
        let def = &app.def;
        let id = def.id.as_str();
        let since = self.queue.get(id).map(|q| q.since).unwrap_or(now);
        let constraints: Vec<Constraint> = def
            .constraints
            .iter()
            .filter_map(|c| Constraint::parse(c).ok())
            .collect();
        let demand = Demand {
            resources: Resources {
                cpus: def.cpus,
                mem: def.mem,
                disk: def.disk,
            },
            ports: def.host_ports(),
            constraints,
        };
        let existing: Vec<usize> = active
            .iter()
            .filter_map(|t| index.get(&t.node_id).copied())
            .collect();
        let placement = placement::place(candidates, &existing, &demand, to_launch);
        for (i, ports) in &placement.placed {
            let node = &candidates[*i];
            let host = self
                .nodes
                .get(&node.id)
                .map(|n| n.hostname.clone())
                .unwrap_or_default();
            let task = new_task(app, &node.id, &host, ports.clone(), now);
            tracing::info!(task = %task.spec.task_id, app = %id, node = %node.id, "task placed");
            self.status_event(&task, TaskState::Staging, "", now);
            self.tasks.insert(task.spec.task_id.clone(), task);
            self.dirty = true;
        }
        match placement.reason {
            Some(reason) => {
                self.queue.insert(
                    id.to_string(),
                    QueueEntry {
                        count: to_launch - placement.placed.len(),
                        reason,
                        since,
                    },
                );
            }
            None => {
                self.queue.remove(id);
            }
        }
    }

    fn finish_deployments(&mut self, now: DateTime<Utc>) {
        let done: Vec<Deployment> = self
            .deployments
            .values()
            .filter(|d| match self.apps.get(&d.app_id) {
                None => !self.tasks.values().any(|t| t.spec.app_id == d.app_id),
                Some(app) => {
                    let tasks: Vec<&Task> = self
                        .tasks
                        .values()
                        .filter(|t| t.spec.app_id == d.app_id)
                        .collect();
                    tasks.len() == app.def.instances.max(0) as usize
                        && tasks
                            .iter()
                            .all(|t| t.spec.config_version == app.config_version && t.is_healthy())
                }
            })
            .cloned()
            .collect();
        for d in done {
            tracing::info!(deployment = %d.id, app = %d.app_id, action = %d.action, "deployment finished");
            self.deployments.remove(&d.id);
            self.dirty = true;
            self.event(
                now,
                EventKind::DeploymentSuccess {
                    id: d.id.clone(),
                    plan: d.plan(),
                },
            );
        }
    }
}

/// What an app needs next: how many tasks to launch, which to kill.
#[derive(Debug, Default, PartialEq)]
struct Step {
    launch: usize,
    kill: Vec<String>,
}

/// A scale to `n` tasks: launch the missing ones, or kill the surplus in `killSelection`
/// order.
fn scale_step(current: &[&Task], n: usize, kill_selection: &str) -> Step {
    let mut step = Step::default();
    if current.len() > n {
        step.kill = kill_order(current, kill_selection)
            .into_iter()
            .take(current.len() - n)
            .collect();
    } else {
        step.launch = n - current.len();
    }
    step
}

/// A step of a rolling update from the `old` tasks to `current` ones: stay within
/// [minimumHealthCapacity, 1 + maximumOverCapacity] of `n`.
fn rolling_step(
    def: &AppDefinition,
    n: usize,
    active: &[Task],
    current: &[&Task],
    old: &[&Task],
) -> Step {
    let us = &def.upgrade_strategy;
    let min_healthy = (n as f64 * us.minimum_health_capacity).ceil() as usize;
    let max_total = n + (n as f64 * us.maximum_over_capacity).floor() as usize;
    let to_launch = n
        .saturating_sub(current.len())
        .min(max_total.saturating_sub(active.len()));
    let mut to_kill: Vec<String> = Vec::new();
    if current.len() > n {
        to_kill.extend(
            kill_order(current, &def.kill_selection)
                .into_iter()
                .take(current.len() - n),
        );
    }
    let mut healthy = active.iter().filter(|t| t.is_healthy()).count();
    let mut old_sorted = old.to_vec();
    // Unhealthy and youngest old tasks go first.
    old_sorted.sort_by_key(|t| (t.is_healthy(), std::cmp::Reverse(t.staged_at)));
    for t in &old_sorted {
        if !t.is_healthy() {
            to_kill.push(t.spec.task_id.clone());
        } else if healthy > min_healthy {
            to_kill.push(t.spec.task_id.clone());
            healthy -= 1;
        }
    }
    // Neither may a new task start (maximumOverCapacity) nor an old one stop
    // (minimumHealthCapacity), and no new task is on its way to healthy: replace one
    // old task anyway, or nothing ever moves.
    if to_launch == 0
        && to_kill.is_empty()
        && current.len() < n
        && current.iter().all(|t| t.is_healthy())
    {
        if let Some(t) = old_sorted.first() {
            to_kill.push(t.spec.task_id.clone());
        }
    }
    Step {
        launch: to_launch,
        kill: to_kill,
    }
}

/// Task IDs in the order they are killed when scaling down.
fn kill_order(tasks: &[&Task], selection: &str) -> Vec<String> {
    let mut v: Vec<&&Task> = tasks.iter().collect();
    // Not yet running (or unreachable) first, then by age.
    v.sort_by(|a, b| {
        let ra = a.state == TaskState::Running;
        let rb = b.state == TaskState::Running;
        ra.cmp(&rb).then_with(|| {
            if selection == "OLDEST_FIRST" {
                a.staged_at.cmp(&b.staged_at)
            } else {
                b.staged_at.cmp(&a.staged_at)
            }
        })
    });
    v.into_iter().map(|t| t.spec.task_id.clone()).collect()
}

/// A new task of `app` on a node.
pub fn new_task(
    app: &App,
    node_id: &str,
    host: &str,
    host_ports: Vec<u16>,
    now: DateTime<Utc>,
) -> Task {
    let def = &app.def;
    let container_ports = if def.bridge() {
        def.port_mappings()
            .iter()
            .map(|p| (p.container_port.clamp(0, 65535) as u16, p.protocol.clone()))
            .collect()
    } else {
        Vec::new()
    };
    let docker = def.container.as_ref().and_then(|c| c.docker.as_ref());
    Task {
        spec: TaskSpec {
            task_id: task_id(&def.id),
            app_id: def.id.clone(),
            group: group_of(&def.id),
            config_version: app.config_version,
            image: def.image().map(str::to_string),
            cmd: def.cmd.clone().filter(|c| !c.trim().is_empty()),
            args: def.args.clone().filter(|a| !a.is_empty()),
            user: def.user.clone(),
            env: def
                .env
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect(),
            labels: def.labels.clone(),
            cpus: def.cpus,
            mem: def.mem,
            host_ports,
            container_ports,
            bridge: def.bridge(),
            health_checks: def.health_checks.clone(),
            kill_grace_secs: def.task_kill_grace_period_seconds.unwrap_or(3.0),
            force_pull: docker.and_then(|d| d.force_pull_image).unwrap_or(false),
            privileged: docker.and_then(|d| d.privileged).unwrap_or(false),
        },
        node_id: node_id.to_string(),
        host: host.to_string(),
        state: TaskState::Staging,
        staged_at: now,
        started_at: None,
        container_id: None,
        healthy: None,
        consecutive_failures: 0,
        last_success: None,
        last_failure: None,
        last_failure_cause: None,
        kill_reason: None,
        drain_until: None,
        unreachable_since: None,
        state_before_unreachable: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::TaskState, validate::parse_app};

    fn t0() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    /// Task `n` of `/a` (staged `n` seconds after t0), in `state`, healthy or not.
    fn task(n: i64, state: TaskState, healthy: bool) -> Task {
        let app = App {
            def: parse_app(serde_json::json!({"id": "/a", "cmd": "x"})).unwrap(),
            version: t0(),
            config_version: t0(),
            last_scaling_at: t0(),
        };
        let mut t = new_task(&app, "n1", "h", vec![], t0() + chrono::Duration::seconds(n));
        t.spec.task_id = format!("t{n}");
        t.state = state;
        t.healthy = Some(healthy);
        t
    }

    #[test]
    fn scale_steps() {
        let run = |n| task(n, TaskState::Running, true);
        let tasks = [run(1), run(2), task(3, TaskState::Staging, false), run(4)];
        let current: Vec<&Task> = tasks.iter().collect();
        // (wanted, killSelection) → launches, kills
        let cases: [(usize, &str, usize, &[&str]); 5] = [
            (6, "YOUNGEST_FIRST", 2, &[]),
            (4, "YOUNGEST_FIRST", 0, &[]),
            // the unstarted one first, then by age
            (2, "YOUNGEST_FIRST", 0, &["t3", "t4"]),
            (2, "OLDEST_FIRST", 0, &["t3", "t1"]),
            (0, "YOUNGEST_FIRST", 0, &["t3", "t4", "t2", "t1"]),
        ];
        for (n, selection, launch, kill) in cases {
            let step = scale_step(&current, n, selection);
            assert_eq!(step.launch, launch, "{n} {selection}");
            assert_eq!(step.kill, kill, "{n} {selection}");
        }
    }

    #[test]
    fn rolling_steps_stay_within_the_upgrade_strategy() {
        let def = |min: f64, over: f64| {
            parse_app(
                serde_json::json!({"id": "/a", "cmd": "x", "upgradeStrategy":
                {"minimumHealthCapacity": min, "maximumOverCapacity": over}}),
            )
            .unwrap()
        };
        let old: Vec<Task> = (1..=4).map(|n| task(n, TaskState::Running, true)).collect();
        let old_refs: Vec<&Task> = old.iter().collect();
        // Nothing new yet. (min, over) → launches, kills
        let cases: [(f64, f64, usize, &[&str]); 4] = [
            // 4 more may start; all 4 old must stay healthy
            (1.0, 1.0, 4, &[]),
            // 2 may stop (youngest first); none may start on top
            (0.5, 0.0, 0, &["t4", "t3"]),
            // 2 may start, 1 may stop
            (0.75, 0.5, 2, &["t4"]),
            // neither bound lets anything move: one old task goes anyway
            (1.0, 0.0, 0, &["t4"]),
        ];
        for (min, over, launch, kill) in cases {
            let step = rolling_step(&def(min, over), 4, &old, &[], &old_refs);
            assert_eq!(step.launch, launch, "{min} {over}");
            assert_eq!(step.kill, kill, "{min} {over}");
        }
        // An old task that is not healthy (here: never started) always goes.
        let mut old = old;
        old[0].state = TaskState::Staging;
        let old_refs: Vec<&Task> = old.iter().collect();
        let step = rolling_step(&def(1.0, 1.0), 4, &old, &[], &old_refs);
        assert_eq!(step.kill, ["t1"]);
    }
}
