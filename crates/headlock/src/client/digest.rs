//! HTTP Digest authentication (RFC 7616), client side: parsing `WWW-Authenticate`
//! values, picking the challenge to answer (`SHA-256` over `MD5`, `qop=auth` only),
//! and the `Authorization` value of each request of one nonce (one cnonce, `nc`
//! increasing by one). [`ApiClient::send`](super::ApiClient::send) decides when to
//! answer and when a `401` is final.

use std::fmt::Write as _;

use hyper::Method;
use hyper::header::{self, HeaderMap, HeaderValue};
use md5::Md5;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// Longest `WWW-Authenticate` value parsed.
const MAX_CHALLENGE_LEN: usize = 8 * 1024;
/// Most auth-params read from one `WWW-Authenticate` value.
const MAX_CHALLENGE_PARAMS: usize = 64;
/// How many `401` answers one call takes before it gives the last one back: the first
/// challenge, then at most two `stale=true` renewals.
pub(super) const MAX_AUTH_ROUNDS: usize = 3;

/// A hash algorithm of a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Lowercase hex of the hash of `parts` joined by `:`.
    fn hex(self, parts: &[&str]) -> String {
        fn run<D: sha2::Digest>(mut d: D, parts: &[&str]) -> String {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p.as_bytes());
            }
            hex::encode(d.finalize())
        }
        match self {
            Algorithm::Md5 => run(Md5::new(), parts),
            Algorithm::Sha256 => run(Sha256::new(), parts),
        }
    }
}

/// The Digest challenge chosen among a response's `WWW-Authenticate` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Challenge {
    algorithm: Algorithm,
    realm: String,
    nonce: String,
    opaque: Option<String>,
    pub(super) stale: bool,
}

/// One challenge of a `WWW-Authenticate` value: scheme and auth-params (names
/// lowercased, values unquoted).
#[derive(Debug, Default)]
struct RawChallenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl RawChallenge {
    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b)
}

/// Parses a `WWW-Authenticate` value: one or more challenges, each a scheme followed
/// by comma-separated auth-params (quoted or not). Tolerant: bytes it cannot place
/// are skipped; bounded by [`MAX_CHALLENGE_LEN`] and [`MAX_CHALLENGE_PARAMS`].
fn parse_www_authenticate(value: &str) -> Vec<RawChallenge> {
    let b = value.as_bytes();
    let b = &b[..b.len().min(MAX_CHALLENGE_LEN)];
    let mut out: Vec<RawChallenge> = Vec::new();
    let mut params = 0;
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && matches!(b[*i], b' ' | b'\t') {
            *i += 1;
        }
    };
    while i < b.len() && params < MAX_CHALLENGE_PARAMS {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        let start = i;
        while i < b.len() && is_tchar(b[i]) {
            i += 1;
        }
        if i == start {
            // Not a token: skip the byte.
            i += 1;
            continue;
        }
        let token = String::from_utf8_lossy(&b[start..i]).to_ascii_lowercase();
        let after_token = i;
        skip_ws(&mut i);
        if i < b.len() && b[i] == b'=' {
            i += 1;
            skip_ws(&mut i);
            let mut v = Vec::new();
            if i < b.len() && b[i] == b'"' {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    v.push(b[i]);
                    i += 1;
                }
                i += 1; // closing quote (or past the end)
            } else {
                while i < b.len() && !matches!(b[i], b',' | b' ' | b'\t') {
                    v.push(b[i]);
                    i += 1;
                }
            }
            params += 1;
            if let Some(c) = out.last_mut() {
                c.params
                    .push((token, String::from_utf8_lossy(&v).into_owned()));
            }
        } else {
            i = after_token;
            out.push(RawChallenge {
                scheme: token,
                params: Vec::new(),
            });
        }
    }
    out
}

/// The Digest challenge to answer: `SHA-256` if offered, else `MD5`, `qop=auth` in
/// both cases. `Ok(None)`: no Digest challenge at all. `Err`: Digest is asked for but
/// in no form this client speaks.
pub(super) fn pick_challenge(headers: &HeaderMap) -> Result<Option<Challenge>, String> {
    let mut digest_seen = false;
    let mut best: Option<Challenge> = None;
    for value in headers.get_all(header::WWW_AUTHENTICATE) {
        let Ok(value) = value.to_str() else { continue };
        for raw in parse_www_authenticate(value) {
            if raw.scheme != "digest" {
                continue;
            }
            digest_seen = true;
            let algorithm = match raw.get("algorithm").map(|a| a.to_ascii_uppercase()) {
                None => Algorithm::Md5,
                Some(a) if a == "MD5" => Algorithm::Md5,
                Some(a) if a == "SHA-256" => Algorithm::Sha256,
                Some(_) => continue,
            };
            let qop_auth = raw
                .get("qop")
                .is_some_and(|q| q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")));
            let (Some(realm), Some(nonce)) = (raw.get("realm"), raw.get("nonce")) else {
                continue;
            };
            if !qop_auth || nonce.is_empty() {
                continue;
            }
            let c = Challenge {
                algorithm,
                realm: realm.to_string(),
                nonce: nonce.to_string(),
                opaque: raw.get("opaque").map(str::to_string),
                stale: raw
                    .get("stale")
                    .is_some_and(|s| s.eq_ignore_ascii_case("true")),
            };
            if best
                .as_ref()
                .is_none_or(|b| b.algorithm == Algorithm::Md5 && c.algorithm == Algorithm::Sha256)
            {
                best = Some(c);
            }
        }
    }
    match best {
        Some(c) => Ok(Some(c)),
        None if digest_seen => {
            Err("no Digest challenge with algorithm MD5 or SHA-256 and qop=auth".into())
        }
        None => Ok(None),
    }
}

/// One nonce's worth of Digest state: the challenge, our cnonce, the next nc, and HA1
/// (password-equivalent for the realm: zeroized on drop).
pub(super) struct DigestSession {
    challenge: Challenge,
    ha1: Zeroizing<String>,
    cnonce: String,
    nc: u32,
}

impl DigestSession {
    pub(super) fn new(
        challenge: Challenge,
        username: &str,
        api_key: &str,
        rng: &SystemRandom,
    ) -> Result<Self, String> {
        let mut raw = [0u8; 16];
        rng.fill(&mut raw)
            .map_err(|_| "the system random generator failed to make a cnonce".to_string())?;
        Ok(DigestSession {
            ha1: ha1(challenge.algorithm, username, &challenge.realm, api_key),
            challenge,
            cnonce: hex::encode(raw),
            nc: 0,
        })
    }

    /// The `Authorization` value for the next request (nc increases by one).
    pub(super) fn authorization(
        &mut self,
        username: &str,
        method: &Method,
        uri: &str,
    ) -> Result<HeaderValue, String> {
        self.nc = self.nc.wrapping_add(1);
        let nc = format!("{:08x}", self.nc);
        let c = &self.challenge;
        let response = response_hex(
            c.algorithm,
            &self.ha1,
            &c.nonce,
            &nc,
            &self.cnonce,
            method.as_str(),
            uri,
        );
        let mut v = format!(
            "Digest username={}, realm={}, nonce={}, uri={}, algorithm={}, qop=auth, nc={nc}, cnonce={}, response=\"{response}\"",
            quote(username),
            quote(&c.realm),
            quote(&c.nonce),
            quote(uri),
            c.algorithm.as_str(),
            quote(&self.cnonce),
        );
        if let Some(o) = &c.opaque {
            let _ = write!(v, ", opaque={}", quote(o));
        }
        HeaderValue::from_str(&v).map_err(|_| {
            "the username or the server's challenge holds characters a header cannot carry"
                .to_string()
        })
    }
}

/// A quoted-string with `\` and `"` escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
    out
}

/// HA1 = H(username ":" realm ":" key), lowercase hex.
fn ha1(alg: Algorithm, username: &str, realm: &str, key: &str) -> Zeroizing<String> {
    Zeroizing::new(alg.hex(&[username, realm, key]))
}

/// RFC 7616 section 3.4.1 with qop=auth: H(HA1 ":" nonce ":" nc ":" cnonce ":" "auth"
/// ":" H(method ":" uri)).
fn response_hex(
    alg: Algorithm,
    ha1: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = alg.hex(&[method, uri]);
    alg.hex(&[ha1, nonce, nc, cnonce, "auth", &ha2])
}

#[cfg(test)]
mod tests;
