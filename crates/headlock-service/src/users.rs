//! API users: created, listed and deleted by the machine's administrator with the
//! `headlock users` commands (which work whether or not the server runs), and looked up
//! by the API layer on every request.
//!
//! Only what digest verification needs is stored (H(username:realm:apiKey) for MD5 and
//! SHA-256); the API key itself is shown once, when it is made, and never again. The
//! digest functions belong to the API layer, so callers pass the derived values in.
//!
//! [`Users`] is a capability of its own: it needs the metadata store and nothing else (no
//! key manager, no blob store), so the offline `headlock users` commands build just this.
//! A running service shares its read cache with it ([`crate::Service::users`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use headlock_core::ObjectId;
use headlock_core::model::{Role, RoleAssignment, User};
use headlock_core::{StoreConflict, StoreError};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use headlock_core::MetadataStore;

use crate::cache::ReadCache;
use crate::error::{Conflict, Duplicated, NotFound};
use crate::{Result, ServiceError};

/// Longest username accepted.
pub const MAX_USERNAME: usize = 128;
/// Most entries in a user's access list.
pub const MAX_ACCESS_LIST: usize = 100;

/// A fresh API key in Ops Manager's form (a random UUID, 122 bits of entropy).
pub fn generate_api_key() -> Zeroizing<String> {
    let mut b = [0u8; 16];
    SystemRandom::new()
        .fill(&mut b)
        .expect("system random generator");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = Zeroizing::new(hex::encode(b));
    let key = Zeroizing::new(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ));
    zeroize::Zeroize::zeroize(&mut b);
    key
}

/// The digest values derived from a username and API key.
pub struct DigestSecrets {
    /// MD5(username:realm:apiKey).
    pub ha1_md5: Vec<u8>,
    /// SHA-256(username:realm:apiKey).
    pub ha1_sha256: Vec<u8>,
}

fn check_username(username: &str) -> Result<()> {
    if username.is_empty()
        || username.len() > MAX_USERNAME
        || username.chars().any(|c| {
            c == ':' || c == '"' || c.is_whitespace() || crate::names::is_refused_in_name(c)
        })
    {
        return Err(ServiceError::invalid_input(format!(
            "A username is 1 to {MAX_USERNAME} bytes, without spaces, ':', '\"', control characters or Unicode bidi controls."
        )));
    }
    Ok(())
}

/// The lease name prefix of digest nonce claims.
const NONCE_CLAIM_PREFIX: &str = "digest-nonce:";
/// Least time between two deletions of lapsed nonce claims by one process.
const NONCE_PURGE_INTERVAL: time::Duration = time::Duration::minutes(1);

/// The lease name prefix of web console sessions (the SHA-256 of the session token, hex,
/// follows; the token itself is never stored).
const CONSOLE_SESSION_PREFIX: &str = "console-session:";

/// Checks a console session's identity: the hex SHA-256 of its token.
fn session_name(token_sha256_hex: &str) -> Result<String> {
    if token_sha256_hex.len() != 64 || !token_sha256_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ServiceError::invalid_input(
            "A session id is a 64-digit hex SHA-256.".into(),
        ));
    }
    Ok(format!(
        "{CONSOLE_SESSION_PREFIX}{}",
        token_sha256_hex.to_ascii_lowercase()
    ))
}

/// API users: create, look up (from the read cache), change and delete.
#[derive(Clone)]
pub struct Users {
    store: Arc<dyn MetadataStore>,
    cache: Arc<ReadCache>,
    /// Unix seconds of this process's last deletion of lapsed nonce claims.
    last_nonce_purge: Arc<AtomicI64>,
}

impl Users {
    /// Users on `store` with a read cache of their own (the offline commands).
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Users::sharing(store, Arc::new(ReadCache::new()))
    }

    /// Users on `store` whose changes empty `cache`, the one the rest of the service reads.
    pub(crate) fn sharing(store: Arc<dyn MetadataStore>, cache: Arc<ReadCache>) -> Self {
        Users {
            store,
            cache,
            last_nonce_purge: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Claims a digest nonce for `holder` (one process) until `until`, in the store
    /// every node shares: `true` if the nonce is now `holder`'s (it was free, lapsed, or
    /// already `holder`'s), `false` if another process used it first. The API layer
    /// calls this before a nonce's first use in a process, so that a request accepted
    /// by one node, or by this node before a restart, cannot be replayed to another
    /// (docs/design.md, "Authentication"). `nonce` is the nonce's public identity, at
    /// most 64 bytes. Lapsed claims are deleted here, at most once a minute per process.
    pub async fn claim_digest_nonce(
        &self,
        nonce: &str,
        holder: &str,
        until: time::OffsetDateTime,
    ) -> Result<bool> {
        if nonce.is_empty() || nonce.len() > 64 {
            return Err(ServiceError::invalid_input(
                "A nonce id is 1 to 64 bytes.".into(),
            ));
        }
        let now = crate::now();
        let last = self.last_nonce_purge.load(Ordering::Relaxed);
        let due = now.unix_timestamp() >= last.saturating_add(NONCE_PURGE_INTERVAL.whole_seconds());
        if due
            && self
                .last_nonce_purge
                .compare_exchange(
                    last,
                    now.unix_timestamp(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            self.store
                .delete_expired_leases(NONCE_CLAIM_PREFIX, now)
                .await?;
        }
        let ttl = (until - now).max(time::Duration::seconds(1));
        let ttl = std::time::Duration::try_from(ttl).unwrap_or(std::time::Duration::from_secs(1));
        Ok(self
            .store
            .acquire_lease(&format!("{NONCE_CLAIM_PREFIX}{nonce}"), holder, now, ttl)
            .await?)
    }

    /// Opens a web console session of `username` for `ttl`, in the store every node
    /// shares (a lease named after the token's SHA-256, held by the username), so that
    /// a session opened on one node is honoured, and ended, on all of them. Lapsed
    /// sessions are deleted here. `false` if the id is already taken (a random 256-bit
    /// token: never in practice).
    pub async fn open_console_session(
        &self,
        token_sha256_hex: &str,
        username: &str,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        let name = session_name(token_sha256_hex)?;
        let now = crate::now();
        self.store
            .delete_expired_leases(CONSOLE_SESSION_PREFIX, now)
            .await?;
        if self.store.live_leases(&name, now).await?.len() == 1 {
            return Ok(false);
        }
        Ok(self.store.acquire_lease(&name, username, now, ttl).await?)
    }

    /// The username of a live console session, if there is one.
    pub async fn console_session(&self, token_sha256_hex: &str) -> Result<Option<String>> {
        let name = session_name(token_sha256_hex)?;
        let live = self.store.live_leases(&name, crate::now()).await?;
        Ok(live.into_iter().find(|l| l.name == name).map(|l| l.holder))
    }

    /// Ends a console session (sign-out): every node refuses its token from now on.
    pub async fn close_console_session(
        &self,
        token_sha256_hex: &str,
        username: &str,
    ) -> Result<()> {
        let name = session_name(token_sha256_hex)?;
        Ok(self.store.release_lease(&name, username).await?)
    }

    /// Creates a user with one role (a group role needs `group`).
    pub async fn create_user(
        &self,
        username: &str,
        role: Role,
        group: Option<&str>,
        secrets: DigestSecrets,
    ) -> Result<User> {
        check_username(username)?;
        let group_id = match (role.is_group_role(), group) {
            (true, Some(g)) => {
                let id = crate::groups::parse_group_id(g)?;
                if self.store.group(id).await?.is_none() {
                    return Err(NotFound::Group(id).into());
                }
                Some(id)
            }
            (true, None) => {
                return Err(ServiceError::invalid_input(format!(
                    "Role {role} needs a group id (--group)."
                )));
            }
            (false, Some(_)) => {
                return Err(ServiceError::invalid_input(format!(
                    "Role {role} is global and takes no group."
                )));
            }
            (false, None) => None,
        };
        let user = User {
            id: ObjectId::new(),
            username: username.to_string(),
            ha1_md5: secrets.ha1_md5,
            ha1_sha256: secrets.ha1_sha256,
            roles: vec![RoleAssignment { role, group_id }],
            access_list: Vec::new(),
            created: crate::now(),
        };
        match self.store.insert_user(&user).await {
            Ok(()) => self.cache.invalidate_users(),
            Err(StoreError::Conflict(StoreConflict::Username)) => {
                return Err(Conflict::Duplicate {
                    what: Duplicated::Username,
                    message: format!("A user named {username} already exists."),
                }
                .into());
            }
            Err(e) => return Err(e.into()),
        }
        let event = crate::audit_event(
            "USER_CREATED",
            group_id,
            None,
            Some(username),
            None,
            "SUCCESS",
            Some(role.as_str()),
        );
        self.store.append_audit(&event).await?;
        Ok(user)
    }

    /// Every user.
    pub async fn list_users(&self) -> Result<Vec<User>> {
        Ok(self.store.list_users().await?)
    }

    /// A user by name (for authentication), from the cache when fresh.
    pub async fn user(&self, username: &str) -> Result<Option<Arc<User>>> {
        if username.len() > MAX_USERNAME {
            return Ok(None);
        }
        if let Some(cached) = self.cache.user(username) {
            return Ok(cached);
        }
        let ticket = self.cache.ticket();
        let user = self.store.user_by_name(username).await?.map(Arc::new);
        self.cache.put_user(ticket, username, user.clone());
        Ok(user)
    }

    /// Deletes a user.
    pub async fn delete_user(&self, username: &str) -> Result<()> {
        match self.store.delete_user(username).await {
            Ok(()) => self.cache.invalidate_users(),
            Err(StoreError::NotFound(_)) => {
                return Err(NotFound::User(username.to_string()).into());
            }
            Err(e) => return Err(e.into()),
        }
        let event = crate::audit_event(
            "USER_DELETED",
            None,
            None,
            Some(username),
            None,
            "SUCCESS",
            None,
        );
        self.store.append_audit(&event).await?;
        Ok(())
    }

    /// Replaces a user's API key (a running server stops accepting the old one within
    /// [`crate::cache::TTL`]).
    pub async fn replace_user_key(&self, username: &str, secrets: DigestSecrets) -> Result<()> {
        self.change_user(username, "USER_API_KEY_REGENERATED", |user| {
            user.ha1_md5 = secrets.ha1_md5;
            user.ha1_sha256 = secrets.ha1_sha256;
        })
        .await
    }

    /// Replaces a user's access list (IPs and CIDR blocks; empty allows any address).
    /// `validate` checks one entry (the API layer owns the parsing rules).
    pub async fn set_access_list(
        &self,
        username: &str,
        entries: Vec<String>,
        validate: impl Fn(&str) -> bool,
    ) -> Result<()> {
        if entries.len() > MAX_ACCESS_LIST {
            return Err(ServiceError::invalid_input(format!(
                "An access list holds at most {MAX_ACCESS_LIST} entries."
            )));
        }
        if let Some(bad) = entries.iter().find(|e| !validate(e)) {
            return Err(ServiceError::invalid_input(format!(
                "{bad:?} is not an IP address or CIDR block."
            )));
        }
        self.change_user(username, "USER_ACCESS_LIST_CHANGED", |user| {
            user.access_list = entries;
        })
        .await
    }

    /// Reads a user, applies `change`, writes it back, empties the read cache and
    /// records `event_type` in the audit trail.
    async fn change_user(
        &self,
        username: &str,
        event_type: &str,
        change: impl FnOnce(&mut User),
    ) -> Result<()> {
        let mut user = self
            .store
            .user_by_name(username)
            .await?
            .ok_or_else(|| NotFound::User(username.to_string()))?;
        change(&mut user);
        self.store.update_user(&user).await?;
        self.cache.invalidate_users();
        let event = crate::audit_event(
            event_type,
            None,
            None,
            Some(username),
            None,
            "SUCCESS",
            None,
        );
        self.store.append_audit(&event).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_look_like_ops_manager_keys_and_differ() {
        let a = generate_api_key();
        let b = generate_api_key();
        assert_ne!(*a, *b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn rejects_usernames_that_break_digest_headers() {
        for bad in ["", "a b", "a:b", "a\"b", "a\nb"] {
            assert!(check_username(bad).is_err(), "{bad:?}");
        }
        assert!(check_username("alice@example.com").is_ok());
    }
}
