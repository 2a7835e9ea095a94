//! One command timed, with its own peak memory and CPU time, and another process
//! (a server) sampled while it runs.
//!
//! # Peak memory of a command: `getrusage(RUSAGE_CHILDREN)` in a wrapper
//!
//! `wait4` would give one child's `ru_maxrss`, but it needs `unsafe` (the workspace
//! forbids it) and `std` does not expose it; `getrusage(RUSAGE_CHILDREN)` (safe, in
//! `nix`) gives the largest `ru_maxrss` of *all* the reaped children of a process,
//! which in the benchmark would mix restic's with Headlock's. So each measured
//! command is started through a wrapper, the benchmark's own executable called as
//! `EXE __measure-child REPORT PROGRAM ARGS...` ([`wrapper_main`]): the wrapper's
//! only child is the command, so its `RUSAGE_CHILDREN` after the wait is exactly that
//! command's peak resident set and CPU time (and of the command's own children, if
//! it had any). The wrapper also times the command from its spawn to its exit, and
//! writes the figures to REPORT.
//!
//! The wrapper runs in a process group of its own, which [`Measured::run`] kills
//! (`killpg`, SIGKILL) when asked to stop, on error and on panic; that group does not
//! get the terminal's Ctrl-C, which [`watch_signals`] turns into a flag instead.
//!
//! # A server's memory and CPU: `/proc/<pid>/status` and `/proc/<pid>/stat`
//!
//! [`proc_memory`] reads `VmRSS` (now) and `VmHWM` (the peak since the process
//! started, which cannot be reset); [`proc_cpu`] reads user plus system time.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// First argument that makes the benchmark's executable act as the wrapper.
pub const WRAPPER_ARG: &str = "__measure-child";
/// Bytes of a command's standard output kept (the end of it).
pub const MAX_STDOUT: usize = 64 * 1024;
/// Lines of a command's standard error kept (the last ones).
const STDERR_LINES: usize = 30;
/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on every Linux ABI).
const USER_HZ: u64 = 100;

/// Why a measurement failed.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// A process could not be started, waited for or read.
    #[error("{op} {what}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// Which process or file.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The wrapper's report is missing or malformed.
    #[error("the measurement of {program} left no usable report ({detail})")]
    Report {
        /// The measured program.
        program: String,
        /// What was wrong.
        detail: String,
    },
    /// A `/proc` file did not look as expected.
    #[error("{path}: {what}")]
    Proc {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        what: &'static str,
    },
    /// The caller asked to stop; the command was killed.
    #[error("{program} was stopped before it finished (interrupted)")]
    Stopped {
        /// The measured program.
        program: String,
    },
}

/// What one command used, as measured by the wrapper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// From the command's spawn to its exit.
    pub wall: Duration,
    /// Peak resident set size, in bytes.
    pub max_rss: u64,
    /// User CPU time.
    pub user: Duration,
    /// System CPU time.
    pub system: Duration,
}

impl Usage {
    /// User plus system CPU time.
    pub fn cpu(&self) -> Duration {
        self.user + self.system
    }
}

/// How a measured command ended.
#[derive(Debug)]
pub struct Outcome {
    /// Its exit status (through the wrapper: a signal `N` shows as exit code 128+N).
    pub status: ExitStatus,
    /// What it used.
    pub usage: Usage,
    /// The end of its standard output ([`MAX_STDOUT`] bytes at most).
    pub stdout: Vec<u8>,
    /// The last lines of its standard error.
    pub stderr: String,
}

/// The wrapper: when the first argument is [`WRAPPER_ARG`], runs `PROGRAM ARGS...`
/// with this process's standard streams and environment, waits for it, writes
/// `WALL_NS MAX_RSS_KIB USER_US SYSTEM_US` to REPORT and returns the command's exit
/// code; `None` otherwise (a normal run of the benchmark).
pub fn wrapper_main() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != WRAPPER_ARG {
        return None;
    }
    let (Some(report), Some(program)) = (args.next(), args.next()) else {
        eprintln!("usage: {WRAPPER_ARG} REPORT PROGRAM [ARGS...]");
        return Some(ExitCode::from(2));
    };
    let start = Instant::now();
    let status = match Command::new(&program).args(args).status() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("starting {}: {e}", program.to_string_lossy());
            return Some(ExitCode::from(127));
        }
    };
    let wall = start.elapsed();
    let usage = match getrusage(UsageWho::RUSAGE_CHILDREN) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("getrusage(RUSAGE_CHILDREN): {e}");
            return Some(ExitCode::from(125));
        }
    };
    let us = |t: nix::sys::time::TimeVal| t.tv_sec() as i128 * 1_000_000 + t.tv_usec() as i128;
    let line = format!(
        "{} {} {} {}\n",
        wall.as_nanos(),
        usage.max_rss(),
        us(usage.user_time()),
        us(usage.system_time())
    );
    if let Err(e) = std::fs::write(&report, line) {
        eprintln!("writing {}: {e}", Path::new(&report).display());
        return Some(ExitCode::from(125));
    }
    use std::os::unix::process::ExitStatusExt;
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 125,
    };
    Some(ExitCode::from(u8::try_from(code).unwrap_or(125)))
}

/// A command to run through the wrapper.
#[derive(Debug, Clone)]
pub struct Measured {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    clear_prefixes: Vec<String>,
    dir: Option<PathBuf>,
}

impl Measured {
    /// `program`, no arguments, this process's environment.
    pub fn new(program: impl Into<PathBuf>) -> Measured {
        Measured {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            clear_prefixes: Vec::new(),
            dir: None,
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, a: impl Into<OsString>) -> Measured {
        self.args.push(a.into());
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Measured {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Measured {
        self.env.push((k.into(), Some(v.into())));
        self
    }

    /// Removes every inherited environment variable whose name starts with `prefix`
    /// (before the [`env`](Self::env) settings apply).
    pub fn clear_env_prefix(mut self, prefix: &str) -> Measured {
        self.clear_prefixes.push(prefix.to_string());
        self
    }

    /// Working directory.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Measured {
        self.dir = Some(dir.into());
        self
    }

    /// The program's name, for messages.
    pub fn name(&self) -> String {
        let base = self
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let first = self
            .args
            .first()
            .map(|a| format!(" {}", a.to_string_lossy()))
            .unwrap_or_default();
        format!("`{base}{first}`")
    }

    /// Runs the command through the wrapper `exe` (this benchmark's executable),
    /// calling `tick` about every `every` while it runs; when `tick` returns false
    /// the command's process group is killed and [`MeasureError::Stopped`] returned.
    pub fn run(
        &self,
        exe: &Path,
        every: Duration,
        tick: &mut dyn FnMut() -> bool,
    ) -> Result<Outcome, MeasureError> {
        let name = self.name();
        let report = tempfile::Builder::new()
            .prefix("headlock-bench-usage-")
            .tempfile()
            .map_err(|source| MeasureError::Io {
                op: "creating the usage report of",
                what: name.clone(),
                source,
            })?;
        let mut cmd = Command::new(exe);
        cmd.arg(WRAPPER_ARG)
            .arg(report.path())
            .arg(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for (name, _) in std::env::vars_os() {
            let text = name.to_string_lossy();
            if self.clear_prefixes.iter().any(|p| text.starts_with(p)) {
                cmd.env_remove(&name);
            }
        }
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        let child = cmd.spawn().map_err(|source| MeasureError::Io {
            op: "starting",
            what: name.clone(),
            source,
        })?;
        let mut group = Group { child, done: false };
        let stdout = group.child.stdout.take().map(|mut out| {
            std::thread::spawn(move || {
                let mut tail = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = out.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    tail.extend_from_slice(&buf[..n]);
                    if tail.len() > 2 * MAX_STDOUT {
                        tail.drain(..tail.len() - MAX_STDOUT);
                    }
                }
                let cut = tail.len().saturating_sub(MAX_STDOUT);
                tail.drain(..cut);
                tail
            })
        });
        let stderr_lines = Arc::new(Mutex::new(std::collections::VecDeque::new()));
        let stderr = group.child.stderr.take().map(|err| {
            let lines = stderr_lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    let mut l = lines.lock().unwrap_or_else(|p| p.into_inner());
                    if l.len() == STDERR_LINES {
                        l.pop_front();
                    }
                    l.push_back(line);
                }
            })
        });
        let status = loop {
            match group.child.try_wait() {
                Ok(Some(status)) => {
                    group.done = true;
                    break status;
                }
                Ok(None) => {}
                Err(source) => {
                    return Err(MeasureError::Io {
                        op: "waiting for",
                        what: name,
                        source,
                    });
                }
            }
            if !tick() {
                // `group` kills the whole process group on drop.
                return Err(MeasureError::Stopped { program: name });
            }
            std::thread::sleep(every);
        };
        let stdout = stdout.and_then(|h| h.join().ok()).unwrap_or_default();
        if let Some(h) = stderr {
            let _ = h.join();
        }
        let stderr = stderr_lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n");
        let text = std::fs::read_to_string(report.path()).unwrap_or_default();
        let usage = parse_report(&text).ok_or_else(|| MeasureError::Report {
            program: name.clone(),
            detail: if text.is_empty() {
                format!("empty; exit status {status}; standard error: {stderr}")
            } else {
                format!("{text:?}")
            },
        })?;
        Ok(Outcome {
            status,
            usage,
            stdout,
            stderr,
        })
    }
}

/// The wrapper and its command, killed together unless reaped.
struct Group {
    child: Child,
    done: bool,
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.done {
            // The wrapper leads its own group (process_group(0)): its id is the group's.
            if let Ok(pid) = i32::try_from(self.child.id()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn parse_report(text: &str) -> Option<Usage> {
    let mut it = text.split_ascii_whitespace();
    let wall: u64 = it.next()?.parse().ok()?;
    let rss_kib: u64 = it.next()?.parse().ok()?;
    let user: u64 = it.next()?.parse().ok()?;
    let system: u64 = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    Some(Usage {
        wall: Duration::from_nanos(wall),
        max_rss: rss_kib.checked_mul(1024)?,
        user: Duration::from_micros(user),
        system: Duration::from_micros(system),
    })
}

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcMemory {
    /// `VmRSS`: resident now, in bytes.
    pub rss: u64,
    /// `VmHWM`: the peak since the process started, in bytes.
    pub hwm: u64,
}

/// Reads `VmRSS` and `VmHWM` of `pid`.
pub fn proc_memory(pid: u32) -> Result<ProcMemory, MeasureError> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let text = std::fs::read_to_string(&path).map_err(|source| MeasureError::Io {
        op: "reading",
        what: path.display().to_string(),
        source,
    })?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    match (field("VmRSS:"), field("VmHWM:")) {
        (Some(rss), Some(hwm)) => Ok(ProcMemory { rss, hwm }),
        _ => Err(MeasureError::Proc {
            path,
            what: "no VmRSS or VmHWM line (has the process exited?)",
        }),
    }
}

/// User plus system CPU time of `pid` (all its threads), from `/proc/<pid>/stat`.
pub fn proc_cpu(pid: u32) -> Result<Duration, MeasureError> {
    let path = PathBuf::from(format!("/proc/{pid}/stat"));
    let text = std::fs::read_to_string(&path).map_err(|source| MeasureError::Io {
        op: "reading",
        what: path.display().to_string(),
        source,
    })?;
    parse_stat_cpu(&text).ok_or(MeasureError::Proc {
        path,
        what: "malformed (expected utime and stime after the command name)",
    })
}

/// `utime + stime` of a `/proc/<pid>/stat` line: fields 14 and 15, counted after the
/// command name in parentheses (which may itself hold spaces and parentheses).
fn parse_stat_cpu(text: &str) -> Option<Duration> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // After ")": state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// Turns SIGINT and SIGTERM into a flag (set once either arrives), on the tokio
/// runtime of `handle`; the benchmark polls it, kills its children and removes its
/// temporary files before it exits.
pub fn watch_signals(handle: &tokio::runtime::Handle) -> std::io::Result<Arc<AtomicBool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let _guard = handle.enter();
    let flag = Arc::new(AtomicBool::new(false));
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let set = flag.clone();
    handle.spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        set.store(true, Ordering::SeqCst);
        eprintln!("interrupted: stopping, killing child processes, removing temporary files");
    });
    Ok(flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_stat_line_with_parentheses_in_the_name() {
        let line =
            "4242 (tokio (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_stat_cpu(line), Some(Duration::from_millis(3250)));
        assert_eq!(parse_stat_cpu("4242 (x) S 1 2"), None);
    }

    #[test]
    fn rejects_malformed_reports() {
        assert_eq!(
            parse_report("1000 2 3 4\n"),
            Some(Usage {
                wall: Duration::from_nanos(1000),
                max_rss: 2048,
                user: Duration::from_micros(3),
                system: Duration::from_micros(4),
            })
        );
        assert_eq!(parse_report(""), None);
        assert_eq!(parse_report("1 2 3"), None);
        assert_eq!(parse_report("1 2 3 4 5"), None);
        assert_eq!(parse_report("1 x 3 4"), None);
    }

    #[test]
    fn accepts_own_proc_memory() {
        let m = proc_memory(std::process::id()).unwrap();
        assert!(m.rss > 0 && m.hwm >= m.rss, "{m:?}");
        assert!(proc_cpu(std::process::id()).is_ok());
    }
}
