//! The audit trail as the API shows it: `GET /groups/{G}/events[/{ID}]`.

use headlock_core::ObjectId;
use headlock_core::model::{AuditEvent, Page};

use crate::error::{NotFound, RequestedId};
use crate::{Actor, Result, Service};

impl Service {
    /// A page of audit events of a group, newest first (`GET /groups/{G}/events`).
    pub async fn list_events(
        &self,
        actor: &Actor,
        group_id: &str,
        page: Page,
    ) -> Result<(Vec<AuditEvent>, u64)> {
        let group = self.readable_group(actor, group_id).await?;
        Ok(self.store.list_audit(Some(group.id), page).await?)
    }

    /// One audit event of a group (`GET /groups/{G}/events/{ID}`).
    pub async fn event(&self, actor: &Actor, group_id: &str, event_id: &str) -> Result<AuditEvent> {
        let group = self.readable_group(actor, group_id).await?;
        let id: ObjectId = event_id.parse().map_err(|_| {
            NotFound::Event(RequestedId::Invalid(crate::groups::truncate(event_id)))
        })?;
        self.store
            .audit_event(group.id, id)
            .await?
            .ok_or_else(|| NotFound::Event(id.into()).into())
    }
}
