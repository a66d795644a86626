//! TLS for the door clients use: rustls (aws-lc-rs) with a certificate chain and key from PEM
//! files, TLS 1.2 and 1.3, HTTP/1.1.
//!
//! Handshakes run on their own tasks (at most [`HANDSHAKES_MAX`] at once, each within
//! [`HANDSHAKE_TIMEOUT`]), so a client that stalls mid-handshake holds up no one else; the
//! server only ever sees finished handshakes. Plain HTTP stays for loopback (development);
//! a door on any other address needs TLS or an explicit `--plain-http` (TLS ended in front of
//! it, by an ingress or a mesh).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::Error;

/// Handshakes in progress at most; further connections wait to be accepted.
pub const HANDSHAKES_MAX: usize = 1024;
/// How long a handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate chain and private key files.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM: the server's certificate first, then its intermediates.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The rustls configuration the files make; fails naming the file that is unusable.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, Error> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|e| unusable(&self.cert, &e.to_string()))?;
        if chain.is_empty() {
            return Err(unusable(&self.cert, "no certificate in it"));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| unusable(&self.key, &e.to_string()))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| Error::from(format!("tls: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| unusable(&self.cert, &format!("the key does not fit it: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn unusable(path: &Path, why: &str) -> Error {
    format!("tls: {}: {why}", path.display()).into()
}

/// Refuses plain HTTP on an address other than loopback unless `plain_http` says TLS ends in
/// front of this process.
pub fn check_plain(
    listen: SocketAddr,
    tls: Option<&TlsFiles>,
    plain_http: bool,
) -> Result<(), Error> {
    if tls.is_none() && !plain_http && !listen.ip().is_loopback() {
        return Err(format!(
            "{listen} is not a loopback address: serve it over TLS (--tls-cert and --tls-key, or \
             [edge] tls) or, when TLS ends in front of Gureum (an ingress, a mesh), say so with \
             --plain-http ([edge] plain_http = true)"
        )
        .into());
    }
    Ok(())
}

/// A listener handing the server connections whose TLS handshake is done.
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `listener` with `config`.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (send, ready) = tokio::sync::mpsc::channel(HANDSHAKES_MAX);
        let acceptor = TlsAcceptor::from(config);
        let slots = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES_MAX));
        let accepting = tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors and the like: wait rather than spin.
                        tracing::warn!(error = %e, "tls: accepting a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, handing) = (acceptor.clone(), send.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = handing.send((stream, peer)).await;
                        }
                        // A failed handshake is the client's problem; noted, not logged loudly.
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "tls: handshake failed"),
                        Err(_) => tracing::debug!(%peer, "tls: handshake timed out"),
                    }
                });
                if send.is_closed() {
                    return;
                }
            }
        });
        Ok(TlsListener {
            ready,
            local,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accepting task is gone (only when the listener is being dropped).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
