//! Drover's scheduler: a master that keeps apps, tasks, nodes and deployments (in an
//! embedded store) and places tasks on agents; agents that run tasks as Docker containers,
//! health-check them and report back; a Marathon-compatible HTTP API.
//!
//! Data flow: an app definition ([`model`]) is checked ([`validate`]), kept by the master
//! ([`master`], persisted by [`store`]); each reconciliation tick places missing tasks
//! ([`placement`]) and kills surplus ones; each agent ([`agent`]) heartbeats the master over
//! HTTP ([`api`]) with what its containers do and gets back the tasks it should run. Every
//! change is a typed [`events::MarathonEvent`], streamed on `/v2/events` and published on
//! Kafka ([`publish`]); [`client`] is the typed client of the API and its event stream.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod api;
pub mod client;
pub mod clock;
pub mod events;
pub mod jobs;
pub mod master;
pub mod metrics;
pub mod model;
pub mod placement;
pub mod publish;
pub mod store;
pub mod validate;
