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
//!   is read into memory (a GNU long name or PAX header over [`MAX_PATH_LEN`] or
//!   [`MAX_PAX`] bytes is refused, where the crate's own unpacking would read any
//!   length), refuses (rather than skips) absolute paths and `..` (the path rules of
//!   `headlock_core::snapshot::path`, which the service applies too), never writes
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
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use headlock_core::snapshot::path::{
    MAX_PATH_LEN, PathError, check_raw, is_valid_link_target, tar_components,
};
use tar::EntryType;

use crate::progress::Counter;

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

/// What a walk of a tree ([`walk_tree`]) does with each entry; `rel` is the path
/// relative to the root, `/`-separated and UTF-8.
pub trait TreeVisitor {
    /// A directory (before anything in it).
    fn dir(&mut self, rel: &str, meta: &fs::Metadata) -> Result<(), ArchiveError>;
    /// A regular file at `path`; returns the bytes read of it (see [`open_exact`]).
    fn file(&mut self, rel: &str, path: &Path, read: &Counter) -> Result<u64, ArchiveError>;
    /// A symbolic link to `target` (UTF-8).
    fn symlink(
        &mut self,
        rel: &str,
        meta: &fs::Metadata,
        target: &Path,
    ) -> Result<(), ArchiveError>;
}

/// Walks the tree under `root`: depth first with names sorted, never following
/// symbolic links; other kinds (sockets, FIFOs, devices) are skipped with a line to
/// `warn`. Names and link targets must be UTF-8.
pub fn walk_tree(
    root: &Path,
    visitor: &mut dyn TreeVisitor,
    read: &Counter,
    warn: &mut dyn FnMut(&str),
) -> Result<PackStats, ArchiveError> {
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
                visitor.dir(rel_str, &meta)?;
                stats.dirs += 1;
                subdirs.push(rel);
            } else if kind.is_file() {
                stats.bytes += visitor.file(rel_str, &path, read)?;
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
                visitor.symlink(rel_str, &meta, &target)?;
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
    Ok(stats)
}

/// Writes the tree under `root` to `out` as a tar stream: paths relative to `root`,
/// depth first with names sorted ([`walk_tree`]). `read` counts file bytes as they are
/// read; `warn` receives a line for each skipped entry.
pub fn pack_tree<W: Write>(
    root: &Path,
    out: W,
    read: &Counter,
    warn: &mut dyn FnMut(&str),
) -> Result<PackStats, ArchiveError> {
    let mut tar = TarVisitor(tar::Builder::new(out));
    let stats = walk_tree(root, &mut tar, read, warn)?;
    tar.0
        .into_inner()
        .map_err(|source| ArchiveError::Write { source })?;
    Ok(stats)
}

/// Each entry of a walk appended to a tar stream.
struct TarVisitor<W: Write>(tar::Builder<W>);

impl<W: Write> TreeVisitor for TarVisitor<W> {
    fn dir(&mut self, rel: &str, meta: &fs::Metadata) -> Result<(), ArchiveError> {
        let mut header = header_for(meta);
        self.0
            .append_data(&mut header, rel, io::empty())
            .map_err(|source| ArchiveError::Write { source })
    }

    fn file(&mut self, rel: &str, path: &Path, read: &Counter) -> Result<u64, ArchiveError> {
        append_file(&mut self.0, path, rel, read)
    }

    fn symlink(
        &mut self,
        rel: &str,
        meta: &fs::Metadata,
        target: &Path,
    ) -> Result<(), ArchiveError> {
        let mut header = header_for(meta);
        self.0
            .append_link(&mut header, rel, target)
            .map_err(|source| ArchiveError::Write { source })
    }
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
    let (mut exact, meta) = open_exact(path, read)?;
    let size = meta.len();
    let mut header = header_for(&meta);
    header.set_size(size);
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

/// Opens a regular file for reading exactly the size its metadata (of what was
/// opened, so size and time describe the data read) gives; the reader and that
/// metadata.
pub fn open_exact<'a>(
    path: &'a Path,
    read: &'a Counter,
) -> Result<(ExactReader<'a>, fs::Metadata), ArchiveError> {
    let read_err = |source| ArchiveError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(read_err(io::Error::other(
            "it stopped being a regular file while the tree was read",
        )));
    }
    let size = meta.len();
    Ok((
        ExactReader {
            file,
            path,
            expected: size,
            remaining: size,
            counter: read,
            error: None,
        },
        meta,
    ))
}

/// Reads exactly `expected` bytes of a file: fewer is [`ArchiveError::Shrank`], and
/// bytes past `expected` (the file grew) are left out.
pub struct ExactReader<'a> {
    file: File,
    path: &'a Path,
    expected: u64,
    remaining: u64,
    counter: &'a Counter,
    error: Option<ArchiveError>,
}

impl ExactReader<'_> {
    /// The error that stopped reading, with the file's path (the `io::Error` a reader
    /// returns carries less).
    pub fn take_error(&mut self) -> Option<ArchiveError> {
        self.error.take()
    }
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
///
/// The steps: each entry in turn ([`Unpacker::entry`]: the names and attributes that
/// announce the next entry, then the entry's checked place in `dest`, then the file,
/// directory or symbolic link itself), the end of the stream ([`read_trailer`]), and
/// last the directories' mode and time ([`Unpacker::finish`]).
pub fn unpack_tree<R: Read>(input: R, dest: &Path) -> Result<UnpackStats, ArchiveError> {
    let mut archive = tar::Archive::new(input);
    let mut unpacker = Unpacker::new(dest);
    let entries = archive
        .entries()
        .map_err(|source| ArchiveError::Stream { offset: 0, source })?
        .raw(true);
    for entry in entries {
        let entry = entry.map_err(|source| ArchiveError::Stream {
            offset: unpacker.next_offset,
            source,
        })?;
        unpacker.entry(entry)?;
    }
    unpacker.end_of_entries()?;
    read_trailer(archive.into_inner())?;
    unpacker.finish()
}

/// One restore in progress: what the stream announced for its next entry, the
/// directories whose metadata waits for the end, and what was restored so far.
struct Unpacker<'a> {
    dest: &'a Path,
    stats: UnpackStats,
    dirs: Vec<DeferredDir>,
    pending: Pending,
    /// The parent directory checked last (entries in a row usually share it).
    checked_parent: Option<PathBuf>,
    /// Where the entry after the current one starts, for errors reading it.
    next_offset: u64,
    buf: Vec<u8>,
}

/// An entry's place in the stream and its path as shown, for its errors.
struct EntryAt {
    offset: u64,
    shown: String,
}

impl EntryAt {
    fn refused(&self, reason: String) -> ArchiveError {
        ArchiveError::Refused {
            offset: self.offset,
            path: self.shown.clone(),
            reason,
        }
    }
}

/// An entry about to be restored: where, and with what mode, time and link target
/// (announced by a long link name or a PAX header, if any).
struct Placed {
    at: EntryAt,
    full: PathBuf,
    mode: u32,
    mtime: SystemTime,
    link: Option<Vec<u8>>,
}

impl Placed {
    fn restore_err(&self) -> impl Fn(io::Error) -> ArchiveError + '_ {
        |source| ArchiveError::Restore {
            path: self.full.clone(),
            source,
        }
    }

    /// Removes what was at the entry's path, so that the entry is created rather than
    /// written through it; a directory there refuses the entry.
    fn clear(&self) -> Result<(), ArchiveError> {
        clear_non_dir(&self.full).map_err(|e| match e {
            ClearError::IsDir => self.at.refused("a directory of that name exists".into()),
            ClearError::Io(source) => self.restore_err()(source),
        })
    }
}

fn malformed(offset: u64, reason: String) -> ArchiveError {
    ArchiveError::Malformed { offset, reason }
}

impl<'a> Unpacker<'a> {
    fn new(dest: &'a Path) -> Self {
        Unpacker {
            dest,
            stats: UnpackStats::default(),
            dirs: Vec::new(),
            pending: Pending::default(),
            checked_parent: None,
            next_offset: 0,
            buf: vec![0u8; IO_BUF],
        }
    }

    /// Restores one raw entry of the stream (or records what it announces for the
    /// next one).
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), ArchiveError> {
        let offset = entry.raw_header_position();
        let size = entry.size();
        self.next_offset = entry
            .raw_file_position()
            .saturating_add(size.div_ceil(512).saturating_mul(512));
        let header = entry.header().clone();
        let kind = header.entry_type();
        if self.announcement(&mut entry, kind, size, offset)? {
            return Ok(());
        }
        let Some(placed) = self.place(&header, kind, size, offset)? else {
            return Ok(());
        };
        match kind {
            EntryType::Regular | EntryType::Continuous => {
                self.write_file(&mut entry, &placed, size)
            }
            EntryType::Directory => self.make_dir(placed),
            EntryType::Symlink => self.make_symlink(&header, placed),
            other => Err(placed.at.refused(format!(
                "entry type {:?}: only regular files, directories and symbolic links are restored",
                other
            ))),
        }
    }

    /// Reads a GNU long name or long link, or a PAX header, into [`Pending`] for the
    /// entry that follows; skips a global PAX header. True if `kind` was one of them.
    fn announcement<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        kind: EntryType,
        size: u64,
        offset: u64,
    ) -> Result<bool, ArchiveError> {
        match kind {
            EntryType::GNULongName => {
                self.pending.name = Some(read_meta(entry, size, MAX_PATH_LEN as u64, offset)?);
            }
            EntryType::GNULongLink => {
                self.pending.link = Some(read_meta(entry, size, MAX_PATH_LEN as u64, offset)?);
            }
            EntryType::XHeader => {
                let data = read_meta(entry, size, MAX_PAX, offset)?;
                apply_pax(&data, &mut self.pending).map_err(|r| malformed(offset, r))?;
            }
            EntryType::XGlobalHeader => {
                if size > MAX_PAX {
                    return Err(malformed(
                        offset,
                        format!("a global PAX header of {size} bytes (at most {MAX_PAX})"),
                    ));
                }
                // Global defaults (e.g. a comment) change nothing here.
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The entry's checked path under `dest`, its mode and time, with what [`Pending`]
    /// announced for it taken; its parent directories made sure of. `None` for the
    /// tree's root directory (`./`), which is `dest` itself.
    fn place(
        &mut self,
        header: &tar::Header,
        kind: EntryType,
        size: u64,
        offset: u64,
    ) -> Result<Option<Placed>, ArchiveError> {
        let raw_path = self
            .pending
            .name
            .take()
            .unwrap_or_else(|| header.path_bytes().into_owned());
        let at = EntryAt {
            offset,
            shown: String::from_utf8_lossy(&raw_path[..raw_path.len().min(300)]).into_owned(),
        };
        let rel = safe_path(&raw_path).map_err(|r| at.refused(r.to_string()))?;
        if let Some(declared) = self.pending.size.take()
            && declared != size
        {
            return Err(malformed(
                offset,
                format!("a PAX size of {declared} bytes for an entry of {size} (not supported)"),
            ));
        }
        let mtime_secs = match self.pending.mtime.take() {
            Some(t) => t,
            None => header
                .mtime()
                .map_err(|e| malformed(offset, format!("bad modification time: {e}")))?
                .min(i64::MAX as u64) as i64,
        };
        let mode = header
            .mode()
            .map_err(|e| malformed(offset, format!("bad mode: {e}")))?
            & MODE_MASK;
        let link = self.pending.link.take();
        if rel.as_os_str().is_empty() {
            if kind == EntryType::Directory {
                return Ok(None); // the tree's root, "./": `dest` is it
            }
            return Err(at.refused("an empty path".into()));
        }
        if let Some(parent) = rel.parent()
            && self.checked_parent.as_deref() != Some(parent)
        {
            ensure_parents(self.dest, parent).map_err(|e| match e {
                ParentError::NotADirectory(p) => at.refused(format!(
                    "{} is not a directory (a symbolic link or a file): nothing is written through it",
                    p.display()
                )),
                ParentError::Io(p, source) => ArchiveError::Restore { path: p, source },
            })?;
            self.checked_parent = Some(parent.to_path_buf());
        }
        Ok(Some(Placed {
            at,
            full: self.dest.join(&rel),
            mode,
            mtime: system_time(mtime_secs),
            link,
        }))
    }

    /// A regular file: created anew (`O_EXCL`, after removing what was there), its
    /// `size` bytes copied from the stream, then its mode and time.
    fn write_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        placed: &Placed,
        size: u64,
    ) -> Result<(), ArchiveError> {
        let restore_err = placed.restore_err();
        placed.clear()?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&placed.full)
            .map_err(&restore_err)?;
        let mut written = 0u64;
        while written < size {
            let want = usize::try_from(size - written)
                .unwrap_or(usize::MAX)
                .min(self.buf.len());
            let n = entry
                .read(&mut self.buf[..want])
                .map_err(|source| ArchiveError::Stream {
                    offset: entry.raw_file_position() + written,
                    source,
                })?;
            if n == 0 {
                return Err(malformed(
                    placed.at.offset,
                    format!("the stream ends inside the entry ({written} of {size} bytes)"),
                ));
            }
            file.write_all(&self.buf[..n]).map_err(&restore_err)?;
            written += n as u64;
        }
        file.set_permissions(Permissions::from_mode(placed.mode))
            .map_err(&restore_err)?;
        file.set_times(
            FileTimes::new()
                .set_modified(placed.mtime)
                .set_accessed(placed.mtime),
        )
        .map_err(&restore_err)?;
        self.stats.files += 1;
        self.stats.bytes += size;
        Ok(())
    }

    /// A directory: made (replacing a file or link of its name) or kept; its mode and
    /// time wait for [`Unpacker::finish`].
    fn make_dir(&mut self, placed: Placed) -> Result<(), ArchiveError> {
        {
            let restore_err = placed.restore_err();
            match fs::symlink_metadata(&placed.full) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    fs::remove_file(&placed.full).map_err(&restore_err)?;
                    fs::create_dir(&placed.full).map_err(&restore_err)?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&placed.full).map_err(&restore_err)?;
                }
                Err(e) => return Err(restore_err(e)),
            }
        }
        if self.dirs.len() >= MAX_DIRECTORIES {
            return Err(placed.at.refused(format!(
                "more than {MAX_DIRECTORIES} directories in one restore"
            )));
        }
        self.dirs.push(DeferredDir {
            path: placed.full,
            mode: placed.mode,
            mtime: placed.mtime,
        });
        self.stats.dirs += 1;
        Ok(())
    }

    /// A symbolic link, to a target the path rules accept, created after removing
    /// what was there.
    fn make_symlink(
        &mut self,
        header: &tar::Header,
        mut placed: Placed,
    ) -> Result<(), ArchiveError> {
        let target = placed
            .link
            .take()
            .or_else(|| header.link_name_bytes().map(|l| l.into_owned()))
            .unwrap_or_default();
        if !is_valid_link_target(&target) {
            return Err(placed.at.refused(format!(
                "a symbolic link target of {} bytes (1 to {MAX_PATH_LEN}, no NUL)",
                target.len()
            )));
        }
        placed.clear()?;
        std::os::unix::fs::symlink(OsStr::from_bytes(&target), &placed.full)
            .map_err(placed.restore_err())?;
        self.stats.symlinks += 1;
        Ok(())
    }

    /// After the last entry: a long name or link with no entry for it is an error.
    fn end_of_entries(&self) -> Result<(), ArchiveError> {
        if self.pending.name.is_some() || self.pending.link.is_some() {
            return Err(ArchiveError::Malformed {
                offset: self.next_offset,
                reason: "the stream ends after a long name with no entry for it".into(),
            });
        }
        Ok(())
    }

    /// Gives the directories their time, then their mode (opening a directory needs
    /// its mode to allow it), the deepest (latest) first, so that nothing written later
    /// changes a time set.
    fn finish(self) -> Result<UnpackStats, ArchiveError> {
        for d in self.dirs.iter().rev() {
            File::open(&d.path)
                .and_then(|f| {
                    f.set_times(FileTimes::new().set_modified(d.mtime).set_accessed(d.mtime))
                })
                .map_err(|source| ArchiveError::Restore {
                    path: d.path.clone(),
                    source,
                })?;
        }
        for d in self.dirs.iter().rev() {
            fs::set_permissions(&d.path, Permissions::from_mode(d.mode)).map_err(|source| {
                ArchiveError::Restore {
                    path: d.path.clone(),
                    source,
                }
            })?;
        }
        Ok(self.stats)
    }
}

/// Reads what follows the end-of-archive marker (its padding) to the end of the data,
/// refusing more than [`MAX_TRAILER`] bytes.
fn read_trailer(mut rest: impl Read) -> Result<(), ArchiveError> {
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
    Ok(())
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

/// The path of an entry as a relative path with only normal components (the path
/// rules of `headlock_core::snapshot::path`); the reason it is refused otherwise.
fn safe_path(raw: &[u8]) -> Result<PathBuf, PathError> {
    check_raw(raw)?;
    tar_components(Path::new(OsStr::from_bytes(raw))).collect()
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
