//! The HTTP/1 listener of `relay dev`: an accept loop over hyper with a limit on connections and
//! on how long a client may take, so slow or idle clients cannot hold the process's descriptors.
//!
//! - header timeout: a request's headers must arrive within it, counted from the connection's
//!   start or, on a kept-alive connection, from the first byte of the next request;
//! - idle timeout: a kept-alive connection that sends nothing for this long is closed;
//! - body timeout: the whole body must arrive within it, else 408 (in the request handler);
//! - connection limit: over it, new connections wait in the kernel's listen backlog (they hold no
//!   descriptor of ours there) and are accepted as slots free. Waiting rather than refusing keeps
//!   a provider's delivery alive instead of turning it into a retry; the timeouts above bound how
//!   long any connection holds a slot, so the wait is bounded too.
//!
//! hyper's own `header_read_timeout` also runs while a kept-alive connection waits for its next
//! request, so it cannot tell a slow header from an idle connection; a small per-connection
//! watchdog keeps the two limits apart.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::bail;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Descriptors kept free for everything but inbound connections: the store (SQLite keeps up to
/// three files per connection), stdio and logs, the listener, and outbound deliveries.
pub const DESCRIPTOR_RESERVE: u64 = 128;
/// How long a stop waits for requests in progress before it drops their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed accept (e.g. out of descriptors) so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Handles one request; hyper calls it once per request on a connection.
pub trait Handler: Clone + Send + Sync + 'static {
    fn handle(
        &self,
        request: http::Request<Incoming>,
    ) -> impl Future<Output = axum::response::Response> + Send;
}

/// Serves `handler` on `listener` until `shutdown` completes, then lets requests in progress
/// finish (for up to [`SHUTDOWN_GRACE`]).
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: H,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // The watchdog below enforces it, apart from the idle timeout.
        .header_read_timeout(None)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let watch = Arc::new(ConnectionWatch::new());
        let io = TokioIo::new(WatchedStream {
            inner: stream,
            watch: Arc::clone(&watch),
        });
        let service = {
            let watch = Arc::clone(&watch);
            let handler = handler.clone();
            hyper::service::service_fn(move |request| {
                let in_service = watch.request_started();
                let handler = handler.clone();
                async move {
                    let response = handler.handle(request).await;
                    drop(in_service);
                    Ok::<_, Infallible>(response)
                }
            })
        };
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            let _slot = permit;
            tokio::select! {
                result = connection => {
                    if let Err(e) = result {
                        debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                expired = watch.expired(limits) => {
                    debug!(%peer, "closing the connection: {expired}");
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("requests still in progress after the shutdown grace; their connections are dropped");
    }
    Ok(())
}

/// Why the watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    Header,
    Idle,
}

impl fmt::Display for Expired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Expired::Header => "request headers not received within the header timeout",
            Expired::Idle => "kept-alive connection idle past the idle timeout",
        })
    }
}

/// What one connection is doing, as far as its timeouts care.
struct WatchState {
    /// Requests handed to the handler and not answered yet.
    in_service: usize,
    /// When the connection started waiting for its next request.
    waiting_since: Instant,
    /// Whether a request was served already (then waiting is idling, not a slow first request).
    served_any: bool,
    /// First byte read while waiting: the next request has begun.
    first_byte_at: Option<Instant>,
}

struct ConnectionWatch {
    state: Mutex<WatchState>,
    changed: Notify,
}

/// Marks a request as in the handler's hands until dropped.
struct InService(Arc<ConnectionWatch>);

impl Drop for InService {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_service = state.in_service.saturating_sub(1);
        if state.in_service == 0 {
            state.waiting_since = Instant::now();
            state.served_any = true;
            state.first_byte_at = None;
        }
        drop(state);
        self.0.changed.notify_one();
    }
}

impl ConnectionWatch {
    fn new() -> Self {
        Self {
            state: Mutex::new(WatchState {
                in_service: 0,
                waiting_since: Instant::now(),
                served_any: false,
                first_byte_at: None,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        // The state stays consistent whatever panicked while holding it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn request_started(self: &Arc<Self>) -> InService {
        let mut state = self.lock();
        state.in_service += 1;
        state.first_byte_at = None;
        drop(state);
        self.changed.notify_one();
        InService(Arc::clone(self))
    }

    fn bytes_read(&self) {
        let mut state = self.lock();
        if state.in_service == 0 && state.first_byte_at.is_none() {
            state.first_byte_at = Some(Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    /// When the connection must be closed unless something changes, and why.
    fn deadline(&self, limits: &ServerLimits) -> Option<(Instant, Expired)> {
        let state = self.lock();
        if state.in_service > 0 {
            return None;
        }
        Some(match state.first_byte_at {
            Some(at) => (at + limits.header_timeout, Expired::Header),
            None if !state.served_any => {
                (state.waiting_since + limits.header_timeout, Expired::Header)
            }
            None => (state.waiting_since + limits.idle_timeout, Expired::Idle),
        })
    }

    /// Completes when a deadline passes.
    async fn expired(&self, limits: ServerLimits) -> Expired {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.deadline(&limits) {
                None => changed.await,
                Some((at, why)) => {
                    if at <= Instant::now() {
                        return why;
                    }
                    tokio::select! {
                        () = &mut changed => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
            }
        }
    }
}

/// The TCP stream, telling the watch when the bytes of a new request start to arrive.
struct WatchedStream {
    inner: TcpStream,
    watch: Arc<ConnectionWatch>,
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The connection limit that fits the open-file limit: raises the soft limit to the hard one
/// where it is lower, then keeps [`DESCRIPTOR_RESERVE`] descriptors out of the connections'
/// reach. Errors when not even one connection fits.
pub fn fit_connection_limit(requested: usize) -> anyhow::Result<usize> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // `None` is unlimited.
    let mut soft = limit.current;
    let below_hard = match (limit.current, limit.maximum) {
        (Some(current), Some(maximum)) => current < maximum,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if below_hard {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => soft = limit.maximum,
            Err(e) => debug!(error = %e, "could not raise the open-file limit"),
        }
    }
    let Some(soft) = soft else {
        return Ok(requested);
    };
    let available = usize::try_from(soft.saturating_sub(DESCRIPTOR_RESERVE)).unwrap_or(usize::MAX);
    if available == 0 {
        bail!(
            "the open-file limit ({soft}) leaves no descriptor for connections after the {DESCRIPTOR_RESERVE} kept for the store and deliveries; raise it (ulimit -n)"
        );
    }
    if requested > available {
        warn!(
            requested,
            allowed = available,
            open_file_limit = soft,
            reserve = DESCRIPTOR_RESERVE,
            "--max-connections lowered to fit the open-file limit"
        );
        return Ok(available);
    }
    info!(
        max_connections = requested,
        open_file_limit = soft,
        "connection limit"
    );
    Ok(requested)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ServerLimits {
        ServerLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 8,
        }
    }

    /// Time left until `at`, for checks that allow for the test's own running time.
    fn left(at: Instant) -> Duration {
        at.saturating_duration_since(Instant::now())
    }

    #[tokio::test]
    async fn a_fresh_connection_has_the_header_timeout() {
        let watch = ConnectionWatch::new();
        let (at, why) = watch
            .deadline(&limits())
            .expect("a deadline before any request");
        assert_eq!(why, Expired::Header);
        assert!(left(at) > Duration::from_secs(9) && left(at) <= Duration::from_secs(10));
        let short = ServerLimits {
            header_timeout: Duration::from_millis(20),
            ..limits()
        };
        assert_eq!(watch.expired(short).await, Expired::Header);
    }

    #[tokio::test]
    async fn a_kept_alive_connection_has_the_idle_timeout_until_its_next_request_begins() {
        let watch = Arc::new(ConnectionWatch::new());
        drop(watch.request_started());
        let (at, why) = watch.deadline(&limits()).expect("a deadline while waiting");
        assert_eq!(why, Expired::Idle);
        assert!(left(at) > Duration::from_secs(59) && left(at) <= Duration::from_secs(60));
        watch.bytes_read();
        let (at, why) = watch
            .deadline(&limits())
            .expect("a deadline while reading headers");
        assert_eq!(why, Expired::Header);
        assert!(left(at) > Duration::from_secs(9) && left(at) <= Duration::from_secs(10));
    }

    #[tokio::test]
    async fn no_deadline_while_a_request_is_being_handled() {
        let watch = Arc::new(ConnectionWatch::new());
        let in_service = watch.request_started();
        watch.bytes_read();
        assert!(watch.deadline(&limits()).is_none());
        drop(in_service);
        assert_eq!(
            watch.deadline(&limits()).map(|(_, why)| why),
            Some(Expired::Idle)
        );
    }

    #[test]
    fn the_connection_limit_leaves_the_reserve_free() {
        let fitted = fit_connection_limit(usize::MAX).expect("some connections fit");
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        if let Some(soft) = soft {
            assert_eq!(
                fitted as u64,
                soft - DESCRIPTOR_RESERVE,
                "the limit leaves exactly the reserve"
            );
        }
    }
}
