//! Secrets read from files rather than flags (command lines are visible to every user of
//! the machine): an API key for the API commands, the password of an encrypted KMIP
//! client key for `serve`. The secret is the file's first line, trimmed; the file is
//! bounded, must be UTF-8, and a warning (like ssh's) says when others may read it.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use zeroize::Zeroizing;

/// Largest secret file read.
const MAX_SECRET_FILE_BYTES: u64 = 4096;

/// The first line of `path`, trimmed: `what` names the secret in errors and warnings
/// ("API key", "KMIP client key password").
pub(crate) fn first_line(path: &Path, what: &str) -> anyhow::Result<Zeroizing<String>> {
    let f = std::fs::File::open(path)
        .with_context(|| format!("opening {what} file {}", path.display()))?;
    warn_if_shared(path, &f, what);
    let mut text = Zeroizing::new(String::new());
    f.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| {
            format!(
                "reading {what} file {} (it must be UTF-8 text)",
                path.display()
            )
        })?;
    if text.len() as u64 > MAX_SECRET_FILE_BYTES {
        bail!(
            "{what} file {} is larger than {MAX_SECRET_FILE_BYTES} bytes",
            path.display()
        );
    }
    let first = text.lines().next().unwrap_or("").trim();
    if first.is_empty() {
        bail!("{what} file {} is empty", path.display());
    }
    Ok(Zeroizing::new(first.to_string()))
}

/// Warns (like ssh) when others may read a secret file.
fn warn_if_shared(path: &Path, f: &std::fs::File, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = f.metadata() {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            eprintln!(
                "headlock: warning: {what} file {} is accessible by other users (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
    }
}
