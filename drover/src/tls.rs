//! TLS for Drover's HTTP server (`--tls-cert FILE --tls-key FILE`): rustls with the ring
//! provider; the certificate and key are re-read when either file changes (checked every
//! 2 s), so a renewed certificate is served without a restart, and a broken renewal keeps the
//! previous one (with a warning). Handshakes run in their own tasks: a slow client does not
//! hold up the others.
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use anyhow::Context;
use rustls::{
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
    ServerConfig,
};
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{server::TlsStream, TlsAcceptor};

/// The certificate and key files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

fn load(files: &TlsFiles) -> anyhow::Result<Arc<CertifiedKey>> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot read the TLS certificate {}", files.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!(
            "no certificate in {} (expected PEM: -----BEGIN CERTIFICATE-----)",
            files.cert.display()
        );
    }
    // The error never quotes the key file's content.
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot read the TLS key {}", files.key.display()))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("unsupported TLS key in {}", files.key.display()))?;
    let ck = CertifiedKey::new(certs, signer);
    ck.keys_match()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| {
            format!(
                "the key {} does not match the certificate {}",
                files.key.display(),
                files.cert.display()
            )
        })?;
    Ok(Arc::new(ck))
}

/// The served certificate, swapped when the files change.
#[derive(Debug)]
struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

fn stamp(p: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// A TLS acceptor for `files` (checked now: a bad file is an error at start), and a task
/// that reloads them when they change.
pub fn acceptor(files: TlsFiles) -> anyhow::Result<TlsAcceptor> {
    let resolver = Arc::new(Resolver {
        current: RwLock::new(load(&files)?),
    });
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("cannot set up TLS")?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio::spawn(async move {
        let mut last = (stamp(&files.cert), stamp(&files.key));
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let now = (stamp(&files.cert), stamp(&files.key));
            if now == last {
                continue;
            }
            last = now;
            match load(&files) {
                Ok(ck) => {
                    *resolver.current.write().unwrap_or_else(|p| p.into_inner()) = ck;
                    tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded");
                }
                Err(e) => tracing::warn!(
                    error = %format!("{e:#}"),
                    "the TLS files changed but cannot be used; still serving the previous certificate"
                ),
            }
        }
    });
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A listener whose connections are TLS streams (handshaken in their own tasks).
#[derive(Debug)]
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accept on `listener`, handshake with `acceptor`.
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    break;
                }
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept task never ends while the listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Check that `files` can be served (at start, before anything runs).
pub fn check(files: &TlsFiles) -> anyhow::Result<()> {
    load(files).map(|_| ())
}
