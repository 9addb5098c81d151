//! Recent samples in memory (the last hour at full resolution by default) and the reusable
//! window API: "the last 5 minutes of metric M for every (app, node), aggregated by mean / max /
//! min / p50 / p95 / p99 / sum / rate / count / last", computed with polars.
//!
//! Alerting and autoscaling call [`Window::aggregate`] on every evaluation tick; the clock is
//! injected ([`crate::Clock`]) so a 5-minute window is tested in milliseconds.
use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use polars::prelude::*;
use serde::Serialize;

use crate::{
    sample::{Dim, Labels, Metric},
    Clock, MetricsError,
};

/// How the samples of a group are reduced to one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Agg {
    /// Mean of every sample.
    Mean,
    /// Largest sample.
    Max,
    /// Smallest sample.
    Min,
    /// Median (linear interpolation).
    P50,
    /// 95th percentile (linear interpolation).
    P95,
    /// 99th percentile (linear interpolation).
    P99,
    /// Sum of every sample.
    Sum,
    /// Counters only: per-second increase of each series (a decrease is a counter reset: the
    /// new value counts as the increase since the reset), summed over the group's series.
    Rate,
    /// Number of samples.
    Count,
    /// The most recent sample of the group.
    Last,
}

impl Agg {
    /// Every aggregation.
    pub const ALL: [Agg; 10] = [
        Agg::Mean,
        Agg::Max,
        Agg::Min,
        Agg::P50,
        Agg::P95,
        Agg::P99,
        Agg::Sum,
        Agg::Rate,
        Agg::Count,
        Agg::Last,
    ];

    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Agg::Mean => "mean",
            Agg::Max => "max",
            Agg::Min => "min",
            Agg::P50 => "p50",
            Agg::P95 => "p95",
            Agg::P99 => "p99",
            Agg::Sum => "sum",
            Agg::Rate => "rate",
            Agg::Count => "count",
            Agg::Last => "last",
        }
    }

    /// The polars expression reducing `value` within a group (not for [`Agg::Rate`], which
    /// needs per-series differences first).
    pub(crate) fn expr(self) -> Expr {
        let v = col("value");
        let e = match self {
            Agg::Mean => v.mean(),
            Agg::Max => v.max(),
            Agg::Min => v.min(),
            Agg::P50 => v.quantile(lit(0.5), QuantileMethod::Linear),
            Agg::P95 => v.quantile(lit(0.95), QuantileMethod::Linear),
            Agg::P99 => v.quantile(lit(0.99), QuantileMethod::Linear),
            Agg::Sum | Agg::Rate => v.sum(),
            Agg::Count => v.count(),
            Agg::Last => v
                .sort_by([col("ts")], SortMultipleOptions::default())
                .last(),
        };
        e.cast(DataType::Float64).alias("value")
    }

    /// `rate` only makes sense for counters.
    pub fn check(self, metric: Metric) -> Result<(), MetricsError> {
        if self == Agg::Rate && !metric.is_counter() {
            return Err(MetricsError::bad(
                "agg",
                format!(
                    "rate needs a counter metric (blkio_read_bytes, blkio_write_bytes, net_rx_bytes, net_tx_bytes), not {metric}"
                ),
            ));
        }
        Ok(())
    }
}

impl FromStr for Agg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Agg::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!("unknown aggregation {s:?} (known: mean, max, min, p50, p95, p99, sum, rate, count, last)")
            })
    }
}

/// Which series take part: each non-empty list keeps the series whose label is one of its
/// values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// App IDs.
    pub app: Vec<String>,
    /// Instances.
    pub instance: Vec<String>,
    /// Nodes.
    pub node: Vec<String>,
    /// Groups.
    pub group: Vec<String>,
    /// Hosts.
    pub host: Vec<String>,
}

impl Filter {
    /// The list for one label.
    pub fn values(&self, d: Dim) -> &[String] {
        match d {
            Dim::App => &self.app,
            Dim::Instance => &self.instance,
            Dim::Node => &self.node,
            Dim::Group => &self.group,
            Dim::Host => &self.host,
        }
    }

    /// Whether a series with these labels takes part.
    pub fn matches(&self, l: &Labels) -> bool {
        Dim::ALL.into_iter().all(|d| {
            let want = self.values(d);
            want.is_empty() || want.iter().any(|w| w == l.get(d))
        })
    }

    /// The same filter as a polars predicate on the label columns (`None`: no filter).
    pub(crate) fn expr(&self) -> Option<Expr> {
        let mut out: Option<Expr> = None;
        for d in Dim::ALL {
            let want = self.values(d);
            let Some(any) = want
                .iter()
                .map(|w| col(d.as_str()).eq(lit(w.as_str())))
                .reduce(|a, b| a.or(b))
            else {
                continue;
            };
            out = Some(match out {
                Some(o) => o.and(any),
                None => any,
            });
        }
        out
    }
}

/// A window aggregation: the last `range` of `metric`, the series `filter` keeps, grouped by
/// the labels `by` (none: one group), reduced with `agg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowQuery {
    /// The metric.
    pub metric: Metric,
    /// How far back from now (at most the window's horizon).
    pub range: Duration,
    /// Group by these labels.
    pub by: Vec<Dim>,
    /// Reduce with this.
    pub agg: Agg,
    /// Which series.
    pub filter: Filter,
}

/// One group's aggregate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupValue {
    /// The group's labels (the `by` labels only).
    pub labels: BTreeMap<String, String>,
    /// The aggregate.
    pub value: f64,
    /// Samples that went into it.
    pub samples: u64,
}

/// What [`Window::insert`] did with a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Kept.
    Added,
    /// The series already has a sample at this timestamp (a replay after a crash): ignored.
    Duplicate,
    /// Older than the window covers: only history keeps it.
    TooOld,
}

type Points = VecDeque<(i64, f64)>;

/// The recent samples of every series, in memory.
pub struct Window {
    clock: Clock,
    horizon_ms: i64,
    /// The window is complete for samples at or after this (ms): older ones were pruned.
    covers_from_ms: i64,
    series: HashMap<Metric, HashMap<Arc<Labels>, Points>>,
    points: usize,
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("horizon_ms", &self.horizon_ms)
            .field("covers_from_ms", &self.covers_from_ms)
            .field("series", &self.series_count())
            .field("points", &self.points)
            .finish()
    }
}

impl Window {
    /// An empty window keeping `horizon` of samples, on this clock.
    pub fn new(horizon: Duration, clock: Clock) -> Self {
        let horizon_ms = i64::try_from(horizon.as_millis()).unwrap_or(i64::MAX / 4);
        let covers_from_ms = clock.now().timestamp_millis() - horizon_ms;
        Self {
            clock,
            horizon_ms,
            covers_from_ms,
            series: HashMap::new(),
            points: 0,
        }
    }

    /// Now, by the window's clock, in ms.
    pub fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// How much the window keeps.
    pub fn horizon(&self) -> Duration {
        Duration::from_millis(self.horizon_ms.max(0) as u64)
    }

    /// The window holds every sample at or after this timestamp (ms).
    pub fn covers_from_ms(&self) -> i64 {
        self.covers_from_ms
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.points
    }

    /// Whether it holds no sample.
    pub fn is_empty(&self) -> bool {
        self.points == 0
    }

    /// Series held.
    pub fn series_count(&self) -> usize {
        self.series.values().map(HashMap::len).sum()
    }

    /// Add a sample, ignoring one the series already has at this timestamp.
    pub fn insert(&mut self, metric: Metric, labels: &Labels, ts_ms: i64, value: f64) -> Inserted {
        if ts_ms < self.covers_from_ms {
            return Inserted::TooOld;
        }
        let by_labels = self.series.entry(metric).or_default();
        let points = match by_labels.get_mut(labels) {
            Some(p) => p,
            None => by_labels.entry(Arc::new(labels.clone())).or_default(),
        };
        match points.back() {
            Some(&(last, _)) if last < ts_ms => points.push_back((ts_ms, value)),
            None => points.push_back((ts_ms, value)),
            Some(_) => {
                let i = points.partition_point(|p| p.0 < ts_ms);
                if points.get(i).is_some_and(|p| p.0 == ts_ms) {
                    return Inserted::Duplicate;
                }
                points.insert(i, (ts_ms, value));
            }
        }
        self.points += 1;
        Inserted::Added
    }

    /// Drop samples older than the horizon (and series left empty).
    pub fn prune(&mut self) {
        let cutoff = self.now_ms() - self.horizon_ms;
        if cutoff <= self.covers_from_ms {
            return;
        }
        self.covers_from_ms = cutoff;
        let mut removed = 0;
        for by_labels in self.series.values_mut() {
            by_labels.retain(|_, points| {
                let n = points.partition_point(|p| p.0 < cutoff);
                points.drain(..n);
                removed += n;
                !points.is_empty()
            });
        }
        self.series.retain(|_, m| !m.is_empty());
        self.points -= removed;
    }

    /// Calls `f` with each series of `metric` that `filter` keeps and its samples in
    /// `[from_ms, to_ms]`.
    pub fn for_each_series<'a>(
        &'a self,
        metric: Metric,
        filter: &Filter,
        from_ms: i64,
        to_ms: i64,
        mut f: impl FnMut(&'a Labels, &mut dyn Iterator<Item = &'a (i64, f64)>),
    ) {
        let Some(by_labels) = self.series.get(&metric) else {
            return;
        };
        for (labels, points) in by_labels {
            if !filter.matches(labels) {
                continue;
            }
            // Most series start inside the window: no search then.
            let start = if points.front().is_some_and(|p| p.0 >= from_ms) {
                0
            } else {
                points.partition_point(|p| p.0 < from_ms)
            };
            let mut it = points.range(start..).take_while(|p| p.0 <= to_ms);
            f(labels, &mut it);
        }
    }

    /// The most recent sample of each series of `metric` that `filter` keeps.
    pub fn latest(&self, metric: Metric, filter: &Filter) -> Vec<(Labels, i64, f64)> {
        let mut out: Vec<(Labels, i64, f64)> = self
            .series
            .get(&metric)
            .into_iter()
            .flatten()
            .filter(|(l, _)| filter.matches(l))
            .filter_map(|(l, p)| p.back().map(|&(ts, v)| ((**l).clone(), ts, v)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The window aggregation: the last `q.range` (up to now, inclusive) of `q.metric` per
    /// group of `q.by`. Groups without samples are absent; the result is sorted by labels.
    ///
    /// One pass over the window's points into per-group accumulators (quantiles keep their
    /// group's values and select): Alertman and the autoscaler run dozens of these per tick,
    /// and a dataframe per query cost ~10x more. Tested against the polars computation
    /// ([`Window::aggregate_polars`]) on random windows.
    pub fn aggregate(&self, q: &WindowQuery) -> Result<Vec<GroupValue>, MetricsError> {
        let (from, now) = self.range_of(q)?;
        // foldhash: SipHash of the group keys was ~8 % of an Alertman evaluation.
        let mut groups: foldhash::HashMap<Vec<&str>, usize> = foldhash::HashMap::default();
        let mut accs: Vec<(Vec<&str>, GroupAcc)> = Vec::new();
        let keep_values = matches!(q.agg, Agg::P50 | Agg::P95 | Agg::P99);
        // The group key of a series, built in one reused buffer (a copy only for a new group).
        let mut key: Vec<&str> = Vec::with_capacity(q.by.len());
        self.for_each_series(q.metric, &q.filter, from, now, |labels, points| {
            key.clear();
            key.extend(q.by.iter().map(|d| labels.get(*d)));
            let i = match groups.get(key.as_slice()) {
                Some(i) => *i,
                None => {
                    accs.push((key.clone(), GroupAcc::default()));
                    groups.insert(key.clone(), accs.len() - 1);
                    accs.len() - 1
                }
            };
            let acc = &mut accs[i].1;
            if q.agg == Agg::Rate {
                if let Some((r, n)) = counter_rate(points) {
                    acc.sum += r;
                    acc.n += n;
                    acc.rows += 1;
                }
                return;
            }
            for &(t, v) in points {
                acc.add(t, v, keep_values);
            }
        });
        // Sorted as the labels maps will sort (by value, in the label names' order), but
        // comparing borrowed strings before any map is built.
        let mut names: Vec<usize> = (0..q.by.len()).collect();
        names.sort_by_key(|&i| q.by[i].as_str());
        accs.retain(|(_, a)| a.rows > 0);
        accs.sort_by(|(a, _), (b, _)| names.iter().map(|&i| a[i]).cmp(names.iter().map(|&i| b[i])));
        Ok(accs
            .into_iter()
            .map(|(key, mut a)| GroupValue {
                labels: q
                    .by
                    .iter()
                    .zip(key)
                    .map(|(d, v)| (d.as_str().to_string(), v.to_string()))
                    .collect(),
                value: a.value(q.agg),
                samples: a.n,
            })
            .collect())
    }

    /// The query's time range, `[from, now]` in milliseconds, checked against the horizon.
    fn range_of(&self, q: &WindowQuery) -> Result<(i64, i64), MetricsError> {
        q.agg.check(q.metric)?;
        let range_ms = i64::try_from(q.range.as_millis()).unwrap_or(i64::MAX / 4);
        if range_ms > self.horizon_ms {
            return Err(MetricsError::bad(
                "range",
                format!(
                    "the window keeps {}; ask the history (query) for longer ranges",
                    humantime::format_duration(self.horizon())
                ),
            ));
        }
        let now = self.now_ms();
        Ok((now - range_ms, now))
    }

    /// [`Window::aggregate`] computed with polars: the reference the direct computation is
    /// tested against (same groups, values and sample counts).
    #[cfg(test)]
    pub(crate) fn aggregate_polars(
        &self,
        q: &WindowQuery,
    ) -> Result<Vec<GroupValue>, MetricsError> {
        let (from, now) = self.range_of(q)?;
        // Group IDs are computed once per series, so the frame holds only numbers.
        let mut groups: HashMap<Vec<&str>, u32> = HashMap::new();
        let mut group_labels: Vec<BTreeMap<String, String>> = Vec::new();
        let (mut g, mut ts, mut value, mut n) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let rate = q.agg == Agg::Rate;
        self.for_each_series(q.metric, &q.filter, from, now, |labels, points| {
            let key: Vec<&str> = q.by.iter().map(|d| labels.get(*d)).collect();
            let next = groups.len() as u32;
            let gid = *groups.entry(key).or_insert_with(|| {
                group_labels.push(
                    q.by.iter()
                        .map(|d| (d.as_str().to_string(), labels.get(*d).to_string()))
                        .collect(),
                );
                next
            });
            if rate {
                // Counters: the series' rate is computed here, in one pass over its samples
                // (they are in time order); polars sums the rates of each group.
                if let Some(r) = counter_rate(points) {
                    g.push(gid);
                    ts.push(0);
                    value.push(r.0);
                    n.push(r.1);
                }
                return;
            }
            for &(t, v) in points {
                g.push(gid);
                ts.push(t);
                value.push(v);
            }
        });
        if g.is_empty() {
            return Ok(Vec::new());
        }
        let height = g.len();
        let mut cols = vec![
            Column::new("g".into(), g),
            Column::new("ts".into(), ts),
            Column::new("value".into(), value),
        ];
        let lf = if rate {
            cols.push(Column::new("n".into(), n));
            DataFrame::new(height, cols)?
                .lazy()
                .group_by([col("g")])
                .agg([col("value").sum(), col("n").sum()])
        } else {
            DataFrame::new(height, cols)?
                .lazy()
                .group_by([col("g")])
                .agg([q.agg.expr(), col("value").count().alias("n")])
        };
        let out = lf.collect()?;
        let gids = out.column("g")?.u32()?;
        let values = out.column("value")?.f64()?;
        let counts = out.column("n")?.cast(&DataType::UInt64)?;
        let counts = counts.u64()?;
        let mut result = Vec::with_capacity(out.height());
        for i in 0..out.height() {
            let (Some(gid), Some(v)) = (gids.get(i), values.get(i)) else {
                continue;
            };
            result.push(GroupValue {
                labels: group_labels[gid as usize].clone(),
                value: v,
                samples: counts.get(i).unwrap_or(0),
            });
        }
        result.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(result)
    }
}

/// One group's running reduction.
#[derive(Debug, Default)]
struct GroupAcc {
    /// Rows: samples, or for `rate` series with a rate.
    rows: u64,
    /// Samples.
    n: u64,
    sum: f64,
    max: f64,
    min: f64,
    last: Option<(i64, f64)>,
    /// Every value, for quantiles.
    values: Vec<f64>,
}

impl GroupAcc {
    fn add(&mut self, ts: i64, v: f64, keep_values: bool) {
        if self.rows == 0 {
            self.max = v;
            self.min = v;
        } else {
            self.max = self.max.max(v);
            self.min = self.min.min(v);
        }
        self.rows += 1;
        self.n += 1;
        self.sum += v;
        // Latest wins; on a tie, the later row (as a stable sort by time would).
        if self.last.is_none_or(|(t, _)| ts >= t) {
            self.last = Some((ts, v));
        }
        if keep_values {
            self.values.push(v);
        }
    }

    fn value(&mut self, agg: Agg) -> f64 {
        match agg {
            Agg::Mean => self.sum / self.n as f64,
            Agg::Max => self.max,
            Agg::Min => self.min,
            Agg::P50 => quantile(&mut self.values, 0.5),
            Agg::P95 => quantile(&mut self.values, 0.95),
            Agg::P99 => quantile(&mut self.values, 0.99),
            Agg::Sum | Agg::Rate => self.sum,
            Agg::Count => self.n as f64,
            Agg::Last => self.last.map_or(f64::NAN, |(_, v)| v),
        }
    }
}

/// The `q` quantile of `values` with linear interpolation between the closest ranks (what
/// polars' `QuantileMethod::Linear` computes). Reorders `values`.
fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let idx = (values.len() - 1) as f64 * q;
    let (lo, hi) = (idx.floor() as usize, idx.ceil() as usize);
    let (_, &mut lo_v, above) = values.select_nth_unstable_by(lo, f64::total_cmp);
    if hi == lo {
        return lo_v;
    }
    // The next rank up is the smallest value above `lo`.
    let hi_v = above.iter().copied().fold(f64::INFINITY, f64::min);
    lo_v + (hi_v - lo_v) * (idx - lo as f64)
}

/// The per-second increase of a counter over its samples (a decrease is a reset: the new
/// value is the increase since it), and the number of samples; `None` with fewer than two
/// samples or no time between them.
fn counter_rate(points: &mut dyn Iterator<Item = &(i64, f64)>) -> Option<(f64, u64)> {
    let &(first_ts, mut prev) = points.next()?;
    let (mut last_ts, mut increase, mut n) = (first_ts, 0.0, 1u64);
    for &(t, v) in points {
        increase += if v >= prev { v - prev } else { v };
        prev = v;
        last_ts = t;
        n += 1;
    }
    (n >= 2 && last_ts > first_ts).then(|| (increase * 1000.0 / (last_ts - first_ts) as f64, n))
}

/// Adds `inc` (the increase since the series' previous sample, counter resets counted as
/// restarts from zero) and `prev_ts`; drops each series' first sample (it has no previous).
pub(crate) fn with_increase(lf: LazyFrame) -> Result<LazyFrame, MetricsError> {
    Ok(lf
        .sort(["s", "ts"], SortMultipleOptions::default())
        .with_columns([
            col("value").shift(lit(1)).over([col("s")])?.alias("prev"),
            col("ts").shift(lit(1)).over([col("s")])?.alias("prev_ts"),
        ])
        .filter(col("prev").is_not_null())
        .with_column(
            when(col("value").gt_eq(col("prev")))
                .then(col("value") - col("prev"))
                .otherwise(col("value"))
                .alias("inc"),
        ))
}

#[cfg(test)]
pub(crate) mod tests {
    use drover_schema::time::{Clock as _, ManualClock as FakeClock};

    use super::*;

    const T0: i64 = 1_800_000_000_000;

    fn labels(app: &str, inst: &str, node: &str) -> Labels {
        Labels {
            app: app.into(),
            instance: inst.into(),
            node: node.into(),
            group: String::new(),
            host: "h".into(),
        }
    }

    fn q(metric: Metric, by: &[Dim], agg: Agg) -> WindowQuery {
        WindowQuery {
            metric,
            range: Duration::from_secs(300),
            by: by.to_vec(),
            agg,
            filter: Filter::default(),
        }
    }

    fn window() -> (FakeClock, Window) {
        let clock = FakeClock::at_ms(T0);
        let w = Window::new(Duration::from_secs(3600), clock.shared());
        (clock, w)
    }

    #[test]
    fn empty_window_has_no_groups() {
        let (_, w) = window();
        for agg in [Agg::Mean, Agg::P95, Agg::Count] {
            assert!(w
                .aggregate(&q(Metric::CpuPct, &[Dim::App], agg))
                .unwrap()
                .is_empty());
        }
        assert!(w
            .aggregate(&q(Metric::NetRxBytes, &[], Agg::Rate))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn one_sample() {
        let (clock, mut w) = window();
        w.insert(
            Metric::CpuPct,
            &labels("a", "1", "n"),
            clock.now().timestamp_millis(),
            42.0,
        );
        for agg in [Agg::Mean, Agg::Max, Agg::Min, Agg::P95, Agg::Sum, Agg::Last] {
            let r = w.aggregate(&q(Metric::CpuPct, &[Dim::App], agg)).unwrap();
            assert_eq!(r.len(), 1, "{agg:?}");
            assert_eq!(r[0].value, 42.0, "{agg:?}");
            assert_eq!(r[0].samples, 1);
            assert_eq!(r[0].labels["app"], "a");
        }
        let c = w.aggregate(&q(Metric::CpuPct, &[], Agg::Count)).unwrap();
        assert_eq!(c[0].value, 1.0);
        // One counter sample has no rate yet.
        w.insert(
            Metric::NetRxBytes,
            &labels("a", "1", "n"),
            clock.now().timestamp_millis(),
            5.0,
        );
        assert!(w
            .aggregate(&q(Metric::NetRxBytes, &[], Agg::Rate))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn five_minute_window_by_app_and_node_in_milliseconds() {
        let (clock, mut w) = window();
        // 10 minutes of samples every 10 s: only the last 5 minutes count.
        for i in 0..60 {
            let ts = clock.now().timestamp_millis();
            for (app, node, base) in [("a", "n1", 10.0), ("a", "n2", 20.0), ("b", "n1", 30.0)] {
                for inst in ["1", "2"] {
                    let v = base + if i >= 30 { 100.0 } else { 0.0 } + inst.len() as f64;
                    w.insert(
                        Metric::CpuPct,
                        &labels(app, &format!("{app}{node}{inst}"), node),
                        ts,
                        v,
                    );
                }
            }
            clock.advance(Duration::from_secs(10));
        }
        // now = T0 + 600 s: the window [now - 5 min, now] holds the samples 30..59.
        clock.advance(Duration::from_secs(0));
        let r = w
            .aggregate(&q(Metric::CpuPct, &[Dim::App, Dim::Node], Agg::Mean))
            .unwrap();
        let got: Vec<(String, String, f64, u64)> = r
            .iter()
            .map(|g| {
                (
                    g.labels["app"].clone(),
                    g.labels["node"].clone(),
                    g.value,
                    g.samples,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), "n1".into(), 111.0, 60),
                ("a".into(), "n2".into(), 121.0, 60),
                ("b".into(), "n1".into(), 131.0, 60),
            ]
        );
        let max = w.aggregate(&q(Metric::CpuPct, &[], Agg::Max)).unwrap();
        assert_eq!(max[0].value, 131.0);
        let mut only_b = q(Metric::CpuPct, &[Dim::Instance], Agg::Last);
        only_b.filter.app = vec!["b".into()];
        let r = w.aggregate(&only_b).unwrap();
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|g| g.value == 131.0));
        // Ten minutes later the window is empty.
        clock.advance(Duration::from_secs(600));
        assert!(w
            .aggregate(&q(Metric::CpuPct, &[], Agg::Mean))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn quantiles_sum_and_count() {
        let (clock, mut w) = window();
        let now = clock.now().timestamp_millis();
        for i in 1..=100 {
            w.insert(
                Metric::CpuPct,
                &labels("a", "1", "n"),
                now - i * 1000,
                i as f64,
            );
        }
        let get = |agg| w.aggregate(&q(Metric::CpuPct, &[], agg)).unwrap()[0].value;
        assert_eq!(get(Agg::Sum), 5050.0);
        assert_eq!(get(Agg::Count), 100.0);
        assert!((get(Agg::P50) - 50.5).abs() < 1e-9);
        assert!((get(Agg::P95) - 95.05).abs() < 1e-9);
        assert_eq!(get(Agg::Last), 1.0);
        assert_eq!(get(Agg::Min), 1.0);
    }

    #[test]
    fn counter_rate_copes_with_resets() {
        let (clock, mut w) = window();
        let l = labels("a", "1", "n");
        let start = clock.now().timestamp_millis() - 40_000;
        // +100 every 10 s, restart (back to 50) at the 4th sample, then +100 again.
        for (i, v) in [1000.0, 1100.0, 1200.0, 50.0, 150.0]
            .into_iter()
            .enumerate()
        {
            w.insert(Metric::NetRxBytes, &l, start + i as i64 * 10_000, v);
        }
        let r = w.aggregate(&q(Metric::NetRxBytes, &[], Agg::Rate)).unwrap();
        // increase 100 + 100 + 50 + 100 = 350 bytes over 40 s
        assert!((r[0].value - 350.0 / 40.0).abs() < 1e-9, "{r:?}");
        // Two series of the same app add up.
        let l2 = labels("a", "2", "n");
        w.insert(Metric::NetRxBytes, &l2, start, 0.0);
        w.insert(Metric::NetRxBytes, &l2, start + 40_000, 400.0);
        let r = w
            .aggregate(&q(Metric::NetRxBytes, &[Dim::App], Agg::Rate))
            .unwrap();
        assert!((r[0].value - (350.0 / 40.0 + 10.0)).abs() < 1e-9, "{r:?}");
        assert!(w.aggregate(&q(Metric::CpuPct, &[], Agg::Rate)).is_err());
    }

    #[test]
    fn gaps_are_not_filled() {
        let (clock, mut w) = window();
        let l = labels("a", "1", "n");
        let now = clock.now().timestamp_millis();
        // Samples at -290 s and -10 s only: a gap of 280 s.
        w.insert(Metric::CpuPct, &l, now - 290_000, 10.0);
        w.insert(Metric::CpuPct, &l, now - 10_000, 30.0);
        w.insert(Metric::NetTxBytes, &l, now - 290_000, 1000.0);
        w.insert(Metric::NetTxBytes, &l, now - 10_000, 1280.0);
        let r = w.aggregate(&q(Metric::CpuPct, &[], Agg::Mean)).unwrap();
        assert_eq!((r[0].value, r[0].samples), (20.0, 2));
        let r = w.aggregate(&q(Metric::NetTxBytes, &[], Agg::Rate)).unwrap();
        assert!((r[0].value - 1.0).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn duplicates_and_out_of_order_samples() {
        let (clock, mut w) = window();
        let l = labels("a", "1", "n");
        let now = clock.now().timestamp_millis();
        assert_eq!(w.insert(Metric::CpuPct, &l, now, 1.0), Inserted::Added);
        assert_eq!(w.insert(Metric::CpuPct, &l, now - 5, 2.0), Inserted::Added);
        assert_eq!(w.insert(Metric::CpuPct, &l, now, 9.0), Inserted::Duplicate);
        assert_eq!(
            w.insert(Metric::CpuPct, &l, now - 5, 9.0),
            Inserted::Duplicate
        );
        assert_eq!(
            w.insert(Metric::CpuPct, &l, now - 3_600_001, 1.0),
            Inserted::TooOld
        );
        assert_eq!(w.len(), 2);
        let latest = w.latest(Metric::CpuPct, &Filter::default());
        assert_eq!(latest[0].1, now);
        assert_eq!(latest[0].2, 1.0);
    }

    #[test]
    fn prune_keeps_the_horizon() {
        let (clock, mut w) = window();
        let l = labels("a", "1", "n");
        w.insert(Metric::CpuPct, &l, clock.now().timestamp_millis(), 1.0);
        clock.advance(Duration::from_secs(1800));
        w.insert(Metric::CpuPct, &l, clock.now().timestamp_millis(), 2.0);
        clock.advance(Duration::from_secs(1801));
        w.prune();
        assert_eq!(w.len(), 1);
        assert_eq!(
            w.covers_from_ms(),
            clock.now().timestamp_millis() - 3_600_000
        );
        clock.advance(Duration::from_secs(3600));
        w.prune();
        assert!(w.is_empty());
        assert_eq!(w.series_count(), 0);
    }

    proptest::proptest! {
        /// The polars aggregation agrees with a plain computation over the same samples
        /// (duplicates: the first one wins; only the last 5 minutes count).
        #[test]
        fn aggregates_match_a_naive_computation(
            samples in proptest::collection::vec((0usize..3, 0usize..3, 0i64..600, 0u32..1000), 0..200),
            agg in proptest::sample::select(vec![Agg::Mean, Agg::Max, Agg::Min, Agg::Sum, Agg::Count, Agg::Rate]),
        ) {
            let (clock, mut w) = window();
            let now = clock.now().timestamp_millis();
            let mut kept: BTreeMap<(usize, usize, i64), f64> = BTreeMap::new();
            let metric = if agg == Agg::Rate { Metric::NetRxBytes } else { Metric::CpuPct };
            for (a, i, back_s, v) in samples {
                let ts = now - back_s * 1000;
                w.insert(metric, &labels(&format!("a{a}"), &format!("i{i}"), "n"), ts, f64::from(v));
                kept.entry((a, i, ts)).or_insert(f64::from(v));
            }
            let got = w.aggregate(&q(metric, &[Dim::App], agg)).unwrap();
            let mut want: BTreeMap<String, f64> = BTreeMap::new();
            for a in 0..3 {
                let in_window = |&(&(x, _, ts), _): &(&(usize, usize, i64), &f64)| x == a && ts >= now - 300_000;
                let values: Vec<f64> = kept.iter().filter(in_window).map(|(_, v)| *v).collect();
                let value = match agg {
                    Agg::Rate => {
                        let mut total = None;
                        for i in 0..3 {
                            let pts: Vec<(i64, f64)> = kept
                                .iter()
                                .filter(in_window)
                                .filter(|((_, x, _), _)| *x == i)
                                .map(|((_, _, ts), v)| (*ts, *v))
                                .collect();
                            if pts.len() >= 2 && pts[pts.len() - 1].0 > pts[0].0 {
                                let inc: f64 = pts.windows(2).map(|p| if p[1].1 >= p[0].1 { p[1].1 - p[0].1 } else { p[1].1 }).sum();
                                *total.get_or_insert(0.0) += inc * 1000.0 / (pts[pts.len() - 1].0 - pts[0].0) as f64;
                            }
                        }
                        total
                    }
                    _ if values.is_empty() => None,
                    Agg::Mean => Some(values.iter().sum::<f64>() / values.len() as f64),
                    Agg::Max => values.iter().copied().reduce(f64::max),
                    Agg::Min => values.iter().copied().reduce(f64::min),
                    Agg::Sum => Some(values.iter().sum()),
                    _ => Some(values.len() as f64),
                };
                if let Some(v) = value {
                    want.insert(format!("a{a}"), v);
                }
            }
            let got: BTreeMap<String, f64> = got.into_iter().map(|g| (g.labels["app"].clone(), g.value)).collect();
            proptest::prop_assert_eq!(got.len(), want.len(), "{:?} vs {:?}", got, want);
            for (k, v) in &want {
                proptest::prop_assert!((got[k] - v).abs() <= 1e-9 * v.abs().max(1.0), "{} {:?} vs {:?}", k, got, want);
            }
        }
    }

    proptest::proptest! {
        /// The direct computation agrees with polars' on every aggregation, grouping and
        /// filter: same groups, values (to 1e-9) and sample counts.
        #[test]
        fn direct_aggregation_matches_polars(
            samples in proptest::collection::vec((0usize..4, 0usize..3, 0i64..400, -50i32..1000), 0..300),
            agg in proptest::sample::select(Agg::ALL.to_vec()),
            by in proptest::sample::select(vec![vec![], vec![Dim::App], vec![Dim::App, Dim::Instance], vec![Dim::Node]]),
            filtered in proptest::bool::ANY,
        ) {
            let (clock, mut w) = window();
            let now = clock.now().timestamp_millis();
            let metric = if agg == Agg::Rate { Metric::NetRxBytes } else { Metric::CpuPct };
            // Distinct times (`last` of two samples at the same instant is either).
            for (k, (a, i, back_s, v)) in samples.into_iter().enumerate() {
                let l = labels(&format!("a{a}"), &format!("i{i}"), &format!("n{}", (a + i) % 2));
                w.insert(metric, &l, now - back_s * 1000 - k as i64, f64::from(v) / 4.0);
            }
            let mut query = q(metric, &by, agg);
            if filtered {
                query.filter.app = vec!["a1".into(), "a2".into()];
            }
            let got = w.aggregate(&query).unwrap();
            let want = w.aggregate_polars(&query).unwrap();
            proptest::prop_assert_eq!(got.len(), want.len(), "{:?} vs {:?}", got, want);
            for (g, p) in got.iter().zip(&want) {
                proptest::prop_assert_eq!(&g.labels, &p.labels);
                proptest::prop_assert_eq!(g.samples, p.samples, "{:?}: {:?} vs {:?}", agg, g, p);
                proptest::prop_assert!(
                    (g.value - p.value).abs() <= 1e-9 * p.value.abs().max(1.0),
                    "{:?}: {:?} vs {:?}", agg, g, p
                );
            }
        }
    }

    #[test]
    fn ranges_beyond_the_horizon_are_refused() {
        let (_, w) = window();
        let mut long = q(Metric::CpuPct, &[], Agg::Mean);
        long.range = Duration::from_secs(7200);
        let e = w.aggregate(&long).unwrap_err();
        assert!(e.to_string().starts_with("range:"), "{e}");
    }
}
