//! The writer's fast path: the common writes (a step, a new instance, an activity result, a
//! timer firing) as lists of statements that need no earlier answer to be sent, so that the
//! writes of a batch go to the server in one flight (tokio-postgres pipelines the requests of
//! futures polled together on one connection, and the server runs them in the order sent).
//!
//! The answers are checked afterwards, write by write, in order. A write is taken from the
//! fast path only when every answer is what the sequential path (`apply`) would have accepted
//! with the same statements; anything else (a fence, a missing row, an error, an uncommon case
//! such as a finished sub-orchestration's parent to notify) makes the writer roll the write's
//! savepoint back and apply it again the sequential way, which answers exactly as before. The
//! fast path is therefore an optimisation of the common case, never a second set of rules.

use super::apply::{started_event, to_json};
use super::check::{State, check_state, state_from_row};
use super::db::{col, int};
use super::entity::LOCKS_HELD;
use super::lease::Fence;
use super::statements::*;
use crate::history::HistoryEvent;
use crate::store::{
    ActivityWorkItem, Message, NewInstance, START_TIMER_TASK, StepCommit, StepWork, StoreError,
    TimerWorkItem, Write, Written,
};
use deadpool_postgres::ClientWrapper;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

/// A statement parameter, owned by the plan so that the flight can borrow it.
type Param = Box<dyn ToSql + Sync + Send>;

/// One request of a flight.
pub(super) enum Sent {
    /// Transaction control (savepoints), in the simple protocol.
    Control(String),
    /// A statement whose rows are wanted.
    Query(String, Vec<Param>),
    /// A statement whose row count is wanted.
    Execute(String, Vec<Param>),
}

/// The server's answer to one [`Sent`].
pub(super) enum Answer {
    Done,
    Rows(Vec<Row>),
    Count(u64),
}

/// How the writer should apply a write.
pub(super) enum Planned<'w> {
    /// In a flight.
    Fast(Plan<'w>),
    /// On its own, statement by statement (`apply::apply_write`).
    Slow,
    /// Not at all: the write is refused before any statement (a step of a partition the
    /// transaction does not hold).
    Refused(StoreError),
}

/// A write's statements, and how to read their answers.
pub(super) struct Plan<'w> {
    pub(super) statements: Vec<Sent>,
    check: Check<'w>,
}

/// What a plan's answers must be.
enum Check<'w> {
    Create(&'w NewInstance),
    /// A message in answer to work item (activity or timer) that had to be there.
    Deliver {
        instance_id: &'w str,
        event: HistoryEvent,
    },
    Step(StepPlan<'w>),
}

/// Where a step's answers are, among its statements.
struct StepPlan<'w> {
    step: &'w StepCommit,
    /// The deletes of consumed rows: statement index, ids that must all be deleted.
    deletes: Vec<(usize, &'w [i64])>,
    activities: Option<usize>,
    timers: Vec<usize>,
    /// The entity locks the finishing instance holds (must be none on this path).
    locks: Option<usize>,
}

fn param<T: ToSql + Sync + Send + 'static>(value: T) -> Param {
    Box::new(value)
}

/// How `write` is best applied.
pub(super) fn plan(write: &Write, fence: Option<Fence>) -> Planned<'_> {
    let planned = match write {
        Write::Step(step) => {
            if let Some(fence) = fence
                && let Err(err) = fence.check(&step.instance_id)
            {
                return Planned::Refused(err);
            }
            plan_step(step)
        }
        Write::CreateInstance(new) => plan_create(new),
        Write::CompleteActivity {
            work_item_id,
            instance_id,
            event,
        } if matches!(
            event,
            HistoryEvent::TaskCompleted { .. } | HistoryEvent::TaskFailed { .. }
        ) =>
        {
            plan_deliver(
                DELIVER_ACTIVITY_RESULT,
                *work_item_id,
                instance_id,
                event.clone(),
            )
        }
        Write::FireTimer {
            timer_id,
            instance_id,
            task_id,
        } if *task_id != START_TIMER_TASK => plan_deliver(
            DELIVER_TIMER_FIRED,
            *timer_id,
            instance_id,
            HistoryEvent::TimerFired { task_id: *task_id },
        ),
        _ => None,
    };
    // A value that does not encode is left to the sequential path, which refuses it.
    planned.map_or(Planned::Slow, Planned::Fast)
}

fn plan_create(new: &NewInstance) -> Option<Plan<'_>> {
    let started = to_json(&started_event(new, None)).ok()?;
    let id = || param(new.instance_id.clone());
    let statements = vec![
        Sent::Execute(
            INSERT_INSTANCE.into(),
            vec![
                id(),
                param(new.name.clone()),
                param(new.version.clone()),
                param(crate::instance::RuntimeStatus::Pending.as_str()),
                param(new.created_ms),
                param(new.execution_id.to_string()),
                param(None::<String>),
                param(None::<String>),
                param(None::<i64>),
            ],
        ),
        Sent::Execute(
            INSERT_INPUT.into(),
            vec![id(), param(new.input.as_str().to_string())],
        ),
        Sent::Query(
            INSERT_MESSAGE.into(),
            vec![id(), param(started), param(new.execution_id.to_string())],
        ),
    ];
    Some(Plan {
        statements,
        check: Check::Create(new),
    })
}

fn plan_deliver<'w>(
    sql: &str,
    item: i64,
    instance_id: &'w str,
    event: HistoryEvent,
) -> Option<Plan<'w>> {
    let json = to_json(&event).ok()?;
    Some(Plan {
        statements: vec![Sent::Query(
            sql.into(),
            vec![param(item), param(instance_id.to_string()), param(json)],
        )],
        check: Check::Deliver { instance_id, event },
    })
}

/// The statements of `step`, in the order `apply::apply_step` runs them; `None` for a step
/// whose statements depend on earlier answers (children, entity calls, continue-as-new).
fn plan_step(step: &StepCommit) -> Option<Plan<'_>> {
    if step.continue_as_new.is_some()
        || !step.children.is_empty()
        || step
            .events
            .iter()
            .any(|event| matches!(event, HistoryEvent::EntityOperationCalled(_)))
    {
        return None;
    }
    let id = || param(step.instance_id.clone());
    let mut statements = vec![Sent::Query(INSTANCE_STATE.into(), vec![id()])];
    let mut deletes = Vec::new();
    for (table, ids) in [
        ("messages", &step.consumed),
        ("activities", &step.completed_activities),
        ("timers", &step.fired_timers),
    ] {
        if !ids.is_empty() {
            deletes.push((statements.len(), ids.as_slice()));
            statements.push(Sent::Query(
                delete_owned_sql(table),
                vec![param(ids.clone()), id()],
            ));
        }
    }
    if let Some(custom_status) = &step.custom_status {
        // A JSON null clears it, as if never set.
        let value = (custom_status.as_str() != "null").then(|| custom_status.as_str().to_string());
        statements.push(Sent::Execute(
            SET_CUSTOM_STATUS.into(),
            vec![id(), param(value)],
        ));
    }
    if !step.events.is_empty() {
        let events: Vec<String> = step
            .events
            .iter()
            .map(to_json)
            .collect::<Result<_, _>>()
            .ok()?;
        statements.push(Sent::Execute(
            INSERT_HISTORY.into(),
            vec![
                id(),
                param(int(step.first_seq, "history position").ok()?),
                param(step.timestamp_ms),
                param(events),
            ],
        ));
    }
    let mut activities = None;
    if !step.activities.is_empty() {
        let mut task_ids = Vec::with_capacity(step.activities.len());
        let mut names = Vec::with_capacity(step.activities.len());
        let mut inputs = Vec::with_capacity(step.activities.len());
        for (task_id, name, input) in &step.activities {
            task_ids.push(int(*task_id, "task id").ok()?);
            names.push(name.clone());
            inputs.push(input.as_str().to_string());
        }
        activities = Some(statements.len());
        statements.push(Sent::Query(
            INSERT_ACTIVITIES.into(),
            vec![
                id(),
                param(task_ids),
                param(names),
                param(inputs),
                param(step.execution_id.to_string()),
            ],
        ));
    }
    let mut timers = Vec::with_capacity(step.timers.len());
    for (task_id, fire_at_ms) in &step.timers {
        timers.push(statements.len());
        statements.push(Sent::Query(
            INSERT_TIMER.into(),
            vec![
                id(),
                param(int(*task_id, "task id").ok()?),
                param(*fire_at_ms),
                param(step.execution_id.to_string()),
            ],
        ));
    }
    let history_len = int(step.first_seq + step.events.len() as u64, "history length").ok()?;
    let mut locks = None;
    if let Some(status) = step.status {
        let failure = step.failure.as_ref().map(to_json).transpose().ok()?;
        statements.push(Sent::Execute(
            SET_STATUS.into(),
            vec![
                id(),
                param(status.as_str()),
                param(failure),
                param(step.timestamp_ms),
                param(history_len),
            ],
        ));
        if let Some(output) = &step.output {
            statements.push(Sent::Execute(
                SET_OUTPUT.into(),
                vec![id(), param(output.as_str().to_string())],
            ));
        }
        if status.is_terminal() {
            statements.push(Sent::Execute(DISARM_TIMERS.into(), vec![id()]));
            locks = Some(statements.len());
            statements.push(Sent::Query(LOCKS_HELD.into(), vec![id()]));
        }
    } else if !step.events.is_empty() {
        statements.push(Sent::Execute(
            SET_HISTORY_LEN.into(),
            vec![id(), param(history_len)],
        ));
    }
    Some(Plan {
        statements,
        check: Check::Step(StepPlan {
            step,
            deletes,
            activities,
            timers,
            locks,
        }),
    })
}

impl Plan<'_> {
    /// What the write wrote, if `answers` (one per statement, in order) are what the
    /// sequential path would have accepted; `None` sends the write down that path.
    pub(super) fn accept(
        &self,
        answers: &[Result<Answer, tokio_postgres::Error>],
    ) -> Option<Written> {
        let mut ok = Vec::with_capacity(answers.len());
        for answer in answers {
            ok.push(answer.as_ref().ok()?);
        }
        match &self.check {
            Check::Create(new) => {
                let [Answer::Count(1), Answer::Count(1), Answer::Rows(rows)] = ok.as_slice() else {
                    return None;
                };
                let message_id = col(rows.first()?, 0, "messages", &new.instance_id).ok()?;
                Some(Written::Instance(Message {
                    id: message_id,
                    instance_id: new.instance_id.clone(),
                    execution_id: new.execution_id.clone(),
                    event: started_event(new, None),
                }))
            }
            Check::Deliver { instance_id, event } => {
                let [Answer::Rows(rows)] = ok.as_slice() else {
                    return None;
                };
                let Some(row) = rows.first() else {
                    // Already consumed: nothing is sent twice.
                    return Some(Written::Delivered(None));
                };
                let id = col(row, 0, "messages", instance_id).ok()?;
                let run: String = col(row, 1, "messages", instance_id).ok()?;
                Some(Written::Delivered(Some(Message {
                    id,
                    instance_id: instance_id.to_string(),
                    execution_id: run.into(),
                    event: event.clone(),
                })))
            }
            Check::Step(plan) => plan.accept(&ok),
        }
    }
}

fn rows<'a>(answers: &[&'a Answer], index: usize) -> Option<&'a [Row]> {
    match answers.get(index)? {
        Answer::Rows(rows) => Some(rows),
        _ => None,
    }
}

impl StepPlan<'_> {
    fn accept(&self, answers: &[&Answer]) -> Option<Written> {
        let step = self.step;
        let key = step.instance_id.as_str();
        let state = match rows(answers, 0)?.first() {
            Some(row) => Some(state_from_row(row, key).ok()?),
            None => None,
        };
        let state: Option<State> = check_state(step, state).ok()?;
        for (index, ids) in &self.deletes {
            let deleted: Vec<i64> = rows(answers, *index)?
                .iter()
                .map(|row| col(row, 0, "messages", key))
                .collect::<Result<_, _>>()
                .ok()?;
            if ids.iter().any(|id| !deleted.contains(id)) {
                return None;
            }
        }
        let mut activities = Vec::with_capacity(step.activities.len());
        if let Some(index) = self.activities {
            let mut ids = HashMap::with_capacity(step.activities.len());
            for row in rows(answers, index)? {
                let id: i64 = col(row, 0, "activities", key).ok()?;
                let task_id: i64 = col(row, 1, "activities", key).ok()?;
                ids.insert(task_id, id);
            }
            for (task_id, name, input) in &step.activities {
                activities.push(ActivityWorkItem {
                    id: *ids.get(&int(*task_id, "task id").ok()?)?,
                    instance_id: step.instance_id.clone(),
                    execution_id: step.execution_id.clone(),
                    task_id: *task_id,
                    name: name.clone(),
                    input: input.clone(),
                });
            }
        }
        let mut timers = Vec::with_capacity(self.timers.len());
        for (index, (task_id, fire_at_ms)) in self.timers.iter().zip(&step.timers) {
            timers.push(TimerWorkItem {
                id: col(rows(answers, *index)?.first()?, 0, "timers", key).ok()?,
                instance_id: step.instance_id.clone(),
                execution_id: step.execution_id.clone(),
                task_id: *task_id,
                fire_at_ms: *fire_at_ms,
            });
        }
        if let Some(index) = self.locks {
            // Unlocks to send, or a parent to notify: statements that depend on these
            // answers, left to the sequential path.
            if !rows(answers, index)?.is_empty()
                || state.as_ref().is_some_and(|state| state.parent.is_some())
            {
                return None;
            }
            // A finishing step arms nothing that outlives it.
            timers.clear();
        }
        Some(Written::Step(StepWork {
            activities,
            timers,
            messages: Vec::new(),
            entity_messages: Vec::new(),
        }))
    }
}

/// Sends `statements` (prepared already, one each) in one flight; every answer, in order.
pub(super) async fn fly(
    client: &ClientWrapper,
    statements: &[(&Sent, Option<Statement>)],
) -> Vec<Result<Answer, tokio_postgres::Error>> {
    super::db::ROUND_TRIPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    type Flying<'f> =
        Pin<Box<dyn Future<Output = Result<Answer, tokio_postgres::Error>> + Send + 'f>>;
    let mut flying: Vec<Flying<'_>> = Vec::with_capacity(statements.len());
    for (sent, prepared) in statements {
        flying.push(match (sent, prepared) {
            (Sent::Control(sql), _) => {
                Box::pin(async move { client.batch_execute(sql).await.map(|()| Answer::Done) })
            }
            (Sent::Query(_, params), Some(statement)) => Box::pin(async move {
                let params: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
                client.query(statement, &params).await.map(Answer::Rows)
            }),
            (Sent::Execute(_, params), Some(statement)) => Box::pin(async move {
                let params: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
                client.execute(statement, &params).await.map(Answer::Count)
            }),
            // Never built so by the writer; an answer that fails the write's check.
            (Sent::Query(..) | Sent::Execute(..), None) => Box::pin(async { Ok(Answer::Done) }),
        });
    }
    in_order(flying).await
}

/// Polls `futures` to completion, each first polled in order: a request of tokio-postgres is
/// sent when its future is first polled, so this sends them in this order. Afterwards only
/// the first unfinished one and those after it that are ready are polled: answers come back
/// in the order sent, so a later one never finishes while an earlier one waits for the server.
async fn in_order<'f, T>(mut futures: Vec<Pin<Box<dyn Future<Output = T> + Send + 'f>>>) -> Vec<T> {
    let mut answers: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    let mut first_pass = true;
    let mut next = 0;
    std::future::poll_fn(|cx| {
        while next < futures.len() {
            let mut index = next;
            let mut waiting = false;
            while index < futures.len() {
                if answers[index].is_none() {
                    match futures[index].as_mut().poll(cx) {
                        Poll::Ready(answer) => answers[index] = Some(answer),
                        Poll::Pending => {
                            waiting = true;
                            if !first_pass {
                                break;
                            }
                        }
                    }
                }
                index += 1;
            }
            first_pass = false;
            while next < futures.len() && answers[next].is_some() {
                next += 1;
            }
            if waiting {
                return Poll::Pending;
            }
        }
        Poll::Ready(())
    })
    .await;
    answers.into_iter().flatten().collect()
}
