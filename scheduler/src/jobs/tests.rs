//! The master's job decisions with explicit times: scheduled runs, epsilon, concurrency
//! policies, retries with back-off, timeouts, dependency order, cycles refused, a restart
//! from the store's snapshot adopting a run in progress.
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{validate::parse_job, JobError, RunState};
use crate::{
    events::EventKind,
    master::{MasterConfig, State},
    model::{AgentReport, Resources, TaskReport, TaskSpec, TaskState},
    store::Snapshot,
};

fn t0() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn at(s: f64) -> DateTime<Utc> {
    t0() + chrono::Duration::milliseconds((s * 1000.0) as i64)
}

fn state() -> State {
    let cfg = MasterConfig {
        heartbeat_timeout: Duration::from_secs(5),
        unreachable_replace_after: Duration::from_secs(10),
        launch_timeout: Duration::from_secs(30),
        backoff_reset_after: Duration::from_secs(60),
    };
    let mut s = State::new(Snapshot::default(), cfg, t0());
    s.heartbeat_with_jobs(report("n1", vec![]), true, t0());
    s
}

fn report(node: &str, tasks: Vec<TaskReport>) -> AgentReport {
    AgentReport {
        node_id: node.into(),
        hostname: "127.0.0.1".into(),
        resources: Resources {
            cpus: 2.0,
            mem: 2048.0,
            disk: 0.0,
        },
        port_range: (31000, 31099),
        attributes: Default::default(),
        tasks,
    }
}

fn task(spec: &TaskSpec, state: TaskState, message: Option<&str>) -> TaskReport {
    TaskReport {
        task_id: spec.task_id.clone(),
        app_id: spec.app_id.clone(),
        state,
        container_id: Some(format!("c-{}", spec.task_id)),
        message: message.map(str::to_string),
        started_at: Some(t0()),
        healthy: None,
        consecutive_failures: 0,
        last_success: None,
        last_failure: None,
        last_failure_cause: None,
    }
}

fn job(s: &mut State, body: Value, now: DateTime<Utc>) {
    s.job_create(parse_job(body).unwrap(), now).unwrap();
}

/// Heartbeat n1 reporting each job task it was given in `state`; returns what it is told
/// to run after.
fn agent(
    s: &mut State,
    given: &[TaskSpec],
    state: TaskState,
    msg: Option<&str>,
    now: DateTime<Utc>,
) -> Vec<TaskSpec> {
    let reports = given.iter().map(|t| task(t, state, msg)).collect();
    s.heartbeat_with_jobs(report("n1", reports), false, now)
        .tasks
}

fn runs(s: &State, id: &str) -> Vec<(RunState, usize)> {
    s.jobs
        .runs_of(id)
        .map(|r| (r.state, r.attempts.len()))
        .collect()
}

fn kinds(s: &mut State) -> Vec<String> {
    s.events
        .drain(..)
        .map(|e| e.event_type().to_string())
        .filter(|k| k.starts_with("job_"))
        .collect()
}

#[test]
fn a_scheduled_job_runs_on_time_once_per_scheduled_time() {
    let mut s = state();
    job(
        &mut s,
        json!({"id": "tick", "cmd": "true", "schedule": "*/10 * * * * *"}),
        t0(),
    );
    assert_eq!(s.jobs.jobs["tick"].next_run, Some(at(10.0)));
    s.jobs_tick(at(9.0));
    assert!(runs(&s, "tick").is_empty(), "not due yet");
    s.jobs_tick(at(10.2));
    assert_eq!(runs(&s, "tick"), vec![(RunState::Starting, 1)]);
    // The same scheduled time is never run again, however often the tick comes.
    s.jobs_tick(at(10.5));
    s.jobs_tick(at(11.0));
    assert_eq!(runs(&s, "tick").len(), 1);
    // The agent is told to run it, runs it, it exits 0.
    let given = agent(&mut s, &[], TaskState::Running, None, at(11.0));
    assert_eq!(given.len(), 1);
    assert_eq!(given[0].app_id, "/jobs/tick");
    assert_eq!(given[0].labels["drover.job"], "tick");
    let left = agent(&mut s, &given, TaskState::Running, None, at(12.0));
    assert_eq!(left.len(), 1);
    assert_eq!(runs(&s, "tick"), vec![(RunState::Running, 1)]);
    let left = agent(
        &mut s,
        &given,
        TaskState::Finished,
        Some("the container exited with status 0"),
        at(13.0),
    );
    assert!(
        left.is_empty(),
        "a finished run is no longer listed: the agent removes it"
    );
    let r = s.jobs.runs_of("tick").next().unwrap().clone();
    assert_eq!(r.state, RunState::Succeeded);
    assert_eq!(r.attempts[0].exit_code, Some(0));
    assert!(r.attempts[0].container_id.is_some());
    assert_eq!(r.scheduled_for, Some(at(10.0)));
    assert_eq!(s.jobs.jobs["tick"].last_success, Some(at(13.0)));
    s.jobs_tick(at(20.0));
    assert_eq!(runs(&s, "tick").len(), 2);
    assert_eq!(
        kinds(&mut s),
        ["job_run_started", "job_run_finished", "job_run_started"]
    );
}

#[test]
fn a_run_missed_by_more_than_epsilon_is_skipped_and_recorded() {
    let mut s = state();
    job(
        &mut s,
        json!({"id": "m", "cmd": "true", "schedule": "* * * * *", "epsilonSeconds": 30}),
        t0(),
    );
    // The master was away from 00:00:59 to 00:03:40: 00:01, 00:02, 00:03 passed, all more
    // than 30 s ago.
    s.jobs_tick(at(220.0));
    assert_eq!(runs(&s, "m"), vec![(RunState::Skipped, 0)]);
    let r = s.jobs.runs_of("m").next().unwrap();
    assert_eq!(r.skipped, Some((at(60.0), at(180.0), 3)));
    assert!(
        r.reason.as_deref().unwrap().contains("epsilon"),
        "{:?}",
        r.reason
    );
    assert_eq!(s.jobs.jobs["m"].skipped, 3);
    assert_eq!(s.jobs.jobs["m"].next_run, Some(at(240.0)));
    // Within epsilon: runs (late).
    s.jobs_tick(at(260.0));
    assert_eq!(runs(&s, "m").last(), Some(&(RunState::Starting, 1)));
    assert_eq!(kinds(&mut s), ["job_run_skipped", "job_run_started"]);
}

#[test]
fn concurrency_forbid_skips_allow_overlaps_replace_stops_the_old_one() {
    for (policy, want) in [
        (
            "forbid",
            vec![(RunState::Running, 1), (RunState::Skipped, 0)],
        ),
        (
            "allow",
            vec![(RunState::Running, 1), (RunState::Starting, 1)],
        ),
        (
            "replace",
            vec![(RunState::Failed, 1), (RunState::Starting, 1)],
        ),
    ] {
        let mut s = state();
        job(
            &mut s,
            json!({"id": "c", "cmd": "sleep 100", "schedule": "*/10 * * * * *", "concurrencyPolicy": policy}),
            t0(),
        );
        s.jobs_tick(at(10.0));
        let given = agent(&mut s, &[], TaskState::Running, None, at(10.5));
        agent(&mut s, &given, TaskState::Running, None, at(11.0));
        s.jobs_tick(at(20.0));
        assert_eq!(runs(&s, "c"), want, "{policy}");
        let told = agent(&mut s, &given, TaskState::Running, None, at(20.5));
        let n = if policy == "forbid" {
            1
        } else if policy == "allow" {
            2
        } else {
            1
        };
        assert_eq!(told.len(), n, "{policy}: what the agent runs");
        if policy == "replace" {
            assert_ne!(
                told[0].task_id, given[0].task_id,
                "the old container is dropped"
            );
            let old = s.jobs.runs_of("c").next().unwrap();
            assert!(old.reason.as_deref().unwrap().contains("replaced"));
        }
    }
    // Run now under forbid with a run going: refused, saying why.
    let mut s = state();
    job(
        &mut s,
        json!({"id": "f", "cmd": "sleep 100", "schedule": "R1//PT1H"}),
        t0(),
    );
    s.jobs_tick(t0());
    assert_eq!(runs(&s, "f").len(), 1);
    let e = s.job_run_now("f", at(1.0)).unwrap_err();
    assert!(
        matches!(e, JobError::Conflict(ref m) if m.contains("forbid")),
        "{e}"
    );
}

#[test]
fn a_failing_job_is_retried_with_backoff_then_marked_failed() {
    let mut s = state();
    job(
        &mut s,
        json!({"id": "bad", "cmd": "exit 3", "schedule": "R1//PT1H",
        "retry": {"retries": 2, "backoffSeconds": 2, "backoffFactor": 3}}),
        t0(),
    );
    s.jobs_tick(t0());
    let exit3 = Some("the container exited with status 3");
    let given = agent(&mut s, &[], TaskState::Running, None, at(0.5));
    assert!(agent(&mut s, &given, TaskState::Failed, exit3, at(1.0)).is_empty());
    let r = s.jobs.runs_of("bad").next().unwrap().clone();
    assert_eq!(r.state, RunState::Pending);
    assert_eq!(r.not_before, Some(at(3.0)), "first retry after 2 s");
    assert_eq!(r.attempts[0].exit_code, Some(3));
    s.jobs_tick(at(2.9));
    assert_eq!(runs(&s, "bad"), vec![(RunState::Pending, 1)]);
    s.jobs_tick(at(3.0));
    assert_eq!(runs(&s, "bad"), vec![(RunState::Starting, 2)]);
    let given = agent(&mut s, &[], TaskState::Running, None, at(3.5));
    agent(&mut s, &given, TaskState::Failed, exit3, at(4.0));
    // Second retry after 2 × 3 = 6 s.
    assert_eq!(
        s.jobs.runs_of("bad").next().unwrap().not_before,
        Some(at(10.0))
    );
    s.jobs_tick(at(10.0));
    let given = agent(&mut s, &[], TaskState::Running, None, at(10.5));
    agent(&mut s, &given, TaskState::Failed, exit3, at(11.0));
    let r = s.jobs.runs_of("bad").next().unwrap().clone();
    assert_eq!(r.state, RunState::Failed);
    assert_eq!(r.attempts.len(), 3);
    assert!(
        r.reason.as_deref().unwrap().contains("status 3"),
        "{:?}",
        r.reason
    );
    assert!(
        r.reason.as_deref().unwrap().contains("attempt 3 of 3"),
        "{:?}",
        r.reason
    );
    s.jobs_tick(at(100.0));
    assert_eq!(runs(&s, "bad").len(), 1, "no more attempts");
    assert_eq!(
        kinds(&mut s),
        [
            "job_run_started",
            "job_run_retrying",
            "job_run_started",
            "job_run_retrying",
            "job_run_started",
            "job_run_failed"
        ]
    );
}

#[test]
fn a_missing_image_fails_the_attempt_with_the_agents_reason() {
    let mut s = state();
    job(
        &mut s,
        json!({"id": "img", "image": "nope:1", "schedule": "R1//PT1H"}),
        t0(),
    );
    s.jobs_tick(t0());
    let given = agent(&mut s, &[], TaskState::Running, None, at(0.5));
    let msg = "image nope:1 is not on this node's Docker engine";
    let mut rep = task(&given[0], TaskState::Failed, Some(msg));
    rep.container_id = None;
    s.heartbeat_with_jobs(report("n1", vec![rep]), false, at(1.0));
    let r = s.jobs.runs_of("img").next().unwrap();
    assert_eq!(r.state, RunState::Failed);
    assert_eq!(r.reason.as_deref(), Some(msg));
    assert_eq!(r.attempts[0].exit_code, None);
}

#[test]
fn a_timeout_stops_the_run_and_a_lost_container_fails_it() {
    let mut s = state();
    job(
        &mut s,
        json!({"id": "slow", "cmd": "sleep 100", "schedule": "R1//PT1H", "timeoutSeconds": 5}),
        t0(),
    );
    s.jobs_tick(t0());
    let given = agent(&mut s, &[], TaskState::Running, None, at(0.5));
    agent(&mut s, &given, TaskState::Running, None, at(1.0));
    s.jobs_tick(at(4.0));
    assert_eq!(runs(&s, "slow"), vec![(RunState::Running, 1)]);
    s.jobs_tick(at(6.0));
    let r = s.jobs.runs_of("slow").next().unwrap();
    assert_eq!(r.state, RunState::Failed);
    assert!(r.reason.as_deref().unwrap().contains("timed out after 5 s"));
    assert!(
        agent(&mut s, &given, TaskState::Running, None, at(6.5)).is_empty(),
        "the agent stops it"
    );

    let mut s = state();
    job(
        &mut s,
        json!({"id": "gone", "cmd": "sleep 100", "schedule": "R1//PT1H"}),
        t0(),
    );
    s.jobs_tick(t0());
    let given = agent(&mut s, &[], TaskState::Running, None, at(0.5));
    agent(&mut s, &given, TaskState::Running, None, at(1.0));
    // The container vanished (docker rm -f): not reported any more.
    agent(&mut s, &[], TaskState::Running, None, at(2.0));
    let r = s.jobs.runs_of("gone").next().unwrap();
    assert_eq!(r.state, RunState::Failed);
    assert!(r.reason.as_deref().unwrap().contains("no longer has"));
}

#[test]
fn a_child_runs_only_after_every_parent_succeeded() {
    let mut s = state();
    job(
        &mut s,
        json!({"id": "a", "cmd": "true", "schedule": "R//PT1H"}),
        t0(),
    );
    job(
        &mut s,
        json!({"id": "b", "cmd": "true", "schedule": "R//PT1H"}),
        t0(),
    );
    job(
        &mut s,
        json!({"id": "child", "cmd": "true", "parents": ["a", "b"]}),
        t0(),
    );
    s.jobs_tick(t0());
    let given = agent(&mut s, &[], TaskState::Running, None, at(1.0));
    assert_eq!(given.len(), 2);
    let (ga, gb): (Vec<_>, Vec<_>) = given
        .into_iter()
        .partition(|t| t.labels["drover.job"] == "a");
    agent(
        &mut s,
        &ga,
        TaskState::Finished,
        Some("the container exited with status 0"),
        at(2.0),
    );
    s.jobs_tick(at(2.0));
    assert!(runs(&s, "child").is_empty(), "b has not succeeded yet");
    agent(
        &mut s,
        &gb,
        TaskState::Failed,
        Some("the container exited with status 1"),
        at(3.0),
    );
    s.jobs_tick(at(3.0));
    assert!(runs(&s, "child").is_empty(), "b failed");
    // b's next hourly run succeeds: now both parents' latest runs succeeded.
    s.jobs_tick(at(3600.0));
    let given = agent(&mut s, &[], TaskState::Running, None, at(3601.0));
    let ga: Vec<_> = given
        .iter()
        .filter(|t| t.labels["drover.job"] == "a")
        .cloned()
        .collect();
    let gb: Vec<_> = given
        .iter()
        .filter(|t| t.labels["drover.job"] == "b")
        .cloned()
        .collect();
    // b succeeds; a's latest finished run (at 2 s) succeeded too: the child runs (as
    // Chronos: when a parent completes and every parent succeeded since the child last ran).
    agent(
        &mut s,
        &gb,
        TaskState::Finished,
        Some("the container exited with status 0"),
        at(3602.0),
    );
    s.jobs_tick(at(3602.0));
    assert_eq!(runs(&s, "child"), vec![(RunState::Starting, 1)]);
    // a succeeds again, but b has not succeeded since the child ran: no second run.
    agent(
        &mut s,
        &ga,
        TaskState::Finished,
        Some("the container exited with status 0"),
        at(3603.0),
    );
    s.jobs_tick(at(3603.0));
    s.jobs_tick(at(3604.0));
    assert_eq!(runs(&s, "child").len(), 1);
}

#[test]
fn bad_definitions_name_the_field() {
    let mut s = state();
    job(
        &mut s,
        json!({"id": "a", "cmd": "true", "schedule": "R//PT1H"}),
        t0(),
    );
    job(
        &mut s,
        json!({"id": "b", "cmd": "true", "parents": ["a"]}),
        t0(),
    );
    let cases = [
        (
            json!({"id": "x", "cmd": "true", "schedule": "*/5 * *"}),
            "/schedule",
            "3 fields",
        ),
        (
            json!({"id": "x", "cmd": "true", "schedule": "R5/yesterday/PT1H"}),
            "/schedule",
            "RFC 3339",
        ),
        (json!({"id": "x", "cmd": "true"}), "/schedule", "missing"),
        (
            json!({"id": "x", "cmd": "true", "schedule": "* * * * *", "timezone": "Moon/Base"}),
            "/timezone",
            "IANA",
        ),
        (
            json!({"id": "x", "cmd": "true", "parents": ["nope"]}),
            "/parents/0",
            "unknown job",
        ),
        (
            json!({"id": "x", "cmd": "true", "parents": ["a", "x"]}),
            "/parents/1",
            "own parent",
        ),
        (
            json!({"id": "a", "cmd": "true", "parents": ["b"]}),
            "/parents/0",
            "cycle",
        ),
        (
            json!({"id": "X Y", "cmd": "true", "schedule": "* * * * *"}),
            "/id",
            "job name",
        ),
        (
            json!({"id": "x", "schedule": "* * * * *"}),
            "/cmd",
            "give a cmd",
        ),
        (
            json!({"id": "x", "cmd": "true", "schedule": "* * * * *", "timeoutSeconds": -1}),
            "/timeoutSeconds",
            "negative",
        ),
        (
            json!({"id": "x", "cmd": "true", "schedule": "* * * * *", "constraints": [["hostname", "SOMETIMES"]]}),
            "/constraints/0",
            "",
        ),
    ];
    for (body, path, words) in cases {
        let def = parse_job(body.clone()).unwrap();
        let Err(JobError::Invalid(e)) = s.job_put(def, t0()) else {
            panic!("{body} was accepted");
        };
        let d = e
            .details
            .iter()
            .find(|d| d.path == path)
            .unwrap_or_else(|| panic!("{body}: {e:?}"));
        assert!(d.errors.join(" ").contains(words), "{body}: {d:?}");
    }
    // Type errors and unknown fields, from the JSON.
    let e = parse_job(json!({"id": "x", "cmd": "true", "retry": {"retries": -1}})).unwrap_err();
    assert_eq!(e.details[0].path, "/retry/retries");
    let e = parse_job(json!({"id": "x", "cmd": "true", "shedule": "* * * * *"})).unwrap_err();
    assert_eq!(e.details[0].path, "/shedule");
    // A parent in use is not removed.
    assert!(
        matches!(s.job_delete("a", t0()), Err(JobError::Conflict(m)) if m.contains("parent of b"))
    );
    assert!(matches!(
        s.job_create(
            parse_job(json!({"id": "a", "cmd": "true", "schedule": "R//PT1H"})).unwrap(),
            t0()
        ),
        Err(JobError::Exists(_))
    ));
}

#[test]
fn disabled_jobs_do_not_run_on_schedule_and_do_not_make_up_for_it() {
    let mut s = state();
    job(
        &mut s,
        json!({"id": "d", "cmd": "true", "schedule": "*/10 * * * * *"}),
        t0(),
    );
    s.job_enable("d", false, t0()).unwrap();
    s.jobs_tick(at(35.0));
    assert!(runs(&s, "d").is_empty());
    s.job_enable("d", true, at(35.0)).unwrap();
    assert_eq!(s.jobs.jobs["d"].next_run, Some(at(40.0)));
    // Run now works while disabled.
    s.job_enable("d", false, at(36.0)).unwrap();
    s.job_run_now("d", at(36.0)).unwrap();
    s.jobs_tick(at(36.0));
    assert_eq!(runs(&s, "d"), vec![(RunState::Starting, 1)]);
}

#[test]
fn a_restarted_master_adopts_the_run_in_progress_and_never_repeats_a_scheduled_time() {
    let mut s = state();
    job(
        &mut s,
        json!({"id": "r", "cmd": "sleep 30", "schedule": "* * * * *", "epsilonSeconds": 120}),
        t0(),
    );
    s.jobs_tick(at(60.0));
    let given = agent(&mut s, &[], TaskState::Running, None, at(60.5));
    agent(&mut s, &given, TaskState::Running, None, at(61.0));
    // What the store holds, loaded by a new master.
    let snap = s.snapshot();
    let mut s2 = State::new(snap, s.cfg.clone(), at(70.0));
    s2.jobs_tick(at(70.0));
    assert_eq!(
        runs(&s2, "r"),
        vec![(RunState::Running, 1)],
        "adopted, not started again"
    );
    let told = agent(&mut s2, &given, TaskState::Running, None, at(71.0));
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].task_id, given[0].task_id, "the same container");
    agent(
        &mut s2,
        &given,
        TaskState::Finished,
        Some("the container exited with status 0"),
        at(90.0),
    );
    assert_eq!(runs(&s2, "r"), vec![(RunState::Succeeded, 1)]);
    // Down from 01:30 to 02:10: the 02:00 time is within epsilon and runs, once.
    let snap = s2.snapshot();
    let mut s3 = State::new(snap, s2.cfg.clone(), at(130.0));
    s3.jobs_tick(at(130.0));
    s3.jobs_tick(at(131.0));
    assert_eq!(runs(&s3, "r").len(), 2);
    assert_eq!(
        s3.jobs.runs_of("r").last().unwrap().scheduled_for,
        Some(at(120.0))
    );
}

#[test]
fn job_runs_take_room_from_apps_and_the_reverse() {
    let mut s = state();
    // n1 has 2 cpus: a job of 1.5 leaves no room for an app task of 1.
    job(
        &mut s,
        json!({"id": "big", "cmd": "sleep 100", "schedule": "R1//PT1H", "cpus": 1.5}),
        t0(),
    );
    s.jobs_tick(t0());
    let c = s.candidates();
    assert!((c[0].free.cpus - 0.5).abs() < 1e-9);
    job(
        &mut s,
        json!({"id": "big2", "cmd": "sleep 100", "schedule": "R1//PT1H", "cpus": 1.0}),
        t0(),
    );
    s.jobs_tick(at(1.0));
    let r = s.jobs.runs_of("big2").next().unwrap();
    assert_eq!(r.state, RunState::Pending);
    assert!(
        r.reason.as_deref().unwrap().contains("cpus"),
        "{:?}",
        r.reason
    );
}

#[test]
fn events_render_and_go_to_kafka_with_the_jobs_app() {
    let mut s = state();
    job(
        &mut s,
        json!({"id": "e", "cmd": "true", "schedule": "R1//PT1H"}),
        t0(),
    );
    s.jobs_tick(t0());
    let e = s.events.pop().unwrap();
    let EventKind::JobRunStarted(info) = &e.kind else {
        panic!("{e:?}")
    };
    assert_eq!(info.job_id, "e");
    let v = e.to_json();
    assert_eq!(v["eventType"], "job_run_started");
    assert_eq!(v["jobId"], "e");
    assert_eq!(v["attempt"], 1);
    let back: crate::events::MarathonEvent = serde_json::from_value(v).unwrap();
    assert_eq!(back, e);
    let rec = crate::events::to_schema_event(&e).unwrap();
    assert_eq!(rec.app.as_deref(), Some("/jobs/e"));
    assert_eq!(rec.kind, "job_run_started");
    assert!(rec.task.is_some() && rec.node.as_deref() == Some("n1"));
}

#[test]
fn exit_codes_from_the_agents_message() {
    assert_eq!(
        super::book::exit_code_of("the container exited with status 0"),
        Some(0)
    );
    assert_eq!(
        super::book::exit_code_of("the container exited with status 137"),
        Some(137)
    );
    assert_eq!(super::book::exit_code_of("cannot start"), None);
}

/// 10,000 jobs with schedules (hourly cron in UTC, hourly cron with seconds in Berlin,
/// ISO every minute, daily cron in New York): the master's jobs tick once a second for two
/// simulated minutes (~40 jobs due each second, ~80 at minute boundaries: due checks of all
/// 10,000, next-run computation, runs created and placed). Printed, not asserted: `cargo test
/// -p drover-scheduler --lib -- --ignored --nocapture bench_jobs_tick`.
#[test]
#[ignore]
fn bench_jobs_tick() {
    let mut s = state();
    // Room for every run.
    let mut r = report("n1", vec![]);
    r.resources.cpus = 1e9;
    r.resources.mem = 1e12;
    s.heartbeat_with_jobs(r.clone(), false, t0());
    for i in 0..10_000 {
        let (sched, tz) = match i % 4 {
            0 => (format!("{} * * * *", i % 60), "UTC"),
            1 => (
                format!("{} {} * * * *", i % 60, (i / 60) % 60),
                "Europe/Berlin",
            ),
            2 => (format!("R/2026-01-01T00:00:{:02}Z/PT1M", i % 60), "UTC"),
            _ => ("0 3 * * *".to_string(), "America/New_York"),
        };
        job(
            &mut s,
            json!({"id": format!("j{i}"), "cmd": "true", "schedule": sched, "timezone": tz,
                   "cpus": 0.001, "mem": 1, "concurrencyPolicy": "allow"}),
            t0(),
        );
    }
    let mut times = Vec::new();
    let mut created = 0;
    for sec in 1..=120 {
        let now = at(sec as f64);
        let before = s.jobs.runs.len();
        let started = std::time::Instant::now();
        s.jobs_tick(now);
        times.push(started.elapsed());
        created += s.jobs.runs.len().saturating_sub(before);
        // The agent runs them all and reports them finished half a second later (not timed).
        let given: Vec<TaskSpec> = s
            .jobs
            .open_runs()
            .filter_map(|r| r.active_attempt()?.spec.clone())
            .collect();
        let mut done = r.clone();
        done.tasks = given
            .iter()
            .map(|t| {
                task(
                    t,
                    TaskState::Finished,
                    Some("the container exited with status 0"),
                )
            })
            .collect();
        s.heartbeat_with_jobs(done, false, at(sec as f64 + 0.5));
    }
    times.sort();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    println!(
        "10,000 jobs, a jobs tick per second for 120 s ({created} runs created, each finished before the next tick): median {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        ms(times[60]),
        ms(times[108]),
        ms(times[119])
    );
}

/// What the store costs with 10,000 jobs: the master saves after every change by
/// serializing every row to find the changed ones (`store.rs`). Printed, not asserted:
/// `cargo test -p drover-scheduler --lib -- --ignored --nocapture bench_store`.
#[test]
#[ignore]
fn bench_store_with_10000_jobs() {
    let mut s = state();
    for i in 0..10_000 {
        job(
            &mut s,
            json!({"id": format!("j{i}"), "cmd": "true", "schedule": format!("{} * * * *", i % 60)}),
            t0(),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open(&dir.path().join("s.redb")).unwrap();
    let started = std::time::Instant::now();
    store.save(&s.snapshot()).unwrap();
    let first = started.elapsed();
    let (mut times, mut snaps, mut unchanged) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..5 {
        s.job_run_now(&format!("j{k}"), at(1.0)).unwrap();
        let started = std::time::Instant::now();
        let snap = s.snapshot();
        snaps.push(started.elapsed());
        store.save(&snap).unwrap();
        times.push(started.elapsed());
        // Nothing changed: the diff alone (no transaction).
        let started = std::time::Instant::now();
        store.save(&snap).unwrap();
        unchanged.push(started.elapsed());
    }
    for v in [&mut times, &mut snaps, &mut unchanged] {
        v.sort();
    }
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    println!(
        "store with 10,000 jobs: first save {:.0} ms; a save after one change median {:.1} ms (the state's snapshot {:.1} ms, the diff of every row {:.1} ms, the rest is redb's durable commit)",
        ms(first),
        ms(times[2]),
        ms(snaps[2]),
        ms(unchanged[2])
    );
}
