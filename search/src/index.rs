//! The index schema: which fields a log document has and how each is indexed, and
//! [`build_doc`], the document of a record (the logpipe writes it; tests and benchmarks too).
use drover_schema::LogRecord;
use serde_json::{Map, Value};
use tantivy::{
    schema::{
        DateOptions, DateTimePrecision, Field, IndexRecordOption, JsonObjectOptions, Schema,
        TextFieldIndexing, TextOptions, FAST, STORED, STRING,
    },
    TantivyDocument,
};

/// Normalised log levels, with a numeric code kept in a fast field for histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Finest detail.
    Trace,
    /// Debugging.
    Debug,
    /// Normal operation.
    Info,
    /// Something to look at.
    Warn,
    /// A failure.
    Error,
    /// The process cannot go on (fatal, panic, critical, emergency).
    Fatal,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];

    /// The name indexed in the `level` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// The code kept in the `level_code` fast field (0 means no level).
    pub fn code(self) -> u64 {
        self as u64 + 1
    }

    /// The level of a code from the fast field.
    pub fn from_code(code: u64) -> Option<Level> {
        Level::ALL
            .get(usize::try_from(code).ok()?.checked_sub(1)?)
            .copied()
    }

    /// Recognises the usual spellings: `WARNING`, `err`, `CRITICAL`, `panic`, syslog numbers…
    pub fn parse(s: &str) -> Option<Level> {
        let s = s.trim();
        let lower = s.to_ascii_lowercase();
        Some(match lower.as_str() {
            "trace" | "trc" | "finest" | "finer" | "7" => Level::Trace,
            "debug" | "dbg" | "fine" | "config" => Level::Debug,
            "info" | "inf" | "information" | "informational" | "notice" | "6" | "5" => Level::Info,
            "warn" | "warning" | "wrn" | "4" => Level::Warn,
            "error" | "err" | "severe" | "3" => Level::Error,
            "fatal" | "panic" | "critical" | "crit" | "emerg" | "emergency" | "alert"
            | "dpanic" | "0" | "1" | "2" => Level::Fatal,
            _ => return None,
        })
    }
}

/// The fields of a log document, resolved once.
#[derive(Debug, Clone)]
pub struct LogFields {
    /// The schema built from these fields.
    pub schema: Schema,
    /// When the line was printed (Docker's timestamp): indexed, fast (ns), stored.
    pub ts: Field,
    /// App ID.
    pub app: Field,
    /// Host the collector ran on.
    pub host: Field,
    /// Scheduler node, when known.
    pub node: Field,
    /// Scheduler task, when known.
    pub task: Field,
    /// App group, when known.
    pub group: Field,
    /// Container ID.
    pub container: Field,
    /// Container name.
    pub container_name: Field,
    /// Image.
    pub image: Field,
    /// stdout or stderr.
    pub stream: Field,
    /// Normalised level name (`info`, `error`…); absent when the line has none.
    pub level: Field,
    /// Level code for histograms (0: none).
    pub level_code: Field,
    /// The line, tokenised for full-text search (not stored: `line` holds the text).
    pub message: Field,
    /// The line as printed (multi-line records keep their newlines).
    pub line: Field,
    /// Parsed fields (JSON keys, access-log status/path/latency, rule-added fields), indexed
    /// and fast but not stored; see [`indexed_fields`] for which values are left out.
    pub fields: Field,
    /// Fields added by routing rules (stored only: everything else in `fields` comes from
    /// parsing the line again).
    pub extra: Field,
    /// Per-container sequence number from the collector.
    pub seq: Field,
    /// Unique key of the line (hash of container and seq): the tie-break of the sort.
    pub uid: Field,
}

/// Names of the raw (untokenised) string fields that filters and `field:value` use.
pub const KEYWORD_FIELDS: [&str; 10] = [
    "app",
    "host",
    "node",
    "task",
    "group",
    "container",
    "container_name",
    "image",
    "stream",
    "level",
];

impl LogFields {
    /// Builds the schema.
    pub fn new() -> Self {
        let mut b = Schema::builder();
        // Not indexed: time ranges and the sort read the fast column, so a term per line (each
        // timestamp is unique) would only grow the term dictionary.
        let ts = b.add_date_field(
            "ts",
            DateOptions::default()
                .set_stored()
                .set_fast()
                .set_precision(DateTimePrecision::Nanoseconds),
        );
        let keyword = STRING | STORED | FAST;
        let app = b.add_text_field("app", keyword.clone());
        let host = b.add_text_field("host", keyword.clone());
        let node = b.add_text_field("node", keyword.clone());
        let task = b.add_text_field("task", STRING | STORED);
        let group = b.add_text_field("group", keyword.clone());
        let container = b.add_text_field("container", keyword.clone());
        let container_name = b.add_text_field("container_name", STRING | STORED);
        let image = b.add_text_field("image", STRING | STORED);
        let stream = b.add_text_field("stream", keyword.clone());
        let level = b.add_text_field("level", keyword);
        let level_code = b.add_u64_field("level_code", FAST);
        let message = b.add_text_field(
            "message",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("default")
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            ),
        );
        let line = b.add_text_field("line", STORED);
        // Not stored: a hit's fields are parsed again from its line (the same parse), and the
        // few added by rules are stored in `extra`.
        let fields = b.add_json_field(
            "fields",
            JsonObjectOptions::default()
                .set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer("raw")
                        .set_index_option(IndexRecordOption::Basic),
                )
                .set_fast("raw"),
        );
        let extra = b.add_json_field("extra", STORED);
        // Not indexed: context ranges read the fast column.
        let seq = b.add_u64_field("seq", STORED | FAST);
        let uid = b.add_u64_field("uid", FAST);
        Self {
            schema: b.build(),
            ts,
            app,
            host,
            node,
            task,
            group,
            container,
            container_name,
            image,
            stream,
            level,
            level_code,
            message,
            line,
            fields,
            extra,
            seq,
            uid,
        }
    }
}

impl Default for LogFields {
    fn default() -> Self {
        Self::new()
    }
}

/// Fields kept only as fast columns (no terms): a query on one value of them is rewritten to
/// the range from that value to itself.
pub const FAST_ONLY_FIELDS: [&str; 2] = ["ts", "seq"];

/// Top-level keys of parsed fields that are not indexed in `fields`: the message and timestamp
/// an app writes into its JSON or logfmt lines are already searchable as the line's text and
/// `ts`, and indexing them as keywords (nearly one new term per line) was the largest cost of
/// indexing. They are still shown with the hit.
pub const NOT_INDEXED_KEYS: [&str; 6] = ["msg", "message", "ts", "time", "timestamp", "@timestamp"];

/// String values longer than this are not indexed in `fields` (Elasticsearch's `ignore_above`
/// for keywords): such values are text, searchable through the line.
pub const IGNORE_ABOVE: usize = 256;

/// The part of a line's parsed fields that is indexed (and kept in fast columns for ranges and
/// top values): all but [`NOT_INDEXED_KEYS`], nulls and strings longer than [`IGNORE_ABOVE`].
pub fn indexed_fields(mut fields: Map<String, Value>) -> Map<String, Value> {
    for key in NOT_INDEXED_KEYS {
        fields.remove(key);
    }
    fields.retain(|_, v| keep_indexed(v));
    fields
}

fn keep_indexed(v: &mut Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => s.len() <= IGNORE_ABOVE,
        Value::Array(a) => {
            a.retain_mut(keep_indexed);
            !a.is_empty()
        }
        Value::Object(o) => {
            o.retain(|_, v| keep_indexed(v));
            !o.is_empty()
        }
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// The unique key of a line: FNV-1a of the container ID, mixed with the sequence number.
pub fn uid(container: &str, seq: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64 of (hash ^ seq) so that consecutive seqs spread over the whole range.
    let mut z = h ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The Tantivy document of a record: `fields` is what parsing found (indexed as
/// [`indexed_fields`] says, not stored), `added` what rules added (indexed and stored).
pub fn build_doc(
    f: &LogFields,
    rec: &LogRecord,
    level: Option<Level>,
    mut fields: Map<String, Value>,
    added: Map<String, Value>,
) -> TantivyDocument {
    let mut doc = TantivyDocument::new();
    let ns = rec.ts.timestamp_nanos_opt().unwrap_or_default();
    doc.add_date(f.ts, tantivy::DateTime::from_timestamp_nanos(ns));
    let s = &rec.source;
    doc.add_text(f.app, &s.app);
    doc.add_text(f.host, &s.host);
    for (field, v) in [(f.node, &s.node), (f.task, &s.task), (f.group, &s.group)] {
        if let Some(v) = v {
            doc.add_text(field, v);
        }
    }
    doc.add_text(f.container, &s.container_id);
    doc.add_text(f.container_name, &s.container_name);
    doc.add_text(f.image, &s.image);
    doc.add_text(f.stream, rec.stream.as_str());
    if let Some(l) = level {
        doc.add_text(f.level, l.as_str());
    }
    doc.add_u64(f.level_code, level.map_or(0, Level::code));
    doc.add_text(f.message, &rec.line);
    doc.add_text(f.line, &rec.line);
    if !added.is_empty() {
        fields.extend(added.iter().map(|(k, v)| (k.clone(), v.clone())));
        doc.add_field_value(f.extra, &Value::Object(added));
    }
    let fields = indexed_fields(fields);
    if !fields.is_empty() {
        doc.add_field_value(f.fields, &Value::Object(fields));
    }
    doc.add_u64(f.seq, rec.seq);
    doc.add_u64(f.uid, uid(&s.container_id, rec.seq));
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_spellings() {
        assert_eq!(Level::parse("WARNING"), Some(Level::Warn));
        assert_eq!(Level::parse("err"), Some(Level::Error));
        assert_eq!(Level::parse("CRITICAL"), Some(Level::Fatal));
        assert_eq!(Level::parse("notice"), Some(Level::Info));
        assert_eq!(Level::parse("verbose-ish"), None);
        for l in Level::ALL {
            assert_eq!(Level::from_code(l.code()), Some(l));
            assert_eq!(Level::parse(l.as_str()), Some(l));
        }
        assert_eq!(Level::from_code(0), None);
    }

    #[test]
    fn uid_differs_by_container_and_seq() {
        assert_ne!(uid("a", 1), uid("a", 2));
        assert_ne!(uid("a", 1), uid("b", 1));
        assert_eq!(uid("abc", 7), uid("abc", 7));
    }

    #[test]
    fn indexed_fields_leave_out_message_time_nulls_and_long_strings() {
        let long = "x".repeat(IGNORE_ABOVE + 1);
        let v = serde_json::json!({
            "msg": "payment failed", "ts": "2026-11-22T10:00:00Z", "status": 502,
            "user": {"id": 7, "note": long, "gone": null}, "tags": ["a", long, null],
            "empty": {"only": null}, "ok": true, "path": "/api",
        });
        let Value::Object(map) = v else {
            unreachable!()
        };
        let got = Value::Object(indexed_fields(map));
        assert_eq!(
            got,
            serde_json::json!({"status": 502, "user": {"id": 7}, "tags": ["a"], "ok": true, "path": "/api"})
        );
    }

    #[test]
    fn the_ui_knows_which_fields_are_not_indexed() {
        let js = include_str!("../../dashboards/ui/app.js");
        let list = NOT_INDEXED_KEYS.map(|k| format!("'{k}'")).join(", ");
        assert!(
            js.contains(&format!("const NOT_INDEXED_KEYS = [{list}];")),
            "update app.js"
        );
        assert!(
            js.contains(&format!("const IGNORE_ABOVE = {IGNORE_ABOVE};")),
            "update app.js"
        );
    }

    #[test]
    fn schema_has_every_field() {
        let f = LogFields::new();
        for name in KEYWORD_FIELDS {
            assert!(f.schema.get_field(name).is_ok(), "{name}");
        }
    }
}
