//! `headlock backup DIR` through an upload session (docs/design.md, "Incremental
//! backups: chunking in the client"): the CLI cuts files into chunks with the
//! cluster's keyed chunker, names them with its chunk-id key, asks the service which
//! it lacks, and sends only those; then commits the manifest.
//!
//! A plain thread walks the tree ([`archive::walk_tree`], the same walk as the tar
//! path), chunks each file and hands the chunks over a small bounded channel in
//! batches of about 1 MiB; it writes the manifest's lines itself, to an unlinked file
//! in the temporary directory that is streamed as the commit's body. A tree of tiny
//! files thus costs no hand-over between threads per file. This side gathers chunks
//! into rounds of at most [`ROUND_BYTES`] (and the service's `maxQueryIds`), asks about
//! each round's ids and uploads the missing ones in one request, a round in flight on
//! each of `--connections` connections (2 by default), while the next round gathers
//! (the walker reads on meanwhile). Memory: the channel and one round more than there
//! are connections, whatever the tree's size.
//!
//! An interrupted run leaves what it uploaded recorded for the cluster; the next run
//! opens a new session, is told those chunks are known, and sends the rest.
//!
//! Unchanged files are not read: the session hands over a parent snapshot's manifest
//! (the newest of the same source path, or `--parent`), the CLI asks once which of
//! its chunks the cluster still has (the session's lease keeps collection away from
//! them until the commit), and a file whose size, mtime, ctime, inode and mode equal
//! its parent entry's (all of whose chunks are still stored) is listed with the
//! parent's chunks without being opened. `--force` reads everything.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use headlock_core::model::ChunkId;
use headlock_core::snapshot::chunker::{BoundaryKey, Chunker};
use headlock_core::snapshot::{ChunkIdKey, EntryType, FileStamp, ManifestEntry};
use hyper::Method;
use hyper::body::Bytes;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::parent::{self, ParentCursor, ParentReader};
use crate::archive::{self, ArchiveError, PackStats, TreeVisitor};
use crate::cmd::remote::{EXIT_FAILED, Failure, Remote, seg};
use crate::pipe;
use crate::progress::{Counter, Warnings};

/// Chunk bytes per round (one question, one upload).
pub const ROUND_BYTES: usize = 32 * 1024 * 1024;

/// Chunks the walking thread hands over at once (ids and bytes), so that a tree of
/// tiny files costs one hand-over per batch, not one per file.
type Handoff = Vec<(ChunkId, Vec<u8>)>;
/// A hand-over goes once it holds this many bytes of chunks...
const HANDOFF_BYTES: usize = 1024 * 1024;
/// ...or this many chunks.
const HANDOFF_CHUNKS: usize = 256;

/// Said after a failure before the commit: what was uploaded stays recorded for the
/// cluster (until collection), and a re-run is told it is known.
const NOT_COMMITTED: &str = "; nothing was committed (a re-run sends only what is missing)";

/// Counts for the progress display and the summary.
#[derive(Clone, Default)]
pub struct Sent {
    /// Bytes of chunks uploaded.
    pub sent: Counter,
    /// Bytes of chunks the cluster already had.
    pub known: Counter,
    /// Files done: read, or taken from the parent snapshot.
    pub files: Counter,
    /// Files taken from the parent snapshot unread.
    pub unchanged_files: Counter,
    /// Their bytes.
    pub unchanged_bytes: Counter,
}

/// How `backup_tree` goes about it.
pub struct TreeOptions {
    /// Which parent snapshot files are compared with.
    pub parent: ParentChoice,
    /// Rounds uploading at once, each on a connection of its own (at least 1).
    pub connections: usize,
}

/// Which parent snapshot a backup compares files with.
pub enum ParentChoice {
    /// The newest complete snapshot of the same source path, if any.
    Latest,
    /// This snapshot (`--parent`).
    Snapshot(String),
    /// None: every file is read (`--force`).
    None,
}

/// The stamp of a file as it is now.
fn stamp_of(meta: &fs::Metadata) -> FileStamp {
    FileStamp {
        ctime_ns: meta
            .ctime()
            .saturating_mul(1_000_000_000)
            .saturating_add(meta.ctime_nsec()),
        inode: meta.ino(),
    }
}

/// True if `meta` says the file is the one `parent` recorded: size, mtime, ctime,
/// inode and mode equal (restic's rule). An entry without a stamp never matches.
fn unchanged(parent: &ManifestEntry, meta: &fs::Metadata) -> bool {
    parent.entry_type == EntryType::File
        && meta.is_file()
        && parent.stamp == Some(stamp_of(meta))
        && parent.size == meta.len()
        && parent.mtime == meta.mtime()
        && parent.mode == meta.mode() & 0o7777
}

/// A file's manifest entry: `(mode, mtime, size)`, its chunks and its stamp.
fn file_entry(
    rel: &str,
    (mode, mtime, size): (u32, i64, u64),
    chunks: Vec<(ChunkId, u32)>,
    stamp: Option<FileStamp>,
) -> ManifestEntry {
    ManifestEntry {
        path: rel.to_string(),
        entry_type: EntryType::File,
        mode,
        mtime,
        size,
        target: None,
        chunks,
        stamp,
    }
}

/// The walk's visitor: every entry a line of the manifest, which it writes itself, and
/// every file's chunks handed over in batches.
struct Chunking<'a> {
    ids: &'a ChunkIdKey,
    parent: ParentCursor,
    counts: &'a Sent,
    chunker: Chunker,
    manifest: BufWriter<File>,
    out: Handoffs<'a>,
}

impl Chunking<'_> {
    /// Appends one line (JSON) to the manifest.
    fn line(&mut self, entry: &impl serde::Serialize) -> Result<(), ArchiveError> {
        let manifest = |e: io::Error| ArchiveError::Manifest { source: e };
        serde_json::to_writer(&mut self.manifest, entry).map_err(|e| manifest(e.into()))?;
        self.manifest.write_all(b"\n").map_err(manifest)
    }
}

/// Chunks waiting to be handed over, and where they go.
struct Handoffs<'a> {
    pending: Handoff,
    pending_bytes: usize,
    tx: &'a tokio::sync::mpsc::Sender<Handoff>,
}

impl Handoffs<'_> {
    fn chunk(&mut self, id: ChunkId, data: Vec<u8>) -> Result<(), ArchiveError> {
        self.pending_bytes += data.len();
        self.pending.push((id, data));
        if self.pending_bytes >= HANDOFF_BYTES || self.pending.len() >= HANDOFF_CHUNKS {
            self.hand_over()?;
        }
        Ok(())
    }

    /// Hands the pending chunks over (at the end of the walk, whatever they are).
    fn hand_over(&mut self) -> Result<(), ArchiveError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.pending_bytes = 0;
        self.tx
            .blocking_send(std::mem::take(&mut self.pending))
            .map_err(|_| ArchiveError::Stopped)
    }
}

impl TreeVisitor for Chunking<'_> {
    fn dir(&mut self, rel: &str, meta: &fs::Metadata) -> Result<(), ArchiveError> {
        self.line(
            &json!({"path": rel, "type": "dir", "mode": meta.mode() & 0o7777,
                          "mtime": meta.mtime(), "size": 0}),
        )
    }

    fn file(
        &mut self,
        rel: &str,
        path: &Path,
        meta: &fs::Metadata,
        read: &Counter,
    ) -> Result<u64, ArchiveError> {
        if let Some(parent) = self.parent.take(rel)
            && unchanged(&parent, meta)
        {
            let size = parent.size;
            let entry = file_entry(
                rel,
                (parent.mode, parent.mtime, size),
                parent.chunks,
                parent.stamp,
            );
            self.line(&entry)?;
            self.counts.unchanged_files.add(1);
            self.counts.files.add(1);
            self.counts.unchanged_bytes.add(size);
            return Ok(size);
        }
        let (mut reader, meta) = archive::open_exact(path, read)?;
        let mut chunks = Vec::new();
        let mut failed = None;
        for piece in self.chunker.cut(&mut reader) {
            match piece {
                Ok(piece) => {
                    let id = self.ids.id(&piece.data);
                    chunks.push((id, piece.data.len() as u32));
                    self.out.chunk(id, piece.data)?;
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(source) = failed {
            return Err(reader.take_error().unwrap_or_else(|| ArchiveError::Read {
                path: path.to_path_buf(),
                source,
            }));
        }
        // The stamp as the file was opened: a change while it is read moves the
        // ctime, so the next backup reads it again.
        let entry = file_entry(
            rel,
            (meta.mode() & 0o7777, meta.mtime(), meta.len()),
            chunks,
            Some(stamp_of(&meta)),
        );
        self.line(&entry)?;
        self.counts.files.add(1);
        Ok(meta.len())
    }

    fn symlink(
        &mut self,
        rel: &str,
        meta: &fs::Metadata,
        target: &Path,
    ) -> Result<(), ArchiveError> {
        // The walk checked that the target is UTF-8.
        let target = target.to_string_lossy();
        self.line(
            &json!({"path": rel, "type": "symlink", "mode": meta.mode() & 0o7777,
                          "mtime": meta.mtime(), "size": 0, "target": target}),
        )
    }
}

/// The session's answer, read.
struct Opened {
    path: String,
    ids: ChunkIdKey,
    boundaries: BoundaryKey,
    max_ids: usize,
}

fn bad_answer(api: &mut Remote, what: &str) -> Failure {
    Failure::new(
        EXIT_FAILED,
        format!(
            "the API at {} answered {what} without what the protocol needs",
            api.client().url()
        ),
    )
}

async fn open(api: &mut Remote, base: &str) -> Result<Opened, Failure> {
    let v = api
        .call(Method::POST, base, &[], Some(&json!({})))
        .await?
        .ok_or_else(|| bad_answer(api, "the upload session"))?;
    let id = v.get("id").and_then(Value::as_str);
    let key = v
        .get("chunkIdKey")
        .and_then(Value::as_str)
        .and_then(|k| hex::decode(k).ok())
        .map(Zeroizing::new)
        .and_then(|k| <[u8; 32]>::try_from(&k[..]).ok());
    let boundary = v
        .get("chunkBoundaryKey")
        .and_then(Value::as_str)
        .and_then(|k| hex::decode(k).ok())
        .and_then(|k| <[u8; 8]>::try_from(&k[..]).ok());
    // A round is one question and one upload: within both limits.
    let max_ids = v
        .get("maxQueryIds")
        .and_then(Value::as_u64)
        .zip(v.get("maxBatchChunks").and_then(Value::as_u64))
        .map(|(ids, chunks)| ids.min(chunks));
    match (id, key, boundary, max_ids) {
        (Some(id), Some(key), Some(boundary), Some(max_ids)) if max_ids > 0 => Ok(Opened {
            path: format!("{base}/{}", seg(id)),
            ids: ChunkIdKey::from_bytes(key),
            boundaries: BoundaryKey::from_bytes(boundary),
            max_ids: usize::try_from(max_ids).unwrap_or(usize::MAX),
        }),
        _ => Err(bad_answer(api, "the upload session")),
    }
}

/// Ids that rounds in flight upload. Two rounds in flight ask about their chunks before
/// either upload is recorded, so both may hear that a chunk they share is missing: the
/// first of them to build its upload sends it, the other skips it. A round's ids stay
/// here after its upload is recorded while a question sent before that is unanswered
/// (its answer may not know of the upload), and no longer: the sets kept are about as
/// many as the connections. All of this runs on one task.
#[derive(Default)]
struct Uploading {
    /// Events so far (questions sent, uploads recorded), to order them.
    clock: u64,
    /// When each unanswered question was sent.
    asking: Vec<u64>,
    /// Each round's ids, by round number, and when its upload was recorded.
    rounds: Vec<(u64, HashSet<ChunkId>, Option<u64>)>,
}

impl Uploading {
    fn has(&self, id: &ChunkId) -> bool {
        self.rounds.iter().any(|(_, ids, _)| ids.contains(id))
    }

    /// A question goes out: its time, to hand back to [`answered`](Self::answered).
    fn asked(&mut self) -> u64 {
        self.clock += 1;
        self.asking.push(self.clock);
        self.clock
    }

    fn answered(&mut self, sent_at: u64) {
        self.asking.retain(|&t| t != sent_at);
    }

    /// Drops the rounds recorded before every unanswered question was sent.
    fn forget_done(&mut self) {
        let asking = &self.asking;
        self.rounds.retain(|(_, _, done)| match done {
            None => true,
            Some(done) => asking.iter().any(|&sent| sent <= *done),
        });
    }

    /// Round `number`'s upload, its question answered: the frames (id, length, bytes)
    /// of the chunks of `batch` that are `missing` and that no other round in flight
    /// sends, each once; their ids are kept until the round is [`done`](Self::done).
    fn frames(
        &mut self,
        number: u64,
        batch: Handoff,
        missing: &HashSet<ChunkId>,
        counts: &Sent,
    ) -> Vec<u8> {
        let mut frames = Vec::new();
        let mut queued = HashSet::new();
        for (id, data) in batch {
            if missing.contains(&id) && !self.has(&id) && queued.insert(id) {
                frames.extend_from_slice(&id.0);
                frames.extend_from_slice(&(data.len() as u32).to_be_bytes());
                frames.extend_from_slice(&data);
                counts.sent.add(data.len() as u64);
            } else {
                counts.known.add(data.len() as u64);
            }
        }
        self.forget_done();
        self.rounds.push((number, queued, None));
        frames
    }

    /// Round `number`'s upload is recorded by the service.
    fn done(&mut self, number: u64) {
        self.clock += 1;
        for (n, _, done) in &mut self.rounds {
            if *n == number {
                *done = Some(self.clock);
            }
        }
        self.forget_done();
    }
}

/// Asks about one round's chunks and uploads those the cluster lacks (and no other
/// round in flight sends).
async fn round(
    api: &mut Remote,
    session: &Opened,
    (number, batch): (u64, Handoff),
    counts: &Sent,
    uploading: &std::cell::RefCell<Uploading>,
) -> Result<(), Failure> {
    if batch.is_empty() {
        return Ok(());
    }
    let ids: Vec<ChunkId> = batch.iter().map(|(id, _)| *id).collect();
    let sent_at = uploading.borrow_mut().asked();
    let answer = ask(api, session, &ids).await;
    uploading.borrow_mut().answered(sent_at);
    let frames = uploading
        .borrow_mut()
        .frames(number, batch, &answer?, counts);
    if !frames.is_empty() {
        let path = format!("{}/chunks", session.path);
        api.call_bytes(
            Method::PUT,
            &path,
            "application/octet-stream",
            Bytes::from(frames),
        )
        .await?;
    }
    uploading.borrow_mut().done(number);
    Ok(())
}

/// Gathers the walker's chunks into rounds and sends each, one in flight per connection
/// in `apis`, while the next gathers: the walker reads, cuts and hashes while the
/// service stores the rounds before. Two connections (the default of `--connections`)
/// keep the service busy: while it makes one round's last pack durable and records its
/// chunks, it already receives and seals the next (with one, both processes idled
/// through that tail of every round). Returns the last round, not sent, once the
/// walker is done; a round that fails ends the gathering. Memory: the rounds in
/// flight, the one gathering, and the channel.
async fn gather_rounds<'a>(
    apis: Vec<&'a mut Remote>,
    session: &'a Opened,
    rx: &mut tokio::sync::mpsc::Receiver<Handoff>,
    counts: &'a Sent,
    uploading: &'a std::cell::RefCell<Uploading>,
) -> Result<(u64, Handoff), Failure> {
    let mut batch: Handoff = Vec::new();
    let mut batch_bytes = 0usize;
    let mut number = 0u64;
    // What is left of the last hand-over once the round filled (a round never holds
    // more than `max_ids` chunks, the most the service answers about).
    let mut spill = Handoff::new().into_iter();
    // Each connection is either idle here or lent to a round in flight, which hands it
    // back when it ends.
    let mut idle = apis;
    let mut in_flight = FuturesUnordered::new();
    let is_full =
        |batch: &Handoff, bytes: usize| batch.len() >= session.max_ids || bytes >= ROUND_BYTES;
    loop {
        while !is_full(&batch, batch_bytes)
            && let Some((id, data)) = spill.next()
        {
            batch_bytes += data.len();
            batch.push((id, data));
        }
        let full = is_full(&batch, batch_bytes);
        if full && let Some(api) = idle.pop() {
            batch_bytes = 0;
            let batch = (number, std::mem::take(&mut batch));
            number += 1;
            in_flight.push(async move {
                let sent = round(&mut *api, session, batch, counts, uploading).await;
                (api, sent)
            });
            continue;
        }
        tokio::select! {
            // Gathering waits while a full round waits for a connection.
            handed = rx.recv(), if !full => match handed {
                Some(handed) => spill = handed.into_iter(),
                None => break,
            },
            Some((api, sent)) = in_flight.next(), if !in_flight.is_empty() => {
                idle.push(api);
                sent?;
            }
        }
    }
    while let Some((_, sent)) = in_flight.next().await {
        sent?;
    }
    Ok((number, batch))
}

/// Which of `ids` (at most the session's `max_ids`) the cluster lacks, as hex.
async fn ask(
    api: &mut Remote,
    session: &Opened,
    ids: &[ChunkId],
) -> Result<HashSet<ChunkId>, Failure> {
    let body: Vec<u8> = ids.iter().flat_map(|id| id.0).collect();
    let path = format!("{}/chunkIds", session.path);
    let answer = api
        .call_bytes(
            Method::POST,
            &path,
            "application/octet-stream",
            Bytes::from(body),
        )
        .await?
        .ok_or_else(|| bad_answer(api, "a chunk id question"))?;
    // Parsed once here, so that each chunk of the round is looked up by its id, not
    // formatted as hex for the lookup.
    let missing = answer
        .get("missing")
        .and_then(Value::as_array)
        .and_then(|ids| {
            ids.iter()
                .map(|m| m.as_str()?.parse::<ChunkId>().ok())
                .collect::<Option<HashSet<ChunkId>>>()
        });
    missing.ok_or_else(|| bad_answer(api, "a chunk id question"))
}

/// The parent's files, as a cursor for the walk (and the thread reading them).
async fn parent_files(
    api: &mut Remote,
    session: &Opened,
    choice: &ParentChoice,
    source: Option<&str>,
    warnings: &Warnings,
) -> Result<(ParentCursor, ParentReader), Failure> {
    let none = || (ParentCursor::none(), ParentReader::none());
    let query = match (choice, source) {
        (ParentChoice::None, _) | (ParentChoice::Latest, None) => return Ok(none()),
        (ParentChoice::Latest, Some(source)) => [("source", source.to_string())],
        (ParentChoice::Snapshot(id), _) => [("snapshot", id.clone())],
    };
    let (key, value) = &query[0];
    let target = format!("{}/parent?{}={}", session.path, seg(key), seg(value));
    let what = format!("GET {target}");
    // The answer grows with the parent's files (about 250 bytes each): streamed to a
    // temporary file, never held in memory.
    let answer = match api.client().get_stream_api(&target).await {
        Ok(resp) if resp.status == 204 => return Ok(none()),
        Ok(resp) if (200..300).contains(&resp.status) => Ok(resp),
        // A refusal.
        Ok(resp) => match resp.into_response().await {
            Ok(resp) => match api.interpret(&what, resp) {
                Ok(_) => return Ok(none()),
                Err(f) => Err(f),
            },
            Err(e) => Err(api.unreachable(e)),
        },
        Err(e) => Err(api.unreachable(e)),
    };
    let read = match answer {
        Ok(resp) => match spool() {
            Ok(file) => parent::read(resp, file),
            Err(e) => Err(Failure::new(
                EXIT_FAILED,
                format!("a temporary file for the parent snapshot's list: {e}"),
            )),
        },
        Err(f) => Err(f),
    };
    match read {
        Ok(parent) => Ok(parent),
        // An explicit parent must be there; the default one is a help only.
        Err(f) if matches!(choice, ParentChoice::Snapshot(_)) => Err(f),
        Err(f) => {
            warnings.warn(&format!(
                "no parent snapshot ({}): every file is read",
                f.message()
            ));
            Ok(none())
        }
    }
}

/// A file for the manifest: in the temporary directory, readable by this user only,
/// and unlinked at once (it goes when the process does).
fn spool() -> io::Result<File> {
    let dir = std::env::temp_dir();
    for attempt in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = dir.join(format!(
            "headlock-manifest-{}-{nanos}-{attempt}",
            std::process::id()
        ));
        match fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => {
                fs::remove_file(&path)?;
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free name in the temporary directory"))
}

/// Commits the session with the manifest in `file`, streamed.
async fn commit(api: &mut Remote, session: &Opened, mut file: File) -> Result<Value, Failure> {
    let local = |e: io::Error| {
        Failure::new(
            EXIT_FAILED,
            format!("reading back the manifest's temporary file: {e}"),
        )
    };
    file.rewind().map_err(local)?;
    let (mut writer, body, status) = pipe::upload();
    std::thread::Builder::new()
        .name("backup-manifest".into())
        .spawn(move || match io::copy(&mut file, &mut writer) {
            Ok(_) => {
                let _ = writer.finish();
            }
            Err(e) => writer.fail(&format!("reading back the manifest: {e}")),
        })
        .map_err(local)?;
    let path = format!("{}/commit", session.path);
    let result = api
        .client()
        .send_stream(Method::POST, &path, "application/x-ndjson", body)
        .await;
    if let Some(reason) = status.failure() {
        return Err(Failure::new(EXIT_FAILED, reason));
    }
    let resp = result.map_err(|e| api.unreachable(e))?;
    api.interpret(&format!("POST {path}"), resp)?
        .ok_or_else(|| bad_answer(api, "the commit"))
}

/// Backs the tree under `root` up through an upload session: the new snapshot (as the
/// API answers it) and what the walk found.
pub async fn backup_tree(
    api: &mut Remote,
    (group, cluster): (&str, &str),
    root: PathBuf,
    read: Counter,
    warnings: Warnings,
    counts: &Sent,
    options: &TreeOptions,
) -> Result<(Value, PackStats), Failure> {
    let choice = &options.parent;
    let base = format!(
        "/groups/{}/clusters/{}/snapshotUploads",
        seg(group),
        seg(cluster)
    );
    let session = open(api, &base).await?;
    // The source as resolved (how the next backup of the same path finds this one);
    // a path that is not UTF-8 has none, and its backups have no default parent.
    let source = fs::canonicalize(&root)
        .ok()
        .and_then(|p| p.to_str().map(str::to_string));
    let (cursor, parent_reader) =
        parent_files(api, &session, choice, source.as_deref(), &warnings).await?;
    let parent_warnings = warnings.clone();
    let walk_counts = counts.clone();
    let spool_err = |e: io::Error| {
        Failure::new(
            EXIT_FAILED,
            format!("writing the manifest to a temporary file: {e}"),
        )
    };
    let mut manifest = BufWriter::new(spool().map_err(spool_err)?);
    writeln!(manifest, "{}", json!({"kind": "tree", "source": source})).map_err(spool_err)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Handoff>(4);
    let (ids, boundaries) = (
        ChunkIdKey::from_bytes(*session.ids.expose()),
        session.boundaries,
    );
    // A plain thread (see `super`'s note on reading threads). It writes the manifest
    // itself and hands chunks over in batches: per file, no hand-over at all.
    let walker = std::thread::Builder::new()
        .name("backup-walker".into())
        .spawn(move || {
            let mut visitor = Chunking {
                ids: &ids,
                parent: cursor,
                counts: &walk_counts,
                chunker: Chunker::new(boundaries),
                manifest,
                out: Handoffs {
                    pending: Vec::new(),
                    pending_bytes: 0,
                    tx: &tx,
                },
            };
            let walked = archive::walk_tree(&root, &mut visitor, &read, &mut |w| warnings.warn(w))
                .and_then(|stats| visitor.out.hand_over().map(|()| stats));
            (walked, visitor.manifest)
        })
        .map_err(|e| Failure::new(EXIT_FAILED, format!("starting the reading thread: {e}")))?;

    let uploading = std::cell::RefCell::new(Uploading::default());
    let mut others: Vec<Remote> = (1..options.connections.max(1))
        .map(|_| api.with_own_connection())
        .collect();
    let apis = std::iter::once(&mut *api).chain(&mut others).collect();
    let rounds = gather_rounds(apis, &session, &mut rx, counts, &uploading).await;
    drop(others);
    // Stops the walker if it is still at work (its next hand-over fails).
    drop(rx);
    let (walked, manifest) = walker
        .join()
        .map_err(|_| Failure::new(EXIT_FAILED, "the reading thread failed".into()))?;
    // The walk (and with it the parent's cursor) is over.
    parent_reader.finish(&parent_warnings);
    let last = rounds.map_err(|f| f.adding(NOT_COMMITTED))?;
    let stats = match walked {
        Ok(stats) => stats,
        Err(e) => {
            // What was uploaded stays recorded for a re-run; the session is ended.
            let _ = api.call(Method::DELETE, &session.path, &[], None).await;
            return Err(Failure::new(EXIT_FAILED, format!("{e}{NOT_COMMITTED}")));
        }
    };
    round(api, &session, last, counts, &uploading)
        .await
        .map_err(|f| f.adding(NOT_COMMITTED))?;
    let file = manifest
        .into_inner()
        .map_err(|e| spool_err(e.into_error()))?;
    let snapshot = commit(api, &session, file).await?;
    Ok((snapshot, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(byte: u8) -> (ChunkId, Vec<u8>) {
        (ChunkId([byte; 32]), vec![byte; 10])
    }

    fn missing(ids: &[u8]) -> HashSet<ChunkId> {
        ids.iter().map(|b| ChunkId([*b; 32])).collect()
    }

    /// The ids in a round's frames (32 bytes of id, 4 of length, then the bytes).
    fn framed(mut frames: &[u8]) -> Vec<u8> {
        let mut ids = Vec::new();
        while !frames.is_empty() {
            ids.push(frames[0]);
            let len = u32::from_be_bytes(frames[32..36].try_into().unwrap()) as usize;
            frames = &frames[36 + len..];
        }
        ids
    }

    #[test]
    fn sends_a_chunk_that_two_rounds_in_flight_lack_with_the_first_to_build_only() {
        let (mut uploading, counts) = (Uploading::default(), Sent::default());
        // Both questions are out before either upload: both hear that 2 is missing.
        let (q0, q1) = (uploading.asked(), uploading.asked());
        uploading.answered(q1);
        let second = uploading.frames(1, vec![chunk(2), chunk(3)], &missing(&[2, 3]), &counts);
        uploading.answered(q0);
        let first = uploading.frames(
            0,
            vec![chunk(1), chunk(2), chunk(1)],
            &missing(&[1, 2]),
            &counts,
        );
        assert_eq!(framed(&second), [2, 3]);
        // 2 goes with the round that built its upload first; 1 once, though twice in
        // the round.
        assert_eq!(framed(&first), [1]);
        assert_eq!((counts.sent.get(), counts.known.get()), (30, 20));
    }

    #[test]
    fn keeps_a_done_rounds_ids_while_a_question_is_outstanding() {
        let (mut uploading, counts) = (Uploading::default(), Sent::default());
        uploading.frames(0, vec![chunk(1)], &missing(&[1]), &counts);
        // Another round's question goes out; then round 0's upload is recorded. The
        // answer may predate that record, so 1 must still be known as sent.
        let q1 = uploading.asked();
        uploading.done(0);
        assert!(uploading.has(&ChunkId([1; 32])));
        // A question sent after the record does not keep it: its answer knows.
        let q2 = uploading.asked();
        uploading.answered(q1);
        let next = uploading.frames(1, vec![chunk(1), chunk(4)], &missing(&[1, 4]), &counts);
        assert_eq!(framed(&next), [4]);
        assert!(!uploading.has(&ChunkId([1; 32])) && uploading.has(&ChunkId([4; 32])));
        uploading.answered(q2);
        uploading.done(1);
        assert!(uploading.rounds.is_empty());
    }
}
