//! lien-sim's stand-in for `web-time` 1: [`Instant`] reads tokio's clock, so in lien-sim's paused,
//! auto-advancing runtime every rust-libp2p expiry and measurement (gossipsub backoff and
//! caches, Kademlia record and query deadlines, swarm idle timeouts, yamux RTT and flow-control
//! windows, ping RTT) runs in virtual time, consistent with the timers of the `futures-timer`
//! shim.
//!
//! Only the simulator's workspace patches this in (`simulations/Cargo.toml`, `[patch.crates-io]`);
//! production builds use the real crate (on native targets a re-export of `std::time`).
//! `SystemTime` and `UNIX_EPOCH` stay on the wall clock (libp2p uses them for message sequence
//! numbers and signed peer records, where only uniqueness and order matter).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::ops::{Add, AddAssign, Sub, SubAssign};

pub use std::time::{Duration, SystemTime, SystemTimeError, TryFromFloatSecsError, UNIX_EPOCH};

/// A monotonic instant on tokio's clock (virtual when the runtime's clock is paused; the wall
/// clock outside a runtime). Same API as `std::time::Instant`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(tokio::time::Instant);

impl Instant {
    /// The current instant on tokio's clock.
    pub fn now() -> Instant {
        Instant(tokio::time::Instant::now())
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn duration_since(&self, earlier: Instant) -> Duration {
        self.0.saturating_duration_since(earlier.0)
    }

    /// Time from `earlier` to `self`, `None` if `earlier` is later.
    pub fn checked_duration_since(&self, earlier: Instant) -> Option<Duration> {
        self.0.checked_duration_since(earlier.0)
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(&self, earlier: Instant) -> Duration {
        self.0.saturating_duration_since(earlier.0)
    }

    /// Time since this instant.
    pub fn elapsed(&self) -> Duration {
        Instant::now().duration_since(*self)
    }

    /// `self + d`, `None` on overflow.
    pub fn checked_add(&self, d: Duration) -> Option<Instant> {
        self.0.checked_add(d).map(Instant)
    }

    /// `self - d`, `None` on underflow.
    pub fn checked_sub(&self, d: Duration) -> Option<Instant> {
        self.0.checked_sub(d).map(Instant)
    }
}

impl std::fmt::Debug for Instant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0 + d)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        self.0 += d;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant(self.0 - d)
    }
}

impl SubAssign<Duration> for Instant {
    fn sub_assign(&mut self, d: Duration) {
        self.0 -= d;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, other: Instant) -> Duration {
        self.duration_since(other)
    }
}

impl From<tokio::time::Instant> for Instant {
    fn from(i: tokio::time::Instant) -> Instant {
        Instant(i)
    }
}

impl From<Instant> for tokio::time::Instant {
    fn from(i: Instant) -> tokio::time::Instant {
        i.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn instants_follow_the_paused_clock() {
        let a = Instant::now();
        tokio::time::sleep(Duration::from_secs(600)).await;
        let b = Instant::now();
        assert_eq!(b - a, Duration::from_secs(600));
        assert_eq!(a.elapsed(), Duration::from_secs(600));
        assert_eq!(a.checked_duration_since(b), None);
        assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
        assert_eq!(a + Duration::from_secs(600), b);
        let mut c = b;
        c -= Duration::from_secs(600);
        assert_eq!(c, a);
        assert!(a < b);
    }
}
