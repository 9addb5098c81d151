//! The metrics store against the real broker: 3 apps × 5 instances → the query API's
//! aggregates match values computed here; SIGKILLs in the middle of ingestion lose nothing
//! acknowledged and double nothing (in memory and in the Parquet history); bad samples are
//! counted, dead-lettered and never stored; the CLI and `drover up` serve the API.
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use drover_schema::{topics, ContainerStats, MetricRecord, Source};
use drover_tests::{
    drover::{run_drover, DroverProcess},
    free_port,
    kafka::{create_default_topics, produce_all, TestBroker},
};
use tempfile::TempDir;

struct Store {
    proc: DroverProcess,
    http: String,
    _data: TempDir,
}

fn start_store(brokers: &str) -> Store {
    let data = tempfile::tempdir().unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let proc = DroverProcess::start(&[
        "metrics-store",
        "--kafka",
        brokers,
        "--data-dir",
        data.path().to_str().unwrap(),
        "--http",
        &http,
        "--metrics-flush-interval",
        "200ms",
    ]);
    Store {
        proc,
        http,
        _data: data,
    }
}

impl Store {
    async fn get(&self, path: &str) -> Option<(u16, serde_json::Value)> {
        let r = reqwest::get(format!("http://{}{path}", self.http))
            .await
            .ok()?;
        let status = r.status().as_u16();
        Some((status, r.json().await.ok()?))
    }

    async fn ok(&self, path: &str) -> serde_json::Value {
        let (status, body) = self
            .get(path)
            .await
            .unwrap_or_else(|| panic!("{path}: no answer\n{}", self.proc.logs()));
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    async fn metrics(&self) -> String {
        match reqwest::get(format!("http://{}/metrics", self.http)).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The value of a counter line (`name{labels} value`) in /metrics, 0 when absent.
    async fn counter(&self, line_start: &str) -> u64 {
        self.metrics()
            .await
            .lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }

    /// Sum of `count` over the whole range per instance, from the query API.
    async fn counts(&self, from: i64, to: i64) -> Option<BTreeMap<String, u64>> {
        let (status, body) = self
            .get(&format!(
                "/api/metrics/query?metric=cpu_pct&by=instance&agg=count&from={from}&to={to}&step=1h"
            ))
            .await?;
        if status != 200 {
            return None;
        }
        let mut out = BTreeMap::new();
        for s in body["series"].as_array()? {
            let n: f64 = s["points"]
                .as_array()?
                .iter()
                .map(|p| p[1].as_f64().unwrap_or(0.0))
                .sum();
            out.insert(s["labels"]["instance"].as_str()?.to_string(), n as u64);
        }
        Some(out)
    }

    /// Waits until `n` samples were stored (the counter) and written, or `timeout`.
    async fn wait_samples(&self, n: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut last = 0;
        while Instant::now() < deadline {
            last = self.counter("drover_metrics_store_samples_total ").await;
            // Samples older than the window are queryable once written to Parquet.
            if last >= n && self.counter("drover_metrics_store_pending ").await == 0 {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        last
    }
}

/// The value of sample `k` of instance `i` of app `a`: distinct, non-trivial, reproducible.
fn cpu(a: usize, i: usize, k: usize) -> f64 {
    ((a * 37 + i * 11 + k * 7) % 100) as f64 + (k % 4) as f64 * 0.25
}

/// A network counter that grows 1000 bytes per sample and restarts from 0 (a container
/// restart) at sample 30.
fn rx(i: usize, k: usize) -> u64 {
    let k = if k >= 30 { k - 30 } else { k + 1000 };
    (k as u64) * 1000 + i as u64
}

fn stats(a: usize, i: usize, k: usize, ts: DateTime<Utc>) -> (String, Vec<u8>) {
    let app = format!("/shop-{a}");
    let rec = MetricRecord::Container(ContainerStats {
        v: 1,
        ts,
        source: Source {
            host: "test-host".into(),
            node: Some(format!("node-{}", i % 2)),
            app: app.clone(),
            task: Some(format!("{app}.task-{i}")),
            group: None,
            container_id: format!("c-{a}-{i}"),
            container_name: format!("c-{a}-{i}"),
            image: "img".into(),
        },
        cpu_pct: cpu(a, i, k),
        cpu_limit: 1.0,
        rss_bytes: 1000 + k as u64,
        working_set_bytes: 2000,
        mem_limit_bytes: 100_000,
        rss_pct: 1.0,
        blkio_read_bytes: 0,
        blkio_write_bytes: 0,
        net_rx_bytes: rx(i, k),
        net_tx_bytes: 0,
    });
    (app, drover_schema::encode(&rec))
}

/// Linear-interpolation quantile, as polars (and numpy's default) compute it.
fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn three_apps_five_instances_aggregates_match() {
    let broker = TestBroker::start().await;
    let brokers = broker.bootstrap();
    create_default_topics(&brokers).await;
    // 60 samples, 10 s apart, per instance: once 3 hours ago (history only) and once in the
    // last half hour (memory and history). Aligned to 10 minutes so 1-minute buckets hold 6
    // samples each and one 10-minute bucket all of them.
    let now = Utc::now().timestamp_millis();
    let recent = (now - 20 * 60_000) / 600_000 * 600_000;
    let old = recent - 3 * 3_600_000;
    let (apps, instances, per) = (3usize, 5usize, 60usize);
    let mut msgs = Vec::new();
    for base in [old, recent] {
        for k in 0..per {
            let ts = DateTime::from_timestamp_millis(base + k as i64 * 10_000).unwrap();
            for a in 0..apps {
                for i in 0..instances {
                    msgs.push(stats(a, i, k, ts));
                }
            }
        }
    }
    produce_all(&brokers, topics::METRICS, &msgs).await;
    let store = start_store(&brokers);
    let want = (msgs.len() * 8) as u64;
    assert_eq!(
        store.wait_samples(want, Duration::from_secs(90)).await,
        want,
        "{}",
        store.proc.logs()
    );

    for base in [old, recent] {
        let to = base + 10 * 60_000;
        // Mean, max and p95 per app per minute, computed here from the same formula.
        for agg in ["mean", "max", "p95", "sum", "count"] {
            let body = store
                .ok(&format!(
                    "/api/metrics/query?metric=cpu_pct&by=app&from={base}&to={to}&step=1m&agg={agg}"
                ))
                .await;
            let series = body["series"].as_array().unwrap();
            assert_eq!(series.len(), apps, "{agg}: {body}\n{}", store.proc.logs());
            for (a, s) in series.iter().enumerate() {
                assert_eq!(s["labels"]["app"], format!("/shop-{a}"));
                let points = s["points"].as_array().unwrap();
                assert_eq!(points.len(), 10, "{agg}: {s}");
                for (m, p) in points.iter().enumerate() {
                    assert_eq!(p[0].as_i64().unwrap(), base + m as i64 * 60_000);
                    let values: Vec<f64> = (m * 6..m * 6 + 6)
                        .flat_map(|k| (0..instances).map(move |i| cpu(a, i, k)))
                        .collect();
                    let expected = match agg {
                        "mean" => values.iter().sum::<f64>() / values.len() as f64,
                        "max" => values.iter().copied().fold(f64::MIN, f64::max),
                        "p95" => quantile(values.clone(), 0.95),
                        "sum" => values.iter().sum(),
                        _ => values.len() as f64,
                    };
                    let got = p[1].as_f64().unwrap();
                    assert!(
                        close(got, expected),
                        "{agg} app {a} minute {m}: {got} != {expected}"
                    );
                }
            }
        }
        // Counter rate per node over the whole 10 minutes, with the reset at sample 30.
        let body = store
            .ok(&format!(
                "/api/metrics/query?metric=net_rx_bytes&by=node&app=/shop-1&from={base}&to={to}&step=10m&agg=rate"
            ))
            .await;
        let series = body["series"].as_array().unwrap();
        assert_eq!(series.len(), 2, "{body}");
        for (node, s) in series.iter().enumerate() {
            let mut increase = 0.0;
            for i in (0..instances).filter(|i| i % 2 == node) {
                for k in 1..per {
                    let (prev, cur) = (rx(i, k - 1) as f64, rx(i, k) as f64);
                    increase += if cur >= prev { cur - prev } else { cur };
                }
            }
            let got = s["points"][0][1].as_f64().unwrap();
            assert!(
                close(got, increase / 600.0),
                "node {node}: {got} != {}",
                increase / 600.0
            );
        }
    }

    // Latest: one per series, the last sample.
    let body = store.ok("/api/metrics/latest?metric=cpu_pct").await;
    let latest = body["series"].as_array().unwrap();
    assert_eq!(latest.len(), apps * instances);
    for l in latest {
        let inst = l["labels"]["instance"].as_str().unwrap();
        let a: usize = inst[6..7].parse().unwrap();
        let i: usize = inst[inst.len() - 1..].parse().unwrap();
        assert_eq!(l["value"].as_f64().unwrap(), cpu(a, i, per - 1), "{l}");
    }
    // Top 3 instances by mean CPU over the last 40 minutes (the recent batch only).
    let body = store
        .ok("/api/metrics/top?metric=cpu_pct&by=instance&since=40m&n=3&agg=mean")
        .await;
    let mut means: Vec<(f64, String)> = (0..apps)
        .flat_map(|a| (0..instances).map(move |i| (a, i)))
        .map(|(a, i)| {
            let m = (0..per).map(|k| cpu(a, i, k)).sum::<f64>() / per as f64;
            (m, format!("/shop-{a}.task-{i}"))
        })
        .collect();
    means.sort_by(|x, y| y.0.total_cmp(&x.0));
    let top = body["top"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    for (t, (m, inst)) in top.iter().zip(&means) {
        assert_eq!(t["labels"]["instance"], inst.as_str(), "{body}");
        assert!(close(t["value"].as_f64().unwrap(), *m));
    }

    // The CLI: a chart line per app, and JSON.
    let server = format!("http://{}", store.http);
    let out = run_drover(
        &[
            "metrics", "query", "--metric", "cpu_pct", "--by", "app", "--since", "4h", "--step",
            "10m", "--server", &server,
        ],
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("app=/shop-")).count(),
        3,
        "{text}"
    );
    let out = run_drover(
        &[
            "metrics", "latest", "--metric", "cpu_pct", "--app", "/shop-0", "--json", "--server",
            &server,
        ],
        Duration::from_secs(30),
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["series"].as_array().unwrap().len(), instances);
    let out = run_drover(
        &["metrics", "query", "--metric", "cpu", "--server", &server],
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("metric: unknown metric"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_ingest_loses_nothing_and_doubles_nothing() {
    let broker = TestBroker::start().await;
    let brokers = broker.bootstrap();
    create_default_topics(&brokers).await;
    // 3 apps × 5 instances × 4,000 samples 5 s apart (5.5 hours): most are older than the
    // window, so history (Parquet) and memory both see replays.
    let (apps, instances, per) = (3usize, 5usize, 4000usize);
    let start = (Utc::now().timestamp_millis() - per as i64 * 5_000) / 1000 * 1000;
    let mut msgs = Vec::new();
    for k in 0..per {
        let ts = DateTime::from_timestamp_millis(start + k as i64 * 5_000).unwrap();
        for a in 0..apps {
            for i in 0..instances {
                msgs.push(stats(a, i, k, ts));
            }
        }
    }
    produce_all(&brokers, topics::METRICS, &msgs).await;
    let end = start + per as i64 * 5_000;

    let mut store = start_store(&brokers);
    let mut kills = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(400..1500))).await;
        let seen = store.counter("drover_metrics_store_samples_total ").await;
        if seen >= (msgs.len() * 8) as u64 {
            break;
        }
        store.proc.kill9();
        kills += 1;
        eprintln!("SIGKILL {kills} with {seen} samples stored in this run");
        store.proc.restart();
    }
    let expected: BTreeMap<String, u64> = (0..apps)
        .flat_map(|a| (0..instances).map(move |i| (format!("/shop-{a}.task-{i}"), per as u64)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut counts = None;
    while Instant::now() < deadline {
        counts = store.counts(start, end).await;
        if counts.as_ref() == Some(&expected) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(counts.as_ref(), Some(&expected), "{}", store.proc.logs());
    // Settle: nothing late shows up twice.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(store.counts(start, end).await.as_ref(), Some(&expected));
    // The sum is right too (a doubled sample and a lost one would not cancel out).
    let want_sum: f64 = (0..apps)
        .flat_map(|a| (0..instances).flat_map(move |i| (0..per).map(move |k| cpu(a, i, k))))
        .sum();
    let sum_of = |body: serde_json::Value| -> f64 {
        body["series"][0]["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[1].as_f64().unwrap())
            .sum()
    };
    let body = store
        .ok(&format!(
            "/api/metrics/query?metric=cpu_pct&agg=sum&from={start}&to={end}&step=1h"
        ))
        .await;
    assert!(close(sum_of(body), want_sum));
    assert!(kills >= 1, "the test never killed the store mid-ingestion");

    // A clean stop and start: the window is reloaded from Parquet, the answers are the same.
    store.proc.terminate(Duration::from_secs(20));
    store.proc.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.get("/healthz").await.is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(store.counts(start, end).await.as_ref(), Some(&expected));
    let body = store
        .ok(&format!(
            "/api/metrics/query?metric=cpu_pct&agg=sum&from={start}&to={end}&step=1h"
        ))
        .await;
    assert!(close(sum_of(body), want_sum));
    assert_eq!(
        store.counter("drover_metrics_store_samples_total ").await,
        0,
        "nothing new after a clean restart"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_samples_are_counted_dead_lettered_and_never_stored() {
    let broker = TestBroker::start().await;
    let brokers = broker.bootstrap();
    create_default_topics(&brokers).await;
    let now = Utc::now();
    let good = stats(0, 0, 1, now);
    let json = String::from_utf8(good.1.clone()).unwrap();
    let cpu_text = format!("\"cpu_pct\":{}", cpu(0, 0, 1));
    assert!(json.contains(&cpu_text), "{json}");
    let bad = |s: String| ("bad".to_string(), s.into_bytes());
    let msgs = vec![
        good.clone(),
        bad(json.replace(&cpu_text, "\"cpu_pct\":NaN")),
        bad(json.replace(&cpu_text, "\"cpu_pct\":-3.5")),
        bad(json.replace("\"net_rx_bytes\":", "\"net_rx_bytes\":-")),
        bad(json.replace("\"v\":1", "\"v\":99")),
        bad("not json at all".into()),
        stats(0, 1, 1, now),
    ];
    produce_all(&brokers, topics::METRICS, &msgs).await;
    let store = start_store(&brokers);
    assert_eq!(store.wait_samples(16, Duration::from_secs(60)).await, 16);
    let reasons = [
        "nan",
        "negative_value",
        "negative_counter",
        "unsupported_version",
        "invalid_json",
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut metrics = String::new();
    while Instant::now() < deadline {
        metrics = store.metrics().await;
        if reasons.iter().all(|r| {
            metrics.contains(&format!(
                "drover_metrics_store_dead_lettered_total{{reason=\"{r}\"}} 1"
            ))
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for r in reasons {
        assert!(
            metrics.contains(&format!(
                "drover_metrics_store_dead_lettered_total{{reason=\"{r}\"}} 1"
            )),
            "{r}: {metrics}"
        );
    }
    // Only the two good samples are stored.
    let from = now.timestamp_millis() - 60_000;
    let to = now.timestamp_millis() + 60_000;
    let counts = store.counts(from, to).await.unwrap();
    assert_eq!(counts.values().sum::<u64>(), 2, "{counts:?}");
    let body = store
        .ok(&format!(
            "/api/metrics/query?metric=cpu_pct&agg=min&from={from}&to={to}&step=1h"
        ))
        .await;
    assert!(body["series"][0]["points"][0][1].as_f64().unwrap() >= 0.0);

    // The dead-letter topic has the five, each with its reason.
    use rdkafka::{
        consumer::{BaseConsumer, Consumer},
        message::Headers,
        Message,
    };
    let consumer: BaseConsumer =
        drover_kafka::config::consumer(&brokers, "t", &drover_tests::unique("dl"))
            .create()
            .unwrap();
    consumer.subscribe(&[topics::DEAD_LETTER]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 5 && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let h = m.headers().expect("dead letters carry headers");
            let reason = h
                .iter()
                .find(|h| h.key == "drover-error")
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).to_string())
                .unwrap();
            got.push(reason);
        }
    }
    got.sort();
    let mut want: Vec<String> = reasons.iter().map(|r| r.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
    // A bad query parameter is a 400 naming it.
    let (status, body) = store
        .get("/api/metrics/query?metric=cpu_pct&step=never")
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().starts_with("step:"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn drover_up_serves_the_metrics_api() {
    let up = drover_tests::drover::DroverUp::start(&["--no-collector", "--no-scheduler"]).await;
    let brokers = up.broker.to_string();
    let ts = Utc::now();
    produce_all(&brokers, topics::METRICS, &[stats(2, 3, 0, ts)]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body: serde_json::Value = reqwest::get(up.url("/api/metrics/latest?metric=rss_bytes"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(s) = body["series"].as_array().filter(|s| !s.is_empty()) {
            assert_eq!(s[0]["labels"]["app"], "/shop-2");
            assert_eq!(s[0]["value"], 1000.0);
            break;
        }
        assert!(Instant::now() < deadline, "{}", up.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = reqwest::get(up.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("drover_metrics_store_samples_total 8"),
        "{text}"
    );
}
