//! [`UserStore`]: the API's users (digest secrets, roles, access lists).

use async_trait::async_trait;

use crate::model::User;

use super::StoreError;

/// API users.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a user; [`Conflict::Username`](super::Conflict::Username) if the username is taken.
    async fn insert_user(&self, user: &User) -> Result<(), StoreError>;
    /// A user by name.
    async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// Every user.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// Replaces a user's record (secrets, roles, access list); `NotFound` if absent.
    async fn update_user(&self, user: &User) -> Result<(), StoreError>;
    /// Deletes a user; `NotFound` if absent.
    async fn delete_user(&self, username: &str) -> Result<(), StoreError>;
}
