//! The mutable half of a context, shared between the orchestrator's futures and the replay
//! engine: one slot per task id, the events buffered by name, and what history recorded.
//!
//! Every change here happens either while the orchestrator's code runs or while the engine
//! feeds it events, both in history order, so the state is the same on every replay.

use super::action::{Action, Recorded};
use crate::failure::FailureDetails;
use crate::payload::Payload;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::task::Waker;

/// A task the orchestrator scheduled during the current step.
#[derive(Debug)]
pub(crate) struct ScheduledTask {
    pub task_id: u64,
    pub action: Action,
}

/// What a task slot waits for: an external event is matched by name, everything else by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waits {
    Task,
    Event,
}

// Kept small (48 bytes): every task an orchestrator ever scheduled keeps its slot, and an idle
// instance's memory is mostly its slots.
pub(crate) enum TaskSlot {
    Waiting {
        /// The task's name (an activity's, `timer`, or the event's).
        name: Box<str>,
        waits: Waits,
        waker: Option<Waker>,
    },
    Done {
        name: Box<str>,
        waits: Waits,
        /// A failure is boxed: it is rare, and three times the size of a payload.
        result: Result<Payload, Box<FailureDetails>>,
        /// Position among all results that arrived at this instance: history order.
        order: u64,
    },
    /// The result was handed to the code.
    Taken,
    /// The future was dropped before its result was taken; a result arriving later is
    /// accepted (history holds it) and discarded.
    Dropped,
}

// Every slot an orchestrator ever used stays in memory while its instance is cached.
const _: () = assert!(std::mem::size_of::<TaskSlot>() <= 48);

/// The mutable half of a context, shared with the replay engine.
pub(crate) struct OrchestrationState {
    /// One slot per task id the orchestrator has handed out.
    pub(crate) tasks: Vec<TaskSlot>,
    /// What history recorded for each task id; `None` where nothing was recorded.
    recorded: BTreeMap<u64, Recorded>,
    /// Results and events that arrived so far, for ordering `when_any` by history.
    arrived: u64,
    /// Events that arrived before anyone waited for them, by name, oldest first, with their
    /// arrival order.
    buffered_events: HashMap<String, VecDeque<(Payload, u64)>>,
    /// The slots waiting for an event, oldest (lowest task id) first. An event is matched by
    /// scanning these for its name: a map by name cost an idle instance a few hundred bytes,
    /// and scanning every slot made a long-lived wait quadratic in the events received.
    event_waits: Vec<u64>,
    /// Deterministic ids and random numbers handed out so far.
    pub(crate) guids: u64,
    pub(crate) randoms: u64,
    /// Tasks scheduled in this step that history does not hold yet.
    pub(crate) new_tasks: Vec<ScheduledTask>,
    /// Set when the code diverged from history; the step then fails the instance.
    pub(crate) nondeterminism: Option<String>,
    /// The same divergence, by its parts (for the replay tester); boxed, as it is rare.
    pub(crate) divergence: Option<Box<Divergence>>,
    pub(crate) is_replaying: bool,
    pub(crate) current_time_ms: i64,
    /// Largest encoded payload (activity input) the code may hand to the store, in bytes.
    pub(crate) max_payload_bytes: usize,
    /// Set when the code asked to continue as new; the step ends the run with it.
    pub(crate) continue_as_new: Option<Box<ContinueAsNewRequest>>,
    /// The custom status this run last set (`None` until it sets one).
    pub(crate) custom_status: Option<Payload>,
    /// The running orchestrator's registered name (for `continue_as_new`'s check).
    pub(crate) orchestrator_name: &'static str,
    /// The entities of the critical section the code is in (from `lock_entities` until its
    /// guard drops), for the locking rules; rebuilt the same way on every replay.
    pub(crate) critical_section: Option<Vec<String>>,
}

/// Where the code diverged from history: the task, what history recorded for it, and what
/// the code does instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Divergence {
    pub task_id: u64,
    pub recorded: String,
    pub new: String,
}

impl OrchestrationState {
    /// Records the first divergence from history (later ones follow from it).
    pub(crate) fn diverged(&mut self, task_id: u64, recorded: String, new: String) {
        if self.nondeterminism.is_some() {
            return;
        }
        self.nondeterminism = Some(format!(
            "non-deterministic orchestrator: history has {recorded} as task {task_id}, but the \
             code now {new}"
        ));
        self.divergence = Some(Box::new(Divergence {
            task_id,
            recorded,
            new,
        }));
    }
}

/// What `continue_as_new` asked for.
#[derive(Debug, Clone)]
pub(crate) struct ContinueAsNewRequest {
    /// The next run's input, or why there is none (the instance then fails with it).
    pub input: Result<Payload, String>,
    /// Whether raised events not consumed yet go to the next run.
    pub preserve_unprocessed_events: bool,
}

/// How a history event relates to the tasks the code scheduled.
pub(crate) enum Delivery {
    Delivered,
    /// A result for a task id the code never scheduled, or one already resolved.
    Unexpected,
}

impl OrchestrationState {
    pub(crate) fn new(recorded: BTreeMap<u64, Recorded>, max_payload_bytes: usize) -> Self {
        OrchestrationState {
            tasks: Vec::new(),
            recorded,
            arrived: 0,
            buffered_events: HashMap::new(),
            event_waits: Vec::new(),
            guids: 0,
            randoms: 0,
            new_tasks: Vec::new(),
            nondeterminism: None,
            divergence: None,
            is_replaying: false,
            current_time_ms: 0,
            max_payload_bytes,
            continue_as_new: None,
            custom_status: None,
            orchestrator_name: "",
            critical_section: None,
        }
    }

    /// Takes the raised events no wait consumed, in arrival order (to carry them into the
    /// next run).
    pub(crate) fn take_buffered_events(&mut self) -> Vec<(String, Payload)> {
        let mut events: Vec<(u64, String, Payload)> = self
            .buffered_events
            .drain()
            .flat_map(|(name, queue)| {
                queue
                    .into_iter()
                    .map(move |(input, order)| (order, name.clone(), input))
            })
            .collect();
        events.sort_by_key(|(order, _, _)| *order);
        events
            .into_iter()
            .map(|(_, name, input)| (name, input))
            .collect()
    }

    /// Resolves task `task_id` with a result that arrives now, waking whoever awaits it.
    pub(crate) fn deliver(
        &mut self,
        task_id: u64,
        result: Result<Payload, FailureDetails>,
    ) -> (Delivery, Option<Waker>) {
        self.arrived += 1;
        let order = self.arrived;
        self.resolve(task_id, result.map_err(Box::new), order)
    }

    /// The oldest slot still waiting for the event `name`.
    fn oldest_wait_for(&self, name: &str) -> Option<u64> {
        self.event_waits.iter().copied().find(|&task_id| {
            matches!(
                self.tasks.get(task_id as usize),
                Some(TaskSlot::Waiting { name: waiting, .. }) if **waiting == *name
            )
        })
    }

    /// `task_id` no longer waits for an event.
    fn stop_waiting(&mut self, task_id: u64) {
        if let Some(position) = self.event_waits.iter().position(|&id| id == task_id) {
            self.event_waits.remove(position);
        }
        if self.event_waits.is_empty() {
            // Give the memory back: an instance that waited once may live long.
            self.event_waits = Vec::new();
        }
    }

    fn resolve(
        &mut self,
        task_id: u64,
        result: Result<Payload, Box<FailureDetails>>,
        order: u64,
    ) -> (Delivery, Option<Waker>) {
        let Some(slot) = usize::try_from(task_id)
            .ok()
            .and_then(|i| self.tasks.get_mut(i))
        else {
            return (Delivery::Unexpected, None);
        };
        match std::mem::replace(slot, TaskSlot::Taken) {
            TaskSlot::Waiting { name, waits, waker } => {
                *slot = TaskSlot::Done {
                    name,
                    waits,
                    result,
                    order,
                };
                if waits == Waits::Event {
                    self.stop_waiting(task_id);
                }
                (Delivery::Delivered, waker)
            }
            // Nobody will read it, but history holds it legitimately.
            TaskSlot::Dropped => {
                *slot = TaskSlot::Dropped;
                (Delivery::Delivered, None)
            }
            other => {
                *slot = other;
                (Delivery::Unexpected, None)
            }
        }
    }

    /// Hands an external event to the oldest wait for its name, or buffers it (keeping its
    /// arrival order) until one comes.
    pub(crate) fn raise_event(&mut self, name: &str, input: Payload) -> Option<Waker> {
        self.arrived += 1;
        let order = self.arrived;
        match self.oldest_wait_for(name) {
            Some(task_id) => self.resolve(task_id, Ok(input), order).1,
            None => {
                self.buffered_events
                    .entry(name.to_string())
                    .or_default()
                    .push_back((input, order));
                None
            }
        }
    }

    /// A slot that resolves with the next event called `name`. Waits are not recorded in
    /// history: the code makes them in the same order on every replay, and the events they
    /// receive are recorded.
    pub(crate) fn wait_for_event(&mut self, name: &str) -> u64 {
        let task_id = self.tasks.len() as u64;
        // Waits take task ids but are not recorded: where history recorded an activity or a
        // timer, the code has changed.
        if let Some(recorded) = self.recorded.get(&task_id) {
            let recorded = recorded.describe();
            self.diverged(task_id, recorded, format!("waits for event '{name}'"));
        }
        push_small(
            &mut self.tasks,
            TaskSlot::Waiting {
                name: name.into(),
                waits: Waits::Event,
                waker: None,
            },
        );
        push_small(&mut self.event_waits, task_id);
        let buffered = self
            .buffered_events
            .get_mut(name)
            .and_then(VecDeque::pop_front);
        if let Some((input, order)) = buffered {
            // Nobody polls this slot yet, so there is no waker to wake.
            let _ = self.resolve(task_id, Ok(input), order);
        }
        task_id
    }

    /// The future of `task_id` was dropped. A wait for an event stops waiting, and an event it
    /// received but never handed to the code goes to the oldest wait for that name still
    /// waiting, or back to the front of the buffer for the next one: nothing raised is lost to
    /// an abandoned wait. Returns the waker of a wait that received the event.
    pub(crate) fn forget(&mut self, task_id: u64) -> Option<Waker> {
        let slot = usize::try_from(task_id)
            .ok()
            .and_then(|i| self.tasks.get_mut(i))?;
        match std::mem::replace(slot, TaskSlot::Dropped) {
            TaskSlot::Waiting {
                waits: Waits::Event,
                ..
            } => self.stop_waiting(task_id),
            TaskSlot::Done {
                name,
                waits: Waits::Event,
                result: Ok(input),
                order,
            } => match self.oldest_wait_for(&name) {
                Some(waiting) => return self.resolve(waiting, Ok(input), order).1,
                None => {
                    let queue = self.buffered_events.entry(name.into()).or_default();
                    queue.push_front((input, order));
                }
            },
            TaskSlot::Taken => *slot = TaskSlot::Taken,
            _ => {}
        }
        None
    }

    /// The first recorded task the code has not scheduled (again), for the end-of-replay check.
    pub(crate) fn first_unreplayed_task(&self) -> Option<(u64, String)> {
        self.recorded
            .range(self.tasks.len() as u64..)
            .next()
            .map(|(id, recorded)| (*id, recorded.describe()))
    }

    /// True if history recorded the task the code schedules next: it is being replayed.
    pub(crate) fn replays_next_task(&self) -> bool {
        self.recorded.contains_key(&self.next_task_id())
    }

    /// The task id the next scheduled task (or wait) gets.
    pub(crate) fn next_task_id(&self) -> u64 {
        self.tasks.len() as u64
    }

    pub(crate) fn completion_order(&self, task_id: u64) -> Option<u64> {
        match self.tasks.get(task_id as usize) {
            Some(TaskSlot::Done { order, .. }) => Some(*order),
            _ => None,
        }
    }

    /// Hands out the next task id for `action`, checking it against history on replay.
    pub(crate) fn schedule(&mut self, name: &str, action: Action) -> u64 {
        let task_id = self.tasks.len() as u64;
        let expected = match self.recorded.get(&task_id) {
            Some(recorded) if *recorded == action.recorded() => None,
            Some(recorded) => Some(recorded.describe()),
            // Nothing recorded here, but later tasks are: the code no longer lines up.
            // An id history leaves out was a wait for an event, or a call that failed before it
            // was scheduled: neither is recorded.
            None if self.recorded.range(task_id..).next().is_some() => {
                Some("no scheduled task (a wait for an event, say)".into())
            }
            None => None,
        };
        match expected {
            Some(expected) => self.diverged(task_id, expected, action.describe()),
            None if !self.recorded.contains_key(&task_id) => {
                self.new_tasks.push(ScheduledTask { task_id, action });
            }
            None => {}
        }
        push_small(
            &mut self.tasks,
            TaskSlot::Waiting {
                name: name.into(),
                waits: Waits::Task,
                waker: None,
            },
        );
        task_id
    }

    /// A task that failed before it could be scheduled (its input did not serialize, or is too
    /// large). It uses no task id in history, so replays see the same ids.
    pub(crate) fn failed_before_scheduling(&mut self, name: &str, failure: FailureDetails) -> u64 {
        let task_id = self.tasks.len() as u64;
        self.arrived += 1;
        push_small(
            &mut self.tasks,
            TaskSlot::Done {
                name: name.into(),
                waits: Waits::Task,
                result: Err(Box::new(failure)),
                order: self.arrived,
            },
        );
        task_id
    }
}

/// Pushes onto a vector that an idle instance keeps for as long as it is cached, growing it
/// one element at a time while it is small: most instances wait on one or two tasks at a time,
/// and the usual first allocation (room for four 48-byte slots) cost every cached instance
/// about 150 bytes it never used. Past four elements it grows by doubling, as usual.
fn push_small<T>(items: &mut Vec<T>, item: T) {
    if items.len() == items.capacity() && items.len() < 4 {
        items.reserve_exact(1);
    }
    items.push(item);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{ChildCall, ChildVersion};

    /// A small deterministic generator, so a failing sequence can be replayed from its seed.
    fn next(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    fn waiting_for_events(state: &OrchestrationState) -> Vec<u64> {
        (0..state.tasks.len() as u64)
            .filter(|&id| {
                matches!(
                    state.tasks[id as usize],
                    TaskSlot::Waiting {
                        waits: Waits::Event,
                        ..
                    }
                )
            })
            .collect()
    }

    #[test]
    fn events_go_to_the_oldest_wait_and_are_buffered_only_when_none_waits() {
        for start in 1..=300u64 {
            let mut seed = start.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut state = OrchestrationState::new(BTreeMap::new(), usize::MAX);
            let mut raised = 0u64;
            let mut received = 0u64;
            for _ in 0..80 {
                let name = ["a", "b"][(next(&mut seed) % 2) as usize];
                match next(&mut seed) % 4 {
                    0 | 1 => {
                        state.wait_for_event(name);
                    }
                    2 => {
                        raised += 1;
                        let _ = state.raise_event(name, Payload::null());
                    }
                    _ if !state.tasks.is_empty() => {
                        let task_id = next(&mut seed) % state.tasks.len() as u64;
                        // Taking a result first, as the code would, sometimes.
                        if next(&mut seed).is_multiple_of(2)
                            && let TaskSlot::Done { .. } = state.tasks[task_id as usize]
                        {
                            state.tasks[task_id as usize] = TaskSlot::Taken;
                            received += 1;
                        }
                        let _ = state.forget(task_id);
                    }
                    _ => {}
                }
                assert_eq!(
                    state.event_waits,
                    waiting_for_events(&state),
                    "seed {start}"
                );
                for id in &state.event_waits {
                    if let TaskSlot::Waiting { name, .. } = &state.tasks[*id as usize] {
                        let buffered = state.buffered_events.get(&**name).map_or(0, VecDeque::len);
                        assert_eq!(
                            buffered, 0,
                            "seed {start}: '{name}' buffered while waited for"
                        );
                    }
                }
            }
            // Nothing raised is lost: every event was received, is held by a finished wait, or
            // is buffered.
            let held = state
                .tasks
                .iter()
                .filter(|slot| matches!(slot, TaskSlot::Done { .. }))
                .count() as u64;
            let buffered: u64 = state.buffered_events.values().map(|q| q.len() as u64).sum();
            assert_eq!(raised, received + held + buffered, "seed {start}");
        }
    }

    fn child(name: &str, instance_id: &str) -> Action {
        Action::SubOrchestration(Box::new(ChildCall {
            name: name.into(),
            version: ChildVersion::Newest,
            instance_id: instance_id.into(),
            input: Payload::null(),
        }))
    }

    #[test]
    fn a_sub_orchestration_replays_only_as_the_same_child() {
        let recorded = BTreeMap::from([(
            0,
            Recorded::SubOrchestration {
                name: "child".into(),
                instance_id: "c-1".into(),
            },
        )]);
        let mut same = OrchestrationState::new(recorded.clone(), usize::MAX);
        same.schedule("child", child("child", "c-1"));
        assert!(same.nondeterminism.is_none());
        assert!(same.new_tasks.is_empty(), "replayed, not created again");

        let mut other_id = OrchestrationState::new(recorded.clone(), usize::MAX);
        other_id.schedule("child", child("child", "c-2"));
        assert_eq!(
            other_id.nondeterminism.as_deref(),
            Some(
                "non-deterministic orchestrator: history has SubOrchestrationInstanceCreated \
                 'child' (instance 'c-1') as task 0, but the code now creates \
                 sub-orchestration 'child' (instance 'c-2')"
            )
        );

        let mut activity = OrchestrationState::new(recorded, usize::MAX);
        activity.schedule(
            "child",
            Action::Activity {
                name: "child".into(),
                input: Payload::null(),
            },
        );
        assert!(activity.nondeterminism.is_some());
        assert!(
            activity.new_tasks.is_empty(),
            "nothing of the diverging code is recorded"
        );
    }
}
