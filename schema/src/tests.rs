use chrono::{TimeZone, Utc};
use proptest::prelude::*;

use super::*;

fn source() -> Source {
    Source {
        host: "host-1".into(),
        node: Some("node-1".into()),
        app: "/shop/web".into(),
        task: Some("shop_web.7f3c".into()),
        group: Some("g1".into()),
        container_id: "4f1e2d".into(),
        container_name: "drover-shop_web-1".into(),
        image: "drover-demo:latest".into(),
    }
}

fn log_record(seq: u64, line: &str) -> LogRecord {
    LogRecord {
        v: SCHEMA_VERSION,
        ts: Utc.timestamp_nanos(1_795_000_000_123_456_789),
        end_ts: None,
        source: source(),
        stream: Stream::Stdout,
        seq,
        line: line.into(),
    }
}

#[test]
fn log_record_round_trips_with_nanoseconds() {
    let rec = log_record(42, "GET / 200");
    let bytes = encode(&rec);
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(text.contains("\"v\":1"), "{text}");
    assert!(text.contains(".123456789Z"), "nanoseconds kept: {text}");
    let back: LogRecord = decode(&bytes).unwrap();
    assert_eq!(back, rec);
}

#[test]
fn metric_records_round_trip_both_kinds() {
    let c = MetricRecord::Container(ContainerStats {
        v: 1,
        ts: Utc.timestamp_nanos(1_795_000_000_000_000_000),
        source: source(),
        cpu_pct: 97.5,
        cpu_limit: 2.0,
        rss_bytes: 100 << 20,
        working_set_bytes: 120 << 20,
        mem_limit_bytes: 200 << 20,
        rss_pct: 50.0,
        blkio_read_bytes: 1,
        blkio_write_bytes: 50 << 20,
        net_rx_bytes: 3,
        net_tx_bytes: 4,
    });
    let mut latency = LatencyHistogram::default();
    latency.observe(12.0);
    let mut status = StatusClasses::default();
    status.record(502);
    let r = MetricRecord::Request(RequestStats {
        v: 1,
        ts: Utc.timestamp_nanos(1_795_000_000_000_000_000),
        interval_ms: 10_000,
        app: "/shop/web".into(),
        group: None,
        instance: Some("t1".into()),
        node: None,
        in_flight: 3,
        requests: 1,
        status,
        latency,
        concurrency_mean: 1.5,
        concurrency_max: 4,
        bytes_in: 10,
        bytes_out: 20,
        gateway_errors: 1,
    });
    for rec in [c, r] {
        let bytes = encode(&rec);
        let back: MetricRecord = decode(&bytes).unwrap();
        assert_eq!(back, rec);
        assert_eq!(back.app(), "/shop/web");
    }
}

#[test]
fn request_stats_without_the_concurrency_fields_still_decode() {
    let old = br#"{"v":1,"kind":"request","ts":"2026-11-22T10:00:00Z","interval_ms":5000,"app":"/a","in_flight":2,"requests":3,"status":{"s2xx":3},"latency":{"bounds_ms":[1.0],"counts":[3,0],"sum_ms":1.5}}"#;
    let MetricRecord::Request(r) = decode::<MetricRecord>(old).unwrap() else {
        panic!("not a request record");
    };
    assert_eq!(r.requests, 3);
    assert_eq!((r.concurrency_mean, r.concurrency_max), (0.0, 0));
    assert_eq!((r.bytes_in, r.bytes_out, r.gateway_errors), (0, 0, 0));
}

#[test]
fn event_round_trips() {
    let mut attrs = std::collections::BTreeMap::new();
    attrs.insert("taskStatus".to_string(), serde_json::json!("TASK_RUNNING"));
    let ev = Event {
        v: 1,
        ts: Utc.timestamp_nanos(1_795_000_000_000_000_000),
        id: "e1".into(),
        source: EventSource::Scheduler,
        kind: "status_update_event".into(),
        severity: Severity::Info,
        app: Some("/shop/web".into()),
        task: None,
        node: None,
        message: "task running".into(),
        attrs,
    };
    let back: Event = decode(&encode(&ev)).unwrap();
    assert_eq!(back, ev);
}

/// A v1 record as the first release wrote it: only the required fields. Later additions
/// must keep such records readable.
#[test]
fn minimal_v1_records_stay_readable() {
    let log = br#"{"v":1,"ts":"2026-11-21T23:03:25.5Z","host":"h","app":"a","container_id":"c","container_name":"n","stream":"stderr","seq":0,"line":"x"}"#;
    let rec: LogRecord = decode(log).unwrap();
    assert_eq!(rec.source.node, None);
    assert_eq!(rec.source.image, "");
    assert_eq!(rec.stream, Stream::Stderr);

    let req = br#"{"v":1,"kind":"request","ts":"2026-11-21T23:03:25Z","interval_ms":1000,"app":"a","in_flight":0,"requests":0,"status":{},"latency":{"bounds_ms":[1.0],"counts":[0,0],"sum_ms":0.0}}"#;
    let rec: MetricRecord = decode(req).unwrap();
    assert!(matches!(rec, MetricRecord::Request(_)));

    let ev = br#"{"v":1,"ts":"2026-11-21T23:03:25Z","id":"1","source":"alertman","kind":"alert_firing","message":"m"}"#;
    let rec: Event = decode(ev).unwrap();
    assert_eq!(rec.severity, Severity::Info);
}

#[test]
fn unknown_fields_from_newer_producers_are_ignored() {
    let log = br#"{"v":1,"ts":"2026-11-21T23:03:25Z","host":"h","app":"a","container_id":"c","container_name":"n","stream":"stdout","seq":1,"line":"x","trace_id":"abc"}"#;
    assert!(decode::<LogRecord>(log).is_ok());
}

#[test]
fn bad_messages_get_a_reason() {
    let cases: &[(&[u8], &str)] = &[
        (b"not json", "invalid_json"),
        (b"{}", "missing_version"),
        // Complete but for `v`: refused too, not read as the current version.
        (
            br#"{"ts":"2026-11-21T23:03:25Z","host":"h","app":"a","container_id":"c","container_name":"n","stream":"stdout","seq":1,"line":"x"}"#,
            "missing_version",
        ),
        (
            br#"{"v":2,"ts":"2026-11-21T23:03:25Z","host":"h","app":"a","container_id":"c","container_name":"n","stream":"stdout","seq":1,"line":"x"}"#,
            "unsupported_version",
        ),
        (br#"{"v":2,"line":"x"}"#, "unsupported_version"),
        (br#"{"v":"1"}"#, "unsupported_version"),
        (br#"{"v":1,"line":"x"}"#, "invalid_json"),
        (
            br#"{"v":1,"ts":"yesterday","host":"h","app":"a","container_id":"c","container_name":"n","stream":"stdout","seq":1,"line":"x"}"#,
            "invalid_json",
        ),
        (
            br#"{"v":1,"ts":"2026-11-21T23:03:25Z","host":"h","app":"a","container_id":"c","container_name":"n","stream":"stdin","seq":1,"line":"x"}"#,
            "invalid_json",
        ),
    ];
    for (bytes, reason) in cases {
        let err = decode::<LogRecord>(bytes).unwrap_err();
        assert_eq!(
            err.reason(),
            *reason,
            "{}: {err}",
            String::from_utf8_lossy(bytes)
        );
    }
    let err = decode::<LogRecord>(br#"{"v":2}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported schema version v=2 (this build reads v=1)"
    );
}

/// The examples in README.md are what a Kafka consumer prints; they must stay valid.
#[test]
fn readme_examples_decode() {
    let readme = include_str!("../README.md");
    let blocks: Vec<&str> = readme
        .split("```json")
        .skip(1)
        .map(|b| b.split("```").next().unwrap().trim())
        .collect();
    assert_eq!(blocks.len(), 4, "one example per record kind");
    decode::<LogRecord>(blocks[0].as_bytes()).unwrap();
    assert!(matches!(
        decode::<MetricRecord>(blocks[1].as_bytes()).unwrap(),
        MetricRecord::Container(_)
    ));
    assert!(matches!(
        decode::<MetricRecord>(blocks[2].as_bytes()).unwrap(),
        MetricRecord::Request(_)
    ));
    decode::<Event>(blocks[3].as_bytes()).unwrap();
}

#[test]
fn status_classes_count_gateway_errors() {
    let mut s = StatusClasses::default();
    for code in [200, 204, 301, 404, 500, 502, 504, 101] {
        s.record(code);
    }
    assert_eq!((s.s1xx, s.s2xx, s.s3xx, s.s4xx, s.s5xx), (1, 2, 1, 1, 3));
    assert_eq!(s.s502_504, 2);
    assert_eq!(s.total(), 8);
}

#[test]
fn histogram_quantile_interpolates_within_bucket() {
    let mut h = LatencyHistogram::with_bounds(vec![10.0, 20.0]);
    assert_eq!(h.quantile(0.5), None);
    for _ in 0..10 {
        h.observe(15.0);
    }
    // All ten in (10, 20]: the median sits halfway.
    assert_eq!(h.quantile(0.5), Some(15.0));
    assert_eq!(h.quantile(1.0), Some(20.0));
    h.observe(99.0);
    assert_eq!(
        h.quantile(1.0),
        Some(20.0),
        "overflow reported as the last bound"
    );
    assert_eq!(h.mean_ms(), Some((150.0 + 99.0) / 11.0));
    assert!(
        !h.merge(&LatencyHistogram::default()),
        "different bounds refused"
    );
}

proptest! {
    #[test]
    fn any_log_line_round_trips(line in ".*", seq in any::<u64>(), nanos in 0i64..4_000_000_000_000_000_000) {
        let mut rec = log_record(seq, &line);
        rec.ts = Utc.timestamp_nanos(nanos);
        let back: LogRecord = decode(&encode(&rec)).unwrap();
        prop_assert_eq!(back, rec);
    }

    #[test]
    fn quantiles_are_monotonic_and_bounded(obs in proptest::collection::vec(0.0f64..60_000.0, 1..200)) {
        let mut h = LatencyHistogram::default();
        for o in &obs { h.observe(*o); }
        prop_assert_eq!(h.count(), obs.len() as u64);
        let mut last = 0.0;
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 1.0] {
            let v = h.quantile(q).unwrap();
            prop_assert!(v >= last, "q={} v={} last={}", q, v, last);
            prop_assert!(v <= *LatencyHistogram::DEFAULT_BOUNDS_MS.last().unwrap());
            last = v;
        }
    }

    #[test]
    fn merge_equals_observing_everything(a in proptest::collection::vec(0.0f64..100.0, 0..50), b in proptest::collection::vec(0.0f64..100.0, 0..50)) {
        let (mut ha, mut hb, mut all) = (LatencyHistogram::default(), LatencyHistogram::default(), LatencyHistogram::default());
        for x in &a { ha.observe(*x); all.observe(*x); }
        for x in &b { hb.observe(*x); all.observe(*x); }
        prop_assert!(ha.merge(&hb));
        prop_assert_eq!(ha.counts, all.counts);
    }
}

/// The default buckets are fine enough that an interpolated quantile is within 10 % of the
/// exact one (the gateway's p99 against a client's).
#[test]
fn default_buckets_estimate_quantiles_within_ten_percent() {
    let b = LatencyHistogram::DEFAULT_BOUNDS_MS;
    for w in b.windows(2) {
        assert!(w[1] > w[0] && w[1] / w[0] <= 1.10, "{} → {}", w[0], w[1]);
    }
    // Latencies spread log-uniformly over 1 ms – 20 s: every quantile's estimate is close.
    let mut obs: Vec<f64> = (0..10_000)
        .map(|i| 10f64.powf(i as f64 / 10_000.0 * 4.3))
        .collect();
    let mut h = LatencyHistogram::default();
    for o in &obs {
        h.observe(*o);
    }
    obs.sort_by(f64::total_cmp);
    for q in [0.5, 0.9, 0.95, 0.99] {
        let exact = obs[((obs.len() as f64 * q).ceil() as usize) - 1];
        let est = h.quantile(q).unwrap();
        assert!(
            (est - exact).abs() <= 0.10 * exact,
            "q={q}: estimate {est} vs exact {exact}"
        );
    }
}
