//! `drover bench alertman`: one evaluation of N rules (default 1,000) over M series (default
//! 10,000) and a 5-minute window, in process against a real metrics store (samples every 10 s),
//! the medians and the worst over rounds. Prints figures; asserts nothing.
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Args;
use drover_alertman::{
    eval::Evaluator,
    rules,
    source::{InProcess, Source},
};
use drover_metrics::{Labels, Metric, MetricsStore, Samples, StoreConfig};
use drover_schema::time::{Clock as _, ManualClock};
use serde::Serialize;

/// Options of `drover bench alertman`.
#[derive(Debug, Args)]
pub struct AlertmanBenchArgs {
    /// Rules evaluated (metric rules over 100 apps: p95/max/mean/last of cpu_pct and rss_pct
    /// by app and instance; every 10th a log-free absence rule).
    #[arg(long, default_value_t = 1_000)]
    rules: usize,
    /// Series in the store (cpu_pct and rss_pct of series/2 instances over 100 apps).
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// The window.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    window: Duration,
    /// Evaluations measured (after one warm-up).
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    rules: usize,
    series: usize,
    samples: usize,
    window_s: u64,
    rounds: usize,
    /// Alerts pending or firing after the last round.
    active_alerts: usize,
    median_ms: f64,
    worst_ms: f64,
    target_ms: f64,
    build: &'static str,
}

const APPS: usize = 100;

fn rules_text(n: usize, window: Duration) -> String {
    let w = humantime::format_duration(window);
    let mut s = String::from("version: 1\nrules:\n");
    let aggs = ["p95", "max", "mean", "last"];
    for i in 0..n {
        let app = format!("/bench-{}", i % APPS);
        if i % 10 == 9 {
            s.push_str(&format!(
                "  - name: R{i}\n    kind: absence\n    metric: cpu_pct\n    filter: {{app: {app}}}\n    by: [app]\n    window: {w}\n"
            ));
            continue;
        }
        let metric = if i % 2 == 0 { "cpu_pct" } else { "rss_pct" };
        s.push_str(&format!(
            "  - name: R{i}\n    kind: metric\n    metric: {metric}\n    filter: {{app: {app}}}\n    agg: {}\n    window: {w}\n    by: [app, instance]\n    threshold: {}\n    for: 1m\n    annotations:\n      summary: \"{{{{ labels.instance }}}} at {{{{ value | round(1) }}}}\"\n",
            aggs[(i / 2) % aggs.len()],
            90 + (i % 9)
        ));
    }
    s
}

/// Runs the benchmark.
pub async fn run(args: AlertmanBenchArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::at_ms(1_800_000_000_000);
    let store = Arc::new(MetricsStore::open(
        dir.path(),
        StoreConfig {
            clock: clock.shared(),
            ..StoreConfig::default()
        },
    )?);
    let instances = (args.series / 2).max(1);
    let per = (args.window.as_secs() / 10).max(1) as i64;
    let now = clock.now().timestamp_millis();
    eprintln!(
        "filling the store: {} series × {per} samples…",
        instances * 2
    );
    let mut samples = 0;
    for i in 0..instances {
        let labels = Labels {
            app: format!("/bench-{}", i % APPS),
            instance: format!("/bench-{}.{i}", i % APPS),
            node: format!("node-{}", i % 20),
            group: String::new(),
            host: "bench".into(),
        };
        for k in 0..per {
            // 1 instance in 50 runs hot.
            let cpu = if i % 50 == 0 {
                97.0
            } else {
                (i * 7 + k as usize * 3) as f64 % 80.0
            };
            store.add(&Samples {
                labels: labels.clone(),
                ts_ms: now - k * 10_000,
                values: vec![(Metric::CpuPct, cpu), (Metric::RssPct, cpu / 2.0)],
            });
            samples += 2;
        }
    }
    clock.advance(Duration::from_millis(1));
    let text = rules_text(args.rules, args.window);
    let cfg = rules::load_sources(&[("bench.yaml".into(), text)], &|_| None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let source: Arc<dyn Source> = Arc::new(InProcess {
        metrics: Some(Arc::clone(&store)),
        search: None,
    });
    let mut ev = Evaluator::new("http://127.0.0.1:8080", Default::default());
    // Warm-up (and the pending alerts' first step).
    ev.evaluate(&cfg.rules, source.as_ref(), clock.now()).await;
    let mut times = Vec::with_capacity(args.rounds);
    for _ in 0..args.rounds.max(1) {
        let t = Instant::now();
        ev.evaluate(&cfg.rules, source.as_ref(), clock.now()).await;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let active_alerts = ev.states.values().map(|m| m.len()).sum();
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let report = Report {
        rules: cfg.rules.len(),
        series: instances * 2,
        samples,
        window_s: args.window.as_secs(),
        rounds: times.len(),
        active_alerts,
        median_ms: sorted[sorted.len() / 2],
        worst_ms: *sorted.last().unwrap_or(&0.0),
        target_ms: 100.0,
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "alertman: one evaluation of {} rules over {} series ({} samples, {}s window): median {:.1} ms, worst {:.1} ms over {} rounds ({} build; target < {} ms); {} alerts pending or firing",
            report.rules,
            report.series,
            report.samples,
            report.window_s,
            report.median_ms,
            report.worst_ms,
            report.rounds,
            report.build,
            report.target_ms,
            report.active_alerts
        );
    }
    Ok(())
}
