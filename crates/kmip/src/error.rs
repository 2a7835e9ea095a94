//! The crate's error type, grouped by who is at fault (as rustls does): bytes that are
//! not TTLV ([`Error::Decode`]), TTLV that is not the KMIP message we expected
//! ([`Error::Message`]), and (added by the transport modules) I/O, TLS and
//! server-reported failures.

use crate::message::MessageError;
use crate::ttlv::DecodeError;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer sent bytes that are not well-formed TTLV (offset and tag path inside).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The peer sent well-formed TTLV that is not a valid KMIP message (field and tag
    /// path inside).
    #[error(transparent)]
    Message(#[from] MessageError),

    // ----- transport (client.rs, framing.rs, tls.rs) -----
    /// The TCP connection to a KMIP server could not be made (refused, unreachable, or
    /// no answer within the connect timeout).
    #[error("cannot connect to KMIP server {server}: {source}")]
    Connect {
        /// The server as configured (`host:port`).
        server: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake with a KMIP server failed (certificate not trusted, name
    /// mismatch, our certificate refused, no common protocol version or suite).
    #[error("TLS handshake with KMIP server {server} failed: {source}")]
    Tls {
        /// The server as configured.
        server: String,
        /// The handshake error (a `rustls::Error` inside when rustls detected it).
        #[source]
        source: std::io::Error,
    },
    /// A KMIP server did not answer within the I/O timeout.
    #[error("KMIP server {server} did not answer {operation} within {after:?}")]
    Timeout {
        /// The server as configured.
        server: String,
        /// The operation of the request (the first one of a batch).
        operation: crate::types::Operation,
        /// The timeout that expired.
        after: std::time::Duration,
    },
    /// A KMIP server answered an operation with Result Status Operation Failed.
    #[error(
        "KMIP server {server} failed {operation}: {reason}{}",
        message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
    )]
    ServerReported {
        /// The server as configured.
        server: String,
        /// The operation that failed.
        operation: crate::types::Operation,
        /// The Result Reason the server gave.
        reason: crate::types::ResultReason,
        /// The Result Message the server gave, if any.
        message: Option<String>,
    },
    /// A KMIP server answered with a message that does not fit the request (a batch of
    /// the wrong size, a payload that is missing or of another operation).
    #[error("KMIP server {server} answered {operation} unexpectedly: {reason}")]
    Protocol {
        /// The server as configured.
        server: String,
        /// The operation of the request.
        operation: crate::types::Operation,
        /// What was wrong.
        reason: String,
    },
    /// An operation that is not safe to repeat (Create, Register, ReKey) was sent but
    /// its outcome is unknown: the connection failed before the answer arrived. The
    /// object may exist; reconcile by Locate on the name it was given.
    #[error(
        "outcome of {operation} on KMIP server {server} is unknown (not retried; reconcile by Locate): {source}"
    )]
    Indeterminate {
        /// The server as configured.
        server: String,
        /// The operation that was sent.
        operation: crate::types::Operation,
        /// The transport failure after sending.
        #[source]
        source: Box<Error>,
    },
    /// Every configured KMIP server failed; one entry per attempt, `(server, error)`.
    #[error("all KMIP servers failed {operation}: {}", format_attempts(attempts))]
    AllServersFailed {
        /// The operation.
        operation: crate::types::Operation,
        /// Each attempt's server and error text, in order.
        attempts: Vec<(String, String)>,
    },
    /// An I/O error, with what we were doing (and with which server) when it happened.
    #[error("I/O error {context}: {source}")]
    Io {
        /// What was being done, e.g. `reading a message body from 127.0.0.1:5696`.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A byte stream does not frame as one KMIP message (the outer item is not a
    /// Structure); size and length errors are [`Error::Decode`].
    #[error("not a KMIP message: {reason}")]
    Frame {
        /// What was wrong.
        reason: String,
    },
    /// A PEM file could not be read or holds no usable certificate or key.
    #[error("cannot use PEM file {}: {reason}", path.display())]
    Pem {
        /// The file.
        path: std::path::PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A TLS configuration could not be built from the given certificates.
    #[error("invalid TLS configuration ({what}): {source}")]
    TlsConfig {
        /// Which part, e.g. `server certificate /path/server.pem`.
        what: String,
        /// The rustls error.
        #[source]
        source: rustls::Error,
    },
}

fn format_attempts(attempts: &[(String, String)]) -> String {
    attempts
        .iter()
        .map(|(server, error)| format!("[{server}: {error}]"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    /// An [`Error::Io`] with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// True for failures worth trying again, on the same server or the next one:
    /// connection, TLS, timeout and I/O failures, and server-reported reasons that
    /// describe the server's condition rather than the request (General Failure,
    /// Operation Canceled By Requester). A KMIP error about the request itself (Item
    /// Not Found, Permission Denied, Invalid Field...), a malformed answer, a local
    /// configuration error and [`Error::Indeterminate`] are not. The client's retries
    /// (backon) ask this.
    pub fn is_transient(&self) -> bool {
        use crate::types::ResultReason;
        match self {
            Error::Connect { .. }
            | Error::Tls { .. }
            | Error::Timeout { .. }
            | Error::Io { .. } => true,
            Error::ServerReported { reason, .. } => {
                *reason == ResultReason::GENERAL_FAILURE
                    || *reason == ResultReason::OPERATION_CANCELED_BY_REQUESTER
            }
            Error::AllServersFailed { .. } => true,
            _ => false,
        }
    }

    /// The KMIP Result Reason if a server reported this error.
    pub fn result_reason(&self) -> Option<crate::types::ResultReason> {
        match self {
            Error::ServerReported { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}
