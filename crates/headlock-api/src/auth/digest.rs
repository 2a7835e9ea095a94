//! The Digest exchange itself: per-user secrets, the challenge, the `Authorization`
//! parser and the verification of a response (RFC 7616, with the tolerance the
//! clients of Ops Manager's API need).
//!
//! Decisions, each the conservative one that every known client still passes:
//!
//! - Algorithms `MD5` and `SHA-256` only. `MD5-sess` and `SHA-256-sess` are refused
//!   with [`AuthError::UnsupportedAlgorithm`]: we never offer them, no client of this
//!   API sends them, and they would need the HA1 recomputed per cnonce. `SHA-512-256`
//!   is refused likewise. `userhash=true` and `username*` are refused (never offered).
//! - `qop=auth` only. `auth-int` is refused, and so is the RFC 2069 form without qop:
//!   it has no `nc` and no `cnonce`, so a captured request could be replayed verbatim
//!   for the nonce's lifetime, and every client we must serve sends `qop=auth`.
//! - The response hash is computed over `nc` exactly as sent (`1` or `00000001`);
//!   the replay window compares its numeric value, so `nc=1` and `nc=00000001` on one
//!   nonce and cnonce are the same count.
//! - The `uri` must equal the request target (path and query, byte for byte) after
//!   removing `scheme://authority` from either side; a `uri` without the query of a
//!   request that has one is refused.
//! - `opaque`, when echoed, must be ours; a client that leaves it out is accepted (it
//!   carries no security, and some clients drop it).
//! - The nonce MAC is checked first; the response hash next; only a correct response
//!   on an expired nonce yields [`AuthError::Stale`] (RFC 7616 section 3.3: stale
//!   only "if the nonce is invalid but with a valid digest for that nonce").

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderValue;
use md5::Md5;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::nonce::{MAX_CLOCK_SKEW, NonceCodec, OpenedNonce, ReplayVerdict, ReplayWindow, unix_ms};
use super::{AuthError, REALM};

/// Longest `Authorization` header value [`parse_authorization`] reads.
pub const MAX_AUTHORIZATION_LEN: usize = 4096;
/// Most auth-params in one header (known ones plus unknown extensions).
const MAX_PARAMS: usize = 32;
/// Longest username accepted.
const MAX_USERNAME_LEN: usize = 256;
/// Longest cnonce accepted.
const MAX_CNONCE_LEN: usize = 256;
/// Longest `nc` text (RFC: exactly 8 hex digits; we take 1 to 16).
const MAX_NC_LEN: usize = 16;
/// Default number of (nonce, cnonce) pairs the replay window remembers.
const DEFAULT_REPLAY_CAPACITY: usize = 262_144;

/// The two hash algorithms of the challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `algorithm=MD5` (also the default when a client sends no `algorithm`).
    Md5,
    /// `algorithm=SHA-256`.
    Sha256,
}

impl Algorithm {
    /// The token as it appears in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Length of the hash in bytes.
    fn len(self) -> usize {
        match self {
            Algorithm::Md5 => 16,
            Algorithm::Sha256 => 32,
        }
    }

    /// Lowercase hex of the hash of `parts` joined by `:`.
    fn hex_of(self, parts: &[&[u8]]) -> String {
        fn feed<D: sha2::Digest>(mut d: D, parts: &[&[u8]]) -> String {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            hex::encode(d.finalize())
        }
        match self {
            Algorithm::Md5 => feed(Md5::new(), parts),
            Algorithm::Sha256 => feed(Sha256::new(), parts),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the store keeps for a user instead of the API key: HA1 =
/// H(username ":" realm ":" api_key) for MD5 and for SHA-256.
///
/// HA1 is password-equivalent for this realm (whoever holds it can answer
/// challenges), so it is zeroized on drop, never printed by `Debug`, and belongs in
/// the store only. It depends on the username: renaming a user needs a new key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct UserDigestSecrets {
    /// MD5(username:MMS Public API:apiKey).
    pub ha1_md5: [u8; 16],
    /// SHA-256(username:MMS Public API:apiKey).
    pub ha1_sha256: [u8; 32],
}

impl fmt::Debug for UserDigestSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserDigestSecrets(<redacted>)")
    }
}

impl UserDigestSecrets {
    /// Lowercase hex HA1 for `alg`, zeroized when dropped.
    fn ha1_hex(&self, alg: Algorithm) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(match alg {
            Algorithm::Md5 => hex::encode(self.ha1_md5),
            Algorithm::Sha256 => hex::encode(self.ha1_sha256),
        })
    }
}

/// HA1 for both algorithms, from the username and the API key (realm `MMS Public API`).
pub fn derive_secrets(username: &str, api_key: &str) -> UserDigestSecrets {
    let parts: [&[u8]; 3] = [username.as_bytes(), REALM.as_bytes(), api_key.as_bytes()];
    let mut md5 = Md5::new();
    let mut sha = Sha256::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            md5.update(b":");
            sha.update(b":");
        }
        md5.update(p);
        sha.update(p);
    }
    let mut s = UserDigestSecrets {
        ha1_md5: [0; 16],
        ha1_sha256: [0; 32],
    };
    s.ha1_md5.copy_from_slice(&md5.finalize());
    s.ha1_sha256.copy_from_slice(&sha.finalize());
    s
}

/// The parsed `Authorization: Digest ...` credentials of one request.
///
/// Only syntax and the supported algorithm/qop are checked by the parser; everything
/// else (realm, nonce, uri, hash) by [`DigestAuthenticator::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestResponse {
    /// `username` (at most 256 bytes).
    pub username: String,
    /// `realm` as sent.
    pub realm: String,
    /// `nonce` as sent.
    pub nonce: String,
    /// `uri` (digest-uri) as sent: the request target, possibly absolute.
    pub uri: String,
    /// `algorithm`, `MD5` when absent.
    pub algorithm: Algorithm,
    /// `response`, decoded from hex (16 bytes for MD5, 32 for SHA-256).
    pub response: Vec<u8>,
    /// `cnonce` as sent.
    pub cnonce: String,
    /// `nc` text exactly as sent (it enters the hash verbatim).
    pub nc: String,
    /// `nc` as a number (for the replay window).
    pub nc_value: u64,
    /// `opaque`, if echoed.
    pub opaque: Option<String>,
}

/// One auth-param: name lowercased, value unquoted.
struct Param {
    name: String,
    value: String,
}

fn malformed(offset: usize, reason: &'static str) -> AuthError {
    AuthError::Malformed { offset, reason }
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Splits `Digest a=b, c="d"` into params. Tolerates optional whitespace around `=`
/// and `,`, empty list elements, quoted and unquoted values, and `\x` escapes inside
/// quotes; unquoted values run to the next comma or whitespace.
fn split_params(header: &str) -> Result<Vec<Param>, AuthError> {
    if header.len() > MAX_AUTHORIZATION_LEN {
        return Err(AuthError::HeaderTooLong {
            len: header.len(),
            max: MAX_AUTHORIZATION_LEN,
        });
    }
    let b = header.as_bytes();
    let mut i = 0;
    while i < b.len() && is_ows(b[i]) {
        i += 1;
    }
    let scheme_start = i;
    while i < b.len() && !is_ows(b[i]) {
        i += 1;
    }
    if !header[scheme_start..i].eq_ignore_ascii_case("digest") {
        if header[scheme_start..i].is_empty() {
            return Err(AuthError::MissingHeader);
        }
        return Err(AuthError::NotDigest);
    }
    let mut params: Vec<Param> = Vec::new();
    loop {
        // Skip whitespace and empty list elements.
        while i < b.len() && (is_ows(b[i]) || b[i] == b',') {
            i += 1;
        }
        if i == b.len() {
            break;
        }
        let name_start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b"-_.*!#$%&'+^`|~".contains(&b[i])) {
            i += 1;
        }
        if i == name_start {
            return Err(malformed(i, "expected a parameter name"));
        }
        let name = header[name_start..i].to_ascii_lowercase();
        while i < b.len() && is_ows(b[i]) {
            i += 1;
        }
        if i == b.len() || b[i] != b'=' {
            return Err(malformed(i, "expected `=` after the parameter name"));
        }
        i += 1;
        while i < b.len() && is_ows(b[i]) {
            i += 1;
        }
        let offset = i;
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v = Vec::new();
            loop {
                match b.get(i) {
                    None => return Err(malformed(offset, "unterminated quoted string")),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let Some(&c) = b.get(i + 1) else {
                            return Err(malformed(i, "backslash at the end of the header"));
                        };
                        v.push(c);
                        i += 2;
                    }
                    Some(&c) => {
                        v.push(c);
                        i += 1;
                    }
                }
            }
            // Only ASCII bytes were skipped over or unescaped one at a time, and the
            // input is valid UTF-8, so multi-byte sequences stay whole.
            String::from_utf8(v).map_err(|_| malformed(offset, "quoted string is not UTF-8"))?
        } else {
            let start = i;
            while i < b.len() && b[i] != b',' && !is_ows(b[i]) && b[i] != b'"' {
                i += 1;
            }
            if i == start {
                return Err(malformed(i, "expected a value"));
            }
            header[start..i].to_owned()
        };
        while i < b.len() && is_ows(b[i]) {
            i += 1;
        }
        if i < b.len() && b[i] != b',' {
            return Err(malformed(i, "expected `,` between parameters"));
        }
        if params.iter().any(|p| p.name == name) {
            return Err(malformed(name_start, "duplicate parameter"));
        }
        if params.len() == MAX_PARAMS {
            return Err(malformed(name_start, "too many parameters"));
        }
        params.push(Param { name, value });
    }
    Ok(params)
}

/// Cuts client text for an error message.
fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Parses an `Authorization` header value into [`DigestResponse`].
///
/// Bounded (at most [`MAX_AUTHORIZATION_LEN`] bytes and 32 parameters) and tolerant
/// of what real clients send: parameters in any order, quoted or unquoted values
/// (`algorithm="MD5"`, `qop="auth"`, `nc="00000001"`), escaped quotes, any case for
/// parameter names, `algorithm` and `qop`, unknown extra parameters (ignored).
/// Refuses duplicates, `-sess` algorithms, qops other than `auth`, a missing qop,
/// `userhash=true` and `username*`.
pub fn parse_authorization(value: &str) -> Result<DigestResponse, AuthError> {
    let params = split_params(value)?;
    let get = |name: &str| params.iter().find(|p| p.name == name);
    let required = |name: &'static str| get(name).ok_or(AuthError::MissingParameter(name));

    if get("username*").is_some() {
        return Err(AuthError::InvalidParameter {
            name: "username*",
            reason: "extended usernames are not supported",
        });
    }
    if let Some(p) = get("userhash")
        && !p.value.eq_ignore_ascii_case("false")
    {
        return Err(AuthError::InvalidParameter {
            name: "userhash",
            reason: "hashed usernames are not supported",
        });
    }
    let algorithm = match get("algorithm") {
        None => Algorithm::Md5,
        Some(p) if p.value.eq_ignore_ascii_case("MD5") => Algorithm::Md5,
        Some(p) if p.value.eq_ignore_ascii_case("SHA-256") => Algorithm::Sha256,
        Some(p) => return Err(AuthError::UnsupportedAlgorithm(clip(&p.value))),
    };
    match get("qop") {
        None => return Err(AuthError::UnsupportedQop("none (RFC 2069)".into())),
        Some(p) if p.value.eq_ignore_ascii_case("auth") => {}
        Some(p) => return Err(AuthError::UnsupportedQop(clip(&p.value))),
    }

    let username = required("username")?;
    if username.value.is_empty() || username.value.len() > MAX_USERNAME_LEN {
        return Err(AuthError::InvalidParameter {
            name: "username",
            reason: "must be 1 to 256 bytes",
        });
    }
    let realm = required("realm")?;
    let nonce = required("nonce")?;
    let uri = required("uri")?;
    if uri.value.is_empty() {
        return Err(AuthError::InvalidParameter {
            name: "uri",
            reason: "is empty",
        });
    }
    let cnonce = required("cnonce")?;
    if cnonce.value.is_empty() || cnonce.value.len() > MAX_CNONCE_LEN {
        return Err(AuthError::InvalidParameter {
            name: "cnonce",
            reason: "must be 1 to 256 bytes",
        });
    }
    let nc = required("nc")?;
    if nc.value.is_empty() || nc.value.len() > MAX_NC_LEN {
        return Err(AuthError::InvalidParameter {
            name: "nc",
            reason: "must be 1 to 16 hex digits",
        });
    }
    let nc_value = u64::from_str_radix(&nc.value, 16)
        .ok()
        .filter(|_| nc.value.bytes().all(|c| c.is_ascii_hexdigit()))
        .ok_or(AuthError::InvalidParameter {
            name: "nc",
            reason: "must be 1 to 16 hex digits",
        })?;
    let response_param = required("response")?;
    let response = hex::decode(&response_param.value)
        .ok()
        .filter(|r| r.len() == algorithm.len())
        .ok_or(match algorithm {
            Algorithm::Md5 => AuthError::InvalidParameter {
                name: "response",
                reason: "must be 32 hex digits for MD5",
            },
            Algorithm::Sha256 => AuthError::InvalidParameter {
                name: "response",
                reason: "must be 64 hex digits for SHA-256",
            },
        })?;

    Ok(DigestResponse {
        username: username.value.clone(),
        realm: realm.value.clone(),
        nonce: nonce.value.clone(),
        uri: uri.value.clone(),
        algorithm,
        response,
        cnonce: cnonce.value.clone(),
        nc: nc.value.clone(),
        nc_value,
        opaque: get("opaque").map(|p| p.value.clone()),
    })
}

/// The expected `response` (lowercase hex) for qop=auth, RFC 7616 section 3.4.1:
/// KD(HA1, nonce:nc:cnonce:qop:HA2) with HA2 = H(method:uri).
pub(crate) fn expected_response(
    alg: Algorithm,
    ha1_hex: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
) -> zeroize::Zeroizing<String> {
    let ha2 = alg.hex_of(&[method.as_bytes(), uri.as_bytes()]);
    zeroize::Zeroizing::new(alg.hex_of(&[
        ha1_hex.as_bytes(),
        nonce.as_bytes(),
        nc.as_bytes(),
        cnonce.as_bytes(),
        b"auth",
        ha2.as_bytes(),
    ]))
}

/// `path?query` of a request target or digest-uri, with any `scheme://authority`
/// removed; an absolute URL with an empty path gets `/` (`http://h?q` is `/?q`).
fn path_and_query(target: &str) -> Cow<'_, str> {
    let has_prefix = |p: &str| {
        target.len() >= p.len() && target.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
    };
    let rest = if has_prefix("http://") {
        &target[7..]
    } else if has_prefix("https://") {
        &target[8..]
    } else {
        return Cow::Borrowed(target);
    };
    match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => Cow::Borrowed(&rest[i..]),
        Some(i) => Cow::Owned(format!("/{}", &rest[i..])),
        None => Cow::Borrowed("/"),
    }
}

/// True when the digest-uri names the request target (path and query, byte for byte).
fn uri_matches(uri: &str, target: &str) -> bool {
    path_and_query(uri) == path_and_query(target)
}

/// A correct response on a live nonce, not yet checked against replay (see
/// [`DigestAuthenticator::check`]).
#[derive(Debug)]
#[must_use = "a verified response must still pass DigestAuthenticator::record"]
pub struct Verified {
    nonce: OpenedNonce,
    cnonce: String,
    nc: u64,
}

/// The claim on a nonce that [`DigestAuthenticator::claim_of`] asks for: take the
/// shared lease `nonce` for `holder` until `until`; if another holder has it, the
/// request is stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceClaim {
    /// The nonce's identity: 32 hex digits (issue time and random part; public, as the
    /// nonce itself is).
    pub nonce: String,
    /// This process: random per [`DigestAuthenticator`], so a restart is another holder.
    pub holder: String,
    /// When the nonce can no longer be accepted anywhere (its lifetime plus the clock
    /// skew allowed between nodes): the claim may lapse then.
    pub until: SystemTime,
}

/// Issues challenges and verifies responses. Shared by all requests (`&self`); the
/// only mutable state is the bounded replay window behind a mutex.
pub struct DigestAuthenticator {
    nonces: NonceCodec,
    /// This process's holder name for nonce claims (random, made in `new`).
    boot: String,
    nonce_ttl: Duration,
    replay: ReplayWindow,
    /// Random HA1s used for unknown users, so they cost the same work as known ones.
    dummy: UserDigestSecrets,
}

impl fmt::Debug for DigestAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestAuthenticator")
            .field("nonce_ttl", &self.nonce_ttl)
            .finish_non_exhaustive()
    }
}

impl DigestAuthenticator {
    /// An authenticator whose nonces are MACed under `server_secret` and live for
    /// `nonce_ttl`. Servers sharing a secret accept each other's nonces; the replay
    /// window is per process, so servers that share a secret must also share nonce
    /// claims (see [`DigestAuthenticator::claim_of`]). The secret is copied into ring's HMAC key and the
    /// argument is not kept.
    pub fn new(server_secret: [u8; 32], nonce_ttl: Duration) -> Self {
        let mut secret = server_secret;
        let nonces = NonceCodec::new(&secret);
        secret.zeroize();
        let rng = SystemRandom::new();
        let mut dummy = UserDigestSecrets {
            ha1_md5: [0; 16],
            ha1_sha256: [0; 32],
        };
        // Without OS randomness the dummy stays all-zero: still no key hashes to it
        // in practice, and unknown users still do the same work.
        let _ = rng.fill(&mut dummy.ha1_md5);
        let _ = rng.fill(&mut dummy.ha1_sha256);
        let mut boot = [0u8; 16];
        // Without OS randomness every process would share one holder name and a restart
        // would inherit its claims: take the time too.
        if rng.fill(&mut boot).is_err() {
            boot[..8].copy_from_slice(&unix_ms(SystemTime::now()).to_be_bytes());
        }
        Self {
            nonces,
            boot: format!("digest:{}", hex::encode(boot)),
            nonce_ttl,
            replay: ReplayWindow::new(DEFAULT_REPLAY_CAPACITY),
            dummy,
        }
    }

    /// Sets how many (nonce, cnonce) pairs the replay window remembers (default
    /// 262,144, about 20 MiB at most). When full, the oldest are forgotten and their
    /// nonces answered as stale.
    pub fn with_replay_capacity(mut self, capacity: usize) -> Self {
        self.replay = ReplayWindow::new(capacity);
        self
    }

    /// The nonce lifetime given to [`DigestAuthenticator::new`].
    pub fn nonce_ttl(&self) -> Duration {
        self.nonce_ttl
    }

    /// The two `WWW-Authenticate` values of a 401, MD5 first, with a fresh nonce:
    ///
    /// `Digest realm="MMS Public API", domain="", nonce="…", opaque="…", algorithm=MD5, qop="auth", stale=false`
    ///
    /// and the same with `algorithm=SHA-256`. Both carry the same nonce and opaque
    /// (clients that join the two headers into one still see consistent values).
    pub fn challenge(&self, stale: bool) -> [HeaderValue; 2] {
        self.challenge_at(stale, SystemTime::now())
    }

    /// [`DigestAuthenticator::challenge`] with the nonce issued at `now`.
    pub fn challenge_at(&self, stale: bool, now: SystemTime) -> [HeaderValue; 2] {
        let nonce = self.nonces.mint(now);
        [Algorithm::Md5, Algorithm::Sha256].map(|alg| {
            let text = format!(
                "Digest realm=\"{REALM}\", domain=\"\", nonce=\"{nonce}\", opaque=\"{}\", algorithm={alg}, qop=\"auth\", stale={stale}",
                self.nonces.opaque()
            );
            // Only ASCII letters, digits, `-_ ="/,` go in: always a valid header value.
            HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("Digest"))
        })
    }

    /// [`parse_authorization`], for callers holding the authenticator.
    pub fn parse_authorization(&self, value: &str) -> Result<DigestResponse, AuthError> {
        parse_authorization(value)
    }

    /// Verifies `resp` for a request `method request_target` (the target as received:
    /// path and query, or absolute form) against the user's `secrets`, at `now`, with
    /// this process's memory as the only replay record: [`DigestAuthenticator::check`]
    /// then [`DigestAuthenticator::record`]. For one process on its own (tests,
    /// clients' test servers); `headlock serve` claims each nonce in the shared store
    /// between the two (see [`DigestAuthenticator::claim_of`]).
    pub fn verify(
        &self,
        method: &str,
        request_target: &str,
        resp: &DigestResponse,
        secrets: &UserDigestSecrets,
        now: SystemTime,
    ) -> Result<(), AuthError> {
        let verified = self.check(method, request_target, resp, secrets, now)?;
        self.record(verified, now)
    }

    /// Everything but the replay check, in this order: realm, nonce MAC, opaque, uri,
    /// then the response hash in constant time, then the nonce's age
    /// ([`AuthError::Stale`] only for a correct response). A correct, fresh response is
    /// [`Verified`]: it must still pass [`DigestAuthenticator::record`].
    pub fn check(
        &self,
        method: &str,
        request_target: &str,
        resp: &DigestResponse,
        secrets: &UserDigestSecrets,
        now: SystemTime,
    ) -> Result<Verified, AuthError> {
        self.verify_inner(method, request_target, resp, secrets, true, now)
    }

    /// What must be claimed in the store shared by every process before `verified`'s
    /// nonce is used here for the first time: `None` when this process already owns the
    /// nonce. A nonce is used by one process only (one node, one boot): whoever claims
    /// it first; a request whose nonce another process claimed is answered
    /// [`AuthError::Stale`], so its client takes a fresh nonce, while a replay of a
    /// captured request to another node or after a restart is refused.
    pub fn claim_of(&self, verified: &Verified) -> Option<NonceClaim> {
        if self.replay.owns(verified.nonce) {
            return None;
        }
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&verified.nonce.issued_ms.to_be_bytes());
        id[8..].copy_from_slice(&verified.nonce.random.to_be_bytes());
        let until = UNIX_EPOCH
            + Duration::from_millis(verified.nonce.issued_ms)
            + self.nonce_ttl
            + MAX_CLOCK_SKEW;
        Some(NonceClaim {
            nonce: hex::encode(id),
            holder: self.boot.clone(),
            until,
        })
    }

    /// Records `verified`'s count in the replay window (and the nonce as this
    /// process's): [`AuthError::Replayed`] if it was used before,
    /// [`AuthError::Stale`] if the window had to forget the nonce.
    pub fn record(&self, verified: Verified, now: SystemTime) -> Result<(), AuthError> {
        match self.replay.check_and_record(
            verified.nonce,
            &verified.cnonce,
            verified.nc,
            self.nonce_ttl,
            now,
        ) {
            ReplayVerdict::Fresh => Ok(()),
            ReplayVerdict::Replayed => Err(AuthError::Replayed { nc: verified.nc }),
            ReplayVerdict::Forgotten => Err(AuthError::Stale),
        }
    }

    /// What [`DigestAuthenticator::verify`] does for a username that does not exist:
    /// the same checks and the same hashing against random secrets, then
    /// [`AuthError::BadCredentials`] (or the same earlier error a known user would
    /// get), so the client cannot tell an unknown user from a wrong key.
    pub fn verify_unknown_user(
        &self,
        method: &str,
        request_target: &str,
        resp: &DigestResponse,
        now: SystemTime,
    ) -> AuthError {
        match self.verify_inner(method, request_target, resp, &self.dummy, false, now) {
            Err(e) => e,
            Ok(_) => AuthError::BadCredentials,
        }
    }

    fn verify_inner(
        &self,
        method: &str,
        request_target: &str,
        resp: &DigestResponse,
        secrets: &UserDigestSecrets,
        known_user: bool,
        now: SystemTime,
    ) -> Result<Verified, AuthError> {
        if resp.realm != REALM {
            return Err(AuthError::WrongRealm);
        }
        let nonce: OpenedNonce = self
            .nonces
            .open(&resp.nonce, now)
            .ok_or(AuthError::InvalidNonce)?;
        if let Some(opaque) = &resp.opaque
            && opaque != self.nonces.opaque()
        {
            return Err(AuthError::OpaqueMismatch);
        }
        if !uri_matches(&resp.uri, request_target) {
            return Err(AuthError::UriMismatch {
                target: request_target.chars().take(200).collect(),
            });
        }
        let expected = expected_response(
            resp.algorithm,
            &secrets.ha1_hex(resp.algorithm),
            method,
            &resp.uri,
            &resp.nonce,
            &resp.nc,
            &resp.cnonce,
        );
        let mut expected_bytes = zeroize::Zeroizing::new([0u8; 32]);
        let n = resp.algorithm.len();
        if hex::decode_to_slice(expected.as_bytes(), &mut expected_bytes[..n]).is_err() {
            return Err(AuthError::BadCredentials);
        }
        let hash_ok: bool = expected_bytes[..n].ct_eq(&resp.response).into();
        if !(hash_ok && known_user) {
            return Err(AuthError::BadCredentials);
        }
        let ttl_ms = u64::try_from(self.nonce_ttl.as_millis()).unwrap_or(u64::MAX);
        if unix_ms(now) > nonce.issued_ms.saturating_add(ttl_ms) {
            return Err(AuthError::Stale);
        }
        Ok(Verified {
            nonce,
            cnonce: resp.cnonce.clone(),
            nc: resp.nc_value,
        })
    }
}

#[cfg(test)]
mod tests;
