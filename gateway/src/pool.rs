//! Keep-alive connections to the backends, one pool per worker thread (see `server`): a
//! request takes an idle connection to its backend or opens one, and gives it back when its
//! response has been read to the end — no task per request, no cross-thread hand-off.
//!
//! Connecting is a step of its own, before anything is sent: a backend that refuses or
//! does not answer in time leaves the request whole, so it can go to another backend without
//! a copy. A kept connection the backend closed meanwhile gives the request back too
//! ([`hyper::client::conn::TrySendError`]); it is sent again on a fresh connection.
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use http::{Request, Response};
use hyper::{
    body::Incoming,
    client::conn::{http1, TrySendError},
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::proxy::Body;

/// A connection to a backend, ready for one request.
pub type Sender = http1::SendRequest<Body>;

/// Why no connection could be had: nothing was sent.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The backend refused, reset, or the address is unusable.
    #[error("cannot connect to {addr}: {source}")]
    Io {
        /// The backend.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No connection within the connect timeout.
    #[error("no connection to {addr} within {timeout:?}")]
    Timeout {
        /// The backend.
        addr: String,
        /// The connect timeout.
        timeout: Duration,
    },
    /// The HTTP/1 handshake failed.
    #[error("cannot start HTTP/1 with {addr}: {source}")]
    Handshake {
        /// The backend.
        addr: String,
        /// Why.
        #[source]
        source: hyper::Error,
    },
}

/// Why a request got no response.
#[derive(Debug)]
pub enum SendError {
    /// Nothing was sent: no connection (the request comes back for another backend).
    Connect(ConnectError, Box<Request<Body>>),
    /// The request was (maybe partly) sent and the backend gave no valid response.
    Failed(hyper::Error),
}

/// Idle connections by backend address.
#[derive(Debug)]
pub struct Pool {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle_per_backend: usize,
}

#[derive(Debug)]
struct Idle {
    tx: Sender,
    since: Instant,
}

impl Pool {
    /// An empty pool.
    pub fn new(connect_timeout: Duration, idle_timeout: Duration) -> Self {
        Self {
            idle: Mutex::new(HashMap::new()),
            connect_timeout,
            idle_timeout,
            max_idle_per_backend: 1024,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Idle>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection to `addr` that is still open and not expired.
    fn take_idle(&self, addr: &str) -> Option<Sender> {
        let mut idle = self.lock();
        let list = idle.get_mut(addr)?;
        while let Some(i) = list.pop() {
            if !i.tx.is_closed() && i.since.elapsed() < self.idle_timeout {
                return Some(i.tx);
            }
        }
        None
    }

    /// Give a connection back after its response was read to the end.
    pub fn put(&self, addr: &str, tx: Sender) {
        if tx.is_closed() {
            return;
        }
        let mut idle = self.lock();
        let list = match idle.get_mut(addr) {
            Some(l) => l,
            None => idle.entry(addr.to_string()).or_default(),
        };
        if list.len() < self.max_idle_per_backend {
            list.push(Idle {
                tx,
                since: Instant::now(),
            });
        }
    }

    /// Drop connections that are closed or idle too long (run now and then).
    pub fn sweep(&self) {
        let mut idle = self.lock();
        for list in idle.values_mut() {
            list.retain(|i| !i.tx.is_closed() && i.since.elapsed() < self.idle_timeout);
        }
        idle.retain(|_, l| !l.is_empty());
    }

    /// Idle connections kept.
    pub fn idle_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// A new connection to `addr`, driven by a task on this thread's runtime.
    async fn connect(&self, addr: &str) -> Result<Sender, ConnectError> {
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(source)) => {
                    return Err(ConnectError::Io {
                        addr: addr.to_string(),
                        source,
                    })
                }
                Err(_) => {
                    return Err(ConnectError::Timeout {
                        addr: addr.to_string(),
                        timeout: self.connect_timeout,
                    })
                }
            };
        let _ = stream.set_nodelay(true);
        let (tx, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ConnectError::Handshake {
                addr: addr.to_string(),
                source,
            })?;
        let addr_owned = addr.to_string();
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(backend = %addr_owned, error = %e, "backend connection ended with an error");
            }
        });
        Ok(tx)
    }

    /// Send `req` to `addr` on a kept connection or a new one; the response and the
    /// connection, to give back with [`Pool::put`] once the response is read.
    pub async fn send(
        &self,
        addr: &str,
        mut req: Request<Body>,
    ) -> Result<(Response<Incoming>, Sender), SendError> {
        // Kept connections first; one the backend closed gives the request back.
        while let Some(mut tx) = self.take_idle(addr) {
            if tx.ready().await.is_err() {
                continue;
            }
            match tx.try_send_request(req).await {
                Ok(resp) => return Ok((resp, tx)),
                Err(e) => match unsent(e) {
                    Ok(back) => req = back,
                    Err(e) => return Err(SendError::Failed(e)),
                },
            }
        }
        let mut tx = match self.connect(addr).await {
            Ok(tx) => tx,
            Err(e) => return Err(SendError::Connect(e, Box::new(req))),
        };
        match tx.try_send_request(req).await {
            Ok(resp) => Ok((resp, tx)),
            Err(e) => Err(SendError::Failed(e.into_error())),
        }
    }
}

/// The request back when it was not sent, else the error.
fn unsent(e: TrySendError<Request<Body>>) -> Result<Request<Body>, hyper::Error> {
    let mut e = e;
    match e.take_message() {
        Some(req) => Ok(req),
        None => Err(e.into_error()),
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::{BufRead, BufReader, Write},
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc,
        },
    };

    use http_body_util::BodyExt;

    use super::*;

    /// A backend on a plain socket answering `ok` to each request; with `close_after`, it
    /// closes each connection after that many answers (as a backend's idle timeout would).
    /// Returns its address and the connections it accepted.
    fn backend(close_after: Option<usize>) -> (String, Arc<AtomicUsize>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let mut answered = 0;
                    loop {
                        let mut line = String::new();
                        // Read one request's head.
                        loop {
                            line.clear();
                            if r.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n");
                        answered += 1;
                        if close_after == Some(answered) {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    fn get() -> Request<Body> {
        Request::builder()
            .uri("/x")
            .header("host", "h")
            .body(crate::proxy::empty())
            .unwrap()
    }

    async fn read_all(resp: Response<Incoming>) -> Vec<u8> {
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    #[tokio::test]
    async fn a_connection_read_to_its_end_carries_the_next_request() {
        let (addr, accepted) = backend(None);
        let pool = Pool::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..3 {
            let (resp, tx) = pool.send(&addr, get()).await.unwrap();
            assert_eq!(read_all(resp).await, b"ok\n");
            pool.put(&addr, tx);
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection, kept alive"
        );
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn a_kept_connection_the_backend_closed_is_replaced_without_losing_the_request() {
        let (addr, accepted) = backend(Some(1));
        let pool = Pool::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..3 {
            let (resp, tx) = pool.send(&addr, get()).await.unwrap();
            assert_eq!(read_all(resp).await, b"ok\n");
            pool.put(&addr, tx);
            // Let the backend's close reach the kept connection (or not: both must work).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            3,
            "a new connection each time"
        );
    }

    #[tokio::test]
    async fn expired_idle_connections_are_not_used_and_are_swept() {
        let (addr, accepted) = backend(None);
        let pool = Pool::new(Duration::from_secs(1), Duration::from_millis(30));
        let (resp, tx) = pool.send(&addr, get()).await.unwrap();
        read_all(resp).await;
        pool.put(&addr, tx);
        tokio::time::sleep(Duration::from_millis(60)).await;
        pool.sweep();
        assert_eq!(pool.idle_count(), 0);
        let (resp, _tx) = pool.send(&addr, get()).await.unwrap();
        read_all(resp).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refused_connection_gives_the_request_back() {
        // A port nobody listens on: bind, note it, close.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let pool = Pool::new(Duration::from_secs(1), Duration::from_secs(60));
        let req = Request::builder()
            .uri("/x")
            .header("host", "h")
            .body(crate::proxy::empty())
            .unwrap();
        match pool.send(&addr, req).await {
            Err(SendError::Connect(ConnectError::Io { .. }, back)) => {
                assert_eq!(back.uri(), "/x");
            }
            other => panic!("expected a refused connect, got {other:?}"),
        }
        assert_eq!(pool.idle_count(), 0);
    }
}
