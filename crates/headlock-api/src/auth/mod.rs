//! HTTP Digest authentication exactly as MongoDB Ops Manager's public API does it.
//!
//! Realm `MMS Public API`, username and API key, MD5 and SHA-256, `qop="auth"`, as
//! `curl --digest -u "username:apiKey"`, Python `requests`' `HTTPDigestAuth`,
//! `httpx.DigestAuth` and MongoDB's Go digest client send it. This module is pure
//! (no axum middleware, no I/O): the API layer wires it in.
//!
//! - [`derive_secrets`] turns a new API key into the only thing the store keeps,
//!   [`UserDigestSecrets`] (HA1 for MD5 and for SHA-256); the key itself is never stored.
//! - [`DigestAuthenticator`] issues the challenge (two `WWW-Authenticate` headers, MD5
//!   first), parses `Authorization` ([`parse_authorization`]) and verifies a response:
//!   stateless HMAC nonces that expire ([`AuthError::Stale`] then asks for
//!   `stale=true`), the `uri` against the request target, the response hash in
//!   constant time, and a bounded replay window for `nc`; each nonce is used by one
//!   process only ([`DigestAuthenticator::claim_of`]), so that a captured request
//!   cannot be replayed on another node or after a restart.
//! - [`Throttle`] slows down failed attempts per source address and per (username,
//!   address) (growing delays, never a permanent lockout); failures per username
//!   from every address only raise an alert.
//! - [`access_list_allows`] checks a per-user API access list of IPs and CIDRs.
//!
//! Hand-written on purpose: no maintained Rust crate implements the *server* side of
//! RFC 7616 with stateless nonces, replay windows and the tolerance real clients need;
//! the primitives (HMAC, MD5, SHA-256, constant-time comparison, CIDRs) come from
//! `ring`, `md-5`, `sha2`, `subtle` and `ipnet`.
//!
//! # How the API layer uses it
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use headlock_api::auth::{derive_secrets, parse_authorization, AuthError, DigestAuthenticator};
//!
//! let auth = DigestAuthenticator::new([7u8; 32], Duration::from_secs(300));
//! // No Authorization header: answer 401 with both challenges, MD5 first.
//! let [md5, sha256] = auth.challenge(false);
//! assert!(md5.to_str().unwrap().starts_with(r#"Digest realm="MMS Public API", domain="", nonce=""#));
//! assert!(sha256.to_str().unwrap().ends_with(r#"algorithm=SHA-256, qop="auth", stale=false"#));
//!
//! // With a header: parse, look the user up (the store keeps only derive_secrets'
//! // output), then verify, or verify_unknown_user when there is no such user.
//! let secrets = derive_secrets("alice", "api-key");
//! let header = r#"Digest username="alice", realm="MMS Public API", nonce="forged", uri="/api/public/v1.0/groups", cnonce="x", nc=1, qop=auth, response="00000000000000000000000000000000""#;
//! let resp = parse_authorization(header)?;
//! let outcome = auth.verify("GET", "/api/public/v1.0/groups", &resp, &secrets, SystemTime::now());
//! assert_eq!(outcome, Err(AuthError::InvalidNonce)); // 401, fresh challenge, stale=false
//! # Ok::<(), AuthError>(())
//! ```
//!
//! Every [`AuthError`] maps to `401` with a fresh challenge (`stale=true` exactly when
//! [`AuthError::is_stale`]); [`AuthError::counts_as_failure`] says which ones feed the
//! [`Throttle`]. Unknown users go through [`DigestAuthenticator::verify_unknown_user`],
//! which does the same work as a wrong key and returns the same
//! [`AuthError::BadCredentials`].

mod access_list;
mod digest;
mod nonce;
mod throttle;

pub use access_list::{AccessListError, access_list_allows, parse_access_list_entry};
pub use digest::{
    Algorithm, DigestAuthenticator, DigestResponse, MAX_AUTHORIZATION_LEN, NonceClaim,
    UserDigestSecrets, Verified, derive_secrets, parse_authorization,
};
pub use throttle::{Failure, RetryAfter, Throttle, ThrottleConfig};

/// The realm of Ops Manager's public API, in every challenge and every HA1.
pub const REALM: &str = "MMS Public API";

/// Why a request was not authenticated.
///
/// Every variant is answered with `401` and a fresh challenge, except that the
/// challenge carries `stale=true` when [`AuthError::is_stale`] is true. Variants are
/// grouped by what the client got wrong; none carries the username, the key or the
/// response hash, so they are safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    // ---- no usable credentials (the normal first round trip, or a garbled header)
    /// The request carries no `Authorization` header.
    #[error("no Authorization header")]
    MissingHeader,
    /// The header is longer than [`MAX_AUTHORIZATION_LEN`].
    #[error("Authorization header is {len} bytes, over the {max}-byte limit")]
    HeaderTooLong {
        /// Length received, in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The header uses another scheme (e.g. `Basic`).
    #[error("Authorization scheme is not Digest")]
    NotDigest,
    /// The header does not follow the auth-param syntax.
    #[error("malformed Digest credentials at byte {offset}: {reason}")]
    Malformed {
        /// Byte offset in the header value where parsing stopped.
        offset: usize,
        /// What was expected there.
        reason: &'static str,
    },
    /// A parameter the response needs is absent.
    #[error("Digest credentials lack the `{0}` parameter")]
    MissingParameter(&'static str),
    /// A parameter is present but its value is unusable (wrong length, not hex, ...).
    #[error("Digest parameter `{name}` is invalid: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An algorithm other than `MD5` and `SHA-256` (the `-sess` variants included).
    #[error("unsupported digest algorithm `{0}`: only MD5 and SHA-256 are accepted")]
    UnsupportedAlgorithm(String),
    /// A qop other than `auth`, or none at all (RFC 2069 legacy digest).
    #[error("unsupported qop `{0}`: only qop=auth is accepted")]
    UnsupportedQop(String),

    // ---- credentials that do not belong to this server or this request
    /// The realm is not `MMS Public API`.
    #[error("realm is not `MMS Public API`")]
    WrongRealm,
    /// The nonce was not issued by this server (bad MAC, wrong size, from the future).
    #[error("nonce was not issued by this server")]
    InvalidNonce,
    /// The `opaque` echoed back is not the one this server sends.
    #[error("opaque does not match the challenge")]
    OpaqueMismatch,
    /// The `uri` parameter names another resource than the request target.
    #[error("digest uri does not match the request target `{target}`")]
    UriMismatch {
        /// The request target (path and query), cut to 200 bytes.
        target: String,
    },

    // ---- verification proper
    /// Unknown user or wrong response: deliberately one variant.
    #[error("unknown user or wrong API key")]
    BadCredentials,
    /// The same nonce, cnonce and nc were already accepted (or nc is far behind).
    #[error("nonce count {nc:#x} was already used with this nonce and cnonce")]
    Replayed {
        /// The numeric nonce count.
        nc: u64,
    },
    /// Correct response, but the nonce is older than the nonce lifetime (or this
    /// server no longer remembers its counts): the client should retry with the new
    /// nonce of a `stale=true` challenge, without asking the user again.
    #[error("nonce is stale")]
    Stale,
}

impl AuthError {
    /// True when the 401 challenge must say `stale=true`.
    pub fn is_stale(&self) -> bool {
        matches!(self, AuthError::Stale)
    }

    /// True when this outcome is a failed guess that [`Throttle::record_failure`]
    /// should count: a wrong key, an unknown user or a replay. Missing or garbled
    /// headers and stale nonces are part of normal client behaviour and do not count.
    pub fn counts_as_failure(&self) -> bool {
        matches!(self, AuthError::BadCredentials | AuthError::Replayed { .. })
    }
}
