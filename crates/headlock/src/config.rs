//! Configuration: defaults, then the TOML file (`--config`), then `HEADLOCK_*` variables
//! and flags (clap merges those two). The file's format is in docs/configuration.md:
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! data_dir = "/var/lib/headlock"
//! public_url = "https://backup.example.com"
//! # Top-level keys come before the first [section]: after it, TOML reads them as the
//! # section's (tls.database_url), and the file is refused.
//! database_url = "postgres://headlock@db.example.com/headlock"   # absent: SQLite in data_dir
//!
//! [tls]                      # HTTPS for the API, on the same port
//! cert_file = "/etc/headlock/api.pem"
//! key_file = "/etc/headlock/api.key"
//!
//! [s3]                       # chunk store; absent: data_dir/chunks
//! bucket = "headlock-chunks"
//! region = "eu-west-1"
//! # endpoint = "https://minio.example.com:9000"   # http:// needs allow_http = true
//!
//! [kmip]                     # external KMIP servers; absent: the embedded one
//! servers = ["kmip1.example.com", "kmip2.example.com:5696"]
//! port = 5696
//! ca_file = "/etc/headlock/kmip-ca.pem"
//! client_cert_file = "/etc/headlock/kmip-client.pem"
//! client_key_file = "/etc/headlock/kmip-client.key"
//! # client_key_password_file = "/etc/headlock/kmip-client.pass"   # for an encrypted key
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
    client_key_password_file: Option<PathBuf>,
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
    /// The file whose first line is the password of an encrypted key.
    pub client_key_password_file: Option<PathBuf>,
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
                client_key_password_file: args
                    .kmip_client_key_password_file
                    .clone()
                    .or(file_kmip.client_key_password_file),
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
                if args.s3_allow_http {
                    s3.allow_http = true;
                }
                if s3.bucket.trim().is_empty() {
                    bail!("the S3 chunk store needs a bucket (--s3-bucket or s3.bucket)");
                }
                // Plain HTTP only when asked for by name, never because of the URL alone:
                // the requests (signed, but readable and replayable within their window)
                // and the metadata of every pack would cross the network unprotected.
                if let Some(endpoint) = &s3.endpoint
                    && endpoint.starts_with("http://")
                    && !s3.allow_http
                {
                    bail!(
                        "the S3 endpoint {endpoint} is plain HTTP: use https://, or allow it explicitly with --s3-allow-http (HEADLOCK_S3_ALLOW_HTTP=true, or allow_http = true in [s3]), for a test server on loopback"
                    );
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
    use clap::Parser;

    /// `ServeConfig::load` of `headlock serve` with these arguments.
    fn load(args: &[&str]) -> anyhow::Result<ServeConfig> {
        let cli = crate::cli::Cli::try_parse_from(["headlock", "serve"].iter().chain(args))?;
        match cli.command {
            crate::cli::Command::Serve(args) => ServeConfig::load(&args),
            _ => unreachable!("serve"),
        }
    }

    /// The fenced ```toml blocks of a Markdown text (or of `//!` lines, prefix removed).
    fn toml_blocks(text: &str) -> Vec<String> {
        let mut blocks = Vec::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            let line = line
                .strip_prefix("//! ")
                .or(line.strip_prefix("//!"))
                .unwrap_or(line);
            match &mut current {
                None if line.trim_start().starts_with("```toml") => current = Some(String::new()),
                Some(block) if line.trim_start().starts_with("```") => {
                    blocks.push(std::mem::take(block));
                    current = None;
                }
                Some(block) => {
                    block.push_str(line);
                    block.push('\n');
                }
                None => {}
            }
        }
        blocks
    }

    #[test]
    fn accepts_every_toml_example_of_the_docs_with_the_real_loader() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut sources = vec![
            root.join("README.md"),
            root.join("crates/headlock/src/config.rs"),
        ];
        for entry in std::fs::read_dir(root.join("docs")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                sources.push(path);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let mut checked = Vec::new();
        for source in &sources {
            let text = std::fs::read_to_string(source).unwrap();
            for (i, block) in toml_blocks(&text).into_iter().enumerate() {
                let file = dir.path().join(format!("example-{}.toml", checked.len()));
                std::fs::write(&file, &block).unwrap();
                let shown = format!("{} (TOML block {})", source.display(), i + 1);
                let config = load(&["--config", file.to_str().unwrap()])
                    .unwrap_or_else(|e| panic!("{shown} is refused: {e:#}\n{block}"));
                // What the example writes is what the loader read.
                if block.contains("[kmip]") {
                    assert!(config.kmip.is_some(), "{shown}: [kmip] ignored");
                }
                if block.contains("[s3]") {
                    assert!(config.s3.is_some(), "{shown}: [s3] ignored");
                }
                if block.contains("\ndatabase_url") {
                    assert!(config.database.is_shared(), "{shown}: database_url ignored");
                }
                checked.push(shown);
            }
        }
        // README.md, docs/configuration.md and this module's documentation at least.
        assert!(checked.len() >= 3, "{checked:?}");
    }

    #[test]
    fn rejects_a_plain_http_s3_endpoint_unless_allowed_by_name() {
        let plain = ["--s3-bucket", "b", "--s3-endpoint", "http://127.0.0.1:9000"];
        let e = load(&plain).unwrap_err().to_string();
        assert!(
            e.contains("plain HTTP") && e.contains("--s3-allow-http"),
            "{e}"
        );
        let allowed = load(&[&plain[..], &["--s3-allow-http"]].concat()).unwrap();
        assert!(allowed.s3.unwrap().allow_http);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let section = "[s3]\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:9000\"\n";
        std::fs::write(&file, section).unwrap();
        let file = file.to_str().unwrap();
        assert!(load(&["--config", file]).is_err());
        std::fs::write(file, format!("{section}allow_http = true\n")).unwrap();
        assert!(load(&["--config", file]).unwrap().s3.unwrap().allow_http);
        let https = ["--s3-bucket", "b", "--s3-endpoint", "https://minio.example"];
        assert!(!load(&https).unwrap().s3.unwrap().allow_http);
    }

    #[test]
    fn ports_are_recognised() {
        assert!(has_port("kmip:5696"));
        assert!(!has_port("kmip.example.com"));
        assert!(has_port("[::1]:5696"));
        assert!(!has_port("[::1]"));
    }
}
