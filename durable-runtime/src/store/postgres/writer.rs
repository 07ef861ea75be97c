//! The writer task: group commit of every queued write in one transaction.
//!
//! As in the embedded store, the writer takes every write waiting in its queue and applies
//! them in one transaction, each in its own savepoint, so that a write that fails on its own
//! (a duplicate id, a fenced step) is undone without disturbing the others, and one commit
//! acknowledges them all.
//!
//! The common writes are sent in flights (see [`super::pipeline`]): every statement of up to
//! [`MAX_FLIGHT`] writes, each write behind its own (nested) savepoint, goes to the server
//! without waiting for an answer, and the answers are checked afterwards, in order. The first
//! write whose answers are not what it expects is rolled back to its savepoint (with the later
//! writes of the flight, which ran on top of it), applied again statement by statement
//! (`apply`), and the writes after it go in the next flight. A batch of common writes thus
//! costs three round trips (`BEGIN; SAVEPOINT w`, the flight, `COMMIT`) whatever its size.
//!
//! If the transaction itself is lost (the connection dropped, the server restarted), a write
//! that was being applied is answered [`StoreError::Unavailable`] and the rest of the batch is
//! applied again, without it, in a new transaction on a new connection; a failed `COMMIT`
//! fails the whole batch as `Unavailable`. A commit whose answer was lost may still have been
//! applied: the retried step is then fenced by its history length, never recorded twice.

use super::apply::apply_write;
use super::db::Db;
use super::lease::{Fence, LeaseState};
use super::pipeline::{Plan, Planned, Sent, fly, plan};
use crate::store::{StoreError, Write, Written};
use deadpool_postgres::Pool;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most writes committed in one transaction; bounds the latency a large batch adds.
const MAX_BATCH: usize = 1024;

/// Most writes sent in one flight: each holds a savepoint until the next flight, and a
/// write that fails its checks has the rest of its flight sent again.
const MAX_FLIGHT: usize = 64;

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
    let mut savepoints = Savepoints::new();
    let mut position = 0;
    while position < indexes.len() {
        // The writes from here on that go in one flight, up to the first that cannot.
        let mut plans = Vec::new();
        while position + plans.len() < indexes.len() && plans.len() < MAX_FLIGHT {
            match plan(&batch[indexes[position + plans.len()]].write, fence) {
                Planned::Fast(plan) => plans.push(plan),
                Planned::Refused(err) if plans.is_empty() => {
                    // Refused before any statement: nothing to undo.
                    results.push(Err(err));
                    position += 1;
                }
                Planned::Refused(_) | Planned::Slow => break,
            }
        }
        if position >= indexes.len() {
            break;
        }
        let applied = if plans.is_empty() {
            apply_alone(&db, &batch[indexes[position]].write, fence, &mut savepoints).await
        } else {
            fly_writes(
                &db,
                batch,
                &indexes[position..],
                &plans,
                fence,
                &mut savepoints,
            )
            .await
        };
        match applied {
            Ok(answers) => {
                position += answers.len();
                results.extend(answers);
            }
            Err(Lost { write, cause }) => {
                abandon(&db).await;
                return Attempt::LostTo {
                    write: position + write,
                    cause,
                };
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

/// The transaction was lost at the write at this position (of those given); why.
struct Lost {
    write: usize,
    cause: String,
}

/// The savepoints of a transaction. Each write runs in its own, so that one that fails is
/// undone alone. The writes of a flight nest theirs (each can be rolled back to, with those
/// after it); the first write of the next flight releases them all in the same request as it
/// takes its own.
struct Savepoints {
    /// The outermost savepoint still held.
    outer: String,
    /// Whether nothing was written since `outer` was taken (it can serve the next write).
    clean: bool,
    taken: u64,
}

impl Savepoints {
    /// The transaction begins with savepoint `w` (see `begin_sql`).
    fn new() -> Self {
        Self {
            outer: "w".into(),
            clean: true,
            taken: 0,
        }
    }

    /// A savepoint for the first write of a flight (or a write on its own): its name, and the
    /// transaction control to send before the write, if any.
    fn first(&mut self) -> (String, Option<String>) {
        if self.clean {
            self.clean = false;
            return (self.outer.clone(), None);
        }
        let name = self.fresh();
        let control = format!("RELEASE SAVEPOINT {}; SAVEPOINT {name}", self.outer);
        self.outer = name.clone();
        (name, Some(control))
    }

    /// A savepoint for a later write of a flight, nested in the earlier ones'.
    fn nested(&mut self) -> (String, String) {
        let name = self.fresh();
        let control = format!("SAVEPOINT {name}");
        (name, control)
    }

    fn fresh(&mut self) -> String {
        self.taken += 1;
        format!("w{}", self.taken)
    }
}

/// Applies one write statement by statement, in its own savepoint; its answer.
async fn apply_alone(
    db: &Db<'_>,
    write: &Write,
    fence: Option<Fence>,
    savepoints: &mut Savepoints,
) -> Result<Vec<Result<Written, StoreError>>, Lost> {
    let (name, control) = savepoints.first();
    if let Some(control) = control
        && let Err(err) = db.batch(&control).await
    {
        return Err(Lost {
            write: 0,
            cause: format!("taking a savepoint failed: {err}"),
        });
    }
    Ok(vec![apply_in(db, write, fence, &name).await?])
}

/// Applies `write` statement by statement inside savepoint `name` (clean), rolling back to it
/// if the write fails.
async fn apply_in(
    db: &Db<'_>,
    write: &Write,
    fence: Option<Fence>,
    name: &str,
) -> Result<Result<Written, StoreError>, Lost> {
    match apply_write(db, write, fence).await {
        Ok(written) => Ok(Ok(written)),
        Err(err) => match db.batch(&format!("ROLLBACK TO SAVEPOINT {name}")).await {
            Ok(()) => Ok(Err(err)),
            Err(undo) => Err(Lost {
                write: 0,
                cause: format!("{err}; rolling back its savepoint failed: {undo}"),
            }),
        },
    }
}

/// Sends the writes `plans` (those at the start of `indexes`) in one flight, each in its own
/// savepoint, and checks their answers in order. At the first write whose answers its plan
/// does not accept, the transaction is rolled back to that write's savepoint (undoing it and
/// every later write of the flight), and the write is applied again statement by statement;
/// the answers up to and including it are returned (the writer sends the rest again).
async fn fly_writes(
    db: &Db<'_>,
    batch: &[PendingWrite],
    indexes: &[usize],
    plans: &[Plan<'_>],
    fence: Option<Fence>,
    savepoints: &mut Savepoints,
) -> Result<Vec<Result<Written, StoreError>>, Lost> {
    // Prepared first (once per connection: the cache answers at once afterwards), so that
    // nothing waits between the requests of the flight.
    let mut prepared = Vec::new();
    for plan in plans {
        for sent in &plan.statements {
            let statement = match sent {
                Sent::Control(_) => None,
                Sent::Query(sql, _) | Sent::Execute(sql, _) => {
                    match db.0.prepare_cached(sql).await {
                        Ok(statement) => Some(statement),
                        // Whatever broke shows again, classified, on the sequential path.
                        Err(_) => {
                            return apply_alone(db, &batch[indexes[0]].write, fence, savepoints)
                                .await;
                        }
                    }
                }
            };
            prepared.push(statement);
        }
    }
    let mut controls = Vec::with_capacity(plans.len());
    let mut names = Vec::with_capacity(plans.len());
    for write in 0..plans.len() {
        let (name, control) = if write == 0 {
            savepoints.first()
        } else {
            let (name, control) = savepoints.nested();
            (name, Some(control))
        };
        names.push(name);
        controls.push(control.map(Sent::Control));
    }
    let mut flight = Vec::new();
    let mut prepared = prepared.into_iter();
    for (plan, control) in plans.iter().zip(&controls) {
        if let Some(control) = control {
            flight.push((control, None));
        }
        for sent in &plan.statements {
            flight.push((sent, prepared.next().flatten()));
        }
    }
    let mut answers = fly(db.0, &flight).await.into_iter();
    let mut results = Vec::with_capacity(plans.len());
    for (write, plan) in plans.iter().enumerate() {
        if controls[write].is_some()
            && let Some(Err(err)) = answers.next()
        {
            return Err(Lost {
                write,
                cause: format!("taking a savepoint failed: {err}"),
            });
        }
        let mine: Vec<_> = answers.by_ref().take(plan.statements.len()).collect();
        if let Some(written) = plan.accept(&mine) {
            results.push(Ok(written));
            continue;
        }
        // Undo this write and those after it, then apply it the sequential way: it answers
        // exactly as it always did (a fence, a duplicate, or the uncommon case it handles).
        let name = &names[write];
        if let Err(undo) = db.batch(&format!("ROLLBACK TO SAVEPOINT {name}")).await {
            return Err(Lost {
                write,
                cause: format!("rolling back a savepoint failed: {undo}"),
            });
        }
        let answer = apply_in(db, &batch[indexes[write]].write, fence, name)
            .await
            .map_err(|lost| Lost {
                write,
                cause: lost.cause,
            })?;
        results.push(answer);
        return Ok(results);
    }
    Ok(results)
}
