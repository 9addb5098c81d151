//! The proxy end to end on loopback: real sockets, backends written here (well-behaved,
//! garbage-speaking, silent, upgrading), the route table applied by hand. No scheduler.
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{extract::Request, routing::get, Router};
use bytes::Bytes;
use drover_gateway::{AppView, Gateway, GatewayConfig, GatewayMetrics, TaskView};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// A backend that answers `name` on `/`, its request headers as JSON on `/headers`, and
/// counts its requests.
async fn backend(name: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = Arc::clone(&hits);
    let app = Router::new()
        .route(
            "/",
            get(move || {
                h.fetch_add(1, Ordering::SeqCst);
                async move { name }
            }),
        )
        .route(
            "/headers",
            get(|req: Request| async move {
                let m: BTreeMap<String, String> = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                axum::Json(m)
            }),
        )
        .route(
            "/fail",
            get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .fallback(move |req: Request| async move { format!("{name} {}", req.uri().path()) });
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (addr, hits)
}

/// A backend that answers every connection with `bytes` and closes.
async fn raw_backend(bytes: &'static [u8]) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(bytes).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn app(id: &str, labels: &[(&str, &str)], ports: &[u16]) -> AppView {
    AppView {
        id: id.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ports: 1,
        health_checks: false,
        tasks: ports
            .iter()
            .enumerate()
            .map(|(i, p)| TaskView {
                id: format!("{}.{i}", id.trim_start_matches('/').replace('/', "_")),
                host: "127.0.0.1".into(),
                ports: vec![*p],
                node: "n1".into(),
                running: true,
                healthy: None,
            })
            .collect(),
    }
}

struct Running {
    gw: Gateway,
    metrics: GatewayMetrics,
    addr: SocketAddr,
    _stop: watch::Sender<bool>,
}

async fn gateway(cfg: GatewayConfig) -> Running {
    let metrics = GatewayMetrics::default();
    let gw = Gateway::new(cfg, metrics.clone(), drover_schema::time::system_clock());
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = watch::channel(false);
    let g = gw.clone();
    tokio::spawn(async move { g.serve(l, rx).await });
    Running {
        gw,
        metrics,
        addr,
        _stop: tx,
    }
}

async fn get_(gw: SocketAddr, host: &str, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let r = reqwest::Client::new()
        .get(format!("http://{gw}{path}"))
        .header("host", host)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, r.text().await.unwrap(), headers)
}

#[tokio::test]
async fn routes_by_host_and_longest_path_with_forwarding_headers() {
    let (web, _) = backend("web").await;
    let (api, _) = backend("api").await;
    let g = gateway(GatewayConfig::default()).await;
    g.gw.apply(&[
        app(
            "/web",
            &[("drover.gateway.host", "shop.test")],
            &[web.port()],
        ),
        app(
            "/api",
            &[
                ("drover.gateway.host", "shop.test"),
                ("drover.gateway.path", "/api"),
            ],
            &[api.port()],
        ),
    ]);
    assert_eq!(get_(g.addr, "shop.test", "/").await.1, "web");
    assert_eq!(
        get_(g.addr, "SHOP.test:8000", "/api/x").await.1,
        "api /api/x"
    );
    assert_eq!(get_(g.addr, "shop.test", "/apix").await.1, "web /apix");

    let (status, body, headers) = get_(g.addr, "shop.test", "/headers").await;
    assert_eq!(status, 200);
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "shop.test");
    assert_eq!(h["host"], "shop.test", "the backend sees the client's Host");
    assert_eq!(
        h["forwarded"],
        "for=127.0.0.1;host=\"shop.test\";proto=http"
    );
    let rid = h["x-request-id"].as_str().unwrap();
    assert_eq!(rid.len(), 32);
    assert_eq!(
        headers["x-request-id"], rid,
        "the client gets the same request ID"
    );

    // The client's request ID is kept.
    let r = reqwest::Client::new()
        .get(format!("http://{}/headers", g.addr))
        .header("host", "shop.test")
        .header("x-request-id", "mine-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "mine-42");
    let h: Value = r.json().await.unwrap();
    assert_eq!(h["x-request-id"], "mine-42");
}

#[tokio::test]
async fn no_route_is_404_and_no_backend_is_503_with_clear_bodies() {
    let g = gateway(GatewayConfig::default()).await;
    g.gw.apply(&[app("/empty", &[("drover.gateway.host", "empty.test")], &[])]);
    let (status, body, headers) = get_(g.addr, "nowhere.test", "/x").await;
    assert_eq!(status, 404);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["error"],
        "no route for host \"nowhere.test\" and path \"/x\""
    );
    assert!(v["detail"].as_str().unwrap().contains("/v1/gateway/routes"));
    assert_eq!(v["request_id"], headers["x-request-id"].to_str().unwrap());
    let (status, body, _) = get_(g.addr, "empty.test", "/").await;
    assert_eq!(status, 503);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "no healthy backend for empty.test");
    assert!(v["detail"].as_str().unwrap().contains("/empty"), "{v}");
    let stats = g.gw.take_stats();
    let app = stats
        .iter()
        .find(|s| s.app == "/empty" && s.instance.is_none())
        .unwrap();
    assert_eq!(
        (app.requests, app.status.s5xx, app.gateway_errors),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn garbage_or_silence_from_a_backend_is_a_502_and_the_gateway_lives_on() {
    let garbage = raw_backend(b"SPEAKING NONSENSE\r\n\r\n").await;
    let silent = raw_backend(b"").await;
    let (good, _) = backend("good").await;
    let g = gateway(GatewayConfig {
        retry: false,
        ..GatewayConfig::default()
    })
    .await;
    g.gw.apply(&[
        app(
            "/garbage",
            &[("drover.gateway.host", "garbage.test")],
            &[garbage.port()],
        ),
        app(
            "/silent",
            &[("drover.gateway.host", "silent.test")],
            &[silent.port()],
        ),
        app(
            "/dead",
            &[("drover.gateway.host", "dead.test")],
            &[dead_port()],
        ),
        app(
            "/good",
            &[("drover.gateway.host", "good.test")],
            &[good.port()],
        ),
    ]);
    for _ in 0..3 {
        for host in ["garbage.test", "silent.test", "dead.test"] {
            let (status, body, _) = get_(g.addr, host, "/").await;
            assert_eq!(status, 502, "{host}: {body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert!(
                v["error"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("/{}", host.trim_end_matches(".test"))),
                "{v}"
            );
        }
        assert_eq!(get_(g.addr, "good.test", "/").await.1, "good");
    }
    let stats = g.gw.take_stats();
    let inst = stats
        .iter()
        .find(|s| s.app == "/garbage" && s.instance.is_some())
        .unwrap();
    assert_eq!(
        (inst.requests, inst.status.s502_504, inst.gateway_errors),
        (3, 3, 3)
    );
}

#[tokio::test]
async fn a_slow_backend_is_a_504() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (_s, _) = l.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let g = gateway(GatewayConfig {
        request_timeout: Duration::from_millis(300),
        ..GatewayConfig::default()
    })
    .await;
    g.gw.apply(&[app(
        "/slow",
        &[("drover.gateway.host", "slow.test")],
        &[slow.port()],
    )]);
    let (status, body, _) = get_(g.addr, "slow.test", "/").await;
    assert_eq!(status, 504, "{body}");
}

#[tokio::test]
async fn an_idempotent_request_that_cannot_connect_is_retried_on_another_backend() {
    let (good, hits) = backend("good").await;
    let g = gateway(GatewayConfig::default()).await;
    g.gw.apply(&[app(
        "/r",
        &[("drover.gateway.host", "r.test")],
        &[dead_port(), good.port()],
    )]);
    for _ in 0..20 {
        let (status, body, _) = get_(g.addr, "r.test", "/").await;
        assert_eq!((status, body.as_str()), (200, "good"));
    }
    assert_eq!(hits.load(Ordering::SeqCst), 20);
    let retries = g
        .metrics
        .retries
        .get_or_create(&drover_gateway::metrics::AppLabels { app: "/r".into() })
        .get();
    assert!(
        retries >= 1,
        "the dead backend was tried and the request retried"
    );
}

#[tokio::test]
async fn five_failures_eject_a_backend_and_traffic_goes_to_the_rest() {
    let (a, a_hits) = backend("a").await;
    let bad = raw_backend(
        b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\nconnection: close\r\n\r\nboom",
    )
    .await;
    let g = gateway(GatewayConfig::default()).await;
    g.gw.apply(&[app(
        "/e",
        &[("drover.gateway.host", "e.test")],
        &[a.port(), bad.port()],
    )]);
    let mut fives = 0;
    for _ in 0..60 {
        let (status, _, _) = get_(g.addr, "e.test", "/").await;
        if status == 500 {
            fives += 1;
        }
    }
    assert_eq!(
        fives, 5,
        "exactly 5 failures, then the bad one is ejected (1 of 2 may be)"
    );
    assert_eq!(a_hits.load(Ordering::SeqCst), 55);
    let count = |class| {
        g.metrics
            .requests
            .get_or_create(&drover_gateway::metrics::StatusLabels {
                app: "/e".into(),
                class,
            })
            .get()
    };
    assert_eq!(
        (count("2xx"), count("5xx")),
        (55, 5),
        "Prometheus counts match"
    );
    let ejections = g
        .metrics
        .ejections
        .get_or_create(&drover_gateway::metrics::AppLabels { app: "/e".into() })
        .get();
    assert_eq!(ejections, 1);
    let routes = reqwest_routes(&g).await;
    let backends = routes["routes"][0]["groups"][0]["backends"]
        .as_array()
        .unwrap()
        .clone();
    let ejected: Vec<&Value> = backends.iter().filter(|b| b["ejected"] == true).collect();
    assert_eq!(ejected.len(), 1, "{backends:?}");
    assert!(ejected[0]["addr"]
        .as_str()
        .unwrap()
        .ends_with(&bad.port().to_string()));
    assert_eq!(ejected[0]["ejections"], 1);
}

async fn reqwest_routes(g: &Running) -> Value {
    // The routes API, served by its own router on a loopback port.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let router = g.gw.router();
    tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
    reqwest::get(format!("http://{addr}/v1/gateway/routes"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn h2c_clients_are_served() {
    let (web, _) = backend("web").await;
    let g = gateway(GatewayConfig::default()).await;
    g.gw.apply(&[app(
        "/web",
        &[("drover.gateway.host", "h2.test")],
        &[web.port()],
    )]);
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    // The authority is the gateway's address; the Host is given as a header.
    let req = http::Request::get(format!("http://{}/", g.addr))
        .header("host", "h2.test")
        .body(Empty::new())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"web");
    // Without a Host header, HTTP/2's :authority routes.
    g.gw.apply(&[app("/web", &[("drover.gateway.path", "/")], &[web.port()])]);
    let req = http::Request::get(format!("http://{}/", g.addr))
        .body(Empty::new())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
}

/// A backend that upgrades every request to an echo protocol.
async fn echo_upgrade_backend() -> SocketAddr {
    use hyper::{server::conn::http1, service::service_fn};
    use hyper_util::rt::TokioIo;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = service_fn(
                    |mut req: hyper::Request<hyper::body::Incoming>| async move {
                        let on = hyper::upgrade::on(&mut req);
                        tokio::spawn(async move {
                            if let Ok(up) = on.await {
                                let mut io = TokioIo::new(up);
                                let mut buf = [0u8; 64];
                                while let Ok(n) = io.read(&mut buf).await {
                                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        });
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .status(101)
                                .header("connection", "upgrade")
                                .header("upgrade", "echo")
                                .body(Empty::<Bytes>::new())
                                .unwrap(),
                        )
                    },
                );
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn upgrades_pass_through() {
    let echo = echo_upgrade_backend().await;
    let g = gateway(GatewayConfig::default()).await;
    g.gw.apply(&[app(
        "/ws",
        &[("drover.gateway.host", "ws.test")],
        &[echo.port()],
    )]);
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut b).await.unwrap(),
            1,
            "closed: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    for msg in [&b"ping"[..], b"hello through the gateway"] {
        s.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, msg);
    }
}

#[tokio::test]
async fn instance_groups_keep_their_keys() {
    let (g1, _) = backend("g1").await;
    let (g2, _) = backend("g2").await;
    let (g3, _) = backend("g3").await;
    let g = gateway(GatewayConfig::default()).await;
    let labels = [
        ("drover.gateway.host", "svc.test"),
        ("drover.gateway.hash-key", "header:x-user"),
    ];
    let two = [
        app("/svc/g1", &labels, &[g1.port()]),
        app("/svc/g2", &labels, &[g2.port()]),
    ];
    g.gw.apply(&two);
    let who = |user: String| {
        let addr = g.addr;
        async move {
            reqwest::Client::new()
                .get(format!("http://{addr}/"))
                .header("host", "svc.test")
                .header("x-user", user)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let mut before = Vec::new();
    for u in 0..40 {
        let first = who(format!("user{u}")).await;
        for _ in 0..3 {
            assert_eq!(
                who(format!("user{u}")).await,
                first,
                "user{u} sticks to its group"
            );
        }
        before.push(first);
    }
    assert!(before.iter().any(|b| b == "g1") && before.iter().any(|b| b == "g2"));
    let mut three = two.to_vec();
    three.push(app("/svc/g3", &labels, &[g3.port()]));
    g.gw.apply(&three);
    let mut moved = 0;
    for (u, was) in before.iter().enumerate() {
        let now = who(format!("user{u}")).await;
        if &now != was {
            assert_eq!(
                now, "g3",
                "user{u} moved from {was} to {now}, not to the new group"
            );
            moved += 1;
        }
    }
    assert!(moved > 0, "some keys go to the new group");
}
