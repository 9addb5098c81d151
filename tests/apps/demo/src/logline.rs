//! The lines the demo app prints: timestamps, background "tick" lines, access-log lines, and the
//! output they go to.
//!
//! Formatting is pure (a timestamp goes in, a `String` comes out) so it is tested without IO.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::LogFormat;

// === timestamps ===

/// A UTC calendar time, to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: u64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
}

impl Civil {
    /// Times before 1970 are clamped to the epoch: a container clock is never there.
    fn from_system_time(t: SystemTime) -> Self {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let secs = since.as_secs();
        let (year, month, day) = civil_from_days(secs / 86_400);
        let rem = secs % 86_400;
        Self {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
            millis: since.subsec_millis(),
        }
    }
}

/// Days since 1970-01-01 to (year, month 1–12, day 1–31), proleptic Gregorian.
/// Howard Hinnant's `civil_from_days`, restricted to days on or after the epoch.
fn civil_from_days(days: u64) -> (u64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1st
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// RFC 3339 in UTC with milliseconds: `2026-11-21T23:03:25.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let c = Civil::from_system_time(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
    )
}

/// The access-log (Common Log Format) time: `21/Nov/2026:23:03:25 +0000`.
pub fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = Civil::from_system_time(t);
    format!(
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
        c.day,
        MONTHS[c.month as usize - 1],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

// === background lines ===

/// Severity of a background line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    /// Every 50th line is an error, every other 10th a warning, the rest info.
    pub fn for_seq(seq: u64) -> Self {
        if seq.is_multiple_of(50) {
            Self::Error
        } else if seq.is_multiple_of(10) {
            Self::Warn
        } else {
            Self::Info
        }
    }

    fn upper(self) -> &'static str {
        match self {
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
        }
    }

    fn lower(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }

    /// Errors go to stderr, everything else to stdout.
    pub fn stream(self) -> Stream {
        match self {
            Self::Error => Stream::Stderr,
            Self::Info | Self::Warn => Stream::Stdout,
        }
    }
}

/// One background line, before formatting.
#[derive(Debug, Clone, Copy)]
pub struct Tick<'a> {
    pub ts: SystemTime,
    pub seq: u64,
    pub app: &'a str,
    pub prefix: Option<&'a str>,
}

impl Tick<'_> {
    pub fn level(&self) -> Level {
        Level::for_seq(self.seq)
    }

    /// The message: `tick`, after the prefix and a space when there is a prefix.
    fn msg(&self) -> String {
        match self.prefix {
            Some(prefix) => format!("{prefix} tick"),
            None => "tick".to_owned(),
        }
    }

    /// Formats the line (without its newline). `Mixed` writes odd sequence numbers plain and even
    /// ones as JSON.
    pub fn format(&self, format: LogFormat) -> String {
        let json = match format {
            LogFormat::Plain => false,
            LogFormat::Json => true,
            LogFormat::Mixed => self.seq.is_multiple_of(2),
        };
        if json {
            self.json()
        } else {
            self.plain()
        }
    }

    /// `2026-11-21T23:03:25.123Z INFO demo seq=42 msg="tick"`
    fn plain(&self) -> String {
        format!(
            "{} {} {} seq={} msg=\"{}\"",
            rfc3339(self.ts),
            self.level().upper(),
            self.app,
            self.seq,
            escape_quoted(&self.msg())
        )
    }

    /// `{"ts":"2026-11-21T23:03:25.123Z","level":"info","msg":"tick","seq":42,"app":"demo"}`,
    /// keys in that order.
    fn json(&self) -> String {
        let string = |s: &str| serde_json::Value::from(s).to_string();
        format!(
            "{{\"ts\":\"{}\",\"level\":\"{}\",\"msg\":{},\"seq\":{},\"app\":{}}}",
            rfc3339(self.ts),
            self.level().lower(),
            string(&self.msg()),
            self.seq,
            string(self.app)
        )
    }
}

/// Escapes `"`, `\` and line breaks for a `key="value"` field.
fn escape_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

// === access log ===

/// One request, in the fields of the combined log format plus the latency in seconds.
#[derive(Debug, Clone)]
pub struct Access<'a> {
    pub remote: &'a str,
    pub ts: SystemTime,
    pub method: &'a str,
    pub path: &'a str,
    pub version: &'a str,
    pub status: u16,
    pub bytes: usize,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub latency: Duration,
}

impl Access<'_> {
    /// `127.0.0.1 - - [21/Nov/2026:23:03:25 +0000] "GET / HTTP/1.1" 200 3 "-" "curl/8" 0.012`
    pub fn format(&self) -> String {
        let quoted = |v: Option<&str>| escape_quoted(v.filter(|v| !v.is_empty()).unwrap_or("-"));
        format!(
            "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\" {:.3}",
            self.remote,
            clf_time(self.ts),
            self.method,
            escape_quoted(self.path),
            self.version,
            self.status,
            self.bytes,
            quoted(self.referer),
            quoted(self.user_agent),
            self.latency.as_secs_f64()
        )
    }
}

// === output ===

/// Which standard stream a line goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Lines kept by [`Output::Capture`].
#[cfg(test)]
pub type Captured = std::sync::Arc<std::sync::Mutex<Vec<(Stream, String)>>>;

/// Where lines are written: the process's stdout/stderr, or memory in tests.
#[derive(Debug, Clone, Default)]
pub enum Output {
    /// Each line is written whole and flushed at once, so a container log reader sees it promptly.
    #[default]
    Stdio,
    /// Lines are kept, for tests.
    #[cfg(test)]
    Capture(Captured),
}

impl Output {
    /// Writes `text` and a newline. Write errors (a closed pipe) are ignored: logging must never
    /// take the app down.
    pub fn line(&self, stream: Stream, text: &str) {
        let mut buf = String::with_capacity(text.len() + 1);
        buf.push_str(text);
        buf.push('\n');
        match self {
            Self::Stdio => {
                let _ = match stream {
                    Stream::Stdout => write_flush(&mut std::io::stdout().lock(), &buf),
                    Stream::Stderr => write_flush(&mut std::io::stderr().lock(), &buf),
                };
            }
            #[cfg(test)]
            Self::Capture(lines) => lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((stream, text.to_owned())),
        }
    }
}

fn write_flush(w: &mut impl Write, buf: &str) -> std::io::Result<()> {
    w.write_all(buf.as_bytes())?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis)
    }

    #[test]
    fn rfc3339_known_instants() {
        let cases = [
            (at(0, 0), "1970-01-01T00:00:00.000Z"),
            (at(951_782_400, 1), "2000-02-29T00:00:00.001Z"),
            (at(951_868_799, 999), "2000-02-29T23:59:59.999Z"),
            (at(1_709_251_199, 0), "2024-02-29T23:59:59.000Z"),
            (at(1_795_302_205, 123), "2026-11-21T23:03:25.123Z"),
            (at(4_102_444_800, 0), "2100-01-01T00:00:00.000Z"),
            (at(253_402_300_799, 0), "9999-12-31T23:59:59.000Z"),
        ];
        for (t, want) in cases {
            assert_eq!(rfc3339(t), want);
        }
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn civil_from_days_matches_counting_day_by_day() {
        let days_in = |y: u64, m: u32| match m {
            2 if y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400)) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let (mut y, mut m, mut d) = (1970, 1, 1);
        // Past 2400, so the 100- and 400-year rules are both crossed.
        for days in 0..160_000 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            d += 1;
            if d > days_in(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn clf_time_format() {
        assert_eq!(
            clf_time(at(1_795_302_205, 123)),
            "21/Nov/2026:23:03:25 +0000"
        );
        assert_eq!(clf_time(at(0, 0)), "01/Jan/1970:00:00:00 +0000");
    }

    #[test]
    fn levels_by_sequence() {
        assert_eq!(Level::for_seq(1), Level::Info);
        assert_eq!(Level::for_seq(10), Level::Warn);
        assert_eq!(Level::for_seq(40), Level::Warn);
        assert_eq!(Level::for_seq(50), Level::Error);
        assert_eq!(Level::for_seq(60), Level::Warn);
        assert_eq!(Level::for_seq(100), Level::Error);
        assert_eq!(Level::Error.stream(), Stream::Stderr);
        assert_eq!(Level::Warn.stream(), Stream::Stdout);
    }

    fn tick(seq: u64, prefix: Option<&str>) -> Tick<'_> {
        Tick {
            ts: at(1_795_302_205, 123),
            seq,
            app: "demo",
            prefix,
        }
    }

    #[test]
    fn plain_lines() {
        assert_eq!(
            tick(42, None).format(LogFormat::Plain),
            r#"2026-11-21T23:03:25.123Z INFO demo seq=42 msg="tick""#
        );
        assert_eq!(
            tick(30, Some("run-7")).format(LogFormat::Plain),
            r#"2026-11-21T23:03:25.123Z WARN demo seq=30 msg="run-7 tick""#
        );
        assert_eq!(
            tick(50, Some(r#"a "q" \ b"#)).format(LogFormat::Plain),
            r#"2026-11-21T23:03:25.123Z ERROR demo seq=50 msg="a \"q\" \\ b tick""#
        );
    }

    #[test]
    fn json_lines() {
        let line = tick(42, None).format(LogFormat::Json);
        assert_eq!(
            line,
            r#"{"ts":"2026-11-21T23:03:25.123Z","level":"info","msg":"tick","seq":42,"app":"demo"}"#
        );
        let line = tick(50, Some("tok \"x\"")).format(LogFormat::Json);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "tok \"x\" tick");
        assert_eq!(v["seq"], 50);
    }

    #[test]
    fn mixed_alternates_plain_and_json() {
        assert!(tick(1, None).format(LogFormat::Mixed).starts_with("2026-"));
        assert!(tick(2, None).format(LogFormat::Mixed).starts_with('{'));
        assert!(tick(3, None).format(LogFormat::Mixed).starts_with("2026-"));
    }

    #[test]
    fn access_lines() {
        let mut access = Access {
            remote: "127.0.0.1",
            ts: at(1_795_302_205, 0),
            method: "GET",
            path: "/",
            version: "HTTP/1.1",
            status: 200,
            bytes: 3,
            referer: None,
            user_agent: Some("curl/8.1"),
            latency: Duration::from_millis(12),
        };
        assert_eq!(
            access.format(),
            r#"127.0.0.1 - - [21/Nov/2026:23:03:25 +0000] "GET / HTTP/1.1" 200 3 "-" "curl/8.1" 0.012"#
        );
        access.status = 500;
        access.bytes = 6;
        access.user_agent = None;
        access.latency = Duration::from_micros(1_234_567);
        assert_eq!(
            access.format(),
            r#"127.0.0.1 - - [21/Nov/2026:23:03:25 +0000] "GET / HTTP/1.1" 500 6 "-" "-" 1.235"#
        );
    }

    #[test]
    fn capture_output_keeps_lines() {
        let lines = Captured::default();
        let out = Output::Capture(Arc::clone(&lines));
        out.line(Stream::Stdout, "a");
        out.line(Stream::Stderr, "b");
        assert_eq!(
            *lines.lock().unwrap(),
            vec![
                (Stream::Stdout, "a".to_owned()),
                (Stream::Stderr, "b".to_owned())
            ]
        );
    }
}
