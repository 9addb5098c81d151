//! The gateway alone on fixed backends, for profiling (`perf record`) and quick A/B runs
//! against HAProxy without the rest of Drover:
//!
//! ```text
//! cargo run --release -p drover-gateway --example static_proxy -- 8000 9001 9002
//! wrk -t2 -c50 -d10s -H 'Host: bench.local' http://127.0.0.1:8000/
//! ```
//! Routes every request for Host `bench.local` to the backends on 127.0.0.1 (the ports after
//! the first); stops on Ctrl-C. `GATEWAY_WORKERS=N` sets the worker threads. `drover bench gateway` is the measured comparison.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use drover_gateway::{AppView, Gateway, GatewayConfig, GatewayMetrics};

#[tokio::main]
async fn main() {
    let ports: Vec<u16> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("ports are numbers"))
        .collect();
    let (listen, backends) = ports
        .split_first()
        .expect("usage: static_proxy LISTEN_PORT BACKEND_PORT...");
    let cfg = GatewayConfig {
        workers: std::env::var("GATEWAY_WORKERS")
            .ok()
            .and_then(|w| w.parse().ok())
            .unwrap_or(0),
        ..GatewayConfig::default()
    };
    let gw = Gateway::new(
        cfg,
        GatewayMetrics::default(),
        drover_schema::time::system_clock(),
    );
    gw.apply(&[AppView::on_loopback("/bench", "bench.local", backends)]);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", *listen))
        .await
        .expect("cannot bind the listen port");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop_tx.send(true);
    });
    gw.serve(listener, stop_rx).await;
}
