//! The local queues' consumer: each message is handled on its own and settled (deleted, hidden
//! or left) as soon as its own handling ends, so a subscriber that hangs until the delivery
//! timeout holds back only its own messages. New messages are taken while slow ones are in
//! flight, up to a bound per queue.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use relay_core::Disposition;
use relay_core::fanout::Fanout;
use relay_core::model::ReceivedMessage;
use relay_local::{LocalBackend, LocalQueueName};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::{error, warn};

use super::supervisor::panic_message;

/// Messages of one queue handled at once.
pub const MAX_IN_FLIGHT: usize = 256;
/// Most messages taken in one receive.
const RECEIVE_MAX: usize = 64;
/// Most handles deleted in one commit.
const DELETE_BATCH: usize = 64;
/// Pause after a failed receive or wait, so a broken store is not hammered.
const STORE_RETRY: Duration = Duration::from_millis(500);

/// Receives from `queue` for as long as it runs; stopping it (dropping the future) abandons the
/// messages in flight, which the queue hands out again after their visibility timeout.
pub async fn consume(
    backend: LocalBackend,
    fanout: Arc<Fanout>,
    queue: LocalQueueName,
    visibility: Duration,
    max_in_flight: usize,
) {
    let max_in_flight = max_in_flight.max(1);
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let deletes = spawn_deleter(backend.clone(), queue, max_in_flight);
    // Dropped with this future: aborts the handlings in flight.
    let mut in_flight = JoinSet::new();
    loop {
        // Finished handlings; their outcome was settled by themselves.
        while in_flight.try_join_next().is_some() {}
        let Ok(first) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let free = 1 + permits.available_permits();
        let messages = match backend
            .receive(queue, free.min(RECEIVE_MAX), visibility)
            .await
        {
            Ok(messages) => messages,
            Err(e) => {
                drop(first);
                warn!(queue = %queue, error = %e, "receive failed; retrying");
                tokio::time::sleep(STORE_RETRY).await;
                continue;
            }
        };
        if messages.is_empty() {
            drop(first);
            if let Err(e) = backend
                .wait_for_messages(queue, Duration::from_secs(1))
                .await
            {
                warn!(queue = %queue, error = %e, "wait failed");
                tokio::time::sleep(STORE_RETRY).await;
            }
            continue;
        }
        let mut first = Some(first);
        for message in messages {
            // No more were received than there were free permits, and only this loop takes
            // them, so this does not wait.
            let permit = match first.take() {
                Some(permit) => permit,
                None => match Arc::clone(&permits).acquire_owned().await {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            let fanout = Arc::clone(&fanout);
            let backend = backend.clone();
            let deletes = deletes.clone();
            in_flight.spawn(async move {
                handle_and_settle(&fanout, &backend, queue, message, &deletes).await;
                drop(permit);
            });
        }
    }
}

async fn handle_and_settle(
    fanout: &Fanout,
    backend: &LocalBackend,
    queue: LocalQueueName,
    message: ReceivedMessage,
    deletes: &mpsc::Sender<String>,
) {
    let handled = AssertUnwindSafe(fanout.handle_message(&message))
        .catch_unwind()
        .await;
    let disposition = match handled {
        Ok(disposition) => disposition,
        Err(panic) => {
            // One message's panic stays with it: it comes back after its visibility timeout and
            // reaches the DLQ through the max receive count if it keeps failing.
            error!(
                queue = %queue,
                message_id = %message.id,
                panic = %panic_message(panic.as_ref()),
                "handling a message panicked; it is left for its visibility timeout"
            );
            return;
        }
    };
    match disposition {
        Disposition::Delete => {
            if deletes.send(message.id).await.is_err() {
                warn!(queue = %queue, "deleter stopped; the message comes back after its visibility timeout");
            }
        }
        Disposition::Retry => {}
        Disposition::HideFor(secs) => {
            if let Err(e) = backend.change_visibility(queue, &message.id, secs).await {
                warn!(queue = %queue, error = %e, "could not hide an early delivery");
            }
        }
    }
}

/// Deletes settled messages in commits of whatever is ready: while one commit runs, the next
/// handles gather, so deletes are batched without ever waiting for a slow sibling.
fn spawn_deleter(
    backend: LocalBackend,
    queue: LocalQueueName,
    capacity: usize,
) -> mpsc::Sender<String> {
    let (sender, mut receiver) = mpsc::channel::<String>(capacity);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(DELETE_BATCH);
        while let Some(handle) = receiver.recv().await {
            batch.push(handle);
            while batch.len() < DELETE_BATCH {
                match receiver.try_recv() {
                    Ok(handle) => batch.push(handle),
                    Err(_) => break,
                }
            }
            if let Err(e) = backend.delete_many(queue, &batch).await {
                // They come back after the visibility timeout; the fanout skips settled ones.
                warn!(queue = %queue, error = %e, "delete failed");
            }
            batch.clear();
        }
    });
    sender
}
