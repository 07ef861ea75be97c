//! What adoption hands over on a shared store (feature `postgres`, `DURABLE_TEST_POSTGRES_URL`;
//! skipped, loudly, without it), where it can race with the runtime's own steps and writes:
//!
//! - A start message handed over again after its run ended (adoption read it before the step
//!   that consumed it committed) is not taken for the current run: the instance runs on the
//!   run the store is on, with its own input, instead of failing every step as fenced forever.
//! - A message this runtime writes for an instance of a partition it has just taken over waits
//!   until adoption has handed over the older messages the store keeps for it: two events
//!   reach the instance in the order they were raised, although the first was raised through
//!   the store before this runtime ran and the second through this runtime's own client.
//! - The same across a lapse of the lease that the next renewal takes up again (same epoch in
//!   the database): what this runtime wrote while the lease had lapsed is adopted first.
//! - A timer that comes due before adoption has handed over an older event fires after it:
//!   the event wins the race it was raised in time for.
#![cfg(feature = "postgres")]

mod support;

use async_trait::async_trait;
use durable_runtime::prelude::*;
use durable_runtime::store::postgres::{PostgresStore, SharedOptions};
use durable_runtime::store::{
    Adopted, Backend, LeaseChange, LeaseId, Leases, Message, StoreError, Write,
};
use durable_runtime::{ExecutionStartedEvent, HistoryEvent, Payload};
use std::sync::{Arc, Mutex};
use support::hooked::{BoxFut, HookedStore, Phase};

const LEASE_TTL: Duration = Duration::from_secs(5);

#[orchestrator]
async fn two_events(ctx: OrchestrationContext) -> Result<(String, String), OrchestrationError> {
    let first = ctx.wait_for_event::<String>("e").await?;
    let second = ctx.wait_for_event::<String>("e").await?;
    Ok((first, second))
}

#[orchestrator]
async fn event_or_timer(
    ctx: OrchestrationContext,
    wait_ms: u64,
) -> Result<String, OrchestrationError> {
    let event = ctx.wait_for_event::<String>("e");
    let deadline = ctx.sleep(Duration::from_millis(wait_ms));
    Ok(match ctx.when_any2(event, deadline).await {
        Either::Left(event) => event?,
        Either::Right(()) => "timer".to_string(),
    })
}

#[orchestrator]
async fn add_one(_ctx: OrchestrationContext, n: u32) -> Result<u32, OrchestrationError> {
    Ok(n + 1)
}

/// The leases of a shared store, with messages of the test's choosing put first in the next
/// adoption, which the test can set off at once.
struct InjectingLeases {
    inner: Arc<dyn Leases>,
    inject: Mutex<Vec<Message>>,
    signal: tokio::sync::Notify,
    /// While true, adoption waits.
    paused: tokio::sync::watch::Sender<bool>,
    /// While true, renewals wait.
    renewals_paused: tokio::sync::watch::Sender<bool>,
    /// Renewals that waited, and renewals done.
    renewals_waiting: tokio::sync::watch::Sender<u32>,
    renewals_done: tokio::sync::watch::Sender<u32>,
}

impl InjectingLeases {
    fn hand_over(&self, message: Message) {
        self.inject.lock().expect("not poisoned").push(message);
        self.signal.notify_one();
    }
}

#[async_trait]
impl Leases for InjectingLeases {
    fn worker_id(&self) -> &str {
        self.inner.worker_id()
    }

    fn ttl(&self) -> Duration {
        self.inner.ttl()
    }

    fn holds(&self, id: &str) -> bool {
        self.inner.holds(id)
    }

    async fn renew(&self) -> Result<LeaseChange, StoreError> {
        let mut paused = self.renewals_paused.subscribe();
        if *paused.borrow_and_update() {
            self.renewals_waiting.send_modify(|n| *n += 1);
            let _ = paused.wait_for(|paused| !*paused).await;
        }
        let renewed = self.inner.renew().await;
        self.renewals_done.send_modify(|n| *n += 1);
        renewed
    }

    fn lease_of(&self, id: &str) -> Option<LeaseId> {
        self.inner.lease_of(id)
    }

    fn leases_held(&self) -> Vec<LeaseId> {
        self.inner.leases_held()
    }

    async fn adopt(&self, limit: usize) -> Result<Adopted, StoreError> {
        let mut paused = self.paused.subscribe();
        // Never dropped while adoption waits: the sender lives as long as `self`.
        let _ = paused.wait_for(|paused| !*paused).await;
        let mut adopted = self.inner.adopt(limit).await?;
        let injected = std::mem::take(&mut *self.inject.lock().expect("not poisoned"));
        adopted.messages.splice(0..0, injected);
        Ok(adopted)
    }

    async fn work_signalled(&self) {
        tokio::select! {
            () = self.inner.work_signalled() => {}
            () = self.signal.notified() => {}
        }
    }

    async fn finished_elsewhere(&self) -> Vec<String> {
        self.inner.finished_elsewhere().await
    }

    async fn release_all(&self) -> Result<(), StoreError> {
        self.inner.release_all().await
    }
}

/// A shared PostgreSQL store in a schema of its own (named too), its leases wrapped to inject
/// adoptions.
async fn shared_store(
    test: &str,
) -> Option<(Arc<PostgresStore>, Arc<InjectingLeases>, String, String)> {
    shared_store_with(test, LEASE_TTL).await
}

async fn shared_store_with(
    test: &str,
    lease_ttl: Duration,
) -> Option<(Arc<PostgresStore>, Arc<InjectingLeases>, String, String)> {
    let Ok(url) = std::env::var("DURABLE_TEST_POSTGRES_URL") else {
        eprintln!("SKIPPED {test}: DURABLE_TEST_POSTGRES_URL is not set");
        return None;
    };
    let options = SharedOptions {
        lease_ttl,
        worker_id: None,
    };
    let schema = support::unique_schema();
    let store = PostgresStore::connect_shared(&url, &schema, options)
        .await
        .expect("store opens");
    let leases = Arc::new(InjectingLeases {
        inner: store.leases().expect("a shared store has leases"),
        inject: Mutex::new(Vec::new()),
        signal: tokio::sync::Notify::new(),
        paused: tokio::sync::watch::Sender::new(false),
        renewals_paused: tokio::sync::watch::Sender::new(false),
        renewals_waiting: tokio::sync::watch::Sender::new(0),
        renewals_done: tokio::sync::watch::Sender::new(0),
    });
    Some((Arc::new(store), leases, url, schema))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_handed_over_again_after_its_run_ended_does_not_take_over_the_current_run() {
    let Some((store, leases, ..)) = shared_store("a_start_handed_over_again").await else {
        return;
    };
    let instance = "handed-over-again";
    // Held before the runtime starts (its lease loop keeps what this renewal claims): the
    // instance's steps commit from the first.
    leases.renew().await.expect("claims the partitions");
    assert!(
        leases.holds(instance),
        "a lone worker holds every partition"
    );
    // The start of an ended run of the instance (input 100), consumed long ago: handed over
    // after the instance's current start was created and before that start reaches the
    // dispatcher, so that it comes first.
    let stale = Message {
        id: i64::MAX,
        instance_id: instance.into(),
        execution_id: Arc::from("ended-run"),
        event: HistoryEvent::ExecutionStarted(Box::new(ExecutionStartedEvent {
            name: "add_one".into(),
            version: None,
            input: Payload::encode(&100u32).expect("encodes"),
            execution_id: Some("ended-run".into()),
            parent: None,
            carried_events: Vec::new(),
        })),
    };
    let (stepped_stale, stale_seen) = tokio::sync::watch::channel(false);
    let stepped_stale = Arc::new(stepped_stale);
    let hook = {
        let leases = leases.clone();
        let stale = Mutex::new(Some(stale));
        Arc::new(move |phase: Phase, write: &Write| -> BoxFut {
            match (phase, write) {
                (Phase::After, Write::CreateInstance(new)) if new.instance_id == instance => {
                    if let Some(stale) = stale.lock().expect("not poisoned").take() {
                        leases.hand_over(stale);
                    }
                    // The answer (and with it the current start) waits until the stale start
                    // was stepped alone.
                    let mut seen = stale_seen.clone();
                    Box::pin(async move {
                        let stepped = tokio::time::timeout(support::WAIT, seen.wait_for(|s| *s));
                        assert!(stepped.await.is_ok(), "the stale start was never stepped");
                        None
                    })
                }
                (Phase::Before, Write::Step(step)) if &*step.execution_id == "ended-run" => {
                    stepped_stale.send_replace(true);
                    Box::pin(async { None })
                }
                _ => Box::pin(async { None }),
            }
        })
    };
    let (runtime, client) = start_runtime(store, &leases, hook).await;
    client
        .start_with_id(add_one, instance, 1u32)
        .await
        .expect("starts the instance");
    let status = client
        .wait_for_completion(instance, support::WAIT)
        .await
        .expect("the current run completes");
    assert_eq!(status.output_as::<u32>().expect("output"), 2);
    let history = support::history(&client, instance).await;
    let starts = history
        .iter()
        .filter(|r| matches!(r.event, HistoryEvent::ExecutionStarted(_)))
        .count();
    assert_eq!(starts, 1, "one run, started once: {history:?}");
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_written_here_waits_for_the_older_ones_adoption_hands_over() {
    let Some((store, leases, url, schema)) = shared_store("a_message_written_here_waits").await
    else {
        return;
    };
    // Before this runtime runs: the instance and its first event, through the store alone.
    let offline = offline_client(&url, &schema).await;
    let id = offline.start(two_events, ()).await.expect("created");
    offline
        .raise_event(&id, "e", "first")
        .await
        .expect("raised through the store");
    // This runtime holds the partition, and has adopted nothing yet.
    leases.paused.send_replace(true);
    leases.renew().await.expect("claims the partitions");
    assert!(leases.holds(&id), "a lone worker holds every partition");
    let (runtime, client) = start_runtime(store, &leases, no_hook()).await;
    raise_second_then_adopt(&client, &leases, &id).await;
    runtime.shutdown().await;
}

/// A client of the store alone (no worker): what it writes waits in the store for adoption.
async fn offline_client(url: &str, schema: &str) -> durable_runtime::Client {
    Runtime::builder()
        .postgres(url)
        .postgres_schema(schema)
        .postgres_shared()
        .open_client()
        .await
        .expect("a client of the store alone")
}

/// Raises the event "second" through this runtime while adoption is paused, lets adoption go
/// on, and checks that `two_events` saw "first" (stored earlier) before it.
async fn raise_second_then_adopt(
    client: &durable_runtime::Client,
    leases: &InjectingLeases,
    id: &str,
) {
    client
        .raise_event(id, "e", "second")
        .await
        .expect("raised through this runtime");
    leases.paused.send_replace(false);
    let status = client
        .wait_for_completion(id, support::WAIT)
        .await
        .expect("completes");
    assert_eq!(
        status.output_as::<(String, String)>().expect("output"),
        ("first".to_string(), "second".to_string()),
        "the events in the order they were raised"
    );
}

/// A hook that lets every write through untouched.
fn no_hook() -> support::hooked::Hook {
    Arc::new(|_: Phase, _: &Write| -> BoxFut { Box::pin(async { None }) })
}

/// A runtime on `store`, with `leases` standing in for the store's and `hook` on its writes.
async fn start_runtime(
    store: Arc<PostgresStore>,
    leases: &Arc<InjectingLeases>,
    hook: support::hooked::Hook,
) -> (Runtime, durable_runtime::Client) {
    let hooked = HookedStore {
        inner: store,
        hook,
        page_delay: Duration::ZERO,
        pages_open: None,
        leases: Some(leases.clone()),
    };
    let runtime = Runtime::builder()
        .store(Arc::new(hooked))
        .start()
        .await
        .expect("starts");
    let client = runtime.client();
    (runtime, client)
}

/// Waits (bounded) until `condition` holds: for a lease to lapse or come back by the clock.
async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + support::WAIT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_written_after_a_lapse_waits_for_what_was_written_during_it() {
    // Short, for the lapse below to come soon; long enough that the lease, once renewed, does
    // not lapse again (no renewal follows while adoption is paused) before it is used.
    let ttl = Duration::from_secs(1);
    let Some((store, leases, url, schema)) =
        shared_store_with("a_message_written_after_a_lapse", ttl).await
    else {
        return;
    };
    leases.renew().await.expect("claims the partitions");
    let (runtime, client) = start_runtime(store, &leases, no_hook()).await;
    let id = client.start(two_events, ()).await.expect("starts");
    support::until_status(&client, &id, RuntimeStatus::Running).await;

    // The lease loop stops renewing; the database keeps the lease (no other worker takes it,
    // and its expiry is pushed back), while this runtime's clock lets it lapse.
    let mut waiting = leases.renewals_waiting.subscribe();
    leases.renewals_paused.send_replace(true);
    waiting
        .wait_for(|n| *n > 0)
        .await
        .expect("the lease loop renews");
    let (db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    db.batch_execute(&format!(
        "UPDATE {schema}.partitions SET expires_at = now() + interval '1 hour'"
    ))
    .await
    .expect("keeps the leases in the database");
    until("the lease lapses here", || !leases.holds(&id)).await;
    client
        .raise_event(&id, "e", "first")
        .await
        .expect("raised while the lease had lapsed here");

    // Renewed (same epoch: the database never let it go), and not adopted yet.
    leases.paused.send_replace(true);
    let mut done = leases.renewals_done.subscribe();
    let before = *done.borrow_and_update();
    leases.renewals_paused.send_replace(false);
    done.wait_for(|n| *n > before)
        .await
        .expect("the lease loop renews");
    assert!(leases.holds(&id), "held again after the renewal");
    raise_second_then_adopt(&client, &leases, &id).await;
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_due_before_adoption_fires_after_the_older_messages() {
    let Some((store, leases, url, schema)) = shared_store("a_timer_due_before_adoption").await
    else {
        return;
    };
    // A first runtime runs the instance up to its race, then stops and gives its leases up.
    let first = Runtime::builder()
        .postgres(&url)
        .postgres_schema(&schema)
        .postgres_shared()
        .lease_ttl(LEASE_TTL)
        .start()
        .await
        .expect("starts");
    let first_client = first.client();
    let id = first_client
        // Long enough for the shutdown, a client's start and the event to come before it.
        .start(event_or_timer, 3_000u64)
        .await
        .expect("starts");
    support::until_recorded(&first_client, &id, "the timer", 1, |e| {
        matches!(e, HistoryEvent::TimerCreated { .. })
    })
    .await;
    let fire_at_ms = support::history(&first_client, &id)
        .await
        .iter()
        .find_map(|r| match r.event {
            HistoryEvent::TimerCreated { fire_at_ms, .. } => Some(fire_at_ms),
            _ => None,
        })
        .expect("a timer");
    first.shutdown().await;
    drop(first_client);
    // The event, through the store, before the timer is due; then the timer comes due.
    let offline = offline_client(&url, &schema).await;
    offline
        .raise_event(&id, "e", "event")
        .await
        .expect("raised in time");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    assert!(
        now_ms < fire_at_ms,
        "the event was raised before the timer came due"
    );
    // Not synchronisation: the scenario is a timer already due when this runtime starts.
    tokio::time::sleep(Duration::from_millis((fire_at_ms - now_ms + 50) as u64)).await;

    // This runtime holds the partition and has adopted nothing yet; its timer service finds
    // the due timer on its own.
    leases.paused.send_replace(true);
    leases.renew().await.expect("claims the partitions");
    let (fired, mut fired_seen) = tokio::sync::watch::channel(false);
    let hook = Arc::new(move |phase: Phase, write: &Write| -> BoxFut {
        if phase == Phase::Before && matches!(write, Write::FireTimer { .. }) {
            fired.send_replace(true);
        }
        Box::pin(async { None })
    });
    let (runtime, client) = start_runtime(store, &leases, hook).await;
    // Fired through the store (and held), or, in memory, already decided the race.
    tokio::select! {
        seen = fired_seen.wait_for(|fired| *fired) => { seen.expect("the hook lives"); }
        finished = client.wait_for_completion(&id, support::WAIT) => {
            finished.expect("finishes");
        }
    }
    leases.paused.send_replace(false);
    let status = client
        .wait_for_completion(&id, support::WAIT)
        .await
        .expect("completes");
    assert_eq!(
        status.output_as::<String>().expect("output"),
        "event",
        "the event raised before the timer came due wins"
    );
    runtime.shutdown().await;
}
