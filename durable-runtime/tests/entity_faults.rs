//! Entity batches under store faults: a batch whose commit fails before it is applied runs
//! again; one whose commit was applied but answered with an error (the answer lost, as when a
//! connection drops after the commit) must not run again. Signals from the client are applied
//! exactly once either way, on both engine paths.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::store::{StoreError, Write};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use support::entities::until_state;
use support::hooked::{BoxFut, Hook, Phase};
use support::{CACHES, TestStore, cache_settings};

#[derive(Default, Serialize, Deserialize, Debug)]
struct Seen {
    count: u64,
    numbers: BTreeSet<u64>,
}

#[entity]
impl Seen {
    pub fn add(&mut self, n: u64) {
        self.count += 1;
        self.numbers.insert(n);
    }
}

/// Fails every third entity batch before it reaches the store, and answers every third one
/// after it was applied with an error.
fn flaky_batches() -> Hook {
    let batches = Arc::new(AtomicU64::new(0));
    Arc::new(move |phase, write: &Write| -> BoxFut {
        let failure = match write {
            Write::Entity(_) => {
                let n = batches.fetch_add(1, Ordering::Relaxed);
                match (phase, n % 6) {
                    (Phase::Before, 1) => Some(StoreError::Unavailable("injected: before".into())),
                    (Phase::After, 4) => Some(StoreError::Unavailable("injected: after".into())),
                    _ => None,
                }
            }
            _ => None,
        };
        Box::pin(async move { failure })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_whose_commit_fails_before_or_after_applying_run_exactly_once() {
    for cache in CACHES {
        let store = TestStore::new();
        let runtime = cache_settings(cache)(store.hooked_builder(flaky_batches()))
            .write_retry_interval(Duration::from_millis(10))
            .start()
            .await
            .expect("starts");
        let client = runtime.client();
        let id = Seen::entity_id("s");
        let senders = (0..4u64).map(|sender| {
            let client = client.clone();
            let id = id.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    client
                        .signal_entity(&id, Seen::add_op(sender * 1000 + i))
                        .await
                        .expect("durable");
                }
            })
        });
        for sender in futures::future::join_all(senders).await {
            sender.expect("sender");
        }
        until_state::<Seen>(&client, &id, |s| s.is_some_and(|s| s.numbers.len() == 200)).await;
        // A last signal, sent after everything ran: an operation run again after its batch's
        // lost answer would run before it.
        client
            .signal_entity(&id, Seen::add_op(u64::MAX))
            .await
            .expect("durable");
        let seen = until_state::<Seen>(&client, &id, |s| {
            s.is_some_and(|s| s.numbers.contains(&u64::MAX))
        })
        .await
        .expect("state");
        assert_eq!(
            seen.count, 201,
            "cache {cache:?}: an operation was applied twice"
        );
        runtime.shutdown().await;
    }
}

/// Answers the first entity batch, applied, with an error.
fn first_answer_lost() -> Hook {
    let batches = Arc::new(AtomicU64::new(0));
    Arc::new(move |phase, write: &Write| -> BoxFut {
        let failure = match (phase, write) {
            (Phase::After, Write::Entity(_)) if batches.fetch_add(1, Ordering::Relaxed) == 0 => {
                Some(StoreError::Unavailable(
                    "injected: the answer is lost".into(),
                ))
            }
            _ => None,
        };
        Box::pin(async move { failure })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_answer_was_lost_is_not_run_again() {
    for cache in CACHES {
        let store = TestStore::new();
        let runtime = cache_settings(cache)(store.hooked_builder(first_answer_lost()))
            .write_retry_interval(Duration::from_millis(10))
            .start()
            .await
            .expect("starts");
        let client = runtime.client();
        let id = Seen::entity_id("lost");
        client
            .signal_entity(&id, Seen::add_op(1))
            .await
            .expect("durable");
        until_state::<Seen>(&client, &id, |s| s.is_some()).await;
        client
            .signal_entity(&id, Seen::add_op(2))
            .await
            .expect("durable");
        let seen = until_state::<Seen>(&client, &id, |s| s.is_some_and(|s| s.numbers.contains(&2)))
            .await
            .expect("state");
        assert_eq!(
            seen.count, 2,
            "cache {cache:?}: the first operation ran twice"
        );
        runtime.shutdown().await;
    }
}
