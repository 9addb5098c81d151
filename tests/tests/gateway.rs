//! The gateway inside a real `drover up`, routing to demo-app containers the scheduler runs:
//! Host and path routing, marathon-lb labels, 404/503 bodies, a bad label refused with its
//! reason while the rest work, `drover gateway routes`, a scaled-up instance taking
//! traffic within 2 s of becoming healthy, scale-down and a rolling restart under load
//! losing no request (the drain before the kill), and a `docker kill` failing only the
//! requests in flight on the killed instance; an instance answering 500s ejected by the
//! gateway, then removed by an Alertman rule on the gateway's error rate and replaced.
//! Two instance groups under one route keep their keys; a third takes only its own.
use std::time::{Duration, Instant};

use drover_tests::{
    apps::{demo, deploy, healthy, served, tasks, up_scheduled, wait_healthy, Load},
    drover::{run_drover, DroverUp},
    scheduler::{wait_for, NodeContainers},
};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);

/// `drover up` with the scheduler and the gateway, fast reconciliation, no collector or
/// log pipeline (not under test here); removes its containers when dropped.
async fn up() -> (DroverUp, NodeContainers) {
    up_with(&[]).await
}

/// [`up`] with more flags.
async fn up_with(extra: &[&str]) -> (DroverUp, NodeContainers) {
    up_without(
        &["--no-collector", "--no-logpipe", "--no-metrics-store"],
        extra,
    )
    .await
}

/// `drover up` with the scheduler and the gateway, without the components `no` turns off,
/// with more flags.
async fn up_without(no: &[&str], extra: &[&str]) -> (DroverUp, NodeContainers) {
    up_scheduled(&[no, extra].concat()).await
}

/// GET through the gateway with this Host.
async fn via(up: &DroverUp, host: &str, path: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .get(format!("http://{}{path}", up.gateway))
        .header("host", host)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn routes(up: &DroverUp) -> Value {
    reqwest::get(up.url("/v1/gateway/routes"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Wait until the gateway routes `host` (and `path`) to an app with `n` backends.
async fn wait_routed(up: &DroverUp, host: &str, path: &str, n: usize) {
    let r = wait_for(
        T,
        &format!("{host}{path} routed to {n} backends"),
        || async {
            routes(up).await["routes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| {
                    r["host"] == host
                        && r["path"] == path
                        && r["groups"][0]["backends"].as_array().map(Vec::len) == Some(n)
                })
        },
    )
    .await;
    if let Err(e) = r {
        panic!("{e}\n{:#}\n{}", routes(up).await, up.logs());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_by_host_and_path_from_drover_and_marathon_lb_labels_and_refuses_bad_ones() {
    let (up, _guard) = up().await;
    deploy(
        &up,
        &demo("/web", 2, json!({"drover.gateway.host": "web.test"})),
    )
    .await;
    deploy(
        &up,
        &demo(
            "/stats",
            1,
            json!({"drover.gateway.host": "web.test", "drover.gateway.path": "/metrics"}),
        ),
    )
    .await;
    // Written for marathon-lb, unchanged.
    deploy(
        &up,
        &demo(
            "/legacy",
            1,
            json!({"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "a.legacy.test,b.legacy.test"}),
        ),
    )
    .await;
    deploy(
        &up,
        &demo("/bad", 1, json!({"drover.gateway.host": "bad host!"})),
    )
    .await;
    deploy(
        &up,
        &demo("/zthief", 1, json!({"drover.gateway.host": "web.test"})),
    )
    .await;
    deploy(
        &up,
        &demo("/zero", 0, json!({"drover.gateway.host": "zero.test"})),
    )
    .await;
    let web = wait_healthy(&up, "/web", 2).await;
    let stats = wait_healthy(&up, "/stats", 1).await;
    let legacy = wait_healthy(&up, "/legacy", 1).await;
    wait_healthy(&up, "/zthief", 1).await;
    wait_routed(&up, "web.test", "/", 2).await;
    wait_routed(&up, "web.test", "/metrics", 1).await;
    wait_routed(&up, "a.legacy.test", "/", 1).await;

    // Host routing: all of web.test's "/" goes to /web, spread over both instances.
    for _ in 0..20 {
        assert_eq!(via(&up, "web.test", "/").await, (200, "ok\n".into()));
    }
    let (a, b) = (served(&web[0]).await, served(&web[1]).await);
    assert_eq!(a + b, 20, "every request reached /web's instances");
    assert!(a > 0 && b > 0, "both instances take traffic: {a} + {b}");
    assert_eq!(served(&stats[0]).await, 0, "/stats got none of /");
    // Path routing: /metrics goes to /stats' instance (which served no GET /), not to /web.
    let (code, text) = via(&up, "web.test", "/metrics").await;
    assert_eq!(code, 200);
    assert!(text.contains("demo_in_flight_requests"), "{text}");
    assert!(
        !text.contains("demo_requests_total{status=\"200\"}"),
        "/metrics came from an instance that served GET /:\n{text}"
    );
    // marathon-lb's labels: both virtual hosts.
    assert_eq!(via(&up, "a.legacy.test", "/").await.0, 200);
    assert_eq!(via(&up, "B.Legacy.Test:8000", "/").await.0, 200);
    assert_eq!(served(&legacy[0]).await, 2);

    // No route: 404 with a body that says what to do.
    let (code, text) = via(&up, "nowhere.test", "/").await;
    assert_eq!(code, 404);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v["error"].as_str().unwrap().contains("nowhere.test"), "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("drover.gateway.host"),
        "{v}"
    );
    // A route without a running task: 503.
    wait_routed(&up, "zero.test", "/", 0).await;
    let (code, text) = via(&up, "zero.test", "/").await;
    assert_eq!(code, 503, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("no healthy backend"),
        "{v}"
    );

    // The access log (errors by default): the 404 and the 503 as lines of the log search,
    // the 503 tagged with its app.
    let brokers = up.broker.to_string();
    let lines = tokio::task::spawn_blocking(move || {
        drover_tests::kafka::read_records::<drover_schema::LogRecord>(
            &brokers,
            drover_schema::topics::LOGS,
            |r| r.source.container_name == "drover-gateway",
            |rs| rs.len() >= 2,
            Duration::from_secs(20),
            Duration::from_secs(1),
        )
    })
    .await
    .unwrap();
    let fields: Vec<(String, Value)> = lines
        .iter()
        .map(|r| (r.source.app.clone(), serde_json::from_str(&r.line).unwrap()))
        .collect();
    assert_eq!(
        fields.len(),
        2,
        "only the two errors are logged: {fields:?}"
    );
    let unavailable = fields
        .iter()
        .find(|(_, v)| v["status"] == 503)
        .expect("the 503");
    assert_eq!(unavailable.0, "/zero");
    assert_eq!(unavailable.1["gateway_error"], "no_backend");
    assert_eq!(unavailable.1["host"], "zero.test");
    let missing = fields
        .iter()
        .find(|(_, v)| v["status"] == 404)
        .expect("the 404");
    assert_eq!(missing.1["gateway_error"], "no_route");

    // Bad labels and a conflict are refused, with their reasons, on the routes API.
    let r = routes(&up).await;
    let refused = r["refused"].as_array().unwrap();
    let reason = |app: &str| {
        refused
            .iter()
            .find(|x| x["app"] == app)
            .and_then(|x| x["reason"].as_str())
            .unwrap_or_else(|| panic!("{app} not refused: {r:#}"))
            .to_string()
    };
    assert!(
        reason("/bad").contains("not a host name"),
        "{}",
        reason("/bad")
    );
    assert!(
        reason("/zthief").contains("already routed to /web"),
        "{}",
        reason("/zthief")
    );
    assert_eq!(refused.len(), 2, "{r:#}");
    assert_eq!(r["source"]["connected"], true, "{r:#}");
    let web_route = r["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["host"] == "web.test" && x["path"] == "/")
        .unwrap();
    assert_eq!(web_route["groups"][0]["app"], "/web");
    assert_eq!(web_route["labels"], "drover");

    // The CLI shows the same.
    let server = up.url("");
    let out = run_drover(
        &["gateway", "routes", "--server", &server],
        Duration::from_secs(20),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("web.test/"), "{text}");
    assert!(text.contains("a.legacy.test/"), "{text}");
    assert!(text.contains("/bad: "), "{text}");
    let out = run_drover(
        &["gateway", "routes", "--server", &server, "--json"],
        Duration::from_secs(20),
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["routes"].as_array().unwrap().len() >= 4, "{v:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scaled_up_instance_takes_traffic_within_2s_of_becoming_healthy() {
    let (up, _guard) = up().await;
    deploy(
        &up,
        &demo("/grow", 1, json!({"drover.gateway.host": "grow.test"})),
    )
    .await;
    let first = wait_healthy(&up, "/grow", 1).await;
    wait_routed(&up, "grow.test", "/", 1).await;
    // Steady load through the gateway.
    let gateway = up.gateway;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failures = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..2 {
        let (stop, failures) = (stop.clone(), failures.clone());
        load.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let ok = c
                    .get(format!("http://{gateway}/"))
                    .header("host", "grow.test")
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !ok {
                    failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    let r = reqwest::Client::new()
        .put(up.url("/v2/apps/grow?force=true"))
        .json(&json!({"instances": 2}))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
    // When the new task is first seen healthy (polled every 50 ms)…
    let first_id = first[0]["id"].clone();
    let deadline = Instant::now() + T;
    let new = loop {
        let ts = tasks(&up, "/grow").await;
        if let Some(t) = ts.iter().find(|t| t["id"] != first_id && healthy(t)) {
            break t.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no second healthy task:\n{}",
            up.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let healthy_at = Instant::now();
    // …until it has served a request through the gateway.
    let got_traffic = loop {
        if served(&new).await > 0 {
            break healthy_at.elapsed();
        }
        assert!(
            healthy_at.elapsed() < Duration::from_secs(10),
            "the new instance got no traffic in 10 s:\n{:#}",
            routes(&up).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    println!("the new instance got traffic {got_traffic:?} after it was seen healthy");
    assert!(
        got_traffic < Duration::from_secs(2),
        "the new instance took {got_traffic:?} to get traffic after becoming healthy"
    );
    assert_eq!(
        failures.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "no request failed while scaling up"
    );
}

/// `clients` clients, each sending `n` GETs for `host` through the gateway one after the
/// other: (2xx, 5xx, each request's latency in ms as the client saw it).
async fn drive(
    gateway: std::net::SocketAddr,
    host: &'static str,
    clients: usize,
    n: usize,
) -> (u64, u64, Vec<f64>) {
    let mut workers = Vec::new();
    for _ in 0..clients {
        workers.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            let (mut ok, mut err, mut took) = (0u64, 0u64, Vec::new());
            for _ in 0..n {
                let t = Instant::now();
                let r = c
                    .get(format!("http://{gateway}/"))
                    .header("host", host)
                    .send()
                    .await
                    .unwrap();
                match r.status().as_u16() {
                    200..=299 => ok += 1,
                    500..=599 => err += 1,
                    s => panic!("unexpected status {s}"),
                }
                r.bytes().await.unwrap();
                took.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            (ok, err, took)
        }));
    }
    let (mut ok, mut err, mut took) = (0, 0, Vec::new());
    for w in workers {
        let (o, e, t) = w.await.unwrap();
        ok += o;
        err += e;
        took.extend(t);
    }
    (ok, err, took)
}

#[tokio::test(flavor = "multi_thread")]
async fn reported_request_counts_equal_the_load_generators() {
    let (up, _guard) = up_with(&["--report-interval", "1s"]).await;
    let mut def = demo(
        "/counted",
        2,
        json!({"drover.gateway.host": "counted.test"}),
    );
    def["env"] =
        json!({"LOG_RATE": "0", "ERROR_RATE": "0.2", "LATENCY_MS": "5", "LATENCY_JITTER_MS": "10"});
    deploy(&up, &def).await;
    wait_healthy(&up, "/counted", 2).await;
    wait_routed(&up, "counted.test", "/", 2).await;

    // The load generator: 10 clients × 40 requests, counting what they got.
    let (sent_ok, sent_err, _) = drive(up.gateway, "counted.test", 10, 40).await;
    assert_eq!(sent_ok + sent_err, 400);
    assert!(sent_err > 0, "ERROR_RATE=0.2 gave no 500s");
    // Latency, apart: 2 clients one request at a time (no queue in the test process to
    // blur the client's own clock), 20–40 ms each.
    let mut timed = demo("/timed", 2, json!({"drover.gateway.host": "timed.test"}));
    timed["env"] = json!({"LOG_RATE": "0", "LATENCY_MS": "20", "LATENCY_JITTER_MS": "20"});
    deploy(&up, &timed).await;
    wait_healthy(&up, "/timed", 2).await;
    wait_routed(&up, "timed.test", "/", 2).await;
    // 1,000 requests: the p99 is then the 10th-slowest, not the 3rd, so one request the
    // client's own scheduling held up on a busy machine does not decide the comparison.
    let (timed_ok, _, mut took) = drive(up.gateway, "timed.test", 2, 500).await;
    assert_eq!(timed_ok, 1000);

    let brokers = up.broker.to_string();
    let records = tokio::task::spawn_blocking(move || {
        drover_tests::kafka::read_records::<drover_schema::MetricRecord>(
            &brokers,
            drover_schema::topics::METRICS,
            |r| matches!(r, drover_schema::MetricRecord::Request(s) if s.app == "/counted" || s.app == "/timed"),
            |rs| {
                let app = |name: &str| {
                    rs.iter()
                        .filter_map(|r| match r {
                            drover_schema::MetricRecord::Request(s)
                                if s.instance.is_none() && s.app == name =>
                            {
                                Some(s.requests)
                            }
                            _ => None,
                        })
                        .sum::<u64>()
                };
                app("/counted") >= 400 && app("/timed") >= 1000
            },
            Duration::from_secs(30),
            Duration::from_secs(3),
        )
    })
    .await
    .unwrap();
    let stats: Vec<drover_schema::RequestStats> = records
        .into_iter()
        .filter_map(|r| match r {
            drover_schema::MetricRecord::Request(s) => Some(s),
            _ => None,
        })
        .collect();
    let (timed_apps, stats): (Vec<_>, Vec<_>) = stats.into_iter().partition(|s| s.app == "/timed");
    let (apps, instances): (Vec<_>, Vec<_>) = stats.iter().partition(|s| s.instance.is_none());
    let sum = |v: &[&drover_schema::RequestStats], f: fn(&drover_schema::RequestStats) -> u64| {
        v.iter().map(|s| f(s)).sum::<u64>()
    };
    assert_eq!(sum(&apps, |s| s.requests), 400, "app-level requests");
    assert_eq!(sum(&apps, |s| s.status.s2xx), sent_ok, "app-level 2xx");
    assert_eq!(sum(&apps, |s| s.status.s5xx), sent_err, "app-level 5xx");
    assert_eq!(
        sum(&apps, |s| s.gateway_errors),
        0,
        "the 500s are the app's, not the gateway's"
    );
    assert_eq!(
        sum(&instances, |s| s.requests),
        400,
        "per-instance requests add up"
    );
    assert_eq!(sum(&instances, |s| s.status.s5xx), sent_err);
    assert_eq!(
        instances
            .iter()
            .filter_map(|s| s.instance.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        2,
        "both instances reported"
    );
    assert_eq!(
        sum(&apps, |s| s.latency.count()),
        400,
        "every request in the histogram"
    );
    assert!(sum(&apps, |s| s.bytes_out) >= 400 * 3, "bytes out counted");
    // The gateway's p99 (its histograms merged) against the load generator's own.
    let mut merged = drover_schema::LatencyHistogram::default();
    for s in timed_apps.iter().filter(|s| s.instance.is_none()) {
        assert!(merged.merge(&s.latency), "one set of buckets");
    }
    assert_eq!(merged.count(), 1000);
    let gateway_p99 = merged.quantile(0.99).unwrap();
    took.sort_by(f64::total_cmp);
    let client_p99 = took[(took.len() * 99).div_ceil(100) - 1];
    println!("p99: gateway {gateway_p99:.2} ms, client {client_p99:.2} ms");
    assert!(
        (gateway_p99 - client_p99).abs() <= 0.10 * client_p99,
        "the gateway's p99 {gateway_p99:.2} ms is not within 10 % of the client's {client_p99:.2} ms"
    );
    assert!(
        apps.iter()
            .any(|s| s.concurrency_max >= 2 && s.concurrency_mean > 0.0),
        "concurrency measured: {apps:?}"
    );
}

async fn put_app(up: &DroverUp, app: &str, body: Value) {
    let r = reqwest::Client::new()
        .put(up.url(&format!("/v2/apps{app}?force=true")))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
}

/// Scale-down and a rolling restart while clients keep requests in flight on every instance
/// (each takes 800 ms; the demo app gives in-flight requests only 500 ms after SIGTERM, so
/// without the drain the killed instances' requests fail): no request fails.
#[tokio::test(flavor = "multi_thread")]
async fn scale_down_and_a_rolling_restart_under_load_lose_no_request() {
    let (up, _guard) = up().await;
    let mut def = demo("/shrink", 3, json!({"drover.gateway.host": "shrink.test"}));
    def["env"] = json!({"LOG_RATE": "0", "LATENCY_MS": "800"});
    def["taskKillGracePeriodSeconds"] = json!(5);
    deploy(&up, &def).await;
    wait_healthy(&up, "/shrink", 3).await;
    wait_routed(&up, "shrink.test", "/", 3).await;

    let load = Load::start(up.gateway, "shrink.test", 9, 9);
    tokio::time::sleep(Duration::from_secs(2)).await;
    put_app(&up, "/shrink", json!({"instances": 1})).await;
    let r = wait_for(T, "/shrink down to one task", || async {
        tasks(&up, "/shrink").await.len() == 1
    })
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}", up.logs());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A rolling restart: new tasks first, then the old ones go (drained).
    put_app(&up, "/shrink", json!({"instances": 2})).await;
    let before: Vec<Value> = wait_healthy(&up, "/shrink", 2).await;
    let r = reqwest::Client::new()
        .post(up.url("/v2/apps/shrink/restart?force=true"))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
    let r = wait_for(
        T,
        "/shrink restarted: two healthy tasks, none of the old",
        || async {
            let ts = tasks(&up, "/shrink").await;
            ts.len() == 2
                && ts.iter().all(healthy)
                && ts.iter().all(|t| before.iter().all(|b| b["id"] != t["id"]))
        },
    )
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}", up.logs());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (ok, failed) = load.stop().await;
    println!("{ok} requests answered, {} failed", failed.len());
    assert!(ok > 50, "the load ran: {ok} requests");
    assert!(
        failed.is_empty(),
        "requests failed while scaling down and restarting: {:?}\n{}",
        failed.iter().map(|f| &f.1).collect::<Vec<_>>(),
        up.logs()
    );
}

/// `docker kill` of one instance under load: only the requests in flight on it fail (at
/// most one per client), and none once the gateway has seen it go (a new connection to it is
/// refused and retried on the other instance; the scheduler's event removes it).
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_instance_fails_only_the_requests_in_flight_on_it() {
    let (up, _guard) = up().await;
    let mut def = demo("/victim", 2, json!({"drover.gateway.host": "victim.test"}));
    def["env"] = json!({"LOG_RATE": "0", "LATENCY_MS": "300"});
    deploy(&up, &def).await;
    let ts = wait_healthy(&up, "/victim", 2).await;
    wait_routed(&up, "victim.test", "/", 2).await;

    let clients = 6;
    let load = Load::start(up.gateway, "victim.test", clients, clients);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let task = ts[0]["id"].as_str().unwrap();
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label={}={task}", drover_schema::labels::TASK),
        ])
        .output()
        .unwrap();
    let container = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !container.is_empty(),
        "no container labelled with task {task}"
    );
    let killed_at = Instant::now();
    let out = std::process::Command::new("docker")
        .args(["kill", &container])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (ok, failed) = load.stop().await;
    println!(
        "{ok} answered, {} failed: {:?}",
        failed.len(),
        failed
            .iter()
            .map(|(t, e)| (t.duration_since(killed_at), e))
            .collect::<Vec<_>>()
    );
    assert!(ok > 20, "the load ran: {ok} requests");
    assert!(
        failed.len() <= clients,
        "more failures ({}) than requests that can have been in flight on the killed instance",
        failed.len()
    );
    // A request in flight when the kill landed comes back within its 300 ms; allow 1 s.
    let late: Vec<_> = failed
        .iter()
        .filter(|(t, _)| t.duration_since(killed_at) > Duration::from_secs(1))
        .collect();
    assert!(
        late.is_empty(),
        "requests failed after the kill had landed: {late:?}"
    );
}

/// An instance that starts answering 500s: the gateway ejects it (5 in a row), the gateway's
/// per-instance `error_rate` reaches the metrics store, an Alertman rule on it fires and its
/// `remove_instance` action kills that task through the scheduler, which replaces it — and
/// only that one (the cap: max(1, 10 %) of the app's instances per window).
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_answering_errors_is_ejected_then_removed_by_alertman_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        r#"version: 1
rules:
  - name: Gateway5xx
    kind: metric
    metric: error_rate
    filter: {app: /flaky}
    agg: max
    by: [app, instance]
    window: 1m
    threshold: 0.5
    action: {type: remove_instance}
"#,
    )
    .unwrap();
    let rules = rules.display().to_string();
    let (up, _guard) = up_without(
        &["--no-collector", "--no-logpipe"],
        &[
            "--rules",
            &rules,
            "--eval-interval",
            "1s",
            "--report-interval",
            "1s",
            "--metrics-flush-interval",
            "200ms",
        ],
    )
    .await;
    deploy(
        &up,
        &demo("/flaky", 3, json!({"drover.gateway.host": "flaky.test"})),
    )
    .await;
    let ts = wait_healthy(&up, "/flaky", 3).await;
    wait_routed(&up, "flaky.test", "/", 3).await;
    let load = Load::start(up.gateway, "flaky.test", 3, 3);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let bad = ts[0]["id"].as_str().unwrap().to_string();
    let port = ts[0]["ports"][0].as_u64().unwrap();
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/admin/errors?rate=1"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    // The gateway ejects it.
    let backend = |v: &Value| -> Option<Value> {
        v["routes"].as_array()?.iter().find_map(|r| {
            r["groups"][0]["backends"]
                .as_array()?
                .iter()
                .find(|b| b["task"] == bad.as_str())
                .cloned()
        })
    };
    let r = wait_for(T, "the failing instance ejected", || async {
        backend(&routes(&up).await).is_some_and(|b| b["ejected"] == true)
    })
    .await;
    if let Err(e) = r {
        panic!("{e}\n{:#}\n{}", routes(&up).await, up.logs());
    }
    // Alertman removes it; the scheduler replaces it.
    let r = wait_for(
        Duration::from_secs(90),
        "the failing instance removed and replaced",
        || async {
            let ts = tasks(&up, "/flaky").await;
            ts.len() == 3 && ts.iter().all(healthy) && ts.iter().all(|t| t["id"] != bad.as_str())
        },
    )
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}", up.logs());
    }
    let (ok, failed) = load.stop().await;
    assert!(ok > 20, "the load ran: {ok}");
    // Only the bad instance's answers failed: at most the 5 that ejected it per client
    // connection, plus none from the others.
    println!("{ok} answered, {} failed", failed.len());
    let history: Value = reqwest::get(up.url("/api/alerts/history?rule=Gateway5xx&kind=action"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actions = history["entries"].as_array().cloned().unwrap_or_default();
    assert!(
        actions.iter().any(|e| e.to_string().contains(&bad)),
        "an action entry names the removed task {bad}: {history:#}"
    );
    assert!(
        actions
            .iter()
            .all(|e| e.to_string().contains(&bad) || !e.to_string().contains("\"done\"")),
        "no other instance was removed: {history:#}"
    );
}

/// Two instance groups of one service (`/shop/api/g1`, `/shop/api/g2`, one route, hashed on
/// the `X-User` header) behind a real `drover up`: each user's requests all go to one group;
/// when a third group is deployed, the users that move all move to it, and the rest stay.
/// Which instance answered is read from each instance's own request counter.
#[tokio::test(flavor = "multi_thread")]
async fn instance_groups_keep_their_keys_and_a_new_group_takes_only_its_own() {
    let (up, _guard) = up().await;
    let labels = json!({
        "drover.gateway.host": "shop.test",
        "drover.gateway.hash-key": "header:x-user",
    });
    let mut instances: Vec<(String, Value)> = Vec::new();
    for g in ["g1", "g2"] {
        let app = format!("/shop/api/{g}");
        deploy(&up, &demo(&app, 1, labels.clone())).await;
        let task = wait_healthy(&up, &app, 1).await.remove(0);
        instances.push((app, task));
    }
    let wait_groups = |n: usize| {
        let up = &up;
        async move {
            let r = wait_for(T, &format!("shop.test routed to {n} groups"), || async {
                routes(up).await["routes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| {
                        r["host"] == "shop.test"
                            && r["groups"].as_array().is_some_and(|g| {
                                g.len() == n
                                    && g.iter()
                                        .all(|g| g["backends"].as_array().map(Vec::len) == Some(1))
                            })
                    })
            })
            .await;
            if let Err(e) = r {
                panic!("{e}\n{:#}\n{}", routes(up).await, up.logs());
            }
        }
    };
    wait_groups(2).await;
    // Three requests as `user`: the group whose instance counted all three (none other
    // counted any).
    let group_of = |user: String, instances: Vec<(String, Value)>| {
        let gateway = up.gateway;
        async move {
            let mut before = Vec::new();
            for (_, t) in &instances {
                before.push(served(t).await);
            }
            let c = reqwest::Client::new();
            for _ in 0..3 {
                let r = c
                    .get(format!("http://{gateway}/"))
                    .header("host", "shop.test")
                    .header("x-user", &user)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "{user}: {}", r.text().await.unwrap());
            }
            let mut got = Vec::new();
            for ((app, t), b) in instances.iter().zip(before) {
                got.push((app.clone(), served(t).await - b));
            }
            let hit: Vec<&(String, u64)> = got.iter().filter(|(_, n)| *n > 0).collect();
            assert!(
                hit.len() == 1 && hit[0].1 == 3,
                "{user}'s three requests went to {got:?}, not all to one group"
            );
            hit[0].0.clone()
        }
    };
    let users: Vec<String> = (0..24).map(|u| format!("user{u}")).collect();
    let mut before = Vec::new();
    for u in &users {
        before.push(group_of(u.clone(), instances.clone()).await);
    }
    for g in ["/shop/api/g1", "/shop/api/g2"] {
        assert!(
            before.iter().any(|b| b == g),
            "no user hashed to {g}: {before:?}"
        );
    }
    deploy(&up, &demo("/shop/api/g3", 1, labels.clone())).await;
    let task = wait_healthy(&up, "/shop/api/g3", 1).await.remove(0);
    instances.push(("/shop/api/g3".into(), task));
    wait_groups(3).await;
    let mut moved = 0;
    for (u, was) in users.iter().zip(&before) {
        let now = group_of(u.clone(), instances.clone()).await;
        if &now != was {
            assert_eq!(
                now, "/shop/api/g3",
                "{u} moved from {was} to {now}, not to the new group"
            );
            moved += 1;
        }
    }
    assert!(
        moved > 0 && moved < users.len(),
        "{moved} of {} users moved: the new group takes some keys, not all",
        users.len()
    );
    println!("{moved} of {} users moved to the new group", users.len());
}
