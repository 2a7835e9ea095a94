//! A small private PKI for mutual TLS between Headlock and its KMIP server.
//!
//! [`ensure_pki`] is what `headlock serve` calls on its data directory: on the first call
//! it generates, with `rcgen` on the `ring` backend,
//!
//! * a CA (ECDSA P-256, `ca.pem`, key `ca-key.pem`),
//! * a server certificate (ECDSA P-256, SAN `127.0.0.1` and `localhost`, serverAuth EKU;
//!   `server.pem` / `server-key.pem`),
//! * a client certificate (clientAuth EKU, CN `headlock`; `client.pem` / `client-key.pem`),
//!
//! and later calls reuse them. ECDSA rather than RSA because PyKMIP 0.11's TLS 1.2
//! cipher list has ECDHE-ECDSA-AES-GCM but no ECDHE-RSA-AES-GCM suite, and rustls only
//! offers AEAD suites: an RSA server certificate leaves the two with nothing in common.
//!
//! Every file is written atomically (temporary file in the same directory, `fsync`,
//! `rename`, `fsync` of the directory); private keys are created with mode 0600 so they
//! are never readable by others, not even for an instant.
//!
//! [`generate`] is the lower level: it always makes a fresh, unrelated set with a chosen
//! client CN (tests use it for "a certificate from another CA").
//! [`issue_client_certificate`] issues one more client certificate from an existing
//! set's CA, for a second client identity (the embedded server keys object ownership
//! on the client certificate's CN).
//!
//! ```no_run
//! let paths = kmip_server::pki::ensure_pki(std::path::Path::new("./headlock-data/kmip"))?;
//! println!("CA at {}", paths.ca_cert.display());
//! # Ok::<(), kmip_server::error::Error>(())
//! ```

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::error::Error;

/// File name of the CA certificate inside a PKI directory.
pub const CA_CERT: &str = "ca.pem";
/// File name of the CA private key inside a PKI directory.
pub const CA_KEY: &str = "ca-key.pem";
/// File name of the server certificate inside a PKI directory.
pub const SERVER_CERT: &str = "server.pem";
/// File name of the server private key inside a PKI directory.
pub const SERVER_KEY: &str = "server-key.pem";
/// File name of the client certificate inside a PKI directory.
pub const CLIENT_CERT: &str = "client.pem";
/// File name of the client private key inside a PKI directory.
pub const CLIENT_KEY: &str = "client-key.pem";

/// Common Name of the client certificate made by [`ensure_pki`]; the embedded server
/// records it as the owner of the objects that client creates.
pub const DEFAULT_CLIENT_CN: &str = "headlock";

/// Validity of generated certificates: ten years from one hour ago (the hour absorbs
/// clock skew between the processes that check them).
const VALIDITY_DAYS: i64 = 3650;

/// Where the PEM files of one PKI set live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiPaths {
    /// CA certificate (PEM); both sides verify the peer against it.
    pub ca_cert: PathBuf,
    /// Server certificate (PEM), ECDSA P-256, SAN 127.0.0.1 and localhost.
    pub server_cert: PathBuf,
    /// Server private key (PKCS#8 PEM, mode 0600).
    pub server_key: PathBuf,
    /// Client certificate (PEM), clientAuth EKU.
    pub client_cert: PathBuf,
    /// Client private key (PKCS#8 PEM, mode 0600).
    pub client_key: PathBuf,
}

impl PkiPaths {
    /// The paths of a PKI set in `dir` (whether or not the files exist).
    pub fn in_dir(dir: &Path) -> Self {
        PkiPaths {
            ca_cert: dir.join(CA_CERT),
            server_cert: dir.join(SERVER_CERT),
            server_key: dir.join(SERVER_KEY),
            client_cert: dir.join(CLIENT_CERT),
            client_key: dir.join(CLIENT_KEY),
        }
    }

    fn all_exist(&self) -> bool {
        [
            &self.ca_cert,
            &self.server_cert,
            &self.server_key,
            &self.client_cert,
            &self.client_key,
        ]
        .iter()
        .all(|p| p.is_file())
    }
}

/// Returns the PKI set in `dir`, generating it (see the module docs) if any of its files
/// is missing. Existing files are reused untouched, so the certificates stay stable
/// across restarts.
pub fn ensure_pki(dir: &Path) -> Result<PkiPaths, Error> {
    let paths = PkiPaths::in_dir(dir);
    if paths.all_exist() {
        return Ok(paths);
    }
    // A partial set (a crash between two renames, or a deleted file) is regenerated
    // whole: certificates from two different CAs would not verify against each other.
    generate(dir, DEFAULT_CLIENT_CN)
}

/// Generates a fresh, unrelated PKI set into `dir` (created if missing), replacing any
/// files already there: a new CA, a server certificate for `127.0.0.1` / `localhost`
/// and a client certificate whose Common Name is `client_cn`.
pub fn generate(dir: &Path, client_cn: &str) -> Result<PkiPaths, Error> {
    create_dir(dir)?;
    let paths = PkiPaths::in_dir(dir);
    let now = OffsetDateTime::now_utc();
    let not_before = now - Duration::hours(1);
    let not_after = now + Duration::days(VALIDITY_DAYS);

    // CA.
    let ca_key = KeyPair::generate().map_err(cert_gen("CA key"))?;
    let mut ca_params = ca_params();
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(cert_gen("CA certificate"))?;
    let ca_key_pem = Zeroizing::new(ca_key.serialize_pem());
    let issuer = Issuer::new(ca_params, ca_key);

    // Server.
    let server_key = KeyPair::generate().map_err(cert_gen("server key"))?;
    let mut server_params = CertificateParams::default();
    server_params.distinguished_name = rcgen::DistinguishedName::new();
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server_params.subject_alt_names = vec![
        SanType::IpAddress(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
        SanType::DnsName(
            "localhost"
                .try_into()
                .map_err(cert_gen("server SAN localhost"))?,
        ),
    ];
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.use_authority_key_identifier_extension = true;
    server_params.not_before = not_before;
    server_params.not_after = not_after;
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .map_err(cert_gen("server certificate"))?;
    let server_key_pem = Zeroizing::new(server_key.serialize_pem());

    // Client.
    let (client_cert_pem, client_key_pem) =
        issue_client(&issuer, client_cn, not_before, not_after)?;

    // Keys first, CA certificate last: `ensure_pki` sees a complete set only once every
    // file is in place.
    write_atomic(&dir.join(CA_KEY), ca_key_pem.as_bytes(), true)?;
    write_atomic(&paths.server_key, server_key_pem.as_bytes(), true)?;
    write_atomic(&paths.client_key, client_key_pem.as_bytes(), true)?;
    write_atomic(&paths.server_cert, server_cert.pem().as_bytes(), false)?;
    write_atomic(&paths.client_cert, client_cert_pem.as_bytes(), false)?;
    write_atomic(&paths.ca_cert, ca_cert.pem().as_bytes(), false)?;
    sync_dir(dir)?;
    Ok(paths)
}

/// Issues one more client certificate (clientAuth EKU, Common Name `cn`) from the CA of
/// the PKI set in `dir` (made by [`ensure_pki`] or [`generate`], whose CA key is kept
/// there), writing it to `cert_out` and its key to `key_out` (mode 0600). Used to give
/// a second client its own identity, e.g. a test of object ownership.
pub fn issue_client_certificate(
    dir: &Path,
    cn: &str,
    cert_out: &Path,
    key_out: &Path,
) -> Result<(), Error> {
    let key_path = dir.join(CA_KEY);
    let ca_key_pem = Zeroizing::new(fs::read_to_string(&key_path).map_err(pki_io(&key_path))?);
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(cert_gen("CA key"))?;
    // The issuer is rebuilt from the fixed CA name and the CA key: that is all an
    // issued certificate records of its issuer (name and key identifier).
    let issuer = Issuer::new(ca_params(), ca_key);
    let now = OffsetDateTime::now_utc();
    let (cert_pem, key_pem) = issue_client(
        &issuer,
        cn,
        now - Duration::hours(1),
        now + Duration::days(VALIDITY_DAYS),
    )?;
    write_atomic(key_out, key_pem.as_bytes(), true)?;
    write_atomic(cert_out, cert_pem.as_bytes(), false)?;
    Ok(())
}

/// The CA's parameters (validity set by the caller).
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "Headlock KMIP CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Headlock");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// A client certificate and key (PEM) signed by `issuer`.
fn issue_client(
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<(String, Zeroizing<String>), Error> {
    let key = KeyPair::generate().map_err(cert_gen("client key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(cert_gen("client certificate"))?;
    Ok((cert.pem(), Zeroizing::new(key.serialize_pem())))
}

fn cert_gen<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> Error {
    move |e| Error::CertificateGeneration {
        what,
        reason: e.to_string(),
    }
}

fn pki_io(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::PkiIo {
        path: path.to_path_buf(),
        source,
    }
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(pki_io(dir))
}

/// Writes `data` to `path` through a temporary file in the same directory, fsynced and
/// renamed over the target. `private` files are created with mode 0600.
fn write_atomic(path: &Path, data: &[u8], private: bool) -> Result<(), Error> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(if private { 0o600 } else { 0o644 });
        }
        let mut file = options.open(&tmp).map_err(pki_io(&tmp))?;
        file.write_all(data).map_err(pki_io(&tmp))?;
        file.sync_all().map_err(pki_io(&tmp))?;
        drop(file);
        fs::rename(&tmp, path).map_err(pki_io(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(pki_io(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_second_call_and_reuses_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure_pki(dir.path()).unwrap();
        let ca1 = fs::read(&first.ca_cert).unwrap();
        let key1 = fs::read(&first.client_key).unwrap();
        let second = ensure_pki(dir.path()).unwrap();
        assert_eq!(first, second);
        assert_eq!(ca1, fs::read(&second.ca_cert).unwrap());
        assert_eq!(key1, fs::read(&second.client_key).unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn accepts_private_keys_only_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let paths = ensure_pki(dir.path()).unwrap();
        for key in [
            &paths.server_key,
            &paths.client_key,
            &dir.path().join(CA_KEY),
        ] {
            let mode = fs::metadata(key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        // No temporary file is left behind.
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn rejects_partial_set_by_regenerating_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure_pki(dir.path()).unwrap();
        let ca1 = fs::read(&first.ca_cert).unwrap();
        fs::remove_file(&first.client_cert).unwrap();
        let second = ensure_pki(dir.path()).unwrap();
        assert!(second.client_cert.is_file());
        assert_ne!(ca1, fs::read(&second.ca_cert).unwrap());
    }
}
