//! Reaching the server: the API URL ([`Target`]) and the links the server gives, TCP
//! connect and TLS (rustls with the ring provider, trusting a CA file or the system
//! bundle), the HTTP/1.1 handshake, and reading a response body whole within a limit.
//! Nothing here knows of Digest or of the API's paths.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::Uri;
use hyper::body::{Body, Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::ClientError;

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

/// The parsed API URL.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) tls: bool,
    /// Host for connecting and for TLS server name (IPv6 without brackets).
    pub(super) host: String,
    pub(super) port: u16,
    /// `Host` header value.
    pub(super) authority: String,
    /// Path prefix before [`API_BASE`](super::API_BASE), without a trailing slash.
    pub(super) prefix: String,
}

impl Target {
    pub(super) fn parse(url: &str) -> Result<Target, ClientError> {
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

    pub(super) fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A new HTTP/1.1 connection to `target` (TCP, then TLS when `tls` is given), within
/// [`CONNECT_TIMEOUT`] or `timeout` if shorter. `url` names the target in errors.
pub(super) async fn open<B>(
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
pub(super) async fn read_limited(
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
pub(super) fn parse_link(
    api: &Target,
    link: &str,
    what: &str,
) -> Result<(Target, String), ClientError> {
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
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
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
pub(super) fn tls_connector(
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

#[cfg(test)]
mod tests;
