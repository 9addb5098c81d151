//! Time range parameters: RFC 3339 instants, `now`, `now-15m`, and `--since 15m`.
use chrono::{DateTime, Duration, Utc};

/// Parses an instant: RFC 3339 (`2026-11-22T10:00:00Z`), `now`, or `now-<duration>`
/// (`now-15m`, `now-2h30m`), or milliseconds since the epoch.
pub fn parse_instant(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Some(rest) = s.strip_prefix("now-") {
        return Ok(now - parse_duration(rest)?);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(ms) = s.parse::<i64>() {
        if let Some(t) = DateTime::from_timestamp_millis(ms) {
            return Ok(t);
        }
    }
    Err(format!(
        "cannot read the time {s:?}: use RFC 3339 (2026-11-22T10:00:00Z), now, now-15m, or epoch milliseconds"
    ))
}

/// Parses a duration such as `15m`, `2h`, `7d`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("cannot read the duration {s:?} ({e}): use e.g. 30s, 15m, 2h, 7d"))?;
    Duration::from_std(d).map_err(|_| format!("the duration {s:?} is too long"))
}

/// A time range; `None` is open on that side.
pub type Range = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Resolves `from`/`to`/`since` into a range; `since` counts back from now.
pub fn range(
    from: Option<&str>,
    to: Option<&str>,
    since: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Range, String> {
    if since.is_some() && from.is_some() {
        return Err("give either since or from, not both".into());
    }
    let from = match (from, since) {
        (Some(f), _) => Some(parse_instant(f, now)?),
        (None, Some(s)) => Some(now - parse_duration(s)?),
        (None, None) => None,
    };
    let to = to.map(|t| parse_instant(t, now)).transpose()?;
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(format!("the range is empty: from {f} is after to {t}"));
        }
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn instants_and_ranges() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
        assert_eq!(parse_instant("now", now).unwrap(), now);
        assert_eq!(
            parse_instant("now-15m", now).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 22, 11, 45, 0).unwrap()
        );
        assert_eq!(
            parse_instant("2026-11-22T10:00:00+01:00", now).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap()
        );
        assert_eq!(
            parse_instant("1795000000000", now).unwrap().timestamp(),
            1_795_000_000
        );
        assert!(parse_instant("yesterday", now)
            .unwrap_err()
            .contains("RFC 3339"));
        let (f, t) = range(None, None, Some("1h"), now).unwrap();
        assert_eq!(f, Some(now - Duration::hours(1)));
        assert_eq!(t, None);
        assert!(range(Some("now"), None, Some("1h"), now).is_err());
        assert!(range(Some("now"), Some("now-1h"), None, now)
            .unwrap_err()
            .contains("empty"));
        assert!(parse_duration("5 parsecs").unwrap_err().contains("15m"));
    }
}
