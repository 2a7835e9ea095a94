//! The embedded KMIP server (`kmip-server`) started in-process for a test: its own
//! loopback port, temporary directory and PKI ([`Embedded`]), client configurations
//! pointing at it ([`client_config`], [`Embedded::client`]), a proxy in front of it
//! that plays another server ([`proxy`]), and an address where nothing listens
//! ([`refused_address`]). The one harness for every crate's tests
//! (kmip-server's, the API's ops tests, the binary's) and the benchmarks.
//!
//! ```no_run
//! # async fn demo() {
//! let server = testkit::kmip::Embedded::start().await;
//! let uid = server
//!     .client()
//!     .create_symmetric_key(
//!         kmip::types::CryptographicAlgorithm::AES,
//!         256,
//!         kmip::types::CryptographicUsageMask::ENCRYPT,
//!         None,
//!     )
//!     .await
//!     .unwrap();
//! # }
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kmip::client::{Client, ClientConfig};
use kmip_server::pki::PkiPaths;
use kmip_server::{KeyStore, ServerOptions};
use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An embedded server running in this process; stopped on drop.
pub struct Embedded {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its certificates (in `data_dir/pki`).
    pub pki: PkiPaths,
    /// Its key store's directory.
    pub data_dir: PathBuf,
    dir: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Embedded {
    /// A server with a fresh PKI and store in a new temporary directory.
    pub async fn start() -> Embedded {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Embedded::start_in(dir.path(), "127.0.0.1:0").await;
        server.dir = Some(dir);
        server
    }

    /// A server on `bind` with PKI and store in `data_dir` (reused if present).
    pub async fn start_in(data_dir: &Path, bind: &str) -> Embedded {
        let pki = kmip_server::pki::ensure_pki(&data_dir.join("pki")).unwrap();
        let tls =
            kmip::tls::server_config(&pki.ca_cert, &pki.server_cert, &pki.server_key).unwrap();
        let store = KeyStore::open_in(data_dir).await.unwrap();
        let listener = TcpListener::bind(bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let options = ServerOptions {
            read_timeout: Duration::from_secs(20),
            ..ServerOptions::default()
        };
        let task = tokio::spawn(kmip_server::serve_with(
            listener,
            tls,
            store,
            options,
            async move {
                let _ = stopped.await;
            },
        ));
        Embedded {
            addr,
            pki,
            data_dir: data_dir.to_path_buf(),
            dir: None,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn server(&self) -> String {
        self.addr.to_string()
    }

    /// A client configuration with the default client certificate, this server only.
    pub fn client_config(&self) -> ClientConfig {
        client_config(&self.pki, vec![self.server()])
    }

    /// A client of this server with the default client certificate.
    pub fn client(&self) -> Client {
        Client::new(self.client_config()).unwrap()
    }

    /// A raw mutual-TLS connection with the default client certificate, for requests
    /// the typed client never sends (malformed input, replayed conversations).
    pub async fn raw_connection(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        raw_connection(&self.pki, self.addr).await
    }

    /// Stops the server and waits until it has returned (the store stays on disk).
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Takes the temporary directory so it outlives this server (for a restart).
    pub fn keep_dir(&mut self) -> Option<tempfile::TempDir> {
        self.dir.take()
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A raw mutual-TLS connection to `addr` (a server of `pki`, on 127.0.0.1) with the
/// PKI's client certificate.
pub async fn raw_connection(
    pki: &PkiPaths,
    addr: SocketAddr,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let config = kmip::tls::client_config(&pki.ca_cert, &pki.client_cert, &pki.client_key).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap()
}

/// A mutual-TLS connection from a [`proxy`] to the server behind it.
pub type Upstream = tokio_rustls::client::TlsStream<TcpStream>;

/// A mutual-TLS proxy in front of `server` (with the server's certificates), for tests
/// that play another KMIP server: each request message a client sends goes to `answer`
/// with the proxy's own connection to `server` (which it may [`forward`] to, as it is
/// or changed, or not at all), and what `answer` returns is the client's answer. Its
/// address.
pub async fn proxy<F, Fut>(server: &Embedded, answer: F) -> SocketAddr
where
    F: Fn(Vec<u8>, Upstream) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = (Vec<u8>, Upstream)> + Send,
{
    let pki = server.pki.clone();
    let upstream = server.addr;
    let tls = kmip::tls::server_config(&pki.ca_cert, &pki.server_cert, &pki.server_key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, pki, answer) = (acceptor.clone(), pki.clone(), answer.clone());
            tokio::spawn(async move {
                let mut client = acceptor.accept(tcp).await.unwrap();
                let mut server = raw_connection(&pki, upstream).await;
                while let Ok(Some(request)) =
                    kmip::framing::read_message(&mut client, 1 << 20).await
                {
                    let (bytes, back) = answer(request, server).await;
                    server = back;
                    kmip::framing::write_message(&mut client, &bytes)
                        .await
                        .unwrap();
                }
            });
        }
    });
    addr
}

/// Sends `request` on a [`proxy`]'s connection to its server; the answer's bytes.
pub async fn forward(server: &mut Upstream, request: &[u8]) -> Vec<u8> {
    kmip::framing::write_message(server, request).await.unwrap();
    kmip::framing::read_message(server, 1 << 20)
        .await
        .unwrap()
        .unwrap()
}

/// A client configuration with short timeouts for `servers`, using the PKI's client
/// certificate.
pub fn client_config(pki: &PkiPaths, servers: Vec<String>) -> ClientConfig {
    let mut config = ClientConfig::new(
        servers,
        pki.ca_cert.clone(),
        pki.client_cert.clone(),
        pki.client_key.clone(),
    );
    config.connect_timeout = Duration::from_secs(5);
    config.io_timeout = Duration::from_secs(20);
    config.max_retries = 1;
    config
}

/// A loopback address where nothing listens (a port bound, then released).
pub fn refused_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr.to_string()
}

impl From<&PkiPaths> for crate::TlsFiles {
    /// The files of a PKI set, as PyKMIP's server configuration names them.
    fn from(pki: &PkiPaths) -> Self {
        crate::TlsFiles {
            ca_cert: pki.ca_cert.clone(),
            server_cert: pki.server_cert.clone(),
            server_key: pki.server_key.clone(),
            client_cert: pki.client_cert.clone(),
            client_key: pki.client_key.clone(),
        }
    }
}
