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

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use zeroize::Zeroizing;

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

/// Largest private key file read.
const MAX_KEY_FILE: u64 = 1 << 20;

/// The password of an encrypted private key; never shown by `Debug`, zeroized on drop.
#[derive(Clone)]
pub struct KeyPassword(Zeroizing<Vec<u8>>);

impl KeyPassword {
    /// A password from its bytes.
    pub fn new(password: impl Into<Vec<u8>>) -> Self {
        KeyPassword(Zeroizing::new(password.into()))
    }
}

impl std::fmt::Debug for KeyPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPassword(<redacted>)")
    }
}

/// Reads the first private key (PKCS#8, SEC1 or PKCS#1) of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    load_key_with_password(path, None)
}

/// Reads the first private key of a PEM file: PKCS#8, SEC1 or PKCS#1, or an
/// `ENCRYPTED PRIVATE KEY` (PKCS#8 with PBES2: PBKDF2 or scrypt, AES-CBC; what
/// `openssl genpkey -aes-256-cbc` and `openssl pkcs8 -topk8 -v2 aes-256-cbc` write),
/// which needs `password`. The older PEM encryption (`Proc-Type: 4,ENCRYPTED`) is
/// refused with the command that converts it. A password given for a key that is not
/// encrypted is ignored.
pub fn load_key_with_password(
    path: &Path,
    password: Option<&KeyPassword>,
) -> Result<PrivateKeyDer<'static>, Error> {
    let pem_error = |reason: String| Error::Pem {
        path: path.to_path_buf(),
        reason,
    };
    let mut text = Zeroizing::new(String::new());
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_KEY_FILE + 1).read_to_string(&mut text))
        .map_err(|e| pem_error(e.to_string()))?;
    if text.len() as u64 > MAX_KEY_FILE {
        return Err(pem_error(format!("larger than {MAX_KEY_FILE} bytes")));
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(pem_error(
            "the key is encrypted in the old PEM way (Proc-Type: 4,ENCRYPTED), which is not \
             supported; convert it to PKCS#8 with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEY \
             -out KEY.p8`"
                .into(),
        ));
    }
    const ENCRYPTED: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
    let Some(start) = text.find(ENCRYPTED) else {
        return PrivateKeyDer::from_pem_slice(text.as_bytes())
            .map_err(|e| pem_error(e.to_string()));
    };
    let Some(password) = password else {
        return Err(pem_error(
            "the key is encrypted (ENCRYPTED PRIVATE KEY) and no password was given".into(),
        ));
    };
    let end = text[start..]
        .find(ENCRYPTED_END)
        .map(|e| start + e + ENCRYPTED_END.len())
        .ok_or_else(|| pem_error("ENCRYPTED PRIVATE KEY block has no end line".into()))?;
    let (_, document) = pkcs8::SecretDocument::from_pem(&text[start..end])
        .map_err(|e| pem_error(format!("ENCRYPTED PRIVATE KEY block: {e}")))?;
    let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(document.as_bytes())
        .map_err(|e| pem_error(format!("ENCRYPTED PRIVATE KEY block: {e}")))?;
    let plain = encrypted.decrypt(&password.0[..]).map_err(|_| {
        pem_error(
            "cannot decrypt the key: wrong password, or an encryption scheme other than \
             PBES2 with PBKDF2 or scrypt and AES-CBC"
                .into(),
        )
    })?;
    Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()))
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
    client_config_with_password(ca, cert, key, None)
}

/// [`client_config`] with the password of an encrypted private key (see
/// [`load_key_with_password`]).
pub fn client_config_with_password(
    ca: &Path,
    cert: &Path,
    key: &Path,
    password: Option<&KeyPassword>,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(tls_config("protocol versions"))?
        .with_root_certificates(root_store(ca)?)
        .with_client_auth_cert(load_certs(cert)?, load_key_with_password(key, password)?)
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

    fn key_file(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/keys")
            .join(name)
    }

    fn reason(r: Result<PrivateKeyDer<'static>, Error>) -> String {
        match r {
            Err(Error::Pem { reason, .. }) => reason,
            other => panic!("expected a PEM error, got {other:?}"),
        }
    }

    #[test]
    fn accepts_keys_openssl_encrypted_with_the_right_password() {
        let plain = load_key(&key_file("plain.pem")).unwrap();
        let password = KeyPassword::new("correct-horse");
        for name in ["pbkdf2-aes256.pem", "scrypt-aes256.pem"] {
            let key = load_key_with_password(&key_file(name), Some(&password)).unwrap();
            assert_eq!(key.secret_der(), plain.secret_der(), "{name}");
        }
        // A password given for a plain key is ignored.
        let again = load_key_with_password(&key_file("plain.pem"), Some(&password)).unwrap();
        assert_eq!(again.secret_der(), plain.secret_der());
    }

    #[test]
    fn rejects_encrypted_keys_without_the_right_password_and_the_old_pem_encryption() {
        let encrypted = key_file("pbkdf2-aes256.pem");
        let why = reason(load_key(&encrypted));
        assert!(why.contains("no password was given"), "{why}");
        let wrong = KeyPassword::new("battery-staple");
        let why = reason(load_key_with_password(&encrypted, Some(&wrong)));
        assert!(why.contains("wrong password"), "{why}");
        assert!(!why.contains("battery"), "{why}");
        let password = KeyPassword::new("correct-horse");
        let why = reason(load_key_with_password(
            &key_file("legacy-pem.pem"),
            Some(&password),
        ));
        assert!(why.contains("openssl pkcs8 -topk8"), "{why}");
        assert_eq!(format!("{password:?}"), "KeyPassword(<redacted>)");
    }
}
