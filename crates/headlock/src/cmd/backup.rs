//! `headlock backup`: backs a directory up through an upload session ([`session`]:
//! chunked here, only what the cluster lacks is sent), or streams a file, standard
//! input, or a directory with `--plain` (as a tar stream built on the fly) to `POST
//! /groups/{G}/clusters/{C}/snapshots`; prints the new snapshot's id, alone, on
//! standard output.
//!
//! A plain thread reads the input and writes it into a bounded [`pipe::upload`]
//! pipe whose other end is the request body, so memory stays the pipe's few pieces
//! whatever the input's size. (A plain thread, not tokio's blocking pool: a read of
//! standard input may block for ever, and must not keep the runtime from ending when
//! the server has refused the upload.) If reading fails, the body fails, hyper aborts
//! the request, and the service keeps nothing of it; the reading error is what the
//! user sees.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use hyper::Method;
use indicatif::HumanBytes;
use serde_json::Value;

use super::remote::{self, EXIT_FAILED, Failure, print_line, seg};
use crate::archive::{self, PackStats};
use crate::cli::BackupArgs;
use crate::pipe::{self, PipeWriter};
use crate::progress::{Counter, Mode, Progress, Warnings};

mod parent;
mod session;

/// What is backed up.
enum Source {
    /// A directory, sent as a tar stream.
    Tree(PathBuf),
    /// A file (or anything else that opens and reads, such as a FIFO), sent as is.
    File {
        file: File,
        path: PathBuf,
        size: Option<u64>,
    },
    /// Standard input, sent as is.
    Stdin,
}

impl Source {
    /// Opens the input now, so that a wrong path fails before anything is sent.
    fn open(path: &Path) -> anyhow::Result<Source> {
        if path.as_os_str() == "-" {
            return Ok(Source::Stdin);
        }
        let meta = std::fs::metadata(path)
            .with_context(|| format!("cannot back up {}", path.display()))?;
        if meta.is_dir() {
            // A first listing, so that an unreadable root fails now.
            std::fs::read_dir(path).with_context(|| format!("listing {}", path.display()))?;
            return Ok(Source::Tree(path.to_path_buf()));
        }
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(Source::File {
            file,
            path: path.to_path_buf(),
            size: meta.is_file().then_some(meta.len()),
        })
    }

    /// `Content-Type` of the upload.
    fn content_type(&self) -> &'static str {
        match self {
            Source::Tree(_) => "application/x-tar",
            Source::File { .. } | Source::Stdin => "application/octet-stream",
        }
    }

    /// Reads everything into `writer` (on the reading thread); the error is the
    /// message to show.
    fn produce(
        self,
        mut writer: PipeWriter,
        counter: &Counter,
        warnings: &Warnings,
    ) -> Result<Option<PackStats>, String> {
        let result = match self {
            Source::Tree(root) => {
                archive::pack_tree(&root, &mut writer, counter, &mut |w| warnings.warn(w))
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
            Source::File { file, path, .. } => copy_counting(file, &mut writer, counter)
                .map(|()| None)
                .map_err(|e| format!("reading {}: {e}", path.display())),
            Source::Stdin => copy_counting(io::stdin().lock(), &mut writer, counter)
                .map(|()| None)
                .map_err(|e| format!("reading standard input: {e}")),
        };
        match result {
            Ok(stats) => writer.finish().map(|()| stats).map_err(|e| e.to_string()),
            Err(reason) => {
                writer.fail(&reason);
                Err(reason)
            }
        }
    }
}

/// Copies `from` into `to` in [`pipe::PIECE`]-sized reads, counting the bytes read.
fn copy_counting(mut from: impl Read, to: &mut PipeWriter, counter: &Counter) -> io::Result<()> {
    let mut buf = vec![0u8; pipe::PIECE];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        counter.add(n as u64);
        to.write_all(&buf[..n])?;
    }
}

/// A directory through an upload session ([`session`]): progress shows the files and
/// bytes scanned (read, or unchanged and skipped) of the totals once a background walk
/// has sized the tree, the time left, what was sent and what the cluster already had.
async fn run_session(
    args: &BackupArgs,
    api: &mut remote::Remote,
    root: PathBuf,
) -> anyhow::Result<ExitCode> {
    let counter = Counter::default();
    let progress = Progress::start(
        Mode::detect(args.quiet),
        "backup",
        "read",
        None,
        counter.clone(),
    );
    let counts = session::Sent::default();
    let (sent, known) = (counts.sent.clone(), counts.known.clone());
    let (files, bytes) = (
        counts.unchanged_files.clone(),
        counts.unchanged_bytes.clone(),
    );
    progress.set_detail(move || {
        format!(
            "{} sent, {} already stored, {} unchanged files ({}) not read",
            HumanBytes(sent.get()),
            HumanBytes(known.get()),
            files.get(),
            HumanBytes(bytes.get())
        )
    });
    let options = session::TreeOptions {
        parent: match (&args.parent, args.force) {
            (_, true) => session::ParentChoice::None,
            (Some(id), false) => session::ParentChoice::Snapshot(id.clone()),
            (None, false) => session::ParentChoice::Latest,
        },
        connections: usize::from(args.connections),
    };
    progress.scan(counts.files.clone(), counts.unchanged_bytes.clone());
    if let Some(later) = progress.total_later() {
        let root = root.clone();
        std::thread::spawn(move || {
            let (bytes, files) = archive::tree_size(&root);
            later.set(bytes, Some(files));
        });
    }
    let warnings = progress.warnings();
    let outcome = session::backup_tree(
        api,
        (&args.group, &args.cluster),
        root,
        counter,
        warnings,
        &counts,
        &options,
    )
    .await;
    let (snapshot, stats) = match outcome {
        Ok(done) => done,
        Err(f) => {
            drop(progress);
            return Ok(f.report());
        }
    };
    finish(api, progress, &snapshot, Some(stats))
}

pub async fn run(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let source = Source::open(&args.path)?;
    let mut api = remote::connect(&args.api)?;
    if let (Source::Tree(root), false) = (&source, args.plain) {
        let root = root.clone();
        return run_session(&args, &mut api, root).await;
    }
    let path = format!(
        "/groups/{}/clusters/{}/snapshots",
        seg(&args.group),
        seg(&args.cluster)
    );
    let counter = Counter::default();
    let total = match &source {
        Source::File { size, .. } => *size,
        _ => None,
    };
    let progress = Progress::start(
        Mode::detect(args.quiet),
        "backup",
        "read",
        total,
        counter.clone(),
    );
    if let (Source::Tree(root), Some(later)) = (&source, progress.total_later()) {
        // Sizing the tree takes a walk of its metadata: alongside the upload, not
        // before it.
        let root = root.clone();
        std::thread::spawn(move || later.set(archive::tree_size(&root).0, None));
    }
    let content_type = source.content_type();
    let (writer, body, status) = pipe::upload();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let warnings = progress.warnings();
    let reader_counter = counter.clone();
    std::thread::Builder::new()
        .name("backup-reader".into())
        .spawn(move || {
            let _ = done_tx.send(source.produce(writer, &reader_counter, &warnings));
        })
        .context("starting the reading thread")?;

    let result = api
        .client()
        .send_stream(Method::POST, &path, content_type, body)
        .await;
    // A failure of the reading side explains whatever became of the request.
    if let Some(reason) = status.failure() {
        drop(progress);
        bail!("{reason}; the upload was aborted and nothing of it is kept");
    }
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            drop(progress);
            return Ok(api.unreachable(e).report());
        }
    };
    let snapshot = match api.interpret(&format!("POST {path}"), resp) {
        Ok(Some(v)) => v,
        Ok(None) => {
            drop(progress);
            return Ok(Failure::new(
                EXIT_FAILED,
                format!(
                    "the API at {} answered the upload with an empty body",
                    api.client().url()
                ),
            )
            .report());
        }
        Err(f) => {
            drop(progress);
            return Ok(f.report());
        }
    };
    // A success means the body was sent to its end, so the reader finished.
    let stats = done_rx.await.ok().and_then(Result::ok).flatten();
    finish(&mut api, progress, &snapshot, stats)
}

/// Ends the display with a summary and prints the new snapshot's id.
fn finish(
    api: &mut remote::Remote,
    progress: Progress,
    snapshot: &Value,
    stats: Option<PackStats>,
) -> anyhow::Result<ExitCode> {
    let Some(id) = snapshot.get("id").and_then(Value::as_str) else {
        drop(progress);
        return Ok(Failure::new(
            EXIT_FAILED,
            format!(
                "the API at {} answered the upload without a snapshot id",
                api.client().url()
            ),
        )
        .report());
    };
    let stored: u64 = snapshot
        .get("parts")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p.get("storageSizeBytes").and_then(Value::as_u64))
                .sum()
        })
        .unwrap_or(0);
    let tree = stats
        .map(|s| {
            format!(
                "; {} files, {} directories, {} links{}",
                s.files,
                s.dirs,
                s.symlinks,
                if s.skipped > 0 {
                    format!(", {} skipped", s.skipped)
                } else {
                    String::new()
                }
            )
        })
        .unwrap_or_default();
    progress.finish(&format!("{tree}; {} new stored", HumanBytes(stored)));
    print_line(&remote::printable(id));
    Ok(ExitCode::SUCCESS)
}
