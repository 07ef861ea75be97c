//! Helpers shared by the integration tests.
#![allow(dead_code)]

use durable_runtime::{Client, Runtime, RuntimeBuilder};
use std::path::PathBuf;
use tempfile::TempDir;

/// A fresh store in its own temporary directory (removed on drop).
pub struct TestStore {
    pub dir: TempDir,
}

impl TestStore {
    pub fn new() -> Self {
        TestStore {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("durable.db")
    }

    pub fn builder(&self) -> RuntimeBuilder {
        Runtime::builder().sqlite(self.path())
    }

    pub async fn start(&self) -> (Runtime, Client) {
        self.start_with(|builder| builder).await
    }

    /// Starts a runtime on this store with adjusted settings.
    pub async fn start_with(
        &self,
        settings: impl FnOnce(RuntimeBuilder) -> RuntimeBuilder,
    ) -> (Runtime, Client) {
        let runtime = settings(self.builder())
            .start()
            .await
            .expect("runtime starts");
        let client = runtime.client();
        (runtime, client)
    }
}

/// The instance's full history (the instance must exist).
pub async fn history(client: &Client, id: &str) -> Vec<durable_runtime::HistoryRecord> {
    client
        .get_status_with_history(id)
        .await
        .expect("reads the store")
        .expect("the instance exists")
        .history
        .expect("history was asked for")
}

pub const WAIT: std::time::Duration = std::time::Duration::from_secs(30);
