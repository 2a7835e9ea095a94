//! The [`KeyManager`] of `headlock-core` on KMIP servers: [`KmipKeyManager`], through
//! the `kmip` crate's mutual-TLS client. The service knows only core's trait; the
//! binary builds this adapter and hands it over, so the service links no KMIP code.
//!
//! Master keys are created as mongod creates them (Create with AES, 256 bits, usage
//! Encrypt|Decrypt, then Activate), with a KMIP Name so that they can be found again;
//! Create, Activate and the Get of the new key go in one request message (a batch), with
//! a rotation's Get of the key it replaces as the batch's last item.
//! Key material is fetched with Get (Raw) and checked to be an AES-256 key before use.
//! KMIP errors become [`KeyManagerError`]s that say which server, which operation and
//! what the server said; transport failures are `Unavailable` (nothing happened), and a
//! Create whose answer was lost is `Indeterminate`.
//!
//! [`KeyManager::probe_servers`] checks each configured server on its own (no failover),
//! all at once, each within [`PROBE_TIMEOUT`]: a fresh mutual-TLS connection and a
//! Discover Versions round trip.

#![deny(missing_docs)]

use std::time::Duration;

use async_trait::async_trait;
use headlock_core::envelope::MasterKeyMaterial;
use headlock_core::keys::{CreatedKey, KeyState, KmipUid, RevokeReason};
use headlock_core::{KeyManager, KeyManagerError, ServerProbe};
use kmip::client::{Client, SymmetricKeyMaterial};
use kmip::error::Error as KmipError;
use kmip::types::{
    CryptographicAlgorithm, CryptographicUsageMask, ObjectType, RevocationReasonCode, State,
};

/// Time allowed to one server's probe (connection, TLS handshake, Discover Versions).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest failure text kept in a [`ServerProbe`] (it is shown on `/health`).
const MAX_PROBE_ERROR: usize = 300;

/// Gives the KMIP client's metrics (`kmip_requests_total`,
/// `kmip_request_duration_seconds`) their help text and unit. Call once after
/// installing a `metrics` recorder, beside the service's own `describe`.
pub fn describe_metrics() {
    kmip::client::describe_metrics();
}

/// A key manager backed by one or more KMIP servers (tried in order by the client).
pub struct KmipKeyManager {
    client: Client,
    description: String,
}

impl KmipKeyManager {
    /// Wraps a configured client; `description` names the servers in logs and errors.
    pub fn new(client: Client, description: String) -> Self {
        KmipKeyManager {
            client,
            description,
        }
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn first_server(&self) -> String {
        self.client
            .config()
            .servers
            .first()
            .cloned()
            .unwrap_or_default()
    }
}

/// Maps a KMIP client error, keeping who and what.
fn map_err(e: KmipError, fallback_server: &str, operation: &str) -> KeyManagerError {
    match e {
        KmipError::Connect { ref server, .. }
        | KmipError::Tls { ref server, .. }
        | KmipError::Timeout { ref server, .. } => KeyManagerError::Unavailable {
            server: server.clone(),
            reason: e.to_string(),
        },
        KmipError::AllServersFailed { ref attempts, .. } => KeyManagerError::Unavailable {
            server: attempts
                .iter()
                .map(|(s, _)| s.as_str())
                .collect::<Vec<_>>()
                .join(","),
            reason: e.to_string(),
        },
        KmipError::Io { .. } | KmipError::Pem { .. } | KmipError::TlsConfig { .. } => {
            KeyManagerError::Unavailable {
                server: fallback_server.to_string(),
                reason: e.to_string(),
            }
        }
        KmipError::ServerReported {
            server,
            operation,
            reason,
            message,
        } => KeyManagerError::Refused {
            server,
            operation: operation.to_string(),
            reason: match message {
                Some(m) => format!("{reason}: {m}"),
                None => reason.to_string(),
            },
        },
        KmipError::Indeterminate {
            server,
            operation,
            source,
        } => KeyManagerError::Indeterminate {
            server,
            operation: operation.to_string(),
            reason: source.to_string(),
        },
        other => KeyManagerError::Refused {
            server: fallback_server.to_string(),
            operation: operation.to_string(),
            reason: other.to_string(),
        },
    }
}

/// The material of key `uid` as fetched, checked to be an AES-256 key.
fn aes_256_material(
    uid: &KmipUid,
    key: &SymmetricKeyMaterial,
) -> Result<MasterKeyMaterial, KeyManagerError> {
    if key
        .algorithm
        .is_some_and(|a| a != CryptographicAlgorithm::AES)
    {
        return Err(KeyManagerError::InvalidKey {
            uid: uid.clone(),
            reason: format!("algorithm is {:?}, not AES", key.algorithm),
        });
    }
    MasterKeyMaterial::from_slice(&key.key).map_err(|e| KeyManagerError::InvalidKey {
        uid: uid.clone(),
        reason: e.to_string(),
    })
}

#[async_trait]
impl KeyManager for KmipKeyManager {
    fn describe(&self) -> String {
        self.description.clone()
    }

    async fn create_master_key(
        &self,
        name: &str,
        previous: Option<&KmipUid>,
    ) -> Result<CreatedKey, KeyManagerError> {
        let first = self.first_server();
        // Create, Activate and Get in one request message, with the Get of the previous
        // key last (see the client's method).
        let usage_mask = CryptographicUsageMask(
            CryptographicUsageMask::ENCRYPT.0 | CryptographicUsageMask::DECRYPT.0,
        );
        let created = self
            .client
            .create_active_symmetric_key_and_get(
                CryptographicAlgorithm::AES,
                256,
                usage_mask,
                Some(name),
                previous.map(KmipUid::as_str),
            )
            .await
            .map_err(|e| map_err(e, &first, "Create"))?;
        // The server that created the key, which after a failover is not the first one.
        let server = created.server;
        let uid = KmipUid::new(created.uid);
        let material = created
            .material
            .map_err(|e| {
                // The key exists but is not usable (or not known to be): never say "nothing
                // happened", so the caller disposes of it by name.
                let operation = match &e {
                    KmipError::ServerReported { operation, .. } => operation.to_string(),
                    // Not answered: Activate or the Get after it.
                    _ => "Activate/Get".into(),
                };
                match map_err(e, &server, &operation) {
                    KeyManagerError::Unavailable { server, reason } => {
                        KeyManagerError::Indeterminate {
                            server,
                            operation,
                            reason,
                        }
                    }
                    other => other,
                }
            })
            .and_then(|key| aes_256_material(&uid, &key))?;
        // An unusable previous key is fetched again by the caller, whose Get says why.
        let previous = previous
            .zip(created.other)
            .and_then(|(uid, key)| aes_256_material(uid, &key).ok());
        Ok(CreatedKey {
            uid,
            server,
            material,
            previous,
        })
    }

    async fn master_key_material(
        &self,
        uid: &KmipUid,
    ) -> Result<MasterKeyMaterial, KeyManagerError> {
        let server = self.first_server();
        let key = self
            .client
            .get_symmetric_key(uid.as_str())
            .await
            .map_err(|e| map_err(e, &server, "Get"))?;
        aes_256_material(uid, &key)
    }

    async fn locate_by_name(&self, name: &str) -> Result<Vec<KmipUid>, KeyManagerError> {
        let server = self.first_server();
        self.client
            .locate(Some(name), Some(ObjectType::SYMMETRIC_KEY), None)
            .await
            .map(|uids| uids.into_iter().map(KmipUid::new).collect())
            .map_err(|e| map_err(e, &server, "Locate"))
    }

    async fn revoke(&self, uid: &KmipUid, reason: RevokeReason) -> Result<(), KeyManagerError> {
        let server = self.first_server();
        let (code, message) = match reason {
            RevokeReason::Superseded => (
                RevocationReasonCode::SUPERSEDED,
                "superseded by a master key rotation",
            ),
            RevokeReason::Compromised => {
                (RevocationReasonCode::KEY_COMPROMISE, "reported compromised")
            }
            RevokeReason::Abandoned => (
                RevocationReasonCode::CESSATION_OF_OPERATION,
                "created by a key change that did not complete",
            ),
        };
        self.client
            .revoke(uid.as_str(), code, Some(message))
            .await
            .map_err(|e| map_err(e, &server, "Revoke"))
    }

    async fn key_state(&self, uid: &KmipUid) -> Result<KeyState, KeyManagerError> {
        let server = self.first_server();
        let state = self
            .client
            .get_state(uid.as_str())
            .await
            .map_err(|e| map_err(e, &server, "Get Attributes"))?;
        Ok(match state {
            State::PRE_ACTIVE => KeyState::PreActive,
            State::ACTIVE => KeyState::Active,
            State::DEACTIVATED => KeyState::Deactivated,
            State::COMPROMISED => KeyState::Compromised,
            State::DESTROYED => KeyState::Destroyed,
            State::DESTROYED_COMPROMISED => KeyState::DestroyedCompromised,
            other => {
                return Err(KeyManagerError::InvalidKey {
                    uid: uid.clone(),
                    reason: format!("unknown KMIP state {other:?}"),
                });
            }
        })
    }

    async fn destroy(&self, uid: &KmipUid) -> Result<(), KeyManagerError> {
        let server = self.first_server();
        self.client
            .destroy(uid.as_str())
            .await
            .map_err(|e| map_err(e, &server, "Destroy"))
    }

    async fn probe_servers(&self) -> Vec<ServerProbe> {
        let mut probes = tokio::task::JoinSet::new();
        for (index, server) in self.client.servers().enumerate() {
            let client = self.client.clone();
            let server = server.to_string();
            probes.spawn(async move {
                let result = client.probe(index, PROBE_TIMEOUT).await;
                (index, server, result)
            });
        }
        let mut results = Vec::with_capacity(probes.len());
        while let Some(joined) = probes.join_next().await {
            match joined {
                Ok(r) => results.push(r),
                // A probe task cannot panic short of a bug; its server is then missing
                // from the answer rather than the whole probe failing.
                Err(e) => tracing::error!(error = %e, "KMIP probe task failed"),
            }
        }
        results.sort_by_key(|(index, _, _)| *index);
        results
            .into_iter()
            .map(|(_, server, result)| match result {
                Ok(latency) => ServerProbe {
                    server,
                    reachable: true,
                    latency: Some(latency),
                    error: None,
                },
                Err(e) => ServerProbe {
                    server,
                    reachable: false,
                    latency: None,
                    error: Some(truncate(e.to_string(), MAX_PROBE_ERROR)),
                },
            })
            .collect()
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}
