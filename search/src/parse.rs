//! Turning a log line into searchable fields: JSON logs, logfmt, nginx/Apache access logs, and
//! the level of plain text lines.
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::index::Level;

/// What parsing found in a line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// The line's level, when it has one.
    pub level: Option<Level>,
    /// Every field found (JSON keys, logfmt pairs, access-log parts), searchable as `key:value`.
    pub fields: Map<String, Value>,
    /// Which format was recognised.
    pub format: Format,
}

/// The format a line was recognised as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// Nothing structured: the level is looked for in the text.
    #[default]
    Plain,
    /// A JSON object.
    Json,
    /// `key=value key2="quoted value"` pairs.
    Logfmt,
    /// Common or combined access log (nginx, Apache).
    Access,
}

const LEVEL_KEYS: [&str; 6] = [
    "level",
    "lvl",
    "severity",
    "levelname",
    "log.level",
    "loglevel",
];

static PLAIN_LEVEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)(?:^|[\s\[(<|:"'=])(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|SEVERE|FATAL|PANIC|CRITICAL|CRIT)(?:$|[\s\]):>|,"'])"#,
    )
    .expect("valid regex")
});

static LOGFMT_PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?:^|\s)([A-Za-z_][\w.\-]*)=("(?:[^"\\]|\\.)*"|[^\s"]*)"#).expect("valid regex")
});

/// Parses one log line (a multi-line record is parsed by its first line, the whole text kept).
pub fn parse_line(line: &str) -> Parsed {
    let trimmed = line.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(trimmed.trim_end()) {
            return from_json(map);
        }
    }
    let first = line.lines().next().unwrap_or("");
    if let Some(p) = access_log(first) {
        return p;
    }
    if let Some(p) = logfmt(first) {
        return p;
    }
    Parsed {
        level: plain_level(first),
        fields: Map::new(),
        format: Format::Plain,
    }
}

fn from_json(mut map: Map<String, Value>) -> Parsed {
    let mut level = None;
    for key in LEVEL_KEYS {
        if let Some(v) = map.get(key) {
            level = match v {
                Value::String(s) => Level::parse(s),
                Value::Number(n) => level_from_number(n.as_u64()),
                _ => None,
            };
            if level.is_some() {
                break;
            }
        }
    }
    // Keys with dots would be split into objects by the JSON field; keep them as written.
    map.retain(|_, v| !v.is_null());
    Parsed {
        level,
        fields: map,
        format: Format::Json,
    }
}

/// Bunyan/pino numeric levels (10 trace … 60 fatal).
fn level_from_number(n: Option<u64>) -> Option<Level> {
    Some(match n? {
        0..=10 => Level::Trace,
        11..=20 => Level::Debug,
        21..=30 => Level::Info,
        31..=40 => Level::Warn,
        41..=50 => Level::Error,
        _ => Level::Fatal,
    })
}

/// The parts of a common or combined access log line (nginx, Apache), read by hand: the
/// capture regex it replaced (kept in the tests, which compare the two on many variants) was
/// the largest part of parsing, and about half the lines of a typical cluster are access lines.
#[derive(Debug, PartialEq)]
struct AccessLine<'a> {
    client: &'a str,
    method: &'a str,
    path: &'a str,
    status: &'a str,
    bytes: &'a str,
    referer: Option<&'a str>,
    agent: Option<&'a str>,
    rt: Option<&'a str>,
}

/// `client ident user [time] "METHOD path[ proto]" status bytes[ "referer" "agent"][ rt]…`
fn split_access(line: &str) -> Option<AccessLine<'_>> {
    /// A run of non-whitespace followed by one space.
    fn word(s: &str) -> Option<(&str, &str)> {
        let (w, rest) = s.split_once(' ')?;
        (!w.is_empty() && !w.contains(char::is_whitespace)).then_some((w, rest))
    }
    let (client, rest) = word(line)?;
    let (_ident, rest) = word(rest)?;
    let (_user, rest) = word(rest)?;
    let (time, rest) = rest.strip_prefix('[')?.split_once(']')?;
    if time.is_empty() {
        return None;
    }
    let (method, rest) = rest.strip_prefix(" \"")?.split_once(' ')?;
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let run = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let path = &rest[..run];
    // `path proto" status…` first; if what follows does not fit, `path" status…` (the regex
    // this replaced backtracks the same way).
    let with_proto = rest[run..]
        .strip_prefix(' ')
        .and_then(|after| after.split_once('"'))
        .filter(|_| run > 0)
        .and_then(|(_proto, after)| Some((path, after_request(after)?)));
    let (path, (status, bytes, referer, agent, rt)) = match with_proto {
        Some(found) => found,
        None => {
            let path = path.strip_suffix('"').filter(|p| !p.is_empty())?;
            (path, after_request(&rest[run..])?)
        }
    };
    Some(AccessLine {
        client,
        method,
        path,
        status,
        bytes,
        referer,
        agent,
        rt,
    })
}

/// What follows a request's closing quote.
type AfterRequest<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

/// ` status bytes[ "referer" "agent"][ rt]…` → (status, bytes, referer, agent, rt)
fn after_request(rest: &str) -> Option<AfterRequest<'_>> {
    fn digits(s: &str) -> usize {
        s.bytes().take_while(u8::is_ascii_digit).count()
    }
    /// `"…"` at the start of `s`: the text inside and what follows the closing quote.
    fn quoted(s: &str) -> Option<(&str, &str)> {
        s.strip_prefix('"')?.split_once('"')
    }
    let rest = rest.strip_prefix(' ')?;
    // Bytes, not a `&rest[..3]` slice: a non-ASCII character there is no char boundary.
    match rest.as_bytes() {
        [a, b, c, b' ', ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {}
        _ => return None,
    }
    let (status, rest) = rest.split_at(3);
    let rest = &rest[1..];
    let n = if rest.starts_with('-') {
        1
    } else {
        digits(rest)
    };
    if n == 0 {
        return None;
    }
    let (bytes, rest) = rest.split_at(n);
    let quoted_pair = rest
        .strip_prefix(' ')
        .and_then(quoted)
        .and_then(|(referer, after)| {
            let (agent, after) = quoted(after.strip_prefix(' ')?)?;
            Some((referer, agent, after))
        });
    let (referer, agent, rest) = match quoted_pair {
        Some((r, a, after)) => (Some(r), Some(a), after),
        None => (None, None, rest),
    };
    let rt = rest.strip_prefix(' ').and_then(|s| {
        let whole = digits(s);
        if whole == 0 {
            return None;
        }
        let frac = s[whole..].strip_prefix('.').map_or(0, |f| match digits(f) {
            0 => 0,
            d => d + 1,
        });
        Some(&s[..whole + frac])
    });
    Some((status, bytes, referer, agent, rt))
}

fn access_log(line: &str) -> Option<Parsed> {
    let a = split_access(line)?;
    let mut fields = Map::new();
    let status: u64 = a.status.parse().ok()?;
    fields.insert("client".into(), Value::from(a.client));
    fields.insert("method".into(), Value::from(a.method));
    fields.insert("path".into(), Value::from(a.path));
    fields.insert("status".into(), Value::from(status));
    if let Ok(bytes) = a.bytes.parse::<u64>() {
        fields.insert("bytes".into(), Value::from(bytes));
    }
    if let Some(r) = a.referer {
        if r != "-" {
            fields.insert("referer".into(), Value::from(r));
        }
    }
    if let Some(agent) = a.agent {
        fields.insert("user_agent".into(), Value::from(agent));
    }
    if let Some(rt) = a.rt.and_then(|m| m.parse::<f64>().ok()) {
        // nginx's $request_time is in seconds with millisecond resolution.
        fields.insert("latency_ms".into(), Value::from((rt * 1000.0).round()));
    }
    let level = Some(match status {
        500.. => Level::Error,
        400..=499 => Level::Warn,
        _ => Level::Info,
    });
    Some(Parsed {
        level,
        fields,
        format: Format::Access,
    })
}

fn logfmt(line: &str) -> Option<Parsed> {
    // Only lines that start with a pair and have at least two: prose with one `a=b` stays plain.
    let starts = line
        .split_whitespace()
        .next()
        .is_some_and(|w| w.contains('=') && !w.starts_with('='));
    if !starts {
        return None;
    }
    let mut fields = Map::new();
    for c in LOGFMT_PAIR.captures_iter(line) {
        let raw = &c[2];
        let value = if raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"') {
            raw[1..raw.len() - 1].replace("\\\"", "\"")
        } else {
            raw.to_string()
        };
        let value = match value.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::from(value),
        };
        fields.insert(c[1].to_string(), value);
    }
    if fields.len() < 2 {
        return None;
    }
    let level = LEVEL_KEYS.iter().find_map(|k| {
        fields
            .get(*k)
            .and_then(Value::as_str)
            .and_then(Level::parse)
    });
    Some(Parsed {
        level,
        fields,
        format: Format::Logfmt,
    })
}

/// The first level word in the first 120 bytes of a plain line.
fn plain_level(line: &str) -> Option<Level> {
    let mut end = line.len().min(120);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    PLAIN_LEVEL
        .captures(&line[..end])
        .and_then(|c| Level::parse(&c[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The capture regex the hand-written access-log reader replaced.
    static ACCESS: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r#"^(?P<client>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) (?P<path>\S+)(?: (?P<proto>[^"]*))?" (?P<status>\d{3}) (?P<bytes>\d+|-)(?: "(?P<referer>[^"]*)" "(?P<agent>[^"]*)")?(?: (?P<rt>\d+(?:\.\d+)?))?"#,
        )
        .expect("valid regex")
    });

    fn by_regex(line: &str) -> Option<AccessLine<'_>> {
        let c = ACCESS.captures(line)?;
        let get = |n: &str| c.name(n).map(|m| m.as_str());
        Some(AccessLine {
            client: get("client")?,
            method: get("method")?,
            path: get("path")?,
            status: get("status")?,
            bytes: get("bytes")?,
            referer: get("referer"),
            agent: get("agent"),
            rt: get("rt"),
        })
    }

    #[test]
    fn hand_written_access_reader_agrees_with_the_regex() {
        let clients = ["10.0.0.1", "::1", "-", ""];
        let users = ["-", "frank", ""];
        let times = ["[22/Nov/2026:10:00:00 +0000]", "[]", "22/Nov/2026"];
        let requests = [
            "\"GET /api/cart?id=1 HTTP/1.1\"",
            "\"POST /a.gif HTTP/1.0\"",
            "\"GET /x\"",
            "\"GET /x \"",
            "\"get /x HTTP/1.1\"",
            "\"GET  HTTP/1.1\"",
            "\"PUT /a\"b HTTP/2\"",
            "\"GET /\"",
            "\"-\"",
        ];
        let statuses = ["200", "502", "20", "2000", "abc", "abé", "2é", "é"];
        let bytes = ["173", "-", "0", "x", "12ab", "é"];
        let tails = [
            "",
            " \"-\" \"curl/8.0\"",
            " \"https://shop/\" \"Mozilla/5.0 (X11; Linux x86_64)\" 0.231",
            " \"-\" \"curl/8.0\" 12",
            " \"-\" \"curl/8.0\" 1.",
            " 0.004",
            " \"only-referer\"",
            " \"a\" \"b\" x",
            " extra words",
            "\t0.5",
        ];
        let mut checked = 0;
        for client in clients {
            for user in users {
                for time in times {
                    for req in requests {
                        for status in statuses {
                            for b in bytes {
                                for tail in tails {
                                    let line = format!(
                                        "{client} - {user} {time} {req} {status} {b}{tail}"
                                    );
                                    assert_eq!(split_access(&line), by_regex(&line), "{line}");
                                    checked += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 100_000);
        assert!(split_access(
            r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326"#
        )
        .is_some());
    }

    #[test]
    fn json_line_keeps_every_field() {
        let p =
            parse_line(r#"{"level":"ERROR","msg":"payment failed","status":502,"user":{"id":7}}"#);
        assert_eq!(p.format, Format::Json);
        assert_eq!(p.level, Some(Level::Error));
        assert_eq!(p.fields["status"], 502);
        assert_eq!(p.fields["msg"], "payment failed");
        assert_eq!(p.fields["user"]["id"], 7);
    }

    #[test]
    fn json_numeric_level_bunyan() {
        assert_eq!(
            parse_line(r#"{"level":50,"msg":"x"}"#).level,
            Some(Level::Error)
        );
        assert_eq!(
            parse_line(r#"{"level":30,"msg":"x"}"#).level,
            Some(Level::Info)
        );
    }

    #[test]
    fn invalid_json_is_plain() {
        let p = parse_line(r#"{"level":"error", broken"#);
        assert_eq!(p.format, Format::Plain);
        assert_eq!(p.level, Some(Level::Error));
    }

    #[test]
    fn combined_access_log() {
        let p = parse_line(
            r#"10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] "GET /api/cart?id=1 HTTP/1.1" 502 173 "-" "curl/8.0" 0.231"#,
        );
        assert_eq!(p.format, Format::Access);
        assert_eq!(p.fields["status"], 502);
        assert_eq!(p.fields["method"], "GET");
        assert_eq!(p.fields["path"], "/api/cart?id=1");
        assert_eq!(p.fields["latency_ms"], 231.0);
        assert_eq!(p.level, Some(Level::Error));
    }

    #[test]
    fn common_access_log() {
        let p = parse_line(
            r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326"#,
        );
        assert_eq!(p.format, Format::Access);
        assert_eq!(p.fields["bytes"], 2326);
        assert_eq!(p.level, Some(Level::Info));
    }

    #[test]
    fn logfmt_line() {
        let p = parse_line(r#"time=2026-11-22T10:00:00Z level=warn msg="slow query" took_ms=812"#);
        assert_eq!(p.format, Format::Logfmt);
        assert_eq!(p.level, Some(Level::Warn));
        assert_eq!(p.fields["msg"], "slow query");
        assert_eq!(p.fields["took_ms"], 812);
    }

    #[test]
    fn plain_levels() {
        let cases = [
            (
                "2026-11-22 10:00:00.123 ERROR [main] c.e.Foo - boom",
                Some(Level::Error),
            ),
            ("[WARN] disk almost full", Some(Level::Warn)),
            ("I: info: started", Some(Level::Info)),
            (
                "Exception in thread \"main\" java.lang.IllegalStateException",
                None,
            ),
            ("an error occurred", Some(Level::Error)),
            ("terror is not a level", None),
            ("", None),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line).level, want, "{line}");
        }
    }

    #[test]
    fn multiline_uses_first_line() {
        let p = parse_line("2026-11-22 ERROR boom\n\tat com.example.A.b(A.java:1)\n\tat INFO");
        assert_eq!(p.level, Some(Level::Error));
    }

    #[test]
    fn level_found_in_long_utf8_line() {
        let line = format!("{} WARN x", "é".repeat(100));
        assert_eq!(parse_line(&line).level, None); // beyond 120 bytes: not looked at
        let line = format!("WARN {}", "é".repeat(100));
        assert_eq!(parse_line(&line).level, Some(Level::Warn));
    }
}
