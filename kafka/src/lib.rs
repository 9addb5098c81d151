//! Drover's Kafka plumbing, shared by every component that produces or consumes:
//!
//! - [`config`]: the client settings Drover uses everywhere (idempotent producer with
//!   `acks=all` and lz4, consumer groups with manual commits);
//! - [`admin`]: reachability checks with an error a person can act on, and topic creation;
//! - [`alter`]: topic configs set on existing topics (Kafka's IncrementalAlterConfigs);
//! - [`consume`]: the one consume loop (wait for the topic, assign, poll in bursts, dead
//!   letters, flush then commit) that every consumer runs with its own [`consume::Handler`];
//! - [`deadletter`]: the dead-letter record of a malformed message;
//! - [`embedded`]: the embedded Kafka-protocol broker (tansu, supervised as a child process)
//!   that `drover up` starts when no `--kafka` cluster is given.
#![forbid(unsafe_code)]

pub mod admin;
pub mod alter;
pub mod config;
pub mod consume;
pub mod deadletter;
pub mod embedded;
mod error;

pub use error::KafkaError;
