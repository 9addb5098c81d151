//! Partial aggregates per series and bucket, and the cache of closed hours' partials.
//!
//! A long-range query at whole-minute steps is answered from partial aggregates: per group
//! (the `by` labels) and bucket, the pair the aggregation needs (`n` and `sum` for a mean,
//! `sum`, `min`, `max` or `n`). A closed hour's rollup file never changes (a recompaction
//! writes a new file with a new name), so its partials for one query shape are computed once
//! and kept: dashboards that refresh a 24-hour chart every few seconds then only redo the
//! open hour. The cache is bounded by the points it holds.
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use polars::prelude::*;

use crate::{window::Agg, MetricsError};

/// Groups' partials: the labels of each group and its points `(bucket start, [a, b])`, where
/// `a`, `b` are the aggregation's partials (see [`Shape::needed`]).
#[derive(Debug, Default)]
pub struct Partials {
    /// Label values of each group, in the order of the query's `by`.
    pub groups: Vec<Vec<String>>,
    /// Points of each group, by bucket start.
    pub points: Vec<Vec<(i64, [f64; 2])>>,
}

impl Partials {
    /// Points held.
    pub fn len(&self) -> usize {
        self.points.iter().map(Vec::len).sum()
    }

    /// Whether it holds no point.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// From a grouped frame: columns `bucket`, the partial columns `needed` (one or two),
    /// and the `by` label columns.
    pub fn from_frame(df: &DataFrame, by: &[&str], needed: &[&str]) -> Result<Self, MetricsError> {
        let bucket = df.column("bucket")?.i64()?;
        let a = df.column(needed[0])?.f64()?;
        let b = match needed.get(1) {
            Some(c) => Some(df.column(c)?.f64()?),
            None => None,
        };
        let keys = by
            .iter()
            .map(|d| df.column(d).and_then(|c| c.str()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Partials::default();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut key = String::new();
        for i in 0..df.height() {
            let Some(t) = bucket.get(i) else { continue };
            key.clear();
            for k in &keys {
                key.push_str(k.get(i).unwrap_or(""));
                key.push('\u{1f}');
            }
            let n = match index.get(key.as_str()) {
                Some(n) => *n,
                None => {
                    out.groups.push(
                        keys.iter()
                            .map(|k| k.get(i).unwrap_or("").to_string())
                            .collect(),
                    );
                    out.points.push(Vec::new());
                    index.insert(key.clone(), out.groups.len() - 1);
                    out.groups.len() - 1
                }
            };
            let va = a.get(i).unwrap_or(f64::NAN);
            let vb = b.as_ref().and_then(|b| b.get(i)).unwrap_or(0.0);
            out.points[n].push((t, [va, vb]));
        }
        for p in &mut out.points {
            p.sort_unstable_by_key(|p| p.0);
        }
        Ok(out)
    }
}

/// What a query asks of the partials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The aggregation (mean, sum, min, max or count).
    pub agg: Agg,
}

impl Shape {
    /// The partial columns this aggregation needs, in `[a, b]` order.
    pub fn needed(self) -> &'static [&'static str] {
        match self.agg {
            Agg::Mean => &["n", "sum"],
            Agg::Sum => &["sum"],
            Agg::Min => &["min"],
            Agg::Max => &["max"],
            _ => &["n"],
        }
    }

    /// The polars aggregations that combine rows of these partials (sums; min; max).
    pub fn combine_exprs(self) -> Vec<Expr> {
        self.needed()
            .iter()
            .map(|c| match *c {
                "min" => col("min").min(),
                "max" => col("max").max(),
                other => col(other).sum(),
            })
            .collect()
    }

    /// Two partials of the same group and bucket combined.
    fn combine(self, x: [f64; 2], y: [f64; 2]) -> [f64; 2] {
        match self.agg {
            Agg::Min => [x[0].min(y[0]), 0.0],
            Agg::Max => [x[0].max(y[0]), 0.0],
            _ => [x[0] + y[0], x[1] + y[1]],
        }
    }

    /// The value of a bucket's partials.
    fn value(self, p: [f64; 2]) -> f64 {
        match self.agg {
            Agg::Mean => p[1] / p[0],
            _ => p[0],
        }
    }
}

/// One finished series: its group's label values and its `(bucket, value)` points.
pub type GroupSeries = (Vec<String>, Vec<(i64, f64)>);

/// A group's partial points, as tests write them.
#[cfg(test)]
type GroupPoints<'a> = (&'a str, &'a [(i64, [f64; 2])]);

/// Merges partials from several sources (cached hours, raw samples) into series.
#[derive(Debug)]
pub struct Merger {
    shape: Shape,
    index: HashMap<Vec<String>, usize>,
    groups: Vec<Vec<String>>,
    points: Vec<Vec<(i64, [f64; 2])>>,
}

impl Merger {
    /// An empty merger for this shape.
    pub fn new(shape: Shape) -> Self {
        Self {
            shape,
            index: HashMap::new(),
            groups: Vec::new(),
            points: Vec::new(),
        }
    }

    /// Adds every group of `p`.
    pub fn add(&mut self, p: &Partials) {
        for (g, pts) in p.groups.iter().zip(&p.points) {
            let n = match self.index.get(g) {
                Some(n) => *n,
                None => {
                    self.index.insert(g.clone(), self.groups.len());
                    self.groups.push(g.clone());
                    self.points.push(Vec::with_capacity(pts.len()));
                    self.groups.len() - 1
                }
            };
            self.points[n].extend_from_slice(pts);
        }
    }

    /// The series: labels sorted, points by time, one value per bucket in `[from, to)`.
    pub fn finish(self, step_ms: i64, from_ms: i64, to_ms: i64) -> Vec<GroupSeries> {
        let shape = self.shape;
        let mut out: Vec<GroupSeries> = self
            .groups
            .into_iter()
            .zip(self.points)
            .map(|(g, mut pts)| {
                // Mostly sorted already (hours arrive in order): cheap.
                pts.sort_by_key(|p| p.0);
                let mut values: Vec<(i64, f64)> = Vec::with_capacity(pts.len());
                let mut current: Option<(i64, [f64; 2])> = None;
                for (t, p) in pts {
                    current = match current {
                        Some((ct, cp)) if ct == t => Some((ct, shape.combine(cp, p))),
                        Some((ct, cp)) => {
                            values.push((ct, shape.value(cp)));
                            Some((t, p))
                        }
                        None => Some((t, p)),
                    };
                }
                if let Some((ct, cp)) = current {
                    values.push((ct, shape.value(cp)));
                }
                values.retain(|(b, _)| b + step_ms > from_ms && *b < to_ms);
                (g, values)
            })
            .filter(|(_, v)| !v.is_empty())
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// Closed hours' partials by (rollup file, query shape), bounded by the points held.
#[derive(Debug)]
pub struct HourCache {
    max_points: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    map: HashMap<String, Arc<Partials>>,
    order: VecDeque<String>,
    points: usize,
}

impl HourCache {
    /// A cache holding at most `max_points` points (24 bytes each).
    pub fn new(max_points: usize) -> Self {
        Self {
            max_points,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    /// The cached partials under `key`.
    pub fn get(&self, key: &str) -> Option<Arc<Partials>> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .get(key)
            .cloned()
    }

    /// Keeps `p` under `key`, evicting the oldest entries past the bound (an entry larger
    /// than the whole bound is not kept).
    pub fn put(&self, key: String, p: Arc<Partials>) {
        let size = p.len();
        if size > self.max_points {
            return;
        }
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = c.map.insert(key.clone(), p) {
            c.points -= old.len();
        } else {
            c.order.push_back(key);
        }
        c.points += size;
        while c.points > self.max_points {
            let Some(k) = c.order.pop_front() else { break };
            if let Some(old) = c.map.remove(&k) {
                c.points -= old.len();
            }
        }
    }

    /// Points held.
    pub fn points(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).points
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partials(groups: &[GroupPoints<'_>]) -> Partials {
        Partials {
            groups: groups.iter().map(|(g, _)| vec![g.to_string()]).collect(),
            points: groups.iter().map(|(_, p)| p.to_vec()).collect(),
        }
    }

    #[test]
    fn merging_combines_the_same_bucket_across_sources() {
        let mean = Shape { agg: Agg::Mean };
        let mut m = Merger::new(mean);
        // Hour 1 (cached) and the raw samples both hold bucket 120.
        m.add(&partials(&[("a", &[(60, [2.0, 4.0]), (120, [1.0, 3.0])])]));
        m.add(&partials(&[
            ("b", &[(60, [1.0, 10.0])]),
            ("a", &[(120, [1.0, 5.0]), (180, [1.0, 1.0])]),
        ]));
        let out = m.finish(60, 0, 1_000);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0, vec!["a".to_string()]);
        assert_eq!(out[0].1, vec![(60, 2.0), (120, 4.0), (180, 1.0)]);
        assert_eq!(out[1].1, vec![(60, 10.0)]);
        let mut m = Merger::new(Shape { agg: Agg::Max });
        m.add(&partials(&[("a", &[(60, [2.0, 0.0])])]));
        m.add(&partials(&[("a", &[(60, [5.0, 0.0])])]));
        assert_eq!(m.finish(60, 0, 1_000)[0].1, vec![(60, 5.0)]);
    }

    #[test]
    fn buckets_outside_the_range_are_dropped() {
        let mut m = Merger::new(Shape { agg: Agg::Sum });
        m.add(&partials(&[(
            "a",
            &[(0, [1.0, 0.0]), (60, [1.0, 0.0]), (120, [1.0, 0.0])],
        )]));
        // [61, 120): the bucket at 60 overlaps it, 0 and 120 do not.
        assert_eq!(m.finish(60, 61, 120)[0].1, vec![(60, 1.0)]);
    }

    #[test]
    fn the_cache_is_bounded_by_points() {
        let c = HourCache::new(5);
        let p = |n: usize| Arc::new(partials(&[("a", &vec![(0, [1.0, 0.0]); n])]));
        c.put("h1".into(), p(3));
        c.put("h2".into(), p(2));
        assert_eq!(c.points(), 5);
        c.put("h3".into(), p(2));
        assert!(c.get("h1").is_none(), "the oldest goes first");
        assert!(c.get("h2").is_some() && c.get("h3").is_some());
        c.put("huge".into(), p(6));
        assert!(c.get("huge").is_none());
        assert_eq!(c.points(), 4);
    }
}
