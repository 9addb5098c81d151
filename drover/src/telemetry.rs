//! Logging and the process-level metrics every role exports.
use std::sync::{Arc, Mutex};

use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::{Registry, Unit},
};
use tracing_subscriber::EnvFilter;

/// Log to stderr; `RUST_LOG` overrides the default `info` level.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,librdkafka=warn,rdkafka=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// `process_*` metrics (the names every Prometheus client library uses) and
/// `drover_build_info`, refreshed on each scrape from `/proc/self`.
#[derive(Debug, Clone)]
pub struct ProcessMetrics {
    cpu: Counter<f64, std::sync::atomic::AtomicU64>,
    cpu_seen: Arc<Mutex<f64>>,
    rss: Gauge,
    fds: Gauge,
    start: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl ProcessMetrics {
    /// Register the process metrics in the root registry.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            cpu: Counter::default(),
            cpu_seen: Arc::new(Mutex::new(0.0)),
            rss: Gauge::default(),
            fds: Gauge::default(),
            start: Gauge::default(),
        };
        registry.register_with_unit(
            "process_cpu",
            "Total user and system CPU time spent",
            Unit::Seconds,
            m.cpu.clone(),
        );
        registry.register_with_unit(
            "process_resident_memory",
            "Resident memory size",
            Unit::Bytes,
            m.rss.clone(),
        );
        registry.register(
            "process_open_fds",
            "Number of open file descriptors",
            m.fds.clone(),
        );
        registry.register_with_unit(
            "process_start_time",
            "Start time of the process since the Unix epoch",
            Unit::Seconds,
            m.start.clone(),
        );
        let build = Family::<Vec<(String, String)>, Gauge>::default();
        build
            .get_or_create(&vec![("version".into(), env!("CARGO_PKG_VERSION").into())])
            .set(1);
        registry.register("drover_build_info", "Drover's version (always 1)", build);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        m.start.set(now.as_secs_f64());
        m
    }

    /// Read `/proc/self` into the metrics (called before each scrape).
    pub fn refresh(&self) {
        if let Some(rss) = drover_kafka::embedded::resident_bytes(std::process::id()) {
            self.rss.set(rss as i64);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.fds.set(dir.count() as i64);
        }
        if let Some(cpu) = cpu_seconds() {
            let mut seen = self.cpu_seen.lock().expect("cpu mutex not poisoned");
            if cpu > *seen {
                self.cpu.inc_by(cpu - *seen);
                *seen = cpu;
            }
        }
    }
}

/// utime + stime of this process in seconds (clock ticks are 1/100 s on Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_reads_proc() {
        let mut reg = Registry::default();
        let m = ProcessMetrics::register(&mut reg);
        // Burn a little CPU so the counter moves.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        m.refresh();
        assert!(m.rss.get() > 0);
        assert!(m.fds.get() > 0);
        assert!(cpu_seconds().is_some());
    }
}
