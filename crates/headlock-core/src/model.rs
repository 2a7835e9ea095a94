//! Domain records: what the service keeps and the API shows.
//!
//! Names follow the Ops Manager API where the API shares the thing (`clusterName`,
//! `typeName`, `statusName`, ...); the JSON shapes themselves live in `headlock-api`.

use time::OffsetDateTime;

use crate::{KmipUid, ObjectId};

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The API's spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the API's spelling (exactly).
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// `typeName` of a cluster.
    ClusterType {
        /// A replica set, alone or as a shard.
        ReplicaSet = "REPLICA_SET",
        /// A whole sharded cluster.
        ShardedReplicaSet = "SHARDED_REPLICA_SET",
        /// The config server replica set of a sharded cluster.
        ConfigServerReplicaSet = "CONFIG_SERVER_REPLICA_SET",
    }
);

wire_enum!(
    /// `statusName` of a backup config.
    BackupStatus {
        /// Backup was never started or has been terminated.
        Inactive = "INACTIVE",
        /// Backup is being set up.
        Provisioning = "PROVISIONING",
        /// Backup is running.
        Started = "STARTED",
        /// Backup is stopped; snapshots are kept.
        Stopped = "STOPPED",
        /// Backup is being terminated.
        Terminating = "TERMINATING",
    }
);

wire_enum!(
    /// `authMechanismName` of a backup config.
    AuthMechanism {
        /// MONGODB-CR / SCRAM.
        MongodbCr = "MONGODB_CR",
        /// Kerberos.
        Gssapi = "GSSAPI",
        /// LDAP.
        Plain = "PLAIN",
        /// X.509 client certificates.
        MongodbX509 = "MONGODB_X509",
        /// No authentication.
        None = "NONE",
    }
);

wire_enum!(
    /// Why a master key came to be.
    RotationType {
        /// The first key of a cluster, created when encryption was enabled.
        Initial = "INITIAL",
        /// A `PUT .../encryptionKey`.
        Manual = "MANUAL",
        /// The rotation schedule.
        Scheduled = "SCHEDULED",
        /// Compromise recovery.
        Compromise = "COMPROMISE",
    }
);

wire_enum!(
    /// A user's role, named as in Ops Manager.
    Role {
        /// Everything, everywhere.
        GlobalOwner = "GLOBAL_OWNER",
        /// Read everything.
        GlobalReadOnly = "GLOBAL_READ_ONLY",
        /// Everything in one group.
        GroupOwner = "GROUP_OWNER",
        /// Backup administration (including key rotation) in one group.
        GroupBackupAdmin = "GROUP_BACKUP_ADMIN",
        /// Read one group.
        GroupReadOnly = "GROUP_READ_ONLY",
    }
);

impl Role {
    /// Whether the role is given per group (and so needs a group id).
    pub fn is_group_role(self) -> bool {
        matches!(
            self,
            Role::GroupOwner | Role::GroupBackupAdmin | Role::GroupReadOnly
        )
    }
}

/// A group (an Ops Manager project).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Group id.
    pub id: ObjectId,
    /// Unique name.
    pub name: String,
    /// Organization id (one per group here: Headlock has no organizations of its own).
    pub org_id: ObjectId,
    /// Creation time.
    pub created: OffsetDateTime,
}

/// A cluster: a replica set, a whole sharded cluster, one of its shards, or its config
/// server replica set. A sharded cluster with N shards is N + 2 records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Cluster id.
    pub id: ObjectId,
    /// Owning group.
    pub group_id: ObjectId,
    /// `clusterName`: the user's name for the (whole) cluster.
    pub cluster_name: String,
    /// `typeName`.
    pub type_name: ClusterType,
    /// `replicaSetName` (absent for a whole sharded cluster).
    pub replica_set_name: Option<String>,
    /// `shardName` (shards only).
    pub shard_name: Option<String>,
    /// The whole sharded cluster that a shard or config server replica set belongs to.
    pub parent_cluster_id: Option<ObjectId>,
    /// Registration time.
    pub created: OffsetDateTime,
}

impl Cluster {
    /// Whether this record is a whole sharded cluster (which holds no data of its own).
    pub fn is_sharded_whole(&self) -> bool {
        self.type_name == ClusterType::ShardedReplicaSet
    }
}

/// A backup config: one per cluster record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupConfig {
    /// Owning group.
    pub group_id: ObjectId,
    /// The cluster it configures.
    pub cluster_id: ObjectId,
    /// `statusName`.
    pub status: BackupStatus,
    /// `encryptionEnabled`.
    pub encryption_enabled: bool,
    /// `storageEngineName`.
    pub storage_engine_name: String,
    /// `sslEnabled`.
    pub ssl_enabled: bool,
    /// `excludedNamespaces`.
    pub excluded_namespaces: Vec<String>,
    /// `includedNamespaces`.
    pub included_namespaces: Vec<String>,
    /// `authMechanismName`.
    pub auth_mechanism: AuthMechanism,
}

impl BackupConfig {
    /// The config a newly registered cluster gets.
    pub fn new_inactive(group_id: ObjectId, cluster_id: ObjectId) -> Self {
        BackupConfig {
            group_id,
            cluster_id,
            status: BackupStatus::Inactive,
            encryption_enabled: false,
            storage_engine_name: "WIRED_TIGER".into(),
            ssl_enabled: false,
            excluded_namespaces: Vec::new(),
            included_namespaces: Vec::new(),
            auth_mechanism: AuthMechanism::None,
        }
    }
}

/// A master key a cluster has had. Exactly one per encrypted cluster is current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterKeyRecord {
    /// The cluster.
    pub cluster_id: ObjectId,
    /// KMIP Unique Identifier: the API's `encryptionKeyUUID`.
    pub kmip_uid: KmipUid,
    /// The KMIP server that created it (as configured, `host:port`).
    pub kmip_server: String,
    /// The KMIP Name given to the key, so it can be found again with Locate.
    pub kmip_name: String,
    /// When it was created.
    pub created: OffsetDateTime,
    /// When it stopped being current (None while current).
    pub retired: Option<OffsetDateTime>,
    /// Why it was created.
    pub rotation_type: RotationType,
    /// Who asked (username, or `scheduler`).
    pub requested_by: String,
}

/// A data key of a cluster, stored only wrapped by the cluster's current master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyRecord {
    /// Data key id.
    pub id: ObjectId,
    /// The cluster.
    pub cluster_id: ObjectId,
    /// The wrapped key (see [`crate::envelope`]).
    pub wrapped: Vec<u8>,
    /// The KMIP uid of the master key that wraps it now.
    pub master_key_uid: KmipUid,
    /// When it was generated.
    pub created: OffsetDateTime,
}

/// How far a key change (first key or rotation) has come. Persisted before every step
/// that talks to the KMIP server, so that a restart knows where it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentPhase {
    /// Recorded; the KMIP key may or may not have been created (look it up by name).
    Pending,
    /// The new key exists and is Active in the KMIP server (its uid is recorded).
    NewKeyActive,
    /// The store switched to the new key; the old key still has to be revoked.
    Committed,
}

impl IntentPhase {
    /// Storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            IntentPhase::Pending => "PENDING",
            IntentPhase::NewKeyActive => "NEW_KEY_ACTIVE",
            IntentPhase::Committed => "COMMITTED",
        }
    }

    /// Parses the storage spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PENDING" => IntentPhase::Pending,
            "NEW_KEY_ACTIVE" => IntentPhase::NewKeyActive,
            "COMMITTED" => IntentPhase::Committed,
            _ => return None,
        })
    }
}

/// A key change in flight for one cluster, as the store keeps it (one row). At most one
/// exists per cluster (the store enforces it), which is what serialises rotations across
/// service nodes. The service works on typed states that hold exactly what each phase
/// knows (the new uid only from `NewKeyActive` on) and converts at the store's boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIntent {
    /// Intent id.
    pub id: ObjectId,
    /// The cluster whose key changes.
    pub cluster_id: ObjectId,
    /// The KMIP Name the new key gets (unique per intent, so Locate finds exactly it).
    pub key_name: String,
    /// The master key current when the intent was written (None for a first key).
    pub previous_uid: Option<KmipUid>,
    /// The new key's uid, once created.
    pub new_uid: Option<KmipUid>,
    /// Progress.
    pub phase: IntentPhase,
    /// Why.
    pub rotation_type: RotationType,
    /// Who asked.
    pub requested_by: String,
    /// When it was written.
    pub created: OffsetDateTime,
}

/// A role a user holds, for one group or globally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    /// The role.
    pub role: Role,
    /// The group, for group roles.
    pub group_id: Option<ObjectId>,
}

/// An API user. Only what digest verification needs is stored, never the API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User id.
    pub id: ObjectId,
    /// Unique username.
    pub username: String,
    /// MD5(username:realm:apiKey).
    pub ha1_md5: Vec<u8>,
    /// SHA-256(username:realm:apiKey).
    pub ha1_sha256: Vec<u8>,
    /// Roles.
    pub roles: Vec<RoleAssignment>,
    /// Addresses and CIDR blocks the user may call from (empty: anywhere).
    pub access_list: Vec<String>,
    /// Creation time.
    pub created: OffsetDateTime,
}

/// One audit event. The store chains events by hash, so none can be changed or removed
/// unnoticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Event id.
    pub id: ObjectId,
    /// When.
    pub created: OffsetDateTime,
    /// Ops Manager's event type name where one exists (`RS_ROTATE_MASTER_KEY_AUDIT`).
    pub event_type: String,
    /// Group concerned.
    pub group_id: Option<ObjectId>,
    /// Cluster concerned.
    pub cluster_id: Option<ObjectId>,
    /// Acting user.
    pub username: Option<String>,
    /// Source address of the request.
    pub remote_address: Option<String>,
    /// `SUCCESS` or `FAILURE`.
    pub outcome: String,
    /// Master key before.
    pub old_key_uid: Option<KmipUid>,
    /// Master key after.
    pub new_key_uid: Option<KmipUid>,
    /// Free text (never secrets).
    pub detail: Option<String>,
}

/// A page request: 1-based page number and page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based.
    pub num: u32,
    /// Items per page.
    pub size: u32,
}

impl Page {
    /// Offset of the first item.
    pub fn offset(&self) -> u64 {
        u64::from(self.num.saturating_sub(1)) * u64::from(self.size)
    }
}

impl Default for Page {
    fn default() -> Self {
        Page { num: 1, size: 100 }
    }
}

/// The id of a chunk: the keyed BLAKE3 hash of its plaintext (see docs/design.md,
/// "Chunking and chunk ids"). Printed as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 32]);

impl std::fmt::Display for ChunkId {
    /// 64 lowercase hex digits, written through a stack buffer (a manifest has one per
    /// chunk of every file: `hex::encode`'s `String` of `char`s cost more than the rest
    /// of the entry's JSON).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buf = [0u8; 64];
        hex::encode_to_slice(self.0, &mut buf).map_err(|_| std::fmt::Error)?;
        f.write_str(std::str::from_utf8(&buf).map_err(|_| std::fmt::Error)?)
    }
}

impl std::fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChunkId({self})")
    }
}

impl std::str::FromStr for ChunkId {
    type Err = crate::id::InvalidObjectId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b)
            .map_err(|_| crate::id::InvalidObjectId(s.chars().take(80).collect()))?;
        Ok(ChunkId(b))
    }
}

/// What a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    /// A directory tree (uploaded as a tar stream).
    Tree,
    /// One byte stream (e.g. `mongodump --archive`).
    Stream,
}

impl SnapshotKind {
    /// Storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Tree => "tree",
            SnapshotKind::Stream => "stream",
        }
    }

    /// Parses the storage spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "tree" => Some(SnapshotKind::Tree),
            "stream" => Some(SnapshotKind::Stream),
            _ => None,
        }
    }
}

/// A snapshot of one cluster (a replica set, a shard or a config server replica set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// Snapshot id.
    pub id: ObjectId,
    /// Group.
    pub group_id: ObjectId,
    /// Cluster.
    pub cluster_id: ObjectId,
    /// When the backup started.
    pub created: OffsetDateTime,
    /// Tree or stream.
    pub kind: SnapshotKind,
    /// Plaintext bytes in the snapshot (`dataSizeBytes`).
    pub data_size_bytes: u64,
    /// Sealed bytes this snapshot added to storage (`storageSizeBytes`): new chunks only.
    pub stored_size_bytes: u64,
    /// Sealed bytes of every chunk the snapshot uses (`fileSizeBytes`).
    pub file_size_bytes: u64,
    /// When it may be deleted by retention (None: never).
    pub expires: Option<OffsetDateTime>,
    /// `doNotDelete`.
    pub do_not_delete: bool,
    /// The data key that encrypts its chunks and manifest.
    pub data_key_id: ObjectId,
}

/// Where one sealed chunk record lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkLocation {
    /// Cluster.
    pub cluster_id: ObjectId,
    /// Chunk id.
    pub chunk_id: ChunkId,
    /// Pack object id (`packs/<cluster>/<pack id>`).
    pub pack_id: ObjectId,
    /// Offset of the record (its length prefix) in the pack.
    pub offset: u64,
    /// Length of the whole record, length prefix included.
    pub length: u32,
    /// Plaintext length of the chunk.
    pub plaintext_length: u32,
    /// The snapshot that stored it (bound into the record's associated data).
    pub stored_by: ObjectId,
}

wire_enum!(
    /// `statusName` of a re-encryption job (compromise recovery).
    ReencryptionStatus {
        /// Snapshots are still being rewritten under the new data key.
        Running = "RUNNING",
        /// Every snapshot is under the new data key; the old data keys are deleted.
        Finished = "FINISHED",
        /// Stopped for good (a damaged snapshot, or the cluster went away); the old data
        /// keys are kept.
        Failed = "FAILED",
    }
);

/// A re-encryption job: after a compromise, rewrites every snapshot of a cluster that is
/// not under `new_data_key_id` under it, one snapshot at a time (see docs/design.md,
/// "Compromise recovery").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReencryptionJob {
    /// Job id.
    pub id: ObjectId,
    /// Group.
    pub group_id: ObjectId,
    /// Cluster (a replica set, a shard or a config server replica set).
    pub cluster_id: ObjectId,
    /// The data key every snapshot ends up under.
    pub new_data_key_id: ObjectId,
    /// Progress.
    pub status: ReencryptionStatus,
    /// When the job was created.
    pub created: OffsetDateTime,
    /// When it finished or failed.
    pub finished: Option<OffsetDateTime>,
    /// Snapshots to rewrite (at creation; what was done once it finished).
    pub snapshots_total: u64,
    /// Snapshots rewritten.
    pub snapshots_done: u64,
    /// Plaintext bytes of the snapshots to rewrite (at creation; what was done once it
    /// finished).
    pub bytes_total: u64,
    /// Plaintext bytes of the snapshots rewritten.
    pub bytes_done: u64,
    /// Who asked.
    pub requested_by: String,
    /// Why it failed (never secrets).
    pub error: Option<String>,
}

/// A restore job: a one-time download of a snapshot's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreJob {
    /// Job id.
    pub id: ObjectId,
    /// Group.
    pub group_id: ObjectId,
    /// Cluster.
    pub cluster_id: ObjectId,
    /// Snapshot to restore.
    pub snapshot_id: ObjectId,
    /// Creation time.
    pub created: OffsetDateTime,
    /// When the download link stops working.
    pub expires: OffsetDateTime,
    /// SHA-256 of the download token (the token itself is only in the link).
    pub token_sha256: Vec<u8>,
    /// Downloads allowed.
    pub max_downloads: u32,
    /// Downloads started.
    pub downloads: u32,
    /// Who asked.
    pub requested_by: String,
}

/// The master key lifecycle settings of a cluster: extension fields of its backup config
/// (`encryptionKeyRotationPeriodDays`, `retiredKeyDestroyAfterDays`). 0 turns each off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyLifecycleSettings {
    /// Rotate the master key automatically this many days after the current one was
    /// made (0: never).
    pub rotation_period_days: u32,
    /// Destroy a retired master key in the KMIP server this many days after its
    /// retirement, once nothing references it (0: never).
    pub retired_key_destroy_after_days: u32,
}

/// What the key state watch found wrong with a cluster's current master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStateError {
    /// The cluster.
    pub cluster_id: ObjectId,
    /// The key the finding is about (an error about a key no longer current is stale).
    pub kmip_uid: KmipUid,
    /// What is wrong, naming the key, its state and the KMIP server.
    pub message: String,
    /// When it was first found.
    pub since: OffsetDateTime,
}

/// What became of a retired master key (absent: its destruction is still pending, or
/// off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetiredKeyFate {
    /// Claimed by the destruction job (found unreferenced); KMIP Destroy under way, or
    /// interrupted and to be finished.
    Destroying,
    /// Destroyed in the KMIP server.
    Destroyed,
    /// Its destruction was cancelled for good.
    Kept,
}

impl RetiredKeyFate {
    /// Storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RetiredKeyFate::Destroying => "DESTROYING",
            RetiredKeyFate::Destroyed => "DESTROYED",
            RetiredKeyFate::Kept => "KEPT",
        }
    }

    /// Parses the storage spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "DESTROYING" => RetiredKeyFate::Destroying,
            "DESTROYED" => RetiredKeyFate::Destroyed,
            "KEPT" => RetiredKeyFate::Kept,
            _ => return None,
        })
    }
}

/// A retired master key's fate and when it was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredKeyRecord {
    /// The cluster.
    pub cluster_id: ObjectId,
    /// The key.
    pub kmip_uid: KmipUid,
    /// Its fate.
    pub fate: RetiredKeyFate,
    /// When the fate was recorded (for `Destroyed`: when it was destroyed).
    pub changed: OffsetDateTime,
}

/// The answer of [`crate::store::KeyLifecycleStore::claim_key_destruction`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestructionClaim {
    /// The key is retired, unreferenced and not cancelled: now `Destroying`.
    Claimed,
    /// Something still references the key: it must not be destroyed.
    Referenced {
        /// Data keys it wraps.
        data_keys: u64,
        /// Snapshots whose data key it wraps.
        snapshots: u64,
    },
    /// The key already has a fate (cancelled, being destroyed, destroyed).
    Decided(RetiredKeyFate),
    /// No such key of the cluster, or it is the current key.
    NotRetired,
}
