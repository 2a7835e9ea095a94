//! The `headlock` binary as a child process: `users create`, and `serve` killed on drop.
//!
//! The child gets a clean environment for Headlock (every `HEADLOCK_*` and `RUST_LOG`
//! variable removed), so a benchmark always measures the defaults: the embedded KMIP
//! server and the default log level. Its standard error is drained by a thread (a full
//! pipe would stall the server) and the last lines are kept for error messages.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long `headlock serve` may take to say it listens.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of the child's standard error kept for error messages.
const LOG_LINES: usize = 40;
/// The line `headlock serve` prints on standard error once the API is ready.
const READY_PREFIX: &str = "headlock: API listening on http://";

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
    /// `headlock serve` did not say it listens in time, or exited.
    #[error(
        "`headlock serve` did not become ready within {START_TIMEOUT:?}; its log ends with:\n{log}"
    )]
    NotReady {
        /// The end of its standard error.
        log: String,
    },
}

fn headlock_command(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HEADLOCK_") {
            cmd.env_remove(&name);
        }
    }
    cmd.env_remove("RUST_LOG").stdin(Stdio::null());
    cmd
}

/// Runs `headlock users create --data-dir DIR --username NAME --role ROLE` and
/// returns the API key it prints (kept by the caller only).
pub fn create_user(
    bin: &Path,
    data_dir: &Path,
    username: &str,
    role: &str,
) -> Result<String, ProcessError> {
    let out = headlock_command(bin)
        .args(["users", "create", "--data-dir"])
        .arg(data_dir)
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

/// A running `headlock serve`, killed (SIGKILL) and reaped on drop, panics included.
pub struct Served {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Served {
    /// Starts `headlock serve --data-dir DIR --listen 127.0.0.1:0` and waits for its
    /// `headlock: API listening on http://ADDR` line.
    pub fn start(bin: &Path, data_dir: &Path) -> Result<Served, ProcessError> {
        let mut child = headlock_command(bin)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| ProcessError::Spawn {
                bin: bin.to_path_buf(),
                source,
            })?;
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES)));
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = line.strip_prefix(READY_PREFIX) {
                        if let (Some(tx), Ok(addr)) = (tx.take(), addr.trim().parse::<SocketAddr>())
                        {
                            let _ = tx.send(addr);
                        }
                    }
                    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                    if log.len() == LOG_LINES {
                        log.pop_front();
                    }
                    log.push_back(line);
                }
            });
        }
        let mut served = Served {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        // Disconnected (the child closed stderr: it exited) or timed out: not ready.
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => {
                served.addr = addr;
                Ok(served)
            }
            Err(_) => {
                // Kill first so the log is complete; drop would kill again harmlessly.
                let _ = served.child.kill();
                let _ = served.child.wait();
                std::thread::sleep(Duration::from_millis(100));
                Err(ProcessError::NotReady {
                    log: served.log_tail(),
                })
            }
        }
    }

    /// The API's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of the child's standard error.
    pub fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
