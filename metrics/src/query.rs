//! Queries over memory and history: series downsampled to a step, top N, latest values.
//!
//! A range is read from history up to where the window is complete
//! ([`crate::Window::covers_from_ms`]) and from the window after it, so a sample is counted
//! once even while it is both in memory and on disk.
use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use chrono::{DateTime, Utc};
use polars::prelude::*;
use serde::Serialize;

use crate::{
    partials::{Merger, Partials, Shape},
    sample::{Dim, Labels, Metric},
    store::MetricsStore,
    window::{with_increase, Agg, Filter, GroupValue, WindowQuery},
    MetricsError,
};

type Points = Vec<(i64, f64)>;

/// Most points one series of a query may have.
pub const MAX_POINTS: i64 = 11_000;

/// A series query: `metric` in `[from, to)`, grouped by `by`, one point per `step` bucket
/// (aligned to multiples of the step since the epoch) reduced with `agg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRequest {
    /// The metric.
    pub metric: Metric,
    /// Which series.
    pub filter: Filter,
    /// Group by these labels (none: one series).
    pub by: Vec<Dim>,
    /// Start (inclusive), ms.
    pub from_ms: i64,
    /// End (exclusive), ms.
    pub to_ms: i64,
    /// Bucket width, ms.
    pub step_ms: i64,
    /// Reduction per bucket.
    pub agg: Agg,
}

impl QueryRequest {
    /// Checks the request (errors name the parameter).
    pub fn validate(&self) -> Result<(), MetricsError> {
        self.agg.check(self.metric)?;
        if self.to_ms <= self.from_ms {
            return Err(MetricsError::bad("to", "must be after from"));
        }
        if self.step_ms < 1000 {
            return Err(MetricsError::bad("step", "must be at least 1s"));
        }
        let points = (self.to_ms - self.from_ms) / self.step_ms;
        if points > MAX_POINTS {
            return Err(MetricsError::bad(
                "step",
                format!("{points} points per series is too many (at most {MAX_POINTS}): use a larger step"),
            ));
        }
        Ok(())
    }
}

/// One series of a query answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesOut {
    /// The `by` labels.
    pub labels: BTreeMap<String, String>,
    /// `[bucket start ms, value]`, oldest first; buckets without samples are absent.
    pub points: Vec<(i64, f64)>,
}

/// A query answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryResponse {
    /// The metric.
    pub metric: Metric,
    /// The aggregation.
    pub agg: Agg,
    /// Start.
    pub from: DateTime<Utc>,
    /// End.
    pub to: DateTime<Utc>,
    /// Bucket width, ms.
    pub step_ms: i64,
    /// The series, sorted by labels.
    pub series: Vec<SeriesOut>,
    /// Time taken, ms.
    pub took_ms: f64,
}

/// How samples are put into step buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucketing {
    /// polars `group_by_dynamic` on the time column (needs the frame sorted by key and time).
    Dynamic,
    /// A bucket column (`ts` floor-divided by the step) and a hash `group_by`: no sort, so it is
    /// what the API uses; the answers are the same (see the tests).
    Floor,
}

/// Runs a series query.
pub fn query(store: &MetricsStore, req: &QueryRequest) -> Result<QueryResponse, MetricsError> {
    query_with(store, req, Bucketing::Floor)
}

/// Runs a series query with the given bucketing (benchmarks compare them).
pub fn query_with(
    store: &MetricsStore,
    req: &QueryRequest,
    bucketing: Bucketing,
) -> Result<QueryResponse, MetricsError> {
    let started = std::time::Instant::now();
    req.validate()?;
    let partial = bucketing == Bucketing::Floor
        && req.step_ms % 60_000 == 0
        && matches!(
            req.agg,
            Agg::Mean | Agg::Sum | Agg::Min | Agg::Max | Agg::Count
        );
    let series = if partial {
        partial_query(store, req)?
    } else {
        let frame = samples_frame(
            store,
            req.metric,
            &req.filter,
            req.from_ms,
            req.to_ms,
            &req.by,
        )?;
        match frame {
            None => Vec::new(),
            Some(df) if df.height() == 0 => Vec::new(),
            Some(df) => bucket(df, req, bucketing)?,
        }
    };
    Ok(QueryResponse {
        metric: req.metric,
        agg: req.agg,
        from: DateTime::from_timestamp_millis(req.from_ms).unwrap_or_default(),
        to: DateTime::from_timestamp_millis(req.to_ms).unwrap_or_default(),
        step_ms: req.step_ms,
        series,
        took_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// The samples of `metric` in `[from, to)`: history before the window's start, the window
/// after. Columns `ts`, `s`, `value` and the `dims`.
pub fn samples_frame(
    store: &MetricsStore,
    metric: Metric,
    filter: &Filter,
    from_ms: i64,
    to_ms: i64,
    dims: &[Dim],
) -> Result<Option<DataFrame>, MetricsError> {
    // The window's part first, so its lock is not held while Parquet is read.
    let window = store.window();
    let boundary = window.covers_from_ms();
    let mut frames = Vec::new();
    if to_ms > boundary {
        let mem = memory_frame(&window, metric, filter, from_ms.max(boundary), to_ms, dims)?;
        if mem.height() > 0 {
            frames.push(mem.lazy());
        }
    }
    drop(window);
    if from_ms < boundary {
        if let Some(df) =
            store
                .history()
                .read(metric, filter, from_ms, to_ms.min(boundary), dims)?
        {
            frames.push(df.lazy());
        }
    }
    match frames.len() {
        0 => Ok(None),
        1 => Ok(Some(frames.pop().expect("one").collect()?)),
        _ => Ok(Some(concat(frames, UnionArgs::default())?.collect()?)),
    }
}

/// Mean, sum, min, max and count at whole-minute steps: every source is reduced to partial
/// aggregates per group and bucket (see [`crate::partials`]) — the compacted hours from their
/// 1-minute rollups, through the hour cache, and the raw samples (the open hours and the
/// window) by a polars `group_by` — and the partials are merged per bucket.
fn partial_query(store: &MetricsStore, req: &QueryRequest) -> Result<Vec<SeriesOut>, MetricsError> {
    let started = std::time::Instant::now();
    let dims = &req.by;
    let shape = Shape { agg: req.agg };
    let needed = shape.needed();
    let step = req.step_ms;
    let window = store.window();
    let boundary = window.covers_from_ms();
    let mut raw = Vec::new();
    if req.to_ms > boundary {
        let mem = memory_frame(
            &window,
            req.metric,
            &req.filter,
            req.from_ms.max(boundary),
            req.to_ms,
            dims,
        )?;
        raw.push(mem);
    }
    // Not held while Parquet is read.
    drop(window);
    let t_memory = started.elapsed();
    let mut merger = Merger::new(shape);
    if req.from_ms < boundary {
        let (r, hours) = store.history().read_partials(
            req.metric,
            &req.filter,
            req.from_ms,
            req.to_ms.min(boundary),
            dims,
            shape,
            step,
        )?;
        raw.extend(r);
        for h in &hours {
            merger.add(h);
        }
    }
    let t_history = started.elapsed();
    let parts: Vec<LazyFrame> = raw
        .into_iter()
        .filter(|d| d.height() > 0)
        .map(|df| {
            let mut cols = vec![(col("ts") - col("ts") % lit(step)).alias("bucket")];
            cols.extend(needed.iter().map(|c| match *c {
                "n" => lit(1.0f64).alias("n"),
                other => col("value").alias(other),
            }));
            cols.extend(dims.iter().map(|d| col(d.as_str())));
            df.lazy().select(cols)
        })
        .collect();
    if !parts.is_empty() {
        let mut by: Vec<Expr> = dims.iter().map(|d| col(d.as_str())).collect();
        by.push(col("bucket"));
        let grouped = concat(parts, UnionArgs::default())?
            .group_by(by)
            .agg(shape.combine_exprs())
            .collect()?;
        let names: Vec<&str> = dims.iter().map(|d| d.as_str()).collect();
        merger.add(&Partials::from_frame(&grouped, &names, needed)?);
    }
    let t_grouped = started.elapsed();
    let series = merger
        .finish(step, req.from_ms, req.to_ms)
        .into_iter()
        .map(|(key, points)| SeriesOut {
            labels: dims
                .iter()
                .map(|d| d.as_str().to_string())
                .zip(key)
                .collect(),
            points,
        })
        .collect();
    tracing::debug!(
        memory_ms = t_memory.as_secs_f64() * 1000.0,
        history_ms = (t_history - t_memory).as_secs_f64() * 1000.0,
        raw_group_ms = (t_grouped - t_history).as_secs_f64() * 1000.0,
        merge_ms = started.elapsed().saturating_sub(t_grouped).as_secs_f64() * 1000.0,
        "partial query"
    );
    Ok(series)
}

fn memory_frame(
    window: &crate::Window,
    metric: Metric,
    filter: &Filter,
    from_ms: i64,
    to_ms: i64,
    dims: &[Dim],
) -> Result<DataFrame, MetricsError> {
    let (mut ts, mut s, mut value) = (Vec::new(), Vec::new(), Vec::new());
    let mut labels: Vec<Vec<&str>> = vec![Vec::new(); dims.len()];
    // The window's range is inclusive at the end; a query's is not.
    window.for_each_series(metric, filter, from_ms, to_ms - 1, |l: &Labels, points| {
        let sid = l.series_id(metric);
        for &(t, v) in points {
            ts.push(t);
            s.push(sid);
            value.push(v);
            for (i, d) in dims.iter().enumerate() {
                labels[i].push(l.get(*d));
            }
        }
    });
    let mut cols = vec![
        Column::new("ts".into(), ts),
        Column::new("s".into(), s),
        Column::new("value".into(), value),
    ];
    for (i, d) in dims.iter().enumerate() {
        cols.push(Column::new(
            d.as_str().into(),
            std::mem::take(&mut labels[i]),
        ));
    }
    let height = cols[0].len();
    Ok(DataFrame::new(height, cols)?)
}

fn bucket(
    df: DataFrame,
    req: &QueryRequest,
    bucketing: Bucketing,
) -> Result<Vec<SeriesOut>, MetricsError> {
    let keys: Vec<Expr> = req.by.iter().map(|d| col(d.as_str())).collect();
    let step = req.step_ms;
    let mut lf = df.lazy();
    let value = if req.agg == Agg::Rate {
        lf = with_increase(lf)?;
        (col("inc").sum().cast(DataType::Float64) / lit(step as f64 / 1000.0)).alias("value")
    } else {
        req.agg.expr()
    };
    let out = match bucketing {
        Bucketing::Floor => {
            let mut by = keys.clone();
            by.push(col("bucket"));
            // ts - ts % step: the bucket start (timestamps are after the epoch, so the
            // remainder is never negative).
            lf.with_column((col("ts") - col("ts") % lit(step)).alias("bucket"))
                .group_by(by)
                .agg([value])
        }
        Bucketing::Dynamic => {
            let mut sort_by: Vec<PlSmallStr> = req.by.iter().map(|d| d.as_str().into()).collect();
            sort_by.push("ts".into());
            let every = polars::prelude::Duration::parse(&format!("{step}i"));
            lf.sort(sort_by, SortMultipleOptions::default())
                .group_by_dynamic(
                    col("ts"),
                    keys.clone(),
                    DynamicGroupOptions {
                        every,
                        period: every,
                        offset: polars::prelude::Duration::parse("0i"),
                        label: Label::Left,
                        include_boundaries: false,
                        closed_window: ClosedWindow::Left,
                        start_by: StartBy::WindowBound,
                        ..Default::default()
                    },
                )
                .agg([value])
                .rename(["ts"], ["bucket"], true)
        }
    };
    to_series(&out.collect()?, req)
}

/// The series of a bucketed frame (`bucket`, `value` and the `by` columns).
fn to_series(out: &DataFrame, req: &QueryRequest) -> Result<Vec<SeriesOut>, MetricsError> {
    let step = req.step_ms;
    let bucket_col = out.column("bucket")?.i64()?;
    let values = out.column("value")?.f64()?;
    let key_cols = req
        .by
        .iter()
        .map(|d| out.column(d.as_str()).and_then(|c| c.str()))
        .collect::<Result<Vec<_>, _>>()?;
    // One lookup per row with a reused key buffer: a query by instance has ~a million rows.
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut series: Vec<(Vec<String>, Points)> = Vec::new();
    let mut key = String::new();
    for i in 0..out.height() {
        let (Some(b), Some(v)) = (bucket_col.get(i), values.get(i)) else {
            continue;
        };
        if b + step <= req.from_ms || b >= req.to_ms {
            continue;
        }
        key.clear();
        for c in &key_cols {
            key.push_str(c.get(i).unwrap_or(""));
            key.push('\u{1f}');
        }
        let n = match index.get(key.as_str()) {
            Some(n) => *n,
            None => {
                let labels = key_cols
                    .iter()
                    .map(|c| c.get(i).unwrap_or("").to_string())
                    .collect();
                series.push((labels, Vec::new()));
                index.insert(key.clone(), series.len() - 1);
                series.len() - 1
            }
        };
        series[n].1.push((b, v));
    }
    series.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(series
        .into_iter()
        .map(|(key, mut points)| {
            points.sort_unstable_by_key(|p| p.0);
            SeriesOut {
                labels: req
                    .by
                    .iter()
                    .map(|d| d.as_str().to_string())
                    .zip(key)
                    .collect(),
                points,
            }
        })
        .collect())
}

/// The top `n` groups (by `query.by`) of a window aggregation, largest first.
pub fn top(
    store: &MetricsStore,
    query: &WindowQuery,
    n: usize,
) -> Result<Vec<GroupValue>, MetricsError> {
    let mut groups = store.window().aggregate(query)?;
    groups.sort_by(|a, b| b.value.total_cmp(&a.value));
    groups.truncate(n);
    Ok(groups)
}

/// The latest value of one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latest {
    /// All its labels.
    pub labels: Labels,
    /// When.
    pub ts: DateTime<Utc>,
    /// How old, seconds.
    pub age_s: f64,
    /// The value.
    pub value: f64,
}

/// The most recent value of every series of `metric` that `filter` keeps (within the window).
pub fn latest(store: &MetricsStore, metric: Metric, filter: &Filter) -> Vec<Latest> {
    let now = store.now_ms();
    store
        .window()
        .latest(metric, filter)
        .into_iter()
        .map(|(labels, ts, value)| Latest {
            labels,
            ts: DateTime::from_timestamp_millis(ts).unwrap_or_default(),
            age_s: (now - ts) as f64 / 1000.0,
            value,
        })
        .collect()
}

/// A step that gives about `points` buckets over `range`, rounded to a readable width.
pub fn auto_step(range: Duration, points: u64) -> Duration {
    const STEPS: [u64; 12] = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
    let want = range.as_secs() / points.max(1);
    let s = STEPS
        .into_iter()
        .find(|s| *s >= want)
        .unwrap_or_else(|| want.div_ceil(3600) * 3600);
    Duration::from_secs(s.max(1))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use drover_schema::time::ManualClock as FakeClock;

    use crate::{sample::Samples, store::StoreConfig};

    const T0: i64 = 1_800_000_000_000 / 3_600_000 * 3_600_000;

    fn store(clock: &FakeClock, dir: &std::path::Path) -> MetricsStore {
        let cfg = StoreConfig {
            clock: clock.shared(),
            window: Duration::from_secs(3600),
            ..StoreConfig::default()
        };
        MetricsStore::open(dir, cfg).unwrap()
    }

    fn add(store: &MetricsStore, app: &str, inst: &str, ts: i64, v: f64) {
        store.add(&Samples {
            labels: Labels {
                app: app.into(),
                instance: inst.into(),
                ..Labels::default()
            },
            ts_ms: ts,
            values: vec![(Metric::CpuPct, v), (Metric::NetRxBytes, v * 100.0)],
        });
    }

    fn req(by: &[Dim], agg: Agg, metric: Metric) -> QueryRequest {
        QueryRequest {
            metric,
            filter: Filter::default(),
            by: by.to_vec(),
            from_ms: T0,
            to_ms: T0 + 2 * 3_600_000,
            step_ms: 600_000,
            agg,
        }
    }

    /// Two hours of samples every 60 s for 2 apps × 2 instances; the window holds the last
    /// hour, history all of it (so both sources and their boundary are exercised).
    fn two_hours() -> (tempfile::TempDir, FakeClock, MetricsStore) {
        let dir = tempfile::tempdir().unwrap();
        let clock = FakeClock::at_ms(T0);
        let s = store(&clock, dir.path());
        for i in 0..120 {
            let ts = T0 + i * 60_000;
            clock.advance(Duration::from_millis(if i == 0 { 0 } else { 60_000 }));
            for (app, base) in [("a", 0.0), ("b", 1000.0)] {
                for inst in ["1", "2"] {
                    add(
                        &s,
                        app,
                        inst,
                        ts,
                        base + i as f64 + if inst == "2" { 0.5 } else { 0.0 },
                    );
                }
            }
            if i % 10 == 9 {
                s.flush().unwrap();
                s.maintain().unwrap();
            }
        }
        clock.advance(Duration::from_millis(60_000));
        s.flush().unwrap();
        s.maintain().unwrap();
        (dir, clock, s)
    }

    #[test]
    fn buckets_over_memory_and_history() {
        let (_dir, _clock, s) = two_hours();
        assert!(s.window().covers_from_ms() > T0);
        for bucketing in [Bucketing::Floor, Bucketing::Dynamic] {
            let r =
                query_with(&s, &req(&[Dim::App], Agg::Mean, Metric::CpuPct), bucketing).unwrap();
            assert_eq!(r.series.len(), 2, "{bucketing:?}");
            let a = &r.series[0];
            assert_eq!(a.labels["app"], "a");
            assert_eq!(a.points.len(), 12);
            // Bucket k holds minutes 10k..10k+9 of both instances: mean 10k + 4.5 + 0.25.
            for (k, (b, v)) in a.points.iter().enumerate() {
                assert_eq!(*b, T0 + k as i64 * 600_000);
                assert!(
                    (v - (10.0 * k as f64 + 4.75)).abs() < 1e-9,
                    "{bucketing:?} {k} {v}"
                );
            }
            let c = query_with(&s, &req(&[], Agg::Count, Metric::CpuPct), bucketing).unwrap();
            assert_eq!(c.series.len(), 1);
            assert!(c.series[0].points.iter().all(|p| p.1 == 40.0), "{c:?}");
            let m = query_with(
                &s,
                &req(&[Dim::App, Dim::Instance], Agg::Max, Metric::CpuPct),
                bucketing,
            )
            .unwrap();
            assert_eq!(m.series.len(), 4);
            assert_eq!(m.series[3].points[11].1, 1119.5);
            // net_rx grows 100 bytes/min per series: rate per app = 2 × 100/60 B/s (the very
            // first bucket misses each series' first increase).
            let r = query_with(
                &s,
                &req(&[Dim::App], Agg::Rate, Metric::NetRxBytes),
                bucketing,
            )
            .unwrap();
            for p in &r.series[0].points[1..] {
                assert!((p.1 - 200.0 / 60.0).abs() < 1e-9, "{bucketing:?} {p:?}");
            }
        }
        // The closed hour's partials were cached by the first query; the same query answers
        // the same from the cache, and another filter is not answered from that entry.
        assert!(s.history().cached_points() > 0);
        let q = req(&[Dim::App, Dim::Instance], Agg::Mean, Metric::CpuPct);
        let first = query(&s, &q).unwrap().series;
        let again = query(&s, &q).unwrap().series;
        assert_eq!(first, again);
        let dynamic = query_with(&s, &q, Bucketing::Dynamic).unwrap().series;
        assert_eq!(first, dynamic, "cached partials agree with the raw samples");
        let mut only_a = q.clone();
        only_a.filter.app = vec!["a".into()];
        let a = query(&s, &only_a).unwrap().series;
        assert_eq!(a.len(), 2);
        assert!(a.iter().all(|x| x.labels["app"] == "a"));
    }

    #[test]
    fn filters_top_and_latest() {
        let (_dir, _clock, s) = two_hours();
        let mut r = req(&[Dim::Instance], Agg::Last, Metric::CpuPct);
        r.filter.app = vec!["b".into()];
        let out = query(&s, &r).unwrap();
        assert_eq!(out.series.len(), 2);
        assert_eq!(out.series[1].points.last().unwrap().1, 1119.5);
        let t = top(
            &s,
            &WindowQuery {
                metric: Metric::CpuPct,
                range: Duration::from_secs(300),
                by: vec![Dim::App, Dim::Instance],
                agg: Agg::Max,
                filter: Filter::default(),
            },
            3,
        )
        .unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].value, 1119.5);
        assert_eq!(t[0].labels["instance"], "2");
        let l = latest(&s, Metric::CpuPct, &Filter::default());
        assert_eq!(l.len(), 4);
        assert_eq!(l[0].value, 119.0);
        assert_eq!(l[0].age_s, 60.0);
    }

    #[test]
    fn bad_requests_name_the_parameter() {
        let dir = tempfile::tempdir().unwrap();
        let clock = FakeClock::at_ms(T0);
        let s = store(&clock, dir.path());
        let mut r = req(&[], Agg::Mean, Metric::CpuPct);
        r.step_ms = 100;
        assert!(query(&s, &r).unwrap_err().to_string().starts_with("step:"));
        r.step_ms = 1000;
        r.to_ms = T0 + 30 * 86_400_000;
        assert!(query(&s, &r).unwrap_err().to_string().starts_with("step:"));
        r.to_ms = r.from_ms;
        assert!(query(&s, &r).unwrap_err().to_string().starts_with("to:"));
        let r = req(&[], Agg::Rate, Metric::CpuPct);
        assert!(query(&s, &r).unwrap_err().to_string().starts_with("agg:"));
        // Nothing stored: no series, not an error.
        let r = req(&[], Agg::Mean, Metric::CpuPct);
        assert!(query(&s, &r).unwrap().series.is_empty());
        let _ = Arc::new(0);
    }

    #[test]
    fn auto_steps_are_readable() {
        assert_eq!(
            auto_step(Duration::from_secs(3600), 60),
            Duration::from_secs(60)
        );
        assert_eq!(
            auto_step(Duration::from_secs(86_400), 60),
            Duration::from_secs(1800)
        );
        assert_eq!(
            auto_step(Duration::from_secs(300), 60),
            Duration::from_secs(5)
        );
    }
}
