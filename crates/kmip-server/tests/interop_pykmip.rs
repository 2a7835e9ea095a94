//! Interoperability with PyKMIP 0.11, as real processes: our client against a PyKMIP
//! server, and PyKMIP's `ProxyKmipClient` against our embedded server. The PyKMIP
//! virtual environment is created by `scripts/pykmip-env.sh` (through testkit) on first
//! use, so `cargo test` alone works on a machine with python3 and PyPI access.

use kmip::attribute::Attribute;
use kmip::client::Client;
use kmip::error::Error;
use kmip::types::{
    CryptographicAlgorithm, CryptographicUsageMask, ObjectType, Operation, ProtocolVersion,
    ResultReason, RevocationReasonCode, State,
};
use testkit::PyKmipServer;
use testkit::kmip::{Embedded, client_config};

/// Starts a PyKMIP server with a fresh PKI (blocking work off the runtime).
async fn start_pykmip() -> (PyKmipServer, kmip_server::pki::PkiPaths, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let pki = kmip_server::pki::ensure_pki(dir.path()).unwrap();
    let files = testkit::TlsFiles::from(&pki);
    let server = tokio::task::spawn_blocking(move || PyKmipServer::start(&files))
        .await
        .unwrap()
        .unwrap();
    (server, pki, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_our_client_against_pykmip_server() {
    let (server, pki, _dir) = start_pykmip().await;
    // Default negotiation (we offer 2.1 first; PyKMIP 0.11 offers 2.0 down to 1.0, so
    // 2.0 is agreed), then KMIP 1.2 only, as mongod speaks.
    for (versions, agreed) in [
        (
            kmip::client::CLIENT_VERSIONS.to_vec(),
            ProtocolVersion::V2_0,
        ),
        (vec![ProtocolVersion::V1_2], ProtocolVersion::V1_2),
    ] {
        let mut config = client_config(&pki, vec![server.addr()]);
        config.protocol_versions = versions;
        lifecycle_against(&server, Client::new(config).unwrap(), agreed).await;
    }
}

async fn lifecycle_against(server: &PyKmipServer, client: Client, expected: ProtocolVersion) {
    let versions = client.discover_versions().await.unwrap();
    assert!(versions.contains(&ProtocolVersion::V1_2), "{versions:?}");
    assert_eq!(client.negotiated_version().await, Some(expected));

    let name = &format!("headlock-interop-{expected}");
    let usage = CryptographicUsageMask::ENCRYPT | CryptographicUsageMask::DECRYPT;
    let uid = client
        .create_symmetric_key(CryptographicAlgorithm::AES, 256, usage, Some(name.as_str()))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log_tail(3000)));
    client.activate(&uid).await.unwrap();

    let key = client.get_symmetric_key(&uid).await.unwrap();
    assert_eq!(key.key.len(), 32);
    assert_eq!(key.algorithm, Some(CryptographicAlgorithm::AES));
    assert_eq!(key.length, Some(256));

    let attrs = client
        .get_attributes(
            &uid,
            &["State", "Cryptographic Algorithm", "Cryptographic Length"],
        )
        .await
        .unwrap();
    assert!(
        attrs.contains(&Attribute::State(State::ACTIVE)),
        "{attrs:?}"
    );
    assert!(attrs.contains(&Attribute::CryptographicAlgorithm(
        CryptographicAlgorithm::AES
    )));
    assert!(attrs.contains(&Attribute::CryptographicLength(256)));
    assert_eq!(client.get_state(&uid).await.unwrap(), State::ACTIVE);

    let found = client
        .locate(Some(name.as_str()), None, None)
        .await
        .unwrap();
    assert_eq!(found, vec![uid.clone()]);
    let found = client
        .locate(Some(name.as_str()), Some(ObjectType::SYMMETRIC_KEY), None)
        .await
        .unwrap();
    assert_eq!(found, vec![uid.clone()]);

    client
        .revoke(
            &uid,
            RevocationReasonCode::CESSATION_OF_OPERATION,
            Some("rotated"),
        )
        .await
        .unwrap();
    assert_eq!(client.get_state(&uid).await.unwrap(), State::DEACTIVATED);
    client.destroy(&uid).await.unwrap();

    let err = client.get_symmetric_key(&uid).await.unwrap_err();
    match &err {
        Error::ServerReported {
            server: s,
            operation,
            reason,
            message,
        } => {
            assert_eq!(s, &server.addr());
            assert_eq!(*operation, Operation::GET);
            assert_eq!(*reason, ResultReason::ITEM_NOT_FOUND);
            assert!(message.is_some());
        }
        other => panic!("expected ServerReported(ItemNotFound), got {other:?}"),
    }
    assert!(!err.is_transient());

    // Create, Activate and Get in one batch (the ID Placeholder), as rotations make keys.
    let batched = client
        .create_active_symmetric_key(
            CryptographicAlgorithm::AES,
            256,
            usage,
            Some(&format!("{name}-batched")),
        )
        .await
        .unwrap();
    let material = batched.material.unwrap();
    assert_eq!(client.get_state(&batched.uid).await.unwrap(), State::ACTIVE);
    assert_eq!(
        client.get_symmetric_key(&batched.uid).await.unwrap().key,
        material.key
    );
    assert_eq!(batched.server, server.addr());
    assert!(batched.other.is_none());

    // As a rotation makes its key: with the Get of the key it replaces, which PyKMIP
    // answers in the Activate + Get message (it refused the placeholder batch above).
    let rotated = client
        .create_active_symmetric_key_and_get(
            CryptographicAlgorithm::AES,
            256,
            usage,
            Some(&format!("{name}-rotated")),
            Some(&batched.uid),
        )
        .await
        .unwrap();
    assert_eq!(client.get_state(&rotated.uid).await.unwrap(), State::ACTIVE);
    assert_eq!(rotated.other.unwrap().key, material.key);

    // A key never activated (a key change stopped between Create and Activate): a
    // Revoke for a reason other than compromise is refused, a Destroy accepted (KMIP's
    // Pre-Active -> Destroyed transition); PyKMIP then forgets the key.
    let orphan = client
        .create_symmetric_key(CryptographicAlgorithm::AES, 256, usage, Some("orphan"))
        .await
        .unwrap();
    assert_eq!(client.get_state(&orphan).await.unwrap(), State::PRE_ACTIVE);
    let refused = client
        .revoke(&orphan, RevocationReasonCode::CESSATION_OF_OPERATION, None)
        .await
        .unwrap_err();
    assert!(refused.result_reason().is_some(), "{refused}");
    client.destroy(&orphan).await.unwrap();
    let gone = client.get_state(&orphan).await.unwrap_err();
    assert_eq!(
        gone.result_reason(),
        Some(ResultReason::ITEM_NOT_FOUND),
        "{gone}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_rekey_fallback_against_pykmip_server() {
    let (server, pki, _dir) = start_pykmip().await;
    let client = Client::new(client_config(&pki, vec![server.addr()])).unwrap();
    let usage = CryptographicUsageMask::ENCRYPT | CryptographicUsageMask::DECRYPT;
    let old = client
        .create_symmetric_key(CryptographicAlgorithm::AES, 256, usage, Some("rekey-me"))
        .await
        .unwrap();
    client.activate(&old).await.unwrap();
    // PyKMIP has no ReKey: the client falls back to Create (+ link) and Activate.
    let new = client.rekey(&old).await.unwrap();
    assert_ne!(new, old);
    assert_eq!(client.get_state(&new).await.unwrap(), State::ACTIVE);
    let key = client.get_symmetric_key(&new).await.unwrap();
    assert_eq!((key.key.len(), key.length), (32, Some(256)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_reconnect_after_pykmip_restart() {
    let (mut server, pki, _dir) = start_pykmip().await;
    let client = Client::new(client_config(&pki, vec![server.addr()])).unwrap();
    let usage = CryptographicUsageMask::ENCRYPT | CryptographicUsageMask::DECRYPT;
    let uid = client
        .create_symmetric_key(CryptographicAlgorithm::AES, 256, usage, None)
        .await
        .unwrap();
    let server = tokio::task::spawn_blocking(move || {
        server.stop();
        server
    })
    .await
    .unwrap();
    // Down: a Get fails over the (single) server and reports every attempt.
    let err = client.get_state(&uid).await.unwrap_err();
    assert!(matches!(err, Error::AllServersFailed { .. }), "{err:?}");
    let server = tokio::task::spawn_blocking(move || {
        let mut server = server;
        server.restart().unwrap();
        server
    })
    .await
    .unwrap();
    // Up again, same database: the client reconnects by itself.
    assert_eq!(client.get_state(&uid).await.unwrap(), State::PRE_ACTIVE);
    drop(server);
}

/// PyKMIP's own client, driven by a Python script that asserts each step.
const PYKMIP_CLIENT_SCRIPT: &str = r#"
import sys
from kmip.pie.client import ProxyKmipClient
from kmip.pie import exceptions
from kmip import enums

host, port, ca, cert, key, version = sys.argv[1:7]
kmip_version = {
    "1.2": enums.KMIPVersion.KMIP_1_2,
    "1.4": enums.KMIPVersion.KMIP_1_4,
    "2.0": enums.KMIPVersion.KMIP_2_0,
}[version]
c = ProxyKmipClient(
    hostname=host, port=int(port), cert=cert, key=key, ca=ca,
    ssl_version="PROTOCOL_TLSv1_2", config_file="/dev/null", kmip_version=kmip_version,
)
c.open()
name = "pykmip-interop-" + version
uid = c.create(enums.CryptographicAlgorithm.AES, 256, name=name)
assert isinstance(uid, str) and uid, uid
c.activate(uid)
k = c.get(uid)
assert len(k.value) == 32, len(k.value)
assert k.cryptographic_algorithm == enums.CryptographicAlgorithm.AES, k.cryptographic_algorithm
assert k.cryptographic_length == 256, k.cryptographic_length
got_uid, attrs = c.get_attributes(uid, ["State", "Cryptographic Algorithm", "Cryptographic Length"])
assert got_uid == uid, got_uid
values = {a.attribute_name.value: a.attribute_value.value for a in attrs}
assert values["State"] == enums.State.ACTIVE, values
assert values["Cryptographic Algorithm"] == enums.CryptographicAlgorithm.AES, values
assert values["Cryptographic Length"] == 256, values
found = c.locate(attributes=[c.attribute_factory.create_attribute(enums.AttributeType.NAME, name)])
assert found == [uid], found
c.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, uid)
c.destroy(uid)
try:
    c.get(uid)
    raise AssertionError("Get of a destroyed key succeeded")
except exceptions.KmipOperationFailure as e:
    assert e.reason == enums.ResultReason.ITEM_NOT_FOUND, e.reason
    assert e.message, "no Result Message"
c.close()
print("PYKMIP-CLIENT-OK", version)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_pykmip_client_against_embedded_server() {
    let server = Embedded::start().await;
    for version in ["1.2", "1.4", "2.0"] {
        let port = server.addr.port().to_string();
        let pki = server.pki.clone();
        let version_arg = version.to_string();
        let out = tokio::task::spawn_blocking(move || {
            testkit::run_python(
                PYKMIP_CLIENT_SCRIPT,
                &[
                    "127.0.0.1",
                    &port,
                    pki.ca_cert.to_str().unwrap(),
                    pki.client_cert.to_str().unwrap(),
                    pki.client_key.to_str().unwrap(),
                    &version_arg,
                ],
            )
        })
        .await
        .unwrap()
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("PYKMIP-CLIENT-OK"),
            "KMIP {version}: status {}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The objects belong to the CN of PyKMIP's certificate, which is ours here too.
    // Destroyed objects are found only by asking for that state.
    let client = server.client();
    assert!(
        client
            .locate(Some("pykmip-interop-1.2"), None, None)
            .await
            .unwrap()
            .is_empty()
    );
    let leftover = client
        .locate(Some("pykmip-interop-1.2"), None, Some(State::DESTROYED))
        .await
        .unwrap();
    assert_eq!(leftover.len(), 1);
    assert_eq!(
        client.get_state(&leftover[0]).await.unwrap(),
        State::DESTROYED
    );
}
