//! `headlock backup DIR` through an upload session (docs/design.md, "Incremental
//! backups: chunking in the client"): the CLI cuts files into chunks with the
//! cluster's keyed chunker, names them with its chunk-id key, asks the service which
//! it lacks, and sends only those; then commits the manifest.
//!
//! A plain thread walks the tree ([`archive::walk_tree`], the same walk as the tar
//! path) and chunks each file, handing chunks and manifest lines over a small bounded
//! channel; this side gathers chunks into rounds of at most [`ROUND_BYTES`] (and the
//! service's `maxQueryIds`), asks about each round's ids and uploads the missing ones
//! in one request. The manifest lines go to an unlinked file in the temporary
//! directory, streamed as the commit's body. Memory: the channel and one round,
//! whatever the tree's size.
//!
//! An interrupted run leaves what it uploaded recorded for the cluster; the next run
//! opens a new session, is told those chunks are known, and sends the rest.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use headlock_core::model::ChunkId;
use headlock_core::snapshot::ChunkIdKey;
use headlock_core::snapshot::chunker::{self, BoundaryKey};
use hyper::Method;
use hyper::body::Bytes;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::archive::{self, ArchiveError, PackStats, TreeVisitor};
use crate::cmd::remote::{EXIT_FAILED, Failure, Remote, seg};
use crate::pipe;
use crate::progress::{Counter, Warnings};

/// Chunk bytes per round (one question, one upload).
pub const ROUND_BYTES: usize = 32 * 1024 * 1024;

/// What the walking thread hands over.
enum Item {
    /// A chunk of a file: its id and bytes.
    Chunk(ChunkId, Vec<u8>),
    /// A manifest line (an entry, JSON).
    Line(String),
}

/// Counts for the progress display and the summary.
#[derive(Clone, Default)]
pub struct Sent {
    /// Bytes of chunks uploaded.
    pub sent: Counter,
    /// Bytes of chunks the cluster already had.
    pub known: Counter,
}

/// The walk's visitor: every entry a manifest line, every file's chunks handed over.
struct Chunking<'a> {
    ids: &'a ChunkIdKey,
    boundaries: BoundaryKey,
    tx: &'a tokio::sync::mpsc::Sender<Item>,
}

impl Chunking<'_> {
    fn hand(&self, item: Item) -> Result<(), ArchiveError> {
        self.tx
            .blocking_send(item)
            .map_err(|_| ArchiveError::Write {
                source: io::Error::other("the upload stopped"),
            })
    }
}

impl TreeVisitor for Chunking<'_> {
    fn dir(&mut self, rel: &str, meta: &fs::Metadata) -> Result<(), ArchiveError> {
        let line = json!({"path": rel, "type": "dir", "mode": meta.mode() & 0o7777,
                          "mtime": meta.mtime(), "size": 0});
        self.hand(Item::Line(line.to_string()))
    }

    fn file(&mut self, rel: &str, path: &Path, read: &Counter) -> Result<u64, ArchiveError> {
        let (mut reader, meta) = archive::open_exact(path, read)?;
        let mut chunks = Vec::new();
        let mut failed = None;
        for piece in chunker::chunks(&mut reader, self.boundaries) {
            match piece {
                Ok(piece) => {
                    let id = self.ids.id(&piece.data);
                    chunks.push(json!([id.to_string(), piece.data.len()]));
                    self.hand(Item::Chunk(id, piece.data))?;
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            return Err(reader.take_error().unwrap_or_else(|| ArchiveError::Read {
                path: path.to_path_buf(),
                source: io::Error::other(e.to_string()),
            }));
        }
        let line = json!({"path": rel, "type": "file", "mode": meta.mode() & 0o7777,
                          "mtime": meta.mtime(), "size": meta.len(), "chunks": chunks});
        self.hand(Item::Line(line.to_string()))?;
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
        let line = json!({"path": rel, "type": "symlink", "mode": meta.mode() & 0o7777,
                          "mtime": meta.mtime(), "size": 0, "target": target});
        self.hand(Item::Line(line.to_string()))
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

/// Asks about one round's chunks and uploads those the cluster lacks.
async fn round(
    api: &mut Remote,
    session: &Opened,
    batch: &mut Vec<(ChunkId, Vec<u8>)>,
    counts: &Sent,
) -> Result<(), Failure> {
    if batch.is_empty() {
        return Ok(());
    }
    let ids: Vec<u8> = batch.iter().flat_map(|(id, _)| id.0).collect();
    let path = format!("{}/chunkIds", session.path);
    let answer = api
        .call_bytes(
            Method::POST,
            &path,
            "application/octet-stream",
            Bytes::from(ids),
        )
        .await?
        .ok_or_else(|| bad_answer(api, "a chunk id question"))?;
    let missing: HashSet<String> = answer
        .get("missing")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_answer(api, "a chunk id question"))?
        .iter()
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect();
    let mut frames = Vec::new();
    let mut queued = HashSet::new();
    for (id, data) in batch.drain(..) {
        if missing.contains(&id.to_string()) && queued.insert(id) {
            frames.extend_from_slice(&id.0);
            frames.extend_from_slice(&(data.len() as u32).to_be_bytes());
            frames.extend_from_slice(&data);
            counts.sent.add(data.len() as u64);
        } else {
            counts.known.add(data.len() as u64);
        }
    }
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
    Ok(())
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
    group: &str,
    cluster: &str,
    root: PathBuf,
    read: Counter,
    warnings: Warnings,
    counts: &Sent,
) -> Result<(Value, PackStats), Failure> {
    let base = format!(
        "/groups/{}/clusters/{}/snapshotUploads",
        seg(group),
        seg(cluster)
    );
    let session = open(api, &base).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Item>(4);
    let (ids, boundaries) = (
        ChunkIdKey::from_bytes(*session.ids.expose()),
        session.boundaries,
    );
    // A plain thread (see `super`'s note on reading threads).
    let walker = std::thread::Builder::new()
        .name("backup-walker".into())
        .spawn(move || {
            let mut visitor = Chunking {
                ids: &ids,
                boundaries,
                tx: &tx,
            };
            archive::walk_tree(&root, &mut visitor, &read, &mut |w| warnings.warn(w))
        })
        .map_err(|e| Failure::new(EXIT_FAILED, format!("starting the reading thread: {e}")))?;

    let spool_err = |e: io::Error| {
        Failure::new(
            EXIT_FAILED,
            format!("writing the manifest to a temporary file: {e}"),
        )
    };
    let mut manifest = BufWriter::new(spool().map_err(spool_err)?);
    manifest
        .write_all(b"{\"kind\":\"tree\"}\n")
        .map_err(spool_err)?;
    let mut batch: Vec<(ChunkId, Vec<u8>)> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut failure = None;
    while let Some(item) = rx.recv().await {
        match item {
            Item::Line(line) => {
                if let Err(e) = writeln!(manifest, "{line}") {
                    failure = Some(spool_err(e));
                    break;
                }
            }
            Item::Chunk(id, data) => {
                batch_bytes += data.len();
                batch.push((id, data));
                if batch.len() >= session.max_ids || batch_bytes >= ROUND_BYTES {
                    if let Err(f) = round(api, &session, &mut batch, counts).await {
                        failure = Some(f);
                        break;
                    }
                    batch_bytes = 0;
                }
            }
        }
    }
    // Stops the walker if it is still at work (its next hand-over fails).
    drop(rx);
    let walked = walker
        .join()
        .map_err(|_| Failure::new(EXIT_FAILED, "the reading thread failed".into()))?;
    if let Some(f) = failure {
        return Err(f);
    }
    let stats = match walked {
        Ok(stats) => stats,
        Err(e) => {
            // What was uploaded stays recorded for a re-run; the session is ended.
            let _ = api.call(Method::DELETE, &session.path, &[], None).await;
            return Err(Failure::new(
                EXIT_FAILED,
                format!("{e}; nothing was committed (a re-run sends only what is missing)"),
            ));
        }
    };
    round(api, &session, &mut batch, counts).await?;
    let file = manifest
        .into_inner()
        .map_err(|e| spool_err(e.into_error()))?;
    let snapshot = commit(api, &session, file).await?;
    Ok((snapshot, stats))
}
