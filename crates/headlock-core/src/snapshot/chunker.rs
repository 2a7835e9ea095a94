//! The one chunker: FastCDC (the `fastcdc` crate, v2020, normalisation level 1) with a
//! gear table keyed per cluster, used by the service for plain uploads and by the CLI
//! for incremental ones, so both cut the same data at the same places (docs/design.md,
//! "Chunking and chunk ids").
//!
//! The key is a 64-bit seed that the crate XORs into its gear table; it is derived from
//! the cluster's data key under a context of its own, so chunk lengths (visible in packs
//! and on the wire) do not tell whether a pack holds a known file.
//!
//! ```
//! use headlock_core::envelope::DataKey;
//! use headlock_core::snapshot::chunker::{BoundaryKey, chunks};
//!
//! let key = BoundaryKey::derive(&DataKey::generate().unwrap());
//! let data = vec![7u8; 3 * 1024 * 1024];
//! let total: usize = chunks(&data[..], key).map(|c| c.unwrap().data.len()).sum();
//! assert_eq!(total, data.len());
//! ```

use std::io::Read;

/// What reading a chunk can fail with (the reader's I/O error, mostly).
pub use fastcdc::v2020::Error as ChunkerError;
use fastcdc::v2020::{Normalization, StreamCDC};

use super::{AVG_CHUNK, CHUNK_BOUNDARY_CONTEXT, MAX_CHUNK, MIN_CHUNK};
use crate::envelope::DataKey;

/// The seed of a cluster's gear table. Not secret in the sense of the data key (it
/// decrypts nothing), but handed only to users with backup rights: with it, chunk
/// lengths of a candidate file can be predicted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BoundaryKey(u64);

impl BoundaryKey {
    /// The first 8 bytes (little-endian) of
    /// `BLAKE3::derive_key("headlock 2026-12 chunk boundaries v1", data_key)`; 1 if they
    /// are all zero (the crate takes 0 for "no seed").
    pub fn derive(data_key: &DataKey) -> Self {
        let mut derived = zeroize::Zeroizing::new(blake3::derive_key(
            CHUNK_BOUNDARY_CONTEXT,
            data_key.expose(),
        ));
        let mut first = [0u8; 8];
        first.copy_from_slice(&derived[..8]);
        zeroize::Zeroize::zeroize(&mut *derived);
        BoundaryKey::from_bytes(first)
    }

    /// The key from its 8 bytes (little-endian), as an upload session hands them out.
    pub fn from_bytes(bytes: [u8; 8]) -> Self {
        BoundaryKey(u64::from_le_bytes(bytes).max(1))
    }

    /// Its 8 bytes, little-endian.
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_le_bytes()
    }
}

impl std::fmt::Debug for BoundaryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoundaryKey(..)")
    }
}

/// The chunks of `reader`, cut with the cluster's keyed gear table: 256 KiB minimum,
/// 1 MiB average, 4 MiB maximum (the last may be shorter).
pub fn chunks<R: Read>(reader: R, key: BoundaryKey) -> StreamCDC<R> {
    StreamCDC::with_level_and_seed(
        reader,
        MIN_CHUNK,
        AVG_CHUNK,
        MAX_CHUNK,
        Normalization::Level1,
        key.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pseudo-random bytes from a seed (xorshift), so the data is the same every run.
    fn data(len: usize, mut state: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.extend_from_slice(&state.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    fn cuts(data: &[u8], key: BoundaryKey) -> Vec<u64> {
        chunks(data, key)
            .map(|c| {
                let c = c.unwrap();
                c.offset + c.length as u64
            })
            .collect()
    }

    #[test]
    fn two_clusters_cut_the_same_data_at_different_places() {
        let data = data(24 * 1024 * 1024, 0x9e37_79b9_7f4a_7c15);
        // Fixed keys (two clusters' seeds), so the test is the same every run.
        let a = BoundaryKey::from_bytes(*b"1cluster");
        let b = BoundaryKey::from_bytes(*b"2cluster");
        let (ca, cb) = (cuts(&data, a), cuts(&data, b));
        assert!(ca.len() > 5 && cb.len() > 5, "{ca:?} {cb:?}");
        // Only the end of the data is a cut both must share.
        let shared = ca.iter().filter(|c| cb.contains(c)).count();
        assert!(
            shared <= 1,
            "shared cut points: {shared} of {ca:?} / {cb:?}"
        );
        // And the unkeyed table cuts elsewhere again.
        let plain: Vec<u64> =
            fastcdc::v2020::StreamCDC::new(&data[..], MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
                .map(|c| {
                    let c = c.unwrap();
                    c.offset + c.length as u64
                })
                .collect();
        assert!(ca.iter().filter(|c| plain.contains(c)).count() <= 1);
    }

    /// The limit the design states: the crate's masks test hash bits 12 to 47, so a
    /// seed bit above 47 changes no cut point; 48 bits of the seed key the cuts.
    #[test]
    fn only_the_low_48_bits_of_the_seed_move_cut_points() {
        let data = data(8 * 1024 * 1024, 77);
        let base = BoundaryKey::from_bytes(*b"1cluster");
        let mut high = base.to_bytes();
        high[7] ^= 0xff;
        high[6] ^= 0xff;
        assert_eq!(
            cuts(&data, base),
            cuts(&data, BoundaryKey::from_bytes(high))
        );
        let mut low = base.to_bytes();
        low[5] ^= 0x80; // bit 47
        assert_ne!(cuts(&data, base), cuts(&data, BoundaryKey::from_bytes(low)));
    }

    #[test]
    fn one_cluster_cuts_the_same_data_at_the_same_places() {
        let data = data(8 * 1024 * 1024, 42);
        let dk = DataKey::generate().unwrap();
        let key = BoundaryKey::derive(&dk);
        assert_eq!(cuts(&data, key), cuts(&data, BoundaryKey::derive(&dk)));
        assert_eq!(
            cuts(&data, key),
            cuts(&data, BoundaryKey::from_bytes(key.to_bytes()))
        );
    }

    #[test]
    fn boundary_key_is_not_the_chunk_id_key() {
        let dk = DataKey::generate().unwrap();
        let ids = super::super::ChunkIdKey::derive(&dk);
        assert_ne!(&ids.expose()[..8], &BoundaryKey::derive(&dk).to_bytes()[..]);
        assert_ne!(ids.expose(), dk.expose());
    }
}
