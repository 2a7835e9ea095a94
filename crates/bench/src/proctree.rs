//! CPU time of a process together with its descendants, from `/proc`, for servers that
//! work in child processes (PostgreSQL runs one backend process per connection).
//!
//! [`tree_cpu`] scans `/proc/<pid>/stat` of every process once, builds the parent map,
//! and sums, over the root and everything below it, `utime + stime` (the live
//! processes' own time) plus `cutime + cstime` (the time of the children they have
//! already reaped). A process that exits between two calls moves from the first sum
//! to its parent's `cutime` when reaped, so a difference between two calls stays
//! right. [`crate::measure::proc_cpu`] is the one-process version.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on every Linux ABI).
const USER_HZ: u64 = 100;

/// Why the process table could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcTreeError {
    /// `/proc` could not be listed.
    #[error("listing /proc: {0}")]
    List(std::io::Error),
    /// The root process does not exist (any more).
    #[error("process {0} does not exist")]
    NoSuchProcess(u32),
    /// The root's stat line did not look as expected.
    #[error("{path}: malformed (expected ppid and the four CPU times after the name)")]
    Malformed {
        /// The file.
        path: PathBuf,
    },
}

/// One `/proc/<pid>/stat` line: parent pid and own + reaped children's CPU ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    ppid: u32,
    ticks: u64,
}

/// Fields 4 (ppid) and 14 to 17 (utime, stime, cutime, cstime), counted after the
/// command name in parentheses (which may itself hold spaces and parentheses).
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // After ")": state is field 3 (index 0), so ppid (4) is index 1 and
    // utime..cstime (14..17) are indexes 11..14.
    let ppid = f.get(1)?.parse().ok()?;
    let mut ticks = 0u64;
    for i in 11..=14 {
        ticks = ticks.checked_add(f.get(i)?.parse::<u64>().ok()?)?;
    }
    Some(Stat { ppid, ticks })
}

/// A snapshot of the process table: each process's parent and CPU ticks.
#[derive(Debug, Clone, Default)]
pub struct ProcTable {
    stats: HashMap<u32, Stat>,
    children: HashMap<u32, Vec<u32>>,
}

impl ProcTable {
    /// Reads `/proc/<pid>/stat` of every process (processes that vanish meanwhile are
    /// skipped).
    pub fn read() -> Result<ProcTable, ProcTreeError> {
        let mut table = ProcTable::default();
        for entry in std::fs::read_dir("/proc").map_err(ProcTreeError::List)? {
            let Ok(entry) = entry else { continue };
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if let Some(s) = parse_stat(&text) {
                table.stats.insert(pid, s);
                table.children.entry(s.ppid).or_default().push(pid);
            }
        }
        Ok(table)
    }

    /// CPU time (user + system) of `root` and all its descendants, live and reaped;
    /// `None` when `root` was not running.
    pub fn tree_cpu(&self, root: u32) -> Option<Duration> {
        let mut ticks = self.stats.get(&root)?.ticks;
        let mut stack = vec![root];
        while let Some(pid) = stack.pop() {
            for &child in self
                .children
                .get(&pid)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                // A pid cannot be its own ancestor, but pid 0's entry lists 1 and 2.
                if child != pid {
                    ticks += self.stats.get(&child).map_or(0, |s| s.ticks);
                    stack.push(child);
                }
            }
        }
        Some(Duration::from_millis(ticks * 1000 / USER_HZ))
    }
}

/// CPU time (user + system) of `root` and all its descendants, live and reaped.
pub fn tree_cpu(root: u32) -> Result<Duration, ProcTreeError> {
    let path = PathBuf::from(format!("/proc/{root}/stat"));
    let text = std::fs::read_to_string(&path).map_err(|_| ProcTreeError::NoSuchProcess(root))?;
    parse_stat(&text).ok_or(ProcTreeError::Malformed { path })?;
    ProcTable::read()?
        .tree_cpu(root)
        .ok_or(ProcTreeError::NoSuchProcess(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_stat_line_with_parentheses_in_the_name() {
        let line = "4242 (post (gres) x) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 75 30 5 20 0 9";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 17,
                ticks: 360
            })
        );
        assert_eq!(parse_stat("4242 (x) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn accepts_busy_child_in_the_tree() {
        // A child that burns CPU for about 0.3 s: the tree's time grows by at least
        // the child's own (user + system) time, which /proc reports for it.
        let me = std::process::id();
        let before = tree_cpu(me).unwrap();
        let mut child = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut seen = Duration::ZERO;
        while child.try_wait().unwrap().is_none() {
            if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                && let Some(s) = parse_stat(&s)
            {
                seen = Duration::from_millis(s.ticks * 1000 / USER_HZ);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let after = tree_cpu(me).unwrap();
        assert!(seen > Duration::ZERO, "the child used no measurable CPU");
        assert!(after >= before + seen, "{before:?} + {seen:?} > {after:?}");
    }

    #[test]
    fn rejects_missing_process() {
        // Pids are below 2^22 on Linux.
        assert!(matches!(
            tree_cpu(u32::MAX - 1),
            Err(ProcTreeError::NoSuchProcess(_))
        ));
    }
}
