//! Interoperability with a second independent KMIP server, Cosmian KMS (Rust; its KMIP
//! socket server over mutual TLS), as real processes. Too slow to build in the test
//! suite: `scripts/interop.sh` builds it once into a cache and runs these tests with
//! `HEADLOCK_COSMIAN_KMS` naming its binary. Without that variable they fail (they are
//! `#[ignore]`d in `cargo test`, so only an explicit `--ignored` run reaches them).
//!
//! - our KMIP client's whole key lifecycle against Cosmian (versions, Create, Activate,
//!   Get, Get Attributes, Locate, Revoke, Destroy, the Pre-Active orphan);
//! - `headlock serve` rotating through Cosmian, every snapshot restoring byte for byte,
//!   and the keys' states read back by our own client (a check independent of PyKMIP);
//! - failover between Cosmian and the embedded KMIP server (`headlock kmip-server`):
//!   with Cosmian down, a new cluster's key is created in the embedded server (and the
//!   API says where), the cluster whose key lives in Cosmian answers 503, and both work
//!   once Cosmian is back.

mod common;

use std::path::Path;

use common::{Api, KmipProcess, Server, assert_error, create_user, noise, restore, upload};
use kmip::attribute::Attribute;
use kmip::types::{
    CryptographicAlgorithm, CryptographicUsageMask, ObjectType, ProtocolVersion,
    RevocationReasonCode, State,
};
use testkit::cosmian::CosmianKms;

/// Cosmian KMS on `pki`, with its data in `dir`.
fn start_cosmian(dir: &Path, pki: &kmip_server::pki::PkiPaths) -> CosmianKms {
    let binary = CosmianKms::binary().unwrap_or_else(|| {
        panic!(
            "{} (the cosmian_kms binary): run these tests with scripts/interop.sh",
            testkit::cosmian::BINARY_VAR
        )
    });
    CosmianKms::start(binary, dir, pki)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn serve_on(data: &Path, servers: &[&str], pki: &kmip_server::pki::PkiPaths) -> Server {
    let flags = common::kmip_flags(servers, pki, None);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Server::start(data, &flags)
}

fn history(admin: &Api, g: &str, c: &str) -> Vec<serde_json::Value> {
    admin.key_history(g, c)
}

#[test]
#[ignore = "needs Cosmian KMS: scripts/interop.sh"]
fn our_client_runs_the_whole_key_lifecycle_against_cosmian() {
    let dir = tempfile::tempdir().unwrap();
    let pki = kmip_server::pki::generate(&dir.path().join("pki"), "headlock").unwrap();
    let cosmian = start_cosmian(&dir.path().join("cosmian"), &pki);
    let client = cosmian.client(&pki);
    runtime().block_on(async {
        let versions = client.discover_versions().await.unwrap();
        eprintln!("Cosmian KMS offers KMIP {versions:?}");
        assert!(versions.contains(&ProtocolVersion::V2_1), "{versions:?}");
        assert_eq!(
            client.negotiated_version().await,
            Some(ProtocolVersion::V2_1)
        );

        let usage = CryptographicUsageMask::ENCRYPT | CryptographicUsageMask::DECRYPT;
        let name = "headlock-interop-cosmian";
        let uid = client
            .create_symmetric_key(CryptographicAlgorithm::AES, 256, usage, Some(name))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cosmian.log_tail()));
        assert_eq!(client.get_state(&uid).await.unwrap(), State::PRE_ACTIVE);
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
        assert!(
            attrs.contains(&Attribute::CryptographicLength(256)),
            "{attrs:?}"
        );
        let found = client
            .locate(Some(name), Some(ObjectType::SYMMETRIC_KEY), None)
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
        match client.get_state(&uid).await {
            Ok(state) => assert!(
                state == State::DESTROYED || state == State::DESTROYED_COMPROMISED,
                "{state:?}"
            ),
            Err(e) => assert_eq!(
                e.result_reason(),
                Some(kmip::types::ResultReason::ITEM_NOT_FOUND),
                "{e}"
            ),
        }
        assert!(client.get_symmetric_key(&uid).await.is_err());

        // Create, Activate and Get in one batch (the ID Placeholder), as rotations make
        // keys; a fresh client, so that nothing above decided how it creates keys.
        let batched = cosmian
            .client(&pki)
            .create_active_symmetric_key(
                CryptographicAlgorithm::AES,
                256,
                usage,
                Some("headlock-interop-batched"),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cosmian.log_tail()));
        let material = batched.material.unwrap();
        assert_eq!(client.get_state(&batched.uid).await.unwrap(), State::ACTIVE);
        assert_eq!(
            client.get_symmetric_key(&batched.uid).await.unwrap().key,
            material.key
        );
        // As a rotation makes its key: with the Get of the key it replaces, answered in
        // the Activate + Get message.
        let rotated = cosmian
            .client(&pki)
            .create_active_symmetric_key_and_get(
                CryptographicAlgorithm::AES,
                256,
                usage,
                Some("headlock-interop-rotated"),
                Some(&batched.uid),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cosmian.log_tail()));
        assert_eq!(client.get_state(&rotated.uid).await.unwrap(), State::ACTIVE);
        assert_eq!(rotated.other.unwrap().key, material.key);

        // The orphan of a key change stopped between Create and Activate: Destroy takes a
        // Pre-Active key straight to Destroyed (what Headlock's reconciliation does).
        let orphan = client
            .create_symmetric_key(CryptographicAlgorithm::AES, 256, usage, Some("orphan"))
            .await
            .unwrap();
        client.destroy(&orphan).await.unwrap();
        assert!(client.get_symmetric_key(&orphan).await.is_err());
    });
}

#[test]
#[ignore = "needs Cosmian KMS: scripts/interop.sh"]
fn serve_rotates_through_cosmian_and_every_snapshot_restores() {
    let dir = tempfile::tempdir().unwrap();
    let pki = kmip_server::pki::generate(&dir.path().join("pki"), "headlock").unwrap();
    let cosmian = start_cosmian(&dir.path().join("cosmian"), &pki);
    let data = dir.path().join("data");
    let key = create_user(&data, "admin", "GLOBAL_OWNER", None);
    let server = serve_on(&data, &[cosmian.addr()], &pki);
    let admin = Api::new(&server, "admin", &key);
    let g = admin.create_group("cosmian");
    let c = admin.create_encrypted_replica_set(&g, "rs0");
    let file = dir.path().join("payload");
    let mut snapshots = Vec::new();
    for round in 0..3u64 {
        let bytes = noise(300_000, round);
        std::fs::write(&file, &bytes).unwrap();
        let snap = upload(&admin, &g, &c, &file, false).unwrap();
        snapshots.push((snap["id"].as_str().unwrap().to_string(), bytes));
        admin.expect(
            admin.put(&format!("/groups/{g}/backupConfigs/{c}/encryptionKey")),
            201,
        );
    }
    for (id, bytes) in &snapshots {
        let (status, got) = restore(&admin, &g, &c, id);
        assert_eq!(status, 200);
        assert!(&got == bytes, "snapshot {id} restores other bytes");
    }
    let keys = history(&admin, &g, &c);
    assert_eq!(keys.len(), 4, "{keys:?}");
    let client = cosmian.client(&pki);
    runtime().block_on(async {
        for (i, k) in keys.iter().enumerate() {
            let uid = k["encryptionKeyUUID"].as_str().unwrap();
            let state = client.get_state(uid).await.unwrap();
            if i == 0 {
                assert_eq!(state, State::ACTIVE, "the current key {uid}");
            } else {
                assert_ne!(state, State::ACTIVE, "retired key {uid}");
            }
        }
    });
    drop(server);
}

#[test]
#[ignore = "needs Cosmian KMS: scripts/interop.sh"]
fn serve_fails_over_between_cosmian_and_the_embedded_server() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = KmipProcess::start(&dir.path().join("kmip-server"));
    let pki = embedded.pki();
    let mut cosmian = start_cosmian(&dir.path().join("cosmian"), &pki);
    let data = dir.path().join("data");
    let key = create_user(&data, "admin", "GLOBAL_OWNER", None);
    let server = serve_on(&data, &[cosmian.addr(), &embedded.addr], &pki);
    let admin = Api::new(&server, "admin", &key);
    let g = admin.create_group("failover");
    let a = admin.create_encrypted_replica_set(&g, "on-cosmian");
    let where_a = history(&admin, &g, &a)[0]["kmipServer"].clone();
    assert_eq!(where_a, cosmian.addr(), "{where_a}");
    let file = dir.path().join("payload");
    let bytes = noise(200_000, 7);
    std::fs::write(&file, &bytes).unwrap();
    let snap_a = upload(&admin, &g, &a, &file, false).unwrap();
    let snap_a = snap_a["id"].as_str().unwrap().to_string();

    cosmian.stop();
    // A new cluster's key: Cosmian refuses the connection (nothing was sent to it), so
    // the Create goes to the next server, and the API says which.
    let b = admin.create_encrypted_replica_set(&g, "on-embedded");
    let where_b = history(&admin, &g, &b)[0]["kmipServer"].clone();
    assert_eq!(where_b, embedded.addr.as_str(), "{where_b}");
    let snap_b = upload(&admin, &g, &b, &file, false).unwrap();
    let snap_b = snap_b["id"].as_str().unwrap().to_string();
    // The cluster whose key lives in Cosmian cannot be read meanwhile.
    let r = admin.post(
        &format!("/groups/{g}/clusters/{a}/restoreJobs"),
        &format!(r#"{{"snapshotId":"{snap_a}"}}"#),
    );
    if r.status != 200 {
        assert_error(&r, 503, "KMIP_SERVER_UNAVAILABLE");
    } else {
        let (status, _) = restore(&admin, &g, &a, &snap_a);
        assert_ne!(status, 200);
    }

    cosmian.launch(&pki);
    for (c, s) in [(&a, &snap_a), (&b, &snap_b)] {
        let (status, got) = restore(&admin, &g, c, s);
        assert_eq!(status, 200, "{c}: {}", String::from_utf8_lossy(&got));
        assert!(got == bytes, "{c}");
    }
    drop(server);
}
