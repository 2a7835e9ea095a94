//! [`UserStore`] on SQL: API users. Digest secrets are stored as hex and never quoted
//! in an error.

use async_trait::async_trait;
use headlock_core::model::User;
use headlock_core::store::UserStore;
use headlock_core::{StoreConflict as Conflict, StoreError};

use crate::SqlStore;
use crate::db::stmt;
use crate::error::{classify, ctx, ctx_unique};
use crate::queries as q;
use crate::rows::{self, id_text, json_list, micros, roles_json, secret_hex};

#[async_trait]
impl UserStore for SqlStore {
    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        let md5 = secret_hex(&user.ha1_md5);
        let sha256 = secret_hex(&user.ha1_sha256);
        stmt(q::INSERT_USER)
            .bind(id_text(user.id))
            .bind(&user.username)
            .bind(md5.as_str())
            .bind(sha256.as_str())
            .bind(roles_json(&user.roles))
            .bind(json_list(&user.access_list))
            .bind(micros(user.created))
            .execute(&self.pool)
            .await
            .map_err(ctx_unique(
                &format!("inserting user {:?}", user.username),
                Conflict::Username,
            ))?;
        Ok(())
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = stmt(q::USER_BY_NAME)
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| classify(&format!("reading user {username:?}"), e))?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let found = stmt(q::LIST_USERS)
            .fetch_all(&self.pool)
            .await
            .map_err(ctx("listing users"))?;
        found.iter().map(rows::user).collect()
    }

    /// Replaces the secrets, roles and access list of the user with `user.username`
    /// (the id and creation time stay as first stored).
    async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        let op = format!("updating user {:?}", user.username);
        let md5 = secret_hex(&user.ha1_md5);
        let sha256 = secret_hex(&user.ha1_sha256);
        let done = stmt(q::UPDATE_USER)
            .bind(&user.username)
            .bind(md5.as_str())
            .bind(sha256.as_str())
            .bind(roles_json(&user.roles))
            .bind(json_list(&user.access_list))
            .execute(&self.pool)
            .await
            .map_err(ctx(&op))?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("{op}: no such user")));
        }
        Ok(())
    }

    async fn delete_user(&self, username: &str) -> Result<(), StoreError> {
        let op = format!("deleting user {username:?}");
        let done = stmt(q::DELETE_USER)
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(ctx(&op))?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("{op}: no such user")));
        }
        Ok(())
    }
}
