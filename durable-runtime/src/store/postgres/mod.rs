//! The PostgreSQL store (feature `postgres`): the same contract as the embedded store, in a
//! database that outlives any one machine.
//!
//! Writes go through one writer task that takes every write waiting in its queue and commits
//! them in one transaction (group commit, the `writer` module), with the same checks as the embedded
//! store, statement for statement: fencing by run and history length, the status state
//! machine, messages, activity results and timer firings consumed exactly once. Reads use
//! pooled connections (`deadpool-postgres`) with every statement prepared once per connection.
//!
//! The tables live in a schema of their own ([`schema`]), created and migrated when the store
//! opens, so several apps can share a database.
//!
//! By default one runtime at a time works on a schema: the store holds a session advisory
//! lock on it for its whole life (on a connection of its own), and a second runtime is refused
//! with [`StoreError::Locked`], as a second process on an SQLite file is. The lock goes with
//! the writer: released only after everything queued before the store was dropped is
//! committed. A lock connection broken by a server restart is not taken again (a warning is
//! logged): the writes stay fenced, but nothing then stops a second runtime on the schema.
//!
//! [`PostgresStore::connect_shared`] opens the schema for many runtimes (worker processes,
//! on as many machines) at once: they take the advisory lock shared (so a runtime that wants
//! the schema alone is refused while they run, and the other way round), and divide the work
//! by leased partitions (the `lease` module): each instance and entity is processed by the
//! holder of its partition's lease, a step is fenced by that lease in its own transaction, a
//! worker that dies loses its partitions when their leases expire, and work created for a
//! partition held elsewhere wakes its holder through `LISTEN/NOTIFY` (the `listen` module),
//! with a poll at every renewal as the fallback.

mod adopt;
mod apply;
mod check;
mod children;
mod continue_as_new;
mod db;
mod entity;
mod error;
pub(crate) mod lease;
mod listen;
mod manage;
mod pipeline;
mod purge;
mod read;
mod rewind;
pub mod schema;
mod statements;
mod writer;

use super::{
    ActivityWorkItem, Adopted, Backend, CurrentRun, DueKey, EntityLogEntry, EntityPage,
    EntityQuery, EntityRecord, EntitySnapshot, LeaseChange, LeaseId, Leases, Message, PendingPage,
    StoreError, TimerWorkItem, Watermarks, Write, Written,
};
use crate::history::HistoryRecord;
use crate::instance::{InstancePage, InstanceQuery, InstanceStatus};
use async_trait::async_trait;
use db::Db;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use lease::LeaseState;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;
use writer::{Job, PendingWrite};

pub use lease::partition_of;

/// How long a lease lasts unless configured: a worker that dies has its work taken over
/// this long after its last renewal.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// How a store shared by many runtimes leases its work (see
/// [`PostgresStore::connect_shared`]).
#[derive(Clone, Debug)]
pub struct SharedOptions {
    /// How long a lease lasts without renewal (renewed every third of it). A dead worker's
    /// work waits this long; a worker that cannot reach the database for this long stops
    /// committing. Default [`DEFAULT_LEASE_TTL`].
    pub lease_ttl: Duration,
    /// This runtime's worker id: ASCII letters, digits, `_` and `-`, at most 63 characters,
    /// unique among the runtimes on the schema. `None`: a fresh random one.
    pub worker_id: Option<String>,
}

impl Default for SharedOptions {
    fn default() -> Self {
        SharedOptions {
            lease_ttl: DEFAULT_LEASE_TTL,
            worker_id: None,
        }
    }
}

/// The schema a store uses unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "durable";

/// Most pooled connections (the writer's and the readers').
const POOL_SIZE: usize = 8;

/// The PostgreSQL store. Cheap to share behind an `Arc`.
///
/// ```no_run
/// # async fn demo() -> Result<(), durable_runtime::store::StoreError> {
/// use durable_runtime::store::postgres::PostgresStore;
/// let store = PostgresStore::connect("postgres://app@localhost/app", "orders").await?;
/// # let _ = store; Ok(()) }
/// ```
pub struct PostgresStore {
    schema: String,
    pool: Pool,
    /// Dropping it stops the writer once it drained; the writer task holds the connection
    /// with the schema's advisory lock, released after the last commit.
    writer: mpsc::UnboundedSender<Job>,
    /// In shared mode, this worker's leases.
    leases: Option<Arc<PgLeases>>,
}

/// The [`Leases`] of a shared PostgreSQL store.
struct PgLeases {
    pool: Pool,
    state: Arc<LeaseState>,
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or a `key=value` connection
    /// string), creates or migrates the store's tables in `schema` (a lower-case identifier),
    /// and takes the schema for this process.
    ///
    /// Errors: [`StoreError::Refused`] for a URL or schema name that is not valid,
    /// [`StoreError::Unavailable`] if the database cannot be reached,
    /// [`StoreError::IncompatibleSchema`] for a schema written by a newer release or holding
    /// other tables, [`StoreError::Locked`] if another runtime works on the schema.
    pub async fn connect(url: &str, schema: &str) -> Result<Self, StoreError> {
        Self::open(url, schema, None).await
    }

    /// Connects like [`connect`](Self::connect), but shares the schema with other runtimes
    /// (worker processes) that connect to it this way: the work is divided among them by
    /// leases (see the module documentation). A runtime that wants the schema alone
    /// ([`connect`](Self::connect)) is refused with [`StoreError::Locked`] while any of them
    /// runs, and the other way round. A client-only handle on the schema connects this way
    /// too (it holds no leases).
    ///
    /// Errors: those of [`connect`](Self::connect), and [`StoreError::Refused`] for a worker
    /// id that is not valid, a lease TTL under 100 ms, or a database whose encoding is not
    /// UTF-8 (the partition of an id is a hash of its UTF-8 bytes, in SQL as in Rust).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), durable_runtime::store::StoreError> {
    /// use durable_runtime::store::postgres::{PostgresStore, SharedOptions};
    /// let store =
    ///     PostgresStore::connect_shared("postgres://app@localhost/app", "orders", SharedOptions::default())
    ///         .await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub async fn connect_shared(
        url: &str,
        schema: &str,
        options: SharedOptions,
    ) -> Result<Self, StoreError> {
        Self::open(url, schema, Some(options)).await
    }

    async fn open(
        url: &str,
        schema: &str,
        shared: Option<SharedOptions>,
    ) -> Result<Self, StoreError> {
        if !schema::valid_schema_name(schema) {
            return Err(StoreError::Refused(format!(
                "'{schema}' is not a valid schema name (lower-case letters, digits and _, \
                 starting with a letter or _, at most 63 characters)"
            )));
        }
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|err| StoreError::Refused(format!("not a PostgreSQL URL: {err}")))?;
        let lease = match &shared {
            None => None,
            Some(options) => {
                let worker_id = options.worker_id.clone().unwrap_or_else(|| {
                    format!("w{}", &uuid::Uuid::new_v4().simple().to_string()[..20])
                });
                if !lease::valid_worker_id(&worker_id) {
                    return Err(StoreError::Refused(format!(
                        "'{worker_id}' is not a valid worker id (ASCII letters, digits, _ and -, \
                         at most 63 characters)"
                    )));
                }
                if options.lease_ttl < Duration::from_millis(100) {
                    return Err(StoreError::Refused(format!(
                        "a lease TTL of {:?} is too short (100 ms at least)",
                        options.lease_ttl
                    )));
                }
                Some(Arc::new(LeaseState::new(worker_id, options.lease_ttl)))
            }
        };
        // Every statement names its tables unqualified: the schema is the search path.
        match &lease {
            None => config.options(format!("-c search_path={schema}")),
            // The worker id marks the work rows it creates (`origin`). A transaction left open
            // by a stalled worker (SIGSTOP) would hold its partitions' locks, and a takeover,
            // forever: the server ends it after a lease's time.
            Some(state) => config.options(format!(
                "-c search_path={schema} -c durable.worker={} \
                 -c idle_in_transaction_session_timeout={}",
                state.worker_id,
                state.ttl.as_millis().max(1)
            )),
        };
        // A server that vanished without closing the connection (a network partition) is
        // noticed within a minute instead of the system's two hours, and a connection attempt
        // to an unreachable one fails as transient instead of hanging.
        config.keepalives_idle(std::time::Duration::from_secs(30));
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("durable");
        }
        let owner = connect_owner(&config, schema, lease.is_some()).await?;
        let listen_config = config.clone();
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // A broken connection is noticed by its closed flag; a query per checkout
                // would cost a round trip per write.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|err| StoreError::Refused(format!("cannot build a connection pool: {err}")))?;
        {
            let client = pool.get().await?;
            schema::prepare(&client, schema).await?;
            if lease.is_some() {
                let row = Db(&client)
                    .query_opt("SELECT current_setting('server_encoding')", &[])
                    .await?
                    .ok_or(StoreError::UnexpectedAnswer("server_encoding"))?;
                let encoding: String = db::col(&row, 0, "pg_settings", "server_encoding")?;
                if encoding != "UTF8" {
                    return Err(StoreError::Refused(format!(
                        "a shared store needs a UTF8 database, not {encoding}"
                    )));
                }
            }
        }
        if let Some(state) = &lease {
            listen::spawn(listen_config, schema, state);
        }
        let (writer, queue) = mpsc::unbounded_channel();
        let writer_pool = pool.clone();
        let writer_lease = lease.clone();
        tokio::spawn(async move {
            writer::run_writer(writer_pool, queue, writer_lease).await;
            // Only once everything queued is committed does the schema go to the next runtime
            // (as the embedded store releases its file only after its writer drained).
            drop(owner);
        });
        let leases = lease.map(|state| {
            Arc::new(PgLeases {
                pool: pool.clone(),
                state,
            })
        });
        Ok(PostgresStore {
            schema: schema.to_string(),
            pool,
            writer,
            leases,
        })
    }

    /// The partitions to read pending work from: all of them (`None`) for a store this
    /// runtime owns alone, those held in shared mode.
    fn scope(&self) -> Option<Vec<i16>> {
        self.leases
            .as_ref()
            .map(|leases| leases.state.held_partitions())
    }

    /// The schema the store's tables are in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Applies `writes` in one group-commit batch (one transaction) and answers each, in order.
    /// For tests of batch behaviour; [`Backend::write`] batches by itself.
    #[doc(hidden)]
    pub async fn write_batch(&self, writes: Vec<Write>) -> Vec<Result<Written, StoreError>> {
        let mut pending = Vec::with_capacity(writes.len());
        let mut answers = Vec::with_capacity(writes.len());
        for write in writes {
            let (reply, answer) = oneshot::channel();
            pending.push(PendingWrite { write, reply });
            answers.push(answer);
        }
        let sent = self.writer.send(Job::Together(pending)).is_ok();
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(match sent {
                true => answer.await.unwrap_or(Err(StoreError::Closed)),
                false => Err(StoreError::Closed),
            });
        }
        results
    }

    /// Round trips this process made to PostgreSQL so far (a statement, a batch of them, or
    /// a flight of pipelined writes counts one; a group-commit transaction's
    /// `BEGIN; SAVEPOINT` is one): divided by the steps run, the
    /// round trips per step. For benchmarks and tests.
    #[doc(hidden)]
    pub fn round_trips() -> u64 {
        db::ROUND_TRIPS.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Steps and entity batches this process's stores refused because the writer did not
    /// hold the lease of their partition (shared mode). For tests.
    #[doc(hidden)]
    pub fn lease_refusals() -> u64 {
        lease::REFUSED.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// This store's worker id in shared mode.
    pub fn worker_id(&self) -> Option<&str> {
        self.leases
            .as_ref()
            .map(|leases| leases.state.worker_id.as_str())
    }

    /// Runs `sql` on a pooled connection (tests: corrupting rows, counting them).
    #[doc(hidden)]
    pub async fn execute_sql(&self, sql: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        Db(&client).batch(sql).await
    }
}

impl PostgresStore {
    /// Runs `sql` on a pooled connection and answers the first column of its first row as an
    /// integer (tests: inserting a stray row, counting rows).
    #[doc(hidden)]
    pub async fn query_i64(&self, sql: &str) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        let row = Db(&client)
            .query_opt(sql, &[])
            .await?
            .ok_or(StoreError::UnexpectedAnswer("query_i64"))?;
        db::col(&row, 0, "query", sql)
    }
}

/// Opens the connection that holds the schema's advisory lock for the store's life
/// (`shared`: the lock many runtimes on the schema hold together).
async fn connect_owner(
    config: &tokio_postgres::Config,
    schema: &str,
    shared: bool,
) -> Result<tokio_postgres::Client, StoreError> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "the store's lock connection ended");
        }
    });
    let row = client
        .query_one(
            if shared {
                "SELECT pg_try_advisory_lock_shared(hashtextextended($1, 0))"
            } else {
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))"
            },
            &[&format!("durable-owner:{schema}")],
        )
        .await?;
    let locked: bool = db::col(&row, 0, "pg_locks", schema)?;
    if !locked {
        return Err(StoreError::Locked {
            path: format!("PostgreSQL schema '{schema}'"),
        });
    }
    Ok(client)
}

impl PostgresStore {
    /// Runs `read` on a pooled connection.
    async fn read<T>(
        &self,
        read: impl AsyncFnOnce(&Db<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let client = self.pool.get().await?;
        read(&Db(&client)).await
    }
}

#[async_trait]
impl Backend for PostgresStore {
    async fn write(&self, write: Write) -> Result<Written, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Job::Write(PendingWrite { write, reply }))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_instance(&self, instance_id: &str) -> Result<Option<InstanceStatus>, StoreError> {
        self.read(async |db| read::instance(db, instance_id).await)
            .await
    }

    async fn read_history(&self, instance_id: &str) -> Result<Vec<HistoryRecord>, StoreError> {
        self.read(async |db| read::history(db, instance_id).await)
            .await
    }

    async fn list_instances(&self, query: &InstanceQuery) -> Result<InstancePage, StoreError> {
        self.read(async |db| read::list(db, query).await).await
    }

    async fn read_current_run(&self, instance_id: &str) -> Result<Option<CurrentRun>, StoreError> {
        self.read(async |db| read::current_run(db, instance_id).await)
            .await
    }

    async fn work_watermarks(&self) -> Result<Watermarks, StoreError> {
        self.read(async |db| read::watermarks(db).await).await
    }

    async fn pending_messages(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<PendingPage<Message>, StoreError> {
        self.read(async |db| read::pending_messages(db, after_id, limit, self.scope()).await)
            .await
    }

    async fn pending_activities(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<PendingPage<ActivityWorkItem>, StoreError> {
        self.read(async |db| read::pending_activities(db, after_id, limit, self.scope()).await)
            .await
    }

    async fn pending_timers(
        &self,
        after: DueKey,
        limit: usize,
    ) -> Result<PendingPage<TimerWorkItem>, StoreError> {
        self.read(async |db| read::pending_timers(db, after, limit, self.scope()).await)
            .await
    }

    async fn load_entity(&self, entity_id: &str) -> Result<EntitySnapshot, StoreError> {
        self.read(async |db| entity::load(db, entity_id).await)
            .await
    }

    async fn read_entity(&self, entity_id: &str) -> Result<Option<EntityRecord>, StoreError> {
        self.read(async |db| entity::read(db, entity_id).await)
            .await
    }

    async fn entities_with_pending(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.read(async |db| entity::with_pending(db, after, limit, self.scope()).await)
            .await
    }

    async fn list_entities(&self, query: &EntityQuery) -> Result<EntityPage, StoreError> {
        self.read(async |db| entity::list(db, query).await).await
    }

    async fn entity_log(&self, entity_id: &str) -> Result<Vec<EntityLogEntry>, StoreError> {
        self.read(async |db| entity::log(db, entity_id).await).await
    }

    fn leases(&self) -> Option<Arc<dyn Leases>> {
        self.leases
            .as_ref()
            .map(|leases| leases.clone() as Arc<dyn Leases>)
    }
}

#[async_trait]
impl Leases for PgLeases {
    fn worker_id(&self) -> &str {
        &self.state.worker_id
    }

    fn ttl(&self) -> Duration {
        self.state.ttl
    }

    fn holds(&self, id: &str) -> bool {
        self.state.holds(id)
    }

    fn lease_of(&self, id: &str) -> Option<LeaseId> {
        self.state.lease_of(id)
    }

    fn leases_held(&self) -> Vec<LeaseId> {
        self.state.leases_held()
    }

    async fn renew(&self) -> Result<LeaseChange, StoreError> {
        lease::renew(&self.pool, &self.state).await
    }

    async fn adopt(&self, limit: usize) -> Result<Adopted, StoreError> {
        adopt::adopt(&self.pool, &self.state, limit).await
    }

    async fn work_signalled(&self) {
        self.state.signal.notified().await;
    }

    async fn release_all(&self) -> Result<(), StoreError> {
        lease::release_all(&self.pool, &self.state).await
    }

    async fn finished_elsewhere(&self) -> Vec<String> {
        self.state.take_finished().await
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .finish()
    }
}
