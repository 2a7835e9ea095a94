//! A PostgreSQL database of its own for each test.
//!
//! [`PostgresDatabase::create`] makes a fresh, uniquely named database on a test server
//! and drops it (with `FORCE`, closing any connection left open) when dropped, so tests
//! run in parallel without seeing each other's rows. The server is the one
//! `HEADLOCK_TEST_POSTGRES_URL` names (an admin URL: a role that may create databases),
//! or else the throwaway one `scripts/postgres.sh start` runs on loopback, started once
//! per process (the script is idempotent and flock-guarded, so parallel test binaries
//! share one server). Stop that one with `scripts/postgres.sh stop`.
//!
//! Databases are created and dropped with `psql` (PostgreSQL's client, installed with
//! the server), so this crate stays synchronous and free of a database driver.
//!
//! ```no_run
//! let db = testkit::PostgresDatabase::create()?;
//! println!("a fresh database at {}", db.url());
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::repo_root;

/// The environment variable that points tests at an existing server.
pub const POSTGRES_URL_ENV: &str = "HEADLOCK_TEST_POSTGRES_URL";

/// A database created for one test, dropped when this is dropped.
#[derive(Debug)]
pub struct PostgresDatabase {
    name: String,
    url: String,
    admin_url: String,
}

impl PostgresDatabase {
    /// Creates a database with a fresh name on the test server (starting the server
    /// first if this process has not yet). Blocks for a fraction of a second.
    pub fn create() -> io::Result<PostgresDatabase> {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let admin_url = postgres_admin_url()?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "headlock_test_{}_{}_{nanos}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        psql(&admin_url, &format!("CREATE DATABASE {name}"))?;
        let url = with_database(&admin_url, &name)?;
        Ok(PostgresDatabase {
            name,
            url,
            admin_url,
        })
    }

    /// The URL of this database (the admin URL with its database replaced).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = psql(&self.admin_url, &drop) {
            eprintln!("testkit: could not drop database {}: {e}", self.name);
        }
    }
}

/// The admin URL of the test server: `HEADLOCK_TEST_POSTGRES_URL`, or the server
/// `scripts/postgres.sh start` runs (started once per process).
pub fn postgres_admin_url() -> io::Result<String> {
    if let Ok(url) = std::env::var(POSTGRES_URL_ENV) {
        if !url.trim().is_empty() {
            return Ok(url.trim().to_owned());
        }
    }
    static STARTED: OnceLock<Result<String, String>> = OnceLock::new();
    STARTED
        .get_or_init(|| start_server().map_err(|e| e.to_string()))
        .clone()
        .map_err(io::Error::other)
}

/// Runs `scripts/postgres.sh start` and reads the URL file it writes.
fn start_server() -> io::Result<String> {
    let root = repo_root();
    let script = root.join("scripts/postgres.sh");
    let out = Command::new("bash").arg(&script).arg("start").output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{} start failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let state = std::env::var_os("HEADLOCK_TEST_SERVICES")
        .map_or_else(|| root.join("target/test-services"), PathBuf::from);
    let url = std::fs::read_to_string(state.join("postgres.url"))?;
    Ok(url.trim().to_owned())
}

/// `url` with its path (the database) replaced by `name`, query kept.
fn with_database(url: &str, name: &str) -> io::Result<String> {
    let bad = || io::Error::other("the admin URL is not postgres://[user@]host[:port][/db][?...]");
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.split_once('?').map(|(_, q)| q);
    Ok(match query {
        Some(query) => format!("{scheme}://{authority}/{name}?{query}"),
        None => format!("{scheme}://{authority}/{name}"),
    })
}

/// Runs one SQL command with `psql` against `url`.
fn psql(url: &str, sql: &str) -> io::Result<()> {
    let out = Command::new(psql_path())
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .output()
        .map_err(|e| io::Error::other(format!("running psql (PostgreSQL's client): {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "psql {sql:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// `psql` from PATH, else from Debian's PostgreSQL directories (newest first).
fn psql_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let on_path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("psql"))
                .find(|p| p.is_file())
        });
        on_path
            .or_else(|| {
                let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                    .ok()?
                    .filter_map(|e| e.ok().map(|e| e.path().join("bin/psql")))
                    .filter(|p| p.is_file())
                    .collect();
                found.sort_by_key(|p| version_of(p));
                found.pop()
            })
            .unwrap_or_else(|| PathBuf::from("psql"))
    })
    .clone()
}

/// The major version in `/usr/lib/postgresql/<version>/bin/psql`.
fn version_of(psql: &Path) -> u32 {
    psql.ancestors()
        .nth(2)
        .and_then(|dir| dir.file_name())
        .and_then(|v| v.to_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_replaces_only_the_path() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5/postgres", "t1").unwrap(),
            "postgres://postgres@127.0.0.1:5/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/admin?sslmode=disable", "t2").unwrap(),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(
            with_database("postgresql://h:5432", "t3").unwrap(),
            "postgresql://h:5432/t3"
        );
        assert!(with_database("h:5432", "t4").is_err());
    }
}
