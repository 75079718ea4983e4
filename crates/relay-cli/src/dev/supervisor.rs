//! Keeps the queue consumers running: a consumer that panics is logged and restarted after a
//! short backoff; one that keeps panicking ends supervision, so the process can stop instead of
//! accepting events that nobody consumes.

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tracing::error;

#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    /// Wait before the first restart; doubled for each further panic within the window.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// More panics than this within `window` and supervision gives up.
    pub max_panics: usize,
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_panics: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// How supervision ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Supervised {
    /// The task returned by itself, after this many restarts.
    Finished { restarts: u32 },
    /// The task panicked more often than the policy allows.
    GaveUp { restarts: u32, last_panic: String },
    /// The task was cancelled from outside (the runtime is shutting down).
    Cancelled,
}

/// Runs `start()` as a task, restarting it after each panic, until it returns, is cancelled,
/// or panics more than `policy.max_panics` times within `policy.window`.
pub async fn supervise<F, Fut>(queue: &str, policy: RestartPolicy, mut start: F) -> Supervised
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut recent_panics: VecDeque<Instant> = VecDeque::new();
    let mut restarts = 0u32;
    loop {
        let joined = tokio::spawn(start()).await;
        let panic = match joined {
            Ok(()) => return Supervised::Finished { restarts },
            Err(e) if e.is_panic() => e.into_panic(),
            Err(_) => return Supervised::Cancelled,
        };
        let message = panic_message(panic.as_ref());
        let now = Instant::now();
        recent_panics.push_back(now);
        while recent_panics
            .front()
            .is_some_and(|at| now.duration_since(*at) > policy.window)
        {
            recent_panics.pop_front();
        }
        if recent_panics.len() > policy.max_panics {
            error!(
                queue,
                panic = %message,
                panics = recent_panics.len(),
                window_secs = policy.window.as_secs(),
                "consumer keeps panicking; giving up"
            );
            return Supervised::GaveUp {
                restarts,
                last_panic: message,
            };
        }
        let doublings = u32::try_from(recent_panics.len().saturating_sub(1)).unwrap_or(u32::MAX);
        let backoff = policy
            .first_backoff
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(policy.max_backoff);
        error!(
            queue,
            panic = %message,
            restart_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
            "consumer panicked; restarting"
        );
        tokio::time::sleep(backoff).await;
        restarts += 1;
    }
}

/// The text of a panic payload (what `panic!` was given), when it has one.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;

    fn quick() -> RestartPolicy {
        RestartPolicy {
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            max_panics: 3,
            window: Duration::from_secs(60),
        }
    }

    /// Log lines written while the test runs.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().map(|b| b.clone()).unwrap_or_default())
                .into_owned()
        }
    }

    fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    #[tokio::test]
    async fn a_task_that_panics_once_is_restarted_and_the_panic_logged() {
        let (logs, _guard) = capture_logs();
        let starts = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&starts);
        let supervised = supervise("events", quick(), move || {
            let counter = Arc::clone(&counter);
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("first run fails");
                }
            }
        })
        .await;
        assert_eq!(supervised, Supervised::Finished { restarts: 1 });
        assert_eq!(
            starts.load(Ordering::SeqCst),
            2,
            "started again after the panic"
        );
        let text = logs.text();
        assert!(text.contains("consumer panicked; restarting"), "{text}");
        assert!(text.contains("queue=\"events\""), "{text}");
        assert!(text.contains("first run fails"), "{text}");
    }

    #[tokio::test]
    async fn a_task_that_keeps_panicking_ends_supervision() {
        let (logs, _guard) = capture_logs();
        let starts = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&starts);
        let supervised = supervise("deliveries", quick(), move || {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                panic!("always fails");
            }
        })
        .await;
        assert_eq!(
            supervised,
            Supervised::GaveUp {
                restarts: 3,
                last_panic: "always fails".into()
            }
        );
        assert_eq!(
            starts.load(Ordering::SeqCst),
            4,
            "max_panics restarts, then no more"
        );
        assert!(logs.text().contains("giving up"), "{}", logs.text());
    }

    #[test]
    fn panic_messages_of_both_payload_kinds() {
        assert_eq!(panic_message(&"static"), "static");
        assert_eq!(panic_message(&String::from("owned")), "owned");
        assert_eq!(panic_message(&42u8), "(no message)");
    }
}
