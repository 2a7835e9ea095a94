//! From sqlx errors to [`StoreError`], saying which operation failed.
//!
//! Only the database's own message goes into the text (SQLite: "UNIQUE constraint
//! failed: users.username"; PostgreSQL: "duplicate key value violates unique constraint
//! ..." without its DETAIL line, which quotes the key), never bound values, so no secret
//! can reach a log through an error.

use headlock_core::{StoreConflict as Conflict, StoreError};
use sqlx::error::ErrorKind;

/// Maps a database error met while doing `op`: unique violations are `Conflict` (of a rule
/// the caller did not name, [`Conflict::Other`]: see [`ctx_unique`]), foreign
/// key violations (a referenced group or cluster is missing) are `NotFound`, a
/// transaction PostgreSQL aborted in favour of another is `Aborted` (the one error
/// [`StoreError::is_transient`] accepts, so the store runs it again), anything else is
/// `Backend`.
pub(crate) fn classify(op: &str, e: sqlx::Error) -> StoreError {
    if is_transient(&e) {
        return StoreError::Aborted(format!("{op}: {e}"));
    }
    if let sqlx::Error::Database(db) = &e {
        match db.kind() {
            ErrorKind::UniqueViolation => {
                return Conflict::Other(format!("{op}: {}", db.message())).into();
            }
            ErrorKind::ForeignKeyViolation => {
                return StoreError::NotFound(format!(
                    "{op}: a group or cluster it refers to does not exist"
                ));
            }
            _ => {}
        }
    }
    StoreError::Backend(format!("{op}: {e}"))
}

/// A closure for `map_err` that classifies errors of `op`.
pub(crate) fn ctx(op: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| classify(op, e)
}

/// A closure for `map_err` on a statement that can break one uniqueness rule only:
/// a unique violation is `rule`, anything else is classified as [`classify`] does.
pub(crate) fn ctx_unique(op: &str, rule: Conflict) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| {
        if is_violation(&e, ErrorKind::UniqueViolation) {
            rule.into()
        } else {
            classify(op, e)
        }
    }
}

/// Whether `e` is the database refusing a statement for `kind` (a unique or foreign key
/// violation), so a caller can say which record was at fault.
pub(crate) fn is_violation(e: &sqlx::Error, kind: ErrorKind) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == kind)
}

/// SQLSTATE of PostgreSQL's `serialization_failure`.
const SERIALIZATION_FAILURE: &str = "40001";

/// SQLSTATE of PostgreSQL's `deadlock_detected`.
const DEADLOCK_DETECTED: &str = "40P01";

/// Whether PostgreSQL aborted the transaction as a deadlock victim or a serialization
/// failure: it rolled the whole transaction back, and running it again may succeed.
/// (SQLite's codes are numbers, never these.)
fn is_transient(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Database(db)
            if matches!(db.code().as_deref(), Some(SERIALIZATION_FAILURE | DEADLOCK_DETECTED))
    )
}
