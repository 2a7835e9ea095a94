//! The `headlock serve` harness lives in `testkit::serve`, shared with other crates.

pub use testkit::serve::*;
