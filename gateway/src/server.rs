//! Accepting clients: HTTP/1.1 and h2c (prior knowledge) on one port, upgrades allowed,
//! idle keep-alive connections closed after `idle_timeout`, and a graceful stop.
//!
//! Thread per core, like Pingora's no-steal runtimes and HAProxy's threads: one acceptor
//! hands each connection to the worker with the fewest open connections; a worker is an OS
//! thread with its own single-threaded Tokio runtime and its own keep-alive pool to the
//! backends, so a request, its backend connection and their wake-ups stay on one thread
//! (no work stealing, no cross-thread wake-ups on the hot path). Everything else — routes,
//! statistics, health — is shared.
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use hyper::service::service_fn;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{
    net::TcpListener,
    sync::{mpsc, oneshot, watch},
    task::JoinSet,
};

use crate::{
    pool::Pool,
    proxy::{self, Local},
    GatewayConfig, Shared,
};

/// What a worker's requests share: the gateway and the worker's keep-alive pool to the
/// backends, swept of closed and expired connections.
fn worker_local(shared: &Arc<Shared>) -> Arc<Local> {
    let cfg = &shared.cfg;
    let local = Arc::new(Local {
        shared: Arc::clone(shared),
        pool: Pool::new(cfg.connect_timeout, cfg.idle_timeout),
    });
    let sweeping = Arc::downgrade(&local);
    let every = (cfg.idle_timeout / 2).max(std::time::Duration::from_secs(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            match sweeping.upgrade() {
                Some(l) => l.pool.sweep(),
                None => break,
            }
        }
    });
    local
}

/// The number of worker threads: the config's, else one per core.
fn worker_count(cfg: &GatewayConfig) -> usize {
    if cfg.workers > 0 {
        cfg.workers
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// A worker thread, as the acceptor sees it.
struct Worker {
    conns: mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>,
    open: Arc<AtomicUsize>,
    done: oneshot::Receiver<()>,
}

/// Serve until `stop` turns true; then stop accepting, ask each connection to finish after
/// its current request, and wait for them (at most `shutdown_grace`).
pub async fn serve(shared: Arc<Shared>, listener: TcpListener, stop: watch::Receiver<bool>) {
    let n = worker_count(&shared.cfg);
    let mut workers = Vec::with_capacity(n);
    for i in 0..n {
        match spawn_worker(i, Arc::clone(&shared), stop.clone()) {
            Ok(w) => workers.push(w),
            Err(e) => {
                tracing::error!(worker = i, error = %e, "cannot start a gateway worker thread")
            }
        }
    }
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(addr = %addr, workers = workers.len(), "gateway listening");
    }
    if workers.is_empty() {
        // No thread could be started: serve on this runtime, slower but serving.
        let local = worker_local(&shared);
        let mut conns = JoinSet::new();
        accept_loop(&listener, stop.clone(), |stream, peer| {
            conns.spawn(connection(Arc::clone(&local), stream, peer, stop.clone()));
            while conns.try_join_next().is_some() {}
        })
        .await;
        drop(listener);
        drain(&shared, conns).await;
        return;
    }
    accept_loop(&listener, stop, |stream, peer| {
        let Ok(std_stream) = stream.into_std() else {
            return;
        };
        let w = workers
            .iter()
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
            .expect("at least one worker");
        w.open.fetch_add(1, Ordering::Relaxed);
        let _ = w.conns.send((std_stream, peer));
    })
    .await;
    drop(listener);
    // The workers see the channel close (and `stop`), finish their connections and end.
    let mut done = Vec::with_capacity(workers.len());
    for w in workers {
        drop(w.conns);
        done.push(w.done);
    }
    for d in done {
        let _ = d.await;
    }
}

/// Accept until `stop` turns true, handing each connection to `on_conn`.
async fn accept_loop(
    listener: &TcpListener,
    mut stop: watch::Receiver<bool>,
    mut on_conn: impl FnMut(tokio::net::TcpStream, SocketAddr),
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        on_conn(stream, peer);
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little, keep serving.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            }
            _ = stopped(&mut stop) => break,
        }
    }
}

fn spawn_worker(
    i: usize,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<Worker> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(std::net::TcpStream, SocketAddr)>();
    let (done_tx, done_rx) = oneshot::channel();
    let open = Arc::new(AtomicUsize::new(0));
    let open_w = Arc::clone(&open);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(format!("drover-gw-{i}"))
        .spawn(move || {
            crate::shard::enter(i);
            rt.block_on(async move {
                let local = worker_local(&shared);
                let mut conns = JoinSet::new();
                while let Some((std_stream, peer)) = rx.recv().await {
                    let stream = match tokio::net::TcpStream::from_std(std_stream) {
                        Ok(s) => s,
                        Err(e) => {
                            open_w.fetch_sub(1, Ordering::Relaxed);
                            tracing::warn!(peer = %peer, error = %e, "cannot take over a connection");
                            continue;
                        }
                    };
                    let open = Arc::clone(&open_w);
                    let conn = connection(Arc::clone(&local), stream, peer, stop.clone());
                    conns.spawn(async move {
                        conn.await;
                        open.fetch_sub(1, Ordering::Relaxed);
                    });
                    // Reap finished connections as we go.
                    while conns.try_join_next().is_some() {}
                }
                drain(&shared, conns).await;
            });
            let _ = done_tx.send(());
        })?;
    Ok(Worker {
        conns: tx,
        open,
        done: done_rx,
    })
}

/// One client connection, until it ends or `stop` asks it to finish its current request.
async fn connection(
    local: Arc<Local>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let cfg = &local.shared.cfg;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(cfg.idle_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(cfg.idle_timeout / 2));
    let svc = service_fn(move |req| proxy::handle(Arc::clone(&local), peer, req));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(peer = %peer, error = %e, "client connection ended with an error");
            }
        }
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Wait for open connections, at most the shutdown grace; then close them.
async fn drain(shared: &Shared, mut conns: JoinSet<()>) {
    let grace = shared.cfg.shutdown_grace;
    if tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!(
            open = conns.len(),
            grace_ms = grace.as_millis() as u64,
            "connections still open after the grace period; closing them"
        );
        conns.abort_all();
    }
}

/// Resolves when `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
