//! Sub-orchestrations in the store: children created in the parent's step, outcomes sent
//! back in the child's final commit.

use crate::*;
use durable_runtime::history::ParentInstance;
use durable_runtime::store::{Message, NewChild};
fn child(task_id: u64, id: &str) -> NewChild {
    NewChild {
        task_id,
        instance: NewInstance {
            instance_id: id.into(),
            execution_id: format!("{id}-run").into(),
            name: "child".into(),
            version: Some("2".into()),
            input: Payload::encode(&task_id).expect("encodes"),
            created_ms: 7,
        },
    }
}

fn messages_of(written: &Written) -> &[Message] {
    match written {
        Written::Step(work) => &work.messages,
        other => panic!("not a step: {other:?}"),
    }
}

async fn pending(store: &Subject) -> Vec<Message> {
    store.pending_messages(0, 1000).await.expect("reads").items
}

/// A parent "p" on its first step, with its start consumed.
async fn running_parent(store: &Subject) {
    let started = store.write(create("p")).await.expect("created");
    let Written::Instance(start) = started else {
        panic!("{started:?}")
    };
    let mut first = step("p", 0);
    first.consumed = vec![start.id];
    store.write(Write::Step(first)).await.expect("applies");
}

async fn a_step_creates_its_children_with_their_starts_and_parent_links(store: Subject) {
    running_parent(&store).await;
    let mut parent_step = step("p", 1);
    parent_step.children = vec![child(1, "c1"), child(2, "c2")];
    let written = store
        .write(Write::Step(parent_step))
        .await
        .expect("applies");
    let sent = messages_of(&written);
    assert_eq!(sent.len(), 2);
    for (message, (id, task_id)) in sent.iter().zip([("c1", 1), ("c2", 2)]) {
        assert_eq!(message.instance_id, id);
        assert_eq!(&*message.execution_id, format!("{id}-run"));
        assert_eq!(
            message.event,
            HistoryEvent::ExecutionStarted(Box::new(
                durable_runtime::history::ExecutionStartedEvent {
                    name: "child".into(),
                    version: Some("2".into()),
                    input: Payload::encode(&task_id).expect("encodes"),
                    execution_id: Some(format!("{id}-run")),
                    parent: Some(ParentInstance {
                        instance_id: "p".into(),
                        execution_id: RUN.into(),
                        task_id,
                    }),
                    carried_events: Vec::new(),
                }
            ))
        );
        let status = store
            .read_instance(id)
            .await
            .expect("reads")
            .expect("the child exists");
        assert_eq!(status.runtime_status, RuntimeStatus::Pending);
        assert_eq!(status.version.as_deref(), Some("2"));
    }
    // The starts are stored messages too: a crash before they are dispatched loses nothing.
    assert_eq!(pending(&store).await, sent);
}

async fn a_refused_step_creates_no_child(store: Subject) {
    running_parent(&store).await;
    let mut stale = step("p", 0);
    stale.children = vec![child(1, "c1")];
    let err = store.write(Write::Step(stale)).await.expect_err("fenced");
    assert!(matches!(err, StoreError::Fenced(_)), "{err}");
    assert!(store.read_instance("c1").await.expect("reads").is_none());
    assert!(pending(&store).await.is_empty());
}

async fn a_child_id_in_use_fails_the_call_and_not_the_step(store: Subject) {
    running_parent(&store).await;
    store.write(create("taken")).await.expect("created");
    let before = pending(&store).await;
    let mut parent_step = step("p", 1);
    // The second child of one step with the same id is refused the same way.
    parent_step.children = vec![child(1, "taken"), child(2, "c2"), child(3, "c2")];
    let written = store
        .write(Write::Step(parent_step))
        .await
        .expect("applies");
    let sent = messages_of(&written);
    let failed: Vec<(u64, String)> = sent
        .iter()
        .filter_map(|m| match &m.event {
            HistoryEvent::SubOrchestrationInstanceFailed { task_id, failure } => {
                assert_eq!(m.instance_id, "p");
                assert_eq!(&*m.execution_id, RUN);
                Some((*task_id, failure.message.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        failed,
        vec![
            (
                1,
                "cannot create sub-orchestration 'child': an instance with id 'taken' already \
                 exists"
                    .to_string()
            ),
            (
                3,
                "cannot create sub-orchestration 'child': an instance with id 'c2' already \
                 exists"
                    .to_string()
            ),
        ]
    );
    // The step itself was recorded, and "taken" was left as it was.
    assert_eq!(store.read_history("p").await.expect("reads").len(), 2);
    let taken = store
        .read_instance("taken")
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(taken.name, "o");
    assert_eq!(pending(&store).await.len(), before.len() + 3);
}

/// Creates "c" as a child of "p" (task 4) and runs its first step.
async fn running_child(store: &Subject) {
    running_parent(store).await;
    let mut parent_step = step("p", 1);
    parent_step.children = vec![child(4, "c")];
    let written = store
        .write(Write::Step(parent_step))
        .await
        .expect("applies");
    let start = messages_of(&written)[0].id;
    let mut first = step("c", 0);
    first.execution_id = "c-run".into();
    first.consumed = vec![start];
    store.write(Write::Step(first)).await.expect("applies");
}

fn finishing(status: RuntimeStatus) -> StepCommit {
    let mut last = step("c", 1);
    last.execution_id = "c-run".into();
    last.status = Some(status);
    match status {
        RuntimeStatus::Completed => {
            last.events.push(HistoryEvent::ExecutionCompleted {
                result: Payload::encode(&42).expect("encodes"),
            });
            last.output = Some(Payload::encode(&42).expect("encodes"));
        }
        _ => {
            let failure = FailureDetails::new("child broke");
            last.events.push(HistoryEvent::ExecutionFailed {
                failure: failure.clone(),
            });
            last.failure = Some(failure);
        }
    }
    last
}

async fn the_childs_final_step_sends_its_outcome_to_the_parents_run(store: Subject) {
    for status in [RuntimeStatus::Completed, RuntimeStatus::Failed] {
        let store = store.fresh().await;
        running_child(&store).await;
        let written = store
            .write(Write::Step(finishing(status)))
            .await
            .expect("applies");
        let sent = messages_of(&written);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].instance_id, "p");
        assert_eq!(&*sent[0].execution_id, RUN);
        let expected = match status {
            RuntimeStatus::Completed => HistoryEvent::SubOrchestrationInstanceCompleted {
                task_id: 4,
                result: Payload::encode(&42).expect("encodes"),
            },
            _ => HistoryEvent::SubOrchestrationInstanceFailed {
                task_id: 4,
                failure: FailureDetails::new("child broke"),
            },
        };
        assert_eq!(sent[0].event, expected);
        assert_eq!(pending(&store).await, sent, "stored in the same commit");
    }
}

async fn a_child_failed_without_its_history_tells_the_parent_too(store: Subject) {
    running_child(&store).await;
    let written = store
        .write(Write::FailInstance {
            instance_id: "c".into(),
            failure: FailureDetails::new("corrupt history"),
            timestamp_ms: 9,
        })
        .await
        .expect("applies");
    let Written::Delivered(Some(message)) = written else {
        panic!("{written:?}")
    };
    assert_eq!(message.instance_id, "p");
    assert_eq!(
        message.event,
        HistoryEvent::SubOrchestrationInstanceFailed {
            task_id: 4,
            failure: FailureDetails::new("corrupt history"),
        }
    );
}

async fn a_finished_parent_is_sent_nothing(store: Subject) {
    running_child(&store).await;
    let mut parent_done = step("p", 2);
    parent_done.status = Some(RuntimeStatus::Completed);
    parent_done.output = Some(Payload::null());
    store
        .write(Write::Step(parent_done))
        .await
        .expect("applies");
    let written = store
        .write(Write::Step(finishing(RuntimeStatus::Completed)))
        .await
        .expect("applies");
    assert!(messages_of(&written).is_empty(), "{written:?}");
    assert!(pending(&store).await.is_empty());
}

crate::conformance! {
    a_step_creates_its_children_with_their_starts_and_parent_links,
    a_refused_step_creates_no_child,
    a_child_id_in_use_fails_the_call_and_not_the_step,
    the_childs_final_step_sends_its_outcome_to_the_parents_run,
    a_child_failed_without_its_history_tells_the_parent_too,
    a_finished_parent_is_sent_nothing,
}
