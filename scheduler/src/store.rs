//! The master's embedded store: apps, tasks, nodes and deployments in a redb file under the
//! data dir, one table each (key: ID, value: JSON). The master writes a snapshot after each
//! change, in one transaction, so a restart (or a crash) loses nothing it acknowledged.
use std::{collections::BTreeMap, path::Path};

use redb::{Database, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Serialize};

use crate::model::{App, Deployment, Node, Task};

const APPS: TableDefinition<&str, &[u8]> = TableDefinition::new("apps");
const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");
const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");
const DEPLOYMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("deployments");

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
}

/// The redb file.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: String,
}

impl Store {
    /// Open (or create) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let p = path.display().to_string();
        let db = Database::create(path).map_err(|e| StoreError::Db {
            path: p.clone(),
            message: e.to_string(),
        })?;
        Ok(Self { db, path: p })
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
        Ok(s)
    }

    fn read_table<T: DeserializeOwned>(
        &self,
        tx: &redb::ReadTransaction,
        def: TableDefinition<&str, &[u8]>,
        out: &mut BTreeMap<String, T>,
    ) -> Result<(), StoreError> {
        let table = match tx.open_table(def) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(self.err(e)),
        };
        for row in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let key = k.value().to_string();
            let value = serde_json::from_slice(v.value()).map_err(|source| StoreError::Decode {
                key: key.clone(),
                source,
            })?;
            out.insert(key, value);
        }
        Ok(())
    }

    /// Replace everything with `s`, in one transaction.
    pub fn save(&self, s: &Snapshot) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        self.write_table(&tx, APPS, &s.apps)?;
        self.write_table(&tx, TASKS, &s.tasks)?;
        self.write_table(&tx, NODES, &s.nodes)?;
        self.write_table(&tx, DEPLOYMENTS, &s.deployments)?;
        tx.commit().map_err(|e| self.err(e))
    }

    fn write_table<T: Serialize>(
        &self,
        tx: &redb::WriteTransaction,
        def: TableDefinition<&str, &[u8]>,
        rows: &BTreeMap<String, T>,
    ) -> Result<(), StoreError> {
        let mut table = tx.open_table(def).map_err(|e| self.err(e))?;
        let stale: Vec<String> = table
            .iter()
            .map_err(|e| self.err(e))?
            .filter_map(|r| r.ok().map(|(k, _)| k.value().to_string()))
            .filter(|k| !rows.contains_key(k))
            .collect();
        for k in stale {
            table.remove(k.as_str()).map_err(|e| self.err(e))?;
        }
        for (k, v) in rows {
            let bytes = serde_json::to_vec(v).map_err(|e| self.err(e))?;
            table
                .insert(k.as_str(), bytes.as_slice())
                .map_err(|e| self.err(e))?;
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
