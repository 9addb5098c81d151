//! `drover-demo`: the test app of Drover's integration tests.
//!
//! An HTTP server whose latency, error rate, health and log output are set by environment
//! variables (see `config.rs` and README.md), and which prints numbered background log lines so
//! log-shipping tests can check that nothing is lost or duplicated. For the stats tests it can
//! also hold memory, spin CPUs and write a file (`load.rs`).

mod background;
mod config;
mod http;
mod load;
mod logline;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::logline::Output;

/// How long in-flight requests may take to finish after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("drover-demo: {e}");
            return ExitCode::from(2);
        }
    };
    // Before listening, so that the memory is held by the time the app answers.
    if let Err(e) = load::start(&config) {
        eprintln!("drover-demo: {e}");
        return ExitCode::FAILURE;
    }
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.port));
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("drover-demo: failed to listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };

    let out = Output::Stdio;
    let state = http::AppState::new(config.clone(), out.clone());
    let service = http::app(state).into_make_service_with_connect_info::<SocketAddr>();

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        if rx.wait_for(|stop| *stop).await.is_err() {
            // The signal task is gone without a signal: never stop for it.
            std::future::pending::<()>().await;
        }
    };
    let graceful = stopped(stop_rx.clone());
    let deadline = {
        let stopped = stopped(stop_rx);
        async move {
            stopped.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        }
    };

    tokio::select! {
        served = axum::serve(listener, service).with_graceful_shutdown(graceful) => {
            if let Err(e) = served {
                eprintln!("drover-demo: server failed: {e}");
                return ExitCode::FAILURE;
            }
        }
        () = deadline => {}
        () = background::run(&config, &out) => {}
    }
    ExitCode::SUCCESS
}

/// Resolves on SIGTERM or SIGINT (as PID 1 in a container, a signal without a handler is ignored).
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                eprintln!("drover-demo: cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
