//! The schema migrations, embedded in the binary.
//!
//! sqlx's `migrate!` macro needs the `macros` feature, which this workspace leaves off;
//! instead the SQL files are embedded with `include_str!` and handed to sqlx's own
//! [`Migrator`] through a [`MigrationSource`]. So the bookkeeping is sqlx's: the
//! `_sqlx_migrations` table, a SHA-384 checksum per applied migration (an edited
//! migration is refused), and an error when the database has a migration this binary
//! does not know (a newer Headlock wrote it).
//!
//! Every file runs unchanged on SQLite and on PostgreSQL (so one checksum serves both),
//! each in a transaction of its own. On PostgreSQL sqlx holds an advisory lock while it
//! migrates, so nodes that start together against one database do not race.
//!
//! To add a migration: write `migrations/NNNN_what.sql` in the SQL that SQLite and
//! PostgreSQL share, and append it to [`MIGRATIONS`].

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// `(version, description, sql)` of every migration, in order.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (
        2,
        "snapshots",
        include_str!("../migrations/0002_snapshots.sql"),
    ),
    (3, "leases", include_str!("../migrations/0003_leases.sql")),
    (
        4,
        "key lifecycle",
        include_str!("../migrations/0004_key_lifecycle.sql"),
    ),
    (
        5,
        "reencryption",
        include_str!("../migrations/0005_reencryption.sql"),
    ),
    (
        6,
        "pack references",
        include_str!("../migrations/0006_pack_references.sql"),
    ),
];

/// The schema version this build writes: the last migration's version.
pub const LATEST_SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// [`MIGRATIONS`] as a sqlx migration source.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The migrator for [`MIGRATIONS`].
pub(crate) async fn migrator() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded).await
}
