//! Drover's **autoscaler**: policy files that resize vertical groups (the instances of one
//! app) and horizontal groups (whole apps of a service) from concurrency, latency, CPU and
//! memory — every decision explained, every policy simulated before it is trusted.
//!
//! Data flow, one module per step: `policy` (YAML policy files, checked at load with
//! file:line:field) → `service` (the live loop: per due policy, read the target through a
//! `scaler::Scaler` and its metrics through a `source::MetricsSource`) → `decide` (the pure
//! decision engine: proportional rule, tolerance, latency SLO, stabilization windows, rate
//! policies, panic mode, Drover's confirmation rules; the time given by the caller) → `plan`
//! (the vertical/horizontal split of a service's total over its groups) → back to `service`
//! (carry it out, or keep the refusal and back off; events on a channel) → `api`
//! (`/api/autoscaler/*`). `trace` and `simulate` replay a request-rate trace through a model
//! of the app with the same `decide`, against HPA- and KPA-equivalent policies. `metrics`
//! holds the crate's Prometheus metrics.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod decide;
pub mod metrics;
pub mod plan;
pub mod policy;
pub mod scaler;
pub mod service;
pub mod simulate;
pub mod source;
pub mod trace;

pub use decide::{decide, Decision, Observation, Outcome, State};
pub use policy::{LoadError, Policy, PolicyError};
