//! Accepting connections without letting them exhaust the server.
//!
//! - A connection that does not send its first bytes (the HTTP/2 preface, or
//!   a TLS ClientHello) within the preface timeout is closed: silent TCP
//!   connections cannot pile up and use every file descriptor.
//! - At most `max_connections` are open at once; past it a new connection is
//!   closed at once, with a (rate-limited) warning in the log.
//! - One client address may hold at most `max_connections_per_ip` of them,
//!   so that one host cannot lock every other client (and the probes) out.
//! - A connection with no call in progress for `idle_timeout` is closed:
//!   connections that finish the HTTP/2 preface and then sit idle cannot
//!   hold the slots either. Clients reconnect when they next call.
//! - Accept errors (EMFILE, ENFILE: out of file descriptors) are logged and
//!   retried after a pause, not spun on.
//! - [`raise_file_limit`] lifts the process's soft limit on open files to its
//!   hard limit at start-up.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Bytes a client must send before the preface timeout: the length of the
/// HTTP/2 connection preface (a TLS ClientHello is longer).
const PREFACE_BYTES: u64 = 24;

/// How connections are bounded.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub preface_timeout: Duration,
    pub idle_timeout: Duration,
}

/// The calls of one connection, as the request layer reports them.
#[derive(Debug)]
pub struct Activity {
    open_calls: AtomicUsize,
    last_call_end: Mutex<Instant>,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            open_calls: AtomicUsize::new(0),
            last_call_end: Mutex::new(Instant::now()),
        })
    }

    fn last_call_end(&self) -> Instant {
        *self.last_call_end.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A call in progress on its connection; dropping it ends the call.
#[derive(Debug)]
pub struct CallInProgress(Arc<Activity>);

impl Drop for CallInProgress {
    fn drop(&mut self) {
        *self
            .0
            .last_call_end
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.0.open_calls.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What tonic puts into every request of a connection (plain, or inside
/// `TlsConnectInfo` over TLS): the TCP addresses, and the connection's call
/// activity, so that the request layer can report calls to it.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub tcp: TcpConnectInfo,
    activity: Arc<Activity>,
}

impl ConnectionInfo {
    /// Marks a call as in progress on this connection.
    pub fn call_started(&self) -> CallInProgress {
        self.activity.open_calls.fetch_add(1, Ordering::SeqCst);
        CallInProgress(self.activity.clone())
    }
}

/// The connections a listener holds open now (the metrics read it).
#[derive(Debug, Clone, Default)]
pub struct OpenConnections(Arc<AtomicUsize>);

impl OpenConnections {
    pub fn now(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Connections per client address.
#[derive(Default)]
struct PerIp(Mutex<HashMap<IpAddr, usize>>);

impl PerIp {
    fn admit(&self, ip: IpAddr, max: usize) -> bool {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= max {
            return false;
        }
        *count += 1;
        true
    }

    fn release(&self, ip: IpAddr) {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&ip);
            }
        }
    }
}

/// An accepted connection: closed if it stays silent past its preface
/// deadline, and holding one of the connection slots until it is dropped.
pub struct GuardedStream {
    inner: TcpStream,
    read: u64,
    preface_deadline: Pin<Box<Sleep>>,
    activity: Arc<Activity>,
    idle_timeout: Duration,
    idle_deadline: Pin<Box<Sleep>>,
    peer_ip: Option<IpAddr>,
    per_ip: Arc<PerIp>,
    open: OpenConnections,
    _slot: OwnedSemaphorePermit,
}

impl Drop for GuardedStream {
    fn drop(&mut self) {
        self.open.0.fetch_sub(1, Ordering::Relaxed);
        if let Some(ip) = self.peer_ip {
            self.per_ip.release(ip);
        }
    }
}

impl Connected for GuardedStream {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        ConnectionInfo {
            tcp: self.inner.connect_info(),
            activity: self.activity.clone(),
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            this.read += (buf.filled().len() - before) as u64;
        }
        if this.read < PREFACE_BYTES {
            if this.preface_deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client sent no HTTP/2 preface in time",
                )));
            }
            return polled;
        }
        // Re-armed until the connection has had no call for idle_timeout.
        while this.idle_deadline.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let deadline = if this.activity.open_calls.load(Ordering::SeqCst) > 0 {
                now + this.idle_timeout
            } else {
                this.activity.last_call_end() + this.idle_timeout
            };
            if deadline <= now {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the connection was idle (no call) for too long",
                )));
            }
            this.idle_deadline.as_mut().reset(deadline);
        }
        polled
    }
}

impl AsyncWrite for GuardedStream {
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

use std::future::Future;

/// Logs at most one warning per interval (10 s), with how many were held
/// back: a limit that anyone can hit must not let them flood the log.
#[derive(Debug, Default)]
pub struct RateLimitedWarning {
    last: std::sync::Mutex<Option<Instant>>,
    held_back: AtomicU64,
}

impl RateLimitedWarning {
    /// Whether to log now, and how many warnings were held back before.
    pub fn due(&self) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match *last {
            Some(at) if now.duration_since(at) < Duration::from_secs(10) => {
                self.held_back.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.held_back.swap(0, Ordering::Relaxed))
            }
        }
    }
}

/// The accepted connections, as tonic's `serve_with_incoming` takes them.
pub type Incoming = ReceiverStream<io::Result<GuardedStream>>;

/// Accepts connections on `listener` under `limits`, as a stream for
/// tonic's `serve_with_incoming`, counting those open in `open`. The
/// accept loop ends when the stream is dropped (the server stopped).
pub fn incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
    open: OpenConnections,
) -> Incoming {
    let (sender, receiver) = mpsc::channel(64);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = Arc::new(PerIp::default());
    tokio::spawn(async move {
        let full = RateLimitedWarning::default();
        let ip_full = RateLimitedWarning::default();
        let accept_failed = RateLimitedWarning::default();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = sender.closed() => return,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // EMFILE/ENFILE and the like: wait for descriptors to be
                    // freed instead of spinning on the error.
                    if let Some(held_back) = accept_failed.due() {
                        tracing::warn!(%error, held_back, "cannot accept a connection; retrying shortly");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                if let Some(held_back) = full.due() {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        held_back,
                        "connection limit reached (--max-connections); closing new connections"
                    );
                }
                drop(stream);
                continue;
            };
            let peer = stream.peer_addr().ok();
            if let Some(peer) = peer {
                if !per_ip.admit(peer.ip(), limits.max_connections_per_ip) {
                    if let Some(held_back) = ip_full.due() {
                        tracing::warn!(
                            ip = %peer.ip(),
                            max_connections_per_ip = limits.max_connections_per_ip,
                            held_back,
                            "connection limit per client address reached \
                             (--max-connections-per-ip); closing its new connections"
                        );
                    }
                    drop(stream);
                    continue;
                }
            }
            let _ = stream.set_nodelay(true);
            open.0.fetch_add(1, Ordering::Relaxed);
            let guarded = GuardedStream {
                inner: stream,
                read: 0,
                preface_deadline: Box::pin(tokio::time::sleep(limits.preface_timeout)),
                activity: Activity::new(),
                idle_timeout: limits.idle_timeout,
                idle_deadline: Box::pin(tokio::time::sleep(limits.idle_timeout)),
                peer_ip: peer.map(|peer| peer.ip()),
                per_ip: per_ip.clone(),
                open: open.clone(),
                _slot: slot,
            };
            if sender.send(Ok(guarded)).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(receiver)
}

/// Raises the soft limit on open files to the hard limit, so that the
/// server can hold as many connections as the system lets it; returns the
/// soft limit in force afterwards (None where it cannot be read).
pub fn raise_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct
        // passed, which lives on this stack frame.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    tracing::debug!(
                        from = limit.rlim_cur,
                        to = limit.rlim_max,
                        "raised the open-file limit"
                    );
                    limit = raised;
                }
            }
        }
        Some(limit.rlim_cur)
    }
    #[cfg(not(unix))]
    {
        None
    }
}
