//! A backend wrapper that lets a test stand between the runtime and the store: delay a write,
//! hold its answer back, or fail it, at a point the test chooses.

use async_trait::async_trait;
use durable_runtime::HistoryRecord;
use durable_runtime::instance::{InstancePage, InstanceQuery, InstanceStatus};
use durable_runtime::store::{
    ActivityWorkItem, Backend, CurrentRun, DueKey, Message, PendingPage, StoreError, TimerWorkItem,
    Watermarks, Write, Written,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Before the write reaches the store, or after it was applied (and before the answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Before,
    After,
}

pub type BoxFut = Pin<Box<dyn Future<Output = Option<StoreError>> + Send>>;

/// Called twice per write; an error returned `Before` is answered without applying the write,
/// one returned `After` replaces the answer of an applied write.
pub type Hook = Arc<dyn Fn(Phase, &Write) -> BoxFut + Send + Sync>;

pub struct HookedStore {
    pub inner: Arc<dyn Backend>,
    pub hook: Hook,
    /// How long each read of a page of pending messages takes (a slow disk, a big table).
    pub page_delay: std::time::Duration,
    /// If set, reads of pending messages wait until it says true (startup recovery held at a
    /// point the test chooses).
    pub pages_open: Option<tokio::sync::watch::Receiver<bool>>,
    /// If set, stands in for the leases of `inner` (a shared store): the test decides what
    /// adoption hands over.
    pub leases: Option<Arc<dyn durable_runtime::store::Leases>>,
}

impl HookedStore {
    /// `inner` with every pending-messages page read taking `page_delay`, writes untouched.
    pub fn slow_pages(inner: Arc<dyn Backend>, page_delay: std::time::Duration) -> Self {
        HookedStore {
            inner,
            hook: Arc::new(|_, _| -> BoxFut { Box::pin(async { None }) }),
            page_delay,
            pages_open: None,
            leases: None,
        }
    }
}

#[async_trait]
impl Backend for HookedStore {
    async fn write(&self, write: Write) -> Result<Written, StoreError> {
        if let Some(err) = (self.hook)(Phase::Before, &write).await {
            return Err(err);
        }
        let copy = write.clone();
        let answer = self.inner.write(write).await;
        if let Some(err) = (self.hook)(Phase::After, &copy).await {
            return Err(err);
        }
        answer
    }

    async fn read_instance(&self, instance_id: &str) -> Result<Option<InstanceStatus>, StoreError> {
        self.inner.read_instance(instance_id).await
    }

    async fn read_history(&self, instance_id: &str) -> Result<Vec<HistoryRecord>, StoreError> {
        self.inner.read_history(instance_id).await
    }

    async fn list_instances(&self, query: &InstanceQuery) -> Result<InstancePage, StoreError> {
        self.inner.list_instances(query).await
    }

    async fn read_current_run(&self, instance_id: &str) -> Result<Option<CurrentRun>, StoreError> {
        self.inner.read_current_run(instance_id).await
    }

    async fn work_watermarks(&self) -> Result<Watermarks, StoreError> {
        self.inner.work_watermarks().await
    }

    async fn pending_messages(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<PendingPage<Message>, StoreError> {
        if let Some(open) = &self.pages_open {
            let _ = open.clone().wait_for(|open| *open).await;
        }
        tokio::time::sleep(self.page_delay).await;
        self.inner.pending_messages(after_id, limit).await
    }

    async fn pending_activities(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<PendingPage<ActivityWorkItem>, StoreError> {
        self.inner.pending_activities(after_id, limit).await
    }

    async fn pending_timers(
        &self,
        after: DueKey,
        limit: usize,
    ) -> Result<PendingPage<TimerWorkItem>, StoreError> {
        self.inner.pending_timers(after, limit).await
    }

    async fn load_entity(
        &self,
        entity_id: &str,
    ) -> Result<durable_runtime::store::EntitySnapshot, StoreError> {
        self.inner.load_entity(entity_id).await
    }

    async fn read_entity(
        &self,
        entity_id: &str,
    ) -> Result<Option<durable_runtime::store::EntityRecord>, StoreError> {
        self.inner.read_entity(entity_id).await
    }

    async fn entities_with_pending(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.inner.entities_with_pending(after, limit).await
    }

    async fn list_entities(
        &self,
        query: &durable_runtime::store::EntityQuery,
    ) -> Result<durable_runtime::store::EntityPage, StoreError> {
        self.inner.list_entities(query).await
    }

    fn leases(&self) -> Option<Arc<dyn durable_runtime::store::Leases>> {
        self.leases.clone().or_else(|| self.inner.leases())
    }

    async fn entity_log(
        &self,
        entity_id: &str,
    ) -> Result<Vec<durable_runtime::store::EntityLogEntry>, StoreError> {
        self.inner.entity_log(entity_id).await
    }
}
