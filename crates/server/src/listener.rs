//! The HTTP listener: what anyone who reaches the port can make regkeep hold is bounded.
//!
//! axum's `serve` sets no header timeout and accepts connections until the process runs out of
//! file descriptors (then it stops answering anyone, `/health` included). Here:
//! - at most `max_connections` connections are open; when a new one arrives at the limit, the
//!   oldest connection that is not in the middle of a request (idle between requests, or still
//!   sending its request head) is closed to make room, so a new client and `/health` get in;
//!   only when every connection is busy serving a request is the newcomer turned away;
//! - a request head must arrive within `header_timeout` of the connection opening or of its
//!   previous response (hyper's header read timeout; it is also how long an idle keep-alive
//!   connection is kept);
//! - a connection on which no byte moves either way for `idle_timeout` (a stalled upload, a
//!   client that stopped reading) is closed;
//! - request bodies are bounded in time by the JSON extractor (`body_timeout`).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;
use tracing::{debug, warn};

/// Bounds on inbound connections.
#[derive(Clone)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// TLS, when the listener speaks it (the handshake must finish within `header_timeout`).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// One open connection, as the accept loop sees it.
struct Open {
    accepted: Instant,
    /// Requests being served on it now (a response body still streaming counts).
    busy: Arc<AtomicUsize>,
    close: CancellationToken,
}

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in flight finish.
///
/// # Errors
/// None today; accept errors (out of file descriptors) are logged and retried.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let open: Arc<Mutex<HashMap<u64, Open>>> = Arc::default();
    let graceful = CancellationToken::new();
    let tasks = TaskTracker::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut next_id: u64 = 0;
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if !make_room(&open, limits.max_connections) {
            debug!(%peer, "every connection is serving a request: turning a new one away");
            drop(stream);
            continue;
        }
        next_id += 1;
        let id = next_id;
        let busy = Arc::new(AtomicUsize::new(0));
        let close = CancellationToken::new();
        open.lock().unwrap_or_else(|p| p.into_inner()).insert(
            id,
            Open {
                accepted: Instant::now(),
                busy: busy.clone(),
                close: close.clone(),
            },
        );
        let (router, open, graceful, limits) = (
            router.clone(),
            open.clone(),
            graceful.clone(),
            limits.clone(),
        );
        tasks.spawn(async move {
            serve_connection(stream, peer, router, limits, busy, close, graceful).await;
            open.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        });
    }
    graceful.cancel();
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// Below the limit, or made so by closing the oldest connection that serves no request now.
fn make_room(open: &Mutex<HashMap<u64, Open>>, max: usize) -> bool {
    let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
    if open.len() < max.max(1) {
        return true;
    }
    let oldest_idle = open
        .iter()
        .filter(|(_, c)| c.busy.load(Ordering::Acquire) == 0)
        .min_by_key(|(_, c)| c.accepted)
        .map(|(id, _)| *id);
    match oldest_idle.and_then(|id| open.remove(&id)) {
        Some(evicted) => {
            evicted.close.cancel();
            true
        }
        None => false,
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    busy: Arc<AtomicUsize>,
    close: CancellationToken,
    graceful: CancellationToken,
) {
    let started = Instant::now();
    let activity = Arc::new(AtomicU64::new(0));
    let io = ActivityIo {
        inner: stream,
        started,
        last: activity.clone(),
    };
    let acceptor = limits.tls.clone();
    let header_timeout = limits.header_timeout;
    let conn = Conn {
        peer,
        router,
        limits,
        busy,
        close,
        graceful,
        started,
        activity,
    };
    let Some(acceptor) = acceptor else {
        return conn.run(io).await;
    };
    let handshake = tokio::select! {
        () = conn.close.cancelled() => return,
        done = tokio::time::timeout(header_timeout, acceptor.accept(io)) => done,
    };
    match handshake {
        Ok(Ok(tls)) => conn.run(tls).await,
        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => debug!(%peer, "TLS handshake did not finish within the header timeout"),
    }
}

/// One accepted connection, past its TLS handshake when there is one.
struct Conn {
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    busy: Arc<AtomicUsize>,
    close: CancellationToken,
    graceful: CancellationToken,
    started: Instant,
    activity: Arc<AtomicU64>,
}

impl Conn {
    async fn run<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            peer,
            router,
            limits,
            busy,
            close,
            graceful,
            started,
            activity,
        } = self;
        let io = TokioIo::new(io);
        let service = tower::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            let guard = BusyGuard::new(busy.clone());
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    Body::new(GuardedBody {
                        inner: body,
                        _guard: guard,
                    })
                }))
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .keep_alive(true);
        let connection = builder.serve_connection(io, TowerToHyperService::new(service));
        let mut connection = std::pin::pin!(connection);
        let tick =
            (limits.idle_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        let mut watchdog = tokio::time::interval(tick);
        let mut shutting_down = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        debug!(%peer, error = %e, "connection ended");
                    }
                    return;
                }
                () = close.cancelled() => {
                    debug!(%peer, "connection closed to make room for a new one");
                    return;
                }
                () = graceful.cancelled(), if !shutting_down => {
                    shutting_down = true;
                    connection.as_mut().graceful_shutdown();
                }
                _ = watchdog.tick() => {
                    let last = Duration::from_millis(activity.load(Ordering::Relaxed));
                    if started.elapsed().saturating_sub(last) > limits.idle_timeout {
                        debug!(%peer, "no byte moved for the idle timeout: closing");
                        return;
                    }
                }
            }
        }
    }
}

/// Counts a request as in flight until its response body is done (or dropped).
struct BusyGuard(Arc<AtomicUsize>);

impl BusyGuard {
    fn new(busy: Arc<AtomicUsize>) -> Self {
        busy.fetch_add(1, Ordering::AcqRel);
        BusyGuard(busy)
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that holds its request's [`BusyGuard`].
struct GuardedBody {
    inner: Body,
    _guard: BusyGuard,
}

impl http_body::Body for GuardedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A socket that notes when a byte last moved (milliseconds since `started`).
struct ActivityIo {
    inner: TcpStream,
    started: Instant,
    last: Arc<AtomicU64>,
}

impl ActivityIo {
    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }
}

impl AsyncRead for ActivityIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        result
    }
}

impl AsyncWrite for ActivityIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_made_by_closing_the_oldest_idle_connection() {
        let open: Mutex<HashMap<u64, Open>> = Mutex::default();
        let t0 = Instant::now();
        let mut tokens = Vec::new();
        for (id, busy, age) in [(1, 1, 30), (2, 0, 20), (3, 0, 10)] {
            let close = CancellationToken::new();
            tokens.push(close.clone());
            open.lock().unwrap().insert(
                id,
                Open {
                    accepted: t0 - Duration::from_secs(age),
                    busy: Arc::new(AtomicUsize::new(busy)),
                    close,
                },
            );
        }
        assert!(make_room(&open, 3));
        assert!(
            tokens[1].is_cancelled(),
            "the oldest idle one (2) is closed"
        );
        assert!(
            !tokens[0].is_cancelled(),
            "a busy one is never closed for room"
        );
        assert!(make_room(&open, 3), "below the limit now");
        open.lock()
            .unwrap()
            .get(&3)
            .unwrap()
            .busy
            .store(1, Ordering::Release);
        open.lock().unwrap().insert(
            4,
            Open {
                accepted: t0,
                busy: Arc::new(AtomicUsize::new(1)),
                close: CancellationToken::new(),
            },
        );
        assert!(
            !make_room(&open, 3),
            "all busy: the newcomer is turned away"
        );
    }
}
