//! A minimal HTTP/1.1 keep-alive client over one tokio `TcpStream`.
//!
//! Hand-written on purpose: the benchmark must put the same, small and predictable
//! cost on every request whichever server it measures, and must see every response
//! (status, `WWW-Authenticate`, body) on one connection it controls, which is what
//! HTTP Digest with a reused nonce needs. hyper's connection-level client would also
//! do, at the cost of its body and executor plumbing in the load generator; these few
//! lines keep the per-request cost small and identical for both servers.
//!
//! Everything read from the server is bounded: the status line and headers together
//! at most [`MAX_HEAD`] bytes, at most [`MAX_HEADERS`] headers, a body at most
//! [`MAX_BODY`] bytes. Bodies are read by `Content-Length` or `chunked`; a response
//! with neither is refused (a keep-alive client could not tell where it ends).

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Most bytes of status line plus headers read for one response.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers in one response.
pub const MAX_HEADERS: usize = 64;
/// Largest response body read.
pub const MAX_BODY: usize = 1024 * 1024;

/// Why a request got no usable response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Connecting, writing or reading failed.
    #[error("{op} {addr}: {source}")]
    Io {
        /// What was being done (`connect to`, `write to`, `read from`).
        op: &'static str,
        /// The server.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The server closed the connection before a whole response.
    #[error("{addr} closed the connection after {read} bytes of a response")]
    Closed {
        /// The server.
        addr: SocketAddr,
        /// Bytes of the response read before the close.
        read: usize,
    },
    /// The response broke HTTP/1.1 or one of this client's bounds.
    #[error("malformed response from {addr} at byte {offset}: {what}")]
    Malformed {
        /// The server.
        addr: SocketAddr,
        /// Offset in the response where the problem was seen.
        offset: usize,
        /// What was wrong.
        what: &'static str,
    },
}

/// One response, read in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers in order, names lowercased, values as sent (trimmed).
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// Values of every header named `name` (lowercase), in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One kept-alive connection to one server.
pub struct Connection {
    addr: SocketAddr,
    stream: BufReader<TcpStream>,
    request: Vec<u8>,
    host: String,
    open: bool,
}

impl Connection {
    /// Connects to `addr` (with `TCP_NODELAY`, as HTTP clients do).
    pub async fn connect(addr: SocketAddr) -> Result<Connection, HttpError> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|source| HttpError::Io {
                op: "connect to",
                addr,
                source,
            })?;
        tcp.set_nodelay(true).map_err(|source| HttpError::Io {
            op: "set TCP_NODELAY on",
            addr,
            source,
        })?;
        Ok(Connection {
            addr,
            stream: BufReader::with_capacity(16 * 1024, tcp),
            request: Vec::with_capacity(1024),
            host: addr.to_string(),
            open: true,
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// False once the server said `Connection: close` (the next request must use a
    /// new connection).
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Sends one request and reads its whole response. `headers` are added after
    /// `Host`; `Content-Length` is sent when `body` is not empty or the method is
    /// `POST`, `PUT` or `PATCH`.
    pub async fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, HttpError> {
        let addr = self.addr;
        self.request.clear();
        let r = &mut self.request;
        for part in [
            method,
            " ",
            target,
            " HTTP/1.1\r\nHost: ",
            self.host.as_str(),
            "\r\n",
        ] {
            r.extend_from_slice(part.as_bytes());
        }
        for (name, value) in headers {
            for part in [*name, ": ", *value, "\r\n"] {
                r.extend_from_slice(part.as_bytes());
            }
        }
        if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            r.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        r.extend_from_slice(b"\r\n");
        r.extend_from_slice(body);
        let io = |op| move |source| HttpError::Io { op, addr, source };
        self.stream
            .get_mut()
            .write_all(&self.request)
            .await
            .map_err(io("write to"))?;
        let resp = self.read_response().await?;
        if resp
            .header_values("connection")
            .any(|v| v.eq_ignore_ascii_case("close"))
        {
            self.open = false;
        }
        Ok(resp)
    }

    async fn read_response(&mut self) -> Result<Response, HttpError> {
        let addr = self.addr;
        let malformed = |offset, what| HttpError::Malformed { addr, offset, what };
        let mut line = Vec::with_capacity(256);
        let mut offset = 0usize;

        self.read_line(&mut line, offset).await?;
        let status = parse_status_line(&line).ok_or(malformed(offset, "bad status line"))?;
        offset += line.len();

        let mut headers = Vec::new();
        loop {
            line.clear();
            self.read_line(&mut line, offset).await?;
            let start = offset;
            offset += line.len();
            let text = trim_crlf(&line);
            if text.is_empty() {
                break;
            }
            if headers.len() == MAX_HEADERS {
                return Err(malformed(start, "too many headers"));
            }
            let text =
                std::str::from_utf8(text).map_err(|_| malformed(start, "header is not UTF-8"))?;
            let (name, value) = text
                .split_once(':')
                .ok_or(malformed(start, "header without a colon"))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }

        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let chunked = find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let body = if chunked {
            self.read_chunked(offset).await?
        } else if let Some(len) = find("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| malformed(offset, "bad Content-Length"))?;
            if len > MAX_BODY {
                return Err(malformed(offset, "body larger than MAX_BODY"));
            }
            let mut body = vec![0; len];
            self.read_exact(&mut body, offset).await?;
            body
        } else if status == 204 || status == 304 || (100..200).contains(&status) {
            Vec::new()
        } else {
            return Err(malformed(offset, "neither Content-Length nor chunked"));
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Reads one line (ending in `\n`) into `line`, within [`MAX_HEAD`].
    async fn read_line(&mut self, line: &mut Vec<u8>, offset: usize) -> Result<(), HttpError> {
        let addr = self.addr;
        let limit = MAX_HEAD.saturating_sub(offset) as u64;
        let n = (&mut self.stream)
            .take(limit)
            .read_until(b'\n', line)
            .await
            .map_err(|source| HttpError::Io {
                op: "read from",
                addr,
                source,
            })?;
        if n == 0 && limit > 0 {
            return Err(HttpError::Closed { addr, read: offset });
        }
        if line.last() != Some(&b'\n') {
            return Err(if (line.len() as u64) < limit {
                HttpError::Closed {
                    addr,
                    read: offset + line.len(),
                }
            } else {
                HttpError::Malformed {
                    addr,
                    offset,
                    what: "status line and headers longer than MAX_HEAD",
                }
            });
        }
        Ok(())
    }

    async fn read_exact(&mut self, buf: &mut [u8], offset: usize) -> Result<(), HttpError> {
        let addr = self.addr;
        self.stream.read_exact(buf).await.map_err(|source| {
            if source.kind() == std::io::ErrorKind::UnexpectedEof {
                HttpError::Closed { addr, read: offset }
            } else {
                HttpError::Io {
                    op: "read from",
                    addr,
                    source,
                }
            }
        })?;
        Ok(())
    }

    async fn read_chunked(&mut self, mut offset: usize) -> Result<Vec<u8>, HttpError> {
        let addr = self.addr;
        let malformed = |offset, what| HttpError::Malformed { addr, offset, what };
        let mut body = Vec::new();
        let mut line = Vec::with_capacity(32);
        loop {
            line.clear();
            // Chunk-size lines are bounded like header lines (offset 0: own budget).
            self.read_line(&mut line, 0).await?;
            let start = offset;
            offset += line.len();
            let text = trim_crlf(&line);
            let size = text.split(|&b| b == b';').next().unwrap_or_default();
            let size = std::str::from_utf8(size)
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .ok_or(malformed(start, "bad chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    self.read_line(&mut line, 0).await?;
                    if trim_crlf(&line).is_empty() {
                        return Ok(body);
                    }
                }
            }
            if body.len() + size > MAX_BODY {
                return Err(malformed(start, "body larger than MAX_BODY"));
            }
            let from = body.len();
            body.resize(from + size, 0);
            self.read_exact(&mut body[from..], offset).await?;
            offset += size;
            let mut crlf = [0u8; 2];
            self.read_exact(&mut crlf, offset).await?;
            if &crlf != b"\r\n" {
                return Err(malformed(offset, "chunk not followed by CRLF"));
            }
            offset += 2;
        }
    }
}

fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `HTTP/1.x NNN reason` -> `NNN`.
fn parse_status_line(line: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(trim_crlf(line)).ok()?;
    let rest = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))?;
    let code = rest.get(..3)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) || rest.len() > 3 && !rest[3..].starts_with(' ') {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A one-connection server that reads one request head and writes `reply`.
    async fn serve_once(reply: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut r = BufReader::new(tcp);
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).await.unwrap() == 0 || line == "\r\n" {
                    break;
                }
            }
            // The client may hang up early (oversized replies): ignore write errors.
            let _ = r.get_mut().write_all(reply).await;
            let _ = r.get_mut().flush().await;
            // Keep the socket open until the client is done reading.
            let mut rest = Vec::new();
            let _ = r.read_to_end(&mut rest).await;
        });
        addr
    }

    async fn one(reply: &'static [u8]) -> Result<Response, HttpError> {
        let mut c = Connection::connect(serve_once(reply).await).await.unwrap();
        c.send("GET", "/x", &[], b"").await
    }

    #[tokio::test]
    async fn accepts_content_length_body_and_repeated_headers() {
        let r = one(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest a=1\r\nwww-authenticate: Digest a=2\r\nContent-Length: 2\r\n\r\n{}")
            .await
            .unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(r.body, b"{}");
        assert_eq!(
            r.header_values("www-authenticate").collect::<Vec<_>>(),
            ["Digest a=1", "Digest a=2"]
        );
    }

    #[tokio::test]
    async fn accepts_chunked_body_with_trailer() {
        let r = one(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"abcde");
    }

    #[tokio::test]
    async fn rejects_response_without_length() {
        let e = one(b"HTTP/1.1 200 OK\r\n\r\nbody").await.unwrap_err();
        assert!(
            matches!(
                e,
                HttpError::Malformed {
                    what: "neither Content-Length nor chunked",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn rejects_oversized_head() {
        static BIG: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
            let mut v = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
            v.extend(std::iter::repeat_n(b'a', MAX_HEAD));
            v.extend_from_slice(b"\r\n\r\n");
            v
        });
        let e = one(BIG.as_slice()).await.unwrap_err();
        assert!(
            matches!(
                e,
                HttpError::Malformed {
                    what: "status line and headers longer than MAX_HEAD",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn rejects_oversized_body() {
        let e = one(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n")
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                HttpError::Malformed {
                    what: "body larger than MAX_BODY",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn rejects_truncated_body_as_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
                .await
                .unwrap();
        });
        let mut c = Connection::connect(addr).await.unwrap();
        let e = c.send("GET", "/", &[], b"").await.unwrap_err();
        assert!(matches!(e, HttpError::Closed { .. }), "{e}");
    }

    #[test]
    fn rejects_bad_status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.1 201\r\n"), Some(201));
        assert_eq!(parse_status_line(b"HTTP/1.1 20x OK\r\n"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 2000 OK\r\n"), None);
        assert_eq!(parse_status_line(b"HTTP/2 200\r\n"), None);
    }
}
