//! The writer task: group commit of every queued write in one transaction.
//!
//! As in the embedded store, the writer takes every write waiting in its queue and applies
//! them in one transaction, each in its own savepoint, so that a write that fails on its own
//! (a duplicate id, a fenced step) is undone without disturbing the others, and one commit
//! acknowledges them all. Transaction control rides along with the writes' own statements:
//! `BEGIN; SAVEPOINT w` is one round trip, `RELEASE SAVEPOINT w; SAVEPOINT w` between two
//! writes another, `COMMIT` the last.
//!
//! If the transaction itself is lost (the connection dropped, the server restarted), a write
//! that was being applied is answered [`StoreError::Unavailable`] and the rest of the batch is
//! applied again, without it, in a new transaction on a new connection; a failed `COMMIT`
//! fails the whole batch as `Unavailable`. A commit whose answer was lost may still have been
//! applied: the retried step is then fenced by its history length, never recorded twice.

use super::apply::apply_write;
use super::db::Db;
use super::lease::{Fence, LeaseState};
use crate::store::{StoreError, Write, Written};
use deadpool_postgres::Pool;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most writes committed in one transaction; bounds the latency a large batch adds.
const MAX_BATCH: usize = 1024;

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

/// Commits whatever is queued, together, until the queue's senders are gone and it is drained.
///
/// With `lease` (a store shared by many runtimes), each transaction begins by locking the
/// partitions this worker holds, and fences its steps by them (see [`Fence`]).
pub(crate) async fn run_writer(
    pool: Pool,
    mut queue: mpsc::UnboundedReceiver<Job>,
    lease: Option<Arc<LeaseState>>,
) {
    let mut batch = Vec::new();
    while let Some(first) = queue.recv().await {
        push(&mut batch, first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => push(&mut batch, next),
                Err(_) => break,
            }
        }
        let results = commit_batch(&pool, &batch, lease.as_deref()).await;
        for (pending, result) in batch.drain(..).zip(results) {
            // A caller that stopped waiting is not an error: the write is durable regardless.
            let _ = pending.reply.send(result);
        }
    }
    tracing::debug!("postgres store writer drained and stopped");
}

fn push(batch: &mut Vec<PendingWrite>, job: Job) {
    match job {
        Job::Write(pending) => batch.push(pending),
        Job::Together(writes) => batch.extend(writes),
    }
}

/// Applies every write of `batch` in one transaction and answers each (see the module
/// documentation for how a lost transaction is handled).
async fn commit_batch(
    pool: &Pool,
    batch: &[PendingWrite],
    lease: Option<&LeaseState>,
) -> Vec<Result<Written, StoreError>> {
    let mut answers: Vec<Option<Result<Written, StoreError>>> =
        batch.iter().map(|_| None).collect();
    let mut remaining: Vec<usize> = (0..batch.len()).collect();
    while !remaining.is_empty() {
        match commit_once(pool, batch, &remaining, lease).await {
            Attempt::Committed(results) => {
                for (index, result) in remaining.iter().zip(results) {
                    answers[*index] = Some(result);
                }
                break;
            }
            Attempt::LostTo { write, cause } => {
                tracing::error!(%cause, writes = remaining.len(), "a write lost the store transaction; the rest of the batch is written again without it");
                answers[remaining[write]] = Some(Err(StoreError::Unavailable(format!(
                    "{cause}; the transaction was rolled back and this write is not durable"
                ))));
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
    /// The write at this position (of those attempted) lost the transaction.
    LostTo { write: usize, cause: String },
    /// The transaction could not begin or commit (why); nothing of it is durable.
    Failed(String),
}

/// Applies the writes at `indexes` of `batch` in one transaction.
async fn commit_once(
    pool: &Pool,
    batch: &[PendingWrite],
    indexes: &[usize],
    lease: Option<&LeaseState>,
) -> Attempt {
    let client = match pool.get().await {
        Ok(client) => client,
        Err(err) => {
            let err = StoreError::from(err);
            tracing::warn!(error = %err, "no connection to the store");
            return Attempt::Failed(format!("no connection to the store: {err}"));
        }
    };
    let db = Db(&client);
    let begun = match lease {
        None => db.batch("BEGIN; SAVEPOINT w").await.map(|()| None),
        Some(lease) => begin_fenced(&db, lease).await.map(Some),
    };
    let fence = match begun {
        Ok(fence) => fence,
        Err(err) => {
            tracing::warn!(error = %err, "could not begin a store transaction");
            abandon(&db).await;
            return Attempt::Failed(format!("could not begin a transaction: {err}"));
        }
    };
    let mut results = Vec::with_capacity(indexes.len());
    // Whether the savepoint holds a write that succeeded (released and taken again before the
    // next write), or is clean (a fresh one, or one rolled back to).
    let mut kept = false;
    for (position, &index) in indexes.iter().enumerate() {
        if kept && let Err(err) = db.batch("RELEASE SAVEPOINT w; SAVEPOINT w").await {
            abandon(&db).await;
            return Attempt::LostTo {
                write: position,
                cause: format!("releasing a savepoint failed: {err}"),
            };
        }
        match apply_write(&db, &batch[index].write, fence).await {
            Ok(written) => {
                kept = true;
                results.push(Ok(written));
            }
            Err(err) => {
                if let Err(undo) = db.batch("ROLLBACK TO SAVEPOINT w").await {
                    abandon(&db).await;
                    return Attempt::LostTo {
                        write: position,
                        cause: format!("{err}; rolling back its savepoint failed: {undo}"),
                    };
                }
                kept = false;
                results.push(Err(err));
            }
        }
    }
    match db.batch("COMMIT").await {
        Ok(()) => Attempt::Committed(results),
        Err(err) => {
            tracing::error!(error = %err, "store commit failed; the batch is not durable");
            abandon(&db).await;
            Attempt::Failed(format!(
                "commit failed: {err}; the transaction was rolled back and the batch is not durable"
            ))
        }
    }
}

/// Begins a transaction that holds this worker's partitions locked (in the round trip of the
/// `BEGIN` itself); its fence.
async fn begin_fenced(db: &Db<'_>, lease: &LeaseState) -> Result<Fence, StoreError> {
    super::db::ROUND_TRIPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let messages =
        db.0.simple_query(&lease.begin_sql())
            .await
            .map_err(StoreError::from)?;
    let mut rows = Vec::new();
    for message in &messages {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            let part = row.get(0).and_then(|v| v.parse::<i16>().ok());
            let epoch = row.get(1).and_then(|v| v.parse::<i64>().ok());
            match (part, epoch) {
                (Some(part), Some(epoch)) => rows.push((part, epoch)),
                _ => return Err(StoreError::UnexpectedAnswer("partition lock")),
            }
        }
    }
    Ok(lease.fence(&rows))
}

/// Ends whatever is left of the transaction, so that the connection goes back to the pool
/// clean (a broken one is discarded by the pool).
async fn abandon(db: &Db<'_>) {
    if !db.0.is_closed()
        && let Err(err) = db.batch("ROLLBACK").await
    {
        tracing::error!(error = %err, "could not roll back the store transaction");
    }
}
