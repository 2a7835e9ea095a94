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
    public_url: Option<String>,
    tls: Option<FileTls>,
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
}

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

/// The data directory for commands that need only it.
pub fn data_dir(args: &DataArgs) -> anyhow::Result<PathBuf> {
    let file = read_file(args.config.as_deref())?;
    Ok(args
        .data_dir
        .clone()
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)))
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
        Ok(ServeConfig {
            listen,
            data_dir,
            public_url,
            tls,
            kmip,
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
