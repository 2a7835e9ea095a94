//! A long-running child process that announces its address on standard error
//! (`headlock serve`, `headlock kmip-server`), killed (SIGKILL) and reaped on drop,
//! panics included.
//!
//! [`Daemon::start`] spawns the command with standard error piped, drains it on a
//! thread (a full pipe would stall the child) keeping the last lines for error
//! messages, and waits for the first line that starts with the given prefix; the
//! first word after the prefix is the address (`headlock: API listening on
//! http://127.0.0.1:PORT`, `headlock: KMIP server listening on 127.0.0.1:PORT (mutual
//! TLS)`).
//!
//! [`crate::process::serve`] and [`crate::process::kmip_server`] start Headlock's
//! daemons with it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Lines of the child's standard error kept for error messages.
const LOG_LINES: usize = 40;

/// Why a daemon could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The program could not be spawned.
    #[error("starting {name}: {source}")]
    Spawn {
        /// Which daemon.
        name: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// No ready line in time (or the child exited first).
    #[error("{name} did not print {prefix:?} within {timeout:?}; its log ends with:\n{log}")]
    NotReady {
        /// Which daemon.
        name: String,
        /// The line awaited.
        prefix: String,
        /// How long it was given.
        timeout: Duration,
        /// The end of its standard error.
        log: String,
    },
}

/// A running child process, killed and reaped on drop.
pub struct Daemon {
    name: String,
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Daemon {
    /// Spawns `cmd` (its standard input and output are set to null, standard error to
    /// a pipe) and waits up to `timeout` for a line starting with `ready_prefix`
    /// followed by a socket address. `name` is for messages.
    pub fn start(
        cmd: &mut Command,
        name: &str,
        ready_prefix: &str,
        timeout: Duration,
    ) -> Result<Daemon, DaemonError> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| DaemonError::Spawn {
                name: name.to_string(),
                source,
            })?;
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES)));
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            let prefix = ready_prefix.to_string();
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.strip_prefix(&prefix) {
                        let addr = rest.split_whitespace().next().unwrap_or_default();
                        if let (Some(tx), Ok(addr)) = (tx.take(), addr.parse::<SocketAddr>()) {
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
        let mut daemon = Daemon {
            name: name.to_string(),
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        // Disconnected (the child closed stderr: it exited) or timed out: not ready.
        match rx.recv_timeout(timeout) {
            Ok(addr) => {
                daemon.addr = addr;
                Ok(daemon)
            }
            Err(_) => {
                // Kill first so the log is complete; drop kills again harmlessly.
                let _ = daemon.child.kill();
                let _ = daemon.child.wait();
                std::thread::sleep(Duration::from_millis(100));
                Err(DaemonError::NotReady {
                    name: daemon.name.clone(),
                    prefix: ready_prefix.to_string(),
                    timeout,
                    log: daemon.log_tail(),
                })
            }
        }
    }

    /// The address from the ready line.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The name given at start.
    pub fn name(&self) -> &str {
        &self.name
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

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn accepts_ready_line_and_kills_on_drop() {
        let d = Daemon::start(
            &mut sh("echo starting >&2; echo 'x: up on 127.0.0.1:4242 (tls)' >&2; exec sleep 60"),
            "sleeper",
            "x: up on ",
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(d.addr(), "127.0.0.1:4242".parse().unwrap());
        let pid = d.pid();
        let stat = format!("/proc/{pid}/stat");
        assert!(std::path::Path::new(&stat).exists());
        drop(d);
        // Reaped: the pid is gone (not even a zombie).
        assert!(!std::path::Path::new(&stat).exists());
    }

    #[test]
    fn rejects_child_that_exits_before_ready_with_its_log() {
        let e = Daemon::start(
            &mut sh("echo 'fatal: no database' >&2; exit 3"),
            "quitter",
            "x: up on ",
            Duration::from_secs(10),
        )
        .err()
        .unwrap();
        let text = e.to_string();
        assert!(matches!(e, DaemonError::NotReady { .. }), "{text}");
        assert!(text.contains("fatal: no database"), "{text}");
    }

    #[test]
    fn rejects_ready_line_without_address() {
        let e = Daemon::start(
            &mut sh("echo 'x: up on somewhere' >&2; exit 0"),
            "vague",
            "x: up on ",
            Duration::from_secs(10),
        )
        .err()
        .unwrap();
        assert!(matches!(e, DaemonError::NotReady { .. }), "{e}");
    }
}
