//! The master key lifecycle with the real binary and a real KMIP server (`headlock
//! kmip-server`, a separate process): automatic rotation on a schedule (time moved
//! forward through `HEADLOCK_TEST_CLOCK_SHIFT_FILE`, jobs ticking every second through
//! `HEADLOCK_KEY_SCHEDULE_INTERVAL_SECS` / `HEADLOCK_KEY_WATCH_INTERVAL_SECS`), on one
//! node and on two nodes sharing one PostgreSQL database; destruction of retired keys
//! (never of a referenced one, never of a cancelled one); and the key state watch
//! noticing a key revoked behind the service's back.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Api, KmipProcess, Server, assert_error, create_user_in, noise, upload};
use serde_json::Value;

/// One day and an hour, in seconds: past a one-day period or grace, short of two.
const DAY_AND_AN_HOUR: i64 = 25 * 3600;

/// One node on SQLite (or several on PostgreSQL) with a KMIP server process, a shared
/// clock shift file and lifecycle jobs every second.
struct Lab {
    dir: tempfile::TempDir,
    kmip: KmipProcess,
    config: PathBuf,
    shift: PathBuf,
    key: String,
    _database: Option<testkit::PostgresDatabase>,
}

impl Lab {
    /// `postgres`: the nodes share a PostgreSQL database and an S3 bucket; otherwise
    /// one node keeps SQLite and chunks in its data directory.
    fn new(postgres: bool) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let kmip = KmipProcess::start(&dir.path().join("kmip-server"));
        let mut config = String::new();
        let database = if postgres {
            let db = testkit::PostgresDatabase::create().expect("a PostgreSQL database");
            let bucket = testkit::moto_bucket().expect("a moto bucket");
            config.push_str(&format!(
                "database_url = {:?}\n\n[s3]\nbucket = {:?}\nendpoint = {:?}\nregion = \"us-east-1\"\naccess_key_id = {:?}\nsecret_access_key = {:?}\nallow_http = true\n\n",
                db.url(),
                bucket.bucket,
                bucket.endpoint,
                bucket.access_key_id,
                bucket.secret_access_key
            ));
            Some(db)
        } else {
            None
        };
        config.push_str(&kmip.config_section(&[&kmip]));
        let config_file = dir.path().join("headlock.toml");
        std::fs::write(&config_file, config).unwrap();
        let node_dir = dir.path().join("a");
        std::fs::create_dir_all(&node_dir).unwrap();
        let cfg = config_file.to_str().unwrap().to_string();
        let store_args: Vec<&str> = if postgres {
            vec!["--config", &cfg]
        } else {
            vec!["--data-dir", node_dir.to_str().unwrap()]
        };
        let key = create_user_in(&store_args, "admin", "GLOBAL_OWNER", None);
        let shift = dir.path().join("clock-shift");
        Lab {
            dir,
            kmip,
            config: config_file,
            shift,
            key,
            _database: database,
        }
    }

    /// Starts node `name` (its own data directory).
    fn node(&self, name: &str) -> Server {
        let data = self.dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        Server::start_with_env(
            &data,
            &["--config", self.config.to_str().unwrap()],
            &[
                (
                    "HEADLOCK_TEST_CLOCK_SHIFT_FILE",
                    self.shift.to_str().unwrap(),
                ),
                ("HEADLOCK_KEY_SCHEDULE_INTERVAL_SECS", "1"),
                ("HEADLOCK_KEY_WATCH_INTERVAL_SECS", "1"),
            ],
        )
    }

    fn api(&self, node: &Server) -> Api {
        Api::new(node, "admin", &self.key)
    }

    /// Moves every node's lifecycle clock `secs` seconds ahead of real time.
    fn shift_clock(&self, secs: i64) {
        std::fs::write(&self.shift, secs.to_string()).unwrap();
    }
}

fn config(api: &Api, g: &str, c: &str) -> Value {
    api.expect(api.get(&format!("/groups/{g}/backupConfigs/{c}")), 200)
}

fn patch_config(api: &Api, g: &str, c: &str, body: &str) -> Value {
    api.expect(
        api.patch(&format!("/groups/{g}/backupConfigs/{c}"), body),
        200,
    )
}

fn entry<'a>(history: &'a [Value], uid: &str) -> &'a Value {
    history
        .iter()
        .find(|h| h["encryptionKeyUUID"] == uid)
        .unwrap_or_else(|| panic!("key {uid} in the history: {history:?}"))
}

fn rotate(api: &Api, g: &str, c: &str) {
    let r = api.put(&format!("/groups/{g}/backupConfigs/{c}/encryptionKey"));
    assert_eq!(r.status, 201, "{}", r.body);
}

fn current_key(api: &Api, g: &str, c: &str) -> String {
    api.key_history(g, c)[0]["encryptionKeyUUID"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Polls `check` until it returns Some, or panics after 60 s naming `what`.
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Lets the one-second jobs run several more times.
fn let_jobs_run() {
    std::thread::sleep(Duration::from_secs(4));
}

fn parse_time(v: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        v.as_str().unwrap_or_else(|| panic!("a time: {v}")),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

fn metrics(server: &Server) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .arg(format!("{}/metrics", server.url))
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn scheduled_rotation_fires_when_due_and_a_manual_put_moves_it() {
    let lab = Lab::new(false);
    let node = lab.node("a");
    let api = lab.api(&node);
    let g = api.create_group("schedule");
    let c = api.create_encrypted_replica_set(&g, "rs0");

    let v = config(&api, &g, &c);
    assert_eq!(v["encryptionKeyRotationPeriodDays"], 0);
    assert_eq!(
        v["nextEncryptionKeyRotation"],
        Value::Null,
        "off by default"
    );
    assert_eq!(v["encryptionKeyStatus"], "ACTIVE");

    for bad in ["-1", "3651", "1.5", "\"7\""] {
        let r = api.patch(
            &format!("/groups/{g}/backupConfigs/{c}"),
            &format!(r#"{{"encryptionKeyRotationPeriodDays":{bad}}}"#),
        );
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    let r = api.patch(
        &format!("/groups/{g}/backupConfigs/{c}"),
        r#"{"encryptionKeyRotationPeriodDays":3651}"#,
    );
    let e = assert_error(&r, 400, "INVALID_ATTRIBUTE");
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains("encryptionKeyRotationPeriodDays"),
        "{e}"
    );

    let v = patch_config(&api, &g, &c, r#"{"encryptionKeyRotationPeriodDays":1}"#);
    assert_eq!(v["encryptionKeyRotationPeriodDays"], 1);
    let last = parse_time(&v["lastEncryptionKeyRotation"]);
    assert_eq!(
        parse_time(&v["nextEncryptionKeyRotation"]),
        last + time::Duration::days(1)
    );

    // A manual rotation moves the schedule to the new key's creation.
    rotate(&api, &g, &c);
    let v = config(&api, &g, &c);
    let manual = api.key_history(&g, &c)[0].clone();
    assert_eq!(manual["rotationType"], "MANUAL");
    assert_eq!(v["lastEncryptionKeyRotation"], manual["created"]);
    let moved = parse_time(&v["lastEncryptionKeyRotation"]);
    assert!(moved >= last, "{moved} not before {last}");
    assert_eq!(
        parse_time(&v["nextEncryptionKeyRotation"]),
        moved + time::Duration::days(1)
    );
    let manual_key = manual["encryptionKeyUUID"].as_str().unwrap().to_string();

    // A day and an hour later the schedule rotates the key, once.
    lab.shift_clock(DAY_AND_AN_HOUR);
    let scheduled = wait_for("the scheduled rotation", || {
        let h = api.key_history(&g, &c);
        (h[0]["rotationType"] == "SCHEDULED").then(|| h[0].clone())
    });
    assert_eq!(scheduled["requestedBy"], "headlock-scheduler");
    let_jobs_run();
    let h = api.key_history(&g, &c);
    let scheduled_keys: Vec<&Value> = h
        .iter()
        .filter(|k| k["rotationType"] == "SCHEDULED")
        .collect();
    assert_eq!(scheduled_keys.len(), 1, "rotated exactly once: {h:?}");
    assert_eq!(entry(&h, &manual_key)["state"], "Deactivated");
    let rotations: Vec<Value> = api
        .events_of(&g, "RS_ROTATE_MASTER_KEY_AUDIT")
        .into_iter()
        .filter(|e| e["username"] == "headlock-scheduler" && e["outcome"] == "SUCCESS")
        .collect();
    assert_eq!(rotations.len(), 1, "{rotations:?}");
    assert_eq!(rotations[0]["oldEncryptionKeyUUID"], manual_key.as_str());

    // The next one is a period after the scheduled key was made.
    let v = config(&api, &g, &c);
    let last = parse_time(&v["lastEncryptionKeyRotation"]);
    assert_eq!(last, parse_time(&scheduled["created"]));
    assert_eq!(
        parse_time(&v["nextEncryptionKeyRotation"]),
        last + time::Duration::days(1)
    );

    // Turned off: no next rotation.
    let v = patch_config(&api, &g, &c, r#"{"encryptionKeyRotationPeriodDays":0}"#);
    assert_eq!(v["nextEncryptionKeyRotation"], Value::Null);
}

#[test]
fn two_nodes_rotate_each_due_cluster_exactly_once() {
    let lab = Lab::new(true);
    let a = lab.node("a");
    let b = lab.node("b");
    let (api_a, api_b) = (lab.api(&a), lab.api(&b));
    let g = api_a.create_group("two-nodes");
    let clusters: Vec<String> = (0..4)
        .map(|i| api_a.create_encrypted_replica_set(&g, &format!("rs{i}")))
        .collect();
    for c in &clusters {
        let v = patch_config(&api_b, &g, c, r#"{"encryptionKeyRotationPeriodDays":1}"#);
        assert_eq!(v["encryptionKeyRotationPeriodDays"], 1);
    }
    // An encrypted cluster without a schedule is left alone.
    let unscheduled = api_a.create_encrypted_replica_set(&g, "manual-only");
    let unscheduled_key = current_key(&api_a, &g, &unscheduled);

    lab.shift_clock(DAY_AND_AN_HOUR);
    wait_for("every cluster's scheduled rotation", || {
        clusters
            .iter()
            .all(|c| api_a.key_history(&g, c)[0]["rotationType"] == "SCHEDULED")
            .then_some(())
    });
    let_jobs_run();
    for c in &clusters {
        let h = api_b.key_history(&g, c);
        assert_eq!(h.len(), 2, "one initial key and one scheduled: {h:?}");
        assert_eq!(h[0]["rotationType"], "SCHEDULED");
    }
    let rotations: Vec<Value> = api_b
        .events_of(&g, "RS_ROTATE_MASTER_KEY_AUDIT")
        .into_iter()
        .filter(|e| e["username"] == "headlock-scheduler" && e["outcome"] == "SUCCESS")
        .collect();
    assert_eq!(rotations.len(), clusters.len(), "{rotations:?}");
    for c in &clusters {
        assert_eq!(
            rotations
                .iter()
                .filter(|e| e["clusterId"] == c.as_str())
                .count(),
            1,
            "cluster {c}"
        );
    }
    assert_eq!(current_key(&api_a, &g, &unscheduled), unscheduled_key);
}

#[test]
fn retired_keys_are_destroyed_after_the_grace_unless_referenced_or_cancelled() {
    let lab = Lab::new(false);
    let node = lab.node("a");
    let api = lab.api(&node);
    let g = api.create_group("destroy");
    let c = api.create_encrypted_replica_set(&g, "rs0");
    let v = patch_config(&api, &g, &c, r#"{"retiredKeyDestroyAfterDays":1}"#);
    assert_eq!(v["retiredKeyDestroyAfterDays"], 1);
    let referenced = current_key(&api, &g, &c);
    rotate(&api, &g, &c);
    let unreferenced = current_key(&api, &g, &c);
    rotate(&api, &g, &c);
    let current = current_key(&api, &g, &c);

    // A second cluster whose retired key's destruction is cancelled.
    let kept_cluster = api.create_encrypted_replica_set(&g, "rs1");
    patch_config(
        &api,
        &g,
        &kept_cluster,
        r#"{"retiredKeyDestroyAfterDays":1}"#,
    );
    let kept = current_key(&api, &g, &kept_cluster);
    rotate(&api, &g, &kept_cluster);
    let kept_current = current_key(&api, &g, &kept_cluster);

    let h = api.key_history(&g, &c);
    let e = entry(&h, &unreferenced);
    assert_eq!(
        parse_time(&e["scheduledDestruction"]),
        parse_time(&e["retired"]) + time::Duration::days(1)
    );
    assert_eq!(entry(&h, &current)["scheduledDestruction"], Value::Null);

    // Only owners and backup admins may cancel.
    let reader = {
        let key = create_user_in(
            &["--data-dir", node.data_dir.to_str().unwrap()],
            "reader",
            "GROUP_READ_ONLY",
            Some(&g),
        );
        Api::new(&node, "reader", &key)
    };
    let restore = |api: &Api, cluster: &str, uid: &str| {
        api.post(
            &format!("/groups/{g}/backupConfigs/{cluster}/encryptionKeys/{uid}/restore"),
            "",
        )
    };
    assert_eq!(restore(&reader, &kept_cluster, &kept).status, 403);
    let v = api.expect(restore(&api, &kept_cluster, &kept), 200);
    assert_eq!(v["encryptionKeyUUID"], kept.as_str());
    assert_eq!(v["destructionCancelled"], true);
    assert_eq!(v["scheduledDestruction"], Value::Null);
    assert_error(
        &restore(&api, &kept_cluster, &kept_current),
        409,
        "CANNOT_CANCEL_KEY_DESTRUCTION",
    );
    assert_error(
        &restore(&api, &kept_cluster, "no-such-key"),
        404,
        "MASTER_KEY_NOT_FOUND",
    );
    assert_eq!(api.events_of(&g, "MASTER_KEY_DESTROY_CANCELLED").len(), 1);

    // Make the oldest key referenced behind the service's back: a data key it wraps.
    let db = node.data_dir.join("headlock.db");
    let inserted = common::sqlite_execute(
        &db,
        "INSERT INTO data_keys (id, cluster_id, wrapped_hex, master_key_uid, created_us) \
         VALUES ('aaaaaaaaaaaaaaaaaaaaaaaa', ?, '00', ?, 0)",
        &[&c, &referenced],
    );
    assert_eq!(inserted, 1);
    assert_eq!(
        entry(&api.key_history(&g, &c), &referenced)["dataKeyCount"],
        1
    );

    lab.shift_clock(DAY_AND_AN_HOUR);
    let destroyed = wait_for("the unreferenced key's destruction", || {
        let h = api.key_history(&g, &c);
        let e = entry(&h, &unreferenced).clone();
        (!e["destroyed"].is_null()).then_some(e)
    });
    assert_eq!(destroyed["state"], "Destroyed");
    assert_eq!(destroyed["scheduledDestruction"], Value::Null);
    let_jobs_run();

    let h = api.key_history(&g, &c);
    let e = entry(&h, &referenced);
    assert_eq!(e["destroyed"], Value::Null, "a referenced key is kept: {e}");
    assert_eq!(e["state"], "Deactivated");
    assert_eq!(entry(&h, &current)["state"], "Active");
    let e = entry(&api.key_history(&g, &kept_cluster), &kept).clone();
    assert_eq!(e["destroyed"], Value::Null, "a cancelled key is kept: {e}");
    assert_eq!(e["state"], "Deactivated");
    let destroyed_events = api.events_of(&g, "MASTER_KEY_DESTROYED");
    assert_eq!(destroyed_events.len(), 1, "{destroyed_events:?}");
    assert_eq!(
        destroyed_events[0]["oldEncryptionKeyUUID"],
        unreferenced.as_str()
    );
    assert_error(
        &restore(&api, &c, &unreferenced),
        409,
        "CANNOT_CANCEL_KEY_DESTRUCTION",
    );

    // In the KMIP server: the destroyed key's material is gone, the others' is not.
    lab.kmip.with_client(async |client| {
        assert!(client.get_symmetric_key(&unreferenced).await.is_err());
        assert!(client.get_symmetric_key(&referenced).await.is_ok());
        assert!(client.get_symmetric_key(&kept).await.is_ok());
    });
}

#[test]
fn a_key_revoked_behind_the_services_back_is_noticed_and_cleared_by_a_rotation() {
    let lab = Lab::new(false);
    let node = lab.node("a");
    let api = lab.api(&node);
    let g = api.create_group("watch");
    let c = api.create_encrypted_replica_set(&g, "rs0");
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("data");
    std::fs::write(&file, noise(200_000, 7)).unwrap();
    upload(&api, &g, &c, &file, false).expect("a backup with an Active key");
    let key = current_key(&api, &g, &c);

    lab.kmip.with_client(async |client| {
        client
            .revoke(
                &key,
                kmip::types::RevocationReasonCode::CESSATION_OF_OPERATION,
                Some("behind headlock's back"),
            )
            .await
            .unwrap();
    });

    let v = wait_for("the key error state", || {
        let v = config(&api, &g, &c);
        (v["encryptionKeyStatus"] == "ERROR").then_some(v)
    });
    let message = v["encryptionKeyError"].as_str().unwrap().to_string();
    assert!(message.contains(&key), "{message}");
    assert!(message.contains("Deactivated"), "{message}");
    assert!(message.contains(&lab.kmip.addr), "{message}");
    let_jobs_run();
    let errors = api.events_of(&g, "MASTER_KEY_STATE_ERROR");
    assert_eq!(errors.len(), 1, "one event per change: {errors:?}");
    assert_eq!(
        gauge(&metrics(&node), "headlock_key_state_errors"),
        Some(1.0)
    );

    let (status, body) = upload(&api, &g, &c, &file, false).unwrap_err();
    assert_eq!(status, 409, "{body}");
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["errorCode"], "ENCRYPTION_KEY_NOT_ACTIVE");
    assert!(e["detail"].as_str().unwrap().contains(&message), "{e}");

    // A rotation clears it at once, on every node (the error was about the old key).
    rotate(&api, &g, &c);
    let v = config(&api, &g, &c);
    assert_eq!(v["encryptionKeyStatus"], "ACTIVE");
    assert_eq!(v["encryptionKeyError"], Value::Null);
    upload(&api, &g, &c, &file, false).expect("a backup after the rotation");
    wait_for("the gauge back to 0", || {
        (gauge(&metrics(&node), "headlock_key_state_errors") == Some(0.0)).then_some(())
    });
}

#[test]
fn a_failed_scheduled_rotation_is_an_event_and_a_metric_and_is_retried_with_back_off() {
    let mut lab = Lab::new(false);
    let node = lab.node("a");
    let api = lab.api(&node);
    let g = api.create_group("retry");
    let c = api.create_encrypted_replica_set(&g, "rs0");
    patch_config(&api, &g, &c, r#"{"encryptionKeyRotationPeriodDays":1}"#);
    let before = current_key(&api, &g, &c);

    // Due, with the KMIP server gone: the rotation fails, is recorded and counted, and
    // the config shows when it is tried again.
    lab.kmip.kill();
    lab.shift_clock(DAY_AND_AN_HOUR);
    let failure = wait_for("a failed scheduled rotation", || {
        api.events_of(&g, "SCHEDULED_ROTATION_FAILED")
            .into_iter()
            .next()
    });
    assert_eq!(failure["outcome"], "FAILURE");
    assert_eq!(failure["oldEncryptionKeyUUID"], before.as_str());
    let detail = failure["detail"].as_str().unwrap();
    assert!(
        detail.contains(&lab.kmip.addr),
        "names the KMIP server: {detail}"
    );
    let text = metrics(&node);
    let failures = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("headlock_scheduled_rotation_failures_total")?
                .split_whitespace()
                .last()?
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(0.0);
    assert!(failures >= 1.0, "counted in /metrics:\n{text}");
    let v = config(&api, &g, &c);
    let retry = parse_time(&v["nextEncryptionKeyRotation"]);
    let due = parse_time(&v["lastEncryptionKeyRotation"]) + time::Duration::days(1);
    assert!(
        retry > due,
        "the retry time ({retry}) is after the due time ({due})"
    );
    // Backing off: no second attempt while the clock stays before the retry time.
    let_jobs_run();
    assert_eq!(api.events_of(&g, "SCHEDULED_ROTATION_FAILED").len(), 1);
    assert_eq!(current_key(&api, &g, &c), before);

    // The KMIP server is back and the clock passes the retry time: the rotation happens.
    lab.kmip.restart();
    lab.shift_clock(DAY_AND_AN_HOUR + 3 * 60);
    let scheduled = wait_for("the retried scheduled rotation", || {
        let h = api.key_history(&g, &c);
        (h[0]["rotationType"] == "SCHEDULED").then(|| h[0].clone())
    });
    assert_ne!(scheduled["encryptionKeyUUID"], before.as_str());
    assert_eq!(api.events_of(&g, "SCHEDULED_ROTATION_FAILED").len(), 1);
}
