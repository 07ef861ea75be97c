//! Classifies PostgreSQL's errors into the backend-neutral [`StoreError`] variants, by SQLSTATE.
//!
//! Serialization failures and deadlocks (class 40), lost or refused connections (class 08),
//! insufficient resources (53), an operator intervention such as a shutdown or a cancelled
//! statement (57), a lock not available (55P03), and an error without a SQLSTATE (the driver
//! lost its connection, an I/O error) are [`StoreError::Unavailable`]: nothing was applied and
//! the same write may succeed later. Data corruption reported by the server (XX001, XX002) is
//! [`StoreError::Corrupt`]. Everything else (a constraint, a value out of range, a text with a
//! NUL character, a missing table) is [`StoreError::Refused`]: the write can never succeed as it
//! is.

use crate::store::StoreError;
use tokio_postgres::error::SqlState;

/// How `err` should be reported; `table` and `key` name the row being read, for corruption.
pub(crate) fn classify(err: &tokio_postgres::Error, table: &'static str, key: &str) -> StoreError {
    let Some(code) = err.code() else {
        // No SQLSTATE: the connection is gone or broken, or a value failed to convert. A
        // conversion is reported by the row readers themselves (`col`), so this is the wire.
        return StoreError::Unavailable(err.to_string());
    };
    classify_code(code, err.to_string(), table, key)
}

/// The class of a SQLSTATE (split out so that it can be tested without a server).
pub(crate) fn classify_code(
    code: &SqlState,
    message: String,
    table: &'static str,
    key: &str,
) -> StoreError {
    let state = code.code();
    if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED {
        return StoreError::Corrupt {
            table,
            key: key.to_string(),
            reason: message,
        };
    }
    if *code == SqlState::LOCK_NOT_AVAILABLE
        || state.starts_with("40")
        || state.starts_with("08")
        || state.starts_with("53")
        || state.starts_with("57")
        || state.starts_with("58")
    {
        return StoreError::Unavailable(message);
    }
    StoreError::Refused(message)
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        classify(&err, "database", "")
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        match err {
            deadpool_postgres::PoolError::Backend(err) => err.into(),
            // Timeouts, a closed pool, a failed recycle hook: no connection now.
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ErrorClass;

    fn class(code: SqlState) -> ErrorClass {
        classify_code(&code, "x".into(), "t", "k").class()
    }

    #[test]
    fn sqlstates_map_to_error_classes() {
        assert_eq!(
            class(SqlState::T_R_SERIALIZATION_FAILURE),
            ErrorClass::Transient
        );
        assert_eq!(
            class(SqlState::T_R_DEADLOCK_DETECTED),
            ErrorClass::Transient
        );
        assert_eq!(class(SqlState::CONNECTION_FAILURE), ErrorClass::Transient);
        assert_eq!(class(SqlState::ADMIN_SHUTDOWN), ErrorClass::Transient);
        assert_eq!(class(SqlState::CRASH_SHUTDOWN), ErrorClass::Transient);
        assert_eq!(class(SqlState::CANNOT_CONNECT_NOW), ErrorClass::Transient);
        assert_eq!(class(SqlState::DISK_FULL), ErrorClass::Transient);
        assert_eq!(class(SqlState::LOCK_NOT_AVAILABLE), ErrorClass::Transient);
        assert_eq!(class(SqlState::DATA_CORRUPTED), ErrorClass::Corrupt);
        assert_eq!(class(SqlState::UNIQUE_VIOLATION), ErrorClass::Fatal);
        assert_eq!(
            class(SqlState::CHARACTER_NOT_IN_REPERTOIRE),
            ErrorClass::Fatal
        );
        assert_eq!(class(SqlState::PROGRAM_LIMIT_EXCEEDED), ErrorClass::Fatal);
        assert_eq!(class(SqlState::UNDEFINED_TABLE), ErrorClass::Fatal);
    }
}
