//! The master's decisions with explicit times.
use serde_json::{json, Value};

use super::*;
use crate::{api::apps::put_definition, model::TaskReport, validate::parse_app};

/// `PUT /v2/apps/{id}` as the API does it: the patch merged over the current definition,
/// then applied.
trait UpdateApp {
    fn update_app(
        &mut self,
        id: &str,
        patch: Value,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<Deployment, MasterError>;
}

impl UpdateApp for State {
    fn update_app(
        &mut self,
        id: &str,
        patch: Value,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<Deployment, MasterError> {
        let def = put_definition(self.apps.get(id).map(|a| &a.def), id, patch, true)?;
        self.put_app(def, force, now)
    }
}

fn t0() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn at(s: f64) -> DateTime<Utc> {
    t0() + secs_f(s)
}

fn state() -> State {
    let cfg = MasterConfig {
        heartbeat_timeout: Duration::from_secs(5),
        unreachable_replace_after: Duration::from_secs(10),
        launch_timeout: Duration::from_secs(30),
        backoff_reset_after: Duration::from_secs(60),
    };
    State::new(Snapshot::default(), cfg, t0())
}

fn report(node: &str, tasks: Vec<TaskReport>) -> AgentReport {
    AgentReport {
        node_id: node.into(),
        hostname: "127.0.0.1".into(),
        resources: Resources {
            cpus: 4.0,
            mem: 4096.0,
            disk: 1000.0,
        },
        port_range: (31000, 31999),
        attributes: Default::default(),
        tasks,
    }
}

fn running(spec: &TaskSpec, healthy: Option<bool>) -> TaskReport {
    TaskReport {
        task_id: spec.task_id.clone(),
        app_id: spec.app_id.clone(),
        state: TaskState::Running,
        container_id: Some("c".into()),
        message: None,
        started_at: Some(t0()),
        healthy,
        consecutive_failures: 0,
        last_success: None,
        last_failure: None,
        last_failure_cause: None,
    }
}

fn app(s: &mut State, body: Value, now: DateTime<Utc>) {
    s.create_app(parse_app(body).unwrap(), now).unwrap();
}

/// An agent that runs everything it is given: heartbeat `node` reporting every active
/// task the master placed there as running and healthy (killed ones are gone).
fn all_running(s: &mut State, node: &str, now: DateTime<Utc>) -> Vec<TaskSpec> {
    let reports: Vec<TaskReport> = s
        .tasks
        .values()
        .filter(|t| t.node_id == node && t.is_active())
        .map(|t| running(&t.spec, Some(true)))
        .collect();
    s.heartbeat(report(node, reports), false, now).tasks
}

#[test]
fn scale_up_then_down_youngest_first() {
    let mut s = state();
    s.heartbeat(report("n1", vec![]), true, t0());
    app(
        &mut s,
        json!({"id": "/a", "cmd": "sleep 1", "cpus": 0.1, "mem": 10, "instances": 3}),
        t0(),
    );
    s.tick(t0());
    assert_eq!(s.tasks.len(), 3);
    all_running(&mut s, "n1", at(1.0));
    s.tick(at(1.0));
    assert!(s.deployments.is_empty(), "start deployment done");
    // one more, younger
    s.update_app("/a", json!({"instances": 4}), false, at(2.0))
        .unwrap();
    s.tick(at(2.0));
    let youngest = s
        .tasks
        .values()
        .max_by_key(|t| t.staged_at)
        .unwrap()
        .spec
        .task_id
        .clone();
    all_running(&mut s, "n1", at(3.0));
    s.tick(at(3.0));
    s.update_app("/a", json!({"instances": 3}), false, at(4.0))
        .unwrap();
    s.tick(at(4.0));
    assert_eq!(s.tasks[&youngest].state, TaskState::Killing);
    assert_eq!(s.tasks.values().filter(|t| t.is_active()).count(), 3);
}

#[test]
fn failed_task_is_replaced_after_backoff() {
    let mut s = state();
    s.heartbeat(report("n1", vec![]), true, t0());
    app(
        &mut s,
        json!({"id": "/a", "cmd": "x", "cpus": 0.1, "mem": 10}),
        t0(),
    );
    s.tick(t0());
    let spec = all_running(&mut s, "n1", t0())[0].clone();
    let mut r = running(&spec, None);
    r.state = TaskState::Failed;
    r.message = Some("exit 137".into());
    s.heartbeat(report("n1", vec![r.clone()]), false, at(1.0));
    assert!(s.tasks.is_empty());
    assert_eq!(s.delays["/a"].seconds, 1.0);
    s.tick(at(1.5));
    assert!(s.tasks.is_empty(), "still delayed");
    assert!(s.queue["/a"].reason.contains("backoff"));
    s.tick(at(2.1));
    assert_eq!(s.tasks.len(), 1);
    // fails again: 1.15 s
    let spec = s.tasks.values().next().unwrap().spec.clone();
    r = running(&spec, None);
    r.state = TaskState::Failed;
    s.heartbeat(report("n1", vec![r]), false, at(3.0));
    assert!((s.delays["/a"].seconds - 1.15).abs() < 1e-9);
}

#[test]
fn backoff_is_capped_and_resets() {
    let mut s = state();
    s.heartbeat(report("n1", vec![]), true, t0());
    app(
        &mut s,
        json!({"id": "/a", "cmd": "x", "cpus": 0.1, "mem": 10, "backoffSeconds": 100, "backoffFactor": 2, "maxLaunchDelaySeconds": 300}),
        t0(),
    );
    let mut now = t0();
    for want in [100.0, 200.0, 300.0, 300.0] {
        s.tick(now);
        let spec = s.tasks.values().next().expect("a task").spec.clone();
        let mut r = running(&spec, None);
        r.state = TaskState::Failed;
        s.heartbeat(report("n1", vec![r]), false, now);
        assert_eq!(s.delays["/a"].seconds, want);
        now += secs_f(want + 0.1);
        s.heartbeat(report("n1", vec![]), false, now);
    }
    s.tick(now + secs_f(61.0));
    assert!(!s.delays.contains_key("/a"));
}

#[test]
fn unreachable_node_tasks_are_replaced_elsewhere() {
    let mut s = state();
    s.heartbeat(report("n1", vec![]), true, t0());
    app(
        &mut s,
        json!({"id": "/a", "cmd": "x", "cpus": 0.1, "mem": 10, "instances": 2, "constraints": [["hostname", "LIKE", "n1"]]}),
        t0(),
    );
    s.tick(t0());
    all_running(&mut s, "n1", t0());
    // now allow n2 too
    s.update_app("/a", json!({"constraints": []}), true, at(0.5))
        .unwrap();
    s.heartbeat(report("n2", vec![]), true, at(1.0));
    // n1 goes silent
    for i in 0..20 {
        let now = at(1.0 + i as f64);
        all_running(&mut s, "n2", now);
        s.tick(now);
    }
    assert!(s.nodes["n1"].unreachable);
    let on_n2 = s
        .tasks
        .values()
        .filter(|t| t.node_id == "n2" && t.is_active())
        .count();
    assert_eq!(on_n2, 2);
    assert!(!s.tasks.values().any(|t| t.node_id == "n1"));
    // n1 is back with its old containers: they are not in its reply (so they stop)
    let old: Vec<TaskReport> = vec![];
    let reply = s.heartbeat(report("n1", old), false, at(30.0));
    assert!(reply.tasks.is_empty());
    assert!(!s.nodes["n1"].unreachable);
}

#[test]
fn unhealthy_task_is_killed() {
    let mut s = state();
    s.heartbeat(report("n1", vec![]), true, t0());
    app(
        &mut s,
        json!({"id": "/a", "cmd": "x", "cpus": 0.1, "mem": 10, "healthChecks": [{"protocol": "TCP", "maxConsecutiveFailures": 2}]}),
        t0(),
    );
    s.tick(t0());
    let spec = all_running(&mut s, "n1", t0())[0].clone();
    let mut r = running(&spec, Some(false));
    r.consecutive_failures = 2;
    s.heartbeat(report("n1", vec![r]), false, at(1.0));
    s.tick(at(1.0));
    assert_eq!(s.tasks[&spec.task_id].state, TaskState::Killing);
    assert!(s
        .events
        .iter()
        .any(|e| e.event_type() == "unhealthy_task_kill_event"));
}

#[test]
fn rolling_update_keeps_minimum_health_capacity() {
    let mut s = state();
    s.heartbeat(report("n1", vec![]), true, t0());
    app(
        &mut s,
        json!({"id": "/a", "cmd": "v1", "cpus": 0.1, "mem": 10, "instances": 4,
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0}}),
        t0(),
    );
    s.tick(t0());
    all_running(&mut s, "n1", t0());
    s.tick(t0());
    s.update_app("/a", json!({"cmd": "v2"}), false, at(1.0))
        .unwrap();
    let mut now = at(1.0);
    for _ in 0..20 {
        s.tick(now);
        let healthy = s
            .tasks
            .values()
            .filter(|t| t.is_active() && t.is_healthy())
            .count();
        let active = s.tasks.values().filter(|t| t.is_active()).count();
        assert!(
            healthy >= 2,
            "healthy {healthy}: {:#?}",
            s.tasks
                .values()
                .map(|t| (t.state, t.healthy))
                .collect::<Vec<_>>()
        );
        assert!(active <= 4, "active {active}");
        // New tasks take a while to start: rounds where they are only STARTING, during
        // which nothing more may be killed.
        for _ in 0..2 {
            let starting: Vec<TaskReport> = s
                .tasks
                .values()
                .filter(|t| t.is_active())
                .map(|t| {
                    let mut r = running(&t.spec, Some(true));
                    if matches!(t.state, TaskState::Staging | TaskState::Starting) {
                        r.state = TaskState::Starting;
                        r.healthy = None;
                    }
                    r
                })
                .collect();
            s.heartbeat(report("n1", starting), false, now);
            s.tick(now);
            let healthy = s
                .tasks
                .values()
                .filter(|t| t.is_active() && t.is_healthy())
                .count();
            assert!(healthy >= 2, "healthy {healthy} while new tasks start");
        }
        // the agent kills what it is no longer given and runs what it is given
        all_running(&mut s, "n1", now);
        now += secs_f(1.0);
    }
    let app = s.apps["/a"].clone();
    assert_eq!(s.tasks.len(), 4);
    assert!(s
        .tasks
        .values()
        .all(|t| t.spec.config_version == app.config_version));
    assert!(s.deployments.is_empty());
}

#[test]
fn locked_app_needs_force() {
    let mut s = state();
    app(&mut s, json!({"id": "/a", "cmd": "x"}), t0());
    let err = s
        .update_app("/a", json!({"instances": 2}), false, at(1.0))
        .unwrap_err();
    assert!(matches!(err, MasterError::Locked(_)));
    s.update_app("/a", json!({"instances": 2}), true, at(1.0))
        .unwrap();
    assert_eq!(s.deployments.len(), 1);
}

#[test]
fn cordon_and_drain() {
    let mut s = state();
    s.heartbeat(report("n1", vec![]), true, t0());
    s.heartbeat(report("n2", vec![]), true, t0());
    s.node_action("n1", NodeAction::Cordon, t0()).unwrap();
    app(
        &mut s,
        json!({"id": "/a", "cmd": "x", "cpus": 0.1, "mem": 10, "instances": 3}),
        t0(),
    );
    s.tick(t0());
    assert!(s.tasks.values().all(|t| t.node_id == "n2"));
    all_running(&mut s, "n2", t0());
    s.tick(t0());
    s.node_action("n1", NodeAction::Uncordon, t0()).unwrap();
    s.node_action("n2", NodeAction::Drain, t0()).unwrap();
    // Replacements start on n1 first; the drained tasks stop once they are healthy.
    s.tick(at(1.0));
    let healthy = |s: &State| {
        s.tasks
            .values()
            .filter(|t| t.is_active() && t.is_healthy())
            .count()
    };
    assert_eq!(healthy(&s), 3, "the drained tasks still serve");
    assert_eq!(s.tasks.values().filter(|t| t.node_id == "n1").count(), 3);
    for i in 2..6 {
        all_running(&mut s, "n1", at(i as f64));
        all_running(&mut s, "n2", at(i as f64));
        s.tick(at(i as f64));
        assert!(healthy(&s) >= 3);
    }
    let active: Vec<&Task> = s.tasks.values().filter(|t| t.is_active()).collect();
    assert_eq!(active.len(), 3);
    assert!(active.iter().all(|t| t.node_id == "n1"));
    assert!(!s.tasks.values().any(|t| t.node_id == "n2"));
}

#[test]
fn unknown_tasks_are_not_adopted_and_known_ones_survive_a_restart() {
    let mut s = state();
    s.heartbeat(report("n1", vec![]), true, t0());
    app(
        &mut s,
        json!({"id": "/a", "cmd": "x", "cpus": 0.1, "mem": 10}),
        t0(),
    );
    s.tick(t0());
    let spec = all_running(&mut s, "n1", t0())[0].clone();
    // master restart: state from the snapshot
    let mut s2 = State::new(s.snapshot(), s.cfg.clone(), at(100.0));
    let mut stray = running(&spec, Some(true));
    stray.task_id = "a.stray".into();
    let reply = s2.heartbeat(
        report("n1", vec![running(&spec, Some(true)), stray]),
        false,
        at(100.0),
    );
    assert_eq!(reply.tasks.len(), 1);
    assert_eq!(reply.tasks[0].task_id, spec.task_id);
    s2.tick(at(100.0));
    assert_eq!(s2.tasks.len(), 1, "no new task launched");
}

#[test]
fn deleting_a_deployment_rolls_back() {
    let mut s = state();
    s.heartbeat(report("n1", vec![]), true, t0());
    app(
        &mut s,
        json!({"id": "/a", "cmd": "v1", "cpus": 0.1, "mem": 10}),
        t0(),
    );
    s.tick(t0());
    all_running(&mut s, "n1", t0());
    s.tick(t0());
    let d = s
        .update_app("/a", json!({"cmd": "v2"}), false, at(1.0))
        .unwrap();
    let rollback = s
        .delete_deployment(&d.id, false, at(2.0))
        .unwrap()
        .expect("a rollback");
    assert_eq!(s.apps["/a"].def.cmd.as_deref(), Some("v1"));
    assert_eq!(s.deployments.len(), 1);
    assert!(s.deployments.contains_key(&rollback.id));
    // forced: just forgotten
    let d = s
        .update_app("/a", json!({"cmd": "v3"}), true, at(3.0))
        .unwrap();
    assert!(s.delete_deployment(&d.id, true, at(4.0)).unwrap().is_none());
    assert_eq!(s.apps["/a"].def.cmd.as_deref(), Some("v3"));
    assert!(s.deployments.is_empty());
}

#[test]
fn a_stuck_upgrade_strategy_still_moves() {
    // 1 instance, minimumHealthCapacity 1, maximumOverCapacity 0.5 (floors to 0 extra).
    let mut s = state();
    s.heartbeat(report("n1", vec![]), true, t0());
    app(
        &mut s,
        json!({"id": "/a", "cmd": "v1", "cpus": 0.1, "mem": 10,
        "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 0.5}}),
        t0(),
    );
    s.tick(t0());
    all_running(&mut s, "n1", t0());
    s.tick(t0());
    s.update_app("/a", json!({"cmd": "v2"}), false, at(1.0))
        .unwrap();
    for i in 1..6 {
        s.tick(at(i as f64));
        all_running(&mut s, "n1", at(i as f64));
    }
    s.tick(at(6.0));
    let v = s.apps["/a"].config_version;
    assert_eq!(s.tasks.len(), 1);
    assert!(s.tasks.values().all(|t| t.spec.config_version == v));
    assert!(s.deployments.is_empty());
}

/// A routed task being killed stays in its agent's reply for its drain (the gateway has
/// stopped sending it requests, those in flight finish), then leaves it: the agent stops it.
#[test]
fn a_routed_task_drains_before_its_agent_stops_it() {
    let mut s = state();
    s.heartbeat(report("n1", vec![]), true, t0());
    app(
        &mut s,
        json!({"id": "/web", "cmd": "sleep 1", "cpus": 0.1, "mem": 10, "instances": 2,
               "labels": {"drover.gateway.host": "web.local", "drover.gateway.drain-seconds": "4"},
               "taskKillGracePeriodSeconds": 10}),
        t0(),
    );
    app(
        &mut s,
        json!({"id": "/batch", "cmd": "sleep 1", "cpus": 0.1, "mem": 10, "instances": 1}),
        t0(),
    );
    s.tick(t0());
    all_running(&mut s, "n1", at(1.0));
    s.tick(at(1.0));
    s.update_app("/web", json!({"instances": 1}), false, at(2.0))
        .unwrap();
    s.update_app("/batch", json!({"instances": 0}), false, at(2.0))
        .unwrap();
    s.tick(at(2.0));
    let killed: Vec<TaskSpec> = s
        .tasks
        .values()
        .filter(|t| t.state == TaskState::Killing)
        .map(|t| t.spec.clone())
        .collect();
    assert_eq!(killed.len(), 2, "one of /web and /batch's only task");
    let in_reply = |s: &mut State, now| {
        let reports = s
            .tasks
            .values()
            .map(|t| running(&t.spec, Some(true)))
            .collect();
        let ids: Vec<String> = s
            .heartbeat(report("n1", reports), false, now)
            .tasks
            .into_iter()
            .map(|t| t.app_id)
            .collect();
        ids
    };
    // During the drain the routed task is still wanted (the unrouted one is not), and it
    // does not count towards the app's instances: no replacement is held back.
    let ids = in_reply(&mut s, at(5.9));
    assert_eq!(ids.iter().filter(|a| *a == "/web").count(), 2, "{ids:?}");
    assert_eq!(ids.iter().filter(|a| *a == "/batch").count(), 0, "{ids:?}");
    assert_eq!(
        s.tasks.values().filter(|t| t.is_active()).count(),
        1,
        "the draining task is not one of /web's instances"
    );
    // After it: stopped.
    let ids = in_reply(&mut s, at(6.1));
    assert_eq!(ids, vec!["/web".to_string()]);
}

#[test]
fn the_drain_defaults_for_routed_apps_and_is_bounded_by_the_kill_grace_period() {
    let spec = |labels: &[(&str, &str)], grace: f64| {
        let mut s = state();
        s.heartbeat(report("n1", vec![]), true, t0());
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        app(
            &mut s,
            json!({"id": "/a", "cmd": "x", "cpus": 0.1, "mem": 10, "labels": labels,
                   "taskKillGracePeriodSeconds": grace}),
            t0(),
        );
        s.tick(t0());
        s.tasks.values().next().unwrap().spec.clone()
    };
    use crate::model::{drain_secs, DEFAULT_DRAIN_SECS};
    assert_eq!(drain_secs(&spec(&[], 3.0)), 0.0, "not routed: no drain");
    assert_eq!(
        drain_secs(&spec(&[("HAPROXY_0_VHOST", "a.example")], 30.0)),
        DEFAULT_DRAIN_SECS
    );
    assert_eq!(
        drain_secs(&spec(
            &[
                ("drover.gateway.host", "a"),
                ("drover.gateway.drain-seconds", "20")
            ],
            5.0
        )),
        5.0,
        "never longer than the kill grace period"
    );
    assert_eq!(
        drain_secs(&spec(
            &[
                ("drover.gateway.host", "a"),
                ("drover.gateway.drain-seconds", "0")
            ],
            5.0
        )),
        0.0
    );
}

/// A task that failed because its host port was held by something else is placed again on
/// another port (the dynamic port search moves on), not on the same one forever.
#[test]
fn a_task_replaced_after_a_port_clash_gets_another_port() {
    let mut s = state();
    s.heartbeat(report("n1", vec![]), true, t0());
    app(
        &mut s,
        json!({"id": "/a", "cmd": "x", "cpus": 0.1, "mem": 10, "instances": 1,
               "portDefinitions": [{"port": 0}], "backoffSeconds": 0}),
        t0(),
    );
    s.tick(t0());
    let first = s.tasks.values().next().unwrap().spec.clone();
    assert_eq!(first.host_ports.len(), 1, "one dynamic host port");
    let mut failed = running(&first, None);
    failed.state = TaskState::Failed;
    failed.message = Some(format!(
        "host port {} is not free on this node: Address already in use",
        first.host_ports[0]
    ));
    s.heartbeat(report("n1", vec![failed]), false, at(1.0));
    s.tick(at(2.0));
    let second = s.tasks.values().next().expect("replaced").spec.clone();
    assert_ne!(second.task_id, first.task_id);
    assert_ne!(
        second.host_ports, first.host_ports,
        "the replacement is not put on the port that clashed"
    );
}
