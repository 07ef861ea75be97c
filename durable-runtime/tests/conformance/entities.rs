//! Conformance: entity operations are queued, committed in fenced batches, logged, and purged.

use crate::*;
use durable_runtime::store::{
    EntityCommit, EntityLogEntry, EntityQuery, EntityReply, EntityState, NewEntityMessage,
};

fn signal(entity_id: &str, operation: &str) -> Write {
    Write::SignalEntity(NewEntityMessage {
        entity_id: entity_id.into(),
        operation: operation.into(),
        input: Payload::encode(&1).expect("encodes"),
        sender: String::new(),
        created_ms: 1,
        reply: None,
    })
}

fn batch(entity_id: &str, version: u64, consumed: Vec<i64>, state: i64) -> EntityCommit {
    EntityCommit {
        entity_id: entity_id.into(),
        name: "counter".into(),
        expected_version: version,
        log: consumed
            .iter()
            .map(|_| EntityLogEntry {
                operation: "add".into(),
                sender: String::new(),
                ok: true,
                error: None,
                timestamp_ms: 2,
            })
            .collect(),
        consumed,
        state: EntityState::Set(Payload::encode(&state).expect("encodes")),
        locked_by: None,
        signals: Vec::new(),
        starts: Vec::new(),
        responses: Vec::new(),
        timestamp_ms: 2,
    }
}

async fn entity_batches_are_fenced_by_version_and_consume_once(store: Subject) {
    let id = "@counter@a";
    for _ in 0..3 {
        store.write(signal(id, "add")).await.expect("queued");
    }
    let snapshot = store.load_entity(id).await.expect("loads");
    assert_eq!(snapshot.version, 0);
    assert_eq!(snapshot.pending.len(), 3);
    let ids: Vec<i64> = snapshot.pending.iter().map(|m| m.id).collect();
    store
        .write(Write::Entity(batch(id, 0, ids[..2].to_vec(), 2)))
        .await
        .expect("commits");
    // The same batch again (a worker that lost its answer) is fenced by the version...
    let again = store
        .write(Write::Entity(batch(id, 0, ids[..2].to_vec(), 4)))
        .await;
    assert!(matches!(again, Err(StoreError::Fenced(_))), "{again:?}");
    // ...and at the right version, by the messages it consumed before.
    let gone = store
        .write(Write::Entity(batch(id, 1, ids[..2].to_vec(), 4)))
        .await;
    assert!(matches!(gone, Err(StoreError::MessagesGone(_))), "{gone:?}");
    let snapshot = store.load_entity(id).await.expect("loads");
    assert_eq!(snapshot.version, 1);
    assert_eq!(snapshot.state, Some(Payload::encode(&2).expect("encodes")));
    assert_eq!(
        snapshot.pending.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[2]]
    );
    let record = store.read_entity(id).await.expect("reads").expect("exists");
    assert_eq!(record.pending_operations, 1);
    assert_eq!(store.entity_log(id).await.expect("reads").len(), 2);
    assert_eq!(
        store.entities_with_pending("", 10).await.expect("reads"),
        vec![id.to_string()]
    );
}

async fn a_batch_answers_its_callers_and_entities_list_by_name(store: Subject) {
    store.write(create("caller")).await.expect("created");
    for id in ["@counter@a", "@counter@b", "@other@a"] {
        store
            .write(Write::Entity(batch(id, 0, Vec::new(), 7)))
            .await
            .expect("commits");
    }
    let mut answering = batch("@counter@a", 1, Vec::new(), 8);
    answering.responses = vec![(
        EntityReply {
            instance_id: "caller".into(),
            execution_id: RUN.into(),
            task_id: 3,
        },
        Ok(Payload::encode(&8).expect("encodes")),
    )];
    // It starts an orchestration too, in the same commit.
    answering.starts = vec![durable_runtime::store::NewInstance {
        instance_id: "started-by-entity".into(),
        execution_id: RUN.into(),
        name: "o".into(),
        version: None,
        input: Payload::null(),
        created_ms: 2,
    }];
    let Written::Entity(work) = store
        .write(Write::Entity(answering))
        .await
        .expect("commits")
    else {
        panic!("an entity write answers with its work");
    };
    assert_eq!(work.messages.len(), 2);
    assert!(
        work.messages
            .iter()
            .any(|m| m.instance_id == "started-by-entity"
                && matches!(m.event, HistoryEvent::ExecutionStarted(_))),
        "{work:?}"
    );
    assert!(work.messages.iter().any(|m| matches!(
        m.event,
        HistoryEvent::EntityOperationCompleted { task_id: 3, .. }
    )));
    assert!(
        store
            .read_instance("started-by-entity")
            .await
            .expect("reads")
            .is_some()
    );
    let page = store
        .list_entities(&EntityQuery {
            name_prefix: Some("counter".into()),
            with_state_only: true,
            page_size: 1,
            continuation_token: None,
            ..EntityQuery::default()
        })
        .await
        .expect("lists");
    assert_eq!(page.entities.len(), 1);
    assert_eq!(page.entities[0].entity_id, "@counter@a");
    let next = store
        .list_entities(&EntityQuery {
            name_prefix: Some("counter".into()),
            with_state_only: true,
            page_size: 10,
            continuation_token: page.continuation_token,
            ..EntityQuery::default()
        })
        .await
        .expect("lists");
    let ids: Vec<&str> = next.entities.iter().map(|e| e.entity_id.as_str()).collect();
    assert_eq!(ids, vec!["@counter@b"]);
    // The last-operation time bounds (the original's lastOperationTimeFrom / To).
    let far_future = i64::MAX / 2;
    let listed = |from: Option<i64>, to: Option<i64>| {
        let store = &store;
        async move {
            store
                .list_entities(&EntityQuery {
                    name_prefix: Some("counter".into()),
                    last_operation_from_ms: from,
                    last_operation_to_ms: to,
                    ..EntityQuery::default()
                })
                .await
                .expect("lists")
                .entities
                .len()
        }
    };
    assert_eq!(listed(None, Some(far_future)).await, 2);
    assert_eq!(listed(Some(far_future), None).await, 0);
    assert_eq!(listed(None, Some(0)).await, 0);
    // Only an entity without state and without queued operations is purged.
    let mut deleted = batch("@other@a", 1, Vec::new(), 0);
    deleted.state = EntityState::Deleted;
    store.write(Write::Entity(deleted)).await.expect("commits");
    let purge = Write::PurgeEntities {
        entity_ids: vec!["@other@a".into(), "@counter@b".into()],
    };
    assert_eq!(
        store.write(purge).await.expect("purges"),
        Written::Purged(1)
    );
    assert!(
        store
            .read_entity("@other@a")
            .await
            .expect("reads")
            .is_none()
    );
    assert!(
        store
            .read_entity("@counter@b")
            .await
            .expect("reads")
            .is_some()
    );
}

/// A row that does not decode fails only itself: the load reports it beside what decodes, and
/// a batch committing `Unchanged` keeps a corrupt state as stored.
async fn corrupt_entity_rows_are_reported_not_fatal(store: Subject) {
    let id = "@counter@c";
    store
        .write(Write::Entity(batch(id, 0, Vec::new(), 5)))
        .await
        .expect("commits");
    for _ in 0..3 {
        store.write(signal(id, "add")).await.expect("queued");
    }
    let ids: Vec<i64> = store
        .load_entity(id)
        .await
        .expect("loads")
        .pending
        .iter()
        .map(|m| m.id)
        .collect();
    store
        .exec(&format!(
            "UPDATE entity_messages SET input = 'not json' WHERE id = {};
             UPDATE entity_messages SET reply = '{{' WHERE id = {};
             UPDATE entities SET state = 'not json' WHERE entity_id = '{id}';",
            ids[0], ids[1]
        ))
        .await;
    let snapshot = store
        .load_entity(id)
        .await
        .expect("a corrupt row is not fatal");
    assert_eq!(snapshot.state, None);
    assert!(
        snapshot
            .corrupt_state
            .as_deref()
            .is_some_and(|r| r.contains("not JSON") && r.contains(id)),
        "{snapshot:?}"
    );
    assert_eq!(snapshot.version, 1);
    assert_eq!(
        snapshot.pending.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[2]]
    );
    assert_eq!(snapshot.corrupt.len(), 2, "{snapshot:?}");
    assert_eq!(snapshot.corrupt[0].id, ids[0]);
    assert!(snapshot.corrupt[0].only_input);
    assert_eq!(snapshot.corrupt[0].operation.as_deref(), Some("add"));
    assert!(snapshot.corrupt[0].reason.contains("input"));
    assert_eq!(snapshot.corrupt[1].id, ids[1]);
    assert!(!snapshot.corrupt[1].only_input);
    assert!(snapshot.corrupt[1].reason.contains("reply"));
    // Consuming them keeps the corrupt state as stored.
    let mut consume = batch(id, 1, ids.clone(), 0);
    consume.state = EntityState::Unchanged;
    store.write(Write::Entity(consume)).await.expect("commits");
    let snapshot = store.load_entity(id).await.expect("loads");
    assert_eq!(snapshot.version, 2);
    assert!(snapshot.pending.is_empty() && snapshot.corrupt.is_empty());
    assert!(
        snapshot.corrupt_state.is_some(),
        "the corrupt state is kept"
    );
    // Read (and listed), the entity comes with its corruption rather than as an error.
    let read = store.read_entity(id).await;
    assert!(
        matches!(&read, Ok(Some(record)) if record.state.is_none()
            && record.corrupt_state.as_deref().is_some_and(|r| r.contains("not JSON"))),
        "{read:?}"
    );
}

/// A keyed signal is queued once per entity and key; an instance's event keys (even one whose
/// id is the entity's) are another space.
async fn keyed_signals_are_queued_once(store: Subject) {
    let id = "@counter@k";
    let once = |entity: &str, key: &str| {
        let Write::SignalEntity(message) = signal(entity, "add") else {
            unreachable!("a signal")
        };
        Write::SignalEntityOnce {
            message,
            idempotency_key: key.into(),
        }
    };
    store
        .write(create(id))
        .await
        .expect("an instance named like the entity");
    store.write(raise(id, Some("k1"))).await.expect("raised");
    let queued = |written: Written| match written {
        Written::Entity(work) => work.signals.len(),
        other => panic!("an entity write answers Entity, not {other:?}"),
    };
    assert_eq!(
        queued(store.write(once(id, "k1")).await.expect("queued")),
        1
    );
    assert_eq!(
        queued(store.write(once(id, "k1")).await.expect("a no-op")),
        0
    );
    assert_eq!(
        queued(
            store
                .write(once("@counter@other", "k1"))
                .await
                .expect("queued")
        ),
        1
    );
    assert_eq!(
        queued(store.write(once(id, "k2")).await.expect("queued")),
        1
    );
    assert_eq!(store.load_entity(id).await.expect("loads").pending.len(), 2);
    // The instance's key is untouched by the entity's.
    assert_eq!(
        store.write(raise(id, Some("k1"))).await.expect("a no-op"),
        Written::Delivered(None)
    );
}

crate::conformance! {
    keyed_signals_are_queued_once,
    entity_batches_are_fenced_by_version_and_consume_once,
    a_batch_answers_its_callers_and_entities_list_by_name,
    corrupt_entity_rows_are_reported_not_fatal,
}
