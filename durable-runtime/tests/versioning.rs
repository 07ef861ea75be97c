//! Versions: several versions of one orchestrator may be registered; a new instance started
//! by name runs the newest, one started through a handle runs that handle's version, and an
//! instance keeps running on the version it started with.

mod support;

use durable_runtime::Payload;
use durable_runtime::prelude::*;
use durable_runtime::store::sqlite::SqliteStore;
use durable_runtime::store::{Backend, NewInstance, Write};
use support::{TestStore, WAIT};

#[orchestrator(name = "greeting", version = "1")]
async fn greeting_v1(_ctx: OrchestrationContext, name: String) -> String {
    format!("hello {name}")
}

#[orchestrator(name = "greeting", version = "2")]
async fn greeting_v2(_ctx: OrchestrationContext, name: String) -> String {
    format!("hello {name}, v2")
}

#[orchestrator(name = "greeting", version = "10")]
async fn greeting_v10(_ctx: OrchestrationContext, name: String) -> String {
    format!("hello {name}, v10")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_instance_runs_the_version_it_started_on() {
    let store = TestStore::new();
    let path = store.path();
    // An instance that started on a version this program no longer has.
    let old = SqliteStore::open(&path).expect("opens");
    old.write(Write::CreateInstance(NewInstance {
        instance_id: "from-v0".into(),
        execution_id: "first-run".into(),
        name: "greeting".into(),
        version: Some("0".into()),
        input: Payload::encode("Ada").expect("encodes"),
        created_ms: 0,
    }))
    .await
    .expect("created");
    drop(old);

    let (runtime, client) = store.start().await;
    let by_name = client
        .start_by_name("greeting", None, "Ada")
        .await
        .expect("start");
    let by_handle = client
        .start(greeting_v1, "Ada".to_string())
        .await
        .expect("start");
    let newest = client
        .wait_for_completion(&by_name, WAIT)
        .await
        .expect("done");
    assert_eq!(newest.version.as_deref(), Some("10"), "10 is newer than 2");
    assert_eq!(
        newest.output_as::<String>().expect("output"),
        "hello Ada, v10"
    );
    let pinned = client
        .wait_for_completion(&by_handle, WAIT)
        .await
        .expect("done");
    assert_eq!(pinned.version.as_deref(), Some("1"));
    assert_eq!(pinned.output_as::<String>().expect("output"), "hello Ada");

    let orphan = client
        .wait_for_completion("from-v0", WAIT)
        .await
        .expect("done");
    assert_eq!(orphan.runtime_status, RuntimeStatus::Failed);
    assert_eq!(
        orphan.failure.expect("failure").message,
        "orchestrator 'greeting' version '0' is not registered in this program (registered: \
         '1', '2', '10'); an instance keeps running on the version it started with, so keep \
         that version registered until its instances finish"
    );
    runtime.shutdown().await;
}
