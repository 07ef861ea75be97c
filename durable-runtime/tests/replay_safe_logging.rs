//! Replay-safe logging: a line logged with `durable_runtime::info!` (and its siblings) is
//! emitted once per execution of the orchestrator's code, never again when the instance is
//! replayed, whether every step replays (cache off) or a restart replays the history.

mod support;

use durable_runtime::prelude::*;
use parking_lot::Mutex;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use support::{TestStore, WAIT};

/// Everything every subscriber event printed, in this test binary.
static CAPTURED: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber once; returns the lines captured so far.
fn captured_lines() -> Vec<String> {
    let buffer = CAPTURED.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || Capture(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        buffer
    });
    let text = String::from_utf8_lossy(&buffer.lock()).into_owned();
    text.lines().map(str::to_string).collect()
}

fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|line| line.contains(needle)).count()
}

static REPLAYED_STEPS: AtomicUsize = AtomicUsize::new(0);

#[activity]
async fn echo(n: u32) -> u32 {
    n
}

/// Logs at every step, with each macro; waits for "next" after the third step.
#[orchestrator]
async fn chatty(ctx: OrchestrationContext, tag: String) -> Result<u32, OrchestrationError> {
    let mut total = 0;
    for step in 0..6u32 {
        if ctx.is_replaying() {
            #[durable::allow_nondeterministic("a test counter: it proves replays happened")]
            REPLAYED_STEPS.fetch_add(1, Ordering::SeqCst);
        }
        durable_runtime::info!(ctx, tag = %tag, "info line {step} of {tag}");
        durable_runtime::warn!(ctx, "warn line {step} of {tag}");
        durable_runtime::error!(ctx, "error line {step} of {tag}");
        durable_runtime::debug!(ctx, "debug line {step} of {tag}");
        durable_runtime::trace!(ctx, "trace line {step} of {tag}");
        total += ctx.call_activity(echo, step).await?;
        if step == 2 {
            ctx.wait_for_event::<()>("next").await?;
        }
    }
    Ok(total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_line_is_logged_once_across_replays_and_a_restart() {
    captured_lines();
    for (cache, tag) in [(1024usize, "hot-cache"), (0, "replay-every-step")] {
        let store = TestStore::new();
        let replayed_before = REPLAYED_STEPS.load(Ordering::SeqCst);
        let (runtime, client) = store.start_with(|b| b.cache_capacity(cache)).await;
        let id = client.start(chatty, tag.to_string()).await.expect("starts");
        support::until_recorded(&client, &id, "waits for next", 3, |e| {
            matches!(e, durable_runtime::HistoryEvent::TaskCompleted { .. })
        })
        .await;
        runtime.shutdown().await;
        drop(client);
        // The restart replays the first three steps.
        let (runtime, client) = store.restart(|b| b.cache_capacity(cache)).await;
        client.raise_event(&id, "next", ()).await.expect("raised");
        let done = client.wait_for_completion(&id, WAIT).await.expect("ends");
        assert_eq!(done.output_as::<u32>().expect("output"), 15);
        runtime.shutdown().await;

        assert!(
            REPLAYED_STEPS.load(Ordering::SeqCst) > replayed_before,
            "{tag}: the code was replayed, so the test proves something"
        );
        let lines = captured_lines();
        for level in ["info", "warn", "error", "debug", "trace"] {
            for step in 0..6 {
                let line = format!("{level} line {step} of {tag}");
                assert_eq!(count(&lines, &line), 1, "{line}: {lines:#?}");
            }
        }
        // The fields reach tracing as given.
        assert_eq!(count(&lines, &format!("tag={tag}")), 6, "{tag}");
    }
    let _ = std::io::stderr().flush();
}
