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

/// A topic Drover needs, with its partition count.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partitions to create it with (an existing topic keeps its own).
    pub partitions: i32,
}

/// Create the topics that do not exist yet. Existing topics are left as they are.
pub async fn ensure_topics(brokers: &str, topics: &[TopicSpec]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> =
        config::client(brokers, "drover-admin").create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(15)));
    let results = admin.create_topics(new.iter(), &opts).await?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::CreateTopic {
                    topic,
                    detail: code.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// The default topics of [`drover_schema::topics`] with this many partitions each.
pub fn default_topics(partitions: i32) -> Vec<TopicSpec> {
    drover_schema::topics::ALL
        .iter()
        .map(|name| TopicSpec {
            name: (*name).to_string(),
            partitions,
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
