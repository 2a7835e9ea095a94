//! The server's own failures (its key store, its certificates, its files), beside the
//! `kmip` crate's errors for everything on the wire.

/// Everything that can go wrong in this crate outside the wire protocol.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A failure of the `kmip` crate: a PEM file, a TLS configuration, a message.
    #[error(transparent)]
    Kmip(#[from] kmip::error::Error),
    /// The key store (SQLite) failed.
    #[error("key store {context}: {source}")]
    Store {
        /// What was being done.
        context: String,
        /// The sqlx error.
        #[source]
        source: sqlx::Error,
    },
    /// The COMMIT of a group of writes failed (or the store is closed): none of the
    /// group's writes were kept.
    #[error("key store commit failed: {reason}")]
    Commit {
        /// What SQLite said.
        reason: String,
    },
    /// Generating a CA, key or certificate failed.
    #[error("cannot generate {what}: {reason}")]
    CertificateGeneration {
        /// What was being generated.
        what: &'static str,
        /// The rcgen error text.
        reason: String,
    },
    /// Writing or reading a PKI file or directory failed.
    #[error("PKI file {}: {source}", path.display())]
    PkiIo {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// An I/O error, with what we were doing when it happened.
    #[error("I/O error {context}: {source}")]
    Io {
        /// What was being done, e.g. `creating /data/kmip`.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// An [`Error::Io`] with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
