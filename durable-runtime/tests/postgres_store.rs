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
