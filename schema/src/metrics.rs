use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{default_version, Source, Versioned};

/// One sample on the metrics topic (`drover.metrics.v1`, key = app ID).
/// The `kind` field says which of the two it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MetricRecord {
    /// Resource usage of one container, from the collector.
    Container(ContainerStats),
    /// Request counts and latency of one app instance, from the gateway.
    Request(RequestStats),
}

impl MetricRecord {
    /// The app the sample belongs to (the Kafka key).
    pub fn app(&self) -> &str {
        match self {
            MetricRecord::Container(s) => &s.source.app,
            MetricRecord::Request(s) => &s.app,
        }
    }

    /// When the sample was taken.
    pub fn ts(&self) -> DateTime<Utc> {
        match self {
            MetricRecord::Container(s) => s.ts,
            MetricRecord::Request(s) => s.ts,
        }
    }
}

impl Versioned for MetricRecord {
    fn version(&self) -> u32 {
        match self {
            MetricRecord::Container(s) => s.v,
            MetricRecord::Request(s) => s.v,
        }
    }
}

/// Resource usage of one container over the last stats interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerStats {
    /// Schema version.
    #[serde(default = "default_version")]
    pub v: u32,
    /// When Docker read the sample.
    pub ts: DateTime<Utc>,
    /// Which app, task, node and container.
    #[serde(flatten)]
    pub source: Source,
    /// CPU use in percent of one core, as `docker stats` computes it
    /// (Δcontainer / Δsystem × online CPUs × 100): 100 = one full core.
    pub cpu_pct: f64,
    /// CPU limit in cores (`NanoCpus` or quota/period), or the host's online CPUs when unlimited.
    pub cpu_limit: f64,
    /// Resident set size (anonymous memory), bytes: what the app itself holds.
    pub rss_bytes: u64,
    /// Working set: usage minus inactive page cache (`inactive_file`), bytes, as Kubernetes counts it.
    pub working_set_bytes: u64,
    /// Memory limit in bytes, or the host's memory when the container is unlimited.
    pub mem_limit_bytes: u64,
    /// `rss_bytes / mem_limit_bytes × 100` — Upyun's rssPercent, not usage (which counts page
    /// cache and raises false alarms).
    pub rss_pct: f64,
    /// Bytes read from block devices since the container started.
    pub blkio_read_bytes: u64,
    /// Bytes written to block devices since the container started.
    pub blkio_write_bytes: u64,
    /// Bytes received on all interfaces since the container started.
    pub net_rx_bytes: u64,
    /// Bytes sent on all interfaces since the container started.
    pub net_tx_bytes: u64,
}

/// Requests to one app instance over one reporting interval, from the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestStats {
    /// Schema version.
    #[serde(default = "default_version")]
    pub v: u32,
    /// End of the interval.
    pub ts: DateTime<Utc>,
    /// Length of the interval in milliseconds.
    pub interval_ms: u64,
    /// App ID.
    pub app: String,
    /// Scaling group, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Instance (task ID), or absent for the app-wide total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Node the instance runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Requests in flight at the end of the interval (concurrency).
    pub in_flight: u64,
    /// Requests completed during the interval.
    pub requests: u64,
    /// Completed requests by status class.
    pub status: StatusClasses,
    /// Latency of the completed requests.
    pub latency: LatencyHistogram,
    /// Time-weighted mean of the requests in flight over the interval (the concurrency the
    /// autoscaler scales on: 2 requests of 500 ms each in a 1 s interval give 1.0). 0 from
    /// producers older than this field.
    #[serde(default)]
    pub concurrency_mean: f64,
    /// Most requests in flight at once during the interval.
    #[serde(default)]
    pub concurrency_max: u64,
    /// Request body bytes received from clients during the interval.
    #[serde(default)]
    pub bytes_in: u64,
    /// Response body bytes sent to clients during the interval.
    #[serde(default)]
    pub bytes_out: u64,
    /// Responses the gateway made itself (502 bad or no answer, 503 no healthy backend, 504
    /// timeout), also counted in `status`; `status.s5xx - gateway_errors` came from the app.
    #[serde(default)]
    pub gateway_errors: u64,
}

impl RequestStats {
    /// Requests per second over the interval.
    pub fn rate(&self) -> f64 {
        if self.interval_ms == 0 {
            return 0.0;
        }
        self.requests as f64 * 1000.0 / self.interval_ms as f64
    }
}

/// Completed requests by HTTP status class; `failed` counts requests that got no response
/// from the backend (connect error, timeout), which the gateway answers 502/504.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusClasses {
    /// 1xx responses.
    #[serde(default)]
    pub s1xx: u64,
    /// 2xx responses.
    #[serde(default)]
    pub s2xx: u64,
    /// 3xx responses.
    #[serde(default)]
    pub s3xx: u64,
    /// 4xx responses.
    #[serde(default)]
    pub s4xx: u64,
    /// 5xx responses (including 502/504 the gateway generated).
    #[serde(default)]
    pub s5xx: u64,
    /// Of the 5xx, how many were 502 or 504.
    #[serde(default)]
    pub s502_504: u64,
}

impl StatusClasses {
    /// Count one response with this status code.
    pub fn record(&mut self, status: u16) {
        match status {
            100..=199 => self.s1xx += 1,
            200..=299 => self.s2xx += 1,
            300..=399 => self.s3xx += 1,
            400..=499 => self.s4xx += 1,
            _ => {
                self.s5xx += 1;
                if status == 502 || status == 504 {
                    self.s502_504 += 1;
                }
            }
        }
    }

    /// All responses counted.
    pub fn total(&self) -> u64 {
        self.s1xx + self.s2xx + self.s3xx + self.s4xx + self.s5xx
    }
}

/// A latency histogram with fixed upper bounds in milliseconds. `counts[i]` counts the
/// requests with latency ≤ `bounds_ms[i]` and > `bounds_ms[i-1]`; the last entry of
/// `counts` (one more than `bounds_ms`) counts those above the last bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    /// Upper bounds of the buckets, milliseconds, increasing.
    pub bounds_ms: Vec<f64>,
    /// Count per bucket, not cumulative; `bounds_ms.len() + 1` entries.
    pub counts: Vec<u64>,
    /// Sum of all latencies, milliseconds.
    pub sum_ms: f64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::with_bounds(Self::DEFAULT_BOUNDS_MS.to_vec())
    }
}

impl LatencyHistogram {
    /// The gateway's default buckets: 0.5 ms to 30 s, each bound 2^(1/8) (≈ 9 %) above the
    /// last, so a quantile interpolated inside a bucket is within about 9 % of the true one
    /// (the "p99 within 10 % of the client's").
    pub const DEFAULT_BOUNDS_MS: [f64; 127] = [
        0.5, 0.545, 0.595, 0.648, 0.707, 0.771, 0.841, 0.917, 1.0, 1.09, 1.19, 1.3, 1.41, 1.54,
        1.68, 1.83, 2.0, 2.18, 2.38, 2.59, 2.83, 3.08, 3.36, 3.67, 4.0, 4.36, 4.76, 5.19, 5.66,
        6.17, 6.73, 7.34, 8.0, 8.72, 9.51, 10.4, 11.3, 12.3, 13.5, 14.7, 16.0, 17.4, 19.0, 20.7,
        22.6, 24.7, 26.9, 29.3, 32.0, 34.9, 38.1, 41.5, 45.3, 49.4, 53.8, 58.7, 64.0, 69.8, 76.1,
        83.0, 90.5, 98.7, 108.0, 117.0, 128.0, 140.0, 152.0, 166.0, 181.0, 197.0, 215.0, 235.0,
        256.0, 279.0, 304.0, 332.0, 362.0, 395.0, 431.0, 470.0, 512.0, 558.0, 609.0, 664.0, 724.0,
        790.0, 861.0, 939.0, 1020.0, 1120.0, 1220.0, 1330.0, 1450.0, 1580.0, 1720.0, 1880.0,
        2050.0, 2230.0, 2440.0, 2660.0, 2900.0, 3160.0, 3440.0, 3760.0, 4100.0, 4470.0, 4870.0,
        5310.0, 5790.0, 6320.0, 6890.0, 7510.0, 8190.0, 8930.0, 9740.0, 10600.0, 11600.0, 12600.0,
        13800.0, 15000.0, 16400.0, 17900.0, 19500.0, 21200.0, 23200.0, 25300.0, 27600.0,
    ];

    /// An empty histogram with these bounds.
    pub fn with_bounds(bounds_ms: Vec<f64>) -> Self {
        let counts = vec![0; bounds_ms.len() + 1];
        Self {
            bounds_ms,
            counts,
            sum_ms: 0.0,
        }
    }

    /// Count one observation.
    pub fn observe(&mut self, ms: f64) {
        let i = self.bounds_ms.partition_point(|b| *b < ms);
        self.counts[i] += 1;
        self.sum_ms += ms;
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Mean latency, or `None` when empty.
    pub fn mean_ms(&self) -> Option<f64> {
        let n = self.count();
        (n > 0).then(|| self.sum_ms / n as f64)
    }

    /// Add another histogram with the same bounds. Returns false (and adds nothing) when
    /// the bounds differ.
    pub fn merge(&mut self, other: &LatencyHistogram) -> bool {
        if self.bounds_ms != other.bounds_ms || self.counts.len() != other.counts.len() {
            return false;
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_ms += other.sum_ms;
        true
    }

    /// Estimate the `q` quantile (0–1) by linear interpolation inside the bucket, as
    /// Prometheus' `histogram_quantile` does. Observations above the last bound are
    /// reported as the last bound. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 || self.bounds_ms.is_empty() {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            if (seen + c) as f64 >= rank {
                if i >= self.bounds_ms.len() {
                    return self.bounds_ms.last().copied();
                }
                let lower = if i == 0 { 0.0 } else { self.bounds_ms[i - 1] };
                let upper = self.bounds_ms[i];
                let within = (rank - seen as f64) / c as f64;
                return Some(lower + (upper - lower) * within.clamp(0.0, 1.0));
            }
            seen += c;
        }
        self.bounds_ms.last().copied()
    }
}
