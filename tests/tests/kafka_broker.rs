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

/// A log record of the collector's shape (~450 bytes encoded).
fn log_record(i: u64, container: usize) -> Vec<u8> {
    use drover_schema::{LogRecord, Source, Stream, SCHEMA_VERSION};
    drover_schema::encode(&LogRecord {
        v: SCHEMA_VERSION,
        ts: chrono::Utc::now(),
        end_ts: None,
        source: Source {
            host: "test-host".into(),
            app: format!("/shop/app-{}", container % 10),
            container_id: format!("{container:064x}"),
            container_name: format!("shop-app-{container}"),
            image: "registry.local/shop/app:1.4.2".into(),
            task: Some(format!("shop_app.{container}")),
            node: Some("test-node".into()),
            group: Some("/shop".into()),
        },
        stream: Stream::Stdout,
        seq: i,
        line: format!(
            "10.0.{}.{} - - [02/Dec/2026:03:25:09 +0000] \"GET /api/v1/items/{i}?page=2 HTTP/1.1\" 200 {} \"-\" \"curl/8.5.0\" 0.0{}",
            i % 200, i % 250, 512 + i % 4096, i % 90
        ),
    })
}

/// Under a steady load, retention keeps the broker's disk bounded: with a 3 s retention and
/// the maintenance every 2 s (`drover up --broker-maintenance-interval`, 5 minutes by
/// default), the database stops growing once the deletions keep pace, because SQLite reuses
/// the freed pages. Without the maintenance (tansu's own 10 minutes) the file grows by at
/// least the bytes produced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_brokers_disk_stops_growing_under_a_steady_load_with_retention() {
    use drover_kafka::admin::{self, TopicSpec};
    use drover_tests::kafka::{counting_producer, send_waiting};
    let broker = TestBroker::start_with_maintenance(Duration::from_secs(2)).await;
    let brokers = broker.bootstrap();
    let topic = drover_tests::unique("t-bounded");
    admin::ensure_topics(
        &brokers,
        &[TopicSpec {
            name: topic.clone(),
            partitions: 3,
            configs: vec![
                ("cleanup.policy".into(), "delete".into()),
                ("retention.ms".into(), "3000".into()),
            ],
        }],
    )
    .await
    .unwrap();
    const RATE: u64 = 2_000;
    const SECS: u64 = 48;
    let (b, t) = (brokers.clone(), topic.clone());
    let producing = std::thread::spawn(move || {
        let producer = counting_producer(&b);
        let start = std::time::Instant::now();
        let mut bytes = 0u64;
        for i in 0..RATE * SECS {
            let due = start + Duration::from_secs_f64(i as f64 / RATE as f64);
            if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                std::thread::sleep(wait);
            }
            let c = (i % 30) as usize;
            let payload = log_record(i, c);
            bytes += payload.len() as u64;
            send_waiting(&producer, &t, &format!("{c:064x}"), &payload);
        }
        use rdkafka::producer::Producer;
        producer
            .flush(rdkafka::util::Timeout::After(Duration::from_secs(60)))
            .expect("flush");
        (producer.context().counts(), bytes)
    });
    let start = std::time::Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < Duration::from_secs(SECS) {
        tokio::time::sleep(Duration::from_secs(4)).await;
        samples.push((start.elapsed().as_secs(), broker.disk_bytes()));
    }
    let ((ok, failed), bytes) = tokio::task::spawn_blocking(move || producing.join().unwrap())
        .await
        .unwrap();
    assert_eq!(failed, 0, "every record acknowledged");
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "produced {ok} records, {:.1} MiB; broker disk (s, MiB): {}",
        mib(bytes),
        samples
            .iter()
            .map(|(s, b)| format!("{s}: {:.1}", mib(*b)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let at = |from: u64, to: u64| {
        samples
            .iter()
            .filter(|(s, _)| (from..=to).contains(s))
            .map(|(_, b)| *b)
            .max()
            .unwrap_or(0)
    };
    let early = at(0, 16);
    let late = at(32, SECS + 4);
    let produced_since = bytes * (SECS - 16) / SECS;
    assert!(
        late.saturating_sub(early) < produced_since / 4,
        "the broker's disk grew from {:.1} MiB (first 16 s) to {:.1} MiB (last 16 s) while {:.1} MiB were produced in between: retention is not keeping it bounded",
        mib(early),
        mib(late),
        mib(produced_since)
    );
}

/// What the consume loop saw of a backlog.
struct BacklogReader {
    partitions: usize,
    expected: u64,
    next: std::collections::BTreeMap<i32, i64>,
    got: u64,
    out_of_order: u64,
    errors: u64,
    chunk_start: std::time::Instant,
    per_100k: Vec<f64>,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl drover_kafka::consume::Handler for BacklogReader {
    type Error = drover_kafka::KafkaError;

    fn start(&mut self, partitions: &[i32]) -> Result<Vec<(i32, rdkafka::Offset)>, Self::Error> {
        assert_eq!(partitions.len(), self.partitions);
        self.chunk_start = std::time::Instant::now();
        Ok(partitions
            .iter()
            .map(|p| (*p, rdkafka::Offset::Beginning))
            .collect())
    }

    fn handle(
        &mut self,
        msg: &rdkafka::message::BorrowedMessage<'_>,
    ) -> Result<drover_kafka::consume::Outcome, Self::Error> {
        use rdkafka::Message;
        let next = self.next.entry(msg.partition()).or_insert(0);
        if msg.offset() != *next {
            self.out_of_order += 1;
        }
        *next = msg.offset() + 1;
        self.got += 1;
        if self.got.is_multiple_of(100_000) {
            self.per_100k
                .push(100_000.0 / self.chunk_start.elapsed().as_secs_f64().max(1e-9));
            self.chunk_start = std::time::Instant::now();
        }
        if self.got >= self.expected {
            self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(drover_kafka::consume::Outcome::Handled)
    }

    fn flush(
        &mut self,
        _: drover_kafka::consume::Flush<'_>,
    ) -> Result<drover_kafka::consume::Flushed, Self::Error> {
        Ok(drover_kafka::consume::Flushed::Done)
    }

    fn kafka_error(&mut self) {
        self.errors += 1;
    }
}

/// A backlog of 1,000,000 collector-shaped records is read from offset 0 by Drover's consume
/// loop with the logpipe's settings — every record once, in order, with no read error (a
/// fetch that timed out would be one) — and the read rate of each 100,000 is printed (on
/// tansu 0.6 with lz4 batches it collapsed with the lag; uncompressed it stays level). The
/// loop assigns its partitions itself and uses the group only for offsets, so there is no
/// group membership that a slow fetch could make rebalance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_record_backlog_is_read_from_offset_zero_in_order_without_errors() {
    use drover_tests::kafka::{counting_producer, send_waiting};
    const N: u64 = 1_000_000;
    let broker = TestBroker::start().await;
    let brokers = broker.bootstrap();
    let topic = create_topic(&brokers, "t-backlog", 3).await;
    let (b, t) = (brokers.clone(), topic.clone());
    let produced = tokio::task::spawn_blocking(move || {
        let producer = counting_producer(&b);
        let start = std::time::Instant::now();
        let keys: Vec<String> = (0..30).map(|c| format!("{c:064x}")).collect();
        for i in 0..N {
            let c = (i % 30) as usize;
            send_waiting(&producer, &t, &keys[c], &log_record(i, c));
        }
        use rdkafka::producer::Producer;
        producer
            .flush(rdkafka::util::Timeout::After(Duration::from_secs(600)))
            .expect("flush");
        (producer.context().counts(), start.elapsed())
    })
    .await
    .unwrap();
    let ((ok, failed), took) = produced;
    assert_eq!((ok, failed), (N, 0), "every record acknowledged");
    eprintln!(
        "produced {N} records in {:.1} s ({:.0}/s)",
        took.as_secs_f64(),
        N as f64 / took.as_secs_f64()
    );

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut reader = BacklogReader {
        partitions: 3,
        expected: N,
        next: Default::default(),
        got: 0,
        out_of_order: 0,
        errors: 0,
        chunk_start: std::time::Instant::now(),
        per_100k: Vec::new(),
        done: done.clone(),
    };
    let cfg = drover_kafka::consume::ConsumeConfig {
        flush_interval: Duration::from_secs(2),
        commit_mode: rdkafka::consumer::CommitMode::Async,
        consumer_settings: vec![("queued.max.messages.kbytes".into(), "16384".into())],
        ..drover_kafka::consume::ConsumeConfig::new(
            &brokers,
            &topic,
            &drover_tests::unique("g-backlog"),
            "drover-test-backlog",
        )
    };
    // Stop at 15 minutes whatever happened (tansu 0.6 with lz4 took over 3).
    let guard = done.clone();
    let watchdog = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while !guard.load(std::sync::atomic::Ordering::Relaxed)
            && start.elapsed() < Duration::from_secs(900)
        {
            std::thread::sleep(Duration::from_millis(200));
        }
        guard.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let (reader, took) = tokio::task::spawn_blocking(move || {
        let start = std::time::Instant::now();
        drover_kafka::consume::run(&cfg, &mut reader, &done).expect("the consume loop failed");
        (reader, start.elapsed())
    })
    .await
    .unwrap();
    watchdog.join().unwrap();
    eprintln!(
        "read {} records in {:.1} s ({:.0}/s); per 100,000: {}",
        reader.got,
        took.as_secs_f64(),
        reader.got as f64 / took.as_secs_f64(),
        reader
            .per_100k
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(" · ")
    );
    assert_eq!(
        reader.got, N,
        "every record of the backlog read, within 15 minutes"
    );
    assert_eq!(reader.out_of_order, 0, "no record read twice or skipped");
    assert_eq!(
        reader.errors, 0,
        "no read error (a fetch timeout would be one)"
    );
}
