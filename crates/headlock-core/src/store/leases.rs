//! [`LeaseStore`]: what several nodes on one database share: [`Lease`]s on pieces of
//! work, shared secrets, and a ping for readiness probes.
//!
//! Lease times are the caller's (`now`, each node's own clock), not the database's:
//! every comparison is between times some node passed in.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;

/// A named, time-limited claim of one node on a piece of work (a scheduled job, a
/// backup in progress, an unfinished key-change intent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What is leased, e.g. `intent:<id>` or `backup:<cluster>:<session>`. ASCII.
    pub name: String,
    /// Who holds it (a node id).
    pub holder: String,
    /// When it lapses unless renewed.
    pub expires: OffsetDateTime,
}

/// A lease the caller holds, to renew within a write of its work (see
/// [`KeyChange::lease`](super::KeyChange::lease)): the write applies only if the lease is
/// still the caller's, in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRenewal {
    /// The lease's name.
    pub name: String,
    /// Its holder (this node).
    pub holder: String,
    /// The caller's time now.
    pub now: OffsetDateTime,
    /// How long the renewed lease lasts from `now`.
    pub ttl: Duration,
}

/// Leases, shared secrets and a ping.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Answers when the database answers a trivial query (readiness probes).
    async fn ping(&self) -> Result<(), StoreError>;
    /// Takes, or renews, the lease `name` for `holder` until `now + ttl`, in one
    /// statement: it succeeds (`true`) if nobody holds the lease, if its holder let it
    /// expire (`expires <= now`), or if `holder` already holds it; otherwise `false` and
    /// nothing changes. Two nodes calling at once can never both get `true`.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<bool, StoreError>;
    /// Gives the lease back if `holder` holds it (no error if it does not).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;
    /// Leases whose name starts with `prefix` and that have not expired at `now`.
    async fn live_leases(
        &self,
        prefix: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Lease>, StoreError>;
    /// Deletes the leases whose name starts with `prefix` and that expired at or before
    /// `now` (names that are never taken again, such as digest nonce claims, would
    /// otherwise stay forever); returns how many went.
    async fn delete_expired_leases(
        &self,
        prefix: &str,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError>;
    /// The secret every node shares under `name` (HMAC keys for digest nonces and
    /// restore links): stores `candidate` (made at `now`) if there is none yet and
    /// returns whichever value is stored, so every node ends up with the first one
    /// written.
    async fn shared_secret(
        &self,
        name: &str,
        candidate: &[u8],
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, StoreError>;
}
