//! A small HTTP client for Headlock's API (or Ops Manager's): HTTP/1.1 over TCP or
//! TLS, HTTP Digest authentication (RFC 7616) as the API asks for it, bounded reads
//! and timeouts. The CLI commands under `cmd/` use it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! let mut client = ApiClient::new(ClientConfig {
//!     url: "http://127.0.0.1:8080".into(),
//!     username: "admin".into(),
//!     api_key: zeroize::Zeroizing::new("api-key".into()),
//!     ca_file: None,
//!     timeout: Duration::from_secs(60),
//! })?;
//! let resp = client.send(hyper::Method::GET, "/groups", None).await?;
//! println!("{} {}", resp.status, String::from_utf8_lossy(&resp.body));
//! # Ok(()) }
//! ```
//!
//! Digest, as the server of `headlock_api::auth` expects it: the first request goes
//! without credentials and collects the `401` challenges; the client picks `SHA-256`
//! when offered, else `MD5` (with `qop=auth`; nothing else is accepted), and from then
//! on answers every request with the same nonce and one cnonce, `nc` increasing by
//! one each time. A `401` with `stale=true` (the nonce expired) is answered again with
//! the new nonce, without failing; a `401` without it means the credentials are
//! wrong, and the response goes back to the caller as it is.
//!
//! Streams, for snapshots (`headlock backup` / `restore`): [`ApiClient::send_stream`]
//! sends a request body of any length with `Transfer-Encoding: chunked`, and
//! [`ApiClient::get_stream`] hands a response body over frame by frame
//! ([`StreamResponse::chunk`](streaming::StreamResponse::chunk)); neither holds more
//! than a frame in memory. Each uses a connection of its own, closed when the call (or
//! the response) is done. For them the timeout bounds the time without progress, not
//! the whole transfer: a 10 GiB upload takes as long as it takes, a stalled one fails
//! after `timeout`.
//!
//! Hand-written on purpose, in the sense of the design's rule: the HTTP part is
//! hyper's; only the Digest client (challenge parser, response hash) is ours, because
//! the maintained Rust Digest crates either pull in a second HTTP stack or do not
//! implement `stale=true` and nonce-count reuse. The primitives (MD5, SHA-256, random)
//! come from `md-5`, `sha2` and `ring`.
//!
//! | file | what it owns |
//! |---|---|
//! | `mod.rs` | [`ApiClient`] and its buffered calls ([`ApiClient::send`]: Digest rounds, one kept-alive connection), [`ClientError`], [`path_segment`] |
//! | `transport.rs` | the API URL and server links, TCP connect, TLS (rustls, CA bundles), the HTTP/1.1 handshake, bounded body reads |
//! | `digest.rs` | HTTP Digest, client side: parsing `WWW-Authenticate`, picking a challenge, the `Authorization` answer |
//! | `streaming.rs` | [`ApiClient::send_stream`], [`ApiClient::get_stream`] and [`ApiClient::get_stream_api`]: chunked uploads with stall detection, downloads (of a link, or of an API answer that grows with the data) read as they arrive ([`StreamResponse`](streaming::StreamResponse)) |

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request};
use ring::rand::SystemRandom;
use zeroize::Zeroizing;

use digest::{DigestSession, MAX_AUTH_ROUNDS, pick_challenge};
use transport::{Target, open, read_limited, tls_connector};

mod digest;
pub mod streaming;
mod transport;

/// What a `401` means ([`ApiClient::answer_challenge`]).
enum Unauthorized {
    /// The Digest session was renewed: send the request again.
    Retry,
    /// The credentials were refused (or the rounds are spent): the `401` is the answer.
    Refused,
    /// No Digest challenge: an answer of the API itself.
    NotDigest,
}

/// Base path of the API under the URL's origin (and path prefix, if any).
pub const API_BASE: &str = "/api/public/v1.0";
/// Largest response body read; a longer one fails with [`ClientError::TooLarge`].
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Where and as whom to call the API.
pub struct ClientConfig {
    /// `http://host[:port][/prefix]` or `https://...`; the API is under
    /// `<url>/api/public/v1.0`.
    pub url: String,
    /// The API user's name.
    pub username: String,
    /// Its API key (zeroized when dropped).
    pub api_key: Zeroizing<String>,
    /// CA certificates (PEM) that sign an `https` API's certificate; `None`: the
    /// system's CA bundle.
    pub ca_file: Option<PathBuf>,
    /// Deadline of one exchange (request sent, response read).
    pub timeout: Duration,
}

/// Why a call did not produce an HTTP response. [`ClientError::is_local`] tells the
/// caller's own mistakes (configuration) from failures to reach or understand the
/// server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    // ---- our configuration
    /// The URL is not usable.
    #[error("invalid API URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The CA file could not be read or holds no usable certificate.
    #[error("CA certificates for {url}: {reason}")]
    CaFile {
        /// The API URL they were for.
        url: String,
        /// What went wrong, with the file's path.
        reason: String,
    },
    /// A request could not be built (e.g. a username that cannot go in a header).
    #[error("building the {method} request for {path}: {reason}")]
    Request {
        /// Method.
        method: Method,
        /// Path under the API base.
        path: String,
        /// Why.
        reason: String,
    },

    // ---- reaching the server
    /// TCP connect failed.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The socket error.
        source: io::Error,
    },
    /// The TLS handshake failed (e.g. a certificate the CA does not sign).
    #[error("TLS handshake with {addr}: {source}")]
    Tls {
        /// `host:port`.
        addr: String,
        /// The handshake error.
        source: io::Error,
    },
    /// Connecting or an exchange took longer than allowed.
    #[error("{what} with {addr} timed out after {} s", after.as_secs())]
    Timeout {
        /// `host:port`.
        addr: String,
        /// `connecting` or `METHOD /path`.
        what: String,
        /// The deadline.
        after: Duration,
    },
    /// The HTTP exchange failed (connection reset, malformed response, ...).
    #[error("{what} with {addr}: {source}")]
    Http {
        /// `host:port`.
        addr: String,
        /// `METHOD /path` or `HTTP/1.1 handshake`.
        what: String,
        /// hyper's error.
        source: hyper::Error,
    },
    /// The response body is larger than the client's limit ([`MAX_RESPONSE_BYTES`]
    /// unless raised).
    #[error("the response to {what} from {addr} is larger than {limit} bytes")]
    TooLarge {
        /// `host:port`.
        addr: String,
        /// `METHOD /path`.
        what: String,
        /// The limit.
        limit: usize,
    },
    /// The response body could not be read.
    #[error("reading the response to {what} from {addr}: {reason}")]
    Body {
        /// `host:port`.
        addr: String,
        /// `METHOD /path`.
        what: String,
        /// Why.
        reason: String,
    },
    /// A link the server gave (e.g. a restore job's download URL) is not usable. The
    /// link itself is not shown: it may carry a one-time token.
    #[error("the {what} the server gave is not usable: {reason}")]
    InvalidLink {
        /// What the link is for, e.g. `restore download link`.
        what: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The server asked for authentication in a way this client does not speak.
    #[error("the server at {addr} asks for authentication this client cannot give: {reason}")]
    Challenge {
        /// `host:port`.
        addr: String,
        /// What the challenges lacked.
        reason: String,
    },
}

impl ClientError {
    /// True for errors in the caller's own configuration (URL, CA file, request),
    /// false for failures to reach or understand the server.
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            ClientError::InvalidUrl { .. }
                | ClientError::CaFile { .. }
                | ClientError::Request { .. }
        )
    }
}

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct ApiResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body (at most the client's response limit).
    pub body: Bytes,
    /// True when this is a `401` to a request that carried credentials and the
    /// server did not call them stale: the username or API key is wrong.
    pub credentials_refused: bool,
}

/// An API client: one connection (opened on first use, reopened when the server
/// closes it) and one Digest session.
pub struct ApiClient {
    target: Target,
    url: String,
    username: String,
    api_key: Zeroizing<String>,
    tls: Option<tokio_rustls::TlsConnector>,
    ca_file: Option<PathBuf>,
    timeout: Duration,
    sender: Option<SendRequest<Full<Bytes>>>,
    digest: Option<DigestSession>,
    rng: SystemRandom,
}

impl ApiClient {
    /// Checks the URL and loads the CA certificates; does not connect yet.
    pub fn new(config: ClientConfig) -> Result<ApiClient, ClientError> {
        let target = Target::parse(&config.url)?;
        let tls = if target.tls {
            Some(tls_connector(&config.url, config.ca_file.as_deref())?)
        } else {
            None
        };
        Ok(ApiClient {
            target,
            url: config.url,
            username: config.username,
            api_key: config.api_key,
            tls,
            ca_file: config.ca_file,
            timeout: config.timeout,
            sender: None,
            digest: None,
            rng: SystemRandom::new(),
        })
    }

    /// Another client for the same API, user and settings, with a connection and a
    /// Digest session of its own (its first call collects its own challenge), for a
    /// request to run beside this client's (`headlock backup` keeps two uploads in
    /// flight).
    pub fn with_own_connection(&self) -> ApiClient {
        ApiClient {
            target: self.target.clone(),
            url: self.url.clone(),
            username: self.username.clone(),
            api_key: self.api_key.clone(),
            tls: self.tls.clone(),
            ca_file: self.ca_file.clone(),
            timeout: self.timeout,
            sender: None,
            digest: None,
            rng: SystemRandom::new(),
        }
    }

    /// The URL as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Changes the deadline of later calls (for calls the server takes long to answer,
    /// such as a snapshot's verification).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends `method` to `path_and_query` under the API base (e.g. `/groups?pageNum=2`;
    /// segments already percent-encoded, see [`path_segment`]) with an optional JSON
    /// body, authenticating with Digest, and reads the response whole.
    ///
    /// Any status comes back as `Ok`; `Err` means there was no usable HTTP response.
    pub async fn send(
        &mut self,
        method: Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<ApiResponse, ClientError> {
        let body = body.map(|b| ("application/json", Bytes::from(b.to_string())));
        self.send_body(method, path_and_query, body).await
    }

    /// As [`ApiClient::send`], with a body of any type held in memory (sent again only
    /// if the Digest nonce went stale).
    pub async fn send_bytes(
        &mut self,
        method: Method,
        path_and_query: &str,
        content_type: &'static str,
        body: Bytes,
    ) -> Result<ApiResponse, ClientError> {
        self.send_body(method, path_and_query, Some((content_type, body)))
            .await
    }

    async fn send_body(
        &mut self,
        method: Method,
        path_and_query: &str,
        body: Option<(&'static str, Bytes)>,
    ) -> Result<ApiResponse, ClientError> {
        let uri = format!("{}{API_BASE}{path_and_query}", self.target.prefix);
        let mut rounds = 0;
        loop {
            let authorization = match self.digest.as_mut() {
                Some(d) => Some(d.authorization(&self.username, &method, &uri).map_err(
                    |reason| ClientError::Request {
                        method: method.clone(),
                        path: path_and_query.to_string(),
                        reason,
                    },
                )?),
                None => None,
            };
            let sent_credentials = authorization.is_some();
            let mut resp = match self
                .exchange(&method, &uri, body.clone(), authorization.clone())
                .await
            {
                // The kept-alive connection closed before the request went out (the
                // server's idle timeout): nothing was sent, so once more on a new one.
                Err(ClientError::Http { source, .. }) if source.is_canceled() => {
                    self.exchange(&method, &uri, body.clone(), authorization)
                        .await?
                }
                other => other?,
            };
            if resp.status != 401 {
                return Ok(resp);
            }
            match self.answer_challenge(&resp.headers, sent_credentials, &mut rounds)? {
                Unauthorized::Retry => {}
                Unauthorized::NotDigest => return Ok(resp),
                Unauthorized::Refused => {
                    resp.credentials_refused = sent_credentials;
                    return Ok(resp);
                }
            }
        }
    }

    /// What a `401` to a request means, for the call that sent it: when its Digest
    /// challenge is worth answering (the first one, or a stale nonce, at most
    /// [`MAX_AUTH_ROUNDS`] times), the session is renewed and the request goes again.
    fn answer_challenge(
        &mut self,
        headers: &HeaderMap,
        sent_credentials: bool,
        rounds: &mut usize,
    ) -> Result<Unauthorized, ClientError> {
        let challenge = match pick_challenge(headers) {
            Ok(Some(c)) => c,
            // A 401 with no Digest challenge is an answer of the API itself (e.g.
            // NOT_IN_GROUP): the caller reports it.
            Ok(None) => return Ok(Unauthorized::NotDigest),
            Err(reason) => {
                return Err(ClientError::Challenge {
                    addr: self.target.addr(),
                    reason,
                });
            }
        };
        *rounds += 1;
        if (sent_credentials && !challenge.stale) || *rounds >= MAX_AUTH_ROUNDS {
            return Ok(Unauthorized::Refused);
        }
        let session = DigestSession::new(challenge, &self.username, &self.api_key, &self.rng)
            .map_err(|reason| ClientError::Challenge {
                addr: self.target.addr(),
                reason,
            })?;
        self.digest = Some(session);
        Ok(Unauthorized::Retry)
    }

    /// A request to this API with the headers every request carries (Host, Accept,
    /// User-Agent).
    fn request(&self, method: &Method, uri: &str) -> hyper::http::request::Builder {
        Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(header::HOST, &self.target.authority)
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("headlock/", env!("CARGO_PKG_VERSION")),
            )
    }

    /// One request and its response, on the open connection or a new one.
    async fn exchange(
        &mut self,
        method: &Method,
        uri: &str,
        body: Option<(&'static str, Bytes)>,
        authorization: Option<HeaderValue>,
    ) -> Result<ApiResponse, ClientError> {
        let addr = self.target.addr();
        let what = format!("{method} {uri}");
        let request_error = |reason: String| ClientError::Request {
            method: method.clone(),
            path: uri.to_string(),
            reason,
        };
        let mut builder = self.request(method, uri);
        if let Some(a) = authorization {
            builder = builder.header(header::AUTHORIZATION, a);
        }
        let request = match body {
            Some((content_type, b)) => builder
                .header(header::CONTENT_TYPE, content_type)
                .body(Full::new(b)),
            None => builder.body(Full::new(Bytes::new())),
        }
        .map_err(|e| request_error(e.to_string()))?;

        let deadline = self.timeout;
        let limit = MAX_RESPONSE_BYTES;
        let timeout = |what: String| ClientError::Timeout {
            addr: addr.clone(),
            what,
            after: deadline,
        };
        let sender = self.ready_sender().await?;
        let response = tokio::time::timeout(deadline, async {
            let resp = sender
                .send_request(request)
                .await
                .map_err(|source| ClientError::Http {
                    addr: addr.clone(),
                    what: what.clone(),
                    source,
                })?;
            let (parts, body) = resp.into_parts();
            let body = read_limited(&parts.headers, body, limit, &addr, &what).await?;
            Ok(ApiResponse {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
                credentials_refused: false,
            })
        })
        .await;
        match response {
            Ok(r) => {
                if r.is_err() {
                    // Whatever state the connection is in, do not reuse it.
                    self.sender = None;
                }
                r
            }
            Err(_) => {
                self.sender = None;
                Err(timeout(what))
            }
        }
    }

    /// The open connection if it still takes requests, else a new one.
    async fn ready_sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, ClientError> {
        if let Some(s) = self.sender.as_mut()
            && !s.is_closed()
            && s.ready().await.is_ok()
        {
            // Borrow again: the checker cannot see that the branch above returns.
            return Ok(self.sender.as_mut().expect("checked above"));
        }
        self.sender = None;
        let sender = self.connect().await?;
        Ok(self.sender.insert(sender))
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        // The connection task is detached: it ends when the server closes the
        // connection or the sender is dropped.
        let (sender, _conn) =
            open(&self.target, self.tls.as_ref(), self.timeout, &self.url).await?;
        Ok(sender)
    }
}

/// Percent-encodes one path segment (an id or a name): everything but RFC 3986's
/// unreserved characters, so a value can never add a segment or a query.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests;
