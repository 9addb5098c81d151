//! Optional joining of multi-line events (stack traces) into one record, chosen per app by
//! the container label `drover.multiline`:
//!
//! - `java`: a line starting with a space or tab, `Caused by:`, `Suppressed:` or `...`
//!   (`... 3 more`) continues the event before it; any other line starts a new one.
//! - `regex:<pattern>`: a line matching the pattern starts a new event; any other line
//!   continues the event before it.
//!
//! Lines of different streams are never joined.

use std::str::FromStr;

use regex::Regex;

use crate::logs::frame::Joined;

/// The label values [`parse`] accepts, for error messages.
const ACCEPTED: &str =
    "`java` or `regex:<pattern>` (a line matching the pattern starts a new event)";

/// How to tell the first line of an event from its continuation lines.
#[derive(Debug, Clone)]
pub enum MultilineRule {
    /// Java (and JVM) stack traces.
    Java,
    /// A line matching the pattern starts a new event.
    Regex(Regex),
}

/// A `drover.multiline` label value that is not a rule.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// Neither `java` nor `regex:…`.
    #[error("unknown multiline rule {0:?}: expected {ACCEPTED}")]
    Unknown(String),
    /// `regex:` with nothing after it.
    #[error("empty pattern in multiline rule {0:?}: expected {ACCEPTED}")]
    EmptyPattern(String),
    /// `regex:` with a pattern that does not compile.
    #[error("bad pattern in multiline rule {label:?}: {source}")]
    BadPattern {
        /// The label value.
        label: String,
        /// What the regex compiler said.
        source: regex::Error,
    },
}

/// Reads a `drover.multiline` label value: `java` (any case) or `regex:<pattern>`.
/// Whitespace around the value is ignored; the pattern is taken as written.
pub fn parse(label: &str) -> Result<MultilineRule, RuleError> {
    let value = label.trim();
    if value.eq_ignore_ascii_case("java") {
        return Ok(MultilineRule::Java);
    }
    let Some(pattern) = value
        .get(..6)
        .filter(|prefix| prefix.eq_ignore_ascii_case("regex:"))
        .map(|_| &value[6..])
    else {
        return Err(RuleError::Unknown(label.to_owned()));
    };
    if pattern.is_empty() {
        return Err(RuleError::EmptyPattern(label.to_owned()));
    }
    Regex::new(pattern)
        .map(MultilineRule::Regex)
        .map_err(|source| RuleError::BadPattern {
            label: label.to_owned(),
            source,
        })
}

impl FromStr for MultilineRule {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

impl MultilineRule {
    /// True when `line` begins a new event rather than continuing the one before it.
    pub fn starts_event(&self, line: &str) -> bool {
        match self {
            MultilineRule::Java => !is_java_continuation(line),
            MultilineRule::Regex(re) => re.is_match(line),
        }
    }
}

/// Lines of a Java stack trace after its first: `\tat …`, `Caused by: …`, `Suppressed: …`,
/// `\t... 3 more`.
fn is_java_continuation(line: &str) -> bool {
    line.starts_with([' ', '\t'])
        || line.starts_with("Caused by:")
        || line.starts_with("Suppressed:")
        || line.starts_with("...")
}

/// Joins the continuation lines of an event onto its first line.
///
/// Feed it every line of one container in order; it holds at most one event. Call
/// [`MultilineJoiner::flush`] after a quiet period and when the container exits.
#[derive(Debug)]
pub struct MultilineJoiner {
    rule: MultilineRule,
    max_lines: usize,
    max_bytes: usize,
    pending: Option<Pending>,
}

/// The event being built.
#[derive(Debug)]
struct Pending {
    event: Joined,
    lines: usize,
}

impl MultilineJoiner {
    /// A joiner whose events hold at most `max_lines` lines (at least 1) and `max_bytes`
    /// bytes of text. A single line longer than `max_bytes` is still one event of its own.
    pub fn new(rule: MultilineRule, max_lines: usize, max_bytes: usize) -> Self {
        Self {
            rule,
            max_lines: max_lines.max(1),
            max_bytes,
            pending: None,
        }
    }

    /// Adds one line. Returns the pending event when `line` does not belong to it — `line`
    /// starts a new event, comes from the other stream, or would take the event over
    /// `max_lines` or `max_bytes` — and holds `line` as the start of the next one.
    /// A continuation line is appended after a `\n`.
    pub fn push(&mut self, line: Joined) -> Option<Joined> {
        let Some(pending) = &mut self.pending else {
            self.pending = Some(Pending {
                event: line,
                lines: 1,
            });
            return None;
        };
        let event = &mut pending.event;
        let joins = event.stream == line.stream
            && pending.lines < self.max_lines
            && event.text.len() + 1 + line.text.len() <= self.max_bytes
            && !self.rule.starts_event(&line.text);
        if joins {
            event.text.push('\n');
            event.text.push_str(&line.text);
            event.end_ts = line.end_ts;
            event.entries = event.entries.saturating_add(line.entries);
            pending.lines += 1;
            return None;
        }
        self.pending
            .replace(Pending {
                event: line,
                lines: 1,
            })
            .map(|p| p.event)
    }

    /// Emits the pending event, if any (after a quiet period, or when the container exits).
    pub fn flush(&mut self) -> Option<Joined> {
        self.pending.take().map(|p| p.event)
    }

    /// True when an event is waiting for more lines.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// The event waiting for more lines, if any.
    pub fn pending(&self) -> Option<&Joined> {
        self.pending.as_ref().map(|p| &p.event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};
    use drover_schema::Stream;

    fn ts(n: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 23, 3, 25).unwrap() + chrono::Duration::milliseconds(n)
    }

    fn line_on(stream: Stream, n: i64, text: &str) -> Joined {
        Joined {
            ts: ts(n),
            end_ts: ts(n),
            stream,
            text: text.to_owned(),
            entries: 1,
        }
    }

    fn line(n: i64, text: &str) -> Joined {
        line_on(Stream::Stdout, n, text)
    }

    /// Pushes every line, then flushes; returns the events' texts.
    fn run(joiner: &mut MultilineJoiner, lines: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| joiner.push(line(i as i64, l)))
            .map(|e| e.text)
            .collect();
        out.extend(joiner.flush().map(|e| e.text));
        out
    }

    const TRACE: [&str; 8] = [
        "Exception in thread \"main\" java.lang.IllegalStateException: boom",
        "\tat com.x.Y.z(Y.java:10)",
        "\tat com.x.Y.main(Y.java:3)",
        "Caused by: java.io.IOException: disk full",
        "\tat com.x.Disk.write(Disk.java:42)",
        "\t... 3 more",
        "\tSuppressed: java.lang.RuntimeException: close failed",
        "\t\tat com.x.Disk.close(Disk.java:50)",
    ];

    // === parse ===

    #[test]
    fn parses_label_values() {
        assert!(matches!(parse("java"), Ok(MultilineRule::Java)));
        assert!(matches!(parse(" Java \n"), Ok(MultilineRule::Java)));
        assert!(matches!(
            "JAVA".parse::<MultilineRule>(),
            Ok(MultilineRule::Java)
        ));
        for (label, pattern) in [
            (r"regex:^\d{4}-\d{2}-\d{2}", r"^\d{4}-\d{2}-\d{2}"),
            (r"REGEX:^\[", r"^\["),
            // only the first colon separates: the pattern may contain more
            ("regex:^(INFO|WARN):", "^(INFO|WARN):"),
            ("regex: x", " x"),
        ] {
            match parse(label) {
                Ok(MultilineRule::Regex(re)) => assert_eq!(re.as_str(), pattern, "{label}"),
                other => panic!("{label}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_labels_say_what_is_accepted() {
        for label in ["", "python", "javascript", "regex", "re:^x", "java stack"] {
            let err = parse(label).unwrap_err();
            assert!(matches!(err, RuleError::Unknown(_)), "{label}: {err:?}");
            let msg = err.to_string();
            assert!(msg.contains("`java` or `regex:<pattern>`"), "{msg}");
            assert!(msg.contains(&format!("{label:?}")), "{msg}");
        }
        let err = parse("regex:").unwrap_err();
        assert!(matches!(err, RuleError::EmptyPattern(_)), "{err:?}");
        assert!(err.to_string().contains("`java` or `regex:<pattern>`"));
        let err = parse("regex:(unclosed").unwrap_err();
        assert!(matches!(err, RuleError::BadPattern { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("\"regex:(unclosed\""), "{msg}");
    }

    // === rules ===

    #[test]
    fn java_continuation_lines() {
        let cases = [
            ("Exception in thread \"main\" java.lang.Error", true),
            ("\tat com.x.Y.z(Y.java:10)", false),
            ("    at com.x.Y.z(Y.java:10)", false),
            ("Caused by: java.io.IOException", false),
            ("Suppressed: java.lang.Exception", false),
            ("\t... 3 more", false),
            ("... 3 more", false),
            ("...", false),
            ("2026-11-21 23:03:25 INFO started", true),
            ("at com.x.Y.z(Y.java:10)", true), // `at` without indentation is not a frame
            ("caused by: lower case", true),
            ("", true),
        ];
        for (text, starts) in cases {
            assert_eq!(MultilineRule::Java.starts_event(text), starts, "{text:?}");
        }
    }

    // === MultilineJoiner ===

    #[test]
    fn a_java_stack_trace_is_one_event() {
        let mut j = MultilineJoiner::new(MultilineRule::Java, 500, 1 << 20);
        let mut lines: Vec<&str> = TRACE.to_vec();
        lines.push("2026-11-21 23:03:26 INFO next request");
        lines.push("2026-11-21 23:03:27 INFO and another");
        assert_eq!(
            run(&mut j, &lines),
            [
                TRACE.join("\n"),
                "2026-11-21 23:03:26 INFO next request".to_owned(),
                "2026-11-21 23:03:27 INFO and another".to_owned(),
            ]
        );
    }

    #[test]
    fn the_event_keeps_first_ts_last_end_ts_and_adds_entries() {
        let mut j = MultilineJoiner::new(MultilineRule::Java, 500, 1 << 20);
        let mut first = line(0, TRACE[0]);
        first.end_ts = ts(1);
        first.entries = 2; // a line Docker had split in two
        assert!(j.push(first).is_none());
        assert!(j.has_pending());
        let mut frame = line(5, TRACE[1]);
        frame.end_ts = ts(6);
        frame.entries = 2;
        assert!(j.push(frame).is_none());
        assert!(j.push(line(7, TRACE[2])).is_none());
        assert_eq!(j.pending().map(|e| e.end_ts), Some(ts(7)));
        let event = j.push(line(9, "next")).expect("the trace is complete");
        assert_eq!(event.ts, ts(0));
        assert_eq!(event.end_ts, ts(7));
        assert_eq!(event.entries, 5);
        assert_eq!(event.stream, Stream::Stdout);
        assert_eq!(event.text, TRACE[..3].join("\n"));
        // the new line is held
        assert_eq!(
            j.flush().map(|e| (e.ts, e.text)),
            Some((ts(9), "next".to_owned()))
        );
        assert!(!j.has_pending());
        assert!(j.flush().is_none());
    }

    #[test]
    fn a_regex_rule_starts_events_on_matching_lines() {
        let rule = parse(r"regex:^\d{4}-\d{2}-\d{2} ").unwrap();
        let mut j = MultilineJoiner::new(rule, 500, 1 << 20);
        let got = run(
            &mut j,
            &[
                "continuation before any start", // nothing pending: starts an event anyway
                "2026-11-21 23:03:25 ERROR query failed:",
                "SELECT *",
                "  FROM t",
                "2026-11-21 23:03:26 INFO ok",
                "2026-11-21 23:03:27 INFO ok again",
                "trailing",
            ],
        );
        assert_eq!(
            got,
            [
                "continuation before any start",
                "2026-11-21 23:03:25 ERROR query failed:\nSELECT *\n  FROM t",
                "2026-11-21 23:03:26 INFO ok",
                "2026-11-21 23:03:27 INFO ok again\ntrailing",
            ]
        );
    }

    #[test]
    fn streams_never_join() {
        let mut j = MultilineJoiner::new(MultilineRule::Java, 500, 1 << 20);
        assert!(j.push(line_on(Stream::Stdout, 0, TRACE[0])).is_none());
        assert!(j.push(line_on(Stream::Stdout, 1, TRACE[1])).is_none());
        // an indented stderr line would continue a stderr trace, but not the stdout one
        let out = j.push(line_on(Stream::Stderr, 2, "\tindented on stderr"));
        let out = out.expect("the stdout event is emitted first");
        assert_eq!(out.stream, Stream::Stdout);
        assert_eq!(out.text, TRACE[..2].join("\n"));
        let held = j.flush().unwrap();
        assert_eq!(held.stream, Stream::Stderr);
        assert_eq!(held.text, "\tindented on stderr");
    }

    #[test]
    fn max_lines_splits_an_event() {
        let mut j = MultilineJoiner::new(MultilineRule::Java, 3, 1 << 20);
        let got = run(
            &mut j,
            &["first", " a", " b", " c", " d", " e", " f", " g", "next"],
        );
        assert_eq!(got, ["first\n a\n b", " c\n d\n e", " f\n g", "next"]);
        // max_lines 0 is taken as 1: no joining at all
        let mut j = MultilineJoiner::new(MultilineRule::Java, 0, 1 << 20);
        assert_eq!(run(&mut j, &["first", " a"]), ["first", " a"]);
    }

    #[test]
    fn max_bytes_splits_an_event() {
        // "first\n a" is 8 bytes; adding "\n b" makes 11
        let mut j = MultilineJoiner::new(MultilineRule::Java, 100, 10);
        let got = run(&mut j, &["first", " a", " b", " c", " d"]);
        assert_eq!(got, ["first\n a", " b\n c\n d"]);
        // a line over the limit on its own is one event, not dropped
        let mut j = MultilineJoiner::new(MultilineRule::Java, 100, 4);
        let got = run(&mut j, &["0123456789", " a", " b"]);
        assert_eq!(got, ["0123456789", " a", " b"]);
        // exactly at the limit still joins
        let mut j = MultilineJoiner::new(MultilineRule::Java, 100, 8);
        assert_eq!(run(&mut j, &["first", " a"]), ["first\n a"]);
    }

    #[test]
    fn nothing_is_lost_or_reordered() {
        let mut j = MultilineJoiner::new(MultilineRule::Java, 4, 64);
        let lines: Vec<String> = (0..200)
            .map(|i| match i % 7 {
                0 => format!("event {i}"),
                3 => format!("Caused by: {i}"),
                _ => format!("\tat frame {i}"),
            })
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let got = run(&mut j, &refs);
        assert_eq!(got.join("\n"), lines.join("\n"));
        assert!(got.iter().all(|e| e.lines().count() <= 4 && e.len() <= 64));
    }
}
