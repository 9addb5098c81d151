//! The client settings Drover uses for every producer and consumer, and the librdkafka
//! properties a user passes through for an external cluster (`--kafka-config FILE`: SASL,
//! TLS).
use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

use rdkafka::ClientConfig;

/// Properties from `--kafka-config`, applied to every client after Drover's own settings.
static EXTRA: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// A `--kafka-config` file that cannot be used. Never carries a property's value (it may be
/// a password).
#[derive(Debug, thiserror::Error)]
pub enum PropertiesError {
    /// The file cannot be read.
    #[error("cannot read the Kafka client config {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line is not `key=value`.
    #[error("{path}:{line}: expected `key=value` (librdkafka properties, e.g. security.protocol=SASL_SSL)")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
    },
    /// A property Drover sets itself.
    #[error("{path}:{line}: {key} is Drover's own (use --kafka for the brokers)")]
    Reserved {
        /// The file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
        /// The key.
        key: String,
    },
}

/// Read librdkafka properties from `path`: `key=value` lines (Java properties style: `#` and
/// `!` comments, blank lines, spaces around `=` trimmed).
pub fn load_properties(path: &Path) -> Result<Vec<(String, String)>, PropertiesError> {
    let text = std::fs::read_to_string(path).map_err(|source| PropertiesError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_properties(&text, path)
}

fn parse_properties(text: &str, path: &Path) -> Result<Vec<(String, String)>, PropertiesError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(PropertiesError::Syntax {
                path: path.to_path_buf(),
                line: i + 1,
            });
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(PropertiesError::Syntax {
                path: path.to_path_buf(),
                line: i + 1,
            });
        }
        if matches!(
            k,
            "bootstrap.servers" | "metadata.broker.list" | "client.id" | "group.id"
        ) {
            return Err(PropertiesError::Reserved {
                path: path.to_path_buf(),
                line: i + 1,
                key: k.to_string(),
            });
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Apply `props` to every Kafka client this process makes from now on (once; later calls
/// are ignored).
pub fn set_extra_properties(props: Vec<(String, String)>) {
    let _ = EXTRA.set(props);
}

/// A client config for these bootstrap servers, with a recognisable client ID.
pub fn client(brokers: &str, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("client.id", client_id)
        // Fail fast on a wrong address instead of librdkafka's endless quiet retries.
        .set("socket.connection.setup.timeout.ms", "10000")
        .set("log_level", "4");
    for (k, v) in EXTRA.get().map(Vec::as_slice).unwrap_or_default() {
        c.set(k, v);
    }
    c
}

/// Producer settings: idempotent (no duplicates on retry, order kept per partition),
/// `acks=all`, **uncompressed** batches, small linger for batching. Uncompressed because the
/// embedded broker (tansu 0.6) scans a partition's whole lag once per compressed batch on
/// every fetch: with lz4 a backlog of 1,000,000 log records read at 5,400/s with waits of
/// 28 s, uncompressed at 18,800/s with waits of 1.3 s, produced 3.5x faster, for 0.3x the
/// broker CPU and the same bytes on disk (`drover bench broker`, kafka/README.md).
/// Delivery is retried for `message.timeout.ms` (5 minutes by default here); callers that
/// must never drop (the collector) raise it.
pub fn producer(brokers: &str, client_id: &str) -> ClientConfig {
    let mut c = client(brokers, client_id);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "none")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "300000");
    c
}

/// Consumer settings for a consumer group with manual offset commits, reading from the
/// start of a partition that has no committed offset.
pub fn consumer(brokers: &str, client_id: &str, group: &str) -> ClientConfig {
    let mut c = client(brokers, client_id);
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("enable.partition.eof", "false");
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_is_idempotent_and_uncompressed() {
        let c = producer("b:9092", "t");
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("compression.type"), Some("none"));
        assert_eq!(c.get("bootstrap.servers"), Some("b:9092"));
    }

    #[test]
    fn properties_files_parse_and_errors_never_show_values() {
        let p = Path::new("k.properties");
        let got = parse_properties(
            "# SASL\n\nsecurity.protocol = SASL_SSL\n! another comment\nsasl.password=p=w\n",
            p,
        )
        .unwrap();
        assert_eq!(
            got,
            [
                ("security.protocol".to_string(), "SASL_SSL".to_string()),
                ("sasl.password".to_string(), "p=w".to_string())
            ]
        );
        let e = parse_properties("a=1\nsasl.password hunter2\n", p)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("k.properties:2") && !e.contains("hunter2"),
            "{e}"
        );
        let e = parse_properties("bootstrap.servers=x:1\n", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--kafka"), "{e}");
    }

    #[test]
    fn consumer_commits_manually() {
        let c = consumer("b:9092", "t", "g");
        assert_eq!(c.get("group.id"), Some("g"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("auto.offset.reset"), Some("earliest"));
    }
}
