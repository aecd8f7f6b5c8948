//! lien-sim's stand-in for `futures-timer` 3: [`Delay`] is a `tokio::time::Sleep`, so it follows
//! tokio's clock. In lien-sim's paused, auto-advancing runtime that clock is virtual, and every
//! rust-libp2p timer (gossipsub heartbeat, connection keep-alive, identify interval, request and
//! dial timeouts, Kademlia jobs) fires in virtual time.
//!
//! Only the simulator's workspace patches this in (`simulations/Cargo.toml`, `[patch.crates-io]`);
//! production builds use the real crate. The API is the one rust-libp2p uses: `Delay::new`,
//! `Delay::reset`, `Future<Output = ()>`, `Unpin`, `Debug`.
//!
//! Polled outside a tokio runtime (nothing in lien-sim does), a delay falls back to a sleeping
//! thread on the wall clock rather than panicking.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// A future that completes `dur` after it was created (or last reset), on tokio's clock.
pub struct Delay {
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    fallback: Option<Arc<Mutex<Fallback>>>,
}

#[derive(Default)]
struct Fallback {
    done: bool,
    waker: Option<Waker>,
}

impl Delay {
    /// A delay that completes `dur` from now (tokio's now: virtual under a paused clock).
    pub fn new(dur: Duration) -> Delay {
        Delay { deadline: deadline_after(dur), sleep: None, fallback: None }
    }

    /// Restarts the delay to complete `dur` from now, even if it already completed.
    pub fn reset(&mut self, dur: Duration) {
        self.deadline = deadline_after(dur);
        self.fallback = None;
        if let Some(sleep) = self.sleep.as_mut() {
            sleep.as_mut().reset(self.deadline);
        }
    }

    fn poll_fallback(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.deadline;
        let state = self.fallback.get_or_insert_with(|| {
            let state = Arc::new(Mutex::new(Fallback::default()));
            let s = state.clone();
            std::thread::spawn(move || {
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                if let Ok(mut g) = s.lock() {
                    g.done = true;
                    if let Some(w) = g.waker.take() {
                        w.wake();
                    }
                }
            });
            state
        });
        match state.lock() {
            Ok(g) if g.done => Poll::Ready(()),
            Ok(mut g) => {
                g.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Err(_) => Poll::Ready(()),
        }
    }
}

/// `now + dur`, saturating far in the future instead of overflowing (`Duration::MAX` is used as
/// "never" by some callers).
fn deadline_after(dur: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(dur).unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}

impl Future for Delay {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.sleep.is_none() {
            if tokio::runtime::Handle::try_current().is_err() {
                return this.poll_fallback(cx);
            }
            this.sleep = Some(Box::pin(tokio::time::sleep_until(this.deadline)));
        }
        match this.sleep.as_mut() {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

impl fmt::Debug for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delay").field("deadline", &self.deadline).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_delay_follows_the_paused_clock() {
        let wall = std::time::Instant::now();
        let start = Instant::now();
        Delay::new(Duration::from_secs(3600)).await;
        assert!(start.elapsed() >= Duration::from_secs(3600));
        assert!(wall.elapsed() < Duration::from_secs(30), "an hour of virtual time took {:?}", wall.elapsed());
        let mut d = Delay::new(Duration::from_secs(10));
        let t = Instant::now();
        d.reset(Duration::from_secs(20));
        (&mut d).await;
        assert!(t.elapsed() >= Duration::from_secs(20));
        // Reset after completion re-arms it.
        d.reset(Duration::from_secs(5));
        let t = Instant::now();
        d.await;
        let waited = t.elapsed();
        assert!(waited >= Duration::from_secs(5) && waited < Duration::from_secs(6), "{waited:?}");
    }

    #[test]
    fn a_delay_outside_a_runtime_uses_the_wall_clock() {
        let t = std::time::Instant::now();
        futures_block_on(Delay::new(Duration::from_millis(20)));
        assert!(t.elapsed() >= Duration::from_millis(20));
    }

    /// A minimal executor (no futures dependency): parks the thread until woken.
    fn futures_block_on<F: Future>(f: F) -> F::Output {
        struct ThreadWaker(std::thread::Thread);
        impl std::task::Wake for ThreadWaker {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        for _ in 0..1000 {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park_timeout(Duration::from_millis(10));
        }
        panic!("the delay did not complete within 10 s");
    }
}
