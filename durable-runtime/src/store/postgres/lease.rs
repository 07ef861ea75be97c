//! Leases on partitions, for many runtimes on one schema (`PostgresStore::connect_shared`).
//!
//! Why partitions rather than a lease per instance: a lease per instance costs a write per
//! instance claimed and a renewal per instance held, and the hot path (a step that commits the
//! activity results it consumed, in one transaction) would need the lease of every instance it
//! touches. Sixteen partitions (by the first byte of the MD5 of the id, [`partition_of`], the
//! same function as the schema's `durable_part`) are renewed in one statement per worker, and
//! the fence costs one statement per group-commit batch, not per step (see [`Fence`]). The
//! price is granularity: a worker takes over a whole partition, and the load is balanced only
//! as well as sixteen partitions divide among the workers (at most sixteen workers do useful
//! work on one schema).
//!
//! Each partition's row holds its owner, an epoch bumped at every change of owner, and an
//! expiry (the database's clock, so workers' clocks need not agree). A worker holds its fair
//! share (`ceil(16 / live workers)`, live workers being those whose heartbeat in `workers` has
//! not expired), claims free or expired partitions with `FOR UPDATE SKIP LOCKED`, and gives
//! up the ones over its share, so a new worker gets partitions within two renewals.

use super::db::{Db, col};
use crate::store::{LeaseChange, LeaseId, StoreError};
use deadpool_postgres::Pool;
use md5::{Digest, Md5};
use parking_lot::RwLock;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::schema::PARTITIONS;

/// The partition of an instance or entity id (as the schema's `durable_part`).
pub fn partition_of(id: &str) -> u16 {
    u16::from(Md5::digest(id.as_bytes())[0]) % PARTITIONS
}

/// What this worker holds, as of its last renewal.
struct Held {
    /// Partition to the epoch it was taken at.
    epochs: BTreeMap<u16, i64>,
    /// Until when (by this process's monotonic clock) the leases are certainly valid: the
    /// moment the renewal was sent plus the TTL, never later than the database's expiry.
    valid_until: Instant,
    /// The partitions (and epochs) the engine was last told of: what the next renewal that
    /// succeeds reports as lost and gained. Kept apart from `epochs`, which a renewal
    /// overwrites before its last statements, so that a renewal failing there loses no loss.
    reported: BTreeMap<u16, i64>,
    /// Partitions whose stored work must be marked unseen once held (held again after a
    /// lapse, or held in the database but not here): kept until a renewal did it, so that a
    /// renewal failing before it does not leave this worker's own rows unadopted for good.
    unsee: BTreeSet<u16>,
    /// Partition to its tenure (see [`LeaseId`]): renewed whenever this worker may have left
    /// work of it aside, or has marked its stored work unseen for adoption to take again.
    tenures: BTreeMap<u16, u64>,
    /// The next tenure given out.
    next_tenure: u64,
}

impl Held {
    /// Starts a new tenure of `part`: a lease open for the old one is not open for it.
    fn new_tenure(&mut self, part: u16) {
        self.next_tenure += 1;
        self.tenures.insert(part, self.next_tenure);
    }

    fn lease_id(&self, part: u16) -> LeaseId {
        LeaseId {
            partition: part,
            tenure: self.tenures.get(&part).copied().unwrap_or(0),
        }
    }
}

/// The lease state of one worker: shared by the store's writer (fencing) and the engine.
pub(crate) struct LeaseState {
    pub(crate) worker_id: String,
    pub(crate) ttl: Duration,
    held: RwLock<Held>,
    /// Signalled by the listener: work for a partition held here was created elsewhere.
    pub(crate) signal: Notify,
    /// Instances announced finished (by any process) not yet taken by the engine.
    finished: parking_lot::Mutex<Vec<String>>,
    finished_signal: Notify,
    /// Whether an engine takes the announcements (a runtime's lease loop does).
    finished_wanted: std::sync::atomic::AtomicBool,
}

/// Steps and entity batches this process's stores refused for want of a lease.
pub(crate) static REFUSED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The partitions a group-commit transaction holds locked (`FOR SHARE`) with the epochs this
/// worker knows: a step or entity batch of any other partition is refused. The lock makes a
/// takeover (an `UPDATE` of the partition's row) wait for the transaction, so no step of the
/// old holder commits after the new one took over.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Fence(u32);

impl Fence {
    /// Refuses work on `id` unless its partition is held.
    pub(crate) fn check(self, id: &str) -> Result<(), StoreError> {
        match self.0 & (1 << partition_of(id)) {
            0 => {
                REFUSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err(StoreError::LeaseLost(id.to_string()))
            }
            _ => Ok(()),
        }
    }
}

impl LeaseState {
    pub(crate) fn new(worker_id: String, ttl: Duration) -> Self {
        LeaseState {
            worker_id,
            ttl,
            held: RwLock::new(Held {
                epochs: BTreeMap::new(),
                valid_until: Instant::now(),
                reported: BTreeMap::new(),
                unsee: BTreeSet::new(),
                tenures: BTreeMap::new(),
                next_tenure: 0,
            }),
            signal: Notify::new(),
            finished: parking_lot::Mutex::new(Vec::new()),
            finished_signal: Notify::new(),
            finished_wanted: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Most announcements kept while the engine does not take them (beyond, they are
    /// dropped: waiters re-read the status periodically anyway).
    const MAX_FINISHED: usize = 100_000;

    /// The listener heard that `instance_id` finished.
    pub(crate) fn finished(&self, instance_id: &str) {
        if !self
            .finished_wanted
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            // No engine takes them (a client-only handle): waits re-read the status.
            return;
        }
        let mut finished = self.finished.lock();
        if finished.len() < Self::MAX_FINISHED {
            finished.push(instance_id.to_string());
        }
        drop(finished);
        self.finished_signal.notify_one();
    }

    /// Waits for instances announced finished, and takes them.
    pub(crate) async fn take_finished(&self) -> Vec<String> {
        self.finished_wanted
            .store(true, std::sync::atomic::Ordering::Relaxed);
        loop {
            let taken = std::mem::take(&mut *self.finished.lock());
            if !taken.is_empty() {
                return taken;
            }
            self.finished_signal.notified().await;
        }
    }

    /// Whether the partition of `id` is held now.
    pub(crate) fn holds(&self, id: &str) -> bool {
        let held = self.held.read();
        Instant::now() < held.valid_until && held.epochs.contains_key(&partition_of(id))
    }

    pub(crate) fn lease_of(&self, id: &str) -> Option<LeaseId> {
        let held = self.held.read();
        let partition = partition_of(id);
        (Instant::now() < held.valid_until && held.epochs.contains_key(&partition))
            .then(|| held.lease_id(partition))
    }

    /// The leases held now, but for partitions whose stored work has yet to be marked unseen:
    /// an adoption now would not read all of it.
    pub(crate) fn leases_held(&self) -> Vec<LeaseId> {
        let held = self.held.read();
        if Instant::now() >= held.valid_until {
            return Vec::new();
        }
        held.epochs
            .keys()
            .filter(|part| !held.unsee.contains(part))
            .map(|&part| held.lease_id(part))
            .collect()
    }

    pub(crate) fn holds_partition(&self, part: u16) -> bool {
        let held = self.held.read();
        Instant::now() < held.valid_until && held.epochs.contains_key(&part)
    }

    /// The partitions held now (for the paged reads and adoption).
    pub(crate) fn held_partitions(&self) -> Vec<i16> {
        let held = self.held.read();
        if Instant::now() >= held.valid_until {
            return Vec::new();
        }
        held.epochs.keys().map(|&p| p as i16).collect()
    }

    /// The statement that opens a group-commit transaction in shared mode: it locks the
    /// partitions the database says this worker holds (in partition order, as renewals lock
    /// them, so the two never deadlock). The worker id is a checked identifier
    /// ([`valid_worker_id`]), safe to splice.
    pub(crate) fn begin_sql(&self) -> String {
        format!(
            "BEGIN; SELECT part, epoch FROM partitions WHERE owner = '{}' AND expires_at > now() \
             ORDER BY part FOR SHARE; SAVEPOINT w",
            self.worker_id
        )
    }

    /// The fence of a transaction whose first statement answered `rows` (partition, epoch):
    /// the partitions both the database and this worker agree it holds, at the same epoch.
    pub(crate) fn fence(&self, rows: &[(i16, i64)]) -> Fence {
        let held = self.held.read();
        if Instant::now() >= held.valid_until {
            return Fence(0);
        }
        let mut mask = 0u32;
        for &(part, epoch) in rows {
            if let Ok(part) = u16::try_from(part)
                && held.epochs.get(&part) == Some(&epoch)
            {
                mask |= 1 << part;
            }
        }
        Fence(mask)
    }

    /// Has the stored work of `parts` marked unseen at the next renewal, if still held.
    pub(super) fn unsee_later(&self, parts: &[i16]) {
        let mut held = self.held.write();
        for part in parts.iter().filter_map(|&p| u16::try_from(p).ok()) {
            held.unsee.insert(part);
            held.new_tenure(part);
        }
    }

    /// Drops partitions from what is held (before giving them up in the database, so that
    /// no transaction begun after this fences them in).
    fn forget(&self, parts: &[u16]) {
        let mut held = self.held.write();
        for part in parts {
            held.epochs.remove(part);
            held.tenures.remove(part);
        }
    }
}

/// Whether `id` may be a worker id: it is spliced into SQL and a connection option.
pub(crate) fn valid_worker_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn ttl_ms(state: &LeaseState) -> f64 {
    state.ttl.as_secs_f64() * 1000.0
}

/// Heartbeat and renewal, in one statement: the partitions still held (with their epochs),
/// how many other workers are live, and how many partitions are free or expired.
const RENEW: &str = "
WITH beat AS (
    INSERT INTO workers (worker_id, expires_at)
    VALUES ($1, now() + $2::float8 * interval '1 millisecond')
    ON CONFLICT (worker_id) DO UPDATE SET expires_at = EXCLUDED.expires_at
), gone AS (
    DELETE FROM workers WHERE expires_at < now() - interval '1 day'
), renewed AS (
    UPDATE partitions SET expires_at = now() + $2::float8 * interval '1 millisecond'
    WHERE part IN (SELECT part FROM partitions WHERE owner = $1 AND expires_at > now()
                   ORDER BY part FOR UPDATE)
    RETURNING part, epoch
)
SELECT (SELECT coalesce(array_agg(part), '{}') FROM renewed),
       (SELECT coalesce(array_agg(epoch), '{}') FROM renewed),
       (SELECT count(*) FROM workers WHERE expires_at > now() AND worker_id <> $1),
       (SELECT count(*) FROM partitions WHERE owner IS NULL OR expires_at <= now())";

/// Claims up to `$3` free or expired partitions (bumping their epochs) and marks the work
/// stored in them as unseen, so that adoption takes all of it, in one statement.
const CLAIM: &str = "
WITH claimed AS (
    UPDATE partitions SET owner = $1, epoch = epoch + 1,
                          expires_at = now() + $2::float8 * interval '1 millisecond'
    WHERE part IN (SELECT part FROM partitions WHERE owner IS NULL OR expires_at <= now()
                   ORDER BY part LIMIT $3 FOR UPDATE SKIP LOCKED)
    RETURNING part, epoch
), m AS (
    UPDATE messages SET origin = NULL WHERE part IN (SELECT part FROM claimed)
), a AS (
    UPDATE activities SET origin = NULL WHERE part IN (SELECT part FROM claimed)
), t AS (
    UPDATE timers SET origin = NULL WHERE part IN (SELECT part FROM claimed)
), e AS (
    UPDATE entity_messages SET origin = NULL WHERE part IN (SELECT part FROM claimed)
)
SELECT part, epoch FROM claimed";

/// Renews, balances and reports what changed (see [`crate::store::Leases::renew`]).
///
/// The order of each change matters, because this worker decides what to hand over in
/// memory by what it holds in memory, and its adoption skips the work it created itself:
/// - a partition given up is forgotten here before the database hears of it;
/// - a partition claimed is held here before the claim commits, and its stored work is
///   marked unseen again (in the claim's transaction) after it is held, so that nothing this
///   worker writes for it while the claim runs is neither handed over in memory nor adopted;
/// - leases that lapsed here (a slow renewal, a stall) are held again before their stored
///   work is marked unseen, for the same reason: whatever this worker left aside while they
///   had lapsed (not dispatched, not run, steps refused) is adopted again.
pub(crate) async fn renew(pool: &Pool, state: &LeaseState) -> Result<LeaseChange, StoreError> {
    let sent = Instant::now();
    let (in_memory, was_valid) = {
        let held = state.held.read();
        (held.epochs.clone(), Instant::now() < held.valid_until)
    };
    let client = pool.get().await?;
    let db = Db(&client);
    let ttl = ttl_ms(state);
    let row = db
        .query_opt(RENEW, &[&state.worker_id, &ttl])
        .await?
        .ok_or(StoreError::UnexpectedAnswer("lease renewal"))?;
    let parts: Vec<i16> = col(&row, 0, "partitions", &state.worker_id)?;
    let epochs: Vec<i64> = col(&row, 1, "partitions", &state.worker_id)?;
    let others: i64 = col(&row, 2, "workers", &state.worker_id)?;
    let free: i64 = col(&row, 3, "partitions", &state.worker_id)?;
    let renewed: BTreeMap<u16, i64> = parts
        .iter()
        .zip(&epochs)
        .filter_map(|(&p, &e)| u16::try_from(p).ok().map(|p| (p, e)))
        .collect();
    let lapsed = {
        let mut held = state.held.write();
        let lapsed = !(was_valid && Instant::now() < held.valid_until);
        // Held again after a lapse, or held in the database though not here (a give-up or a
        // claim that failed after all or not): this worker left their work aside meanwhile.
        let regained: Vec<u16> = renewed
            .keys()
            .filter(|p| lapsed || !in_memory.contains_key(p))
            .copied()
            .collect();
        for &part in &regained {
            held.unsee.insert(part);
            held.new_tenure(part);
        }
        held.epochs = renewed.clone();
        let Held {
            epochs, tenures, ..
        } = &mut *held;
        tenures.retain(|part, _| epochs.contains_key(part));
        held.valid_until = sent + state.ttl;
        lapsed
    };
    // Held here before the statement's snapshot (see above); a pending mark of a partition no
    // longer held is dropped: its rows are its new holder's to adopt. Done before balancing,
    // so that a give-up or a claim that fails does not keep these partitions' adoption (and
    // the messages waiting for it, see `AdoptionGate`) back.
    let unsee: Vec<u16> = {
        let mut held = state.held.write();
        let Held { epochs, unsee, .. } = &mut *held;
        unsee.retain(|p| epochs.contains_key(p));
        unsee.iter().copied().collect()
    };
    if !unsee.is_empty() {
        let unsee_sql: Vec<i16> = unsee.iter().map(|&p| p as i16).collect();
        db.execute(UNSEE, &[&unsee_sql]).await?;
    }
    {
        let mut held = state.held.write();
        for &part in &unsee {
            // Marked unseen: a tenure begins whose adoption takes all of it.
            held.unsee.remove(&part);
            held.new_tenure(part);
        }
    }
    let workers = usize::try_from(others).unwrap_or(0) + 1;
    let share = usize::from(PARTITIONS).div_ceil(workers);
    let mut claimed = Vec::new();
    if renewed.len() > share {
        // Over the fair share: the highest partitions go, forgotten here first.
        let excess: Vec<u16> = renewed
            .keys()
            .rev()
            .take(renewed.len() - share)
            .copied()
            .collect();
        state.forget(&excess);
        let excess_sql: Vec<i16> = excess.iter().map(|&p| p as i16).collect();
        // Rows locked in partition order, as every statement that locks several does: a
        // group-commit transaction locking this worker's partitions never deadlocks with it.
        db.execute(
            "UPDATE partitions SET owner = NULL, expires_at = '-infinity'
             WHERE part IN (SELECT part FROM partitions WHERE owner = $1 AND part = ANY($2)
                            ORDER BY part FOR UPDATE)",
            &[&state.worker_id, &excess_sql],
        )
        .await?;
        tracing::info!(partitions = ?excess, workers, "gave up partitions to balance the load");
    } else if renewed.len() < share && free > 0 {
        let wanted = i64::try_from(share - renewed.len()).unwrap_or(0);
        claimed = claim(&db, state, ttl, wanted).await?;
    }
    let mut held = state.held.write();
    let lost = held
        .reported
        .iter()
        .filter(|(p, e)| held.epochs.get(p) != Some(e))
        .map(|(&p, _)| p)
        .collect();
    let gained = held
        .epochs
        .iter()
        .filter(|(p, e)| {
            lapsed || claimed.contains(p) || unsee.contains(p) || held.reported.get(p) != Some(e)
        })
        .map(|(&p, _)| p)
        .collect();
    held.reported = held.epochs.clone();
    Ok(LeaseChange { gained, lost })
}

/// Claims up to `wanted` free or expired partitions in a transaction, held here before it
/// commits (see [`renew`]); the partitions claimed.
async fn claim(
    db: &Db<'_>,
    state: &LeaseState,
    ttl: f64,
    wanted: i64,
) -> Result<Vec<u16>, StoreError> {
    db.batch("BEGIN").await?;
    let rows = match db.query(CLAIM, &[&state.worker_id, &ttl, &wanted]).await {
        Ok(rows) => rows,
        Err(err) => {
            let _ = db.batch("ROLLBACK").await;
            return Err(err);
        }
    };
    let decoded: Result<Vec<(i16, i64)>, StoreError> = rows
        .iter()
        .map(|row| {
            Ok((
                col(row, 0, "partitions", &state.worker_id)?,
                col(row, 1, "partitions", &state.worker_id)?,
            ))
        })
        .collect();
    let decoded = match decoded {
        Ok(decoded) => decoded,
        Err(err) => {
            let _ = db.batch("ROLLBACK").await;
            return Err(err);
        }
    };
    let mut claimed = Vec::new();
    {
        let mut held = state.held.write();
        for (part, epoch) in decoded {
            if let Ok(part) = u16::try_from(part) {
                held.epochs.insert(part, epoch);
                held.new_tenure(part);
                claimed.push(part);
            }
        }
    }
    // `CLAIM` marked the work unseen as of its snapshot, taken when it started: a row this
    // worker committed into these partitions while it ran (a client's start, before they were
    // held here) was left out of memory as not held, and kept this worker as its origin, so
    // adoption would skip it forever. Marked unseen again now that they are held (a new
    // snapshot, as every statement of a read-committed transaction takes): whatever commits
    // after this snapshot was written while they were held, and kept in memory.
    let claimed_sql: Vec<i16> = claimed.iter().map(|&p| p as i16).collect();
    let unseen = match claimed_sql.is_empty() {
        true => Ok(0),
        false => db.execute(UNSEE, &[&claimed_sql]).await,
    };
    let committed = match unseen {
        Ok(_) => db.batch("COMMIT").await,
        Err(err) => Err(err),
    };
    if let Err(err) = committed {
        // Not claimed after all: what was handed over for them meanwhile is refused at its
        // commit and stays in the store, for whoever holds them.
        state.forget(&claimed);
        let _ = db.batch("ROLLBACK").await;
        return Err(err);
    }
    Ok(claimed)
}

/// Marks the work stored in the partitions `$1` as unseen (adoption takes all of it).
const UNSEE: &str = "
WITH m AS (
    UPDATE messages SET origin = NULL WHERE part = ANY($1)
), a AS (
    UPDATE activities SET origin = NULL WHERE part = ANY($1)
), t AS (
    UPDATE timers SET origin = NULL WHERE part = ANY($1)
)
UPDATE entity_messages SET origin = NULL WHERE part = ANY($1)";

/// Gives up every partition and the heartbeat (see [`crate::store::Leases::release_all`]).
pub(crate) async fn release_all(pool: &Pool, state: &LeaseState) -> Result<(), StoreError> {
    {
        let mut held = state.held.write();
        held.epochs.clear();
    }
    let client = pool.get().await?;
    Db(&client)
        .execute(
            "WITH w AS (DELETE FROM workers WHERE worker_id = $1)
             UPDATE partitions SET owner = NULL, expires_at = '-infinity'
             WHERE part IN (SELECT part FROM partitions WHERE owner = $1
                            ORDER BY part FOR UPDATE)",
            &[&state.worker_id],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_spread_and_are_stable() {
        // The first byte of md5("a") is 0x0c: the SQL function computes the same.
        assert_eq!(partition_of("a"), 0x0c % PARTITIONS);
        let mut seen = std::collections::HashSet::new();
        for n in 0..200 {
            seen.insert(partition_of(&format!("instance-{n}")));
        }
        assert_eq!(seen.len(), usize::from(PARTITIONS));
    }

    #[test]
    fn fence_refuses_partitions_not_held() {
        let id = "order-1";
        let fence = Fence(1 << partition_of(id));
        assert!(fence.check(id).is_ok());
        let other = (0..100)
            .map(|n| format!("x{n}"))
            .find(|other| partition_of(other) != partition_of(id))
            .expect("another partition");
        assert!(matches!(fence.check(&other), Err(StoreError::LeaseLost(_))));
    }

    #[test]
    fn worker_ids_are_checked() {
        assert!(valid_worker_id("w0123abcd"));
        assert!(!valid_worker_id("x'; DROP TABLE"));
        assert!(!valid_worker_id(""));
    }
}
