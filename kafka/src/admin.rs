//! Reachability checks and topic creation.
use std::time::Duration;

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    types::RDKafkaErrorCode,
};
use tokio::net::{lookup_host, TcpStream};

use crate::{config, KafkaError};

/// Check that at least one bootstrap server accepts a TCP connection and that the cluster
/// answers a metadata request, so that a wrong `--kafka` fails at start with a clear
/// message instead of librdkafka retrying silently forever.
pub async fn check_reachable(brokers: &str, timeout: Duration) -> Result<(), KafkaError> {
    let mut failures = Vec::new();
    let mut connected = false;
    for server in brokers.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match tokio::time::timeout(timeout, connect(server)).await {
            Ok(Ok(())) => {
                connected = true;
                break;
            }
            Ok(Err(e)) => failures.push(format!("{server}: {e}")),
            Err(_) => failures.push(format!("{server}: no answer within {}s", timeout.as_secs())),
        }
    }
    if !connected {
        return Err(KafkaError::Unreachable {
            brokers: brokers.to_string(),
            detail: if failures.is_empty() {
                "no bootstrap server given".to_string()
            } else {
                failures.join("; ")
            },
        });
    }
    let brokers_owned = brokers.to_string();
    let fetched = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config::client(&brokers_owned, "drover-check").create()?;
        let md = consumer.fetch_metadata(None, timeout)?;
        Ok::<usize, rdkafka::error::KafkaError>(md.brokers().len())
    })
    .await
    .expect("metadata task does not panic");
    match fetched {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => Err(KafkaError::NoMetadata {
            brokers: brokers.to_string(),
            secs: timeout.as_secs(),
            detail: "the metadata lists no broker".to_string(),
        }),
        Err(e) => Err(KafkaError::NoMetadata {
            brokers: brokers.to_string(),
            secs: timeout.as_secs(),
            detail: e.to_string(),
        }),
    }
}

async fn connect(server: &str) -> std::io::Result<()> {
    let mut last = None;
    for addr in lookup_host(server).await? {
        match TcpStream::connect(addr).await {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("the name resolves to no address")))
}

/// A topic Drover needs, with its partition count and configs.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partitions to create it with (an existing topic keeps its own).
    pub partitions: i32,
    /// Topic configs (`cleanup.policy`, `retention.ms`, …): set at creation, and on an
    /// existing topic at every start (so a data dir from before gets them too).
    pub configs: Vec<(String, String)>,
}

/// How long each of Drover's topics keeps its records (Kafka's `retention.ms` with
/// `cleanup.policy=delete`). The consumers keep their own history (the log index its
/// `--retention`, the metrics store its Parquet), so the topics only need to cover an outage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRetention {
    /// Per topic name.
    pub per_topic: std::collections::BTreeMap<String, Duration>,
}

impl Default for TopicRetention {
    /// Logs 3 days, metrics 2 days, events and dead letters 30 days.
    fn default() -> Self {
        use drover_schema::topics::{DEAD_LETTER, EVENTS, LOGS, METRICS};
        let day = Duration::from_secs(86_400);
        Self {
            per_topic: [
                (LOGS, 3 * day),
                (METRICS, 2 * day),
                (EVENTS, 30 * day),
                (DEAD_LETTER, 30 * day),
            ]
            .into_iter()
            .map(|(t, d)| (t.to_string(), d))
            .collect(),
        }
    }
}

impl TopicRetention {
    /// Applies `TOPIC=DURATION` settings (`drover.logs.v1=12h`, or the short names `logs`,
    /// `metrics`, `events`, `deadletter`) over the defaults.
    pub fn with_overrides(mut self, overrides: &[String]) -> Result<Self, String> {
        for o in overrides {
            let (topic, d) = o.split_once('=').ok_or_else(|| {
                format!("--topic-retention {o:?}: use TOPIC=DURATION, e.g. logs=3d or drover.logs.v1=12h")
            })?;
            let topic = match topic.trim() {
                "logs" => drover_schema::topics::LOGS,
                "metrics" => drover_schema::topics::METRICS,
                "events" => drover_schema::topics::EVENTS,
                "deadletter" => drover_schema::topics::DEAD_LETTER,
                t => t,
            };
            let d = drover_schema::time::parse_duration(d)
                .map_err(|e| format!("--topic-retention {o:?}: {e}"))?;
            if d.is_zero() {
                return Err(format!(
                    "--topic-retention {o:?}: the retention must be longer than 0"
                ));
            }
            self.per_topic.insert(topic.to_string(), d);
        }
        Ok(self)
    }

    /// The configs of one topic (none for a topic without a retention).
    pub fn configs(&self, topic: &str) -> Vec<(String, String)> {
        self.per_topic
            .get(topic)
            .map(|d| {
                vec![
                    ("cleanup.policy".to_string(), "delete".to_string()),
                    ("retention.ms".to_string(), d.as_millis().to_string()),
                ]
            })
            .unwrap_or_default()
    }
}

/// Create the topics that do not exist yet, with their configs, and set the configs of those
/// that exist (partitions of an existing topic are left as they are). A broker that refuses
/// the configs of an existing topic (an external cluster's ACLs) is logged, not an error.
pub async fn ensure_topics(brokers: &str, topics: &[TopicSpec]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> =
        config::client(brokers, "drover-admin").create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            t.configs.iter().fold(
                NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(1)),
                |nt, (k, v)| nt.set(k, v),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(15)));
    let results = admin.create_topics(new.iter(), &opts).await?;
    let mut existing = Vec::new();
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, "topic created"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => existing.push(name),
            Err((topic, code)) => {
                return Err(KafkaError::CreateTopic {
                    topic,
                    detail: code.to_string(),
                })
            }
        }
    }
    let alter: Vec<(String, Vec<(String, String)>)> = topics
        .iter()
        .filter(|t| existing.contains(&t.name) && !t.configs.is_empty())
        .map(|t| (t.name.clone(), t.configs.clone()))
        .collect();
    if !alter.is_empty() {
        let server = brokers.split(',').next().unwrap_or(brokers).trim();
        match crate::alter::set_topic_configs(server, &alter, Duration::from_secs(10)).await {
            Ok(()) => tracing::debug!(topics = alter.len(), "configs of existing topics set"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot set the retention of existing topics; they keep what they have")
            }
        }
    }
    Ok(())
}

/// The default topics of [`drover_schema::topics`] with this many partitions each and the
/// default retention.
pub fn default_topics(partitions: i32) -> Vec<TopicSpec> {
    default_topics_with(partitions, &TopicRetention::default())
}

/// The default topics with this many partitions each and this retention.
pub fn default_topics_with(partitions: i32, retention: &TopicRetention) -> Vec<TopicSpec> {
    drover_schema::topics::ALL
        .iter()
        .map(|name| TopicSpec {
            name: (*name).to_string(),
            partitions,
            configs: retention.configs(name),
        })
        .collect()
}

/// Blocks until `topic` exists and returns its partition IDs, retrying every second while
/// the broker is down or the topic is missing (each failure is passed to `on_error`, then
/// logged). Returns `None` as soon as `stop` is set. For consumers that assign partitions
/// themselves (the logpipe, the metrics store).
pub fn wait_for_partitions(
    consumer: &rdkafka::consumer::BaseConsumer,
    topic: &str,
    stop: &std::sync::atomic::AtomicBool,
    mut on_error: impl FnMut(),
) -> Option<Vec<i32>> {
    use rdkafka::consumer::Consumer;
    loop {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(md) => {
                let ids: Vec<i32> = md
                    .topics()
                    .iter()
                    .find(|t| t.name() == topic)
                    .map(|t| t.partitions().iter().map(|p| p.id()).collect())
                    .unwrap_or_default();
                if !ids.is_empty() {
                    return Some(ids);
                }
                tracing::warn!(topic, "the topic does not exist yet; waiting");
            }
            Err(e) => {
                on_error();
                tracing::warn!(error = %e, topic, "cannot read Kafka metadata; retrying");
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
