//! [`AuditStore`]: the audit log, a hash chain that shows any change, removal or
//! reordering of its events.

use async_trait::async_trait;

use crate::ObjectId;
use crate::model::{AuditEvent, Page};

use super::StoreError;

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an event to the hash chain.
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// A page of events, newest first, optionally for one group.
    async fn list_audit(
        &self,
        group: Option<ObjectId>,
        page: Page,
    ) -> Result<(Vec<AuditEvent>, u64), StoreError>;
    /// One event of a group.
    async fn audit_event(
        &self,
        group: ObjectId,
        id: ObjectId,
    ) -> Result<Option<AuditEvent>, StoreError>;
    /// Re-computes the whole chain; the number of events, or `AuditChainBroken`.
    async fn verify_audit_chain(&self) -> Result<u64, StoreError>;
}
