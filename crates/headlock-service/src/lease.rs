//! Leases: how several service nodes on one database agree on who does a piece of work.
//!
//! A lease is a row in the metadata store
//! ([`LeaseStore::acquire_lease`](headlock_core::store::LeaseStore::acquire_lease)): a
//! name, a holder (a node id) and an expiry. Taking one is a single conditional statement, so two
//! nodes can never both hold it. A `LeaseGuard` renews its lease in the background
//! every [`RENEW_EVERY`] while the work goes on, and gives it back when dropped; a node
//! that dies simply stops renewing, and [`LEASE_TTL`] later anyone may take over.
//!
//! What is leased:
//!
//! | name | held while | what it keeps out |
//! |---|---|---|
//! | `intent:<intent>` | a key change runs (taken before its intent row is written) | another node reconciling the intent as abandoned |
//! | `backup:<cluster>:<snapshot>` | a backup uploads and commits | garbage collection deleting its packs before the commit |
//! | `backup:<cluster>:<upload>` (holder `upload:<data key>`) | an upload session is open, [`SESSION_TTL`](crate::snapshots::SESSION_TTL) past its last request | collection deleting the session's chunks |
//! | `backup:<cluster>:<upload>:commit:<id>` | an upload's commit runs | a compromise recovery's job ending before that commit is counted |
//! | `job:<name>` | a periodic job runs ([`crate::maintenance`]) | the same job on another node at the same time |
//!
//! The node id is stable across restarts of one node (`serve` keeps it in the data
//! directory), so a node that restarts after a crash recognises the leases of its
//! previous life as its own and takes their work over at once instead of waiting for
//! them to lapse. Every expiry is computed from the node's own clock: node clocks must
//! agree to well within [`LEASE_TTL`] (NTP does).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use headlock_core::MetadataStore;
use headlock_core::store::LeaseRenewal;

use crate::{Result, Service};

/// How long a lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(30);

/// How often a held lease is renewed (a third of [`LEASE_TTL`], so two renewals may fail
/// before it lapses).
pub const RENEW_EVERY: Duration = Duration::from_secs(10);

/// A lease this node holds. Renewed in the background; released when dropped.
pub(crate) struct LeaseGuard {
    name: String,
    holder: String,
    store: Arc<dyn MetadataStore>,
    /// Set once a renewal found the lease taken by another node (or lapsed).
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl LeaseGuard {
    /// Renews the lease now: `false` if it was lost (the work must not commit).
    pub(crate) async fn confirm(&self) -> Result<bool> {
        if self.lost.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let held = self
            .store
            .acquire_lease(&self.name, &self.holder, crate::now(), LEASE_TTL)
            .await?;
        if !held {
            self.lost.store(true, Ordering::SeqCst);
        }
        Ok(held)
    }

    /// The renewal of this lease for a store write that commits the work it guards
    /// (see [`KeyChange::lease`](headlock_core::store::KeyChange::lease)); `None` if the
    /// lease is known lost already (the work must not commit).
    pub(crate) fn renewal(&self) -> Option<LeaseRenewal> {
        if self.lost.load(Ordering::SeqCst) {
            return None;
        }
        Some(LeaseRenewal {
            name: self.name.clone(),
            holder: self.holder.clone(),
            now: crate::now(),
            ttl: LEASE_TTL,
        })
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.renewer.abort();
        let (store, name, holder) = (self.store.clone(), self.name.clone(), self.holder.clone());
        // Best effort: a lease not given back lapses after LEASE_TTL anyway.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = store.release_lease(&name, &holder).await {
                    tracing::debug!(lease = %name, error = %e, "cannot give a lease back; it will lapse");
                }
            });
        }
    }
}

impl Service {
    /// This node's id (the holder of its leases).
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Sets this node's id. `serve` keeps one in the data directory so that it survives
    /// restarts; without it a random one is used.
    pub fn with_node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = Arc::from(id.into());
        self
    }

    /// Takes the lease `name` for this node, or `None` if another node holds it.
    pub(crate) async fn try_lease(&self, name: String) -> Result<Option<LeaseGuard>> {
        let holder = self.node_id.to_string();
        if !self
            .store
            .acquire_lease(&name, &holder, crate::now(), LEASE_TTL)
            .await?
        {
            return Ok(None);
        }
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = {
            let (store, name, holder, lost) = (
                self.store.clone(),
                name.clone(),
                holder.clone(),
                lost.clone(),
            );
            tokio::spawn(async move {
                let mut last_renewed = tokio::time::Instant::now();
                loop {
                    tokio::time::sleep(RENEW_EVERY).await;
                    match store
                        .acquire_lease(&name, &holder, crate::now(), LEASE_TTL)
                        .await
                    {
                        Ok(true) => last_renewed = tokio::time::Instant::now(),
                        Ok(false) => {
                            tracing::warn!(lease = %name, "lease taken over by another node");
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(lease = %name, error = %e, "cannot renew a lease");
                            if last_renewed.elapsed() >= LEASE_TTL {
                                lost.store(true, Ordering::SeqCst);
                                return;
                            }
                        }
                    }
                }
            })
        };
        Ok(Some(LeaseGuard {
            name,
            holder,
            store: self.store.clone(),
            lost,
            renewer,
        }))
    }

    /// Whether a node other than this one holds a live lease whose name starts with
    /// `prefix`. This node's own leases do not count: the caller holds the in-process
    /// lock that keeps this node's own work of that kind out.
    pub(crate) async fn leased_elsewhere(&self, prefix: &str) -> Result<bool> {
        Ok(self
            .store
            .live_leases(prefix, crate::now())
            .await?
            .iter()
            .any(|l| *l.holder != *self.node_id))
    }
}
