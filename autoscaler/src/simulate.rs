//! Simulation: a request-rate [`Trace`] replayed through a model of the app and, in the same
//! run, through three policies — the one given (Drover's), an HPA-equivalent and a
//! KPA-equivalent — all decided by the same [`decide`] the live loop runs.
//!
//! The model, per second: `rps` arrive; the ready instances serve `slots / service time`
//! each; what they cannot serve waits in a backlog (given up after 30 s); the mean time in
//! the system is the service time plus the M/M/c wait (Sakasegawa's approximation) plus the
//! backlog's wait; p95 ≈ 3 × the mean and p99 ≈ 4.6 × (exponential service); requests in
//! flight follow Little's law; CPU is the busy share. A new instance takes `startup_s` to
//! take traffic; a removed one stops at once. Policies see their metrics as the gateway
//! reports them: averaged per `report_interval_s`, only once the interval has ended.
//!
//! The report counts, per policy: seconds with p95 over the SLO, instance-hours (instances
//! asked for, starting ones included), scale events and direction changes.
use std::{fmt, path::Path, time::Duration};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{
    decide::{decide, Decision, MetricObs, Observation, State},
    plan::GroupObs,
    policy::{load_one, LoadError, MetricKind, Policy, Target},
    trace::Trace,
};

/// The app as the simulator models it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AppModel {
    /// Mean service time of one request, ms.
    pub service_time_ms: f64,
    /// Requests one instance serves at once; its capacity is `slots / service time`.
    pub slots: f64,
    /// Seconds from asking for an instance to its taking traffic.
    pub startup_s: f64,
    /// The SLO the report counts against: p95 latency, ms.
    pub slo_p95_ms: f64,
    /// How often the gateway reports its statistics, s.
    pub report_interval_s: f64,
    /// Instances at the start.
    pub initial_instances: u32,
}

impl Default for AppModel {
    fn default() -> Self {
        Self {
            service_time_ms: 50.0,
            slots: 4.0,
            startup_s: 8.0,
            slo_p95_ms: 250.0,
            report_interval_s: 5.0,
            initial_instances: 1,
        }
    }
}

impl AppModel {
    /// Requests per second one instance serves at 100 %.
    pub fn capacity_rps(&self) -> f64 {
        self.slots / (self.service_time_ms / 1000.0)
    }
}

/// The HPA-equivalent of `policy`: CPU at 70 % and requests at 70 % of an instance's
/// capacity, proportional, 10 % tolerance, 300 s down stabilization, HPA's default rates,
/// a 15 s sync over a 30 s window; the same bounds.
pub fn hpa_equivalent(policy: &Policy, model: &AppModel) -> Result<Policy, LoadError> {
    let yaml = format!(
        "app: /sim\nmetrics:\n  - {{metric: cpu_pct, target: 70}}\n  - {{metric: request_rate, target: {:.3}}}\ninstances: {{min: {}, max: {}}}\ntolerance: 0.1\nwindow: 30s\nstabilization: {{up: 0s, down: 300s}}\npanic: {{enabled: false}}\ntick: 15s\nconfirm_up: false\nsettle: 0s\n",
        0.7 * model.capacity_rps(),
        policy.total_bounds().min.max(1),
        policy.total_bounds().max
    );
    load_one("hpa", &yaml)
}

/// The KPA-equivalent: concurrency at 70 % of the slots, 60 s stable and 6 s panic windows
/// (threshold 2×), no stabilization, scale-up ×1000 and scale-down ÷2 per 2 s tick; the same
/// bounds.
pub fn kpa_equivalent(policy: &Policy, model: &AppModel) -> Result<Policy, LoadError> {
    let yaml = format!(
        "app: /sim\nmetrics:\n  - {{metric: concurrency, target: {:.3}}}\ninstances: {{min: {}, max: {}}}\ntolerance: 0\nwindow: 60s\nstabilization: {{up: 0s, down: 0s}}\npanic: {{window: 6s, threshold: 2}}\ntick: 2s\nconfirm_up: false\nsettle: 0s\nbehavior:\n  up:\n    policies: [{{type: percent, value: 99900, period: 2s}}]\n  down:\n    policies: [{{type: percent, value: 50, period: 2s}}]\n",
        0.7 * model.slots,
        policy.total_bounds().min.max(1),
        policy.total_bounds().max
    );
    load_one("kpa", &yaml)
}

/// One policy's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyReport {
    /// `drover`, `hpa`, `kpa`.
    pub name: String,
    /// Seconds with p95 over the SLO.
    pub seconds_over_slo: u64,
    /// Instance-hours (asked for, starting ones included).
    pub instance_hours: f64,
    /// Decisions that changed the count or the groups.
    pub scale_events: u32,
    /// Scale events in the opposite direction of the one before.
    pub direction_changes: u32,
    /// The most instances at once.
    pub peak_instances: u32,
    /// The most groups at once.
    pub peak_groups: u32,
}

/// What a simulation found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Seconds simulated.
    pub duration_s: f64,
    /// The trace's highest rate.
    pub peak_rps: f64,
    /// The model.
    pub model: AppModel,
    /// Drover's policy first, then the HPA- and KPA-equivalents.
    pub policies: Vec<PolicyReport>,
}

impl Report {
    /// The report of `name`.
    pub fn get(&self, name: &str) -> Option<&PolicyReport> {
        self.policies.iter().find(|p| p.name == name)
    }

    /// The table as Markdown rows (for READMEs).
    pub fn markdown(&self, trace: &str) -> String {
        let mut s = String::new();
        for p in &self.policies {
            s.push_str(&format!(
                "| {trace} | {} | {} | {:.2} | {} | {} | {} |\n",
                p.name,
                p.seconds_over_slo,
                p.instance_hours,
                p.scale_events,
                p.direction_changes,
                p.peak_instances
            ));
        }
        s
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:.0} s, peak {:.0} rps; model: {:.0} rps per instance, start-up {:.0} s, SLO p95 {:.0} ms",
            self.duration_s,
            self.peak_rps,
            self.model.capacity_rps(),
            self.model.startup_s,
            self.model.slo_p95_ms
        )?;
        writeln!(
            f,
            "{:<8} {:>12} {:>15} {:>13} {:>18} {:>14}",
            "policy",
            "s over SLO",
            "instance-hours",
            "scale events",
            "direction changes",
            "peak instances"
        )?;
        for p in &self.policies {
            writeln!(
                f,
                "{:<8} {:>12} {:>15.2} {:>13} {:>18} {:>14}",
                p.name,
                p.seconds_over_slo,
                p.instance_hours,
                p.scale_events,
                p.direction_changes,
                p.peak_instances
            )?;
        }
        Ok(())
    }
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A derived policy did not check (bounds the derivation cannot express).
    #[error("cannot derive the {which} policy")]
    Derive {
        /// `hpa` or `kpa`.
        which: &'static str,
        /// Why.
        #[source]
        source: LoadError,
    },
    /// The chart could not be drawn.
    #[error("cannot draw the chart: {0}")]
    Chart(String),
    /// The chart could not be written.
    #[error("cannot write the chart to {path}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// One second of one policy's run.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    conc: f64,
    served: f64,
    p95: f64,
    p99: f64,
    cpu: f64,
    instances: u32,
    ready: u32,
}

#[derive(Debug)]
struct SimGroup {
    app: String,
    /// When each instance takes traffic.
    ready_at: Vec<f64>,
}

#[derive(Debug)]
struct Run {
    name: String,
    policy: Policy,
    state: State,
    groups: Vec<SimGroup>,
    backlog: f64,
    samples: Vec<Sample>,
    next_tick: f64,
    report: PolicyReport,
    last_dir: i64,
}

/// The per-second series of one policy (for charts).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSeries {
    /// The policy's name.
    pub name: String,
    /// Instances asked for, per second.
    pub instances: Vec<u32>,
    /// p95 latency, per second.
    pub p95_ms: Vec<f64>,
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = xs.fold((0.0, 0u32), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// Sakasegawa's approximation of the M/M/c mean wait in units of the service time.
fn mmc_wait(rho: f64, c: f64) -> f64 {
    if c <= 0.0 {
        return 0.0;
    }
    let rho = rho.clamp(0.0, 0.99);
    rho.powf((2.0 * (c + 1.0)).sqrt() - 1.0) / (c * (1.0 - rho))
}

impl Run {
    fn new(name: &str, policy: Policy, model: &AppModel) -> Self {
        let n = policy.total_bounds().clamp(model.initial_instances);
        let (app, groups) = match &policy.target {
            Target::App(a) => (a.clone(), 1),
            Target::Service(s) => (format!("{s}/g1"), 1),
        };
        let _ = groups;
        Self {
            name: name.to_string(),
            state: State::default(),
            groups: vec![SimGroup {
                app,
                ready_at: vec![0.0; n as usize],
            }],
            backlog: 0.0,
            samples: Vec::new(),
            next_tick: 0.0,
            report: PolicyReport {
                name: name.to_string(),
                seconds_over_slo: 0,
                instance_hours: 0.0,
                scale_events: 0,
                direction_changes: 0,
                peak_instances: n,
                peak_groups: 1,
            },
            policy,
            last_dir: 0,
        }
    }

    fn instances(&self) -> u32 {
        self.groups.iter().map(|g| g.ready_at.len() as u32).sum()
    }

    fn ready(&self, t: f64) -> u32 {
        self.groups
            .iter()
            .map(|g| g.ready_at.iter().filter(|&&r| r <= t).count() as u32)
            .sum()
    }

    /// One second of traffic.
    fn serve(&mut self, t: f64, rps: f64, model: &AppModel) {
        let s = model.service_time_ms / 1000.0;
        let ready = self.ready(t);
        let mu = ready as f64 * model.slots / s;
        let demand = rps + self.backlog;
        let served = demand.min(mu);
        // what waits longer than 30 s is given up
        self.backlog = (demand - served).min(30.0 * rps.max(1.0));
        let (w, cpu) = if mu > 0.0 {
            let rho = served / mu;
            let w = s * (1.0 + mmc_wait(rho, ready as f64 * model.slots)) + self.backlog / mu;
            (w, rho * 100.0)
        } else {
            (30.0, 0.0)
        };
        let sample = Sample {
            conc: rps * w,
            served,
            p95: 3.0 * w * 1000.0,
            p99: 4.6 * w * 1000.0,
            cpu,
            instances: self.instances(),
            ready,
        };
        if sample.p95 > model.slo_p95_ms {
            self.report.seconds_over_slo += 1;
        }
        self.report.instance_hours += sample.instances as f64 / 3600.0;
        self.samples.push(sample);
    }

    /// What the policy sees at `t`: reports up to the last finished interval.
    fn observe(&self, t: f64, model: &AppModel) -> Observation {
        let every = model.report_interval_s.max(1.0);
        let end = ((t / every).floor() * every) as usize;
        let end = end.min(self.samples.len());
        let window = |w: Duration| {
            let start = end.saturating_sub(w.as_secs().max(1) as usize);
            &self.samples[start..end]
        };
        let stable = window(self.policy.window);
        let short = window(self.policy.panic.window);
        let metrics = self
            .policy
            .metrics
            .iter()
            .map(|m| {
                let f = |xs: &[Sample]| -> Option<f64> {
                    match m.kind {
                        MetricKind::Concurrency => mean(xs.iter().map(|x| x.conc)),
                        MetricKind::RequestRate => mean(xs.iter().map(|x| x.served)),
                        MetricKind::LatencyP95 => mean(xs.iter().map(|x| x.p95)),
                        MetricKind::LatencyP99 => mean(xs.iter().map(|x| x.p99)),
                        MetricKind::CpuPct => {
                            mean(xs.iter().filter(|x| x.ready > 0).map(|x| x.cpu))
                        }
                        MetricKind::RssPct => mean(xs.iter().map(|_| 40.0)),
                        MetricKind::Series => None,
                    }
                };
                MetricObs {
                    value: f(stable),
                    recent: if m.kind.is_total() || m.kind.is_latency() {
                        f(short)
                    } else {
                        None
                    },
                }
            })
            .collect();
        Observation {
            groups: self
                .groups
                .iter()
                .map(|g| GroupObs {
                    app: g.app.clone(),
                    instances: g.ready_at.len() as u32,
                    ready: g.ready_at.iter().filter(|&&r| r <= t).count() as u32,
                })
                .collect(),
            deploying: false,
            metrics,
        }
    }

    fn apply(&mut self, d: &Decision, t: f64, model: &AppModel) {
        for r in &d.resize {
            if let Some(g) = self.groups.iter_mut().find(|g| g.app == r.app) {
                resize(g, r.to as usize, t + model.startup_s);
            }
        }
        for a in &d.add {
            self.groups.push(SimGroup {
                app: a.app.clone(),
                ready_at: vec![t + model.startup_s; a.to as usize],
            });
        }
        if let Some(r) = &d.remove {
            self.groups.retain(|g| &g.app != r);
        }
        self.state.applied(d);
        let dir = (d.desired as i64 - d.current as i64).signum();
        self.report.scale_events += 1;
        if dir != 0 {
            if self.last_dir != 0 && dir != self.last_dir {
                self.report.direction_changes += 1;
            }
            self.last_dir = dir;
        }
        self.report.peak_instances = self.report.peak_instances.max(self.instances());
        self.report.peak_groups = self.report.peak_groups.max(self.groups.len() as u32);
    }
}

/// Grows (new instances ready at `ready_at`) or shrinks (starting ones first) a group.
fn resize(g: &mut SimGroup, to: usize, ready_at: f64) {
    g.ready_at
        .sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if to > g.ready_at.len() {
        g.ready_at.resize(to, ready_at);
    } else {
        g.ready_at.truncate(to);
    }
}

/// Replays `trace` through `model` under each of `policies` (name, policy): the report, and
/// the per-second series for charts.
pub fn run(
    policies: Vec<(String, Policy)>,
    trace: &Trace,
    model: &AppModel,
) -> (Report, Vec<RunSeries>) {
    let t0: DateTime<Utc> = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    let mut runs: Vec<Run> = policies
        .into_iter()
        .map(|(n, p)| Run::new(&n, p, model))
        .collect();
    let duration = trace.duration_s().floor() as u64;
    for s in 0..duration {
        let t = s as f64;
        let rps = trace.rps_at(t);
        for r in &mut runs {
            if t >= r.next_tick {
                let o = r.observe(t, model);
                let now = t0 + chrono::Duration::seconds(s as i64);
                let d = decide(&r.policy, &mut r.state, &o, now);
                if d.changes() && !r.policy.dry_run {
                    r.apply(&d, t, model);
                }
                r.next_tick += r.policy.tick.as_secs_f64();
            }
            r.serve(t, rps, model);
        }
    }
    let series = runs
        .iter()
        .map(|r| RunSeries {
            name: r.name.clone(),
            instances: r.samples.iter().map(|s| s.instances).collect(),
            p95_ms: r.samples.iter().map(|s| s.p95).collect(),
        })
        .collect();
    let report = Report {
        duration_s: duration as f64,
        peak_rps: trace.peak(),
        model: *model,
        policies: runs.into_iter().map(|r| r.report).collect(),
    };
    (report, series)
}

/// `drover autoscale simulate`: `policy` (as Drover) against its HPA- and KPA-equivalents
/// on `trace` through `model`; the chart of instances against load written to `chart` (SVG)
/// when given.
pub fn simulate(
    policy: &Policy,
    trace: &Trace,
    model: &AppModel,
    chart: Option<&Path>,
) -> Result<Report, SimError> {
    let hpa = hpa_equivalent(policy, model).map_err(|source| SimError::Derive {
        which: "hpa",
        source,
    })?;
    let kpa = kpa_equivalent(policy, model).map_err(|source| SimError::Derive {
        which: "kpa",
        source,
    })?;
    let (report, series) = run(
        vec![
            ("drover".into(), policy.clone()),
            ("hpa".into(), hpa),
            ("kpa".into(), kpa),
        ],
        trace,
        model,
    );
    if let Some(path) = chart {
        let svg = chart_svg(&policy.name, trace, model, &series)?;
        std::fs::write(path, svg).map_err(|source| SimError::Write {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(report)
}

/// A step line through per-second counts: a point only where the count changes.
fn steps(xs: &[u32]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (t, &n) in xs.iter().enumerate() {
        match out.last() {
            Some(&(_, last)) if last == n as f64 => {}
            Some(&(_, last)) => {
                out.push((t as f64, last));
                out.push((t as f64, n as f64));
            }
            None => out.push((0.0, n as f64)),
        }
    }
    if let (Some(&(_, last)), false) = (out.last(), xs.is_empty()) {
        out.push(((xs.len() - 1) as f64, last));
    }
    out
}

/// An SVG chart: instances of each policy over time, with the load in instances' worth at
/// 100 % (rps / capacity) as a grey line.
pub fn chart_svg(
    title: &str,
    trace: &Trace,
    model: &AppModel,
    series: &[RunSeries],
) -> Result<String, SimError> {
    use plotters::prelude::*;
    let err = |e: &dyn fmt::Display| SimError::Chart(e.to_string());
    let duration = trace.duration_s();
    let cap = model.capacity_rps();
    // The scale follows the load and the first series (the policy under test): a series
    // far above them (KPA chasing a queue to its maximum) is cut at the top of the chart and
    // its legend says so, rather than flattening every other line.
    let peak = |s: &RunSeries| s.instances.iter().copied().max().unwrap_or(0) as f64;
    let ymax = series
        .iter()
        .take(1)
        .map(peak)
        .chain(trace.points.iter().map(|p| p.rps / cap))
        .fold(1.0, f64::max)
        * 2.0;
    let ymax = series
        .iter()
        .map(peak)
        .fold(0.0, f64::max)
        .min(ymax)
        .max(1.0)
        * 1.05;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (960, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{title}: instances against load"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0.0..duration, 0.0..ymax)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("instances")
            .disable_mesh()
            .draw()
            .map_err(|e| err(&e))?;
        let grey = RGBColor(170, 170, 170);
        chart
            .draw_series(LineSeries::new(
                trace.points.chunks(10).map(|c| {
                    (
                        c[0].time_s,
                        c.iter().map(|p| p.rps).sum::<f64>() / c.len() as f64 / cap,
                    )
                }),
                grey,
            ))
            .map_err(|e| err(&e))?
            .label(format!("load (rps / {cap:.0})"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], grey));
        let colors = [
            RGBColor(200, 30, 30),
            RGBColor(30, 90, 200),
            RGBColor(20, 150, 60),
        ];
        for (i, s) in series.iter().enumerate() {
            let c = colors[i % colors.len()];
            let top = ymax.floor();
            let label = if peak(s) > top {
                format!("{} (peak {}, cut at {top})", s.name, peak(s))
            } else {
                s.name.clone()
            };
            let points: Vec<(f64, f64)> = steps(&s.instances)
                .into_iter()
                .map(|(t, n)| (t, n.min(top)))
                .collect();
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{generate, TraceKind};

    fn drover() -> Policy {
        crate::policy::load_sources(&[(
            "default.yaml".into(),
            include_str!("../examples/default.yaml").to_string(),
        )])
        .map(|mut v| v.remove(0))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_model_follows_littles_law_and_saturates() {
        let model = AppModel::default();
        assert_eq!(model.capacity_rps(), 80.0);
        let p = drover();
        let mut r = Run::new(
            "x",
            p,
            &AppModel {
                initial_instances: 2,
                ..model
            },
        );
        // 80 rps on 160 rps of capacity: p95 near 3 × 50 ms
        r.serve(0.0, 80.0, &model);
        let s = r.samples[0];
        assert!(s.p95 > 150.0 && s.p95 < 200.0, "{s:?}");
        assert!((s.conc - 80.0 * s.p95 / 3000.0).abs() < 1e-9);
        assert!((s.cpu - 50.0).abs() < 1e-9);
        // 400 rps on 160: a backlog builds and latency goes over the SLO
        for t in 1..5 {
            r.serve(t as f64, 400.0, &model);
        }
        assert!(r.backlog > 900.0);
        assert!(r.samples[4].p95 > model.slo_p95_ms);
        assert_eq!(r.report.seconds_over_slo, 4);
        assert!((r.report.instance_hours - 10.0 / 3600.0).abs() < 1e-9);
    }

    #[test]
    fn new_instances_take_traffic_after_the_startup_delay() {
        let model = AppModel::default();
        let mut g = SimGroup {
            app: "/a".into(),
            ready_at: vec![0.0],
        };
        resize(&mut g, 3, 18.0);
        assert_eq!(g.ready_at, [0.0, 18.0, 18.0]);
        resize(&mut g, 1, 30.0);
        assert_eq!(g.ready_at, [0.0], "starting ones go first");
        let _ = model;
    }

    #[test]
    fn a_service_grows_by_whole_groups_and_sheds_the_last_when_the_load_falls() {
        let p = crate::policy::load_one(
            "svc",
            "service: /sim\nmetrics:\n  - {metric: concurrency, target: 3.2}\n  - {metric: latency_p95, target: 250}\ninstances: {min: 1, max: 2}\ngroups: {min: 1, max: 4}\nwindow: 30s\nstabilization: {down: 120s}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (r, series) = run(
            vec![("drover".into(), p)],
            &generate(TraceKind::Step, 1),
            &AppModel::default(),
        );
        let d = &r.policies[0];
        // 200 rps needs 4 instances at 80 %: two groups of two at least
        assert!(d.peak_groups >= 2, "{d:?}");
        assert!(d.peak_instances <= 8, "{d:?}");
        // back to one group of one at 50 rps, long after the step
        assert_eq!(series[0].instances.last().copied(), Some(1), "{d:?}");
        assert!(d.seconds_over_slo < 60, "{d:?}");
    }

    #[test]
    fn simulate_writes_a_chart_and_a_report() {
        let dir = tempfile::tempdir().expect("tempdir");
        let chart = dir.path().join("c.svg");
        let trace = generate(TraceKind::Step, 1);
        let r = simulate(&drover(), &trace, &AppModel::default(), Some(&chart)).expect("runs");
        let names: Vec<&str> = r.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["drover", "hpa", "kpa"]);
        let svg = std::fs::read_to_string(&chart).expect("chart");
        assert!(svg.starts_with("<svg") && svg.contains("instances against load"));
        let text = r.to_string();
        assert!(
            text.contains("s over SLO") && text.contains("kpa"),
            "{text}"
        );
        let json = serde_json::to_value(&r).expect("json");
        assert!(json["policies"][0]["instance_hours"].as_f64().is_some());
    }
}

#[cfg(test)]
mod compare {
    use super::*;
    use crate::trace::{generate, TraceKind};

    /// Steady load with ±20 % noise for 15 minutes: Drover settles on a count and keeps it —
    /// no direction change (the tolerance, the down-window and the short-window
    /// confirmation absorb the noise).
    #[test]
    fn steady_noisy_load_changes_direction_zero_times() {
        let p = crate::policy::load(&["examples/default.yaml".into()])
            .map(|mut v| v.remove(0))
            .unwrap_or_else(|e| panic!("{e}"));
        for seed in 1..=5 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let trace = Trace {
                points: (0..900)
                    .map(|t| crate::trace::TracePoint {
                        time_s: t as f64,
                        rps: 150.0 * (1.0 + (rng.f64() * 2.0 - 1.0) * 0.2),
                    })
                    .collect(),
            };
            // the app already sized for the load (150 rps: 3 instances), as after a warm-up
            let model = AppModel {
                initial_instances: 3,
                ..AppModel::default()
            };
            let r = simulate(&p, &trace, &model, None).unwrap_or_else(|e| panic!("{e}"));
            let d = &r.policies[0];
            assert_eq!(d.direction_changes, 0, "seed {seed}:\n{r}");
            assert!(d.scale_events <= 1, "seed {seed}:\n{r}");
        }
    }

    /// All four generated traces (three seeds each) through Drover's default policy and its
    /// HPA- and KPA-equivalents. Asserted: what follows from the design — Drover reacts
    /// within its 2 s tick, the short window and panic mode where HPA waits for a 15 s sync
    /// over a 30 s window, so it spends fewer seconds over the SLO; its stabilization keeps
    /// it from KPA's flapping. Printed (`--nocapture`): the instance-hours, a tuning result
    /// recorded in the README, not a property.
    #[test]
    fn drover_beats_the_hpa_equivalent_on_the_slo_and_flaps_less_than_kpa() {
        let path = std::env::var("AS_POLICY").unwrap_or_else(|_| "examples/default.yaml".into());
        let p = crate::policy::load(&[path.into()])
            .map(|mut v| v.remove(0))
            .unwrap_or_else(|e| panic!("{e}"));
        for k in TraceKind::ALL {
            for seed in [1, 2, 3] {
                let r = simulate(&p, &generate(k, seed), &AppModel::default(), None)
                    .unwrap_or_else(|e| panic!("{e}"));
                println!("{k} seed {seed}\n{r}");
                let (d, h, kpa) = (&r.policies[0], &r.policies[1], &r.policies[2]);
                assert!(
                    d.seconds_over_slo < h.seconds_over_slo,
                    "{k} seed {seed}: drover {} s over the SLO, hpa {}",
                    d.seconds_over_slo,
                    h.seconds_over_slo
                );
                assert!(
                    d.direction_changes <= kpa.direction_changes,
                    "{k} seed {seed}: drover {} direction changes, kpa {}",
                    d.direction_changes,
                    kpa.direction_changes
                );
            }
        }
    }
}
