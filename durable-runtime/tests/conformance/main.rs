//! The conformance suite: one set of store-level tests, written against the `Backend` trait,
//! run against the embedded SQLite store and against PostgreSQL (feature `postgres`, with
//! `DURABLE_TEST_POSTGRES_URL` set; each test gets a schema of its own, so they run in
//! parallel). Without the URL the PostgreSQL half says so on one line per test and passes
//! nothing silently: it asserts nothing, and CI always sets the URL (`.ci/run`).
//!
//! Organised by concern: atomicity (a write applies whole or not at all, and a batch's writes
//! fail alone), fencing (instance locking by run, history length and status), leases (instance locking
//! across runtimes and lease expiry), queues (work
//! consumed exactly once, read in order, corrupt rows reported), children
//! (sub-orchestrations), management (client operations), entities, and runtime (the engine
//! on top of each store, hot and replayed, across a restart).
//!
//! The runtime-level suite (`tests/*.rs`) runs on PostgreSQL too with
//! `DURABLE_TEST_BACKEND=postgres` (see `tests/support`).

mod atomicity;
mod children;
mod entities;
mod fencing;
mod leases;
mod management;
mod queues;
mod runtime;

use durable_runtime::failure::FailureDetails;
use durable_runtime::history::HistoryEvent;
use durable_runtime::instance::RuntimeStatus;
use durable_runtime::payload::Payload;
use durable_runtime::store::sqlite::SqliteStore;
use durable_runtime::store::{Backend, NewInstance, StepCommit, StoreError, Write, Written};
use std::sync::Arc;

/// A store under test.
pub(crate) enum Subject {
    Sqlite {
        store: Arc<SqliteStore>,
        _dir: tempfile::TempDir,
    },
    #[cfg(feature = "postgres")]
    Postgres(Arc<durable_runtime::store::postgres::PostgresStore>),
}

impl std::ops::Deref for Subject {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        match self {
            Subject::Sqlite { store, .. } => &**store,
            #[cfg(feature = "postgres")]
            Subject::Postgres(store) => &**store,
        }
    }
}

impl Subject {
    pub(crate) fn sqlite() -> Subject {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(dir.path().join("s.db")).expect("opens");
        Subject::Sqlite {
            store: Arc::new(store),
            _dir: dir,
        }
    }

    /// A PostgreSQL store in a schema of its own, or `None` (said on one line) when the
    /// database is not configured.
    pub(crate) async fn postgres(test: &str) -> Option<Subject> {
        #[cfg(feature = "postgres")]
        {
            let Ok(url) = std::env::var("DURABLE_TEST_POSTGRES_URL") else {
                eprintln!("SKIPPED {test} on PostgreSQL: DURABLE_TEST_POSTGRES_URL is not set");
                return None;
            };
            let schema = unique_schema();
            let store = durable_runtime::store::postgres::PostgresStore::connect(&url, &schema)
                .await
                .expect("the PostgreSQL store opens");
            Some(Subject::Postgres(Arc::new(store)))
        }
        #[cfg(not(feature = "postgres"))]
        {
            eprintln!("SKIPPED {test} on PostgreSQL: built without the `postgres` feature");
            None
        }
    }

    /// Another fresh store of the same kind.
    pub(crate) async fn fresh(&self) -> Subject {
        match self {
            Subject::Sqlite { .. } => Subject::sqlite(),
            #[cfg(feature = "postgres")]
            Subject::Postgres(_) => Subject::postgres("fresh").await.expect("configured"),
        }
    }

    /// The store as the runtime takes it.
    pub(crate) fn backend(&self) -> Arc<dyn Backend> {
        match self {
            Subject::Sqlite { store, .. } => store.clone(),
            #[cfg(feature = "postgres")]
            Subject::Postgres(store) => store.clone(),
        }
    }

    pub(crate) async fn write_batch(&self, writes: Vec<Write>) -> Vec<Result<Written, StoreError>> {
        match self {
            Subject::Sqlite { store, .. } => store.write_batch(writes).await,
            #[cfg(feature = "postgres")]
            Subject::Postgres(store) => store.write_batch(writes).await,
        }
    }

    /// Runs `sql` behind the store's back (corrupting rows); SQL both stores understand.
    pub(crate) async fn exec(&self, sql: &str) {
        match self {
            Subject::Sqlite { store, .. } => {
                let raw = rusqlite::Connection::open(store.path()).expect("opens");
                raw.execute_batch(sql).expect("runs");
            }
            #[cfg(feature = "postgres")]
            Subject::Postgres(store) => store.execute_sql(sql).await.expect("runs"),
        }
    }

    /// Runs `sql` behind the store's back; the integer it answers.
    pub(crate) async fn sql_i64(&self, sql: &str) -> i64 {
        match self {
            Subject::Sqlite { store, .. } => {
                let raw = rusqlite::Connection::open(store.path()).expect("opens");
                raw.query_row(sql, [], |row| row.get(0)).expect("runs")
            }
            #[cfg(feature = "postgres")]
            Subject::Postgres(store) => store.query_i64(sql).await.expect("runs"),
        }
    }

    pub(crate) async fn pending_message_ids(&self) -> Vec<i64> {
        let page = self.pending_messages(0, 1000).await.expect("reads");
        page.items.iter().map(|m| m.id).collect()
    }
}

/// A schema name no other test (of this or another process) uses.
#[cfg(feature = "postgres")]
pub(crate) fn unique_schema() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "c_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000_000
    )
}

/// Declares, for each async `fn name(store: Subject)`, a module `name` with a test per
/// backend: `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::Subject::sqlite()).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(store) = $crate::Subject::postgres(stringify!($name)).await {
                        super::$name(store).await
                    }
                }
            }
        )*
    };
}

pub(crate) fn create(id: &str) -> Write {
    Write::CreateInstance(NewInstance {
        instance_id: id.into(),
        execution_id: RUN.into(),
        name: "o".into(),
        version: None,
        input: Payload::null(),
        created_ms: 0,
    })
}

/// The run every test instance is on.
pub(crate) const RUN: &str = "run-1";

pub(crate) fn step(id: &str, first_seq: u64) -> StepCommit {
    StepCommit {
        instance_id: id.to_string(),
        execution_id: RUN.into(),
        first_seq,
        timestamp_ms: 1,
        events: vec![HistoryEvent::OrchestratorStarted],
        consumed: Vec::new(),
        completed_activities: Vec::new(),
        fired_timers: Vec::new(),
        activities: Vec::new(),
        timers: Vec::new(),
        children: Vec::new(),
        status: Some(RuntimeStatus::Running),
        output: None,
        failure: None,
        custom_status: None,
        continue_as_new: None,
    }
}

pub(crate) fn raise(id: &str, key: Option<&str>) -> Write {
    Write::RaiseEvent {
        instance_id: id.into(),
        name: "e".into(),
        input: Payload::null(),
        idempotency_key: key.map(str::to_string),
    }
}

pub(crate) fn message_id(written: Written) -> i64 {
    match written {
        Written::Instance(message) | Written::Delivered(Some(message)) => message.id,
        other => panic!("no message in {other:?}"),
    }
}

pub(crate) fn failure(message: &str) -> FailureDetails {
    FailureDetails::new(message)
}
