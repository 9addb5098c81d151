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
pub fn cpu_seconds() -> Option<f64> {
    stat_cpu_seconds("/proc/self/stat")
}

/// utime + stime of the calling thread in seconds.
pub fn thread_cpu_seconds() -> Option<f64> {
    stat_cpu_seconds("/proc/thread-self/stat")
}

/// utime + stime of process `pid` in seconds (another process: the embedded broker).
pub fn pid_cpu_seconds(pid: u32) -> Option<f64> {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

fn stat_cpu_seconds(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
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

/// Convert prometheus-client's OpenMetrics text to the Prometheus text format 0.0.4, for
/// scrapers and tools that do not ask for OpenMetrics (`curl`, `promtool check metrics`,
/// older Prometheus): counter families take their `_total` sample name in `# HELP`/`# TYPE`,
/// and the OpenMetrics-only `# UNIT` and `# EOF` lines go.
pub fn openmetrics_to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut pending_help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, _)) = pending_help.take() {
                // A HELP without TYPE: keep it as it was.
                out.push_str(&format!("# HELP {name}\n"));
            }
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            pending_help = Some((name, help));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let family = if kind == "counter" && !name.ends_with("_total") {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            if let Some((help_name, help)) = pending_help.take() {
                let help_family = if help_name == name {
                    &family
                } else {
                    help_name
                };
                out.push_str(&format!("# HELP {help_family} {help}\n"));
            }
            out.push_str(&format!("# TYPE {family} {kind}\n"));
            continue;
        }
        if let Some((name, help)) = pending_help.take() {
            out.push_str(&format!("# HELP {name} {help}\n"));
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod text_format_tests {
    use super::*;

    #[test]
    fn counters_take_total_and_openmetrics_lines_go() {
        let om = "# HELP a_seconds Time.\n# TYPE a_seconds counter\n# UNIT a_seconds seconds\na_seconds_total 1.5\n# HELP g A gauge.\n# TYPE g gauge\ng{x=\"1\"} 2\n# EOF\n";
        assert_eq!(
            openmetrics_to_prometheus_text(om),
            "# HELP a_seconds_total Time.\n# TYPE a_seconds_total counter\na_seconds_total 1.5\n# HELP g A gauge.\n# TYPE g gauge\ng{x=\"1\"} 2\n"
        );
    }
}
