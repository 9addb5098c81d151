//! Agents: heartbeats (and registrations) in, the tasks to run out; node operations.
use chrono::{DateTime, Utc};

use super::*;

impl State {
    /// A heartbeat (or registration, `register`) from an agent: update the node and its
    /// tasks, answer with the tasks it should run.
    pub fn heartbeat(
        &mut self,
        report: AgentReport,
        register: bool,
        now: DateTime<Utc>,
    ) -> HeartbeatReply {
        let id = report.node_id.clone();
        let node = self.nodes.entry(id.clone()).or_insert_with(|| Node {
            id: id.clone(),
            hostname: report.hostname.clone(),
            resources: report.resources,
            port_range: report.port_range,
            attributes: report.attributes.clone(),
            cordoned: false,
            draining: false,
            removed: false,
            last_seen: now,
            unreachable: false,
            registered_at: now,
        });
        let changed = node.hostname != report.hostname
            || node.resources != report.resources
            || node.port_range != report.port_range
            || node.attributes != report.attributes
            || (register && node.removed);
        node.hostname = report.hostname.clone();
        node.resources = report.resources;
        node.port_range = report.port_range;
        node.attributes = report.attributes.clone();
        node.last_seen = now;
        if register && node.removed {
            node.removed = false;
            node.cordoned = false;
            node.draining = false;
        }
        let was_unreachable = std::mem::replace(&mut node.unreachable, false);
        let removed = node.removed;
        if changed {
            self.dirty = true;
        }
        if was_unreachable {
            tracing::info!(node = %id, "node is reachable again");
            self.dirty = true;
            self.event(
                now,
                EventKind::NodeReachable {
                    node_id: id.clone(),
                },
            );
            for t in self.tasks.values_mut().filter(|t| t.node_id == id) {
                if t.state == TaskState::Unreachable {
                    t.state = t
                        .state_before_unreachable
                        .take()
                        .unwrap_or(TaskState::Running);
                    t.unreachable_since = None;
                }
            }
        }
        if removed {
            return HeartbeatReply {
                tasks: Vec::new(),
                removed: true,
                cluster_id: String::new(),
            };
        }
        let mut seen = std::collections::HashSet::new();
        for r in report.tasks {
            seen.insert(r.task_id.clone());
            let Some(t) = self.tasks.get(&r.task_id) else {
                continue; // unknown: not in the reply, so the agent stops it
            };
            if t.node_id != id {
                continue;
            }
            let t = t.clone();
            if r.state.is_terminal() {
                self.tasks.remove(&r.task_id);
                self.dirty = true;
                let msg = r.message.clone().unwrap_or_default();
                self.status_event(&t, r.state, &msg, now);
                if t.state != TaskState::Killing {
                    tracing::warn!(task = %t.spec.task_id, app = %t.spec.app_id, state = r.state.name(), message = %msg, "task ended");
                    self.record_failure(&t, r.state, &msg, now);
                }
                continue;
            }
            let mut new = t.clone();
            if t.state != TaskState::Killing {
                new.state = r.state;
            }
            new.container_id = r.container_id.clone().or(new.container_id);
            new.started_at = r.started_at.or(new.started_at);
            if r.healthy.is_some() {
                new.healthy = r.healthy;
            }
            new.consecutive_failures = r.consecutive_failures;
            new.last_success = r.last_success.or(new.last_success);
            new.last_failure = r.last_failure.or(new.last_failure);
            new.last_failure_cause = r.last_failure_cause.clone().or(new.last_failure_cause);
            if new.state != t.state {
                self.dirty = true;
                self.status_event(&new, new.state, "", now);
            }
            if new.healthy != t.healthy {
                self.dirty = true;
                self.event(
                    now,
                    EventKind::HealthStatusChanged {
                        app_id: new.spec.app_id.clone(),
                        task_id: new.spec.task_id.clone(),
                        instance_id: new.spec.task_id.clone(),
                        version: new.spec.config_version,
                        alive: new.healthy == Some(true),
                    },
                );
            }
            self.tasks.insert(r.task_id.clone(), new);
        }
        // Tasks this node should have but did not report.
        let missing: Vec<Task> = self
            .tasks
            .values()
            .filter(|t| t.node_id == id && !seen.contains(&t.spec.task_id))
            .cloned()
            .collect();
        for t in missing {
            match t.state {
                TaskState::Staging if now - t.staged_at < secs(self.cfg.launch_timeout) => {}
                TaskState::Killing => {
                    self.tasks.remove(&t.spec.task_id);
                    self.dirty = true;
                    self.status_event(&t, TaskState::Killed, "", now);
                }
                _ => {
                    self.tasks.remove(&t.spec.task_id);
                    self.dirty = true;
                    let msg = "the agent no longer has the task's container";
                    tracing::warn!(task = %t.spec.task_id, node = %id, "task lost");
                    self.status_event(&t, TaskState::Failed, msg, now);
                    self.record_failure(&t, TaskState::Failed, msg, now);
                }
            }
        }
        HeartbeatReply {
            tasks: self
                .tasks
                .values()
                .filter(|t| t.node_id == id && t.keep_running(now))
                .map(|t| t.spec.clone())
                .collect(),
            removed: false,
            cluster_id: String::new(),
        }
    }

    /// Cordon (no new tasks), uncordon, drain (cordon and move its tasks away) or remove a
    /// node.
    pub fn node_action(
        &mut self,
        id: &str,
        action: NodeAction,
        now: DateTime<Utc>,
    ) -> Result<Node, MasterError> {
        let node = self
            .nodes
            .get_mut(id)
            .filter(|n| !n.removed)
            .ok_or_else(|| MasterError::NodeNotFound(id.to_string()))?;
        match action {
            NodeAction::Cordon => node.cordoned = true,
            NodeAction::Uncordon => {
                node.cordoned = false;
                node.draining = false;
            }
            NodeAction::Drain => {
                node.cordoned = true;
                node.draining = true;
            }
            NodeAction::Remove => {
                node.removed = true;
                node.cordoned = true;
                node.draining = true;
            }
        }
        let node = node.clone();
        tracing::info!(node = %id, action = ?action, "node changed");
        self.dirty = true;
        self.event(
            now,
            EventKind::NodeUpdate {
                node_id: id.to_string(),
                action,
                status: node.status().to_string(),
            },
        );
        Ok(node)
    }
}
