//! The logpipe against the real broker: exactly once across SIGKILLs, malformed messages
//! dead-lettered, a broker outage waited out, retention dropping old partitions; and the
//! search API and CLI on a real `drover up` fed by a real container.
use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use drover_schema::{topics, LogRecord, Source, Stream};
use drover_search::{LogStore, Search};
use drover_tests::{
    drover::DroverProcess,
    free_port,
    kafka::{create_default_topics, produce_all, TestBroker},
};
use tempfile::TempDir;

struct Pipe {
    proc: DroverProcess,
    http: String,
    data: TempDir,
}

fn start_logpipe(brokers: &str, extra: &[&str]) -> Pipe {
    let data = tempfile::tempdir().unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "logpipe",
        "--kafka",
        brokers,
        "--data-dir",
        data.path().to_str().unwrap(),
        "--http",
        &http,
        "--commit-interval",
        "300ms",
        "--commit-docs",
        "5000",
    ];
    args.extend_from_slice(extra);
    let proc = DroverProcess::start(&args);
    Pipe { proc, http, data }
}

impl Pipe {
    async fn get(&self, path: &str) -> Option<(u16, serde_json::Value)> {
        let r = reqwest::get(format!("http://{}{path}", self.http))
            .await
            .ok()?;
        let status = r.status().as_u16();
        Some((status, r.json().await.ok()?))
    }

    async fn total(&self) -> Option<u64> {
        // Exact, however many (the default counts exactly up to 10,000).
        self.get("/api/logs/search?limit=1&track_total=true")
            .await?
            .1["total"]
            .as_u64()
    }

    async fn metrics(&self) -> String {
        match reqwest::get(format!("http://{}/metrics", self.http)).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until the index holds `n` lines (and reports what it has after `timeout`).
    async fn wait_total(&self, n: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut last = 0;
        while Instant::now() < deadline {
            if let Some(t) = self.total().await {
                last = t;
                if t >= n {
                    return t;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        last
    }

    /// The (container, seq) of every indexed line, read from the index on disk.
    fn keys(&self) -> Vec<(String, u64)> {
        let store = LogStore::open(self.data.path()).unwrap();
        Search::new(Arc::new(store)).scan_keys().unwrap()
    }
}

fn record(container: &str, seq: u64, ts: DateTime<Utc>, line: String) -> (String, Vec<u8>) {
    let rec = LogRecord {
        v: 1,
        ts,
        end_ts: None,
        source: Source {
            host: "test-host".into(),
            node: None,
            app: format!("app-{container}"),
            task: None,
            group: None,
            container_id: container.into(),
            container_name: container.into(),
            image: "img".into(),
        },
        stream: Stream::Stdout,
        seq,
        line,
    };
    (container.to_string(), drover_schema::encode(&rec))
}

/// `containers` × `per` numbered records, interleaved, stamped now.
fn records(containers: usize, per: u64) -> Vec<(String, Vec<u8>)> {
    records_over(containers, per, 1)
}

/// Like [`records`], with container `c` stamped `c % days` days ago: the lines land in
/// `days` index partitions, so commit rounds span several indexes.
fn records_over(containers: usize, per: u64, days: usize) -> Vec<(String, Vec<u8>)> {
    let today = Utc::now();
    let mut out = Vec::new();
    for seq in 1..=per {
        for c in 0..containers {
            let id = format!("c{c}");
            let line = format!(
                "level=info msg=\"request {seq} of {id} handled\" status={}",
                [200, 404, 502][(seq % 3) as usize]
            );
            let day = today - chrono::Duration::days((c % days) as i64);
            out.push(record(
                &id,
                seq,
                day + chrono::Duration::microseconds(seq as i64),
                line,
            ));
        }
    }
    out
}

fn assert_exactly(keys: &[(String, u64)], containers: usize, per: u64) {
    let set: HashSet<&(String, u64)> = keys.iter().collect();
    assert_eq!(set.len(), keys.len(), "duplicates in the index");
    assert_eq!(keys.len() as u64, containers as u64 * per, "line count");
    for c in 0..containers {
        for seq in 1..=per {
            assert!(set.contains(&(format!("c{c}"), seq)), "missing c{c}#{seq}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hundred_thousand_lines_exactly_once_across_sigkills() {
    let broker = TestBroker::start().await;
    let brokers = broker.bootstrap();
    create_default_topics(&brokers).await;
    let (containers, per) = (4usize, 25_000u64);
    // Two days: every commit round commits two indexes, and a kill can fall between them.
    produce_all(&brokers, topics::LOGS, &records_over(containers, per, 2)).await;

    let mut pipe = start_logpipe(&brokers, &[]);
    // Kill it hard at random points while it indexes, then let it finish.
    let mut kills = 0;
    for _ in 0..4 {
        let wait = Duration::from_millis(fastrand::u64(700..2500));
        tokio::time::sleep(wait).await;
        let seen = pipe.total().await.unwrap_or(0);
        if seen >= containers as u64 * per {
            break;
        }
        pipe.proc.kill9();
        kills += 1;
        eprintln!("SIGKILL {kills} after {wait:?} with {seen} lines searchable");
        pipe.proc.restart();
    }
    let total = pipe.wait_total(100_000, Duration::from_secs(120)).await;
    assert_eq!(total, 100_000, "{}", pipe.proc.logs());
    // Let a late duplicate show up if there were one.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(pipe.total().await, Some(100_000));
    let metrics = pipe.metrics().await;
    pipe.proc.terminate(Duration::from_secs(20));
    assert_exactly(&pipe.keys(), containers, per);
    assert!(
        kills >= 1,
        "the test never killed the logpipe mid-ingestion"
    );
    assert!(
        metrics.contains("drover_logpipe_indexed_total"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_messages_are_dead_lettered_and_counted() {
    let broker = TestBroker::start().await;
    let brokers = broker.bootstrap();
    create_default_topics(&brokers).await;
    let mut msgs = records(1, 10);
    msgs.insert(3, ("bad".into(), b"this is not json".to_vec()));
    msgs.insert(
        5,
        (
            "bad".into(),
            br#"{"ts":"2026-11-22T10:00:00Z","line":"no version"}"#.to_vec(),
        ),
    );
    msgs.insert(
        7,
        (
            "bad".into(),
            br#"{"v":99,"line":"from the future"}"#.to_vec(),
        ),
    );
    produce_all(&brokers, topics::LOGS, &msgs).await;
    let pipe = start_logpipe(&brokers, &[]);
    assert_eq!(
        pipe.wait_total(10, Duration::from_secs(60)).await,
        10,
        "{}",
        pipe.proc.logs()
    );

    // The three bad ones are on the dead-letter topic with the reason in a header.
    let consumer: rdkafka::consumer::BaseConsumer =
        drover_kafka::config::consumer(&brokers, "t", &drover_tests::unique("dl"))
            .create()
            .unwrap();
    use rdkafka::{consumer::Consumer, message::Headers, Message};
    consumer.subscribe(&[topics::DEAD_LETTER]).unwrap();
    let mut reasons = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while reasons.len() < 3 && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let h = m.headers().expect("dead letters carry headers");
            let reason = h
                .iter()
                .find(|h| h.key == "drover-error")
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).to_string())
                .unwrap();
            let source = h
                .iter()
                .find(|h| h.key == "drover-source")
                .and_then(|h| h.value);
            assert!(source.is_some());
            reasons.push(reason);
        }
    }
    reasons.sort();
    assert_eq!(
        reasons,
        ["invalid_json", "missing_version", "unsupported_version"]
    );
    let metrics = pipe.metrics().await;
    for r in ["invalid_json", "missing_version", "unsupported_version"] {
        assert!(
            metrics.contains(&format!(
                "drover_logpipe_dead_lettered_total{{reason=\"{r}\"}} 1"
            )),
            "{metrics}"
        );
    }
    assert!(pipe.proc.logs().contains("malformed message"));
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_outage_is_waited_out_without_loss() {
    let mut broker = TestBroker::start().await;
    let brokers = broker.bootstrap();
    create_default_topics(&brokers).await;
    let first = records(2, 500);
    produce_all(&brokers, topics::LOGS, &first).await;
    let mut pipe = start_logpipe(&brokers, &[]);
    assert_eq!(pipe.wait_total(1000, Duration::from_secs(60)).await, 1000);
    broker.stop().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Still serving searches while Kafka is away.
    assert_eq!(pipe.total().await, Some(1000), "{}", pipe.proc.logs());
    broker.start_again().await;
    let now = Utc::now();
    let second: Vec<_> = (501..=1000)
        .flat_map(|seq| {
            ["c0", "c1"].map(|c| record(c, seq, now, format!("after the outage {seq}")))
        })
        .collect();
    produce_all(&brokers, topics::LOGS, &second).await;
    assert_eq!(
        pipe.wait_total(2000, Duration::from_secs(90)).await,
        2000,
        "{}",
        pipe.proc.logs()
    );
    pipe.proc.terminate(Duration::from_secs(20));
    assert_exactly(&pipe.keys(), 2, 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_drops_old_partitions() {
    let broker = TestBroker::start().await;
    let brokers = broker.bootstrap();
    create_default_topics(&brokers).await;
    let now = Utc::now();
    let old = now - chrono::Duration::days(10);
    let mut msgs: Vec<_> = (1..=5)
        .map(|s| record("old", s, old, format!("old line {s}")))
        .collect();
    msgs.extend((1..=5).map(|s| record("new", s, now, format!("new line {s}"))));
    produce_all(&brokers, topics::LOGS, &msgs).await;

    // With 30 days of retention both days are indexed, in two partitions.
    let mut pipe = start_logpipe(&brokers, &["--retention", "30d"]);
    assert_eq!(
        pipe.wait_total(10, Duration::from_secs(60)).await,
        10,
        "{}",
        pipe.proc.logs()
    );
    pipe.proc.terminate(Duration::from_secs(20));
    let old_dir = pipe.data.path().join(old.format("%Y-%m-%d").to_string());
    assert!(old_dir.join("meta.json").exists());

    // Restarted with 7 days, the old day's partition is removed whole.
    let args = [
        "logpipe",
        "--kafka",
        &brokers,
        "--data-dir",
        pipe.data.path().to_str().unwrap(),
        "--http",
        &pipe.http,
        "--retention",
        "7d",
    ];
    pipe.proc = DroverProcess::start(&args);
    let deadline = Instant::now() + Duration::from_secs(30);
    while old_dir.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!old_dir.exists(), "{}", pipe.proc.logs());
    assert_eq!(pipe.wait_total(5, Duration::from_secs(30)).await, 5);
    let m = pipe.metrics().await;
    assert!(
        m.contains("drover_logpipe_retention_dropped_total 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn search_api_answers_and_rejects_bad_input() {
    let broker = TestBroker::start().await;
    let brokers = broker.bootstrap();
    create_default_topics(&brokers).await;
    produce_all(&brokers, topics::LOGS, &records(3, 100)).await;
    let pipe = start_logpipe(&brokers, &[]);
    assert_eq!(pipe.wait_total(300, Duration::from_secs(60)).await, 300);

    let (code, body) = pipe
        .get("/api/logs/search?q=status:502&app=app-c1&limit=5")
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["total"], 33, "{body}");
    assert_eq!(body["hits"].as_array().unwrap().len(), 5);
    assert!(body["next_cursor"].is_string());
    let (_, h) = pipe
        .get("/api/logs/histogram?since=1h&buckets=12")
        .await
        .unwrap();
    assert_eq!(h["total"], 300, "{h}");
    let (_, f) = pipe.get("/api/logs/fields?field=status").await.unwrap();
    assert_eq!(f["values"].as_array().unwrap().len(), 3, "{f}");
    let (_, c) = pipe
        .get("/api/logs/context?container=c2&seq=50&before=2&after=2")
        .await
        .unwrap();
    let seqs: Vec<u64> = c["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [48, 49, 50, 51, 52]);

    for (path, says) in [
        ("/api/logs/search?q=foo+AND+(", "invalid query"),
        (
            "/api/logs/search?since=5parsecs",
            "cannot read the duration",
        ),
        ("/api/logs/search?limit=0", "limit must be"),
        ("/api/logs/search?colour=red", "unknown field `colour`"),
        ("/api/logs/search?cursor=zzz", "invalid cursor"),
        ("/api/logs/search?track_total=lots", "track_total must be"),
        ("/api/logs/context?seq=1", "needs container and seq"),
    ] {
        let (code, body) = pipe.get(path).await.unwrap();
        assert_eq!(code, 400, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(says),
            "{path}: {body}"
        );
    }

    // The CLI against the same API.
    let server = format!("http://{}", pipe.http);
    let out = drover_tests::drover::run_drover(
        &[
            "logs",
            "search",
            "status:404 AND request",
            "--app",
            "app-c0",
            "--limit",
            "3",
            "--server",
            &server,
        ],
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(
        stdout
            .lines()
            .all(|l| l.contains("app-c0") && l.contains("status=404")),
        "{stdout}"
    );
    let out = drover_tests::drover::run_drover(
        &["logs", "search", "(", "--server", &server],
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid query"));
}

/// The whole path on a real `drover up`: a container prints a unique token, the collector
/// ships it, the logpipe indexes it, and `drover logs search` finds it.
#[tokio::test(flavor = "multi_thread")]
async fn drover_up_finds_a_printed_line() {
    use drover_tests::docker::{docker, start, Spec};
    drover_tests::docker::ensure_images();
    let label = drover_tests::unique("t");
    let filter = format!("drover.test={label}");
    let up = drover_tests::drover::DroverUp::start(&[
        "--include-label",
        &filter,
        "--no-scheduler",
        "--commit-interval",
        "500ms",
    ])
    .await;
    let token = drover_tests::unique("tok").replace('-', "");
    let mut spec = Spec::sh(&format!(
        "echo 'starting'; sleep 1; echo \"ERROR payment failed token={token}\"; sleep 60"
    ));
    spec.labels.insert("drover.test".into(), label.clone());
    let d = docker().await;
    let (_guard, _id) = start(&d, spec).await;
    let printed = Instant::now();
    let server = format!("http://{}", up.http);
    let mut found = None;
    while printed.elapsed() < Duration::from_secs(60) {
        let out = drover_tests::drover::run_drover(
            &[
                "logs",
                "search",
                &token,
                "--since",
                "10m",
                "--exact-total",
                "--json",
                "--server",
                &server,
            ],
            Duration::from_secs(10),
        );
        if out.status.success() {
            let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            if body["total"] == 1 {
                found = Some(body);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let body = found.unwrap_or_else(|| panic!("the token never became searchable\n{}", up.logs()));
    eprintln!(
        "searchable {:?} after the container started",
        printed.elapsed()
    );
    assert_eq!(body["total_relation"], "eq", "{body}");
    let hit = &body["hits"][0];
    assert_eq!(hit["level"], "error", "{hit}");
    assert_eq!(hit["stream"], "stdout");
    assert!(hit["line"].as_str().unwrap().contains(&token));
    assert_eq!(
        hit["fields"],
        serde_json::json!({}),
        "a plain line has no parsed fields"
    );
}

#[test]
fn bad_rules_file_is_refused_before_start() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"quiet\"\nlevel = \"loud\"\naction = \"drop\"\n",
    )
    .unwrap();
    for cmd in [
        vec![
            "logpipe",
            "--kafka",
            "127.0.0.1:9",
            "--log-rules",
            rules.to_str().unwrap(),
        ],
        vec![
            "up",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--log-rules",
            rules.to_str().unwrap(),
        ],
    ] {
        let out = drover_tests::drover::run_drover(&cmd, Duration::from_secs(20));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd:?}: {err}");
        assert!(
            err.contains("invalid rules file")
                && err.contains("quiet: level: unknown level \"loud\""),
            "{cmd:?}: {err}"
        );
    }
    std::fs::write(&rules, "[[rule]]\nactoin = \"drop\"\n").unwrap();
    let out = drover_tests::drover::run_drover(
        &[
            "logpipe",
            "--kafka",
            "127.0.0.1:9",
            "--log-rules",
            rules.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `actoin`"), "{err}");
    let out = drover_tests::drover::run_drover(
        &[
            "logpipe",
            "--kafka",
            "127.0.0.1:9",
            "--log-rules",
            "/nonexistent/rules.toml",
        ],
        Duration::from_secs(20),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read the rules file /nonexistent/rules.toml"),
        "{err}"
    );
}
