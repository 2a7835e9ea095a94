//! The parent snapshot of `headlock backup DIR`, read as a stream: memory stays flat
//! whatever the number of files (docs/design.md, "Incremental backups: chunking in the
//! client").
//!
//! The session's parent answer (`GET .../U/parent`, JSON `{"snapshot", "source",
//! "entries": [...]}`, files whose chunks are gone already left out by the service) is
//! downloaded into an unlinked temporary file, so the connection is not held open for
//! the length of the walk. A thread of its own then parses that file entry by entry and
//! hands the files with a stamp over a small bounded channel to a [`ParentCursor`],
//! which the walk asks for each file it meets, in its own order. A parent written by
//! the same walk lists its files in that order ([`walk_order`]), so each entry is
//! looked at once: a merge of two sorted streams, never a map of the parent.
//!
//! An entry out of that order (a parent not written by this walk) is passed over, and
//! its file is read: order costs speed, never correctness, since a file is taken from
//! the parent only when its path and stamp equal the entry's.

use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Seek, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use headlock_core::snapshot::{EntryType, MAX_MANIFEST_JSON, ManifestEntry};

use crate::client::streaming::StreamResponse;
use crate::cmd::remote::{EXIT_FAILED, Failure, Remote};
use crate::progress::Warnings;

/// Parent entries parsed ahead of the walk.
const AHEAD: usize = 1024;

/// The order of `archive::walk_tree`: a directory's entries in name order, then the
/// subtree of each of its subdirectories in name order (so every entry of a directory
/// comes before anything deeper in it, and a directory before its contents). Paths are
/// relative, `/`-separated; names compare as bytes, as the walk sorts them.
pub fn walk_order(a: &str, b: &str) -> Ordering {
    let (mut a_parts, mut b_parts) = (a.split('/'), b.split('/'));
    loop {
        match (a_parts.next(), b_parts.next()) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => {
                // The first difference: an entry of this directory comes before
                // anything inside one of its subdirectories.
                let a_here = a_parts.next().is_none();
                let b_here = b_parts.next().is_none();
                return match (a_here, b_here) {
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    _ => x.as_bytes().cmp(y.as_bytes()),
                };
            }
            // A directory comes before what is in it.
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (None, None) => return Ordering::Equal,
        }
    }
}

/// The parent's files with a stamp, in the walk's order, as the walk asks for them.
pub struct ParentCursor {
    entries: Option<Receiver<ManifestEntry>>,
    head: Option<ManifestEntry>,
}

impl ParentCursor {
    /// No parent: every file is read.
    pub fn none() -> ParentCursor {
        ParentCursor {
            entries: None,
            head: None,
        }
    }

    /// The parent's entry for the file at `rel`, if it has one. The walk asks in its
    /// own order: entries before `rel` are passed over for good.
    pub fn take(&mut self, rel: &str) -> Option<ManifestEntry> {
        loop {
            if self.head.is_none() {
                self.head = self.entries.as_ref()?.recv().ok();
                if self.head.is_none() {
                    // The parent's list ended (or its reader stopped): nothing more.
                    self.entries = None;
                    return None;
                }
            }
            let head = self.head.as_ref().expect("set above");
            match walk_order(&head.path, rel) {
                Ordering::Less => self.head = None,
                Ordering::Equal => return self.head.take(),
                Ordering::Greater => return None,
            }
        }
    }
}

/// The thread that parses a parent's list, to be waited for after the walk.
pub struct ParentReader(Option<JoinHandle<Result<u64, String>>>);

impl ParentReader {
    /// No parent, no thread.
    pub fn none() -> ParentReader {
        ParentReader(None)
    }

    /// Waits for the thread once the walk is over (and its cursor dropped), and warns
    /// if the parent's list was damaged: the files after the damage were read.
    pub fn finish(self, warnings: &Warnings) {
        let Some(reader) = self.0 else { return };
        match reader.join() {
            Ok(Ok(_)) => {}
            Ok(Err(why)) => warnings.warn(&format!(
                "the parent snapshot's file list is damaged ({why}): the files after the damage were read"
            )),
            Err(_) => warnings.warn("the parent snapshot's reader failed: files were read"),
        }
    }
}

/// Downloads a parent answer (`resp`, a 2xx) into `spool`, then starts the thread that
/// parses it. Fails when the answer passes the manifest bound or the download breaks
/// off.
pub async fn read(
    api: &Remote,
    mut resp: StreamResponse,
    mut spool: File,
) -> Result<(ParentCursor, ParentReader), Failure> {
    let local = |e: io::Error| {
        Failure::new(
            EXIT_FAILED,
            format!("writing the parent snapshot's list to a temporary file: {e}"),
        )
    };
    let mut total = 0u64;
    {
        let mut out = BufWriter::new(&mut spool);
        loop {
            match resp.chunk().await {
                Ok(Some(piece)) => {
                    total += piece.len() as u64;
                    if total > MAX_MANIFEST_JSON {
                        return Err(Failure::new(
                            EXIT_FAILED,
                            format!(
                                "the parent snapshot's list is longer than {MAX_MANIFEST_JSON} bytes"
                            ),
                        ));
                    }
                    out.write_all(&piece).map_err(local)?;
                }
                Ok(None) => break,
                Err(e) => return Err(api.unreachable(e)),
            }
        }
        out.flush().map_err(local)?;
    }
    drop(resp);
    spool.rewind().map_err(local)?;
    let (tx, rx) = sync_channel(AHEAD);
    let reader = std::thread::Builder::new()
        .name("backup-parent".into())
        .spawn(move || parse(BufReader::new(spool), tx))
        .map_err(|e| Failure::new(EXIT_FAILED, format!("starting the parent's reader: {e}")))?;
    let cursor = ParentCursor {
        entries: Some(rx),
        head: None,
    };
    Ok((cursor, ParentReader(Some(reader))))
}

/// Why parsing stopped early without a fault: the walk no longer listens.
const WALK_DONE: &str = "the walk is over";

/// Parses a parent answer from `input`, sending its files with a stamp (the others are
/// never taken unread) to `tx`: how many, or why the list does not parse.
fn parse(input: impl io::Read, tx: SyncSender<ManifestEntry>) -> Result<u64, String> {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

    struct Entries<'a>(&'a SyncSender<ManifestEntry>, &'a mut u64);
    impl<'de> DeserializeSeed<'de> for Entries<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de> Visitor<'de> for Entries<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of manifest entries")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(e) = seq.next_element::<ManifestEntry>()? {
                if e.entry_type == EntryType::File && e.stamp.is_some() {
                    if self.0.send(e).is_err() {
                        return Err(serde::de::Error::custom(WALK_DONE));
                    }
                    *self.1 += 1;
                }
            }
            Ok(())
        }
    }
    struct Answer<'a>(&'a SyncSender<ManifestEntry>, &'a mut u64);
    impl<'de> Visitor<'de> for Answer<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a parent snapshot")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = false;
            while let Some(key) = map.next_key::<String>()? {
                if key == "entries" && !seen {
                    map.next_value_seed(Entries(self.0, &mut *self.1))?;
                    seen = true;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            if seen {
                Ok(())
            } else {
                Err(serde::de::Error::missing_field("entries"))
            }
        }
    }
    let mut sent = 0u64;
    let mut de = serde_json::Deserializer::from_reader(input);
    match de.deserialize_map(Answer(&tx, &mut sent)) {
        Ok(()) => de.end().map(|()| sent).map_err(|e| e.to_string()),
        Err(e) if e.to_string().starts_with(WALK_DONE) => Ok(sent),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_order_is_the_walks() {
        // A root with directories `a` and `b` and files `a.txt` and `z.txt`, as
        // `archive::walk_tree` emits it: the root's entries by name, then the subtree
        // of `a` (its entries, then those of `a/sub`, then of `a/sub2`), then of `b`.
        let walked = [
            "a",
            "a.txt",
            "b",
            "z.txt",
            "a/sub",
            "a/sub2",
            "a/x",
            "a/y",
            "a/sub/deep",
            "a/sub2/f",
            "b/c",
        ];
        let mut shuffled = walked.to_vec();
        shuffled.reverse();
        shuffled.swap(2, 7);
        shuffled.sort_by(|a, b| walk_order(a, b));
        assert_eq!(shuffled, walked);
        assert_eq!(walk_order("a/b", "a/b"), Ordering::Equal);
        // "a.txt" < "a/b" as strings ('.' < '/'), but the walk lists the root's "a.txt"
        // before descending into "a".
        assert_eq!(walk_order("a.txt", "a/b"), Ordering::Less);
        assert_eq!(walk_order("a/b", "a.txt"), Ordering::Greater);
        assert_eq!(walk_order("a", "a/b"), Ordering::Less);
    }

    fn entry(path: &str, stamp: bool) -> String {
        let stamp = if stamp {
            r#","stamp":{"ctime_ns":1,"inode":2}"#
        } else {
            ""
        };
        format!(
            r#"{{"path":"{path}","type":"file","mode":420,"mtime":0,"size":1,"chunks":[]{stamp}}}"#
        )
    }

    #[test]
    fn the_cursor_merges_in_walk_order_and_passes_over_the_rest() {
        let answer = format!(
            r#"{{"snapshot":"s","source":null,"entries":[{},{},{},{},{}]}}"#,
            entry("a.txt", true),
            entry("b.txt", false),
            entry("c.txt", true),
            entry("d/x", true),
            entry("d/y", true),
        );
        let (tx, rx) = sync_channel(2);
        let reader = std::thread::spawn(move || parse(answer.as_bytes(), tx));
        let mut cursor = ParentCursor {
            entries: Some(rx),
            head: None,
        };
        assert_eq!(cursor.take("a.txt").map(|e| e.path), Some("a.txt".into()));
        // Without a stamp: never handed over.
        assert!(cursor.take("b.txt").is_none());
        // A file the parent lacks, before one it has: the cursor keeps its place.
        assert!(cursor.take("bb.txt").is_none());
        assert_eq!(cursor.take("c.txt").map(|e| e.path), Some("c.txt".into()));
        // "d/x" is passed over (that file is gone from the tree).
        assert_eq!(cursor.take("d/y").map(|e| e.path), Some("d/y".into()));
        assert!(cursor.take("e").is_none());
        drop(cursor);
        assert_eq!(reader.join().unwrap(), Ok(4));
    }

    #[test]
    fn a_damaged_list_ends_the_cursor_and_says_why() {
        let answer = format!(r#"{{"entries":[{},{{"path":"#, entry("a", true));
        let (tx, rx) = sync_channel(2);
        let reader = std::thread::spawn(move || parse(answer.as_bytes(), tx));
        let mut cursor = ParentCursor {
            entries: Some(rx),
            head: None,
        };
        assert!(cursor.take("a").is_some());
        assert!(cursor.take("b").is_none());
        let why = reader.join().unwrap().unwrap_err();
        assert!(why.contains("EOF"), "{why}");
    }

    #[test]
    fn a_walk_that_stops_early_stops_the_reader_quietly() {
        let entries: Vec<String> = (0..100).map(|i| entry(&format!("f{i:03}"), true)).collect();
        let answer = format!(r#"{{"entries":[{}]}}"#, entries.join(","));
        let (tx, rx) = sync_channel(1);
        let reader = std::thread::spawn(move || parse(answer.as_bytes(), tx));
        let mut cursor = ParentCursor {
            entries: Some(rx),
            head: None,
        };
        assert!(cursor.take("f000").is_some());
        drop(cursor);
        assert!(reader.join().unwrap().is_ok());
    }
}
