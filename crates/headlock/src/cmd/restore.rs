//! `headlock restore`: creates a restore job (`POST .../restoreJobs`), waits until its
//! HTTP link is ready (at once with Headlock; `GET .../restoreJobs/{J}` otherwise),
//! downloads the link (no Digest: its one-time token is the credential) and writes
//! the data where asked:
//!
//! | snapshot (`Content-Type`) | `--target DIR` | `--target -` |
//! |---|---|---|
//! | tree (`application/x-tar`) | unpacked into DIR ([`archive::unpack_tree`]) | the tar stream |
//! | stream (anything else) | `DIR/snapshot-<S>.bin` | the bytes |
//!
//! The download feeds a bounded [`pipe::download`] pipe read by the unpacker on a
//! blocking thread, so memory stays bounded whatever the size. The target is checked
//! before the job is created, so that a refused target does not use up a link.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hyper::Method;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::remote::{self, EXIT_FAILED, EXIT_LOCAL, Failure, Remote, api_try, printable, seg};
use crate::archive::{self, ArchiveError};
use crate::cli::RestoreArgs;
use crate::client::ClientError;
use crate::pipe;
use crate::progress::{Counter, Mode, Progress};

/// `Content-Type` of a tree snapshot's download.
const TAR: &str = "application/x-tar";
/// What the download link is called in errors (the link itself is a credential).
const LINK: &str = "restore download link";
/// How often a restore job that is not ready yet is asked again.
const POLL: Duration = Duration::from_secs(1);

/// Where the data goes.
enum Target {
    Stdout,
    Dir(PathBuf),
}

impl Target {
    /// Checks (and creates) the target before anything is asked of the API.
    fn prepare(target: &Path, force: bool) -> anyhow::Result<Target> {
        if target.as_os_str() == "-" {
            return Ok(Target::Stdout);
        }
        match std::fs::metadata(target) {
            Ok(m) if m.is_dir() => {
                let mut entries = std::fs::read_dir(target)
                    .with_context(|| format!("listing {}", target.display()))?;
                if !force && entries.next().is_some() {
                    bail!(
                        "{} is not empty: restore into a new or empty directory, or pass --force to write over what is there",
                        target.display()
                    );
                }
            }
            Ok(_) => bail!("{} exists and is not a directory", target.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(target)
                    .with_context(|| format!("creating {}", target.display()))?;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("checking {}", target.display()));
            }
        }
        Ok(Target::Dir(target.to_path_buf()))
    }
}

/// The link of a restore job once it is ready, asking again (for up to `wait`) while it
/// is not.
async fn download_link(
    api: &mut Remote,
    base: &str,
    mut job: Value,
    wait: Duration,
) -> Result<String, Failure> {
    let deadline = Instant::now() + wait;
    let job_id = job
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            Failure::new(
                EXIT_FAILED,
                "the API answered the restore job request without a job id".into(),
            )
        })?;
    loop {
        let status = job.get("statusName").and_then(Value::as_str).unwrap_or("");
        let delivery = job.get("delivery").unwrap_or(&Value::Null);
        let delivery_status = delivery
            .get("statusName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if matches!(status, "BROKEN" | "KILLED" | "FAILED")
            || matches!(
                delivery_status,
                "EXPIRED" | "MAX_DOWNLOADS_EXCEEDED" | "DOWNLOADED" | "FAILED"
            )
        {
            return Err(Failure::new(
                EXIT_FAILED,
                format!(
                    "restore job {} is {} (delivery {})",
                    printable(&job_id),
                    printable(status),
                    printable(delivery_status)
                ),
            ));
        }
        if let Some(url) = delivery.get("url").and_then(Value::as_str)
            && matches!(delivery_status, "READY" | "")
            && matches!(status, "FINISHED" | "")
        {
            return Ok(url.to_string());
        }
        if Instant::now() >= deadline {
            return Err(Failure::new(
                EXIT_FAILED,
                format!(
                    "restore job {} is not ready after {} s (status {}, delivery {})",
                    printable(&job_id),
                    wait.as_secs(),
                    printable(status),
                    printable(delivery_status)
                ),
            ));
        }
        tokio::time::sleep(POLL).await;
        let path = format!("{base}/restoreJobs/{}", seg(&job_id));
        job = api
            .call(Method::GET, &path, &[], None)
            .await?
            .unwrap_or(Value::Null);
    }
}

pub async fn run(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let target = Target::prepare(&args.target, args.force)?;
    let mut api = remote::connect(&args.api)?;
    let base = format!(
        "/groups/{}/clusters/{}",
        seg(&args.group),
        seg(&args.cluster)
    );
    let answer = api_try!(
        api.call(
            Method::POST,
            &format!("{base}/restoreJobs"),
            &[],
            Some(&json!({ "snapshotId": args.snapshot })),
        )
        .await
    )
    .unwrap_or(Value::Null);
    // Ops Manager answers with a list of jobs (one per part); Headlock with one.
    let job = answer
        .get("results")
        .and_then(|r| r.get(0))
        .cloned()
        .unwrap_or(answer);
    let wait = Duration::from_secs(args.api.timeout);
    let link = api_try!(download_link(&mut api, &base, job, wait).await);

    let mut resp = match api.client().get_stream(&link, LINK).await {
        Ok(r) => r,
        Err(e) => return Ok(api.unreachable(e).report()),
    };
    if !(200..300).contains(&resp.status) {
        let what = format!("GET of the {LINK}");
        let failure = match resp.into_response().await {
            Ok(r) => match api.interpret(&what, r) {
                Err(f) => f,
                Ok(_) => Failure::new(EXIT_FAILED, format!("{what}: unexpected answer")),
            },
            Err(e) => api.unreachable(e),
        };
        return Ok(failure.report());
    }
    let tree = resp.content_type().as_deref() == Some(TAR);
    let counter = Counter::default();
    let progress = Progress::start(
        Mode::detect(args.quiet),
        "restore",
        "downloaded",
        resp.content_length(),
        counter.clone(),
    );
    match (tree, target) {
        (true, Target::Dir(dir)) => {
            let (feeder, reader) = pipe::download();
            let into = dir.clone();
            let unpack = tokio::task::spawn_blocking(move || archive::unpack_tree(reader, &into));
            let mut broke: Option<ClientError> = None;
            loop {
                match resp.chunk().await {
                    Ok(Some(piece)) => {
                        counter.add(piece.len() as u64);
                        if feeder.send(piece).await.is_err() {
                            break; // the unpacker stopped: its error says why
                        }
                    }
                    Ok(None) => {
                        feeder.finish();
                        break;
                    }
                    Err(e) => {
                        feeder.fail(&format!("the download broke off: {e}")).await;
                        broke = Some(e);
                        break;
                    }
                }
            }
            drop(resp);
            let unpacked = unpack.await.context("the unpacking thread")?;
            if let Some(e) = broke {
                drop(progress);
                return Ok(api.unreachable(e).report());
            }
            match unpacked {
                Ok(stats) => progress.finish(&format!(
                    "; {} files ({}), {} directories, {} links restored into {}",
                    stats.files,
                    indicatif::HumanBytes(stats.bytes),
                    stats.dirs,
                    stats.symlinks,
                    dir.display()
                )),
                Err(e) => {
                    drop(progress);
                    // The local disk's fault, or the stream's (the service's).
                    let code = match e {
                        ArchiveError::Restore { .. } => EXIT_LOCAL,
                        _ => EXIT_FAILED,
                    };
                    return Ok(Failure::new(code, e.to_string()).report());
                }
            }
        }
        (tree, target) => {
            // Bytes as they come: to standard output, or to one file in DIR.
            let (mut out, shown): (Box<dyn tokio::io::AsyncWrite + Unpin + Send>, String) =
                match &target {
                    Target::Stdout => (Box::new(tokio::io::stdout()), "standard output".into()),
                    Target::Dir(dir) => {
                        let path = dir.join(format!("snapshot-{}.bin", file_safe(&args.snapshot)));
                        let mut options = tokio::fs::OpenOptions::new();
                        options.write(true);
                        if args.force {
                            options.create(true).truncate(true);
                        } else {
                            options.create_new(true);
                        }
                        let file = options
                            .open(&path)
                            .await
                            .with_context(|| format!("creating {}", path.display()))?;
                        (Box::new(file), path.display().to_string())
                    }
                };
            loop {
                match resp.chunk().await {
                    Ok(Some(piece)) => {
                        counter.add(piece.len() as u64);
                        if let Err(e) = out.write_all(&piece).await {
                            drop(progress);
                            bail!("writing to {shown}: {e}");
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        drop(progress);
                        return Ok(api.unreachable(e).report());
                    }
                }
            }
            out.flush()
                .await
                .with_context(|| format!("writing to {shown}"))?;
            drop(out);
            if let Target::Dir(_) = target {
                std::fs::File::open(&shown)
                    .and_then(|f| f.sync_all())
                    .with_context(|| format!("writing to {shown}"))?;
                progress.finish(&format!(
                    "; the {} snapshot was written to {shown}",
                    if tree { "tree" } else { "stream" }
                ));
            } else {
                progress.finish("");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A snapshot id as a file name part: letters, digits, `-` and `_` kept, anything
/// else `_` (so an id can never name another directory).
fn file_safe(id: &str) -> String {
    id.chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_path_characters_in_snapshot_file_names() {
        assert_eq!(
            file_safe("5f0c0ffee0c0ffee0c0ffee0"),
            "5f0c0ffee0c0ffee0c0ffee0"
        );
        assert_eq!(file_safe("../../etc/passwd"), "______etc_passwd");
    }

    #[test]
    fn rejects_non_empty_targets_without_force() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), "x").unwrap();
        let e = Target::prepare(dir.path(), false).err().unwrap();
        assert!(e.to_string().contains("not empty"), "{e}");
        assert!(matches!(
            Target::prepare(dir.path(), true).unwrap(),
            Target::Dir(_)
        ));
        let file = dir.path().join("x");
        assert!(Target::prepare(&file, true).is_err());
    }

    #[test]
    fn accepts_missing_targets_and_creates_them() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("a/b");
        assert!(matches!(
            Target::prepare(&new, false).unwrap(),
            Target::Dir(_)
        ));
        assert!(new.is_dir());
        assert!(matches!(
            Target::prepare(Path::new("-"), false).unwrap(),
            Target::Stdout
        ));
    }
}
