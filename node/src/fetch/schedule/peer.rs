//! What the scheduler knows of one peer: its `Have` bitmaps and the files it seeds, its request
//! window (slow start, shrunk by `Busy`), its `Busy` back-off and its failures. Pure: every
//! time is passed in.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use super::Unit;
use crate::chunks::bit;

/// Age after which a peer's `Have` answer is asked again (partial holders gain chunks).
pub(crate) const HAVE_REFRESH: Duration = Duration::from_millis(250);
/// How long a peer that answered `Busy` is left alone, at first; it doubles with each `Busy` in a
/// row up to [`MAX_BUSY_BACKOFF`]. A thousand fetchers retrying a busy publisher every 50 ms would
/// send it 20,000 requests a second that it can only refuse.
pub(crate) const BUSY_BACKOFF: Duration = Duration::from_millis(50);
/// The longest `Busy` back-off.
pub(crate) const MAX_BUSY_BACKOFF: Duration = Duration::from_secs(1);
/// Failures in a row after which a peer is dropped (until [`FAILED_PEER_RETRY`] has passed).
pub(crate) const MAX_PEER_FAILURES: u32 = 3;
/// How long a peer dropped after [`MAX_PEER_FAILURES`] failures is left out.
pub(crate) const FAILED_PEER_RETRY: Duration = Duration::from_secs(10);
/// Successful answers after which a peer's request window grows by one (a probe: if the peer
/// still has no more slots, it costs one `Busy` answer).
pub(crate) const WINDOW_GROWTH_EVERY: usize = 64;

/// The scheduler's state of one peer.
#[derive(Default)]
pub(crate) struct PeerState {
    /// Requests to this peer in flight.
    pub(crate) in_flight: usize,
    /// Failures in a row.
    pub(crate) failures: u32,
    /// Whether it sent bad data (it is never asked again).
    pub(crate) bad: bool,
    /// Its latest `Have` bitmap per file, and when it was received.
    pub(crate) have: HashMap<usize, (Vec<u8>, Instant)>,
    /// Until when it is left alone after a `Busy`.
    pub(crate) busy_until: Option<Instant>,
    /// Requests this peer takes at once. It starts at one and grows by one per answer up to the
    /// configured number (a slow start: a thousand nodes that hear of a dataset at once each ask
    /// the publisher for one piece, not for the whole dataset); after a `Busy` it is what the
    /// peer was serving us (a server with fewer upload slots than our requests in flight would
    /// otherwise answer `Busy` to the surplus again and again) and grows back slowly.
    pub(crate) window: usize,
    /// Whether the peer has answered `Busy` (the window then grows only slowly).
    pub(crate) saw_busy: bool,
    /// `Busy` answers in a row (reset by any other answer): the back-off doubles with each.
    pub(crate) busy_streak: u32,
    /// When its latest request failed.
    pub(crate) failed_at: Option<Instant>,
    /// Answers since the window last changed; the window grows by one every
    /// [`WINDOW_GROWTH_EVERY`] of them, back up to the configured number.
    pub(crate) since_window_change: usize,
    /// Files this peer holds whole (per its last `Have`): a seed for them.
    pub(crate) seed_of: HashSet<usize>,
    /// Files whose `Have` from this peer did not fit (another chunk count): never asked again.
    pub(crate) misfits: HashSet<usize>,
    /// Files this peer is being watched for (a `Watch` outstanding): its `Have` of them stays
    /// current without polling.
    pub(crate) watching: HashSet<usize>,
    /// Whether the peer does not answer `Watch` (an older node): it is polled instead.
    pub(crate) no_watch: bool,
    /// Until when a file's watch is not renewed after a refusal or a failure.
    pub(crate) watch_pause: HashMap<usize, Instant>,
}

impl PeerState {
    /// Requests this peer may have in flight now.
    pub(crate) fn limit(&self, configured: usize) -> usize {
        self.window.clamp(1, configured.max(1))
    }

    /// How long to leave the peer alone after its latest `Busy`: [`BUSY_BACKOFF`] doubled for
    /// each earlier one in a row, at most [`MAX_BUSY_BACKOFF`], times `jitter` (0.5–1, so that
    /// fetchers refused together do not all come back together).
    pub(crate) fn busy_backoff(&self, jitter: f64) -> Duration {
        let doublings = self.busy_streak.saturating_sub(1).min(16);
        BUSY_BACKOFF.saturating_mul(1 << doublings).min(MAX_BUSY_BACKOFF).mul_f64(jitter.clamp(0.5, 1.0))
    }

    /// The peer answered `Busy`: shrink its window to what it is serving now.
    pub(crate) fn shrink_window(&mut self) {
        self.busy_streak = self.busy_streak.saturating_add(1);
        self.window = self.in_flight.max(1);
        self.saw_busy = true;
        self.since_window_change = 0;
    }

    /// The peer served a request: grow the window, by one per answer until the first `Busy`,
    /// then by one per [`WINDOW_GROWTH_EVERY`] answers.
    pub(crate) fn grow_window(&mut self, configured: usize) {
        if self.window >= configured {
            return;
        }
        if !self.saw_busy {
            self.window = self.window.max(1) + 1;
            return;
        }
        self.since_window_change += 1;
        if self.since_window_change >= WINDOW_GROWTH_EVERY {
            self.window += 1;
            self.since_window_change = 0;
        }
    }

    /// Records the peer's `Have` bitmap for `file` (of `count` chunks), received at `now`.
    pub(crate) fn record_have(&mut self, file: usize, bitmap: Vec<u8>, count: u64, now: Instant) {
        if (0..count).all(|i| bit(&bitmap, i)) {
            self.seed_of.insert(file);
        } else {
            self.seed_of.remove(&file);
        }
        self.have.insert(file, (bitmap, now));
    }

    /// Whether this peer may be asked at all: it sent no bad data and has not failed
    /// [`MAX_PEER_FAILURES`] times in a row.
    pub(crate) fn usable(&self) -> bool {
        !self.bad && self.failures < MAX_PEER_FAILURES
    }

    /// Whether this peer is usable and not backing off after a `Busy` at `now`.
    pub(crate) fn ready(&self, now: Instant) -> bool {
        self.usable() && self.busy_until.is_none_or(|t| t <= now)
    }

    /// Whether a seed of `unit`'s file should leave `unit` to others now: when a partial holder is
    /// known to have it (`held_elsewhere`), or when it already serves us a request while other
    /// fetchers hold parts of the file (`swarm`), so its upload reaches many fetchers.
    /// (Both are asked only for a seed, and only as far as needed: they scan the other peers.)
    pub(crate) fn leaves_to_others(
        &self,
        unit: &Unit,
        held_elsewhere: impl FnOnce() -> bool,
        swarm: impl FnOnce() -> bool,
    ) -> bool {
        self.seed_of.contains(&unit.file) && (held_elsewhere() || (self.in_flight > 0 && swarm()))
    }

    /// Whether this peer is usable and known (from its `Have`) to hold `unit` without being a
    /// seed of the file.
    pub(crate) fn partial_holder_of(&self, unit: &Unit, now: Instant) -> bool {
        self.ready(now) && !self.seed_of.contains(&unit.file) && self.may_hold(unit, now) == Some(false)
    }

    /// Whether this peer may be asked again when it turns up among the candidates: never after
    /// bad data; after [`MAX_PEER_FAILURES`] failures only once [`FAILED_PEER_RETRY`] has passed
    /// since the last (a cut that healed, a restarted node), with its failures forgiven.
    pub(crate) fn usable_again(&mut self, now: Instant) -> bool {
        if self.bad {
            return false;
        }
        if self.failures >= MAX_PEER_FAILURES {
            if self.failed_at.is_none_or(|t| now.saturating_duration_since(t) < FAILED_PEER_RETRY) {
                return false;
            }
            self.failures = 0;
        }
        true
    }

    /// Whether this peer is usable and known to hold some chunk of `file` without being a seed
    /// of it: a fetcher like us, so there is a swarm to trade with.
    pub(crate) fn trades(&self, file: usize) -> bool {
        self.usable()
            && !self.seed_of.contains(&file)
            && self.have.get(&file).is_some_and(|(bitmap, _)| bitmap.iter().any(|b| *b != 0))
    }

    /// Whether this peer should be watched for `file` now: it answers `Watch`, its `Have` of the
    /// file is known and fits, it is not a seed of it (a seed gains nothing; its `Have` is what
    /// it chooses to offer, asked as before), and no watch is outstanding or paused.
    pub(crate) fn wants_watch(&self, file: usize, now: Instant) -> bool {
        self.usable()
            && !self.no_watch
            && self.have.contains_key(&file)
            && !self.seed_of.contains(&file)
            && !self.misfits.contains(&file)
            && !self.watching.contains(&file)
            && self.watch_pause.get(&file).is_none_or(|t| *t <= now)
    }

    /// Chunks of `file` this peer is known to hold.
    pub(crate) fn held_count(&self, file: usize) -> u64 {
        self.have.get(&file).map_or(0, |(bitmap, _)| crate::chunks::count_held(bitmap))
    }

    /// Whether this peer may hold `unit` at `now`, and whether to ask it `Have` first: `None`
    /// when it is known not to (or its chunks do not fit the file), `Some(true)` when its
    /// holdings are unknown or older than [`HAVE_REFRESH`] (and not watched), `Some(false)` when
    /// its `Have` lists every chunk of `unit`.
    pub(crate) fn may_hold(&self, unit: &Unit, now: Instant) -> Option<bool> {
        if self.misfits.contains(&unit.file) {
            return None;
        }
        match self.have.get(&unit.file) {
            None => Some(true),
            Some((bitmap, _)) if unit.chunks().all(|i| bit(bitmap, i)) => Some(false),
            Some((_, at))
                if !self.watching.contains(&unit.file) && now.saturating_duration_since(*at) > HAVE_REFRESH =>
            {
                Some(true)
            }
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_peer_gets_a_smaller_window_that_grows_back_slowly() {
        let mut peer = PeerState::default();
        assert_eq!(peer.limit(8), 1, "a slow start: one request first");
        for expected in 2..=8 {
            peer.grow_window(8);
            assert_eq!(peer.limit(8), expected, "one more per answer until the first Busy");
        }
        peer.grow_window(8);
        assert_eq!(peer.limit(8), 8, "never above the configured number");
        // Busy while serving us 3 requests: at most 3 at once from now on.
        peer.in_flight = 3;
        peer.shrink_window();
        assert_eq!(peer.limit(8), 3);
        // Busy while serving us nothing: still one request allowed (after the back-off).
        peer.in_flight = 0;
        peer.shrink_window();
        assert_eq!(peer.limit(8), 1);
        for _ in 0..WINDOW_GROWTH_EVERY - 1 {
            peer.grow_window(8);
        }
        assert_eq!(peer.limit(8), 1, "grew too early");
        peer.grow_window(8);
        assert_eq!(peer.limit(8), 2);
        for _ in 0..100 * WINDOW_GROWTH_EVERY {
            peer.grow_window(8);
        }
        assert_eq!(peer.limit(8), 8, "never above the configured number");
        assert_eq!(peer.limit(4), 4);
    }

    #[test]
    fn a_seed_is_known_from_its_have_and_partial_holders_are_preferred_for_what_they_hold() {
        let unit = Unit { file: 0, first: 3, count: 1 };
        let now = Instant::now();
        let mut seed = PeerState::default();
        seed.record_have(0, vec![0xff, 0x03], 10, now);
        assert!(seed.seed_of.contains(&0), "10 of 10 chunks: a seed");
        assert!(!seed.partial_holder_of(&unit, now), "a seed is not a partial holder");
        let mut partial = PeerState::default();
        partial.record_have(0, vec![0b0000_1000, 0], 10, now);
        assert!(!partial.seed_of.contains(&0));
        assert!(partial.partial_holder_of(&unit, now), "it holds chunk 3");
        assert!(!partial.partial_holder_of(&Unit { file: 0, first: 4, count: 1 }, now), "not chunk 4");
        partial.busy_until = Some(now + Duration::from_secs(1));
        assert!(!partial.partial_holder_of(&unit, now), "a peer backing off after Busy does not count");
        // A seed that loses a chunk (its Have no longer full) is no longer one.
        seed.record_have(0, vec![0xff, 0x01], 10, now);
        assert!(!seed.seed_of.contains(&0));
    }

    #[test]
    fn busy_back_off_doubles_for_each_busy_in_a_row_up_to_a_second() {
        let mut peer = PeerState::default();
        let mut seen = Vec::new();
        for _ in 0..7 {
            peer.shrink_window();
            seen.push(peer.busy_backoff(1.0).as_millis());
        }
        assert_eq!(seen, [50, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(peer.busy_backoff(0.5).as_millis(), 500, "jitter shortens it, at most by half");
        assert_eq!(peer.busy_backoff(0.0).as_millis(), 500);
    }

    #[test]
    fn a_failed_peer_is_asked_again_only_after_a_pause_and_a_bad_one_never() {
        let start = Instant::now();
        let mut peer = PeerState::default();
        assert!(peer.usable_again(start));
        peer.failures = MAX_PEER_FAILURES;
        peer.failed_at = Some(start);
        assert!(!peer.usable_again(start + FAILED_PEER_RETRY / 2), "too soon");
        assert!(peer.usable_again(start + FAILED_PEER_RETRY), "forgiven after the pause");
        assert_eq!(peer.failures, 0);
        peer.bad = true;
        assert!(!peer.usable_again(start + FAILED_PEER_RETRY * 10), "bad data is never forgiven");
    }

    #[test]
    fn a_peer_whose_have_did_not_fit_a_file_is_not_asked_for_it_again() {
        let now = Instant::now();
        let unit = Unit { file: 0, first: 3, count: 1 };
        let mut peer = PeerState::default();
        assert_eq!(peer.may_hold(&unit, now), Some(true));
        peer.misfits.insert(0);
        assert_eq!(peer.may_hold(&unit, now), None, "asked again for a file its chunks do not fit");
        assert_eq!(peer.may_hold(&Unit { file: 1, first: 0, count: 1 }, now), Some(true), "other files are fine");
    }

    #[test]
    fn a_seed_leaves_what_others_hold_and_takes_one_request_at_a_time_while_they_trade() {
        let now = Instant::now();
        let unit = Unit { file: 0, first: 3, count: 1 };
        let mut seed = PeerState::default();
        seed.record_have(0, vec![0xff, 0x03], 10, now);
        assert!(!seed.leaves_to_others(&unit, || false, || true), "first request: taken even in a swarm");
        assert!(seed.leaves_to_others(&unit, || true, || false), "a partial holder has it");
        seed.in_flight = 1;
        assert!(seed.leaves_to_others(&unit, || false, || true), "one at a time while others trade");
        assert!(!seed.leaves_to_others(&unit, || false, || false), "alone: as many as the window allows");
        let mut partial = PeerState::default();
        partial.record_have(0, vec![0b0000_1000, 0], 10, now);
        partial.in_flight = 1;
        assert!(!partial.leaves_to_others(&unit, || true, || true), "only seeds leave work to others");
    }

    #[test]
    fn a_fetcher_holding_part_of_a_file_trades_it_and_a_seed_or_an_idle_peer_does_not() {
        let now = Instant::now();
        let mut idle = PeerState::default();
        idle.record_have(0, vec![0, 0], 10, now);
        assert!(!idle.trades(0), "holds nothing of the file: no swarm");
        let mut fetcher = PeerState::default();
        fetcher.record_have(0, vec![0b0100_0000, 0], 10, now);
        assert!(fetcher.trades(0), "holds chunk 6");
        assert!(!fetcher.trades(1), "nothing known of another file");
        let mut seed = PeerState::default();
        seed.record_have(0, vec![0xff, 0x03], 10, now);
        assert!(!seed.trades(0), "a seed is not one of the swarm");
        fetcher.bad = true;
        assert!(!fetcher.trades(0), "a peer that sent bad data does not count");
    }
}
