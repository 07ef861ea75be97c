//! Leases: how many runtimes (worker processes) divide the work of one shared store.
//!
//! A store one runtime owns (the embedded store, or PostgreSQL in its default mode) has no
//! leases: [`Backend::leases`](super::Backend::leases) answers `None`, and every piece of work
//! is this runtime's. A shared store divides the instances and entities into *partitions* (by
//! a hash of their id) and leases each partition to one runtime at a time, with an expiry the
//! holder renews. The holder alone runs the steps, activities, timers and entity batches of a
//! partition, and the store refuses a step or an entity batch of a partition the writer does
//! not hold (fencing, [`StoreError::LeaseLost`](super::StoreError::LeaseLost)). A runtime
//! that stops renewing (killed, stalled, cut off) loses its partitions when their leases
//! expire, and another runtime takes them over with everything stored for them.
//!
//! The engine's side is a loop ([`renew`](Leases::renew) every third of the TTL, and
//! [`adopt`](Leases::adopt) whenever the store signals work created by another process or a
//! partition was gained), which feeds what it adopts to the same dispatcher startup recovery
//! feeds.

use super::{ActivityWorkItem, CorruptRow, EntityMessage, Message, StoreError, TimerWorkItem};
use async_trait::async_trait;
use std::time::Duration;

/// What a renewal changed: partitions gained (taken over, or free) and lost (expired before
/// they were renewed, or given up to balance the load).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseChange {
    /// Partitions this runtime holds now and did not before. Everything stored for them is
    /// [adopted](Leases::adopt) next, as startup recovery would.
    pub gained: Vec<u16>,
    /// Partitions this runtime no longer holds: the engine drops what it keeps in memory for
    /// them (their work is in the store, for the new holder).
    pub lost: Vec<u16>,
}

/// One stretch of holding a partition without a gap in what this runtime has seen of it.
/// A new one (a new `tenure`) begins when the partition is taken, and whenever this runtime may
/// have left some of its work aside (its lease lapsed, an adoption's outcome was unknown) and
/// has marked the stored work unseen again: a lease whose adoption has finished (see
/// [`Leases::adopt`]) gives way to one with work still to adopt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId {
    /// The partition.
    pub partition: u16,
    /// A number this runtime gives the stretch (new ones are larger).
    pub tenure: u64,
}

/// Work of this runtime's partitions that it had not seen: created by another process, or
/// left by the previous holder of a partition it gained.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Adopted {
    /// Messages, in id order.
    pub messages: Vec<Message>,
    /// Activity work items, in id order.
    pub activities: Vec<ActivityWorkItem>,
    /// Armed timers.
    pub timers: Vec<TimerWorkItem>,
    /// Entity operations, in id order.
    pub entity_messages: Vec<EntityMessage>,
    /// Rows that do not decode (adopted all the same: the engine fails their instances).
    pub corrupt: Vec<CorruptRow>,
    /// Whether a page limit was reached: more may be waiting.
    pub more: bool,
}

impl Adopted {
    /// Whether nothing was adopted.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.activities.is_empty()
            && self.timers.is_empty()
            && self.entity_messages.is_empty()
            && self.corrupt.is_empty()
    }
}

/// The leases of a store shared by many runtimes (see the module documentation).
#[async_trait]
pub trait Leases: Send + Sync + 'static {
    /// This runtime's worker id (unique per process).
    fn worker_id(&self) -> &str;

    /// How long a lease lasts without renewal.
    fn ttl(&self) -> Duration;

    /// Whether this runtime holds (by its own clock, which expires leases no later than the
    /// store does) the partition of the instance or entity `id`. Cheap: no I/O.
    fn holds(&self, id: &str) -> bool;

    /// The lease under which this runtime holds the partition of `id`, if it holds it (by the
    /// same clock as [`holds`](Self::holds)). Cheap: no I/O.
    fn lease_of(&self, id: &str) -> Option<LeaseId>;

    /// Every lease held now whose stored work an adoption begun now would read whole (not
    /// one whose work has yet to be marked unseen again). Cheap: no I/O.
    fn leases_held(&self) -> Vec<LeaseId>;

    /// Renews the leases held, claims free or expired partitions up to a fair share of the
    /// live workers, and gives up the partitions over that share; reports what changed.
    async fn renew(&self) -> Result<LeaseChange, StoreError>;

    /// Takes over up to `limit` rows of each kind of work in the partitions held that this
    /// runtime has not seen (see [`Adopted`]).
    async fn adopt(&self, limit: usize) -> Result<Adopted, StoreError>;

    /// Resolves when another process may have created work for a partition held here, or the
    /// store's notifications were interrupted (and some may have been missed).
    async fn work_signalled(&self);

    /// Waits for instances that finished (in any process: the store announces them) and
    /// returns their ids, so that clients of this runtime waiting for them wake at once.
    /// Never resolves for a store that does not announce them (the default).
    async fn finished_elsewhere(&self) -> Vec<String> {
        std::future::pending().await
    }

    /// Gives up every lease at once (shutdown), so that other runtimes take the partitions
    /// over without waiting for them to expire.
    async fn release_all(&self) -> Result<(), StoreError>;
}
