//! The path rules of tree snapshots, in one place for every side that applies them:
//! the service reading an uploaded tar stream, a manifest's validation, and the CLI
//! restoring a tar stream into a directory.
//!
//! - A path or symbolic link target is at most [`MAX_PATH_LEN`] bytes.
//! - A tar entry's path is taken as relative: `.` components are dropped, a `..`
//!   component or a root refuses it ([`tar_components`]); a NUL byte or bytes that are
//!   not UTF-8 refuse it ([`canonical_tar_path`] applies all of these, for the one tar
//!   reader, [`super::tar_stream`]).
//! - A manifest holds the canonical form only: relative, `/`-separated, without `.`,
//!   `..` or empty components, no NUL ([`Manifest::validate`](super::Manifest::validate)).
//! - A symbolic link target is 1 to [`MAX_PATH_LEN`] bytes without NUL
//!   ([`is_valid_link_target`]); it may be absolute or hold `..`, so a restore never
//!   writes through a link.
//! - In a tree, nothing is below a file or a symbolic link: every ancestor of a path
//!   that the tree holds is a directory ([`non_directory_ancestor`]).
//!
//! ```
//! use std::path::Path;
//! use headlock_core::snapshot::path::{PathError, tar_components};
//!
//! let parts: Result<Vec<_>, _> = tar_components(Path::new("./db/journal")).collect();
//! assert_eq!(parts.unwrap(), ["db", "journal"]);
//! let escape: Result<Vec<_>, _> = tar_components(Path::new("db/../../etc")).collect();
//! assert_eq!(escape, Err(PathError::ParentDir));
//! ```

use std::ffi::OsStr;
use std::path::{Component, Path};

use super::EntryType;

/// Longest path or symbolic link target, in bytes: in a manifest, in a tar stream the
/// service accepts and in one the CLI restores.
pub const MAX_PATH_LEN: usize = 4096;

/// Why a path of a tar stream is refused.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// Longer than [`MAX_PATH_LEN`] bytes.
    #[error("a path longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    /// Holds a NUL byte.
    #[error("a path with a NUL byte")]
    Nul,
    /// Has a `..` component: it could leave the tree.
    #[error("a path with `..`")]
    ParentDir,
    /// Starts at the root (or, on Windows, a prefix).
    #[error("an absolute path")]
    Absolute,
    /// Is not UTF-8 (snapshots hold UTF-8 paths).
    #[error("a path that is not UTF-8")]
    NotUtf8,
}

/// Refuses a length over [`MAX_PATH_LEN`].
pub fn check_len(len: usize) -> Result<(), PathError> {
    if len > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    Ok(())
}

/// Refuses raw path bytes that are too long or hold a NUL (checked before the path is
/// split into components).
pub fn check_raw(raw: &[u8]) -> Result<(), PathError> {
    check_len(raw.len())?;
    if raw.contains(&0) {
        return Err(PathError::Nul);
    }
    Ok(())
}

/// The components of a tar entry's path, taken as relative to the tree's root: each
/// normal component in order, `.` dropped, and an error in place of a `..` or of a
/// root. A caller stops at the first error.
pub fn tar_components(path: &Path) -> impl Iterator<Item = Result<&OsStr, PathError>> {
    path.components().filter_map(|c| match c {
        Component::Normal(p) => Some(Ok(p)),
        Component::CurDir => None,
        Component::ParentDir => Some(Err(PathError::ParentDir)),
        Component::RootDir | Component::Prefix(_) => Some(Err(PathError::Absolute)),
    })
}

/// The canonical form of a tar entry's raw path: the rules of [`check_raw`] and
/// [`tar_components`] applied, UTF-8 required, the components joined by `/` (empty for
/// the tree's root, `./`).
pub fn canonical_tar_path(raw: &[u8]) -> Result<String, PathError> {
    check_raw(raw)?;
    let text = std::str::from_utf8(raw).map_err(|_| PathError::NotUtf8)?;
    let mut path = String::with_capacity(text.len());
    for part in tar_components(Path::new(text)) {
        if !path.is_empty() {
            path.push('/');
        }
        // A component of a `str` is a `str`.
        path.push_str(part?.to_str().unwrap_or_default());
    }
    Ok(path)
}

/// The first proper ancestor of the canonical `path` that `kind_of` knows as something
/// other than a directory, with its kind: a tree cannot hold `path` below it. `None`
/// when every known ancestor is a directory.
pub fn non_directory_ancestor(
    path: &str,
    kind_of: impl Fn(&str) -> Option<EntryType>,
) -> Option<(&str, EntryType)> {
    path.match_indices('/')
        .map(|(at, _)| &path[..at])
        .find_map(|a| kind_of(a).filter(|k| *k != EntryType::Dir).map(|k| (a, k)))
}

/// True for a symbolic link target a snapshot may hold: 1 to [`MAX_PATH_LEN`] bytes,
/// no NUL.
pub fn is_valid_link_target(target: &[u8]) -> bool {
    !target.is_empty() && target.len() <= MAX_PATH_LEN && !target.contains(&0)
}

/// Checks a manifest entry's path: the canonical form (non-empty, relative,
/// `/`-separated, no `.`, `..` or empty component, no NUL, at most [`MAX_PATH_LEN`]
/// bytes); the reason it is not, otherwise.
pub(crate) fn check_manifest_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if check_len(path.len()).is_err() {
        return Err(format!("path of {} bytes is too long", path.len()));
    }
    if path.contains('\0') {
        return Err("path holds a NUL byte".into());
    }
    if path.starts_with('/') {
        return Err("absolute path".into());
    }
    for component in path.split('/') {
        match component {
            "" => return Err("empty path component".into()),
            "." | ".." => return Err(format!("path component {component:?}")),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(p: &str) -> Result<Vec<&OsStr>, PathError> {
        tar_components(Path::new(p)).collect()
    }

    #[test]
    fn accepts_relative_tar_paths_without_dot_components() {
        assert_eq!(parts("./a/./b/").unwrap(), ["a", "b"]);
        assert_eq!(parts(".").unwrap(), Vec::<&OsStr>::new());
    }

    #[test]
    fn rejects_tar_paths_that_leave_the_tree() {
        for p in ["..", "a/../b", "a/.."] {
            assert_eq!(parts(p), Err(PathError::ParentDir), "{p}");
        }
        for p in ["/", "/etc/passwd"] {
            assert_eq!(parts(p), Err(PathError::Absolute), "{p}");
        }
    }

    #[test]
    fn rejects_raw_paths_too_long_or_with_nul() {
        assert_eq!(check_raw(&[b'a'; MAX_PATH_LEN]), Ok(()));
        assert_eq!(
            check_raw(&[b'a'; MAX_PATH_LEN + 1]),
            Err(PathError::TooLong)
        );
        assert_eq!(check_raw(b"a\0b"), Err(PathError::Nul));
        assert_eq!(
            PathError::TooLong.to_string(),
            "a path longer than 4096 bytes"
        );
    }

    #[test]
    fn accepts_canonical_tar_paths_and_rejects_what_the_rules_refuse() {
        assert_eq!(canonical_tar_path(b"./db//a/./b/").unwrap(), "db/a/b");
        assert_eq!(canonical_tar_path(b"./").unwrap(), "");
        assert_eq!(canonical_tar_path(b"a/../b"), Err(PathError::ParentDir));
        assert_eq!(canonical_tar_path(b"/etc"), Err(PathError::Absolute));
        assert_eq!(canonical_tar_path(b"a\xffb"), Err(PathError::NotUtf8));
        assert_eq!(canonical_tar_path(b"a\0b"), Err(PathError::Nul));
        assert_eq!(
            canonical_tar_path(&[b'a'; MAX_PATH_LEN + 1]),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn finds_the_first_ancestor_that_is_not_a_directory() {
        let kinds = |p: &str| match p {
            "d" => Some(EntryType::Dir),
            "d/lnk" => Some(EntryType::Symlink),
            "f" => Some(EntryType::File),
            _ => None,
        };
        assert_eq!(non_directory_ancestor("d/x/y", kinds), None);
        assert_eq!(
            non_directory_ancestor("d/lnk/x/y", kinds),
            Some(("d/lnk", EntryType::Symlink))
        );
        assert_eq!(
            non_directory_ancestor("f/x", kinds),
            Some(("f", EntryType::File))
        );
        assert_eq!(
            non_directory_ancestor("f", kinds),
            None,
            "not its own ancestor"
        );
    }

    #[test]
    fn accepts_link_targets_of_1_to_max_bytes_without_nul() {
        assert!(is_valid_link_target(b"../x"));
        assert!(is_valid_link_target(&[b'a'; MAX_PATH_LEN]));
        assert!(!is_valid_link_target(b""));
        assert!(!is_valid_link_target(&[b'a'; MAX_PATH_LEN + 1]));
        assert!(!is_valid_link_target(b"a\0"));
    }

    #[test]
    fn rejects_manifest_paths_outside_the_canonical_form() {
        assert_eq!(check_manifest_path("a/b"), Ok(()));
        for p in ["", "/a", "a//b", "a/", "./a", "a/../b", "a\0b"] {
            assert!(check_manifest_path(p).is_err(), "{p:?}");
        }
    }
}
