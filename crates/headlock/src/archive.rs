//! Tree snapshots as tar streams: [`pack_tree`] turns a directory into the tar stream
//! `headlock backup` uploads, [`unpack_tree`] turns the tar stream a restore downloads
//! back into a directory.
//!
//! The tar format is the `tar` crate's (GNU headers, GNU long names and link names);
//! what is ours is the policy around it:
//!
//! - Packing walks the tree itself (depth first, names sorted, so that unchanged data
//!   gives the same stream and deduplicates), never follows symbolic links, keeps
//!   regular files, directories and symbolic links with their mode and modification
//!   time, skips other kinds (sockets, FIFOs, devices) with a warning, and fails if a
//!   file shrinks while it is read rather than padding it with zeros. Names must be
//!   UTF-8 (the service requires it).
//! - Unpacking reads the entries raw, so that every length is bounded before anything
//!   is read into memory (a GNU long name or PAX header over [`MAX_PATH`] or
//!   [`MAX_PAX`] bytes is refused, where the crate's own unpacking would read any
//!   length), refuses (rather than skips) absolute paths and `..`, never writes
//!   through a symbolic link (a parent that is not a real directory is refused; files
//!   are created with `O_EXCL` after removing what was there), drops set-user-ID and
//!   set-group-ID bits, and gives directories their mode and time after everything in
//!   them is written. Errors name the entry and its byte offset in the stream.
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! let mut tar = Vec::new();
//! pack_tree(Path::new("/data/db"), &mut tar, &Counter::default(), &mut |w| eprintln!("{w}"))?;
//! unpack_tree(&tar[..], Path::new("/restore/db"))?;
//! # Ok(()) }
//! ```

use std::ffi::OsStr;
use std::fs::{self, File, FileTimes, OpenOptions, Permissions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use tar::EntryType;

use crate::progress::Counter;

/// Longest path or symbolic link target, in bytes (the service's limit).
pub const MAX_PATH: usize = 4096;
/// Largest PAX extended header read.
pub const MAX_PAX: u64 = 64 * 1024;
/// Most directories one restore gives their metadata to at the end (their list is
/// kept in memory until then).
pub const MAX_DIRECTORIES: usize = 1 << 20;
/// Most bytes read after the end-of-archive marker (the rest of its padding).
const MAX_TRAILER: u64 = 1024 * 1024;
/// Buffer for file data, both ways.
const IO_BUF: usize = 256 * 1024;
/// Mode bits restored: permissions and the sticky bit, not set-user-ID or
/// set-group-ID.
const MODE_MASK: u32 = 0o1777;

/// Why packing or unpacking a tree failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    // ---- the tree being backed up
    /// A directory could not be listed.
    #[error("listing {path}: {source}")]
    List {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A file or link could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A file became shorter while it was read.
    #[error(
        "{path} shrank while it was read ({expected} bytes when opened, {got} read): back up a stopped or fsync-locked copy"
    )]
    Shrank {
        /// The file.
        path: PathBuf,
        /// Its size when opened.
        expected: u64,
        /// What could be read.
        got: u64,
    },
    /// A name or link target is not UTF-8.
    #[error("{path}: {what} is not UTF-8, which snapshots require")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// `the name` or `the link target`.
        what: &'static str,
    },
    /// The tar stream could not be written (the upload stopped).
    #[error("writing the tar stream: {source}")]
    Write {
        /// The error.
        source: io::Error,
    },

    // ---- the stream being restored
    /// The stream could not be read at all at this point (the download failed or the
    /// stream is not tar).
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
    /// An entry is well-formed but not restored, for safety.
    #[error("tar stream, entry at byte {offset} ({path}): refused: {reason}")]
    Refused {
        /// Offset of the entry's header in the stream.
        offset: u64,
        /// The entry's path, as printable text.
        path: String,
        /// Why.
        reason: String,
    },
    /// Writing the restored tree failed.
    #[error("restoring {path}: {source}")]
    Restore {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// What [`pack_tree`] put in the stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackStats {
    /// Regular files.
    pub files: u64,
    /// Directories (the root not counted).
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Entries skipped (sockets, FIFOs, devices).
    pub skipped: u64,
    /// Bytes of file data.
    pub bytes: u64,
}

/// Writes the tree under `root` to `out` as a tar stream: paths relative to `root`,
/// depth first with names sorted. `read` counts file bytes as they are read; `warn`
/// receives a line for each skipped entry.
pub fn pack_tree<W: Write>(
    root: &Path,
    out: W,
    read: &Counter,
    warn: &mut dyn FnMut(&str),
) -> Result<PackStats, ArchiveError> {
    let mut builder = tar::Builder::new(out);
    let mut stats = PackStats::default();
    // Directories still to list, relative to `root`; the next one is at the end.
    let mut pending: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel_dir) = pending.pop() {
        let dir = root.join(&rel_dir);
        let list_err = |source| ArchiveError::List {
            path: dir.clone(),
            source,
        };
        let mut names = fs::read_dir(&dir)
            .map_err(list_err)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(list_err)?;
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let rel = rel_dir.join(&name);
            let path = root.join(&rel);
            let Some(rel_str) = rel.to_str() else {
                return Err(ArchiveError::NotUtf8 {
                    path,
                    what: "the name",
                });
            };
            let meta = fs::symlink_metadata(&path).map_err(|source| ArchiveError::Read {
                path: path.clone(),
                source,
            })?;
            let kind = meta.file_type();
            if kind.is_dir() {
                let mut header = header_for(&meta);
                builder
                    .append_data(&mut header, rel_str, io::empty())
                    .map_err(|source| ArchiveError::Write { source })?;
                stats.dirs += 1;
                subdirs.push(rel);
            } else if kind.is_file() {
                stats.bytes += append_file(&mut builder, &path, rel_str, read)?;
                stats.files += 1;
            } else if kind.is_symlink() {
                let target = fs::read_link(&path).map_err(|source| ArchiveError::Read {
                    path: path.clone(),
                    source,
                })?;
                if target.to_str().is_none() {
                    return Err(ArchiveError::NotUtf8 {
                        path,
                        what: "the link target",
                    });
                }
                let mut header = header_for(&meta);
                builder
                    .append_link(&mut header, rel_str, &target)
                    .map_err(|source| ArchiveError::Write { source })?;
                stats.symlinks += 1;
            } else {
                warn(&format!(
                    "skipping {}: not a regular file, directory or symbolic link",
                    path.display()
                ));
                stats.skipped += 1;
            }
        }
        // Depth first, in name order: the first subdirectory is listed next.
        pending.extend(subdirs.into_iter().rev());
    }
    builder
        .into_inner()
        .map_err(|source| ArchiveError::Write { source })?;
    Ok(stats)
}

/// A GNU header with the entry's type, mode, owner and modification time (size 0 for
/// directories and links).
fn header_for(meta: &fs::Metadata) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    // The permission bits only: the file type is the entry type's business.
    header.set_mode(meta.mode() & 0o7777);
    header
}

/// Appends one regular file, read through an [`ExactReader`]; returns its size.
fn append_file<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &Path,
    rel: &str,
    read: &Counter,
) -> Result<u64, ArchiveError> {
    let read_err = |source| ArchiveError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    // The metadata of what was opened, so size and time describe the data read.
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(read_err(io::Error::other(
            "it stopped being a regular file while the tree was read",
        )));
    }
    let size = meta.len();
    let mut header = header_for(&meta);
    header.set_size(size);
    let mut exact = ExactReader {
        file,
        path,
        expected: size,
        remaining: size,
        counter: read,
        error: None,
    };
    let result = builder.append_data(
        &mut header,
        rel,
        BufReader::with_capacity(IO_BUF, &mut exact),
    );
    match (result, exact.error) {
        (Ok(()), _) => Ok(size),
        // The reader's own error says more than the copy's.
        (Err(_), Some(e)) => Err(e),
        (Err(source), None) => Err(ArchiveError::Write { source }),
    }
}

/// Reads exactly `expected` bytes of a file: fewer is [`ArchiveError::Shrank`], and
/// bytes past `expected` (the file grew) are left out.
struct ExactReader<'a> {
    file: File,
    path: &'a Path,
    expected: u64,
    remaining: u64,
    counter: &'a Counter,
    error: Option<ArchiveError>,
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        match self.file.read(&mut buf[..max]) {
            Ok(0) => {
                let got = self.expected - self.remaining;
                self.error = Some(ArchiveError::Shrank {
                    path: self.path.to_path_buf(),
                    expected: self.expected,
                    got,
                });
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file shrank",
                ))
            }
            Ok(n) => {
                self.remaining -= n as u64;
                self.counter.add(n as u64);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.error = Some(ArchiveError::Read {
                    path: self.path.to_path_buf(),
                    source: e,
                });
                Err(copy)
            }
        }
    }
}

/// Bytes of regular files under `root` (for the progress bar's total); best effort:
/// what cannot be read counts as nothing, and the walk reports it later.
pub fn tree_size(root: &Path) -> u64 {
    let mut total = 0u64;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() {
                total = total.saturating_add(meta.len());
            }
        }
    }
    total
}

/// What [`unpack_tree`] restored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Bytes of file data.
    pub bytes: u64,
}

/// Names and attributes announced by GNU long name/link entries and PAX headers for
/// the entry that follows them.
#[derive(Debug, Default)]
struct Pending {
    name: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    mtime: Option<i64>,
    size: Option<u64>,
}

/// A directory whose mode and time are set at the end.
struct DeferredDir {
    path: PathBuf,
    mode: u32,
    mtime: SystemTime,
}

/// Restores the tar stream `input` into `dest` (which must exist). See the module
/// documentation for what is refused. Reads `input` to its end, so that a stream cut
/// short after the end-of-archive marker is noticed too.
pub fn unpack_tree<R: Read>(input: R, dest: &Path) -> Result<UnpackStats, ArchiveError> {
    let mut archive = tar::Archive::new(input);
    let mut stats = UnpackStats::default();
    let mut dirs: Vec<DeferredDir> = Vec::new();
    {
        let entries = archive
            .entries()
            .map_err(|source| ArchiveError::Stream { offset: 0, source })?
            .raw(true);
        let mut pending = Pending::default();
        let mut checked_parent: Option<PathBuf> = None;
        let mut next_offset = 0u64;
        let mut buf = vec![0u8; IO_BUF];
        for entry in entries {
            let mut entry = entry.map_err(|source| ArchiveError::Stream {
                offset: next_offset,
                source,
            })?;
            let offset = entry.raw_header_position();
            let size = entry.size();
            next_offset = entry
                .raw_file_position()
                .saturating_add(size.div_ceil(512).saturating_mul(512));
            let header = entry.header().clone();
            let kind = header.entry_type();
            let malformed = |reason: String| ArchiveError::Malformed { offset, reason };
            match kind {
                EntryType::GNULongName => {
                    pending.name = Some(read_meta(&mut entry, size, MAX_PATH as u64, offset)?);
                    continue;
                }
                EntryType::GNULongLink => {
                    pending.link = Some(read_meta(&mut entry, size, MAX_PATH as u64, offset)?);
                    continue;
                }
                EntryType::XHeader => {
                    let data = read_meta(&mut entry, size, MAX_PAX, offset)?;
                    apply_pax(&data, &mut pending).map_err(malformed)?;
                    continue;
                }
                EntryType::XGlobalHeader => {
                    if size > MAX_PAX {
                        return Err(malformed(format!(
                            "a global PAX header of {size} bytes (at most {MAX_PAX})"
                        )));
                    }
                    // Global defaults (e.g. a comment) change nothing here.
                    continue;
                }
                _ => {}
            }
            let raw_path = pending
                .name
                .take()
                .unwrap_or_else(|| header.path_bytes().into_owned());
            let shown = String::from_utf8_lossy(&raw_path[..raw_path.len().min(300)]).into_owned();
            let refused = |reason: String| ArchiveError::Refused {
                offset,
                path: shown.clone(),
                reason,
            };
            let rel = safe_path(&raw_path).map_err(|r| refused(r.to_string()))?;
            if let Some(declared) = pending.size.take()
                && declared != size
            {
                return Err(malformed(format!(
                    "a PAX size of {declared} bytes for an entry of {size} (not supported)"
                )));
            }
            let mtime_secs = match pending.mtime.take() {
                Some(t) => t,
                None => header
                    .mtime()
                    .map_err(|e| malformed(format!("bad modification time: {e}")))?
                    .min(i64::MAX as u64) as i64,
            };
            let mtime = system_time(mtime_secs);
            let mode = header
                .mode()
                .map_err(|e| malformed(format!("bad mode: {e}")))?
                & MODE_MASK;
            let link = pending.link.take();
            if rel.as_os_str().is_empty() {
                if kind == EntryType::Directory {
                    continue; // the tree's root, "./": `dest` is it
                }
                return Err(refused("an empty path".into()));
            }
            let full = dest.join(&rel);
            let restore_err = |source| ArchiveError::Restore {
                path: full.clone(),
                source,
            };
            if let Some(parent) = rel.parent()
                && checked_parent.as_deref() != Some(parent)
            {
                ensure_parents(dest, parent).map_err(|e| match e {
                    ParentError::NotADirectory(p) => refused(format!(
                        "{} is not a directory (a symbolic link or a file): nothing is written through it",
                        p.display()
                    )),
                    ParentError::Io(p, source) => ArchiveError::Restore { path: p, source },
                })?;
                checked_parent = Some(parent.to_path_buf());
            }
            match kind {
                EntryType::Regular | EntryType::Continuous => {
                    clear_non_dir(&full).map_err(|e| match e {
                        ClearError::IsDir => refused("a directory of that name exists".into()),
                        ClearError::Io(source) => restore_err(source),
                    })?;
                    let mut file = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&full)
                        .map_err(restore_err)?;
                    let mut written = 0u64;
                    while written < size {
                        let want = usize::try_from(size - written)
                            .unwrap_or(usize::MAX)
                            .min(buf.len());
                        let n = entry.read(&mut buf[..want]).map_err(|source| {
                            ArchiveError::Stream {
                                offset: entry.raw_file_position() + written,
                                source,
                            }
                        })?;
                        if n == 0 {
                            return Err(malformed(format!(
                                "the stream ends inside the entry ({written} of {size} bytes)"
                            )));
                        }
                        file.write_all(&buf[..n]).map_err(restore_err)?;
                        written += n as u64;
                    }
                    file.set_permissions(Permissions::from_mode(mode))
                        .map_err(restore_err)?;
                    file.set_times(FileTimes::new().set_modified(mtime).set_accessed(mtime))
                        .map_err(restore_err)?;
                    stats.files += 1;
                    stats.bytes += size;
                }
                EntryType::Directory => {
                    match fs::symlink_metadata(&full) {
                        Ok(m) if m.is_dir() => {}
                        Ok(_) => {
                            fs::remove_file(&full).map_err(restore_err)?;
                            fs::create_dir(&full).map_err(restore_err)?;
                        }
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            fs::create_dir(&full).map_err(restore_err)?;
                        }
                        Err(e) => return Err(restore_err(e)),
                    }
                    if dirs.len() >= MAX_DIRECTORIES {
                        return Err(refused(format!(
                            "more than {MAX_DIRECTORIES} directories in one restore"
                        )));
                    }
                    dirs.push(DeferredDir {
                        path: full,
                        mode,
                        mtime,
                    });
                    stats.dirs += 1;
                }
                EntryType::Symlink => {
                    let target = link
                        .or_else(|| header.link_name_bytes().map(|l| l.into_owned()))
                        .unwrap_or_default();
                    if target.is_empty() || target.len() > MAX_PATH || target.contains(&0) {
                        return Err(refused(format!(
                            "a symbolic link target of {} bytes (1 to {MAX_PATH}, no NUL)",
                            target.len()
                        )));
                    }
                    clear_non_dir(&full).map_err(|e| match e {
                        ClearError::IsDir => refused("a directory of that name exists".into()),
                        ClearError::Io(source) => restore_err(source),
                    })?;
                    std::os::unix::fs::symlink(OsStr::from_bytes(&target), &full)
                        .map_err(restore_err)?;
                    stats.symlinks += 1;
                }
                other => {
                    return Err(refused(format!(
                        "entry type {:?}: only regular files, directories and symbolic links are restored",
                        other
                    )));
                }
            }
        }
        if pending.name.is_some() || pending.link.is_some() {
            return Err(ArchiveError::Malformed {
                offset: next_offset,
                reason: "the stream ends after a long name with no entry for it".into(),
            });
        }
    }
    // The rest: the end-of-archive padding, then the end of the data.
    let mut rest = archive.into_inner();
    let extra =
        io::copy(&mut (&mut rest).take(MAX_TRAILER + 1), &mut io::sink()).map_err(|source| {
            ArchiveError::Stream {
                offset: u64::MAX,
                source,
            }
        })?;
    if extra > MAX_TRAILER {
        return Err(ArchiveError::Malformed {
            offset: u64::MAX,
            reason: format!("more than {MAX_TRAILER} bytes after the end of the archive"),
        });
    }
    // Times first (opening a directory needs its mode to allow it), then modes; the
    // deepest (latest) first, so that nothing written later changes a time set.
    for d in dirs.iter().rev() {
        File::open(&d.path)
            .and_then(|f| f.set_times(FileTimes::new().set_modified(d.mtime).set_accessed(d.mtime)))
            .map_err(|source| ArchiveError::Restore {
                path: d.path.clone(),
                source,
            })?;
    }
    for d in dirs.iter().rev() {
        fs::set_permissions(&d.path, Permissions::from_mode(d.mode)).map_err(|source| {
            ArchiveError::Restore {
                path: d.path.clone(),
                source,
            }
        })?;
    }
    Ok(stats)
}

/// Reads the data of a GNU long name/link or PAX entry, refusing more than `max`
/// bytes before reading any; trailing NULs removed.
fn read_meta<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    size: u64,
    max: u64,
    offset: u64,
) -> Result<Vec<u8>, ArchiveError> {
    if size > max {
        return Err(ArchiveError::Malformed {
            offset,
            reason: format!("a long name or extended header of {size} bytes (at most {max})"),
        });
    }
    let mut data = Vec::with_capacity(size as usize);
    entry
        .take(size)
        .read_to_end(&mut data)
        .map_err(|source| ArchiveError::Stream { offset, source })?;
    if data.len() as u64 != size {
        return Err(ArchiveError::Malformed {
            offset,
            reason: "the stream ends inside an extended header".into(),
        });
    }
    while data.last() == Some(&0) {
        data.pop();
    }
    Ok(data)
}

/// Applies a PAX extended header's `path`, `linkpath`, `mtime` and `size` records to
/// the next entry (other records are ignored).
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

/// The path of an entry as a relative path with only normal components; the reason
/// it is refused otherwise.
fn safe_path(raw: &[u8]) -> Result<PathBuf, &'static str> {
    if raw.len() > MAX_PATH {
        return Err("a path longer than 4096 bytes");
    }
    if raw.contains(&0) {
        return Err("a path with a NUL byte");
    }
    let mut out = PathBuf::new();
    for c in Path::new(OsStr::from_bytes(raw)).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err("a path with `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("an absolute path"),
        }
    }
    Ok(out)
}

fn system_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

enum ParentError {
    NotADirectory(PathBuf),
    Io(PathBuf, io::Error),
}

/// Makes sure every directory of `rel_parent` under `dest` is a real directory
/// (creating missing ones), never a symbolic link.
fn ensure_parents(dest: &Path, rel_parent: &Path) -> Result<(), ParentError> {
    let mut at = dest.to_path_buf();
    for c in rel_parent.components() {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(ParentError::NotADirectory(at)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(&at) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if !fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir()) {
                        return Err(ParentError::NotADirectory(at));
                    }
                }
                Err(e) => return Err(ParentError::Io(at, e)),
            },
            Err(e) => return Err(ParentError::Io(at, e)),
        }
    }
    Ok(())
}

enum ClearError {
    IsDir,
    Io(io::Error),
}

/// Removes a file or link at `path` (a `--force` restore over an earlier one), so that
/// the new entry is created, not written through whatever was there.
fn clear_non_dir(path: &Path) -> Result<(), ClearError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(ClearError::IsDir),
        Ok(_) => fs::remove_file(path).map_err(ClearError::Io),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ClearError::Io(e)),
    }
}

#[cfg(test)]
mod tests;
