//! Large values (payloads and the JSON of events) written into their rows without copies.
//!
//! A value bound to a statement is copied twice before it reaches a page: by the bind and by
//! the record the statement builds. For a 64 MiB payload that is 128 MiB of memory for a moment,
//! on top of the copies the engine and the user's code already hold. A value of
//! [`LARGE_VALUE_BYTES`] or more is therefore inserted as a zero-filled blob of its exact
//! length, which costs no memory, and then written in place through SQLite's incremental blob
//! I/O, page by page. Such a column then holds a BLOB of UTF-8 JSON instead of TEXT:
//! [`JsonText`] reads either, and `sqlite3` shows both as text.

use crate::store::StoreError;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, MAIN_DB, ToSql};
use serde::Serialize;
use std::io::{Seek, Write};

/// Values at least this long are written in place. Small enough that a large value never
/// crowds a B-tree's pages, large enough that no ordinary one pays the extra blob write.
pub(super) const LARGE_VALUE_BYTES: usize = 64 * 1024;

/// A JSON text to insert: bound as text when small, as a zero-filled blob of its length when
/// large (then written with [`fill`] once the row exists).
pub(super) struct JsonParam<'a>(pub(super) &'a str);

impl ToSql for JsonParam<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        if self.0.len() < LARGE_VALUE_BYTES {
            return Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.0.as_bytes())));
        }
        let len = i32::try_from(self.0.len())
            .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
        Ok(ToSqlOutput::ZeroBlob(len))
    }
}

/// Writes `json` into the zero-filled blob [`JsonParam`] inserted at `table`'s row `rowid`;
/// nothing to do for a small one.
pub(super) fn fill(
    conn: &Connection,
    table: &'static str,
    column: &'static str,
    rowid: i64,
    json: &str,
) -> Result<(), StoreError> {
    if json.len() < LARGE_VALUE_BYTES {
        return Ok(());
    }
    let mut blob = conn.blob_open(MAIN_DB, table, column, rowid, false)?;
    blob.write_at(json.as_bytes(), 0)?;
    blob.close()?;
    Ok(())
}

/// [`fill`] for the row the connection inserted last (a table whose rows get no explicit id).
pub(super) fn fill_last_insert(
    conn: &Connection,
    table: &'static str,
    column: &'static str,
    json: &str,
) -> Result<(), StoreError> {
    fill(conn, table, column, conn.last_insert_rowid(), json)
}

/// A serializable value to insert: its JSON when it is small, or its exact length once it
/// reaches [`LARGE_VALUE_BYTES`] (serializing stops at that mark, so a large value is never
/// held whole in memory here; [`stream`] writes it into the row).
pub(super) enum Json {
    /// The whole JSON text.
    Small(String),
    /// The length of the JSON text, to reserve as a zero-filled blob.
    Large(usize),
}

impl Json {
    pub(super) fn of<T: Serialize + ?Sized>(value: &T) -> Result<Json, StoreError> {
        let mut up_to = UpTo {
            bytes: Vec::with_capacity(256),
            reached: false,
        };
        match serde_json::to_writer(&mut up_to, value) {
            Ok(()) => String::from_utf8(up_to.bytes)
                .map(Json::Small)
                .map_err(|err| refused(format!("a value serialized to invalid UTF-8: {err}"))),
            // Stopped by the mark, not by an error of the value's own.
            Err(_) if up_to.reached => {
                let mut counted = Counter(0);
                serde_json::to_writer(&mut counted, value).map_err(not_serializable)?;
                Ok(Json::Large(counted.0))
            }
            Err(err) => Err(not_serializable(err)),
        }
    }

    /// The value to bind: the text, or a zero-filled blob of the text's length.
    pub(super) fn param(&self) -> Result<ToSqlOutput<'_>, StoreError> {
        match self {
            Json::Small(text) => Ok(ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes()))),
            Json::Large(len) => i32::try_from(*len)
                .map(ToSqlOutput::ZeroBlob)
                .map_err(|_| refused(format!("a value of {len} bytes is over SQLite's limit"))),
        }
    }
}

/// Serializes `value` again, straight into the zero-filled blob reserved for it by
/// [`Json::param`] at `table`'s row `rowid`; nothing to do for a small one.
pub(super) fn stream<T: Serialize + ?Sized>(
    conn: &Connection,
    table: &'static str,
    column: &'static str,
    rowid: i64,
    json: &Json,
    value: &T,
) -> Result<(), StoreError> {
    let Json::Large(len) = json else {
        return Ok(());
    };
    let blob = conn.blob_open(MAIN_DB, table, column, rowid, false)?;
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, blob);
    serde_json::to_writer(&mut out, value).map_err(|err| {
        if err.is_io() {
            from_blob_io(std::io::Error::from(err), table)
        } else {
            not_serializable(err)
        }
    })?;
    let mut blob = out
        .into_inner()
        .map_err(|err| from_blob_io(err.into_error(), table))?;
    // The blob cannot grow, and a shorter second pass would leave zeros behind: either way the
    // write is refused whole rather than stored cut short.
    let written = blob
        .stream_position()
        .map_err(|err| from_blob_io(err, table))?;
    if written != *len as u64 {
        return Err(refused(format!(
            "a value serialized to {len} bytes, then to {written} bytes"
        )));
    }
    blob.close()?;
    Ok(())
}

/// Reads the large value in `table`'s `column` at row `rowid` (the row `key` names, for
/// errors) straight from its blob into one buffer (reading it as a column would copy it twice
/// more: SQLite's own copy, then ours).
pub(super) fn read(
    conn: &Connection,
    table: &'static str,
    column: &'static str,
    rowid: i64,
    key: &str,
) -> Result<String, StoreError> {
    let sqlite = |err: rusqlite::Error| super::error::classify(&err, table, key);
    let blob = conn
        .blob_open(MAIN_DB, table, column, rowid, true)
        .map_err(sqlite)?;
    let mut bytes = vec![0; blob.len()];
    blob.read_at_exact(&mut bytes, 0).map_err(sqlite)?;
    blob.close().map_err(sqlite)?;
    String::from_utf8(bytes).map_err(|err| StoreError::Corrupt {
        table,
        key: key.to_string(),
        reason: format!("{column} is not UTF-8: {err}"),
    })
}

/// A JSON column read back: TEXT as written for a small value, or a BLOB of UTF-8 for a
/// large one.
pub(super) struct JsonText(pub(super) String);

impl FromSql for JsonText {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value {
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => std::str::from_utf8(bytes)
                .map(|text| JsonText(text.to_string()))
                .map_err(|err| FromSqlError::Other(Box::new(err))),
            _ => Err(FromSqlError::InvalidType),
        }
    }
}

/// A writer that takes bytes up to [`LARGE_VALUE_BYTES`], then refuses (and says so).
struct UpTo {
    bytes: Vec<u8>,
    reached: bool,
}

impl Write for UpTo {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.write_all(bytes).map(|()| bytes.len())
    }

    // What serde_json calls, for every fragment: inlined, so that the small value's path costs
    // what serializing into a plain `Vec` costs.
    #[inline]
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.bytes.len() + bytes.len() >= LARGE_VALUE_BYTES {
            self.reached = true;
            return Err(large());
        }
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cold]
fn large() -> std::io::Error {
    std::io::Error::other("a large value")
}

/// A writer that only counts.
struct Counter(usize);

impl Write for Counter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An error of a blob write: SQLite's own (classified as any other), or a blob too short for
/// what was written into it.
fn from_blob_io(err: std::io::Error, table: &'static str) -> StoreError {
    match err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rusqlite::Error>())
    {
        Some(sqlite) => super::error::classify(sqlite, table, ""),
        None => refused(format!("a large value could not be written whole: {err}")),
    }
}

fn not_serializable(err: serde_json::Error) -> StoreError {
    refused(format!("a value of the write does not serialize: {err}"))
}

fn refused(reason: String) -> StoreError {
    StoreError::Refused(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    fn table() -> Connection {
        let conn = Connection::open_in_memory().expect("opens");
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v NOT NULL)")
            .expect("creates");
        conn
    }

    #[test]
    fn a_large_value_is_a_blob_written_in_place_and_read_back_whole() {
        let conn = table();
        let value = "x".repeat(LARGE_VALUE_BYTES * 3);
        let json = Json::of(&value).expect("serializes");
        assert!(matches!(json, Json::Large(len) if len == value.len() + 2));
        conn.execute(
            "INSERT INTO t (id, v) VALUES (1, ?1)",
            params![json.param().expect("binds")],
        )
        .expect("inserts");
        stream(&conn, "t", "v", 1, &json, &value).expect("streams");
        let kind: String = conn
            .query_row("SELECT typeof(v) FROM t", [], |row| row.get(0))
            .expect("reads");
        assert_eq!(kind, "blob");
        let back = read(&conn, "t", "v", 1, "1").expect("reads");
        assert_eq!(back, format!("\"{value}\""));
        let JsonText(text) = conn
            .query_row("SELECT v FROM t", [], |row| row.get(0))
            .expect("reads as a column");
        assert_eq!(text, back);
    }

    #[test]
    fn a_small_value_stays_text() {
        let conn = table();
        let json = Json::of("small").expect("serializes");
        let Json::Small(text) = &json else {
            panic!("a small value");
        };
        conn.execute(
            "INSERT INTO t (id, v) VALUES (1, ?1)",
            params![JsonParam(text)],
        )
        .expect("inserts");
        fill(&conn, "t", "v", 1, text).expect("nothing to fill");
        let kind: String = conn
            .query_row("SELECT typeof(v) FROM t", [], |row| row.get(0))
            .expect("reads");
        assert_eq!(kind, "text");
    }

    /// A blob reserved for another length is refused, never stored cut short or padded with
    /// zeros: the caller's savepoint then undoes the row.
    #[test]
    fn a_value_that_does_not_fit_its_blob_is_refused() {
        let conn = table();
        let value = "y".repeat(LARGE_VALUE_BYTES);
        for reserved in [value.len() + 1, value.len() + 3] {
            let json = Json::Large(reserved);
            conn.execute(
                "INSERT OR REPLACE INTO t (id, v) VALUES (1, ?1)",
                params![json.param().expect("binds")],
            )
            .expect("inserts");
            let err = stream(&conn, "t", "v", 1, &json, &value).expect_err("does not fit");
            assert!(matches!(err, StoreError::Refused(_)), "{err:?}");
        }
    }
}
