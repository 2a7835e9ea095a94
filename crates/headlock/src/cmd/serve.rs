//! `headlock serve`: the service.
//!
//! Start order: data directory, metadata store, key manager (the embedded KMIP server on
//! a loopback port with mutual TLS, or the configured external servers), reconciliation
//! of any key change a crash interrupted, then the API. The line
//! `headlock: API listening on <url>` on standard error says it is ready.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use headlock_api::auth::{DigestAuthenticator, Throttle, ThrottleConfig};
use headlock_api::{AppState, Shared};
use headlock_service::Service;
use headlock_service::kmip_keys::KmipKeyManager;
use headlock_store::SqlStore;
use tokio::net::TcpListener;

use crate::cli::ServeArgs;
use crate::config::ServeConfig;

/// The metadata store's file in the data directory.
pub const METADATA_FILE: &str = "headlock.db";
/// The file holding the secret that signs digest nonces.
const NONCE_SECRET_FILE: &str = "api-nonce.key";
/// The file holding the secret restore download tokens are derived from.
const LINK_SECRET_FILE: &str = "restore-link.key";
/// How long a digest nonce is good for.
const NONCE_TTL: Duration = Duration::from_secs(300);

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    super::init_tracing();
    let config = ServeConfig::load(&args)?;
    super::create_data_dir(&config.data_dir)?;
    let store = SqlStore::open_sqlite(&config.data_dir.join(METADATA_FILE))
        .await
        .with_context(|| {
            format!(
                "opening the metadata store in {}",
                config.data_dir.display()
            )
        })?;

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let mut embedded = None;
    let keys = match &config.kmip {
        Some(kmip) => {
            let client = kmip::client::Client::new(kmip::client::ClientConfig::new(
                kmip.servers.clone(),
                kmip.ca_file.clone(),
                kmip.client_cert_file.clone(),
                kmip.client_key_file.clone(),
            ))
            .context("configuring the KMIP client")?;
            tracing::info!(servers = ?kmip.servers, "master keys live in external KMIP servers");
            KmipKeyManager::new(client, format!("KMIP server {}", kmip.servers.join(",")))
        }
        None => {
            let kmip_dir = config.data_dir.join("kmip");
            let pki = kmip::pki::ensure_pki(&kmip_dir)
                .context("preparing the embedded KMIP server's certificates")?;
            let tls = kmip::tls::server_config(&pki.ca_cert, &pki.server_cert, &pki.server_key)?;
            let key_store = kmip::server::KeyStore::open_in(&kmip_dir).await?;
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .context("binding the embedded KMIP server")?;
            let addr = listener.local_addr()?;
            let mut rx = shutdown_rx.clone();
            embedded = Some(tokio::spawn(async move {
                let stop = async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                kmip::server::serve(listener, tls, key_store, stop).await
            }));
            tracing::warn!(
                "using the embedded KMIP server: master keys are stored in {} on the same disk as the data they protect. \
                 This is fine for trying Headlock and for tests, but it is not key management: configure external KMIP servers (--kmip-servers) for production",
                kmip_dir.display()
            );
            let client = kmip::client::Client::new(kmip::client::ClientConfig::new(
                vec![addr.to_string()],
                pki.ca_cert.clone(),
                pki.client_cert.clone(),
                pki.client_key.clone(),
            ))
            .context("configuring the KMIP client")?;
            KmipKeyManager::new(client, format!("embedded KMIP server {addr}"))
        }
    };

    let chunks_dir = config.data_dir.join("chunks");
    let blobs = headlock_store::blob::ObjectBlobStore::local(&chunks_dir)
        .with_context(|| format!("opening the chunk store in {}", chunks_dir.display()))?;
    // Before serving, nothing is being written: what looks like a write in progress is
    // what a crash left.
    let staged = blobs
        .remove_staging_files()
        .await
        .context("removing partial files left in the chunk store")?;
    if staged > 0 {
        tracing::info!(
            files = staged,
            "removed partial chunk store files left by a previous stop"
        );
    }
    let service = Service::new(Arc::new(store), Arc::new(keys))
        .with_blobs(Arc::new(blobs))
        .with_link_secret(secret_file(&config.data_dir, LINK_SECRET_FILE)?);
    let report = service
        .reconcile()
        .await
        .context("reconciling interrupted key changes")?;
    if report.resolved > 0 || report.deferred > 0 {
        tracing::info!(
            ?report,
            "reconciled key changes interrupted by a previous stop"
        );
    }
    let gc = service
        .collect_garbage_everywhere()
        .await
        .context("collecting what interrupted backups left")?;
    if gc.packs_deleted > 0 || gc.manifests_deleted > 0 {
        tracing::info!(
            ?gc,
            "removed objects of backups interrupted by a previous stop"
        );
    }

    let state = AppState::new(Shared {
        service,
        auth: DigestAuthenticator::new(
            secret_file(&config.data_dir, NONCE_SECRET_FILE)?,
            NONCE_TTL,
        ),
        throttle: Throttle::new(ThrottleConfig::default()),
        public_origin: config.public_url.clone(),
        scheme: if config.tls.is_some() {
            "https"
        } else {
            "http"
        },
    });
    let app =
        headlock_api::app(state).into_make_service_with_connect_info::<headlock_api::PeerAddr>();
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the API to {}", config.listen))?;
    let addr = listener.local_addr()?;
    let mut rx = shutdown_rx.clone();
    let stop = async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    tokio::spawn(async move {
        super::shutdown_signal().await;
        tracing::info!("stopping");
        let _ = shutdown_tx.send(true);
    });
    let served = match &config.tls {
        Some((cert, key)) => {
            let tls = api_tls_config(cert, key)?;
            let listener = headlock_api::tls_listener::TlsListener::new(listener, tls)?;
            eprintln!("headlock: API listening on https://{addr}");
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        }
        None => {
            eprintln!("headlock: API listening on http://{addr}");
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        }
    };
    served.context("serving the API")?;
    if let Some(task) = embedded {
        task.await
            .context("embedded KMIP server task")?
            .context("embedded KMIP server")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A 32-byte secret made once and kept in the data directory (mode 0600), so that what
/// it signs (digest nonces, restore links) stays valid across a restart.
fn secret_file(dir: &Path, name: &str) -> anyhow::Result<[u8; 32]> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() == 32 => return Ok(bytes.try_into().expect("32 bytes")),
        Ok(_) => anyhow::bail!(
            "{} is damaged (not 32 bytes); delete it to make a new one",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let mut secret = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(&secret)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(secret)
}

/// The API's rustls configuration from PEM files (ring provider; no client certificates).
fn api_tls_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = kmip::tls::load_certs(cert)
        .with_context(|| format!("loading API certificate {}", cert.display()))?;
    let key =
        kmip::tls::load_key(key).with_context(|| format!("loading API key {}", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(kmip::tls::provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("API certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
