//! Test hooks: what lets the tests of the real binary stop it at an exact step or move
//! its clock. Compiled in only with the `test-hooks` cargo feature, which the test
//! suite turns on (the `headlock` crate's dev-dependency on this one) and a release
//! build does not: without it [`crash_point`] does nothing and [`clock_shift_file`] is
//! always None, whatever the environment says.
//!
//! * `HEADLOCK_TEST_CRASH_AT=<name>`: the process aborts at the crash point `<name>`, as
//!   a power cut would stop it (a crash at an exact step cannot be caused from outside
//!   a real process any other way).
//! * `HEADLOCK_TEST_CLOCK_SHIFT_FILE=<file>`: the key lifecycle's clock runs ahead of
//!   real time by the seconds in the file ([`crate::clock::ShiftedClock`]).

use std::ffi::OsString;

/// The crash point names of the service, for the test that checks a build without the
/// hooks ignores them.
#[cfg(all(test, not(feature = "test-hooks")))]
const CRASH_POINTS: &[&str] = &[
    "rotation-after-kmip-create",
    "rotation-after-commit",
    "reencrypt-after-snapshot",
];

/// With `HEADLOCK_TEST_CRASH_AT=<name>` the process aborts here.
#[cfg(feature = "test-hooks")]
pub(crate) fn crash_point(name: &str) {
    if std::env::var_os("HEADLOCK_TEST_CRASH_AT").is_some_and(|v| v == name) {
        eprintln!("headlock: HEADLOCK_TEST_CRASH_AT={name}: aborting");
        std::process::abort();
    }
}

/// Without the `test-hooks` feature: nothing.
#[cfg(not(feature = "test-hooks"))]
pub(crate) fn crash_point(_name: &str) {}

/// The file named by `HEADLOCK_TEST_CLOCK_SHIFT_FILE`, when it is set and non-empty.
#[cfg(feature = "test-hooks")]
pub(crate) fn clock_shift_file() -> Option<OsString> {
    std::env::var_os("HEADLOCK_TEST_CLOCK_SHIFT_FILE").filter(|f| !f.is_empty())
}

/// Without the `test-hooks` feature: never a file.
#[cfg(not(feature = "test-hooks"))]
pub(crate) fn clock_shift_file() -> Option<OsString> {
    None
}

/// A build without the feature (a release build) ignores both variables. The check
/// runs in a child process, since the variables must be in a process's environment
/// (this crate forbids the unsafe `set_var`) and a crash point that works aborts it;
/// `scripts/test.sh` runs it with `cargo test -p headlock-service --lib` (the workspace
/// run turns the feature on).
#[cfg(all(test, not(feature = "test-hooks")))]
mod without_the_feature {
    use super::*;

    const CHILD: &str = "HEADLOCK_TEST_HOOKS_CHILD";

    #[test]
    fn ignores_the_crash_points_and_the_clock_shift() {
        let dir = tempfile::tempdir().unwrap();
        let shift = dir.path().join("shift");
        std::fs::write(&shift, (10 * 365 * 86_400).to_string()).unwrap();
        for point in CRASH_POINTS {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "test_hooks::without_the_feature::child",
                    "--nocapture",
                ])
                .env(CHILD, "1")
                .env("HEADLOCK_TEST_CRASH_AT", point)
                .env("HEADLOCK_TEST_CLOCK_SHIFT_FILE", &shift)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("1 passed"),
                "{point}: {}\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Run by the test above with the variables set; does nothing otherwise.
    #[test]
    fn child() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        assert_eq!(clock_shift_file(), None);
        let skew = crate::clock::from_env().now() - crate::now();
        assert!(
            skew.abs() < time::Duration::minutes(1),
            "clock shifted by {skew}"
        );
        for point in CRASH_POINTS {
            crash_point(point);
        }
    }
}
