//! Docker log entries, and rejoining the 16 KB partial entries Docker splits long lines into.
//!
//! With `timestamps=true` every entry Docker sends (one multiplexed frame for a non-TTY
//! container, one newline-terminated chunk for a TTY one) is `<RFC3339Nano timestamp> <text>`
//! and ends with `\n` — unless Docker cut a long line into 16 KB pieces: then every piece but
//! the last lacks the `\n`. [`parse_entry`] reads one entry; [`PartialJoiner`] glues the pieces
//! of a line back together, per stream, since stdout and stderr pieces can interleave.
//!
//! Docker cuts at byte offsets, possibly inside a UTF-8 character, so entries keep their
//! bytes and only the joined line is decoded.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use drover_schema::Stream;

/// How many bytes of a bad entry an error message quotes.
const EXCERPT_BYTES: usize = 64;

/// How far into an entry the space after the timestamp is looked for. An RFC 3339 timestamp
/// with nanoseconds and an offset is 35 bytes.
const MAX_TIMESTAMP_BYTES: usize = 40;

/// One log entry as Docker sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When the container wrote it (Docker's timestamp).
    pub ts: DateTime<Utc>,
    /// Which stream it was written to.
    pub stream: Stream,
    /// The text after the timestamp, without the trailing `\n` (and a `\r` before it, which a
    /// TTY writes). Raw bytes: a partial entry may end in the middle of a UTF-8 character.
    pub bytes: Vec<u8>,
    /// True when Docker split the line and more of it follows in the next entry of the same
    /// stream (the entry did not end with `\n`).
    pub partial: bool,
}

impl Entry {
    /// The text, with invalid UTF-8 replaced by U+FFFD. For a partial entry, prefer
    /// [`PartialJoiner`], which decodes the whole line and so keeps characters cut in two.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
}

/// An entry that is not `<timestamp> <text>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// No space after the timestamp (or no timestamp at all).
    #[error("log entry has no space after a timestamp (was the log read with timestamps=true?): {excerpt:?}")]
    NoSpace {
        /// The start of the entry, invalid UTF-8 replaced.
        excerpt: String,
    },
    /// The part before the first space is not an RFC 3339 timestamp.
    #[error("log entry has a bad timestamp {timestamp:?}: {reason}; entry starts {excerpt:?}")]
    BadTimestamp {
        /// What stood where the timestamp should be.
        timestamp: String,
        /// Why it does not parse.
        reason: String,
        /// The start of the entry, invalid UTF-8 replaced.
        excerpt: String,
    },
}

/// Reads one Docker log entry, `<RFC3339Nano timestamp> <text>[\r]\n` (no `\n`: a partial
/// entry). Invalid UTF-8 in the text is kept as bytes (see [`Entry::bytes`]).
pub fn parse_entry(stream: Stream, bytes: &[u8]) -> Result<Entry, FrameError> {
    let head = &bytes[..bytes.len().min(MAX_TIMESTAMP_BYTES)];
    let Some(space) = head.iter().position(|&b| b == b' ') else {
        return Err(FrameError::NoSpace {
            excerpt: excerpt(bytes),
        });
    };
    let raw_ts = String::from_utf8_lossy(&bytes[..space]);
    let ts = DateTime::parse_from_rfc3339(&raw_ts)
        .map_err(|e| FrameError::BadTimestamp {
            timestamp: raw_ts.clone().into_owned(),
            reason: e.to_string(),
            excerpt: excerpt(bytes),
        })?
        .with_timezone(&Utc);

    let mut text = &bytes[space + 1..];
    let partial = match text.strip_suffix(b"\n") {
        Some(line) => {
            text = line.strip_suffix(b"\r").unwrap_or(line);
            false
        }
        None => true,
    };
    Ok(Entry {
        ts,
        stream,
        bytes: text.to_vec(),
        partial,
    })
}

/// The first bytes of an entry for an error message.
fn excerpt(bytes: &[u8]) -> String {
    if bytes.len() <= EXCERPT_BYTES {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut s = String::from_utf8_lossy(&bytes[..EXCERPT_BYTES]).into_owned();
    s.push('…');
    s
}

/// One line, rejoined from one or more Docker entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// Timestamp of the first entry.
    pub ts: DateTime<Utc>,
    /// Timestamp of the last entry (equal to `ts` for a line Docker did not split).
    pub end_ts: DateTime<Utc>,
    /// The stream all its entries came from.
    pub stream: Stream,
    /// The line without its trailing newline, invalid UTF-8 replaced by U+FFFD.
    pub text: String,
    /// How many Docker entries contributed bytes to it (an entry whose bytes were cut between
    /// two records by the size limit counts in both).
    pub entries: u32,
}

impl Joined {
    /// A line made of a single entry.
    pub fn from_entry(e: Entry) -> Self {
        Self {
            ts: e.ts,
            end_ts: e.ts,
            stream: e.stream,
            text: decode(e.bytes),
            entries: 1,
        }
    }
}

fn decode(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Glues Docker's partial entries back into whole lines, one buffer per stream.
///
/// A line longer than `max_bytes` is never held whole: the buffered bytes go out as one
/// record of at most `max_bytes` (cut at a UTF-8 character boundary) and the rest continues
/// as the next record, so nothing is dropped and memory stays bounded.
#[derive(Debug)]
pub struct PartialJoiner {
    max_bytes: usize,
    /// Indexed by [`slot`].
    buffers: [Option<Buffer>; 2],
}

/// The pieces of one unfinished line.
#[derive(Debug)]
struct Buffer {
    ts: DateTime<Utc>,
    end_ts: DateTime<Utc>,
    stream: Stream,
    bytes: Vec<u8>,
    entries: u32,
}

impl Buffer {
    fn into_joined(self) -> Joined {
        Joined {
            ts: self.ts,
            end_ts: self.end_ts,
            stream: self.stream,
            text: decode(self.bytes),
            entries: self.entries,
        }
    }
}

fn slot(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

/// The smallest byte count a record may be limited to: one UTF-8 character.
const MIN_MAX_BYTES: usize = 4;

impl PartialJoiner {
    /// A joiner whose records hold at most `max_bytes` bytes of text (at least 4, so that
    /// any UTF-8 character fits).
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes: max_bytes.max(MIN_MAX_BYTES),
            buffers: [None, None],
        }
    }

    /// Adds one entry. Returns the records it completes, in order: none while a line is still
    /// partial, the whole line when `e` ends it, and one record per `max_bytes` when the line
    /// outgrows the limit.
    pub fn push(&mut self, e: Entry) -> Vec<Joined> {
        let slot = &mut self.buffers[slot(e.stream)];
        if slot.is_none() && !e.partial && e.bytes.len() <= self.max_bytes {
            // The common case: a whole line in one entry.
            return vec![Joined::from_entry(e)];
        }

        let buf = slot.get_or_insert_with(|| Buffer {
            ts: e.ts,
            end_ts: e.ts,
            stream: e.stream,
            bytes: Vec::new(),
            entries: 0,
        });
        if !e.partial && e.bytes.is_empty() && buf.bytes.last() == Some(&b'\r') {
            // Docker cut a `\r\n` line end in two; drop the `\r` as `parse_entry` would have.
            buf.bytes.pop();
        }
        buf.end_ts = e.ts;
        buf.entries = buf.entries.saturating_add(1);
        buf.bytes.extend_from_slice(&e.bytes);

        let mut out = Vec::new();
        while buf.bytes.len() > self.max_bytes {
            let cut = char_boundary_at_or_before(&buf.bytes, self.max_bytes);
            let rest = buf.bytes.split_off(cut);
            let full = std::mem::replace(
                buf,
                Buffer {
                    ts: e.ts,
                    end_ts: e.ts,
                    stream: e.stream,
                    bytes: rest,
                    entries: 1,
                },
            );
            out.push(full.into_joined());
        }
        if !e.partial {
            if let Some(buf) = slot.take() {
                out.push(buf.into_joined());
            }
        }
        out
    }

    /// Emits the unfinished lines (the container exited in the middle of one), oldest first.
    pub fn flush(&mut self) -> Vec<Joined> {
        let mut out: Vec<Joined> = self
            .buffers
            .iter_mut()
            .filter_map(Option::take)
            .map(Buffer::into_joined)
            .collect();
        out.sort_by_key(|j| j.ts);
        out
    }

    /// True when a line is waiting for its last piece on either stream.
    pub fn has_pending(&self) -> bool {
        self.buffers.iter().any(Option::is_some)
    }

    /// Timestamp of the oldest entry not yet emitted, if any: a resumed follower must start
    /// from there to lose nothing.
    pub fn pending_since(&self) -> Option<DateTime<Utc>> {
        self.buffers.iter().flatten().map(|b| b.ts).min()
    }
}

/// The largest index `<= limit` (and `> 0`) at which `bytes` can be cut without splitting a
/// UTF-8 character; `limit` itself when the bytes there are not valid UTF-8.
fn char_boundary_at_or_before(bytes: &[u8], limit: usize) -> usize {
    let is_continuation = |b: u8| b & 0b1100_0000 == 0b1000_0000;
    (limit.saturating_sub(3).max(1)..=limit)
        .rev()
        .find(|&i| i >= bytes.len() || !is_continuation(bytes[i]))
        .unwrap_or(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn ts(nanos: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 23, 3, 25).unwrap()
            + chrono::Duration::nanoseconds(nanos.into())
    }

    /// Docker's RFC3339Nano: trailing zeros of the fraction trimmed.
    fn docker_ts(t: DateTime<Utc>) -> String {
        t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    }

    fn raw(t: DateTime<Utc>, text: &[u8], newline: bool) -> Vec<u8> {
        let mut v = docker_ts(t).into_bytes();
        v.push(b' ');
        v.extend_from_slice(text);
        if newline {
            v.push(b'\n');
        }
        v
    }

    fn entry(stream: Stream, n: u32, text: &str, partial: bool) -> Entry {
        Entry {
            ts: ts(n),
            stream,
            bytes: text.as_bytes().to_vec(),
            partial,
        }
    }

    // === parse_entry ===

    #[test]
    fn parses_entries() {
        let cases: &[(&[u8], &str, &[u8], bool)] = &[
            (
                b"2026-11-21T23:03:25.123456789Z hello world\n",
                "2026-11-21T23:03:25.123456789Z",
                b"hello world",
                false,
            ),
            // trailing zeros trimmed, as Docker writes them
            (
                b"2026-11-21T23:03:25.1Z x\n",
                "2026-11-21T23:03:25.1Z",
                b"x",
                false,
            ),
            (
                b"2026-11-21T23:03:25Z x\n",
                "2026-11-21T23:03:25Z",
                b"x",
                false,
            ),
            // an offset other than Z
            (
                b"2026-11-22T01:03:25.5+02:00 x\n",
                "2026-11-21T23:03:25.5Z",
                b"x",
                false,
            ),
            // an empty line
            (
                b"2026-11-21T23:03:25Z \n",
                "2026-11-21T23:03:25Z",
                b"",
                false,
            ),
            // TTY line end
            (
                b"2026-11-21T23:03:25Z tty\r\n",
                "2026-11-21T23:03:25Z",
                b"tty",
                false,
            ),
            // only the \r right before \n goes
            (
                b"2026-11-21T23:03:25Z a\rb\r\r\n",
                "2026-11-21T23:03:25Z",
                b"a\rb\r",
                false,
            ),
            // a partial entry: no newline
            (
                b"2026-11-21T23:03:25Z part",
                "2026-11-21T23:03:25Z",
                b"part",
                true,
            ),
            (b"2026-11-21T23:03:25Z ", "2026-11-21T23:03:25Z", b"", true),
            // a partial entry ending in a \r keeps it: the \n may follow in the next entry
            (
                b"2026-11-21T23:03:25Z part\r",
                "2026-11-21T23:03:25Z",
                b"part\r",
                true,
            ),
            // spaces and tabs in the text are kept
            (
                b"2026-11-21T23:03:25Z   \tindented \n",
                "2026-11-21T23:03:25Z",
                b"  \tindented ",
                false,
            ),
            // invalid UTF-8 is kept as bytes
            (
                b"2026-11-21T23:03:25Z \xff\xfe\n",
                "2026-11-21T23:03:25Z",
                b"\xff\xfe",
                false,
            ),
        ];
        for &(input, want_ts, want_bytes, want_partial) in cases {
            let e = parse_entry(Stream::Stderr, input)
                .unwrap_or_else(|err| panic!("{:?}: {err}", String::from_utf8_lossy(input)));
            let want_ts = DateTime::parse_from_rfc3339(want_ts).unwrap();
            assert_eq!(e.ts, want_ts, "{input:?}");
            assert_eq!(e.stream, Stream::Stderr);
            assert_eq!(e.bytes, want_bytes, "{input:?}");
            assert_eq!(e.partial, want_partial, "{input:?}");
        }
    }

    #[test]
    fn text_replaces_invalid_utf8() {
        let e = parse_entry(Stream::Stdout, b"2026-11-21T23:03:25Z caf\xc3\xa9 \xff\n").unwrap();
        assert_eq!(e.text(), "café \u{fffd}");
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        let long = format!("{}\n", "x".repeat(200));
        let cases: &[(&[u8], &str)] = &[
            (b"", "no space"),
            (b"hello\n", "no space"),
            (long.as_bytes(), "no space"),
            (b"2026-11-21T23:03:25Z", "no space"),
            (b"hello world\n", "bad timestamp \"hello\""),
            (b" leading space\n", "bad timestamp \"\""),
            (
                b"2026-13-21T23:03:25Z month 13\n",
                "bad timestamp \"2026-13-21T23:03:25Z\"",
            ),
            (b"2026-11-21 23:03:25Z x\n", "bad timestamp \"2026-11-21\""),
            (b"1732230205 epoch\n", "bad timestamp \"1732230205\""),
        ];
        for &(input, want) in cases {
            let err = parse_entry(Stream::Stdout, input).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(want), "{input:?}: {msg}");
        }
        // The excerpt is short and says it was cut.
        let msg = parse_entry(Stream::Stdout, long.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(msg.len() < 200, "{msg}");
        assert!(msg.contains('…'), "{msg}");
        // and includes the entry's start, lossily
        let msg = parse_entry(Stream::Stdout, b"\xffbad x\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("\u{fffd}bad x"), "{msg}");
    }

    // === PartialJoiner ===

    #[test]
    fn a_whole_line_passes_through() {
        let mut j = PartialJoiner::new(1024);
        let out = j.push(entry(Stream::Stdout, 1, "hello", false));
        assert_eq!(
            out,
            vec![Joined {
                ts: ts(1),
                end_ts: ts(1),
                stream: Stream::Stdout,
                text: "hello".into(),
                entries: 1,
            }]
        );
        assert!(!j.has_pending());
        assert!(j.flush().is_empty());
    }

    #[test]
    fn partials_join_into_one_line() {
        let mut j = PartialJoiner::new(1024);
        assert!(j.push(entry(Stream::Stdout, 1, "aaa", true)).is_empty());
        assert!(j.has_pending());
        assert_eq!(j.pending_since(), Some(ts(1)));
        assert!(j.push(entry(Stream::Stdout, 2, "bbb", true)).is_empty());
        let out = j.push(entry(Stream::Stdout, 3, "cc", false));
        assert_eq!(
            out,
            vec![Joined {
                ts: ts(1),
                end_ts: ts(3),
                stream: Stream::Stdout,
                text: "aaabbbcc".into(),
                entries: 3,
            }]
        );
        assert!(!j.has_pending());
        assert_eq!(j.pending_since(), None);
    }

    #[test]
    fn streams_interleave() {
        let mut j = PartialJoiner::new(1024);
        assert!(j.push(entry(Stream::Stdout, 1, "out-1 ", true)).is_empty());
        assert!(j.push(entry(Stream::Stderr, 2, "err-1 ", true)).is_empty());
        // a whole stderr line would be out of order only against the other stream
        assert!(j.push(entry(Stream::Stdout, 3, "out-2 ", true)).is_empty());
        let err = j.push(entry(Stream::Stderr, 4, "err-2", false));
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].text, "err-1 err-2");
        assert_eq!(err[0].stream, Stream::Stderr);
        assert_eq!((err[0].ts, err[0].end_ts), (ts(2), ts(4)));
        assert_eq!(j.pending_since(), Some(ts(1)));
        let out = j.push(entry(Stream::Stdout, 5, "out-3", false));
        assert_eq!(out[0].text, "out-1 out-2 out-3");
        assert_eq!(out[0].entries, 3);
    }

    #[test]
    fn a_character_cut_in_two_is_rejoined() {
        let line = "naïve 日本語";
        let bytes = line.as_bytes();
        // cut inside 'ï' (2 bytes) and inside '日' (3 bytes)
        let cuts = [3, 8, bytes.len()];
        let mut j = PartialJoiner::new(1024);
        let mut start = 0;
        let mut out = Vec::new();
        for (i, &end) in cuts.iter().enumerate() {
            let last = i == cuts.len() - 1;
            let e =
                parse_entry(Stream::Stdout, &raw(ts(i as u32), &bytes[start..end], last)).unwrap();
            out.extend(j.push(e));
            start = end;
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, line);
    }

    #[test]
    fn a_crlf_cut_in_two_loses_only_the_cr() {
        let mut j = PartialJoiner::new(1024);
        let first = parse_entry(Stream::Stdout, b"2026-11-21T23:03:25Z tty line\r").unwrap();
        let last = parse_entry(Stream::Stdout, b"2026-11-21T23:03:26Z \n").unwrap();
        assert!(j.push(first).is_empty());
        let out = j.push(last);
        assert_eq!(out[0].text, "tty line");
        // a \r in the middle of a line is not touched
        let mut j = PartialJoiner::new(1024);
        assert!(j.push(entry(Stream::Stdout, 1, "a\r", true)).is_empty());
        assert_eq!(j.push(entry(Stream::Stdout, 2, "b", false))[0].text, "a\rb");
    }

    #[test]
    fn flush_emits_unfinished_lines_oldest_first() {
        let mut j = PartialJoiner::new(1024);
        assert!(j.push(entry(Stream::Stderr, 1, "err", true)).is_empty());
        assert!(j.push(entry(Stream::Stdout, 2, "out", true)).is_empty());
        assert!(j.push(entry(Stream::Stdout, 3, "put", true)).is_empty());
        let out = j.flush();
        let got: Vec<_> = out
            .iter()
            .map(|r| (r.stream, r.text.as_str(), r.entries))
            .collect();
        assert_eq!(
            got,
            [(Stream::Stderr, "err", 1), (Stream::Stdout, "output", 2)]
        );
        assert!(!j.has_pending());
        assert!(j.flush().is_empty());
    }

    #[test]
    fn an_overlong_line_is_split_into_records_without_loss() {
        let mut j = PartialJoiner::new(10);
        assert!(j.push(entry(Stream::Stdout, 1, "0123456", true)).is_empty());
        // 7 + 7 = 14 > 10: the first 10 bytes go out, 4 stay
        let out = j.push(entry(Stream::Stdout, 2, "789abcd", true));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, "0123456789");
        assert_eq!(
            (out[0].ts, out[0].end_ts, out[0].entries),
            (ts(1), ts(2), 2)
        );
        assert_eq!(j.pending_since(), Some(ts(2)));
        // a 25-byte final piece: 4 + 25 = 29 → 10 + 10 + 9
        let out = j.push(entry(Stream::Stdout, 3, "efghijklmnopqrstuvwxyzABC", false));
        let texts: Vec<_> = out.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["abcdefghij", "klmnopqrst", "uvwxyzABC"]);
        assert_eq!((out[0].ts, out[0].end_ts), (ts(2), ts(3)));
        assert_eq!((out[1].ts, out[2].end_ts), (ts(3), ts(3)));
        assert!(!j.has_pending());
    }

    #[test]
    fn an_overlong_single_entry_is_split_too() {
        let mut j = PartialJoiner::new(4);
        let out = j.push(entry(Stream::Stderr, 1, "abcdefghij", false));
        let texts: Vec<_> = out.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["abcd", "efgh", "ij"]);
        assert!(out
            .iter()
            .all(|r| r.stream == Stream::Stderr && r.entries == 1));
    }

    #[test]
    fn the_size_limit_cuts_at_character_boundaries() {
        // 'é' is 2 bytes, '日' 3, '😀' 4
        let mut j = PartialJoiner::new(5);
        let out = j.push(entry(Stream::Stdout, 1, "abcd日é😀x", false));
        let texts: Vec<_> = out.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["abcd", "日é", "😀x"]);
        // a limit below 4 is raised to 4 so a character always fits
        let mut j = PartialJoiner::new(0);
        let out = j.push(entry(Stream::Stdout, 1, "😀😀", false));
        let texts: Vec<_> = out.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["😀", "😀"]);
    }

    #[test]
    fn boundary_search() {
        let s = "ab日".as_bytes(); // a b e6 97 a5
        let cases = [(1, 1), (2, 2), (3, 2), (4, 2), (5, 5)];
        for (limit, want) in cases {
            assert_eq!(char_boundary_at_or_before(s, limit), want, "limit {limit}");
        }
        // runs of continuation bytes (not UTF-8): cut at the limit
        assert_eq!(char_boundary_at_or_before(&[0x80; 10], 6), 6);
        assert_eq!(char_boundary_at_or_before(&[0x80; 10], 1), 1);
    }

    // === properties ===

    /// Splits `bytes` at the given points (any byte offsets), as Docker does at 16 KB.
    fn pieces(bytes: &[u8], mut cuts: Vec<usize>) -> Vec<&[u8]> {
        cuts.retain(|&c| c > 0 && c < bytes.len());
        cuts.sort_unstable();
        cuts.dedup();
        let mut out = Vec::new();
        let mut start = 0;
        for c in cuts {
            out.push(&bytes[start..c]);
            start = c;
        }
        out.push(&bytes[start..]);
        out
    }

    fn feed(j: &mut PartialJoiner, stream: Stream, pieces: &[&[u8]]) -> Vec<Joined> {
        let mut out = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            let last = i == pieces.len() - 1;
            let e = parse_entry(stream, &raw(ts(i as u32), p, last)).unwrap();
            out.extend(j.push(e));
        }
        out
    }

    proptest! {
        #[test]
        fn any_split_rejoins_to_the_original(
            line in "[^\r\n]{0,300}",
            cuts in proptest::collection::vec(0usize..1200, 0..12),
        ) {
            let parts = pieces(line.as_bytes(), cuts);
            let mut j = PartialJoiner::new(16 * 1024);
            let out = feed(&mut j, Stream::Stdout, &parts);
            prop_assert_eq!(out.len(), 1);
            prop_assert_eq!(&out[0].text, &line);
            prop_assert_eq!(out[0].entries as usize, parts.len());
            prop_assert_eq!(out[0].ts, ts(0));
            prop_assert_eq!(out[0].end_ts, ts(parts.len() as u32 - 1));
            prop_assert!(!j.has_pending());
        }

        #[test]
        fn interleaved_streams_rejoin_separately(
            out_line in "[^\r\n]{1,100}",
            err_line in "[^\r\n]{1,100}",
            out_cuts in proptest::collection::vec(0usize..400, 0..6),
            err_cuts in proptest::collection::vec(0usize..400, 0..6),
            order in proptest::collection::vec(any::<bool>(), 0..24),
        ) {
            let outs = pieces(out_line.as_bytes(), out_cuts);
            let errs = pieces(err_line.as_bytes(), err_cuts);
            let mut j = PartialJoiner::new(16 * 1024);
            let (mut o, mut e) = (0, 0);
            let mut order = order.into_iter();
            let mut got = Vec::new();
            let mut n = 0u32;
            while o < outs.len() || e < errs.len() {
                let take_out = e >= errs.len() || (o < outs.len() && order.next().unwrap_or(true));
                let (stream, parts, i) = if take_out {
                    (Stream::Stdout, &outs, &mut o)
                } else {
                    (Stream::Stderr, &errs, &mut e)
                };
                let last = *i == parts.len() - 1;
                let entry = parse_entry(stream, &raw(ts(n), parts[*i], last)).unwrap();
                got.extend(j.push(entry));
                *i += 1;
                n += 1;
            }
            prop_assert_eq!(got.len(), 2);
            for r in &got {
                let want = match r.stream { Stream::Stdout => &out_line, Stream::Stderr => &err_line };
                prop_assert_eq!(&r.text, want);
            }
        }

        #[test]
        fn the_size_limit_loses_nothing(
            line in "[^\r\n]{0,300}",
            cuts in proptest::collection::vec(0usize..1200, 0..12),
            max in 0usize..64,
        ) {
            let parts = pieces(line.as_bytes(), cuts);
            let mut j = PartialJoiner::new(max);
            let out = feed(&mut j, Stream::Stdout, &parts);
            let limit = max.max(MIN_MAX_BYTES);
            prop_assert!(out.iter().all(|r| r.text.len() <= limit), "a record over {} bytes", limit);
            prop_assert!(out.iter().skip(1).all(|r| !r.text.is_empty()));
            let whole: String = out.iter().map(|r| r.text.as_str()).collect();
            prop_assert_eq!(whole, line);
            prop_assert!(out.windows(2).all(|w| w[0].end_ts <= w[1].ts));
            prop_assert!(!j.has_pending());
        }
    }
}
