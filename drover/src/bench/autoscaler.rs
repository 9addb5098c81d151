//! `drover bench autoscaler`: Drover's default policy (`autoscaler/examples/default.yaml`, or
//! `--policy`) against its HPA-equivalent — the baseline the issue names — and its
//! KPA-equivalent, on each generated trace (step, spike, ramp, diurnal) over several seeds,
//! through the same decision code (`drover_autoscaler::simulate`). Prints, per trace, the
//! medians over seeds of seconds over the latency SLO and instance-hours for each, Drover's
//! ratios to the HPA-equivalent, and the cost of one decision. Asserts nothing.
use std::{path::PathBuf, time::Instant};

use clap::Args;
use drover_autoscaler::{
    policy::{self, Policy},
    simulate::{simulate, AppModel},
    trace::{generate, TraceKind},
};
use serde::Serialize;

/// Drover's default policy, as simulated in `autoscaler/README.md`.
const DEFAULT_POLICY: &str = include_str!("../../../autoscaler/examples/default.yaml");

/// Options of `drover bench autoscaler`.
#[derive(Debug, Args)]
pub struct AutoscalerBenchArgs {
    /// The policy file (its first policy); default: Drover's default policy.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Seeds per trace (1..=N); the figures are medians over them.
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct TraceRow {
    trace: &'static str,
    seeds: u64,
    drover_s_over_slo: f64,
    hpa_s_over_slo: f64,
    kpa_s_over_slo: f64,
    drover_instance_hours: f64,
    hpa_instance_hours: f64,
    kpa_instance_hours: f64,
    drover_direction_changes: f64,
    /// Drover's seconds over the SLO / the HPA-equivalent's (lower is better).
    slo_ratio_to_hpa: f64,
    /// Drover's instance-hours / the HPA-equivalent's (≤ 1: no more).
    instance_hours_ratio_to_hpa: f64,
    /// Seeds on which Drover had fewer seconds over the SLO at no more instance-hours.
    seeds_won: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    policy: String,
    traces: Vec<TraceRow>,
    /// Wall time of one simulated decision tick (the three policies' decisions and the
    /// model), median over the runs, µs.
    tick_us: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: AutoscalerBenchArgs) -> anyhow::Result<()> {
    let policy: Policy = match &args.policy {
        Some(p) => policy::load(std::slice::from_ref(p))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("{} has no policy", p.display()))?,
        None => policy::load_sources(&[(
            PathBuf::from("autoscaler/examples/default.yaml"),
            DEFAULT_POLICY.to_string(),
        )])
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .remove(0),
    };
    let model = AppModel::default();
    let seeds = args.seeds.max(1);
    let mut rows = Vec::new();
    let mut tick_us = Vec::new();
    for kind in TraceKind::ALL {
        let per = |name: &str, r: &drover_autoscaler::simulate::Report| {
            r.get(name)
                .map(|p| {
                    (
                        p.seconds_over_slo as f64,
                        p.instance_hours,
                        p.direction_changes as f64,
                    )
                })
                .unwrap_or((f64::NAN, f64::NAN, f64::NAN))
        };
        let (mut d, mut h, mut k) = (Vec::new(), Vec::new(), Vec::new());
        let mut won = 0;
        for seed in 1..=seeds {
            eprint!("\r{kind} seed {seed}/{seeds}…   ");
            let trace = generate(kind, seed);
            let started = Instant::now();
            let r = simulate(&policy, &trace, &model, None).map_err(|e| anyhow::anyhow!("{e}"))?;
            let ticks = (trace.duration_s() / policy.tick.as_secs_f64().max(1.0)).max(1.0);
            tick_us.push(started.elapsed().as_secs_f64() * 1e6 / ticks);
            let (dd, hh, kk) = (per("drover", &r), per("hpa", &r), per("kpa", &r));
            if dd.0 < hh.0 && dd.1 <= hh.1 {
                won += 1;
            }
            d.push(dd);
            h.push(hh);
            k.push(kk);
        }
        let col = |v: &[(f64, f64, f64)], i: usize| {
            median(
                v.iter()
                    .map(|x| match i {
                        0 => x.0,
                        1 => x.1,
                        _ => x.2,
                    })
                    .collect(),
            )
        };
        rows.push(TraceRow {
            trace: kind.as_str(),
            seeds,
            drover_s_over_slo: col(&d, 0),
            hpa_s_over_slo: col(&h, 0),
            kpa_s_over_slo: col(&k, 0),
            drover_instance_hours: col(&d, 1),
            hpa_instance_hours: col(&h, 1),
            kpa_instance_hours: col(&k, 1),
            drover_direction_changes: col(&d, 2),
            slo_ratio_to_hpa: col(&d, 0) / col(&h, 0).max(1.0),
            instance_hours_ratio_to_hpa: col(&d, 1) / col(&h, 1),
            seeds_won: won,
        });
    }
    eprintln!();
    let report = Report {
        policy: policy.name.clone(),
        traces: rows,
        tick_us: median(tick_us),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "policy {:?} against its HPA- and KPA-equivalents, medians over {seeds} seed(s) per trace",
        report.policy
    );
    println!(
        "{:<8} {:>18} {:>22} {:>12} {:>10} {:>10} {:>9}",
        "trace",
        "s over SLO d/h/k",
        "instance-h d/h/k",
        "SLO × HPA",
        "inst × HPA",
        "dir chg",
        "won"
    );
    for r in &report.traces {
        println!(
            "{:<8} {:>18} {:>22} {:>12.2} {:>10.2} {:>10} {:>9}",
            r.trace,
            format!(
                "{:.0}/{:.0}/{:.0}",
                r.drover_s_over_slo, r.hpa_s_over_slo, r.kpa_s_over_slo
            ),
            format!(
                "{:.2}/{:.2}/{:.2}",
                r.drover_instance_hours, r.hpa_instance_hours, r.kpa_instance_hours
            ),
            r.slo_ratio_to_hpa,
            r.instance_hours_ratio_to_hpa,
            r.drover_direction_changes,
            format!("{}/{}", r.seeds_won, r.seeds)
        );
    }
    println!(
        "one simulated tick (three decisions and the model): {:.1} µs median",
        report.tick_us
    );
    println!("target: fewer seconds over the SLO than the HPA-equivalent at no more instance-hours on every trace (\"won\": seeds where both held)");
    Ok(())
}
