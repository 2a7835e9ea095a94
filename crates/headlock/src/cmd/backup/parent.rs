//! The parent snapshot of `headlock backup DIR`, read as a stream: memory stays flat
//! whatever the number of files (docs/design.md, "Incremental backups: chunking in the
//! client").
//!
//! The session's parent answer (`GET .../U/parent`, JSON `{"snapshot", "source",
//! "entries": [...]}`, files whose chunks are gone already left out by the service) is
//! downloaded into an unlinked temporary file by a task of its own, as fast as the
//! service sends it, so the connection is never held open by a slow walk. A thread of
//! its own parses that file entry by entry as it grows, behind the download, and hands
//! the files with a stamp over a small bounded channel to a [`ParentCursor`], which the
//! walk asks for each file it meets, in its own order. The walk thus starts with the
//! download instead of after it: the service's work for the answer and the walk's
//! (one `stat` a file) overlap. A parent written by
//! the same walk lists its files in that order ([`walk_order`]), so each entry is
//! looked at once: a merge of two sorted streams, never a map of the parent.
//!
//! An entry out of that order (a parent not written by this walk) is passed over, and
//! its file is read: order costs speed, never correctness, since a file is taken from
//! the parent only when its path and stamp equal the entry's.

use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use headlock_core::snapshot::{EntryType, MAX_MANIFEST_JSON, ManifestEntry};

use crate::client::streaming::StreamResponse;
use crate::cmd::remote::{EXIT_FAILED, Failure};
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

/// The download of a parent's list and the thread that parses it, to be finished after
/// the walk.
pub struct ParentReader(Option<Reading>);

/// A parent's list being read: the parsing thread, the spool file's progress, and the
/// download task.
struct Reading {
    parser: JoinHandle<Result<u64, String>>,
    spooled: Arc<Spooled>,
    download: tokio::task::AbortHandle,
}

impl ParentReader {
    /// No parent, no thread.
    pub fn none() -> ParentReader {
        ParentReader(None)
    }

    /// Ends the download and the parsing once the walk is over (and its cursor
    /// dropped), and warns if the parent's list was damaged or broke off before the
    /// walk was done with it: the files after that point were read.
    pub fn finish(self, warnings: &Warnings) {
        let Some(Reading {
            parser,
            spooled,
            download,
        }) = self.0
        else {
            return;
        };
        // The rest of the answer is of no use now (the tree had fewer files than the
        // parent), and the parser may be waiting for it.
        download.abort();
        spooled.end(Err(WALK_DONE.into()));
        match parser.join() {
            Ok(Ok(_)) => {}
            Ok(Err(why)) => warnings.warn(&format!(
                "the parent snapshot's file list is damaged or incomplete ({why}): the files after that point were read"
            )),
            Err(_) => warnings.warn("the parent snapshot's reader failed: files were read"),
        }
    }
}

/// How far a spool file has been written, and how the writing ended.
struct Spooled {
    state: Mutex<SpoolState>,
    grew: Condvar,
}

struct SpoolState {
    written: u64,
    /// `Some` once nothing more will be written: `Ok` at the answer's end.
    end: Option<Result<(), String>>,
}

impl Spooled {
    fn new() -> Arc<Spooled> {
        Arc::new(Spooled {
            state: Mutex::new(SpoolState {
                written: 0,
                end: None,
            }),
            grew: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SpoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wrote(&self, n: u64) {
        self.lock().written += n;
        self.grew.notify_all();
    }

    /// The first end said is the one that stays.
    fn end(&self, how: Result<(), String>) {
        self.lock().end.get_or_insert(how);
        self.grew.notify_all();
    }
}

/// A spool file read from its start as it is written: a read waits for bytes, and
/// ends (or fails) as the writing did.
struct Following {
    file: File,
    at: u64,
    spooled: Arc<Spooled>,
}

impl io::Read for Following {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut state = self.spooled.lock();
        let ready = loop {
            if state.written > self.at {
                break state.written - self.at;
            }
            match &state.end {
                Some(Ok(())) => return Ok(0),
                Some(Err(why)) => return Err(io::Error::other(why.clone())),
                None => {
                    state = self
                        .spooled
                        .grew
                        .wait(state)
                        .unwrap_or_else(|e| e.into_inner())
                }
            }
        };
        drop(state);
        let want = buf.len().min(usize::try_from(ready).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Starts downloading a parent answer (`resp`, a 2xx) into `spool` (a task), and the
/// thread that parses it behind the download. A download that breaks off or passes
/// the manifest bound ends the list there (the files after it are read), which
/// [`ParentReader::finish`] tells.
pub fn read(
    mut resp: StreamResponse,
    spool: File,
) -> Result<(ParentCursor, ParentReader), Failure> {
    let local = |what: &str, e: io::Error| {
        Failure::new(
            EXIT_FAILED,
            format!("{what} the parent snapshot's list: {e}"),
        )
    };
    let reading = spool
        .try_clone()
        .map_err(|e| local("a second handle on the temporary file of", e))?;
    let spooled = Spooled::new();
    // The parser first: if its thread cannot start, no download is left running.
    let input = Following {
        file: reading,
        at: 0,
        spooled: spooled.clone(),
    };
    let (tx, rx) = sync_channel(AHEAD);
    let reader = std::thread::Builder::new()
        .name("backup-parent".into())
        .spawn(move || parse(BufReader::with_capacity(256 * 1024, input), tx))
        .map_err(|e| local("starting the reader of", e))?;
    let download = spooled.clone();
    let task = tokio::spawn(async move {
        let mut spool = spool;
        let mut total = 0u64;
        let end = loop {
            match resp.chunk().await {
                Ok(Some(piece)) => {
                    total += piece.len() as u64;
                    if total > MAX_MANIFEST_JSON {
                        break Err(format!("longer than {MAX_MANIFEST_JSON} bytes"));
                    }
                    if let Err(e) = spool.write_all(&piece) {
                        break Err(format!("writing it to a temporary file: {e}"));
                    }
                    download.wrote(piece.len() as u64);
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(format!("the download broke off: {e}")),
            }
        };
        download.end(end);
    });
    let cursor = ParentCursor {
        entries: Some(rx),
        head: None,
    };
    Ok((
        cursor,
        ParentReader(Some(Reading {
            parser: reader,
            spooled,
            download: task.abort_handle(),
        })),
    ))
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
        // The walk is over: it stopped listening, or the read behind the download was
        // ended for it (an io error of serde_json's, which keeps the message).
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

    /// A spool file and a reader following it, as `read` sets them up.
    fn following() -> (File, Following, Arc<Spooled>) {
        let file = tempfile::tempfile().unwrap();
        let spooled = Spooled::new();
        let reader = Following {
            file: file.try_clone().unwrap(),
            at: 0,
            spooled: spooled.clone(),
        };
        (file, reader, spooled)
    }

    /// The parser started behind a download that has written `head` so far.
    fn parsing_behind(head: &str) -> (Arc<Spooled>, JoinHandle<Result<u64, String>>, ParentCursor) {
        let (mut file, input, spooled) = following();
        file.write_all(head.as_bytes()).unwrap();
        spooled.wrote(head.len() as u64);
        let (tx, rx) = sync_channel(4);
        let reader = std::thread::spawn(move || parse(BufReader::new(input), tx));
        let cursor = ParentCursor {
            entries: Some(rx),
            head: None,
        };
        (spooled, reader, cursor)
    }

    #[test]
    fn the_reader_follows_the_download_and_ends_as_it_did() {
        use std::io::Read;
        // Written in pieces while the reader waits for them: it reads them all, in
        // order, and sees the end only once the download said so.
        let (mut file, mut reader, spooled) = following();
        let writer = std::thread::spawn(move || {
            for piece in 0..50u8 {
                file.write_all(&[piece; 1000]).unwrap();
                spooled.wrote(1000);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            spooled.end(Ok(()));
        });
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        writer.join().unwrap();
        let expected: Vec<u8> = (0..50u8).flat_map(|p| [p; 1000]).collect();
        assert_eq!(all, expected);

        // A download that broke off: what came is read, then the failure, not an end.
        let (mut file, mut reader, spooled) = following();
        file.write_all(b"{\"entries\":[").unwrap();
        spooled.wrote(12);
        spooled.end(Err("the download broke off: reset".into()));
        let mut got = Vec::new();
        let e = reader.read_to_end(&mut got).unwrap_err();
        assert_eq!(got, b"{\"entries\":[");
        assert!(e.to_string().contains("broke off"), "{e}");
        // The first end said stays (the walk ending later changes nothing).
        spooled.end(Err(WALK_DONE.into()));
        assert!(
            reader
                .read(&mut [0; 8])
                .unwrap_err()
                .to_string()
                .contains("broke off")
        );
    }

    #[test]
    fn a_list_cut_short_is_reported_and_a_finished_walk_is_not() {
        // The parser, behind a download that broke off in the middle of the list:
        // the entries before the break reach the walk, and the reader says why it
        // stopped.
        let head = format!(r#"{{"entries":[{},{}"#, entry("a", true), entry("b", true));
        let (spooled, reader, mut cursor) = parsing_behind(&head);
        spooled.end(Err("the download broke off: reset".into()));
        assert!(cursor.take("a").is_some());
        assert!(cursor.take("b").is_some());
        assert!(cursor.take("c").is_none());
        let why = reader.join().unwrap().unwrap_err();
        assert!(why.contains("broke off"), "{why}");

        // A walk over before the download is: the parser, waiting for more, is ended
        // by `finish` without a warning.
        let head = format!(r#"{{"entries":[{}"#, entry("a", true));
        let (spooled, reader, mut cursor) = parsing_behind(&head);
        assert!(cursor.take("a").is_some());
        drop(cursor);
        spooled.end(Err(WALK_DONE.into()));
        assert_eq!(reader.join().unwrap(), Ok(1));
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
