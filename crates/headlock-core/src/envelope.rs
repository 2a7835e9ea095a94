//! Envelope cryptography: data keys, and their wrapping under a cluster's master key.
//!
//! A data key is 32 random bytes that will encrypt backup chunks. It is stored only
//! wrapped: sealed with AES-256-GCM under the key material of the cluster's current KMIP
//! master key. The wrapped form is versioned so that the format can change:
//!
//! ```text
//! byte 0       format version (1)
//! bytes 1..13  GCM nonce (96 bits, random per wrap)
//! bytes 13..45 ciphertext of the 32-byte data key
//! bytes 45..61 GCM tag
//! ```
//!
//! The associated data binds the wrap to its context, so a wrapped key moved to another
//! cluster or presented as wrapped by another master key fails to open:
//! `"headlock-dk-v1" || len(cluster_id) || cluster_id || len(uid) || master_key_uid`
//! (lengths as 4-byte big-endian). Nonces are random: a master key wraps at most a few
//! data keys per rotation, far below the 2^32 random-nonce bound for GCM.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// Length of a wrapped data key in bytes.
pub const WRAPPED_LEN: usize = 1 + NONCE_LEN + 32 + 16;
const FORMAT_V1: u8 = 1;
const AAD_LABEL: &[u8] = b"headlock-dk-v1";

/// Errors of the envelope layer. They never carry key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The operating system's random generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// Key material of the wrong size (a master key must be 256 bits).
    #[error("key material is {0} bytes; AES-256 needs 32")]
    BadKeyLength(usize),
    /// The wrapped key is not in a format this version reads.
    #[error("wrapped data key has an unknown format (version byte {version}, {len} bytes)")]
    UnknownFormat {
        /// First byte as found.
        version: u8,
        /// Total length as found.
        len: usize,
    },
    /// Authentication failed: wrong master key, wrong context, or tampered bytes.
    #[error("wrapped data key failed authentication (wrong master key, wrong cluster, or damaged)")]
    Authentication,
}

/// The 256-bit key material of a master key, fetched from the KMIP server for the moment
/// it is needed. Zeroized on drop; never printed.
pub struct MasterKeyMaterial(Zeroizing<[u8; 32]>);

impl MasterKeyMaterial {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKeyMaterial(Zeroizing::new(bytes))
    }

    /// From a slice, checking its length.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| EnvelopeError::BadKeyLength(bytes.len()))?;
        Ok(Self::from_bytes(arr))
    }

    fn aead(&self) -> LessSafeKey {
        // Cannot fail: the length is fixed at 32.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0[..]).expect("32-byte AES key"))
    }
}

impl std::fmt::Debug for MasterKeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKeyMaterial(..)")
    }
}

/// What a wrapped data key is bound to.
#[derive(Debug, Clone, Copy)]
pub struct WrapContext<'a> {
    /// The cluster the data key belongs to (24 hex digits).
    pub cluster_id: &'a str,
    /// The KMIP Unique Identifier of the master key that wraps it.
    pub master_key_uid: &'a str,
}

impl WrapContext<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(
            AAD_LABEL.len() + 8 + self.cluster_id.len() + self.master_key_uid.len(),
        );
        aad.extend_from_slice(AAD_LABEL);
        for part in [self.cluster_id, self.master_key_uid] {
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

/// A 256-bit data key in the clear. Zeroized on drop; never printed.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// 32 bytes from the operating system's generator.
    pub fn generate() -> Result<Self, EnvelopeError> {
        let mut key = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(&mut key[..])
            .map_err(|_| EnvelopeError::Random)?;
        Ok(DataKey(key))
    }

    /// Wraps raw key bytes. The service's data keys come from [`DataKey::generate`] or
    /// an unwrap; this is for a fixed key where one must be reproducible (the fuzz
    /// targets under `fuzz/` open sealed objects with one).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        DataKey(Zeroizing::new(bytes))
    }

    /// The key bytes, for the chunk cipher.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Seals this key under `master`, bound to `ctx`, with a random nonce.
    pub fn wrap(
        &self,
        master: &MasterKeyMaterial,
        ctx: &WrapContext<'_>,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| EnvelopeError::Random)?;
        Ok(self.wrap_with_nonce(master, ctx, nonce))
    }

    fn wrap_with_nonce(
        &self,
        master: &MasterKeyMaterial,
        ctx: &WrapContext<'_>,
        nonce: [u8; NONCE_LEN],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        let mut body = self.0.to_vec();
        master
            .aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(ctx.aad()),
                &mut body,
            )
            .expect("sealing 32 bytes cannot overflow");
        out.extend_from_slice(&body);
        out
    }

    /// Opens a wrapped key. Fails if the master key, the context or any byte is wrong.
    pub fn unwrap(
        wrapped: &[u8],
        master: &MasterKeyMaterial,
        ctx: &WrapContext<'_>,
    ) -> Result<Self, EnvelopeError> {
        if wrapped.len() != WRAPPED_LEN || wrapped[0] != FORMAT_V1 {
            return Err(EnvelopeError::UnknownFormat {
                version: wrapped.first().copied().unwrap_or(0),
                len: wrapped.len(),
            });
        }
        let nonce: [u8; NONCE_LEN] = wrapped[1..1 + NONCE_LEN]
            .try_into()
            .expect("length checked");
        let mut body = Zeroizing::new(wrapped[1 + NONCE_LEN..].to_vec());
        let plain = master
            .aead()
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(ctx.aad()),
                &mut body,
            )
            .map_err(|_| EnvelopeError::Authentication)?;
        let key: [u8; 32] = (&*plain)
            .try_into()
            .map_err(|_| EnvelopeError::Authentication)?;
        Ok(DataKey(Zeroizing::new(key)))
    }

    /// Re-seals a wrapped key from one master key to another: what a master key rotation
    /// does to every data key of a cluster. The clear key exists only inside this call.
    pub fn rewrap(
        wrapped: &[u8],
        from: (&MasterKeyMaterial, &WrapContext<'_>),
        to: (&MasterKeyMaterial, &WrapContext<'_>),
    ) -> Result<Vec<u8>, EnvelopeError> {
        let key = Self::unwrap(wrapped, from.0, from.1)?;
        key.wrap(to.0, to.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: WrapContext<'static> = WrapContext {
        cluster_id: "5196e5b0e4b0fca9cc88334a",
        master_key_uid: "42",
    };

    /// The cipher under our key handling against a published vector, then the v1 layout.
    #[test]
    fn accepts_known_answer_for_format_v1() {
        // McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", Test Case 14:
        // K = 0^256, IV = 0^96, P = 0^128, no AAD -> C || T below.
        let master = MasterKeyMaterial::from_bytes([0u8; 32]);
        let mut block = vec![0u8; 16];
        master
            .aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key([0u8; 12]),
                Aad::empty(),
                &mut block,
            )
            .unwrap();
        assert_eq!(
            hex::encode(&block),
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
        );
        // And the layout of a v1 wrap.
        let dk = DataKey(Zeroizing::new([1u8; 32]));
        let w = dk.wrap_with_nonce(&master, &CTX, [9u8; 12]);
        assert_eq!(w.len(), WRAPPED_LEN);
        assert_eq!(w[0], 1);
        assert_eq!(&w[1..13], &[9u8; 12]);
        assert_eq!(
            DataKey::unwrap(&w, &master, &CTX).unwrap().expose(),
            &[1u8; 32]
        );
    }

    #[test]
    fn rejects_wrong_master_key() {
        let dk = DataKey::generate().unwrap();
        let w = dk
            .wrap(&MasterKeyMaterial::from_bytes([1; 32]), &CTX)
            .unwrap();
        let err = DataKey::unwrap(&w, &MasterKeyMaterial::from_bytes([2; 32]), &CTX).unwrap_err();
        assert_eq!(err, EnvelopeError::Authentication);
    }

    #[test]
    fn rejects_other_cluster_or_other_key_uid() {
        let m = MasterKeyMaterial::from_bytes([1; 32]);
        let w = DataKey::generate().unwrap().wrap(&m, &CTX).unwrap();
        let other_cluster = WrapContext {
            cluster_id: "5196e5b0e4b0fca9cc88334b",
            ..CTX
        };
        let other_uid = WrapContext {
            master_key_uid: "43",
            ..CTX
        };
        assert!(DataKey::unwrap(&w, &m, &other_cluster).is_err());
        assert!(DataKey::unwrap(&w, &m, &other_uid).is_err());
    }

    #[test]
    fn rejects_every_single_flipped_bit() {
        let m = MasterKeyMaterial::from_bytes([3; 32]);
        let w = DataKey::generate().unwrap().wrap(&m, &CTX).unwrap();
        for i in 0..w.len() * 8 {
            let mut bad = w.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(DataKey::unwrap(&bad, &m, &CTX).is_err(), "bit {i}");
        }
    }

    #[test]
    fn rejects_truncated_and_unknown_version() {
        let m = MasterKeyMaterial::from_bytes([3; 32]);
        let w = DataKey::generate().unwrap().wrap(&m, &CTX).unwrap();
        assert!(matches!(
            DataKey::unwrap(&w[..w.len() - 1], &m, &CTX),
            Err(EnvelopeError::UnknownFormat { .. })
        ));
        let mut v2 = w.clone();
        v2[0] = 2;
        assert!(matches!(
            DataKey::unwrap(&v2, &m, &CTX),
            Err(EnvelopeError::UnknownFormat { version: 2, .. })
        ));
    }

    #[test]
    fn rewrap_moves_key_to_new_master() {
        let old = MasterKeyMaterial::from_bytes([1; 32]);
        let new = MasterKeyMaterial::from_bytes([2; 32]);
        let dk = DataKey::generate().unwrap();
        let w = dk.wrap(&old, &CTX).unwrap();
        let new_ctx = WrapContext {
            master_key_uid: "43",
            ..CTX
        };
        let w2 = DataKey::rewrap(&w, (&old, &CTX), (&new, &new_ctx)).unwrap();
        assert_eq!(
            DataKey::unwrap(&w2, &new, &new_ctx).unwrap().expose(),
            dk.expose()
        );
        assert!(DataKey::unwrap(&w2, &old, &CTX).is_err());
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let dk = DataKey(Zeroizing::new([0xab; 32]));
        assert_eq!(format!("{dk:?}"), "DataKey(..)");
        let m = MasterKeyMaterial::from_bytes([0xab; 32]);
        assert!(!format!("{m:?}").contains("ab"));
    }
}
