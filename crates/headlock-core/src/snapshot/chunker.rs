//! The one chunker: FastCDC (the `fastcdc` crate, v2020, normalisation level 1) with a
//! gear table keyed per cluster, used by the service for plain uploads and by the CLI
//! for incremental ones, so both cut the same data at the same places (docs/design.md,
//! "Chunking and chunk ids").
//!
//! The key is a 64-bit seed that the crate XORs into its gear table; it is derived from
//! the cluster's data key under a context of its own, so chunk lengths (visible in packs
//! and on the wire) do not tell whether a pack holds a known file.
//!
//! The crate finds the cut points ([`fastcdc::v2020::cut_gear`]); reading is ours
//! ([`Chunker`]), because the crate's `StreamCDC` allocates a [`MAX_CHUNK`] buffer per
//! stream and shifts the whole buffer down after every chunk: a 4 MiB move per chunk,
//! and per file on a tree of tiny files. A [`Chunker`] keeps one buffer for every file
//! it cuts and moves only the bytes not cut yet; the cut points are the crate's (the
//! same data cut with `StreamCDC` gives the same chunks, a test checks it).
//!
//! ```
//! use headlock_core::envelope::DataKey;
//! use headlock_core::snapshot::chunker::{BoundaryKey, Chunker};
//!
//! let mut chunker = Chunker::new(BoundaryKey::derive(&DataKey::generate().unwrap()));
//! let data = vec![7u8; 3 * 1024 * 1024];
//! let total: usize = chunker.cut(&data[..]).map(|c| c.unwrap().data.len()).sum();
//! assert_eq!(total, data.len());
//! ```

use std::io::{self, Read};

use fastcdc::v2020::{MASKS, Normalization, cut_gear, get_gear_with_seed, logarithm2};

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

/// One chunk: where it starts in its stream, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Offset of its first byte in the stream.
    pub offset: u64,
    /// Its bytes (1 to [`MAX_CHUNK`]).
    pub data: Vec<u8>,
}

/// Cuts streams into chunks with a cluster's keyed gear table: 128 KiB minimum, 512 KiB
/// average, 4 MiB maximum (the last of a stream may be shorter). Keep one for many
/// streams: its buffer ([`MAX_CHUNK`] bytes, allocated at the first read) is reused.
pub struct Chunker {
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    masks: (u64, u64),
    buf: Vec<u8>,
}

impl Chunker {
    /// A chunker for the cluster whose boundary key is `key`.
    pub fn new(key: BoundaryKey) -> Chunker {
        let (gear, gear_ls) = get_gear_with_seed(key.0);
        let bits = logarithm2(AVG_CHUNK);
        let level = Normalization::Level1.bits();
        Chunker {
            gear,
            gear_ls,
            masks: (
                MASKS[(bits + level) as usize],
                MASKS[(bits - level) as usize],
            ),
            buf: Vec::new(),
        }
    }

    /// The chunks of `reader`, in order. An I/O error ends them (after that error).
    pub fn cut<R: Read>(&mut self, reader: R) -> Pieces<'_, R> {
        if self.buf.len() < MAX_CHUNK as usize {
            self.buf = vec![0; MAX_CHUNK as usize];
        }
        Pieces {
            chunker: self,
            reader,
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
            failed: false,
        }
    }
}

/// The chunks of one stream ([`Chunker::cut`]).
pub struct Pieces<'c, R> {
    chunker: &'c mut Chunker,
    reader: R,
    /// The bytes read and not cut yet: `buf[start..end]`.
    start: usize,
    end: usize,
    offset: u64,
    eof: bool,
    failed: bool,
}

impl<R: Read> Pieces<'_, R> {
    /// Reads until [`MAX_CHUNK`] bytes wait to be cut, or the end (as `StreamCDC` does,
    /// so that the cut points are the same).
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.chunker.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while !self.eof && self.end < self.chunker.buf.len() {
            match self.reader.read(&mut self.chunker.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl<R: Read> Iterator for Pieces<'_, R> {
    type Item = io::Result<Piece>;

    fn next(&mut self) -> Option<io::Result<Piece>> {
        if self.failed {
            return None;
        }
        if !self.eof && self.end - self.start < MAX_CHUNK as usize {
            if let Err(e) = self.fill() {
                self.failed = true;
                return Some(Err(e));
            }
        }
        if self.start == self.end {
            return None;
        }
        let c = &*self.chunker;
        let (mask_s, mask_l) = c.masks;
        let (_, count) = cut_gear(
            &c.buf[self.start..self.end],
            MIN_CHUNK as usize,
            AVG_CHUNK as usize,
            MAX_CHUNK as usize,
            mask_s,
            mask_l,
            mask_s << 1,
            mask_l << 1,
            &c.gear,
            &c.gear_ls,
        );
        let data = c.buf[self.start..self.start + count].to_vec();
        let piece = Piece {
            offset: self.offset,
            data,
        };
        self.start += count;
        self.offset += count as u64;
        Some(Ok(piece))
    }
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
        Chunker::new(key)
            .cut(data)
            .map(|c| {
                let c = c.unwrap();
                c.offset + c.data.len() as u64
            })
            .collect()
    }

    /// The cut points of the crate's own stream chunker, as this module used it.
    fn stream_cdc_cuts(data: &[u8], key: BoundaryKey) -> Vec<u64> {
        fastcdc::v2020::StreamCDC::with_level_and_seed(
            data,
            MIN_CHUNK,
            AVG_CHUNK,
            MAX_CHUNK,
            Normalization::Level1,
            key.0,
        )
        .map(|c| {
            let c = c.unwrap();
            c.offset + c.length as u64
        })
        .collect()
    }

    /// A reader that hands over at most `step` bytes a call.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(out.len()).min(self.1);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn cuts_where_the_crates_stream_chunker_cuts_and_keeps_every_byte() {
        let key = BoundaryKey::from_bytes(*b"1cluster");
        let mut chunker = Chunker::new(key);
        for (len, seed) in [
            (0, 1),
            (1, 2),
            (61, 3),
            (300_000, 4),
            (21 * 1024 * 1024 + 5, 5),
        ] {
            let input = data(len, seed);
            assert_eq!(cuts(&input, key), stream_cdc_cuts(&input, key), "{len}");
            // The same chunker again (its buffer reused), fed a few bytes at a time.
            let pieces: Vec<Piece> = chunker
                .cut(Trickle(&input, 7919))
                .map(Result::unwrap)
                .collect();
            let joined: Vec<u8> = pieces.iter().flat_map(|p| p.data.clone()).collect();
            assert!(joined == input, "{len}");
            let mut at = 0;
            for p in &pieces {
                assert_eq!(p.offset, at);
                at += p.data.len() as u64;
            }
        }
    }

    #[test]
    fn an_io_error_ends_the_chunks_after_it() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk gone"))
            }
        }
        let mut chunker = Chunker::new(BoundaryKey::from_bytes(*b"1cluster"));
        let mut pieces = chunker.cut(Broken);
        assert_eq!(pieces.next().unwrap().unwrap_err().to_string(), "disk gone");
        assert!(pieces.next().is_none());
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
