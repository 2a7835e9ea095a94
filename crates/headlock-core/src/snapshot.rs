//! The snapshot format: chunk ids, sealed chunk records, packs and manifests.
//!
//! This module is the code of `docs/design.md`, section "Snapshots: chunks, packs and
//! manifests", byte for byte; a change to any layout here bumps its version there.
//!
//! ```text
//! chunk id   BLAKE3 keyed hash of the plaintext, key =
//!            BLAKE3::derive_key("headlock 2026-11 chunk id v1", data key)
//!
//! record     u32 BE  length of what follows (1 + 12 + ciphertext + 16)
//!            u8      flags: bit 0 = zstd-compressed (level 1); other bits 0
//!            12 B    AES-GCM nonce, random
//!            n B     AES-256-GCM ciphertext of the (compressed) chunk, data key
//!            16 B    GCM tag
//!            AAD     "headlock-chunk-v1" || cluster id (12) || chunk id (32)
//!                    || id of the storing snapshot (12) || flags (1)
//!
//! pack       "HLPACK01" || records, back to back
//!
//! manifest   "HLMANI01" || nonce (12) || AES-256-GCM(zstd(JSON)) || tag (16)
//!            AAD     "headlock-manifest-v1" || cluster id (12) || snapshot id (12)
//! ```
//!
//! Everything here is pure computation over byte slices: no I/O, no clock. Every input
//! is bounded before anything is allocated for it: a chunk never decompresses past
//! [`MAX_CHUNK`], a manifest never past [`MAX_MANIFEST_JSON`], so a forged record (even
//! one sealed with the right key) cannot make a reader allocate without limit.
//!
//! The length prefix of a record and the magic of a pack or manifest are outside the
//! AEAD (the design puts them there); damage to them shows as [`FormatError::Truncated`],
//! [`FormatError::Invalid`], [`FormatError::TooLarge`] or [`FormatError::BadMagic`],
//! damage anywhere else as [`FormatError::Authentication`].
//!
//! The rules for the paths a tree snapshot holds (length, `..`, roots, NUL) are in
//! [`path`], which the service and the CLI apply too.
//!
//! ```
//! use headlock_core::envelope::DataKey;
//! use headlock_core::snapshot::{ChunkCipher, ChunkIdKey};
//! use headlock_core::ObjectId;
//!
//! let data_key = DataKey::generate().unwrap();
//! let (ids, cipher) = (ChunkIdKey::derive(&data_key), ChunkCipher::new(&data_key));
//! let (cluster, snapshot) = (ObjectId::new(), ObjectId::new());
//! let chunk = b"{\"a\": 1, \"a\": 1, \"a\": 1, \"a\": 1}".repeat(100);
//! let id = ids.id(&chunk);
//! let record = cipher.seal_chunk(cluster, snapshot, id, &chunk).unwrap();
//! assert!(record.len() < chunk.len()); // compressed
//! assert_eq!(cipher.open_chunk(&ids, cluster, snapshot, id, &record).unwrap(), chunk);
//! ```

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::io::{Cursor, Read};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;
use zstd::zstd_safe::zstd_sys::ZSTD_ErrorCode;

use crate::ObjectId;
use crate::envelope::DataKey;
use crate::model::ChunkId;
use path::{check_manifest_path, is_valid_link_target};

pub mod chunker;
pub mod frames;
pub mod path;
pub mod tar_stream;

/// Magic bytes at the start of every pack.
pub const PACK_MAGIC: &[u8; 8] = b"HLPACK01";
/// Magic bytes at the start of every sealed manifest.
pub const MANIFEST_MAGIC: &[u8; 8] = b"HLMANI01";
/// FastCDC minimum chunk size (128 KiB). A file's last chunk may be smaller.
pub const MIN_CHUNK: u32 = 128 * 1024;
/// FastCDC average chunk size (512 KiB).
pub const AVG_CHUNK: u32 = 512 * 1024;
/// FastCDC maximum chunk size (4 MiB); nothing decompresses past it.
pub const MAX_CHUNK: u32 = 4 * 1024 * 1024;
/// The manifest JSON version this code writes and reads.
pub const MANIFEST_VERSION: u32 = 1;
/// Largest manifest JSON a reader decompresses (512 MiB), and largest sealed manifest.
pub const MAX_MANIFEST_JSON: u64 = 512 * 1024 * 1024;
/// Bytes a record adds to its (compressed) chunk: length prefix, flags, nonce, tag.
pub const RECORD_OVERHEAD: usize = 4 + 1 + NONCE_LEN + TAG_LEN;
/// Largest possible record, length prefix included (an incompressible [`MAX_CHUNK`]).
pub const MAX_RECORD_LEN: usize = RECORD_OVERHEAD + MAX_CHUNK as usize;

/// Record flag bit 0: the ciphertext is of a zstd frame.
const FLAG_ZSTD: u8 = 0x01;
const TAG_LEN: usize = 16;
/// Length prefix, flags and nonce: where the ciphertext of a record starts.
const RECORD_HEADER_LEN: usize = 4 + 1 + NONCE_LEN;
/// Smallest value of a record's length prefix: flags, nonce, one byte, tag.
const MIN_RECORD_BODY: usize = 1 + NONCE_LEN + 1 + TAG_LEN;
/// Magic and nonce: where the ciphertext of a manifest starts.
const MANIFEST_HEADER_LEN: usize = 8 + NONCE_LEN;
const CHUNK_ID_CONTEXT: &str = "headlock 2026-11 chunk id v1";
/// The `derive_key` context of the chunker's boundary seed ([`chunker`]); distinct from
/// the chunk id's, and the data key itself is the only encryption key.
const CHUNK_BOUNDARY_CONTEXT: &str = "headlock 2026-12 chunk boundaries v1";
const CHUNK_AAD_LABEL: &[u8; 17] = b"headlock-chunk-v1";
const MANIFEST_AAD_LABEL: &[u8; 20] = b"headlock-manifest-v1";
/// zstd level for chunks (the design fixes it) and for manifests: level 1 for both. On
/// manifests, whose bulk is hexadecimal chunk ids, level 3 (zstd's default) sealed 15 %
/// more bytes and took about a third more time to write (`examples/manifest_bench.rs`).
const CHUNK_ZSTD_LEVEL: i32 = 1;
const MANIFEST_ZSTD_LEVEL: i32 = 1;

/// What is wrong with a record, a pack or a manifest. Offsets are from the start of the
/// bytes handed to the function (a pack offset for [`pack_records`]).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// The structure starting at byte `offset` is `need` bytes long, and the input ends
    /// before that.
    #[error("truncated: the structure at byte {offset} needs {need} bytes, the input ends first")]
    Truncated {
        /// Where the structure that does not fit starts.
        offset: u64,
        /// How long it is.
        need: u64,
    },
    /// The input does not start with the magic bytes of a `what` ("pack", "manifest").
    #[error("not a {what}: wrong magic bytes")]
    BadMagic {
        /// What the input was supposed to be.
        what: &'static str,
    },
    /// The AEAD tag does not verify: wrong data key, a record moved to another cluster,
    /// chunk id or snapshot, or damaged bytes. `what` names the object.
    #[error(
        "{what} failed authentication (wrong key, moved from another cluster, chunk or snapshot, or damaged)"
    )]
    Authentication {
        /// e.g. `chunk <id> stored by snapshot <id>`, `manifest of snapshot <id>`.
        what: String,
    },
    /// The record authenticated, but its plaintext does not hash to the chunk id.
    #[error("the plaintext of chunk {expected} does not hash to its id")]
    IdMismatch {
        /// The id the record was opened as.
        expected: ChunkId,
    },
    /// The (authenticated) zstd data is not a valid frame.
    #[error("zstd decompression failed: {0}")]
    Decompress(String),
    /// A size past its bound. `size` is the size found; when decompression was stopped
    /// at the bound, it is the bound plus one.
    #[error("{what} of {size} bytes is over the limit")]
    TooLarge {
        /// What was too large ("chunk", "chunk record", "manifest", ...).
        what: &'static str,
        /// Its size in bytes (at least).
        size: u64,
    },
    /// Structurally valid bytes whose content breaks a rule: manifest JSON that does
    /// not parse or does not validate, an empty chunk, unknown record flags, ...
    #[error("{0}")]
    Invalid(String),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// Writing sealed bytes out failed (a manifest spooled to a file: a full disk, say);
    /// the input was not at fault.
    #[error("writing the sealed manifest failed: {1}")]
    Write(std::io::ErrorKind, String),
}

// ---------------------------------------------------------------------------------------
// Chunk ids

/// The key of a cluster's chunk ids, derived from its data key. Zeroized on drop; its
/// `Debug` output shows nothing of it.
pub struct ChunkIdKey(Zeroizing<[u8; 32]>);

impl ChunkIdKey {
    /// `BLAKE3::derive_key("headlock 2026-11 chunk id v1", data_key)`.
    pub fn derive(data_key: &DataKey) -> Self {
        ChunkIdKey(Zeroizing::new(blake3::derive_key(
            CHUNK_ID_CONTEXT,
            data_key.expose(),
        )))
    }

    /// The key from its 32 bytes, as an upload session hands them to a client.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        ChunkIdKey(Zeroizing::new(key))
    }

    /// The key's bytes, to hand to a client with backup rights (an upload session): they
    /// compute ids, and decrypt nothing.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// The id of a chunk: its keyed BLAKE3 hash.
    pub fn id(&self, plaintext: &[u8]) -> ChunkId {
        ChunkId(*blake3::keyed_hash(&self.0, plaintext).as_bytes())
    }

    /// Whether `plaintext` hashes to `id`, compared in constant time.
    pub fn matches(&self, plaintext: &[u8], id: &ChunkId) -> bool {
        blake3::keyed_hash(&self.0, plaintext) == id.0
    }
}

impl fmt::Debug for ChunkIdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChunkIdKey(..)")
    }
}

// ---------------------------------------------------------------------------------------
// zstd

// One zstd context of each kind per thread, kept between chunks. Creating one costs
// about as much as compressing a small chunk: in a backup of 200,000 files of 60 bytes
// the contexts' creation was 7 % of the service's samples, most of it zstd asking the
// CPU (cpuid, which a virtual machine traps) whether it has BMI2. With chunks of a MiB
// the cost vanished, which is why examples/seal_bench.rs saw no gain (docs/benchmarks.md,
// "Backup and restore, beside restic", suggestion 3). A context holds no secret: it
// only ever sees plaintext that its thread also holds, and the output of a call does
// not depend on earlier calls (each is one whole frame, no dictionary).
thread_local! {
    static CHUNK_COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    static CHUNK_DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Compresses `src` at the chunk level into the spare capacity of `out` after its
/// current contents. Returns whether the frame is smaller than `src` (then `out` holds
/// it); on `false`, what follows the old contents of `out` is unspecified.
fn compress_chunk_into(out: &mut Vec<u8>, src: &[u8]) -> bool {
    let start = out.len();
    CHUNK_COMPRESSOR.with_borrow_mut(|slot| {
        if slot.is_none() {
            // Creating a context fails only when out of memory; the chunk is then
            // stored as it is, which the format allows.
            *slot = zstd::bulk::Compressor::new(CHUNK_ZSTD_LEVEL).ok();
        }
        let Some(compressor) = slot.as_mut() else {
            return false;
        };
        let mut cursor = Cursor::new(&mut *out);
        cursor.set_position(start as u64);
        // An error is "destination too small": the frame would not be smaller.
        match compressor.compress_to_buffer(src, &mut cursor) {
            Ok(n) => n < src.len(),
            Err(_) => false,
        }
    })
}

/// Decompresses one chunk's zstd data, refusing to produce more than [`MAX_CHUNK`].
fn decompress_chunk(src: &[u8]) -> Result<Vec<u8>, FormatError> {
    let limit = MAX_CHUNK as usize;
    // When every frame records its size, allocate exactly that; otherwise the limit.
    let capacity = match zstd::bulk::Decompressor::upper_bound(src) {
        Some(n) if n > limit => {
            return Err(FormatError::TooLarge {
                what: "chunk",
                size: n as u64,
            });
        }
        Some(n) => n,
        None => limit,
    };
    let mut out = Vec::with_capacity(capacity);
    CHUNK_DECOMPRESSOR
        .with_borrow_mut(|slot| {
            if slot.is_none() {
                *slot = Some(zstd::bulk::Decompressor::new()?);
            }
            let decompressor = slot.as_mut().expect("set above");
            decompressor.decompress_to_buffer(src, &mut out)
        })
        .map_err(|e| {
            let too_small = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<zstd::Error>())
                .is_some_and(|z| z.is(ZSTD_ErrorCode::ZSTD_error_dstSize_tooSmall));
            if too_small && capacity == limit {
                FormatError::TooLarge {
                    what: "chunk",
                    size: limit as u64 + 1,
                }
            } else {
                zstd_message(e)
            }
        })?;
    if out.len() > limit {
        // Only if the allocator gave more capacity than asked; still refuse.
        return Err(FormatError::TooLarge {
            what: "chunk",
            size: out.len() as u64,
        });
    }
    Ok(out)
}

fn zstd_message(e: std::io::Error) -> FormatError {
    FormatError::Decompress(e.to_string())
}

/// Decompresses a whole zstd stream, refusing to produce more than `limit` bytes.
fn decompress_bounded(src: &[u8], limit: u64, what: &'static str) -> Result<Vec<u8>, FormatError> {
    let decoder = zstd::stream::read::Decoder::with_buffer(src).map_err(zstd_message)?;
    let mut out = Vec::new();
    decoder
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(zstd_message)?;
    if out.len() as u64 > limit {
        return Err(FormatError::TooLarge {
            what,
            size: limit + 1,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Records

fn chunk_aad(cluster: ObjectId, id: ChunkId, stored_by: ObjectId, flags: u8) -> [u8; 74] {
    let mut aad = [0u8; 74];
    aad[..17].copy_from_slice(CHUNK_AAD_LABEL);
    aad[17..29].copy_from_slice(&cluster.bytes());
    aad[29..61].copy_from_slice(&id.0);
    aad[61..73].copy_from_slice(&stored_by.bytes());
    aad[73] = flags;
    aad
}

fn manifest_aad(cluster: ObjectId, snapshot: ObjectId) -> [u8; 44] {
    let mut aad = [0u8; 44];
    aad[..20].copy_from_slice(MANIFEST_AAD_LABEL);
    aad[20..32].copy_from_slice(&cluster.bytes());
    aad[32..44].copy_from_slice(&snapshot.bytes());
    aad
}

fn random_nonce() -> Result<[u8; NONCE_LEN], FormatError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| FormatError::Random)?;
    Ok(nonce)
}

/// Checks a record's length prefix against `bytes` (which start with it) and returns
/// the length of the whole record. Offsets in errors are `base` plus the offset in
/// `bytes`. With `exact`, bytes after the record are an error.
fn record_len(bytes: &[u8], base: u64, exact: bool) -> Result<usize, FormatError> {
    let Some(prefix) = bytes.first_chunk::<4>() else {
        return Err(FormatError::Truncated {
            offset: base,
            need: 4,
        });
    };
    let body = u32::from_be_bytes(*prefix) as usize;
    if body > MAX_RECORD_LEN - 4 {
        return Err(FormatError::TooLarge {
            what: "chunk record",
            size: body as u64 + 4,
        });
    }
    if body < MIN_RECORD_BODY {
        return Err(FormatError::Invalid(format!(
            "chunk record at byte {base}: length prefix {body} is below the minimum of {MIN_RECORD_BODY}"
        )));
    }
    if bytes.len() - 4 < body {
        return Err(FormatError::Truncated {
            offset: base + 4,
            need: body as u64,
        });
    }
    if exact && bytes.len() - 4 > body {
        return Err(FormatError::Invalid(format!(
            "chunk record at byte {base}: length prefix says {body} bytes, {} follow it",
            bytes.len() - 4
        )));
    }
    Ok(4 + body)
}

/// AES-256-GCM under a cluster's data key, for chunk records and manifests. The `ring`
/// key is expanded once; share one cipher between threads (it is `Sync`), e.g. in an
/// `Arc`. `ring` does not zeroize its expanded key on drop; the [`DataKey`] it came from
/// is zeroized.
pub struct ChunkCipher {
    key: LessSafeKey,
}

impl fmt::Debug for ChunkCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChunkCipher(..)")
    }
}

impl ChunkCipher {
    /// The cipher of a data key.
    pub fn new(data_key: &DataKey) -> Self {
        // Cannot fail: the key is 32 bytes.
        let key = UnboundKey::new(&AES_256_GCM, data_key.expose()).expect("32-byte AES key");
        ChunkCipher {
            key: LessSafeKey::new(key),
        }
    }

    /// Seals a chunk into a record, length prefix included, ready to append to a pack.
    /// The chunk is zstd-compressed (level 1) only if that makes it smaller. `id` must
    /// be [`ChunkIdKey::id`] of `plaintext` (not recomputed here: the caller has it);
    /// `snapshot` is the snapshot storing the record. Empty chunks and chunks over
    /// [`MAX_CHUNK`] are refused.
    pub fn seal_chunk(
        &self,
        cluster: ObjectId,
        snapshot: ObjectId,
        id: ChunkId,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, FormatError> {
        check_chunk_len(id, plaintext.len())?;
        self.seal_chunk_with_nonce(cluster, snapshot, id, plaintext, random_nonce()?)
    }

    fn seal_chunk_with_nonce(
        &self,
        cluster: ObjectId,
        snapshot: ObjectId,
        id: ChunkId,
        plaintext: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Result<Vec<u8>, FormatError> {
        check_chunk_len(id, plaintext.len())?;
        // One allocation, sized for the worst case (stored as is): the frame is
        // compressed straight into it after the header, and sealed in place.
        let mut out = Vec::with_capacity(RECORD_OVERHEAD + plaintext.len());
        out.extend_from_slice(&[0u8; 5]);
        out.extend_from_slice(&nonce);
        let flags = if compress_chunk_into(&mut out, plaintext) {
            FLAG_ZSTD
        } else {
            out.truncate(RECORD_HEADER_LEN);
            out.extend_from_slice(plaintext);
            0
        };
        out[4] = flags;
        let aad = chunk_aad(cluster, id, snapshot, flags);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut out[RECORD_HEADER_LEN..],
            )
            .map_err(|_| FormatError::TooLarge {
                what: "chunk",
                size: plaintext.len() as u64,
            })?;
        out.extend_from_slice(tag.as_ref());
        let body = u32::try_from(out.len() - 4).expect("bounded by MAX_RECORD_LEN");
        out[..4].copy_from_slice(&body.to_be_bytes());
        Ok(out)
    }

    /// Opens a record (length prefix included, nothing after it): authenticates it as
    /// chunk `id` of `cluster` stored by snapshot `stored_by`, decompresses it (never
    /// past [`MAX_CHUNK`]) and checks that the plaintext hashes to `id`.
    pub fn open_chunk(
        &self,
        id_key: &ChunkIdKey,
        cluster: ObjectId,
        stored_by: ObjectId,
        id: ChunkId,
        record: &[u8],
    ) -> Result<Vec<u8>, FormatError> {
        record_len(record, 0, true)?;
        let flags = record[4];
        let nonce: [u8; NONCE_LEN] = record[5..RECORD_HEADER_LEN]
            .try_into()
            .expect("length checked");
        let aad = chunk_aad(cluster, id, stored_by, flags);
        let mut buf = record[RECORD_HEADER_LEN..].to_vec();
        let len = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut buf,
            )
            .map_err(|_| FormatError::Authentication {
                what: format!("chunk {id} stored by snapshot {stored_by}"),
            })?
            .len();
        buf.truncate(len);
        // Flags are authenticated: unknown bits here were written by a key holder.
        let plaintext = match flags {
            0 => buf,
            FLAG_ZSTD => decompress_chunk(&buf)?,
            other => {
                return Err(FormatError::Invalid(format!(
                    "chunk {id}: unknown record flags {other:#04x}"
                )));
            }
        };
        if plaintext.is_empty() {
            return Err(FormatError::Invalid(format!(
                "chunk {id}: empty chunk (chunks are never empty)"
            )));
        }
        if !id_key.matches(&plaintext, &id) {
            return Err(FormatError::IdMismatch { expected: id });
        }
        Ok(plaintext)
    }

    /// Seals a manifest: validates it, serialises it to JSON, compresses it with zstd and
    /// seals it bound to its cluster and snapshot.
    pub fn seal_manifest(
        &self,
        cluster: ObjectId,
        snapshot: ObjectId,
        m: &Manifest,
    ) -> Result<Vec<u8>, FormatError> {
        self.seal_manifest_with_nonce(cluster, snapshot, m, random_nonce()?)
    }

    fn seal_manifest_with_nonce(
        &self,
        cluster: ObjectId,
        snapshot: ObjectId,
        m: &Manifest,
        nonce: [u8; NONCE_LEN],
    ) -> Result<Vec<u8>, FormatError> {
        m.validate()?;
        let json = m.to_json()?;
        if json.len() as u64 > MAX_MANIFEST_JSON {
            return Err(FormatError::TooLarge {
                what: "manifest",
                size: json.len() as u64,
            });
        }
        let mut out =
            Vec::with_capacity(MANIFEST_HEADER_LEN + zstd::compress_bound(json.len()) + TAG_LEN);
        out.extend_from_slice(MANIFEST_MAGIC);
        out.extend_from_slice(&nonce);
        let mut cursor = Cursor::new(&mut out);
        cursor.set_position(MANIFEST_HEADER_LEN as u64);
        zstd::bulk::Compressor::new(MANIFEST_ZSTD_LEVEL)
            .and_then(|mut c| c.compress_to_buffer(&json, &mut cursor))
            .map_err(|e| FormatError::Invalid(format!("compressing the manifest: {e}")))?;
        let aad = manifest_aad(cluster, snapshot);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut out[MANIFEST_HEADER_LEN..],
            )
            .map_err(|_| FormatError::TooLarge {
                what: "manifest",
                size: json.len() as u64,
            })?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens a sealed manifest of `snapshot` of `cluster`: authenticates it, decompresses
    /// it (never past [`MAX_MANIFEST_JSON`]), parses the JSON and [validates](Manifest::validate) it.
    pub fn open_manifest(
        &self,
        cluster: ObjectId,
        snapshot: ObjectId,
        bytes: &[u8],
    ) -> Result<Manifest, FormatError> {
        self.open_manifest_bounded(cluster, snapshot, bytes, MAX_MANIFEST_JSON)
    }

    fn open_manifest_bounded(
        &self,
        cluster: ObjectId,
        snapshot: ObjectId,
        bytes: &[u8],
        limit: u64,
    ) -> Result<Manifest, FormatError> {
        let Some(magic) = bytes.first_chunk::<8>() else {
            return Err(FormatError::Truncated { offset: 0, need: 8 });
        };
        if magic == frames::MANIFEST_V2_MAGIC {
            return frames::open_whole(self, cluster, snapshot, bytes);
        }
        if magic != MANIFEST_MAGIC {
            return Err(FormatError::BadMagic { what: "manifest" });
        }
        if bytes.len() < MANIFEST_HEADER_LEN + TAG_LEN {
            return Err(FormatError::Truncated {
                offset: 8,
                need: (NONCE_LEN + TAG_LEN) as u64,
            });
        }
        if bytes.len() as u64 > limit {
            return Err(FormatError::TooLarge {
                what: "sealed manifest",
                size: bytes.len() as u64,
            });
        }
        let nonce: [u8; NONCE_LEN] = bytes[8..MANIFEST_HEADER_LEN]
            .try_into()
            .expect("length checked");
        let aad = manifest_aad(cluster, snapshot);
        let mut buf = bytes[MANIFEST_HEADER_LEN..].to_vec();
        let len = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut buf,
            )
            .map_err(|_| FormatError::Authentication {
                what: format!("manifest of snapshot {snapshot}"),
            })?
            .len();
        let json = decompress_bounded(&buf[..len], limit, "manifest")?;
        let m: Manifest = serde_json::from_slice(&json)
            .map_err(|e| FormatError::Invalid(format!("manifest of snapshot {snapshot}: {e}")))?;
        m.validate()
            .map_err(|e| FormatError::Invalid(format!("manifest of snapshot {snapshot}: {e}")))?;
        Ok(m)
    }
}

fn check_chunk_len(id: ChunkId, len: usize) -> Result<(), FormatError> {
    if len == 0 {
        return Err(FormatError::Invalid(format!(
            "chunk {id}: empty chunk (chunks are never empty)"
        )));
    }
    if len > MAX_CHUNK as usize {
        return Err(FormatError::TooLarge {
            what: "chunk",
            size: len as u64,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Packs

/// Walks the records of a pack without keys (what `verify` needs): checks the magic,
/// then yields each record's offset in the pack and its bytes (length prefix included),
/// or one error naming the offset where the walk broke, after which it ends.
pub fn pack_records(pack: &[u8]) -> PackRecords<'_> {
    PackRecords {
        pack,
        offset: 0,
        done: false,
    }
}

/// The iterator of [`pack_records`].
#[derive(Debug, Clone)]
pub struct PackRecords<'a> {
    pack: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> Iterator for PackRecords<'a> {
    type Item = Result<(u64, &'a [u8]), FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.offset == 0 {
            let Some(magic) = self.pack.first_chunk::<8>() else {
                self.done = true;
                return Some(Err(FormatError::Truncated { offset: 0, need: 8 }));
            };
            if magic != PACK_MAGIC {
                self.done = true;
                return Some(Err(FormatError::BadMagic { what: "pack" }));
            }
            self.offset = PACK_MAGIC.len();
        }
        if self.offset == self.pack.len() {
            self.done = true;
            return None;
        }
        let rest = &self.pack[self.offset..];
        match record_len(rest, self.offset as u64, false) {
            Ok(len) => {
                let item = (self.offset as u64, &rest[..len]);
                self.offset += len;
                Some(Ok(item))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for PackRecords<'_> {}

// ---------------------------------------------------------------------------------------
// Manifests

/// The decrypted manifest of a snapshot: what to restore, and from which chunks.
/// JSON: `{"version": 1, "kind": "tree" | "stream", "entries": [...]}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_VERSION`] (1).
    pub version: u32,
    /// A directory tree or one byte stream.
    pub kind: ManifestKind,
    /// The directory the client backed up (absolute, as it resolved it), if it said:
    /// how a later backup of the same path finds this one as its parent. Absent in
    /// manifests of the plain upload and of older clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Files, directories and symlinks; a stream has exactly one file.
    pub entries: Vec<ManifestEntry>,
}

/// What a client recorded of a file beyond what a restore needs, so that its next
/// backup can tell the file unchanged without reading it (restic's rule: size, mtime,
/// ctime, inode and mode all equal). JSON `{"ctime_ns": n, "inode": n}`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileStamp {
    /// Status change time, nanoseconds since the epoch (any write or `touch` moves it).
    pub ctime_ns: i64,
    /// Inode number.
    pub inode: u64,
}

/// What a snapshot holds.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ManifestKind {
    /// A directory tree (uploaded as a tar stream). JSON `"tree"`.
    Tree,
    /// One byte stream (e.g. `mongodump --archive`). JSON `"stream"`.
    Stream,
}

/// The type of a manifest entry.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum EntryType {
    /// A regular file; its content is its chunks. JSON `"file"`.
    File,
    /// A directory. JSON `"dir"`.
    Dir,
    /// A symbolic link to `target`. JSON `"symlink"`.
    Symlink,
}

/// One file, directory or symlink of a manifest.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// Relative, `/`-separated, without `.`, `..` or empty components, no NUL.
    pub path: String,
    /// File, directory or symlink.
    #[serde(rename = "type")]
    pub entry_type: EntryType,
    /// Unix mode as found in the archive (at most 16 bits; a restore applies `& 0o7777`).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Size in bytes: the sum of the chunk lengths for a file, 0 otherwise.
    pub size: u64,
    /// The target of a symlink (may be absolute or hold `..`: a restore must not
    /// follow symlinks when it writes). Absent for other types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// A file's chunks in order: (chunk id, plaintext length). JSON
    /// `[["<64 hex digits>", length], ...]`. Empty for other types.
    #[serde(default, with = "chunk_list")]
    pub chunks: Vec<(ChunkId, u32)>,
    /// A file's change stamp, if the client recorded one (absent: never taken as
    /// unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<FileStamp>,
}

impl ManifestEntry {
    /// The rules of one entry alone (entry `i` of its manifest): path, mode, type
    /// rules, size equal to the sum of its chunk lengths; not uniqueness or ancestors.
    pub fn check(&self, i: usize) -> Result<(), FormatError> {
        let e = self;
        let bad = |why: String| {
            FormatError::Invalid(format!("manifest entry {i} ({}): {why}", shown(&e.path)))
        };
        check_manifest_path(&e.path).map_err(bad)?;
        if e.mode > 0o177777 {
            return Err(bad(format!("mode {:#o} is more than 16 bits", e.mode)));
        }
        match e.entry_type {
            EntryType::File => {
                if e.target.is_some() {
                    return Err(bad("a file has no target".into()));
                }
                let mut sum = 0u64;
                for (id, len) in &e.chunks {
                    if *len == 0 || *len > MAX_CHUNK {
                        return Err(bad(format!("chunk {id} has length {len}")));
                    }
                    sum += u64::from(*len);
                }
                if sum != e.size {
                    return Err(bad(format!(
                        "size {} but its chunks hold {sum} bytes",
                        e.size
                    )));
                }
            }
            EntryType::Dir | EntryType::Symlink => {
                if !e.chunks.is_empty() || e.size != 0 {
                    return Err(bad("only files have chunks and a size".into()));
                }
                match (&e.target, e.entry_type) {
                    (Some(_), EntryType::Dir) => {
                        return Err(bad("a directory has no target".into()));
                    }
                    (None, EntryType::Symlink) => {
                        return Err(bad("a symlink needs a target".into()));
                    }
                    (Some(t), _) if !is_valid_link_target(t.as_bytes()) => {
                        return Err(bad(format!(
                            "symlink target {} is empty, too long or holds NUL",
                            shown(t)
                        )));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

impl Manifest {
    fn to_json(&self) -> Result<Vec<u8>, FormatError> {
        serde_json::to_vec(self).map_err(|e| FormatError::Invalid(format!("manifest: {e}")))
    }

    /// Checks the rules a restore relies on: version 1; paths relative, `/`-separated,
    /// without `.`, `..` or empty components or NUL, at most [`MAX_PATH_LEN`](path::MAX_PATH_LEN) bytes, and
    /// unique; no entry below a file or symlink entry (so a restore never writes
    /// through a symlink it created); a file's size is the sum of its chunk lengths,
    /// each in `1..=MAX_CHUNK`, and it has no target; directories and symlinks have no
    /// chunks and size 0; a symlink has a non-empty target without NUL; a stream has
    /// exactly one entry, a file.
    pub fn validate(&self) -> Result<(), FormatError> {
        if self.version != MANIFEST_VERSION {
            return Err(FormatError::Invalid(format!(
                "manifest version {} (this reads version {MANIFEST_VERSION})",
                self.version
            )));
        }
        if self.kind == ManifestKind::Stream
            && (self.entries.len() != 1 || self.entries[0].entry_type != EntryType::File)
        {
            return Err(FormatError::Invalid(format!(
                "a stream manifest has exactly one entry, a file; this one has {} entries",
                self.entries.len()
            )));
        }
        let mut types: HashMap<&str, EntryType> = HashMap::with_capacity(self.entries.len());
        for (i, e) in self.entries.iter().enumerate() {
            e.check(i)?;
            let bad = |why: String| {
                FormatError::Invalid(format!("manifest entry {i} ({}): {why}", shown(&e.path)))
            };
            match types.entry(&e.path) {
                Entry::Occupied(_) => return Err(bad("duplicate path".into())),
                Entry::Vacant(v) => {
                    v.insert(e.entry_type);
                }
            }
        }
        // Parents are not required to come first (tar streams do not promise it), so
        // ancestors are checked once every path is known.
        for (i, e) in self.entries.iter().enumerate() {
            if let Some((ancestor, t)) =
                path::non_directory_ancestor(&e.path, |p| types.get(p).copied())
            {
                return Err(FormatError::Invalid(format!(
                    "manifest entry {i} ({}): below {}, which is a {t:?}, not a directory",
                    shown(&e.path),
                    shown(ancestor)
                )));
            }
        }
        Ok(())
    }
}

/// A path for an error message: quoted, escaped, cut at 100 characters.
fn shown(s: &str) -> String {
    let mut q: String = format!("{s:?}");
    if q.len() > 100 {
        let cut = (0..=100)
            .rev()
            .find(|&i| q.is_char_boundary(i))
            .unwrap_or(0);
        q.truncate(cut);
        q.push('…');
    }
    q
}

/// `Vec<(ChunkId, u32)>` as `[["<hex>", len], ...]` (ChunkId has no serde impls of its
/// own: its text form is chosen here, where the format is).
mod chunk_list {
    use std::fmt;

    use serde::de::{self, SeqAccess, Visitor};
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::model::ChunkId;

    struct Hex<'a>(&'a ChunkId);

    impl Serialize for Hex<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(self.0)
        }
    }

    pub fn serialize<S: Serializer>(chunks: &[(ChunkId, u32)], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(chunks.len()))?;
        for (id, len) in chunks {
            seq.serialize_element(&(Hex(id), len))?;
        }
        seq.end()
    }

    struct HexId(ChunkId);

    impl<'de> Deserialize<'de> for HexId {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = HexId;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a chunk id of 64 hex digits")
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<HexId, E> {
                    let mut b = [0u8; 32];
                    hex::decode_to_slice(s, &mut b).map_err(|_| {
                        E::custom(format_args!(
                            "{:?} is not a chunk id of 64 hex digits",
                            s.chars().take(80).collect::<String>()
                        ))
                    })?;
                    Ok(HexId(ChunkId(b)))
                }
            }
            d.deserialize_str(V)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(ChunkId, u32)>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<(ChunkId, u32)>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of [chunk id, length] pairs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // The size hint comes from the input: cap what it can reserve.
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some((HexId(id), len)) = seq.next_element::<(HexId, u32)>()? {
                    out.push((id, len));
                }
                Ok(out)
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests;
