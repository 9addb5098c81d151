//! An isolated embedded broker per test, and small client helpers.
use std::{net::SocketAddr, time::Duration};

use drover_kafka::{
    admin::{self, TopicSpec},
    config,
    embedded::{BrokerConfig, BrokerMetrics, EmbeddedBroker},
};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    producer::{FutureProducer, FutureRecord},
    Message,
};
use tempfile::TempDir;

use crate::free_port;

/// The real broker (tansu, the same program `drover up` runs) on a free port with its own
/// data dir; stopped when dropped.
#[derive(Debug)]
pub struct TestBroker {
    broker: Option<EmbeddedBroker>,
    listen: SocketAddr,
    dir: TempDir,
    maintenance_interval: Duration,
}

impl TestBroker {
    /// Start a broker; panics with the broker's own message if it cannot start.
    pub async fn start() -> Self {
        Self::start_with_maintenance(drover_kafka::embedded::DEFAULT_MAINTENANCE_INTERVAL).await
    }

    /// Start a broker that deletes records past their retention every `interval`.
    pub async fn start_with_maintenance(interval: Duration) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let broker = Self::spawn(listen, &dir, interval).await;
        Self {
            broker: Some(broker),
            listen,
            dir,
            maintenance_interval: interval,
        }
    }

    async fn spawn(listen: SocketAddr, dir: &TempDir, interval: Duration) -> EmbeddedBroker {
        let mut cfg = BrokerConfig::new(listen, dir.path().join("broker"));
        cfg.maintenance_interval = interval;
        EmbeddedBroker::start(cfg, BrokerMetrics::default())
            .await
            .unwrap_or_else(|e| panic!("cannot start the test broker: {e}"))
    }

    /// Bytes of the broker's database on disk (`tansu.db` and its WAL and shared memory).
    pub fn disk_bytes(&self) -> u64 {
        std::fs::read_dir(self.dir.path().join("broker"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with("tansu.db"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Bootstrap servers.
    pub fn bootstrap(&self) -> String {
        self.listen.to_string()
    }

    /// The running broker.
    pub fn broker(&self) -> &EmbeddedBroker {
        self.broker.as_ref().expect("broker running")
    }

    /// Stop the broker (SIGTERM) and start it again on the same address and data.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.broker = Some(Self::spawn(self.listen, &self.dir, self.maintenance_interval).await);
    }

    /// Kill the broker (SIGKILL); [`TestBroker::start_again`] starts it again.
    pub async fn kill(&mut self) {
        if let Some(b) = self.broker.take() {
            b.kill().await;
        }
    }

    /// Start a stopped or killed broker again on the same address and data.
    pub async fn start_again(&mut self) {
        assert!(self.broker.is_none(), "stop or kill first");
        self.broker = Some(Self::spawn(self.listen, &self.dir, self.maintenance_interval).await);
    }

    /// Stop the broker; [`TestBroker::restart`] starts it again.
    pub async fn stop(&mut self) {
        if let Some(b) = self.broker.take() {
            b.stop().await;
        }
    }
}

/// Delivery outcomes of a producer.
#[derive(Debug, Default)]
pub struct Deliveries {
    ok: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
}

impl rdkafka::ClientContext for Deliveries {}

impl rdkafka::producer::ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        let n = if result.is_ok() {
            &self.ok
        } else {
            &self.failed
        };
        n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Deliveries {
    /// (acknowledged, failed) so far.
    pub fn counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.ok.load(Relaxed), self.failed.load(Relaxed))
    }
}

/// A producer with Drover's settings that counts its deliveries.
pub fn counting_producer(brokers: &str) -> rdkafka::producer::ThreadedProducer<Deliveries> {
    config::producer(brokers, "drover-test")
        .create_with_context(Deliveries::default())
        .expect("producer")
}

/// Queue one record, waiting while the producer's queue is full (blocking).
pub fn send_waiting(
    producer: &rdkafka::producer::ThreadedProducer<Deliveries>,
    topic: &str,
    key: &str,
    payload: &[u8],
) {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    let mut record = rdkafka::producer::BaseRecord::to(topic)
        .key(key)
        .payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => panic!("cannot queue a record: {e}"),
        }
    }
}

/// Create a uniquely named topic with `partitions` partitions and return its name.
pub async fn create_topic(brokers: &str, prefix: &str, partitions: i32) -> String {
    let name = crate::unique(prefix);
    admin::ensure_topics(
        brokers,
        &[TopicSpec {
            name: name.clone(),
            partitions,
            configs: Vec::new(),
        }],
    )
    .await
    .unwrap_or_else(|e| panic!("cannot create topic {name}: {e}"));
    name
}

/// Produce `values` (key, value) with Drover's producer settings, waiting for every ack.
pub async fn produce_all(brokers: &str, topic: &str, values: &[(String, Vec<u8>)]) {
    let producer: FutureProducer = config::producer(brokers, "drover-test")
        .create()
        .expect("producer");
    let sends = values.iter().map(|(k, v)| {
        producer.send(
            FutureRecord::to(topic).key(k).payload(v),
            Duration::from_secs(30),
        )
    });
    for (i, r) in futures::future::join_all(sends)
        .await
        .into_iter()
        .enumerate()
    {
        if let Err((e, _)) = r {
            panic!("message {i} was not acknowledged: {e}");
        }
    }
}

/// Consume up to `max` messages (payloads) from `topic` in consumer group `group`, storing
/// and committing the offset of each message returned, until `max` are read or nothing
/// arrives for `idle`.
pub fn consume_and_commit(
    brokers: &str,
    topic: &str,
    group: &str,
    max: usize,
    idle: Duration,
) -> Vec<Vec<u8>> {
    let consumer: BaseConsumer = config::consumer(brokers, "drover-test", group)
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let mut last = std::time::Instant::now();
    while out.len() < max && last.elapsed() < idle {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                out.push(m.payload().unwrap_or_default().to_vec());
                consumer
                    .store_offset_from_message(&m)
                    .expect("store offset");
                last = std::time::Instant::now();
            }
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
    if !out.is_empty() {
        consumer
            .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
            .expect("commit");
    }
    out
}

/// Create Drover's default topics (3 partitions each) on a test broker.
pub async fn create_default_topics(brokers: &str) {
    admin::ensure_topics(brokers, &admin::default_topics(3))
        .await
        .unwrap_or_else(|e| panic!("cannot create Drover's topics: {e}"));
}

/// Read records of type `T` from the start of `topic` that `keep` accepts, until `done`
/// says enough or `timeout` passes; then keep reading for `settle` more to catch
/// duplicates that would arrive late. Undecodable messages fail the test.
pub fn read_records<T>(
    brokers: &str,
    topic: &str,
    keep: impl Fn(&T) -> bool,
    done: impl Fn(&[T]) -> bool,
    timeout: Duration,
    settle: Duration,
) -> Vec<T>
where
    T: serde::de::DeserializeOwned + drover_schema::Versioned,
{
    let group = crate::unique("reader");
    let consumer: BaseConsumer = config::consumer(brokers, "drover-test-reader", &group)
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let start = std::time::Instant::now();
    let mut settled_at: Option<std::time::Instant> = None;
    loop {
        if let Some(t) = settled_at {
            if t.elapsed() >= settle {
                break;
            }
        } else if done(&out) {
            settled_at = Some(std::time::Instant::now());
        } else if start.elapsed() > timeout {
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let payload = m.payload().unwrap_or_default();
                let rec: T = drover_schema::decode(payload).unwrap_or_else(|e| {
                    panic!(
                        "undecodable message on {topic}: {e}: {}",
                        String::from_utf8_lossy(payload)
                    )
                });
                if keep(&rec) {
                    out.push(rec);
                }
            }
            // librdkafka reports transient conditions (a broker restarting) as errors and
            // recovers by itself; the deadline bounds the wait.
            Some(Err(e)) => eprintln!("consume error (retrying): {e}"),
            None => {}
        }
    }
    out
}

/// A container-stats record of one task, encoded as a collector on `node` would send it to
/// `drover.metrics.v1` (CPU `cpu_pct`, the rest fixed).
pub fn container_stats(app: &str, task: &str, node: &str, cpu_pct: f64) -> Vec<u8> {
    use drover_schema::{ContainerStats, MetricRecord, Source};
    let rec = MetricRecord::Container(ContainerStats {
        v: 1,
        ts: chrono::Utc::now(),
        source: Source {
            host: format!("host-{node}"),
            node: Some(node.into()),
            app: app.into(),
            task: Some(task.into()),
            group: None,
            container_id: format!("c-{task}"),
            container_name: format!("c-{task}"),
            image: crate::docker::BUSYBOX_IMAGE.into(),
        },
        cpu_pct,
        cpu_limit: 1.0,
        rss_bytes: 1000,
        working_set_bytes: 2000,
        mem_limit_bytes: 100_000,
        rss_pct: 1.0,
        blkio_read_bytes: 0,
        blkio_write_bytes: 0,
        net_rx_bytes: 0,
        net_tx_bytes: 0,
    });
    drover_schema::encode(&rec)
}
