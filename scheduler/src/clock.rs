//! The master's time-based logic (backoff, heartbeat timeouts) reads the time from an
//! injectable clock, so tests move it by hand: Drover's one clock abstraction, from
//! `drover_schema::time`.
pub use drover_schema::time::{Clock, ManualClock, SystemClock};
