//! The index on disk: one Tantivy index per UTC day (`<dir>/YYYY-MM-DD/`), so a time-ranged
//! query opens only the days it needs and retention drops whole days.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use chrono::{DateTime, NaiveDate, Utc};
use tantivy::{directory::MmapDirectory, Index, IndexReader, ReloadPolicy};

use crate::{checkpoint::Checkpoint, index::LogFields, SearchError};

/// One day's index.
#[derive(Clone)]
pub struct Partition {
    /// The UTC day of the lines it holds.
    pub day: NaiveDate,
    /// The Tantivy index.
    pub index: Index,
    /// Its reader (reloaded by the logpipe after each commit, or on demand).
    pub reader: IndexReader,
    /// Where it lives.
    pub path: PathBuf,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition").field("day", &self.day).finish()
    }
}

impl Partition {
    /// The Kafka offsets stored in the partition's last commit payload.
    pub fn checkpoint(&self) -> Result<Checkpoint, SearchError> {
        let metas = self.index.load_metas()?;
        Checkpoint::from_payload(metas.payload.as_deref())
    }

    /// Number of documents visible to searches now.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}

/// Every partition under a directory.
#[derive(Debug)]
pub struct LogStore {
    dir: PathBuf,
    fields: LogFields,
    parts: RwLock<BTreeMap<NaiveDate, Arc<Partition>>>,
    executor: SearchPool,
    /// When [`LogStore::reload_if_older`] last reloaded.
    reloaded_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// The search threads every day's index shares (one per core).
#[derive(Clone)]
struct SearchPool(tantivy::Executor);

impl std::fmt::Debug for SearchPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SearchPool")
    }
}

impl LogStore {
    /// Opens (creating the directory if needed) and loads the partitions found.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, SearchError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| SearchError::io(&dir, e))?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let executor = match threads {
            1 => tantivy::Executor::single_thread(),
            n => tantivy::Executor::multi_thread(n, "drover-search-")?,
        };
        let store = Self {
            dir,
            fields: LogFields::new(),
            parts: RwLock::new(BTreeMap::new()),
            executor: SearchPool(executor),
            reloaded_at: std::sync::Mutex::new(None),
        };
        store.refresh()?;
        Ok(store)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The schema's fields.
    pub fn fields(&self) -> &LogFields {
        &self.fields
    }

    /// Picks up partitions created by another process (a separate `drover logpipe`) and forgets
    /// deleted ones.
    pub fn refresh(&self) -> Result<(), SearchError> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| SearchError::io(&self.dir, e))? {
            let entry = entry.map_err(|e| SearchError::io(&self.dir, e))?;
            let name = entry.file_name();
            let Some(day) = name
                .to_str()
                .and_then(|n| NaiveDate::parse_from_str(n, "%Y-%m-%d").ok())
            else {
                continue;
            };
            if entry.path().join("meta.json").exists() {
                found.push(day);
            }
        }
        let known: Vec<NaiveDate> = self.read().keys().copied().collect();
        for day in &found {
            if !known.contains(day) {
                self.open_partition(*day, false)?;
            }
        }
        self.write().retain(|d, _| found.contains(d));
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<NaiveDate, Arc<Partition>>> {
        self.parts.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<NaiveDate, Arc<Partition>>> {
        self.parts.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The partition of a day, created when `create` is set.
    pub fn open_partition(
        &self,
        day: NaiveDate,
        create: bool,
    ) -> Result<Option<Arc<Partition>>, SearchError> {
        if let Some(p) = self.read().get(&day) {
            return Ok(Some(Arc::clone(p)));
        }
        let path = self.dir.join(day.format("%Y-%m-%d").to_string());
        if !create && !path.join("meta.json").exists() {
            return Ok(None);
        }
        std::fs::create_dir_all(&path).map_err(|e| SearchError::io(&path, e))?;
        let directory = MmapDirectory::open(&path).map_err(|source| SearchError::OpenDir {
            path: path.display().to_string(),
            source,
        })?;
        let mut index = match Index::open_or_create(directory, self.fields.schema.clone()) {
            Err(tantivy::TantivyError::SchemaError(e)) => {
                return Err(SearchError::OtherVersion {
                    path: path.display().to_string(),
                    dir: self.dir.display().to_string(),
                    detail: e,
                })
            }
            other => other?,
        };
        // Searches that visit every segment (counts, histograms, field values) run them on
        // all cores; one pool for every day.
        index.set_executor(self.executor.0.clone());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let part = Arc::new(Partition {
            day,
            index,
            reader,
            path,
        });
        let mut parts = self.write();
        let entry = parts.entry(day).or_insert(part);
        Ok(Some(Arc::clone(entry)))
    }

    /// Every partition, newest first.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.read().values().rev().cloned().collect()
    }

    /// The partitions that can hold lines between `from` and `to` (inclusive), newest first.
    pub fn partitions_between(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Vec<Arc<Partition>> {
        let lo = from.map(|t| t.date_naive()).unwrap_or(NaiveDate::MIN);
        let hi = to.map(|t| t.date_naive()).unwrap_or(NaiveDate::MAX);
        if lo > hi {
            return vec![];
        }
        self.read()
            .range(lo..=hi)
            .rev()
            .map(|(_, p)| Arc::clone(p))
            .collect()
    }

    /// Reloads every partition's reader (after another process committed).
    pub fn reload(&self) -> Result<(), SearchError> {
        self.refresh()?;
        for p in self.partitions() {
            p.reader.reload()?;
        }
        Ok(())
    }

    /// [`LogStore::reload`], unless a reload happened less than `age` ago: live tails poll
    /// every half second each, and many open tails share one reload.
    pub fn reload_if_older(&self, age: std::time::Duration) -> Result<(), SearchError> {
        {
            let mut at = self.reloaded_at.lock().unwrap_or_else(|e| e.into_inner());
            if at.is_some_and(|t| t.elapsed() < age) {
                return Ok(());
            }
            *at = Some(std::time::Instant::now());
        }
        self.reload()
    }

    /// Deletes the partitions of days before `cutoff`'s day; returns the days removed.
    pub fn drop_before(&self, cutoff: DateTime<Utc>) -> Result<Vec<NaiveDate>, SearchError> {
        let cutoff = cutoff.date_naive();
        let old: Vec<Arc<Partition>> = self
            .read()
            .range(..cutoff)
            .map(|(_, p)| Arc::clone(p))
            .collect();
        let mut removed = Vec::new();
        for p in old {
            self.write().remove(&p.day);
            std::fs::remove_dir_all(&p.path).map_err(|e| SearchError::io(&p.path, e))?;
            tracing::info!(day = %p.day, "retention: dropped the log partition");
            removed.push(p.day);
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn partitions_by_range_and_retention() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        for d in ["2026-11-18", "2026-11-20", "2026-11-21", "2026-11-22"] {
            store.open_partition(day(d), true).unwrap();
        }
        let days = |v: Vec<Arc<Partition>>| v.iter().map(|p| p.day.to_string()).collect::<Vec<_>>();
        let from = Utc.with_ymd_and_hms(2026, 11, 20, 23, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2026, 11, 21, 1, 0, 0).unwrap();
        assert_eq!(
            days(store.partitions_between(Some(from), Some(to))),
            ["2026-11-21", "2026-11-20"]
        );
        assert_eq!(days(store.partitions_between(None, Some(from))).len(), 2);
        assert!(store.partitions_between(Some(to), Some(from)).is_empty());

        // A second store on the same directory sees them (another process).
        let other = LogStore::open(dir.path()).unwrap();
        assert_eq!(other.partitions().len(), 4);

        let removed = store
            .drop_before(Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap())
            .unwrap();
        assert_eq!(removed, vec![day("2026-11-18"), day("2026-11-20")]);
        assert_eq!(days(store.partitions()), ["2026-11-22", "2026-11-21"]);
        assert!(!dir.path().join("2026-11-18").exists());
        other.refresh().unwrap();
        assert_eq!(other.partitions().len(), 2);
    }

    #[test]
    fn a_partition_of_another_schema_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("2026-11-20");
        std::fs::create_dir_all(&path).unwrap();
        let mut b = tantivy::schema::Schema::builder();
        b.add_text_field("line", tantivy::schema::STORED);
        Index::create_in_dir(&path, b.build()).unwrap();
        let err = LogStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("2026-11-20"), "{err}");
        assert!(err.contains("another version of Drover"), "{err}");
        assert!(err.contains("move it out of"), "{err}");
    }
}
