//! rustls configurations for KMIP's mutual TLS (KMIP 1.x section 3.1 of the profiles:
//! TLS with client authentication on port 5696).
//!
//! Both sides use the `ring` crypto provider, passed explicitly to every builder, so
//! the result never depends on which provider some other crate installed as the process
//! default. Both offer TLS 1.3 and TLS 1.2: PyKMIP 0.11 speaks TLS 1.2 only, with
//! ECDHE-ECDSA-AES-GCM as its only suites in common with rustls (hence the ECDSA
//! certificates of `kmip-server`'s `pki`).
//!
//! The server requires a client certificate and verifies it against the configured CA.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::error::Error;

/// The crypto provider of every configuration built here.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Reads every certificate of a PEM file (a chain or a CA bundle).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(Error::Pem {
            path: path.to_path_buf(),
            reason: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, SEC1 or PKCS#1) of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| Error::Pem {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn root_store(ca_pem_path: &Path) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca_pem_path)? {
        roots.add(cert).map_err(|e| Error::TlsConfig {
            what: format!("CA certificate {}", ca_pem_path.display()),
            source: e,
        })?;
    }
    Ok(roots)
}

/// Server side: TLS 1.2 and 1.3, client certificate REQUIRED and verified against the
/// CA in `ca_pem_path`, presenting the certificate chain `cert` with private key `key`.
pub fn server_config(
    ca_pem_path: &Path,
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let provider = provider();
    let roots = Arc::new(root_store(ca_pem_path)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| Error::TlsConfig {
            what: "client certificate verifier".into(),
            source: rustls::Error::General(e.to_string()),
        })?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)
        .map_err(tls_config("protocol versions"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(cert)?, load_key(key)?)
        .map_err(tls_config(&format!(
            "server certificate {}",
            cert.display()
        )))?;
    Ok(Arc::new(config))
}

/// Client side: TLS 1.2 and 1.3, the server verified against the CA in `ca`, our
/// certificate chain `cert` and private key `key` presented for client authentication.
pub fn client_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(tls_config("protocol versions"))?
        .with_root_certificates(root_store(ca)?)
        .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
        .map_err(tls_config(&format!(
            "client certificate {}",
            cert.display()
        )))?;
    Ok(Arc::new(config))
}

fn tls_config(what: &str) -> impl FnOnce(rustls::Error) -> Error + '_ {
    move |source| Error::TlsConfig {
        what: what.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_missing_and_empty_pem_files() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        assert!(matches!(load_certs(&empty), Err(Error::Pem { .. })));
        assert!(matches!(
            load_key(&dir.path().join("missing.pem")),
            Err(Error::Pem { .. })
        ));
    }
}
