//! The records the service keeps, as one small trait per aggregate (restic's `Loader` /
//! `Saver` habit), and [`MetadataStore`], all of them at once.
//!
//! `headlock-store` implements every trait on SQL (SQLite by default). Every method is
//! one transaction; the methods that change keys take everything that must change
//! together, so that no crash can leave a cluster half-rotated. A method never reads the
//! clock: every time it records (a key's retirement, a claim, a lease's expiry) comes
//! from the caller.
//!
//! | trait | file | what it keeps |
//! |---|---|---|
//! | [`GroupStore`] | `groups.rs` | groups, clusters and their backup configs |
//! | [`KeyStore`] | `keys.rs` | master and data key records, key-change intents, the key change ([`KeyChange`]) |
//! | [`KeyLifecycleStore`] | `lifecycle.rs` | rotation and destruction settings, key state findings, retired keys' fates |
//! | [`ReencryptionStore`] | `reencryption.rs` | re-encryption jobs (compromise recovery), [`ReencryptCommit`], [`ReencryptFinish`] |
//! | [`SnapshotStore`] | `snapshots.rs` | snapshots, their chunks ([`SnapshotCommit`]), garbage collection, restore jobs |
//! | [`AuditStore`] | `audit.rs` | the hash-chained audit log |
//! | [`LeaseStore`] | `leases.rs` | what several nodes on one database share: [`Lease`]s, shared secrets, a ping |
//! | [`UserStore`] | `users.rs` | API users |
//!
//! A caller that needs one aggregate can take just its trait; one that needs several
//! takes [`MetadataStore`] (e.g. `Arc<dyn MetadataStore>`), which every type that
//! implements all of them implements.

use crate::model::ChunkId;

mod audit;
mod groups;
mod keys;
mod leases;
mod lifecycle;
mod reencryption;
mod snapshots;
mod users;

pub use audit::AuditStore;
pub use groups::GroupStore;
pub use keys::{KeyChange, KeyStore};
pub use leases::{Lease, LeaseRenewal, LeaseStore};
pub use lifecycle::KeyLifecycleStore;
pub use reencryption::{ReencryptCommit, ReencryptFinish, ReencryptionStore};
pub use snapshots::{SnapshotCommit, SnapshotStore};
pub use users::UserStore;

/// Store failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness rule would be broken; which one says what the caller lost to.
    #[error("conflict: {0}")]
    Conflict(Conflict),
    /// A conditional change found the record changed underneath it (e.g. the current master
    /// key is no longer the one the rotation started from).
    #[error("precondition failed: {0}")]
    Precondition(String),
    /// The record does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The audit chain does not verify.
    #[error("audit chain broken at event {0}")]
    AuditChainBroken(String),
    /// The database rolled the whole transaction back in favour of a concurrent one
    /// (PostgreSQL: a deadlock victim or a serialization failure); running it again may
    /// succeed. The store runs a write transaction again a few times itself, so a caller
    /// sees this only once those runs are spent. The text is for the log.
    #[error("transaction aborted by the database: {0}")]
    Aborted(String),
    /// The database failed (connection, disk, corruption). The text is for the log.
    #[error("database error: {0}")]
    Backend(String),
}

/// The uniqueness rules of the store, as a [`StoreError::Conflict`] names them: a caller
/// matches the rule it may break, never a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Conflict {
    /// Another group has the name ([`GroupStore::insert_group`]).
    #[error("a group of that name exists")]
    GroupName,
    /// Another top-level cluster of the group has the name
    /// ([`GroupStore::insert_clusters`]).
    #[error("a cluster of that name exists in the group")]
    ClusterName,
    /// Another user has the username ([`UserStore::insert_user`]).
    #[error("a user of that name exists")]
    Username,
    /// The cluster already has a key-change intent: a key change is in flight
    /// ([`KeyStore::insert_intent`]).
    #[error("the cluster already has a key change in flight")]
    KeyChangeInFlight,
    /// The cluster already has a running re-encryption job
    /// ([`ReencryptionStore::insert_reencryption_job`]).
    #[error("the cluster already has a running re-encryption job")]
    ReencryptionJobRunning,
    /// A chunk a commit lists as new is already stored for the cluster (another commit
    /// stored it first).
    #[error("chunk {0} is already stored for the cluster")]
    ChunkStored(ChunkId),
    /// A commit lists the same new chunk twice.
    #[error("a new chunk is listed twice")]
    ChunkListedTwice,
    /// Chunks a commit uses are not stored for the cluster, or not with the plaintext
    /// length its manifest gives them ([`SnapshotCommit::lengths`]).
    #[error("{count} chunk(s) the snapshot uses are not stored for the cluster (first: {first})")]
    ChunksNotStored {
        /// The first, in id order.
        first: ChunkId,
        /// How many.
        count: u64,
    },
    /// Any other uniqueness rule (a record id already taken): a bug, not a race a caller
    /// expects. The text names the operation and the database's message, for the log.
    #[error("{0}")]
    Other(String),
}

impl From<Conflict> for StoreError {
    fn from(c: Conflict) -> Self {
        StoreError::Conflict(c)
    }
}

impl StoreError {
    /// Whether running the same operation again may succeed: only [`StoreError::Aborted`].
    /// Every other failure would repeat (a rule, a missing record) or is not the
    /// operation's to judge (a database out of reach is the caller's to wait for).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Aborted(_))
    }
}

/// Every aggregate of the store at once, for a caller that needs several (the service
/// holds an `Arc<dyn MetadataStore>`). Implemented for every type that implements all of
/// them; it has no methods of its own.
pub trait MetadataStore:
    GroupStore
    + KeyStore
    + KeyLifecycleStore
    + ReencryptionStore
    + SnapshotStore
    + AuditStore
    + LeaseStore
    + UserStore
    + 'static
{
}

impl<T> MetadataStore for T where
    T: GroupStore
        + KeyStore
        + KeyLifecycleStore
        + ReencryptionStore
        + SnapshotStore
        + AuditStore
        + LeaseStore
        + UserStore
        + 'static
{
}
