//! The audit trail as the API shows it: `GET /groups/{G}/events[/{ID}]`.
//!
//! [`Events`] is a capability of its own: reading the trail needs the metadata store and
//! the group access check ([`Groups`]), nothing else. The API reaches it through
//! [`crate::Service::events`].

use std::sync::Arc;

use headlock_core::model::{AuditEvent, Page};
use headlock_core::{MetadataStore, ObjectId};

use crate::error::{NotFound, RequestedId};
use crate::groups::Groups;
use crate::{Actor, Result};

/// Reading a group's audit events.
#[derive(Clone)]
pub struct Events {
    store: Arc<dyn MetadataStore>,
    groups: Groups,
}

impl Events {
    /// Events on `store`, whose groups `groups` resolves.
    pub fn new(store: Arc<dyn MetadataStore>, groups: Groups) -> Self {
        Events { store, groups }
    }

    /// A page of audit events of a group, newest first (`GET /groups/{G}/events`).
    pub async fn list_events(
        &self,
        actor: &Actor,
        group_id: &str,
        page: Page,
    ) -> Result<(Vec<AuditEvent>, u64)> {
        let group = self.groups.readable_group(actor, group_id).await?;
        Ok(self.store.list_audit(Some(group.id), page).await?)
    }

    /// One audit event of a group (`GET /groups/{G}/events/{ID}`).
    pub async fn event(&self, actor: &Actor, group_id: &str, event_id: &str) -> Result<AuditEvent> {
        let group = self.groups.readable_group(actor, group_id).await?;
        let id: ObjectId = event_id.parse().map_err(|_| {
            NotFound::Event(RequestedId::Invalid(crate::groups::truncate(event_id)))
        })?;
        self.store
            .audit_event(group.id, id)
            .await?
            .ok_or_else(|| NotFound::Event(id.into()).into())
    }

    /// Re-computes the whole audit hash chain for a reader of `group_id` (the console
    /// says on its events page whether it held): `Ok(events)` with the number of events
    /// checked, or `Err(where it broke)`. Any other store failure is an error.
    pub async fn verify_chain(
        &self,
        actor: &Actor,
        group_id: &str,
    ) -> Result<std::result::Result<u64, String>> {
        self.groups.readable_group(actor, group_id).await?;
        match self.store.verify_audit_chain().await {
            Ok(n) => Ok(Ok(n)),
            Err(headlock_core::StoreError::AuditChainBroken(at)) => Ok(Err(at)),
            Err(e) => Err(e.into()),
        }
    }
}
