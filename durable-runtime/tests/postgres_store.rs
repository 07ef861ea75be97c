//! The PostgreSQL store on its own (feature `postgres`, database at
//! `DURABLE_TEST_POSTGRES_URL`): opening, migrations, the one-runtime-per-schema lock, and
//! what a lost connection does to a write. Without the URL each test says it was skipped.
#![cfg(feature = "postgres")]

mod support;

use durable_runtime::payload::Payload;
use durable_runtime::store::postgres::{PostgresStore, schema::SCHEMA_VERSION};
use durable_runtime::store::{Backend, ErrorClass, NewInstance, StoreError, Write};

fn url(test: &str) -> Option<String> {
    match std::env::var("DURABLE_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            eprintln!("SKIPPED {test}: DURABLE_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

fn create(id: &str) -> Write {
    Write::CreateInstance(NewInstance {
        instance_id: id.into(),
        execution_id: "run".into(),
        name: "o".into(),
        version: None,
        input: Payload::null(),
        created_ms: 0,
    })
}

#[tokio::test]
async fn a_new_schema_is_created_at_the_current_version_and_reopened_as_is() {
    let Some(url) = url("a_new_schema_is_created") else {
        return;
    };
    let schema = support::unique_schema();
    let store = PostgresStore::connect(&url, &schema).await.expect("opens");
    store.write(create("kept")).await.expect("created");
    assert_eq!(
        store
            .query_i64("SELECT version::bigint FROM durable_schema")
            .await
            .expect("reads"),
        i64::from(SCHEMA_VERSION)
    );
    drop(store);
    // Reopened (once the first store's lock connection is gone): nothing migrated again,
    // nothing lost.
    let store = reopen(&url, &schema).await;
    assert!(store.read_instance("kept").await.expect("reads").is_some());
}

/// Opens the store again once the previous one released the schema.
async fn reopen(url: &str, schema: &str) -> PostgresStore {
    let opened = async {
        loop {
            match PostgresStore::connect(url, schema).await {
                Ok(store) => return store,
                Err(StoreError::Locked { .. }) => tokio::task::yield_now().await,
                Err(err) => panic!("does not open again: {err}"),
            }
        }
    };
    tokio::time::timeout(support::WAIT, opened)
        .await
        .expect("the previous store releases the schema")
}

#[tokio::test]
async fn a_second_store_on_the_same_schema_is_refused() {
    let Some(url) = url("a_second_store_on_the_same_schema_is_refused") else {
        return;
    };
    let schema = support::unique_schema();
    let first = PostgresStore::connect(&url, &schema).await.expect("opens");
    let second = PostgresStore::connect(&url, &schema).await;
    assert!(
        matches!(second, Err(StoreError::Locked { .. })),
        "{second:?}"
    );
    // Another schema in the same database is another app: it opens.
    let other = PostgresStore::connect(&url, &support::unique_schema()).await;
    assert!(other.is_ok(), "{other:?}");
    drop(first);
}

#[tokio::test]
async fn a_newer_or_foreign_schema_is_refused_and_left_alone() {
    let Some(url) = url("a_newer_or_foreign_schema_is_refused") else {
        return;
    };
    let schema = support::unique_schema();
    let store = PostgresStore::connect(&url, &schema).await.expect("opens");
    store
        .execute_sql(&format!(
            "UPDATE durable_schema SET version = {}",
            SCHEMA_VERSION + 1
        ))
        .await
        .expect("stamps");
    let foreign = support::unique_schema();
    store
        .execute_sql(&format!(
            "CREATE SCHEMA {foreign}; CREATE TABLE {foreign}.orders (id INT)"
        ))
        .await
        .expect("creates");
    drop(store);
    let refused = async {
        loop {
            match PostgresStore::connect(&url, &schema).await {
                Err(StoreError::Locked { .. }) => tokio::task::yield_now().await,
                other => return other,
            }
        }
    };
    let newer = tokio::time::timeout(support::WAIT, refused)
        .await
        .expect("answers");
    match newer {
        Err(StoreError::IncompatibleSchema { reason, .. }) => {
            assert!(reason.contains("newer release"), "{reason}")
        }
        other => panic!("a newer schema must be refused: {other:?}"),
    }
    let not_ours = PostgresStore::connect(&url, &foreign).await;
    match not_ours {
        Err(StoreError::IncompatibleSchema { reason, .. }) => {
            assert!(reason.contains("orders"), "{reason}")
        }
        other => panic!("a foreign schema must be refused: {other:?}"),
    }
}

#[tokio::test]
async fn bad_urls_and_schema_names_are_typed_errors() {
    let bad_name = PostgresStore::connect("postgres://localhost/x", "Robert'); DROP").await;
    assert!(
        matches!(bad_name, Err(StoreError::Refused(_))),
        "{bad_name:?}"
    );
    let bad_url = PostgresStore::connect("mysql://nope", "app").await;
    assert!(
        matches!(bad_url, Err(StoreError::Refused(_))),
        "{bad_url:?}"
    );
    // Nothing listens on port 1: transient, not fatal.
    let down = PostgresStore::connect("postgres://postgres@127.0.0.1:1/postgres", "app").await;
    match down {
        Err(err) => assert_eq!(err.class(), ErrorClass::Transient, "{err}"),
        Ok(_) => panic!("nothing listens on port 1"),
    }
}

#[tokio::test]
async fn a_value_postgres_cannot_store_is_fatal_and_spares_the_rest_of_the_batch() {
    let Some(url) = url("a_value_postgres_cannot_store_is_fatal") else {
        return;
    };
    let store = PostgresStore::connect(&url, &support::unique_schema())
        .await
        .expect("opens");
    // PostgreSQL text cannot hold a NUL character.
    let results = store
        .write_batch(vec![create("a"), create("b\0c"), create("d")])
        .await;
    let err = results[1].as_ref().expect_err("refused");
    assert_eq!(err.class(), ErrorClass::Fatal, "{err}");
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(store.read_instance("a").await.expect("reads").is_some());
    assert!(store.read_instance("d").await.expect("reads").is_some());
    assert_eq!(
        store
            .pending_messages(0, 10)
            .await
            .expect("reads")
            .items
            .len(),
        2
    );
}

/// The writes of a batch go to the server in flights; one refused in the middle of a flight
/// is undone alone (its savepoint), and the writes after it, which the server had already
/// run on top of it, are sent again: each answered as if applied one by one.
#[tokio::test]
async fn a_write_refused_inside_a_flight_spares_the_writes_before_and_after_it() {
    let Some(url) = url("a_write_refused_inside_a_flight") else {
        return;
    };
    let store = PostgresStore::connect(&url, &support::unique_schema())
        .await
        .expect("opens");
    store.write(create("taken")).await.expect("created");
    // More writes than one flight holds, with refusals early, in the middle and last.
    let mut ids: Vec<String> = (0..150).map(|n| format!("i{n}")).collect();
    ids.insert(1, "taken".into());
    ids.insert(70, "i3".into());
    ids.push("i149".into());
    let results = store
        .write_batch(ids.iter().map(|id| create(id)).collect())
        .await;
    for (position, (id, result)) in ids.iter().zip(&results).enumerate() {
        let refused = matches!(position, 1 | 70) || position == ids.len() - 1;
        match result {
            Err(StoreError::InstanceExists(existing)) if refused => assert_eq!(existing, id),
            Ok(_) if !refused => {}
            other => panic!("write {position} ({id}): {other:?}"),
        }
    }
    // One start each, none twice, and the message ids the writes answered are the stored ones.
    let pending = store.pending_messages(0, 1000).await.expect("reads").items;
    assert_eq!(pending.len(), 151);
    for result in results.iter().flatten() {
        let durable_runtime::store::Written::Instance(message) = result else {
            panic!("a create answers its start: {result:?}");
        };
        assert!(
            pending
                .iter()
                .any(|stored| stored.id == message.id && stored.instance_id == message.instance_id),
            "{message:?} is stored"
        );
    }
}

/// A schema of version 1 (the frozen first migration), with work of every kind in it, opened
/// by a shared store: migrated to the current version in place, every row kept, each given
/// its partition, and all of it adopted by the first worker to take the leases.
#[tokio::test]
async fn a_version_1_schema_is_migrated_and_its_work_adopted_by_a_shared_store() {
    use durable_runtime::history::HistoryEvent;
    use durable_runtime::store::postgres::{SharedOptions, partition_of, schema::MIGRATIONS};
    let Some(url) = url("a_version_1_schema_is_migrated") else {
        return;
    };
    let schema = support::unique_schema();
    let event = serde_json::to_string(&HistoryEvent::EventRaised {
        name: "e".into(),
        input: Payload::null(),
    })
    .expect("encodes");
    {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connects");
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "CREATE SCHEMA {schema}; SET search_path = {schema}; {}
                 CREATE TABLE durable_schema (version INTEGER NOT NULL);
                 INSERT INTO durable_schema (version) VALUES (1);",
                MIGRATIONS[0]
            ))
            .await
            .expect("a version 1 schema");
        client
            .execute(
                "INSERT INTO instances (instance_id, name, status, created_ms, updated_ms,
                                        execution_id)
                 VALUES ('old', 'o', 'Running', 0, 0, 'run')",
                &[],
            )
            .await
            .expect("instance");
        client
            .execute(
                "INSERT INTO instance_inputs (instance_id, input) VALUES ('old', 'null')",
                &[],
            )
            .await
            .expect("input");
        client
            .execute(
                "INSERT INTO messages (instance_id, event, execution_id) VALUES ('old', $1, '')",
                &[&event],
            )
            .await
            .expect("message");
        client
            .execute(
                "INSERT INTO activities (instance_id, task_id, name, input, execution_id)
                 VALUES ('old', 1, 'a', 'null', 'run')",
                &[],
            )
            .await
            .expect("activity");
        client
            .execute(
                "INSERT INTO timers (instance_id, task_id, fire_at_ms, execution_id)
                 VALUES ('old', 2, 5, 'run')",
                &[],
            )
            .await
            .expect("timer");
        client
            .execute(
                "INSERT INTO entity_messages (entity_id, operation, input, created_ms)
                 VALUES ('@counter@k', 'add', '1', 0)",
                &[],
            )
            .await
            .expect("entity message");
    }
    let store = PostgresStore::connect_shared(&url, &schema, SharedOptions::default())
        .await
        .expect("opens and migrates");
    assert_eq!(
        store
            .query_i64("SELECT version::bigint FROM durable_schema")
            .await
            .expect("reads"),
        i64::from(SCHEMA_VERSION)
    );
    assert_eq!(
        store
            .query_i64("SELECT part::bigint FROM messages")
            .await
            .expect("reads"),
        i64::from(partition_of("old")),
        "SQL and Rust agree on the partition"
    );
    assert_eq!(
        store
            .query_i64("SELECT part::bigint FROM entity_messages")
            .await
            .expect("reads"),
        i64::from(partition_of("@counter@k"))
    );
    assert!(store.read_instance("old").await.expect("reads").is_some());
    let leases = store.leases().expect("shared");
    assert_eq!(leases.renew().await.expect("renews").gained.len(), 16);
    let adopted = leases.adopt(10).await.expect("adopts");
    assert_eq!(adopted.messages.len(), 1);
    assert_eq!(
        adopted.messages[0].event,
        HistoryEvent::EventRaised {
            name: "e".into(),
            input: Payload::null(),
        }
    );
    assert_eq!(adopted.activities.len(), 1);
    assert_eq!(adopted.activities[0].task_id, 1);
    assert_eq!(adopted.timers.len(), 1);
    assert_eq!(adopted.timers[0].fire_at_ms, 5);
    assert_eq!(adopted.entity_messages.len(), 1);
    assert_eq!(adopted.entity_messages[0].message.operation, "add");
    assert!(adopted.corrupt.is_empty());
    assert!(
        leases.adopt(10).await.expect("adopts").is_empty(),
        "adopted once"
    );
}

/// Shared stores open together on one schema; a store that wants it alone is refused while
/// they hold it, and the other way round.
#[tokio::test]
async fn shared_stores_exclude_a_sole_owner_and_the_other_way_round() {
    use durable_runtime::store::postgres::SharedOptions;
    let Some(url) = url("shared_stores_exclude_a_sole_owner") else {
        return;
    };
    let schema = support::unique_schema();
    let a = PostgresStore::connect_shared(&url, &schema, SharedOptions::default())
        .await
        .expect("opens");
    let b = PostgresStore::connect_shared(&url, &schema, SharedOptions::default())
        .await
        .expect("a second shared store opens too");
    assert_ne!(a.worker_id(), b.worker_id());
    let alone = PostgresStore::connect(&url, &schema).await;
    assert!(matches!(alone, Err(StoreError::Locked { .. })), "{alone:?}");
    drop((a, b));
    let alone = reopen(&url, &schema).await;
    let shared = PostgresStore::connect_shared(&url, &schema, SharedOptions::default()).await;
    assert!(
        matches!(shared, Err(StoreError::Locked { .. })),
        "{shared:?}"
    );
    drop(alone);
    // Bad options are typed errors.
    let bad_id = SharedOptions {
        worker_id: Some("no spaces".into()),
        ..SharedOptions::default()
    };
    let refused = PostgresStore::connect_shared(&url, &support::unique_schema(), bad_id).await;
    assert!(
        matches!(refused, Err(StoreError::Refused(_))),
        "{refused:?}"
    );
    let short = SharedOptions {
        lease_ttl: std::time::Duration::from_millis(10),
        ..SharedOptions::default()
    };
    let refused = PostgresStore::connect_shared(&url, &support::unique_schema(), short).await;
    assert!(
        matches!(refused, Err(StoreError::Refused(_))),
        "{refused:?}"
    );
}
