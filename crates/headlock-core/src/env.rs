//! Settings that library crates read from the environment (intervals and timeouts),
//! parsed by one rule so that every such variable accepts and refuses the same way.

use std::time::Duration;

/// The value of `var` as a whole number of seconds from 1 to `max`: `Ok(None)` when the
/// variable is not set, `Err` naming the variable, the range and (the first 40
/// characters of) the value refused.
pub fn seconds(var: &str, max: u64) -> Result<Option<Duration>, String> {
    let Some(v) = std::env::var_os(var) else {
        return Ok(None);
    };
    let text = v.to_string_lossy();
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|s| (1..=max).contains(s))
        .map(|s| Some(Duration::from_secs(s)))
        .ok_or_else(|| {
            format!(
                "{var} must be a whole number of seconds from 1 to {max}, not {:?}",
                text.chars().take(40).collect::<String>()
            )
        })
}
