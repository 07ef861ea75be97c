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
//! One runtime at a time works on a schema: the store holds a session advisory lock on it for
//! its whole life (on a connection of its own), and a second runtime is refused with
//! [`StoreError::Locked`], as a second process on an SQLite file is. The lock goes with the
//! writer: released only after everything queued before the store was dropped is committed.
//! A lock connection broken by a server restart is not taken again (a warning is logged): the
//! writes stay fenced, but nothing then stops a second runtime on the schema. Sharing one schema among
//! many worker processes needs leased work items (see the `store` module documentation), which
//! this backend does not have yet.

mod apply;
mod children;
mod continue_as_new;
mod db;
mod entity;
mod error;
mod manage;
mod purge;
mod read;
mod rewind;
pub mod schema;
mod writer;

use super::{
    ActivityWorkItem, Backend, DueKey, EntityLogEntry, EntityPage, EntityQuery, EntityRecord,
    EntitySnapshot, Message, PendingPage, StoreError, TimerWorkItem, Watermarks, Write, Written,
};
use crate::history::HistoryRecord;
use crate::instance::{InstancePage, InstanceQuery, InstanceStatus, RuntimeStatus};
use async_trait::async_trait;
use db::Db;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;
use writer::{Job, PendingWrite};

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
        if !schema::valid_schema_name(schema) {
            return Err(StoreError::Refused(format!(
                "'{schema}' is not a valid schema name (lower-case letters, digits and _, \
                 starting with a letter or _, at most 63 characters)"
            )));
        }
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|err| StoreError::Refused(format!("not a PostgreSQL URL: {err}")))?;
        // Every statement names its tables unqualified: the schema is the search path.
        config.options(format!("-c search_path={schema}"));
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
        let owner = connect_owner(&config, schema).await?;
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
        }
        let (writer, queue) = mpsc::unbounded_channel();
        let writer_pool = pool.clone();
        tokio::spawn(async move {
            writer::run_writer(writer_pool, queue).await;
            // Only once everything queued is committed does the schema go to the next runtime
            // (as the embedded store releases its file only after its writer drained).
            drop(owner);
        });
        Ok(PostgresStore {
            schema: schema.to_string(),
            pool,
            writer,
        })
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

/// Opens the connection that holds the schema's advisory lock for the store's life.
async fn connect_owner(
    config: &tokio_postgres::Config,
    schema: &str,
) -> Result<tokio_postgres::Client, StoreError> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "the store's lock connection ended");
        }
    });
    let row = client
        .query_one(
            "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
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

    async fn read_runtime_status(
        &self,
        instance_id: &str,
    ) -> Result<Option<RuntimeStatus>, StoreError> {
        self.read(async |db| read::runtime_status(db, instance_id).await)
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
        self.read(async |db| read::pending_messages(db, after_id, limit).await)
            .await
    }

    async fn pending_activities(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<PendingPage<ActivityWorkItem>, StoreError> {
        self.read(async |db| read::pending_activities(db, after_id, limit).await)
            .await
    }

    async fn pending_timers(
        &self,
        after: DueKey,
        limit: usize,
    ) -> Result<PendingPage<TimerWorkItem>, StoreError> {
        self.read(async |db| read::pending_timers(db, after, limit).await)
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
        self.read(async |db| entity::with_pending(db, after, limit).await)
            .await
    }

    async fn list_entities(&self, query: &EntityQuery) -> Result<EntityPage, StoreError> {
        self.read(async |db| entity::list(db, query).await).await
    }

    async fn entity_log(&self, entity_id: &str) -> Result<Vec<EntityLogEntry>, StoreError> {
        self.read(async |db| entity::log(db, entity_id).await).await
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .finish()
    }
}
