//! Serving a router on a TCP listener with connection timeouts (`axum::serve` has none).
//!
//! Each connection runs hyper's HTTP/1 server directly and a small watchdog, which closes it when
//! the client keeps it waiting:
//!
//! - **header read timeout**: from the first byte of a request, its whole head (request line and
//!   headers) must arrive within `header_read_timeout` (a slowloris client trickling headers);
//! - **idle timeout**: while the connection waits on the client (between requests on a kept-alive
//!   connection, while a request body is being received, or while a response cannot be written
//!   because the client stopped reading), no byte may go either way for `idle_timeout`. Time
//!   the server itself spends on a request (an on-demand fetch, a long `get`) does not count.
//!
//! A stalled download therefore gives its request slot back after `idle_timeout`, and an idle
//! connection does not hold a socket forever. Shutdown is graceful: the listener stops
//! accepting, idle connections close, requests in flight finish (the caller bounds how long).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use axum::Router;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt;

/// The connection timeouts of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest time from the first byte of a request to the end of its head.
    pub header_read: Duration,
    /// Longest time without a byte either way while the connection waits on the client.
    pub idle: Duration,
}

impl Timeouts {
    /// How often the watchdog looks: a quarter of the shorter timeout, within 50 ms..1 s.
    fn tick(&self) -> Duration {
        (self.header_read.min(self.idle) / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets the requests in flight end.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // Every connection holds a receiver; `closed()` on the sender tells when all have ended.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, _peer)) => {
                tokio::spawn(serve_connection(stream, app.clone(), timeouts, stop_rx.clone()));
            }
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!("api: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(true);
    stop_tx.closed().await;
    Ok(())
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// What the watchdog of one connection knows.
#[derive(Debug)]
struct Activity {
    /// The last time a byte was read or written (or the connection opened, or a response ended).
    last_io: Instant,
    /// When the first byte of a request head not yet complete arrived.
    head_since: Option<Instant>,
    /// Requests whose response has not been sent completely.
    in_flight: usize,
    /// Request bodies still being received.
    receiving: usize,
    /// A write is waiting for the client to read.
    write_blocked: bool,
}

impl Activity {
    /// Why the connection should be closed now, if it should.
    fn overdue(&self, now: Instant, t: Timeouts) -> Option<&'static str> {
        if self.head_since.is_some_and(|since| now.duration_since(since) >= t.header_read) {
            return Some("the request head did not arrive within the header read timeout");
        }
        let waiting_on_client = self.in_flight == 0 || self.receiving > 0 || self.write_blocked;
        if waiting_on_client && now.duration_since(self.last_io) >= t.idle {
            return Some("the client sent or read nothing within the idle timeout");
        }
        None
    }
}

#[derive(Debug, Clone)]
struct Shared(Arc<Mutex<Activity>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Activity> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn serve_connection(stream: TcpStream, app: Router, timeouts: Timeouts, mut stop: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let shared = Shared(Arc::new(Mutex::new(Activity {
        last_io: Instant::now(),
        head_since: None,
        in_flight: 0,
        receiving: 0,
        write_blocked: false,
    })));
    let io = TokioIo::new(Watched { inner: stream, shared: shared.clone() });
    let service = ConnService { app, shared: shared.clone() };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The watchdog does this job (hyper's own timer would also cut idle keep-alive connections).
    builder.header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut tick = tokio::time::interval(timeouts.tick());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("api: connection ended: {e}");
                }
                break;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tick.tick() => {
                let overdue = shared.lock().overdue(Instant::now(), timeouts);
                if let Some(why) = overdue {
                    tracing::debug!("api: closing a connection: {why}");
                    break; // dropping the connection closes the socket
                }
            }
        }
    }
}

/// Hands each request to the router, counting it until its response body has been sent.
#[derive(Debug, Clone)]
struct ConnService {
    app: Router,
    shared: Shared,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = hyper::Response<Tracked<axum::body::Body>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let receiving = !request.body().is_end_stream();
        let (response_guard, body_guard) = {
            let mut a = self.shared.lock();
            a.head_since = None;
            a.in_flight += 1;
            if receiving {
                a.receiving += 1;
            }
            (
                Guard { shared: self.shared.clone(), kind: GuardKind::Response },
                receiving.then(|| Guard { shared: self.shared.clone(), kind: GuardKind::RequestBody }),
            )
        };
        let request: Request = request.map(|body| axum::body::Body::new(Tracked { inner: body, guard: body_guard }));
        let app = self.app.clone();
        Box::pin(async move {
            let response: Response = app.oneshot(request).await?;
            Ok(response.map(|body| Tracked { inner: body, guard: Some(response_guard) }))
        })
    }
}

#[derive(Debug)]
enum GuardKind {
    Response,
    RequestBody,
}

/// Counts a response or a request body as unfinished while it lives.
#[derive(Debug)]
struct Guard {
    shared: Shared,
    kind: GuardKind,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut a = self.shared.lock();
        match self.kind {
            GuardKind::Response => a.in_flight = a.in_flight.saturating_sub(1),
            GuardKind::RequestBody => a.receiving = a.receiving.saturating_sub(1),
        }
        a.last_io = Instant::now();
    }
}

/// A body that drops its guard when it ends (or is dropped).
#[derive(Debug)]
struct Tracked<B> {
    inner: B,
    guard: Option<Guard>,
}

impl<B: HttpBody + Unpin> HttpBody for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        // Ended: with the last frame (a reader may stop polling once it knows) or after it.
        if matches!(polled, Poll::Ready(None)) || (polled.is_ready() && this.inner.is_end_stream()) {
            this.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, noting every byte that moves and every write that has to wait.
#[derive(Debug)]
struct Watched {
    inner: TcpStream,
    shared: Shared,
}

impl Watched {
    fn wrote<T>(&self, polled: &Poll<io::Result<T>>, progressed: bool) {
        let mut a = self.shared.lock();
        match polled {
            Poll::Pending => a.write_blocked = true,
            Poll::Ready(_) => {
                a.write_blocked = false;
                if progressed {
                    a.last_io = Instant::now();
                }
            }
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let mut a = this.shared.lock();
            let now = Instant::now();
            a.last_io = now;
            if a.in_flight == 0 && a.receiving == 0 && a.head_since.is_none() {
                a.head_since = Some(now);
            }
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, data);
        let progressed = matches!(polled, Poll::Ready(Ok(n)) if n > 0);
        this.wrote(&polled, progressed);
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        let progressed = matches!(polled, Poll::Ready(Ok(n)) if n > 0);
        this.wrote(&polled, progressed);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.wrote(&polled, false);
        polled
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_counts_as_waiting_on_the_client() {
        let t = Timeouts { header_read: Duration::from_secs(2), idle: Duration::from_secs(5) };
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut a = Activity { last_io: start, head_since: None, in_flight: 0, receiving: 0, write_blocked: false };
        assert_eq!(a.overdue(at(4), t), None);
        assert!(a.overdue(at(5), t).is_some(), "idle between requests");
        a.head_since = Some(at(1));
        assert!(a.overdue(at(3), t).is_some_and(|w| w.contains("head")), "slow head");
        a.head_since = None;
        a.in_flight = 1;
        assert_eq!(a.overdue(at(60), t), None, "the server's own work does not count");
        a.write_blocked = true;
        assert!(a.overdue(at(5), t).is_some(), "a client that stopped reading");
        a.write_blocked = false;
        a.receiving = 1;
        assert!(a.overdue(at(5), t).is_some(), "a request body that stopped coming");
        assert_eq!(t.tick(), Duration::from_millis(500));
    }
}
