//! Packing and unpacking against real directories, and the unpacker against streams
//! built by hand to be hostile.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;

use tar::EntryType;

use super::*;

fn set_mtime(path: &Path, secs: u64) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    File::open(path)
        .unwrap()
        .set_times(FileTimes::new().set_modified(t).set_accessed(t))
        .unwrap();
}

/// Deterministic bytes that do not compress.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// A tree with every kind of entry the format keeps.
fn sample_tree(root: &Path) {
    let long_dir = "d".repeat(120);
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir_all(root.join(&long_dir)).unwrap();
    fs::write(root.join("a/b/c/deep.txt"), "deep\n").unwrap();
    fs::write(root.join("empty"), "").unwrap();
    fs::write(root.join("a/noise.bin"), noise(700_000, 7)).unwrap();
    fs::write(root.join(format!("{long_dir}/{}", "f".repeat(150))), "long").unwrap();
    fs::write(root.join("secret"), "s").unwrap();
    fs::set_permissions(root.join("secret"), Permissions::from_mode(0o600)).unwrap();
    fs::write(root.join("run.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("run.sh"), Permissions::from_mode(0o755)).unwrap();
    symlink("a/b/c/deep.txt", root.join("link")).unwrap();
    symlink(format!("../{}", "t".repeat(200)), root.join("a/long-link")).unwrap();
    fs::set_permissions(root.join("a/b"), Permissions::from_mode(0o700)).unwrap();
    for (i, p) in [
        "empty",
        "a/noise.bin",
        "secret",
        "run.sh",
        "a/b/c/deep.txt",
        "a/b/c",
        "a/b",
        "a",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(&root.join(p), 1_000_000_000 + i as u64 * 3600);
    }
}

/// Every entry under `root`: relative path, kind, mode, mtime (files and dirs),
/// contents or link target.
fn describe(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let mut names: Vec<_> = fs::read_dir(root.join(&rel))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let r = rel.join(&n);
            let p = root.join(&r);
            let m = fs::symlink_metadata(&p).unwrap();
            let what = if m.is_dir() {
                pending.push(r.clone());
                format!("dir {:o} {}", m.mode() & 0o7777, m.mtime())
            } else if m.file_type().is_symlink() {
                format!("link -> {}", fs::read_link(&p).unwrap().display())
            } else {
                let data = fs::read(&p).unwrap();
                format!(
                    "file {:o} {} {} {}",
                    m.mode() & 0o7777,
                    m.mtime(),
                    data.len(),
                    hex::encode(ring::digest::digest(&ring::digest::SHA256, &data))
                )
            };
            out.push((r.display().to_string(), what));
        }
    }
    out.sort();
    out
}

fn pack(root: &Path) -> (Vec<u8>, PackStats, Vec<String>) {
    let mut tar = Vec::new();
    let mut warnings = Vec::new();
    let counter = Counter::default();
    let stats = pack_tree(root, &mut tar, &counter, &mut |w| {
        warnings.push(w.to_string())
    })
    .unwrap();
    assert_eq!(counter.get(), stats.bytes);
    (tar, stats, warnings)
}

#[test]
fn accepts_a_tree_round_trip_with_modes_times_links_and_long_names() {
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    let (tar, stats, warnings) = pack(src.path());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!((stats.files, stats.symlinks), (6, 2));
    assert_eq!(stats.bytes, 5 + 700_000 + 4 + 1 + 10);

    let dst = tempfile::tempdir().unwrap();
    let got = unpack_tree(&tar[..], dst.path()).unwrap();
    assert_eq!((got.files, got.dirs, got.symlinks), (6, stats.dirs, 2));
    assert_eq!(describe(dst.path()), describe(src.path()));
    // The modes asked for, really there.
    let mode = |p: &str| fs::metadata(dst.path().join(p)).unwrap().mode() & 0o7777;
    assert_eq!(
        (mode("secret"), mode("run.sh"), mode("a/b")),
        (0o600, 0o755, 0o700)
    );
    assert_eq!(
        fs::metadata(dst.path().join("a")).unwrap().mtime(),
        1_000_000_000 + 7 * 3600
    );
}

#[test]
fn accepts_the_same_stream_for_the_same_tree() {
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    assert!(pack(src.path()).0 == pack(src.path()).0);
}

#[test]
fn accepts_fifos_as_skipped_with_a_warning() {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("kept"), "x").unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(src.path().join("fifo"))
        .status()
        .unwrap();
    assert!(status.success());
    let (tar, stats, warnings) = pack(src.path());
    assert_eq!((stats.files, stats.skipped), (1, 1));
    assert!(warnings[0].contains("fifo"), "{warnings:?}");
    let dst = tempfile::tempdir().unwrap();
    unpack_tree(&tar[..], dst.path()).unwrap();
    assert!(!dst.path().join("fifo").exists());
}

#[test]
fn rejects_names_that_are_not_utf8() {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join(OsStr::from_bytes(b"bad\xff")), "x").unwrap();
    let e = pack_tree(src.path(), io::sink(), &Counter::default(), &mut |_| {}).unwrap_err();
    assert!(matches!(e, ArchiveError::NotUtf8 { .. }), "{e}");
}

#[test]
fn rejects_a_file_that_shrinks_while_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, vec![1u8; 1000]).unwrap();
    let counter = Counter::default();
    let mut r = ExactReader {
        file: File::open(&path).unwrap(),
        path: &path,
        expected: 5000,
        remaining: 5000,
        counter: &counter,
        error: None,
    };
    let e = io::copy(&mut r, &mut io::sink()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    assert!(
        matches!(
            r.error,
            Some(ArchiveError::Shrank {
                expected: 5000,
                got: 1000,
                ..
            })
        ),
        "{:?}",
        r.error
    );
}

#[test]
fn accepts_a_file_that_grows_while_read_up_to_its_opened_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, vec![1u8; 1000]).unwrap();
    let counter = Counter::default();
    let mut r = ExactReader {
        file: File::open(&path).unwrap(),
        path: &path,
        expected: 600,
        remaining: 600,
        counter: &counter,
        error: None,
    };
    assert_eq!(io::copy(&mut r, &mut io::sink()).unwrap(), 600);
    assert_eq!(counter.get(), 600);
}

// ---------------------------------------------------------------------------------
// Hostile streams.

/// A GNU header with raw name bytes (no checks: the builder refuses `..` itself).
fn raw_header(name: &[u8], kind: EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(1_000_000_000);
    h.set_cksum();
    h
}

fn stream(entries: &[(tar::Header, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (h, data) in entries {
        b.append(h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn refused(tar: &[u8]) -> (ArchiveError, tempfile::TempDir) {
    let dst = tempfile::tempdir().unwrap();
    let e = unpack_tree(tar, &dst.path().join("out")).map(|_| ());
    let e = match e {
        Err(e) => e,
        Ok(()) => panic!("accepted"),
    };
    (e, dst)
}

fn unpack_into_new(tar: &[u8]) -> (Result<UnpackStats, ArchiveError>, tempfile::TempDir) {
    let dst = tempfile::tempdir().unwrap();
    fs::create_dir(dst.path().join("out")).unwrap();
    (unpack_tree(tar, &dst.path().join("out")), dst)
}

#[test]
fn rejects_parent_directory_components() {
    let tar = stream(&[(raw_header(b"a/../../evil", EntryType::Regular, 4), b"evil")]);
    let (r, dst) = unpack_into_new(&tar);
    let e = r.unwrap_err();
    assert!(
        matches!(e, ArchiveError::Tar(TarError::Refused { offset: 0, .. })),
        "{e}"
    );
    assert!(e.to_string().contains(".."), "{e}");
    assert!(!dst.path().join("evil").exists());
}

#[test]
fn rejects_absolute_paths() {
    let tar = stream(&[
        (raw_header(b"ok", EntryType::Regular, 2), b"ok"),
        (raw_header(b"/tmp/evil", EntryType::Regular, 4), b"evil"),
    ]);
    let (r, _dst) = unpack_into_new(&tar);
    let e = r.unwrap_err();
    // The second entry: after one header block and one data block.
    assert!(
        matches!(e, ArchiveError::Tar(TarError::Refused { offset: 1024, .. })),
        "{e}"
    );
    assert!(e.to_string().contains("absolute"), "{e}");
}

#[test]
fn rejects_writing_through_a_symbolic_link() {
    let outside = tempfile::tempdir().unwrap();
    let mut link = raw_header(b"escape", EntryType::Symlink, 0);
    link.set_link_name(outside.path()).unwrap();
    link.set_cksum();
    let tar = stream(&[
        (link, b""),
        (
            raw_header(b"escape/planted", EntryType::Regular, 4),
            b"evil",
        ),
    ]);
    let (r, _dst) = unpack_into_new(&tar);
    let e = r.unwrap_err();
    assert!(
        matches!(e, ArchiveError::Tar(TarError::Refused { .. })),
        "{e}"
    );
    assert!(!outside.path().join("planted").exists());
}

#[test]
fn accepts_a_file_over_a_link_without_writing_through_it() {
    // A file entry named like an existing link replaces the link; it never writes
    // into the link's target.
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, "original").unwrap();
    let mut link = raw_header(b"name", EntryType::Symlink, 0);
    link.set_link_name(&victim).unwrap();
    link.set_cksum();
    let tar = stream(&[
        (link, b""),
        (raw_header(b"name", EntryType::Regular, 3), b"new"),
    ]);
    let (r, dst) = unpack_into_new(&tar);
    r.unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"original");
    assert_eq!(fs::read(dst.path().join("out/name")).unwrap(), b"new");
}

#[test]
fn rejects_oversized_long_names_without_reading_them() {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    h.set_entry_type(EntryType::GNULongName);
    h.set_size(1 << 40);
    h.set_cksum();
    // Only the header: a reader that tried to read the name would hit the end.
    let mut tar = h.as_bytes().to_vec();
    tar.extend_from_slice(&[0; 512]);
    let (e, _) = refused(&tar);
    assert!(
        matches!(e, ArchiveError::Tar(TarError::Malformed { offset: 0, .. })),
        "{e}"
    );
    assert!(e.to_string().contains("at most 4096"), "{e}");
}

#[test]
fn rejects_hard_links_and_devices() {
    for kind in [EntryType::Link, EntryType::Char, EntryType::Fifo] {
        let tar = stream(&[(raw_header(b"x", kind, 0), b"")]);
        let (r, _dst) = unpack_into_new(&tar);
        let e = r.unwrap_err();
        assert!(
            matches!(e, ArchiveError::Tar(TarError::Refused { .. })),
            "{kind:?}: {e}"
        );
    }
}

#[test]
fn rejects_a_stream_cut_inside_a_file() {
    let tar = stream(&[(raw_header(b"f", EntryType::Regular, 3000), &[7u8; 3000][..])]);
    let (r, _dst) = unpack_into_new(&tar[..512 + 1024]);
    let e = r.unwrap_err();
    assert!(
        matches!(
            e,
            ArchiveError::Tar(TarError::Malformed { .. })
                | ArchiveError::Tar(TarError::Stream { .. })
        ),
        "{e}"
    );
}

#[test]
fn rejects_a_reader_error_after_the_end_of_the_archive() {
    struct FailsAtEnd<'a>(&'a [u8]);
    impl Read for FailsAtEnd<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::other("download cut"));
            }
            let n = self.0.read(buf)?;
            Ok(n)
        }
    }
    let tar = stream(&[(raw_header(b"f", EntryType::Regular, 1), b"x")]);
    let dst = tempfile::tempdir().unwrap();
    let e = unpack_tree(FailsAtEnd(&tar), dst.path()).unwrap_err();
    assert!(e.to_string().contains("download cut"), "{e}");
}

#[test]
fn accepts_pax_paths_and_times() {
    let mut b = tar::Builder::new(Vec::new());
    let long = format!("p/{}/{}", "x".repeat(200), "y".repeat(150));
    b.append_pax_extensions([
        ("path", long.as_bytes()),
        ("mtime", b"1234567890.5".as_slice()),
    ])
    .unwrap();
    b.append(&raw_header(b"short", EntryType::Regular, 2), &b"hi"[..])
        .unwrap();
    let tar = b.into_inner().unwrap();
    let (r, dst) = unpack_into_new(&tar);
    r.unwrap();
    let p = dst.path().join("out").join(&long);
    assert_eq!(fs::read(&p).unwrap(), b"hi");
    assert_eq!(fs::metadata(&p).unwrap().mtime(), 1_234_567_890);
    assert!(!dst.path().join("out/short").exists());
}

#[test]
fn accepts_a_forced_restore_over_an_earlier_one() {
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    let (tar, _, _) = pack(src.path());
    let dst = tempfile::tempdir().unwrap();
    unpack_tree(&tar[..], dst.path()).unwrap();
    fs::write(dst.path().join("secret"), "changed").unwrap();
    unpack_tree(&tar[..], dst.path()).unwrap();
    assert_eq!(describe(dst.path()), describe(src.path()));
}

#[test]
fn rejects_set_user_id_bits() {
    let mut h = raw_header(b"suid", EntryType::Regular, 1);
    h.set_mode(0o4755);
    h.set_cksum();
    let tar = stream(&[(h, b"x")]);
    let (r, dst) = unpack_into_new(&tar);
    r.unwrap();
    let mode = fs::metadata(dst.path().join("out/suid")).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o755);
}
