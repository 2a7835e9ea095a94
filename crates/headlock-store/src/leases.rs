//! [`LeaseStore`] on SQL: leases, shared secrets and the readiness ping.
//!
//! Every time compared here is one a caller passed in (`now`, the node's own clock):
//! the statements never read the database's clock, so nodes agree on a lease as far as
//! their clocks agree (see `headlock_service::lease`).

use std::time::Duration;

use async_trait::async_trait;
use headlock_core::StoreError;
use headlock_core::store::{Lease, LeaseRenewal, LeaseStore};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::SqlStore;
use crate::db::{Stmt, Tx, stmt};
use crate::error::ctx;
use crate::queries as q;
use crate::rows::{self, micros, secret_hex};

/// The longest lease or shared-secret name, lease holder or lease prefix, in bytes.
const MAX_NAME: usize = 512;

/// The longest shared secret, in bytes.
const MAX_SECRET: usize = 4096;

#[async_trait]
impl LeaseStore for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        stmt(q::PING)
            .execute(&self.pool)
            .await
            .map_err(ctx("pinging the database"))?;
        Ok(())
    }

    /// One `INSERT ... ON CONFLICT DO UPDATE ... WHERE` (`q::ACQUIRE_LEASE`): it
    /// changes a row exactly when the lease is free, expired or already `holder`'s.
    /// Names and holders are 1 to 512 bytes (`Precondition` otherwise); the expiry
    /// saturates at the largest time a row holds.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let op = format!("acquiring lease {name:?} for {holder:?}");
        let changed = acquire_lease_stmt(name, holder, now, ttl, &op)?
            .execute(&self.pool)
            .await
            .map_err(ctx(&op))?;
        Ok(changed == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let op = format!("releasing lease {name:?} of {holder:?}");
        check_name("lease name", name, &op)?;
        check_name("lease holder", holder, &op)?;
        stmt(q::RELEASE_LEASE)
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(ctx(&op))?;
        Ok(())
    }

    /// Sorted by name (bytewise, whatever the database's collation). An empty prefix
    /// lists every live lease; a prefix is at most 512 bytes.
    async fn live_leases(
        &self,
        prefix: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Lease>, StoreError> {
        let op = format!("listing leases named {prefix:?}...");
        if prefix.len() > MAX_NAME {
            return Err(StoreError::Precondition(format!(
                "{op}: a prefix is at most {MAX_NAME} bytes"
            )));
        }
        let found = stmt(q::LIVE_LEASES)
            .bind(prefix)
            .bind(micros(now))
            .fetch_all(&self.pool)
            .await
            .map_err(ctx(&op))?;
        let mut leases = found
            .iter()
            .map(rows::lease)
            .collect::<Result<Vec<_>, _>>()?;
        leases.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(leases)
    }

    /// One statement; the prefix is matched exactly, as in `live_leases`.
    async fn delete_expired_leases(
        &self,
        prefix: &str,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let op = format!("deleting expired leases named {prefix:?}...");
        if prefix.len() > MAX_NAME {
            return Err(StoreError::Precondition(format!(
                "{op}: a prefix is at most {MAX_NAME} bytes"
            )));
        }
        stmt(q::DELETE_EXPIRED_LEASES)
            .bind(prefix)
            .bind(micros(now))
            .execute(&self.pool)
            .await
            .map_err(ctx(&op))
    }

    /// Two statements, each atomic: `INSERT ... ON CONFLICT DO NOTHING`, then a read of
    /// the row (on PostgreSQL a second writer's insert waits for the first to commit,
    /// then does nothing, so the read finds the first value). The candidate is 1 to
    /// 4,096 bytes (`Precondition` otherwise); the value is never quoted in an error.
    async fn shared_secret(
        &self,
        name: &str,
        candidate: &[u8],
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, StoreError> {
        let op = format!("reading shared secret {name:?}");
        check_name("shared secret name", name, &op)?;
        if candidate.is_empty() || candidate.len() > MAX_SECRET {
            return Err(StoreError::Precondition(format!(
                "{op}: a shared secret is 1 to {MAX_SECRET} bytes, not {}",
                candidate.len()
            )));
        }
        let candidate_hex = secret_hex(candidate);
        stmt(q::INSERT_SHARED_SECRET)
            .bind(name)
            .bind(candidate_hex.as_str())
            .bind(micros(now))
            .execute(&self.pool)
            .await
            .map_err(ctx(&op))?;
        let row = stmt(q::SHARED_SECRET)
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(ctx(&op))?;
        let stored = Zeroizing::new(row.try_get::<String>("value_hex").map_err(ctx(&op))?);
        hex::decode(stored.as_bytes()).map_err(|_| {
            StoreError::Backend(format!(
                "{op}: column value_hex of table shared_secrets is not hexadecimal"
            ))
        })
    }
}

/// Refuses an empty name, or one longer than [`MAX_NAME`] bytes.
/// [`q::ACQUIRE_LEASE`] for `holder` until `now + ttl` (the expiry saturates);
/// `Precondition` for a name or holder out of bounds.
fn acquire_lease_stmt<'a>(
    name: &'a str,
    holder: &'a str,
    now: OffsetDateTime,
    ttl: Duration,
    op: &str,
) -> Result<Stmt<'a>, StoreError> {
    check_name("lease name", name, op)?;
    check_name("lease holder", holder, op)?;
    let now_us = micros(now);
    let ttl_us = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
    Ok(stmt(q::ACQUIRE_LEASE)
        .bind(name)
        .bind(holder)
        .bind(now_us.saturating_add(ttl_us))
        .bind(now_us))
}

/// Renews `lease` inside the caller's transaction, as [`LeaseStore::acquire_lease`]
/// would: `false` if it is no longer the holder's.
pub(crate) async fn renew_lease_in(
    tx: &mut Tx,
    lease: &LeaseRenewal,
    op: &str,
) -> Result<bool, StoreError> {
    let changed = acquire_lease_stmt(&lease.name, &lease.holder, lease.now, lease.ttl, op)?
        .execute(tx)
        .await
        .map_err(ctx(op))?;
    Ok(changed == 1)
}

fn check_name(what: &str, name: &str, op: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(StoreError::Precondition(format!(
            "{op}: the {what} must be 1 to {MAX_NAME} bytes long, not {}",
            name.len()
        )));
    }
    Ok(())
}
