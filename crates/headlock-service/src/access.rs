//! Who may do what: Ops Manager's roles, checked in one place.
//!
//! | role | read a group | change clusters, backup configs, rotate keys; back up, restore, verify; see restore links | create groups |
//! |---|---|---|---|
//! | `GLOBAL_OWNER` | every group | every group | yes |
//! | `GLOBAL_READ_ONLY` | every group | no | no |
//! | `GROUP_OWNER` | its group | its group | no |
//! | `GROUP_BACKUP_ADMIN` | its group | its group | no |
//! | `GROUP_READ_ONLY` | its group | no | no |
//!
//! A user with no role in a group gets `NOT_IN_GROUP` (401), whether or not the group
//! exists, so that group ids cannot be probed; a user who may read but not change gets
//! `USER_UNAUTHORIZED` (403).

use headlock_core::ObjectId;
use headlock_core::model::{Role, RoleAssignment};

use crate::Result;
use crate::error::Denied;

/// The authenticated caller of a service operation.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Username (recorded in the audit trail).
    pub username: String,
    /// Roles.
    pub roles: Vec<RoleAssignment>,
    /// Source address of the request, when there is one.
    pub remote_address: Option<String>,
}

impl Actor {
    /// The actor for work the service does by itself (reconciliation, schedules).
    pub fn system(name: &str) -> Self {
        Actor {
            username: name.to_string(),
            roles: vec![RoleAssignment {
                role: Role::GlobalOwner,
                group_id: None,
            }],
            remote_address: None,
        }
    }

    fn has(&self, f: impl Fn(&RoleAssignment) -> bool) -> bool {
        self.roles.iter().any(f)
    }

    /// Whether the actor holds a global role.
    pub fn is_global(&self) -> bool {
        self.has(|r| matches!(r.role, Role::GlobalOwner | Role::GlobalReadOnly))
    }

    /// Whether the actor may read `group`.
    pub fn can_read(&self, group: ObjectId) -> bool {
        self.is_global() || self.has(|r| r.group_id == Some(group) && r.role.is_group_role())
    }

    /// Whether the actor may change backup settings and keys in `group`.
    pub fn can_admin_backup(&self, group: ObjectId) -> bool {
        self.has(|r| {
            r.role == Role::GlobalOwner
                || (r.group_id == Some(group)
                    && matches!(r.role, Role::GroupOwner | Role::GroupBackupAdmin))
        })
    }

    /// Checks read access: `NOT_IN_GROUP` otherwise.
    pub fn require_read(&self, group: ObjectId) -> Result<()> {
        if self.can_read(group) {
            Ok(())
        } else {
            Err(Denied::NotInGroup.into())
        }
    }

    /// Checks write access: `NOT_IN_GROUP` for strangers, `USER_UNAUTHORIZED` for readers.
    pub fn require_backup_admin(&self, group: ObjectId) -> Result<()> {
        self.require_read(group)?;
        if self.can_admin_backup(group) {
            Ok(())
        } else {
            Err(Denied::Forbidden.into())
        }
    }

    /// An audit event of something this actor did, stamped now.
    pub(crate) fn event(
        &self,
        event_type: &str,
        group: Option<ObjectId>,
        cluster: Option<ObjectId>,
        outcome: &str,
        detail: Option<&str>,
    ) -> headlock_core::model::AuditEvent {
        crate::audit_event(
            event_type,
            group,
            cluster,
            Some(&self.username),
            self.remote_address.as_deref(),
            outcome,
            detail,
        )
    }

    /// Checks that the actor is a global owner.
    pub fn require_global_owner(&self) -> Result<()> {
        if self.has(|r| r.role == Role::GlobalOwner) {
            Ok(())
        } else {
            Err(Denied::Forbidden.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServiceError;

    fn actor(role: Role, group: Option<ObjectId>) -> Actor {
        Actor {
            username: "u".into(),
            roles: vec![RoleAssignment {
                role,
                group_id: group,
            }],
            remote_address: None,
        }
    }

    #[test]
    fn group_roles_are_confined_to_their_group() {
        let (g, other) = (ObjectId::new(), ObjectId::new());
        for role in [
            Role::GroupOwner,
            Role::GroupBackupAdmin,
            Role::GroupReadOnly,
        ] {
            let a = actor(role, Some(g));
            assert!(a.can_read(g));
            assert!(matches!(
                a.require_read(other),
                Err(ServiceError::Denied(Denied::NotInGroup))
            ));
            assert!(matches!(
                a.require_backup_admin(other),
                Err(ServiceError::Denied(Denied::NotInGroup))
            ));
        }
    }

    #[test]
    fn readers_are_forbidden_to_change() {
        let g = ObjectId::new();
        assert!(matches!(
            actor(Role::GroupReadOnly, Some(g)).require_backup_admin(g),
            Err(ServiceError::Denied(Denied::Forbidden))
        ));
        assert!(matches!(
            actor(Role::GlobalReadOnly, None).require_backup_admin(g),
            Err(ServiceError::Denied(Denied::Forbidden))
        ));
        assert!(
            actor(Role::GroupBackupAdmin, Some(g))
                .require_backup_admin(g)
                .is_ok()
        );
        assert!(
            actor(Role::GlobalOwner, None)
                .require_backup_admin(g)
                .is_ok()
        );
    }

    #[test]
    fn only_global_owners_create_groups() {
        assert!(
            actor(Role::GlobalOwner, None)
                .require_global_owner()
                .is_ok()
        );
        assert!(
            actor(Role::GlobalReadOnly, None)
                .require_global_owner()
                .is_err()
        );
        assert!(
            actor(Role::GroupOwner, Some(ObjectId::new()))
                .require_global_owner()
                .is_err()
        );
    }
}
