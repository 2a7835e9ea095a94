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

use headlock_core::model::AuditEvent;
use ring::digest;

use crate::rows::micros;

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
        event.old_key_uid.as_deref(),
        event.new_key_uid.as_deref(),
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
            new_key_uid: Some("1".into()),
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
