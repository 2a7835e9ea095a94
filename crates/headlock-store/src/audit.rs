//! The audit hash chain.
//!
//! Each event row stores `prev_hash` (the `hash` of the event before it, 32 zero bytes
//! for the first) and `hash = SHA-256(prev_hash || canonical(seq, event))`, both as hex
//! text. Changing, removing or reordering an event breaks the chain at that event or the
//! next; the one-row `audit_head` table names the last event, so removing events from the
//! end is noticed too.
//!
//! The canonical encoding is hand-written because it must never change with a serde or
//! JSON library version: it is
//!
//! ```text
//! "headlock-audit-v1" 0x00
//! seq            i64, big-endian
//! created        i64 unix microseconds, big-endian (what the row stores)
//! then, in this order: id, event_type, group_id, cluster_id, username,
//! remote_address, outcome, old_key_uid, new_key_uid, detail, each as
//!     0x00                                   absent (None)
//!     0x01, u32 big-endian length, UTF-8     present
//! ```
//!
//! Ids are encoded as their 24 lowercase hex digits.

use async_trait::async_trait;
use headlock_core::model::{AuditEvent, Page};
use headlock_core::store::AuditStore;
use headlock_core::{KmipUid, ObjectId, StoreError};
use ring::digest;

use crate::db::{Tx, stmt};
use crate::error::{classify, ctx};
use crate::queries as q;
use crate::rows::{self, id_text, micros, opt_id_text};
use crate::{SqlStore, limit_offset, retrying, to_u64};

/// Audit events read per query while verifying the chain (bounds memory).
const VERIFY_BATCH: i64 = 512;

/// Length of a chain hash.
pub(crate) const HASH_LEN: usize = 32;

/// `prev_hash` of the first event.
pub(crate) const GENESIS: [u8; HASH_LEN] = [0; HASH_LEN];

const DOMAIN: &[u8] = b"headlock-audit-v1\0";

/// The canonical encoding of an event at position `seq`.
pub(crate) fn canonical(seq: i64, event: &AuditEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(DOMAIN);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&micros(event.created).to_be_bytes());
    let id = event.id.to_string();
    let group = event.group_id.map(|g| g.to_string());
    let cluster = event.cluster_id.map(|c| c.to_string());
    let fields: [Option<&str>; 10] = [
        Some(&id),
        Some(&event.event_type),
        group.as_deref(),
        cluster.as_deref(),
        event.username.as_deref(),
        event.remote_address.as_deref(),
        Some(&event.outcome),
        event.old_key_uid.as_ref().map(KmipUid::as_str),
        event.new_key_uid.as_ref().map(KmipUid::as_str),
        event.detail.as_deref(),
    ];
    for field in fields {
        match field {
            None => out.push(0),
            Some(text) => {
                out.push(1);
                // A field of 4 GiB or more cannot be bound to SQLite anyway (its limit is
                // 1 GB); saturating keeps the encoding total regardless.
                let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
    out
}

/// The hash of an event that follows `prev`.
pub(crate) fn chain_hash(prev: &[u8; HASH_LEN], seq: i64, event: &AuditEvent) -> [u8; HASH_LEN] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev);
    ctx.update(&canonical(seq, event));
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Parses a stored hash (hex text).
pub(crate) fn parse_hash(text: &str) -> Option<[u8; HASH_LEN]> {
    let mut out = [0u8; HASH_LEN];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        retrying("append_audit", || async move {
            let op = format!("appending audit event {}", event.id);
            let mut tx = self.begin_write(&op).await?;
            append_audit_in(&mut tx, event).await?;
            tx.commit().await.map_err(ctx(&op))
        })
        .await
    }

    async fn list_audit(
        &self,
        group: Option<ObjectId>,
        page: Page,
    ) -> Result<(Vec<AuditEvent>, u64), StoreError> {
        let (limit, offset) = limit_offset(page);
        let op = "listing audit events";
        let found = match group {
            None => {
                stmt(q::LIST_AUDIT)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await
            }
            Some(g) => {
                stmt(q::LIST_AUDIT_GROUP)
                    .bind(id_text(g))
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(ctx(op))?;
        let events = found
            .iter()
            .map(|r| rows::audit(r).map(|a| a.event))
            .collect::<Result<Vec<_>, _>>()?;
        let total = match group {
            None => self.count(q::COUNT_AUDIT, None, op).await?,
            Some(g) => self.count(q::COUNT_AUDIT_GROUP, Some(g), op).await?,
        };
        Ok((events, total))
    }

    async fn audit_event(
        &self,
        group: ObjectId,
        id: ObjectId,
    ) -> Result<Option<AuditEvent>, StoreError> {
        let what = || "reading an audit event".to_string();
        self.find(q::GET_AUDIT_EVENT, &[group, id], what, |r| {
            rows::audit(r).map(|a| a.event)
        })
        .await
    }

    async fn verify_audit_chain(&self) -> Result<u64, StoreError> {
        let op = "verifying the audit chain";
        // One read transaction: a consistent snapshot of the chain and its head while
        // appends carry on (SQLite: WAL; PostgreSQL: REPEATABLE READ).
        let mut tx = self.pool.begin(q::BEGIN_SNAPSHOT).await.map_err(ctx(op))?;
        let head = stmt(q::AUDIT_HEAD)
            .fetch_one(&mut tx)
            .await
            .map_err(ctx(op))?;
        let head_seq: i64 = head.try_get("seq").map_err(ctx(op))?;
        let head_hash: String = head.try_get("hash").map_err(ctx(op))?;

        let mut running = GENESIS;
        let mut last_seq = 0i64;
        let mut last_id: Option<ObjectId> = None;
        loop {
            let batch = stmt(q::AUDIT_CHAIN_BATCH)
                .bind(last_seq)
                .bind(VERIFY_BATCH)
                .fetch_all(&mut tx)
                .await
                .map_err(ctx(op))?;
            if batch.is_empty() {
                break;
            }
            for row in &batch {
                let row = rows::audit(row)?;
                let id = row.event.id;
                // A gap in the sequence means events before this one were removed.
                if last_seq.checked_add(1) != Some(row.seq) {
                    return Err(StoreError::AuditChainBroken(format!(
                        "{id} (sequence {} follows {last_seq})",
                        row.seq
                    )));
                }
                if parse_hash(&row.prev_hash) != Some(running) {
                    return Err(StoreError::AuditChainBroken(format!(
                        "{id} (sequence {}: does not follow the event before it)",
                        row.seq
                    )));
                }
                let computed = chain_hash(&running, row.seq, &row.event);
                if parse_hash(&row.hash) != Some(computed) {
                    return Err(StoreError::AuditChainBroken(format!(
                        "{id} (sequence {}: contents do not match its hash)",
                        row.seq
                    )));
                }
                running = computed;
                last_seq = row.seq;
                last_id = Some(id);
            }
        }
        if head_seq != last_seq || parse_hash(&head_hash) != Some(running) {
            let last = last_id.map_or_else(|| "(none)".to_owned(), |id| id.to_string());
            return Err(StoreError::AuditChainBroken(format!(
                "{last} (the chain ends at sequence {last_seq} but its head records {head_seq}: events are missing \
                 from the end)"
            )));
        }
        tx.rollback().await.map_err(ctx(op))?;
        Ok(to_u64(last_seq))
    }
}

/// Appends `event` to the audit chain inside the caller's write transaction.
pub(crate) async fn append_audit_in(tx: &mut Tx, event: &AuditEvent) -> Result<(), StoreError> {
    let op = || format!("appending audit event {}", event.id);
    let head = stmt(q::AUDIT_HEAD_FOR_UPDATE)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| classify(&op(), e))?;
    let seq: i64 = head.try_get("seq").map_err(|e| classify(&op(), e))?;
    let prev_text: String = head.try_get("hash").map_err(|e| classify(&op(), e))?;
    let prev = parse_hash(&prev_text).ok_or_else(|| {
        StoreError::Backend(format!("{}: audit_head.hash is not a SHA-256 in hex", op()))
    })?;
    let seq = seq
        .checked_add(1)
        .ok_or_else(|| StoreError::Backend(format!("{}: audit sequence exhausted", op())))?;
    let hash = hex::encode(chain_hash(&prev, seq, event));
    stmt(q::INSERT_AUDIT)
        .bind(seq)
        .bind(id_text(event.id))
        .bind(micros(event.created))
        .bind(&event.event_type)
        .bind(opt_id_text(event.group_id))
        .bind(opt_id_text(event.cluster_id))
        .bind(&event.username)
        .bind(&event.remote_address)
        .bind(&event.outcome)
        .bind(&event.old_key_uid)
        .bind(&event.new_key_uid)
        .bind(&event.detail)
        .bind(&prev_text)
        .bind(&hash)
        .execute(&mut *tx)
        .await
        .map_err(|e| classify(&op(), e))?;
    stmt(q::SET_AUDIT_HEAD)
        .bind(seq)
        .bind(&hash)
        .execute(&mut *tx)
        .await
        .map_err(|e| classify(&op(), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use headlock_core::ObjectId;
    use time::OffsetDateTime;

    fn event() -> AuditEvent {
        AuditEvent {
            id: "5196d3628d022db4cbc26d9e".parse::<ObjectId>().unwrap(),
            created: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            event_type: "RS_ROTATE_MASTER_KEY_AUDIT".into(),
            group_id: None,
            cluster_id: None,
            username: Some("alice".into()),
            remote_address: None,
            outcome: "SUCCESS".into(),
            old_key_uid: None,
            new_key_uid: Some(KmipUid::new("1")),
            detail: None,
        }
    }

    #[test]
    fn canonical_tells_absent_from_empty() {
        let mut a = event();
        let mut b = event();
        a.detail = None;
        b.detail = Some(String::new());
        assert_ne!(canonical(1, &a), canonical(1, &b));
    }

    #[test]
    fn canonical_does_not_let_text_move_between_fields() {
        let mut a = event();
        let mut b = event();
        a.username = Some("ab".into());
        a.remote_address = Some("c".into());
        b.username = Some("a".into());
        b.remote_address = Some("bc".into());
        assert_ne!(canonical(1, &a), canonical(1, &b));
    }

    #[test]
    fn hash_depends_on_prev_and_seq() {
        let e = event();
        let h1 = chain_hash(&GENESIS, 1, &e);
        assert_ne!(h1, chain_hash(&GENESIS, 2, &e));
        assert_ne!(h1, chain_hash(&h1, 1, &e));
        assert_eq!(parse_hash(&hex::encode(h1)), Some(h1));
        assert_eq!(parse_hash("zz"), None);
    }
}
