//! Table tests of query semantics, order, pagination, histogram, context and field values on a
//! small index built without Kafka.
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use drover_schema::{LogRecord, Source, Stream};

use crate::{
    index::build_doc,
    parse::parse_line,
    query::{Cursor, Search, SearchRequest, TrackTotal},
    LogStore,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 23, 59, 50).unwrap()
}

/// (container, app, seconds after t0, line). Spans midnight, so two partitions.
const LINES: &[(&str, &str, i64, &str)] = &[
    ("c1", "shop/web", 0, r#"10.0.0.1 - - [21/Nov/2026:23:59:50 +0000] "GET /cart HTTP/1.1" 200 12 "-" "curl" 0.010"#),
    ("c1", "shop/web", 1, r#"10.0.0.1 - - [21/Nov/2026:23:59:51 +0000] "GET /pay HTTP/1.1" 502 0 "-" "curl" 1.200"#),
    ("c2", "shop/api", 2, r#"{"level":"error","msg":"payment failed: connection refused","status":502,"user":"u7"}"#),
    ("c2", "shop/api", 3, "2026-11-21 23:59:53 WARN pool almost exhausted"),
    ("c2", "shop/api", 4, "2026-11-21 23:59:54 INFO connection established"),
    ("c3", "billing", 5, "plain line without level mentioning refused connection"),
    ("c1", "shop/web", 12, r#"10.0.0.2 - - [22/Nov/2026:00:00:02 +0000] "POST /pay HTTP/1.1" 503 0 "-" "curl" 0.500"#),
    ("c2", "shop/api", 12, "2026-11-22 00:00:02 ERROR Exception in thread \"main\" java.lang.IllegalStateException: boom\n\tat com.shop.Pay.run(Pay.java:42)\n\tat java.lang.Thread.run(Thread.java:833)"),
    ("c3", "billing", 12, "invoice 42 sent"),
    ("c3", "billing", 13, "invoice 43 sent"),
];

fn store() -> (tempfile::TempDir, Search) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path()).unwrap());
    let mut seqs = std::collections::HashMap::new();
    let mut writers = std::collections::HashMap::new();
    for (container, app, secs, line) in LINES {
        let seq = seqs.entry(*container).or_insert(0u64);
        *seq += 1;
        let rec = LogRecord {
            v: 1,
            ts: t0() + Duration::seconds(*secs),
            end_ts: None,
            source: Source {
                host: "h1".into(),
                node: None,
                app: (*app).into(),
                task: None,
                group: None,
                container_id: (*container).into(),
                container_name: format!("{container}-name"),
                image: "img".into(),
            },
            stream: if line.contains("ERROR") {
                Stream::Stderr
            } else {
                Stream::Stdout
            },
            seq: *seq,
            line: (*line).into(),
        };
        let day = rec.ts.date_naive();
        let part = store.open_partition(day, true).unwrap().unwrap();
        let w = writers
            .entry(day)
            .or_insert_with(|| part.index.writer_with_num_threads(1, 15_000_000).unwrap());
        let parsed = parse_line(&rec.line);
        // A routing rule adds `team` to billing's lines (stored, unlike parsed fields).
        let mut added = serde_json::Map::new();
        if *app == "billing" {
            added.insert("team".into(), "invoicing".into());
        }
        w.add_document(build_doc(
            store.fields(),
            &rec,
            parsed.level,
            parsed.fields,
            added,
        ))
        .unwrap();
    }
    for (_, mut w) in writers {
        w.commit().unwrap();
    }
    store.reload().unwrap();
    (dir, Search::new(store))
}

fn lines_of(search: &Search, req: &SearchRequest) -> Vec<String> {
    search
        .search(req)
        .unwrap()
        .hits
        .into_iter()
        .map(|h| format!("{}#{}", h.container, h.seq))
        .collect()
}

fn q(text: &str) -> SearchRequest {
    SearchRequest {
        q: text.into(),
        limit: 100,
        ..Default::default()
    }
}

#[test]
fn query_semantics_table() {
    let (_dir, s) = store();
    let cases: &[(&str, &[&str])] = &[
        // everything, newest first; ties at the same instant ordered by uid (stable)
        ("connection", &["c3#1", "c2#3", "c2#1"]),
        ("\"connection refused\"", &["c2#1"]),
        ("refused AND NOT payment", &["c3#1"]),
        ("refused OR established", &["c3#1", "c2#3", "c2#1"]),
        ("level:error", &["c2#4", "c1#3", "c2#1", "c1#2"]),
        ("level:warn", &["c2#2"]),
        ("status:502", &["c2#1", "c1#2"]),
        ("status:[500 TO 599]", &["c1#3", "c2#1", "c1#2"]),
        ("method:POST", &["c1#3"]),
        ("user:u7", &["c2#1"]),
        ("IllegalStateException", &["c2#4"]),
        ("\"Pay.java\"", &["c2#4"]),
        ("invoice AND NOT 43", &["c3#2"]),
        ("invoice NOT 42", &["c3#3"]),
        ("NOT level:error AND connection", &["c3#1", "c2#3"]),
        ("container:c3", &["c3#3", "c3#2", "c3#1"]),
        ("stream:stderr", &["c2#4"]),
        // Only exclusions (the UI's "filter out" on an empty query): everything else.
        ("-stream:stdout", &["c2#4"]),
        ("NOT stream:stdout", &["c2#4"]),
        ("nothingmatchesthis", &[]),
        (
            "ts:[2026-11-22T00:00:02Z TO *]",
            &["c3#3", "c3#2", "c2#4", "c1#3"],
        ),
        ("ts:[* TO 2026-11-21T23:59:51Z] AND level:error", &["c1#2"]),
        ("pay*", &["c1#2", "c1#3", "c2#1", "c2#4"]),
        ("refus* AND NOT payment", &["c3#1"]),
    ];
    for (text, want) in cases {
        let mut got = lines_of(&s, &q(text));
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        // Lines at the same instant may come in either order, but always the same one.
        got.sort();
        want.sort();
        assert_eq!(got, want, "query {text:?}");
    }
}

#[test]
fn totals_are_exact_up_to_the_cap_and_pages_stay_the_same() {
    let (_dir, s) = store();
    let all = LINES.len() as u64;
    // The cap below the number of matches: a lower bound, and the same newest page.
    let mut capped = q("");
    capped.limit = 2;
    capped.track_total = TrackTotal::UpTo(3);
    let mut exact = capped.clone();
    exact.track_total = TrackTotal::Exact;
    let c = s.search(&capped).unwrap();
    let e = s.search(&exact).unwrap();
    assert_eq!((e.total, e.total_relation), (all, "eq"));
    assert!(c.total >= 3 && c.total <= all, "{}", c.total);
    assert_eq!(c.total_relation, if c.total < all { "gte" } else { "eq" });
    let keys = |r: &crate::query::SearchResult| -> Vec<String> {
        r.hits.iter().map(|h| h.cursor.clone()).collect()
    };
    assert_eq!(keys(&c), keys(&e));
    // Paging with a capped total still visits every line once.
    let mut seen = Vec::new();
    let mut req = capped.clone();
    loop {
        let page = s.search(&req).unwrap();
        seen.extend(keys(&page));
        match page.next_cursor {
            Some(c) => req.cursor = Some(Cursor::parse(&c).unwrap()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len() as u64, unique.len() as u64), (all, all));
    // A cap above the number of matches is exact.
    let mut high = q("");
    high.track_total = TrackTotal::UpTo(all + 1);
    assert_eq!(s.search(&high).unwrap().total_relation, "eq");
}

#[test]
fn hits_show_every_parsed_field_and_the_rules_fields() {
    let (_dir, s) = store();
    let hit = s.search(&q("user:u7")).unwrap().hits.remove(0);
    // Parsed again from the line: the message is shown though it is not indexed as a field.
    assert_eq!(
        serde_json::Value::Object(hit.fields.as_object().unwrap().clone()),
        serde_json::json!({"level": "error", "msg": "payment failed: connection refused", "status": 502, "user": "u7"})
    );
    assert!(lines_of(&s, &q(r#"msg:"payment failed: connection refused""#)).is_empty());
    let access = s.search(&q("status:503")).unwrap().hits.remove(0);
    assert_eq!(access.fields["method"], "POST");
    assert_eq!(access.fields["latency_ms"], 500.0);
    // Rule-added fields are searchable and shown.
    let billing = s.search(&q("team:invoicing")).unwrap();
    assert_eq!(billing.total, 3);
    assert!(billing.hits.iter().all(|h| h.fields["team"] == "invoicing"));
}

#[test]
fn newest_first_across_partitions() {
    let (_dir, s) = store();
    let hits = s.search(&q("")).unwrap();
    assert_eq!(hits.total, LINES.len() as u64);
    assert_eq!(hits.partitions, 2);
    let ts: Vec<i64> = hits.hits.iter().map(|h| h.ts_ns).collect();
    let mut sorted = ts.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ts, sorted);
    assert_eq!(hits.hits[0].container, "c3");
    assert_eq!(hits.hits[0].seq, 3);
}

#[test]
fn filters_and_time_range() {
    let (_dir, s) = store();
    let mut r = q("");
    r.app = vec!["shop/web".into(), "billing".into()];
    r.from = Some(t0() + Duration::seconds(1));
    r.to = Some(t0() + Duration::seconds(12));
    assert_eq!(
        {
            let mut v = lines_of(&s, &r);
            v.sort();
            v
        },
        ["c1#2", "c1#3", "c3#1", "c3#2"]
    );
    let mut r = q("");
    r.level = vec!["none".into()];
    let mut v = lines_of(&s, &r);
    v.sort();
    assert_eq!(v, ["c3#1", "c3#2", "c3#3"]);
    let mut r = q("");
    r.level = vec!["loud".into()];
    assert!(s
        .search(&r)
        .unwrap_err()
        .to_string()
        .contains("unknown level"));
    // A range in the future opens no partition.
    let mut r = q("");
    r.from = Some(t0() + Duration::days(3));
    let res = s.search(&r).unwrap();
    assert_eq!((res.total, res.partitions), (0, 0));
}

#[test]
fn cursor_pages_cover_everything_once() {
    let (_dir, s) = store();
    let all = lines_of(&s, &q(""));
    for limit in [1, 2, 3, 4, 7] {
        let mut seen = Vec::new();
        let mut r = q("");
        r.limit = limit;
        loop {
            let page = s.search(&r).unwrap();
            assert_eq!(page.total, LINES.len() as u64);
            seen.extend(
                page.hits
                    .iter()
                    .map(|h| format!("{}#{}", h.container, h.seq)),
            );
            match page.next_cursor {
                Some(c) => r.cursor = Some(Cursor::parse(&c).unwrap()),
                None => break,
            }
        }
        assert_eq!(seen, all, "limit {limit}");
    }
}

#[test]
fn bad_queries_say_what_is_wrong() {
    let (_dir, s) = store();
    for bad in ["foo AND (", "status:[500 TO", "\"unclosed"] {
        let e = s.search(&q(bad)).unwrap_err();
        assert!(e.is_client_error(), "{bad}: {e}");
        assert!(e.to_string().contains("invalid query"), "{e}");
    }
    assert!(Cursor::parse("nope").is_err());
}

#[test]
fn snippets_highlight_matches() {
    let (_dir, s) = store();
    let mut r = q("refused");
    r.snippets = true;
    let res = s.search(&r).unwrap();
    let snippet = res.hits[0].snippet.clone().unwrap();
    assert!(snippet.contains("<b>refused</b>"), "{snippet}");
}

#[test]
fn histogram_by_level() {
    let (_dir, s) = store();
    let mut r = q("");
    r.from = Some(t0());
    r.to = Some(t0() + Duration::seconds(19));
    let h = s.histogram(&r, 2, Utc::now()).unwrap();
    assert_eq!(h.interval_ms, 10_000);
    assert_eq!(h.total, LINES.len() as u64);
    let first = &h.buckets[0];
    assert_eq!(first.total, 6);
    assert_eq!(first.levels.get("error"), Some(&2));
    assert_eq!(first.levels.get("warn"), Some(&1));
    assert_eq!(first.levels.get("info"), Some(&2));
    assert_eq!(first.levels.get("none"), Some(&1));
    let second = &h.buckets[1];
    assert_eq!(second.total, 4);
    assert_eq!(second.levels.get("error"), Some(&2));
    let r = q("level:error");
    let h = s.histogram(&r, 60, t0() + Duration::seconds(20)).unwrap();
    assert_eq!(h.total, 4);
}

#[test]
fn context_around_a_line() {
    let (_dir, s) = store();
    let lines = s.context("c2", 3, 1, 1).unwrap();
    let seqs: Vec<u64> = lines.iter().map(|h| h.seq).collect();
    assert_eq!(seqs, [2, 3, 4]); // seq 4 is in the next day's partition
    assert!(lines.iter().all(|h| h.container == "c2"));
}

#[test]
fn top_field_values() {
    let (_dir, s) = store();
    let v = s.field_values(&q(""), "app", 10).unwrap();
    assert_eq!(v.values[0].value, "shop/api");
    assert_eq!(v.values[0].count, 4);
    let v = s.field_values(&q(""), "status", 10).unwrap();
    let pairs: Vec<(String, u64)> = v
        .values
        .iter()
        .map(|x| (x.value.clone(), x.count))
        .collect();
    assert_eq!(pairs[0], ("502".to_string(), 2));
    assert_eq!(v.total, 4);
    let v = s.field_values(&q("level:error"), "level", 10).unwrap();
    assert_eq!(v.values.len(), 1);
    assert!(s.field_values(&q(""), "line", 10).is_err());
}

#[test]
fn newer_than_returns_oldest_first() {
    let (_dir, s) = store();
    let after = Cursor {
        ts_ns: (t0() + Duration::seconds(12))
            .timestamp_nanos_opt()
            .unwrap(),
        uid: 0,
    };
    let hits = s.newer_than(&q(""), after, 100).unwrap();
    let seqs: Vec<String> = hits
        .iter()
        .map(|h| format!("{}#{}", h.container, h.seq))
        .collect();
    assert_eq!(seqs.len(), 4);
    assert_eq!(seqs.last().unwrap(), "c3#3");
}

#[test]
fn rewrite_unknown_fields() {
    let known = |n: &str| ["app", "level", "ts"].contains(&n);
    let r = |s| crate::query::rewrite_fields(s, known);
    assert_eq!(
        r("status:502 AND level:error"),
        "fields.status:502 AND level:error"
    );
    assert_eq!(
        r("\"a status:1\" user.id:7"),
        "\"a status:1\" fields.user.id:7"
    );
    assert_eq!(
        r("ts:[2026-11-22T00:00:00Z TO *]"),
        "ts:[2026-11-22T00:00:00Z TO *]"
    );
    assert_eq!(
        r("(method:GET) -path:/x"),
        "(fields.method:GET) -fields.path:/x"
    );
    assert_eq!(r("a AND NOT status:5"), "a AND -fields.status:5");
    assert_eq!(r("Pay* (refus*)"), "message:/pay.*/ (message:/refus.*/)");
    assert_eq!(r("NOTE \"NOT x\""), "NOTE \"NOT x\"");
    assert_eq!(
        r("ts:\"2026-11-22T00:00:00Z\" x"),
        "ts:[2026-11-22T00:00:00Z TO 2026-11-22T00:00:00Z] x"
    );
    assert_eq!(r("(ts:1) x"), "(ts:[1 TO 1]) x");
    // `seq` is not known here: a parsed field, left as a term.
    assert_eq!(r("seq:7"), "fields.seq:7");
}

#[test]
fn one_value_of_a_fast_only_field_matches_like_a_term() {
    let (_dir, s) = store();
    let mut hits = lines_of(&s, &q("seq:2"));
    hits.sort();
    assert_eq!(hits, ["c1#2", "c2#2", "c3#2"]);
    let mut r = q("-seq:2 AND app:billing");
    r.limit = 10;
    assert_eq!(lines_of(&s, &r), ["c3#3", "c3#1"]);
    // The UI's "+" on a line's time: the exact nanosecond, quoted.
    assert_eq!(lines_of(&s, &q(r#"ts:"2026-11-21T23:59:51Z""#)), ["c1#2"]);
    assert_eq!(lines_of(&s, &q("ts:2026-11-21T23:59:51Z")), ["c1#2"]);
    assert_eq!(lines_of(&s, &q("(seq:3) AND app:shop/web")), ["c1#3"]);
}

#[test]
fn check_query_accepts_good_queries_and_names_the_problem_of_bad_ones() {
    for q in [
        "",
        "*",
        "level:error",
        "level:error AND status:[500 TO 599]",
        "NOT healthz",
    ] {
        crate::query::check_query(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    }
    let e = crate::query::check_query("status:[500 TO").unwrap_err();
    assert!(e.is_client_error(), "{e}");
    assert!(e.to_string().contains("status:[500 TO"), "{e}");
}
