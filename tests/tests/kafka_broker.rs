//! The embedded broker is a real Kafka-protocol broker: rdkafka produces, consumes in a
//! consumer group, resumes from committed offsets, and everything survives a restart.
use std::{collections::BTreeSet, time::Duration};

use drover_tests::kafka::{consume_and_commit, create_topic, produce_all, TestBroker};

fn numbered(range: std::ops::Range<u32>) -> Vec<(String, Vec<u8>)> {
    range
        .map(|i| (format!("k{}", i % 7), format!("msg-{i:06}").into_bytes()))
        .collect()
}

fn numbers(payloads: &[Vec<u8>]) -> Vec<u32> {
    payloads
        .iter()
        .map(|p| {
            std::str::from_utf8(p).unwrap()["msg-".len()..]
                .parse()
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_consumed_once_and_resumed_from_committed_offset() {
    let broker = TestBroker::start().await;
    let brokers = broker.bootstrap();
    let topic = create_topic(&brokers, "t-resume", 3).await;
    produce_all(&brokers, &topic, &numbered(0..10_000)).await;

    let group = drover_tests::unique("g");
    let (b, t, g) = (brokers.clone(), topic.clone(), group.clone());
    let first = tokio::task::spawn_blocking(move || {
        consume_and_commit(&b, &t, &g, 4_000, Duration::from_secs(20))
    })
    .await
    .unwrap();
    assert_eq!(first.len(), 4_000, "first consumer reads what it asked for");

    // A new consumer in the same group starts at the committed offsets.
    let (b, t, g) = (brokers.clone(), topic.clone(), group.clone());
    let rest = tokio::task::spawn_blocking(move || {
        consume_and_commit(&b, &t, &g, 10_000, Duration::from_secs(10))
    })
    .await
    .unwrap();
    assert_eq!(rest.len(), 6_000, "the second consumer reads only the rest");

    let mut all = numbers(&first);
    all.extend(numbers(&rest));
    let unique: BTreeSet<u32> = all.iter().copied().collect();
    assert_eq!(all.len(), 10_000, "no duplicates");
    assert_eq!(unique, (0..10_000).collect(), "no losses");

    // Order holds per key (each key maps to one partition).
    for key in 0..7 {
        let seq: Vec<u32> = numbers(&first)
            .into_iter()
            .chain(numbers(&rest))
            .filter(|n| n % 7 == key)
            .collect();
        assert!(
            seq.windows(2).all(|w| w[0] < w[1]),
            "order kept for key k{key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_committed_offsets_survive_a_broker_restart() {
    let mut broker = TestBroker::start().await;
    let brokers = broker.bootstrap();
    let topic = create_topic(&brokers, "t-restart", 2).await;
    produce_all(&brokers, &topic, &numbered(0..1_000)).await;
    let group = drover_tests::unique("g");
    let (b, t, g) = (brokers.clone(), topic.clone(), group.clone());
    let first = tokio::task::spawn_blocking(move || {
        consume_and_commit(&b, &t, &g, 300, Duration::from_secs(20))
    })
    .await
    .unwrap();
    assert_eq!(first.len(), 300);

    let old_pid = broker.broker().pid();
    broker.restart().await;
    assert_ne!(broker.broker().pid(), old_pid, "a new broker process");
    assert_eq!(broker.bootstrap(), brokers);

    // Every message is still there for a new group...
    let (b, t) = (brokers.clone(), topic.clone());
    let fresh = drover_tests::unique("g-fresh");
    let everything = tokio::task::spawn_blocking(move || {
        consume_and_commit(&b, &t, &fresh, 1_000, Duration::from_secs(20))
    })
    .await
    .unwrap();
    assert_eq!(
        numbers(&everything).into_iter().collect::<BTreeSet<_>>(),
        (0..1_000).collect()
    );
    // ...and the old group resumes where it committed.
    let (b, t, g) = (brokers.clone(), topic.clone(), group.clone());
    let rest = tokio::task::spawn_blocking(move || {
        consume_and_commit(&b, &t, &g, 1_000, Duration::from_secs(10))
    })
    .await
    .unwrap();
    assert_eq!(rest.len(), 700);
    let mut all: BTreeSet<u32> = numbers(&first).into_iter().collect();
    all.extend(numbers(&rest));
    assert_eq!(all, (0..1_000).collect());
}

/// `drover broker` alone creates Drover's topics, so a collector or logpipe started as a
/// separate process finds them (before, they waited for the logs topic forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drover_broker_creates_drovers_topics() {
    use rdkafka::consumer::{BaseConsumer, Consumer};

    let port = drover_tests::free_port();
    let http = drover_tests::free_port();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("broker");
    let mut p = drover_tests::drover::DroverProcess::start(&[
        "broker",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--http",
        &format!("127.0.0.1:{http}"),
        "--data-dir",
        data.to_str().unwrap(),
        "--partitions",
        "2",
    ]);
    let brokers = format!("127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let found = loop {
        let b = brokers.clone();
        let topics = tokio::task::spawn_blocking(move || -> Option<Vec<(String, usize)>> {
            let c: BaseConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &b)
                .create()
                .ok()?;
            let md = c.fetch_metadata(None, Duration::from_secs(2)).ok()?;
            Some(
                md.topics()
                    .iter()
                    .map(|t| (t.name().to_string(), t.partitions().len()))
                    .collect(),
            )
        })
        .await
        .unwrap()
        .unwrap_or_default();
        let want = drover_schema::topics::ALL
            .iter()
            .all(|name| topics.iter().any(|(t, n)| t == name && *n == 2));
        // It also says so (printed just after creating them).
        if want && p.logs().contains("created if missing") {
            break topics;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "drover broker did not create Drover's topics with 2 partitions; metadata: {topics:?}\n{}",
            p.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        p.terminate(Duration::from_secs(20))
            .is_some_and(|s| s.success()),
        "{found:?}\n{}",
        p.logs()
    );
}

/// The configs of a topic as the broker describes them.
async fn topic_configs(brokers: &str, topic: &str) -> std::collections::BTreeMap<String, String> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        drover_kafka::config::client(brokers, "drover-test-admin")
            .create()
            .unwrap();
    let res = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .unwrap();
    let res = res.into_iter().next().unwrap().unwrap();
    res.entries
        .into_iter()
        .filter_map(|e| Some((e.name, e.value?)))
        .collect()
}

/// Drover's topics are created with a retention, and a topic that exists without one (a data
/// dir from before) gets it at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drovers_topics_get_a_retention_also_when_they_exist_already() {
    use drover_kafka::admin::{self, TopicRetention, TopicSpec};
    let broker = TestBroker::start().await;
    let brokers = broker.bootstrap();
    // As before this change: created with no configs.
    let old = drover_tests::unique("t-old");
    admin::ensure_topics(
        &brokers,
        &[TopicSpec {
            name: old.clone(),
            partitions: 1,
            configs: Vec::new(),
        }],
    )
    .await
    .unwrap();
    assert_eq!(
        topic_configs(&brokers, &old).await.get("retention.ms"),
        None
    );
    let retention = TopicRetention::default()
        .with_overrides(&[format!("{old}=12h"), "logs=1d".into()])
        .unwrap();
    let mut topics = admin::default_topics_with(3, &retention);
    topics.push(TopicSpec {
        name: old.clone(),
        partitions: 1,
        configs: retention.configs(&old),
    });
    admin::ensure_topics(&brokers, &topics).await.unwrap();
    let c = topic_configs(&brokers, &old).await;
    assert_eq!(
        c.get("cleanup.policy").map(String::as_str),
        Some("delete"),
        "{c:?}"
    );
    assert_eq!(
        c.get("retention.ms").map(String::as_str),
        Some("43200000"),
        "{c:?}"
    );
    let c = topic_configs(&brokers, drover_schema::topics::LOGS).await;
    assert_eq!(
        c.get("retention.ms").map(String::as_str),
        Some("86400000"),
        "{c:?}"
    );
    let c = topic_configs(&brokers, drover_schema::topics::EVENTS).await;
    assert_eq!(
        c.get("retention.ms").map(String::as_str),
        Some("2592000000"),
        "the default 30 days: {c:?}"
    );
}

/// Records older than the retention are deleted by the broker's maintenance (tansu runs it
/// at start and every 10 minutes): the disk does not grow for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_past_the_retention_are_deleted() {
    use drover_kafka::admin::{self, TopicSpec};
    let mut broker = TestBroker::start().await;
    let brokers = broker.bootstrap();
    let topic = drover_tests::unique("t-retention");
    admin::ensure_topics(
        &brokers,
        &[TopicSpec {
            name: topic.clone(),
            partitions: 1,
            configs: vec![
                ("cleanup.policy".into(), "delete".into()),
                ("retention.ms".into(), "1000".into()),
            ],
        }],
    )
    .await
    .unwrap();
    produce_all(&brokers, &topic, &numbered(0..500)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The maintenance runs when the broker starts.
    broker.restart().await;
    produce_all(&brokers, &topic, &numbered(500..501)).await;
    let group = drover_tests::unique("g");
    let (b, t) = (brokers.clone(), topic.clone());
    let got = tokio::task::spawn_blocking(move || {
        consume_and_commit(&b, &t, &group, 501, Duration::from_secs(10))
    })
    .await
    .unwrap();
    assert_eq!(
        numbers(&got),
        vec![500],
        "only the record younger than the retention is left"
    );
}

/// A third-party producer (Python confluent-kafka) writes with each codec and reads back: none,
/// gzip, lz4 and zstd work; snappy is accepted by tansu 0.6 but its records never come back
/// (the README says so, and names the codecs to use). A producer to a topic that does not
/// exist times out and creates nothing (no auto-creation: the README says to create topics
/// first). When the broker changes either, this test says the README is out of date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_party_producers_with_each_codec() {
    let broker = TestBroker::start().await;
    let script = drover_tests::repo_root().join("tests/kafka/third_party_codecs.py");
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(broker.bootstrap())
        .output()
        .await
        .expect("python3 runs (scripts/setup.sh installs confluent-kafka)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "no RESULT line: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let r: serde_json::Value = serde_json::from_str(line).unwrap();
    for codec in ["none", "gzip", "lz4", "zstd"] {
        let c = &r["codecs"][codec];
        assert_eq!(c["read_back"], 100, "{codec}: {c}");
        assert_eq!(c["in_order"], true, "{codec}: {c}");
        assert_eq!(c["produce_errors"], serde_json::json!([]), "{codec}: {c}");
    }
    let snappy = &r["codecs"]["snappy"];
    assert_eq!(
        snappy["read_back"], 0,
        "snappy records came back: the broker was fixed; update kafka/README.md: {snappy}"
    );
    let missing = &r["missing_topic"];
    assert_eq!(
        missing["created"], false,
        "the broker now creates topics on produce; update kafka/README.md: {missing}"
    );
    assert!(
        missing["produce_errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("timed out")),
        "{missing}"
    );
}
