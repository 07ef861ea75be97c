//! Conformance: atomicity.

use crate::*;
use durable_runtime::store::DueKey;

async fn a_step_recording_a_result_twice_is_refused_whole(store: Subject) {
    store.write(create("i")).await.expect("created");
    let mut twice = step("i", 0);
    twice.completed_activities = vec![404];
    let err = store.write(Write::Step(twice)).await.expect_err("gone");
    assert!(
        matches!(err, StoreError::AlreadyRecorded(ref ids) if ids == &[404]),
        "{err}"
    );
    // Nothing of the refused step was applied: the same step applies cleanly without it.
    assert!(store.read_history("i").await.expect("reads").is_empty());
    store
        .write(Write::Step(step("i", 0)))
        .await
        .expect("applies");
    assert_eq!(store.read_history("i").await.expect("reads").len(), 1);
}

async fn a_step_consuming_a_message_already_gone_is_refused_whole(store: Subject) {
    let started = message_id(store.write(create("i")).await.expect("created"));
    let event = message_id(store.write(raise("i", None)).await.expect("raised"));
    let mut both = step("i", 0);
    both.consumed = vec![started, event + 100];
    both.timers = vec![(1, 5)];
    let err = store.write(Write::Step(both)).await.expect_err("fenced");
    assert!(
        matches!(err, StoreError::MessagesGone(ref gone) if gone == &[event + 100]),
        "{err}"
    );
    assert_eq!(store.pending_message_ids().await, vec![started, event]);
    assert!(store.read_history("i").await.expect("reads").is_empty());
    let timers = store
        .pending_timers(DueKey::FIRST, 10)
        .await
        .expect("reads");
    assert!(timers.items.is_empty());
}

crate::conformance! {
    a_refused_write_in_a_batch_spares_the_others,
    a_step_refused_late_leaves_nothing_behind,
    a_step_recording_a_result_twice_is_refused_whole,
    a_step_consuming_a_message_already_gone_is_refused_whole,
}

/// A write refused in a batch (a duplicate id) is undone alone: the writes before and after it
/// in the same transaction commit.
async fn a_refused_write_in_a_batch_spares_the_others(store: Subject) {
    store.write(create("a")).await.expect("created");
    let results = store
        .write_batch(vec![
            create("b"),
            create("a"),
            create("c"),
            raise("b", None),
        ])
        .await;
    assert!(results[0].is_ok(), "{results:?}");
    assert!(
        matches!(results[1], Err(StoreError::InstanceExists(ref id)) if id == "a"),
        "{results:?}"
    );
    assert!(results[2].is_ok() && results[3].is_ok(), "{results:?}");
    for id in ["a", "b", "c"] {
        assert!(store.read_instance(id).await.expect("reads").is_some());
    }
    // a's start, b's and c's, and b's event: the refused create added no second start.
    assert_eq!(store.pending_message_ids().await.len(), 4);
}

/// A step's work (history, activities, timers, status) appears whole or not at all: a step
/// refused at its last check leaves nothing of its first changes behind.
async fn a_step_refused_late_leaves_nothing_behind(store: Subject) {
    let started = message_id(store.write(create("i")).await.expect("created"));
    let mut step = step("i", 0);
    step.consumed = vec![started];
    step.activities = vec![(1, "a".into(), Payload::null())];
    step.timers = vec![(2, 10)];
    step.custom_status = Some(Payload::encode(&"busy").expect("encodes"));
    // The timer to record is not there: refused after the messages were consumed.
    step.fired_timers = vec![999_999];
    let err = store.write(Write::Step(step)).await.expect_err("refused");
    assert!(matches!(err, StoreError::TimersGone(_)), "{err}");
    assert_eq!(store.pending_message_ids().await, vec![started]);
    assert!(store.read_history("i").await.expect("reads").is_empty());
    assert!(
        store
            .pending_activities(0, 10)
            .await
            .expect("reads")
            .items
            .is_empty()
    );
    let status = store
        .read_instance("i")
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(status.runtime_status, RuntimeStatus::Pending);
    assert_eq!(status.custom_status, None);
}
