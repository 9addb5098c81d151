//! The harness every integration test shares. Each helper isolates its test (free ports,
//! temporary data dirs, uniquely named topics and containers) and cleans up on drop, even
//! when the test fails.
#![forbid(unsafe_code)]

pub mod apps;
pub mod docker;
pub mod drover;
pub mod hooks;
pub mod kafka;
pub mod scheduler;
pub mod secrets;

use std::{
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("can bind an ephemeral port")
        .port()
}

/// A name no other test (or earlier run) uses: `prefix-PID-N-RANDOM`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}
