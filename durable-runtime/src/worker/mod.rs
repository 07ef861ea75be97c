//! The workers: tasks that run orchestration steps and activities as work becomes durable.

pub(crate) mod activity;
pub(crate) mod orchestration;
pub(crate) mod timer;

use crate::dispatch::Dispatcher;
use crate::registry::Registry;
use crate::store::Backend;
use std::sync::Arc;
use std::time::Duration;

/// What every worker shares.
pub(crate) struct Shared {
    pub store: Arc<dyn Backend>,
    pub registry: Registry,
    pub dispatcher: Dispatcher,
}

/// How long to wait before retrying work whose write failed (a full disk, an I/O error).
pub(crate) const RETRY_DELAY: Duration = Duration::from_millis(500);
