//! Configuration: defaults, then the TOML file (`--config`), then `HEADLOCK_*` variables
//! and flags (clap merges those two). The file's format is in docs/configuration.md:
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! data_dir = "/var/lib/headlock"
//! public_url = "https://backup.example.com"
//!
//! [tls]                      # HTTPS for the API, on the same port
//! cert_file = "/etc/headlock/api.pem"
//! key_file = "/etc/headlock/api.key"
//!
//! database_url = "postgres://headlock@db.example.com/headlock"   # absent: SQLite in data_dir
//!
//! [s3]                       # chunk store; absent: data_dir/chunks
//! bucket = "headlock-chunks"
//! region = "eu-west-1"
//!
//! [kmip]                     # external KMIP servers; absent: the embedded one
//! servers = ["kmip1.example.com", "kmip2.example.com:5696"]
//! port = 5696
//! ca_file = "/etc/headlock/kmip-ca.pem"
//! client_cert_file = "/etc/headlock/kmip-client.pem"
//! client_key_file = "/etc/headlock/kmip-client.key"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use headlock_store::blob::S3Config;

use crate::cli::{DataArgs, ServeArgs};

/// Default API address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./headlock-data";
/// Default KMIP port.
pub const DEFAULT_KMIP_PORT: u16 = 5696;
/// Largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    public_url: Option<String>,
    tls: Option<FileTls>,
    s3: Option<S3Config>,
    kmip: Option<FileKmip>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    cert_file: PathBuf,
    key_file: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKmip {
    servers: Vec<String>,
    port: Option<u16>,
    ca_file: Option<PathBuf>,
    client_cert_file: Option<PathBuf>,
    client_key_file: Option<PathBuf>,
}

/// External KMIP servers.
#[derive(Debug, Clone)]
pub struct KmipConfig {
    /// `host:port` of each server, in order.
    pub servers: Vec<String>,
    /// CA of the servers.
    pub ca_file: PathBuf,
    /// Our client certificate.
    pub client_cert_file: PathBuf,
    /// Its key.
    pub client_key_file: PathBuf,
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// API address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Origin for links.
    pub public_url: Option<String>,
    /// API TLS certificate and key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// External KMIP servers; None: embedded.
    pub kmip: Option<KmipConfig>,
    /// Where the metadata lives.
    pub database: Database,
    /// The chunk store on S3; None: `data_dir/chunks`.
    pub s3: Option<S3Config>,
}

/// Where the metadata lives.
#[derive(Clone)]
pub enum Database {
    /// `headlock.db` in the data directory.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (may hold a password: never printed).
    Url(String),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Database::Url(_) => f.write_str("Url(..)"),
        }
    }
}

impl Database {
    /// The database for these arguments: the URL of the flag, variable or file, else
    /// SQLite in the data directory.
    fn choose(flag: Option<&String>, file: Option<String>, data_dir: &Path) -> Database {
        match flag.cloned().or(file).filter(|u| !u.trim().is_empty()) {
            Some(url) => Database::Url(url),
            None => Database::Sqlite(data_dir.join(METADATA_FILE)),
        }
    }

    /// Opens the store and brings its schema up to date.
    pub async fn open(&self) -> anyhow::Result<headlock_store::SqlStore> {
        match self {
            Database::Sqlite(path) => headlock_store::SqlStore::open_sqlite(path)
                .await
                .with_context(|| format!("opening the metadata store {}", path.display())),
            Database::Url(url) => headlock_store::SqlStore::open(url)
                .await
                .context("opening the metadata store (database_url)"),
        }
    }

    /// Whether several nodes can share it.
    pub fn is_shared(&self) -> bool {
        matches!(self, Database::Url(_))
    }
}

/// The metadata store's file in the data directory.
pub const METADATA_FILE: &str = "headlock.db";

fn read_file(path: Option<&Path>) -> anyhow::Result<FileConfig> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let meta = std::fs::metadata(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    if meta.len() > MAX_CONFIG_BYTES {
        bail!(
            "config file {} is larger than {MAX_CONFIG_BYTES} bytes",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

/// The data directory and the database, for commands that need only those.
pub fn data(args: &DataArgs) -> anyhow::Result<(PathBuf, Database)> {
    let file = read_file(args.config.as_deref())?;
    let dir = args
        .data_dir
        .clone()
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let database = Database::choose(args.database_url.as_ref(), file.database_url, &dir);
    Ok((dir, database))
}

impl ServeConfig {
    /// Merges flags and variables over the file over the defaults.
    pub fn load(args: &ServeArgs) -> anyhow::Result<Self> {
        let file = read_file(args.data.config.as_deref())?;
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default"));
        let data_dir = args
            .data
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let tls = match (&args.tls_cert_file, &args.tls_key_file, file.tls) {
            (Some(c), Some(k), _) => Some((c.clone(), k.clone())),
            (None, None, Some(t)) => Some((t.cert_file, t.key_file)),
            _ => None,
        };
        let file_kmip = file.kmip.unwrap_or_default();
        let servers = args.kmip_servers.clone().unwrap_or(file_kmip.servers);
        let servers: Vec<String> = servers
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let kmip = if servers.is_empty() {
            None
        } else {
            let port = args
                .kmip_port
                .or(file_kmip.port)
                .unwrap_or(DEFAULT_KMIP_PORT);
            let need = |flag: &Option<PathBuf>, file: Option<PathBuf>, name: &str| {
                flag.clone().or(file).with_context(|| {
                    format!(
                        "external KMIP servers need --{name} (or kmip.{} in the config file)",
                        name.trim_start_matches("kmip-").replace('-', "_")
                    )
                })
            };
            Some(KmipConfig {
                servers: servers
                    .into_iter()
                    .map(|s| {
                        if has_port(&s) {
                            s
                        } else {
                            format!("{s}:{port}")
                        }
                    })
                    .collect(),
                ca_file: need(&args.kmip_ca_file, file_kmip.ca_file, "kmip-ca-file")?,
                client_cert_file: need(
                    &args.kmip_client_cert_file,
                    file_kmip.client_cert_file,
                    "kmip-client-cert-file",
                )?,
                client_key_file: need(
                    &args.kmip_client_key_file,
                    file_kmip.client_key_file,
                    "kmip-client-key-file",
                )?,
            })
        };
        let public_url = args
            .public_url
            .clone()
            .or(file.public_url)
            .map(|u| u.trim_end_matches('/').to_string());
        if let Some(u) = &public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            bail!("public URL {u:?} must start with http:// or https://");
        }
        let database = Database::choose(
            args.data.database_url.as_ref(),
            file.database_url,
            &data_dir,
        );
        let s3 = match (&args.s3_bucket, file.s3) {
            (None, None) => None,
            (bucket, file_s3) => {
                let mut s3 = file_s3.unwrap_or_default();
                if let Some(bucket) = bucket {
                    s3.bucket = bucket.clone();
                }
                if args.s3_endpoint.is_some() {
                    s3.endpoint = args.s3_endpoint.clone();
                }
                if args.s3_region.is_some() {
                    s3.region = args.s3_region.clone();
                }
                if s3.bucket.trim().is_empty() {
                    bail!("the S3 chunk store needs a bucket (--s3-bucket or s3.bucket)");
                }
                if let Some(endpoint) = &s3.endpoint
                    && endpoint.starts_with("http://")
                {
                    s3.allow_http = true;
                }
                Some(s3)
            }
        };
        Ok(ServeConfig {
            listen,
            data_dir,
            public_url,
            tls,
            kmip,
            database,
            s3,
        })
    }
}

/// Whether `host[:port]` names a port (IPv6 literals in brackets included).
fn has_port(s: &str) -> bool {
    if let Some(rest) = s.strip_prefix('[') {
        return rest.contains("]:");
    }
    s.matches(':').count() == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_recognised() {
        assert!(has_port("kmip:5696"));
        assert!(!has_port("kmip.example.com"));
        assert!(has_port("[::1]:5696"));
        assert!(!has_port("[::1]"));
    }
}
