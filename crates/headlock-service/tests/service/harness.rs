//! A world for one test: a temporary directory holding the SQLite database, the blob
//! directory and an embedded KMIP server (on loopback, mutual TLS) that outlives the
//! service nodes built on it, so a test can crash one node and start another.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use headlock_core::envelope::{DataKey, WrapContext};
use headlock_core::keys::{KeyState, KmipUid};
use headlock_core::model::{Cluster, ClusterType, SnapshotKind};
use headlock_core::{KeyManager, ObjectId};
use headlock_kmip::KmipKeyManager;
use headlock_service::clusters::{BackupConfigPatch, NewCluster};
use headlock_service::{Actor, Service};
use headlock_store::SqlStore;
use headlock_store::blob::ObjectBlobStore;
use testkit::kmip::Embedded;

/// The node id every node of a test uses: a restarted node, which takes the leases of
/// its previous life over at once.
pub const NODE: &str = "node-1";

/// The world of one test. The KMIP server (`testkit`'s embedded one) stops when it is
/// dropped.
pub struct World {
    dir: tempfile::TempDir,
    kmip: Embedded,
    /// A key manager on the world's KMIP server, to look at keys from outside.
    pub keys: KmipKeyManager,
}

impl World {
    /// A fresh directory and KMIP server.
    pub async fn start() -> World {
        let dir = tempfile::tempdir().unwrap();
        let kmip = Embedded::start_in(&dir.path().join("kmip"), "127.0.0.1:0").await;
        let keys = key_manager(&kmip);
        World { dir, kmip, keys }
    }

    /// A new key manager on the world's KMIP server (its own connections).
    pub fn key_manager(&self) -> KmipKeyManager {
        key_manager(&self.kmip)
    }

    fn blob_dir(&self) -> PathBuf {
        self.dir.path().join("blobs")
    }

    /// A node ([`NODE`]) on the world's database, KMIP server and blob directory, whose
    /// key manager is `keys`: what `serve` builds at start.
    pub async fn node_with(&self, keys: Arc<dyn KeyManager>) -> Service {
        let store = SqlStore::open_sqlite(&self.dir.path().join("headlock.db"))
            .await
            .unwrap();
        std::fs::create_dir_all(self.blob_dir()).unwrap();
        let blobs = ObjectBlobStore::local(self.blob_dir()).unwrap();
        Service::new(Arc::new(store), keys)
            .with_node_id(NODE)
            .with_blobs(Arc::new(blobs))
    }

    /// [`World::node_with`] a plain key manager.
    pub async fn node(&self) -> Service {
        self.node_with(Arc::new(self.key_manager())).await
    }

    /// Runs one SQL statement on the world's SQLite database, on a connection of the
    /// test's own (to make the database refuse a write, as a crash would leave it undone).
    pub async fn sql(&self, statement: &str) {
        use sqlx::Connection;
        let url = format!("sqlite://{}", self.dir.path().join("headlock.db").display());
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(statement).execute(&mut db).await.unwrap();
        db.close().await.unwrap();
    }

    /// The KMIP state of a key.
    pub async fn state(&self, uid: &KmipUid) -> KeyState {
        self.keys.key_state(uid).await.unwrap()
    }

    /// The uids of the keys the KMIP server holds under the Name `name`.
    pub async fn keys_named(&self, name: &str) -> Vec<KmipUid> {
        self.keys.locate_by_name(name).await.unwrap()
    }

    /// The pack objects of a cluster, by path.
    pub fn packs(&self, cluster: ObjectId) -> Vec<String> {
        let dir = self.blob_dir().join("packs").join(cluster.to_string());
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut packs: Vec<String> = entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        packs.sort();
        packs
    }
}

/// A key manager on `kmip` that does not retry (a crash test's failures stay failures).
fn key_manager(kmip: &Embedded) -> KmipKeyManager {
    let mut config = kmip.client_config();
    config.max_retries = 0;
    let client = kmip::client::Client::new(config).unwrap();
    KmipKeyManager::new(client, "embedded KMIP server".into())
}

/// The global owner every test acts as.
pub fn admin() -> Actor {
    Actor::system("alice")
}

/// A replica set of a group of its own (with encryption on, when made by
/// [`encrypted_cluster`]).
pub struct Encrypted {
    /// Group id.
    pub group: String,
    /// The cluster.
    pub cluster: Cluster,
}

impl Encrypted {
    /// The cluster id, as a path would give it.
    pub fn id(&self) -> String {
        self.cluster.id.to_string()
    }
}

/// Registers a replica set (encryption off) in a new group.
pub async fn replica_set(service: &Service) -> Encrypted {
    let group = service
        .groups()
        .create_group(&admin(), "service-tests")
        .await
        .unwrap()
        .group
        .id
        .to_string();
    let cluster = service
        .register_cluster(
            &admin(),
            &group,
            NewCluster {
                cluster_name: "rs0".into(),
                type_name: ClusterType::ReplicaSet,
                replica_set_name: None,
                shards: Vec::new(),
                config_server_replica_set: None,
            },
        )
        .await
        .unwrap()
        .remove(0);
    Encrypted { group, cluster }
}

/// The backup config change that turns encryption on.
pub fn enable_encryption() -> BackupConfigPatch {
    BackupConfigPatch {
        encryption_enabled: Some(true),
        ..Default::default()
    }
}

/// Registers a replica set in a new group and turns encryption on.
pub async fn encrypted_cluster(service: &Service) -> Encrypted {
    let c = replica_set(service).await;
    service
        .patch_backup_config(&admin(), &c.group, &c.id(), enable_encryption())
        .await
        .unwrap();
    c
}

/// The KMIP uid of the cluster's current master key.
pub async fn current_key(service: &Service, cluster: ObjectId) -> KmipUid {
    service
        .store()
        .current_master_key(cluster)
        .await
        .unwrap()
        .expect("a current master key")
        .kmip_uid
}

/// `len` bytes that do not compress and do not repeat.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut data);
    data
}

/// Backs `data` up as a stream snapshot; its id.
pub async fn backup(service: &Service, c: &Encrypted, data: &[u8]) -> ObjectId {
    service
        .backup(
            &admin(),
            &c.group,
            &c.id(),
            SnapshotKind::Stream,
            std::io::Cursor::new(data.to_vec()),
        )
        .await
        .unwrap()
        .record
        .id
}

/// Restores a snapshot through a restore job and its one-time download.
pub async fn restore(service: &Service, c: &Encrypted, snapshot: ObjectId) -> Vec<u8> {
    let (job, token) = service
        .create_restore_job(&admin(), &c.group, &c.id(), &snapshot.to_string())
        .await
        .unwrap();
    let mut download = service
        .download(&c.id(), &job.id.to_string(), &token)
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(frame) = download.frames.recv().await {
            out.extend_from_slice(&frame);
        }
    })
    .await
    .unwrap();
    out
}

/// Checks the end state every finished key change must leave, and returns the current
/// key's uid: no intent left; exactly one current (unretired) master key, Active in the
/// KMIP server; every data key of the cluster wrapped by it and unwrapping under it;
/// every retired key in `retired_state`; the audit chain verifies.
pub async fn assert_settled(
    world: &World,
    service: &Service,
    cluster: &Cluster,
    retired_state: KeyState,
) -> KmipUid {
    let store = service.store();
    assert_eq!(
        store.intents().await.unwrap(),
        Vec::new(),
        "an intent is left"
    );
    let keys = store.master_keys(cluster.id).await.unwrap();
    let unretired: Vec<_> = keys.iter().filter(|k| k.retired.is_none()).collect();
    assert_eq!(unretired.len(), 1, "exactly one current key: {keys:?}");
    let current = store.current_master_key(cluster.id).await.unwrap().unwrap();
    assert_eq!(&current, unretired[0]);
    assert_eq!(world.state(&current.kmip_uid).await, KeyState::Active);
    for old in keys.iter().filter(|k| k.retired.is_some()) {
        assert_eq!(
            world.state(&old.kmip_uid).await,
            retired_state,
            "retired key {}",
            old.kmip_uid
        );
    }
    let material = world
        .keys
        .master_key_material(&current.kmip_uid)
        .await
        .unwrap();
    let cluster_id = cluster.id.to_string();
    let ctx = WrapContext {
        cluster_id: &cluster_id,
        master_key_uid: current.kmip_uid.as_str(),
    };
    let data_keys = store.data_keys(cluster.id).await.unwrap();
    assert!(!data_keys.is_empty(), "the cluster has no data key");
    for dk in data_keys {
        assert_eq!(dk.master_key_uid, current.kmip_uid, "data key {}", dk.id);
        DataKey::unwrap(&dk.wrapped, &material, &ctx)
            .unwrap_or_else(|e| panic!("data key {} does not unwrap: {e}", dk.id));
    }
    store.verify_audit_chain().await.unwrap();
    current.kmip_uid
}
