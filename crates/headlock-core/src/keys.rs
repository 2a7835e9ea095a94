//! [`KeyManager`]: what the service needs of a KMIP server, and nothing more.
//!
//! The service never sees KMIP messages: it asks for a new master key, for a key's
//! material while it re-wraps data keys, for keys by name (to reconcile after a crash),
//! and to revoke keys it no longer needs. `headlock-kmip` implements this trait on the
//! `kmip` crate's client; tests may implement it on anything that really keeps keys.

use std::fmt;

use async_trait::async_trait;

use crate::envelope::MasterKeyMaterial;

/// A KMIP Unique Identifier: the server's name for a key. Any text the server chooses;
/// Headlock never makes one up, it only keeps and passes back what a server returned.
/// Records keep it as TEXT and JSON shows it as a string. Its `Debug` form is the quoted text, as a `String`'s is, so
/// messages that show one read the same whatever type holds it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct KmipUid(String);

impl fmt::Debug for KmipUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl KmipUid {
    /// Wraps the text a KMIP server returned (or a record keeps).
    pub fn new(uid: impl Into<String>) -> Self {
        KmipUid(uid.into())
    }

    /// The text, as the KMIP server spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, for records that keep it as a string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for KmipUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for KmipUid {
    fn from(uid: String) -> Self {
        KmipUid(uid)
    }
}

impl From<&str> for KmipUid {
    fn from(uid: &str) -> Self {
        KmipUid(uid.to_string())
    }
}

impl AsRef<str> for KmipUid {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for KmipUid {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for KmipUid {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

/// A key just created (and activated) in the KMIP server, with its material.
pub struct CreatedKey {
    /// KMIP Unique Identifier.
    pub uid: KmipUid,
    /// The server that created it (`host:port`).
    pub server: String,
    /// Its material, fetched with the creation (zeroized on drop; never printed).
    pub material: MasterKeyMaterial,
    /// The material of the key named as `previous` to
    /// [`KeyManager::create_master_key`], when it came with the creation (checked as
    /// [`KeyManager::master_key_material`] checks it); `None` when it did not: fetch it
    /// with [`KeyManager::master_key_material`].
    pub previous: Option<MasterKeyMaterial>,
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("uid", &self.uid)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// The KMIP State of a key, as the server reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Pre-Active.
    PreActive,
    /// Active: usable.
    Active,
    /// Deactivated (revoked, superseded).
    Deactivated,
    /// Compromised.
    Compromised,
    /// Destroyed.
    Destroyed,
    /// Destroyed after being compromised.
    DestroyedCompromised,
}

impl KeyState {
    /// KMIP's name for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::PreActive => "Pre-Active",
            KeyState::Active => "Active",
            KeyState::Deactivated => "Deactivated",
            KeyState::Compromised => "Compromised",
            KeyState::Destroyed => "Destroyed",
            KeyState::DestroyedCompromised => "Destroyed Compromised",
        }
    }
}

/// Why a key is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// Replaced by a newer key (KMIP Revocation Reason Code "Superseded").
    Superseded,
    /// Suspected or known compromise ("Key Compromise").
    Compromised,
    /// Never used: created by an operation that did not complete ("Cessation of Operation").
    Abandoned,
}

/// Failures of the key manager, classified by what the caller can do about them.
/// Display names the server and the operation; nothing here ever holds key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyManagerError {
    /// No server could be reached (or none answered in time). Nothing happened.
    #[error("KMIP server {server} is unavailable: {reason}")]
    Unavailable {
        /// Which server(s).
        server: String,
        /// Why (connection refused, timeout, TLS failure, ...).
        reason: String,
    },
    /// The server answered with a failure.
    #[error("KMIP server {server} refused {operation}: {reason}")]
    Refused {
        /// Which server.
        server: String,
        /// Which KMIP operation.
        operation: String,
        /// KMIP Result Reason and Result Message.
        reason: String,
    },
    /// The request was sent but no answer came back: it may or may not have taken effect
    /// (never retried blindly for Create; reconcile by name instead).
    #[error(
        "KMIP server {server} did not answer {operation}; it may or may not have been applied: {reason}"
    )]
    Indeterminate {
        /// Which server.
        server: String,
        /// Which KMIP operation.
        operation: String,
        /// What happened.
        reason: String,
    },
    /// The key exists but is not an AES-256 key usable as a master key.
    #[error("KMIP key {uid} is not usable as a master key: {reason}")]
    InvalidKey {
        /// The key.
        uid: KmipUid,
        /// Why.
        reason: String,
    },
}

impl KeyManagerError {
    /// Whether the same request may succeed if repeated shortly: only when no server
    /// could be reached, so nothing happened. A refusal stays a refusal; an unusable key
    /// stays unusable; an indeterminate request may have been applied, so the caller
    /// reconciles instead (a Create repeated blindly makes a second key).
    pub fn is_transient(&self) -> bool {
        match self {
            KeyManagerError::Unavailable { .. } => true,
            KeyManagerError::Refused { .. }
            | KeyManagerError::Indeterminate { .. }
            | KeyManagerError::InvalidKey { .. } => false,
        }
    }

    /// Whether the server answered that the key does not exist (KMIP Result Reason
    /// Item Not Found, or 2.x's Object Not Found): the key is missing, which is not an
    /// outage.
    pub fn is_item_not_found(&self) -> bool {
        matches!(self, KeyManagerError::Refused { reason, .. }
            if reason.starts_with(ITEM_NOT_FOUND) || reason.starts_with(OBJECT_NOT_FOUND))
    }
}

/// How [`KeyManagerError::Refused`] spells KMIP's Item Not Found reason (first in its
/// `reason` text).
pub const ITEM_NOT_FOUND: &str = "ItemNotFound";
/// How it spells KMIP 2.x's Object Not Found, which some servers (Cosmian KMS) answer
/// for a missing key instead.
pub const OBJECT_NOT_FOUND: &str = "ObjectNotFound";

/// The operations Headlock needs from a KMIP server.
#[async_trait]
pub trait KeyManager: Send + Sync + 'static {
    /// A short description of where keys live, for logs and errors
    /// (e.g. `embedded KMIP server 127.0.0.1:5696`).
    fn describe(&self) -> String;

    /// Creates an AES-256 key named `name` and activates it (KMIP Create, then Activate).
    /// With `previous` (the key a rotation replaces), also fetches that key's material
    /// where it costs no round trip of its own ([`CreatedKey::previous`]).
    async fn create_master_key(
        &self,
        name: &str,
        previous: Option<&KmipUid>,
    ) -> Result<CreatedKey, KeyManagerError>;

    /// Fetches a master key's material (KMIP Get, Raw format), checking it is 256 bits.
    async fn master_key_material(
        &self,
        uid: &KmipUid,
    ) -> Result<MasterKeyMaterial, KeyManagerError>;

    /// Finds keys by their KMIP Name.
    async fn locate_by_name(&self, name: &str) -> Result<Vec<KmipUid>, KeyManagerError>;

    /// Revokes a key (KMIP Revoke), after which it can no longer encrypt.
    async fn revoke(&self, uid: &KmipUid, reason: RevokeReason) -> Result<(), KeyManagerError>;

    /// The key's KMIP State (Get Attributes).
    async fn key_state(&self, uid: &KmipUid) -> Result<KeyState, KeyManagerError>;

    /// Destroys a key's material (KMIP Destroy). The key must no longer be Active
    /// (revoke it first). The default refuses: a key manager that cannot destroy keys
    /// keeps them.
    async fn destroy(&self, uid: &KmipUid) -> Result<(), KeyManagerError> {
        Err(KeyManagerError::Refused {
            server: self.describe(),
            operation: "Destroy".into(),
            reason: format!("this key manager cannot destroy keys (key {uid})"),
        })
    }

    /// Probes every configured server once (a round trip each, in configuration
    /// order), for the health endpoint. The default has no servers to probe.
    async fn probe_servers(&self) -> Vec<ServerProbe> {
        Vec::new()
    }
}

/// One server's answer to [`KeyManager::probe_servers`].
#[derive(Debug, Clone, PartialEq)]
pub struct ServerProbe {
    /// `host:port`, as configured.
    pub server: String,
    /// Whether a full round trip (TLS handshake and a request) succeeded.
    pub reachable: bool,
    /// How long the round trip took, when it succeeded.
    pub latency: Option<std::time::Duration>,
    /// Why it failed (no secrets: server, operation, reason).
    pub error: Option<String>,
}
