//! History: every sample in hourly Parquet files written and read with polars.
//!
//! ```text
//! <dir>/2026-11-22T10/part-<ms>-<seq>.parquet      one per flush (fsync'd, then renamed)
//! <dir>/2026-11-22T10/compact-<ms>-<seq>.parquet   the hour's parts merged, deduplicated, sorted
//! <dir>/2026-11-22T10/rollup1m-compact-<ms>-<seq>.parquet   per series and minute: n, sum, min, max
//! ```
//!
//! An hour that is over is compacted into one file plus its 1-minute rollup; queries whose
//! step is a whole number of minutes and whose aggregation is mean, sum, min, max or count
//! read the rollup of the hours they cover entirely (6× fewer rows at a 10 s interval) and
//! the raw samples elsewhere.
//!
//! Columns: `ts` (datetime ms, UTC), `metric`, `sid` (u64, [`Labels::series_id`]), `app`,
//! `instance`, `node`, `group`, `host` (strings, empty when absent), `value` (f64). Samples
//! replayed from Kafka after a crash may be written twice; readers deduplicate on
//! (`sid`, `ts`) within an hour that has more than one file, and compaction removes the copies.
//! Compaction swaps files under a write lock that readers take for reading, so a query never
//! sees an hour twice or a file vanish under it.
use std::{
    fs::{self, File},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock,
    },
};

use chrono::{DateTime, NaiveDateTime, Utc};
use polars::prelude::*;

use crate::{
    partials::{HourCache, Partials, Shape},
    sample::{Dim, Labels, Metric},
    window::Filter,
    MetricsError,
};

const HOUR_MS: i64 = 3_600_000;

/// A sample waiting to be written.
#[derive(Debug, Clone)]
pub struct PendingSample {
    /// Which metric.
    pub metric: Metric,
    /// Whose.
    pub labels: Arc<Labels>,
    /// When (ms).
    pub ts_ms: i64,
    /// The value.
    pub value: f64,
}

/// What a write or a compaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Rows written.
    pub rows: u64,
}

/// The Parquet history in one directory.
#[derive(Debug)]
pub struct History {
    dir: PathBuf,
    /// Readers hold it shared while they list and read files; compaction and retention hold
    /// it exclusively while they swap or remove files.
    swap: RwLock<()>,
    seq: AtomicU64,
    /// Closed hours' partials per query shape (see [`crate::partials`]).
    cache: HourCache,
}

/// Points the hour cache keeps (24 bytes each: about 100 MB), enough for a 24-hour chart of
/// 2,000 series at 1-minute steps.
pub const CACHE_POINTS: usize = 4_000_000;

impl History {
    /// Opens (creating) the history in `dir`; removes temporary files a crash left behind.
    pub fn open(dir: &Path) -> Result<Self, MetricsError> {
        fs::create_dir_all(dir).map_err(|e| MetricsError::io(dir, e))?;
        let h = Self {
            dir: dir.to_path_buf(),
            swap: RwLock::new(()),
            seq: AtomicU64::new(0),
            cache: HourCache::new(CACHE_POINTS),
        };
        for (_, hour_dir) in h.hours()? {
            for f in fs::read_dir(&hour_dir).map_err(|e| MetricsError::io(&hour_dir, e))? {
                let p = f.map_err(|e| MetricsError::io(&hour_dir, e))?.path();
                if p.extension().is_some_and(|e| e == "tmp") {
                    let _ = fs::remove_file(&p);
                }
            }
        }
        Ok(h)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Hour directories, oldest first: (hour start in ms, path).
    fn hours(&self) -> Result<Vec<(i64, PathBuf)>, MetricsError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| MetricsError::io(&self.dir, e))? {
            let entry = entry.map_err(|e| MetricsError::io(&self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(t) =
                NaiveDateTime::parse_from_str(&format!("{name}:00:00"), "%Y-%m-%dT%H:%M:%S")
            else {
                continue;
            };
            out.push((t.and_utc().timestamp_millis(), entry.path()));
        }
        out.sort();
        Ok(out)
    }

    /// The hour's sample files, and its rollup if it is the rollup of its only (compacted)
    /// file.
    fn files(hour_dir: &Path) -> Result<HourFiles, MetricsError> {
        let mut raw = Vec::new();
        let mut rollups = Vec::new();
        for f in fs::read_dir(hour_dir).map_err(|e| MetricsError::io(hour_dir, e))? {
            let p = f.map_err(|e| MetricsError::io(hour_dir, e))?.path();
            if p.extension().is_none_or(|e| e != "parquet") {
                continue;
            }
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with(ROLLUP) {
                rollups.push(p);
            } else {
                raw.push(p);
            }
        }
        raw.sort();
        rollups.sort();
        let rollup = match raw.as_slice() {
            [only] => {
                let want = rollup_name(only);
                rollups
                    .iter()
                    .find(|r| r.file_name() == want.file_name())
                    .cloned()
            }
            _ => None,
        };
        Ok(HourFiles {
            raw,
            rollup,
            all_rollups: rollups,
        })
    }

    fn hour_dir(&self, hour_ms: i64) -> PathBuf {
        let t = DateTime::from_timestamp_millis(hour_ms).unwrap_or_default();
        self.dir.join(t.format("%Y-%m-%dT%H").to_string())
    }

    fn file_name(&self, kind: &str) -> String {
        format!(
            "{kind}-{}-{}.parquet",
            Utc::now().timestamp_millis(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Writes the samples (one file per hour they fall in), fsync'd before this returns.
    pub fn write(&self, samples: &[PendingSample]) -> Result<Written, MetricsError> {
        let mut by_hour: std::collections::BTreeMap<i64, Vec<&PendingSample>> = Default::default();
        for s in samples {
            by_hour
                .entry(s.ts_ms.div_euclid(HOUR_MS) * HOUR_MS)
                .or_default()
                .push(s);
        }
        let mut out = Written::default();
        for (hour, rows) in by_hour {
            let mut df = frame(&rows)?
                .lazy()
                .sort(["metric", "sid", "ts"], SortMultipleOptions::default())
                .collect()?;
            let dir = self.hour_dir(hour);
            fs::create_dir_all(&dir).map_err(|e| MetricsError::io(&dir, e))?;
            let path = dir.join(self.file_name("part"));
            out.bytes += write_parquet(&mut df, &path)?;
            sync_dir(&dir)?;
            out.files += 1;
            out.rows += rows.len() as u64;
        }
        Ok(out)
    }

    /// Samples of `metric` in `[from_ms, to_ms)` that `filter` keeps, deduplicated: columns
    /// `ts` (i64 ms), `s` (u64 series ID), `value`, and the `dims` labels. `None`: no file
    /// covers the range.
    pub fn read(
        &self,
        metric: Metric,
        filter: &Filter,
        from_ms: i64,
        to_ms: i64,
        dims: &[Dim],
    ) -> Result<Option<DataFrame>, MetricsError> {
        if from_ms >= to_ms {
            return Ok(None);
        }
        let mut predicate = col("metric")
            .eq(lit(metric.as_str()))
            .and(col("ts").cast(DataType::Int64).gt_eq(lit(from_ms)))
            .and(col("ts").cast(DataType::Int64).lt(lit(to_ms)));
        if let Some(f) = filter.expr() {
            predicate = predicate.and(f);
        }
        let mut select = vec![
            col("ts").cast(DataType::Int64),
            col("sid").alias("s"),
            col("value"),
        ];
        select.extend(dims.iter().map(|d| col(d.as_str())));
        self.scan(from_ms, to_ms, predicate, select)
    }

    /// Like [`History::read`], but the hours that lie entirely in `[from_ms, to_ms)` and have a
    /// 1-minute rollup come back as partials grouped by `dims` and `step_ms` buckets for this
    /// `shape` (see [`crate::partials`]), from the cache when a query of the same shape read
    /// them before (a rollup file never changes: a recompaction writes a new one). Returns the
    /// raw samples (as `read`) and each rollup hour's partials.
    #[allow(clippy::too_many_arguments)]
    pub fn read_partials(
        &self,
        metric: Metric,
        filter: &Filter,
        from_ms: i64,
        to_ms: i64,
        dims: &[Dim],
        shape: Shape,
        step_ms: i64,
    ) -> Result<(Option<DataFrame>, Vec<Arc<Partials>>), MetricsError> {
        if from_ms >= to_ms {
            return Ok((None, Vec::new()));
        }
        let needed = shape.needed();
        let mut predicate = col("metric").eq(lit(metric.as_str()));
        if let Some(f) = filter.expr() {
            predicate = predicate.and(f);
        }
        let dim_names: Vec<&str> = dims.iter().map(|d| d.as_str()).collect();
        let _guard = self.swap.read().unwrap_or_else(|e| e.into_inner());
        let mut raw_hours = Vec::new();
        let mut hours = Vec::new();
        for (hour, dir) in self.hours()? {
            if hour + HOUR_MS <= from_ms || hour >= to_ms {
                continue;
            }
            let files = Self::files(&dir)?;
            match &files.rollup {
                Some(r) if hour >= from_ms && hour + HOUR_MS <= to_ms => {
                    let key = format!(
                        "{}|{metric:?}|{filter:?}|{dims:?}|{:?}|{step_ms}",
                        r.display(),
                        shape.agg
                    );
                    if let Some(p) = self.cache.get(&key) {
                        hours.push(p);
                        continue;
                    }
                    let mut keys: Vec<Expr> = dims.iter().map(|d| col(d.as_str())).collect();
                    keys.push(col("bucket"));
                    let ts = col("ts").cast(DataType::Int64);
                    let mut select = vec![(ts.clone() - ts % lit(step_ms)).alias("bucket")];
                    select.extend(needed.iter().map(|c| col(*c)));
                    select.extend(dims.iter().map(|d| col(d.as_str())));
                    let grouped = scan_files(std::slice::from_ref(r))?
                        .filter(predicate.clone())
                        .select(select)
                        .group_by(keys)
                        .agg(shape.combine_exprs())
                        .collect()?;
                    let p = Arc::new(Partials::from_frame(&grouped, &dim_names, needed)?);
                    self.cache.put(key, Arc::clone(&p));
                    hours.push(p);
                }
                _ => raw_hours.push((hour, dir, files)),
            }
        }
        let raw_predicate = predicate
            .and(col("ts").cast(DataType::Int64).gt_eq(lit(from_ms)))
            .and(col("ts").cast(DataType::Int64).lt(lit(to_ms)));
        let mut select = vec![
            col("ts").cast(DataType::Int64),
            col("sid").alias("s"),
            col("value"),
        ];
        select.extend(dims.iter().map(|d| col(d.as_str())));
        let raw = Self::collect_raw(raw_hours, &raw_predicate, &select)?;
        Ok((raw, hours))
    }

    /// Points held by the hour cache.
    pub fn cached_points(&self) -> usize {
        self.cache.points()
    }

    /// Every sample in `[from_ms, to_ms)`, all columns (`ts` as i64 ms): for reloading the
    /// window after a restart.
    pub fn read_all(&self, from_ms: i64, to_ms: i64) -> Result<Option<DataFrame>, MetricsError> {
        let predicate = col("ts")
            .cast(DataType::Int64)
            .gt_eq(lit(from_ms))
            .and(col("ts").cast(DataType::Int64).lt(lit(to_ms)));
        let mut select = vec![col("ts").cast(DataType::Int64), col("metric"), col("sid")];
        select.extend(Dim::ALL.iter().map(|d| col(d.as_str())));
        select.push(col("value"));
        self.scan(from_ms, to_ms, predicate, select)
    }

    fn scan(
        &self,
        from_ms: i64,
        to_ms: i64,
        predicate: Expr,
        select: Vec<Expr>,
    ) -> Result<Option<DataFrame>, MetricsError> {
        let _guard = self.swap.read().unwrap_or_else(|e| e.into_inner());
        let mut hours = Vec::new();
        for (hour, dir) in self.hours()? {
            if hour + HOUR_MS <= from_ms || hour >= to_ms {
                continue;
            }
            let files = Self::files(&dir)?;
            hours.push((hour, dir, files));
        }
        Self::collect_raw(hours, &predicate, &select)
    }

    fn collect_raw(
        hours: Vec<(i64, PathBuf, HourFiles)>,
        predicate: &Expr,
        select: &[Expr],
    ) -> Result<Option<DataFrame>, MetricsError> {
        let mut frames = Vec::new();
        for (_, _, files) in hours {
            let files = files.raw;
            let n = files.len();
            if n == 0 {
                continue;
            }
            let mut lf = scan_files(&files)?.filter(predicate.clone());
            if n > 1 {
                // Parts not yet compacted may hold a replayed sample twice.
                lf = lf.unique_generic(Some(vec![col("sid"), col("ts")]), UniqueKeepStrategy::Any);
            }
            frames.push(lf.select(select));
        }
        if frames.is_empty() {
            return Ok(None);
        }
        let df = concat(frames, UnionArgs::default())?.collect()?;
        Ok(Some(df))
    }

    /// Merges the files of an hour into one (deduplicated, sorted): once it has `max_parts`
    /// files, and once it is over (`now_ms` a minute past its end), then also writing its
    /// 1-minute rollup.
    pub fn compact(&self, now_ms: i64, max_parts: usize) -> Result<Written, MetricsError> {
        let mut out = Written::default();
        for (hour, dir) in self.hours()? {
            let hour_files = Self::files(&dir)?;
            let closed = hour + HOUR_MS + 60_000 <= now_ms;
            let files = hour_files.raw;
            let due = if closed {
                !files.is_empty() && hour_files.rollup.is_none()
            } else {
                files.len() >= max_parts.max(2)
            };
            if !due {
                continue;
            }
            let mut df = scan_files(&files)?
                .unique_generic(Some(vec![col("sid"), col("ts")]), UniqueKeepStrategy::Any)
                .sort(["metric", "sid", "ts"], SortMultipleOptions::default())
                .collect()?;
            let name = self.file_name("compact");
            let path = dir.join(&name);
            let tmp = dir.join(format!("{name}.tmp"));
            out.bytes += write_parquet(&mut df, &tmp)?;
            out.rows += df.height() as u64;
            out.files += 1;
            let rollup = if closed {
                let mut r = rollup_frame(&df)?;
                let final_path = rollup_name(&path);
                let tmp = final_path.with_extension("parquet.tmp");
                out.bytes += write_parquet(&mut r, &tmp)?;
                out.files += 1;
                Some((tmp, final_path))
            } else {
                None
            };
            {
                let _guard = self.swap.write().unwrap_or_else(|e| e.into_inner());
                fs::rename(&tmp, &path).map_err(|e| MetricsError::io(&tmp, e))?;
                if let Some((tmp, final_path)) = &rollup {
                    fs::rename(tmp, final_path).map_err(|e| MetricsError::io(tmp, e))?;
                }
                for f in files.iter().chain(&hour_files.all_rollups) {
                    fs::remove_file(f).map_err(|e| MetricsError::io(f, e))?;
                }
            }
            sync_dir(&dir)?;
            tracing::debug!(hour = %dir.display(), parts = files.len(), rows = df.height(), "compacted");
        }
        Ok(out)
    }

    /// Removes the hours that ended before `cutoff_ms`; returns how many.
    pub fn retain(&self, cutoff_ms: i64) -> Result<usize, MetricsError> {
        let mut removed = 0;
        for (hour, dir) in self.hours()? {
            if hour + HOUR_MS <= cutoff_ms {
                let _guard = self.swap.write().unwrap_or_else(|e| e.into_inner());
                fs::remove_dir_all(&dir).map_err(|e| MetricsError::io(&dir, e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Number of Parquet files (all hours).
    pub fn file_count(&self) -> Result<usize, MetricsError> {
        let mut n = 0;
        for (_, dir) in self.hours()? {
            let f = Self::files(&dir)?;
            n += f.raw.len() + f.all_rollups.len();
        }
        Ok(n)
    }
}

const ROLLUP: &str = "rollup1m-";

/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 16_384;

/// The files of one hour.
#[derive(Debug)]
struct HourFiles {
    /// Sample files (parts and compacted).
    raw: Vec<PathBuf>,
    /// The valid rollup: of the hour's only sample file.
    rollup: Option<PathBuf>,
    /// Every rollup file present (old ones are removed by the next compaction).
    all_rollups: Vec<PathBuf>,
}

/// The rollup file of a compacted file.
fn rollup_name(compacted: &Path) -> PathBuf {
    let name = compacted
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("none.parquet");
    compacted.with_file_name(format!("{ROLLUP}{name}"))
}

/// Per series and minute: `n`, `sum`, `min`, `max` of the (deduplicated) samples.
fn rollup_frame(df: &DataFrame) -> Result<DataFrame, MetricsError> {
    let ts = col("ts").cast(DataType::Int64);
    let mut keys = vec![
        col("metric"),
        col("sid"),
        (ts.clone() - ts % lit(60_000i64)).alias("minute"),
    ];
    keys.extend(Dim::ALL.iter().map(|d| col(d.as_str())));
    Ok(df
        .clone()
        .lazy()
        .group_by(keys)
        .agg([
            col("value").count().cast(DataType::Float64).alias("n"),
            col("value").sum().alias("sum"),
            col("value").min().alias("min"),
            col("value").max().alias("max"),
        ])
        .with_column(
            col("minute")
                .cast(DataType::Datetime(TimeUnit::Milliseconds, None))
                .alias("ts"),
        )
        .select(
            [
                "ts", "metric", "sid", "app", "instance", "node", "group", "host", "n", "sum",
                "min", "max",
            ]
            .map(col),
        )
        .sort(["metric", "sid", "ts"], SortMultipleOptions::default())
        .collect()?)
}

fn scan_files(files: &[PathBuf]) -> Result<LazyFrame, MetricsError> {
    let mut lfs = Vec::with_capacity(files.len());
    for f in files {
        let path = PlRefPath::try_from_path(f)?;
        lfs.push(LazyFrame::scan_parquet(path, ScanArgsParquet::default())?);
    }
    if lfs.len() == 1 {
        return Ok(lfs.pop().expect("one"));
    }
    Ok(concat(lfs, UnionArgs::default())?)
}

/// The Parquet schema's frame for these samples.
fn frame(rows: &[&PendingSample]) -> Result<DataFrame, MetricsError> {
    let n = rows.len();
    let ts: Vec<i64> = rows.iter().map(|r| r.ts_ms).collect();
    let metric: Vec<&str> = rows.iter().map(|r| r.metric.as_str()).collect();
    let sid: Vec<u64> = rows.iter().map(|r| r.labels.series_id(r.metric)).collect();
    let value: Vec<f64> = rows.iter().map(|r| r.value).collect();
    let mut cols = vec![
        Column::new("ts".into(), ts).cast(&DataType::Datetime(TimeUnit::Milliseconds, None))?,
        Column::new("metric".into(), metric),
        Column::new("sid".into(), sid),
    ];
    for d in Dim::ALL {
        let v: Vec<&str> = rows.iter().map(|r| r.labels.get(d)).collect();
        cols.push(Column::new(d.as_str().into(), v));
    }
    cols.push(Column::new("value".into(), value));
    Ok(DataFrame::new(n, cols)?)
}

/// Writes `df` to `path` through a `.tmp` file, fsync'd, then renamed. Returns the size.
fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<u64, MetricsError> {
    let tmp = if path.extension().is_some_and(|e| e == "tmp") {
        path.to_path_buf()
    } else {
        path.with_extension("parquet.tmp")
    };
    let mut file = File::create(&tmp).map_err(|e| MetricsError::io(&tmp, e))?;
    // Small row groups: files are sorted by metric, so a query's metric filter skips the
    // row groups of the other metrics by their statistics instead of decoding them.
    let bytes = ParquetWriter::new(&mut file)
        .with_row_group_size(Some(ROW_GROUP_ROWS))
        .finish(df)?;
    file.sync_all().map_err(|e| MetricsError::io(&tmp, e))?;
    if tmp != path {
        fs::rename(&tmp, path).map_err(|e| MetricsError::io(path, e))?;
    }
    Ok(bytes)
}

fn sync_dir(dir: &Path) -> Result<(), MetricsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| MetricsError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::Agg;

    /// Sums of the two partials over every point of these hours.
    fn totals(hours: &[Arc<Partials>]) -> (f64, f64) {
        hours
            .iter()
            .flat_map(|h| h.points.iter().flatten())
            .fold((0.0, 0.0), |(a, b), (_, p)| (a + p[0], b + p[1]))
    }

    fn sample(app: &str, ts_ms: i64, value: f64) -> PendingSample {
        PendingSample {
            metric: Metric::CpuPct,
            labels: Arc::new(Labels {
                app: app.into(),
                instance: "i".into(),
                ..Labels::default()
            }),
            ts_ms,
            value,
        }
    }

    const H: i64 = 1_800_000_000_000 / HOUR_MS * HOUR_MS;

    #[test]
    fn write_read_dedupe_compact_retain() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        // Two hours; the second batch repeats two samples (a replay).
        let batch: Vec<_> = (0..10)
            .map(|i| sample("a", H + i * 600_000, i as f64))
            .collect();
        assert_eq!(h.write(&batch).unwrap().files, 2);
        h.write(&batch[4..7]).unwrap();
        h.write(&[sample("b", H + 1000, 7.0)]).unwrap();
        assert_eq!(h.file_count().unwrap(), 5);

        let all = |h: &History| {
            h.read(
                Metric::CpuPct,
                &Filter::default(),
                H,
                H + 2 * HOUR_MS,
                &[Dim::App],
            )
            .unwrap()
            .unwrap()
        };
        assert_eq!(all(&h).height(), 11);
        let only_a = Filter {
            app: vec!["a".into()],
            ..Filter::default()
        };
        let a = h
            .read(Metric::CpuPct, &only_a, H, H + HOUR_MS, &[])
            .unwrap()
            .unwrap();
        assert_eq!(a.height(), 6);
        assert_eq!(a.column("value").unwrap().f64().unwrap().sum(), Some(15.0));
        assert!(
            h.read(Metric::RssPct, &Filter::default(), H, H + HOUR_MS, &[])
                .unwrap()
                .unwrap()
                .height()
                == 0
        );

        // The first hour is over and has 3 files: one compacted file and its rollup; the
        // second (open) has 2 < 8.
        let w = h.compact(H + HOUR_MS + 120_000, 8).unwrap();
        assert_eq!((w.files, w.rows), (2, 7));
        assert_eq!(h.file_count().unwrap(), 4);
        assert_eq!(all(&h).height(), 11);
        // Both hours, mean by app at 1-minute steps.
        let two_hours_by_app = || {
            h.read_partials(
                Metric::CpuPct,
                &Filter::default(),
                H,
                H + 2 * HOUR_MS,
                &[Dim::App],
                Shape { agg: Agg::Mean },
                60_000,
            )
            .unwrap()
        };
        let (raw, hours) = two_hours_by_app();
        assert_eq!(raw.unwrap().height(), 4);
        assert_eq!(hours.len(), 1);
        assert_eq!(totals(&hours).0, 7.0, "n over the rollup hour");
        // Nothing to do for an hour already compacted with its rollup.
        let w = h.compact(H + 3 * HOUR_MS, 8).unwrap();
        assert_eq!((w.files, w.rows), (2, 4));
        assert_eq!(h.compact(H + 3 * HOUR_MS, 8).unwrap(), Written::default());
        assert_eq!(all(&h).height(), 11);
        let (raw, hours) = two_hours_by_app();
        assert!(raw.is_none());
        assert_eq!(hours.len(), 2);
        assert_eq!(totals(&hours), (11.0, 52.0));
        // The same shape again: from the cache.
        let cached = h.cached_points();
        assert!(cached > 0);
        two_hours_by_app();
        assert_eq!(h.cached_points(), cached);
        // A range cutting an hour reads that hour raw.
        let (raw, hours) = h
            .read_partials(
                Metric::CpuPct,
                &Filter::default(),
                H + 1,
                H + 2 * HOUR_MS,
                &[],
                Shape { agg: Agg::Max },
                60_000,
            )
            .unwrap();
        // (the sample at H itself is before the range)
        assert_eq!(raw.unwrap().height(), 6);
        assert_eq!(hours.len(), 1);

        let reloaded = h.read_all(H, H + 2 * HOUR_MS).unwrap().unwrap();
        assert_eq!(reloaded.height(), 11);

        assert_eq!(h.retain(H + HOUR_MS).unwrap(), 1);
        assert_eq!(all(&h).height(), 4);
        assert!(h
            .read(Metric::CpuPct, &Filter::default(), H - HOUR_MS, H, &[])
            .unwrap()
            .is_none());
    }
}
