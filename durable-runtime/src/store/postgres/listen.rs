//! Wake-ups across processes: a dedicated connection `LISTEN`s on the schema's channel, on
//! which every statement that inserts work for a partition its worker does not hold notifies
//! the partition (the schema's `durable_notify_work` trigger). A notification for a partition
//! held here signals the engine to adopt that work. When the connection breaks (a database
//! restart), notifications may have been missed: the engine is signalled once it listens
//! again, and adopts whatever is waiting.
//!
//! It also listens to `durable_done_<schema>`, on which every instance that finishes is
//! announced, so that a client waiting here for an instance another process ran wakes at
//! once (a missed announcement costs the wait's periodic re-read).

use super::lease::LeaseState;
use futures::StreamExt;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio_postgres::{AsyncMessage, NoTls};

/// Longest wait between two attempts to connect again.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Listens until the lease state is dropped (the store is gone), reconnecting as needed.
pub(crate) async fn run(config: tokio_postgres::Config, schema: String, state: Weak<LeaseState>) {
    let channel = format!("durable_{schema}");
    let mut backoff = Duration::from_millis(50);
    let mut first = true;
    loop {
        if state.strong_count() == 0 {
            return;
        }
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (ended_tx, ended_rx) = tokio::sync::oneshot::channel::<()>();
                let forward = {
                    let state = state.clone();
                    async move {
                        let mut stream =
                            futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                        while let Some(message) = stream.next().await {
                            match message {
                                Ok(AsyncMessage::Notification(note))
                                    if note.channel().starts_with("durable_done_") =>
                                {
                                    let Some(state) = state.upgrade() else { break };
                                    state.finished(note.payload());
                                }
                                Ok(AsyncMessage::Notification(note)) => {
                                    let Some(state) = state.upgrade() else { break };
                                    if let Ok(part) = note.payload().parse::<u16>()
                                        && state.holds_partition(part)
                                    {
                                        state.signal.notify_one();
                                    }
                                }
                                Ok(_) => {}
                                Err(err) => {
                                    tracing::warn!(error = %err, "the store's listening connection broke");
                                    break;
                                }
                            }
                        }
                        let _ = ended_tx.send(());
                    }
                };
                let forwarding = tokio::spawn(forward);
                let listen = format!("LISTEN \"{channel}\"; LISTEN \"durable_done_{schema}\"");
                match client.batch_execute(&listen).await {
                    Ok(()) => {
                        backoff = Duration::from_millis(50);
                        if !first {
                            tracing::info!("listening to the store again");
                        }
                        // Whatever was sent while no one listened is adopted now.
                        if let Some(state) = state.upgrade() {
                            state.signal.notify_one();
                        }
                        first = false;
                        // Until the connection ends, or the store is dropped.
                        let dropped = async {
                            while state.strong_count() > 0 {
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                        };
                        tokio::select! {
                            _ = ended_rx => {}
                            () = dropped => {
                                forwarding.abort();
                                return;
                            }
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "could not listen to the store");
                        forwarding.abort();
                    }
                }
                drop(client);
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not open the store's listening connection");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Starts listening for `state`'s worker.
pub(crate) fn spawn(config: tokio_postgres::Config, schema: &str, state: &Arc<LeaseState>) {
    tokio::spawn(run(config, schema.to_string(), Arc::downgrade(state)));
}
