//! Who may do what, against a real `drover up`: every write route of the router it serves
//! (listed by the server from the router itself, `GET /api/auth/routes`) answers 401
//! without a token and 403 with a viewer token and works with an operator or admin token;
//! each of those writes is in the audit trail and on `drover.events.v1`; no token appears
//! in the logs or the events; off loopback without auth is refused; the UI logs in and out
//! in a real browser, and a cookie write without the CSRF header is refused.
use std::{collections::BTreeSet, time::Duration};

use drover_tests::{drover::DroverUp, free_port, repo_root};
use serde_json::Value;

/// `drover token create` against the data dir of `up`: the token.
fn create_token(up: &DroverUp, role: &str, name: &str) -> String {
    let data = up.data_dir();
    let out = drover_tests::drover::run_drover(
        &[
            "token",
            "create",
            "--role",
            role,
            "--name",
            name,
            "--json",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        Duration::from_secs(10),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["role"], role);
    let token = v["token"].as_str().unwrap().to_string();
    drover_tests::secrets::note(
        &format!("{role} token '{name}' (drover token create)"),
        &token,
    );
    token
}

async fn call(
    up: &DroverUp,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (reqwest::StatusCode, String) {
    let client = reqwest::Client::new();
    let mut req = client
        .request(method.parse().unwrap(), up.url(path))
        .header("content-type", "application/json")
        .timeout(Duration::from_secs(30));
    if method != "GET" && method != "HEAD" {
        req = req.body("{}");
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status();
    (status, resp.text().await.unwrap_or_default())
}

/// The writes the guard lets through without a token (its public allowlist): the login
/// form and logout. Changing the allowlist means changing this test.
const PUBLIC_WRITES: [(&str, &str); 2] = [("POST", "/login"), ("POST", "/logout")];

/// Paths only an admin may use.
fn admin_only(path: &str) -> bool {
    path == "/api/audit" || path.starts_with("/api/auth/tokens") || path == "/api/auth/routes"
}

#[tokio::test]
async fn every_write_route_needs_an_operator_and_is_audited_and_no_token_leaks() {
    let mut up = DroverUp::start(&[]).await;
    // Loopback and no token: open, as before.
    let (status, body) = call(&up, "GET", "/healthz", None).await;
    assert!(
        status.is_success() && body.contains("\"auth\":\"off\""),
        "{body}"
    );
    let admin = create_token(&up, "admin", "root");
    let operator = create_token(&up, "operator", "ci");
    let viewer = create_token(&up, "viewer", "eve");
    // A token exists: on at once, without a restart.
    let (_, body) = call(&up, "GET", "/healthz", None).await;
    assert!(body.contains("\"auth\":\"on\""), "{body}");

    // The routes, as the server reads them from the router it serves.
    let (status, body) = call(&up, "GET", "/api/auth/routes", Some(&admin)).await;
    assert!(status.is_success(), "{status} {body}");
    let routes: Vec<Value> = serde_json::from_str(&body).unwrap();
    let mut writes = BTreeSet::new();
    for r in &routes {
        let path = r["path"].as_str().unwrap().to_string();
        for m in r["methods"].as_array().unwrap() {
            let m = m.as_str().unwrap();
            let ms: Vec<&str> = if m == "*" {
                vec!["POST", "PUT", "PATCH", "DELETE"]
            } else {
                vec![m]
            };
            for m in ms {
                if m != "GET" && m != "HEAD" {
                    writes.insert((m.to_string(), path.clone()));
                }
            }
        }
    }
    // The list is the real one (not empty because reading the router broke).
    for known in [
        ("POST", "/v2/apps"),
        ("PUT", "/api/autoscaler/policies/{name}"),
        ("POST", "/api/v2/silences"),
        ("POST", "/v1/agents/register"),
        ("POST", "/v1/nodes/{id}/{action}"),
        ("POST", "/login"),
    ] {
        assert!(
            writes.contains(&(known.0.to_string(), known.1.to_string())),
            "{known:?} not in {writes:?}"
        );
    }
    eprintln!("{} write routes to check", writes.len());

    let mut checked = Vec::new();
    for (method, pattern) in &writes {
        if PUBLIC_WRITES.contains(&(method.as_str(), pattern.as_str())) {
            continue;
        }
        let path = concrete(pattern);
        let (s, b) = call(&up, method, &path, None).await;
        assert_eq!(s, 401, "{method} {path} without a token: {b}");
        let (s, b) = call(&up, method, &path, Some(&viewer)).await;
        assert_eq!(s, 403, "{method} {path} with a viewer token: {b}");
        let (s, b) = call(&up, method, &path, Some(&operator)).await;
        if admin_only(pattern) {
            assert_eq!(s, 403, "{method} {path} with an operator token: {b}");
            let (s, b) = call(&up, method, &path, Some(&admin)).await;
            assert!(
                s != 401 && s != 403,
                "{method} {path} with an admin token: {s} {b}"
            );
        } else {
            assert!(
                s != 401 && s != 403,
                "{method} {path} with an operator token: {s} {b}"
            );
            checked.push((method.clone(), path.clone(), s.as_u16()));
        }
    }
    assert!(checked.len() >= 20, "{checked:?}");

    // Each operator write is in the audit trail, with who and the outcome.
    let (status, body) = call(&up, "GET", "/api/audit?limit=10000", Some(&admin)).await;
    assert!(status.is_success(), "{body}");
    let audit: Vec<Value> = serde_json::from_str(&body).unwrap();
    for (method, path, status) in &checked {
        assert!(
            audit.iter().any(|r| r["who"] == "ci"
                && r["role"] == "operator"
                && r["method"] == method.as_str()
                && r["path"] == path.as_str()
                && r["status"] == *status
                && r["source"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("127.0.0.1:"))),
            "no audit record of {method} {path} {status}"
        );
    }
    assert!(audit
        .iter()
        .any(|r| r["who"] == "eve" && r["status"] == 403));
    // `drover audit` shows the same trail (with the admin token in DROVER_TOKEN).
    let out = std::process::Command::new(drover_tests::drover::drover_bin())
        .args(["audit", "--json", "--limit", "5", "--server", &up.url("")])
        .env("DROVER_TOKEN", &admin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli.len(), 5);
    let out = std::process::Command::new(drover_tests::drover::drover_bin())
        .args(["audit", "--server", &up.url("")])
        .env("DROVER_TOKEN", &viewer)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a viewer cannot read the audit");

    // The same writes as audit events on drover.events.v1.
    let brokers = up.broker.to_string();
    let want = checked.len();
    let events = tokio::task::spawn_blocking(move || {
        drover_tests::kafka::read_records::<drover_schema::Event>(
            &brokers,
            drover_schema::topics::EVENTS,
            |_| true,
            move |es| {
                es.iter()
                    .filter(|e| e.kind == "audit" && e.attrs["who"] == "ci")
                    .count()
                    >= want
            },
            Duration::from_secs(60),
            Duration::from_secs(2),
        )
    })
    .await
    .unwrap();
    let audit_events: Vec<_> = events.iter().filter(|e| e.kind == "audit").collect();
    for (method, path, _) in &checked {
        assert!(
            audit_events.iter().any(|e| e.attrs["who"] == "ci"
                && e.attrs["method"] == method.as_str()
                && e.attrs["path"] == path.as_str()),
            "no audit event of {method} {path}"
        );
    }

    // No token anywhere in what the run produced: its logs, every event, /metrics.
    let (_, metrics) = call(&up, "GET", "/metrics", Some(&viewer)).await;
    let all_events = serde_json::to_string(&events).unwrap();
    // Kept for the suite's secret scan too (scripts/secret-scan.sh).
    drover_tests::secrets::keep("drover.events.v1.json", all_events.as_bytes());
    drover_tests::secrets::keep("metrics.txt", metrics.as_bytes());
    let logs = up.logs();
    for t in [&admin, &operator, &viewer] {
        assert!(!logs.contains(t.as_str()), "a token in the logs");
        assert!(!all_events.contains(t.as_str()), "a token in the events");
        assert!(!metrics.contains(t.as_str()), "a token in /metrics");
        // Not even its tail (a token cut in a message).
        assert!(
            !logs.contains(&t[t.len() - 24..]),
            "part of a token in the logs"
        );
    }

    // The audit trail survives a restart (auth/audit.jsonl in the data dir).
    up.terminate(Duration::from_secs(30));
    up.restart(&[]).await;
    let (status, body) = call(&up, "GET", "/api/audit?limit=10000", Some(&admin)).await;
    assert!(status.is_success(), "{body}");
    let after: Vec<Value> = serde_json::from_str(&body).unwrap();
    for (method, path, status) in &checked {
        assert!(
            after.iter().any(|r| r["who"] == "ci"
                && r["method"] == method.as_str()
                && r["path"] == path.as_str()
                && r["status"] == *status),
            "after a restart, no audit record of {method} {path} {status}"
        );
    }
}

/// A concrete path for a route pattern: every `{param}` and `{*rest}` filled in.
fn concrete(pattern: &str) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let j = rest[i..].find('}').map_or(rest.len(), |j| i + j + 1);
        out.push_str("authz-probe");
        rest = &rest[j..];
    }
    out.push_str(rest);
    out
}

#[test]
fn off_loopback_without_auth_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let http = format!("0.0.0.0:{}", free_port());
    let out = drover_tests::drover::run_drover(
        &[
            "up",
            "--http",
            &http,
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("refusing to serve HTTP on")
            && err.contains("drover token create")
            && err.contains("--insecure-no-auth"),
        "{err}"
    );
    // The master alone, the same.
    let out = drover_tests::drover::run_drover(
        &[
            "master",
            "--http",
            &http,
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to serve HTTP on"));
}

#[tokio::test]
async fn a_master_off_loopback_with_a_cluster_token_takes_agents_with_it_only() {
    let port = free_port();
    let cluster = "c0ffee-cluster-token-for-the-test-0123456789";
    drover_tests::secrets::note("the cluster token (--cluster-token)", cluster);
    let dir = tempfile::tempdir().unwrap();
    let http = format!("0.0.0.0:{port}");
    let data = dir.path().to_str().unwrap().to_string();
    let master = drover_tests::drover::DroverProcess::start(&[
        "master",
        "--http",
        &http,
        "--data-dir",
        &data,
        "--cluster-token",
        cluster,
    ]);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ok = false;
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            let body = r.text().await.unwrap_or_default();
            assert!(body.contains("\"auth\":\"on\""), "{body}");
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the master did not start:\n{}", master.logs());
    let register = |token: Option<&str>| {
        let mut r = client
            .post(format!("{base}/v1/agents/register"))
            .header("content-type", "application/json")
            .body("{}");
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(register(None).await.unwrap().status(), 401);
    assert_eq!(
        register(Some("not-the-cluster-token"))
            .await
            .unwrap()
            .status(),
        401
    );
    let s = register(Some(cluster)).await.unwrap().status();
    assert!(s != 401 && s != 403, "{s}");

    // A real agent joins with the cluster token; one without it is refused.
    let agent = |node: &str, token: Option<&str>| {
        let http = format!("127.0.0.1:{}", free_port());
        let mut args = vec![
            "agent".to_string(),
            "--master".into(),
            base.clone(),
            "--node-id".into(),
            node.into(),
            "--http".into(),
            http,
        ];
        if let Some(t) = token {
            args.extend(["--cluster-token".into(), t.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        drover_tests::drover::DroverProcess::start(&args)
    };
    let with = agent("joined", Some(cluster));
    let without = agent("refused", None);
    let mut nodes = Value::Null;
    for _ in 0..100 {
        nodes = client
            .get(format!("{base}/v1/nodes"))
            .bearer_auth(cluster)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if nodes.to_string().contains("joined") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        nodes.to_string().contains("joined"),
        "{nodes}\n{}\n{}",
        with.logs(),
        master.logs()
    );
    assert!(!nodes.to_string().contains("refused"), "{nodes}");
    let refused = output(&without);
    assert!(refused.contains("401"), "{refused}");
    assert!(
        !output(&with).contains(cluster),
        "the cluster token in the agent's logs"
    );
    assert!(
        !output(&master).contains(cluster),
        "the cluster token in the logs"
    );
}

#[tokio::test]
async fn insecure_no_auth_off_loopback_says_so_on_healthz_and_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let master = drover_tests::drover::DroverProcess::start(&[
        "master",
        "--http",
        &format!("0.0.0.0:{port}"),
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--insecure-no-auth",
    ]);
    let mut body = String::new();
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await {
            body = r.text().await.unwrap_or_default();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        body.contains("INSECURE-NO-AUTH"),
        "{body}\n{}",
        master.logs()
    );
    let out = output(&master);
    assert!(
        out.contains("WARNING: --insecure-no-auth") && out.contains("INSECURE"),
        "{out}"
    );
}

#[tokio::test]
async fn the_ui_logs_in_and_out_and_refuses_a_write_without_csrf() {
    let up = DroverUp::start(&["--no-collector"]).await;
    let admin = create_token(&up, "admin", "root");
    let token = create_token(&up, "operator", "browser");
    let shots = repo_root().join("artifacts/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = std::process::Command::new("python3")
        .arg(repo_root().join("tests/auth/login_page.py"))
        .args(["--base", &up.url(""), "--token-file"])
        .arg(write_secret(&up, "operator", &token))
        .arg("--admin-token-file")
        .arg(write_secret(&up, "admin", &admin))
        .arg("--shots")
        .arg(&shots)
        .output()
        .expect("python3 runs (scripts/setup.sh installs selenium, chromium and chromium-driver)");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("RESULT ok"),
        "login_page.py failed:\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        up.logs()
    );
    for png in ["login.png", "logged-in.png", "logged-out.png", "audit.png"] {
        assert!(shots.join(png).is_file(), "{png}");
    }
    assert!(!up.logs().contains(&token) && !up.logs().contains(&admin));
}

/// What a process printed (without the harness's header, which repeats its arguments).
fn output(p: &drover_tests::drover::DroverProcess) -> String {
    ["stdout.log", "stderr.log"]
        .iter()
        .map(|f| std::fs::read_to_string(p.dir().join(f)).unwrap_or_default())
        .collect()
}

/// The token in a file only the test reads (not on the script's command line).
fn write_secret(up: &DroverUp, name: &str, token: &str) -> std::path::PathBuf {
    let p = up.root().join(format!("{name}-token"));
    std::fs::write(&p, token).unwrap();
    p
}

#[test]
fn a_bad_kafka_config_file_names_the_line_not_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kafka.properties");
    drover_tests::secrets::note("a sasl.password in --kafka-config", "hunter2-secret");
    std::fs::write(
        &file,
        "security.protocol=SASL_SSL\nsasl.password hunter2-secret\n",
    )
    .unwrap();
    let out = drover_tests::drover::run_drover(
        &[
            "up",
            "--kafka-config",
            file.to_str().unwrap(),
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("kafka.properties:2"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

/// A CA and a certificate for 127.0.0.1 signed by it (openssl), in `dir`, with subject CN
/// `cn`: (ca.pem, cert.pem, key.pem).
fn make_cert(dir: &std::path::Path, cn: &str) {
    let sh = format!(
        "set -e; cd '{}'; \
         [ -f ca.pem ] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=drover-test-ca; \
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout new.key -out leaf.csr -subj /CN={cn}; \
         printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > ext.cnf; \
         openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out new.pem -days 2 -extfile ext.cnf; \
         mv new.key key.pem; mv new.pem cert.pem",
        dir.display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &sh])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The subject of the certificate served at `addr`.
fn served_subject(addr: &str) -> String {
    let sh = format!(
        "echo | openssl s_client -connect {addr} 2>/dev/null | openssl x509 -noout -subject"
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &sh])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn drover_up_over_tls_serves_https_reloads_its_certificate_and_its_components_still_work() {
    let certs = tempfile::tempdir().unwrap();
    make_cert(certs.path(), "first");
    let cert = certs.path().join("cert.pem");
    let key = certs.path().join("key.pem");
    let ca = certs.path().join("ca.pem");
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    // A bad key is refused at start, naming the file.
    let bad = certs.path().join("bad.pem");
    std::fs::write(&bad, "not a key").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = drover_tests::drover::run_drover(
        &[
            "master",
            "--http",
            &format!("127.0.0.1:{}", free_port()),
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--tls-cert",
            cert_s,
            "--tls-key",
            bad.to_str().unwrap(),
        ],
        Duration::from_secs(10),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("bad.pem"), "{err}");

    let http = format!("127.0.0.1:{}", free_port());
    let broker = format!("127.0.0.1:{}", free_port());
    let gateway = format!("127.0.0.1:{}", free_port());
    let data = dir.path().join("up");
    let up = drover_tests::drover::DroverProcess::start(&[
        "up",
        "--http",
        &http,
        "--broker-listen",
        &broker,
        "--gateway",
        &gateway,
        "--no-collector",
        "--data-dir",
        data.to_str().unwrap(),
        "--tls-cert",
        cert_s,
        "--tls-key",
        key_s,
    ]);
    let cli = |args: &[&str]| {
        std::process::Command::new(drover_tests::drover::drover_bin())
            .args(args)
            .env("SSL_CERT_FILE", &ca)
            .output()
            .unwrap()
    };
    // HTTPS answers; the local agent (which calls the API from inside) registered.
    let mut nodes = String::new();
    for _ in 0..300 {
        let out = cli(&["node", "ls", "--master", &format!("https://{http}")]);
        nodes = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && nodes.lines().count() > 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(nodes.lines().count() > 1, "{nodes}\n{}", up.logs());
    assert!(served_subject(&http).contains("first"));
    // Plain HTTP is not served on the TLS address.
    assert!(reqwest::get(format!("http://{http}/healthz"))
        .await
        .is_err());

    // A renewed certificate is served without a restart.
    make_cert(certs.path(), "second");
    let mut subject = String::new();
    for _ in 0..50 {
        subject = served_subject(&http);
        if subject.contains("second") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(subject.contains("second"), "{subject}\n{}", up.logs());
    let out = cli(&["app", "ls", "--master", &format!("https://{http}")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A random string for a path segment, a query value or a body: ASCII, unicode, separators,
/// percent signs, very long.
fn junk(rng: &mut fastrand::Rng) -> String {
    const PIECES: [&str; 16] = [
        "", "a", "0", "-1", "..", "%", "%00", "%2F", "é", "💥", "{}", "[]", "null", "'\"", "\\",
        " ",
    ];
    let n = rng.usize(0..6);
    let mut s: String = (0..n).map(|_| PIECES[rng.usize(0..PIECES.len())]).collect();
    if rng.u8(0..20) == 0 {
        s.push_str(&"x".repeat(rng.usize(1000..20_000)));
    }
    s
}

fn junk_body(rng: &mut fastrand::Rng) -> (String, &'static str) {
    match rng.u8(0..6) {
        0 => (String::new(), "application/json"),
        1 => ("{}".into(), "application/json"),
        2 => (
            format!(
                "{{\"id\": \"{}\", \"instances\": {}}}",
                junk(rng).replace('"', ""),
                rng.i64(..)
            ),
            "application/json",
        ),
        3 => (format!("[{}]", junk(rng)), "application/json"),
        4 => (junk(rng), "application/yaml"),
        _ => (junk(rng), "text/plain"),
    }
}

/// A fuzz run of every route `drover up` serves (read from the router): random path
/// parameters, query strings and bodies with an admin token; no answer may be a 5xx and the
/// server must still be healthy at the end. `DROVER_FUZZ_CASES` (default 15) per route and
/// method, `DROVER_FUZZ_SEED` to replay.
#[tokio::test]
async fn fuzzing_every_route_gives_no_5xx() {
    let up = DroverUp::start(&["--no-collector"]).await;
    let admin = create_token(&up, "admin", "fuzz");
    let (_, body) = call(&up, "GET", "/api/auth/routes", Some(&admin)).await;
    let routes: Vec<Value> = serde_json::from_str(&body).unwrap();
    let cases: usize = std::env::var("DROVER_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let seed: u64 = std::env::var("DROVER_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("fuzz seed {seed} (DROVER_FUZZ_SEED to replay), {cases} cases per route");
    let mut rng = fastrand::Rng::with_seed(seed);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut failures = Vec::new();
    let mut sent = 0;
    for r in &routes {
        let pattern = r["path"].as_str().unwrap();
        // Streams never end on their own; /logout would end nothing here.
        if matches!(pattern, "/v2/events" | "/api/logs/tail") {
            continue;
        }
        for m in r["methods"].as_array().unwrap() {
            let m = m.as_str().unwrap();
            let method = if m == "*" { "POST" } else { m };
            for _ in 0..cases {
                let mut path = String::new();
                let mut rest = pattern;
                while let Some(i) = rest.find('{') {
                    path.push_str(&rest[..i]);
                    let j = rest[i..].find('}').map_or(rest.len(), |j| i + j + 1);
                    let seg: String = junk(&mut rng)
                        .chars()
                        .filter(|c| *c != '/' && *c != '?' && *c != '#')
                        .collect();
                    path.push_str(if seg.is_empty() { "x" } else { &seg });
                    rest = &rest[j..];
                }
                path.push_str(rest);
                let url = reqwest::Url::parse(&up.url("")).unwrap();
                let Ok(mut url) = url.join(&path) else {
                    continue;
                };
                if rng.bool() {
                    let key = [
                        "q", "since", "until", "limit", "by", "metric", "app", "cursor", "force",
                        "size",
                    ][rng.usize(0..10)];
                    url.query_pairs_mut().append_pair(key, &junk(&mut rng));
                }
                let (body, ct) = junk_body(&mut rng);
                let resp = client
                    .request(method.parse().unwrap(), url.clone())
                    .bearer_auth(&admin)
                    .header("content-type", ct)
                    .body(body.clone())
                    .send()
                    .await;
                sent += 1;
                match resp {
                    Ok(r) if r.status().is_server_error() => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        failures.push(format!(
                            "{method} {url} ({ct}, {} bytes) -> {status} {}",
                            body.len(),
                            text.chars().take(200).collect::<String>()
                        ));
                    }
                    Ok(_) => {}
                    Err(e) if e.is_timeout() => {
                        failures.push(format!("{method} {url}: no answer in 10 s"))
                    }
                    Err(e) => failures.push(format!(
                        "{method} {url} ({ct}, {} bytes): {e:?}",
                        body.len()
                    )),
                }
            }
        }
    }
    let (status, _) = call(&up, "GET", "/healthz", None).await;
    assert!(
        status.is_success(),
        "not healthy after the fuzz run\n{}",
        up.logs()
    );
    assert!(
        failures.is_empty(),
        "seed {seed}: {} of {sent} requests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{sent} requests, no 5xx");
}
