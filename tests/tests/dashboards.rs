//! The web UI in a real browser (Debian's headless chromium + chromium-driver, driven by
//! selenium from tests/dashboards/browser.py) against a real `drover up --demo`: the demo app
//! deployed by the scheduler on the real Docker engine, its logs through the real broker into
//! the index, its stats into the metrics store. Screenshots of each page go to
//! `artifacts/screenshots/` at the repository root.
use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use drover_tests::{
    docker::ensure_images,
    drover::{DroverProcess, DroverUp},
    free_port, repo_root,
    scheduler::{port_range, wait_for, NodeContainers},
    unique,
};
use serde_json::Value;

const APP: &str = "/demo";

async fn get_json(url: &str) -> Option<Value> {
    reqwest::get(url).await.ok()?.json().await.ok()
}

async fn running_tasks(up: &DroverUp) -> Vec<Value> {
    get_json(&up.url(&format!("/v2/apps{APP}/tasks")))
        .await
        .and_then(|v| v["tasks"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t["state"] == "TASK_RUNNING")
        .collect()
}

/// Running containers the agent of `node` started for the demo app, by Docker's own count.
fn docker_running(node: &str) -> usize {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=drover.node={node}"),
            "--filter",
            &format!("label=drover.app={APP}"),
            "--filter",
            "status=running",
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ui_in_a_real_browser_against_drover_up_demo() {
    ensure_images();
    let node = unique("ui").replace('-', "");
    let _guard = NodeContainers(vec![node.clone()]);
    let (lo, hi) = port_range();
    let range = format!("{lo}-{hi}");
    let up = DroverUp::start(&[
        "--demo",
        "--node-id",
        &node,
        "--port-range",
        &range,
        "--heartbeat-interval",
        "300ms",
        "--reconcile-interval",
        "200ms",
        "--stats-interval",
        "2s",
    ])
    .await;
    let t = Duration::from_secs(90);
    if let Err(e) = wait_for(t, "the demo app's 2 instances run", || async {
        running_tasks(&up).await.len() == 2
    })
    .await
    {
        panic!("{e}\n{}", up.logs());
    }
    assert_eq!(docker_running(&node), 2, "{}", up.logs());
    assert!(
        up.logs().contains("open http://"),
        "drover up --demo prints the URL to open:\n{}",
        up.logs()
    );
    // Enough lines for a full first page (the demo logs a few lines a second per instance).
    if let Err(e) = wait_for(t, "150 lines indexed", || async {
        get_json(&up.url("/api/logs/search?since=1h&limit=1&snippets=false"))
            .await
            .and_then(|v| v["total"].as_u64())
            .unwrap_or(0)
            >= 150
    })
    .await
    {
        panic!("{e}\n{}", up.logs());
    }

    // A unique token printed by a container, then looked for in the browser.
    let task = &running_tasks(&up).await[0];
    let endpoint = format!(
        "127.0.0.1:{}",
        task["ports"][0].as_u64().expect("the task has a port")
    );
    let token = format!("droveruitoken{:08x}", fastrand::u32(..));
    let printed_ms = chrono::Utc::now().timestamp_millis();
    let r = reqwest::get(format!("http://{endpoint}/echo?line={token}"))
        .await
        .expect("the demo instance answers");
    assert!(r.status().is_success());

    let shots = repo_root().join("artifacts/screenshots");
    let started = Instant::now();
    let child = tokio::process::Command::new("python3")
        .arg(repo_root().join("tests/dashboards/browser.py"))
        .args(["--base", &up.url("")])
        .args(["--app", APP, "--echo", &endpoint, "--token", &token])
        .args(["--printed-ms", &printed_ms.to_string()])
        .arg("--shots")
        .arg(&shots)
        .args(["--scale-to", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs (scripts/setup.sh installs selenium, chromium and chromium-driver)");
    let out = tokio::time::timeout(Duration::from_secs(400), child.wait_with_output())
        .await
        .expect("the browser test finished within 400 s")
        .expect("browser.py output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser.py failed ({}):\n{stdout}\n{stderr}\n{}",
        out.status,
        up.logs()
    );
    let result: Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no RESULT line:\n{stdout}\n{stderr}"));
    println!("browser test figures: {result}");
    println!(
        "browser steps took {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The bound: the logs page found the token within 10 s of it being printed.
    let found = result["token_found_after_ms"].as_u64().unwrap();
    assert!(
        found <= 10_000,
        "the logs page found the token only {found} ms after it was printed"
    );
    println!(
        "logs page with 100 results: median load {} ms (runs {})",
        result["logs_page_load_ms"]["median"], result["logs_page_load_ms"]["runs"]
    );
    // The scale click: Docker runs a third container.
    if let Err(e) = wait_for(Duration::from_secs(30), "3 demo containers run", || async {
        docker_running(&node) == 3
    })
    .await
    {
        panic!("{e}\n{}", up.logs());
    }
    for page in [
        "logs",
        "logs-live",
        "apps",
        "app",
        "app-scaled",
        "nodes",
        "events",
        "routes",
    ] {
        let p = shots.join(format!("{page}.png"));
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(
            len > 10_000,
            "screenshot {} is missing or empty",
            p.display()
        );
    }

    // `drover dashboards`, the UI alone for a multi-host setup, passes the page's calls
    // through to the roles (here all in the drover up above).
    let front = format!("127.0.0.1:{}", free_port());
    let base = up.url("");
    let mut role = DroverProcess::start(&[
        "dashboards",
        "--http",
        &front,
        "--search",
        &base,
        "--metrics",
        &base,
        "--master",
        &base,
    ]);
    let config_url = format!("http://{front}/ui/config.json");
    if let Err(e) = wait_for(
        Duration::from_secs(20),
        "drover dashboards serves",
        || async { get_json(&config_url).await.is_some() },
    )
    .await
    {
        panic!("{e}\n{}", role.logs());
    }
    let config = get_json(&config_url).await.unwrap();
    assert_eq!(config["scheduler"], true, "{config}");
    let page = reqwest::get(format!("http://{front}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("/ui/app.js"));
    let apps = get_json(&format!("http://{front}/v2/apps")).await.unwrap();
    assert_eq!(apps["apps"][0]["id"], APP, "{apps}");
    let found = get_json(&format!(
        "http://{front}/api/logs/search?q={token}&since=1h"
    ))
    .await
    .unwrap();
    // The token, and the -live and -paused lines the browser test printed.
    assert_eq!(found["total"], 3, "the token through the proxy: {found}");
    assert!(
        found["hits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["line"] == token.as_str()),
        "{found}"
    );
    let cpu = get_json(&format!(
        "http://{front}/api/metrics/query?metric=cpu_pct&app={APP}&since=15m"
    ))
    .await
    .unwrap();
    assert!(!cpu["series"].as_array().unwrap().is_empty(), "{cpu}");
    role.terminate(Duration::from_secs(10));

    // Every metric the Grafana dashboards use is exported by this drover up.
    let metrics = reqwest::get(up.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let wanted =
        std::fs::read_to_string(repo_root().join("dashboards/grafana/metrics.txt")).unwrap();
    let missing: Vec<&str> = wanted
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|name| {
            !metrics
                .lines()
                .any(|l| l.starts_with(&format!("# TYPE {name} ")) || l.starts_with(name))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the Grafana dashboards use metrics drover up does not export: {missing:?}"
    );
}

#[test]
fn drover_dashboards_refuses_a_bad_setup_with_what_to_do() {
    let out = drover_tests::drover::run_drover(&["dashboards"], Duration::from_secs(10));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--search URL"), "{err}");
    let out = drover_tests::drover::run_drover(
        &["dashboards", "--master", "localhost:8080"],
        Duration::from_secs(10),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--master") && err.contains("http://"), "{err}");
}

#[test]
fn drover_up_demo_says_what_to_do_without_its_image_or_engine() {
    // Checked before anything starts.
    let http = format!("127.0.0.1:{}", free_port());
    let out = drover_tests::drover::run_drover(
        &[
            "up",
            "--demo",
            "--demo-image",
            "drover-no-such-image:latest",
            "--http",
            &http,
        ],
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("drover-no-such-image:latest") && err.contains("does not have"),
        "{err}"
    );
    let out = drover_tests::drover::run_drover(
        &[
            "up",
            "--demo",
            "--docker",
            "unix:///nonexistent/docker.sock",
            "--http",
            &http,
        ],
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is dockerd running"), "{err}");
}
