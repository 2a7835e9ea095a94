//! Probes of one server at a time (for health checks) and the server named by a Create
//! after failover, against the embedded server over real loopback mutual TLS.

use std::time::Duration;

use kmip::client::Client;
use kmip::error::Error;
use kmip::types::{CryptographicAlgorithm, CryptographicUsageMask, Operation};
use testkit::kmip::{Embedded, client_config, refused_address};

const LIMIT: Duration = Duration::from_secs(5);

const AES_USAGE: CryptographicUsageMask =
    CryptographicUsageMask(CryptographicUsageMask::ENCRYPT.0 | CryptographicUsageMask::DECRYPT.0);

#[tokio::test]
async fn accepts_probe_of_a_running_server_on_a_fresh_connection() {
    let server = Embedded::start().await;
    let client = server.client();
    client.probe(0, LIMIT).await.unwrap();
    // The probe's connection is its own: nothing was pooled for the operations.
    assert_eq!(client.negotiated_version().await, None);
    // And a pooled connection is left alone by a probe.
    client.query().await.unwrap();
    let before = client.negotiated_version().await;
    assert!(before.is_some());
    client.probe(0, LIMIT).await.unwrap();
    assert_eq!(client.negotiated_version().await, before);
    client.query().await.unwrap();
}

#[tokio::test]
async fn rejects_probe_of_a_stopped_server() {
    let mut server = Embedded::start().await;
    let client = server.client();
    client.probe(0, LIMIT).await.unwrap();
    server.stop().await;
    let err = client.probe(0, LIMIT).await.unwrap_err();
    match &err {
        Error::Connect { server: s, .. } => assert_eq!(s, &server.server()),
        other => panic!("expected a connection error, got {other}"),
    }
}

#[tokio::test]
async fn rejects_probe_of_one_server_without_failing_over_to_the_next() {
    let server = Embedded::start().await;
    let down = refused_address();
    let client = Client::new(client_config(
        &server.pki,
        vec![down.clone(), server.server()],
    ))
    .unwrap();
    assert_eq!(
        client.servers().collect::<Vec<_>>(),
        vec![down.as_str(), server.server().as_str()]
    );
    let err = client.probe(0, LIMIT).await.unwrap_err();
    assert!(
        matches!(&err, Error::Connect { server: s, .. } if *s == down),
        "{err}"
    );
    client.probe(1, LIMIT).await.unwrap();
}

#[tokio::test]
async fn rejects_probe_of_a_server_index_not_configured() {
    let server = Embedded::start().await;
    let err = server.client().probe(1, LIMIT).await.unwrap_err();
    assert!(
        err.to_string().contains("no KMIP server at index 1"),
        "{err}"
    );
}

#[tokio::test]
async fn rejects_probe_of_a_silent_server_within_its_limit() {
    // A server that accepts TCP connections and never says anything (a hung process):
    // the probe ends at its own limit, not at the client's connect timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = listener.local_addr().unwrap().to_string();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let server = Embedded::start().await;
    let mut config = client_config(&server.pki, vec![silent.clone()]);
    config.connect_timeout = Duration::from_secs(600);
    let client = Client::new(config).unwrap();
    let limit = Duration::from_millis(300);
    let err = client.probe(0, limit).await.unwrap_err();
    match &err {
        Error::Timeout {
            server: s,
            operation,
            after,
        } => {
            assert_eq!(s, &silent);
            assert_eq!(*operation, Operation::DISCOVER_VERSIONS);
            assert_eq!(*after, limit);
        }
        other => panic!("expected a timeout, got {other}"),
    }
    holder.abort();
}

#[tokio::test]
async fn accepts_create_naming_the_server_that_created_the_key_after_failover() {
    let server = Embedded::start().await;
    let down = refused_address();
    let client = Client::new(client_config(
        &server.pki,
        vec![down.clone(), server.server()],
    ))
    .unwrap();
    let created = client
        .create_symmetric_key_served(CryptographicAlgorithm::AES, 256, AES_USAGE, Some("fo"))
        .await
        .unwrap();
    assert_eq!(created.server, server.server());
    assert_ne!(created.server, down);
    // The key is really there, on that server.
    let only_good = Client::new(client_config(&server.pki, vec![server.server()])).unwrap();
    assert_eq!(
        only_good.locate(Some("fo"), None, None).await.unwrap(),
        vec![created.value.clone()]
    );
}

#[tokio::test]
async fn accepts_create_naming_the_first_server_when_it_answers() {
    let server = Embedded::start().await;
    let other = Embedded::start().await;
    let client = Client::new(client_config(
        &server.pki,
        vec![server.server(), other.server()],
    ))
    .unwrap();
    let created = client
        .create_symmetric_key_served(CryptographicAlgorithm::AES, 256, AES_USAGE, None)
        .await
        .unwrap();
    assert_eq!(created.server, server.server());
}
