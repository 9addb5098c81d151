//! Drover's **Alertman**: alert rules over 5-minute windows of metrics and logs, routed and
//! notified the way Prometheus and Alertmanager users expect, with a history Alertmanager
//! does not keep.
//!
//! Data flow, one module per step:
//! `rules` (YAML rule files: rules, receivers, route, inhibition; checked at load with
//! file:line:field) → `source` (the metrics store's window API and the log search's counts:
//! one trait, an in-process and an HTTP implementation) → `eval` (per rule and label set:
//! inactive → pending → firing → resolved, `for`, `keep_firing_for`, NoData and Error) →
//! `route` (Alertmanager's grouping, `group_wait`/`group_interval`/`repeat_interval`,
//! inhibition, `silence`s, the notification log) → `receivers` (webhook, Slack, email; retries
//! with backoff) — with `store` (redb: active alerts, silences, notification log, history) and
//! `api` (`/api/alerts`, `/api/alerts/history`, the Alertmanager v2 subset). `service` runs
//! the loop; `template` renders annotations; `matcher` is Alertmanager's label matchers.
#![forbid(unsafe_code)]

pub mod actions;
pub mod alert;
pub mod api;
pub mod eval;
pub mod matcher;
pub mod metrics;
pub mod receivers;
pub mod route;
pub mod rules;
pub mod service;
pub mod silence;
pub mod source;
pub mod store;
pub mod template;

pub use alert::{Alert, AlertState, Fingerprint, LabelSet};
pub use rules::{Config, LoadError, RuleError};
pub use service::{Alertman, AlertmanConfig};

/// A clock, injectable so that a 4-hour repeat is tested in milliseconds.
pub type Clock = drover_schema::time::SharedClock;

/// Errors of Alertman outside rule loading ([`LoadError`]).
#[derive(Debug, thiserror::Error)]
pub enum AlertmanError {
    /// The embedded store failed.
    #[error("alert store {path}: {message}; check the disk, or move the file away to start with no state")]
    Store {
        /// The store's file.
        path: String,
        /// What failed.
        message: String,
    },
    /// A request is wrong: names what.
    #[error("{0}")]
    BadRequest(String),
    /// Not found.
    #[error("{0}")]
    NotFound(String),
    /// Rules did not load.
    #[error(transparent)]
    Load(#[from] LoadError),
}
