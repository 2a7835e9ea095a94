//! Rotation against a third-party KMIP server: PyKMIP 0.11, configured as Headlock's
//! external KMIP server, started and stopped by the test (testkit).

mod common;

use common::{Api, WithPyKmip, assert_error, with_pykmip};
use kmip::types::{CryptographicAlgorithm, State};

fn create_encrypted_cluster(admin: &Api) -> (String, String) {
    let g = admin.expect(admin.post("/groups", r#"{"name":"py"}"#), 201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let c = admin.expect(
        admin.post(
            &format!("/groups/{g}/clusters"),
            r#"{"clusterName":"rs0","typeName":"REPLICA_SET","replicaSetName":"rs0"}"#,
        ),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    admin.expect(
        admin.patch(
            &format!("/groups/{g}/backupConfigs/{c}"),
            r#"{"encryptionEnabled":true}"#,
        ),
        200,
    );
    (g, c)
}

fn current_key(admin: &Api, g: &str, c: &str) -> String {
    admin.expect(
        admin.get(&format!("/groups/{g}/backupConfigs/{c}/encryptionKey")),
        200,
    )["encryptionKeyUUID"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_creates_real_keys_in_pykmip_and_revokes_the_old_one() {
    let s = tokio::task::spawn_blocking(|| with_pykmip(&[]))
        .await
        .unwrap();
    let admin = s.admin.clone();
    let (first, second) = tokio::task::spawn_blocking(move || {
        let (g, c) = create_encrypted_cluster(&admin);
        let first = current_key(&admin, &g, &c);
        assert_eq!(
            admin
                .put(&format!("/groups/{g}/backupConfigs/{c}/encryptionKey"))
                .status,
            201
        );
        let second = current_key(&admin, &g, &c);
        (first, second)
    })
    .await
    .unwrap();
    assert_ne!(first, second);

    // The new key, read back from PyKMIP by its id: AES, 256 bits, Active.
    let material = s.kmip.get_symmetric_key(&second).await.unwrap();
    assert_eq!(material.key.len(), 32);
    assert_eq!(material.algorithm, Some(CryptographicAlgorithm::AES));
    assert_eq!(material.length, Some(256));
    assert_eq!(s.kmip.get_state(&second).await.unwrap(), State::ACTIVE);
    // The old one is revoked: Deactivated.
    assert_eq!(s.kmip.get_state(&first).await.unwrap(), State::DEACTIVATED);
}

#[tokio::test(flavor = "multi_thread")]
async fn kmip_outage_answers_503_changes_nothing_and_recovers() {
    let mut s = tokio::task::spawn_blocking(|| with_pykmip(&[]))
        .await
        .unwrap();
    let admin = s.admin.clone();
    let (g, c, before) = tokio::task::spawn_blocking(move || {
        let (g, c) = create_encrypted_cluster(&admin);
        let before = current_key(&admin, &g, &c);
        (g, c, before)
    })
    .await
    .unwrap();

    s.pykmip.stop();
    let addr = s.pykmip.addr();
    let admin = s.admin.clone();
    let (g, c, before) = tokio::task::spawn_blocking(move || {
        let r = admin.put(&format!("/groups/{g}/backupConfigs/{c}/encryptionKey"));
        let v = assert_error(&r, 503, "KMIP_SERVER_UNAVAILABLE");
        assert!(
            v["detail"].as_str().unwrap().contains(&addr),
            "the detail names the KMIP server: {v}"
        );
        assert_eq!(current_key(&admin, &g, &c), before, "nothing changed");
        let events = admin.expect(admin.get(&format!("/groups/{g}/events")), 200);
        let failed = events["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["eventTypeName"] == "RS_ROTATE_MASTER_KEY_AUDIT" && e["outcome"] == "FAILURE"
            })
            .count();
        assert_eq!(failed, 1, "{events}");
        (g, c, before)
    })
    .await
    .unwrap();

    s.pykmip.restart().expect("restart PyKMIP");
    let admin = s.admin.clone();
    let after = tokio::task::spawn_blocking(move || {
        let r = admin.put(&format!("/groups/{g}/backupConfigs/{c}/encryptionKey"));
        assert_eq!(r.status, 201, "{}", r.body);
        current_key(&admin, &g, &c)
    })
    .await
    .unwrap();
    assert_ne!(after, before);
    assert_eq!(s.kmip.get_state(&after).await.unwrap(), State::ACTIVE);
    assert_eq!(s.kmip.get_state(&before).await.unwrap(), State::DEACTIVATED);
}

fn reconciled_events(admin: &Api, g: &str) -> Vec<serde_json::Value> {
    let events = admin.expect(admin.get(&format!("/groups/{g}/events")), 200);
    events["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["eventTypeName"] == "MASTER_KEY_RECONCILED")
        .cloned()
        .collect()
}

/// Crashes the server with a PUT at `point`, starts it again without the crash point,
/// and returns (group, cluster, key before the PUT, the restarted server's admin API).
fn crash_during_rotation(s: &mut WithPyKmip, point: &str) -> (String, String, String) {
    let (g, c) = create_encrypted_cluster(&s.admin);
    let before = current_key(&s.admin, &g, &c);
    let r = s.admin.try_call(
        "PUT",
        &format!("/groups/{g}/backupConfigs/{c}/encryptionKey"),
        None,
    );
    assert!(
        r.is_err(),
        "the server must die at {point}, not answer: {r:?}"
    );
    let status = s.server.wait_exit();
    assert!(!status.success());
    assert!(
        s.server
            .log()
            .contains(&format!("HEADLOCK_TEST_CRASH_AT={point}")),
        "{}",
        s.server.log()
    );
    s.server.start_again();
    s.admin.base = format!("{}/api/public/v1.0", s.server.url);
    (g, c, before)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_the_kmip_create_is_reconciled_at_the_next_start() {
    let mut s = tokio::task::spawn_blocking(|| {
        with_pykmip(&[("HEADLOCK_TEST_CRASH_AT", "rotation-after-kmip-create")])
    })
    .await
    .unwrap();
    let (mut s, g, c, before, orphan) = tokio::task::spawn_blocking(move || {
        let (g, c, before) = crash_during_rotation(&mut s, "rotation-after-kmip-create");
        // The rotation never committed: the old key is still current ...
        assert_eq!(current_key(&s.admin, &g, &c), before);
        // ... and the key it had created was found and destroyed at start.
        let events = reconciled_events(&s.admin, &g);
        assert_eq!(events.len(), 1, "{events:?}");
        let orphan = events[0]["newEncryptionKeyUUID"]
            .as_str()
            .unwrap()
            .to_string();
        assert_ne!(orphan, before);
        (s, g, c, before, orphan)
    })
    .await
    .unwrap();
    // Destroyed (revoked, then destroyed: PyKMIP forgets a destroyed object), so no
    // key is leaked.
    let gone = s.kmip.get_state(&orphan).await.unwrap_err();
    assert_eq!(
        gone.result_reason(),
        Some(kmip::types::ResultReason::ITEM_NOT_FOUND),
        "{gone}"
    );
    assert_eq!(s.kmip.get_state(&before).await.unwrap(), State::ACTIVE);
    // Rotation works again.
    let admin = s.admin.clone();
    let after = tokio::task::spawn_blocking(move || {
        assert_eq!(
            admin
                .put(&format!("/groups/{g}/backupConfigs/{c}/encryptionKey"))
                .status,
            201
        );
        current_key(&admin, &g, &c)
    })
    .await
    .unwrap();
    assert!(after != before && after != orphan);
    assert_eq!(s.kmip.get_state(&before).await.unwrap(), State::DEACTIVATED);
    s.server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_the_commit_revokes_the_old_key_at_the_next_start() {
    let s = tokio::task::spawn_blocking(|| {
        with_pykmip(&[("HEADLOCK_TEST_CRASH_AT", "rotation-after-commit")])
    })
    .await
    .unwrap();
    let (s, before, now) = tokio::task::spawn_blocking(move || {
        let mut s = s;
        let (g, c, before) = crash_during_rotation(&mut s, "rotation-after-commit");
        // The rotation committed before the crash: the new key is current.
        let now = current_key(&s.admin, &g, &c);
        assert_ne!(now, before);
        let events = reconciled_events(&s.admin, &g);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["oldEncryptionKeyUUID"], before.as_str());
        (s, before, now)
    })
    .await
    .unwrap();
    // The old key, which nothing needs any more, was revoked at start.
    assert_eq!(s.kmip.get_state(&before).await.unwrap(), State::DEACTIVATED);
    assert_eq!(s.kmip.get_state(&now).await.unwrap(), State::ACTIVE);
}
