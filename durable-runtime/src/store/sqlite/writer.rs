//! The writer thread: group commit of every queued write in one transaction.
//!
//! Each write runs in its own savepoint, so a write that fails on its own (a duplicate instance
//! id, a fenced step, a value too big) is undone without disturbing the others. But SQLite may
//! roll back the *whole* transaction on some errors (a full disk, an I/O error, no memory): the
//! writer then checks whether the transaction is still open after every error, and if it is not,
//! fails every write of the batch as [`StoreError::Unavailable`] (the earlier ones were rolled
//! back with it) instead of running the rest in autocommit. A failed commit fails the whole
//! batch the same way.

use super::apply::{NextIds, apply_write};
use super::{FaultHook, InjectedFault};
use crate::store::{StoreError, Write, Written};
use parking_lot::Mutex;
use rusqlite::Connection;
use std::sync::{Arc, mpsc};
use tokio::sync::oneshot;

/// Most writes committed in one transaction; bounds the latency a large batch adds.
const MAX_BATCH: usize = 4096;

/// The answer to one write.
pub(crate) type Reply = oneshot::Sender<Result<Written, StoreError>>;

/// A write waiting for the writer, with where to send its answer.
pub(crate) struct PendingWrite {
    pub(crate) write: Write,
    pub(crate) reply: Reply,
}

/// What the writer's queue carries.
#[expect(
    clippy::large_enum_variant,
    reason = "the common case stays unboxed; `Together` is for tests"
)]
pub(crate) enum Job {
    /// One write, batched with whatever else is queued.
    Write(PendingWrite),
    /// Writes that must share one batch (tests of batch behaviour).
    Together(Vec<PendingWrite>),
}

/// The fault hook the writer consults, shared with the store.
pub(crate) type FaultSlot = Arc<Mutex<Option<FaultHook>>>;

/// Commits whatever is queued, together, until the queue's sender is gone and it is drained.
pub(crate) fn run_writer(
    conn: Connection,
    mut ids: NextIds,
    queue: mpsc::Receiver<Job>,
    faults: FaultSlot,
) {
    let mut batch = Vec::new();
    while let Ok(first) = queue.recv() {
        push(&mut batch, first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => push(&mut batch, next),
                Err(_) => break,
            }
        }
        let hook = faults.lock().clone();
        let results = commit_batch(&conn, &mut ids, &batch, hook.as_ref());
        for (pending, result) in batch.drain(..).zip(results) {
            // A caller that stopped waiting is not an error: the write is durable regardless.
            let _ = pending.reply.send(result);
        }
    }
    tracing::debug!("store writer drained and stopped");
}

fn push(batch: &mut Vec<PendingWrite>, job: Job) {
    match job {
        Job::Write(pending) => batch.push(pending),
        Job::Together(writes) => batch.extend(writes),
    }
}

/// Why a write that took its transaction down with it failed.
fn rolled_back(cause: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "{cause}; the transaction was rolled back and this write is not durable"
    ))
}

/// Applies every write of `batch` in one transaction and answers each.
///
/// A write that takes the whole transaction down with it (SQLite rolls back by itself on a
/// full disk, an I/O error or no memory) fails alone: the writes before it were rolled back
/// too, so the rest of the batch is applied again, without it, in a new transaction. Otherwise
/// a write that always fails that way would fail every batch it lands in, forever.
fn commit_batch(
    conn: &Connection,
    ids: &mut NextIds,
    batch: &[PendingWrite],
    hook: Option<&FaultHook>,
) -> Vec<Result<Written, StoreError>> {
    let mut answers: Vec<Option<Result<Written, StoreError>>> =
        batch.iter().map(|_| None).collect();
    let mut remaining: Vec<usize> = (0..batch.len()).collect();
    while !remaining.is_empty() {
        match commit_once(conn, ids, batch, &remaining, hook) {
            Attempt::Committed(results) => {
                for (index, result) in remaining.iter().zip(results) {
                    answers[*index] = Some(result);
                }
                break;
            }
            Attempt::LostTo { write, cause } => {
                tracing::error!(%cause, writes = remaining.len(), "a write rolled the store transaction back; the rest of the batch is written again without it");
                answers[remaining[write]] = Some(Err(rolled_back(&cause)));
                remaining.remove(write);
            }
            Attempt::Failed(why) => {
                for index in &remaining {
                    answers[*index] = Some(Err(StoreError::Unavailable(why.clone())));
                }
                break;
            }
        }
    }
    answers
        .into_iter()
        .map(|answer| {
            answer
                .unwrap_or_else(|| Err(StoreError::Unavailable("the write was not applied".into())))
        })
        .collect()
}

/// How one transaction over part of a batch ended.
enum Attempt {
    /// Committed: the answer of each write, in order.
    Committed(Vec<Result<Written, StoreError>>),
    /// The write at this position (of those attempted) ended the transaction; nothing of it
    /// is durable.
    LostTo { write: usize, cause: String },
    /// The transaction could not begin or commit (why); nothing of it is durable.
    Failed(String),
}

/// Applies the writes at `indexes` of `batch` in one transaction.
fn commit_once(
    conn: &Connection,
    ids: &mut NextIds,
    batch: &[PendingWrite],
    indexes: &[usize],
    hook: Option<&FaultHook>,
) -> Attempt {
    if let Err(err) = run(conn, "BEGIN IMMEDIATE") {
        let err = StoreError::from(err);
        tracing::warn!(error = %err, "could not begin a store transaction");
        // Never leave a transaction open that would make every later BEGIN fail.
        abandon(conn);
        return Attempt::Failed(format!("could not begin a transaction: {err}"));
    }
    let mut results = Vec::with_capacity(indexes.len());
    for (position, &index) in indexes.iter().enumerate() {
        match apply_in_savepoint(conn, ids, &batch[index].write, hook) {
            Ok(result) => results.push(result),
            Err(cause) => {
                abandon(conn);
                return Attempt::LostTo {
                    write: position,
                    cause,
                };
            }
        }
    }
    match run(conn, "COMMIT") {
        Ok(()) => Attempt::Committed(results),
        Err(err) => {
            let err = StoreError::from(err);
            tracing::error!(error = %err, "store commit failed; the batch is not durable");
            abandon(conn);
            Attempt::Failed(format!(
                "commit failed: {err}; the transaction was rolled back and the batch is not durable"
            ))
        }
    }
}

/// Runs a transaction-control statement, prepared once per connection.
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Ends whatever is left of the transaction.
fn abandon(conn: &Connection) {
    if !conn.is_autocommit()
        && let Err(err) = conn.execute_batch("ROLLBACK")
    {
        tracing::error!(error = %err, "could not roll back the store transaction");
    }
}

/// Applies one write in its own savepoint. `Ok` carries the write's own answer (its changes
/// kept, or undone if it failed); `Err` means the transaction itself is gone or in doubt, with
/// the cause.
fn apply_in_savepoint(
    conn: &Connection,
    ids: &mut NextIds,
    write: &Write,
    hook: Option<&FaultHook>,
) -> Result<Result<Written, StoreError>, String> {
    run(conn, "SAVEPOINT w")
        .map_err(|err| format!("savepoint failed: {}", StoreError::from(err)))?;
    let mut result = apply_write(conn, ids, write);
    if let Some(fault) = hook.and_then(|hook| hook(write)) {
        result = Err(inject(conn, fault));
    }
    match result {
        Ok(written) => {
            run(conn, "RELEASE w").map_err(|err| {
                format!("releasing a savepoint failed: {}", StoreError::from(err))
            })?;
            Ok(Ok(written))
        }
        Err(err) => {
            if conn.is_autocommit() {
                // SQLite rolled the whole transaction back (full disk, I/O error, no memory).
                return Err(format!("{err}"));
            }
            conn.execute_batch("ROLLBACK TO w; RELEASE w")
                .map_err(|undo| {
                    format!(
                        "{err}; rolling back its savepoint failed: {}",
                        StoreError::from(undo)
                    )
                })?;
            Ok(Err(err))
        }
    }
}

/// Carries out an injected fault on the writer's connection and returns the write's error.
fn inject(conn: &Connection, fault: InjectedFault) -> StoreError {
    match fault {
        InjectedFault::FailWrite => StoreError::Unavailable("injected write failure".into()),
        InjectedFault::RollBackTransaction => {
            // What SQLite does by itself on SQLITE_FULL, SQLITE_IOERR or SQLITE_NOMEM.
            if let Err(err) = conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %err, "injected rollback failed");
            }
            StoreError::Unavailable("injected fault: the disk is full".into())
        }
    }
}
