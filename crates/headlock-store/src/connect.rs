//! Opening a pool: SQLite's file and settings, PostgreSQL's URL and pool, which of the
//! two a database URL names, and the URL with its password hidden.
//!
//! A PostgreSQL URL may carry a password (`postgres://user:secret@host/db`, or
//! `?password=secret`). It is handed to sqlx and to nothing else: the store keeps and
//! shows only [`redact`]'s form, and errors met while connecting are scrubbed of the
//! password should a driver ever quote it. The redaction is hand-written (a dozen lines
//! of string splitting): the `url` crate would parse the URL but has no notion of which
//! query parameters are secrets, and it would be a new direct dependency for it.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use headlock_core::StoreError;
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::db::Pool;

/// SQLite: how long a statement waits for another connection's write lock before failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// SQLite: connections per pool. SQLite has one writer at a time whatever the pool size;
/// a few connections let reads proceed beside it (WAL).
pub(crate) const SQLITE_POOL_SIZE: u32 = 4;

/// SQLite: how long a caller waits for a free connection (writers queue on one lock).
const SQLITE_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(60);

/// SQLite: a write-ahead log larger than this is checkpointed and emptied ([`bound_wal`]).
const WAL_LIMIT: u64 = 64 * 1024 * 1024;

/// SQLite: how often [`bound_wal`] looks at the log's size.
const WAL_CHECK_EVERY: Duration = Duration::from_secs(2);

/// SQLite: how long [`checkpoint_if_larger`] waits for the old log's readers, 500 ms
/// (writers wait meanwhile, so not the 30 s of [`BUSY_TIMEOUT`]; it tries again later).
const WAL_CHECKPOINT_WAIT: &str = "PRAGMA busy_timeout = 500";

/// PostgreSQL: connections per pool, per node. A handful of nodes at 10 each stays well
/// inside PostgreSQL's default `max_connections` of 100; the service's concurrency is
/// bounded above the store (HTTP and backup limits), so more would only queue on the
/// server instead of in the pool.
pub(crate) const POSTGRES_POOL_SIZE: u32 = 10;

/// PostgreSQL: a pooled connection idle for this long is pinged before it is used (one
/// used more recently is trusted, as HikariCP trusts one used in the last 500 ms).
const POSTGRES_PING_IDLE: Duration = Duration::from_secs(1);

/// PostgreSQL: how long opening the store waits for its first connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// PostgreSQL: how long a caller waits for a free (or new) connection.
const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a database URL names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL, as given.
    Postgres(&'a str),
}

/// Reads a database URL: `postgres://...` or `postgresql://...` is PostgreSQL;
/// `sqlite://PATH`, `sqlite:PATH` or a plain path is a SQLite file (the path as written:
/// no percent-decoding, no options). Errors never quote the URL.
pub(crate) fn target(url: &str) -> Result<Target<'_>, StoreError> {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme);
    match scheme.map(str::to_ascii_lowercase).as_deref() {
        Some("postgres" | "postgresql") if url.contains("://") => Ok(Target::Postgres(url)),
        Some("sqlite") => {
            let rest = &url["sqlite:".len()..];
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() || path.contains('?') || path == ":memory:" {
                return Err(StoreError::Backend(
                    "the database URL names no SQLite file (sqlite://PATH, without options)".into(),
                ));
            }
            Ok(Target::Sqlite(PathBuf::from(path)))
        }
        _ if url.contains("://") => Err(StoreError::Backend(format!(
            "the database URL is neither postgres:// nor sqlite:// (scheme {:?})",
            scheme.unwrap_or_default()
        ))),
        _ if url.trim().is_empty() => Err(StoreError::Backend("the database URL is empty".into())),
        _ => Ok(Target::Sqlite(PathBuf::from(url))),
    }
}

/// `url` with its password (in the user part or a `password` parameter) replaced by
/// `***`, for Debug, logs and errors.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(a database URL)".to_owned();
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, _)) => (rest, "#..."),
        None => (rest, ""),
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                        format!("{key}=***")
                    }
                    _ => param.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}{fragment}")
}

/// The passwords `url` carries, as written and percent-decoded, to scrub from errors.
fn passwords(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    let rest = rest.split_once('#').map_or(rest, |(rest, _)| rest);
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let mut found = Vec::new();
    if let Some((userinfo, _)) = rest[..end].rsplit_once('@') {
        if let Some((_, password)) = userinfo.split_once(':') {
            found.push(password.to_owned());
        }
    }
    if let Some((_, query)) = rest.split_once('?') {
        for param in query.split('&') {
            if let Some((key, value)) = param.split_once('=') {
                if key.to_ascii_lowercase().contains("password") {
                    found.push(value.to_owned());
                }
            }
        }
    }
    let decoded: Vec<String> = found.iter().map(|p| percent_decode(p)).collect();
    found.extend(decoded);
    found.retain(|p| !p.is_empty());
    found
}

/// `%XX` escapes decoded (invalid ones kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` with every password of `url` replaced by `***`.
fn scrub(text: String, url: &str) -> String {
    passwords(url).iter().fold(text, |text, password| {
        text.replace(password.as_str(), "***")
    })
}

/// Opens a pool on PostgreSQL at `url`; `shown` is the redacted URL for errors.
pub(crate) async fn postgres(url: &str, shown: &str) -> Result<Pool, StoreError> {
    let options = PgConnectOptions::from_str(url).map_err(|e| {
        StoreError::Backend(scrub(
            format!("opening {shown}: not a usable PostgreSQL URL: {e}"),
            url,
        ))
    })?;
    let options = match options.get_application_name() {
        Some(_) => options,
        // So that a DBA sees who holds which connection (pg_stat_activity).
        None => options.application_name("headlock"),
    };
    let connecting = PgPoolOptions::new()
        .max_connections(POSTGRES_POOL_SIZE)
        .acquire_timeout(POSTGRES_ACQUIRE_TIMEOUT)
        // A connection idle for POSTGRES_PING_IDLE or more is pinged before use, so that
        // after a server restart or a fail-over dead connections are found and replaced
        // instead of failing the next statement. sqlx's default pings before every
        // acquire: a round trip to the server for each statement run outside a
        // transaction, some ten per rotation (docs/benchmarks.md, "nodes").
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= POSTGRES_PING_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options);
    let pool = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| {
            StoreError::Backend(format!(
                "opening {shown}: no connection within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| StoreError::Backend(scrub(format!("opening {shown}: {e}"), url)))?;
    Ok(Pool::Postgres(pool))
}

/// Opens a pool on the SQLite file at `path`, creating it (0600) and its directory
/// (0700) when missing.
pub(crate) async fn sqlite(path: &Path) -> Result<Pool, StoreError> {
    let shown = path.display().to_string();
    prepare_file(path)
        .await
        .map_err(|e| StoreError::Backend(format!("creating {shown}: {e}")))?;
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    let pool = SqlitePoolOptions::new()
        .max_connections(SQLITE_POOL_SIZE)
        // A local file needs no liveness ping before every acquire; the ping was a
        // measurable share of each request (docs/benchmarks.md).
        .test_before_acquire(false)
        .acquire_timeout(SQLITE_ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Backend(format!("opening {shown}: {e}")))?;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    bound_wal(pool.clone(), PathBuf::from(wal));
    Ok(Pool::Sqlite(pool))
}

/// Keeps a SQLite database's write-ahead log bounded. SQLite's own checkpoints (PASSIVE,
/// after a commit once the log holds 1,000 pages) copy pages back into the database but
/// restart the log only at a moment when no reader still uses it; under a steady mix of
/// short reads and writes (a backup's two uploads in flight: questions about chunks and
/// records of chunks) such a moment may never come, and the log grew to 1.4 GB during a
/// first backup of 1,000,000 files (docs/benchmarks.md). So a task looks at the log
/// every [`WAL_CHECK_EVERY`] and, above [`WAL_LIMIT`], runs a TRUNCATE checkpoint
/// ([`checkpoint_if_larger`]). It ends when the pool is closed.
fn bound_wal(pool: sqlx::SqlitePool, wal: PathBuf) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(WAL_CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if pool.is_closed() {
                return;
            }
            match checkpoint_if_larger(&pool, &wal, WAL_LIMIT).await {
                Ok(Some(false)) => {
                    tracing::debug!("the SQLite log's readers are still busy; checkpoint later")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "checkpointing the SQLite log"),
            }
        }
    });
}

/// If the log at `wal` is larger than `limit`: copies it into the database and empties
/// it (`PRAGMA wal_checkpoint(TRUNCATE)`), waiting at most [`WAL_CHECKPOINT_WAIT`] for
/// readers of the old log to finish (writers wait meanwhile). `None`: nothing to do;
/// `Some(done)`: tried, and whether it completed.
pub(crate) async fn checkpoint_if_larger(
    pool: &sqlx::SqlitePool,
    wal: &Path,
    limit: u64,
) -> Result<Option<bool>, sqlx::Error> {
    let size = tokio::fs::metadata(wal).await.map_or(0, |m| m.len());
    if size <= limit {
        return Ok(None);
    }
    // A connection of its own, closed afterwards: it waits for locks less long than
    // the pool's connections, and does not go back to the pool like that.
    let mut conn = pool.acquire().await?.detach();
    let checkpoint = async {
        sqlx::query(WAL_CHECKPOINT_WAIT).execute(&mut conn).await?;
        sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut conn)
            .await
    }
    .await;
    let _ = conn.close().await;
    let (busy, _, _) = checkpoint?;
    Ok(Some(busy == 0))
}

/// Creates the parent directory (0700) and the file (0600) when missing; warns when an
/// existing file is readable by others.
async fn prepare_file(path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut dir = tokio::fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        dir.mode(0o700);
        dir.create(parent).await?;
    }
    let mut file = tokio::fs::OpenOptions::new();
    file.write(true).create(true);
    #[cfg(unix)]
    file.mode(0o600);
    let file = file.open(path).await?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().await?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:o}", mode & 0o777),
                "the metadata database is accessible to other users; it holds digest secrets (chmod 600)"
            );
        }
    }
    drop(file);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_postgres_and_sqlite_urls() {
        let pg = "postgres://u:p@db:5432/headlock";
        assert_eq!(target(pg), Ok(Target::Postgres(pg)));
        let pg = "PostgreSQL://db/headlock";
        assert_eq!(target(pg), Ok(Target::Postgres(pg)));
        for (url, path) in [
            (
                "sqlite:///var/lib/headlock/meta.db",
                "/var/lib/headlock/meta.db",
            ),
            ("sqlite://data/meta.db", "data/meta.db"),
            ("sqlite:data/meta.db", "data/meta.db"),
            ("/var/lib/headlock/meta.db", "/var/lib/headlock/meta.db"),
            ("meta.db", "meta.db"),
        ] {
            assert_eq!(
                target(url),
                Ok(Target::Sqlite(PathBuf::from(path))),
                "{url}"
            );
        }
    }

    #[test]
    fn rejects_other_schemes_without_quoting_the_url() {
        for url in [
            "mysql://root:hunter2@db/headlock",
            "sqlite://",
            "sqlite::memory:",
            "sqlite://x.db?mode=ro",
            " ",
        ] {
            match target(url) {
                Err(StoreError::Backend(m)) => assert!(!m.contains("hunter2"), "{m}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn redact_hides_passwords_in_user_part_and_parameters() {
        assert_eq!(
            redact("postgres://headlock:s3cr%40t@db.internal:5432/meta?sslmode=require"),
            "postgres://headlock:***@db.internal:5432/meta?sslmode=require"
        );
        assert_eq!(
            redact("postgresql://db/meta?user=h&password=s3cret&application_name=x"),
            "postgresql://db/meta?user=h&password=***&application_name=x"
        );
        assert_eq!(
            redact("postgres://headlock@db/meta"),
            "postgres://headlock@db/meta"
        );
        // An '@' inside the password: the host is after the last one.
        assert_eq!(redact("postgres://u:a@b@db/m"), "postgres://u:***@db/m");
        assert_eq!(
            redact("postgres://u:pw@db/m#frag"),
            "postgres://u:***@db/m#..."
        );
        assert_eq!(redact("not a url"), "(a database URL)");
    }

    #[test]
    fn scrub_removes_raw_and_decoded_passwords() {
        let url = "postgres://u:p%40ss@db/m?password=other";
        let text = scrub("p%40ss p@ss other fine".to_owned(), url);
        assert_eq!(text, "*** *** *** fine");
    }

    #[tokio::test]
    async fn empties_a_large_sqlite_log_once_its_readers_are_done() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let Pool::Sqlite(pool) = sqlite(&path).await.unwrap() else {
            panic!("not a SQLite pool");
        };
        let wal = dir.path().join("h.db-wal");
        sqlx::raw_sql("CREATE TABLE t (b BLOB)")
            .execute(&pool)
            .await
            .unwrap();
        // A reader holds a snapshot of the log while writes grow it.
        let mut reader = pool.acquire().await.unwrap();
        sqlx::raw_sql("BEGIN; SELECT COUNT(*) FROM t;")
            .execute(&mut *reader)
            .await
            .unwrap();
        for _ in 0..20 {
            sqlx::query("INSERT INTO t VALUES (randomblob(100000))")
                .execute(&pool)
                .await
                .unwrap();
        }
        let size = || std::fs::metadata(&wal).unwrap().len();
        assert!(size() > 1_000_000, "{}", size());
        // Below the limit: nothing to do.
        assert_eq!(
            checkpoint_if_larger(&pool, &wal, 100_000_000)
                .await
                .unwrap(),
            None
        );
        // The reader still uses the log: the checkpoint cannot empty it, and says so
        // (after its short wait, not the pool's 30 s).
        let started = std::time::Instant::now();
        assert_eq!(
            checkpoint_if_larger(&pool, &wal, 100_000).await.unwrap(),
            Some(false)
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        sqlx::raw_sql("COMMIT").execute(&mut *reader).await.unwrap();
        drop(reader);
        assert_eq!(
            checkpoint_if_larger(&pool, &wal, 100_000).await.unwrap(),
            Some(true)
        );
        assert_eq!(size(), 0);
        // The connection that ran it waits for locks as long as the others again.
        for _ in 0..SQLITE_POOL_SIZE {
            let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(timeout as u128, BUSY_TIMEOUT.as_millis());
        }
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows, 20);
    }

    #[tokio::test]
    async fn rejects_unparsable_postgres_url_without_quoting_the_password() {
        let url = "postgres://u:hunter2@db:notaport/m";
        let err = postgres(url, &redact(url)).await.unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("u:***@db"), "{text}");
    }
}
