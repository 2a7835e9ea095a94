use super::*;

/// A GNU header with raw name bytes (no checks: the builder refuses `..` itself).
fn raw_header(name: &[u8], kind: tar::EntryType, size: u64) -> tar::Header {
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

/// What the reader hands over: (path, kind, mode, mtime, target, data), or its error.
type Seen = Vec<(String, EntryType, u32, i64, Option<String>, Vec<u8>)>;

fn read_all(tar: impl Read) -> Result<Seen, TarError> {
    let mut seen = Vec::new();
    read_tar(tar, |mut e| -> Result<(), TarError> {
        let mut data = Vec::new();
        e.data().read_to_end(&mut data).unwrap();
        seen.push((
            e.path.clone(),
            e.kind,
            e.mode,
            e.mtime,
            e.target.clone(),
            data,
        ));
        Ok(())
    })?;
    Ok(seen)
}

/// A header announcing `size` bytes of a GNU long name (or link), with no data after it.
fn long_header(kind: tar::EntryType, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_cksum();
    // Only the header: a reader that tried to read the name would hit the end.
    let mut tar = h.as_bytes().to_vec();
    tar.extend_from_slice(&[0; 1024]);
    tar
}

#[test]
fn accepts_files_directories_links_long_names_and_pax_times() {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = raw_header(b"./", tar::EntryType::Directory, 0);
    dir.set_mode(0o755);
    dir.set_cksum();
    b.append(&dir, io::empty()).unwrap();
    let long = format!("d/{}/{}", "x".repeat(200), "y".repeat(150));
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o640);
    h.set_mtime(7);
    b.append_data(&mut h, &long, &b"hi"[..]).unwrap();
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    link.set_mode(0o777);
    link.set_mtime(8);
    b.append_link(&mut link, "./d/l", "../elsewhere").unwrap();
    b.append_pax_extensions([
        ("path", b"p/pax-name".as_slice()),
        ("mtime", b"1234567890.5".as_slice()),
    ])
    .unwrap();
    b.append(&raw_header(b"short", tar::EntryType::Regular, 1), &b"z"[..])
        .unwrap();
    let seen = read_all(&b.into_inner().unwrap()[..]).unwrap();
    assert_eq!(
        seen,
        vec![
            (long, EntryType::File, 0o640, 7, None, b"hi".to_vec()),
            (
                "d/l".into(),
                EntryType::Symlink,
                0o777,
                8,
                Some("../elsewhere".into()),
                vec![]
            ),
            (
                "p/pax-name".into(),
                EntryType::File,
                0o644,
                1_234_567_890,
                None,
                b"z".to_vec()
            ),
        ]
    );
}

#[test]
fn rejects_oversized_long_names_and_links_without_reading_them() {
    for kind in [tar::EntryType::GNULongName, tar::EntryType::GNULongLink] {
        let e = read_all(&long_header(kind, 256 << 20)[..]).unwrap_err();
        assert!(matches!(e, TarError::Malformed { offset: 0, .. }), "{e}");
        assert!(e.to_string().contains("at most 4096"), "{e}");
    }
}

#[test]
fn rejects_oversized_pax_headers_without_reading_them() {
    for kind in [tar::EntryType::XHeader, tar::EntryType::XGlobalHeader] {
        let e = read_all(&long_header(kind, 128 << 20)[..]).unwrap_err();
        assert!(matches!(e, TarError::Malformed { offset: 0, .. }), "{e}");
        assert!(e.to_string().contains("at most 65536"), "{e}");
    }
}

#[test]
fn rejects_a_pax_path_longer_than_the_path_rules_allow() {
    let mut b = tar::Builder::new(Vec::new());
    let long = "a/".repeat(3000);
    b.append_pax_extensions([("path", long.as_bytes())])
        .unwrap();
    b.append(&raw_header(b"x", tar::EntryType::Regular, 0), io::empty())
        .unwrap();
    let e = read_all(&b.into_inner().unwrap()[..]).unwrap_err();
    assert!(matches!(e, TarError::Refused { offset: 0, .. }), "{e}");
    assert!(e.to_string().contains("longer than 4096"), "{e}");
}

#[test]
fn rejects_paths_that_leave_the_tree_or_are_not_utf8() {
    for (name, why) in [
        (&b"a/../../evil"[..], ".."),
        (b"/tmp/evil", "absolute"),
        (b"bad\xff", "UTF-8"),
    ] {
        let tar = stream(&[
            (raw_header(b"ok", tar::EntryType::Regular, 2), b"ok"),
            (raw_header(name, tar::EntryType::Regular, 4), b"evil"),
        ]);
        let e = read_all(&tar[..]).unwrap_err();
        // The second entry: after one header block and one data block.
        assert!(matches!(e, TarError::Refused { offset: 1024, .. }), "{e}");
        assert!(e.to_string().contains(why), "{e}");
    }
}

#[test]
fn rejects_hard_links_devices_and_empty_paths() {
    for kind in [
        tar::EntryType::Link,
        tar::EntryType::Char,
        tar::EntryType::Fifo,
        tar::EntryType::GNUSparse,
    ] {
        let e = read_all(&stream(&[(raw_header(b"x", kind, 0), b"")])[..]).unwrap_err();
        assert!(matches!(e, TarError::Refused { .. }), "{kind:?}: {e}");
    }
    let e =
        read_all(&stream(&[(raw_header(b"./", tar::EntryType::Regular, 0), b"")])[..]).unwrap_err();
    assert!(e.to_string().contains("empty path"), "{e}");
}

#[test]
fn rejects_link_targets_empty_or_too_long() {
    let empty = raw_header(b"l", tar::EntryType::Symlink, 0);
    let e = read_all(&stream(&[(empty, b"")])[..]).unwrap_err();
    assert!(
        e.to_string().contains("symbolic link target of 0 bytes"),
        "{e}"
    );

    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("linkpath", "t".repeat(5000).as_bytes())])
        .unwrap();
    b.append(&raw_header(b"l", tar::EntryType::Symlink, 0), io::empty())
        .unwrap();
    let e = read_all(&b.into_inner().unwrap()[..]).unwrap_err();
    assert!(e.to_string().contains("5000 bytes"), "{e}");
}

#[test]
fn rejects_a_long_name_with_no_entry_after_it() {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_size(3);
    h.set_cksum();
    let tar = stream(&[(h, b"abc")]);
    let e = read_all(&tar[..]).unwrap_err();
    assert!(e.to_string().contains("no entry for it"), "{e}");
}

#[test]
fn rejects_more_than_the_trailer_after_the_end_of_the_archive() {
    let mut tar = stream(&[(raw_header(b"f", tar::EntryType::Regular, 1), b"x")]);
    tar.extend(std::iter::repeat_n(0u8, MAX_TRAILER as usize - 1024));
    read_all(&tar[..]).unwrap();
    tar.extend_from_slice(&[0; 2048]);
    let e = read_all(&tar[..]).unwrap_err();
    assert!(
        e.to_string().contains("after the end of the archive"),
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
            self.0.read(buf)
        }
    }
    let tar = stream(&[(raw_header(b"f", tar::EntryType::Regular, 1), b"x")]);
    let e = read_all(FailsAtEnd(&tar)).unwrap_err();
    assert!(matches!(e, TarError::Stream { .. }), "{e}");
    assert!(e.to_string().contains("download cut"), "{e}");
}

#[test]
fn rejects_malformed_pax_records() {
    for data in [&b"99 path=x\n"[..], b"nolength", b"5 a\n", b"12 mtime=x\n"] {
        let mut p = Pending::default();
        assert!(apply_pax(data, &mut p).is_err(), "{data:?}");
    }
}

/// Found by the `tar_stream` fuzz target: a directory (or link) whose header declares
/// data handed that data over through `data()`, though its `size` said 0.
#[test]
fn a_directory_or_link_with_declared_data_hands_over_none_and_the_next_entry_reads() {
    let mut link = raw_header(b"l", tar::EntryType::Symlink, 3);
    link.set_link_name("f").unwrap();
    link.set_cksum();
    let tar = stream(&[
        (raw_header(b"d", tar::EntryType::Directory, 5), b"dirdt"),
        (link, b"lnk"),
        (raw_header(b"f", tar::EntryType::Regular, 2), b"hi"),
    ]);
    let seen = read_all(&tar[..]).unwrap();
    let data: Vec<_> = seen
        .iter()
        .map(|s| (s.0.as_str(), s.5.as_slice()))
        .collect();
    assert_eq!(
        data,
        [("d", &b""[..]), ("l", &b""[..]), ("f", &b"hi"[..])],
        "only a file has data, and it is the size its entry states"
    );
}
