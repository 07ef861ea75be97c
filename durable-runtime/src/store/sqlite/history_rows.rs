//! History rows, written and read back, with large events kept out of the history B-tree.
//!
//! `history` is a `WITHOUT ROWID` table: its rows live in the key's B-tree, which keeps the
//! common small event to one B-tree insert. A large event does not belong there: SQLite compares
//! a new key against its neighbours' whole cells, so inserting next to a 64 MiB event reads that
//! event into memory. An event whose JSON reaches [`LARGE_VALUE_BYTES`] is therefore written to
//! `history_large`, a rowid table, in place (see `large_values`). Its `history` row keeps the
//! key and an empty `event`, which no JSON document is; a trigger deletes the large row with it.

use super::large_values::{self, Json};
use crate::history::{HistoryEvent, HistoryRecord};
use crate::store::StoreError;
use rusqlite::{Connection, params};

#[cfg(doc)]
use super::large_values::LARGE_VALUE_BYTES;

/// Appends `events` as `instance_id`'s events from number `first_seq` on.
pub(super) fn append(
    conn: &Connection,
    instance_id: &str,
    first_seq: u64,
    timestamp_ms: i64,
    events: &[HistoryEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO history (instance_id, seq, timestamp_ms, event) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (seq, event) in (first_seq..).zip(events) {
        let json = Json::of(event)?;
        let Json::Small(text) = &json else {
            insert.execute(params![instance_id, seq, timestamp_ms, ""])?;
            // OR REPLACE: a large row left behind (by a hand-edited file) does not block the
            // event that takes its place.
            conn.prepare_cached(
                "INSERT OR REPLACE INTO history_large (instance_id, seq, event) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![instance_id, seq, json.param()?])?;
            let row = conn.last_insert_rowid();
            large_values::stream(conn, "history_large", "event", row, &json, event)?;
            continue;
        };
        insert.execute(params![instance_id, seq, timestamp_ms, text])?;
    }
    Ok(())
}

/// The instance's history, in order.
pub(super) fn read(conn: &Connection, id: &str) -> Result<Vec<HistoryRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, timestamp_ms, event FROM history WHERE instance_id = ?1 ORDER BY seq",
    )?;
    let mut rows = stmt.query(params![id])?;
    let mut history = Vec::new();
    // A cold replay reads every event of a long history: nothing is allocated per row but the
    // event itself (the row's key is spelled out only for an error).
    while let Some(row) = rows.next().map_err(|err| classify(&err, id))? {
        let seq: i64 = row.get(0).map_err(|err| classify(&err, id))?;
        let key = || format!("{id}#{seq}");
        let json = row
            .get_ref(2)
            .and_then(|value| value.as_str().map_err(Into::into))
            .map_err(|err| classify(&err, &key()))?;
        let event = if json.is_empty() {
            read_large(conn, id, seq)?
        } else {
            decode(json, &key())?
        };
        history.push(HistoryRecord {
            seq: u64::try_from(seq).map_err(|_| corrupt(&key(), "negative seq"))?,
            timestamp_ms: row.get(1).map_err(|err| classify(&err, &key()))?,
            event,
        });
    }
    Ok(history)
}

/// A large event, from `history_large`.
fn read_large(conn: &Connection, id: &str, seq: i64) -> Result<HistoryEvent, StoreError> {
    let key = format!("{id}#{seq}");
    let row: Option<i64> = conn
        .prepare_cached("SELECT rowid FROM history_large WHERE instance_id = ?1 AND seq = ?2")?
        .query_row(params![id, seq], |row| row.get(0))
        .map(Some)
        .or_else(|err| match err {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            other => Err(other),
        })
        .map_err(|err| classify(&err, &key))?;
    let Some(row) = row else {
        return Err(corrupt(
            &key,
            "the event is stored out of line, but its row is missing",
        ));
    };
    decode(
        &large_values::read(conn, "history_large", "event", row, &key)?,
        &key,
    )
}

fn decode(json: &str, key: &str) -> Result<HistoryEvent, StoreError> {
    serde_json::from_str(json).map_err(|err| corrupt(key, format!("event does not decode: {err}")))
}

fn classify(err: &rusqlite::Error, key: &str) -> StoreError {
    super::error::classify(err, "history", key)
}

fn corrupt(key: &str, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table: "history",
        key: key.to_string(),
        reason: reason.to_string(),
    }
}
