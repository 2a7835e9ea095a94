//! sqlx's SQLite and PostgreSQL drivers behind one small interface, so that the store
//! is written once and chooses its database at run time.
//!
//! [`Pool`], [`Tx`] and [`Row`] are enums of the two drivers' own types; a statement is
//! a [`Stmt`] (its SQL, from `queries.rs`, and its arguments as [`Arg`]s) run on a pool
//! or a transaction ([`On`]). Each operation matches on the driver once, here, and hands
//! the statement to that driver's own `sqlx::query`: a statement whose text differs
//! between the dialects is a [`Sql::Dialect`], and the driver picks its own text.
//!
//! # Why not sqlx's `Any` driver, or a macro around every method
//!
//! * `Any` was the first candidate: one pool type, one row type. Three things rule it
//!   out for this store. (1) It types a value by what the column holds, not by what it
//!   was declared as, so a SQLite `BOOLEAN` column (stored as an integer) reads back as
//!   `BigInt` and `bool` refuses to decode it (`sqlx-core` 0.8.6, `AnyRow::map_from`:
//!   "Map based on the _value_ type info"); every boolean read would need a
//!   per-dialect work-around. (2) It connects from a URL only, and SQLite's URL has no
//!   place for `journal_mode`, `synchronous` or `busy_timeout`, which the SQLite store's
//!   durability and concurrency rest on; they would move to `after_connect` pragmas, and
//!   a path would go through URL encoding. (3) It copies every row into owned values
//!   before the store reads it.
//! * An enum of pools with a dispatch macro around each store method compiles every
//!   method body twice and needs every helper that takes a transaction (`append_audit_in`,
//!   `update_config_in`, ...) to be either a macro or generic over sqlx's `Database`,
//!   `Executor` and `Encode` bounds, which async-trait's `Send` futures make brittle; and
//!   rustfmt does not format code inside a macro body.
//! * Dispatching per statement, as here, keeps the store's methods plain, non-generic,
//!   rustfmt'd code, keeps each driver's native options and rows, and puts every place
//!   that knows there are two databases in this module (one `match` per operation, in
//!   the `dispatch!` macro; the rest is conversions). The cost is an argument vector
//!   per statement (`Vec<Arg>`, borrowing the caller's strings), which is noise next to
//!   a round trip.
//!
//! Errors are sqlx's own; `error.rs` turns them into [`headlock_core::StoreError`]s
//! (a transaction PostgreSQL aborted as a deadlock victim or a serialization failure
//! becomes `Aborted`, which the store runs again).

use std::borrow::Cow;

use headlock_core::KmipUid;
use sqlx::database::HasStatementCache;
use sqlx::postgres::{PgPool, PgRow, Postgres};
use sqlx::sqlite::{Sqlite, SqlitePool, SqliteRow};
use sqlx::{ColumnIndex, Database, Decode, Encode, Row as _, Type};

/// Which database a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// SQLite: one file, one writer at a time.
    Sqlite,
    /// PostgreSQL: shared by several nodes.
    Postgres,
}

impl Backend {
    /// The name [`crate::SqlStore::backend`] reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        }
    }
}

/// The text of a statement from `queries.rs`: the same in both dialects, or one per
/// dialect (a `DIALECT:` statement).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sql {
    /// One text for both.
    Shared(&'static str),
    /// SQLite's text and PostgreSQL's.
    Dialect {
        /// For SQLite.
        sqlite: &'static str,
        /// For PostgreSQL.
        postgres: &'static str,
    },
}

impl Sql {
    /// The text for `backend`.
    pub(crate) fn text(self, backend: Backend) -> &'static str {
        match (self, backend) {
            (Sql::Shared(sql), _) => sql,
            (Sql::Dialect { sqlite, .. }, Backend::Sqlite) => sqlite,
            (Sql::Dialect { postgres, .. }, Backend::Postgres) => postgres,
        }
    }
}

/// A statement's text: from `queries.rs`, or built at run time (multi-row inserts, which
/// are the same in both dialects).
#[derive(Debug, Clone, Copy)]
pub(crate) enum SqlText<'a> {
    /// A statement of `queries.rs`.
    Fixed(Sql),
    /// Built for this call.
    Built(&'a str),
}

impl SqlText<'_> {
    fn text(&self, backend: Backend) -> &str {
        match self {
            SqlText::Fixed(sql) => sql.text(backend),
            SqlText::Built(sql) => sql,
        }
    }

    /// The text for SQLite. A built statement (a multi-row insert, an `IN` list: up to
    /// thousands of parameters, each `$n` once, in order) gets anonymous `?`
    /// parameters, bound in the same order: sqlx asks SQLite for every parameter's
    /// name, and SQLite finds a name by walking the list of named ones, so with `$n`
    /// names binding a statement costs the square of its parameters (a fifth of a
    /// million-file commit's CPU went there).
    fn sqlite_text(&self) -> Cow<'_, str> {
        match self {
            SqlText::Fixed(sql) => Cow::Borrowed(sql.text(Backend::Sqlite)),
            SqlText::Built(sql) => Cow::Owned(anonymous_parameters(sql)),
        }
    }
}

/// `sql` with every `$<digits>` replaced by `?` (for statements whose `$n` appear once
/// each, in increasing order, outside any string literal: the built ones).
fn anonymous_parameters(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

impl From<&'static str> for SqlText<'_> {
    fn from(sql: &'static str) -> Self {
        SqlText::Fixed(Sql::Shared(sql))
    }
}

impl From<Sql> for SqlText<'_> {
    fn from(sql: Sql) -> Self {
        SqlText::Fixed(sql)
    }
}

impl<'a> From<&'a String> for SqlText<'a> {
    fn from(sql: &'a String) -> Self {
        SqlText::Built(sql)
    }
}

/// One bound parameter, in the types the schema uses (TEXT, BIGINT, BOOLEAN).
#[derive(Debug)]
pub(crate) enum Arg<'a> {
    /// TEXT.
    Text(Cow<'a, str>),
    /// TEXT or NULL.
    OptText(Option<Cow<'a, str>>),
    /// BIGINT.
    Int(i64),
    /// BIGINT or NULL.
    OptInt(Option<i64>),
    /// BOOLEAN.
    Bool(bool),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Cow::Borrowed(v))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Cow::Borrowed(v))
    }
}

impl From<String> for Arg<'_> {
    fn from(v: String) -> Self {
        Arg::Text(Cow::Owned(v))
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::OptText(v.as_deref().map(Cow::Borrowed))
    }
}

impl From<Option<String>> for Arg<'_> {
    fn from(v: Option<String>) -> Self {
        Arg::OptText(v.map(Cow::Owned))
    }
}

/// A KMIP uid is TEXT, as the server spelled it.
impl<'a> From<&'a KmipUid> for Arg<'a> {
    fn from(v: &'a KmipUid) -> Self {
        Arg::Text(Cow::Borrowed(v.as_str()))
    }
}

impl<'a> From<&'a Option<KmipUid>> for Arg<'a> {
    fn from(v: &'a Option<KmipUid>) -> Self {
        Arg::OptText(v.as_ref().map(|uid| Cow::Borrowed(uid.as_str())))
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::OptInt(v)
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

/// A pool of connections to one database.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    /// SQLite.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

impl Pool {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Starts a transaction with `begin` (a `BEGIN` statement of `queries.rs`).
    pub(crate) async fn begin(&self, begin: Sql) -> Result<Tx, sqlx::Error> {
        let sql = begin.text(self.backend());
        let inner = match self {
            Pool::Sqlite(pool) => pool.begin_with(sql).await.map(TxInner::Sqlite),
            Pool::Postgres(pool) => pool.begin_with(sql).await.map(TxInner::Postgres),
        };
        inner.map(|inner| Tx { inner })
    }

    /// Closes every connection, waiting for those in use.
    pub(crate) async fn close(&self) {
        match self {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

/// An open transaction; rolled back when dropped uncommitted.
#[derive(Debug)]
pub(crate) struct Tx {
    inner: TxInner,
}

#[derive(Debug)]
enum TxInner {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self.inner {
            TxInner::Sqlite(tx) => tx.commit().await,
            TxInner::Postgres(tx) => tx.commit().await,
        }
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        match self.inner {
            TxInner::Sqlite(tx) => tx.rollback().await,
            TxInner::Postgres(tx) => tx.rollback().await,
        }
    }
}

/// Where a statement runs.
pub(crate) enum On<'c> {
    /// On any connection of the pool, on its own.
    Pool(&'c Pool),
    /// Inside a transaction.
    Tx(&'c mut Tx),
}

impl<'c> From<&'c Pool> for On<'c> {
    fn from(pool: &'c Pool) -> Self {
        On::Pool(pool)
    }
}

impl<'c> From<&'c mut Tx> for On<'c> {
    fn from(tx: &'c mut Tx) -> Self {
        On::Tx(tx)
    }
}

/// A row of either driver.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

/// A column type both drivers decode.
pub(crate) trait Column:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

impl<T> Column for T where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

impl Row {
    /// The value of column `name`.
    pub(crate) fn try_get<T: Column>(&self, name: &str) -> Result<T, sqlx::Error> {
        match self {
            Row::Sqlite(row) => row.try_get(name),
            Row::Postgres(row) => row.try_get(name),
        }
    }

    /// The value of the first column.
    pub(crate) fn first<T: Column>(&self) -> Result<T, sqlx::Error> {
        fn at<R: sqlx::Row, T>(row: &R) -> Result<T, sqlx::Error>
        where
            usize: ColumnIndex<R>,
            T: for<'r> Decode<'r, R::Database> + Type<R::Database>,
        {
            row.try_get(0usize)
        }
        match self {
            Row::Sqlite(row) => at(row),
            Row::Postgres(row) => at(row),
        }
    }
}

/// A statement and its arguments, bound in order to `$1`, `$2`, ...
pub(crate) struct Stmt<'a> {
    sql: SqlText<'a>,
    args: Vec<Arg<'a>>,
    persistent: bool,
}

/// A statement of `sql`, with no arguments bound yet.
pub(crate) fn stmt<'a>(sql: impl Into<SqlText<'a>>) -> Stmt<'a> {
    Stmt {
        sql: sql.into(),
        args: Vec::new(),
        persistent: true,
    }
}

/// The driver's own query for a statement.
fn build<'q, DB>(
    sql: &'q str,
    args: Vec<Arg<'q>>,
    persistent: bool,
) -> sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database + HasStatementCache,
    Cow<'q, str>: Encode<'q, DB> + Type<DB>,
    Option<Cow<'q, str>>: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
{
    let mut query = sqlx::query::<DB>(sql).persistent(persistent);
    for arg in args {
        query = match arg {
            Arg::Text(v) => query.bind(v),
            Arg::OptText(v) => query.bind(v),
            Arg::Int(v) => query.bind(v),
            Arg::OptInt(v) => query.bind(v),
            Arg::Bool(v) => query.bind(v),
        };
    }
    query
}

/// Runs `$stmt` on `$on` with the driver's query bound to `$query`, its executor to
/// `$exec` and its row constructor to `$row`.
macro_rules! dispatch {
    ($stmt:expr, $on:expr, |$query:ident, $exec:ident, $row:ident| $body:expr) => {{
        let Stmt {
            sql,
            args,
            persistent,
        } = $stmt;
        match $on {
            On::Pool(Pool::Sqlite(pool)) => {
                let text = sql.sqlite_text();
                let $query = build::<Sqlite>(&text, args, persistent);
                let $exec = pool;
                let $row = Row::Sqlite;
                $body
            }
            On::Pool(Pool::Postgres(pool)) => {
                let $query = build::<Postgres>(sql.text(Backend::Postgres), args, persistent);
                let $exec = pool;
                let $row = Row::Postgres;
                $body
            }
            On::Tx(tx) => match &mut tx.inner {
                TxInner::Sqlite(conn) => {
                    let text = sql.sqlite_text();
                    let $query = build::<Sqlite>(&text, args, persistent);
                    let $exec = &mut **conn;
                    let $row = Row::Sqlite;
                    $body
                }
                TxInner::Postgres(conn) => {
                    let $query = build::<Postgres>(sql.text(Backend::Postgres), args, persistent);
                    let $exec = &mut **conn;
                    let $row = Row::Postgres;
                    $body
                }
            },
        }
    }};
}

impl<'a> Stmt<'a> {
    /// Binds the next parameter.
    pub(crate) fn bind(mut self, arg: impl Into<Arg<'a>>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Whether the driver keeps the prepared statement for reuse (default: yes). Off for
    /// built statements of unusual sizes, which would crowd the statement cache.
    pub(crate) fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    /// Runs it; the number of rows it changed.
    pub(crate) async fn execute(self, on: impl Into<On<'_>>) -> Result<u64, sqlx::Error> {
        dispatch!(self, on.into(), |query, exec, _row| query
            .execute(exec)
            .await
            .map(|done| done.rows_affected()))
    }

    /// The row it returns, if any.
    pub(crate) async fn fetch_optional(
        self,
        on: impl Into<On<'_>>,
    ) -> Result<Option<Row>, sqlx::Error> {
        dispatch!(self, on.into(), |query, exec, row| query
            .fetch_optional(exec)
            .await
            .map(|found| found.map(row)))
    }

    /// The one row it returns (`RowNotFound` if none).
    pub(crate) async fn fetch_one(self, on: impl Into<On<'_>>) -> Result<Row, sqlx::Error> {
        dispatch!(self, on.into(), |query, exec, row| query
            .fetch_one(exec)
            .await
            .map(row))
    }

    /// Every row it returns.
    pub(crate) async fn fetch_all(self, on: impl Into<On<'_>>) -> Result<Vec<Row>, sqlx::Error> {
        dispatch!(self, on.into(), |query, exec, row| query
            .fetch_all(exec)
            .await
            .map(|found| found.into_iter().map(row).collect()))
    }

    /// Every row it returns, each turned into a `T` by `f` as it arrives: the driver's
    /// rows (column values as text, about 2 KB each) are never all held, only the
    /// `T`s (what a snapshot's chunk locations need, at a million chunks).
    pub(crate) async fn fetch_map<T>(
        self,
        on: impl Into<On<'_>>,
        mut f: impl FnMut(&Row) -> Result<T, sqlx::Error>,
    ) -> Result<Vec<T>, sqlx::Error> {
        use futures_util::TryStreamExt;
        dispatch!(self, on.into(), |query, exec, row| {
            let mut rows = query.fetch(exec);
            let mut out = Vec::new();
            while let Some(r) = rows.try_next().await? {
                out.push(f(&row(r))?);
            }
            Ok(out)
        })
    }

    /// The first column of the one row it returns (a count, a version).
    pub(crate) async fn fetch_i64(self, on: impl Into<On<'_>>) -> Result<i64, sqlx::Error> {
        self.fetch_one(on).await?.first()
    }

    /// The first column of every row it returns, as text (ids).
    pub(crate) async fn fetch_texts(
        self,
        on: impl Into<On<'_>>,
    ) -> Result<Vec<String>, sqlx::Error> {
        self.fetch_all(on)
            .await?
            .iter()
            .map(Row::first::<String>)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::anonymous_parameters;
    use crate::queries as q;

    #[test]
    fn built_statements_get_anonymous_parameters_for_sqlite() {
        assert_eq!(
            anonymous_parameters(&q::insert_references(2)),
            "INSERT INTO snapshot_packs (snapshot_id, cluster_id, pack_id) VALUES (?, ?, ?), (?, ?, ?)"
        );
        let in_list = anonymous_parameters(&q::chunk_locations(12));
        assert!(
            in_list
                .ends_with("cluster_id = ? AND chunk_id IN (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            "{in_list}"
        );
        assert!(!in_list.contains('$'));
    }
}
