//! The mutable half of a context, shared between the orchestrator's futures and the replay
//! engine: one slot per task id, the events buffered by name, and what history recorded.
//!
//! Every change here happens either while the orchestrator's code runs or while the engine
//! feeds it events, both in history order, so the state is the same on every replay.

use crate::failure::FailureDetails;
use crate::payload::Payload;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::task::Waker;

/// Something the orchestrator asked for, which history records.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// Run an activity.
    Activity { name: String, input: Payload },
    /// Fire a durable timer at this time (ms since the epoch).
    Timer { fire_at_ms: i64 },
}

/// What history says a task id was used for, to check the code against on replay.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Recorded {
    Activity(String),
    Timer,
}

impl Recorded {
    pub(crate) fn describe(&self) -> String {
        match self {
            Recorded::Activity(name) => format!("TaskScheduled '{name}'"),
            Recorded::Timer => "TimerCreated".to_string(),
        }
    }
}

impl Action {
    fn recorded(&self) -> Recorded {
        match self {
            Action::Activity { name, .. } => Recorded::Activity(name.clone()),
            Action::Timer { .. } => Recorded::Timer,
        }
    }

    fn describe(&self) -> String {
        match self {
            Action::Activity { name, .. } => format!("schedules activity '{name}'"),
            Action::Timer { .. } => "creates a timer".to_string(),
        }
    }
}

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
    /// How many slots wait for an event. The waits themselves are found by scanning the
    /// slots (oldest first): an index by name cost an idle instance a few hundred bytes.
    event_waits: usize,
    /// Deterministic ids and random numbers handed out so far.
    pub(crate) guids: u64,
    pub(crate) randoms: u64,
    /// Tasks scheduled in this step that history does not hold yet.
    pub(crate) new_tasks: Vec<ScheduledTask>,
    /// Set when the code diverged from history; the step then fails the instance.
    pub(crate) nondeterminism: Option<String>,
    pub(crate) is_replaying: bool,
    pub(crate) current_time_ms: i64,
    /// Largest encoded payload (activity input) the code may hand to the store, in bytes.
    pub(crate) max_payload_bytes: usize,
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
            event_waits: 0,
            guids: 0,
            randoms: 0,
            new_tasks: Vec::new(),
            nondeterminism: None,
            is_replaying: false,
            current_time_ms: 0,
            max_payload_bytes,
        }
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
        if self.event_waits == 0 {
            return None;
        }
        self.tasks
            .iter()
            .position(|slot| {
                matches!(slot, TaskSlot::Waiting { name: waiting, waits: Waits::Event, .. }
                    if **waiting == *name)
            })
            .map(|index| index as u64)
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
                if waits == Waits::Event {
                    self.event_waits -= 1;
                }
                *slot = TaskSlot::Done {
                    name,
                    waits,
                    result,
                    order,
                };
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
        if let Some(recorded) = self.recorded.get(&task_id)
            && self.nondeterminism.is_none()
        {
            self.nondeterminism = Some(format!(
                "non-deterministic orchestrator: history has {} as task {task_id}, but the code \
                 now waits for event '{name}'",
                recorded.describe()
            ));
        }
        self.tasks.push(TaskSlot::Waiting {
            name: name.into(),
            waits: Waits::Event,
            waker: None,
        });
        self.event_waits += 1;
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
            } => self.event_waits -= 1,
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
        self.recorded.contains_key(&(self.tasks.len() as u64))
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
            None if self.recorded.range(task_id..).next().is_some() => Some("no task".into()),
            None => None,
        };
        match expected {
            Some(expected) if self.nondeterminism.is_none() => {
                self.nondeterminism = Some(format!(
                    "non-deterministic orchestrator: history has {expected} as task {task_id}, \
                     but the code now {}",
                    action.describe()
                ));
            }
            Some(_) => {}
            None if !self.recorded.contains_key(&task_id) => {
                self.new_tasks.push(ScheduledTask { task_id, action });
            }
            None => {}
        }
        self.tasks.push(TaskSlot::Waiting {
            name: name.into(),
            waits: Waits::Task,
            waker: None,
        });
        task_id
    }

    /// A task that failed before it could be scheduled (its input did not serialize, or is too
    /// large). It uses no task id in history, so replays see the same ids.
    pub(crate) fn failed_before_scheduling(&mut self, name: &str, failure: FailureDetails) -> u64 {
        let task_id = self.tasks.len() as u64;
        self.arrived += 1;
        self.tasks.push(TaskSlot::Done {
            name: name.into(),
            waits: Waits::Task,
            result: Err(Box::new(failure)),
            order: self.arrived,
        });
        task_id
    }
}
