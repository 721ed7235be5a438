//! The HTTP listener under the API: what `axum::serve` does, plus the limits
//! a service reachable by strangers needs. Without them, idle connections,
//! half-sent headers and stalled bodies stayed open for good, and a client
//! holding ~1,000 of them exhausted the open-file limit until `/healthz`
//! failed, with nothing logged.
//!
//! - **Header timeout**: a request's headers must arrive within
//!   [`Limits::header_timeout`], counted from the moment the connection is
//!   ready for a request (hyper's `header_read_timeout`; it runs while a
//!   kept-alive connection waits for its next request too).
//! - **Keep-alive**: a connection that has served a request and is idle is
//!   closed after [`Limits::keepalive_timeout`] (or the header timeout,
//!   whichever comes first).
//! - **Body deadline**: a request's body must arrive within
//!   [`Limits::body_timeout`] of its headers; otherwise it is answered `408`
//!   in the API's error shape and the connection closed. The default leaves
//!   the largest body (16 MB) a ~280 KB/s client.
//! - **Connection cap**: at [`Limits::max_connections`] a new connection
//!   closes the longest-idle one (no request in flight), so a crowd of idle
//!   or half-talking clients cannot lock out `/healthz`; when every
//!   connection is busy the newcomer is closed at once. Accept errors
//!   (EMFILE: the open-file limit) are logged and survived.

use std::collections::HashMap;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header::CONNECTION;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::api::error::{ApiError, Code};

/// The server-side limits (`CASEBRIDGE_HEADER_TIMEOUT_SECS`,
/// `_BODY_TIMEOUT_SECS`, `_KEEPALIVE_TIMEOUT_SECS`, `_MAX_CONNECTIONS`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(10),
            max_connections: 512,
        }
    }
}

/// Serves `app` on `listener` with `limits` until `stop` resolves, then lets
/// requests in flight finish and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app.layer(axum::middleware::from_fn_with_state(
        limits.body_timeout,
        body_deadline,
    ));
    let open = Arc::new(Open::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a sender; when all are gone, all closed.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let mut stop = pin!(stop);
    let mut last_warning: Option<Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE/ENFILE and friends: the connection stays in the
                    // backlog; wait a moment for descriptors to free up.
                    if warn_now(&mut last_warning) {
                        tracing::warn!(error = %e, "Could not accept a connection (open-file limit?); retrying. Raise the limit (ulimit -n) or lower CASEBRIDGE_MAX_CONNECTIONS.");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if open.count() >= limits.max_connections && !open.evict_longest_idle() {
            if warn_now(&mut last_warning) {
                tracing::warn!(%peer, max = limits.max_connections, "Refused a connection: all connections are busy (CASEBRIDGE_MAX_CONNECTIONS).");
            }
            metrics::counter!(crate::metrics::HTTP_CONNECTIONS_REFUSED).increment(1);
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let conn = open.add();
        let app = app.clone();
        let limits = limits.clone();
        let open = open.clone();
        let mut stop_rx = stop_rx.clone();
        let alive = alive_tx.clone();
        tokio::spawn(async move {
            serve_connection(stream, app, &limits, &conn, &mut stop_rx).await;
            open.remove(conn.id);
            drop(alive);
        });
    }
    let _ = stop_tx.send(true);
    drop(alive_tx);
    let _ = alive_rx.recv().await;
    Ok(())
}

/// At most one warning a second: a flood must not flood the log too.
fn warn_now(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
        return false;
    }
    *last = Some(now);
    true
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: Router,
    limits: &Limits,
    conn: &Arc<Connection>,
    stop: &mut watch::Receiver<bool>,
) {
    let tracked = conn.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let app = app.clone();
        let busy = Busy::start(tracked.clone());
        async move {
            let response = app.oneshot(req.map(Body::new)).await;
            drop(busy);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut served = pin!(builder.serve_connection(TokioIo::new(stream), service));
    let mut closing = false;
    loop {
        let idle_deadline = conn.idle_deadline(limits.keepalive_timeout);
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "An HTTP connection ended with an error.");
                }
                return;
            }
            _ = stop.changed(), if !closing => {}
            // Woken either to close (evicted) or to re-arm the keep-alive
            // timer after a request.
            _ = conn.close.notified(), if !closing => {
                if !conn.evicted.load(Ordering::Acquire) {
                    continue;
                }
            }
            _ = sleep_until(idle_deadline), if !closing => {
                // A request may have started since (none in flight: no
                // deadline), or ended and moved it: look again.
                if conn
                    .idle_deadline(limits.keepalive_timeout)
                    .is_none_or(|d| d > Instant::now())
                {
                    continue;
                }
            }
        }
        closing = true;
        served.as_mut().graceful_shutdown();
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The open connections, for the cap.
#[derive(Default)]
struct Open {
    next_id: AtomicU64,
    all: Mutex<HashMap<u64, Arc<Connection>>>,
}

impl Open {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        self.all.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self) -> usize {
        self.lock().len()
    }

    fn add(&self) -> Arc<Connection> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Connection {
            id,
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            idle_since: Mutex::new(Instant::now()),
            evicted: AtomicBool::new(false),
            close: Notify::new(),
        });
        self.lock().insert(id, conn.clone());
        metrics::gauge!(crate::metrics::HTTP_CONNECTIONS).increment(1.0);
        conn
    }

    fn remove(&self, id: u64) {
        if self.lock().remove(&id).is_some() {
            metrics::gauge!(crate::metrics::HTTP_CONNECTIONS).decrement(1.0);
        }
    }

    /// Asks the connection idle the longest to close; false if every
    /// connection has a request in flight.
    fn evict_longest_idle(&self) -> bool {
        let all = self.lock();
        let victim = all
            .values()
            .filter(|c| c.in_flight.load(Ordering::Acquire) == 0)
            .filter(|c| !c.evicted.load(Ordering::Acquire))
            .min_by_key(|c| *c.idle_since.lock().unwrap_or_else(|p| p.into_inner()));
        match victim {
            Some(c) => {
                c.evicted.store(true, Ordering::Release);
                c.close.notify_one();
                metrics::counter!(crate::metrics::HTTP_CONNECTIONS_EVICTED).increment(1);
                true
            }
            None => false,
        }
    }
}

/// One open connection, as the cap and the keep-alive timer see it.
struct Connection {
    id: u64,
    in_flight: AtomicUsize,
    /// Requests answered: a connection that has served none is a new one,
    /// which the header timeout governs.
    served: AtomicU64,
    idle_since: Mutex<Instant>,
    evicted: AtomicBool,
    close: Notify,
}

impl Connection {
    /// When this kept-alive connection is to be closed for idleness, if it is
    /// idle and has served a request.
    fn idle_deadline(&self, keepalive: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 || self.served.load(Ordering::Acquire) == 0 {
            return None;
        }
        Some(*self.idle_since.lock().unwrap_or_else(|p| p.into_inner()) + keepalive)
    }
}

/// A request in flight on a connection, from its headers to its answer.
struct Busy(Arc<Connection>);

impl Busy {
    fn start(conn: Arc<Connection>) -> Busy {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.0.served.fetch_add(1, Ordering::AcqRel);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        // Wake the connection task so it re-arms its keep-alive timer.
        self.0.close.notify_waiters();
    }
}

/// Middleware: the request body must arrive within the deadline; a late one
/// is answered `408` and its connection closed.
async fn body_deadline(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let expired = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            sleep: Box::pin(tokio::time::sleep(limit)),
            expired: expired.clone(),
        })
    });
    let response = next.run(request).await;
    if !expired.load(Ordering::Acquire) {
        return response;
    }
    tracing::debug!(
        limit_secs = limit.as_secs(),
        "A request body did not arrive in time; answered 408 and closed the connection."
    );
    let mut late = ApiError::new(
        Code::RequestTimeout,
        format!(
            "The request body did not arrive within {} s",
            limit.as_secs()
        ),
        "Send the whole body promptly; large bodies need a faster connection (the limit is CASEBRIDGE_BODY_TIMEOUT_SECS).",
    )
    .into_response();
    late.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    late
}

/// A body that fails once its deadline has passed.
struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<Sleep>>,
    expired: Arc<AtomicBool>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(axum::Error::new(
                "the request body did not arrive in time",
            ))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
