//! Marathon's JSON views: apps (with task counts, and tasks and the last failure when
//! embedded), tasks, and the group tree.
use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::{
    master::State as MState,
    model::{
        ts, App, DeploymentRef, LastTaskFailure, MarathonApp, MarathonTask, Task, VersionInfo,
    },
};

/// An app as Marathon returns it.
pub fn app_json(s: &MState, app: &App, embed_tasks: bool, embed_failure: bool) -> Value {
    serde_json::to_value(app_view(s, app, embed_tasks, embed_failure)).unwrap_or(Value::Null)
}

/// An app as Marathon returns it, typed.
pub fn app_view(s: &MState, app: &App, embed_tasks: bool, embed_failure: bool) -> MarathonApp {
    let tasks: Vec<&Task> = s
        .tasks
        .values()
        .filter(|t| t.spec.app_id == app.def.id && t.is_active())
        .collect();
    let count = |f: &dyn Fn(&Task) -> bool| tasks.iter().filter(|t| f(t)).count();
    MarathonApp {
        definition: app.def.clone(),
        version: app.version,
        version_info: VersionInfo {
            last_scaling_at: app.last_scaling_at,
            last_config_change_at: app.config_version,
        },
        tasks_staged: count(&|t| {
            matches!(
                t.state,
                crate::model::TaskState::Staging | crate::model::TaskState::Starting
            )
        }),
        tasks_running: count(&|t| t.state == crate::model::TaskState::Running),
        tasks_healthy: count(&|t| !t.spec.health_checks.is_empty() && t.is_healthy()),
        tasks_unhealthy: count(&|t| !t.spec.health_checks.is_empty() && t.healthy == Some(false)),
        deployments: s
            .deployments
            .values()
            .filter(|d| d.app_id == app.def.id)
            .map(|d| DeploymentRef { id: d.id.clone() })
            .collect(),
        tasks: embed_tasks.then(|| tasks.iter().map(|t| MarathonTask::of(t)).collect()),
        last_task_failure: s
            .failures
            .get(&app.def.id)
            .filter(|_| embed_failure)
            .map(|f| LastTaskFailure {
                app_id: app.def.id.clone(),
                host: f.host.clone(),
                message: f.message.clone(),
                task_id: f.task_id.clone(),
                instance_id: f.task_id.clone(),
                slave_id: None,
                state: f.state,
                timestamp: f.timestamp,
                version: f.version,
            }),
    }
}

/// A task as Marathon returns it.
pub fn task_json(t: &Task) -> Value {
    serde_json::to_value(MarathonTask::of(t)).unwrap_or(Value::Null)
}

// === groups ===

pub(super) fn group_json(s: &MState, id: &str) -> Option<Value> {
    let prefix = if id == "/" {
        "/".to_string()
    } else {
        format!("{id}/")
    };
    let mut apps = Vec::new();
    let mut subgroups: BTreeMap<String, ()> = BTreeMap::new();
    for app in s.apps.values() {
        let Some(rest) = app.def.id.strip_prefix(&prefix) else {
            continue;
        };
        match rest.split_once('/') {
            None => apps.push(app_json(s, app, false, false)),
            Some((g, _)) => {
                subgroups.insert(format!("{prefix}{g}"), ());
            }
        }
    }
    if apps.is_empty() && subgroups.is_empty() && id != "/" {
        return None;
    }
    let groups: Vec<Value> = subgroups.keys().filter_map(|g| group_json(s, g)).collect();
    let version = s.apps.values().map(|a| a.version).max().map(ts);
    Some(json!({
        "id": id, "apps": apps, "groups": groups, "pods": [], "dependencies": [],
        "version": version,
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::{
        clock::SystemClock,
        master::{Master, MasterConfig},
        model::ts,
        validate::parse_app,
    };

    fn master() -> Master {
        Master::in_memory(MasterConfig::default(), Arc::new(SystemClock))
    }

    /// `app_json` before the views were typed.
    fn old_app_json(s: &MState, app: &App, embed_tasks: bool, embed_failure: bool) -> Value {
        let mut v = app.def.to_json();
        let tasks: Vec<&Task> = s
            .tasks
            .values()
            .filter(|t| t.spec.app_id == app.def.id && t.is_active())
            .collect();
        let count = |f: &dyn Fn(&Task) -> bool| tasks.iter().filter(|t| f(t)).count();
        v["version"] = json!(ts(app.version));
        v["versionInfo"] = json!({
            "lastScalingAt": ts(app.last_scaling_at),
            "lastConfigChangeAt": ts(app.config_version),
        });
        v["tasksStaged"] = json!(count(&|t| matches!(
            t.state,
            crate::model::TaskState::Staging | crate::model::TaskState::Starting
        )));
        v["tasksRunning"] = json!(count(&|t| t.state == crate::model::TaskState::Running));
        v["tasksHealthy"] = json!(count(
            &|t| !t.spec.health_checks.is_empty() && t.is_healthy()
        ));
        v["tasksUnhealthy"] = json!(count(
            &|t| !t.spec.health_checks.is_empty() && t.healthy == Some(false)
        ));
        v["deployments"] = json!(s
            .deployments
            .values()
            .filter(|d| d.app_id == app.def.id)
            .map(|d| json!({"id": d.id}))
            .collect::<Vec<_>>());
        if embed_tasks {
            v["tasks"] = json!(tasks.iter().map(|t| old_task_json(t)).collect::<Vec<_>>());
        }
        if embed_failure {
            if let Some(f) = s.failures.get(&app.def.id) {
                v["lastTaskFailure"] = json!({
                    "appId": app.def.id, "host": f.host, "message": f.message, "taskId": f.task_id,
                    "instanceId": f.task_id, "slaveId": null, "state": f.state.marathon(),
                    "timestamp": ts(f.timestamp), "version": ts(f.version),
                });
            }
        }
        v
    }

    /// `task_json` before the views were typed.
    fn old_task_json(t: &Task) -> Value {
        let checks: Vec<Value> = if t.spec.health_checks.is_empty() {
            Vec::new()
        } else {
            vec![json!({
                "alive": t.healthy == Some(true),
                "consecutiveFailures": t.consecutive_failures,
                "firstSuccess": t.last_success.map(ts),
                "lastFailure": t.last_failure.map(ts),
                "lastSuccess": t.last_success.map(ts),
                "lastFailureCause": t.last_failure_cause,
                "taskId": t.spec.task_id,
                "instanceId": t.spec.task_id,
            })]
        };
        json!({
            "id": t.spec.task_id,
            "appId": t.spec.app_id,
            "host": t.host,
            "ports": t.spec.host_ports,
            "servicePorts": [],
            "slaveId": t.node_id,
            "stagedAt": ts(t.staged_at),
            "startedAt": t.started_at.map(ts),
            "version": ts(t.spec.config_version),
            "ipAddresses": [{"ipAddress": t.host, "protocol": "IPv4"}],
            "state": t.state.marathon(),
            "healthCheckResults": checks,
        })
    }

    #[test]
    fn typed_views_render_the_json_the_api_always_sent() {
        use crate::model::{AgentReport, Resources, TaskReport, TaskState};
        let m = master();
        m.write(|s, now| {
            s.heartbeat(
                AgentReport {
                    node_id: "n1".into(),
                    hostname: "h1".into(),
                    resources: Resources {
                        cpus: 4.0,
                        mem: 4096.0,
                        disk: 0.0,
                    },
                    port_range: (31000, 31010),
                    attributes: Default::default(),
                    tasks: vec![],
                },
                true,
                now,
            );
            s.create_app(
                parse_app(
                    json!({"id": "/a", "cmd": "x", "cpus": 0.1, "mem": 10, "instances": 3,
                       "healthChecks": [{"protocol": "TCP"}], "labels": {"k": "v"}}),
                )
                .unwrap(),
                now,
            )?;
            s.create_app(
                parse_app(json!({"id": "/b", "cmd": "y", "cpus": 0.1, "mem": 10})).unwrap(),
                now,
            )?;
            s.tick(now);
            // One task running and healthy, one failing its checks, one failed.
            let specs: Vec<_> = s
                .tasks
                .values()
                .filter(|t| t.spec.app_id == "/a")
                .map(|t| t.spec.clone())
                .collect();
            let report = |i: usize, state, healthy| TaskReport {
                task_id: specs[i].task_id.clone(),
                app_id: "/a".into(),
                state,
                container_id: Some("c".into()),
                message: Some("exit 1".into()),
                started_at: Some(now),
                healthy,
                consecutive_failures: if healthy == Some(false) { 2 } else { 0 },
                last_success: Some(now),
                last_failure: (healthy == Some(false)).then_some(now),
                last_failure_cause: (healthy == Some(false)).then(|| "refused".to_string()),
            };
            s.heartbeat(
                AgentReport {
                    node_id: "n1".into(),
                    hostname: "h1".into(),
                    resources: Resources {
                        cpus: 4.0,
                        mem: 4096.0,
                        disk: 0.0,
                    },
                    port_range: (31000, 31010),
                    attributes: Default::default(),
                    tasks: vec![
                        report(0, TaskState::Running, Some(true)),
                        report(1, TaskState::Running, Some(false)),
                        report(2, TaskState::Failed, None),
                    ],
                },
                false,
                now,
            );
            Ok(())
        })
        .unwrap();
        m.read(|s| {
            assert!(s.failures.contains_key("/a"));
            for app in s.apps.values() {
                for (tasks, failure) in [(false, false), (true, false), (false, true), (true, true)]
                {
                    let new = app_json(s, app, tasks, failure);
                    assert_eq!(new, old_app_json(s, app, tasks, failure));
                    assert_eq!(
                        new.to_string(),
                        old_app_json(s, app, tasks, failure).to_string()
                    );
                    // and it reads back, typed, as the client reads it
                    let back: MarathonApp = serde_json::from_value(new.clone()).unwrap();
                    assert_eq!(serde_json::to_value(&back).unwrap(), new);
                    assert_eq!(back.tasks_running, if app.def.id == "/a" { 2 } else { 0 });
                }
            }
            for t in s.tasks.values() {
                assert_eq!(task_json(t).to_string(), old_task_json(t).to_string());
            }
        });
    }
}
