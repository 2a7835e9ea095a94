//! `headlock serve`: the service.
//!
//! Start order: data directory and node id, metadata store (SQLite, or PostgreSQL shared
//! by several nodes), key manager (the embedded KMIP server on a loopback port with mutual
//! TLS, or the configured external servers), chunk store (local directory or S3), the
//! secrets every node shares, reconciliation of any key change nobody is working on and
//! garbage collection, then the health monitor, the maintenance jobs
//! (headlock_service::maintenance) and the API with /health, /ready and /metrics. The line
//! `headlock: API listening on <url>` on standard error says it is ready.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use headlock_api::auth::{DigestAuthenticator, Throttle, ThrottleConfig};
use headlock_api::{AppState, Shared};
use headlock_kmip::KmipKeyManager;
use headlock_service::Service;
use headlock_service::health::{self, HealthMonitor};
use headlock_service::maintenance::Maintenance;
use headlock_service::metrics::MeteredBlobStore;
use tokio::net::TcpListener;

use crate::cli::ServeArgs;
use crate::config::ServeConfig;

/// The shared secret that signs digest nonces (every node must accept every node's
/// nonces: a load balancer may send the challenge and the answer to different nodes).
const NONCE_SECRET: &str = "api-nonce";
/// The shared secret restore download tokens are derived from.
const LINK_SECRET: &str = "restore-link";
/// The file in the data directory that holds this node's id.
const NODE_ID_FILE: &str = "node-id";
/// How long a digest nonce is good for.
const NONCE_TTL: Duration = Duration::from_secs(300);

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    super::init_tracing();
    let metrics =
        headlock_api::metrics::Metrics::install().context("installing the metrics recorder")?;
    headlock_kmip::describe_metrics();
    let config = ServeConfig::load(&args)?;
    super::create_data_dir(&config.data_dir)?;
    if config.database.is_shared() && config.kmip.is_none() {
        anyhow::bail!(
            "a shared database (database_url) is for several nodes, and they need shared KMIP servers: \
             configure them (--kmip-servers or [kmip] in the config file); the embedded KMIP server keeps keys on one node's disk"
        );
    }
    let node_id = node_id(&config.data_dir)?;
    let store = config.database.open().await?;
    tracing::info!(node = %node_id, database = store.backend(), "metadata store open");

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let mut embedded = None;
    let keys = match &config.kmip {
        Some(kmip) => {
            let mut client_config = kmip::client::ClientConfig::new(
                kmip.servers.clone(),
                kmip.ca_file.clone(),
                kmip.client_cert_file.clone(),
                kmip.client_key_file.clone(),
            );
            if let Some(file) = &kmip.client_key_password_file {
                let password = crate::secret_file::first_line(file, "KMIP client key password")?;
                client_config.client_key_password =
                    Some(kmip::tls::KeyPassword::new(password.as_bytes()));
            }
            let client =
                kmip::client::Client::new(client_config).context("configuring the KMIP client")?;
            tracing::info!(servers = ?kmip.servers, "master keys live in external KMIP servers");
            KmipKeyManager::new(client, format!("KMIP server {}", kmip.servers.join(",")))
        }
        None => {
            let kmip_dir = config.data_dir.join("kmip");
            let pki = kmip_server::pki::ensure_pki(&kmip_dir)
                .context("preparing the embedded KMIP server's certificates")?;
            let tls = kmip::tls::server_config(&pki.ca_cert, &pki.server_cert, &pki.server_key)?;
            let key_store = kmip_server::KeyStore::open_in(&kmip_dir).await?;
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .context("binding the embedded KMIP server")?;
            let addr = listener.local_addr()?;
            let mut rx = shutdown_rx.clone();
            embedded = Some(tokio::spawn(async move {
                let stop = async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                kmip_server::serve(listener, tls, key_store, stop).await
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

    let blobs = match &config.s3 {
        Some(s3) => {
            if s3
                .endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://"))
            {
                tracing::warn!(
                    "the S3 endpoint is plain HTTP (allowed by allow_http): chunks are encrypted, but requests are not"
                );
            }
            let blobs = headlock_store::blob::ObjectBlobStore::s3(s3)
                .context("configuring the S3 chunk store")?;
            tracing::info!(chunks = ?blobs, "chunks live in S3");
            blobs
        }
        None => {
            let chunks_dir = config.data_dir.join("chunks");
            if config.database.is_shared() {
                tracing::warn!(
                    "chunks are kept in {}: with several nodes every node must see the same directory; S3 ([s3]) is the shared store",
                    chunks_dir.display()
                );
            }
            let blobs = headlock_store::blob::ObjectBlobStore::local(&chunks_dir)
                .with_context(|| format!("opening the chunk store in {}", chunks_dir.display()))?;
            // Before serving, nothing of this node is being written: a staging file is
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
            blobs
        }
    };
    let store = Arc::new(store);
    let link_secret = shared_secret(&*store, LINK_SECRET).await?;
    let nonce_secret = shared_secret(&*store, NONCE_SECRET).await?;
    // Commits spool sealed manifests here (unlinked files) rather than in memory.
    let spool_dir = config.data_dir.join("tmp");
    super::create_data_dir(&spool_dir)?;
    let service = Service::new(store, Arc::new(keys))
        .with_node_id(node_id)
        .with_blobs(Arc::new(MeteredBlobStore::new(blobs)))
        .with_spool_dir(spool_dir)
        .with_link_secret(link_secret)
        .with_clock(headlock_service::clock::from_env());
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

    let monitor = HealthMonitor::spawn(&service, health::DEFAULT_INTERVAL);
    let timeouts = headlock_api::server::Timeouts::from_env().map_err(anyhow::Error::msg)?;
    let maintenance = {
        let service = service.clone();
        let stop = shutdown_rx.clone();
        let schedule = Maintenance::from_env().map_err(anyhow::Error::msg)?;
        tokio::spawn(async move { service.run_maintenance(schedule, stop).await })
    };

    let state = AppState::new(Shared {
        service,
        auth: DigestAuthenticator::new(nonce_secret, NONCE_TTL),
        throttle: Throttle::new(ThrottleConfig::default()),
        public_origin: config.public_url.clone(),
        scheme: if config.tls.is_some() {
            "https"
        } else {
            "http"
        },
    });
    let ops = headlock_api::Ops {
        health: Some(monitor),
        metrics: Some(metrics),
    };
    let app = headlock_api::app_with(state, ops);
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the API to {}", config.listen))?;
    let addr = listener.local_addr()?;
    if config.tls.is_none() && !addr.ip().is_loopback() {
        // Digest authentication proves who sent the request, not what it says: the body
        // is not covered, and neither is anything the answer carries.
        tracing::warn!(
            %addr,
            "the API listens on a non-loopback address without TLS: request bodies and answers (restore links, snapshot data) cross the network in clear and can be changed in transit. \
             Set tls.cert_file and tls.key_file (--tls-cert-file, --tls-key-file), or terminate TLS in front of Headlock on a trusted network"
        );
    }
    let mut rx = shutdown_rx.clone();
    let stop = async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    tokio::spawn(async move {
        super::shutdown_signal().await;
        tracing::info!("stopping");
        let _ = shutdown_tx.send(true);
    });
    match &config.tls {
        Some((cert, key)) => {
            let tls = api_tls_config(cert, key)?;
            let listener = headlock_api::tls_listener::TlsListener::new(listener, tls)?;
            eprintln!("headlock: API listening on https://{addr}");
            headlock_api::server::serve(listener, app, timeouts, stop).await;
        }
        None => {
            eprintln!("headlock: API listening on http://{addr}");
            headlock_api::server::serve(listener, app, timeouts, stop).await;
        }
    }
    let _ = maintenance.await;
    if let Some(task) = embedded {
        task.await
            .context("embedded KMIP server task")?
            .context("embedded KMIP server")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A 32-byte secret every node shares, kept in the metadata store: the first node to
/// start makes it, the others read it.
async fn shared_secret(
    store: &dyn headlock_core::store::LeaseStore,
    name: &str,
) -> anyhow::Result<[u8; 32]> {
    let mut candidate = zeroize::Zeroizing::new([0u8; 32]);
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut candidate[..])
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    let stored = zeroize::Zeroizing::new(
        store
            .shared_secret(name, &candidate[..], time::OffsetDateTime::now_utc())
            .await
            .with_context(|| format!("reading the shared secret {name}"))?,
    );
    <[u8; 32]>::try_from(&stored[..]).map_err(|_| {
        anyhow::anyhow!("the shared secret {name} in the metadata store is damaged (not 32 bytes)")
    })
}

/// This node's id, made at its first start and kept in the data directory, so that after
/// a restart it recognises its own leases (see headlock_service::lease).
fn node_id(dir: &Path) -> anyhow::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(id) if is_node_id(id.trim()) => return Ok(id.trim().to_string()),
        Ok(_) => anyhow::bail!(
            "{} is damaged; delete it to make a new node id",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(32)
        .collect();
    let id = if host.is_empty() {
        format!("node-{}", hex::encode(bytes))
    } else {
        format!("{host}-{}", hex::encode(bytes))
    };
    let tmp = dir.join(format!("{NODE_ID_FILE}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    writeln!(f, "{id}")?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(id)
}

fn is_node_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
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
