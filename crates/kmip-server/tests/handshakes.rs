//! Connections that never finish a TLS handshake (anyone who can reach the port, with
//! no certificate) cannot starve the clients that hold one: over the per-source or the
//! total bound on pending handshakes, the oldest pending connections are closed, and a
//! certified client is served however many idle connections were opened before it.

use std::net::SocketAddr;
use std::time::Duration;

use kmip::client::Client;
use kmip_server::ServerOptions;
use kmip_server::pki::PkiPaths;
use testkit::kmip::client_config;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

/// A server with `options` on 127.0.0.1, its certificates, and what stops it.
async fn start(
    dir: &std::path::Path,
    options: ServerOptions,
) -> (SocketAddr, PkiPaths, tokio::sync::oneshot::Sender<()>) {
    let pki = kmip_server::pki::ensure_pki(dir).unwrap();
    let tls = kmip::tls::server_config(&pki.ca_cert, &pki.server_cert, &pki.server_key).unwrap();
    let store = kmip_server::KeyStore::open_in(dir).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(kmip_server::serve_with(
        listener,
        tls,
        store,
        options,
        async {
            let _ = stopped.await;
        },
    ));
    (addr, pki, stop)
}

/// Bounds whose handshake deadline never ends a test's idle connections: only the
/// bounds on their number close them.
fn options(per_source: usize, total: usize) -> ServerOptions {
    ServerOptions {
        handshake_timeout: Duration::from_secs(300),
        max_handshakes: total,
        max_handshakes_per_source: per_source,
        ..ServerOptions::default()
    }
}

/// A TCP connection to `server` from `source` that sends nothing.
async fn idle_from(source: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    socket.connect(server).await.unwrap()
}

/// A certified client's request goes through.
async fn certified_client_is_served(pki: &PkiPaths, server: SocketAddr) {
    let mut config = client_config(pki, vec![server.to_string()]);
    config.max_retries = 0;
    let client = Client::new(config).unwrap();
    let versions = client.discover_versions().await.unwrap();
    assert!(!versions.is_empty());
}

/// Waits until the server closes `stream` (EOF or reset); panics if it is still open
/// after a minute (the first two tests' handshake deadline is five).
async fn closed_by_server(stream: &mut TcpStream) {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(60), stream.read(&mut byte)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(_)) => panic!("the server sent bytes to a client that sent none"),
        Err(_) => panic!("a connection over the bound was left open"),
    }
}

/// Whether the server still holds `stream` open (nothing to read, no EOF).
fn still_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_certified_client_after_256_idle_connections_from_its_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pki, _stop) = start(dir.path(), options(16, 64)).await;
    let mut idle = Vec::new();
    for _ in 0..256 {
        idle.push(idle_from("127.0.0.1", server).await);
    }

    certified_client_is_served(&pki, server).await;

    // The server accepted them in order, each newcomer closing the oldest of the
    // source: all but the newest 16 are closed (the client took one more place).
    let (closed, open) = idle.split_at_mut(256 - 15);
    for stream in closed.iter_mut() {
        closed_by_server(stream).await;
    }
    assert!(open.iter().all(still_open), "the newest are still pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounds_pending_handshakes_in_all_across_sources() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pki, _stop) = start(dir.path(), options(8, 16)).await;
    let mut idle = Vec::new();
    for host in 2..=9 {
        for _ in 0..8 {
            idle.push(idle_from(&format!("127.0.0.{host}"), server).await);
        }
    }

    certified_client_is_served(&pki, server).await;

    // 64 pending from 8 sources, none over its own bound: the oldest 48 are closed by
    // the total bound, then the oldest of the newest 16 by the client's arrival.
    let (closed, open) = idle.split_at_mut(64 - 15);
    for stream in closed.iter_mut() {
        closed_by_server(stream).await;
    }
    assert!(open.iter().all(still_open), "the newest are still pending");
}

#[tokio::test]
async fn closes_a_connection_that_does_not_finish_its_handshake_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let options = ServerOptions {
        handshake_timeout: Duration::from_millis(200),
        ..ServerOptions::default()
    };
    let (server, _pki, _stop) = start(dir.path(), options).await;
    let mut idle = idle_from("127.0.0.1", server).await;
    closed_by_server(&mut idle).await;
}
