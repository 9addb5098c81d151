//! Kafka positions kept with the index: in each partition's Tantivy commit payload (the truth,
//! written atomically with the documents) and in `checkpoint.json` (where to resume reading,
//! written after every partition of a commit round has committed).
use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};

use crate::SearchError;

/// The next offset to read per Kafka partition of the logs topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The topic.
    #[serde(default)]
    pub topic: String,
    /// Kafka partition → next offset to read (everything below is in the index or was
    /// deliberately not indexed: filtered or dead-lettered).
    pub offsets: BTreeMap<i32, i64>,
}

impl Checkpoint {
    /// Reads a commit payload (`None`: the index was never committed by a logpipe).
    pub fn from_payload(payload: Option<&str>) -> Result<Self, SearchError> {
        match payload {
            None | Some("") => Ok(Self::default()),
            Some(p) => serde_json::from_str(p).map_err(|source| SearchError::Payload {
                payload: p.to_string(),
                source,
            }),
        }
    }

    /// The payload text.
    pub fn to_payload(&self) -> String {
        serde_json::to_string(self).expect("a map of numbers serialises")
    }

    /// The next offset of a partition, if known.
    pub fn next(&self, partition: i32) -> Option<i64> {
        self.offsets.get(&partition).copied()
    }

    /// Whether `offset` of `partition` is already covered.
    pub fn covers(&self, partition: i32, offset: i64) -> bool {
        self.next(partition).is_some_and(|n| offset < n)
    }

    /// The lowest position of every partition known to either (resume from the earliest).
    pub fn min(&self, other: &Checkpoint) -> Checkpoint {
        let mut offsets = BTreeMap::new();
        for p in self.offsets.keys().chain(other.offsets.keys()) {
            let v = match (self.next(*p), other.next(*p)) {
                (Some(a), Some(b)) => a.min(b),
                // Unknown on one side: that side has read nothing of it.
                _ => 0,
            };
            offsets.insert(*p, v);
        }
        Checkpoint {
            topic: self.topic.clone(),
            offsets,
        }
    }

    /// Reads `checkpoint.json` in `dir`, if there.
    pub fn load_file(dir: &Path) -> Result<Option<Self>, SearchError> {
        let path = dir.join("checkpoint.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|source| {
                SearchError::CheckpointFile {
                    path: path.display().to_string(),
                    source,
                }
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SearchError::io(&path, e)),
        }
    }

    /// Writes `checkpoint.json` in `dir` atomically (temp file, fsync, rename).
    pub fn save_file(&self, dir: &Path) -> Result<(), SearchError> {
        use std::io::Write;
        let path = dir.join("checkpoint.json");
        let tmp = dir.join("checkpoint.json.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(self).expect("serialisable"))?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| SearchError::io(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(pairs: &[(i32, i64)]) -> Checkpoint {
        Checkpoint {
            topic: "t".into(),
            offsets: pairs.iter().copied().collect(),
        }
    }

    #[test]
    fn payload_round_trip_and_covers() {
        let c = cp(&[(0, 10), (2, 5)]);
        let back = Checkpoint::from_payload(Some(&c.to_payload())).unwrap();
        assert_eq!(back, c);
        assert!(back.covers(0, 9));
        assert!(!back.covers(0, 10));
        assert!(!back.covers(1, 0));
        assert_eq!(
            Checkpoint::from_payload(None).unwrap(),
            Checkpoint::default()
        );
        assert!(Checkpoint::from_payload(Some("{")).is_err());
    }

    #[test]
    fn min_takes_the_earliest() {
        let m = cp(&[(0, 10), (1, 4)]).min(&cp(&[(0, 7), (2, 3)]));
        assert_eq!(m.offsets, cp(&[(0, 7), (1, 0), (2, 0)]).offsets);
    }

    #[test]
    fn file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Checkpoint::load_file(dir.path()).unwrap(), None);
        let c = cp(&[(1, 99)]);
        c.save_file(dir.path()).unwrap();
        assert_eq!(Checkpoint::load_file(dir.path()).unwrap(), Some(c));
        std::fs::write(dir.path().join("checkpoint.json"), "garbage").unwrap();
        let e = Checkpoint::load_file(dir.path()).unwrap_err().to_string();
        assert!(e.contains("delete it"), "{e}");
    }
}
