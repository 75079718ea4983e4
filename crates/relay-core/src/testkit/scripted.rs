//! A queue producer that records what it is given (and can be told to fail), and a deliverer
//! that answers from a script: the fanout's ports for unit tests, with no network or broker.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::model::{DeliveryTask, EventEnvelope};
use crate::outbound::delivery::{Attempt, AttemptResult, Outcome};
use crate::ports::{Deliverer, DeliveryLane, Queue, QueueError};

/// Records sent events, scheduled deliveries (with their delays) and dead letters.
#[derive(Debug, Default)]
pub struct RecordingQueue {
    pub events: Mutex<Vec<EventEnvelope>>,
    pub deliveries: Mutex<Vec<(DeliveryTask, u32)>>,
    pub dead_letters: Mutex<Vec<DeliveryTask>>,
    /// The lane of each of `deliveries`, in the same order.
    pub lanes: Mutex<Vec<DeliveryLane>>,
    failing: AtomicBool,
}

impl RecordingQueue {
    /// While set, every send fails as an unreachable queue does.
    pub fn fail_sends(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), QueueError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(QueueError::Unavailable("queue down (scripted)".into()))
        } else {
            Ok(())
        }
    }

    pub fn scheduled(&self) -> Vec<(DeliveryTask, u32)> {
        self.deliveries
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }

    pub fn parked(&self) -> Vec<DeliveryTask> {
        self.dead_letters
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }
}

#[async_trait]
impl Queue for RecordingQueue {
    async fn send_event(&self, event: &EventEnvelope) -> Result<(), QueueError> {
        self.check()?;
        if let Ok(mut events) = self.events.lock() {
            events.push(event.clone());
        }
        Ok(())
    }

    async fn send_delivery_on(
        &self,
        lane: DeliveryLane,
        task: &DeliveryTask,
        delay_secs: u32,
    ) -> Result<(), QueueError> {
        self.check()?;
        if let Ok(mut deliveries) = self.deliveries.lock() {
            deliveries.push((task.clone(), delay_secs));
        }
        if let Ok(mut lanes) = self.lanes.lock() {
            lanes.push(lane);
        }
        Ok(())
    }

    async fn dead_letter_delivery(&self, task: &DeliveryTask) -> Result<(), QueueError> {
        self.check()?;
        if let Ok(mut parked) = self.dead_letters.lock() {
            parked.push(task.clone());
        }
        Ok(())
    }
}

/// One attempt as the deliverer saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenAttempt {
    pub subscription_id: String,
    pub attempt: u32,
    pub timeout: Duration,
}

/// Answers each attempt with the next scripted outcome (2xx once the script is spent).
#[derive(Debug)]
pub struct ScriptedDeliverer {
    timeout: Duration,
    script: Mutex<VecDeque<AttemptResult>>,
    seen: Mutex<Vec<SeenAttempt>>,
}

impl ScriptedDeliverer {
    pub fn new(timeout: Duration, script: impl IntoIterator<Item = AttemptResult>) -> Self {
        Self {
            timeout,
            script: Mutex::new(script.into_iter().collect()),
            seen: Mutex::new(Vec::new()),
        }
    }

    /// An answer with this outcome and no Retry-After.
    pub fn answer(outcome: Outcome) -> AttemptResult {
        AttemptResult {
            outcome,
            latency: Duration::from_millis(3),
            excerpt: String::new(),
            retry_after: None,
        }
    }

    pub fn seen(&self) -> Vec<SeenAttempt> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Deliverer for ScriptedDeliverer {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn deliver(&self, attempt: Attempt<'_>) -> AttemptResult {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(SeenAttempt {
                subscription_id: attempt.subscription.id.clone(),
                attempt: attempt.attempt,
                timeout: attempt.timeout,
            });
        }
        self.script
            .lock()
            .ok()
            .and_then(|mut script| script.pop_front())
            .unwrap_or_else(|| Self::answer(Outcome::Delivered { status: 200 }))
    }
}
