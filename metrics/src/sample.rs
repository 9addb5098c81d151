//! From a record on the metrics topic to named series: a [`ContainerStats`] or [`RequestStats`]
//! becomes one value per [`Metric`] under one set of [`Labels`]; bad values are refused with a
//! reason (counted, dead-lettered, never stored).
use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use drover_schema::{ContainerStats, MetricRecord, RequestStats};
use serde::{Deserialize, Serialize};

/// The series the store keeps. Container metrics come from the collector, request metrics
/// from the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// CPU in percent of one core (100 = one core).
    CpuPct,
    /// Resident set size, bytes.
    RssBytes,
    /// RSS over the memory limit, percent.
    RssPct,
    /// Working set (usage minus inactive page cache), bytes.
    WorkingSetBytes,
    /// Bytes read from block devices (counter).
    BlkioReadBytes,
    /// Bytes written to block devices (counter).
    BlkioWriteBytes,
    /// Bytes received (counter).
    NetRxBytes,
    /// Bytes sent (counter).
    NetTxBytes,
    /// Requests completed in the reporting interval.
    Requests,
    /// Requests per second over the reporting interval.
    RequestRate,
    /// Requests in flight at the end of the interval (concurrency).
    InFlight,
    /// Share of completed requests answered 5xx, 0–1.
    ErrorRate,
    /// Median latency from the gateway's histogram, ms.
    LatencyP50Ms,
    /// 95th percentile latency, ms.
    LatencyP95Ms,
    /// 99th percentile latency, ms.
    LatencyP99Ms,
    /// Time-weighted mean of the requests in flight over the reporting interval (the
    /// concurrency to scale on).
    ConcurrencyMean,
    /// Most requests in flight at once during the reporting interval.
    ConcurrencyMax,
}

impl Metric {
    /// Every metric, in a stable order.
    pub const ALL: [Metric; 17] = [
        Metric::CpuPct,
        Metric::RssBytes,
        Metric::RssPct,
        Metric::WorkingSetBytes,
        Metric::BlkioReadBytes,
        Metric::BlkioWriteBytes,
        Metric::NetRxBytes,
        Metric::NetTxBytes,
        Metric::Requests,
        Metric::RequestRate,
        Metric::InFlight,
        Metric::ErrorRate,
        Metric::LatencyP50Ms,
        Metric::LatencyP95Ms,
        Metric::LatencyP99Ms,
        Metric::ConcurrencyMean,
        Metric::ConcurrencyMax,
    ];

    /// The name used in the API, the CLI and the Parquet files.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::CpuPct => "cpu_pct",
            Metric::RssBytes => "rss_bytes",
            Metric::RssPct => "rss_pct",
            Metric::WorkingSetBytes => "working_set_bytes",
            Metric::BlkioReadBytes => "blkio_read_bytes",
            Metric::BlkioWriteBytes => "blkio_write_bytes",
            Metric::NetRxBytes => "net_rx_bytes",
            Metric::NetTxBytes => "net_tx_bytes",
            Metric::Requests => "requests",
            Metric::RequestRate => "request_rate",
            Metric::InFlight => "in_flight",
            Metric::ErrorRate => "error_rate",
            Metric::LatencyP50Ms => "latency_p50_ms",
            Metric::LatencyP95Ms => "latency_p95_ms",
            Metric::LatencyP99Ms => "latency_p99_ms",
            Metric::ConcurrencyMean => "concurrency_mean",
            Metric::ConcurrencyMax => "concurrency_max",
        }
    }

    /// A monotonically increasing counter (since the container started): aggregate it with
    /// `rate`, which treats a decrease as a reset.
    pub fn is_counter(self) -> bool {
        matches!(
            self,
            Metric::BlkioReadBytes
                | Metric::BlkioWriteBytes
                | Metric::NetRxBytes
                | Metric::NetTxBytes
        )
    }

    /// The names of all metrics, comma-separated (for error messages).
    pub fn names() -> String {
        Metric::ALL
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown metric {s:?} (known: {})", Metric::names()))
    }
}

/// A label of a series: what `by=` groups on and filters select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    /// App ID.
    App,
    /// Instance: the Drover task ID, else the container name (container metrics); the
    /// gateway's instance (request metrics; empty for the app-wide total).
    Instance,
    /// Drover node ID (empty when Drover did not start the container).
    Node,
    /// Scaling group (may be empty).
    Group,
    /// The collector's hostname (empty for request metrics).
    Host,
}

impl Dim {
    /// Every label.
    pub const ALL: [Dim; 5] = [Dim::App, Dim::Instance, Dim::Node, Dim::Group, Dim::Host];

    /// Its name (also the Parquet column).
    pub fn as_str(self) -> &'static str {
        match self {
            Dim::App => "app",
            Dim::Instance => "instance",
            Dim::Node => "node",
            Dim::Group => "group",
            Dim::Host => "host",
        }
    }
}

impl FromStr for Dim {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dim::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| format!("unknown label {s:?} (known: app, instance, node, group, host)"))
    }
}

/// The labels of a series (empty string: absent). A series is a metric plus its labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Labels {
    /// App ID.
    pub app: String,
    /// Task ID or container name (container metrics), gateway instance (request metrics).
    pub instance: String,
    /// Drover node ID.
    pub node: String,
    /// Scaling group.
    pub group: String,
    /// Collector host.
    pub host: String,
}

impl Labels {
    /// The value of one label.
    pub fn get(&self, d: Dim) -> &str {
        match d {
            Dim::App => &self.app,
            Dim::Instance => &self.instance,
            Dim::Node => &self.node,
            Dim::Group => &self.group,
            Dim::Host => &self.host,
        }
    }

    /// A stable 64-bit ID of the series `metric` + these labels (FNV-1a; stored in the Parquet
    /// files as `sid`, so it must not change between releases).
    pub fn series_id(&self, metric: Metric) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for part in [
            metric.as_str(),
            &self.app,
            &self.instance,
            &self.node,
            &self.group,
            &self.host,
        ] {
            for b in part.as_bytes().iter().chain(std::iter::once(&0xffu8)) {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }
}

/// One record flattened: a value per metric, all at `ts` under `labels`.
#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    /// Whose.
    pub labels: Labels,
    /// When, milliseconds since the epoch.
    pub ts_ms: i64,
    /// The values.
    pub values: Vec<(Metric, f64)>,
}

/// Why a record was refused (a stable label for metrics and the dead-letter header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// A value is NaN or infinite.
    NotFinite(Metric),
    /// A value that cannot be negative is.
    Negative(Metric),
    /// The latency histogram's counts do not match its bounds.
    BadHistogram,
    /// No app ID.
    NoApp,
}

impl Invalid {
    /// Every reason label.
    pub const REASONS: [&'static str; 4] = ["nan", "negative_value", "bad_histogram", "no_app"];

    /// The reason label.
    pub fn reason(&self) -> &'static str {
        match self {
            Invalid::NotFinite(_) => "nan",
            Invalid::Negative(_) => "negative_value",
            Invalid::BadHistogram => "bad_histogram",
            Invalid::NoApp => "no_app",
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::NotFinite(m) => write!(f, "{m} is not a finite number"),
            Invalid::Negative(m) => write!(f, "{m} is negative"),
            Invalid::BadHistogram => {
                f.write_str("latency histogram: counts must have one entry more than bounds_ms")
            }
            Invalid::NoApp => f.write_str("the sample has no app"),
        }
    }
}

/// Validate and flatten one record.
pub fn flatten(rec: &MetricRecord) -> Result<Samples, Invalid> {
    let s = match rec {
        MetricRecord::Container(c) => container(c),
        MetricRecord::Request(r) => request(r)?,
    };
    if s.labels.app.is_empty() {
        return Err(Invalid::NoApp);
    }
    for (m, v) in &s.values {
        if !v.is_finite() {
            return Err(Invalid::NotFinite(*m));
        }
        if *v < 0.0 {
            return Err(Invalid::Negative(*m));
        }
    }
    Ok(s)
}

fn ms(ts: DateTime<Utc>) -> i64 {
    ts.timestamp_millis()
}

fn container(c: &ContainerStats) -> Samples {
    let src = &c.source;
    Samples {
        labels: Labels {
            app: src.app.clone(),
            instance: src
                .task
                .clone()
                .unwrap_or_else(|| src.container_name.clone()),
            node: src.node.clone().unwrap_or_default(),
            group: src.group.clone().unwrap_or_default(),
            host: src.host.clone(),
        },
        ts_ms: ms(c.ts),
        values: vec![
            (Metric::CpuPct, c.cpu_pct),
            (Metric::RssBytes, c.rss_bytes as f64),
            (Metric::RssPct, c.rss_pct),
            (Metric::WorkingSetBytes, c.working_set_bytes as f64),
            (Metric::BlkioReadBytes, c.blkio_read_bytes as f64),
            (Metric::BlkioWriteBytes, c.blkio_write_bytes as f64),
            (Metric::NetRxBytes, c.net_rx_bytes as f64),
            (Metric::NetTxBytes, c.net_tx_bytes as f64),
        ],
    }
}

fn request(r: &RequestStats) -> Result<Samples, Invalid> {
    let h = &r.latency;
    if h.counts.len() != h.bounds_ms.len() + 1 {
        return Err(Invalid::BadHistogram);
    }
    let mut values = vec![
        (Metric::Requests, r.requests as f64),
        (Metric::InFlight, r.in_flight as f64),
        (Metric::ConcurrencyMax, r.concurrency_max as f64),
    ];
    values.push((Metric::ConcurrencyMean, r.concurrency_mean));
    if r.interval_ms > 0 {
        values.push((Metric::RequestRate, r.rate()));
    }
    let total = r.status.total();
    if total > 0 {
        values.push((Metric::ErrorRate, r.status.s5xx as f64 / total as f64));
    }
    for (m, q) in [
        (Metric::LatencyP50Ms, 0.5),
        (Metric::LatencyP95Ms, 0.95),
        (Metric::LatencyP99Ms, 0.99),
    ] {
        if let Some(v) = h.quantile(q) {
            values.push((m, v));
        }
    }
    if !h.sum_ms.is_finite() {
        return Err(Invalid::NotFinite(Metric::LatencyP50Ms));
    }
    Ok(Samples {
        labels: Labels {
            app: r.app.clone(),
            instance: r.instance.clone().unwrap_or_default(),
            node: r.node.clone().unwrap_or_default(),
            group: r.group.clone().unwrap_or_default(),
            host: String::new(),
        },
        ts_ms: ms(r.ts),
        values,
    })
}

/// Fields of the metric records that are unsigned in the schema; a negative one fails
/// decoding as `invalid_json`, and [`classify_undecodable`] names it instead.
const COUNTER_FIELDS: [&str; 10] = [
    "rss_bytes",
    "working_set_bytes",
    "mem_limit_bytes",
    "blkio_read_bytes",
    "blkio_write_bytes",
    "net_rx_bytes",
    "net_tx_bytes",
    "requests",
    "in_flight",
    "interval_ms",
];

/// A more precise reason than `invalid_json` for two common kinds of bad samples: a
/// negative counter (`"net_rx_bytes": -5`) and a non-JSON number (`NaN`, `Infinity`, as
/// Python's `json.dumps` writes them). `None`: keep the schema's reason.
pub fn classify_undecodable(bytes: &[u8]) -> Option<&'static str> {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v) => COUNTER_FIELDS
            .iter()
            .any(|f| {
                v.get(f)
                    .and_then(serde_json::Value::as_f64)
                    .is_some_and(|n| n < 0.0)
            })
            .then_some("negative_counter"),
        Err(_) => {
            let text = String::from_utf8_lossy(bytes);
            ["NaN", "Infinity"]
                .iter()
                .any(|t| text.contains(t))
                .then_some("nan")
        }
    }
}

#[cfg(test)]
mod tests {
    use drover_schema::{LatencyHistogram, Source, StatusClasses};

    use super::*;

    pub(crate) fn stats(app: &str, task: &str, cpu: f64, rx: u64) -> ContainerStats {
        ContainerStats {
            v: 1,
            ts: DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
            source: Source {
                host: "h1".into(),
                node: Some("n1".into()),
                app: app.into(),
                task: Some(task.into()),
                group: None,
                container_id: "c".into(),
                container_name: "name".into(),
                image: "img".into(),
            },
            cpu_pct: cpu,
            cpu_limit: 2.0,
            rss_bytes: 100,
            working_set_bytes: 120,
            mem_limit_bytes: 1000,
            rss_pct: 10.0,
            blkio_read_bytes: 1,
            blkio_write_bytes: 2,
            net_rx_bytes: rx,
            net_tx_bytes: 4,
        }
    }

    #[test]
    fn container_stats_flatten_to_eight_series() {
        let s = flatten(&MetricRecord::Container(stats("/a", "t1", 50.0, 3))).unwrap();
        assert_eq!(s.values.len(), 8);
        assert_eq!(s.labels.instance, "t1");
        assert_eq!(s.labels.node, "n1");
        assert_eq!(s.ts_ms, 1_700_000_000_000);
        assert!(s.values.contains(&(Metric::NetRxBytes, 3.0)));
        assert!(s.values.contains(&(Metric::CpuPct, 50.0)));
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        let nan = flatten(&MetricRecord::Container(stats("/a", "t", f64::NAN, 1)));
        assert_eq!(nan.unwrap_err().reason(), "nan");
        let neg = flatten(&MetricRecord::Container(stats("/a", "t", -1.0, 1)));
        assert_eq!(neg.unwrap_err().reason(), "negative_value");
        let noapp = flatten(&MetricRecord::Container(stats("", "t", 1.0, 1)));
        assert_eq!(noapp.unwrap_err().reason(), "no_app");
    }

    #[test]
    fn request_stats_give_rates_errors_and_quantiles() {
        let mut latency = LatencyHistogram::default();
        for _ in 0..90 {
            latency.observe(8.0);
        }
        for _ in 0..10 {
            latency.observe(400.0);
        }
        let mut status = StatusClasses::default();
        for _ in 0..95 {
            status.record(200);
        }
        for _ in 0..5 {
            status.record(503);
        }
        let r = RequestStats {
            v: 1,
            ts: Utc::now(),
            interval_ms: 10_000,
            app: "/a".into(),
            group: None,
            instance: Some("i1".into()),
            node: None,
            in_flight: 3,
            requests: 100,
            status,
            latency,
            concurrency_mean: 2.5,
            concurrency_max: 6,
            bytes_in: 0,
            bytes_out: 300,
            gateway_errors: 5,
        };
        let s = flatten(&MetricRecord::Request(r.clone())).unwrap();
        let get = |m| s.values.iter().find(|(x, _)| *x == m).unwrap().1;
        assert_eq!(get(Metric::RequestRate), 10.0);
        assert_eq!(get(Metric::ErrorRate), 0.05);
        assert_eq!(get(Metric::InFlight), 3.0);
        assert_eq!(get(Metric::ConcurrencyMean), 2.5);
        assert_eq!(get(Metric::ConcurrencyMax), 6.0);
        assert!(get(Metric::LatencyP50Ms) <= 10.0);
        assert!(get(Metric::LatencyP99Ms) > 250.0);
        let mut bad = r;
        bad.latency.counts.pop();
        assert_eq!(
            flatten(&MetricRecord::Request(bad)).unwrap_err(),
            Invalid::BadHistogram
        );
    }

    #[test]
    fn undecodable_samples_get_precise_reasons() {
        assert_eq!(
            classify_undecodable(br#"{"v":1,"net_rx_bytes":-5}"#),
            Some("negative_counter")
        );
        assert_eq!(
            classify_undecodable(br#"{"v":1,"cpu_pct":NaN}"#),
            Some("nan")
        );
        assert_eq!(classify_undecodable(b"garbage"), None);
    }

    #[test]
    fn series_ids_are_stable_and_distinct() {
        let l = Labels {
            app: "a".into(),
            ..Labels::default()
        };
        assert_eq!(l.series_id(Metric::CpuPct), l.series_id(Metric::CpuPct));
        assert_ne!(l.series_id(Metric::CpuPct), l.series_id(Metric::RssPct));
        let l2 = Labels {
            instance: "a".into(),
            ..Labels::default()
        };
        assert_ne!(l.series_id(Metric::CpuPct), l2.series_id(Metric::CpuPct));
    }

    #[test]
    fn names_round_trip() {
        for m in Metric::ALL {
            assert_eq!(m.as_str().parse::<Metric>().unwrap(), m);
        }
        assert!("cpu".parse::<Metric>().unwrap_err().contains("cpu_pct"));
    }
}
