//! Policy files: YAML, `version: 1`, unknown keys refused. One file or a directory of
//! `*.yaml`/`*.yml` files, each holding a list of policies. Everything is checked at load —
//! bounds, targets, windows against the tick, metric names — and every error names the file,
//! the line and the field (`policies.yaml:12: policies[0].instances.min: …`).
//!
//! ```yaml
//! version: 1
//! policies:
//!   - name: shop-api
//!     service: /shop/api          # a Marathon group whose child apps are its groups
//!     metrics:
//!       - metric: concurrency     # requests in flight per instance
//!         target: 8
//!       - metric: latency_p95     # an SLO in ms: over it, capacity never falls
//!         target: 250
//!     instances: { min: 1, max: 10 }   # per group
//!     groups: { min: 1, max: 4 }
//!     stabilization: { up: 0s, down: 300s }
//! ```
use std::{
    collections::BTreeSet,
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

// === file format ===

/// A duration written as text (`30s`, `5m`, `1h30m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        drover_schema::time::parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&fmt_dur(self.0))
    }
}

/// A duration as policy files write it (`300s`, `1.5s`).
pub fn fmt_dur(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A policy file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// The format version: 1.
    pub version: u32,
    /// The policies.
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
}

/// A policy as written (also the body of `PUT /api/autoscaler/policies/{name}`, where
/// `name` may be left out).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Unique name.
    #[serde(default)]
    pub name: String,
    /// The app to scale (vertical only: its instance count). Exactly one of `app`/`service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The service to scale: a Marathon group whose child apps are its instance groups
    /// (`/shop/api` → `/shop/api/g1`, `/shop/api/g2`, …), resized one by one (vertical) and
    /// added or removed whole (horizontal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// service: the app new groups are copied from (default: the service's first group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// What to scale on; the largest recommendation wins.
    #[serde(default)]
    pub metrics: Vec<MetricConfig>,
    /// Instances per group (or of the app): `{min, max}`, default `{min: 1, max: 10}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<BoundsConfig>,
    /// service: how many groups, default `{min: 1, max: 4}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<BoundsConfig>,
    /// service: the last group is removed when the load fits the other groups filled to this
    /// share of their maximum (0–1, default 0.7) for the whole down-window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_threshold: Option<f64>,
    /// No change while every metric is within this share of its target (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// The window the metrics are averaged over (KPA's stable window; default 60s); panic
    /// mode ends after one such window without a panic condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Dur>,
    /// Stabilization windows (HPA): up `0s`, down `300s` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stabilization: Option<UpDownConfig>,
    /// How fast instances may be added or removed (HPA's `behavior`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<BehaviorConfig>,
    /// Panic mode (KPA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panic: Option<PanicConfig>,
    /// Minimum time after a scale-up before the next scale-up (`up`), and after any change
    /// before a scale-down (`down`); default 0s both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<UpDownConfig>,
    /// How often the policy is evaluated (default 2s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick: Option<Dur>,
    /// A scale-up on a total (concurrency, requests/s) must be confirmed by the short
    /// (panic) window too: the long window still holds the queue of a load already answered
    /// (default true; the HPA- and KPA-equivalents of the simulator set it false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_up: Option<bool>,
    /// After a scale-up, the next one waits until the new instances are ready (at most
    /// 60s) and then this long, so the metrics show their effect (the gateway's report
    /// interval plus the short window; default 10s, 0s: off). Panic mode waits too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<Dur>,
    /// Decide and explain, never scale.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a metric measures, and how it turns into instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Requests in flight per instance (the gateway's time-weighted `concurrency_mean`).
    Concurrency,
    /// Requests per second per instance (`request_rate`).
    RequestRate,
    /// The 95th percentile latency, ms: an SLO, not a per-instance share.
    LatencyP95,
    /// The 99th percentile latency, ms: an SLO.
    LatencyP99,
    /// CPU, % of the instance's limit, averaged over instances.
    CpuPct,
    /// Resident memory, % of the instance's limit, averaged over instances.
    RssPct,
    /// Any metrics-store series (`series:`), averaged over instances, with a per-instance
    /// target.
    Series,
}

impl MetricKind {
    /// Its name in policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Concurrency => "concurrency",
            MetricKind::RequestRate => "request_rate",
            MetricKind::LatencyP95 => "latency_p95",
            MetricKind::LatencyP99 => "latency_p99",
            MetricKind::CpuPct => "cpu_pct",
            MetricKind::RssPct => "rss_pct",
            MetricKind::Series => "series",
        }
    }

    /// A latency SLO (over it: at least one step up; never a reason to go down).
    pub fn is_latency(self) -> bool {
        matches!(self, MetricKind::LatencyP95 | MetricKind::LatencyP99)
    }

    /// The value read is the service's total (divided by the target gives instances), not a
    /// per-instance average.
    pub fn is_total(self) -> bool {
        matches!(self, MetricKind::Concurrency | MetricKind::RequestRate)
    }
}

/// One metric of a policy.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricConfig {
    /// `concurrency`, `request_rate`, `latency_p95`, `latency_p99`, `cpu_pct`, `rss_pct` or
    /// `series`.
    pub metric: MetricKind,
    /// series: the metrics-store series (`in_flight`, `error_rate`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    /// The target per instance (latency: the SLO in ms; cpu/rss: percent). Must be > 0.
    pub target: f64,
}

/// `{min, max}`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BoundsConfig {
    /// The least.
    pub min: u32,
    /// The most.
    pub max: u32,
}

/// `{up, down}` durations.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpDownConfig {
    /// For scaling up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<Dur>,
    /// For scaling down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<Dur>,
}

/// HPA's `behavior`: rate policies per direction.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BehaviorConfig {
    /// Scaling up (default: 100% or 4 instances per 15s, whichever is more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<RulesConfig>,
    /// Scaling down (default: 100% per 15s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<RulesConfig>,
}

/// The rate policies of one direction.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Limits, each over its period.
    pub policies: Vec<RateConfig>,
    /// `max` (the policy allowing the most change, default), `min`, or `disabled` (no
    /// scaling in this direction).
    #[serde(default)]
    pub select: Select,
}

/// Which rate policy applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Select {
    /// The one allowing the most change.
    #[default]
    Max,
    /// The one allowing the least change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// One rate policy.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// `instances` or `percent`.
    #[serde(rename = "type")]
    pub kind: RateKind,
    /// How many instances, or what percent of the instances at the period's start. > 0.
    pub value: f64,
    /// The period (at least the tick).
    pub period: Dur,
}

/// A rate policy's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateKind {
    /// Instances per period.
    Instances,
    /// Percent of the instances at the period's start, per period.
    Percent,
}

/// KPA's panic mode.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PanicConfig {
    /// On by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The short window (default 6s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Dur>,
    /// Panic when the short window asks for this many times the ready instances
    /// (default 2.0; more than 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

// === the checked policy ===

/// What a policy scales.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Target {
    /// One app: its instance count.
    App(String),
    /// A Marathon group whose child apps are its groups.
    Service(String),
}

impl Target {
    /// The app or group ID.
    pub fn id(&self) -> &str {
        match self {
            Target::App(s) | Target::Service(s) => s,
        }
    }
}

/// One checked metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricSpec {
    /// What it measures.
    pub kind: MetricKind,
    /// The metrics-store series read.
    pub series: String,
    /// The target per instance (latency: the SLO).
    pub target: f64,
}

impl MetricSpec {
    /// A name for explanations (`concurrency`, `series:in_flight`).
    pub fn label(&self) -> String {
        match self.kind {
            MetricKind::Series => format!("series:{}", self.series),
            k => k.as_str().to_string(),
        }
    }
}

/// `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bounds {
    /// The least.
    pub min: u32,
    /// The most.
    pub max: u32,
}

impl Bounds {
    /// `v` within the bounds.
    pub fn clamp(&self, v: u32) -> u32 {
        v.clamp(self.min, self.max)
    }
}

/// One rate policy, checked.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RateRule {
    /// Instances or percent.
    pub kind: RateKind,
    /// The amount.
    pub value: f64,
    /// The period.
    #[serde(serialize_with = "ser_dur")]
    pub period: Duration,
}

/// The rate policies of one direction, checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rules {
    /// The limits.
    pub policies: Vec<RateRule>,
    /// Which applies.
    pub select: Select,
}

impl Rules {
    /// HPA's default for scaling up: 100% or 4 instances per 15s, the larger.
    pub fn hpa_up() -> Self {
        Self {
            policies: vec![
                RateRule {
                    kind: RateKind::Percent,
                    value: 100.0,
                    period: Duration::from_secs(15),
                },
                RateRule {
                    kind: RateKind::Instances,
                    value: 4.0,
                    period: Duration::from_secs(15),
                },
            ],
            select: Select::Max,
        }
    }

    /// HPA's default for scaling down: 100% per 15s.
    pub fn hpa_down() -> Self {
        Self {
            policies: vec![RateRule {
                kind: RateKind::Percent,
                value: 100.0,
                period: Duration::from_secs(15),
            }],
            select: Select::Max,
        }
    }

    /// The longest period (how much scale history to keep).
    pub fn longest(&self) -> Duration {
        self.policies
            .iter()
            .map(|p| p.period)
            .max()
            .unwrap_or_default()
    }
}

/// Panic mode, checked.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Panic {
    /// On.
    pub enabled: bool,
    /// The short window.
    #[serde(serialize_with = "ser_dur")]
    pub window: Duration,
    /// Times the ready instances that the short window must ask for.
    pub threshold: f64,
}

fn ser_dur<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&fmt_dur(*d))
}

/// Where a policy came from (for errors found after loading: an unknown app).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Origin {
    /// The file (`api` for a policy put through the API).
    pub file: PathBuf,
    /// The line of its `app:`/`service:`.
    pub target_line: Option<usize>,
    /// The field path of its target (`policies[0].service`).
    pub target_field: String,
}

/// A checked policy, every default filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    /// Unique name.
    pub name: String,
    /// What it scales.
    pub target: Target,
    /// service: the app new groups are copied from (None: the first group).
    pub template: Option<String>,
    /// The metrics.
    pub metrics: Vec<MetricSpec>,
    /// Instances per group (or of the app).
    pub instances: Bounds,
    /// Groups (an app: exactly 1).
    pub groups: Bounds,
    /// service: the fill threshold for removing the last group.
    pub fill_threshold: f64,
    /// Tolerance around the target.
    pub tolerance: f64,
    /// The metrics' (stable) window.
    #[serde(serialize_with = "ser_dur")]
    pub window: Duration,
    /// Up stabilization window.
    #[serde(serialize_with = "ser_dur")]
    pub stabilize_up: Duration,
    /// Down stabilization window.
    #[serde(serialize_with = "ser_dur")]
    pub stabilize_down: Duration,
    /// Rate policies, up.
    pub up: Rules,
    /// Rate policies, down.
    pub down: Rules,
    /// Panic mode.
    pub panic: Panic,
    /// Cooldown after a scale-up before the next.
    #[serde(serialize_with = "ser_dur")]
    pub cooldown_up: Duration,
    /// Cooldown after any change before a scale-down.
    #[serde(serialize_with = "ser_dur")]
    pub cooldown_down: Duration,
    /// The tick.
    #[serde(serialize_with = "ser_dur")]
    pub tick: Duration,
    /// Scale-ups on totals confirmed by the short window.
    pub confirm_up: bool,
    /// How long a scale-up's new instances must have been ready before the next.
    #[serde(serialize_with = "ser_dur")]
    pub settle: Duration,
    /// Decide only.
    pub dry_run: bool,
    /// Where it came from.
    pub origin: Origin,
    /// As written (for `GET /api/autoscaler/policies`).
    pub config: PolicyConfig,
}

impl Policy {
    /// The least and most instances in total.
    pub fn total_bounds(&self) -> Bounds {
        Bounds {
            min: self.instances.min * self.groups.min,
            max: self.instances.max * self.groups.max,
        }
    }
}

/// The metrics-store series a policy may name with `metric: series`.
pub const KNOWN_SERIES: &[&str] = &[
    "cpu_pct",
    "rss_bytes",
    "rss_pct",
    "working_set_bytes",
    "blkio_read_bytes",
    "blkio_write_bytes",
    "net_rx_bytes",
    "net_tx_bytes",
    "requests",
    "request_rate",
    "in_flight",
    "error_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "concurrency_mean",
    "concurrency_max",
];

// === errors ===

/// One problem in a policy: the file, the line (when known), the field and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}{}: {field}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct PolicyError {
    /// The file (`api` for a policy put through the API).
    pub file: PathBuf,
    /// The line, 1-based.
    pub line: Option<usize>,
    /// The field (`policies[0].instances.min`).
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// Policies that did not load: every problem found.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
pub struct LoadError {
    /// The problems.
    pub errors: Vec<PolicyError>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "{n} problem{} in the policy files",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

// === loading ===

/// The policy files of `paths`: each a file, or a directory whose `*.yaml`/`*.yml` files are
/// read in name order.
pub fn files_of(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| LoadError {
                errors: vec![PolicyError {
                    file: p.clone(),
                    line: None,
                    field: String::new(),
                    message: format!("cannot read the directory: {e}"),
                }],
            })?;
            let mut found: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && matches!(f.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                })
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Loads and checks the policy files at `paths` (files or directories).
pub fn load(paths: &[PathBuf]) -> Result<Vec<Policy>, LoadError> {
    let files = files_of(paths)?;
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for f in &files {
        match std::fs::read_to_string(f) {
            Ok(s) => sources.push((f.clone(), s)),
            Err(e) => errors.push(PolicyError {
                file: f.clone(),
                line: None,
                field: String::new(),
                message: format!("cannot read the file: {e}"),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(LoadError { errors });
    }
    load_sources(&sources)
}

/// Loads and checks policy files given as (path, text). Names must be unique across files.
pub fn load_sources(sources: &[(PathBuf, String)]) -> Result<Vec<Policy>, LoadError> {
    let mut errors = Vec::new();
    let mut out: Vec<Policy> = Vec::new();
    let mut names = BTreeSet::new();
    let mut targets = BTreeSet::new();
    for (path, text) in sources {
        let file = match parse::<PolicyFile>(path, text) {
            Ok(f) => f,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if file.version != 1 {
            errors.push(PolicyError {
                file: path.clone(),
                line: line_of(text, "version").map(|(l, _)| l),
                field: "version".into(),
                message: format!(
                    "version {} is not known: this Drover reads version: 1",
                    file.version
                ),
            });
            continue;
        }
        for (i, pc) in file.policies.into_iter().enumerate() {
            let prefix = format!("policies[{i}]");
            match check(pc, path, text, &prefix) {
                Ok(p) => {
                    let at = |k: &str| {
                        let field = format!("{prefix}.{k}");
                        (line_of(text, &field).map(|(l, _)| l), field)
                    };
                    if !names.insert(p.name.clone()) {
                        let (line, field) = at("name");
                        errors.push(PolicyError {
                            file: path.clone(),
                            line,
                            field,
                            message: format!(
                                "the policy {:?} is defined twice: give each a unique name",
                                p.name
                            ),
                        });
                    } else if !targets.insert(p.target.id().to_string()) {
                        errors.push(PolicyError {
                            file: path.clone(),
                            line: p.origin.target_line,
                            field: p.origin.target_field.clone(),
                            message: format!(
                                "{} is already scaled by another policy: one policy per app or service",
                                p.target.id()
                            ),
                        });
                    } else {
                        out.push(p);
                    }
                }
                Err(mut es) => errors.append(&mut es),
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(LoadError { errors })
    }
}

/// One policy given as YAML or JSON (the body of `PUT /api/autoscaler/policies/{name}`):
/// checked as in a file, errors naming `api` as the file and the body's line.
pub fn load_one(name: &str, body: &str) -> Result<Policy, LoadError> {
    let file = PathBuf::from("api");
    let mut pc = parse::<PolicyConfig>(&file, body).map_err(|e| LoadError { errors: vec![e] })?;
    if !pc.name.is_empty() && pc.name != name {
        return Err(LoadError {
            errors: vec![PolicyError {
                file,
                line: line_of(body, "name").map(|(l, _)| l),
                field: "name".into(),
                message: format!(
                    "the body names {:?} but the path {name:?}: leave name out or make them equal",
                    pc.name
                ),
            }],
        });
    }
    pc.name = name.to_string();
    check(pc, &file, body, "").map_err(|errors| LoadError { errors })
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, PolicyError> {
    let de = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.inner();
        let mut message = inner.to_string();
        // serde_norway appends " at line L column C" and may prefix the path: both are
        // already in front.
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        if let Some((p, rest)) = message.split_once(": ") {
            if !p.contains(' ') {
                message = rest.to_string();
            }
        }
        let field = if field == "." { String::new() } else { field };
        // The field's own line when the path finds it; else where the parser stopped.
        let line = match line_of(text, &field) {
            Some((l, true)) => Some(l),
            _ => inner.location().map(|l| l.line()),
        };
        PolicyError {
            file: path.to_path_buf(),
            line,
            field,
            message,
        }
    })
}

/// Checks a policy as written; every problem found, each with its line.
fn check(
    pc: PolicyConfig,
    file: &Path,
    text: &str,
    prefix: &str,
) -> Result<Policy, Vec<PolicyError>> {
    let mut errors = Vec::new();
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    let mut err = |k: &str, message: String| {
        let field = join(k);
        errors.push(PolicyError {
            file: file.to_path_buf(),
            line: line_of(text, &field).map(|(l, _)| l),
            field,
            message,
        });
    };
    if pc.name.trim().is_empty() {
        err("name", "a policy needs a name".into());
    } else if !pc
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        err(
            "name",
            format!(
                "{:?}: use letters, digits, '-', '_' and '.' (it goes in URLs)",
                pc.name
            ),
        );
    }
    let id_ok = |id: &str| id.starts_with('/') && id.len() > 1 && !id.ends_with('/');
    let (target, target_key) = match (&pc.app, &pc.service) {
        (Some(a), None) => {
            if !id_ok(a) {
                err(
                    "app",
                    format!("{a:?} is not an app ID: write it as /group/app"),
                );
            }
            (Target::App(a.clone()), "app")
        }
        (None, Some(s)) => {
            if !id_ok(s) {
                err(
                    "service",
                    format!("{s:?} is not a group ID: write it as /group/service"),
                );
            }
            (Target::Service(s.clone()), "service")
        }
        (Some(_), Some(_)) => {
            err(
                "service",
                "give either app (vertical only) or service (groups of apps), not both".into(),
            );
            (Target::App(String::new()), "app")
        }
        (None, None) => {
            err(
                "app",
                "say what to scale: app: /x (its instances) or service: /x (a group of apps)"
                    .into(),
            );
            (Target::App(String::new()), "app")
        }
    };
    if let Some(t) = &pc.template {
        match &target {
            Target::Service(s) if t.starts_with(&format!("{s}/")) => {}
            Target::Service(s) => err(
                "template",
                format!("the template {t:?} must be one of the service's apps ({s}/…)"),
            ),
            Target::App(_) => err(
                "template",
                "a template is for a service (new groups are copied from it); an app policy has none".into(),
            ),
        }
    }
    if pc.metrics.is_empty() {
        err(
            "metrics",
            "a policy needs at least one metric (e.g. metric: concurrency, target: 10)".into(),
        );
    }
    let mut metrics = Vec::new();
    for (i, m) in pc.metrics.iter().enumerate() {
        let k = |f: &str| format!("metrics[{i}].{f}");
        if !(m.target.is_finite() && m.target > 0.0) {
            err(
                &k("target"),
                format!("the target must be more than 0 (got {})", m.target),
            );
        }
        let series = match (m.metric, &m.series) {
            (MetricKind::Series, Some(s)) => {
                if !KNOWN_SERIES.contains(&s.as_str()) {
                    err(
                        &k("series"),
                        format!(
                            "unknown metric {s:?}: the metrics store has {}",
                            KNOWN_SERIES.join(", ")
                        ),
                    );
                }
                s.clone()
            }
            (MetricKind::Series, None) => {
                err(
                    &k("series"),
                    "metric: series needs series: NAME (a metrics-store series)".into(),
                );
                String::new()
            }
            (kind, Some(_)) => {
                err(
                    &k("series"),
                    format!(
                        "series: is only for metric: series ({} reads its own series)",
                        kind.as_str()
                    ),
                );
                String::new()
            }
            (kind, None) => series_of(kind).to_string(),
        };
        if matches!(m.metric, MetricKind::CpuPct | MetricKind::RssPct) && m.target > 100.0 {
            err(
                &k("target"),
                format!(
                    "{} is a percentage of the limit: the target must be at most 100",
                    m.metric.as_str()
                ),
            );
        }
        metrics.push(MetricSpec {
            kind: m.metric,
            series,
            target: m.target,
        });
    }
    let instances = pc.instances.unwrap_or(BoundsConfig { min: 1, max: 10 });
    if instances.min > instances.max {
        err(
            "instances.min",
            format!(
                "min ({}) is more than max ({})",
                instances.min, instances.max
            ),
        );
    }
    if instances.max == 0 {
        err("instances.max", "max must be at least 1".into());
    }
    let groups = match (&target, pc.groups) {
        (Target::App(_), Some(_)) => {
            err(
                "groups",
                "groups are for a service (service: /x); an app is one group".into(),
            );
            BoundsConfig { min: 1, max: 1 }
        }
        (Target::App(_), None) => BoundsConfig { min: 1, max: 1 },
        (Target::Service(_), g) => g.unwrap_or(BoundsConfig { min: 1, max: 4 }),
    };
    if groups.min > groups.max {
        err(
            "groups.min",
            format!("min ({}) is more than max ({})", groups.min, groups.max),
        );
    }
    if groups.min == 0 {
        err(
            "groups.min",
            "a service keeps at least 1 group (min: 1)".into(),
        );
    }
    let fill = pc.fill_threshold.unwrap_or(0.7);
    if !(fill > 0.0 && fill <= 1.0) {
        err(
            "fill_threshold",
            format!("a share of the groups' maximum: more than 0, at most 1 (got {fill})"),
        );
    }
    let tolerance = pc.tolerance.unwrap_or(0.1);
    if !(0.0..1.0).contains(&tolerance) {
        err(
            "tolerance",
            format!("a share of the target: at least 0, less than 1 (got {tolerance})"),
        );
    }
    let tick = pc.tick.map(|d| d.0).unwrap_or(Duration::from_secs(2));
    if tick.is_zero() {
        err("tick", "the tick must be more than 0s".into());
    }
    let mut window_check = |k: &str, d: Duration, zero_ok: bool| {
        if (d.is_zero() && !zero_ok) || (!d.is_zero() && d < tick) {
            err(
                k,
                format!(
                    "{} is shorter than the tick ({}): make it at least the tick{}",
                    fmt_dur(d),
                    fmt_dur(tick),
                    if zero_ok { " (or 0s: none)" } else { "" }
                ),
            );
        }
    };
    let window = pc.window.map(|d| d.0).unwrap_or(Duration::from_secs(60));
    window_check("window", window, false);
    let stab = pc.stabilization.unwrap_or_default();
    let stabilize_up = stab.up.map(|d| d.0).unwrap_or_default();
    let stabilize_down = stab.down.map(|d| d.0).unwrap_or(Duration::from_secs(300));
    window_check("stabilization.up", stabilize_up, true);
    window_check("stabilization.down", stabilize_down, true);
    let cool = pc.cooldown.unwrap_or_default();
    let cooldown_up = cool.up.map(|d| d.0).unwrap_or_default();
    let cooldown_down = cool.down.map(|d| d.0).unwrap_or_default();
    window_check("cooldown.up", cooldown_up, true);
    window_check("cooldown.down", cooldown_down, true);
    let settle = pc.settle.map(|d| d.0).unwrap_or(Duration::from_secs(10));
    window_check("settle", settle, true);
    let pconf = pc.panic.unwrap_or_default();
    let panic = Panic {
        enabled: pconf.enabled.unwrap_or(true),
        window: pconf.window.map(|d| d.0).unwrap_or(Duration::from_secs(6)),
        threshold: pconf.threshold.unwrap_or(2.0),
    };
    if panic.enabled {
        window_check("panic.window", panic.window, false);
        if panic.window > window {
            err(
                "panic.window",
                format!(
                    "the panic window ({}) must be shorter than the window ({})",
                    fmt_dur(panic.window),
                    fmt_dur(window)
                ),
            );
        }
        if !(panic.threshold.is_finite() && panic.threshold > 1.0) {
            err(
                "panic.threshold",
                format!(
                    "times the ready instances: more than 1 (got {})",
                    panic.threshold
                ),
            );
        }
    }
    let behavior = pc.behavior.clone().unwrap_or_default();
    let mut rules = |dir: &str, rc: Option<RulesConfig>, default: Rules| -> Rules {
        let Some(rc) = rc else { return default };
        if rc.policies.is_empty() && rc.select != Select::Disabled {
            err(
                &format!("behavior.{dir}.policies"),
                "give at least one rate policy, or select: disabled".into(),
            );
        }
        let mut policies = Vec::new();
        for (i, r) in rc.policies.iter().enumerate() {
            if !(r.value.is_finite() && r.value > 0.0) {
                err(
                    &format!("behavior.{dir}.policies[{i}].value"),
                    format!("the value must be more than 0 (got {})", r.value),
                );
            }
            if r.period.0 < tick {
                err(
                    &format!("behavior.{dir}.policies[{i}].period"),
                    format!(
                        "{} is shorter than the tick ({}): make it at least the tick",
                        fmt_dur(r.period.0),
                        fmt_dur(tick)
                    ),
                );
            }
            policies.push(RateRule {
                kind: r.kind,
                value: r.value,
                period: r.period.0,
            });
        }
        Rules {
            policies,
            select: rc.select,
        }
    };
    let up = rules("up", behavior.up, Rules::hpa_up());
    let down = rules("down", behavior.down, Rules::hpa_down());
    let target_field = join(target_key);
    let origin = Origin {
        file: file.to_path_buf(),
        target_line: line_of(text, &target_field).map(|(l, _)| l),
        target_field,
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Policy {
        name: pc.name.clone(),
        target,
        template: pc.template.clone(),
        metrics,
        instances: Bounds {
            min: instances.min,
            max: instances.max,
        },
        groups: Bounds {
            min: groups.min,
            max: groups.max,
        },
        fill_threshold: fill,
        tolerance,
        window,
        stabilize_up,
        stabilize_down,
        up,
        down,
        panic,
        cooldown_up,
        cooldown_down,
        tick,
        confirm_up: pc.confirm_up.unwrap_or(true),
        settle,
        dry_run: pc.dry_run,
        origin,
        config: pc,
    })
}

/// The metrics-store series a metric kind reads.
pub fn series_of(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Concurrency => "concurrency_mean",
        MetricKind::RequestRate => "request_rate",
        MetricKind::LatencyP95 => "latency_p95_ms",
        MetricKind::LatencyP99 => "latency_p99_ms",
        MetricKind::CpuPct => "cpu_pct",
        MetricKind::RssPct => "rss_pct",
        MetricKind::Series => "",
    }
}

/// The error for a policy whose app or service the scheduler does not know (checked when
/// the autoscaler starts and on `PUT`, where the scheduler is at hand).
pub fn unknown_target(p: &Policy) -> PolicyError {
    let what = match &p.target {
        Target::App(_) => "app",
        Target::Service(_) => "service (a group with apps)",
    };
    PolicyError {
        file: p.origin.file.clone(),
        line: p.origin.target_line,
        field: p.origin.target_field.clone(),
        message: format!(
            "unknown {what} {}: deploy it first, or fix the ID",
            p.target.id()
        ),
    }
}

// === locating a field path in the text ===

enum Seg {
    Key(String),
    Index(usize),
}

fn segments(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(Seg::Key(rest[..i].to_string()));
            }
            rest = &rest[i..];
            while let Some(r) = rest.strip_prefix('[') {
                let Some(end) = r.find(']') else { break };
                if let Ok(n) = r[..end].parse() {
                    out.push(Seg::Index(n));
                }
                rest = &r[end + 1..];
            }
        } else {
            out.push(Seg::Key(rest.to_string()));
        }
    }
    out
}

fn indent(l: &str) -> usize {
    l.len() - l.trim_start().len()
}

fn content(l: &str) -> bool {
    let t = l.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// The column where a line's key starts (after any `- `), and the key.
fn key_at(l: &str) -> Option<(usize, &str)> {
    let mut col = indent(l);
    let mut t = l.trim_start();
    while let Some(r) = t.strip_prefix("- ") {
        let r2 = r.trim_start();
        col += 2 + (r.len() - r2.len());
        t = r2;
    }
    let end = t.find(':')?;
    let key = t[..end].trim().trim_matches(|c| c == '"' || c == '\'');
    if key.is_empty() || key.contains(' ') || key.starts_with('{') {
        return None;
    }
    Some((col, key))
}

/// The 1-based line of a field path (`policies[1].metrics[0].target`) in block-style YAML,
/// and whether the whole path was found (else: the line of its deepest part found).
pub fn line_of(text: &str, path: &str) -> Option<(usize, bool)> {
    let lines: Vec<&str> = text.lines().collect();
    let (mut lo, mut hi) = (0usize, lines.len());
    let mut best: Option<usize> = None;
    for seg in segments(path) {
        match seg {
            Seg::Key(k) => {
                let col = (lo..hi)
                    .filter(|&i| content(lines[i]))
                    .filter_map(|i| key_at(lines[i]).map(|(c, _)| c))
                    .min();
                let found = col.and_then(|col| {
                    (lo..hi).find(|&i| content(lines[i]) && key_at(lines[i]) == Some((col, &k)))
                });
                let Some(i) = found else {
                    return best.map(|b| (b + 1, false));
                };
                let col = col.unwrap_or(0);
                best = Some(i);
                let end = (i + 1..hi)
                    .find(|&j| {
                        content(lines[j]) && indent(lines[j]) <= col && {
                            // a list item of this key may sit at the key's own column
                            !(indent(lines[j]) == col && lines[j].trim_start().starts_with('-'))
                        }
                    })
                    .unwrap_or(hi);
                // the value's block: the lines under the key
                lo = i + 1;
                hi = end;
            }
            Seg::Index(n) => {
                let dash = |l: &str| content(l) && l.trim_start().starts_with('-');
                let col = (lo..hi)
                    .filter(|&i| dash(lines[i]))
                    .map(|i| indent(lines[i]))
                    .min();
                let Some(col) = col else {
                    return best.map(|b| (b + 1, false));
                };
                let items: Vec<usize> = (lo..hi)
                    .filter(|&i| dash(lines[i]) && indent(lines[i]) == col)
                    .collect();
                let Some(&i) = items.get(n) else {
                    return best.map(|b| (b + 1, false));
                };
                best = Some(i);
                let end = (i + 1..hi)
                    .find(|&j| content(lines[j]) && indent(lines[j]) <= col)
                    .unwrap_or(hi);
                lo = i;
                hi = end;
            }
        }
    }
    best.map(|b| (b + 1, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
version: 1
policies:
  - name: shop-api
    service: /shop/api
    metrics:
      - metric: concurrency
        target: 8
      - metric: latency_p95
        target: 250
    instances: { min: 2, max: 6 }
    groups:
      min: 1
      max: 3
    behavior:
      up:
        policies:
          - type: instances
            value: 4
            period: 15s
  - name: web
    app: /shop/web
    metrics:
      - metric: series
        series: in_flight
        target: 5
    dry_run: true
";

    fn load_text(text: &str) -> Result<Vec<Policy>, LoadError> {
        load_sources(&[(PathBuf::from("p.yaml"), text.to_string())])
    }

    fn errors(text: &str) -> Vec<String> {
        match load_text(text) {
            Ok(_) => vec![],
            Err(e) => e.errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn one_policy(body: &str) -> String {
        format!("version: 1\npolicies:\n  - name: p\n    app: /a\n{body}")
    }

    #[test]
    fn a_good_file_loads_with_defaults() {
        let ps = load_text(GOOD).expect("loads");
        assert_eq!(ps.len(), 2);
        let p = &ps[0];
        assert_eq!(p.target, Target::Service("/shop/api".into()));
        assert_eq!(p.instances, Bounds { min: 2, max: 6 });
        assert_eq!(p.groups, Bounds { min: 1, max: 3 });
        assert_eq!(p.metrics[0].series, "concurrency_mean");
        assert_eq!(p.metrics[1].series, "latency_p95_ms");
        assert_eq!(p.tolerance, 0.1);
        assert_eq!(p.stabilize_up, Duration::ZERO);
        assert_eq!(p.stabilize_down, Duration::from_secs(300));
        assert_eq!(p.tick, Duration::from_secs(2));
        assert_eq!(p.panic.window, Duration::from_secs(6));
        assert_eq!(p.panic.threshold, 2.0);
        assert_eq!(p.up.policies.len(), 1);
        assert_eq!(p.down, Rules::hpa_down());
        assert_eq!(p.origin.target_line, Some(4));
        assert_eq!(p.total_bounds(), Bounds { min: 2, max: 18 });
        let w = &ps[1];
        assert_eq!(w.target, Target::App("/shop/web".into()));
        assert_eq!(w.groups, Bounds { min: 1, max: 1 });
        assert_eq!(w.metrics[0].series, "in_flight");
        assert!(w.dry_run);
        assert_eq!(w.origin.target_line, Some(21));
    }

    #[test]
    fn line_of_walks_nested_paths() {
        assert_eq!(line_of(GOOD, "version"), Some((1, true)));
        assert_eq!(
            line_of(GOOD, "policies[0].metrics[1].target"),
            Some((9, true))
        );
        assert_eq!(line_of(GOOD, "policies[0].groups.max"), Some((13, true)));
        assert_eq!(
            line_of(GOOD, "policies[0].behavior.up.policies[0].period"),
            Some((19, true))
        );
        assert_eq!(
            line_of(GOOD, "policies[1].metrics[0].series"),
            Some((24, true))
        );
        // flow style: the line of the mapping, not found exactly
        assert_eq!(
            line_of(GOOD, "policies[0].instances.min"),
            Some((10, false))
        );
    }

    #[test]
    fn every_bad_input_names_file_line_and_field() {
        let cases: &[(&str, &str)] = &[
            // min > max
            (
                "    metrics: [{metric: concurrency, target: 5}]\n    instances:\n      min: 5\n      max: 2\n",
                "p.yaml:7: policies[0].instances.min: min (5) is more than max (2)",
            ),
            // target <= 0
            (
                "    metrics:\n      - metric: concurrency\n        target: 0\n",
                "p.yaml:7: policies[0].metrics[0].target: the target must be more than 0 (got 0)",
            ),
            // a window shorter than the tick
            (
                "    metrics: [{metric: concurrency, target: 5}]\n    tick: 5s\n    stabilization:\n      down: 2s\n",
                "p.yaml:8: policies[0].stabilization.down: 2s is shorter than the tick (5s)",
            ),
            // an unknown series
            (
                "    metrics:\n      - metric: series\n        series: queue_depth\n        target: 3\n",
                "p.yaml:7: policies[0].metrics[0].series: unknown metric \"queue_depth\"",
            ),
            // an unknown metric kind
            (
                "    metrics:\n      - metric: qps\n        target: 3\n",
                "p.yaml:6: policies[0].metrics[0].metric: unknown variant `qps`",
            ),
            // an unknown key
            (
                "    metrics: [{metric: concurrency, target: 5}]\n    tolerence: 0.2\n",
                "p.yaml:6: policies[0].tolerence: unknown field `tolerence`, expected one of",
            ),
            // a bad duration
            (
                "    metrics: [{metric: concurrency, target: 5}]\n    tick: soon\n",
                "p.yaml:6: policies[0].tick: cannot read the duration \"soon\"",
            ),
            // groups on an app
            (
                "    metrics: [{metric: concurrency, target: 5}]\n    groups: {min: 1, max: 2}\n",
                "p.yaml:6: policies[0].groups: groups are for a service",
            ),
            // a rate period shorter than the tick
            (
                "    metrics: [{metric: concurrency, target: 5}]\n    behavior:\n      down:\n        policies:\n          - type: percent\n            value: 50\n            period: 1s\n",
                "p.yaml:11: policies[0].behavior.down.policies[0].period: 1s is shorter than the tick",
            ),
            // panic threshold
            (
                "    metrics: [{metric: concurrency, target: 5}]\n    panic:\n      threshold: 0.5\n",
                "p.yaml:7: policies[0].panic.threshold: times the ready instances: more than 1",
            ),
            // no metrics
            ("    dry_run: true\n", "p.yaml:3: policies[0].metrics: a policy needs at least one metric"),
        ];
        for (body, want) in cases {
            let text = one_policy(body);
            let errs = errors(&text);
            assert!(
                errs.iter().any(|e| e.starts_with(want)),
                "for\n{text}\nwant {want:?}\ngot {errs:#?}"
            );
        }
    }

    #[test]
    fn version_and_targets_are_checked() {
        let e = errors("version: 2\npolicies: []\n");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("p.yaml:1: version: version 2 is not known"),
            "{e:?}"
        );
        let e = errors(
            "version: 1\npolicies:\n  - name: p\n    metrics: [{metric: cpu_pct, target: 120}]\n",
        );
        assert!(
            e.iter()
                .any(|e| e.contains("policies[0].app: say what to scale")),
            "{e:?}"
        );
        assert!(e.iter().any(|e| e.contains("at most 100")), "{e:?}");
        let e = errors(
            "version: 1\npolicies:\n  - name: p\n    app: /a\n    service: /s\n    metrics: [{metric: cpu_pct, target: 70}]\n",
        );
        assert!(
            e.iter()
                .any(|e| e.starts_with("p.yaml:5: policies[0].service: give either")),
            "{e:?}"
        );
    }

    #[test]
    fn several_files_merge_and_duplicates_are_refused() {
        let a = "version: 1\npolicies:\n  - name: a\n    app: /x\n    metrics: [{metric: concurrency, target: 5}]\n";
        let b = "version: 1\npolicies:\n  - name: a\n    app: /y\n    metrics: [{metric: concurrency, target: 5}]\n  - name: b\n    app: /x\n    metrics: [{metric: concurrency, target: 5}]\n";
        let e = load_sources(&[
            (PathBuf::from("a.yaml"), a.into()),
            (PathBuf::from("b.yaml"), b.into()),
        ])
        .expect_err("duplicates");
        let msgs: Vec<String> = e.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(
            msgs[0].starts_with("b.yaml:3: policies[0].name: the policy \"a\" is defined twice")
        );
        assert!(msgs[1].starts_with("b.yaml:7: policies[1].app: /x is already scaled"));
        let c = "version: 1\npolicies:\n  - name: c\n    app: /z\n    metrics: [{metric: rss_pct, target: 80}]\n";
        let ok = load_sources(&[
            (PathBuf::from("a.yaml"), a.into()),
            (PathBuf::from("c.yaml"), c.into()),
        ])
        .expect("loads");
        assert_eq!(ok.len(), 2);
    }

    #[test]
    fn a_directory_is_read_in_name_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |n: &str, app: &str| {
            format!("version: 1\npolicies:\n  - name: {n}\n    app: {app}\n    metrics: [{{metric: concurrency, target: 5}}]\n")
        };
        std::fs::write(dir.path().join("b.yaml"), p("b", "/b")).expect("write");
        std::fs::write(dir.path().join("a.yml"), p("a", "/a")).expect("write");
        std::fs::write(dir.path().join("notes.txt"), "not a policy").expect("write");
        let ps = load(&[dir.path().to_path_buf()]).expect("loads");
        let names: Vec<&str> = ps.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn one_policy_through_the_api() {
        let p = load_one(
            "api-1",
            "{\"app\": \"/x\", \"metrics\": [{\"metric\": \"request_rate\", \"target\": 50}]}",
        )
        .expect("loads");
        assert_eq!(p.name, "api-1");
        assert_eq!(p.origin.file, PathBuf::from("api"));
        let e = load_one(
            "x",
            "app: /x\nmetrics:\n  - metric: concurrency\n    target: -1\n",
        )
        .expect_err("refused");
        assert_eq!(
            e.errors[0].to_string(),
            "api:4: metrics[0].target: the target must be more than 0 (got -1)"
        );
        let e = load_one(
            "x",
            "name: y\napp: /x\nmetrics: [{metric: concurrency, target: 1}]\n",
        )
        .expect_err("refused");
        assert_eq!(e.errors[0].field, "name");
    }
}
