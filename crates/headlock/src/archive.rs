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
//! - Unpacking reads the stream with the one bounded tar reader,
//!   `headlock_core::snapshot::tar_stream`, which the service's ingestion uses too: every
//!   length is bounded before anything is read into memory (a GNU long name or PAX header
//!   over the path rules' limit is refused, where the crate's own iteration would read any
//!   length), absolute paths and `..` are refused rather than skipped (the path rules of
//!   `headlock_core::snapshot::path`), and only regular files, directories and symbolic
//!   links come through. What is ours here is the file system: nothing is written through
//!   a symbolic link (a parent that is not a real directory is refused; files are created
//!   with `O_EXCL` after removing what was there), set-user-ID and set-group-ID bits are
//!   dropped, and directories get their mode and time after everything in them is
//!   written. Errors name the entry and its byte offset in the stream.
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! let mut tar = Vec::new();
//! pack_tree(Path::new("/data/db"), &mut tar, &Counter::default(), &mut |w| eprintln!("{w}"))?;
//! unpack_tree(&tar[..], Path::new("/restore/db"))?;
//! # Ok(()) }
//! ```

use std::fs::{self, File, FileTimes, OpenOptions, Permissions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use headlock_core::snapshot::EntryType;
use headlock_core::snapshot::tar_stream::{TarEntry, TarError, read_tar};

use crate::progress::Counter;

/// Most directories one restore gives their metadata to at the end (their list is
/// kept in memory until then).
pub const MAX_DIRECTORIES: usize = 1 << 20;
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
    /// The upload session's manifest could not be written to its temporary file.
    #[error("writing the manifest to a temporary file: {source}")]
    Manifest {
        /// The error.
        source: io::Error,
    },
    /// The upload stopped (its error is reported on its own).
    #[error("the upload stopped")]
    Stopped,

    // ---- the stream being restored
    /// The stream is refused: malformed, cut short, or an entry that is not restored
    /// (for the path rules, or for what is on disk at its place).
    #[error(transparent)]
    Tar(#[from] TarError),
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
    /// A regular file at `path`, `meta` as the walk found it (not followed); returns
    /// the bytes read of it (see [`open_exact`]).
    fn file(
        &mut self,
        rel: &str,
        path: &Path,
        meta: &fs::Metadata,
        read: &Counter,
    ) -> Result<u64, ArchiveError>;
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
                stats.bytes += visitor.file(rel_str, &path, &meta, read)?;
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

    fn file(
        &mut self,
        rel: &str,
        path: &Path,
        _meta: &fs::Metadata,
        read: &Counter,
    ) -> Result<u64, ArchiveError> {
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

/// Bytes and number of the regular files under `root` (for the progress display's
/// totals); best effort: what cannot be read counts as nothing, and the walk reports
/// it later.
pub fn tree_size(root: &Path) -> (u64, u64) {
    let (mut total, mut files) = (0u64, 0u64);
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
                files += 1;
            }
        }
    }
    (total, files)
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
/// The steps: each entry in turn, as the shared reader hands it over checked
/// ([`Unpacker::entry`]: its place in `dest`, then the file, directory or symbolic link
/// itself), and last the directories' mode and time ([`Unpacker::finish`]).
pub fn unpack_tree<R: Read>(input: R, dest: &Path) -> Result<UnpackStats, ArchiveError> {
    let mut unpacker = Unpacker::new(dest);
    read_tar(input, |entry| unpacker.entry(entry))?;
    unpacker.finish()
}

/// One restore in progress: the directories whose metadata waits for the end, and what
/// was restored so far.
struct Unpacker<'a> {
    dest: &'a Path,
    stats: UnpackStats,
    dirs: Vec<DeferredDir>,
    /// The parent directory checked last (entries in a row usually share it).
    checked_parent: Option<PathBuf>,
    buf: Vec<u8>,
}

/// An entry about to be restored: where, and with what mode and time.
struct Placed {
    full: PathBuf,
    mode: u32,
    mtime: SystemTime,
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
    fn clear(&self, entry: &TarEntry<'_>) -> Result<(), ArchiveError> {
        clear_non_dir(&self.full).map_err(|e| match e {
            ClearError::IsDir => entry.refused("a directory of that name exists").into(),
            ClearError::Io(source) => self.restore_err()(source),
        })
    }
}

impl<'a> Unpacker<'a> {
    fn new(dest: &'a Path) -> Self {
        Unpacker {
            dest,
            stats: UnpackStats::default(),
            dirs: Vec::new(),
            checked_parent: None,
            buf: vec![0u8; IO_BUF],
        }
    }

    /// Restores one entry of the stream.
    fn entry(&mut self, mut entry: TarEntry<'_>) -> Result<(), ArchiveError> {
        let placed = self.place(&entry)?;
        match entry.kind {
            EntryType::File => self.write_file(&mut entry, &placed),
            EntryType::Dir => self.make_dir(&entry, placed),
            EntryType::Symlink => self.make_symlink(&entry, &placed),
        }
    }

    /// The entry's path under `dest`, its mode and time; its parent directories made
    /// sure of.
    fn place(&mut self, entry: &TarEntry<'_>) -> Result<Placed, ArchiveError> {
        let rel = Path::new(&entry.path);
        if let Some(parent) = rel.parent()
            && self.checked_parent.as_deref() != Some(parent)
        {
            ensure_parents(self.dest, parent).map_err(|e| match e {
                ParentError::NotADirectory(p) => entry
                    .refused(format!(
                        "{} is not a directory (a symbolic link or a file): nothing is written through it",
                        p.display()
                    ))
                    .into(),
                ParentError::Io(p, source) => ArchiveError::Restore { path: p, source },
            })?;
            self.checked_parent = Some(parent.to_path_buf());
        }
        Ok(Placed {
            full: self.dest.join(rel),
            mode: entry.mode & MODE_MASK,
            mtime: system_time(entry.mtime),
        })
    }

    /// A regular file: created anew (`O_EXCL`, after removing what was there), its
    /// bytes copied from the stream, then its mode and time.
    fn write_file(
        &mut self,
        entry: &mut TarEntry<'_>,
        placed: &Placed,
    ) -> Result<(), ArchiveError> {
        let restore_err = placed.restore_err();
        placed.clear(entry)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&placed.full)
            .map_err(&restore_err)?;
        let (size, data_offset) = (entry.size, entry.data_offset);
        let mut written = 0u64;
        while written < size {
            let want = usize::try_from(size - written)
                .unwrap_or(usize::MAX)
                .min(self.buf.len());
            let n =
                entry
                    .data()
                    .read(&mut self.buf[..want])
                    .map_err(|source| TarError::Stream {
                        offset: data_offset + written,
                        source,
                    })?;
            if n == 0 {
                return Err(entry
                    .malformed(format!(
                        "the stream ends inside the entry ({written} of {size} bytes)"
                    ))
                    .into());
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
    fn make_dir(&mut self, entry: &TarEntry<'_>, placed: Placed) -> Result<(), ArchiveError> {
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
            return Err(entry
                .refused(format!(
                    "more than {MAX_DIRECTORIES} directories in one restore"
                ))
                .into());
        }
        self.dirs.push(DeferredDir {
            path: placed.full,
            mode: placed.mode,
            mtime: placed.mtime,
        });
        self.stats.dirs += 1;
        Ok(())
    }

    /// A symbolic link (its target checked by the reader), created after removing what
    /// was there.
    fn make_symlink(&mut self, entry: &TarEntry<'_>, placed: &Placed) -> Result<(), ArchiveError> {
        placed.clear(entry)?;
        let target = entry.target.as_deref().unwrap_or_default();
        std::os::unix::fs::symlink(target, &placed.full).map_err(placed.restore_err())?;
        self.stats.symlinks += 1;
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
