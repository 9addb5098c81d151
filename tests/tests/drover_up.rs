//! `drover up` end to end: health, a valid Prometheus exposition, topics on the embedded
//! broker, clean exit on SIGTERM, messages kept across a restart; and the bad inputs.
use std::{process::Command, time::Duration};

use drover_kafka::config;
use drover_tests::{
    drover::{run_drover, DroverUp},
    free_port,
    kafka::{consume_and_commit, produce_all},
};
use rdkafka::consumer::{BaseConsumer, Consumer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_health_and_valid_metrics_and_stops_on_sigterm() {
    let mut up = DroverUp::start(&[]).await;

    let health = reqwest::get(up.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["embedded_broker"], "up");

    let metrics = reqwest::get(up.url("/metrics")).await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("drover_broker_up 1"), "{text}");
    assert!(text.contains("process_resident_memory_bytes"), "{text}");
    promtool_check(&text);

    // Drover's topics exist on the embedded broker with the default partition count.
    let brokers = up.broker.to_string();
    let md = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = config::client(&brokers, "t").create().unwrap();
        let md = c.fetch_metadata(None, Duration::from_secs(10)).unwrap();
        md.topics()
            .iter()
            .map(|t| (t.name().to_string(), t.partitions().len()))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for topic in drover_schema::topics::ALL {
        assert!(
            md.iter().any(|(n, p)| n == topic && *p == 3),
            "{topic} with 3 partitions in {md:?}"
        );
    }

    let status = up.terminate(Duration::from_secs(20));
    assert!(status.success(), "exit {status}:\n{}", up.logs());
    assert!(up.logs().contains("drover stopped"), "{}", up.logs());
    // The broker child went with it.
    assert!(
        std::net::TcpStream::connect(up.broker).is_err(),
        "the embedded broker still listens after drover up exited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_survive_a_restart_of_drover_up() {
    let mut up = DroverUp::start(&[]).await;
    let brokers = up.broker.to_string();
    let topic = drover_schema::topics::EVENTS;
    let values: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| ("app".to_string(), format!("event-{i}").into_bytes()))
        .collect();
    produce_all(&brokers, topic, &values).await;
    assert!(up.terminate(Duration::from_secs(20)).success());

    up.restart(&[]).await;
    let group = drover_tests::unique("g");
    let got = tokio::task::spawn_blocking(move || {
        consume_and_commit(&brokers, topic, &group, 200, Duration::from_secs(20))
    })
    .await
    .unwrap();
    let mut got: Vec<String> = got
        .into_iter()
        .map(|p| String::from_utf8(p).unwrap())
        .collect();
    got.sort();
    let mut want: Vec<String> = values
        .into_iter()
        .map(|(_, v)| String::from_utf8(v).unwrap())
        .collect();
    want.sort();
    assert_eq!(got, want);
}

/// The processes whose working directory is `dir` (the embedded broker runs in its own).
fn processes_in(dir: &std::path::Path) -> Vec<u32> {
    let dir = std::fs::canonicalize(dir).unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir))
        .collect()
}

/// A second `drover up` on a data dir in use is refused, naming the PID that holds it, and
/// leaves the first one running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_drover_up_on_the_same_data_dir_is_refused() {
    let up = DroverUp::start(&["--no-collector", "--no-scheduler"]).await;
    let mut args = up.args();
    // Other ports, the same data dir: only the lock can refuse it.
    let http = format!("127.0.0.1:{}", free_port());
    let broker = format!("127.0.0.1:{}", free_port());
    args[2] = http;
    args[4] = broker;
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_drover(&argv, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is in use by another drover (PID ") && err.contains("drover up)"),
        "{err}"
    );
    assert!(err.contains("pass --data-dir"), "{err}");
    let health = reqwest::get(up.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200, "the first one still runs");
    assert_eq!(processes_in(&up.data_dir().join("broker")).len(), 1);
}

/// `drover up` killed with SIGKILL leaves its broker running; the next start stops that one
/// and runs exactly one broker, with the messages kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_start_again_leaves_exactly_one_broker() {
    let mut up = DroverUp::start(&["--no-collector", "--no-scheduler"]).await;
    let broker_dir = up.data_dir().join("broker");
    let first = processes_in(&broker_dir);
    assert_eq!(first.len(), 1, "one broker: {first:?}");
    let brokers = up.broker.to_string();
    let topic = drover_schema::topics::EVENTS;
    let values: Vec<(String, Vec<u8>)> = (0..50)
        .map(|i| ("app".to_string(), format!("kept-{i}").into_bytes()))
        .collect();
    produce_all(&brokers, topic, &values).await;
    up.kill9();
    assert_eq!(
        processes_in(&broker_dir),
        first,
        "SIGKILL leaves the broker behind (what this test is about)"
    );
    up.restart(&["--no-collector", "--no-scheduler"]).await;
    let now = processes_in(&broker_dir);
    assert_eq!(
        now.len(),
        1,
        "exactly one broker after the restart: {now:?}\n{}",
        up.logs()
    );
    assert_ne!(
        now, first,
        "the orphan was stopped and a new broker started"
    );
    assert!(up.logs().contains("left running"), "{}", up.logs());
    let group = drover_tests::unique("g");
    let got = tokio::task::spawn_blocking(move || {
        consume_and_commit(&brokers, topic, &group, 50, Duration::from_secs(20))
    })
    .await
    .unwrap();
    assert_eq!(got.len(), 50);
}

/// `promtool check metrics` (Debian package `prometheus`) validates the exposition.
fn promtool_check(text: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (scripts/setup.sh installs Debian's prometheus package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stderr_of(args: &[&str]) -> (i32, String) {
    let out = run_drover(args, Duration::from_secs(30));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let (code, err) = stderr_of(&["up", "--bogus"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unexpected argument '--bogus'"), "{err}");
    assert!(err.contains("--help"), "{err}");
}

#[test]
fn http_port_in_use_says_which_flag_to_change() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = stderr_of(&[
        "up",
        "--http",
        &addr,
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("cannot serve HTTP on {addr}")),
        "{err}"
    );
    assert!(
        err.contains("already in use") && err.contains("--http ADDR"),
        "{err}"
    );
}

#[test]
fn broker_port_in_use_says_which_flag_to_change() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let http = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = stderr_of(&[
        "up",
        "--http",
        &http,
        "--broker-listen",
        &addr,
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("address {addr} is already in use")),
        "{err}"
    );
    assert!(err.contains("--broker-listen ADDR"), "{err}");
}

#[test]
fn unreachable_kafka_fails_fast_with_the_fix() {
    let nobody = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (code, err) = stderr_of(&[
        "up",
        "--http",
        &http,
        "--kafka",
        &nobody,
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("cannot reach Kafka at {nobody}")),
        "{err}"
    );
    assert!(err.contains("omit --kafka"), "{err}");
    // Not a timing assertion on speed, just that it does not hang on retries forever.
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn unwritable_data_dir_says_which_flag_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let bad = file.join("data");
    let http = format!("127.0.0.1:{}", free_port());
    let (code, err) = stderr_of(&["up", "--http", &http, "--data-dir", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("as the data dir") && err.contains("--data-dir"),
        "{err}"
    );
}

#[test]
fn conflicting_kafka_and_broker_listen_is_a_usage_error() {
    let (code, err) = stderr_of(&["up", "--kafka", "x:1", "--broker-listen", "127.0.0.1:1"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn collector_bad_app_id_source_is_a_usage_error() {
    let (code, err) = stderr_of(&[
        "collector",
        "--kafka",
        "127.0.0.1:1",
        "--app-id-order",
        "label,bogus",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown app ID source \"bogus\""), "{err}");
    assert!(err.contains("label, env, compose or name"), "{err}");
}

#[test]
fn collector_unreachable_kafka_fails_fast_with_the_fix() {
    let nobody = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = stderr_of(&[
        "collector",
        "--kafka",
        &nobody,
        "--http",
        &http,
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("cannot reach Kafka at {nobody}")),
        "{err}"
    );
}
