//! Streamed calls, for snapshots: [`ApiClient::send_stream`] uploads a body of any
//! length with `Transfer-Encoding: chunked`, failing when the connection makes no
//! progress for the client's timeout (a body waiting for its own source is not a
//! stall); [`ApiClient::get_stream`] downloads a link the server gave and hands the
//! body over as it arrives ([`StreamResponse::chunk`]). Each uses a connection of its
//! own, closed when the call (or the [`StreamResponse`]) is done.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request};

use super::digest::pick_challenge;
use super::transport::{AbortOnDrop, Target, open, parse_link, read_limited, tls_connector};
use super::{API_BASE, ApiClient, ApiResponse, ClientError, MAX_RESPONSE_BYTES, Unauthorized};

/// Largest error body read from a [`StreamResponse`] (an Ops Manager error is a few
/// hundred bytes).
pub const MAX_ERROR_BODY_BYTES: usize = 1024 * 1024;
/// How often a streaming call checks whether it still makes progress.
const STALL_CHECK: Duration = Duration::from_millis(250);

impl ApiClient {
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
        self.open_stream(&target, tls.as_ref(), request, &addr, what)
            .await
    }

    /// `GET`s `path_and_query` under the API base with Digest credentials, and returns
    /// as soon as the response headers are in, the body to be read with
    /// [`StreamResponse::chunk`]: for an answer that grows with the data (a parent
    /// snapshot's file list), which is never held whole. A stale nonce is renewed and
    /// the request sent again (a `GET` can be); any other `401` comes back as the
    /// answer, with its body for [`StreamResponse::into_response`].
    pub async fn get_stream_api(
        &mut self,
        path_and_query: &str,
    ) -> Result<StreamResponse, ClientError> {
        let uri = format!("{}{API_BASE}{path_and_query}", self.target.prefix);
        let addr = self.target.addr();
        let what = format!("GET {uri}");
        let mut rounds = 0;
        loop {
            let mut builder = self.request(&Method::GET, &uri);
            let sent_credentials = self.digest.is_some();
            if let Some(d) = self.digest.as_mut() {
                let authorization = d
                    .authorization(&self.username, &Method::GET, &uri)
                    .map_err(|reason| ClientError::Request {
                        method: Method::GET,
                        path: path_and_query.to_string(),
                        reason,
                    })?;
                builder = builder.header(header::AUTHORIZATION, authorization);
            }
            let request =
                builder
                    .body(Empty::<Bytes>::new())
                    .map_err(|e| ClientError::Request {
                        method: Method::GET,
                        path: path_and_query.to_string(),
                        reason: e.to_string(),
                    })?;
            let resp = self
                .open_stream(
                    &self.target,
                    self.tls.as_ref(),
                    request,
                    &addr,
                    what.clone(),
                )
                .await?;
            if resp.status != 401 {
                return Ok(resp);
            }
            match self.answer_challenge(&resp.headers, sent_credentials, &mut rounds)? {
                Unauthorized::Retry => {}
                Unauthorized::Refused | Unauthorized::NotDigest => return Ok(resp),
            }
        }
    }

    /// Sends `request` on a connection of its own and returns once the response
    /// headers are in (the connection goes with the [`StreamResponse`]).
    async fn open_stream(
        &self,
        target: &Target,
        tls: Option<&tokio_rustls::TlsConnector>,
        request: Request<Empty<Bytes>>,
        addr: &str,
        what: String,
    ) -> Result<StreamResponse, ClientError> {
        let addr = addr.to_string();
        let (mut sender, conn) = open::<Empty<Bytes>>(target, tls, self.timeout, &addr).await?;
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

#[cfg(test)]
mod tests;
