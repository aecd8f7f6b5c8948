//! The simulated network of the real-code mode: a `libp2p` transport whose connections are
//! in-memory duplex byte pipes between the topology's hosts, shaped like the model's links.
//!
//! - **Latency**: every byte written from host `a` to host `b` arrives one one-way latency later
//!   (the topology's `latency_ms(a, b)`, with the scenario's jitter drawn once per connection).
//!   A dial takes one round trip (the TCP handshake) before the connection exists.
//! - **Bandwidth**: every host has an upload pipe and a download pipe shared by all its
//!   connections, as FIFO reservations like the model's: a segment of `n` bytes written at `t`
//!   leaves when the sender's upload pipe is free (`up_end = max(t, up_free) + n / up`) and is
//!   readable at `max(up_end + latency, down_end)` where `down_end = max(up_start + latency,
//!   down_free) + n / down`. Segments are at most 16 KiB. A connection keeps at most a window of
//!   unread bytes in flight (four times its bandwidth-delay product, 256 KiB to 8 MiB), like a
//!   TCP window: big enough to keep its path busy, small enough that one bulk connection cannot
//!   queue seconds of data ahead of another's in the host's pipe.
//! - **Partitions**: while a cut separates two hosts, dials between them fail after a round trip
//!   and the connections open when the cut starts are reset (both ends get `ConnectionReset`).
//! - **Churn**: a stopped node drops its transport; its listener disappears, dials to it are
//!   refused, its connections end (the peers read end-of-stream).
//!
//! All times are tokio's: under the paused clock of the real-code mode they are virtual. Writes
//! never block on the wall clock; a reader sleeps (a tokio timer) until its next segment is due.
//! Delivery times are exact to the nanosecond but tokio's timers wake on whole milliseconds, so a
//! hop can read up to 1 ms late.
//!
//! The transport is upgraded with multistream-select, **plaintext** authentication (the peer's
//! public key is exchanged, no encryption) and yamux. Plaintext, not noise: encryption costs only
//! wall-clock CPU here (compute takes no virtual time), and at hundreds of nodes on two cores
//! that CPU is what bounds the run; the handshake round trips differ (plaintext one, noise XX
//! one and a half), which shifts connection set-up by half a round trip, not transfers.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncWrite, FutureExt};
use libp2p::core::transport::{DialOpts, ListenerId, TransportError, TransportEvent};
use libp2p::core::upgrade::Version;
use libp2p::core::Transport;
use libp2p::multiaddr::Protocol;
use libp2p::{identity, Multiaddr};
use lien_node::network::{BoxedTransport, TransportFactory};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use crate::topology::Topology;

/// Largest segment one write puts on the wire.
const MAX_SEGMENT: usize = 16 * 1024;
/// Bounds of a connection's window of unread bytes.
const MIN_WINDOW: usize = 256 * 1024;
const MAX_WINDOW: usize = 8 * 1024 * 1024;

/// Why a simulated dial or listen failed.
#[derive(Debug, thiserror::Error)]
pub enum SimNetError {
    /// No such host in the simulated network.
    #[error("no simulated host at {0}")]
    NoHost(String),
    /// The host is not listening (stopped, or not started yet).
    #[error("connection refused by host {0}")]
    Refused(usize),
    /// A cut separates the hosts.
    #[error("host {0} is unreachable (network cut)")]
    Unreachable(usize),
    /// A host may only listen on its own address.
    #[error("host {host} cannot listen on {addr}")]
    NotOwnAddress {
        /// The host.
        host: usize,
        /// The address asked for.
        addr: String,
    },
}

/// The simulated network: hosts with their pipes and listeners, active cuts and open links.
/// Shared (`Arc`) by every node's transport.
#[derive(Debug)]
pub struct SimNet {
    state: Mutex<NetState>,
    /// One-way latency between hosts, seconds (without jitter).
    latency: Vec<Vec<f64>>,
    jitter: f64,
}

#[derive(Debug)]
struct HostState {
    up_bps: f64,
    down_bps: f64,
    up_free: Instant,
    down_free: Instant,
    listener: Option<mpsc::UnboundedSender<Incoming>>,
    sent: u64,
}

#[derive(Debug)]
struct Incoming {
    stream: SimStream,
    from: usize,
}

#[derive(Debug)]
struct NetState {
    hosts: Vec<HostState>,
    /// Active cuts: (side a, side b) membership per host.
    cuts: Vec<(u64, Vec<bool>, Vec<bool>)>,
    next_cut: u64,
    links: Vec<Weak<Link>>,
    rng: ChaCha8Rng,
}

impl NetState {
    fn cut_between(&self, a: usize, b: usize) -> bool {
        self.cuts.iter().any(|(_, x, y)| (x[a] && y[b]) || (x[b] && y[a]))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; carry on with it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The address host `host` listens on: `/memory/<host + 1>`.
pub fn host_addr(host: usize) -> Multiaddr {
    Multiaddr::empty().with(Protocol::Memory(host as u64 + 1))
}

fn addr_host(addr: &Multiaddr) -> Option<usize> {
    match addr.iter().next() {
        Some(Protocol::Memory(p)) if p > 0 => usize::try_from(p - 1).ok(),
        _ => None,
    }
}

impl SimNet {
    /// A network of the topology's hosts with their bandwidths and latencies; `seed` draws the
    /// per-connection jitter.
    pub fn new(topo: &Topology, jitter: f64, seed: u64) -> Arc<SimNet> {
        let n = topo.hosts.len();
        let now = Instant::now();
        let hosts = topo
            .hosts
            .iter()
            .map(|h| HostState {
                up_bps: h.up_bps.max(1.0),
                down_bps: h.down_bps.max(1.0),
                up_free: now,
                down_free: now,
                listener: None,
                sent: 0,
            })
            .collect();
        let latency = (0..n).map(|a| (0..n).map(|b| topo.latency_ms(a, b) / 1000.0).collect()).collect();
        Arc::new(SimNet {
            state: Mutex::new(NetState {
                hosts,
                cuts: Vec::new(),
                next_cut: 0,
                links: Vec::new(),
                rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0f11),
            }),
            latency,
            jitter,
        })
    }

    /// The transport factory for host `host`, to pass to `Node::start_with_transport`.
    pub fn factory(self: &Arc<Self>, host: usize) -> TransportFactory {
        let net = self.clone();
        Arc::new(move |key: &identity::Keypair| -> BoxedTransport {
            SimTransport::new(net.clone(), host)
                .upgrade(Version::V1Lazy)
                .authenticate(libp2p::plaintext::Config::new(key))
                .multiplex(libp2p::yamux::Config::default())
                .timeout(Duration::from_secs(20))
                .boxed()
        })
    }

    /// Base one-way latency between two hosts.
    pub fn latency(&self, a: usize, b: usize) -> Duration {
        Duration::from_secs_f64(self.latency.get(a).and_then(|r| r.get(b)).copied().unwrap_or(0.0))
    }

    /// Starts a cut between the hosts marked in `a` and those in `b`: resets their open
    /// connections and fails their dials until [`SimNet::heal`]. Returns the cut's handle.
    pub fn cut(&self, a: Vec<bool>, b: Vec<bool>) -> u64 {
        // The crossing links are collected under the network lock and reset after it is
        // released: a pipe lock is never taken while the network lock is held.
        let (id, crossing) = {
            let mut st = lock(&self.state);
            let id = st.next_cut;
            st.next_cut += 1;
            st.cuts.push((id, a, b));
            st.links.retain(|l| l.strong_count() > 0);
            let crossing: Vec<Arc<Link>> =
                st.links.iter().filter_map(Weak::upgrade).filter(|l| st.cut_between(l.a, l.b)).collect();
            (id, crossing)
        };
        for l in &crossing {
            l.reset();
        }
        id
    }

    /// Ends a cut started by [`SimNet::cut`].
    pub fn heal(&self, cut: u64) {
        lock(&self.state).cuts.retain(|(id, _, _)| *id != cut);
    }

    /// Bytes each host has written to the network so far.
    pub fn sent(&self) -> Vec<u64> {
        lock(&self.state).hosts.iter().map(|h| h.sent).collect()
    }

    /// Reserves the pipes for `n` bytes from `src` to `dst` written now over a link with one-way
    /// latency `lat`, no earlier than `after`; returns when the receiver can read them.
    fn schedule(&self, src: usize, dst: usize, n: usize, lat: Duration, after: Instant) -> Instant {
        let now = Instant::now();
        let mut st = lock(&self.state);
        let bytes = n as f64;
        let s = &mut st.hosts[src];
        let up_start = s.up_free.max(now);
        let up_end = up_start + Duration::from_secs_f64(bytes / s.up_bps);
        s.up_free = up_end;
        s.sent += n as u64;
        let d = &mut st.hosts[dst];
        let down_start = d.down_free.max(up_start + lat);
        let down_end = down_start + Duration::from_secs_f64(bytes / d.down_bps);
        d.down_free = down_end;
        (up_end + lat).max(down_end).max(after)
    }

    fn listen(&self, host: usize, tx: mpsc::UnboundedSender<Incoming>) {
        if let Some(h) = lock(&self.state).hosts.get_mut(host) {
            h.listener = Some(tx);
        }
    }

    /// Opens a connection from `src` to `dst` (after the handshake round trip).
    async fn connect(self: Arc<Self>, src: usize, dst: usize) -> Result<SimStream, SimNetError> {
        let lat = {
            let mut st = lock(&self.state);
            if dst >= st.hosts.len() {
                return Err(SimNetError::NoHost(host_addr(dst).to_string()));
            }
            let base = self.latency(src, dst).as_secs_f64();
            let j = if self.jitter > 0.0 { 1.0 + st.rng.gen_range(-self.jitter..=self.jitter) } else { 1.0 };
            Duration::from_secs_f64(base * j)
        };
        tokio::time::sleep(2 * lat).await;
        let mut st = lock(&self.state);
        if st.cut_between(src, dst) {
            return Err(SimNetError::Unreachable(dst));
        }
        let window = {
            let rate =
                st.hosts[src].up_bps.min(st.hosts[dst].down_bps).min(st.hosts[dst].up_bps.min(st.hosts[src].down_bps));
            ((4.0 * rate * 2.0 * lat.as_secs_f64()) as usize).clamp(MIN_WINDOW, MAX_WINDOW)
        };
        let link = Arc::new(Link { a: src, b: dst, a_to_b: Mutex::new(Pipe::new()), b_to_a: Mutex::new(Pipe::new()) });
        let theirs = SimStream::new(self.clone(), link.clone(), false, lat, window);
        let ours = SimStream::new(self.clone(), link.clone(), true, lat, window);
        let listener = st.hosts[dst].listener.as_ref().filter(|tx| !tx.is_closed()).cloned();
        let Some(tx) = listener else {
            st.hosts[dst].listener = None;
            return Err(SimNetError::Refused(dst));
        };
        if tx.send(Incoming { stream: theirs, from: src }).is_err() {
            st.hosts[dst].listener = None;
            return Err(SimNetError::Refused(dst));
        }
        st.links.push(Arc::downgrade(&link));
        if st.links.len() > 64 && st.links.len().is_power_of_two() {
            st.links.retain(|l| l.strong_count() > 0);
        }
        Ok(ours)
    }
}

/// One connection: two pipes.
#[derive(Debug)]
struct Link {
    a: usize,
    b: usize,
    a_to_b: Mutex<Pipe>,
    b_to_a: Mutex<Pipe>,
}

impl Link {
    /// The pipe the dialer's end (`dialer`) or the listener's end writes into.
    fn written_by(&self, dialer: bool) -> &Mutex<Pipe> {
        if dialer {
            &self.a_to_b
        } else {
            &self.b_to_a
        }
    }

    fn reset(&self) {
        for pipe in [&self.a_to_b, &self.b_to_a] {
            let mut p = lock(pipe);
            p.reset = true;
            p.wake_both();
        }
    }
}

#[derive(Debug)]
struct Segment {
    at: Instant,
    data: Vec<u8>,
    pos: usize,
}

/// One direction of a connection.
#[derive(Debug)]
struct Pipe {
    segments: VecDeque<Segment>,
    in_flight: usize,
    last_at: Instant,
    writer_closed: bool,
    reader_gone: bool,
    reset: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Pipe {
    fn new() -> Pipe {
        Pipe {
            segments: VecDeque::new(),
            in_flight: 0,
            last_at: Instant::now(),
            writer_closed: false,
            reader_gone: false,
            reset: false,
            reader: None,
            writer: None,
        }
    }

    fn wake_both(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }
}

/// One end of a simulated connection: `AsyncRead + AsyncWrite` with the shaping described in the
/// module documentation.
pub struct SimStream {
    net: Arc<SimNet>,
    link: Arc<Link>,
    /// True at the dialer's end (`a`).
    dialer: bool,
    latency: Duration,
    window: usize,
    wait: Option<Pin<Box<Sleep>>>,
}

impl std::fmt::Debug for SimStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimStream")
            .field("from", &self.local())
            .field("to", &self.remote())
            .field("latency", &self.latency)
            .finish()
    }
}

impl SimStream {
    fn new(net: Arc<SimNet>, link: Arc<Link>, dialer: bool, latency: Duration, window: usize) -> SimStream {
        SimStream { net, link, dialer, latency, window, wait: None }
    }

    fn local(&self) -> usize {
        if self.dialer {
            self.link.a
        } else {
            self.link.b
        }
    }

    fn remote(&self) -> usize {
        if self.dialer {
            self.link.b
        } else {
            self.link.a
        }
    }

    fn incoming(&self) -> &Mutex<Pipe> {
        self.link.written_by(!self.dialer)
    }

    fn outgoing(&self) -> &Mutex<Pipe> {
        self.link.written_by(self.dialer)
    }

    /// Wakes the remote end's reader when the bytes written now arrive (`at`).
    fn wake_reader_at(&self, at: Instant) {
        let (link, dialer) = (self.link.clone(), self.dialer);
        let wake = move || {
            let reader = lock(link.written_by(dialer)).reader.take();
            if let Some(w) = reader {
                w.wake();
            }
        };
        if at <= Instant::now() {
            wake();
        } else {
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                wake();
            });
        }
    }
}

impl AsyncRead for SimStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let link = this.link.clone();
        let pipe = link.written_by(!this.dialer);
        loop {
            let due = {
                let mut p = lock(pipe);
                if p.reset {
                    return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
                }
                let now = Instant::now();
                let closed = p.writer_closed;
                let front = p.segments.front_mut().map(|seg| {
                    if seg.at > now {
                        return Err(seg.at);
                    }
                    let n = buf.len().min(seg.data.len() - seg.pos);
                    buf[..n].copy_from_slice(&seg.data[seg.pos..seg.pos + n]);
                    seg.pos += n;
                    Ok((n, seg.pos == seg.data.len()))
                });
                match front {
                    Some(Ok((n, finished))) => {
                        if finished {
                            p.segments.pop_front();
                        }
                        p.in_flight -= n;
                        if let Some(w) = p.writer.take() {
                            w.wake();
                        }
                        this.wait = None;
                        return Poll::Ready(Ok(n));
                    }
                    Some(Err(at)) => {
                        p.reader = Some(cx.waker().clone());
                        at
                    }
                    None if closed => return Poll::Ready(Ok(0)),
                    None => {
                        p.reader = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                }
            };
            match this.wait.as_mut() {
                Some(s) if s.deadline() == due => {}
                _ => this.wait = Some(Box::pin(tokio::time::sleep_until(due))),
            }
            match this.wait.as_mut().map(|s| s.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => continue,
                _ => return Poll::Pending,
            }
        }
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let after = {
            let mut p = lock(self.outgoing());
            if p.reset {
                return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
            }
            if p.reader_gone || p.writer_closed {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            if p.in_flight >= self.window {
                p.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            p.last_at
        };
        let n = {
            let p = lock(self.outgoing());
            buf.len().min(self.window - p.in_flight).min(MAX_SEGMENT)
        };
        let at = self.net.schedule(self.local(), self.remote(), n, self.latency, after);
        let mut p = lock(self.outgoing());
        p.last_at = at;
        p.in_flight += n;
        let was_empty = p.segments.is_empty();
        p.segments.push_back(Segment { at, data: buf[..n].to_vec(), pos: 0 });
        // A reader waiting on an earlier segment wakes by its own timer and then finds this one.
        // A reader waiting on an empty pipe is woken when these bytes arrive, not now: waking a
        // libp2p connection task re-polls every protocol handler on it, so a wake-up per write
        // (plus one on arrival) was most of the simulator's per-message cost.
        if was_empty && p.reader.is_some() {
            drop(p);
            self.wake_reader_at(at);
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let p = lock(self.outgoing());
        if p.reset {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut p = lock(self.outgoing());
        p.writer_closed = true;
        if let Some(w) = p.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for SimStream {
    fn drop(&mut self) {
        {
            let mut p = lock(self.outgoing());
            p.writer_closed = true;
            if let Some(w) = p.reader.take() {
                w.wake();
            }
        }
        let mut p = lock(self.incoming());
        p.reader_gone = true;
        p.segments.clear();
        p.in_flight = 0;
        if let Some(w) = p.writer.take() {
            w.wake();
        }
    }
}

/// The raw (not yet upgraded) transport of one host.
struct SimTransport {
    net: Arc<SimNet>,
    host: usize,
    listener: Option<(ListenerId, mpsc::UnboundedReceiver<Incoming>)>,
    pending: VecDeque<TransportEvent<futures::future::Ready<Result<SimStream, SimNetError>>, SimNetError>>,
}

impl SimTransport {
    fn new(net: Arc<SimNet>, host: usize) -> SimTransport {
        SimTransport { net, host, listener: None, pending: VecDeque::new() }
    }
}

impl Transport for SimTransport {
    type Output = SimStream;
    type Error = SimNetError;
    type ListenerUpgrade = futures::future::Ready<Result<SimStream, SimNetError>>;
    type Dial = BoxFuture<'static, Result<SimStream, SimNetError>>;

    fn listen_on(&mut self, id: ListenerId, addr: Multiaddr) -> Result<(), TransportError<SimNetError>> {
        match addr_host(&addr) {
            None => return Err(TransportError::MultiaddrNotSupported(addr)),
            Some(h) if h != self.host => {
                return Err(TransportError::Other(SimNetError::NotOwnAddress {
                    host: self.host,
                    addr: addr.to_string(),
                }))
            }
            Some(_) => {}
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.net.listen(self.host, tx);
        self.listener = Some((id, rx));
        self.pending.push_back(TransportEvent::NewAddress { listener_id: id, listen_addr: host_addr(self.host) });
        Ok(())
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        if self.listener.as_ref().is_some_and(|(l, _)| *l == id) {
            self.listener = None;
            true
        } else {
            false
        }
    }

    fn dial(&mut self, addr: Multiaddr, _opts: DialOpts) -> Result<Self::Dial, TransportError<SimNetError>> {
        let Some(dst) = addr_host(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        Ok(self.net.clone().connect(self.host, dst).boxed())
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        if let Some(ev) = self.pending.pop_front() {
            return Poll::Ready(ev);
        }
        let host = self.host;
        if let Some((id, rx)) = self.listener.as_mut() {
            if let Poll::Ready(Some(inc)) = rx.poll_recv(cx) {
                return Poll::Ready(TransportEvent::Incoming {
                    listener_id: *id,
                    upgrade: futures::future::ready(Ok(inc.stream)),
                    local_addr: host_addr(host),
                    send_back_addr: host_addr(inc.from),
                });
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{AsyncReadExt, AsyncWriteExt};

    fn two_hosts(up_mbps: f64, latency_ms: f64) -> Arc<SimNet> {
        let class = crate::topology::Class { up_mbps, down_mbps: up_mbps, access_ms: 0.0 };
        let hosts = (0..2).map(|i| crate::topology::synthetic_host(format!("h{i}"), "x", &class)).collect();
        let topo = Topology {
            name: "pair".into(),
            regions: vec!["r".into()],
            region_latency_ms: vec![vec![latency_ms]],
            hosts,
            portal: None,
            overlay: crate::topology::Overlay::Complete(2),
        };
        SimNet::new(&topo, 0.0, 1)
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_take_latency_plus_size_over_bandwidth_and_cuts_reset() {
        let net = two_hosts(8.0, 10.0); // 1 MB/s, 10 ms one way
        let (tx, mut rx) = mpsc::unbounded_channel();
        net.listen(1, tx);
        let t0 = Instant::now();
        let mut a = net.clone().connect(0, 1).await.expect("dial");
        assert_eq!(t0.elapsed(), Duration::from_millis(20), "a dial takes one round trip");
        let mut b = rx.recv().await.expect("incoming").stream;
        let data = vec![7u8; 200_000];
        let t1 = Instant::now();
        let writer = tokio::spawn(async move {
            a.write_all(&data).await.expect("write");
            a.close().await.expect("close");
            a
        });
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.expect("read");
        let took = t1.elapsed().as_secs_f64();
        assert_eq!(got.len(), 200_000);
        assert!(got.iter().all(|&x| x == 7));
        // 0.2 MB at 1 MB/s plus 10 ms; timers wake on whole milliseconds.
        assert!((0.209..0.215).contains(&took), "took {took}");
        let _a = writer.await.expect("writer");
        // A cut resets open connections and fails dials; healing lets dials through again.
        let cut = net.cut(vec![true, false], vec![false, true]);
        let mut buf = [0u8; 4];
        assert!(b.read(&mut buf).await.is_err());
        assert!(matches!(net.clone().connect(0, 1).await, Err(SimNetError::Unreachable(1))));
        net.heal(cut);
        assert!(net.clone().connect(0, 1).await.is_ok());
        // Nobody listening: refused.
        assert!(matches!(net.clone().connect(1, 0).await, Err(SimNetError::Refused(0))));
    }
}
