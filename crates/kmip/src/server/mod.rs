//! The embedded KMIP server: the same codec and message types as the client, mutual
//! TLS (1.2 and 1.3, client certificate required), managed objects persisted in
//! SQLite ([`KeyStore`]), operations answered in [`ops`].
//!
//! It is a development and test server, not an HSM: the keys sit in a file on the same
//! disk as whatever they protect.
//!
//! [`serve`] follows mini-redis's `run(listener, shutdown)`: the caller binds the
//! listener (a test binds `127.0.0.1:0`) and passes a future that completes when the
//! server should stop; `serve` then stops accepting, lets open connections finish the
//! message they are processing, and returns. Bounds: at most
//! [`ServerOptions::max_connections`] connections at once (further ones wait in the
//! listen backlog), [`ServerOptions::read_timeout`] for a TLS handshake and for each
//! message to arrive, [`ServerOptions::limits`] on each message's size and depth.
//!
//! Each connection's owner is the Common Name of its verified client certificate
//! ([`crate::tls::peer_common_name`]); objects belong to the owner that created them and
//! are invisible to others (an operation on another owner's object answers Item Not
//! Found, as for a missing one).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::path::Path::new("./headlock-data");
//! let pki = kmip::pki::ensure_pki(&dir.join("kmip"))?;
//! let tls = kmip::tls::server_config(&pki.ca_cert, &pki.server_cert, &pki.server_key)?;
//! let store = kmip::server::KeyStore::open_in(dir).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5696").await?;
//! kmip::server::serve(listener, tls, store, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(()) }
//! ```

pub mod ops;
pub mod store;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::framing;
use crate::ttlv::Limits;

pub use store::{KeyStore, LocateFilter, StoredObject};

/// Bounds of a running server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Most connections served at once (default 256).
    pub max_connections: usize,
    /// Time allowed for the TLS handshake and for each request message to arrive
    /// completely, including the wait for its first byte (default 60 s): an idle
    /// connection is closed after this long.
    pub read_timeout: Duration,
    /// Time allowed to write a response (default 30 s).
    pub write_timeout: Duration,
    /// Size and depth bounds on request messages (default 1 MiB, depth 16).
    pub limits: Limits,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 256,
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            limits: Limits::default(),
        }
    }
}

/// Serves KMIP on `listener` with [`ServerOptions::default`] until `shutdown`
/// completes. See the module docs.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    store: KeyStore,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_with(listener, tls, store, ServerOptions::default(), shutdown).await
}

/// [`serve`] with explicit bounds.
pub async fn serve_with(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    store: KeyStore,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let handler = Arc::new(ops::Handler::new(store));
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let options = Arc::new(options);
    tokio::pin!(shutdown);

    let result = loop {
        // Wait for a free slot first, so at most `max_connections` are served and the
        // rest wait in the kernel's backlog.
        let permit = tokio::select! {
            _ = &mut shutdown => break Ok(()),
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break Ok(()),
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if is_transient_accept_error(&e) => {
                    tracing::warn!(error = %e, "kmip server: accept failed, continuing");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => break Err(e),
            },
        };
        // Reap finished connection tasks so the set does not grow without bound.
        while tasks.try_join_next().is_some() {}
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        let options = options.clone();
        let stop = stop_rx.clone();
        tasks.spawn(async move {
            let _permit = permit;
            if let Err(e) = connection(stream, acceptor, handler, &options, stop).await {
                tracing::debug!(%peer, error = %e, "kmip server: connection ended with an error");
            }
        });
    };

    // Stop: tell connections to finish the message in hand and close, then wait.
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    result
}

fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || e.raw_os_error() == Some(24) // EMFILE: wait for a descriptor to be freed
        || e.raw_os_error() == Some(23) // ENFILE
}

/// One client connection: TLS handshake, owner from the client certificate, then
/// request/response until the peer closes, a timeout, a framing error or shutdown.
async fn connection(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    handler: Arc<ops::Handler>,
    options: &ServerOptions,
    mut stop: watch::Receiver<bool>,
) -> Result<(), crate::error::Error> {
    let _ = stream.set_nodelay(true);
    let mut tls = match tokio::time::timeout(options.read_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return Err(crate::error::Error::io("in the TLS handshake", e)),
        Err(_) => {
            return Err(crate::error::Error::io(
                "in the TLS handshake",
                io::Error::new(io::ErrorKind::TimedOut, "handshake timed out"),
            ));
        }
    };
    let owner = {
        let (_, conn) = tls.get_ref();
        match conn.peer_certificates().and_then(|c| c.first()) {
            Some(cert) => crate::tls::peer_common_name(cert)
                .unwrap_or_else(|| format!("sha256:{}", hex::encode(sha256(cert.as_ref())))),
            // Unreachable with a verifier that requires certificates; refuse anyway.
            None => return Ok(()),
        }
    };
    loop {
        let read = framing::read_message(&mut tls, options.limits.max_message_bytes);
        let message = tokio::select! {
            _ = stop.changed() => return Ok(()),
            r = tokio::time::timeout(options.read_timeout, read) => match r {
                Err(_) => return Ok(()), // idle or slow peer: close
                Ok(Ok(None)) => return Ok(()),
                Ok(Ok(Some(m))) => m,
                Ok(Err(e)) => {
                    // A message we cannot even frame: answer once if we can, then close
                    // (the stream position is lost).
                    let response = handler.framing_error(&e);
                    let _ = tokio::time::timeout(
                        options.write_timeout,
                        framing::write_message(&mut tls, &response),
                    )
                    .await;
                    return Err(e);
                }
            },
        };
        let response = handler.handle(&message, &owner, &options.limits).await;
        match tokio::time::timeout(
            options.write_timeout,
            framing::write_message(&mut tls, &response),
        )
        .await
        {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        }
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}
