//! Who owns a connection's objects: the Common Name of the client certificate rustls
//! verified ([`peer_common_name`]), or the certificate's SHA-256 when it has none.

use rustls::pki_types::CertificateDer;

/// The Common Name (OID 2.5.4.3) of the subject of a DER certificate, if it has one.
/// Used on certificates rustls has already verified; a certificate that does not parse
/// gives `None`.
///
/// Parsed with `yasna` (the DER reader rcgen already builds on); only the path to the
/// subject is walked: `Certificate -> TBSCertificate -> [version], serial, signature,
/// issuer, validity, subject`.
pub fn peer_common_name(cert: &CertificateDer<'_>) -> Option<String> {
    const CN: &[u64] = &[2, 5, 4, 3];
    yasna::parse_der(cert.as_ref(), |r| {
        r.read_sequence(|r| {
            let tbs = r.next().read_der()?;
            let _sig_alg = r.next().read_der()?;
            let _sig = r.next().read_der()?;
            Ok(tbs)
        })
    })
    .ok()
    .and_then(|tbs| {
        // The TBS elements as raw DER, picked by position (bounded: a TBSCertificate
        // has at most 10 elements).
        let elements: Vec<Vec<u8>> = yasna::parse_der(&tbs, |r| {
            r.read_sequence(|r| {
                let mut out = Vec::new();
                while let Some(e) = r.read_optional(|r| r.read_der())? {
                    out.push(e);
                    if out.len() > 16 {
                        break;
                    }
                }
                Ok(out)
            })
        })
        .ok()?;
        // [0] EXPLICIT version has tag byte 0xa0.
        let offset = usize::from(elements.first()?.first() == Some(&0xa0));
        let subject = elements.get(offset + 4)?;
        yasna::parse_der(subject, |r| {
            let mut cn = None;
            r.read_sequence_of(|r| {
                r.read_set_of(|r| {
                    r.read_sequence(|r| {
                        let oid = r.next().read_oid()?;
                        let value = r.next().read_tagged_der()?;
                        if oid.components().as_slice() == CN && cn.is_none() {
                            cn = String::from_utf8(value.value().to_vec()).ok();
                        }
                        Ok(())
                    })
                })
            })?;
            Ok(cn)
        })
        .ok()
        .flatten()
    })
}

/// The owner name of a verified client certificate: its Common Name, or
/// `sha256:<hex>` of the certificate when it has none.
pub fn owner_of(cert: &CertificateDer<'_>) -> String {
    peer_common_name(cert)
        .unwrap_or_else(|| format!("sha256:{}", hex::encode(sha256(cert.as_ref()))))
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmip::tls::{client_config, load_certs, server_config};

    #[test]
    fn accepts_generated_certificates_and_reads_client_cn() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::generate(dir.path(), "owner-cn").unwrap();
        server_config(&pki.ca_cert, &pki.server_cert, &pki.server_key).unwrap();
        client_config(&pki.ca_cert, &pki.client_cert, &pki.client_key).unwrap();
        let cert = load_certs(&pki.client_cert).unwrap().remove(0);
        assert_eq!(peer_common_name(&cert).as_deref(), Some("owner-cn"));
        let cert = load_certs(&pki.server_cert).unwrap().remove(0);
        assert_eq!(peer_common_name(&cert).as_deref(), Some("localhost"));
    }

    #[test]
    fn rejects_unparsable_certificates() {
        assert_eq!(
            peer_common_name(&CertificateDer::from(vec![0x30, 0x00])),
            None
        );
    }
}
