//! Times and durations in query parameters: RFC 3339 (`2026-11-22T10:00:00Z`), epoch
//! milliseconds, `now`, `now-15m`; durations as humantime (`5m`, `1h30m`, `7d`).
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Parses a time relative to `now`.
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Some(rest) = s.strip_prefix("now-") {
        let d = parse_duration(rest)?;
        return Ok(now - chrono::Duration::from_std(d).map_err(|e| e.to_string())?);
    }
    if let Ok(ms) = s.parse::<i64>() {
        return DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| format!("{ms} is out of range as epoch milliseconds"));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!("{s:?} is not a time: use RFC 3339 (2026-11-22T10:00:00Z), epoch ms, or now-1h")
        })
}

/// Parses a duration (`30s`, `5m`, `1h`, `7d`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration ({e}); e.g. 30s, 5m, 1h, 7d"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let now = DateTime::from_timestamp_millis(1_800_000_000_000).unwrap();
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(
            parse_time("now-1h", now).unwrap().timestamp_millis(),
            1_800_000_000_000 - 3_600_000
        );
        assert_eq!(
            parse_time("1700000000000", now).unwrap().timestamp_millis(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time("2026-11-22T10:00:00Z", now)
                .unwrap()
                .to_rfc3339(),
            "2026-11-22T10:00:00+00:00"
        );
        assert!(parse_time("yesterday", now)
            .unwrap_err()
            .contains("RFC 3339"));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("5 parsecs").is_err());
    }
}
