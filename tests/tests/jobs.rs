//! Jobs on the real Docker engine: a `drover master` and a `drover agent` (child processes),
//! jobs defined through `/v1/jobs` and `drover job`, runs read back from the API and the
//! engine. Waits are bounded polls; nothing asserts on how long anything took.
use std::{collections::BTreeSet, time::Duration};

use drover_tests::{
    drover::run_drover,
    scheduler::{wait_for, Cluster},
};
use serde_json::{json, Value};

async fn runs(c: &Cluster, id: &str) -> Vec<Value> {
    let (s, v) = c.call("GET", &format!("/v1/jobs/{id}/runs"), None).await;
    assert_eq!(s, 200, "runs of {id}: {v}");
    v["runs"].as_array().cloned().unwrap_or_default()
}

fn in_state<'a>(runs: &'a [Value], state: &str) -> Vec<&'a Value> {
    runs.iter().filter(|r| r["state"] == state).collect()
}

async fn create(c: &Cluster, def: Value) {
    let (s, v) = c.call("POST", "/v1/jobs", Some(&def)).await;
    assert_eq!(s, 201, "POST /v1/jobs {def}: {v}");
}

async fn wait_runs(
    c: &Cluster,
    id: &str,
    what: &str,
    timeout: Duration,
    ok: impl Fn(&[Value]) -> bool,
) {
    let r = wait_for(timeout, what, || async { ok(&runs(c, id).await) }).await;
    if let Err(e) = r {
        panic!(
            "{e}\nruns of {id}: {}\n{}",
            serde_json::to_string_pretty(&runs(c, id).await).unwrap_or_default(),
            c.all_logs()
        );
    }
}

/// Containers of a job's runs on the engine, running or not (by the `drover.job` label).
fn job_containers(job: &str, node: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=drover.job={job}"),
            "--filter",
            &format!("label=drover.node={node}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_job_every_two_seconds_runs_three_times() {
    let c = Cluster::start(1, &[]).await;
    // Through the CLI, from a YAML file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tick.yaml");
    std::fs::write(
        &file,
        "id: tick\ncmd: echo tick from $DROVER_APP_ID\nschedule: \"*/2 * * * * *\"\nepsilonSeconds: 5\ncpus: 0.1\nmem: 32\n",
    )
    .unwrap();
    let master = c.url("");
    let out = run_drover(
        &["job", "add", file.to_str().unwrap(), "--master", &master],
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "drover job add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("job tick saved"));
    wait_runs(
        &c,
        "tick",
        "three runs succeeded",
        Duration::from_secs(90),
        |r| in_state(r, "SUCCEEDED").len() >= 3,
    )
    .await;
    let all = runs(&c, "tick").await;
    let ok = in_state(&all, "SUCCEEDED");
    let times: BTreeSet<String> = ok.iter().map(|r| r["scheduledFor"].to_string()).collect();
    assert_eq!(times.len(), ok.len(), "one run per scheduled time: {all:?}");
    for r in &ok {
        assert_eq!(r["exitCode"], 0, "{r}");
        assert_eq!(r["trigger"], "schedule");
        assert_eq!(r["node"], Value::String(c.agents[0].node_id.clone()));
        assert!(
            r["containerId"].as_str().is_some_and(|s| !s.is_empty()),
            "{r}"
        );
        assert!(
            r["logs"].as_str().unwrap().starts_with("/#/logs?q=task%3A"),
            "{r}"
        );
    }
    // The CLI lists it with its last outcome; --json is the API's.
    let out = run_drover(&["job", "ls", "--master", &master], Duration::from_secs(30));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tick") && text.contains("SUCCEEDED"),
        "{text}"
    );
    let out = run_drover(
        &["job", "runs", "tick", "--json", "--master", &master],
        Duration::from_secs(30),
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("--json");
    assert!(v.as_array().is_some_and(|a| a.len() >= 3), "{v}");
    // Disabled: no new runs are created (checked against a run now, which still works).
    let out = run_drover(
        &["job", "disable", "tick", "--master", &master],
        Duration::from_secs(30),
    );
    assert!(out.status.success());
    wait_runs(
        &c,
        "tick",
        "no run is going",
        Duration::from_secs(60),
        |r| {
            r.iter().all(|x| {
                ["SUCCEEDED", "FAILED", "SKIPPED"].contains(&x["state"].as_str().unwrap_or(""))
            })
        },
    )
    .await;
    let before = runs(&c, "tick").await.len();
    let (s, run) = c.call("POST", "/v1/jobs/tick/run", None).await;
    assert_eq!(s, 201, "{run}");
    let id = run["id"].clone();
    wait_runs(
        &c,
        "tick",
        "the manual run succeeded",
        Duration::from_secs(60),
        |r| r.iter().any(|x| x["id"] == id && x["state"] == "SUCCEEDED"),
    )
    .await;
    let after = runs(&c, "tick").await;
    assert_eq!(after.len(), before + 1, "only the manual run: {after:?}");
    // A bad definition is refused with the field named.
    std::fs::write(&file, "id: broken\ncmd: x\nschedule: \"*/5 * *\"\n").unwrap();
    let out = run_drover(
        &["job", "add", file.to_str().unwrap(), "--master", &master],
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/schedule") && err.contains("3 fields"),
        "{err}"
    );
}

#[tokio::test]
async fn a_failing_job_is_retried_then_marked_failed() {
    let c = Cluster::start(1, &[]).await;
    create(
        &c,
        json!({"id": "bad", "cmd": "echo failing; exit 3", "schedule": "R1//PT1H",
               "retry": {"retries": 2, "backoffSeconds": 1, "backoffFactor": 1}}),
    )
    .await;
    // An image the engine does not have: the reason is the agent's, and it is retried too.
    create(
        &c,
        json!({"id": "noimage", "image": "drover-no-such-image:0", "schedule": "R1//PT1H",
               "retry": {"retries": 1, "backoffSeconds": 1}}),
    )
    .await;
    wait_runs(&c, "bad", "the run failed", Duration::from_secs(90), |r| {
        !in_state(r, "FAILED").is_empty()
    })
    .await;
    let r = runs(&c, "bad").await;
    assert_eq!(r.len(), 1, "{r:?}");
    let attempts = r[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{r:?}");
    for a in attempts {
        assert_eq!(a["exitCode"], 3, "{a}");
    }
    let ids: BTreeSet<&str> = attempts
        .iter()
        .map(|a| a["containerId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "a container per attempt");
    assert!(
        r[0]["reason"].as_str().unwrap().contains("status 3"),
        "{r:?}"
    );
    wait_runs(
        &c,
        "noimage",
        "the run failed",
        Duration::from_secs(60),
        |r| !in_state(r, "FAILED").is_empty(),
    )
    .await;
    let r = runs(&c, "noimage").await;
    assert_eq!(r[0]["attempts"].as_array().unwrap().len(), 2, "{r:?}");
    assert!(
        r[0]["reason"]
            .as_str()
            .unwrap()
            .contains("drover-no-such-image:0"),
        "{r:?}"
    );
    // The failed attempts' containers are gone from the engine.
    let node = c.agents[0].node_id.clone();
    wait_for(
        Duration::from_secs(30),
        "the agent removed them",
        || async { job_containers("bad", &node).is_empty() },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_child_runs_only_after_its_parent_succeeded() {
    let c = Cluster::start(1, &[]).await;
    create(
        &c,
        json!({"id": "parent", "cmd": "sleep 2", "schedule": "R1//PT1H"}),
    )
    .await;
    create(
        &c,
        json!({"id": "doomed", "cmd": "sleep 1; exit 1", "schedule": "R1//PT1H"}),
    )
    .await;
    create(
        &c,
        json!({"id": "child", "cmd": "true", "parents": ["parent"]}),
    )
    .await;
    create(
        &c,
        json!({"id": "orphan", "cmd": "true", "parents": ["parent", "doomed"]}),
    )
    .await;
    // A cycle is refused, naming the field.
    let (s, v) = c
        .call(
            "PUT",
            "/v1/jobs/parent",
            Some(&json!({"cmd": "true", "parents": ["child"]})),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["details"][0]["path"], "/parents/0", "{v}");
    wait_runs(
        &c,
        "child",
        "the child succeeded",
        Duration::from_secs(60),
        |r| !in_state(r, "SUCCEEDED").is_empty(),
    )
    .await;
    let parent = runs(&c, "parent").await;
    let child = runs(&c, "child").await;
    assert_eq!(parent[0]["state"], "SUCCEEDED");
    let parent_end = parent[0]["endedAt"].as_str().unwrap().to_string();
    let child_start = child[0]["createdAt"].as_str().unwrap().to_string();
    assert!(
        child_start >= parent_end,
        "child {child_start} before parent ended {parent_end}"
    );
    assert_eq!(child[0]["trigger"], "parents");
    wait_runs(
        &c,
        "doomed",
        "doomed failed",
        Duration::from_secs(60),
        |r| !in_state(r, "FAILED").is_empty(),
    )
    .await;
    // The orphan never runs (one parent failed): it would have been created in the tick
    // that saw doomed fail; a few more seconds of ticks (every 200 ms) change nothing.
    let ran = wait_for(Duration::from_secs(3), "the orphan runs", || async {
        !runs(&c, "orphan").await.is_empty()
    })
    .await;
    assert!(
        ran.is_err(),
        "the orphan ran: {:?}",
        runs(&c, "orphan").await
    );
}

#[tokio::test]
async fn a_master_restart_mid_run_does_not_start_it_twice() {
    let mut c = Cluster::start(1, &[]).await;
    create(
        &c,
        json!({"id": "long", "cmd": "sleep 8", "schedule": "R1//PT1H"}),
    )
    .await;
    wait_runs(
        &c,
        "long",
        "the run is running",
        Duration::from_secs(60),
        |r| !in_state(r, "RUNNING").is_empty(),
    )
    .await;
    let node = c.agents[0].node_id.clone();
    let before = job_containers("long", &node);
    assert_eq!(before.len(), 1);
    c.master.kill9();
    c.master.restart();
    let mut seen: BTreeSet<String> = before.iter().cloned().collect();
    let r = wait_for(Duration::from_secs(90), "the run succeeded", || {
        for id in job_containers("long", &node) {
            seen.insert(id);
        }
        let url = c.url("/v1/jobs/long/runs");
        async move {
            // The master may not answer yet while it restarts.
            let Ok(resp) = reqwest::get(&url).await else {
                return false;
            };
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            v["runs"]
                .as_array()
                .is_some_and(|r| r.iter().any(|x| x["state"] == "SUCCEEDED"))
        }
    })
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}", c.all_logs());
    }
    let r = runs(&c, "long").await;
    assert_eq!(r.len(), 1, "one run: {r:?}");
    assert_eq!(r[0]["attempts"].as_array().unwrap().len(), 1, "{r:?}");
    assert_eq!(
        r[0]["containerId"].as_str(),
        Some(before[0].as_str()),
        "the same container, adopted"
    );
    assert_eq!(
        seen.len(),
        1,
        "no second container was ever created: {seen:?}"
    );
}

/// Exited containers of the node, by app: (container ID, FinishedAt).
fn exited_of(app: &str, node: &str) -> Vec<(String, String)> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=drover.app={app}"),
            "--filter",
            &format!("label=drover.node={node}"),
            "--filter",
            "status=exited",
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|id| {
            let out = std::process::Command::new("docker")
                .args(["inspect", "-f", "{{.State.FinishedAt}}", id])
                .output()
                .expect("docker inspect");
            (
                id.to_string(),
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn cleanup_removes_exactly_what_the_policy_selects_at_its_time() {
    let mut c = Cluster::start(0, &[]).await;
    // One cleanup, 60 s from now (time enough to make exited containers first).
    let at = chrono::Utc::now() + chrono::Duration::seconds(60);
    let schedule = format!(
        "R1/{}/PT1H",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    c.add_agent(
        "n0",
        &["--cleanup-schedule", &schedule, "--cleanup-rate", "10"],
    )
    .await;
    let node = c.agents[0].node_id.clone();
    // An app whose tasks exit at once: keep its 2 newest exited containers.
    let crash = c.app_id("crash");
    c.create_app(
        &json!({"id": crash, "cmd": "exit 1", "cpus": 0.1, "mem": 32, "backoffSeconds": 0.2,
        "backoffFactor": 1, "labels": {"drover.cleanup.keep": "2"}}),
    )
    .await;
    // A running app with a policy that keeps nothing: its live container stays all the same.
    let live = c.app_id("live");
    c.create_app(
        &json!({"id": live, "cmd": "sleep 1000", "cpus": 0.1, "mem": 32,
        "labels": {"drover.cleanup.keep": "0"}}),
    )
    .await;
    wait_for(
        Duration::from_secs(30),
        "4 exited containers of the crashing app",
        || async { exited_of(&crash, &node).len() >= 4 },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", c.all_logs()));
    let (s, _) = c
        .call("DELETE", &format!("/v2/apps{crash}?force=true"), None)
        .await;
    assert_eq!(s, 200);
    c.wait_deployed(&live, Duration::from_secs(30)).await;
    let live_before = drover_tests::scheduler::running_containers(&live).await;
    assert_eq!(live_before.len(), 1);
    // Nothing of the deleted app runs any more: the set of exited containers is final.
    wait_for(
        Duration::from_secs(20),
        "the crashing app has no container running",
        || async {
            drover_tests::scheduler::running_containers(&crash)
                .await
                .is_empty()
        },
    )
    .await
    .unwrap();
    assert!(
        chrono::Utc::now() < at,
        "the setup took past the cleanup time; rerun on a less busy machine"
    );
    let mut before = exited_of(&crash, &node);
    before.sort_by(|a, b| b.1.cmp(&a.1)); // newest first
    let want_kept: BTreeSet<String> = before.iter().take(2).map(|x| x.0.clone()).collect();
    let want_removed: BTreeSet<String> = before.iter().skip(2).map(|x| x.0.clone()).collect();
    assert!(want_removed.len() >= 2, "{before:?}");
    // The dry run says exactly that, and removes nothing.
    let out = run_drover(
        &["cleanup", "plan", "--node", &node, "--json"],
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("json");
    let planned: BTreeSet<String> = plan["remove"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(planned, want_removed, "{plan}");
    assert_eq!(
        exited_of(&crash, &node).len(),
        before.len(),
        "a dry run removes nothing"
    );
    // At its time, the cleanup removes them (and says so as an event).
    let r = wait_for(Duration::from_secs(90), "the cleanup event", || async {
        let v = c
            .get("/v1/events?event_type=containers_cleaned_event")
            .await;
        v["events"].as_array().is_some_and(|e| !e.is_empty())
    })
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}", c.all_logs());
    }
    let after: BTreeSet<String> = exited_of(&crash, &node).into_iter().map(|x| x.0).collect();
    assert_eq!(after, want_kept, "exactly the 2 newest stay");
    let ev = c
        .get("/v1/events?event_type=containers_cleaned_event")
        .await;
    assert_eq!(ev["events"][0]["count"], want_removed.len(), "{ev}");
    let live_after = drover_tests::scheduler::running_containers(&live).await;
    assert_eq!(
        live_after.iter().map(|x| &x.id).collect::<Vec<_>>(),
        live_before.iter().map(|x| &x.id).collect::<Vec<_>>(),
        "the live container is untouched"
    );
}

#[tokio::test]
async fn the_jobs_page_runs_a_job_now_and_shows_its_history() {
    let c = Cluster::start(1, &[]).await;
    create(
        &c,
        json!({"id": "nightly", "cmd": "echo from the browser", "schedule": "0 3 * * *"}),
    )
    .await;
    // The UI in front of the master (`drover dashboards --master`).
    let ui = format!("127.0.0.1:{}", drover_tests::free_port());
    let master = c.url("");
    let _dash = drover_tests::drover::DroverProcess::start(&[
        "dashboards",
        "--http",
        &ui,
        "--master",
        &master,
    ]);
    let base = format!("http://{ui}");
    wait_for(Duration::from_secs(30), "the UI answers", || async {
        reqwest::get(format!("{base}/v1/jobs"))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await
    .unwrap();
    let shots = drover_tests::repo_root().join("artifacts/screenshots");
    let out = std::process::Command::new("python3")
        .arg(drover_tests::repo_root().join("tests/jobs/jobs_page.py"))
        .args(["--base", &base, "--job", "nightly", "--shots"])
        .arg(&shots)
        .output()
        .expect("python3 runs (scripts/setup.sh installs selenium, chromium and chromium-driver)");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("RESULT ok"),
        "jobs_page.py failed:\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        c.all_logs()
    );
    assert!(shots.join("jobs.png").is_file());
    let r = runs(&c, "nightly").await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["trigger"], "manual");
}

#[tokio::test]
async fn job_runs_and_their_outcomes_are_events_on_kafka() {
    let broker = drover_tests::kafka::TestBroker::start().await;
    let brokers = broker.bootstrap();
    let c = Cluster::start(1, &["--kafka", &brokers]).await;
    create(
        &c,
        json!({"id": "ok", "cmd": "true", "schedule": "R1//PT1H"}),
    )
    .await;
    create(
        &c,
        json!({"id": "ko", "cmd": "exit 4", "schedule": "R1//PT1H",
        "retry": {"retries": 1, "backoffSeconds": 0.5}}),
    )
    .await;
    let events = tokio::task::spawn_blocking(move || {
        drover_tests::kafka::read_records::<drover_schema::Event>(
            &brokers,
            drover_schema::topics::EVENTS,
            |e| e.kind.starts_with("job_run_"),
            |es| {
                es.iter().any(|e| e.kind == "job_run_finished")
                    && es.iter().any(|e| e.kind == "job_run_failed")
            },
            Duration::from_secs(60),
            Duration::ZERO,
        )
    })
    .await
    .unwrap();
    let of = |app: &str, kind: &str| {
        events
            .iter()
            .filter(|e| e.app.as_deref() == Some(app) && e.kind == kind)
            .count()
    };
    assert_eq!(
        of("/jobs/ok", "job_run_started"),
        1,
        "{events:?}\n{}",
        c.all_logs()
    );
    assert_eq!(of("/jobs/ok", "job_run_finished"), 1, "{events:?}");
    assert_eq!(of("/jobs/ko", "job_run_started"), 2, "{events:?}");
    assert_eq!(of("/jobs/ko", "job_run_retrying"), 1, "{events:?}");
    assert_eq!(of("/jobs/ko", "job_run_failed"), 1, "{events:?}");
    let failed = events.iter().find(|e| e.kind == "job_run_failed").unwrap();
    assert_eq!(failed.attrs["exitCode"], 4, "{failed:?}");
    assert_eq!(failed.node.as_deref(), Some(c.agents[0].node_id.as_str()));
    assert!(failed.task.is_some());
}
