//! What Headlock does, with no HTTP and no SQL in sight.
//!
//! [`Service`] is the one entry point the API layer and the CLI call. The capabilities
//! that need the metadata store alone are types of their own, reached through it:
//! [`Service::users`], [`Service::groups`], [`Service::events`]. It owns the rules:
//! who may do what ([`access`]), how clusters and their backup configs are registered and
//! changed ([`clusters`]), how master keys are created and rotated ([`rotation`]: a
//! persisted intent before every KMIP call, one atomic commit, reconciliation of whatever a
//! crash left), snapshots ([`snapshots`]: backup, restore, verify, garbage collection),
//! users and their API keys ([`users`]), and the audit trail ([`events`]). Past Ops
//! Manager: the key lifecycle ([`lifecycle`]: schedule, key state watch, destruction of
//! retired keys, with "now" from a [`clock`]) and compromise recovery ([`compromise`]: a
//! resumable re-encryption job). Several nodes share one database through leases
//! ([`lease`]); the periodic jobs run from [`maintenance`]; [`health`] and [`metrics`]
//! feed the operator's endpoints. It talks to the world through three traits of
//! `headlock-core`: a [`MetadataStore`], a [`KeyManager`] and a blob store (the key
//! manager on real KMIP servers is the `headlock-kmip` crate's, handed in by the binary).
//!
//! Every failure is a [`ServiceError`], grouped by who is at fault ([`error`]: not found,
//! bad request, denied, conflict, a dependency unavailable, internal) with one variant per
//! Ops Manager error code (`CLUSTER_NOT_FOUND`, `CANNOT_ROTATE_KEY_ENCRYPTION_DISABLED`,
//! ...); the API layer owns the one mapping to a status, code and body.
#![deny(missing_docs)]

pub mod access;
pub mod cache;
pub mod clock;
pub mod clusters;
pub mod compromise;
pub mod error;
pub mod events;
pub mod groups;
pub mod health;
pub mod lease;
pub mod lifecycle;
pub mod maintenance;
pub mod metrics;
mod names;
pub mod rotation;
pub mod snapshots;
mod test_hooks;
pub mod users;

use std::sync::Arc;

use headlock_core::model::AuditEvent;
use headlock_core::{KeyManager, MetadataStore, ObjectId};

pub use access::Actor;
pub use error::ServiceError;

/// Result of service calls.
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// The service: rules on top of a metadata store and a key manager.
#[derive(Clone)]
pub struct Service {
    store: Arc<dyn MetadataStore>,
    keys: Arc<dyn KeyManager>,
    locks: rotation::ClusterLocks,
    /// This node's id: the holder of its leases (see [`lease`]).
    node_id: Arc<str>,
    /// Users and current keys, served from memory (see [`cache`]).
    cache: Arc<cache::ReadCache>,
    /// Where packs and manifests go (absent for offline commands).
    blobs: Option<Arc<dyn headlock_core::BlobStore>>,
    /// Where commits spool sealed manifests (see [`Service::with_spool_dir`]).
    spool_dir: Option<Arc<std::path::Path>>,
    /// Backups of a cluster share its lock; garbage collection takes it alone.
    snapshot_locks: rotation::ClusterRwLocks,
    /// Re-encryption jobs this process works on (see [`compromise`]).
    reencrypting: compromise::RunningJobs,
    /// The secret restore download tokens are derived from (see
    /// [`Service::with_link_secret`]).
    link_secret: Arc<zeroize::Zeroizing<[u8; 32]>>,
    /// "Now" for the key lifecycle's schedules (see [`clock`]).
    clock: Arc<dyn clock::Clock>,
    /// What the key lifecycle jobs keep in memory (see [`lifecycle`]).
    lifecycle: Arc<lifecycle::LifecycleState>,
    /// API users, on the same store and read cache (see [`users`]).
    users: users::Users,
    /// Groups, on the same store (see [`groups`]).
    groups: groups::Groups,
    /// The audit trail as the API reads it (see [`events`]).
    events: events::Events,
}

impl Service {
    /// A service over `store` whose master keys live in `keys`.
    pub fn new(store: Arc<dyn MetadataStore>, keys: Arc<dyn KeyManager>) -> Self {
        let cache = Arc::new(cache::ReadCache::new());
        let groups = groups::Groups::new(store.clone());
        Service {
            users: users::Users::sharing(store.clone(), cache.clone()),
            events: events::Events::new(store.clone(), groups.clone()),
            groups,
            store,
            keys,
            locks: rotation::ClusterLocks::default(),
            node_id: Arc::from(format!("node-{}", hex::encode(&random_secret()[..8]))),
            cache,
            blobs: None,
            spool_dir: None,
            snapshot_locks: rotation::ClusterRwLocks::default(),
            reencrypting: compromise::RunningJobs::default(),
            link_secret: Arc::new(zeroize::Zeroizing::new(random_secret())),
            clock: Arc::new(clock::SystemClock),
            lifecycle: Arc::default(),
        }
    }

    /// Sets where "now" comes from for the key lifecycle (schedules, destruction grace,
    /// master key creation times); the system clock by default.
    pub fn with_clock(mut self, clock: Arc<dyn clock::Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the secret that restore download tokens are derived from. `serve` keeps it
    /// in the data directory so that links survive a restart; without it a random one
    /// is used (links then die with the process).
    pub fn with_link_secret(mut self, secret: [u8; 32]) -> Self {
        self.link_secret = Arc::new(zeroize::Zeroizing::new(secret));
        self
    }

    /// API users (the API layer looks one up on every request).
    pub fn users(&self) -> &users::Users {
        &self.users
    }

    /// Groups (Ops Manager projects).
    pub fn groups(&self) -> &groups::Groups {
        &self.groups
    }

    /// The audit trail as the API reads it.
    pub fn events(&self) -> &events::Events {
        &self.events
    }

    /// The metadata store (for the CLI's offline commands).
    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    /// Where the master keys live, for logs.
    pub fn key_manager_description(&self) -> String {
        self.keys.describe()
    }

    /// Records a failed authentication (unknown user, wrong key, refused address).
    pub async fn record_auth_failure(
        &self,
        username: Option<&str>,
        remote: Option<&str>,
        detail: &str,
    ) {
        let event = audit_event(
            "AUTHENTICATION_FAILED",
            None,
            None,
            username,
            remote,
            "FAILURE",
            Some(detail),
        );
        if let Err(e) = self.store.append_audit(&event).await {
            tracing::error!(error = %e, "could not record an authentication failure in the audit trail");
        }
    }
}

/// Builds an audit event stamped now.
pub(crate) fn audit_event(
    event_type: &str,
    group_id: Option<ObjectId>,
    cluster_id: Option<ObjectId>,
    username: Option<&str>,
    remote: Option<&str>,
    outcome: &str,
    detail: Option<&str>,
) -> AuditEvent {
    AuditEvent {
        id: ObjectId::new(),
        created: now(),
        event_type: event_type.to_string(),
        group_id,
        cluster_id,
        username: username.map(str::to_string),
        remote_address: remote.map(str::to_string),
        outcome: outcome.to_string(),
        old_key_uid: None,
        new_key_uid: None,
        detail: detail.map(str::to_string),
    }
}

/// Now, truncated to microseconds (what the store keeps), so records compare equal
/// after a round trip.
pub(crate) fn now() -> time::OffsetDateTime {
    let t = time::OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000)
        .unwrap_or(t)
}

/// 32 bytes from the operating system's generator.
fn random_secret() -> [u8; 32] {
    let mut secret = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
        .expect("the system random generator failed");
    secret
}
