//! Mutual TLS is enforced: the embedded server refuses a client without a certificate
//! and a client whose certificate comes from another CA (over TLS 1.2 and 1.3), and our
//! client refuses a server it cannot verify. Real sockets, real handshakes.

use std::sync::Arc;

use kmip::client::Client;
use kmip::error::Error;
use kmip::framing;
use kmip::message::{
    DiscoverVersionsRequest, RequestBatchItem, RequestMessage, RequestPayload, ResponseMessage,
};
use kmip::ttlv::Limits;
use kmip::types::{Operation, ProtocolVersion};
use rustls::pki_types::ServerName;
use testkit::kmip::{Embedded, client_config};
use tokio::net::TcpStream;

fn discover_versions() -> Vec<u8> {
    RequestMessage::new(
        ProtocolVersion::V1_2,
        vec![RequestBatchItem::new(
            Operation::DISCOVER_VERSIONS,
            RequestPayload::DiscoverVersions(DiscoverVersionsRequest::default()),
        )],
    )
    .encode()
}

/// A client TLS configuration trusting `ca`, presenting `client` (cert, key) if given,
/// limited to one TLS version.
fn config(
    ca: &std::path::Path,
    client: Option<(&std::path::Path, &std::path::Path)>,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in kmip::tls::load_certs(ca).unwrap() {
        roots.add(cert).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(kmip::tls::provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                kmip::tls::load_certs(cert).unwrap(),
                kmip::tls::load_key(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    })
}

/// Connects with `config` and tries one Discover Versions. Returns the error that ended
/// the exchange, or panics if the server answered.
async fn refused(server: &Embedded, config: Arc<rustls::ClientConfig>) -> String {
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(config);
    let mut tls = match connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
    {
        // TLS 1.2: the server's refusal ends the handshake itself.
        Err(e) => return e.to_string(),
        Ok(tls) => tls,
    };
    // TLS 1.3: the client's handshake completes before the server has judged the
    // client's certificate; the refusal arrives as an alert on the first read.
    if let Err(e) = framing::write_message(&mut tls, &discover_versions()).await {
        return e.to_string();
    }
    match framing::read_message(&mut tls, 1 << 20).await {
        Err(e) => e.to_string(),
        Ok(None) => "connection closed".into(),
        Ok(Some(bytes)) => panic!(
            "server answered an unauthenticated client: {:?}",
            ResponseMessage::decode(&bytes, &Limits::default())
        ),
    }
}

const VERSIONS: [&rustls::SupportedProtocolVersion; 2] =
    [&rustls::version::TLS12, &rustls::version::TLS13];

#[tokio::test]
async fn accepts_client_with_certificate_from_the_ca() {
    let server = Embedded::start().await;
    for version in VERSIONS {
        let pki = &server.pki;
        let cfg = config(
            &pki.ca_cert,
            Some((&pki.client_cert, &pki.client_key)),
            version,
        );
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        framing::write_message(&mut tls, &discover_versions())
            .await
            .unwrap();
        let bytes = framing::read_message(&mut tls, 1 << 20)
            .await
            .unwrap()
            .unwrap();
        let response = ResponseMessage::decode(&bytes, &Limits::default()).unwrap();
        assert_eq!(response.items.len(), 1, "{version:?}");
    }
}

#[tokio::test]
async fn rejects_client_without_certificate() {
    let server = Embedded::start().await;
    for version in VERSIONS {
        let why = refused(&server, config(&server.pki.ca_cert, None, version)).await;
        assert!(
            why.contains("CertificateRequired")
                || why.contains("HandshakeFailure")
                || why.contains("closed")
                || why.contains("reset")
                || why.contains("eof"),
            "{version:?}: {why}"
        );
    }
}

#[tokio::test]
async fn rejects_client_certificate_from_another_ca() {
    let server = Embedded::start().await;
    let other_dir = tempfile::tempdir().unwrap();
    // Same client CN as the real one: only the issuing CA differs.
    let other =
        kmip_server::pki::generate(other_dir.path(), kmip_server::pki::DEFAULT_CLIENT_CN).unwrap();
    for version in VERSIONS {
        let cfg = config(
            &server.pki.ca_cert,
            Some((&other.client_cert, &other.client_key)),
            version,
        );
        let why = refused(&server, cfg).await;
        assert!(
            why.contains("UnknownCA")
                || why.contains("BadCertificate")
                || why.contains("DecryptError")
                || why.contains("closed")
                || why.contains("reset")
                || why.contains("eof"),
            "{version:?}: {why}"
        );
    }
    // And through our client: the failure is reported for that server.
    let mut cfg = client_config(&server.pki, vec![server.server()]);
    cfg.client_cert_file = other.client_cert.clone();
    cfg.client_key_file = other.client_key.clone();
    cfg.max_retries = 0;
    let err = Client::new(cfg).unwrap().query().await.unwrap_err();
    let Error::AllServersFailed { attempts, .. } = &err else {
        panic!("expected AllServersFailed, got {err:?}")
    };
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].0, server.server());
}

#[tokio::test]
async fn rejects_server_certificate_from_another_ca() {
    let server = Embedded::start().await;
    let other_dir = tempfile::tempdir().unwrap();
    let other = kmip_server::pki::generate(other_dir.path(), "headlock").unwrap();
    // The client trusts only the other CA; its own certificate is valid for the server.
    let mut cfg = client_config(&server.pki, vec![server.server()]);
    cfg.ca_file = other.ca_cert.clone();
    cfg.max_retries = 0;
    let err = Client::new(cfg)
        .unwrap()
        .discover_versions()
        .await
        .unwrap_err();
    let Error::AllServersFailed { attempts, .. } = &err else {
        panic!("expected AllServersFailed, got {err:?}")
    };
    assert!(attempts[0].1.contains("TLS handshake"), "{}", attempts[0].1);
    assert!(
        attempts[0].1.contains("invalid peer certificate"),
        "{}",
        attempts[0].1
    );
}

#[tokio::test]
async fn rejects_server_name_not_in_certificate() {
    let server = Embedded::start().await;
    let mut cfg = client_config(&server.pki, vec![server.server()]);
    cfg.server_name = Some("kmip.example.com".into());
    cfg.max_retries = 0;
    let err = Client::new(cfg).unwrap().query().await.unwrap_err();
    let Error::AllServersFailed { attempts, .. } = &err else {
        panic!("expected AllServersFailed, got {err:?}")
    };
    assert!(
        attempts[0].1.contains("not valid for name"),
        "{}",
        attempts[0].1
    );
    // "localhost" is in the certificate.
    let mut cfg = client_config(&server.pki, vec![server.server()]);
    cfg.server_name = Some("localhost".into());
    Client::new(cfg).unwrap().query().await.unwrap();
}
