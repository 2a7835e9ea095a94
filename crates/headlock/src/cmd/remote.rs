//! What the API client commands (`groups`, `clusters`, `backup-configs`,
//! `encryption-key`, `snapshots`, `events`, ...) share: credentials from the environment
//! or a file, one [`ApiClient`] per command, the answer on standard output
//! ([`super::output`]), and the API's errors on
//! standard error with an exit status that says whose fault it was:
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | local problem: no username or key, unreadable key file, bad URL or CA file |
//! | 2 | usage error (clap) |
//! | 3 | the API refused the request: any 4xx (unauthorized, not found, conflict, rate limited, ...) |
//! | 4 | the API failed (5xx) or could not be reached or understood (refused connection, TLS, timeout, garbage) |

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use hyper::Method;
use serde_json::Value;
use zeroize::Zeroizing;

use super::output::{Column, show};
use crate::cli::{ApiArgs, ClusterRef, OutputFormat, PageArgs};
use crate::client::{ApiClient, ApiResponse, ClientConfig, ClientError};

pub(crate) use crate::client::path_segment as seg;

/// Exit status for a local problem.
pub(crate) const EXIT_LOCAL: u8 = 1;
/// Exit status when the API refused the request (4xx).
pub(crate) const EXIT_REFUSED: u8 = 3;
/// Exit status when the API failed (5xx) or could not be reached.
pub(crate) const EXIT_FAILED: u8 = 4;

/// The environment variable holding the API key.
const API_KEY_ENV: &str = "HEADLOCK_API_KEY";
/// Longest error detail printed.
const MAX_DETAIL_CHARS: usize = 2000;

/// A failed API call, already worded: [`Failure::report`] prints it and gives the
/// exit status.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// A failure with its exit status and message (the snapshot commands' own).
    pub(crate) fn new(code: u8, message: String) -> Failure {
        Failure { code, message }
    }

    /// The same failure, its message followed by `more`.
    pub(crate) fn adding(mut self, more: &str) -> Failure {
        self.message.push_str(more);
        self
    }

    /// What went wrong, worded for the user.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// Prints `headlock: error: ...` on standard error and returns the exit status.
    pub(crate) fn report(self) -> ExitCode {
        eprintln!("headlock: error: {}", self.message);
        ExitCode::from(self.code)
    }
}

/// Unwraps an API result or returns from the command with the failure's exit status.
macro_rules! api_try {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(f) => return Ok(f.report()),
        }
    };
}
pub(crate) use api_try;

/// A connected (lazily: the first call connects) API client.
pub(crate) struct Remote {
    client: ApiClient,
    username: String,
}

/// Reads the credentials and prepares the client. Errors here are local (exit 1).
pub(crate) fn connect(args: &ApiArgs) -> anyhow::Result<Remote> {
    let Some(username) = args.username.clone().filter(|u| !u.is_empty()) else {
        bail!("no API username: pass --username NAME or set HEADLOCK_USERNAME");
    };
    let api_key = api_key(args.api_key_file.as_deref())?;
    let client = ApiClient::new(ClientConfig {
        url: args.url.clone(),
        username: username.clone(),
        api_key,
        ca_file: args.ca_file.clone(),
        timeout: Duration::from_secs(args.timeout),
    })?;
    Ok(Remote { client, username })
}

/// The API key: from the file if one is given, else from `HEADLOCK_API_KEY`.
fn api_key(file: Option<&Path>) -> anyhow::Result<Zeroizing<String>> {
    let key = match file {
        Some(path) => crate::secret_file::first_line(path, "API key")?,
        None => match std::env::var(API_KEY_ENV) {
            Ok(v) => {
                let v = Zeroizing::new(v);
                if v.trim().is_empty() {
                    bail!("{API_KEY_ENV} is empty");
                }
                Zeroizing::new(v.trim().to_string())
            }
            Err(std::env::VarError::NotUnicode(_)) => bail!("{API_KEY_ENV} is not valid UTF-8"),
            Err(std::env::VarError::NotPresent) => {
                bail!(
                    "no API key: set {API_KEY_ENV} or pass --api-key-file FILE (the key is never taken as a flag)"
                )
            }
        },
    };
    if key.chars().any(|c| c.is_control()) {
        bail!("the API key contains control characters");
    }
    Ok(key)
}

impl ClusterRef {
    /// `/groups/{G}/clusters/{C}`.
    pub(crate) fn cluster_path(&self) -> String {
        format!(
            "/groups/{}/clusters/{}",
            seg(&self.group),
            seg(&self.cluster)
        )
    }

    /// `/groups/{G}/backupConfigs/{C}`.
    pub(crate) fn config_path(&self) -> String {
        format!(
            "/groups/{}/backupConfigs/{}",
            seg(&self.group),
            seg(&self.cluster)
        )
    }
}

/// `?pageNum=..&itemsPerPage=..` (empty when neither is set).
pub(crate) fn page_query(page: &PageArgs) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(n) = page.page_num {
        q.push(("pageNum", n.to_string()));
    }
    if let Some(n) = page.items_per_page {
        q.push(("itemsPerPage", n.to_string()));
    }
    q
}

impl Remote {
    /// Another client of the same API as the same user, on a connection of its own
    /// ([`ApiClient::with_own_connection`]).
    pub(crate) fn with_own_connection(&self) -> Remote {
        Remote {
            client: self.client.with_own_connection(),
            username: self.username.clone(),
        }
    }

    /// The client itself, for the streaming calls of `backup` and `restore`.
    pub(crate) fn client(&mut self) -> &mut ApiClient {
        &mut self.client
    }

    /// Calls the API; `Ok(None)` for a success with an empty body.
    pub(crate) async fn call(
        &mut self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, Failure> {
        let mut target = path.to_string();
        for (i, (k, v)) in query.iter().enumerate() {
            target.push(if i == 0 { '?' } else { '&' });
            target.push_str(&seg(k));
            target.push('=');
            target.push_str(&seg(v));
        }
        let what = format!("{method} {target}");
        let resp = self
            .client
            .send(method, &target, body)
            .await
            .map_err(|e| self.unreachable(e))?;
        self.interpret(&what, resp)
    }

    /// Calls the API with a body of `content_type` held in memory; `Ok(None)` for a
    /// success with an empty body.
    pub(crate) async fn call_bytes(
        &mut self,
        method: Method,
        path: &str,
        content_type: &'static str,
        body: hyper::body::Bytes,
    ) -> Result<Option<Value>, Failure> {
        let what = format!("{method} {path}");
        let resp = self
            .client
            .send_bytes(method, path, content_type, body)
            .await
            .map_err(|e| self.unreachable(e))?;
        self.interpret(&what, resp)
    }

    /// Calls the API and prints the answer as `format` asks, a list under `columns`
    /// (nothing for an empty answer).
    pub(crate) async fn print(
        &mut self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        (format, columns): (OutputFormat, &[Column]),
    ) -> Result<(), Failure> {
        if let Some(v) = self.call(method, path, query, body).await? {
            show(&v, format, columns);
        }
        Ok(())
    }

    pub(crate) fn unreachable(&self, e: ClientError) -> Failure {
        if e.is_local() {
            Failure {
                code: EXIT_LOCAL,
                message: format!("{e}"),
            }
        } else {
            Failure {
                code: EXIT_FAILED,
                message: format!("cannot use the API at {}: {e}", self.client.url()),
            }
        }
    }

    pub(crate) fn interpret(
        &self,
        what: &str,
        resp: ApiResponse,
    ) -> Result<Option<Value>, Failure> {
        let status = resp.status;
        if (200..300).contains(&status) {
            if resp.body.iter().all(u8::is_ascii_whitespace) {
                return Ok(None);
            }
            return serde_json::from_slice(&resp.body).map(Some).map_err(|e| Failure {
                code: EXIT_FAILED,
                message: format!(
                    "the API at {} answered {what} with {status} and a body that is not JSON ({e})",
                    self.client.url()
                ),
            });
        }
        let body: Option<Value> = serde_json::from_slice(&resp.body).ok();
        let field = |name: &str| {
            body.as_ref()
                .and_then(|b| b.get(name))
                .and_then(Value::as_str)
        };
        let reason = hyper::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let (error_code, detail) = match (field("errorCode"), field("detail")) {
            (Some(code), detail) => (code.to_string(), detail.unwrap_or("").to_string()),
            (None, _) if resp.credentials_refused => (
                "USER_UNAUTHORIZED".to_string(),
                format!(
                    "the API refused the credentials of user {:?}: unknown user or wrong API key",
                    self.username
                ),
            ),
            (None, Some(detail)) => ("-".to_string(), detail.to_string()),
            (None, None) => (
                "-".to_string(),
                format!(
                    "{what}: {}",
                    String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)])
                ),
            ),
        };
        let mut message = format!(
            "{} ({status} {reason}): {}",
            printable(&error_code),
            printable(&detail)
        );
        if let Some(after) = resp
            .headers
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
        {
            message.push_str(&format!(" (retry after {} s)", printable(after)));
        }
        let code = if (400..500).contains(&status) {
            EXIT_REFUSED
        } else {
            EXIT_FAILED
        };
        Err(Failure { code, message })
    }
}

/// Text from the server made safe for a terminal: control characters replaced, length
/// bounded.
pub(crate) fn printable(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_DETAIL_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().nth(MAX_DETAIL_CHARS).is_some() {
        out.push_str("...");
    }
    out
}

/// Pretty JSON on standard output; a closed pipe (`| head`) is not an error.
pub(crate) fn print_json(v: &Value) {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    print_line(&text);
}

/// One line on standard output, ignoring a closed pipe.
pub(crate) fn print_line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|_| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_control_characters_from_the_server() {
        assert_eq!(printable("a\x1b[31mb\nc"), "a [31mb c");
        assert!(printable(&"x".repeat(5000)).ends_with("..."));
    }

    #[test]
    fn accepts_key_files_with_a_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "  0123-abcd \nsecond line\n").unwrap();
        assert_eq!(&*api_key(Some(&path)).unwrap(), "0123-abcd");
    }

    #[test]
    fn rejects_empty_and_oversized_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        assert!(
            api_key(Some(&empty))
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        let big = dir.path().join("big");
        std::fs::write(&big, "k".repeat(5000)).unwrap();
        assert!(
            api_key(Some(&big))
                .unwrap_err()
                .to_string()
                .contains("larger")
        );
        let missing = dir.path().join("missing");
        assert!(api_key(Some(&missing)).is_err());
    }
}
