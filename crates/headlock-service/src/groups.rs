//! Groups (Ops Manager projects), and the access check every other capability runs on
//! a group id from a path (`Groups::readable_group`, `Groups::admin_group`).
//!
//! [`Groups`] is a capability of its own: it needs the metadata store and nothing else
//! (no key manager, no blob store, no locks). The API reaches it through
//! [`crate::Service::groups`].

use std::sync::Arc;

use headlock_core::model::{Group, Page};
use headlock_core::{MetadataStore, ObjectId, StoreConflict, StoreError};

use crate::error::{Conflict, Denied, Duplicated, NotFound};
use crate::{Actor, Result, ServiceError};

/// A group with the count the API shows beside it.
#[derive(Debug, Clone)]
pub struct GroupView {
    /// The group.
    pub group: Group,
    /// Number of top-level clusters.
    pub cluster_count: u64,
}

/// Longest group name accepted (Ops Manager allows 64 characters).
pub const MAX_GROUP_NAME: usize = 64;

pub(crate) fn parse_group_id(id: &str) -> Result<ObjectId> {
    id.parse()
        .map_err(|_| NotFound::InvalidGroupId(truncate(id)).into())
}

pub(crate) fn parse_cluster_id(id: &str) -> Result<ObjectId> {
    id.parse()
        .map_err(|_| NotFound::InvalidClusterId(truncate(id)).into())
}

/// Keeps echoed input short in error bodies.
pub(crate) fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Groups: create, list and read them, and resolve a group id an actor may use.
#[derive(Clone)]
pub struct Groups {
    store: Arc<dyn MetadataStore>,
}

impl Groups {
    /// Groups on `store`.
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Groups { store }
    }

    /// Creates a group (global owners only).
    pub async fn create_group(&self, actor: &Actor, name: &str) -> Result<GroupView> {
        actor.require_global_owner()?;
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_GROUP_NAME
            || name.chars().any(crate::names::is_refused_in_name)
        {
            return Err(ServiceError::invalid_input(format!(
                "Group name must be 1 to {MAX_GROUP_NAME} printable characters, without control characters or Unicode bidi controls."
            )));
        }
        let group = Group {
            id: ObjectId::new(),
            name: name.to_string(),
            org_id: ObjectId::new(),
            created: crate::now(),
        };
        match self.store.insert_group(&group).await {
            Ok(()) => {}
            Err(StoreError::Conflict(StoreConflict::GroupName)) => {
                return Err(Conflict::Duplicate {
                    what: Duplicated::GroupName,
                    message: format!("A group with name {name} already exists."),
                }
                .into());
            }
            Err(e) => return Err(e.into()),
        }
        let event = actor.event("GROUP_CREATED", Some(group.id), None, "SUCCESS", None);
        self.store.append_audit(&event).await?;
        Ok(GroupView {
            group,
            cluster_count: 0,
        })
    }

    /// The groups the actor may read, a page at a time.
    pub async fn list_groups(&self, actor: &Actor, page: Page) -> Result<(Vec<GroupView>, u64)> {
        let (groups, total) = if actor.is_global() {
            self.store.list_groups(page).await?
        } else {
            // Non-global users see only their groups; there are few, so filter in memory.
            let mut mine = Vec::new();
            for r in &actor.roles {
                if let Some(g) = r.group_id
                    && let Some(group) = self.store.group(g).await?
                    && !mine.iter().any(|x: &Group| x.id == g)
                {
                    mine.push(group);
                }
            }
            mine.sort_by_key(|g| g.created);
            let total = mine.len() as u64;
            let start = (page.offset() as usize).min(mine.len());
            let end = (start + page.size as usize).min(mine.len());
            (mine[start..end].to_vec(), total)
        };
        let mut out = Vec::with_capacity(groups.len());
        for group in groups {
            let cluster_count = self.store.cluster_count(group.id).await?;
            out.push(GroupView {
                group,
                cluster_count,
            });
        }
        Ok((out, total))
    }

    /// One group.
    pub async fn group(&self, actor: &Actor, group_id: &str) -> Result<GroupView> {
        let group = self.readable_group(actor, group_id).await?;
        let cluster_count = self.store.cluster_count(group.id).await?;
        Ok(GroupView {
            group,
            cluster_count,
        })
    }

    /// One group, by name.
    pub async fn group_by_name(&self, actor: &Actor, name: &str) -> Result<GroupView> {
        let Some(group) = self.store.group_by_name(name).await? else {
            return Err(if actor.is_global() {
                NotFound::GroupName(truncate(name)).into()
            } else {
                Denied::NotInGroup.into()
            });
        };
        actor.require_read(group.id)?;
        let cluster_count = self.store.cluster_count(group.id).await?;
        Ok(GroupView {
            group,
            cluster_count,
        })
    }

    /// Resolves a group id the actor may read.
    pub(crate) async fn readable_group(&self, actor: &Actor, group_id: &str) -> Result<Group> {
        let id = parse_group_id(group_id)?;
        actor.require_read(id)?;
        self.store
            .group(id)
            .await?
            .ok_or_else(|| NotFound::Group(id).into())
    }

    /// Resolves a group id the actor may change backups in.
    pub(crate) async fn admin_group(&self, actor: &Actor, group_id: &str) -> Result<Group> {
        let group = self.readable_group(actor, group_id).await?;
        actor.require_backup_admin(group.id)?;
        Ok(group)
    }
}
