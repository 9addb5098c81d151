use std::{net::SocketAddr, path::PathBuf};

/// What went wrong talking to Kafka or running the embedded broker. Every message says
/// what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// No bootstrap server accepted a TCP connection.
    #[error("cannot reach Kafka at {brokers}: {detail}; check the address (host:port,...) and that the cluster is up, or omit --kafka to use the embedded broker")]
    Unreachable {
        /// The bootstrap list as given.
        brokers: String,
        /// What the connection attempts said.
        detail: String,
    },
    /// A broker accepted the connection but did not answer a metadata request in time.
    #[error("Kafka at {brokers} accepted a connection but did not answer a metadata request within {secs}s: {detail}; is this a Kafka broker?")]
    NoMetadata {
        /// The bootstrap list as given.
        brokers: String,
        /// The timeout.
        secs: u64,
        /// The client's error.
        detail: String,
    },
    /// Creating a topic failed for another reason than that it exists.
    #[error("cannot create topic {topic}: {detail}")]
    CreateTopic {
        /// Topic name.
        topic: String,
        /// The broker's answer.
        detail: String,
    },
    /// The embedded broker's program is not installed.
    #[error("the embedded Kafka broker (tansu) is not installed: run scripts/setup.sh (it installs tansu into {hint}), set DROVER_TANSU_BIN to its path, or pass --kafka HOST:PORT to use an existing cluster")]
    BrokerNotInstalled {
        /// Where the setup script installs it.
        hint: String,
    },
    /// The embedded broker's listen address is taken.
    #[error("the embedded broker's address {addr} is already in use (another drover up, or a Kafka broker?): pass --broker-listen ADDR to use another port, or --kafka {addr} to use the broker that is there")]
    PortInUse {
        /// The address.
        addr: SocketAddr,
    },
    /// The embedded broker did not start listening.
    #[error("the embedded broker did not become ready on {addr} within {secs}s: {detail}; its log is {}", log.display())]
    BrokerStart {
        /// The address.
        addr: SocketAddr,
        /// The timeout.
        secs: u64,
        /// Exit status or other detail.
        detail: String,
        /// The broker's log file.
        log: PathBuf,
    },
    /// An IO error while preparing the broker (its data dir, its log file, spawning it).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Any other client error.
    #[error("kafka client error: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
}
