//! The Kafka record decoders: what the logpipe and the metrics store do with every message
//! value of `drover.logs.v1` and `drover.metrics.v1` (and readers of `drover.events.v1`):
//! `drover_schema::decode` with its version check, then, for a log record, the logpipe's
//! parse of the line (JSON, logfmt, access log, level). Any producer can write these topics,
//! so a record must never crash a consumer: it is decoded or dead-lettered.
#![no_main]

use drover_schema::{Event, LogRecord, MetricRecord};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rec) = drover_schema::decode::<LogRecord>(data) {
        let parsed = drover_search::parse::parse_line(&rec.line);
        // What the logpipe indexes: the fields serialise back (the index stores them as JSON).
        let _ = serde_json::to_string(&parsed.fields);
        let _ = drover_schema::encode(&rec);
    }
    if let Ok(rec) = drover_schema::decode::<MetricRecord>(data) {
        let _ = rec.app();
        let _ = rec.ts();
        let _ = drover_schema::encode(&rec);
    }
    if let Ok(ev) = drover_schema::decode::<Event>(data) {
        let _ = drover_schema::encode(&ev);
    }
    // Plain text lines too (the collector's raw lines reach parse_line as they are).
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = drover_search::parse::parse_line(text);
    }
});
