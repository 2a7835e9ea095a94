//! Manifest version 2: a sequence of independently sealed, bounded frames, so that a
//! writer seals entries as they arrive and a reader opens one frame at a time; memory
//! follows the frame, not the snapshot (docs/design.md, "Manifest").
//!
//! ```text
//! manifest v2  "HLMANI02" || frame 0 || frame 1 || ... || final frame
//! frame        u32 BE  n: length of what follows (12 + ciphertext + 16), <= MAX_FRAME_SEALED
//!              12 B    nonce, random
//!              n-28 B  AES-256-GCM ciphertext of zstd(JSON), data key
//!              16 B    tag
//!              AAD     "headlock-manifest-v2" || cluster id (12) || snapshot id (12)
//!                      || frame index (u32 BE) || final (u8: 1 on the last frame, else 0)
//! frame 0      {"version": 2, "kind": "tree" | "stream", "source": ...}
//! frame i > 0  entries, one JSON object a line (the v1 entry form), at most
//!              MAX_FRAME_ENTRIES of them and MAX_FRAME_JSON bytes
//! ```
//!
//! The AAD binds each frame to its cluster, snapshot and place, so a frame moved to
//! another snapshot (splicing), frames swapped (reordering), a frame dropped, or the
//! object cut after any frame but the final one (truncation) fails authentication or
//! is refused as incomplete; bytes after the final frame are refused.
//!
//! Every entry passes the per-entry rules of [`Manifest::validate`]; unique paths and
//! "nothing below a file or symlink" are checked in one pass by [`EntryChecker`], which
//! keeps a 16-byte keyed hash of each path (and of each directory some entry is below)
//! instead of the paths: 20 to 39 bytes an entry with the hash table's slack, the one
//! thing that grows with the snapshot on both sides.

use std::collections::HashSet;
use std::io::{Cursor, Write};

use ring::aead::{Aad, NONCE_LEN, Nonce};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::path::MAX_PATH_LEN;
use super::{
    ChunkCipher, EntryType, FormatError, MANIFEST_ZSTD_LEVEL, Manifest, ManifestEntry,
    ManifestKind, TAG_LEN, decompress_bounded, random_nonce, shown,
};
use crate::ObjectId;

/// Magic bytes at the start of a version 2 (framed) manifest.
pub const MANIFEST_V2_MAGIC: &[u8; 8] = b"HLMANI02";
/// The manifest version the framed format carries in its header frame.
pub const MANIFEST_V2: u32 = 2;
/// Most entries in one frame (a writer closes a frame at this count).
pub const MAX_FRAME_ENTRIES: usize = 4096;
/// A writer closes a frame once its JSON reaches this size (1 MiB).
pub const FRAME_TARGET_JSON: usize = 1024 * 1024;
/// Largest JSON form of one entry (16 MiB: a file of about 230,000 chunks).
pub const MAX_ENTRY_JSON: usize = 16 * 1024 * 1024;
/// Largest JSON of one frame a reader decompresses: a frame just under the target
/// plus one entry of the largest size and its newline.
pub const MAX_FRAME_JSON: usize = FRAME_TARGET_JSON + MAX_ENTRY_JSON + 1;
/// Largest value of a frame's length prefix (the compressed JSON may be a little
/// larger than the JSON, plus nonce and tag).
pub const MAX_FRAME_SEALED: usize = MAX_FRAME_JSON + 64 * 1024 + NONCE_LEN + TAG_LEN;
/// Bytes of a frame's length prefix.
pub const FRAME_PREFIX_LEN: usize = 4;
const V2_AAD_LABEL: &[u8; 20] = b"headlock-manifest-v2";

/// The header frame of a v2 manifest: what v1 held beside its entries.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ManifestHeader {
    /// Always [`MANIFEST_V2`] in a v2 manifest (1 when read from a v1 manifest).
    pub version: u32,
    /// A directory tree or one byte stream.
    pub kind: ManifestKind,
    /// The directory the client backed up, if it said (see [`Manifest::source`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl ManifestHeader {
    fn check(&self) -> Result<(), FormatError> {
        if self.version != MANIFEST_V2 {
            return Err(FormatError::Invalid(format!(
                "manifest header says version {} in a version {MANIFEST_V2} manifest",
                self.version
            )));
        }
        check_source(self.source.as_deref())
    }
}

/// A manifest's source: absent, or 1 to [`MAX_PATH_LEN`] bytes without NUL.
pub fn check_source(source: Option<&str>) -> Result<(), FormatError> {
    match source {
        Some(p) if p.is_empty() || p.len() > MAX_PATH_LEN || p.contains('\0') => Err(
            FormatError::Invalid("the manifest's source is empty, too long or holds NUL".into()),
        ),
        _ => Ok(()),
    }
}

fn frame_aad(cluster: ObjectId, snapshot: ObjectId, index: u32, last: bool) -> [u8; 49] {
    let mut aad = [0u8; 49];
    aad[..20].copy_from_slice(V2_AAD_LABEL);
    aad[20..32].copy_from_slice(&cluster.bytes());
    aad[32..44].copy_from_slice(&snapshot.bytes());
    aad[44..48].copy_from_slice(&index.to_be_bytes());
    aad[48] = u8::from(last);
    aad
}

// ---------------------------------------------------------------------------------------
// The one-pass tree check

/// Checks entries one at a time against every rule of [`Manifest::validate`], in any
/// order, without keeping the paths: each path (and each directory some entry is
/// below) is kept as a BLAKE3 hash under a random key of this checker (126 bits of it
/// for a path, 128 for a directory some entry is below), so two different paths collide
/// with probability about n^2 / 2^127 and nobody can aim at it.
///
/// Entries of one directory usually come in a row (the CLI's walk writes them so): an
/// entry whose parent is the previous entry's has the same ancestors, already checked
/// and recorded, so they are not hashed again. Only the previous entry was recorded
/// since, and it is not one of them: it is in that same directory, longer than each.
pub struct EntryChecker {
    key: [u8; 32],
    kind: ManifestKind,
    /// Hash of each path seen, and its type ([`SeenPath`]: 16 bytes a path).
    paths: HashSet<SeenPath, KeyedHashes>,
    /// Hash of each path some entry is below (must be a directory, if present).
    parents: HashSet<u128, KeyedHashes>,
    /// The parent directory of the last entry accepted ("" at the top).
    last_parent: String,
    count: u64,
}

/// A path [`EntryChecker`] has seen: the path's keyed hash in the low 126 bits and its
/// entry type in the top two, one `u128`. A `(u128, EntryType)` pair would take 32 bytes
/// (padded to `u128`'s alignment), and this table holds every path of a manifest: at
/// 1,000,000 files the difference was about 50 MiB of the service's peak during the
/// commit. Equality and hashing look at the hash bits only, so a lookup finds a path
/// whatever its type and tells the type.
#[derive(Clone, Copy)]
struct SeenPath(u128);

impl SeenPath {
    /// Where the type goes: the top two bits (the hasher uses the low 64).
    const TYPE_SHIFT: u32 = 126;
    const HASH_BITS: u128 = (1 << Self::TYPE_SHIFT) - 1;

    fn new(hash: u128, t: EntryType) -> SeenPath {
        let code: u128 = match t {
            EntryType::File => 0,
            EntryType::Dir => 1,
            EntryType::Symlink => 2,
        };
        SeenPath((hash & Self::HASH_BITS) | (code << Self::TYPE_SHIFT))
    }

    /// The key a lookup of the path with `hash` uses (its type bits do not count).
    fn lookup(hash: u128) -> SeenPath {
        SeenPath(hash & Self::HASH_BITS)
    }

    fn entry_type(self) -> EntryType {
        match self.0 >> Self::TYPE_SHIFT {
            0 => EntryType::File,
            1 => EntryType::Dir,
            _ => EntryType::Symlink,
        }
    }
}

impl PartialEq for SeenPath {
    fn eq(&self, other: &SeenPath) -> bool {
        (self.0 & Self::HASH_BITS) == (other.0 & Self::HASH_BITS)
    }
}

impl Eq for SeenPath {}

impl std::hash::Hash for SeenPath {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(self.0 & Self::HASH_BITS);
    }
}

/// The hasher of [`EntryChecker`]'s tables. Their keys are BLAKE3 outputs under a key
/// nobody outside the checker knows, so they are uniform already: the low 64 bits serve
/// as the hash, and nobody can aim at a bucket. (A hasher of a few lines: the std one,
/// SipHash, cost more than the lookups it serves.)
#[derive(Default, Clone, Copy)]
struct KeyedHashes;

impl std::hash::BuildHasher for KeyedHashes {
    type Hasher = LowBits;
    fn build_hasher(&self) -> LowBits {
        LowBits(0)
    }
}

/// See [`KeyedHashes`].
struct LowBits(u64);

impl std::hash::Hasher for LowBits {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used by the tables; anything else still hashes.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, i: u128) {
        self.0 = i as u64;
    }
}

impl EntryChecker {
    /// A checker for a manifest of `kind`.
    pub fn new(kind: ManifestKind) -> Result<Self, FormatError> {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| FormatError::Random)?;
        Ok(EntryChecker {
            key,
            kind,
            paths: HashSet::default(),
            parents: HashSet::default(),
            last_parent: String::new(),
            count: 0,
        })
    }

    fn hash(&self, path: &str) -> u128 {
        let h = blake3::keyed_hash(&self.key, path.as_bytes());
        u128::from_le_bytes(h.as_bytes()[..16].try_into().expect("16 bytes"))
    }

    /// Entries checked so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Checks the next entry (index `self.count()`).
    pub fn check(&mut self, e: &ManifestEntry) -> Result<(), FormatError> {
        let i = self.count;
        e.check(i as usize)?;
        let bad = |why: String| {
            FormatError::Invalid(format!("manifest entry {i} ({}): {why}", shown(&e.path)))
        };
        if self.kind == ManifestKind::Stream && (i > 0 || e.entry_type != EntryType::File) {
            return Err(bad("a stream manifest has exactly one entry, a file".into()));
        }
        let own = self.hash(&e.path);
        if self.paths.contains(&SeenPath::lookup(own)) {
            return Err(bad("duplicate path".into()));
        }
        let parent = e.path.rfind('/').map_or("", |at| &e.path[..at]);
        let same_parent = self.count > 0 && parent == self.last_parent;
        for (at, _) in e.path.match_indices('/').filter(|_| !same_parent) {
            let ancestor = &e.path[..at];
            let h = self.hash(ancestor);
            if let Some(t) = self
                .paths
                .get(&SeenPath::lookup(h))
                .map(|p| p.entry_type())
                .filter(|t| *t != EntryType::Dir)
            {
                return Err(bad(format!(
                    "below {}, which is a {t:?}, not a directory",
                    shown(ancestor)
                )));
            }
            self.parents.insert(h);
        }
        if e.entry_type != EntryType::Dir && self.parents.contains(&own) {
            return Err(bad(format!(
                "a {:?} with entries below it, not a directory",
                e.entry_type
            )));
        }
        self.paths.insert(SeenPath::new(own, e.entry_type));
        if !same_parent {
            self.last_parent.clear();
            self.last_parent.push_str(parent);
        }
        self.count += 1;
        Ok(())
    }

    /// Checks the end of the entries: a stream has its one file.
    pub fn finish(&self) -> Result<(), FormatError> {
        if self.kind == ManifestKind::Stream && self.count != 1 {
            return Err(FormatError::Invalid(format!(
                "a stream manifest has exactly one entry, a file; this one has {} entries",
                self.count
            )));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Writing

/// Seals a v2 manifest entry by entry: each entry is checked ([`EntryChecker`]) and
/// appended to the open frame, which is sealed when it holds [`MAX_FRAME_ENTRIES`]
/// entries or [`FRAME_TARGET_JSON`] bytes, and written to `W` at once. What it keeps:
/// one frame's JSON, one sealed frame's buffer and the checker; the sealed bytes are
/// `W`'s (a `Vec<u8>` by default, or a file the manifest is spooled to, so the writer
/// stays flat however large the manifest).
pub struct ManifestWriter<'c, W: Write = Vec<u8>> {
    cipher: &'c ChunkCipher,
    cluster: ObjectId,
    snapshot: ObjectId,
    out: W,
    /// Bytes written to `out` so far.
    written: u64,
    /// The frame being sealed (reused).
    sealed: Vec<u8>,
    /// The open frame's JSON lines and entry count; frame 0 (the header) is held back
    /// until the second frame starts or the end, since the final flag is in its AAD.
    frame: Vec<u8>,
    in_frame: usize,
    index: u32,
    checker: EntryChecker,
    data_size: u64,
}

impl<'c> ManifestWriter<'c> {
    /// Starts the manifest of `snapshot` of `cluster`, sealed into memory.
    pub fn new(
        cipher: &'c ChunkCipher,
        cluster: ObjectId,
        snapshot: ObjectId,
        kind: ManifestKind,
        source: Option<String>,
    ) -> Result<Self, FormatError> {
        ManifestWriter::to(
            Vec::with_capacity(64 * 1024),
            cipher,
            cluster,
            snapshot,
            kind,
            source,
        )
    }
}

impl<'c, W: Write> ManifestWriter<'c, W> {
    /// Starts the manifest of `snapshot` of `cluster`, written to `out` a sealed frame
    /// at a time (a failed write is [`FormatError::Write`]).
    pub fn to(
        mut out: W,
        cipher: &'c ChunkCipher,
        cluster: ObjectId,
        snapshot: ObjectId,
        kind: ManifestKind,
        source: Option<String>,
    ) -> Result<Self, FormatError> {
        let header = ManifestHeader {
            version: MANIFEST_V2,
            kind,
            source,
        };
        header.check()?;
        let frame = serde_json::to_vec(&header)
            .map_err(|e| FormatError::Invalid(format!("manifest header: {e}")))?;
        out.write_all(MANIFEST_V2_MAGIC).map_err(write_failed)?;
        Ok(ManifestWriter {
            cipher,
            cluster,
            snapshot,
            out,
            written: MANIFEST_V2_MAGIC.len() as u64,
            sealed: Vec::new(),
            frame,
            in_frame: 0,
            index: 0,
            checker: EntryChecker::new(kind)?,
            data_size: 0,
        })
    }

    /// Entries so far.
    pub fn entries(&self) -> u64 {
        self.checker.count()
    }

    /// The sum of the entries' sizes so far.
    pub fn data_size(&self) -> u64 {
        self.data_size
    }

    /// Sealed bytes written so far.
    pub fn sealed_len(&self) -> u64 {
        self.written
    }

    /// Checks and appends one entry.
    pub fn push(&mut self, e: &ManifestEntry) -> Result<(), FormatError> {
        self.checker.check(e)?;
        let line = serde_json::to_vec(e)
            .map_err(|err| FormatError::Invalid(format!("manifest entry: {err}")))?;
        if line.len() > MAX_ENTRY_JSON {
            return Err(FormatError::TooLarge {
                what: "manifest entry",
                size: line.len() as u64,
            });
        }
        if self.index == 0
            || self.in_frame >= MAX_FRAME_ENTRIES
            || self.frame.len() >= FRAME_TARGET_JSON
        {
            self.seal_frame(false)?;
        }
        self.frame.extend_from_slice(&line);
        self.frame.push(b'\n');
        self.in_frame += 1;
        self.data_size += e.size;
        Ok(())
    }

    fn seal_frame(&mut self, last: bool) -> Result<(), FormatError> {
        let nonce = random_nonce()?;
        let out = &mut self.sealed;
        out.clear();
        out.extend_from_slice(&[0u8; FRAME_PREFIX_LEN]);
        out.extend_from_slice(&nonce);
        let body = out.len();
        out.reserve(zstd::compress_bound(self.frame.len()) + TAG_LEN);
        let mut cursor = Cursor::new(&mut *out);
        cursor.set_position(body as u64);
        zstd::bulk::Compressor::new(MANIFEST_ZSTD_LEVEL)
            .and_then(|mut c| c.compress_to_buffer(&self.frame, &mut cursor))
            .map_err(|e| FormatError::Invalid(format!("compressing a manifest frame: {e}")))?;
        let aad = frame_aad(self.cluster, self.snapshot, self.index, last);
        let tag = self
            .cipher
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut out[body..],
            )
            .map_err(|_| FormatError::TooLarge {
                what: "manifest frame",
                size: self.frame.len() as u64,
            })?;
        out.extend_from_slice(tag.as_ref());
        let n = u32::try_from(out.len() - FRAME_PREFIX_LEN).expect("bounded frame");
        out[..FRAME_PREFIX_LEN].copy_from_slice(&n.to_be_bytes());
        self.out.write_all(out).map_err(write_failed)?;
        self.written += out.len() as u64;
        self.index = self.index.checked_add(1).ok_or(FormatError::TooLarge {
            what: "manifest (frames)",
            size: u64::from(u32::MAX),
        })?;
        self.frame.clear();
        self.in_frame = 0;
        Ok(())
    }

    /// Seals the last frame, flushes `W` and returns it.
    pub fn finish(mut self) -> Result<W, FormatError> {
        self.checker.finish()?;
        self.seal_frame(true)?;
        self.out.flush().map_err(write_failed)?;
        Ok(self.out)
    }
}

/// A write of sealed manifest bytes that failed.
fn write_failed(e: std::io::Error) -> FormatError {
    FormatError::Write(e.kind(), e.to_string())
}

// ---------------------------------------------------------------------------------------
// Reading

/// What one frame held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Frame 0: the header.
    Header(ManifestHeader),
    /// A frame of entries, each checked.
    Entries(Vec<ManifestEntry>),
}

/// Opens the frames of one v2 manifest in order (sans I/O: the caller reads each
/// frame's 4-byte prefix, asks [`FrameReader::frame_len`] how long the frame is, reads
/// it and hands it to [`FrameReader::open`]). Refuses a frame out of place, another
/// snapshot's frame, anything after the final frame, and (at [`FrameReader::finish`])
/// a manifest without its final frame.
pub struct FrameReader {
    cluster: ObjectId,
    snapshot: ObjectId,
    index: u32,
    done: bool,
    checker: Option<EntryChecker>,
}

impl FrameReader {
    /// A reader of the manifest of `snapshot` of `cluster` (after its magic).
    pub fn new(cluster: ObjectId, snapshot: ObjectId) -> Self {
        FrameReader {
            cluster,
            snapshot,
            index: 0,
            done: false,
            checker: None,
        }
    }

    /// Whether the final frame has been opened.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The whole length of the frame whose prefix is `prefix` (prefix included).
    pub fn frame_len(prefix: [u8; FRAME_PREFIX_LEN]) -> Result<usize, FormatError> {
        let n = u32::from_be_bytes(prefix) as usize;
        if n > MAX_FRAME_SEALED {
            return Err(FormatError::TooLarge {
                what: "manifest frame",
                size: n as u64,
            });
        }
        if n < NONCE_LEN + TAG_LEN + 1 {
            return Err(FormatError::Invalid(format!(
                "manifest frame length {n} is below the minimum"
            )));
        }
        Ok(FRAME_PREFIX_LEN + n)
    }

    /// Opens the next frame (`frame`: its prefix and exactly the bytes it announces).
    pub fn open(&mut self, cipher: &ChunkCipher, frame: &[u8]) -> Result<Frame, FormatError> {
        let what = || {
            format!(
                "frame {} of the manifest of snapshot {}",
                self.index, self.snapshot
            )
        };
        if self.done {
            return Err(FormatError::Invalid(format!(
                "manifest of snapshot {}: bytes after its final frame",
                self.snapshot
            )));
        }
        let prefix = frame
            .first_chunk::<FRAME_PREFIX_LEN>()
            .ok_or(FormatError::Truncated { offset: 0, need: 4 })?;
        let len = Self::frame_len(*prefix)?;
        if frame.len() != len {
            return Err(FormatError::Truncated {
                offset: 0,
                need: len as u64,
            });
        }
        let nonce: [u8; NONCE_LEN] = frame[FRAME_PREFIX_LEN..FRAME_PREFIX_LEN + NONCE_LEN]
            .try_into()
            .expect("length checked");
        // The final flag is not stored: a frame opens under exactly one of the two AADs.
        let mut last = false;
        let mut plain = None;
        for flag in [false, true] {
            let aad = frame_aad(self.cluster, self.snapshot, self.index, flag);
            let mut buf = frame[FRAME_PREFIX_LEN + NONCE_LEN..].to_vec();
            if let Ok(p) = cipher.key.open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut buf,
            ) {
                let n = p.len();
                buf.truncate(n);
                plain = Some(buf);
                last = flag;
                break;
            }
        }
        let plain = plain.ok_or_else(|| FormatError::Authentication { what: what() })?;
        let json = decompress_bounded(&plain, MAX_FRAME_JSON as u64, "manifest frame")?;
        let out = if self.index == 0 {
            let header: ManifestHeader = serde_json::from_slice(&json)
                .map_err(|e| FormatError::Invalid(format!("{}: {e}", what())))?;
            header.check()?;
            self.checker = Some(EntryChecker::new(header.kind)?);
            Frame::Header(header)
        } else {
            let checker = self.checker.as_mut().expect("set by frame 0");
            let mut entries = Vec::new();
            for line in json.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                if entries.len() >= MAX_FRAME_ENTRIES {
                    return Err(FormatError::Invalid(format!(
                        "{}: more than {MAX_FRAME_ENTRIES} entries",
                        what()
                    )));
                }
                let e: ManifestEntry = serde_json::from_slice(line)
                    .map_err(|e| FormatError::Invalid(format!("{}: {e}", what())))?;
                checker.check(&e)?;
                entries.push(e);
            }
            Frame::Entries(entries)
        };
        self.index += 1;
        self.done = last;
        Ok(out)
    }

    /// Ends the reading: the final frame must have been opened.
    pub fn finish(&self) -> Result<(), FormatError> {
        if !self.done {
            return Err(FormatError::Invalid(format!(
                "manifest of snapshot {} ends before its final frame (truncated)",
                self.snapshot
            )));
        }
        self.checker.as_ref().map_or(Ok(()), EntryChecker::finish)
    }
}

/// Opens a whole v2 manifest held in memory (after its magic is checked): its header
/// and entries, as a [`Manifest`] (whose `version` is then [`MANIFEST_V2`]).
pub(super) fn open_whole(
    cipher: &ChunkCipher,
    cluster: ObjectId,
    snapshot: ObjectId,
    bytes: &[u8],
) -> Result<Manifest, FormatError> {
    let mut reader = FrameReader::new(cluster, snapshot);
    let mut offset = MANIFEST_V2_MAGIC.len();
    let mut manifest: Option<Manifest> = None;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let Some(prefix) = rest.first_chunk::<FRAME_PREFIX_LEN>() else {
            return Err(FormatError::Truncated {
                offset: offset as u64,
                need: FRAME_PREFIX_LEN as u64,
            });
        };
        let len = FrameReader::frame_len(*prefix)?;
        if rest.len() < len {
            return Err(FormatError::Truncated {
                offset: offset as u64,
                need: len as u64,
            });
        }
        match reader.open(cipher, &rest[..len])? {
            Frame::Header(h) => {
                manifest = Some(Manifest {
                    version: MANIFEST_V2,
                    kind: h.kind,
                    source: h.source,
                    entries: Vec::new(),
                })
            }
            Frame::Entries(e) => manifest
                .as_mut()
                .expect("frame 0 is the header")
                .entries
                .extend(e),
        }
        offset += len;
    }
    reader.finish()?;
    manifest.ok_or(FormatError::Truncated {
        offset: offset as u64,
        need: FRAME_PREFIX_LEN as u64,
    })
}

impl ChunkCipher {
    /// Seals a whole [`Manifest`] held in memory as a v2 manifest (what a writer that
    /// has every entry at hand, or a test, uses; others push entries into a
    /// [`ManifestWriter`] as they come).
    pub fn seal_manifest_v2(
        &self,
        cluster: ObjectId,
        snapshot: ObjectId,
        m: &Manifest,
    ) -> Result<Vec<u8>, FormatError> {
        let mut w = ManifestWriter::new(self, cluster, snapshot, m.kind, m.source.clone())?;
        for e in &m.entries {
            w.push(e)?;
        }
        w.finish()
    }
}
