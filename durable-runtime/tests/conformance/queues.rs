//! Conformance: queues.

use crate::*;
use durable_runtime::store::{DueKey, ErrorClass};

async fn a_repeated_idempotency_key_records_the_event_once(store: Subject) {
    store.write(create("i")).await.expect("created");
    store.write(create("j")).await.expect("created");
    let first = store.write(raise("i", Some("k"))).await.expect("raised");
    assert!(matches!(first, Written::Delivered(Some(_))), "{first:?}");
    let again = store.write(raise("i", Some("k"))).await.expect("answered");
    assert_eq!(again, Written::Delivered(None));
    // The key is per instance; no key means no deduplication.
    let other = store.write(raise("j", Some("k"))).await.expect("raised");
    assert!(matches!(other, Written::Delivered(Some(_))), "{other:?}");
    for _ in 0..2 {
        let plain = store.write(raise("i", None)).await.expect("raised");
        assert!(matches!(plain, Written::Delivered(Some(_))), "{plain:?}");
    }
    // Two starts, one keyed event for each instance, two plain events.
    assert_eq!(store.pending_message_ids().await.len(), 6);
    // Within one batch too.
    let results = store
        .write_batch(vec![raise("j", Some("z")), raise("j", Some("z"))])
        .await;
    assert!(
        matches!(results[0], Ok(Written::Delivered(Some(_)))),
        "{results:?}"
    );
    assert!(
        matches!(results[1], Ok(Written::Delivered(None))),
        "{results:?}"
    );
}

async fn completing_an_activity_moves_its_result_into_a_message_once(store: Subject) {
    store.write(create("i")).await.expect("created");
    let mut schedule = step("i", 0);
    schedule.activities = vec![(7, "act".into(), Payload::null())];
    let Written::Step(work) = store.write(Write::Step(schedule)).await.expect("applies") else {
        panic!("not a step answer");
    };
    let item = work.activities[0].id;
    let complete = || Write::CompleteActivity {
        work_item_id: item,
        instance_id: "i".into(),
        event: HistoryEvent::TaskCompleted {
            task_id: 7,
            result: Payload::null(),
        },
    };
    let Written::Delivered(Some(message)) = store.write(complete()).await.expect("done") else {
        panic!("no message");
    };
    assert!(matches!(
        message.event,
        HistoryEvent::TaskCompleted { task_id: 7, .. }
    ));
    assert!(store.pending_message_ids().await.contains(&message.id));
    assert!(
        store
            .pending_activities(0, 10)
            .await
            .expect("reads")
            .items
            .is_empty()
    );
    let twice = store.write(complete()).await.expect("answered");
    assert_eq!(twice, Written::Delivered(None));
    assert_eq!(store.pending_message_ids().await.len(), 2);
}

async fn the_runtime_status_is_read_alone_and_an_unknown_one_is_corrupt(store: Subject) {
    store.write(create("i")).await.expect("created");
    let status = store.read_runtime_status("i").await.expect("reads");
    assert_eq!(status, Some(RuntimeStatus::Pending));
    assert_eq!(store.read_runtime_status("x").await.expect("reads"), None);
    store
        .exec(
            "UPDATE instances SET status = 'Sleeping';
             UPDATE instance_inputs SET input = 'not json';",
        )
        .await;
    let err = store.read_runtime_status("i").await.expect_err("corrupt");
    assert_eq!(err.class(), ErrorClass::Corrupt, "{err}");
    assert!(err.to_string().contains("Sleeping"), "{err}");
}

async fn timers_are_read_in_due_order_a_page_at_a_time(store: Subject) {
    store.write(create("i")).await.expect("created");
    let mut arm = step("i", 0);
    // Armed out of due order, two due together.
    arm.timers = vec![(1, 3_000), (2, 1_000), (3, 2_000), (4, 1_000)];
    store.write(Write::Step(arm)).await.expect("applies");
    let mut after = DueKey::FIRST;
    let mut due = Vec::new();
    loop {
        let page = store.pending_timers(after, 3).await.expect("reads");
        let Some(last) = page.items.last() else { break };
        after = last.due_key();
        due.extend(page.items.iter().map(|t| (t.fire_at_ms, t.task_id)));
    }
    assert_eq!(due, vec![(1_000, 2), (1_000, 4), (2_000, 3), (3_000, 1)]);
}

crate::conformance! {
    a_fan_out_step_enqueues_each_activity_once_under_its_own_id,
    pending_messages_are_read_in_pages_and_corrupt_rows_are_reported_not_fatal,
    messages_keep_their_arrival_order,
    a_repeated_idempotency_key_records_the_event_once,
    completing_an_activity_moves_its_result_into_a_message_once,
    the_runtime_status_is_read_alone_and_an_unknown_one_is_corrupt,
    timers_are_read_in_due_order_a_page_at_a_time,
}

async fn pending_messages_are_read_in_pages_and_corrupt_rows_are_reported_not_fatal(
    store: Subject,
) {
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(message_id(
            store
                .write(create(&format!("i{n}")))
                .await
                .expect("created"),
        ));
    }
    store
        .exec(&format!(
            "UPDATE messages SET event = 'not json' WHERE id = {};
             UPDATE messages SET execution_id = 'x', event = '{{\"Nope\": 1}}' WHERE id = {};",
            ids[1], ids[3]
        ))
        .await;
    let first = store.pending_messages(0, 2).await.expect("reads");
    assert_eq!(first.last_id, Some(ids[1]));
    assert_eq!(
        first.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
    assert_eq!(first.corrupt.len(), 1);
    assert_eq!(first.corrupt[0].id, ids[1]);
    assert_eq!(first.corrupt[0].instance_id.as_deref(), Some("i1"));
    let second = store.pending_messages(ids[1], 2).await.expect("reads");
    assert_eq!(
        second.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[2]]
    );
    assert_eq!(second.corrupt[0].id, ids[3]);
    let third = store.pending_messages(ids[3], 2).await.expect("reads");
    assert_eq!(
        third.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[4]]
    );
    let end = store.pending_messages(ids[4], 2).await.expect("reads");
    assert_eq!(end.last_id, None);
    assert!(end.items.is_empty() && end.corrupt.is_empty());
}

/// Messages are read back in the order they were written: an instance's events keep their
/// arrival order across a restart.
async fn messages_keep_their_arrival_order(store: Subject) {
    store.write(create("i")).await.expect("created");
    let mut sent = Vec::new();
    for n in 0..20 {
        let raised = Write::RaiseEvent {
            instance_id: "i".into(),
            name: format!("e{n}"),
            input: Payload::null(),
            idempotency_key: None,
        };
        sent.push(message_id(store.write(raised).await.expect("raised")));
    }
    let page = store.pending_messages(0, 100).await.expect("reads");
    let names: Vec<String> = page
        .items
        .iter()
        .filter_map(|m| match &m.event {
            HistoryEvent::EventRaised { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(names, (0..20).map(|n| format!("e{n}")).collect::<Vec<_>>());
    let ids: Vec<i64> = page.items.iter().map(|m| m.id).skip(1).collect();
    assert_eq!(ids, sent);
}

/// A fan-out step's activities come back with their own ids, each matched to its task, in the
/// step's order; the same rows are what recovery reads.
async fn a_fan_out_step_enqueues_each_activity_once_under_its_own_id(store: Subject) {
    store.write(create("i")).await.expect("created");
    let mut fan_out = step("i", 0);
    fan_out.activities = (0..50u64)
        .map(|n| {
            (
                n * 3 + 1,
                format!("act{n}"),
                Payload::encode(&n).expect("encodes"),
            )
        })
        .collect();
    let Written::Step(work) = store.write(Write::Step(fan_out)).await.expect("applies") else {
        panic!("a step answers with its work");
    };
    assert_eq!(work.activities.len(), 50);
    for (n, item) in (0u64..).zip(&work.activities) {
        assert_eq!(item.task_id, n * 3 + 1);
        assert_eq!(item.name, format!("act{n}"));
    }
    let stored = store.pending_activities(0, 100).await.expect("reads").items;
    let mut by_id: Vec<(i64, u64, String)> = stored
        .iter()
        .map(|a| (a.id, a.task_id, a.name.clone()))
        .collect();
    let mut answered: Vec<(i64, u64, String)> = work
        .activities
        .iter()
        .map(|a| (a.id, a.task_id, a.name.clone()))
        .collect();
    by_id.sort();
    answered.sort();
    assert_eq!(by_id, answered, "the answer names the stored rows");
}
