//! The backup benchmark's other inputs, each deterministic from a seed
//! ([`crate::dataset`] holds the `files` one and the tree comparison):
//!
//! - [`TreeSpec`], `tree`: many files in nested directories, sizes log-normal around
//!   8 KiB (median) with a long tail to tens of MiB (capped at [`TREE_MAX_FILE`]),
//!   half of them random bytes and half JSON text, and about 1 % symbolic links (to
//!   files of the tree, a few dangling);
//! - [`DbpathSpec`], `dbpath`: a MongoDB-like data directory, `collection-N.wt` files
//!   of 1 MiB to 2 GiB (log-uniform) each with an `index-N.wt` a quarter its size, all
//!   random bytes (incompressible, as WiredTiger's snappy-compressed blocks are),
//!   plus the small files of a `dbpath`;
//! - [`change_dbpath`]: what a checkpoint does to such a directory: a few collection
//!   files get about 5 % of their bytes rewritten in runs of 32 KiB to 1 MiB at
//!   random offsets, some also grow at the end. Every byte it overwrites (and every
//!   length it extends) is first saved in an undo file, and [`undo_changes`] puts the
//!   tree back as generated, so a second tool backs up the same sequence of states.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::dataset::{DatasetError, Kind, write_files, write_small_files};

/// Largest file of the `tree` dataset.
pub const TREE_MAX_FILE: u64 = 64 << 20;
/// Median file size of the `tree` dataset.
pub const TREE_MEDIAN: f64 = 8192.0;
/// Spread (sigma of the underlying normal) of the `tree` dataset's sizes: with a
/// median of 8 KiB, a mean of about 60 KB, so 60,000 files make about 3.5 GB.
pub const TREE_SIGMA: f64 = 2.0;
/// Smallest and largest collection file of the `dbpath` dataset.
pub const DBPATH_FILE_RANGE: (u64, u64) = (1 << 20, 2 << 30);

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError {
    let path = path.to_path_buf();
    move |source| DatasetError::Io { op, path, source }
}

/// What a generated tree holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeSummary {
    /// Regular files.
    pub files: u64,
    /// Directories below the root.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Bytes of the regular files.
    pub bytes: u64,
    /// The largest file.
    pub largest: u64,
}

/// The `tree` dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSpec {
    /// Regular files.
    pub files: u64,
    /// Seed of every generator.
    pub seed: u64,
}

/// A standard normal sample (Box-Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The layout of a tree: directories (relative, parents first), files (relative
/// path, size, kind), links (relative path, target).
type Layout = (
    Vec<PathBuf>,
    Vec<(PathBuf, u64, Kind)>,
    Vec<(PathBuf, PathBuf)>,
);

impl TreeSpec {
    /// The tree's directories, files and links, in a fixed order.
    pub fn layout(&self) -> Layout {
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0x7472_6565);
        // About 25 files a directory; each directory under a random earlier one (or the
        // root), which nests them a few levels deep.
        let ndirs = (self.files / 25).max(1) as usize;
        let mut dirs: Vec<PathBuf> = Vec::with_capacity(ndirs);
        for i in 0..ndirs {
            let parent = if i == 0 || rng.gen_bool(0.15) {
                PathBuf::new()
            } else {
                dirs[rng.gen_range(0..i)].clone()
            };
            dirs.push(parent.join(format!("d{i:05}")));
        }
        let mut files = Vec::with_capacity(self.files as usize);
        for i in 0..self.files {
            let size = (TREE_MEDIAN * (TREE_SIGMA * normal(&mut rng)).exp())
                .round()
                .clamp(0.0, TREE_MAX_FILE as f64) as u64;
            let kind = if rng.gen_bool(0.5) {
                Kind::Random
            } else {
                Kind::Json
            };
            let dir = &dirs[rng.gen_range(0..ndirs)];
            let ext = if kind == Kind::Random { "bin" } else { "json" };
            files.push((dir.join(format!("f{i:06}.{ext}")), size, kind));
        }
        let nlinks = (self.files / 100).max(1);
        let mut links = Vec::with_capacity(nlinks as usize);
        for i in 0..nlinks {
            let dir = &dirs[rng.gen_range(0..ndirs)];
            let up = PathBuf::from("../".repeat(dir.components().count()));
            let target = if i % 10 == 9 {
                up.join("missing")
            } else {
                up.join(&files[rng.gen_range(0..files.len())].0)
            };
            links.push((dir.join(format!("link{i:05}")), target));
        }
        (dirs, files, links)
    }
}

/// Writes the `tree` dataset under `root` (created). `stop` is polled between buffers.
pub fn generate_tree(
    root: &Path,
    spec: &TreeSpec,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<TreeSummary, DatasetError> {
    let (dirs, files, links) = spec.layout();
    std::fs::create_dir_all(root).map_err(io_err("creating", root))?;
    for dir in &dirs {
        let path = root.join(dir);
        std::fs::create_dir(&path).map_err(io_err("creating", &path))?;
    }
    write_files(root, &files, spec.seed, stop)?;
    for (link, target) in &links {
        let path = root.join(link);
        std::os::unix::fs::symlink(target, &path).map_err(io_err("linking", &path))?;
    }
    Ok(TreeSummary {
        files: files.len() as u64,
        dirs: dirs.len() as u64,
        symlinks: links.len() as u64,
        bytes: files.iter().map(|f| f.1).sum(),
        largest: files.iter().map(|f| f.1).max().unwrap_or(0),
    })
}

/// Counts what is under `root` (for `--tree DIR`), not following links.
pub fn survey(root: &Path) -> Result<TreeSummary, DatasetError> {
    let mut s = TreeSummary::default();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
            let entry = entry.map_err(io_err("listing", &dir))?;
            let meta = std::fs::symlink_metadata(entry.path())
                .map_err(io_err("reading the metadata of", &entry.path()))?;
            if meta.is_dir() {
                s.dirs += 1;
                pending.push(entry.path());
            } else if meta.is_symlink() {
                s.symlinks += 1;
            } else if meta.is_file() {
                s.files += 1;
                s.bytes += meta.len();
                s.largest = s.largest.max(meta.len());
            }
        }
    }
    Ok(s)
}

/// The `dbpath` dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbpathSpec {
    /// Bytes of `.wt` files in total (the small files come on top).
    pub bytes: u64,
    /// Seed of every generator.
    pub seed: u64,
}

impl DbpathSpec {
    /// The `.wt` files: (relative path, size, kind), collections and their indexes.
    pub fn files(&self) -> Vec<(PathBuf, u64, Kind)> {
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0x6462_7061);
        let (lo, hi) = DBPATH_FILE_RANGE;
        let (lo_ln, hi_ln) = ((lo as f64).ln(), (hi as f64).ln());
        let mut out = Vec::new();
        let mut left = self.bytes;
        let mut i = 0u32;
        while left > 0 {
            let want = rng.gen_range(lo_ln..hi_ln).exp() as u64;
            let collection = want.min(left * 4 / 5).max(lo).min(left);
            left -= collection;
            let index = (collection / 4).max(lo).min(left);
            left -= index;
            out.push((
                PathBuf::from(format!("collection-{i}-{}.wt", self.seed)),
                collection,
                Kind::Random,
            ));
            if index > 0 {
                out.push((
                    PathBuf::from(format!("index-{i}-{}.wt", self.seed)),
                    index,
                    Kind::Random,
                ));
            }
            i += 1;
        }
        out
    }
}

/// Writes the `dbpath` dataset under `root` (created).
pub fn generate_dbpath(
    root: &Path,
    spec: &DbpathSpec,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<TreeSummary, DatasetError> {
    let (files, bytes) = write_small_files(root)?;
    let mut summary = TreeSummary {
        files,
        bytes,
        dirs: 2,
        ..TreeSummary::default()
    };
    let files = spec.files();
    write_files(root, &files, spec.seed, stop)?;
    summary.files += files.len() as u64;
    summary.bytes += files.iter().map(|f| f.1).sum::<u64>();
    summary.largest = files.iter().map(|f| f.1).max().unwrap_or(0);
    Ok(summary)
}

/// What [`change_dbpath`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changed {
    /// Files changed.
    pub files: u64,
    /// Bytes overwritten in place.
    pub rewritten: u64,
    /// Bytes added at the ends of files.
    pub appended: u64,
}

impl Changed {
    /// Bytes rewritten and appended.
    pub fn bytes(&self) -> u64 {
        self.rewritten + self.appended
    }
}

/// Files a change step touches: the collection files, at most 3 of them.
const CHANGED_FILES: usize = 3;
/// Share of a changed file rewritten.
const REWRITE_SHARE: f64 = 0.05;
/// Runs of rewritten bytes.
const RUN_RANGE: (u64, u64) = (32 << 10, 1 << 20);

/// One checkpoint's worth of change to the `dbpath` under `root` (from `seed`, the
/// step's own): up to `CHANGED_FILES` collection files (picked in proportion to
/// their sizes) get about 5 % of their
/// bytes rewritten in runs of 32 KiB to 1 MiB at random offsets, and every other one
/// of them grows by 1 % (at least 64 KiB). What it overwrites is appended to `undo`
/// first (see [`undo_changes`]).
pub fn change_dbpath(root: &Path, seed: u64, undo: &Path) -> Result<Changed, DatasetError> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6368_616e_6765);
    let mut collections: Vec<(PathBuf, u64)> = Vec::new();
    for entry in std::fs::read_dir(root).map_err(io_err("listing", root))? {
        let entry = entry.map_err(io_err("listing", root))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("collection-") {
            let len = entry
                .metadata()
                .map_err(io_err("reading the metadata of", &entry.path()))?
                .len();
            collections.push((PathBuf::from(name), len));
        }
    }
    collections.sort();
    // Busy collections are the large ones: each pick in proportion to the size.
    let mut picked = Vec::new();
    while picked.len() < CHANGED_FILES.min(collections.len()) {
        let total: u64 = collections.iter().map(|c| c.1.max(1)).sum();
        let mut at = rng.gen_range(0..total);
        let i = collections
            .iter()
            .position(|c| {
                let hit = at < c.1.max(1);
                at = at.saturating_sub(c.1.max(1));
                hit
            })
            .unwrap_or(0);
        picked.push(collections.swap_remove(i).0);
    }
    picked.sort();
    let mut log = BufWriter::new(
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(undo)
            .map_err(io_err("opening", undo))?,
    );
    let mut changed = Changed::default();
    let mut buf = Vec::new();
    for (n, rel) in picked.iter().enumerate() {
        let path = root.join(rel);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err("opening", &path))?;
        let len = file.metadata().map_err(io_err("reading", &path))?.len();
        let target = (len as f64 * REWRITE_SHARE) as u64;
        let mut done = 0;
        while done < target && len > 0 {
            let run = rng
                .gen_range(RUN_RANGE.0..=RUN_RANGE.1)
                .min(target - done)
                .min(len);
            let offset = rng.gen_range(0..=len - run);
            buf.resize(run as usize, 0);
            file.read_exact_at(&mut buf, offset)
                .map_err(io_err("reading", &path))?;
            record(&mut log, rel, offset, &buf).map_err(io_err("writing", undo))?;
            rng.fill_bytes(&mut buf);
            file.write_all_at(&buf, offset)
                .map_err(io_err("writing", &path))?;
            done += run;
        }
        changed.rewritten += done;
        if n % 2 == 0 {
            let grow = (len / 100).max(64 << 10);
            record(&mut log, rel, u64::MAX, &len.to_be_bytes()).map_err(io_err("writing", undo))?;
            buf.resize(grow as usize, 0);
            rng.fill_bytes(&mut buf);
            file.write_all_at(&buf, len)
                .map_err(io_err("writing", &path))?;
            changed.appended += grow;
        }
        file.sync_all().map_err(io_err("syncing", &path))?;
        changed.files += 1;
    }
    log.flush().map_err(io_err("writing", undo))?;
    Ok(changed)
}

/// One undo record: the path, the offset (`u64::MAX`: `data` is the length to cut
/// the file back to) and the bytes it had there.
fn record(log: &mut impl Write, rel: &Path, offset: u64, data: &[u8]) -> std::io::Result<()> {
    let name = rel.to_string_lossy();
    log.write_all(&(name.len() as u32).to_be_bytes())?;
    log.write_all(name.as_bytes())?;
    log.write_all(&offset.to_be_bytes())?;
    log.write_all(&(data.len() as u64).to_be_bytes())?;
    log.write_all(data)
}

/// Undoes every change step recorded in `undo` (newest first), then removes it.
pub fn undo_changes(root: &Path, undo: &Path) -> Result<(), DatasetError> {
    let bad = |what: &str| DatasetError::Io {
        op: "reading",
        path: undo.to_path_buf(),
        source: std::io::Error::other(what.to_string()),
    };
    let mut reader = BufReader::new(File::open(undo).map_err(io_err("opening", undo))?);
    // (path, offset, where the data starts in the log, its length)
    let mut records = Vec::new();
    let mut at = 0u64;
    loop {
        let mut n = [0u8; 4];
        match reader.read_exact(&mut n) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(io_err("reading", undo)(e)),
        }
        let mut name = vec![0u8; u32::from_be_bytes(n) as usize];
        let mut head = [0u8; 16];
        reader
            .read_exact(&mut name)
            .and_then(|()| reader.read_exact(&mut head))
            .map_err(io_err("reading", undo))?;
        let offset = u64::from_be_bytes(head[..8].try_into().expect("8 bytes"));
        let len = u64::from_be_bytes(head[8..].try_into().expect("8 bytes"));
        at += 4 + name.len() as u64 + 16;
        let name = String::from_utf8(name).map_err(|_| bad("a name that is not UTF-8"))?;
        records.push((PathBuf::from(name), offset, at, len));
        reader
            .seek(SeekFrom::Current(len as i64))
            .map_err(io_err("reading", undo))?;
        at += len;
    }
    let log = File::open(undo).map_err(io_err("opening", undo))?;
    let mut buf = Vec::new();
    for (rel, offset, data_at, len) in records.into_iter().rev() {
        let path = root.join(&rel);
        buf.resize(len as usize, 0);
        log.read_exact_at(&mut buf, data_at)
            .map_err(io_err("reading", undo))?;
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_err("opening", &path))?;
        if offset == u64::MAX {
            let was = u64::from_be_bytes(buf[..].try_into().map_err(|_| bad("a bad length"))?);
            file.set_len(was).map_err(io_err("truncating", &path))?;
        } else {
            file.write_all_at(&buf, offset)
                .map_err(io_err("writing", &path))?;
        }
    }
    std::fs::remove_file(undo).map_err(io_err("removing", undo))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::compare_trees;

    #[test]
    fn accepts_a_tree_of_the_size_asked_with_nested_dirs_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let spec = TreeSpec {
            files: 2000,
            seed: 3,
        };
        let s = generate_tree(&dir.path().join("a"), &spec, &|| false).unwrap();
        assert_eq!((s.files, s.symlinks), (2000, 20));
        let seen = survey(&dir.path().join("a")).unwrap();
        assert_eq!(seen, s);
        // Log-normal around 8 KiB: the median near it, a long tail above.
        let (_, files, _) = spec.layout();
        let mut sizes: Vec<u64> = files.iter().map(|f| f.1).collect();
        sizes.sort_unstable();
        let median = sizes[sizes.len() / 2];
        assert!((5_000..13_000).contains(&median), "median {median}");
        assert!(s.largest > 1 << 20, "largest {}", s.largest);
        // Nested: some directory at least three levels down.
        let (dirs, _, _) = spec.layout();
        assert!(dirs.iter().any(|d| d.components().count() >= 3));
        // The same seed gives the same tree.
        generate_tree(&dir.path().join("b"), &spec, &|| false).unwrap();
        compare_trees(&dir.path().join("a"), &dir.path().join("b")).unwrap();
    }

    #[test]
    fn accepts_a_change_step_that_is_undone_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let spec = DbpathSpec {
            bytes: 24 << 20,
            seed: 5,
        };
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let s = generate_dbpath(&a, &spec, &|| false).unwrap();
        generate_dbpath(&b, &spec, &|| false).unwrap();
        assert!(s.bytes >= 24 << 20);
        let undo = dir.path().join("undo");
        let one = change_dbpath(&a, 1, &undo).unwrap();
        let two = change_dbpath(&a, 2, &undo).unwrap();
        for c in [&one, &two] {
            assert!(c.files >= 1 && c.rewritten > 0 && c.appended > 0, "{c:?}");
        }
        assert!(compare_trees(&b, &a).is_err(), "the change changed nothing");
        undo_changes(&a, &undo).unwrap();
        compare_trees(&b, &a).unwrap();
        assert!(!undo.exists());
    }
}
