//! The store: the in-memory [`Window`] and the Parquet [`History`] behind one handle that the
//! consumer writes to and the API reads from.
use std::{
    path::Path,
    sync::{Arc, Mutex, RwLock, RwLockReadGuard},
    time::Duration,
};

use crate::{
    history::{History, PendingSample, Written},
    sample::{Dim, Labels, Metric, Samples},
    window::{Inserted, Window},
    Clock, MetricsError,
};

/// Settings of the store.
#[derive(Clone)]
pub struct StoreConfig {
    /// How much the in-memory window keeps at full resolution.
    pub window: Duration,
    /// Remove history older than this (`None`: keep forever).
    pub retention: Option<Duration>,
    /// Compact an hour once it has this many part files (or when it is over).
    pub compact_parts: usize,
    /// The clock.
    pub clock: Clock,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("window", &self.window)
            .field("retention", &self.retention)
            .field("compact_parts", &self.compact_parts)
            .finish()
    }
}

impl Default for StoreConfig {
    /// One hour in memory, seven days of history, compaction at 32 parts, the wall clock.
    fn default() -> Self {
        Self {
            window: Duration::from_secs(3600),
            retention: Some(Duration::from_secs(7 * 86_400)),
            compact_parts: 32,
            clock: crate::system_clock(),
        }
    }
}

/// What [`MetricsStore::add`] did with a record's samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Added {
    /// Samples kept (in memory, if recent enough, and pending for history).
    pub added: u64,
    /// Samples the window already had (replays): not kept again.
    pub duplicates: u64,
}

/// The metrics store: recent samples in memory, all of them in Parquet.
#[derive(Debug)]
pub struct MetricsStore {
    cfg: StoreConfig,
    window: RwLock<Window>,
    history: History,
    /// Samples added but not yet written to history (owned by the consumer between flushes).
    pending: Mutex<Vec<PendingSample>>,
}

impl MetricsStore {
    /// Opens the store in `dir` and reloads the window's span from history, so a restart keeps
    /// the recent windows.
    pub fn open(dir: &Path, cfg: StoreConfig) -> Result<Self, MetricsError> {
        let history = History::open(dir)?;
        let mut window = Window::new(cfg.window, Arc::clone(&cfg.clock));
        let from = window.covers_from_ms();
        if let Some(df) = history.read_all(from, i64::MAX)? {
            let ts = df.column("ts")?.i64()?;
            let metric = df.column("metric")?.str()?;
            let value = df.column("value")?.f64()?;
            let label_cols = Dim::ALL
                .iter()
                .map(|d| df.column(d.as_str()).and_then(|c| c.str()))
                .collect::<Result<Vec<_>, _>>()?;
            for i in 0..df.height() {
                let (Some(t), Some(m), Some(v)) = (ts.get(i), metric.get(i), value.get(i)) else {
                    continue;
                };
                let Ok(m) = m.parse::<Metric>() else { continue };
                let l = |k: usize| label_cols[k].get(i).unwrap_or("").to_string();
                let labels = Labels {
                    app: l(0),
                    instance: l(1),
                    node: l(2),
                    group: l(3),
                    host: l(4),
                };
                window.insert(m, &labels, t, v);
            }
            tracing::info!(
                samples = window.len(),
                series = window.series_count(),
                "metrics window reloaded from history"
            );
        }
        Ok(Self {
            cfg,
            window: RwLock::new(window),
            history,
            pending: Mutex::new(Vec::new()),
        })
    }

    /// The settings.
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Now by the store's clock, ms.
    pub fn now_ms(&self) -> i64 {
        self.cfg.clock.now().timestamp_millis()
    }

    /// The window, for reading (window aggregations, latest values).
    pub fn window(&self) -> RwLockReadGuard<'_, Window> {
        self.window.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The history.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Adds a record's samples: into the window (unless it already has them) and pending
    /// for history.
    pub fn add(&self, s: &Samples) -> Added {
        let labels = Arc::new(s.labels.clone());
        let mut out = Added::default();
        let mut fresh = Vec::with_capacity(s.values.len());
        {
            let mut w = self.window.write().unwrap_or_else(|e| e.into_inner());
            for &(metric, value) in &s.values {
                match w.insert(metric, &labels, s.ts_ms, value) {
                    Inserted::Duplicate => out.duplicates += 1,
                    Inserted::Added | Inserted::TooOld => {
                        out.added += 1;
                        fresh.push(PendingSample {
                            metric,
                            labels: Arc::clone(&labels),
                            ts_ms: s.ts_ms,
                            value,
                        });
                    }
                }
            }
        }
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(fresh);
        out
    }

    /// Samples waiting for [`MetricsStore::flush`].
    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Writes the pending samples to history (fsync'd). On error they stay pending.
    pub fn flush(&self) -> Result<Written, MetricsError> {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if batch.is_empty() {
            return Ok(Written::default());
        }
        match self.history.write(&batch) {
            Ok(w) => Ok(w),
            Err(e) => {
                let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                let newer = std::mem::replace(&mut *p, batch);
                p.extend(newer);
                Err(e)
            }
        }
    }

    /// Drops old samples from memory, compacts hours, applies retention. Returns what
    /// compaction wrote and how many hours retention removed.
    pub fn maintain(&self) -> Result<(Written, usize), MetricsError> {
        self.window
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .prune();
        let now = self.now_ms();
        let written = self.history.compact(now, self.cfg.compact_parts.max(2))?;
        let removed = match self.cfg.retention {
            Some(r) => self
                .history
                .retain(now - i64::try_from(r.as_millis()).unwrap_or(i64::MAX / 4))?,
            None => 0,
        };
        Ok((written, removed))
    }
}

#[cfg(test)]
mod tests {
    use drover_schema::time::{Clock as _, ManualClock as FakeClock};

    use super::*;
    use crate::{
        window::{Agg, Filter, WindowQuery},
        Metric,
    };

    fn samples(app: &str, ts_ms: i64, cpu: f64) -> Samples {
        Samples {
            labels: Labels {
                app: app.into(),
                instance: format!("{app}-1"),
                ..Labels::default()
            },
            ts_ms,
            values: vec![(Metric::CpuPct, cpu), (Metric::NetRxBytes, cpu * 10.0)],
        }
    }

    #[test]
    fn restart_reloads_the_window_and_replays_are_not_doubled() {
        let dir = tempfile::tempdir().unwrap();
        let clock = FakeClock::at_ms(1_800_000_000_000);
        let cfg = StoreConfig {
            clock: clock.shared(),
            ..StoreConfig::default()
        };
        let t = clock.now().timestamp_millis();
        let store = MetricsStore::open(dir.path(), cfg.clone()).unwrap();
        for i in 0..10 {
            store.add(&samples("a", t - i * 10_000, i as f64));
        }
        assert_eq!(store.pending(), 20);
        assert_eq!(store.flush().unwrap().rows, 20);
        // Not flushed: lost in the crash, but replayed from Kafka.
        store.add(&samples("a", t + 1, 100.0));
        drop(store);

        let store = MetricsStore::open(dir.path(), cfg).unwrap();
        assert_eq!(store.window().len(), 20);
        // The replay: the 10 flushed ones again (duplicates) and the lost one.
        let mut dup = 0;
        for i in 0..10 {
            dup += store
                .add(&samples("a", t - i * 10_000, i as f64))
                .duplicates;
        }
        assert_eq!(dup, 20);
        assert_eq!(store.add(&samples("a", t + 1, 100.0)).added, 2);
        assert_eq!(store.pending(), 2);
        let q = WindowQuery {
            metric: Metric::CpuPct,
            range: Duration::from_secs(300),
            by: vec![],
            agg: Agg::Count,
            filter: Filter::default(),
        };
        clock.advance(Duration::from_millis(1));
        assert_eq!(store.window().aggregate(&q).unwrap()[0].value, 11.0);
        store.flush().unwrap();
        store.maintain().unwrap();
    }
}
