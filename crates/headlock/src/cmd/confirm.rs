//! Confirmation of the destructive commands (`clusters delete`, `snapshots delete`,
//! `encryption-key compromised`). Without `--yes` the command first reads what it is
//! about to act on from the API (so a wrong id fails before any question), shows on
//! standard error what will happen, in words, and asks for a word to be typed back: the
//! cluster's name, or `delete`. A wrong answer, end of input or a refusal to ask (no
//! terminal on standard input) changes nothing.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;

use super::remote::printable;

/// Exit status when `--yes` is missing and no one can be asked: a usage error.
const EXIT_NO_TERMINAL: u8 = 2;
/// Exit status when the person asked did not confirm.
const EXIT_CANCELLED: u8 = 1;
/// Longest answer read.
const MAX_ANSWER_BYTES: u64 = 1024;

/// Whether the command may go on without asking: `Ok(())` with `--yes`, or when standard
/// input is a terminal (the command asks later, with [`ask`]); otherwise the exit status
/// of a refusal, already explained on standard error.
pub(crate) fn may_ask(yes: bool, action: &str) -> Result<(), ExitCode> {
    if yes || std::io::stdin().is_terminal() {
        return Ok(());
    }
    eprintln!(
        "headlock: error: refusing to {action} without confirmation: standard input is not a terminal; pass --yes to confirm in a script"
    );
    Err(ExitCode::from(EXIT_NO_TERMINAL))
}

/// Shows `lines` (what will happen) on standard error and asks for `expected` to be
/// typed; `Err` with the exit status when the answer is anything else.
pub(crate) fn ask(lines: &[String], expected: &str) -> Result<(), ExitCode> {
    // An empty word would be confirmed by a bare Enter.
    let expected = if expected.trim().is_empty() {
        "delete"
    } else {
        expected.trim()
    };
    let mut err = std::io::stderr().lock();
    for line in lines {
        let _ = writeln!(err, "{line}");
    }
    let _ = write!(
        err,
        "Type {} to go on, anything else cancels: ",
        printable(expected)
    );
    let _ = err.flush();
    drop(err);
    let mut answer = String::new();
    let read = std::io::stdin()
        .lock()
        .take(MAX_ANSWER_BYTES)
        .read_line(&mut answer);
    if read.is_ok() && answer.trim() == expected {
        return Ok(());
    }
    eprintln!("headlock: cancelled; nothing was changed");
    Err(ExitCode::from(EXIT_CANCELLED))
}
