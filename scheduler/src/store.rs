//! The master's embedded store: apps, tasks, nodes, deployments, jobs and job runs in a redb file under the
//! data dir, one table each (key: ID, value: JSON). The master saves after each change, in
//! one transaction, so a restart (or a crash) loses nothing it acknowledged; only the rows
//! that changed since the last save are written.
use std::{
    collections::{BTreeMap, HashMap},
    hash::{Hash, Hasher},
    path::Path,
    sync::Mutex,
};

use redb::{Database, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Serialize};

use crate::{
    jobs::{Job, JobRun},
    model::{App, Deployment, Node, Task},
};

type Table = TableDefinition<'static, &'static str, &'static [u8]>;

const APPS: &str = "apps";
const TASKS: &str = "tasks";
const NODES: &str = "nodes";
const DEPLOYMENTS: &str = "deployments";
const JOBS: &str = "jobs";
const JOB_RUNS: &str = "job_runs";
const TABLES: [&str; 6] = [APPS, TASKS, NODES, DEPLOYMENTS, JOBS, JOB_RUNS];

fn table(name: &'static str) -> Table {
    TableDefinition::new(name)
}

/// What the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file.
    #[error("scheduler store {path}: {message}")]
    Db {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A record that does not decode.
    #[error("scheduler store: record {key} does not decode: {source}")]
    Decode {
        /// Its key.
        key: String,
        /// Why.
        source: serde_json::Error,
    },
}

/// Everything the master keeps.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// By app ID.
    pub apps: BTreeMap<String, App>,
    /// By task ID.
    pub tasks: BTreeMap<String, Task>,
    /// By node ID.
    pub nodes: BTreeMap<String, Node>,
    /// By deployment ID.
    pub deployments: BTreeMap<String, Deployment>,
    /// Jobs by ID.
    pub jobs: BTreeMap<String, Job>,
    /// Job runs by run ID.
    pub job_runs: BTreeMap<String, JobRun>,
}

/// The redb file.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: String,
    /// Hash of each row as last written, by (table, key).
    saved: Mutex<HashMap<(&'static str, String), u64>>,
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

impl Store {
    /// Open (or create) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let p = path.display().to_string();
        let db = Database::create(path).map_err(|e| StoreError::Db {
            path: p.clone(),
            message: e.to_string(),
        })?;
        Ok(Self {
            db,
            path: p,
            saved: Mutex::new(HashMap::new()),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Read everything.
    pub fn load(&self) -> Result<Snapshot, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let mut s = Snapshot::default();
        self.read_table(&tx, APPS, &mut s.apps)?;
        self.read_table(&tx, TASKS, &mut s.tasks)?;
        self.read_table(&tx, NODES, &mut s.nodes)?;
        self.read_table(&tx, DEPLOYMENTS, &mut s.deployments)?;
        self.read_table(&tx, JOBS, &mut s.jobs)?;
        self.read_table(&tx, JOB_RUNS, &mut s.job_runs)?;
        Ok(s)
    }

    fn read_table<T: DeserializeOwned>(
        &self,
        tx: &redb::ReadTransaction,
        name: &'static str,
        out: &mut BTreeMap<String, T>,
    ) -> Result<(), StoreError> {
        let table = match tx.open_table(table(name)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(self.err(e)),
        };
        for row in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let key = k.value().to_string();
            self.saved
                .lock()
                .expect("store lock")
                .insert((name, key.clone()), hash(v.value()));
            let value = serde_json::from_slice(v.value()).map_err(|source| StoreError::Decode {
                key: key.clone(),
                source,
            })?;
            out.insert(key, value);
        }
        Ok(())
    }

    /// Make the store hold exactly `s`, in one transaction (rows that did not change since
    /// the last save or load are not written; nothing changed, no transaction).
    pub fn save(&self, s: &Snapshot) -> Result<(), StoreError> {
        let mut saved = self.saved.lock().expect("store lock");
        let mut changes: Vec<(&'static str, String, Option<Vec<u8>>)> = Vec::new();
        self.diff(&saved, APPS, &s.apps, &mut changes)?;
        self.diff(&saved, TASKS, &s.tasks, &mut changes)?;
        self.diff(&saved, NODES, &s.nodes, &mut changes)?;
        self.diff(&saved, DEPLOYMENTS, &s.deployments, &mut changes)?;
        self.diff(&saved, JOBS, &s.jobs, &mut changes)?;
        self.diff(&saved, JOB_RUNS, &s.job_runs, &mut changes)?;
        if changes.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        for name in TABLES {
            let mut table = tx.open_table(table(name)).map_err(|e| self.err(e))?;
            for (_, key, value) in changes.iter().filter(|c| c.0 == name) {
                match value {
                    Some(bytes) => {
                        table
                            .insert(key.as_str(), bytes.as_slice())
                            .map_err(|e| self.err(e))?;
                    }
                    None => {
                        table.remove(key.as_str()).map_err(|e| self.err(e))?;
                    }
                }
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        for (t, key, value) in changes {
            match value {
                Some(bytes) => saved.insert((t, key), hash(&bytes)),
                None => saved.remove(&(t, key)),
            };
        }
        Ok(())
    }

    fn diff<T: Serialize>(
        &self,
        saved: &HashMap<(&'static str, String), u64>,
        name: &'static str,
        rows: &BTreeMap<String, T>,
        out: &mut Vec<(&'static str, String, Option<Vec<u8>>)>,
    ) -> Result<(), StoreError> {
        for (k, v) in rows {
            let bytes = serde_json::to_vec(v).map_err(|e| self.err(e))?;
            if saved.get(&(name, k.clone())) != Some(&hash(&bytes)) {
                out.push((name, k.clone(), Some(bytes)));
            }
        }
        for (t, k) in saved.keys() {
            if *t == name && !rows.contains_key(k) {
                out.push((name, k.clone(), None));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Resources;

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let now = chrono::Utc::now();
        let node = Node {
            id: "n1".into(),
            hostname: "h".into(),
            resources: Resources::default(),
            port_range: (1, 2),
            attributes: Default::default(),
            cordoned: true,
            draining: false,
            removed: false,
            last_seen: now,
            unreachable: false,
            registered_at: now,
        };
        {
            let store = Store::open(&path).unwrap();
            let mut s = Snapshot::default();
            s.nodes.insert("n1".into(), node.clone());
            s.nodes.insert("n2".into(), node.clone());
            store.save(&s).unwrap();
            s.nodes.remove("n2");
            store.save(&s).unwrap();
        }
        let store = Store::open(&path).unwrap();
        let s = store.load().unwrap();
        assert_eq!(s.nodes.len(), 1);
        assert!(s.nodes["n1"].cordoned);
    }
}
