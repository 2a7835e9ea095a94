//! The `headlock` binary as a child process: `users create`, `serve` and
//! `kmip-server` (as [`Daemon`]s, killed on drop), and the CLI client as a
//! [`Measured`] command.
//!
//! The child gets a clean environment for Headlock (every `HEADLOCK_*`, `AWS_*` and
//! `RUST_LOG` variable removed), so a benchmark always measures what its flags and
//! configuration file say, at the default log level. Where the state lives is a
//! [`Store`]: `--data-dir DIR` (everything in one directory, the embedded KMIP
//! server), `--config FILE` (a database, a KMIP server, a bucket), or both.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::daemon::{Daemon, DaemonError};
use crate::measure::Measured;

/// How long `headlock serve` or `headlock kmip-server` may take to say it listens.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The line `headlock serve` prints on standard error once the API is ready.
pub const API_READY: &str = "headlock: API listening on http://";
/// The line `headlock kmip-server` prints on standard error once it accepts connections.
pub const KMIP_READY: &str = "headlock: KMIP server listening on ";

/// Why the child could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The binary could not be started.
    #[error("starting {bin}: {source}")]
    Spawn {
        /// The binary.
        bin: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A command exited with a failure.
    #[error("`headlock {what}` failed ({status}): {stderr}")]
    Failed {
        /// The subcommand.
        what: &'static str,
        /// Its exit status.
        status: ExitStatus,
        /// The end of its standard error.
        stderr: String,
    },
    /// A command printed something other than what it should.
    #[error("`headlock {what}` printed an unexpected answer: {detail}")]
    Unexpected {
        /// The subcommand.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A daemon (`serve`, `kmip-server`) did not start or did not say it listens.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

/// Where a `headlock` command keeps its state: the `--config` and `--data-dir` flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct Store<'a> {
    /// `--config FILE`: the file names the database, the KMIP servers and the bucket.
    pub config: Option<&'a Path>,
    /// `--data-dir DIR`: the node's own directory (the embedded KMIP server's files,
    /// and the database and chunks unless the configuration names others).
    pub data_dir: Option<&'a Path>,
}

impl<'a> Store<'a> {
    /// `--data-dir DIR` alone.
    pub fn data_dir(dir: &'a Path) -> Store<'a> {
        Store {
            config: None,
            data_dir: Some(dir),
        }
    }

    /// `--config FILE` alone.
    pub fn config(file: &'a Path) -> Store<'a> {
        Store {
            config: Some(file),
            data_dir: None,
        }
    }

    /// Also `--data-dir DIR`.
    pub fn with_data_dir(self, dir: &'a Path) -> Store<'a> {
        Store {
            data_dir: Some(dir),
            ..self
        }
    }

    fn add_to(&self, cmd: &mut Command) {
        if let Some(config) = self.config {
            cmd.arg("--config").arg(config);
        }
        if let Some(dir) = self.data_dir {
            cmd.arg("--data-dir").arg(dir);
        }
    }
}

/// `bin` with standard input from /dev/null and no `HEADLOCK_*`, `AWS_*` or
/// `RUST_LOG` variable.
pub fn headlock_command(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("HEADLOCK_") || text.starts_with("AWS_") || text == "RUST_LOG" {
            cmd.env_remove(&name);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `headlock users create STORE --username NAME --role ROLE` and returns the API
/// key it prints (kept by the caller only).
pub fn create_user(
    bin: &Path,
    store: Store<'_>,
    username: &str,
    role: &str,
) -> Result<String, ProcessError> {
    let mut cmd = headlock_command(bin);
    cmd.args(["users", "create"]);
    store.add_to(&mut cmd);
    let out = cmd
        .args(["--username", username, "--role", role])
        .output()
        .map_err(|source| ProcessError::Spawn {
            bin: bin.to_path_buf(),
            source,
        })?;
    if !out.status.success() {
        return Err(ProcessError::Failed {
            what: "users create",
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let key = String::from_utf8(out.stdout)
        .map_err(|_| ProcessError::Unexpected {
            what: "users create",
            detail: "standard output is not UTF-8".into(),
        })?
        .trim()
        .to_string();
    if key.is_empty() || key.len() > 256 || key.contains(char::is_whitespace) {
        return Err(ProcessError::Unexpected {
            what: "users create",
            detail: format!(
                "expected one API key on standard output, got {} bytes",
                key.len()
            ),
        });
    }
    Ok(key)
}

/// Starts `headlock serve STORE --listen 127.0.0.1:0` and waits for its `headlock: API
/// listening on http://ADDR` line; `name` is for messages. Killed on drop, panics
/// included.
pub fn serve(bin: &Path, store: Store<'_>, name: &str) -> Result<Daemon, ProcessError> {
    let mut cmd = headlock_command(bin);
    cmd.arg("serve");
    store.add_to(&mut cmd);
    cmd.args(["--listen", "127.0.0.1:0"]);
    Ok(Daemon::start(&mut cmd, name, API_READY, START_TIMEOUT)?)
}

/// Starts `headlock kmip-server --data-dir DIR --listen 127.0.0.1:0` and waits for its
/// `headlock: KMIP server listening on ADDR` line. Killed on drop, panics included.
pub fn kmip_server(bin: &Path, data_dir: &Path) -> Result<Daemon, ProcessError> {
    let mut cmd = headlock_command(bin);
    cmd.arg("kmip-server")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0"]);
    Ok(Daemon::start(
        &mut cmd,
        "headlock kmip-server",
        KMIP_READY,
        START_TIMEOUT,
    )?)
}

/// The CLI client `headlock SUB --group G --cluster C --quiet` (no `--quiet` for
/// `verify`, which has none) against the node at
/// `addr` as `username`, the credentials in `HEADLOCK_*` variables and no other
/// `HEADLOCK_*` or `RUST_LOG` variable; the caller adds the subcommand's arguments.
pub fn cli(
    bin: &Path,
    addr: std::net::SocketAddr,
    username: &str,
    api_key: &str,
    sub: &str,
    group: &str,
    cluster: &str,
) -> Measured {
    let cmd = Measured::new(bin)
        .clear_env_prefix("HEADLOCK_")
        .clear_env_prefix("RUST_LOG")
        .env("HEADLOCK_URL", format!("http://{addr}"))
        .env("HEADLOCK_USERNAME", username)
        .env("HEADLOCK_API_KEY", api_key)
        .args([sub, "--group", group, "--cluster", cluster]);
    // `verify` prints one line a snapshot and has no `--quiet`.
    if sub == "verify" {
        cmd
    } else {
        cmd.arg("--quiet")
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A stand-in for `headlock`: answers `users create` with a key and `serve` with
    /// the ready line only when given exactly the arguments expected for `dir`.
    fn fake_headlock(dir: &Path) -> PathBuf {
        let d = dir.display();
        let script = format!(
            r#"#!/bin/sh
case "$*" in
  "users create --config {d}/c.toml --data-dir {d}/data --username u --role r") echo key123 ;;
  "users create --data-dir {d}/data --username u --role r") echo "two keys" ;;
  "serve --config {d}/c.toml --data-dir {d}/data --listen 127.0.0.1:0")
    echo "headlock: API listening on http://127.0.0.1:4242" >&2; exec sleep 60 ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
"#
        );
        let bin = dir.join("headlock");
        std::fs::write(&bin, script).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }

    #[test]
    fn accepts_config_and_data_dir_in_users_create_and_serve() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_headlock(dir.path());
        let (config, data) = (dir.path().join("c.toml"), dir.path().join("data"));
        let store = Store::config(&config).with_data_dir(&data);
        assert_eq!(create_user(&bin, store, "u", "r").unwrap(), "key123");
        let node = serve(&bin, store, "node").unwrap();
        assert_eq!(node.addr(), "127.0.0.1:4242".parse().unwrap());
    }

    #[test]
    fn rejects_failed_or_unexpected_users_create() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_headlock(dir.path());
        let data = dir.path().join("data");
        let e = create_user(&bin, Store::data_dir(&data), "u", "r").unwrap_err();
        assert!(matches!(e, ProcessError::Unexpected { .. }), "{e}");
        let e = create_user(&bin, Store::data_dir(&data), "other", "r").unwrap_err();
        assert!(
            matches!(&e, ProcessError::Failed { stderr, .. } if stderr.contains("unexpected")),
            "{e}"
        );
        let e = serve(&bin, Store::data_dir(&data), "node").err().unwrap();
        assert!(
            matches!(&e, ProcessError::Daemon(DaemonError::NotReady { log, .. }) if log.contains("unexpected")),
            "{e}"
        );
    }
}
