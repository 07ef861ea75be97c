//! The activity queue, fair between instances: each instance with activities waiting has its
//! own first-in-first-out queue, and the activity workers take one activity from each in turn
//! (round robin). An instance that fans out to 50,000 activities then delays another
//! instance's activity by one turn, not by its whole backlog; within an instance, activities
//! still start in the order they were scheduled.

use crate::store::ActivityWorkItem;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::Notify;

/// Activities waiting to start, by instance.
#[derive(Default)]
struct Queued {
    by_instance: HashMap<Arc<str>, VecDeque<ActivityWorkItem>>,
    /// The instances with activities waiting, in turn order; each appears once.
    turns: VecDeque<Arc<str>>,
}

impl Queued {
    fn push(&mut self, item: ActivityWorkItem) {
        // Looked up by `&str`: only an instance's first waiting activity allocates its key.
        if let Some(queue) = self.by_instance.get_mut(item.instance_id.as_str()) {
            queue.push_back(item);
            return;
        }
        let key: Arc<str> = Arc::from(item.instance_id.as_str());
        self.turns.push_back(key.clone());
        self.by_instance.insert(key, VecDeque::from([item]));
    }

    fn pop(&mut self) -> Option<ActivityWorkItem> {
        while let Some(instance) = self.turns.pop_front() {
            let Some(queue) = self.by_instance.get_mut(&instance) else {
                continue;
            };
            let item = queue.pop_front();
            if queue.is_empty() {
                self.by_instance.remove(&instance);
            } else {
                // Its next activity waits for every other instance's turn.
                self.turns.push_back(instance);
            }
            if item.is_some() {
                return item;
            }
        }
        None
    }
}

/// The activity queue shared by the dispatcher (which fills it) and the activity loop (which
/// drains it).
#[derive(Default)]
pub(crate) struct FairQueue {
    queued: Mutex<Queued>,
    /// Wakes the activity loop; a wake-up while it is busy is kept for its next wait.
    filled: Notify,
}

impl FairQueue {
    /// Queues `items` behind their instance's earlier activities.
    pub(crate) fn push_all(&self, items: impl IntoIterator<Item = ActivityWorkItem>) {
        let mut queued = self.queued.lock();
        for item in items {
            queued.push(item);
        }
        drop(queued);
        self.filled.notify_one();
    }

    /// The next activity, in turn, if any waits.
    pub(crate) fn try_pop(&self) -> Option<ActivityWorkItem> {
        self.queued.lock().pop()
    }

    /// Waits for the next activity, in turn.
    pub(crate) async fn pop(&self) -> ActivityWorkItem {
        loop {
            if let Some(item) = self.try_pop() {
                return item;
            }
            // A push between the failed pop and this wait left a permit: no wake-up is lost.
            self.filled.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(instance: &str, id: i64) -> ActivityWorkItem {
        ActivityWorkItem {
            id,
            instance_id: instance.to_string(),
            execution_id: "run".into(),
            task_id: 0,
            name: "work".to_string(),
            input: crate::payload::Payload::encode(&()).expect("encodes"),
        }
    }

    #[test]
    fn instances_take_turns_and_each_keeps_its_order() {
        let queue = FairQueue::default();
        queue.push_all((1..=4).map(|id| item("big", id)));
        queue.push_all([item("small", 10)]);
        queue.push_all([item("other", 20), item("other", 21)]);
        let order: Vec<i64> = std::iter::from_fn(|| queue.try_pop())
            .map(|item| item.id)
            .collect();
        assert_eq!(order, vec![1, 10, 20, 2, 21, 3, 4]);
        assert!(queue.try_pop().is_none());
        // An instance whose queue emptied gets a turn again when it schedules more.
        queue.push_all([item("small", 11)]);
        assert_eq!(queue.try_pop().map(|item| item.id), Some(11));
    }

    #[tokio::test]
    async fn a_waiting_pop_wakes_on_a_push() {
        let queue = Arc::new(FairQueue::default());
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.pop().await.id }
        });
        tokio::task::yield_now().await;
        queue.push_all([item("a", 7)]);
        assert_eq!(waiting.await.expect("joins"), 7);
    }
}
