//! [`ServiceError`]: every way a service call fails, in the API's vocabulary.

use headlock_core::{KeyManagerError, StoreError};

/// A failed service call. Variants name the Ops Manager error code they map to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// `INVALID_GROUP_ID` (404).
    #[error("{0} is not a valid group id")]
    InvalidGroupId(String),
    /// `GROUP_NOT_FOUND` (404).
    #[error("No group with ID {0} exists.")]
    GroupNotFound(String),
    /// `GROUP_NOT_FOUND` for a name (404).
    #[error("No group with name {0} exists.")]
    GroupNameNotFound(String),
    /// `INVALID_CLUSTER_ID` (404).
    #[error("{0} is not a valid cluster id")]
    InvalidClusterId(String),
    /// `CLUSTER_NOT_FOUND` (404).
    #[error("No cluster with ID {cluster} exists in group {group}.")]
    ClusterNotFound {
        /// Cluster id as given.
        cluster: String,
        /// Group id.
        group: String,
    },
    /// `BACKUP_CONFIG_NOT_FOUND` (404).
    #[error("No backup configuration for cluster {cluster} exists in group {group}.")]
    BackupConfigNotFound {
        /// Cluster id.
        cluster: String,
        /// Group id.
        group: String,
    },
    /// `EVENT_NOT_FOUND` (404).
    #[error("No event with ID {0} exists in this group.")]
    EventNotFound(String),
    /// `SNAPSHOT_NOT_FOUND` (404).
    #[error("No snapshot with ID {0} exists for this cluster.")]
    SnapshotNotFound(String),
    /// `RESTORE_JOB_NOT_FOUND` (404).
    #[error("No restore job with ID {0} exists for this cluster.")]
    RestoreJobNotFound(String),
    /// `REENCRYPTION_JOB_NOT_FOUND` (404).
    #[error("No re-encryption job with ID {0} exists for this cluster.")]
    ReencryptionJobNotFound(String),
    /// `RESTORE_LINK_EXPIRED` (410): the download link is unknown, used or expired.
    #[error("This restore link is unknown, expired, or already used; create a new restore job.")]
    RestoreLinkGone,
    /// `CANNOT_BACKUP_ENCRYPTION_DISABLED` (409).
    #[error("Cluster {0} does not have backup encryption enabled; enable it before backing up.")]
    EncryptionDisabledBackup(String),
    /// `CANNOT_DISABLE_ENCRYPTION_SNAPSHOTS_EXIST` (409).
    #[error("Cluster {0} has encrypted snapshots; encryption cannot be disabled while they exist.")]
    EncryptionHasSnapshots(String),
    /// `CANNOT_DELETE_SNAPSHOT_DO_NOT_DELETE` (409).
    #[error("Snapshot {0} is marked doNotDelete.")]
    SnapshotProtected(String),
    /// `SNAPSHOT_DAMAGED` (500-class, 409 here): stored data failed its checks.
    #[error("Stored data is damaged: {0}")]
    SnapshotDamaged(String),
    /// `UPLOAD_INTERRUPTED` (400): the body ended early or could not be read.
    #[error("The upload was interrupted: {0}")]
    UploadInterrupted(String),
    /// `STORAGE_FULL` (507): no space left; nothing already stored was harmed.
    #[error("The backup storage is full (writing {0}); nothing already stored was changed.")]
    StorageFull(String),
    /// `STORAGE_UNAVAILABLE` (503).
    #[error("The backup storage failed: {0}")]
    Storage(String),
    /// `USER_NOT_FOUND` (404).
    #[error("No user with username {0} exists.")]
    UserNotFound(String),
    /// `NOT_IN_GROUP` (401): the user is not in the group (or it does not exist).
    #[error("Current user is not in the group, or the group does not exist.")]
    NotInGroup,
    /// `USER_UNAUTHORIZED` (403): the user's roles do not allow this.
    #[error("Current user is not authorized to perform this action.")]
    Forbidden,
    /// `INVALID_ATTRIBUTE` / `MISSING_ATTRIBUTE` (400): a request field is wrong.
    #[error("{0}")]
    InvalidInput(String),
    /// `DUPLICATE_GROUP_NAME` / `DUPLICATE_CLUSTER_NAME` / `DUPLICATE_USERNAME` (409).
    #[error("{message}")]
    Duplicate {
        /// Error code.
        code: &'static str,
        /// Message.
        message: String,
    },
    /// `CANNOT_MODIFY_SHARD_BACKUP_CONFIG` (409): use the whole cluster's id.
    #[error(
        "Cannot modify backup configuration for individual shard; use cluster ID {whole_cluster} for entire cluster."
    )]
    CannotModifyShardBackupConfig {
        /// The whole sharded cluster's id.
        whole_cluster: String,
    },
    /// `CANNOT_ROTATE_KEY_ENCRYPTION_DISABLED` (409).
    #[error("Cannot rotate the master key of cluster {0}: backup encryption is not enabled.")]
    EncryptionDisabledRotate(String),
    /// `CANNOT_GET_KEY_ENCRYPTION_DISABLED` (409).
    #[error("Cluster {0} has no master key: backup encryption is not enabled.")]
    EncryptionDisabledGet(String),
    /// `CANNOT_START_BACKUP_INVALID_STATE` and its siblings (409) for `statusName` changes.
    #[error("Cannot change backup status from {from} to {to}.")]
    InvalidStatusTransition {
        /// Current status.
        from: &'static str,
        /// Requested status.
        to: &'static str,
    },
    /// `KEY_CHANGE_IN_PROGRESS` (409): another rotation of the same cluster is under way
    /// (or the current key changed while this one ran); retry.
    #[error("A master key change for cluster {0} is already in progress; retry shortly.")]
    KeyChangeInProgress(String),
    /// `CANNOT_DELETE_CLUSTER` (409).
    #[error("{0}")]
    CannotDelete(String),
    /// `ENCRYPTION_KEY_NOT_ACTIVE` (409): the cluster's current master key is not Active
    /// in the KMIP server (or is missing there); rotate it before backing up.
    #[error(
        "Cluster {cluster} cannot be backed up: {detail} Rotate its master key (PUT .../encryptionKey) to clear this."
    )]
    EncryptionKeyNotActive {
        /// The cluster.
        cluster: String,
        /// What the key state watch found.
        detail: String,
    },
    /// `MASTER_KEY_NOT_FOUND` (404): no master key with that id in the cluster's history.
    #[error("No master key with ID {0} exists for this cluster.")]
    MasterKeyNotFound(String),
    /// `CANNOT_CANCEL_KEY_DESTRUCTION` (409): the key is current, or already destroyed.
    #[error("{0}")]
    CannotCancelKeyDestruction(String),
    /// `KMIP_SERVER_UNAVAILABLE` (503): the KMIP server could not be reached or refused;
    /// nothing was changed.
    #[error("{0}")]
    KeyManager(#[from] KeyManagerError),
    /// `UNEXPECTED_ERROR` (500): a store failure; the text is logged, never returned.
    #[error("internal error: {0}")]
    Store(StoreError),
    /// `UNEXPECTED_ERROR` (500): anything else (e.g. a data key that does not unwrap).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        ServiceError::Store(e)
    }
}

impl ServiceError {
    /// The Ops Manager `errorCode`.
    pub fn code(&self) -> &'static str {
        use ServiceError::*;
        match self {
            InvalidGroupId(_) => "INVALID_GROUP_ID",
            GroupNotFound(_) | GroupNameNotFound(_) => "GROUP_NOT_FOUND",
            InvalidClusterId(_) => "INVALID_CLUSTER_ID",
            ClusterNotFound { .. } => "CLUSTER_NOT_FOUND",
            BackupConfigNotFound { .. } => "BACKUP_CONFIG_NOT_FOUND",
            UserNotFound(_) => "USER_NOT_FOUND",
            EventNotFound(_) => "EVENT_NOT_FOUND",
            SnapshotNotFound(_) => "SNAPSHOT_NOT_FOUND",
            RestoreJobNotFound(_) => "RESTORE_JOB_NOT_FOUND",
            ReencryptionJobNotFound(_) => "REENCRYPTION_JOB_NOT_FOUND",
            RestoreLinkGone => "RESTORE_LINK_EXPIRED",
            EncryptionDisabledBackup(_) => "CANNOT_BACKUP_ENCRYPTION_DISABLED",
            EncryptionHasSnapshots(_) => "CANNOT_DISABLE_ENCRYPTION_SNAPSHOTS_EXIST",
            SnapshotProtected(_) => "CANNOT_DELETE_SNAPSHOT_DO_NOT_DELETE",
            SnapshotDamaged(_) => "SNAPSHOT_DAMAGED",
            UploadInterrupted(_) => "UPLOAD_INTERRUPTED",
            StorageFull(_) => "STORAGE_FULL",
            Storage(_) => "STORAGE_UNAVAILABLE",
            NotInGroup => "NOT_IN_GROUP",
            Forbidden => "USER_UNAUTHORIZED",
            InvalidInput(_) => "INVALID_ATTRIBUTE",
            Duplicate { code, .. } => code,
            CannotModifyShardBackupConfig { .. } => "CANNOT_MODIFY_SHARD_BACKUP_CONFIG",
            EncryptionDisabledRotate(_) => "CANNOT_ROTATE_KEY_ENCRYPTION_DISABLED",
            EncryptionDisabledGet(_) => "CANNOT_GET_KEY_ENCRYPTION_DISABLED",
            InvalidStatusTransition { to, .. } => match *to {
                "STARTED" => "CANNOT_START_BACKUP_INVALID_STATE",
                "STOPPED" => "CANNOT_STOP_BACKUP_INVALID_STATE",
                "TERMINATING" => "CANNOT_TERMINATE_BACKUP_INVALID_STATE",
                _ => "INVALID_ATTRIBUTE",
            },
            KeyChangeInProgress(_) => "KEY_CHANGE_IN_PROGRESS",
            CannotDelete(_) => "CANNOT_DELETE_CLUSTER",
            EncryptionKeyNotActive { .. } => "ENCRYPTION_KEY_NOT_ACTIVE",
            MasterKeyNotFound(_) => "MASTER_KEY_NOT_FOUND",
            CannotCancelKeyDestruction(_) => "CANNOT_CANCEL_KEY_DESTRUCTION",
            KeyManager(_) => "KMIP_SERVER_UNAVAILABLE",
            Store(_) | Internal(_) => "UNEXPECTED_ERROR",
        }
    }

    /// The error's `parameters`, as Ops Manager lists them.
    pub fn parameters(&self) -> Vec<String> {
        use ServiceError::*;
        match self {
            InvalidGroupId(g) | GroupNotFound(g) | GroupNameNotFound(g) => vec![g.clone()],
            InvalidClusterId(c) => vec![c.clone()],
            ClusterNotFound { cluster, group } | BackupConfigNotFound { cluster, group } => {
                vec![cluster.clone(), group.clone()]
            }
            CannotModifyShardBackupConfig { whole_cluster } => vec![whole_cluster.clone()],
            EncryptionDisabledRotate(c) | EncryptionDisabledGet(c) | KeyChangeInProgress(c) => {
                vec![c.clone()]
            }
            UserNotFound(u)
            | EventNotFound(u)
            | SnapshotNotFound(u)
            | RestoreJobNotFound(u)
            | ReencryptionJobNotFound(u)
            | SnapshotProtected(u) => {
                vec![u.clone()]
            }
            EncryptionDisabledBackup(c) | EncryptionHasSnapshots(c) => vec![c.clone()],
            EncryptionKeyNotActive { cluster, .. } => vec![cluster.clone()],
            MasterKeyNotFound(k) => vec![k.clone()],
            _ => Vec::new(),
        }
    }
}
