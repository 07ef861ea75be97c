//! Classifies SQLite's errors into the backend-neutral [`StoreError`] variants.
//!
//! By SQLite result code: a busy or locked database, a full disk, an I/O error, no memory, a file
//! that cannot be opened or a locking protocol failure is [`StoreError::Unavailable`] (nothing was
//! applied; retry). A value that is too big, a constraint violation, a type mismatch, a
//! parameter out of range, an API misuse or a generic SQL error is [`StoreError::Refused`] (the write can never
//! succeed as it is). `SQLITE_CORRUPT` / `SQLITE_NOTADB`, and a row whose columns do not decode,
//! are [`StoreError::Corrupt`]. Any other error of the driver (not of SQLite) is a bug or a
//! refused value, never corruption.

use crate::store::StoreError;
use rusqlite::ErrorCode;

/// How `err` should be reported; `table` and `key` name the row being read, for corruption.
pub(crate) fn classify(err: &rusqlite::Error, table: &'static str, key: &str) -> StoreError {
    match err {
        rusqlite::Error::SqliteFailure(code, _) => match code.code {
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => StoreError::Corrupt {
                table,
                key: key.to_string(),
                reason: err.to_string(),
            },
            ErrorCode::TooBig
            | ErrorCode::ConstraintViolation
            | ErrorCode::TypeMismatch
            | ErrorCode::ApiMisuse
            | ErrorCode::ParameterOutOfRange
            | ErrorCode::NoLargeFileSupport
            | ErrorCode::AuthorizationForStatementDenied
            // SQLITE_ERROR, SQLite's generic code: an SQL error such as a missing table or
            // column (a schema this release does not expect), which no retry can mend.
            | ErrorCode::Unknown => StoreError::Refused(err.to_string()),
            // Busy, locked, full, I/O, no memory, cannot open, protocol, read-only, interrupted,
            // aborted, schema changed, permission, internal: the store cannot take the write
            // now.
            _ => StoreError::Unavailable(err.to_string()),
        },
        // A row whose columns do not decode as the schema says.
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::Utf8Error(_) => StoreError::Corrupt {
            table,
            key: key.to_string(),
            reason: err.to_string(),
        },
        // Misuse of the driver or an unbindable value: retrying the same write cannot help.
        _ => StoreError::Refused(err.to_string()),
    }
}

impl From<rusqlite::Error> for StoreError {
    /// Classifies an error that is not about one identifiable row (by SQLite code; see the
    /// module documentation).
    fn from(err: rusqlite::Error) -> Self {
        classify(&err, "database", "")
    }
}

/// Extension for naming the row a failed read was about.
pub(crate) trait SqlContext<T> {
    /// Classifies the error, naming `table` and `key` if it is corruption.
    fn at(self, table: &'static str, key: &str) -> Result<T, StoreError>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn at(self, table: &'static str, key: &str) -> Result<T, StoreError> {
        self.map_err(|err| classify(&err, table, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ErrorClass;
    use rusqlite::ffi;

    fn failure(code: std::ffi::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn sqlite_codes_map_to_classes() {
        let class = |code| StoreError::from(failure(code)).class();
        for transient in [
            ffi::SQLITE_BUSY,
            ffi::SQLITE_LOCKED,
            ffi::SQLITE_FULL,
            ffi::SQLITE_IOERR,
            ffi::SQLITE_NOMEM,
            ffi::SQLITE_CANTOPEN,
            ffi::SQLITE_PROTOCOL,
        ] {
            assert_eq!(class(transient), ErrorClass::Transient, "code {transient}");
        }
        for fatal in [
            ffi::SQLITE_TOOBIG,
            ffi::SQLITE_CONSTRAINT,
            ffi::SQLITE_RANGE,
            ffi::SQLITE_MISMATCH,
            ffi::SQLITE_MISUSE,
        ] {
            assert_eq!(class(fatal), ErrorClass::Fatal, "code {fatal}");
        }
        for corrupt in [ffi::SQLITE_CORRUPT, ffi::SQLITE_NOTADB] {
            assert_eq!(class(corrupt), ErrorClass::Corrupt, "code {corrupt}");
        }
    }

    #[test]
    fn only_row_decode_errors_of_the_driver_are_corruption() {
        let decode = rusqlite::Error::InvalidColumnType(0, "x".into(), rusqlite::types::Type::Blob);
        assert!(matches!(
            classify(&decode, "messages", "7"),
            StoreError::Corrupt { table: "messages", ref key, .. } if key == "7"
        ));
        assert_eq!(
            StoreError::from(rusqlite::Error::InvalidParameterCount(1, 2)).class(),
            ErrorClass::Fatal
        );
        assert_eq!(
            StoreError::from(rusqlite::Error::QueryReturnedNoRows).class(),
            ErrorClass::Fatal
        );
    }
}
