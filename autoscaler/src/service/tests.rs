use std::{sync::Arc, time::Duration};

use axum::{body::Body, http::Request};
use drover_schema::time::{Clock, ManualClock};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::{scaler::FakeScaler, source::FakeMetrics};

const W: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_secs(6);

struct Rig {
    a: Autoscaler,
    clock: ManualClock,
    metrics: Arc<FakeMetrics>,
    scaler: Arc<FakeScaler>,
    events: mpsc::UnboundedReceiver<Event>,
    _dir: tempfile::TempDir,
}

fn rig(policy_yaml: &str) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, policy_yaml).expect("write");
    let clock = ManualClock::at_ms(1_800_000_000_000);
    let (tx, events) = mpsc::unbounded_channel();
    let metrics = Arc::new(FakeMetrics::default());
    let scaler = Arc::new(FakeScaler::default());
    let cfg = AutoscalerConfig {
        clock: clock.shared(),
        events: Some(tx),
        ..AutoscalerConfig::new(vec![file])
    };
    let a = Autoscaler::new(
        cfg,
        metrics.clone(),
        scaler.clone(),
        AutoscalerMetrics::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    Rig {
        a,
        clock,
        metrics,
        scaler,
        events,
        _dir: dir,
    }
}

const WEB: &str = "version: 1\npolicies:\n  - name: web\n    app: /web\n    metrics:\n      - {metric: concurrency, target: 10}\n    window: 30s\n    panic: {enabled: false}\n    stabilization: {down: 60s}\n";

/// Concurrency of `app` over both windows.
fn load(r: &Rig, app: &str, v: f64) {
    r.metrics.set("concurrency_mean", app, W, v);
    r.metrics.set("concurrency_mean", app, SHORT, v);
}

impl Rig {
    async fn tick(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
        self.a.tick().await;
    }

    fn events(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }
}

#[tokio::test]
async fn a_tick_scales_records_and_publishes_the_decision() {
    let mut r = rig(WEB);
    r.scaler.put_app("/web", 2);
    load(&r, "/web", 45.0);
    r.tick(0).await;
    assert_eq!(r.scaler.calls(), ["scale /web 5"]);
    assert_eq!(r.scaler.instances("/web"), Some(5));
    let d = r.a.decisions(Some("/web"), 10);
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].current, d[0].desired, d[0].outcome.clone()),
        (2, 5, Outcome::Applied)
    );
    let ev = r.events();
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].kind.as_str(), ev[0].app.as_deref()),
        ("scaling_decision", Some("/web"))
    );
    assert_eq!(ev[0].source, EventSource::Autoscaler);
    assert_eq!(ev[0].attrs["to"], 5);
    // not due again before its tick (2 s)
    r.tick(1).await;
    assert_eq!(r.scaler.calls().len(), 1);
    // steady: nothing changes, nothing more is kept or published
    r.tick(1).await;
    assert_eq!(r.scaler.calls().len(), 1);
    assert!(r.events().is_empty());
    let e = r.a.explain("/web").expect("explained");
    assert_eq!(
        e.last.as_ref().map(|d| d.outcome.clone()),
        Some(Outcome::Unchanged)
    );
    assert_eq!(e.recent.len(), 1);
}

#[tokio::test]
async fn a_refusal_is_shown_and_retried_with_backoff_never_in_a_loop() {
    let mut r = rig(WEB);
    r.scaler.put_app("/web", 2);
    r.scaler.refuse(Some("no node has 0.5 cpus free"));
    load(&r, "/web", 45.0);
    r.tick(0).await;
    let d = &r.a.decisions(None, 1)[0];
    match &d.outcome {
        Outcome::Refused { reason, retry_at } => {
            assert!(reason.contains("no node has 0.5 cpus free"), "{reason}");
            assert_eq!(*retry_at, r.clock.now() + chrono::Duration::seconds(5));
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(r.events()[0].kind, "scaling_refused");
    // within the back-off: decided and shown, not sent
    r.tick(2).await;
    assert_eq!(r.scaler.calls().len(), 1);
    assert!(matches!(
        r.a.decisions(None, 1)[0].outcome,
        Outcome::Refused { .. }
    ));
    // after it: tried again, refused again, the wait doubles
    r.tick(4).await;
    assert_eq!(r.scaler.calls().len(), 2);
    let view = r.a.policies().remove(0);
    let retry = view.retry.expect("retry");
    assert_eq!(retry.attempts, 2);
    assert_eq!(retry.at, r.clock.now() + chrono::Duration::seconds(10));
    // accepted at last
    r.scaler.refuse(None);
    r.tick(10).await;
    assert_eq!(r.scaler.instances("/web"), Some(5));
    assert!(r.a.policies()[0].retry.is_none());
}

#[tokio::test]
async fn a_policy_whose_app_disappears_is_paused_and_resumes() {
    let mut r = rig(WEB);
    r.scaler.put_app("/web", 2);
    load(&r, "/web", 20.0);
    r.tick(0).await;
    r.scaler.delete_app("/web");
    r.tick(2).await;
    let v = &r.a.policies()[0];
    assert!(
        matches!(&v.status, PolicyStatus::Paused { reason, .. } if reason.contains("/web is gone"))
    );
    assert_eq!(
        r.events().last().map(|e| e.kind.clone()).as_deref(),
        Some("autoscaler_paused")
    );
    // reported once, not every tick; the policy is kept
    r.tick(2).await;
    assert!(r.events().is_empty());
    assert_eq!(r.a.policies().len(), 1);
    r.scaler.put_app("/web", 2);
    r.tick(2).await;
    assert_eq!(r.a.policies()[0].status, PolicyStatus::Active);
    assert_eq!(r.events()[0].kind, "autoscaler_resumed");
}

#[tokio::test]
async fn no_change_during_a_deployment_and_missing_metrics_never_scale_down() {
    let r = rig(WEB);
    r.scaler.put_app("/web", 4);
    r.scaler.set_deploying(true);
    load(&r, "/web", 200.0);
    r.tick(0).await;
    assert!(r.scaler.calls().is_empty());
    assert_eq!(r.a.decisions(None, 1)[0].held[0].rule, "deployment");
    r.scaler.set_deploying(false);
    r.metrics.clear();
    for _ in 0..40 {
        r.tick(2).await;
    }
    assert!(r.scaler.calls().is_empty(), "{:?}", r.scaler.calls());
}

#[tokio::test]
async fn a_service_gets_a_group_from_its_template() {
    let r = rig("version: 1\npolicies:\n  - name: api\n    service: /shop/api\n    metrics: [{metric: concurrency, target: 10}]\n    window: 30s\n    instances: {min: 1, max: 3}\n    groups: {min: 1, max: 3}\n    panic: {enabled: false}\n");
    r.scaler.put_app("/shop/api/g1", 3);
    load(&r, "/shop/api", 50.0);
    r.tick(0).await;
    assert_eq!(r.scaler.calls(), ["add /shop/api/g2 2 from /shop/api/g1"]);
    assert_eq!(r.scaler.instances("/shop/api/g2"), Some(2));
    let e =
        r.a.explain("/shop/api/g2")
            .expect("a group explains its service");
    assert_eq!(e.policy.policy.name, "api");
}

/// A service of one group has no service record of its own (the gateway writes one from
/// two groups on): its group's app-wide record stands in.
#[tokio::test]
async fn a_service_of_one_group_reads_its_groups_record() {
    let r = rig("version: 1\npolicies:\n  - name: api\n    service: /shop/api\n    metrics: [{metric: concurrency, target: 10}]\n    window: 30s\n    instances: {min: 1, max: 3}\n    groups: {min: 1, max: 3}\n    panic: {enabled: false}\n");
    r.scaler.put_app("/shop/api/g1", 1);
    load(&r, "/shop/api/g1", 30.0);
    r.tick(0).await;
    assert_eq!(r.scaler.calls(), ["scale /shop/api/g1 3"]);
}

#[tokio::test]
async fn a_restart_seeds_the_down_window_from_history() {
    let r = rig(WEB);
    r.scaler.put_app("/web", 9);
    let now = r.clock.now();
    r.metrics.set_history(
        "concurrency_mean",
        "/web",
        vec![
            (now - chrono::Duration::seconds(40), 90.0),
            (now - chrono::Duration::seconds(30), 20.0),
        ],
    );
    load(&r, "/web", 20.0);
    r.tick(0).await;
    assert!(
        r.scaler.calls().is_empty(),
        "the peak 40 s ago holds: {:?}",
        r.scaler.calls()
    );
    r.tick(22).await;
    assert_eq!(r.scaler.calls(), ["scale /web 2"]);
}

#[tokio::test]
async fn dry_run_decides_without_scaling() {
    let r = rig(&WEB.replace("    window: 30s\n", "    window: 30s\n    dry_run: true\n"));
    r.scaler.put_app("/web", 2);
    load(&r, "/web", 45.0);
    r.tick(0).await;
    assert!(r.scaler.calls().is_empty());
    assert_eq!(r.a.decisions(None, 1)[0].outcome, Outcome::DryRun);
}

#[tokio::test]
async fn unknown_targets_are_load_errors_and_reload_keeps_running_policies() {
    let r = rig(WEB);
    let errs = r.a.check_targets().await.expect("checked");
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].to_string().ends_with(
            "p.yaml:4: policies[0].app: unknown app /web: deploy it first, or fix the ID"
        ),
        "{}",
        errs[0]
    );
    r.scaler.put_app("/web", 1);
    assert!(r.a.check_targets().await.expect("checked").is_empty());
    // a broken file: refused, the running policy stays
    let file = r.a.inner.cfg.policy_paths[0].clone();
    std::fs::write(&file, WEB.replace("target: 10", "target: 0")).expect("write");
    assert!(r.a.reload().is_err());
    assert_eq!(r.a.policies().len(), 1);
    std::fs::write(&file, WEB.replace("name: web", "name: web2")).expect("write");
    assert_eq!(r.a.reload().expect("reloads"), 1);
    let names: Vec<String> =
        r.a.policies()
            .iter()
            .map(|v| v.policy.name.clone())
            .collect();
    assert_eq!(names, ["web2"]);
    // hot reload: nothing changed since the last look, then an edit is picked up
    assert!(
        r.a.reload_if_changed().is_some(),
        "the files changed since the start"
    );
    assert!(r.a.reload_if_changed().is_none());
    std::fs::write(&file, WEB.replace("name: web", "name: web3")).expect("write");
    let f = std::fs::File::options()
        .write(true)
        .open(&file)
        .expect("open");
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .expect("mtime");
    assert_eq!(r.a.reload_if_changed().map(|r| r.is_ok()), Some(true));
    assert_eq!(r.a.policies()[0].policy.name, "web3");
}

async fn call(r: &Rig, method: &str, uri: &str, body: &str) -> (u16, Value) {
    let resp = crate::api::router(r.a.clone())
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::from(body.to_string()))
                .expect("request"),
        )
        .await
        .expect("answer");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_api_lists_puts_and_explains() {
    let r = rig(WEB);
    r.scaler.put_app("/web", 2);
    r.scaler.put_app("/cart", 1);
    load(&r, "/web", 45.0);
    r.tick(0).await;
    let (st, v) = call(&r, "GET", "/api/autoscaler/policies", "").await;
    assert_eq!(st, 200);
    assert_eq!(v[0]["policy"]["name"], "web");
    assert_eq!(
        v[0]["policy"]["target"],
        serde_json::json!({"kind": "app", "id": "/web"})
    );
    assert_eq!(v[0]["status"]["state"], "active");
    // a good policy through the API
    let (st, v) = call(
        &r,
        "PUT",
        "/api/autoscaler/policies/cart",
        "app: /cart\nmetrics:\n  - {metric: request_rate, target: 50}\n",
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["policy"]["origin"]["file"], "api");
    // a bad one: 400 naming the line and the field
    let (st, v) = call(
        &r,
        "PUT",
        "/api/autoscaler/policies/cart",
        "app: /cart\nmetrics:\n  - metric: request_rate\n    target: 0\n",
    )
    .await;
    assert_eq!(st, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("api:4: metrics[0].target: the target must be more than 0"),
        "{v}"
    );
    assert_eq!(v["detail"]["errors"][0]["line"], 4);
    // an unknown app
    let (st, v) = call(
        &r,
        "PUT",
        "/api/autoscaler/policies/x",
        "app: /nope\nmetrics: [{metric: cpu_pct, target: 60}]\n",
    )
    .await;
    assert_eq!(st, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap_or("")
            .contains("unknown app /nope"),
        "{v}"
    );
    // the same app twice
    let (st, _) = call(
        &r,
        "PUT",
        "/api/autoscaler/policies/y",
        "app: /web\nmetrics: [{metric: cpu_pct, target: 60}]\n",
    )
    .await;
    assert_eq!(st, 400);
    // decisions
    let (st, v) = call(&r, "GET", "/api/autoscaler/decisions?app=/web&limit=5", "").await;
    assert_eq!(st, 200);
    assert_eq!(v["decisions"][0]["desired"], 5);
    assert_eq!(v["decisions"][0]["outcome"]["state"], "applied");
    let (st, _) = call(&r, "GET", "/api/autoscaler/decisions?limit=many", "").await;
    assert_eq!(st, 400);
    // explain
    let (st, v) = call(&r, "GET", "/api/autoscaler/explain/web", "").await;
    assert_eq!(st, 200);
    assert_eq!(v["last"]["metrics"][0]["metric"], "concurrency");
    assert_eq!(v["last"]["winner"], "concurrency");
    // history: one point per tick, the change marked
    let (st, v) = call(&r, "GET", "/api/autoscaler/history/web", "").await;
    assert_eq!(st, 200);
    assert_eq!(v["metrics"][0], serde_json::json!(["concurrency", 10.0]));
    assert_eq!(v["points"][0]["instances"], 5);
    assert_eq!(v["points"][0]["changed"], true);
    assert_eq!(v["points"][0]["values"][0], 45.0);
    let (st, v) = call(&r, "GET", "/api/autoscaler/explain/nothing/here", "").await;
    assert_eq!(st, 404);
    assert!(v["error"]
        .as_str()
        .unwrap_or("")
        .contains("no policy scales /nothing/here"));
}

#[tokio::test]
async fn the_same_hold_every_tick_is_kept_once() {
    // concurrency asks for 1, CPU is missing: held at 4 on every tick
    let r = rig(&WEB.replace(
        "      - {metric: concurrency, target: 10}\n",
        "      - {metric: concurrency, target: 10}\n      - {metric: cpu_pct, target: 60}\n",
    ));
    r.scaler.put_app("/web", 4);
    load(&r, "/web", 5.0);
    for _ in 0..30 {
        r.tick(2).await;
    }
    let kept = r.a.decisions(None, 100);
    assert_eq!(
        kept.len(),
        1,
        "{:#?}",
        kept.iter().map(Decision::summary).collect::<Vec<_>>()
    );
    assert_eq!(kept[0].held[0].rule, "missing_metrics");
    // a different situation is kept again
    r.metrics.set("cpu_pct", "/web", W, 10.0);
    r.tick(2).await;
    assert_eq!(r.a.decisions(None, 100).len(), 2);
}
