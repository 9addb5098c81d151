//! Drover's log search: the index format the logpipe (`drover-logpipe`) writes — `index` (the
//! schema and [`build_doc`]), `store` (one Tantivy index per day), `parse` (the line parser
//! both sides share), `checkpoint` (the Kafka offsets in each commit payload) — and the read
//! side: `query` (queries, histogram, context, top field values, live tail) and `api`, its
//! HTTP routes. No Kafka here: the logpipe owns the consuming side.
#![forbid(unsafe_code)]

pub mod api;
pub mod checkpoint;
pub mod index;
pub mod parse;
pub mod query;
pub mod store;

use std::path::Path;

pub use index::{build_doc, Level, LogFields};
pub use query::{Search, SearchRequest, TrackTotal};
pub use store::LogStore;

/// Errors of the log index and search.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A file or directory problem.
    #[error("{path}: {source}")]
    Io {
        /// Which path.
        path: String,
        /// What happened.
        source: std::io::Error,
    },
    /// Tantivy failed.
    #[error("index error: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// An index partition's directory cannot be opened.
    #[error("cannot open the index directory {path}: {source}")]
    OpenDir {
        /// The directory.
        path: String,
        /// Tantivy's error.
        source: tantivy::directory::error::OpenDirectoryError,
    },
    /// An index partition has a schema this build does not write.
    #[error("the index partition {path} was written by another version of Drover ({detail}); move it out of {dir} (or delete it) and the logpipe starts that day afresh")]
    OtherVersion {
        /// The partition.
        path: String,
        /// The index directory.
        dir: String,
        /// Tantivy's description of the difference.
        detail: String,
    },
    /// A partition's commit payload is not a checkpoint.
    #[error("unreadable commit payload {payload:?}: {source}")]
    Payload {
        /// The payload.
        payload: String,
        /// Why it does not parse.
        source: serde_json::Error,
    },
    /// `checkpoint.json` does not parse.
    #[error(
        "{path} is damaged ({source}); delete it to resume from the partitions' commit payloads"
    )]
    CheckpointFile {
        /// The file.
        path: String,
        /// Why it does not parse.
        source: serde_json::Error,
    },
    /// An aggregation answer could not be read.
    #[error("index error: {0}")]
    Json(#[from] serde_json::Error),
    /// The index is not as the schema says (a missing column).
    #[error("index error: {0}")]
    Internal(String),
    /// The query text could not be parsed.
    #[error("invalid query: {0}")]
    Query(String),
    /// A request parameter is wrong.
    #[error("{0}")]
    BadRequest(String),
}

impl SearchError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Whether the caller sent something wrong (an HTTP 400), as opposed to a server fault.
    pub fn is_client_error(&self) -> bool {
        matches!(self, Self::Query(_) | Self::BadRequest(_))
    }
}

#[cfg(test)]
mod tests;
