//! Arbitrary bytes through the bounded tar reader of the tree snapshots
//! (`headlock_core::snapshot::tar_stream::read_tar`), reading every entry's data as the
//! service does.
//!
//! Besides "never panics", every entry the reader hands over must obey the rules of
//! `snapshot::path` and of a manifest: its path is already canonical (canonicalising it
//! again changes nothing), relative, without empty, `.` or `..` components, NUL-free and
//! at most `MAX_PATH_LEN` bytes; a symlink's target is valid; a file yields at most its
//! declared size; and the entries, as the service turns them into a tree manifest, pass
//! `Manifest::validate`. Memory stays bounded: a counting allocator checks that the peak
//! of live heap during one input stays under the reader's declared limits (`MAX_PAX`,
//! `MAX_PATH_LEN`, the copy buffers) plus a small multiple of the input.

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};

use std::collections::HashMap;

use headlock_core::snapshot::path::{
    MAX_PATH_LEN, canonical_tar_path, is_valid_link_target, non_directory_ancestor,
};
use headlock_core::snapshot::tar_stream::{MAX_PAX, TarError, read_tar};
use headlock_core::snapshot::{EntryType, Manifest, ManifestEntry, ManifestKind};
use libfuzzer_sys::fuzz_target;

/// Counts live heap bytes and their peak (libFuzzer's own allocations are C's, not
/// counted).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// What one input may hold live at once beyond the input itself: one PAX header, a long
/// name and a long link, the paths of every entry twice (at most one entry per 512 bytes
/// of input), copy buffers; 1 MiB of slack for the tar crate and the manifest built here.
fn memory_bound(input: usize) -> usize {
    MAX_PAX as usize + 2 * MAX_PATH_LEN + 4 * input + (1 << 20)
}

fn check_path(path: &str) {
    assert!(!path.is_empty(), "an empty path was handed over");
    assert!(path.len() <= MAX_PATH_LEN, "a path over the limit");
    assert!(!path.contains('\0'), "a path with NUL");
    assert!(!path.starts_with('/'), "an absolute path: {path:?}");
    for c in path.split('/') {
        assert!(!matches!(c, "" | "." | ".."), "component {c:?} in {path:?}");
    }
    assert_eq!(
        canonical_tar_path(path.as_bytes()).as_deref(),
        Ok(path),
        "a handed-over path is not canonical"
    );
}

fuzz_target!(|data: &[u8]| {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);

    let mut entries = Vec::new();
    let mut kinds = HashMap::new();
    let _ = read_tar(data, |mut e| -> Result<(), TarError> {
        check_path(&e.path);
        if kinds.insert(e.path.clone(), e.kind).is_some() {
            return Err(e.refused("twice in the archive")); // as the service refuses it
        }
        match e.kind {
            EntryType::Symlink => {
                let t = e.target.as_deref().expect("a symlink has a target");
                assert!(is_valid_link_target(t.as_bytes()), "bad link target");
            }
            _ => assert!(e.target.is_none(), "only symlinks have targets"),
        }
        if e.kind != EntryType::File {
            assert_eq!(e.size, 0, "only files have a size");
        }
        let size = e.size;
        let read = io::copy(&mut e.data().take(size.saturating_add(1)), &mut io::sink())
            .expect("reading from a slice");
        assert!(
            read <= e.size,
            "{read} bytes of data for an entry of {}",
            e.size
        );
        // As the service's backup builds its manifest (the chunks are not checked here:
        // the file is recorded empty).
        entries.push(ManifestEntry {
            path: e.path,
            entry_type: e.kind,
            mode: e.mode & 0o7777,
            mtime: e.mtime,
            size: 0,
            target: e.target,
            chunks: Vec::new(),
            stamp: None,
        });
        Ok(())
    });
    // The service refuses a tree with an entry below a file or symlink before it
    // builds the manifest; anything else it accepted must make a valid one.
    let below_non_dir = entries
        .iter()
        .any(|e| non_directory_ancestor(&e.path, |p| kinds.get(p).copied()).is_some());
    let manifest = Manifest {
        version: 1,
        kind: ManifestKind::Tree,
        source: None,
        entries,
    };
    if !below_non_dir && let Err(e) = manifest.validate() {
        panic!("an entry the tar reader accepted fails the manifest rules: {e}");
    }
    drop(manifest);

    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    assert!(
        peak <= memory_bound(data.len()),
        "{peak} bytes live for an input of {} bytes",
        data.len()
    );
});
