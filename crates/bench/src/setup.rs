//! What every benchmark binary does before it measures: find the `headlock` binary,
//! read a number of seconds from its command line, and check that the file system
//! has room for the input and what the tools make of it.

use std::path::{Path, PathBuf};

/// Why a benchmark cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The path of the running executable is unknown.
    #[error("locating this executable: {0}")]
    CurrentExe(std::io::Error),
    /// No `headlock` binary where it was looked for.
    #[error(
        "{} not found: build it first with `cargo build --release -p headlock` (or pass --headlock PATH)",
        .0.display()
    )]
    NotFound(PathBuf),
    /// The free space of the file system could not be read.
    #[error("checking the free space of {}: {source}", dir.display())]
    Statvfs {
        /// The directory.
        dir: PathBuf,
        /// The underlying error.
        source: nix::Error,
    },
    /// Too little free space.
    #[error(
        "{} has {} MiB free; this run needs about {} MiB ({factor} times the input)",
        dir.display(), free >> 20, needed >> 20
    )]
    NoSpace {
        /// The directory.
        dir: PathBuf,
        /// Bytes available.
        free: u64,
        /// Bytes needed.
        needed: u64,
        /// Needed bytes in input sizes.
        factor: u64,
    },
}

/// A clap value parser: a number of seconds from 0 to 600.
pub fn seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if !(0.0..=600.0).contains(&v) {
        return Err("must be between 0 and 600 seconds".into());
    }
    Ok(v)
}

/// The `headlock` binary: `given` (the `--headlock` flag), else `headlock` next to
/// this executable; it must be a file.
pub fn headlock_bin(given: Option<&Path>) -> Result<PathBuf, SetupError> {
    let bin = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .map_err(SetupError::CurrentExe)?
            .with_file_name("headlock"),
    };
    if !bin.is_file() {
        return Err(SetupError::NotFound(bin));
    }
    Ok(bin)
}

/// Fails unless the file system of `dir` has `factor` times `input_bytes` free for
/// unprivileged users.
pub fn ensure_free_space(dir: &Path, input_bytes: u64, factor: u64) -> Result<(), SetupError> {
    let vfs = nix::sys::statvfs::statvfs(dir).map_err(|source| SetupError::Statvfs {
        dir: dir.to_path_buf(),
        source,
    })?;
    let free = vfs.blocks_available() * vfs.fragment_size();
    let needed = factor.saturating_mul(input_bytes);
    if free < needed {
        return Err(SetupError::NoSpace {
            dir: dir.to_path_buf(),
            free,
            needed,
            factor,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_seconds_out_of_range_or_not_numbers() {
        assert_eq!(seconds("0.5"), Ok(0.5));
        assert_eq!(seconds("600"), Ok(600.0));
        assert!(seconds("600.1").is_err());
        assert!(seconds("-1").is_err());
        assert!(seconds("five").is_err());
    }

    #[test]
    fn rejects_missing_headlock_binary() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("headlock");
        let e = headlock_bin(Some(&missing)).unwrap_err();
        assert!(
            matches!(&e, SetupError::NotFound(p) if p == &missing),
            "{e}"
        );
        std::fs::write(&missing, b"").unwrap();
        assert_eq!(headlock_bin(Some(&missing)).unwrap(), missing);
    }

    #[test]
    fn rejects_more_space_than_the_file_system_has() {
        let dir = tempfile::tempdir().unwrap();
        ensure_free_space(dir.path(), 1, 1).unwrap();
        let e = ensure_free_space(dir.path(), u64::MAX / 2, 3).unwrap_err();
        assert!(matches!(e, SetupError::NoSpace { factor: 3, .. }), "{e}");
    }
}
