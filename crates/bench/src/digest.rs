//! The client side of HTTP Digest (RFC 7616, `algorithm=MD5`, `qop=auth`), the way
//! `curl --digest` does it within one kept-alive connection.
//!
//! The first request goes out without credentials and is answered 401 with a
//! challenge; from then on every request carries `Authorization: Digest ...` with the
//! same nonce, the same cnonce and `nc` counting up from `00000001`. A 401 with
//! `stale=true` means the nonce expired: the client takes the fresh nonce from that
//! answer (a new cnonce, `nc` from 1 again) and sends the request again. A 401 without
//! `stale=true` on a request that carried credentials is a refusal and is returned to
//! the caller as is.
//!
//! Hand-written because it is a few lines over `md-5` and the benchmark must control
//! exactly how nonces are reused (no maintained crate exposes that). The API key and
//! HA1 are zeroized on drop.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use md5::{Digest as _, Md5};
use zeroize::Zeroizing;

use crate::http::{Connection, HttpError, Response};

/// Longest `WWW-Authenticate` value parsed.
pub const MAX_CHALLENGE_LEN: usize = 4096;
/// Most 401 round trips one request may take (first challenge, then stale nonces).
const MAX_CHALLENGES: u32 = 3;

/// Why a digest exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    /// The transport failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// A `WWW-Authenticate` value could not be parsed.
    #[error("bad digest challenge from {addr} at byte {offset}: {what}")]
    BadChallenge {
        /// The server.
        addr: std::net::SocketAddr,
        /// Offset in the header value.
        offset: usize,
        /// What was wrong.
        what: &'static str,
    },
    /// A 401 carried no challenge this client can answer (Digest, MD5, qop auth).
    #[error("401 from {addr} without a Digest MD5 qop=auth challenge")]
    NoUsableChallenge {
        /// The server.
        addr: std::net::SocketAddr,
    },
    /// The server kept answering 401 with fresh challenges.
    #[error("{addr} answered {MAX_CHALLENGES} challenges in a row to {method} {uri}")]
    TooManyChallenges {
        /// The server.
        addr: std::net::SocketAddr,
        /// Request method.
        method: String,
        /// Request target.
        uri: String,
    },
}

/// One parsed `WWW-Authenticate: Digest ...` challenge.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Challenge {
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `opaque`, echoed back when present.
    pub opaque: Option<String>,
    /// `algorithm` (`MD5` when absent).
    pub algorithm: String,
    /// `qop` options as sent (e.g. `auth` or `auth,auth-int`).
    pub qop: String,
    /// `stale=true`.
    pub stale: bool,
}

impl Challenge {
    /// Parses one header value; `Ok(None)` when it is not a Digest challenge.
    pub fn parse(value: &str) -> Result<Option<Challenge>, (usize, &'static str)> {
        if value.len() > MAX_CHALLENGE_LEN {
            return Err((MAX_CHALLENGE_LEN, "challenge longer than MAX_CHALLENGE_LEN"));
        }
        let Some(scheme) = value.get(..7) else {
            return Ok(None);
        };
        if !scheme.eq_ignore_ascii_case("digest ") {
            return Ok(None);
        }
        let mut c = Challenge {
            algorithm: "MD5".into(),
            ..Challenge::default()
        };
        let b = value.as_bytes();
        let mut i = 7;
        loop {
            while i < b.len() && (b[i] == b' ' || b[i] == b'\t' || b[i] == b',') {
                i += 1;
            }
            if i == b.len() {
                break;
            }
            let start = i;
            while i < b.len() && b[i] != b'=' && b[i] != b',' {
                i += 1;
            }
            if i == b.len() || b[i] != b'=' {
                return Err((start, "auth-param without '='"));
            }
            let name = value[start..i].trim().to_ascii_lowercase();
            i += 1;
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            let val = if b.get(i) == Some(&b'"') {
                let open = i;
                i += 1;
                let mut v = String::new();
                loop {
                    match b.get(i) {
                        None => return Err((open, "unterminated quoted-string")),
                        Some(b'"') => break,
                        Some(b'\\') if i + 1 < b.len() => {
                            v.push(b[i + 1] as char);
                            i += 2;
                        }
                        Some(_) => {
                            // Copy a run of ordinary characters (keeps UTF-8 intact).
                            let run = i;
                            while i < b.len() && b[i] != b'"' && b[i] != b'\\' {
                                i += 1;
                            }
                            v.push_str(&value[run..i]);
                        }
                    }
                }
                i += 1;
                v
            } else {
                let run = i;
                while i < b.len() && b[i] != b',' {
                    i += 1;
                }
                value[run..i].trim().to_string()
            };
            match name.as_str() {
                "realm" => c.realm = val,
                "nonce" => c.nonce = val,
                "opaque" => c.opaque = Some(val),
                "algorithm" => c.algorithm = val,
                "qop" => c.qop = val,
                "stale" => c.stale = val.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        if c.nonce.is_empty() {
            return Err((7, "challenge without a nonce"));
        }
        Ok(Some(c))
    }

    /// True for `algorithm=MD5` with `auth` among the qop options.
    fn is_md5_auth(&self) -> bool {
        self.algorithm.eq_ignore_ascii_case("MD5")
            && self.qop.split(',').any(|q| q.trim() == "auth")
    }
}

/// One answered request: the final response and what it took.
#[derive(Debug)]
pub struct Exchange {
    /// The final response (not a challenge this client answered).
    pub response: Response,
    /// Time of the final round trip alone.
    pub elapsed: Duration,
    /// 401 round trips taken before it (first challenge or stale nonces).
    pub challenges: u32,
    /// How many of those were `stale=true`.
    pub stale: u32,
}

/// Digest credentials and the nonce state of one connection.
pub struct DigestClient {
    username: String,
    api_key: Zeroizing<String>,
    /// Lowercase hex MD5(username:realm:api_key), for `realm`.
    ha1_hex: Zeroizing<String>,
    realm: String,
    nonce: Option<String>,
    opaque: Option<String>,
    cnonce: String,
    nc: u32,
    header: String,
}

impl DigestClient {
    /// Credentials for `username` and `api_key`; no nonce yet.
    pub fn new(username: &str, api_key: &str) -> DigestClient {
        DigestClient {
            username: username.to_string(),
            api_key: Zeroizing::new(api_key.to_string()),
            ha1_hex: Zeroizing::new(String::new()),
            realm: String::new(),
            nonce: None,
            opaque: None,
            cnonce: String::new(),
            nc: 0,
            header: String::with_capacity(512),
        }
    }

    /// Adopts the first usable challenge of a 401 `resp` (new nonce, new cnonce, `nc`
    /// from 1) and returns whether it said `stale=true`.
    pub fn on_challenge(
        &mut self,
        addr: std::net::SocketAddr,
        resp: &Response,
    ) -> Result<bool, DigestError> {
        let mut usable = None;
        for value in resp.header_values("www-authenticate") {
            match Challenge::parse(value) {
                Ok(Some(c)) if c.is_md5_auth() => {
                    usable = Some(c);
                    break;
                }
                Ok(_) => {}
                Err((offset, what)) => {
                    return Err(DigestError::BadChallenge { addr, offset, what });
                }
            }
        }
        let c = usable.ok_or(DigestError::NoUsableChallenge { addr })?;
        if c.realm != self.realm || self.ha1_hex.is_empty() {
            self.ha1_hex = Zeroizing::new(md5_hex(&[
                self.username.as_bytes(),
                c.realm.as_bytes(),
                self.api_key.as_bytes(),
            ]));
            self.realm = c.realm;
        }
        self.nonce = Some(c.nonce);
        self.opaque = c.opaque;
        self.cnonce = hex::encode(rand::random::<[u8; 16]>());
        self.nc = 0;
        Ok(c.stale)
    }

    /// The `Authorization` value for the next request (next `nc`), or `None` before
    /// the first challenge.
    pub fn authorization(&mut self, method: &str, uri: &str) -> Option<&str> {
        let nonce = self.nonce.as_deref()?;
        self.nc = self.nc.wrapping_add(1);
        let nc = format!("{:08x}", self.nc);
        let ha2 = md5_hex(&[method.as_bytes(), uri.as_bytes()]);
        let response = md5_hex(&[
            self.ha1_hex.as_bytes(),
            nonce.as_bytes(),
            nc.as_bytes(),
            self.cnonce.as_bytes(),
            b"auth",
            ha2.as_bytes(),
        ]);
        let h = &mut self.header;
        h.clear();
        let _ = write!(
            h,
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", algorithm=MD5, response=\"{}\", qop=auth, nc={}, cnonce=\"{}\"",
            Quoted(&self.username),
            Quoted(&self.realm),
            Quoted(nonce),
            Quoted(uri),
            response,
            nc,
            self.cnonce
        );
        if let Some(opaque) = &self.opaque {
            let _ = write!(h, ", opaque=\"{}\"", Quoted(opaque));
        }
        Some(&self.header)
    }

    /// Sends `method uri` on `conn`, answering challenges as curl does, and returns
    /// the first response that is not a challenge it answered.
    pub async fn send(
        &mut self,
        conn: &mut Connection,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Exchange, DigestError> {
        let addr = conn.addr();
        let (mut challenges, mut stale) = (0, 0);
        loop {
            let mut all: Vec<(&str, &str)> = headers.to_vec();
            let had_credentials = match self.authorization(method, uri) {
                Some(auth) => {
                    all.push(("Authorization", auth));
                    true
                }
                None => false,
            };
            let start = Instant::now();
            let response = conn.send(method, uri, &all, body).await?;
            let elapsed = start.elapsed();
            if response.status != 401 {
                return Ok(Exchange {
                    response,
                    elapsed,
                    challenges,
                    stale,
                });
            }
            let is_stale = self.on_challenge(addr, &response)?;
            if had_credentials && !is_stale {
                // Refused: the caller sees the 401.
                return Ok(Exchange {
                    response,
                    elapsed,
                    challenges,
                    stale,
                });
            }
            challenges += 1;
            stale += u32::from(is_stale);
            if challenges >= MAX_CHALLENGES {
                return Err(DigestError::TooManyChallenges {
                    addr,
                    method: method.into(),
                    uri: uri.into(),
                });
            }
        }
    }
}

/// Writes a quoted-string body, escaping `"` and `\`.
struct Quoted<'a>(&'a str);

impl std::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for ch in self.0.chars() {
            if ch == '"' || ch == '\\' {
                f.write_char('\\')?;
            }
            f.write_char(ch)?;
        }
        Ok(())
    }
}

/// Lowercase hex MD5 of `parts` joined by `:`.
fn md5_hex(parts: &[&[u8]]) -> String {
    let mut d = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            d.update(b":");
        }
        d.update(p);
    }
    hex::encode(d.finalize())
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use headlock_api::auth::{AuthError, DigestAuthenticator, derive_secrets, parse_authorization};

    use super::*;

    fn response_with(challenges: &[&str]) -> Response {
        Response {
            status: 401,
            headers: challenges
                .iter()
                .map(|c| ("www-authenticate".to_string(), c.to_string()))
                .collect(),
            body: Vec::new(),
        }
    }

    fn addr() -> std::net::SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    fn param<'a>(header: &'a str, name: &str) -> &'a str {
        let start = header.find(&format!("{name}=")).unwrap() + name.len() + 1;
        let rest = header[start..].trim_start_matches('"');
        &rest[..rest.find(['"', ',']).unwrap_or(rest.len())]
    }

    /// RFC 7616 section 3.9.1, the MD5 example.
    #[test]
    fn accepts_rfc7616_md5_example() {
        let mut c = DigestClient::new("Mufasa", "Circle of Life");
        let r = response_with(&[
            r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#,
            r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#,
        ]);
        assert!(!c.on_challenge(addr(), &r).unwrap());
        c.cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ".into();
        let h = c
            .authorization("GET", "/dir/index.html")
            .unwrap()
            .to_string();
        assert_eq!(param(&h, "response"), "8ca523f5e9506fed4657c9700eebdbec");
        assert_eq!(param(&h, "nc"), "00000001");
        assert_eq!(
            param(&h, "opaque"),
            "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
        );
    }

    #[test]
    fn accepts_headlock_challenge_and_passes_its_verifier_with_increasing_nc() {
        let server = DigestAuthenticator::new([9u8; 32], Duration::from_secs(300));
        let challenges = server.challenge(false);
        let values: Vec<&str> = challenges.iter().map(|v| v.to_str().unwrap()).collect();
        let mut c = DigestClient::new("bench", "0123-key");
        assert!(!c.on_challenge(addr(), &response_with(&values)).unwrap());
        let secrets = derive_secrets("bench", "0123-key");
        let uri = "/api/public/v1.0/groups/abc/backupConfigs/def/encryptionKey";
        let mut first = String::new();
        for n in 1..=3 {
            let h = c.authorization("GET", uri).unwrap().to_string();
            assert_eq!(param(&h, "nc"), format!("{n:08x}"));
            let parsed = parse_authorization(&h).unwrap();
            assert_eq!(
                server.verify("GET", uri, &parsed, &secrets, SystemTime::now()),
                Ok(())
            );
            if n == 1 {
                first = h;
            }
        }
        // The first header again is a replay and must be refused.
        let parsed = parse_authorization(&first).unwrap();
        assert!(
            server
                .verify("GET", uri, &parsed, &secrets, SystemTime::now())
                .is_err()
        );
        // A wrong key is refused.
        let mut wrong = DigestClient::new("bench", "other-key");
        wrong.on_challenge(addr(), &response_with(&values)).unwrap();
        let parsed = parse_authorization(wrong.authorization("GET", uri).unwrap()).unwrap();
        assert_eq!(
            server.verify("GET", uri, &parsed, &secrets, SystemTime::now()),
            Err(AuthError::BadCredentials)
        );
    }

    #[test]
    fn accepts_stale_challenge_and_restarts_nc() {
        let mut c = DigestClient::new("u", "k");
        c.on_challenge(
            addr(),
            &response_with(&[r#"Digest realm="r", nonce="n1", qop="auth""#]),
        )
        .unwrap();
        c.authorization("GET", "/").unwrap();
        c.authorization("GET", "/").unwrap();
        let stale = c
            .on_challenge(
                addr(),
                &response_with(&[r#"Digest realm="r", nonce="n2", qop="auth", stale=true"#]),
            )
            .unwrap();
        assert!(stale);
        let h = c.authorization("GET", "/").unwrap();
        assert_eq!(param(h, "nonce"), "n2");
        assert_eq!(param(h, "nc"), "00000001");
    }

    #[test]
    fn rejects_challenges_it_cannot_answer() {
        let mut c = DigestClient::new("u", "k");
        let e = c
            .on_challenge(
                addr(),
                &response_with(&[
                    r#"Basic realm="x""#,
                    r#"Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth""#,
                ]),
            )
            .unwrap_err();
        assert!(matches!(e, DigestError::NoUsableChallenge { .. }), "{e}");
        let e = c
            .on_challenge(addr(), &response_with(&[r#"Digest realm="r", nonce="n"#]))
            .unwrap_err();
        assert!(
            matches!(
                e,
                DigestError::BadChallenge {
                    what: "unterminated quoted-string",
                    ..
                }
            ),
            "{e}"
        );
        let long = format!("Digest nonce=\"{}\"", "a".repeat(MAX_CHALLENGE_LEN));
        let e = c
            .on_challenge(addr(), &response_with(&[&long]))
            .unwrap_err();
        assert!(matches!(e, DigestError::BadChallenge { .. }), "{e}");
        assert!(c.authorization("GET", "/").is_none(), "no nonce adopted");
    }

    #[test]
    fn accepts_escapes_in_quoted_strings() {
        let c = Challenge::parse(r#"Digest realm="a\"b", nonce="n", qop=auth"#)
            .unwrap()
            .unwrap();
        assert_eq!(c.realm, "a\"b");
        assert_eq!(c.qop, "auth");
        assert_eq!(c.algorithm, "MD5");
        assert_eq!(Quoted("a\"b\\c").to_string(), r#"a\"b\\c"#);
    }
}
