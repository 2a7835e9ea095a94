//! [`ServiceError`]: every way a service call fails, grouped by who is at fault.
//!
//! The groups follow rustls' habit (`PeerMisbehaved`, `PeerIncompatible`): the outer enum
//! says whose move it is, the inner one what exactly happened.
//!
//! | group | at fault | Ops Manager status |
//! |---|---|---|
//! | [`NotFound`] | the request names something that does not exist | 404 (410 for a spent delivery link) |
//! | [`BadRequest`] | the request itself | 400 |
//! | [`Denied`] | the caller's rights | 401, 403 |
//! | [`Conflict`] | the state of what the request names | 409 |
//! | [`Unavailable`] | a dependency: the KMIP server, the backup storage | 503, 507 |
//! | [`Internal`] | us: the metadata store, damaged stored data, a bug | 500 |
//!
//! The `errorCode`, status and `parameters` of each variant are decided in one place, the
//! API crate's error module (`headlock-api/src/error.rs`), which matches every variant; a
//! test there checks them against the error table of `docs/api.md`. The enums are
//! therefore not `#[non_exhaustive]`: a new variant must break that match.

use std::fmt;

use headlock_core::keys::KmipUid;
use headlock_core::model::BackupStatus;
use headlock_core::{KeyManagerError, ObjectId, StoreError};

/// A failed service call.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// What the request names does not exist.
    #[error(transparent)]
    NotFound(#[from] NotFound),
    /// The request is malformed or incomplete.
    #[error(transparent)]
    BadRequest(#[from] BadRequest),
    /// The caller may not do this.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The request does not fit the current state.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// A dependency failed; nothing was changed.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// Our failure: the metadata store, damaged data, a bug.
    #[error(transparent)]
    Internal(#[from] Internal),
}

/// An id as the request named it: parsed, or the text that did not parse (echoed back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestedId {
    /// A well-formed id.
    Valid(ObjectId),
    /// Text that is not an id, truncated for the error body.
    Invalid(String),
}

impl From<ObjectId> for RequestedId {
    fn from(id: ObjectId) -> Self {
        RequestedId::Valid(id)
    }
}

impl fmt::Display for RequestedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestedId::Valid(id) => id.fmt(f),
            RequestedId::Invalid(text) => f.write_str(text),
        }
    }
}

/// What the request names does not exist. Variants name the Ops Manager error code.
#[derive(Debug, thiserror::Error)]
pub enum NotFound {
    /// `INVALID_GROUP_ID` (404): the text as given, which is not an id.
    #[error("{0} is not a valid group id")]
    InvalidGroupId(String),
    /// `GROUP_NOT_FOUND` (404).
    #[error("No group with ID {0} exists.")]
    Group(ObjectId),
    /// `GROUP_NOT_FOUND` for a name (404).
    #[error("No group with name {0} exists.")]
    GroupName(String),
    /// `INVALID_CLUSTER_ID` (404): the text as given, which is not an id.
    #[error("{0} is not a valid cluster id")]
    InvalidClusterId(String),
    /// `CLUSTER_NOT_FOUND` (404).
    #[error("No cluster with ID {cluster} exists in group {group}.")]
    Cluster {
        /// Cluster id.
        cluster: ObjectId,
        /// Group id.
        group: ObjectId,
    },
    /// `BACKUP_CONFIG_NOT_FOUND` (404).
    #[error("No backup configuration for cluster {cluster} exists in group {group}.")]
    BackupConfig {
        /// Cluster id.
        cluster: ObjectId,
        /// Group id.
        group: ObjectId,
    },
    /// `EVENT_NOT_FOUND` (404).
    #[error("No event with ID {0} exists in this group.")]
    Event(RequestedId),
    /// `SNAPSHOT_NOT_FOUND` (404).
    #[error("No snapshot with ID {0} exists for this cluster.")]
    Snapshot(RequestedId),
    /// `RESTORE_JOB_NOT_FOUND` (404).
    #[error("No restore job with ID {0} exists for this cluster.")]
    RestoreJob(RequestedId),
    /// `REENCRYPTION_JOB_NOT_FOUND` (404).
    #[error("No re-encryption job with ID {0} exists for this cluster.")]
    ReencryptionJob(RequestedId),
    /// `USER_NOT_FOUND` (404).
    #[error("No user with username {0} exists.")]
    User(String),
    /// `MASTER_KEY_NOT_FOUND` (404): no master key with that id in the cluster's history.
    #[error("No master key with ID {0} exists for this cluster.")]
    MasterKey(KmipUid),
    /// `UPLOAD_SESSION_NOT_FOUND` (404): the upload session is unknown, committed,
    /// deleted or expired.
    #[error(
        "No upload session with ID {0} is open for this cluster (unknown, committed, deleted or idle too long); open a new one."
    )]
    UploadSession(RequestedId),
    /// `RESTORE_LINK_EXPIRED` (410): the download link is unknown, used or expired.
    #[error("This restore link is unknown, expired, or already used; create a new restore job.")]
    RestoreLinkGone,
}

/// The request is malformed or incomplete.
#[derive(Debug, thiserror::Error)]
pub enum BadRequest {
    /// `INVALID_ATTRIBUTE` (400): a request field is wrong.
    #[error("{0}")]
    InvalidInput(String),
    /// `UPLOAD_INTERRUPTED` (400): the body ended early or could not be read.
    #[error("The upload was interrupted: {0}")]
    UploadInterrupted(String),
    /// `CHUNK_ID_MISMATCH` (400): an uploaded chunk does not hash to the id it was sent
    /// under (the hex id it was sent under).
    #[error("Chunk {0} does not hash to its id; nothing of this request was kept.")]
    ChunkIdMismatch(String),
}

/// The caller may not do this.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    /// `NOT_IN_GROUP` (401): the user is not in the group (or it does not exist).
    #[error("Current user is not in the group, or the group does not exist.")]
    NotInGroup,
    /// `USER_UNAUTHORIZED` (403): the user's roles do not allow this.
    #[error("Current user is not authorized to perform this action.")]
    Forbidden,
}

/// What a name is already taken by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicated {
    /// `DUPLICATE_GROUP_NAME`.
    GroupName,
    /// `DUPLICATE_CLUSTER_NAME`.
    ClusterName,
    /// `DUPLICATE_USERNAME`.
    Username,
}

/// The request does not fit the current state (409).
#[derive(Debug, thiserror::Error)]
pub enum Conflict {
    /// `DUPLICATE_GROUP_NAME` / `DUPLICATE_CLUSTER_NAME` / `DUPLICATE_USERNAME`.
    #[error("{message}")]
    Duplicate {
        /// Which name is taken.
        what: Duplicated,
        /// Message.
        message: String,
    },
    /// `CANNOT_MODIFY_SHARD_BACKUP_CONFIG`: use the whole cluster's id.
    #[error(
        "Cannot modify backup configuration for individual shard; use cluster ID {whole_cluster} for entire cluster."
    )]
    CannotModifyShardBackupConfig {
        /// The whole sharded cluster's id.
        whole_cluster: ObjectId,
    },
    /// `CANNOT_BACKUP_ENCRYPTION_DISABLED`.
    #[error("Cluster {0} does not have backup encryption enabled; enable it before backing up.")]
    EncryptionDisabledBackup(ObjectId),
    /// `CANNOT_ROTATE_KEY_ENCRYPTION_DISABLED`.
    #[error("Cannot rotate the master key of cluster {0}: backup encryption is not enabled.")]
    EncryptionDisabledRotate(ObjectId),
    /// `CANNOT_GET_KEY_ENCRYPTION_DISABLED`.
    #[error("Cluster {0} has no master key: backup encryption is not enabled.")]
    EncryptionDisabledGet(ObjectId),
    /// `CANNOT_DISABLE_ENCRYPTION_SNAPSHOTS_EXIST`.
    #[error("Cluster {0} has encrypted snapshots; encryption cannot be disabled while they exist.")]
    EncryptionHasSnapshots(ObjectId),
    /// `CANNOT_DELETE_SNAPSHOT_DO_NOT_DELETE`.
    #[error("Snapshot {0} is marked doNotDelete.")]
    SnapshotProtected(ObjectId),
    /// `CANNOT_START_BACKUP_INVALID_STATE` and its siblings for `statusName` changes
    /// (`INVALID_ATTRIBUTE` for a status that cannot be requested).
    #[error("Cannot change backup status from {from} to {to}.")]
    InvalidStatusTransition {
        /// Current status.
        from: BackupStatus,
        /// Requested status.
        to: BackupStatus,
    },
    /// `KEY_CHANGE_IN_PROGRESS`: another rotation of the same cluster is under way
    /// (or the current key changed while this one ran); retry.
    #[error("A master key change for cluster {0} is already in progress; retry shortly.")]
    KeyChangeInProgress(ObjectId),
    /// `CANNOT_DELETE_CLUSTER`.
    #[error("{0}")]
    CannotDeleteCluster(String),
    /// `ENCRYPTION_KEY_NOT_ACTIVE`: the cluster's current master key is not Active
    /// in the KMIP server (or is missing there); rotate it before backing up.
    #[error(
        "Cluster {cluster} cannot be backed up: {detail} Rotate its master key (PUT .../encryptionKey) to clear this."
    )]
    EncryptionKeyNotActive {
        /// The cluster.
        cluster: ObjectId,
        /// What the key state watch found.
        detail: String,
    },
    /// `CANNOT_CANCEL_KEY_DESTRUCTION`: the key is current, or already destroyed.
    #[error("{0}")]
    CannotCancelKeyDestruction(String),
    /// `UPLOAD_SESSION_STALE`: the cluster's data key changed since the upload session
    /// began (compromise recovery); a new session hands out the new keys.
    #[error(
        "Upload session {0} was opened under a data key that is no longer the cluster's newest (compromise recovery); open a new session."
    )]
    UploadSessionStale(ObjectId),
    /// `CHUNKS_NOT_STORED`: a commit names chunks the cluster does not have (or with
    /// another length).
    #[error(
        "{count} chunk(s) named by the manifest are not stored for the cluster (first: {first}); upload them and commit again."
    )]
    ChunksNotStored {
        /// The first one found (hex id).
        first: String,
        /// How many.
        count: u64,
    },
}

/// A dependency failed; nothing already stored was changed.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// `KMIP_SERVER_UNAVAILABLE` (503): the KMIP server could not be reached or refused.
    #[error("{0}")]
    KeyManager(#[from] KeyManagerError),
    /// `STORAGE_UNAVAILABLE` (503): the backup storage failed.
    #[error("The backup storage failed: {0}")]
    Storage(String),
    /// `STORAGE_FULL` (507): no space left (the text names what was being written).
    #[error("The backup storage is full (writing {0}); nothing already stored was changed.")]
    StorageFull(String),
}

/// Our failure (500).
#[derive(Debug, thiserror::Error)]
pub enum Internal {
    /// `UNEXPECTED_ERROR`: a metadata store failure; the text is logged, never returned.
    #[error("internal error: {0}")]
    Store(StoreError),
    /// `SNAPSHOT_DAMAGED`: stored data failed its checks; the detail names the pack or
    /// manifest.
    #[error("Stored data is damaged: {0}")]
    SnapshotDamaged(String),
    /// `UNEXPECTED_ERROR`: anything else (e.g. a data key that does not unwrap); the text
    /// is logged, never returned.
    #[error("internal error: {0}")]
    Unexpected(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        ServiceError::Internal(Internal::Store(e))
    }
}

impl From<KeyManagerError> for ServiceError {
    fn from(e: KeyManagerError) -> Self {
        ServiceError::Unavailable(Unavailable::KeyManager(e))
    }
}

impl ServiceError {
    /// `UNEXPECTED_ERROR` with this text (logged, never returned).
    pub fn unexpected(text: String) -> Self {
        ServiceError::Internal(Internal::Unexpected(text))
    }

    /// `INVALID_ATTRIBUTE` with this text.
    pub fn invalid_input(text: String) -> Self {
        ServiceError::BadRequest(BadRequest::InvalidInput(text))
    }

    /// Whether the same call may succeed if repeated shortly: a dependency failed in a
    /// way that can clear by itself, and nothing was changed. What the caller got wrong,
    /// what the state forbids (including [`Conflict::KeyChangeInProgress`]: repeating it
    /// would make a second change after the one under way), damaged data and bugs are not.
    pub fn is_transient(&self) -> bool {
        match self {
            ServiceError::Unavailable(u) => match u {
                Unavailable::KeyManager(e) => e.is_transient(),
                Unavailable::Storage(_) => true,
                Unavailable::StorageFull(_) => false,
            },
            ServiceError::Internal(i) => match i {
                Internal::Store(e) => store_error_is_transient(e),
                Internal::SnapshotDamaged(_) | Internal::Unexpected(_) => false,
            },
            ServiceError::NotFound(_)
            | ServiceError::BadRequest(_)
            | ServiceError::Denied(_)
            | ServiceError::Conflict(_) => false,
        }
    }
}

/// Whether a metadata store failure may clear by itself, seen from a service call: a
/// transaction the database aborted ([`StoreError::is_transient`], already retried by the
/// store) or a database out of reach (connection, disk) may; a broken rule, a lost race or
/// a missing record will not.
fn store_error_is_transient(e: &StoreError) -> bool {
    e.is_transient() || matches!(e, StoreError::Backend(_))
}
