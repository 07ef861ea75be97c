//! Two functions registered under one name stop the runtime at startup, naming both.

mod support;

use durable_runtime::prelude::*;
use support::TestStore;

#[activity(name = "shared_name")]
async fn first() -> u32 {
    1
}

#[activity(name = "shared_name")]
async fn second() -> u32 {
    2
}

#[tokio::test]
async fn duplicate_names_are_a_startup_error_naming_both() {
    let store = TestStore::new();
    let err = match store.builder().start().await {
        Ok(_) => panic!("duplicate names must be refused"),
        Err(err) => err.to_string(),
    };
    assert!(
        err.starts_with("two activity functions are registered as 'shared_name'"),
        "{err}"
    );
    let file = "durable-runtime/tests/duplicate_registration.rs";
    assert!(
        err.contains(&format!("{file}:8")) && err.contains(&format!("{file}:13")),
        "{err}"
    );
    // The functions themselves are fine to call.
    assert_eq!(first().await + second().await, 3);
}
