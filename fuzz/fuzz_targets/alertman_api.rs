//! Alertman's decoders (behind the fuzz crate's `alertman` feature: it pulls polars and
//! tantivy): rule files (`drover_alertman::rules::load_sources`, what `--rules DIR` and
//! `drover alerts rules check` read), matchers (`Matcher::parse` + `compile`, Alertmanager's
//! `{name=~"re"}` syntax in silences and filters), and the Alertmanager v2 API a Prometheus or
//! `amtool` sends (`POST /api/v2/alerts`, `POST /api/v2/silences`, `GET ...?filter=`,
//! `DELETE /api/v2/silence/{id}`) on the real router. Besides "no panic": no 5xx.
#![no_main]

use std::{path::PathBuf, sync::Arc, sync::OnceLock};

use arbitrary::Arbitrary;
use axum::{body::Body, http::Request, Router};
use drover_alertman::{
    api::router,
    matcher::Matcher,
    metrics::AlertmanMetrics,
    rules::load_sources,
    service::{Alertman, AlertmanConfig},
    source::Fake,
};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

#[derive(Debug, Arbitrary)]
struct Input {
    kind: u8,
    text: String,
}

struct World {
    rt: tokio::runtime::Runtime,
    app: Router,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("r.yaml");
        std::fs::write(
            &rules,
            "version: 1\nreceivers:\n  - name: hook\n    type: webhook\n    url: http://127.0.0.1:9/\nroute:\n  receivers: [hook]\n",
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cfg = AlertmanConfig::new(vec![rules], dir.path().join("state"), "http://ui");
        let am = rt
            .block_on(async {
                Alertman::open(cfg, Arc::new(Fake::default()), AlertmanMetrics::new())
            })
            .unwrap();
        World {
            rt,
            app: router(am),
            _dir: dir,
        }
    })
}

fn call(w: &World, method: &str, uri: &str, body: &str) {
    let Ok(req) = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
    else {
        return;
    };
    let (status, text) = w.rt.block_on(async {
        let resp = w.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    });
    assert!(
        !status.is_server_error(),
        "{method} {uri}: {status} {}",
        String::from_utf8_lossy(&text)
    );
}

fuzz_target!(|input: Input| {
    let w = world();
    let text = input.text.as_str();
    match input.kind % 7 {
        0 => {
            let _ = load_sources(&[(PathBuf::from("r.yaml"), text.to_string())], &|_| None);
        }
        1 => {
            if let Ok(m) = Matcher::parse(text) {
                let _ = m.compile();
            }
        }
        2 => call(w, "POST", "/api/v2/alerts", text),
        3 => call(w, "POST", "/api/v2/silences", text),
        4 => call(w, "GET", &format!("/api/v2/alerts?{text}"), ""),
        5 => call(w, "GET", &format!("/api/v2/silences?{text}"), ""),
        _ => call(w, "DELETE", &format!("/api/v2/silence/{text}"), ""),
    }
});
