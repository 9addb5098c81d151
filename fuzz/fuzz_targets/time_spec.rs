//! The time specs every query API takes (`from`, `to`, `since` of the log search, the metrics
//! store, Alertman's history, the CLI): `drover_schema::time::{parse_instant, parse_duration,
//! range}`. The input is split on the first two newlines into from / to / since.
#![no_main]

use chrono::{TimeZone, Utc};
use drover_schema::time::{parse_duration, parse_instant, range};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
    let _ = parse_instant(text, now);
    let _ = parse_duration(text);
    let mut parts = text.splitn(3, '\n');
    let from = parts.next().filter(|s| !s.is_empty());
    let to = parts.next().filter(|s| !s.is_empty());
    let since = parts.next().filter(|s| !s.is_empty());
    let _ = range(from, to, since, now);
    let _ = range(None, to, from, Utc::now());
});
