//! What an open TCP connection may cost: a cap on how many are open, a deadline for a request's
//! head, and a deadline for an idle keep-alive connection.
//!
//! hyper has no idle timeout and one header timer that also runs while a keep-alive connection
//! waits for its next request, so one setting could not be both short (slow-header attacks) and
//! longer than a load balancer's idle timeout (which must not race the server's close). The
//! deadlines are therefore kept here, in the IO under hyper, told by [`track`] (a middleware)
//! when a request is being served:
//!
//! - while no request is being served, the connection must show the first byte of a request
//!   within `keep_alive_idle` (`header_read` for a new connection), and a complete head within
//!   `header_read` of that first byte: a reader that sees neither gets an error and hyper closes;
//! - while a request is being served (its response body included, so a Server-Sent-Events
//!   stream is never cut), the request timeout governs instead;
//! - an upgraded connection (WebSocket) has its own heart-beats and no deadline here.
//!
//! Upgraded connections keep their place under the cap until they close.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::Request;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::{IncomingStream, Listener};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// The connection limits (from `[http]`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once; further ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// From a request's first byte to the end of its head.
    pub header_read: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub keep_alive_idle: Duration,
}

/// A TCP listener that holds a permit per open connection and wraps each in [`GuardedIo`].
#[derive(Debug)]
pub struct GuardedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    limits: ConnectionLimits,
}

impl GuardedListener {
    /// Guards `inner` with `limits`.
    pub fn new(inner: TcpListener, limits: ConnectionLimits) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            limits,
        }
    }

    /// Connections open now.
    pub fn gauge(&self) -> OpenConnections {
        OpenConnections {
            permits: self.permits.clone(),
            max: self.limits.max_connections.max(1),
        }
    }
}

/// Reads how many connections are open.
#[derive(Debug, Clone)]
pub struct OpenConnections {
    permits: Arc<Semaphore>,
    max: usize,
}

impl OpenConnections {
    /// Connections open now.
    pub fn get(&self) -> usize {
        self.max - self.permits.available_permits()
    }
}

impl Listener for GuardedListener {
    type Io = GuardedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // At the cap, stop accepting: new connections wait in the backlog, not in our memory.
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        loop {
            match self.inner.accept().await {
                Ok((tcp, addr)) => {
                    // Chat frames and API answers are small writes that must leave at once.
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %crate::error::Report(&e), "cannot set TCP_NODELAY");
                    }
                    return (GuardedIo::new(tcp, permit, self.limits), addr);
                }
                // Out of file descriptors or a connection reset before accept: as axum does,
                // wait a moment rather than spin.
                Err(e) => {
                    tracing::warn!(error = %crate::error::Report(&e), "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// What the request side tells the IO about its connection.
#[derive(Debug, Default)]
pub struct ConnState {
    /// Requests being served (head received, response body not yet finished).
    active: AtomicU32,
    /// Counts the times `active` went back to 0: a new idle period began.
    idle_periods: AtomicU64,
    /// The connection was upgraded (WebSocket).
    upgraded: AtomicBool,
}

/// The peer of a request: its socket address and its connection's state. Handlers extract it as
/// `ConnectInfo<Peer>`.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The socket peer (a proxy's address when there is one).
    pub addr: SocketAddr,
    state: Arc<ConnState>,
}

impl Connected<IncomingStream<'_, GuardedListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, GuardedListener>) -> Self {
        Peer {
            addr: *stream.remote_addr(),
            state: stream.io().state.clone(),
        }
    }
}

/// A TCP stream that enforces [`ConnectionLimits`]' deadlines on reads (see the module doc).
#[derive(Debug)]
pub struct GuardedIo {
    tcp: TcpStream,
    state: Arc<ConnState>,
    limits: ConnectionLimits,
    /// The idle period this reader last saw (`u64::MAX`: none yet, or a request since).
    period: u64,
    /// A request's first byte arrived in this idle period.
    head_started: bool,
    deadline: Instant,
    timer: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl GuardedIo {
    fn new(tcp: TcpStream, permit: OwnedSemaphorePermit, limits: ConnectionLimits) -> Self {
        let deadline = Instant::now() + limits.header_read;
        Self {
            tcp,
            state: Arc::new(ConnState::default()),
            limits,
            // A new connection: idle period 0, with the header deadline.
            period: 0,
            head_started: false,
            deadline,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
            _permit: permit,
        }
    }

    fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
        self.timer.as_mut().reset(deadline);
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let state = &this.state;
        if state.upgraded.load(Ordering::Acquire) || state.active.load(Ordering::Acquire) > 0 {
            this.period = u64::MAX;
            return Pin::new(&mut this.tcp).poll_read(cx, buf);
        }
        let period = state.idle_periods.load(Ordering::Acquire);
        if period != this.period {
            // A response just finished: the next request has `keep_alive_idle` to begin.
            this.period = period;
            this.head_started = false;
            let deadline = Instant::now() + this.limits.keep_alive_idle;
            this.set_deadline(deadline);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.tcp).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && !this.head_started {
                    // The head has `header_read` from its first byte, however late in the
                    // idle period that came.
                    this.head_started = true;
                    let deadline = Instant::now() + this.limits.header_read;
                    this.set_deadline(deadline);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                ready!(this.timer.as_mut().poll(cx));
                let what = if this.head_started {
                    "request head not received in time"
                } else {
                    "connection idle too long"
                };
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
            }
        }
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// Marks its connection busy while it lives.
struct Busy(Arc<ConnState>);

impl Busy {
    fn new(state: Arc<ConnState>) -> Self {
        state.active.fetch_add(1, Ordering::AcqRel);
        Self(state)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle_periods.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Middleware: tells the connection that a request is being served, until its response body is
/// finished or dropped, and that it was upgraded when it answers 101.
pub async fn track(request: Request, next: Next) -> Response {
    let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<Peer>>().cloned() else {
        // In-process router tests have no connection.
        return next.run(request).await;
    };
    let busy = Busy::new(peer.state.clone());
    let response = next.run(request).await;
    if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
        peer.state.upgraded.store(true, Ordering::Release);
    }
    response.map(|body| {
        axum::body::Body::new(body.map_frame(move |frame| {
            let _ = &busy;
            frame
        }))
    })
}
