//! Alertman against real services: a `drover up` with its embedded broker takes container
//! stats and log lines from the topics; a metric rule fires from those metrics and notifies a
//! real SMTP server (Debian's python3-aiosmtpd; the email is parsed: subject and both parts),
//! a local HTTP server standing in for Slack (Block Kit block types checked) and an
//! Alertmanager webhook; a log rule fires on a burst of `level:error` lines; `amtool` (Debian's
//! prometheus-alertmanager) lists the alerts and adds and expires a silence; a restart in the
//! middle of the alert repeats nothing and keeps the silences; a bad reload keeps the rules;
//! `drover alerts rules check` names file, line and field; a real Prometheus server (Debian's)
//! delivers its alerts to Alertman's Alertmanager API, and they reach Alertman's receivers.
use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use chrono::Utc;
use drover_schema::{topics, LogRecord, Source, Stream};
use drover_tests::{
    drover::{run_drover, DroverUp},
    free_port,
    hooks::HookServer,
    kafka::{container_stats, produce_all},
};
use serde_json::Value;

/// The repository root of this test's own sources (not the harness's: with a target dir
/// shared between work trees, the harness library may have been built from another one).
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

// === a real SMTP server ===

/// `tests/alertman/smtp_sink.py` on a free port: every message as parsed JSON in a dir.
struct SmtpSink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let script = repo_root().join("tests/alertman/smtp_sink.py");
        // Debian's python3-aiosmtpd is a module of Debian's python3, which another python3
        // first on PATH (pyenv) does not see.
        let python = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let mut child = Command::new(python)
            .arg(&script)
            .arg(port.to_string())
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs (scripts/setup.sh installs it)");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).ok();
        if line.trim() != "ready" {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).ok();
            panic!(
                "the SMTP server did not start ({line:?}); it needs Debian's python3-aiosmtpd (scripts/setup.sh installs it):\n{err}"
            );
        }
        Self { child, port, dir }
    }

    fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "json")
                    && !p.file_name().unwrap().to_str().unwrap().starts_with('.')
            })
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// === helpers ===

async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl AsyncFnMut() -> Option<T>,
    logs: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn stats(app: &str, instance: &str, cpu: f64) -> (String, Vec<u8>) {
    (
        app.to_string(),
        container_stats(app, instance, "it-node", cpu),
    )
}

fn log_line(app: &str, seq: u64, line: &str) -> (String, Vec<u8>) {
    let rec = LogRecord {
        v: 1,
        ts: Utc::now(),
        end_ts: None,
        source: Source {
            host: "it-host".into(),
            node: None,
            app: app.into(),
            task: Some(format!("{app}.t1")),
            group: None,
            container_id: "c-logs".into(),
            container_name: "c-logs".into(),
            image: "img".into(),
        },
        stream: Stream::Stdout,
        seq,
        line: line.into(),
    };
    ("c-logs".to_string(), drover_schema::encode(&rec))
}

async fn get(up: &DroverUp, path: &str) -> Value {
    reqwest::get(up.url(path))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn amtool(up: &DroverUp, args: &[&str]) -> String {
    let out = Command::new("amtool")
        .arg(format!("--alertmanager.url=http://{}", up.http))
        .args(args)
        .output()
        .expect("amtool runs: Debian's prometheus-alertmanager (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "amtool {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write_rules(dir: &Path, hooks: &HookServer, smtp_port: u16) -> PathBuf {
    // The Slack URL is a secret: read from a file.
    let slack_file = dir.join("slack-url");
    let slack_url = format!("{}/slack/T000/B000/secret", hooks.base);
    drover_tests::secrets::note("the Slack webhook URL (url_file)", &slack_url);
    drover_tests::secrets::note("the Slack webhook URL's path", "/slack/T000/B000/secret");
    std::fs::write(&slack_file, format!("{slack_url}\n")).unwrap();
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("receivers.yaml"),
        format!(
            r#"version: 1
receivers:
  - name: slack
    type: slack
    url_file: {}
  - name: hook
    type: webhook
    url: {}/hook
  - name: mail
    type: email
    smtp: 127.0.0.1:{smtp_port}
    tls: none
    from: alertman@drover.test
    to: [ops@drover.test]
route:
  group_by: [alertname, app]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 4h
"#,
            slack_file.display(),
            hooks.base
        ),
    )
    .unwrap();
    std::fs::write(
        rules.join("rules.yaml"),
        r#"version: 1
rules:
  - name: HotCpu
    kind: metric
    metric: cpu_pct
    filter: {app: /alert-it}
    agg: max
    by: [app, instance]
    threshold: 80
    for: 2s
    severity: critical
    annotations:
      summary: "CPU {{ value | round(1) }}% on {{ labels.instance }}"
      logs: "{{ links.logs }}"
    receivers: [slack, hook, mail]
  - name: ErrorBurst
    kind: log
    query: "level:error"
    by: [app]
    window: 5m
    threshold: 4
    annotations:
      summary: "{{ value | int }} error lines in {{ labels.app }}"
    receivers: [hook]
"#,
    )
    .unwrap();
    rules
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_fire_from_real_data_notify_real_receivers_and_survive_a_restart() {
    let hooks = HookServer::start();
    let smtp = SmtpSink::start();
    let tmp = tempfile::tempdir().unwrap();
    let rules = write_rules(tmp.path(), &hooks, smtp.port);
    let rules_arg = rules.display().to_string();
    let flags = [
        "--no-collector",
        "--no-scheduler",
        "--rules",
        &rules_arg,
        "--eval-interval",
        "1s",
        "--metrics-flush-interval",
        "200ms",
        "--commit-interval",
        "500ms",
    ];
    let mut up = DroverUp::start(&flags).await;
    let brokers = up.broker.to_string();
    produce_all(
        &brokers,
        topics::METRICS,
        &[
            stats("/alert-it", "i1", 95.0),
            stats("/alert-it", "i2", 10.0),
        ],
    )
    .await;
    let logs = || up.logs();

    // Slack: Block Kit.
    let slack = wait_for(
        "the Slack notification",
        Duration::from_secs(60),
        async || hooks.on("/slack/T000/B000/secret").first().cloned(),
        logs,
    )
    .await;
    assert_eq!(slack["text"], "[FIRING:1] HotCpu /alert-it", "{slack}");
    let types: Vec<&str> = slack["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    for t in &types {
        assert!(
            ["header", "section", "divider", "actions", "context"].contains(t),
            "not a Block Kit block type: {t}"
        );
    }
    assert_eq!(types[0], "header");
    assert!(types.contains(&"actions"));
    let alert_text = slack["blocks"][3]["text"]["text"].as_str().unwrap();
    assert!(
        alert_text.contains("instance=i1") && alert_text.contains("CPU 95.0% on i1"),
        "{alert_text}"
    );

    // The webhook: Alertmanager's JSON.
    let hook = wait_for(
        "the webhook notification",
        Duration::from_secs(30),
        async || {
            hooks
                .on("/hook")
                .into_iter()
                .find(|v| v["groupLabels"]["alertname"] == "HotCpu")
        },
        logs,
    )
    .await;
    assert_eq!(hook["version"], "4");
    assert_eq!(hook["status"], "firing");
    assert_eq!(
        hook["alerts"].as_array().unwrap().len(),
        1,
        "i2 at 10% does not fire: {hook}"
    );
    assert_eq!(hook["alerts"][0]["labels"]["instance"], "i1");

    // The email, through a real SMTP server: subject and both parts.
    let mail = wait_for(
        "the email",
        Duration::from_secs(30),
        async || smtp.messages().first().cloned(),
        logs,
    )
    .await;
    assert_eq!(mail["subject"], "[FIRING:1] HotCpu /alert-it", "{mail}");
    assert_eq!(mail["content_type"], "multipart/alternative");
    assert_eq!(mail["to"][0], "ops@drover.test");
    assert!(
        mail["text"].as_str().unwrap().contains("instance=i1"),
        "{mail}"
    );
    assert!(
        mail["html"].as_str().unwrap().contains("<h3>Firing</h3>"),
        "{mail}"
    );

    // A log rule on a burst of level:error lines.
    let lines: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| {
            log_line(
                "/alert-logs",
                i,
                &format!(
                    "{{\"level\":\"{}\",\"msg\":\"payment failed {i}\"}}",
                    if i % 2 == 0 { "error" } else { "info" }
                ),
            )
        })
        .collect();
    produce_all(&brokers, topics::LOGS, &lines).await;
    let burst = wait_for(
        "the log rule's notification",
        Duration::from_secs(60),
        async || {
            hooks
                .on("/hook")
                .into_iter()
                .find(|v| v["groupLabels"]["alertname"] == "ErrorBurst")
        },
        logs,
    )
    .await;
    assert_eq!(burst["alerts"][0]["labels"]["app"], "/alert-logs");
    assert_eq!(
        burst["alerts"][0]["annotations"]["summary"],
        "6 error lines in /alert-logs"
    );

    // amtool lists the alerts, adds a silence, expires it.
    let listed: Value =
        serde_json::from_str(&amtool(&up, &["alert", "query", "-o", "json"])).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"HotCpu") && names.contains(&"ErrorBurst"),
        "{listed}"
    );
    let id = amtool(
        &up,
        &[
            "silence",
            "add",
            "alertname=ErrorBurst",
            "--comment=known",
            "--author=it",
            "--duration=1h",
        ],
    );
    let id = id.trim().to_string();
    assert_eq!(id.len(), 36, "a silence ID: {id:?}");
    let q = amtool(&up, &["silence", "query", "-o", "json"]);
    assert!(q.contains(&id), "{q}");
    let v = get(&up, "/api/v2/alerts?silenced=false").await;
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|a| a["labels"]["alertname"] != "ErrorBurst"),
        "{v}"
    );
    amtool(&up, &["silence", "expire", &id]);
    let s = get(&up, &format!("/api/v2/silence/{id}")).await;
    assert_eq!(s["status"]["state"], "expired");
    // The Alerts page in a real browser: the firing alert, the rule, the history; a silence
    // added through the form and expired through its button.
    let shots = repo_root().join("artifacts/screenshots");
    let out = Command::new("python3")
        .arg(repo_root().join("tests/alertman/alerts_page.py"))
        .args(["--base", &up.url(""), "--alert", "HotCpu", "--shots"])
        .arg(&shots)
        .output()
        .expect("python3 runs (scripts/setup.sh installs selenium, chromium and chromium-driver)");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("RESULT ok"),
        "alerts_page.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shots.join("alerts.png").is_file());

    // One more that must survive the restart.
    let keep = amtool(
        &up,
        &[
            "silence",
            "add",
            "alertname=Nothing",
            "--comment=keep",
            "--author=it",
            "--duration=2h",
        ],
    );
    let keep = keep.trim().to_string();

    // History: pending, firing, sent.
    let h = get(&up, "/api/alerts/history?rule=HotCpu").await;
    // The alert's own transitions and the notifications (the rule's health — NoData until
    // the first samples arrived — is in the history too).
    let states: Vec<&str> = h["entries"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .filter(|e| e["kind"] == "notification" || e["labels"]["instance"] == "i1")
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(&states[..2], ["pending", "firing"], "{h}");
    assert_eq!(states.iter().filter(|s| **s == "sent").count(), 3, "{h}");

    // A restart in the middle of the alert repeats nothing and keeps the silences. First
    // let what is in flight land (counts unchanged over two group intervals).
    let counts = || {
        (
            hooks.on("/slack/T000/B000/secret").len(),
            hooks.on("/hook").len(),
            smtp.messages().len(),
        )
    };
    let mut before = counts();
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let now = counts();
        if now == before {
            break;
        }
        before = now;
    }
    let status = up.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", up.logs());
    up.restart(&flags).await;
    tokio::time::sleep(Duration::from_secs(8)).await; // 8 evaluations, group_wait 1s, group_interval 2s
    let after = counts();
    assert_eq!(
        before,
        after,
        "nothing repeated after the restart\n{}",
        up.logs()
    );
    let v = get(&up, "/api/alerts").await;
    let firing: Vec<&str> = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "firing")
        .map(|a| a["labels"]["alertname"].as_str().unwrap())
        .collect();
    assert!(
        firing.contains(&"HotCpu"),
        "still firing after the restart: {v}"
    );
    let s = get(&up, &format!("/api/v2/silence/{keep}")).await;
    assert_eq!(s["status"]["state"], "active", "the silence survived: {s}");

    // A bad reload keeps the running rules and says why.
    std::fs::write(rules.join("rules.yaml"), "version: 1\nrules:\n  - name: Broken\n    kind: metric\n    metric: cpu\n    threshold: 1\n").unwrap();
    let r = reqwest::Client::new()
        .post(up.url("/api/alerts/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    let err = body["error"].as_str().unwrap();
    assert!(
        err.contains("rules.yaml:5: rules[0] (Broken).metric: unknown metric \"cpu\""),
        "{err}"
    );
    let v = get(&up, "/api/alerts").await;
    assert!(
        v["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "HotCpu"),
        "{v}"
    );
    assert_eq!(v["reload"]["ok"], false);
}

#[test]
fn rules_check_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "version: 1\nrules:\n  - name: A\n    kind: metric\n    metric: rss_pct\n    threshold: 90\n").unwrap();
    let out = run_drover(
        &["alerts", "rules", "check", good.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 rule(s) (A)"));
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "version: 1\nrules:\n  - name: A\n    kind: log\n    query: \"status:[500 TO\"\n    threshold: 1\n    receivers: [nobody]\n  - name: B\n    kind: metric\n    metric: rss_pct\n    treshold: 90\n",
    )
    .unwrap();
    let out = run_drover(
        &["alerts", "rules", "check", bad.to_str().unwrap(), "--json"],
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let errs: Vec<String> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}:{}", e["line"], e["field"].as_str().unwrap()))
        .collect();
    // The unknown key stops the parse of its file first.
    assert_eq!(errs, ["11:rules[1].treshold"], "{report}");
    std::fs::write(
        &bad,
        "version: 1\nrules:\n  - name: A\n    kind: log\n    query: \"status:[500 TO\"\n    threshold: 1\n    receivers: [nobody]\n",
    )
    .unwrap();
    let out = run_drover(
        &["alerts", "rules", "check", bad.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:5: rules[0] (A).query: invalid query"),
        "{err}"
    );
    assert!(
        err.contains("bad.yaml:7: rules[0] (A).receivers: unknown receiver \"nobody\""),
        "{err}"
    );
}

/// A real Prometheus (Debian's `prometheus`) with an always-firing rule and Drover as its
/// Alertmanager: the alert shows on `/api/v2/alerts` and goes out through the route's
/// receiver (a webhook with Alertmanager's JSON).
#[tokio::test(flavor = "multi_thread")]
async fn a_prometheus_server_delivers_its_alerts_to_alertman() {
    let hooks = HookServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("alertman.yaml");
    std::fs::write(
        &rules,
        format!(
            "version: 1\nreceivers:\n  - name: hook\n    type: webhook\n    url: {}/prom\nroute:\n  group_wait: 1s\n  receivers: [hook]\n",
            hooks.base
        ),
    )
    .unwrap();
    let rules_arg = rules.display().to_string();
    let up = DroverUp::start(&[
        "--no-collector",
        "--no-scheduler",
        "--no-logpipe",
        "--rules",
        &rules_arg,
    ])
    .await;

    let prom_port = free_port();
    std::fs::write(
        tmp.path().join("always.rules.yml"),
        "groups:\n  - name: t\n    interval: 1s\n    rules:\n      - alert: AlwaysFiring\n        expr: vector(1)\n        labels: {severity: warning, app: /prom-test}\n        annotations: {summary: from prometheus}\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("prometheus.yml"),
        format!(
            "global: {{evaluation_interval: 1s}}\nrule_files: [always.rules.yml]\nalerting:\n  alertmanagers:\n    - api_version: v2\n      static_configs:\n        - targets: ['{}']\n",
            up.http
        ),
    )
    .unwrap();
    let mut prom = Command::new("prometheus")
        .current_dir(tmp.path())
        .args([
            "--config.file=prometheus.yml",
            "--storage.tsdb.path=data",
            &format!("--web.listen-address=127.0.0.1:{prom_port}"),
            // Its first send can come before it has found its Alertmanager (dropped); the
            // default resend delay would then wait a minute.
            "--rules.alert.resend-delay=2s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prometheus (Debian's package; scripts/setup.sh installs it)");
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _prom = Kill(&mut prom);

    let logs = || up.logs();
    let alert = wait_for(
        "Prometheus's alert on /api/v2/alerts",
        Duration::from_secs(60),
        async || {
            let v = get(&up, "/api/v2/alerts").await;
            v.as_array()?
                .iter()
                .find(|a| a["labels"]["alertname"] == "AlwaysFiring")
                .cloned()
        },
        logs,
    )
    .await;
    assert_eq!(alert["labels"]["app"], "/prom-test", "{alert}");
    assert_eq!(
        alert["annotations"]["summary"], "from prometheus",
        "{alert}"
    );
    let sent = wait_for(
        "the webhook notification of Prometheus's alert",
        Duration::from_secs(60),
        async || hooks.on("/prom").first().cloned(),
        logs,
    )
    .await;
    assert_eq!(sent["status"], "firing", "{sent}");
    assert_eq!(
        sent["alerts"][0]["labels"]["alertname"], "AlwaysFiring",
        "{sent}"
    );
}
