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
//! ([`StreamResponse::chunk`]); neither holds more than a frame in memory. Each uses a
//! connection of its own, closed when the call (or the [`StreamResponse`]) is done. For
//! them the timeout bounds the time without progress, not the whole transfer: a 10 GiB
//! upload takes as long as it takes, a stalled one fails after `timeout`.
//!
//! Hand-written on purpose, in the sense of the design's rule: the HTTP part is
//! hyper's; only the Digest client (challenge parser, response hash) is ours, because
//! the maintained Rust Digest crates either pull in a second HTTP stack or do not
//! implement `stale=true` and nonce-count reuse. The primitives (MD5, SHA-256, random)
//! come from `md-5`, `sha2` and `ring`.

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use md5::Md5;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

/// Base path of the API under the URL's origin (and path prefix, if any).
pub const API_BASE: &str = "/api/public/v1.0";
/// Largest response body read; a longer one fails with [`ClientError::TooLarge`].
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Largest error body read from a [`StreamResponse`] (an Ops Manager error is a few
/// hundred bytes).
pub const MAX_ERROR_BODY_BYTES: usize = 1024 * 1024;
/// How often a streaming call checks whether it still makes progress.
const STALL_CHECK: Duration = Duration::from_millis(250);
/// Longest `WWW-Authenticate` value parsed.
const MAX_CHALLENGE_LEN: usize = 8 * 1024;
/// Most auth-params read from one `WWW-Authenticate` value.
const MAX_CHALLENGE_PARAMS: usize = 64;
/// How many `401` answers one call takes before it gives the last one back: the first
/// challenge, then at most two `stale=true` renewals.
const MAX_AUTH_ROUNDS: usize = 3;
/// Longest time a TCP connect plus TLS handshake may take (or the call's timeout, if
/// shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// CA bundles tried for `https` when no CA file is given (Debian/Ubuntu, RHEL/Fedora,
/// Alpine/macOS), after `$SSL_CERT_FILE`.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

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
    /// The response body is larger than [`MAX_RESPONSE_BYTES`].
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
    /// Body (at most [`MAX_RESPONSE_BYTES`]).
    pub body: Bytes,
    /// True when this is a `401` to a request that carried credentials and the
    /// server did not call them stale: the username or API key is wrong.
    pub credentials_refused: bool,
}

/// The parsed API URL.
#[derive(Debug, Clone)]
struct Target {
    tls: bool,
    /// Host for connecting and for TLS server name (IPv6 without brackets).
    host: String,
    port: u16,
    /// `Host` header value.
    authority: String,
    /// Path prefix before [`API_BASE`], without a trailing slash.
    prefix: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, ClientError> {
        let bad = |reason| ClientError::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("the scheme must be http:// or https://")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad(
                "credentials do not go in the URL: use --username and the API key options",
            ));
        }
        if uri.query().is_some() {
            return Err(bad("the URL must not have a query string"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Target {
            tls,
            host: host.to_string(),
            port,
            authority: authority.as_str().to_string(),
            prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }

    fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
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
        let uri = format!("{}{API_BASE}{path_and_query}", self.target.prefix);
        let body = body.map(|b| Bytes::from(b.to_string()));
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
            let challenge = match pick_challenge(&resp.headers) {
                Ok(Some(c)) => c,
                // A 401 with no Digest challenge is an answer of the API itself (e.g.
                // NOT_IN_GROUP): the caller reports it.
                Ok(None) => return Ok(resp),
                Err(reason) => {
                    return Err(ClientError::Challenge {
                        addr: self.target.addr(),
                        reason,
                    });
                }
            };
            rounds += 1;
            if (sent_credentials && !challenge.stale) || rounds >= MAX_AUTH_ROUNDS {
                resp.credentials_refused = sent_credentials;
                return Ok(resp);
            }
            let session = DigestSession::new(challenge, &self.username, &self.api_key, &self.rng)
                .map_err(|reason| ClientError::Challenge {
                addr: self.target.addr(),
                reason,
            })?;
            self.digest = Some(session);
        }
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
        body: Option<Bytes>,
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
            Some(b) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(b)),
            None => builder.body(Full::new(Bytes::new())),
        }
        .map_err(|e| request_error(e.to_string()))?;

        let deadline = self.timeout;
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
            if let Some(len) = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                && len > MAX_RESPONSE_BYTES as u64
            {
                return Err(ClientError::TooLarge {
                    addr: addr.clone(),
                    what: what.clone(),
                    limit: MAX_RESPONSE_BYTES,
                });
            }
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        ClientError::TooLarge {
                            addr: addr.clone(),
                            what: what.clone(),
                            limit: MAX_RESPONSE_BYTES,
                        }
                    } else {
                        ClientError::Body {
                            addr: addr.clone(),
                            what: what.clone(),
                            reason: e.to_string(),
                        }
                    }
                })?;
            Ok(ApiResponse {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: body.to_bytes(),
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

    /// Sends `method` to `path_and_query` under the API base with `body` as the request
    /// body, streamed with `Transfer-Encoding: chunked` as `body` yields it, and reads
    /// the (JSON) answer whole. Memory does not grow with the body: `body` is polled
    /// only as fast as the connection takes it.
    ///
    /// A body that streams cannot be sent twice, so Digest cannot start with a `401`
    /// round trip on it: a `GET` of the same path goes first, which gets (or renews) the
    /// nonce, and checks the credentials and the resource before any data is read. A
    /// `4xx` answer to it (other than `405`) comes back as the answer, and `body` is
    /// dropped unsent.
    ///
    /// The call fails with [`ClientError::Timeout`] when the connection makes no
    /// progress for the client's timeout while `body` has data to give (a `body` that
    /// waits for its own source, such as a slow pipe, is not a stall), or when the
    /// server takes longer than that to answer after the last byte. An error from
    /// `body` aborts the request: the server sees a body cut short and stores nothing
    /// of it.
    pub async fn send_stream<B>(
        &mut self,
        method: Method,
        path_and_query: &str,
        content_type: &str,
        body: B,
    ) -> Result<ApiResponse, ClientError>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let preflight = self.send(Method::GET, path_and_query, None).await?;
        if (400..500).contains(&preflight.status) && preflight.status != 405 {
            return Ok(preflight);
        }
        let uri = format!("{}{API_BASE}{path_and_query}", self.target.prefix);
        let addr = self.target.addr();
        let what = format!("{method} {uri}");
        let request_error = |reason: String| ClientError::Request {
            method: method.clone(),
            path: path_and_query.to_string(),
            reason,
        };
        let mut builder = self
            .request(&method, &uri)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::TRANSFER_ENCODING, "chunked");
        if let Some(d) = self.digest.as_mut() {
            let authorization = d
                .authorization(&self.username, &method, &uri)
                .map_err(&request_error)?;
            builder = builder.header(header::AUTHORIZATION, authorization);
        }
        let activity = Arc::new(Activity::new());
        let request = builder
            .body(Watched {
                inner: body,
                activity: activity.clone(),
            })
            .map_err(|e| request_error(e.to_string()))?;

        let (mut sender, conn) =
            open::<Watched<B>>(&self.target, self.tls.as_ref(), self.timeout, &self.url).await?;
        // Whatever happens below, the connection (and with it `body`) goes when this
        // call returns: a producer blocked on a full body learns that nobody reads.
        let _conn = AbortOnDrop(conn);
        let idle = self.timeout;
        let stalled = |activity: &Activity| ClientError::Timeout {
            addr: addr.clone(),
            what: format!("{what} (no progress)"),
            after: activity.stalled_for().unwrap_or(idle),
        };
        // A connection just made is ready at once.
        sender.ready().await.map_err(|source| ClientError::Http {
            addr: addr.clone(),
            what: what.clone(),
            source,
        })?;
        let send = sender.send_request(request);
        tokio::pin!(send);
        let resp = loop {
            tokio::select! {
                r = &mut send => break r.map_err(|source| ClientError::Http {
                    addr: addr.clone(),
                    what: what.clone(),
                    source,
                })?,
                _ = tokio::time::sleep(STALL_CHECK.min(idle)) => {
                    if activity.stalled_for().is_some_and(|d| d >= idle) {
                        return Err(stalled(&activity));
                    }
                }
            }
        };
        let (parts, body) = resp.into_parts();
        let body = tokio::time::timeout(
            idle,
            read_limited(&parts.headers, body, MAX_RESPONSE_BYTES, &addr, &what),
        )
        .await
        .map_err(|_| ClientError::Timeout {
            addr: addr.clone(),
            what: what.clone(),
            after: idle,
        })??;
        let refused = parts.status == hyper::StatusCode::UNAUTHORIZED
            && self.digest.is_some()
            && !matches!(pick_challenge(&parts.headers), Ok(Some(c)) if c.stale);
        Ok(ApiResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            // Not stale, as a Digest answer is refused for good; a stale nonce here
            // (it aged out between the GET and this request) is reported as the 401 it
            // is: the body is gone and cannot be sent again.
            credentials_refused: refused,
        })
    }

    /// `GET`s a link the server gave, such as a restore job's download URL (absolute,
    /// or a path on the API's origin), WITHOUT Digest credentials (the link carries
    /// its own one-time token), on a connection of its own, and returns as soon as the
    /// response headers are in: the body is read with [`StreamResponse::chunk`].
    ///
    /// `what` names the link in errors (`restore download link`); the link itself
    /// never appears in an error, since it is a credential. `https` links are verified
    /// with the client's CA certificates.
    pub async fn get_stream(
        &mut self,
        link: &str,
        what: &str,
    ) -> Result<StreamResponse, ClientError> {
        let (target, path_and_query) = parse_link(&self.target, link, what)?;
        let tls = match (target.tls, &self.tls) {
            (false, _) => None,
            (true, Some(c)) => Some(c.clone()),
            (true, None) => Some(tls_connector(&self.url, self.ca_file.as_deref())?),
        };
        let addr = target.addr();
        let what = format!("GET of the {what}");
        let request = Request::builder()
            .method(Method::GET)
            .uri(&path_and_query)
            .header(header::HOST, &target.authority)
            .header(header::ACCEPT, "*/*")
            .header(
                header::USER_AGENT,
                concat!("headlock/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|_| ClientError::InvalidLink {
                what: what.clone(),
                reason: "it cannot go in a request",
            })?;
        let (mut sender, conn) =
            open::<Empty<Bytes>>(&target, tls.as_ref(), self.timeout, &addr).await?;
        let conn = AbortOnDrop(conn);
        let idle = self.timeout;
        let resp = tokio::time::timeout(idle, async {
            sender.ready().await.map_err(|source| ClientError::Http {
                addr: addr.clone(),
                what: what.clone(),
                source,
            })?;
            sender
                .send_request(request)
                .await
                .map_err(|source| ClientError::Http {
                    addr: addr.clone(),
                    what: what.clone(),
                    source,
                })
        })
        .await
        .map_err(|_| ClientError::Timeout {
            addr: addr.clone(),
            what: what.clone(),
            after: idle,
        })??;
        let (parts, body) = resp.into_parts();
        Ok(StreamResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            _conn: conn,
            idle,
            addr,
            what,
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        // The connection task is detached: it ends when the server closes the
        // connection or the sender is dropped.
        let (sender, _conn) =
            open(&self.target, self.tls.as_ref(), self.timeout, &self.url).await?;
        Ok(sender)
    }
}

/// A new HTTP/1.1 connection to `target` (TCP, then TLS when `tls` is given), within
/// [`CONNECT_TIMEOUT`] or `timeout` if shorter. `url` names the target in errors.
async fn open<B>(
    target: &Target,
    tls: Option<&tokio_rustls::TlsConnector>,
    timeout: Duration,
    url: &str,
) -> Result<(SendRequest<B>, tokio::task::JoinHandle<()>), ClientError>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let addr = target.addr();
    let limit = CONNECT_TIMEOUT.min(timeout);
    let connect =
        async {
            let tcp = TcpStream::connect((target.host.as_str(), target.port))
                .await
                .map_err(|source| ClientError::Connect {
                    addr: addr.clone(),
                    source,
                })?;
            let _ = tcp.set_nodelay(true);
            match tls {
                None => handshake(tcp, &addr).await,
                Some(connector) => {
                    let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                        .map_err(|_| ClientError::InvalidUrl {
                            url: url.to_string(),
                            reason: "the host is not a valid TLS server name",
                        })?;
                    let tls =
                        connector
                            .connect(name, tcp)
                            .await
                            .map_err(|source| ClientError::Tls {
                                addr: addr.clone(),
                                source,
                            })?;
                    handshake(tls, &addr).await
                }
            }
        };
    match tokio::time::timeout(limit, connect).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Timeout {
            addr,
            what: "connecting".into(),
            after: limit,
        }),
    }
}

/// Reads a response body whole, refusing more than `limit` bytes (declared or sent).
async fn read_limited(
    headers: &HeaderMap,
    body: Incoming,
    limit: usize,
    addr: &str,
    what: &str,
) -> Result<Bytes, ClientError> {
    let too_large = || ClientError::TooLarge {
        addr: addr.to_string(),
        what: what.to_string(),
        limit,
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(too_large());
    }
    Limited::new(body, limit)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                ClientError::Body {
                    addr: addr.to_string(),
                    what: what.to_string(),
                    reason: e.to_string(),
                }
            }
        })
}

/// Where a link the server gave points: its target (scheme, host, port) and the
/// request target (path and query). A path alone is on the API's origin.
fn parse_link(api: &Target, link: &str, what: &str) -> Result<(Target, String), ClientError> {
    let bad = |reason| ClientError::InvalidLink {
        what: what.to_string(),
        reason,
    };
    if link.starts_with('/') && !link.starts_with("//") {
        let mut target = api.clone();
        target.prefix = String::new();
        return Ok((target, link.to_string()));
    }
    let uri: Uri = link.parse().map_err(|_| bad("not a URL"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(bad("the scheme is not http:// or https://")),
    };
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("it carries credentials in the host part"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .filter(|p| p.starts_with('/'))
        .unwrap_or_else(|| "/".to_string());
    Ok((
        Target {
            tls,
            host: host.to_string(),
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            authority: authority.as_str().to_string(),
            prefix: String::new(),
        },
        path_and_query,
    ))
}

/// Aborts a connection task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// When a streamed request body last moved, for [`ApiClient::send_stream`]'s stall
/// detection.
struct Activity {
    start: Instant,
    /// Milliseconds after `start` of the last frame handed to hyper (or of the end).
    last_ms: AtomicU64,
    /// The body is waiting for its own source: not the connection's fault.
    waiting_for_source: AtomicBool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            waiting_for_source: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// How long the transfer has been stuck on the connection or the server; `None`
    /// while the body waits for its source.
    fn stalled_for(&self) -> Option<Duration> {
        if self.waiting_for_source.load(Ordering::Relaxed) {
            return None;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Some(self.start.elapsed().saturating_sub(last))
    }
}

/// A request body that records its progress in an [`Activity`].
struct Watched<B> {
    inner: B,
    activity: Arc<Activity>,
}

impl<B: Body + Unpin> Body for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Pending => this
                .activity
                .waiting_for_source
                .store(true, Ordering::Relaxed),
            Poll::Ready(_) => {
                this.activity.touch();
                this.activity
                    .waiting_for_source
                    .store(false, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response whose body is read as it arrives ([`ApiClient::get_stream`]). Dropping
/// it closes the connection.
pub struct StreamResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    body: Incoming,
    _conn: AbortOnDrop,
    idle: Duration,
    addr: String,
    what: String,
}

impl StreamResponse {
    /// The media type of `Content-Type`, lowercased, without parameters.
    pub fn content_type(&self) -> Option<String> {
        let v = self.headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let media = v.split(';').next().unwrap_or("").trim();
        (!media.is_empty()).then(|| media.to_ascii_lowercase())
    }

    /// `Content-Length`, when the server sent one.
    pub fn content_length(&self) -> Option<u64> {
        self.headers
            .get(header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }

    /// The next piece of the body (`None` at its end, which hyper has checked against
    /// `Content-Length` or the chunked encoding's last chunk: a body cut short is an
    /// error, not an end). Fails with [`ClientError::Timeout`] when nothing arrives
    /// for the client's timeout.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        loop {
            let frame = tokio::time::timeout(self.idle, self.body.frame())
                .await
                .map_err(|_| ClientError::Timeout {
                    addr: self.addr.clone(),
                    what: format!("{} (no data)", self.what),
                    after: self.idle,
                })?;
            match frame {
                None => return Ok(None),
                Some(Err(source)) => {
                    return Err(ClientError::Http {
                        addr: self.addr.clone(),
                        what: self.what.clone(),
                        source,
                    });
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Ok(Some(data));
                    }
                    // Trailers and empty frames: nothing to hand over.
                }
            }
        }
    }

    /// Reads the rest of the body whole (at most [`MAX_ERROR_BODY_BYTES`]), e.g. to
    /// report an error answer.
    pub async fn into_response(self) -> Result<ApiResponse, ClientError> {
        let StreamResponse {
            status,
            headers,
            body,
            _conn,
            idle,
            addr,
            what,
        } = self;
        let body = tokio::time::timeout(
            idle,
            read_limited(&headers, body, MAX_ERROR_BODY_BYTES, &addr, &what),
        )
        .await
        .map_err(|_| ClientError::Timeout {
            addr: addr.clone(),
            what: what.clone(),
            after: idle,
        })??;
        Ok(ApiResponse {
            status,
            headers,
            body,
            credentials_refused: false,
        })
    }
}

/// HTTP/1.1 over an established stream; the connection is driven by its own task,
/// which ends when the stream closes or the sender is dropped (or when the returned
/// handle aborts it).
async fn handshake<S, B>(
    stream: S,
    addr: &str,
) -> Result<(SendRequest<B>, tokio::task::JoinHandle<()>), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|source| ClientError::Http {
            addr: addr.to_string(),
            what: "HTTP/1.1 handshake".into(),
            source,
        })?;
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((sender, task))
}

/// rustls with the ring provider, trusting the CA file or the system bundle.
fn tls_connector(
    url: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<tokio_rustls::TlsConnector, ClientError> {
    let fail = |reason: String| ClientError::CaFile {
        url: url.to_string(),
        reason,
    };
    let path = match ca_file {
        Some(p) => p.to_path_buf(),
        None => std::env::var_os("SSL_CERT_FILE")
            .map(PathBuf::from)
            .into_iter()
            .chain(SYSTEM_CA_BUNDLES.iter().map(PathBuf::from))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                fail(format!(
                    "no CA file given (--ca-file) and no system bundle found (tried $SSL_CERT_FILE, {})",
                    SYSTEM_CA_BUNDLES.join(", ")
                ))
            })?,
    };
    let certs = kmip::tls::load_certs(&path).map_err(|e| fail(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(fail(format!(
            "{}: no usable CA certificate",
            path.display()
        )));
    }
    let config = rustls::ClientConfig::builder_with_provider(kmip::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| fail(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
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

// ---------------------------------------------------------------------------------
// Digest (RFC 7616), client side.

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
struct Challenge {
    algorithm: Algorithm,
    realm: String,
    nonce: String,
    opaque: Option<String>,
    stale: bool,
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
fn pick_challenge(headers: &HeaderMap) -> Result<Option<Challenge>, String> {
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
struct DigestSession {
    challenge: Challenge,
    ha1: Zeroizing<String>,
    cnonce: String,
    nc: u32,
}

impl DigestSession {
    fn new(
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
    fn authorization(
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
mod stream_tests;
#[cfg(test)]
mod tests;
