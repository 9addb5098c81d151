//! Rule files: YAML, `version: 1`, unknown keys refused. One file or a directory of
//! `*.yaml`/`*.yml` files, merged: rules, receivers, the route (grouping and timings) and
//! inhibition rules. Everything is checked at load — an unknown metric, a broken log query, a
//! bad template, an unknown receiver — and every error names the file, the line and the field.
//!
//! ```yaml
//! version: 1
//! receivers:
//!   - name: ops
//!     type: slack
//!     url_env: SLACK_WEBHOOK_URL
//! route:
//!   group_by: [alertname, app]
//! rules:
//!   - name: HighCpu
//!     kind: metric
//!     metric: cpu_pct
//!     agg: mean
//!     by: [app, instance]
//!     op: ">"
//!     threshold: 90
//!     for: 2m
//!     severity: critical
//!     annotations:
//!       summary: "CPU {{ value | round(1) }}% on {{ labels.instance }}"
//!     receivers: [ops]
//! ```
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use drover_metrics::{Agg, Dim, Filter, Metric, WindowQuery};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{
    alert::{LabelSet, ALERTNAME},
    matcher::{self, Matcher},
    template,
};

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

/// One value or a list of them (label filters).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// `app: /shop`
    One(String),
    /// `app: [/shop, /cart]`
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A rule file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// The format version: 1.
    pub version: u32,
    /// Where notifications go.
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
    /// Grouping and timings (at most one file may set it).
    #[serde(default)]
    pub route: Option<RouteConfig>,
    /// Alerts that mute others while they fire.
    #[serde(default)]
    pub inhibit_rules: Vec<InhibitConfig>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// The kinds of rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KindName {
    /// A metrics-store series aggregated over a window, compared with a threshold.
    Metric,
    /// Log lines matching a search query counted over a window (or their ratio to all lines).
    Log,
    /// No data for a series (or per group) for the window.
    Absence,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Greater than.
    #[serde(rename = ">")]
    Gt,
    /// Greater than or equal.
    #[serde(rename = ">=")]
    Ge,
    /// Less than.
    #[serde(rename = "<")]
    Lt,
    /// Less than or equal.
    #[serde(rename = "<=")]
    Le,
    /// Equal.
    #[serde(rename = "==")]
    Eq,
    /// Not equal.
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    /// Whether `value op threshold` holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
            Op::Eq => value == threshold,
            Op::Ne => value != threshold,
        }
    }

    /// Its symbol.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// How much attention an alert deserves (the `severity` label).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For the record.
    Info,
    /// Look at it soon.
    #[default]
    Warning,
    /// Look at it now.
    Critical,
}

impl Severity {
    /// Its label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// A rule as written. Which fields apply depends on `kind`; the others are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique name; the alerts' `alertname`.
    pub name: String,
    /// `metric`, `log` or `absence`.
    pub kind: KindName,
    /// metric/absence: the metrics-store series (`cpu_pct`, `rss_pct`, `request_rate`,
    /// `error_rate`, `latency_p95_ms`, `in_flight`, …).
    pub metric: Option<String>,
    /// metric/absence: label filters (`app`, `instance`, `node`, `group`, `host`): a value or a
    /// list of accepted values.
    #[serde(default)]
    pub filter: BTreeMap<String, OneOrMany>,
    /// metric: `mean` (default), `max`, `min`, `p50`, `p95`, `p99`, `sum`, `rate`, `count`,
    /// `last`.
    pub agg: Option<String>,
    /// log/absence: a log search query (the search syntax, e.g. `level:error`).
    pub query: Option<String>,
    /// log: compare matching lines as a share (0–1) of all lines of the group.
    #[serde(default)]
    pub ratio: bool,
    /// The window evaluated (default 5m); absence: how long without data.
    pub window: Option<Dur>,
    /// absence with `by`: how far back a group must have had data to be missed (default 1h).
    pub lookback: Option<Dur>,
    /// Group by these labels; one alert per group (metric: app, instance, node, group, host;
    /// log: app, instance (the container), host, node, group).
    #[serde(default)]
    pub by: Vec<String>,
    /// metric/log: the comparison (default `>`).
    pub op: Option<Op>,
    /// metric/log: the threshold.
    pub threshold: Option<f64>,
    /// How long the condition must hold before the alert fires (default 0: at once).
    #[serde(rename = "for")]
    pub for_: Option<Dur>,
    /// How long a firing alert keeps firing after the condition stops holding (default 0).
    pub keep_firing_for: Option<Dur>,
    /// `info`, `warning` (default) or `critical`: the `severity` label.
    #[serde(default)]
    pub severity: Severity,
    /// Labels added to every alert of the rule.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations (templates: `{{ value }}`, `{{ labels.app }}`, `{{ links.logs }}`, …).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Receivers its notifications go to (default: the route's `receivers`).
    #[serde(default)]
    pub receivers: Vec<String>,
    /// What to do about a firing alert.
    pub action: Option<ActionConfig>,
}

/// An action on a firing alert.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    /// `remove_instance` (kill the task; the scheduler replaces it) or `remove_node`
    /// (cordon and drain the node: its tasks move to other nodes).
    #[serde(rename = "type")]
    pub kind: ActionKind,
    /// Only say what would be done.
    #[serde(default)]
    pub dry_run: bool,
}

/// The actions.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Kill the alert's task (label `instance`).
    RemoveInstance,
    /// Cordon and drain the alert's node (label `node`).
    RemoveNode,
}

impl ActionKind {
    /// Its name in rule files.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::RemoveInstance => "remove_instance",
            ActionKind::RemoveNode => "remove_node",
        }
    }
}

/// Grouping and timings, as Alertmanager's route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Alerts with the same values of these labels are notified together (default
    /// `[alertname]`; `[...]`: every label, one group per alert).
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    /// Wait this long after a group's first alert before its first notification (30s).
    pub group_wait: Option<Dur>,
    /// Wait this long before notifying a group again about changes (5m).
    pub group_interval: Option<Dur>,
    /// Notify an unchanged firing group again after this long (4h).
    pub repeat_interval: Option<Dur>,
    /// Notify resolved alerts (default true).
    pub send_resolved: Option<bool>,
    /// Receivers of rules that name none, and of alerts posted through the API.
    #[serde(default)]
    pub receivers: Vec<String>,
}

/// An inhibition rule: while an alert matching `source_matchers` fires, alerts matching
/// `target_matchers` with the same `equal` labels are not notified.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitConfig {
    /// Matchers (`severity="critical"`) of the muting alert.
    pub source_matchers: Vec<String>,
    /// Matchers of the muted alerts.
    pub target_matchers: Vec<String>,
    /// Labels both must share.
    #[serde(default)]
    pub equal: Vec<String>,
}

/// A receiver as written. Secrets come from `*_env` (an environment variable) or `*_file`
/// (a file's first line); a plain `url` is accepted for webhooks that carry no secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Unique name that rules use.
    pub name: String,
    /// `webhook`, `slack` or `email`.
    #[serde(rename = "type")]
    pub kind: ReceiverKind,
    /// webhook/slack: the URL.
    pub url: Option<String>,
    /// webhook/slack: the environment variable holding the URL.
    pub url_env: Option<String>,
    /// webhook/slack: the file holding the URL.
    pub url_file: Option<PathBuf>,
    /// email: the SMTP server, `host:port`.
    pub smtp: Option<String>,
    /// email: `none`, `starttls` (default) or `tls`.
    pub tls: Option<Tls>,
    /// email: the sender.
    pub from: Option<String>,
    /// email: the recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// email: the SMTP user (with a password).
    pub username: Option<String>,
    /// email: the environment variable holding the password.
    pub password_env: Option<String>,
    /// email: the file holding the password.
    pub password_file: Option<PathBuf>,
    /// Notify resolved alerts (default: the route's `send_resolved`).
    pub send_resolved: Option<bool>,
    /// How many times a failed delivery is tried (default 4).
    pub max_attempts: Option<u32>,
}

/// The receiver types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiverKind {
    /// POST Alertmanager's webhook JSON.
    Webhook,
    /// A Slack incoming webhook with a Block Kit message.
    Slack,
    /// Email over SMTP.
    Email,
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tls {
    /// Plain SMTP (a local relay).
    None,
    /// Upgrade with STARTTLS (port 587).
    #[default]
    Starttls,
    /// TLS from the start (port 465).
    Tls,
}

// === the loaded configuration ===

/// A secret: shown as `***` in Debug and never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret text (to use it, never to print it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A receiver, with its secrets read.
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    /// Its name.
    pub name: String,
    /// What it is.
    pub kind: ReceiverTarget,
    /// Notify resolved alerts.
    pub send_resolved: bool,
    /// Tries per notification.
    pub max_attempts: u32,
}

/// Where a receiver delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverTarget {
    /// Alertmanager's webhook JSON to this URL.
    Webhook {
        /// The URL.
        url: Secret,
    },
    /// Slack incoming webhook.
    Slack {
        /// The URL.
        url: Secret,
    },
    /// Email.
    Email(EmailTarget),
}

/// An email receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailTarget {
    /// SMTP host.
    pub host: String,
    /// SMTP port.
    pub port: u16,
    /// Transport security.
    pub tls: Tls,
    /// Sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// User and password.
    pub auth: Option<(String, Secret)>,
}

/// The route, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Grouping labels; `None`: every label (`[...]`).
    pub group_by: Option<Vec<String>>,
    /// First notification of a group after this.
    pub group_wait: Duration,
    /// Changes of a group notified at most this often.
    pub group_interval: Duration,
    /// An unchanged firing group notified again after this.
    pub repeat_interval: Duration,
    /// Resolved alerts are notified.
    pub send_resolved: bool,
    /// Default receivers.
    pub receivers: Vec<String>,
}

impl Default for Route {
    /// Alertmanager's defaults: by alertname, 30s, 5m, 4h, resolved notified.
    fn default() -> Self {
        Self {
            group_by: Some(vec![ALERTNAME.to_string()]),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
            send_resolved: true,
            receivers: Vec::new(),
        }
    }
}

/// An inhibition rule, compiled.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    /// Muting alerts match these.
    pub source: Vec<matcher::CompiledMatcher>,
    /// Muted alerts match these.
    pub target: Vec<matcher::CompiledMatcher>,
    /// Labels both share.
    pub equal: Vec<String>,
}

/// A log rule's grouping label and the index field it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogDim {
    /// App ID (`app`).
    App,
    /// The container (`container`), shown as `instance`.
    Instance,
    /// Host.
    Host,
    /// Node.
    Node,
    /// Scaling group.
    Group,
}

impl LogDim {
    /// The alert label.
    pub fn label(self) -> &'static str {
        match self {
            LogDim::App => "app",
            LogDim::Instance => "instance",
            LogDim::Host => "host",
            LogDim::Node => "node",
            LogDim::Group => "group",
        }
    }

    /// The index field counted.
    pub fn field(self) -> &'static str {
        match self {
            LogDim::Instance => "container",
            other => other.label(),
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            LogDim::App,
            LogDim::Instance,
            LogDim::Host,
            LogDim::Node,
            LogDim::Group,
        ]
        .into_iter()
        .find(|d| d.label() == s)
    }
}

/// What an absence rule watches.
#[derive(Debug, Clone, PartialEq)]
pub enum AbsenceOf {
    /// Samples of a metric.
    Metric {
        /// The metric.
        metric: Metric,
        /// Which series.
        filter: Filter,
        /// Groups.
        by: Vec<Dim>,
    },
    /// Log lines matching a query.
    Log {
        /// The query.
        query: String,
        /// Groups.
        by: Vec<LogDim>,
    },
}

/// What a rule evaluates.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    /// A window aggregation compared with a threshold.
    Metric {
        /// The window query.
        query: WindowQuery,
        /// Comparison.
        op: Op,
        /// Threshold.
        threshold: f64,
    },
    /// Log lines counted over the window.
    Log {
        /// The search query.
        query: String,
        /// Groups.
        by: Vec<LogDim>,
        /// The window.
        window: Duration,
        /// Compare the share of all lines.
        ratio: bool,
        /// Comparison.
        op: Op,
        /// Threshold.
        threshold: f64,
    },
    /// No data for `window`.
    Absence {
        /// What.
        of: AbsenceOf,
        /// How long without data.
        window: Duration,
        /// How far back a group counts as known.
        lookback: Duration,
    },
}

/// A loaded rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Its name (`alertname`).
    pub name: String,
    /// What it evaluates.
    pub kind: RuleKind,
    /// Pending this long before firing.
    pub for_: Duration,
    /// Firing this long after the condition stops.
    pub keep_firing_for: Duration,
    /// Severity.
    pub severity: Severity,
    /// Static labels (with `alertname` and `severity`).
    pub labels: LabelSet,
    /// Annotation templates.
    pub annotations: BTreeMap<String, String>,
    /// Receivers.
    pub receivers: Vec<String>,
    /// Action.
    pub action: Option<ActionConfig>,
    /// Where it was written.
    pub file: PathBuf,
    /// The line of its `name:`.
    pub line: usize,
}

impl Rule {
    /// The threshold, if the rule has one.
    pub fn threshold(&self) -> Option<f64> {
        match &self.kind {
            RuleKind::Metric { threshold, .. } | RuleKind::Log { threshold, .. } => {
                Some(*threshold)
            }
            RuleKind::Absence { .. } => None,
        }
    }

    /// The log query, for log and log-absence rules.
    pub fn log_query(&self) -> Option<&str> {
        match &self.kind {
            RuleKind::Log { query, .. }
            | RuleKind::Absence {
                of: AbsenceOf::Log { query, .. },
                ..
            } => Some(query),
            _ => None,
        }
    }

    /// A one-line description (`mean(cpu_pct[5m]) by (app) > 90`).
    pub fn expr(&self) -> String {
        match &self.kind {
            RuleKind::Metric {
                query,
                op,
                threshold,
            } => format!(
                "{}({}{}[{}]){} {} {}",
                query.agg.as_str(),
                query.metric,
                filter_text(&query.filter),
                humantime::format_duration(query.range),
                by_text(query.by.iter().map(|d| d.as_str())),
                op.as_str(),
                threshold
            ),
            RuleKind::Log {
                query,
                by,
                window,
                ratio,
                op,
                threshold,
            } => format!(
                "{}({query:?}[{}]){} {} {}",
                if *ratio { "ratio" } else { "count" },
                humantime::format_duration(*window),
                by_text(by.iter().map(|d| d.label())),
                op.as_str(),
                threshold
            ),
            RuleKind::Absence { of, window, .. } => match of {
                AbsenceOf::Metric { metric, filter, by } => format!(
                    "absent({metric}{}[{}]){}",
                    filter_text(filter),
                    humantime::format_duration(*window),
                    by_text(by.iter().map(|d| d.as_str()))
                ),
                AbsenceOf::Log { query, by } => format!(
                    "absent({query:?}[{}]){}",
                    humantime::format_duration(*window),
                    by_text(by.iter().map(|d| d.label()))
                ),
            },
        }
    }
}

fn by_text<'a>(by: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = by.collect();
    if v.is_empty() {
        String::new()
    } else {
        format!(" by ({})", v.join(", "))
    }
}

fn filter_text(f: &Filter) -> String {
    let parts: Vec<String> = Dim::ALL
        .iter()
        .filter(|d| !f.values(**d).is_empty())
        .map(|d| format!("{}=~\"{}\"", d.as_str(), f.values(*d).join("|")))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// Everything the rule files say, merged and checked.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The rules, in file order.
    pub rules: Vec<Rule>,
    /// Receivers by name.
    pub receivers: BTreeMap<String, Receiver>,
    /// Grouping and timings.
    pub route: Route,
    /// Inhibition rules.
    pub inhibit: Vec<InhibitRule>,
    /// The files read.
    pub files: Vec<PathBuf>,
}

// === errors ===

/// One problem in a rule file: the file, the line (when known), the field and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}{}: {field}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct RuleError {
    /// The file.
    pub file: PathBuf,
    /// The line, 1-based.
    pub line: Option<usize>,
    /// The field (`rules[2].threshold`).
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// Rule files that did not load: every problem found.
#[derive(Debug, Clone, thiserror::Error)]
pub struct LoadError {
    /// The problems.
    pub errors: Vec<RuleError>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "{n} problem{} in the rule files",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

// === loading ===

/// The rule files of `paths`: each a file, or a directory whose `*.yaml`/`*.yml` files are
/// read in name order.
pub fn files_of(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p)
                .map_err(|e| one(p, None, "", format!("cannot read the directory: {e}")))?;
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

fn one(file: &Path, line: Option<usize>, field: &str, message: impl Into<String>) -> LoadError {
    LoadError {
        errors: vec![RuleError {
            file: file.to_path_buf(),
            line,
            field: field.into(),
            message: message.into(),
        }],
    }
}

/// Loads and checks the rule files at `paths` (files or directories), reading secrets from
/// the process environment.
pub fn load(paths: &[PathBuf]) -> Result<Config, LoadError> {
    let files = files_of(paths)?;
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for f in &files {
        match std::fs::read_to_string(f) {
            Ok(s) => sources.push((f.clone(), s)),
            Err(e) => errors.push(RuleError {
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
    load_sources(&sources, &|k| std::env::var(k).ok())
}

/// Loads and checks rule files given as (path, text); `env` reads environment variables.
pub fn load_sources(
    sources: &[(PathBuf, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, LoadError> {
    let mut errors = Vec::new();
    let mut parsed = Vec::new();
    for (path, text) in sources {
        match parse_file(path, text) {
            Ok(f) => parsed.push((path.clone(), text.as_str(), f)),
            Err(e) => errors.push(e),
        }
    }
    let mut cfg = Config {
        files: sources.iter().map(|(p, _)| p.clone()).collect(),
        ..Config::default()
    };
    // Receivers first: rules refer to them.
    let mut route_from: Option<PathBuf> = None;
    for (path, text, f) in &parsed {
        let mut err = |field: String, key: &str, item: Option<&str>, message: String| {
            errors.push(RuleError {
                file: path.clone(),
                line: locate(text, item, key),
                field,
                message,
            })
        };
        for (i, r) in f.receivers.iter().enumerate() {
            let field = |k: &str| format!("receivers[{i}].{k}");
            if cfg.receivers.contains_key(&r.name) {
                err(
                    field("name"),
                    "name",
                    Some(&r.name),
                    format!(
                        "the receiver {:?} is defined twice: give each a unique name",
                        r.name
                    ),
                );
                continue;
            }
            match receiver(r, env) {
                Ok(rc) => {
                    cfg.receivers.insert(r.name.clone(), rc);
                }
                Err((k, m)) => err(field(k), k, Some(&r.name), m),
            }
        }
        if let Some(route) = &f.route {
            if let Some(first) = &route_from {
                err(
                    "route".into(),
                    "route",
                    None,
                    format!(
                        "the route is already set in {}: set it in one file only",
                        first.display()
                    ),
                );
            } else {
                route_from = Some(path.clone());
                cfg.route = Route {
                    group_by: match &route.group_by {
                        Some(v) if v.iter().any(|l| l == "...") => None,
                        Some(v) => Some(v.clone()),
                        None => Some(vec![ALERTNAME.to_string()]),
                    },
                    group_wait: route
                        .group_wait
                        .map_or(Route::default().group_wait, |d| d.0),
                    group_interval: route
                        .group_interval
                        .map_or(Route::default().group_interval, |d| d.0),
                    repeat_interval: route
                        .repeat_interval
                        .map_or(Route::default().repeat_interval, |d| d.0),
                    send_resolved: route.send_resolved.unwrap_or(true),
                    receivers: route.receivers.clone(),
                };
                if cfg.route.group_interval.is_zero() {
                    err(
                        "route.group_interval".into(),
                        "group_interval",
                        None,
                        "must be more than 0s".into(),
                    );
                }
                if cfg.route.repeat_interval.is_zero() {
                    err(
                        "route.repeat_interval".into(),
                        "repeat_interval",
                        None,
                        "must be more than 0s".into(),
                    );
                }
            }
        }
        for (i, ih) in f.inhibit_rules.iter().enumerate() {
            let compile = |list: &[String]| -> Result<Vec<matcher::CompiledMatcher>, String> {
                matcher::parse_list(list)?
                    .iter()
                    .map(Matcher::compile)
                    .collect()
            };
            match (compile(&ih.source_matchers), compile(&ih.target_matchers)) {
                (Ok(source), Ok(target)) => cfg.inhibit.push(InhibitRule {
                    source,
                    target,
                    equal: ih.equal.clone(),
                }),
                (Err(e), _) => err(
                    format!("inhibit_rules[{i}].source_matchers"),
                    "source_matchers",
                    None,
                    e,
                ),
                (_, Err(e)) => err(
                    format!("inhibit_rules[{i}].target_matchers"),
                    "target_matchers",
                    None,
                    e,
                ),
            }
        }
    }
    for r in &cfg.route.receivers {
        if !cfg.receivers.contains_key(r) {
            let (path, text) = route_from
                .as_ref()
                .and_then(|p| {
                    parsed
                        .iter()
                        .find(|x| &x.0 == p)
                        .map(|x| (x.0.clone(), x.1))
                })
                .unwrap_or_default();
            errors.push(RuleError {
                file: path,
                line: locate(text, None, "receivers"),
                field: "route.receivers".into(),
                message: unknown_receiver(r, &cfg.receivers),
            });
        }
    }
    let mut names = BTreeMap::<String, PathBuf>::new();
    for (path, text, f) in &parsed {
        for (i, rc) in f.rules.iter().enumerate() {
            if let Some(first) = names.get(&rc.name) {
                errors.push(RuleError {
                    file: path.clone(),
                    line: locate(text, Some(&rc.name), "name"),
                    field: format!("rules[{i}].name"),
                    message: format!(
                        "the rule {:?} is already defined in {}: give each rule a unique name",
                        rc.name,
                        first.display()
                    ),
                });
                continue;
            }
            names.insert(rc.name.clone(), path.clone());
            match rule(rc, &cfg) {
                Ok(mut r) => {
                    r.file = path.clone();
                    r.line = locate(text, Some(&rc.name), "name").unwrap_or(0);
                    cfg.rules.push(r);
                }
                Err(list) => {
                    for (key, message) in list {
                        errors.push(RuleError {
                            file: path.clone(),
                            line: locate(
                                text,
                                Some(&rc.name),
                                key.rsplit('.').next().unwrap_or(&key),
                            ),
                            field: format!("rules[{i}] ({}).{key}", rc.name),
                            message,
                        });
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(cfg)
    } else {
        Err(LoadError { errors })
    }
}

fn parse_file(path: &Path, text: &str) -> Result<RuleFile, RuleError> {
    let de = serde_norway::Deserializer::from_str(text);
    let f: RuleFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.inner();
        let line = inner.location().map(|l| l.line());
        let mut message = inner.to_string();
        // serde_norway appends " at line L column C" and prefixes the path: both are
        // already in front.
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        if let Some((p, rest)) = message.split_once(": ") {
            if !p.contains(' ') {
                message = rest.to_string();
            }
        }
        // A value refused by its own parser (a duration) is located at its mapping: point at
        // the field's own line instead.
        let key = field
            .rsplit('.')
            .next()
            .filter(|k| !k.contains('[') && *k != field)
            .map(str::to_string);
        let line = match (line, key) {
            (Some(l), Some(k)) => Some(refine(text, l, &k)),
            (l, _) => l,
        };
        RuleError {
            file: path.to_path_buf(),
            line,
            field: if field == "." { String::new() } else { field },
            message,
        }
    })?;
    if f.version != 1 {
        return Err(RuleError {
            file: path.to_path_buf(),
            line: locate(text, None, "version"),
            field: "version".into(),
            message: format!(
                "version {} is not known: this Drover reads version: 1",
                f.version
            ),
        });
    }
    Ok(f)
}

/// From the 1-based `line` (inside a mapping), the line of `key:` in that mapping's block,
/// else `line`.
fn refine(text: &str, line: usize, key: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let Some(first) = lines.get(line.saturating_sub(1)) else {
        return line;
    };
    let indent = |l: &str| l.len() - l.trim_start().len();
    let strip = |l: &str| {
        let t = l.trim_start();
        t.strip_prefix("- ").unwrap_or(t).trim_start().to_string()
    };
    if strip(first).starts_with(&format!("{key}:")) {
        return line;
    }
    let base = indent(first);
    for (i, l) in lines.iter().enumerate().skip(line) {
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        if indent(l) < base || (indent(l) == base && l.trim_start().starts_with("- ")) {
            break;
        }
        if strip(l).starts_with(&format!("{key}:")) {
            return i + 1;
        }
    }
    line
}

/// The 1-based line of `key:` — at the top level (`item` None), or inside the list item whose
/// `name:` is `item`.
fn locate(text: &str, item: Option<&str>, key: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let strip = |l: &str| -> (usize, String) {
        let indent = l.len() - l.trim_start().len();
        let t = l.trim_start();
        let t = t.strip_prefix("- ").unwrap_or(t).trim_start();
        (indent, t.to_string())
    };
    let value_of = |t: &str, k: &str| -> Option<String> {
        let rest = t.strip_prefix(k)?.strip_prefix(':')?;
        Some(
            rest.trim()
                .trim_matches(|c| c == '"' || c == '\'')
                .to_string(),
        )
    };
    let Some(item) = item else {
        return lines
            .iter()
            .position(|l| {
                value_of(&strip(l).1, key).is_some()
                    || l.trim_start().starts_with(&format!("{key}:"))
            })
            .map(|i| i + 1);
    };
    // The item: the line `- name: item` (or `name: item` inside a `- ` block).
    let start = lines
        .iter()
        .position(|l| value_of(&strip(l).1, "name").as_deref() == Some(item))?;
    if key == "name" {
        return Some(start + 1);
    }
    // Its block: from the dash above (or at) `name:` to the next line at that dash's indent.
    let mut dash = start;
    while dash > 0 && !lines[dash].trim_start().starts_with("- ") {
        dash -= 1;
    }
    let dash_indent = lines[dash].len() - lines[dash].trim_start().len();
    let mut i = dash;
    while i < lines.len() {
        let l = lines[i];
        let indent = l.len() - l.trim_start().len();
        if i > dash
            && !l.trim().is_empty()
            && indent <= dash_indent
            && !l.trim_start().starts_with('#')
        {
            break;
        }
        let (_, t) = strip(l);
        if t.starts_with(&format!("{key}:")) {
            return Some(i + 1);
        }
        i += 1;
    }
    Some(start + 1)
}

fn unknown_receiver(name: &str, known: &BTreeMap<String, Receiver>) -> String {
    let list: Vec<&str> = known.keys().map(String::as_str).collect();
    format!(
        "unknown receiver {name:?} (defined: {}): define it under receivers: or fix the name",
        if list.is_empty() {
            "none".to_string()
        } else {
            list.join(", ")
        }
    )
}

fn secret(
    plain: &Option<String>,
    from_env: &Option<String>,
    from_file: &Option<PathBuf>,
    what: &'static str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, (&'static str, String)> {
    let given = [plain.is_some(), from_env.is_some(), from_file.is_some()]
        .iter()
        .filter(|x| **x)
        .count();
    if given > 1 {
        return Err((what, format!("give one of {what}, {what}_env, {what}_file")));
    }
    if let Some(v) = plain {
        return Ok(Some(Secret::new(v.clone())));
    }
    if let Some(var) = from_env {
        return match env(var) {
            Some(v) if !v.trim().is_empty() => Ok(Some(Secret::new(v.trim().to_string()))),
            _ => Err((
                if what == "url" { "url_env" } else { "password_env" },
                format!("the environment variable {var} is not set: export it before starting drover, or use {what}_file"),
            )),
        };
    }
    if let Some(p) = from_file {
        return match std::fs::read_to_string(p) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(Secret::new(
                v.lines().next().unwrap_or("").trim().to_string(),
            ))),
            Ok(_) => Err((
                if what == "url" {
                    "url_file"
                } else {
                    "password_file"
                },
                format!(
                    "{} is empty: write the {what} on its first line",
                    p.display()
                ),
            )),
            Err(e) => Err((
                if what == "url" {
                    "url_file"
                } else {
                    "password_file"
                },
                format!("cannot read {}: {e}", p.display()),
            )),
        };
    }
    Ok(None)
}

fn receiver(
    r: &ReceiverConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Receiver, (&'static str, String)> {
    let not_for = |field: &'static str, set: bool| -> Result<(), (&'static str, String)> {
        if set {
            Err((
                field,
                format!("{field} is not a setting of {:?} receivers", r.kind),
            ))
        } else {
            Ok(())
        }
    };
    let url_check = |url: &Secret| -> Result<(), (&'static str, String)> {
        let u = url.expose();
        if u.starts_with("http://") || u.starts_with("https://") {
            Ok(())
        } else {
            // Never echo the URL: it may be a secret.
            Err(("url", "the URL must start with http:// or https://".into()))
        }
    };
    let kind = match r.kind {
        ReceiverKind::Webhook | ReceiverKind::Slack => {
            for (f, set) in [
                ("smtp", r.smtp.is_some()),
                ("tls", r.tls.is_some()),
                ("from", r.from.is_some()),
                ("to", !r.to.is_empty()),
                ("username", r.username.is_some()),
                ("password_env", r.password_env.is_some()),
                ("password_file", r.password_file.is_some()),
            ] {
                not_for(f, set)?;
            }
            let url = secret(&r.url, &r.url_env, &r.url_file, "url", env)?
                .ok_or(("url", "required: give url, url_env or url_file".to_string()))?;
            url_check(&url)?;
            if r.kind == ReceiverKind::Slack {
                ReceiverTarget::Slack { url }
            } else {
                ReceiverTarget::Webhook { url }
            }
        }
        ReceiverKind::Email => {
            for (f, set) in [
                ("url", r.url.is_some()),
                ("url_env", r.url_env.is_some()),
                ("url_file", r.url_file.is_some()),
            ] {
                not_for(f, set)?;
            }
            let smtp = r
                .smtp
                .as_deref()
                .ok_or(("smtp", "required: the SMTP server as host:port".to_string()))?;
            let (host, port) = smtp
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .filter(|(h, _)| !h.is_empty())
                .ok_or((
                    "smtp",
                    format!("{smtp:?} is not host:port (e.g. smtp.example.com:587)"),
                ))?;
            let from = r
                .from
                .clone()
                .ok_or(("from", "required: the sender address".to_string()))?;
            check_address(&from).map_err(|m| ("from", m))?;
            if r.to.is_empty() {
                return Err(("to", "required: at least one recipient".into()));
            }
            for t in &r.to {
                check_address(t).map_err(|m| ("to", m))?;
            }
            let password = secret(&None, &r.password_env, &r.password_file, "password", env)?;
            let auth = match (&r.username, password) {
                (Some(u), Some(p)) => Some((u.clone(), p)),
                (None, None) => None,
                (Some(_), None) => {
                    return Err((
                        "username",
                        "a username needs password_env or password_file".into(),
                    ))
                }
                (None, Some(_)) => return Err(("username", "a password needs a username".into())),
            };
            ReceiverTarget::Email(EmailTarget {
                host,
                port,
                tls: r.tls.unwrap_or_default(),
                from,
                to: r.to.clone(),
                auth,
            })
        }
    };
    let max_attempts = r.max_attempts.unwrap_or(4);
    if !(1..=20).contains(&max_attempts) {
        return Err(("max_attempts", "must be 1 to 20".into()));
    }
    Ok(Receiver {
        name: r.name.clone(),
        kind,
        send_resolved: r.send_resolved.unwrap_or(true),
        max_attempts,
    })
}

fn check_address(a: &str) -> Result<(), String> {
    a.parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| format!("{a:?} is not an email address ({e})"))
}

type Problems = Vec<(String, String)>;

fn rule(rc: &RuleConfig, cfg: &Config) -> Result<Rule, Problems> {
    let mut p: Problems = Vec::new();
    let mut bad = |k: &str, m: String| p.push((k.to_string(), m));
    if rc.name.trim().is_empty() {
        bad("name", "must not be empty".into());
    }
    let forbidden: &[(&str, bool)] = match rc.kind {
        KindName::Metric => &[
            ("query", rc.query.is_some()),
            ("ratio", rc.ratio),
            ("lookback", rc.lookback.is_some()),
        ],
        KindName::Log => &[
            ("metric", rc.metric.is_some()),
            ("filter", !rc.filter.is_empty()),
            ("agg", rc.agg.is_some()),
            ("lookback", rc.lookback.is_some()),
        ],
        KindName::Absence => &[
            ("agg", rc.agg.is_some()),
            ("ratio", rc.ratio),
            ("op", rc.op.is_some()),
            ("threshold", rc.threshold.is_some()),
        ],
    };
    for (f, set) in forbidden {
        if *set {
            bad(
                f,
                format!("{f} does not apply to {:?} rules: remove it", rc.kind).to_lowercase(),
            );
        }
    }
    let window = rc.window.map_or(Duration::from_secs(300), |d| d.0);
    if window.is_zero() || window > Duration::from_secs(3600) {
        bad(
            "window",
            "must be more than 0s and at most 1h (the metrics store's in-memory window)".into(),
        );
    }
    let metric = |bad: &mut dyn FnMut(&str, String)| -> Option<Metric> {
        match &rc.metric {
            None => {
                bad("metric", format!("required (one of {})", Metric::names()));
                None
            }
            Some(m) => match m.parse::<Metric>() {
                Ok(m) => Some(m),
                Err(e) => {
                    bad("metric", e);
                    None
                }
            },
        }
    };
    let filter = |bad: &mut dyn FnMut(&str, String)| -> Filter {
        let mut f = Filter::default();
        for (k, v) in &rc.filter {
            let vals = v.clone().into_vec();
            match k.parse::<Dim>() {
                Ok(Dim::App) => f.app = vals,
                Ok(Dim::Instance) => f.instance = vals,
                Ok(Dim::Node) => f.node = vals,
                Ok(Dim::Group) => f.group = vals,
                Ok(Dim::Host) => f.host = vals,
                Err(e) => bad("filter", e),
            }
        }
        f
    };
    let metric_by = |bad: &mut dyn FnMut(&str, String)| -> Vec<Dim> {
        let mut out = Vec::new();
        for b in &rc.by {
            match b.parse::<Dim>() {
                Ok(d) if !out.contains(&d) => out.push(d),
                Ok(_) => {}
                Err(e) => bad("by", e),
            }
        }
        out
    };
    let log_by = |bad: &mut dyn FnMut(&str, String)| -> Vec<LogDim> {
        let mut out = Vec::new();
        for b in &rc.by {
            match LogDim::parse(b) {
                Some(d) if !out.contains(&d) => out.push(d),
                Some(_) => {}
                None => bad(
                    "by",
                    format!("unknown label {b:?} for log rules (known: app, instance, host, node, group)"),
                ),
            }
        }
        if out.len() > 1 {
            bad(
                "by",
                "log rules group by one label at most (app, instance, host, node or group)".into(),
            );
        }
        out
    };
    let log_query = |bad: &mut dyn FnMut(&str, String)| -> String {
        let q = rc.query.clone().unwrap_or_default();
        if let Err(e) = drover_search::query::check_query(&q) {
            bad("query", e.to_string());
        }
        q
    };
    let threshold = |bad: &mut dyn FnMut(&str, String)| -> f64 {
        match rc.threshold {
            Some(t) if t.is_finite() => t,
            Some(_) => {
                bad("threshold", "must be a finite number".into());
                0.0
            }
            None => {
                bad(
                    "threshold",
                    "required: the value the aggregate is compared with".into(),
                );
                0.0
            }
        }
    };
    let op = rc.op.unwrap_or(Op::Gt);
    let mut label_names: Vec<String> = Vec::new();
    let kind = match rc.kind {
        KindName::Metric => {
            let m = metric(&mut bad);
            let f = filter(&mut bad);
            let by = metric_by(&mut bad);
            let agg = match rc.agg.as_deref() {
                None => Agg::Mean,
                Some(a) => a.parse::<Agg>().unwrap_or_else(|e| {
                    bad("agg", e);
                    Agg::Mean
                }),
            };
            if let Some(m) = m {
                if let Err(e) = agg.check(m) {
                    bad("agg", e.to_string());
                }
            }
            let t = threshold(&mut bad);
            label_names.extend(by.iter().map(|d| d.as_str().to_string()));
            RuleKind::Metric {
                query: WindowQuery {
                    metric: m.unwrap_or(Metric::CpuPct),
                    range: window,
                    by,
                    agg,
                    filter: f,
                },
                op,
                threshold: t,
            }
        }
        KindName::Log => {
            if rc.query.is_none() {
                bad(
                    "query",
                    "required: a log search query, e.g. level:error".into(),
                );
            }
            let query = log_query(&mut bad);
            let by = log_by(&mut bad);
            let t = threshold(&mut bad);
            if rc.ratio && !(0.0..=1.0).contains(&t) {
                bad("threshold", "a ratio is between 0 and 1".into());
            }
            label_names.extend(by.iter().map(|d| d.label().to_string()));
            RuleKind::Log {
                query,
                by,
                window,
                ratio: rc.ratio,
                op,
                threshold: t,
            }
        }
        KindName::Absence => {
            let lookback = rc.lookback.map_or(Duration::from_secs(3600), |d| d.0);
            if lookback < window || lookback > Duration::from_secs(3600) {
                bad(
                    "lookback",
                    "must be at least the window and at most 1h".into(),
                );
            }
            let of = match (&rc.metric, &rc.query) {
                (Some(_), Some(_)) => {
                    bad(
                        "query",
                        "an absence rule watches a metric or a log query, not both".into(),
                    );
                    None
                }
                (None, None) => {
                    bad(
                        "metric",
                        "required: the metric (or a log query) whose absence to watch".into(),
                    );
                    None
                }
                (Some(_), None) => {
                    let m = metric(&mut bad);
                    let f = filter(&mut bad);
                    let by = metric_by(&mut bad);
                    label_names.extend(by.iter().map(|d| d.as_str().to_string()));
                    m.map(|metric| AbsenceOf::Metric {
                        metric,
                        filter: f,
                        by,
                    })
                }
                (None, Some(_)) => {
                    if !rc.filter.is_empty() {
                        bad(
                            "filter",
                            "filter applies to metrics: put log filters in the query (app:/shop)"
                                .into(),
                        );
                    }
                    let query = log_query(&mut bad);
                    let by = log_by(&mut bad);
                    label_names.extend(by.iter().map(|d| d.label().to_string()));
                    Some(AbsenceOf::Log { query, by })
                }
            };
            RuleKind::Absence {
                of: of.unwrap_or(AbsenceOf::Metric {
                    metric: Metric::CpuPct,
                    filter: Filter::default(),
                    by: Vec::new(),
                }),
                window,
                lookback,
            }
        }
    };
    let mut labels: LabelSet = rc.labels.clone().into_iter().collect();
    for k in labels.keys() {
        if k == ALERTNAME || k == "severity" {
            bad(
                "labels",
                format!("{k} is set by Alertman (the rule's name and severity)"),
            );
        }
        if label_names.contains(k) {
            bad(
                "labels",
                format!("{k} is a grouping label of the rule (by): remove it from labels"),
            );
        }
    }
    labels.insert(ALERTNAME.into(), rc.name.clone());
    labels.insert("severity".into(), rc.severity.as_str().into());
    label_names.extend(labels.keys().cloned());
    let has_value = !matches!(rc.kind, KindName::Absence);
    for (k, src) in &rc.annotations {
        if let Err(e) = template::check(src, &rc.name, &label_names, has_value) {
            bad(&format!("annotations.{k}"), e);
        }
    }
    let receivers = if rc.receivers.is_empty() {
        cfg.route.receivers.clone()
    } else {
        rc.receivers.clone()
    };
    for r in &rc.receivers {
        if !cfg.receivers.contains_key(r) {
            bad("receivers", unknown_receiver(r, &cfg.receivers));
        }
    }
    if let Some(a) = &rc.action {
        let need = match a.kind {
            ActionKind::RemoveInstance => "instance",
            ActionKind::RemoveNode => "node",
        };
        if !label_names.iter().any(|l| l == need) {
            bad(
                "action",
                format!(
                    "{} needs alerts with the label {need}: add {need} to by",
                    a.kind.as_str()
                ),
            );
        }
    }
    if !p.is_empty() {
        return Err(p);
    }
    Ok(Rule {
        name: rc.name.clone(),
        kind,
        for_: rc.for_.map_or(Duration::ZERO, |d| d.0),
        keep_firing_for: rc.keep_firing_for.map_or(Duration::ZERO, |d| d.0),
        severity: rc.severity,
        labels,
        annotations: rc.annotations.clone(),
        receivers,
        action: rc.action.clone(),
        file: PathBuf::new(),
        line: 0,
    })
}

/// What `drover alerts rules check` prints with `--json`.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// Whether the files load.
    pub ok: bool,
    /// The files read.
    pub files: Vec<PathBuf>,
    /// Rules found.
    pub rules: Vec<String>,
    /// Receivers found.
    pub receivers: Vec<String>,
    /// Problems.
    pub errors: Vec<RuleError>,
}

/// Checks rule files without running them.
pub fn check(paths: &[PathBuf]) -> CheckReport {
    let files = files_of(paths).unwrap_or_default();
    match load(paths) {
        Ok(cfg) => CheckReport {
            ok: true,
            files: cfg.files,
            rules: cfg.rules.iter().map(|r| r.name.clone()).collect(),
            receivers: cfg.receivers.keys().cloned().collect(),
            errors: Vec::new(),
        },
        Err(e) => CheckReport {
            ok: false,
            files,
            rules: Vec::new(),
            receivers: Vec::new(),
            errors: e.errors,
        },
    }
}

/// Names every label key in use, for the API (kept sorted).
pub fn label_names(cfg: &Config) -> BTreeSet<String> {
    cfg.rules
        .iter()
        .flat_map(|r| r.labels.keys().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "SLACK_URL" => Some("https://hooks.slack.test/T/B/x".into()),
            "SMTP_PASS" => Some("hunter2".into()),
            _ => None,
        }
    }

    fn load_one(text: &str) -> Result<Config, LoadError> {
        load_sources(&[(PathBuf::from("rules/a.yaml"), text.to_string())], &env)
    }

    fn errors(text: &str) -> Vec<String> {
        load_one(text)
            .expect_err("should be refused")
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    const GOOD: &str = r#"version: 1
receivers:
  - name: ops-slack
    type: slack
    url_env: SLACK_URL
  - name: ops-mail
    type: email
    smtp: 127.0.0.1:2525
    tls: none
    from: alertman@example.com
    to: [ops@example.com]
    username: alertman
    password_env: SMTP_PASS
  - name: hook
    type: webhook
    url: http://127.0.0.1:9999/hook
route:
  group_by: [alertname, app]
  group_wait: 10s
  receivers: [hook]
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [app]
rules:
  - name: HighCpu
    kind: metric
    metric: cpu_pct
    filter: {app: /shop}
    agg: p95
    by: [app, instance]
    op: ">"
    threshold: 90
    for: 2m
    keep_firing_for: 1m
    severity: critical
    labels: {team: web}
    annotations:
      summary: "CPU {{ value | round(1) }}% on {{ labels.instance }} ({{ labels.team }})"
      logs: "{{ links.logs }}"
    receivers: [ops-slack, ops-mail]
    action: {type: remove_instance, dry_run: true}
  - name: ErrorBurst
    kind: log
    query: "level:error"
    by: [app]
    window: 1m
    threshold: 10
  - name: ErrorShare
    kind: log
    query: "level:error"
    ratio: true
    op: ">="
    threshold: 0.5
  - name: NoStats
    kind: absence
    metric: cpu_pct
    by: [app]
    window: 10m
    annotations:
      summary: "no CPU samples from {{ labels.app }}"
"#;

    #[test]
    fn a_good_file_loads_with_defaults_and_secrets() {
        let cfg = load_one(GOOD).unwrap();
        assert_eq!(cfg.rules.len(), 4);
        let r = &cfg.rules[0];
        assert_eq!(r.line, 26);
        assert_eq!(r.for_, Duration::from_secs(120));
        assert_eq!(r.labels["alertname"], "HighCpu");
        assert_eq!(r.labels["severity"], "critical");
        assert_eq!(
            r.expr(),
            "p95(cpu_pct{app=~\"/shop\"}[5m]) by (app, instance) > 90"
        );
        // No receivers: the route's.
        assert_eq!(cfg.rules[1].receivers, ["hook"]);
        assert_eq!(cfg.route.group_wait, Duration::from_secs(10));
        assert_eq!(cfg.route.group_interval, Duration::from_secs(300));
        assert_eq!(cfg.route.repeat_interval, Duration::from_secs(4 * 3600));
        assert!(cfg.route.send_resolved);
        assert_eq!(cfg.inhibit.len(), 1);
        let ReceiverTarget::Slack { url } = &cfg.receivers["ops-slack"].kind else {
            panic!()
        };
        assert_eq!(url.expose(), "https://hooks.slack.test/T/B/x");
        // Secrets never print.
        let dbg = format!("{:?}", cfg.receivers);
        assert!(
            !dbg.contains("hooks.slack.test") && !dbg.contains("hunter2"),
            "{dbg}"
        );
        assert_eq!(cfg.rules[3].expr(), "absent(cpu_pct[10m]) by (app)");
    }

    #[test]
    fn every_error_names_file_line_and_field() {
        for (bad, want) in [
            // unknown key
            (GOOD.replace("    for: 2m\n", "    for: 2m\n    fro: 1m\n"), "rules/a.yaml:35: rules[0].fro: unknown field `fro`"),
            // unknown metric
            (GOOD.replace("metric: cpu_pct\n    filter", "metric: cpu\n    filter"), "rules/a.yaml:28: rules[0] (HighCpu).metric: unknown metric \"cpu\""),
            // unknown receiver
            (GOOD.replace("[ops-slack, ops-mail]", "[ops-slak]"), "rules/a.yaml:41: rules[0] (HighCpu).receivers: unknown receiver \"ops-slak\""),
            // bad template
            (GOOD.replace("labels.team", "labels.teem"), "rules/a.yaml:39: rules[0] (HighCpu).annotations.summary: "),
            // broken query
            (GOOD.replace("query: \"level:error\"\n    by", "query: \"status:[500 TO\"\n    by"), "rules/a.yaml:45: rules[1] (ErrorBurst).query: invalid query"),
            // wrong type
            (GOOD.replace("threshold: 90", "threshold: lots"), "rules/a.yaml:33: rules[0].threshold: invalid type"),
            // bad duration
            (GOOD.replace("for: 2m", "for: soon"), "rules/a.yaml:34: rules[0].for: cannot read the duration"),
            // version
            (GOOD.replace("version: 1", "version: 2"), "rules/a.yaml:1: version: version 2 is not known"),
            // a field of another kind
            (GOOD.replace("    window: 1m\n", "    window: 1m\n    agg: max\n"), "rules[1] (ErrorBurst).agg: agg does not apply to log rules"),
            // secret missing
            (GOOD.replace("SLACK_URL", "NOPE_URL"), "rules/a.yaml:5: receivers[0].url_env: the environment variable NOPE_URL is not set"),
            // action without its label
            (GOOD.replace("by: [app, instance]", "by: [app]"), "rules[0] (HighCpu).action: remove_instance needs alerts with the label instance"),
            // rate of a gauge
            (GOOD.replace("agg: p95", "agg: rate"), "rules[0] (HighCpu).agg: agg: rate needs a counter metric"),
        ] {
            let errs = errors(&bad);
            assert!(errs.iter().any(|e| e.contains(want)), "want {want:?} in {errs:#?}");
        }
    }

    #[test]
    fn several_files_merge_and_duplicates_are_refused() {
        let a = (PathBuf::from("a.yaml"), GOOD.to_string());
        let b = (
            PathBuf::from("b.yaml"),
            "version: 1\nrules:\n  - name: Other\n    kind: metric\n    metric: rss_pct\n    threshold: 90\n    receivers: [ops-slack]\n".to_string(),
        );
        let cfg = load_sources(&[a.clone(), b], &env).unwrap();
        assert_eq!(cfg.rules.len(), 5);
        assert_eq!(cfg.rules[4].file, PathBuf::from("b.yaml"));
        let dup = (
            PathBuf::from("c.yaml"),
            "version: 1\nrules:\n  - name: HighCpu\n    kind: metric\n    metric: rss_pct\n    threshold: 90\n".to_string(),
        );
        let e = load_sources(&[a, dup], &env).unwrap_err();
        assert!(
            e.to_string().contains(
                "c.yaml:3: rules[0].name: the rule \"HighCpu\" is already defined in a.yaml"
            ),
            "{e}"
        );
    }

    #[test]
    fn files_of_a_directory_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yml"), "version: 1\n").unwrap();
        std::fs::write(dir.path().join("a.yaml"), "version: 1\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let files = files_of(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["a.yaml", "b.yml"]);
        let cfg = load(&[dir.path().to_path_buf()]).unwrap();
        assert!(cfg.rules.is_empty());
    }
}
