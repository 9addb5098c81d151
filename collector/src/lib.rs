//! The per-host collector: finds every container on the Docker engine, follows its
//! stdout/stderr and samples its stats, and ships both to Kafka, tagged by app.
//!
//! Data flow (one folder or file per stage):
//! `discovery` (list + events, reconnect) → per container: `logs` (follow, rejoin partial
//! lines, multi-line joining) and `stats` (CPU %, RSS, rssPercent, I/O) → `sink` (Kafka
//! producer; delivery acks advance the `checkpoint`).
#![forbid(unsafe_code)]

pub mod logs;
pub mod stats;
pub mod tags;
