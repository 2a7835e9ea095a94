//! Reading a tar stream as a tree snapshot, bounded, under the path rules of [`super::path`]:
//! the one reader of the service ingesting an upload and of the CLI restoring a download.
//!
//! The tar format is the `tar` crate's; what is ours is the policy. The crate's own
//! iteration reads a GNU long name, a GNU long link name or a PAX extended header of any
//! length into memory (a 256 MiB long name is 256 MiB of memory), so the entries are read
//! raw and those three are handled here, each refused before a byte of it is read when it
//! is longer than [`MAX_PATH_LEN`] (long names) or [`MAX_PAX`] (PAX headers). For each
//! entry [`read_tar`] hands over, the caller knows:
//!
//! - its path is canonical: relative, `/`-separated, without `.`, `..` or empty
//!   components, UTF-8, no NUL, at most [`MAX_PATH_LEN`] bytes (a `..` or a root refuses
//!   the entry rather than being skipped); the tree's root directory (`./`) itself is not
//!   handed over;
//! - it is a regular file, a directory or a symbolic link (hard links, devices, FIFOs
//!   and sparse files are refused), and a link's target is UTF-8 and
//!   [valid](super::path::is_valid_link_target);
//! - its mode and modification time parsed (a PAX `mtime` wins over the header's);
//! - a file's data is at most its size; fewer bytes mean the stream ended early. A
//!   directory or link hands over no data, whatever its header declares.
//!
//! After the last entry at most [`MAX_TRAILER`] bytes may follow (the end-of-archive
//! padding), and they are read, so that a stream cut short or a client still sending is
//! noticed. Errors ([`TarError`]) name the entry's byte offset in the stream and its path
//! as far as it is known; they carry no data of the stream beyond 300 bytes of a path.
//!
//! ```
//! use headlock_core::snapshot::EntryType;
//! use headlock_core::snapshot::tar_stream::{TarError, read_tar};
//!
//! let mut b = tar::Builder::new(Vec::new());
//! let mut h = tar::Header::new_gnu();
//! h.set_size(2);
//! h.set_mode(0o644);
//! b.append_data(&mut h, "./db/a", &b"hi"[..]).unwrap();
//! let tar = b.into_inner().unwrap();
//!
//! let mut seen = Vec::new();
//! read_tar(&tar[..], |mut e| -> Result<(), TarError> {
//!     let mut data = Vec::new();
//!     std::io::Read::read_to_end(e.data(), &mut data).unwrap();
//!     seen.push((e.path.clone(), e.kind, data));
//!     Ok(())
//! })
//! .unwrap();
//! assert_eq!(seen, [("db/a".to_string(), EntryType::File, b"hi".to_vec())]);
//! ```

use std::io::{self, Read};

use super::EntryType;
use super::path::{MAX_PATH_LEN, canonical_tar_path, is_valid_link_target};

/// Largest PAX extended header read (its records are for one entry).
pub const MAX_PAX: u64 = 64 * 1024;
/// Most bytes read after the end-of-archive marker (the rest of its padding).
pub const MAX_TRAILER: u64 = 1024 * 1024;
/// Most bytes of a path shown in an error.
const SHOWN_PATH: usize = 300;

/// Why a tar stream is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TarError {
    /// The stream could not be read at this point (the transfer failed, or the bytes are
    /// not tar: a bad header checksum shows here).
    #[error("reading the tar stream near byte {offset}: {source}")]
    Stream {
        /// Where in the stream.
        offset: u64,
        /// The error.
        source: io::Error,
    },
    /// An entry is malformed.
    #[error("tar stream, entry at byte {offset}: {reason}")]
    Malformed {
        /// Offset of the entry's header in the stream.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An entry is well-formed but not accepted (its path, its type, its place).
    #[error("tar stream, entry at byte {offset} ({path}): refused: {reason}")]
    Refused {
        /// Offset of the entry's header in the stream.
        offset: u64,
        /// The entry's path, as printable text (at most 300 bytes of it).
        path: String,
        /// Why.
        reason: String,
    },
}

/// One entry of the tree, checked (see the module documentation), with its data.
pub struct TarEntry<'a> {
    /// Offset of the entry's header in the stream (of its first announcing header, a
    /// long name or PAX header, if any).
    pub offset: u64,
    /// Offset of its data in the stream.
    pub data_offset: u64,
    /// The canonical path, never empty.
    pub path: String,
    /// File, directory or symbolic link.
    pub kind: EntryType,
    /// The mode bits as the header has them (callers mask what they keep).
    pub mode: u32,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
    /// Size of the data (0 for directories and links).
    pub size: u64,
    /// A symbolic link's target.
    pub target: Option<String>,
    data: Box<dyn Read + 'a>,
}

impl TarEntry<'_> {
    /// The file's data: at most [`TarEntry::size`] bytes, fewer if the stream ends early.
    pub fn data(&mut self) -> &mut dyn Read {
        &mut *self.data
    }

    /// The error refusing this entry, for a reason of the caller's.
    pub fn refused(&self, reason: impl Into<String>) -> TarError {
        TarError::Refused {
            offset: self.offset,
            path: shown(self.path.as_bytes()),
            reason: reason.into(),
        }
    }

    /// The error for a malformed entry, for a reason of the caller's (e.g. its data
    /// ends early).
    pub fn malformed(&self, reason: impl Into<String>) -> TarError {
        TarError::Malformed {
            offset: self.offset,
            reason: reason.into(),
        }
    }
}

/// Reads the tar stream `input` to its end, handing each entry of the tree to `each` in
/// stream order; stops at the first error, `each`'s or the stream's. What is checked
/// before an entry is handed over is in the module documentation.
pub fn read_tar<R, E>(
    input: R,
    mut each: impl FnMut(TarEntry<'_>) -> Result<(), E>,
) -> Result<(), E>
where
    R: Read,
    E: From<TarError>,
{
    let mut archive = tar::Archive::new(input);
    let mut reader = Reader::default();
    let entries = archive
        .entries()
        .map_err(|source| TarError::Stream { offset: 0, source })?
        .raw(true);
    for entry in entries {
        let entry = entry.map_err(|source| TarError::Stream {
            offset: reader.next_offset,
            source,
        })?;
        if let Some(checked) = reader.entry(entry)? {
            each(checked)?;
        }
    }
    reader.end_of_entries()?;
    read_trailer(archive.into_inner(), reader.next_offset)?;
    Ok(())
}

/// Names and attributes announced by GNU long name/link entries and PAX headers for the
/// entry that follows them.
#[derive(Debug, Default)]
struct Pending {
    /// Offset of the first announcing header.
    offset: Option<u64>,
    name: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    mtime: Option<i64>,
    size: Option<u64>,
}

#[derive(Default)]
struct Reader {
    pending: Pending,
    /// Where the entry after the current one starts, for errors reading it.
    next_offset: u64,
}

impl Reader {
    /// One raw entry: recorded if it announces the next one, else checked and returned
    /// (`None` for the tree's root directory).
    fn entry<'a, R: Read + 'a>(
        &mut self,
        mut entry: tar::Entry<'a, R>,
    ) -> Result<Option<TarEntry<'a>>, TarError> {
        let offset = entry.raw_header_position();
        let data_offset = entry.raw_file_position();
        let size = entry.size();
        self.next_offset = data_offset.saturating_add(size.div_ceil(512).saturating_mul(512));
        let header = entry.header().clone();
        let kind = header.entry_type();
        if self.announcement(&mut entry, kind, size, offset)? {
            self.pending.offset.get_or_insert(offset);
            return Ok(None);
        }
        let pending = std::mem::take(&mut self.pending);
        let offset = pending.offset.unwrap_or(offset);
        let raw_path = pending
            .name
            .unwrap_or_else(|| header.path_bytes().into_owned());
        let refused = |reason: String| TarError::Refused {
            offset,
            path: shown(&raw_path),
            reason,
        };
        let path = canonical_tar_path(&raw_path).map_err(|e| refused(e.to_string()))?;
        let kind = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => EntryType::File,
            tar::EntryType::Directory => EntryType::Dir,
            tar::EntryType::Symlink => EntryType::Symlink,
            other => {
                return Err(refused(format!(
                    "entry type {other:?}: only regular files, directories and symbolic links are accepted"
                )));
            }
        };
        if path.is_empty() {
            if kind == EntryType::Dir {
                return Ok(None); // the tree's root, "./"
            }
            return Err(refused("an empty path".into()));
        }
        if let Some(declared) = pending.size
            && declared != size
        {
            return Err(malformed(
                offset,
                format!("a PAX size of {declared} bytes for an entry of {size} (not supported)"),
            ));
        }
        let mtime = match pending.mtime {
            Some(t) => t,
            None => header
                .mtime()
                .map_err(|e| malformed(offset, format!("bad modification time: {e}")))?
                .min(i64::MAX as u64) as i64,
        };
        let mode = header
            .mode()
            .map_err(|e| malformed(offset, format!("bad mode: {e}")))?;
        let target = if kind == EntryType::Symlink {
            let raw = pending
                .link
                .or_else(|| header.link_name_bytes().map(|l| l.into_owned()))
                .unwrap_or_default();
            if !is_valid_link_target(&raw) {
                return Err(refused(format!(
                    "a symbolic link target of {} bytes (1 to {MAX_PATH_LEN}, no NUL)",
                    raw.len()
                )));
            }
            Some(
                String::from_utf8(raw)
                    .map_err(|_| refused("a symbolic link target that is not UTF-8".into()))?,
            )
        } else {
            None
        };
        Ok(Some(TarEntry {
            offset,
            data_offset,
            path,
            kind,
            mode,
            mtime,
            size: if kind == EntryType::File { size } else { 0 },
            target,
            // A directory or link has no data, whatever its header declares; the
            // archive skips the declared bytes to the next header.
            data: if kind == EntryType::File {
                Box::new(entry)
            } else {
                Box::new(io::empty())
            },
        }))
    }

    /// Reads a GNU long name or long link, or a PAX header, into [`Pending`] for the
    /// entry that follows; skips a global PAX header. True if `kind` was one of them.
    fn announcement<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        kind: tar::EntryType,
        size: u64,
        offset: u64,
    ) -> Result<bool, TarError> {
        match kind {
            tar::EntryType::GNULongName => {
                self.pending.name = Some(read_meta(entry, size, MAX_PATH_LEN as u64, offset)?);
            }
            tar::EntryType::GNULongLink => {
                self.pending.link = Some(read_meta(entry, size, MAX_PATH_LEN as u64, offset)?);
            }
            tar::EntryType::XHeader => {
                let data = read_meta(entry, size, MAX_PAX, offset)?;
                apply_pax(&data, &mut self.pending).map_err(|r| malformed(offset, r))?;
            }
            tar::EntryType::XGlobalHeader => {
                if size > MAX_PAX {
                    return Err(malformed(
                        offset,
                        format!("a global PAX header of {size} bytes (at most {MAX_PAX})"),
                    ));
                }
                // Global defaults (e.g. a comment) change nothing here; the reader skips
                // the data.
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// After the last entry: a long name, link or PAX header with no entry for it is an
    /// error.
    fn end_of_entries(&self) -> Result<(), TarError> {
        if self.pending.offset.is_some() {
            return Err(malformed(
                self.next_offset,
                "the stream ends after a long name or PAX header with no entry for it".into(),
            ));
        }
        Ok(())
    }
}

fn malformed(offset: u64, reason: String) -> TarError {
    TarError::Malformed { offset, reason }
}

/// At most [`SHOWN_PATH`] bytes of a path, as printable text.
fn shown(raw: &[u8]) -> String {
    String::from_utf8_lossy(&raw[..raw.len().min(SHOWN_PATH)])
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Reads what follows the end-of-archive marker (its padding) to the end of the data,
/// refusing more than [`MAX_TRAILER`] bytes.
fn read_trailer(mut rest: impl Read, offset: u64) -> Result<(), TarError> {
    let extra = io::copy(&mut (&mut rest).take(MAX_TRAILER + 1), &mut io::sink())
        .map_err(|source| TarError::Stream { offset, source })?;
    if extra > MAX_TRAILER {
        return Err(malformed(
            offset,
            format!("more than {MAX_TRAILER} bytes after the end of the archive"),
        ));
    }
    Ok(())
}

/// Reads the data of a GNU long name/link or PAX entry, refusing more than `max` bytes
/// before reading any; trailing NULs removed.
fn read_meta<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    size: u64,
    max: u64,
    offset: u64,
) -> Result<Vec<u8>, TarError> {
    if size > max {
        return Err(malformed(
            offset,
            format!("a long name or extended header of {size} bytes (at most {max})"),
        ));
    }
    let mut data = Vec::with_capacity(size as usize);
    entry
        .take(size)
        .read_to_end(&mut data)
        .map_err(|source| TarError::Stream { offset, source })?;
    if data.len() as u64 != size {
        return Err(malformed(
            offset,
            "the stream ends inside an extended header".into(),
        ));
    }
    while data.last() == Some(&0) {
        data.pop();
    }
    Ok(data)
}

/// Applies a PAX extended header's `path`, `linkpath`, `mtime` and `size` records to the
/// next entry (other records are ignored).
fn apply_pax(data: &[u8], pending: &mut Pending) -> Result<(), String> {
    let mut rest = data;
    while !rest.is_empty() {
        // "<length> <key>=<value>\n", the length counting the whole record.
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or("a PAX record without a length")?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("a PAX record with a bad length")?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err("a PAX record whose length does not fit".into());
        }
        let record = &rest[space + 1..len - 1];
        rest = &rest[len..];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or("a PAX record without '='")?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        match key {
            b"path" => pending.name = Some(value.to_vec()),
            b"linkpath" => pending.link = Some(value.to_vec()),
            b"mtime" => {
                let text =
                    std::str::from_utf8(value).map_err(|_| "a PAX mtime that is not text")?;
                let whole = text.split('.').next().unwrap_or("");
                pending.mtime = Some(whole.parse().map_err(|_| "a bad PAX mtime")?);
            }
            b"size" => {
                let text = std::str::from_utf8(value).map_err(|_| "a PAX size that is not text")?;
                pending.size = Some(text.parse().map_err(|_| "a bad PAX size")?);
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
