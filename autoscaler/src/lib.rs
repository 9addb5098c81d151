//! Drover's **autoscaler**: policy files that resize vertical groups (the instances of one
//! app) and horizontal groups (whole apps of a service) from concurrency, latency, CPU and
//! memory — every decision explained, every policy simulated before it is trusted.
//!
//! Data flow, one module per step: `policy` (YAML policy files, checked at load with
//! file:line:field) → `decide` (the pure decision engine: proportional rule, tolerance,
//! stabilization windows, rate policies, panic mode; clock injected) → `plan` (the
//! vertical/horizontal split of a service's desired total over its groups).
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
