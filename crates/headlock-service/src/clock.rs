//! The service's "now" for schedules that run over days (automatic rotation, destruction
//! of retired keys), so that tests of the real binary can move time forward instead of
//! waiting for it.
//!
//! Leases, nonces and record timestamps keep the real clock, with two exceptions read
//! from the [`Clock`] too: the creation time of a master key, which anchors its rotation
//! schedule, and the retirement time of the key it replaces, which anchors that key's
//! destruction; so that "made at" or "retired at" and "due at" are in one frame (with a
//! shifted clock a key made now is not due at once). The decisions "is this due?" read a
//! [`Clock`]. The store never reads a clock: every time it records is passed in.

use std::path::PathBuf;
use std::sync::Arc;

use time::OffsetDateTime;

/// Where "now" comes from.
pub trait Clock: Send + Sync + 'static {
    /// The current time, UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        crate::now()
    }
}

/// The system clock moved forward by the whole number of seconds written in a file,
/// read at every call (a missing or unreadable file means no shift). For tests only:
/// `serve` uses it when `HEADLOCK_TEST_CLOCK_SHIFT_FILE` names a file and the binary has
/// the test hooks (`crate::test_hooks`).
#[derive(Debug, Clone)]
pub struct ShiftedClock {
    file: PathBuf,
}

impl ShiftedClock {
    /// A clock shifted by the seconds in `file`.
    pub fn new(file: impl Into<PathBuf>) -> Self {
        ShiftedClock { file: file.into() }
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> OffsetDateTime {
        let shift = std::fs::read_to_string(&self.file)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0);
        crate::now() + time::Duration::seconds(shift)
    }
}

/// The clock `serve` uses: [`ShiftedClock`] on the file named by
/// `HEADLOCK_TEST_CLOCK_SHIFT_FILE` when that is set and the `test-hooks` feature is on
/// (tests only), else [`SystemClock`].
pub fn from_env() -> Arc<dyn Clock> {
    match crate::test_hooks::clock_shift_file() {
        Some(file) => {
            tracing::warn!(
                file = %std::path::Path::new(&file).display(),
                "HEADLOCK_TEST_CLOCK_SHIFT_FILE is set: the key lifecycle runs on a shifted clock (tests only)"
            );
            Arc::new(ShiftedClock::new(file))
        }
        None => Arc::new(SystemClock),
    }
}
