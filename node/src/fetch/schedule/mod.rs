//! The chunk scheduler: which unit of work each peer is asked for, and what an answer changes.
//!
//! Pure: no I/O, no async, no clock (every time is passed in as `now`), no randomness (the
//! `Busy` jitter is passed in). The fetch loop does the requests and feeds their outcomes back.
//!
//! The rules: a peer gets up to its window of requests in flight (a slow start from one, shrunk
//! by `Busy`, see [`PeerState`]); of the units in the first [`QUEUE_SCAN`] of the queue that it
//! may hold, it is asked for the one the fewest usable peers are known to hold (rarest first;
//! ties keep the queue's order); a peer whose holdings are unknown or stale is asked `Have`
//! first; a seed leaves to others the units a partial holder has, and takes one request at a
//! time while other fetchers trade parts of the file ([`PeerState::leaves_to_others`]). A peer
//! that sent bad data is never asked again; one that failed [`MAX_PEER_FAILURES`] times in a
//! row is dropped until [`peer::FAILED_PEER_RETRY`] has passed.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;

use libp2p::PeerId;
use tokio::time::Instant;

mod peer;
#[cfg(test)]
mod tests;

pub(crate) use peer::PeerState;
use peer::MAX_PEER_FAILURES;

/// How far into the work queue a peer looks for a range it holds.
const QUEUE_SCAN: usize = 256;

/// A range of consecutive chunks of one file: one request's worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Unit {
    /// The file's index in the dataset.
    pub(crate) file: usize,
    /// Its first chunk.
    pub(crate) first: u64,
    /// How many chunks.
    pub(crate) count: u32,
}

impl Unit {
    /// The unit's chunk indices.
    pub(crate) fn chunks(&self) -> Range<u64> {
        self.first..self.first + u64::from(self.count)
    }
}

/// How a request for a unit ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The peer's `Have` does not fit the file (another chunk count): it holds the file cut
    /// into other chunks, or it misbehaves. Either way its chunk indices are not ours.
    Misfit(String),
    /// The unit's bytes (this many) verified and were written; the peer's `Have`, if asked.
    Written(u64, Option<Vec<u8>>),
    /// The peer sent bytes that do not verify; its `Have`, if asked.
    Corrupt(Option<Vec<u8>>),
    /// The peer refuses this node the dataset.
    Forbidden,
    /// The peer does not hold the unit; its `Have` bitmap (empty if unknown).
    NotHeld(Vec<u8>),
    /// The peer's upload slots are full.
    Busy,
    /// The request failed (network, unexpected answer, local write).
    Failed(String),
}

/// Most files of a fetch whose partial holders are watched at once (the first files of the
/// queue): a dataset of thousands of files is watched a few files at a time.
pub(crate) const MAX_WATCHED_FILES: usize = 4;
/// How long a file's watch on a peer waits before it is renewed after a refusal or failure.
pub(crate) const WATCH_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// A `Watch` to send: `peer`'s holdings of `file`, of which we last saw `known` chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WatchRequest {
    /// Whom to watch.
    pub(crate) peer: PeerId,
    /// The file's index in the dataset.
    pub(crate) file: usize,
    /// Chunks of it we last saw the peer hold.
    pub(crate) known: u64,
}

/// How a `Watch` ended.
#[derive(Debug)]
pub(crate) enum WatchAnswer {
    /// The peer's `Have` of the file (checked to fit it).
    Have(Vec<u8>),
    /// The peer's `Have` does not fit the file.
    Misfit,
    /// The peer does not know `Watch` (an older node): poll it.
    Unsupported,
    /// Refused (`Busy`, not found, forbidden) or failed: renewed after [`WATCH_PAUSE`].
    Paused,
}

/// A request to send: `unit` from `peer`, asking it `Have` first when `ask_have`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Assignment {
    /// Whom to ask.
    pub(crate) peer: PeerId,
    /// What to ask for.
    pub(crate) unit: Unit,
    /// Whether to ask the peer's `Have` for the file first.
    pub(crate) ask_have: bool,
}

/// The per-peer state and the queue of units of one fetch.
pub(crate) struct Scheduler {
    /// Requests a peer may have in flight at most (`fetch_requests_per_peer`).
    configured: usize,
    /// Chunks of each file, by file index.
    chunk_counts: Vec<u64>,
    /// Units waiting to be asked for.
    queue: VecDeque<Unit>,
    /// Every peer ever met in this fetch.
    peers: HashMap<PeerId, PeerState>,
    /// The peers asked, in the order met.
    order: Vec<PeerId>,
    /// Units in flight, and whom they were asked from.
    flying: HashMap<Unit, PeerId>,
    /// Whether some peer refused this node the dataset.
    saw_forbidden: bool,
}

impl Scheduler {
    /// A scheduler for `queue` (in the order to try), over files of `chunk_counts` chunks, with
    /// at most `configured` requests in flight per peer.
    pub(crate) fn new(queue: impl IntoIterator<Item = Unit>, chunk_counts: Vec<u64>, configured: usize) -> Self {
        Self {
            configured,
            chunk_counts,
            queue: queue.into_iter().collect(),
            peers: HashMap::new(),
            order: Vec::new(),
            flying: HashMap::new(),
            saw_forbidden: false,
        }
    }

    /// Units waiting to be asked for, in queue order.
    pub(crate) fn queued(&self) -> impl ExactSizeIterator<Item = &Unit> {
        self.queue.iter()
    }

    /// Whether units wait to be asked for.
    pub(crate) fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Peers in this fetch (met, and not dropped).
    pub(crate) fn peer_count(&self) -> usize {
        self.order.len()
    }

    /// Whether every peer is gone and some refused this node the dataset.
    pub(crate) fn refused(&self) -> bool {
        self.saw_forbidden && self.order.is_empty()
    }

    /// Whether any peer refused this node (`Forbidden`).
    pub(crate) fn saw_refusal(&self) -> bool {
        self.saw_forbidden
    }

    /// Peers that sent bad data.
    pub(crate) fn bad_peers(&self) -> impl Iterator<Item = &PeerId> {
        self.peers.iter().filter(|(_, s)| s.bad).map(|(p, _)| p)
    }

    /// Every request to send now, in order: rounds over the peers in the order met, one unit
    /// per peer with a free slot per round, until no peer can take more. Each is in flight
    /// from now until [`Scheduler::complete`].
    pub(crate) fn assign(&mut self, now: Instant) -> Vec<Assignment> {
        let mut out = Vec::new();
        let mut assigned = true;
        while assigned {
            assigned = false;
            // Assigning never changes who is asked, only what they are asked for.
            let order = self.order.clone();
            for peer in order {
                if let Some(a) = self.assign_to(peer, now) {
                    out.push(a);
                    assigned = true;
                }
            }
        }
        out
    }

    /// The unit `peer` should be asked for now, if any, taken off the queue and put in flight.
    pub(crate) fn assign_to(&mut self, peer: PeerId, now: Instant) -> Option<Assignment> {
        let (pos, ask) = self.pick(&peer, now)?;
        let unit = self.queue.remove(pos)?;
        let state = self.peers.get_mut(&peer)?;
        state.in_flight += 1;
        self.flying.insert(unit, peer);
        let multi_chunk = self.chunk_counts.get(unit.file).is_some_and(|n| *n > 1);
        Some(Assignment { peer, unit, ask_have: ask && multi_chunk })
    }

    /// Which queued unit (its position) `peer` should be asked for now, and whether its `Have`
    /// should be asked first; `None` when it has no free slot, backs off, sent bad data, or
    /// holds nothing it should be asked for.
    fn pick(&self, peer: &PeerId, now: Instant) -> Option<(usize, bool)> {
        let state = self.peers.get(peer)?;
        if state.bad || state.in_flight >= state.limit(self.configured) || state.busy_until.is_some_and(|t| t > now) {
            return None;
        }
        let (order, peers) = (&self.order, &self.peers);
        // A seed (it holds the whole file) is asked only for chunks no partial holder is
        // known to have: its upload goes to what is rare, and the fetchers of a swarm
        // trade the rest among themselves (BitTorrent's super-seeding, roughly).
        // While there is a swarm (others hold parts of the file), a seed gets one
        // request at a time from us, so its upload reaches many fetchers.
        let held_elsewhere =
            |u: &Unit| order.iter().any(|p| p != peer && peers.get(p).is_some_and(|s| s.partial_holder_of(u, now)));
        let swarm = |file: usize| order.iter().any(|p| p != peer && peers.get(p).is_some_and(|s| s.trades(file)));
        // Rarest first: of the ranges this peer may hold, the one fewest known peers hold
        // (ties keep the queue's order), so what is scarce spreads first.
        let holders = |u: &Unit| {
            order
                .iter()
                .filter(|p| peers.get(*p).is_some_and(|s| s.usable() && s.may_hold(u, now) == Some(false)))
                .count()
        };
        self.queue
            .iter()
            .take(QUEUE_SCAN)
            .enumerate()
            .filter_map(|(i, u)| {
                let ask = state.may_hold(u, now)?;
                if state.leaves_to_others(u, || held_elsewhere(u), || swarm(u.file)) {
                    return None;
                }
                Some((holders(u), i, ask))
            })
            .min_by_key(|(n, i, _)| (*n, *i))
            .map(|(_, i, ask)| (i, ask))
    }

    /// Every `Watch` to send now: for the first [`MAX_WATCHED_FILES`] files with queued units,
    /// each peer that wants watching for them ([`PeerState::wants_watch`]). Each is outstanding
    /// from now until [`Scheduler::watched`].
    pub(crate) fn watches(&mut self, now: Instant) -> Vec<WatchRequest> {
        let mut files: Vec<usize> = Vec::new();
        for u in &self.queue {
            if !files.contains(&u.file) {
                files.push(u.file);
                if files.len() == MAX_WATCHED_FILES {
                    break;
                }
            }
        }
        let mut out = Vec::new();
        for peer in &self.order {
            let Some(state) = self.peers.get_mut(peer) else { continue };
            for file in &files {
                if state.wants_watch(*file, now) {
                    state.watching.insert(*file);
                    out.push(WatchRequest { peer: *peer, file: *file, known: state.held_count(*file) });
                }
            }
        }
        out
    }

    /// The `Watch` of `peer` for `file` ended with `answer` at `now`.
    pub(crate) fn watched(&mut self, peer: PeerId, file: usize, answer: WatchAnswer, now: Instant) {
        let count = self.chunk_counts.get(file).copied().unwrap_or(0);
        let Some(state) = self.peers.get_mut(&peer) else { return };
        state.watching.remove(&file);
        match answer {
            WatchAnswer::Have(bitmap) => {
                let known = state.held_count(file);
                state.record_have(file, bitmap, count, now);
                if state.held_count(file) == known {
                    // No news: an honest peer says so only when its wait ran out; one that
                    // answers at once again and again would keep us busy asking. Either way,
                    // ask again after a pause.
                    state.watch_pause.insert(file, now + WATCH_PAUSE);
                }
            }
            WatchAnswer::Misfit => {
                state.misfits.insert(file);
            }
            WatchAnswer::Unsupported => state.no_watch = true,
            WatchAnswer::Paused => {
                state.watch_pause.insert(file, now + WATCH_PAUSE);
            }
        }
    }

    /// When the first usable peer backing off after `Busy` may be asked again, if any is.
    pub(crate) fn backoff_ends(&self, now: Instant) -> Option<Instant> {
        self.order
            .iter()
            .filter_map(|p| self.peers.get(p))
            .filter(|s| s.usable())
            .filter_map(|s| s.busy_until.filter(|t| *t > now))
            .min()
    }

    /// Providers found while nobody could be asked: new ones join, known ones have their `Have`
    /// forgotten (a partial holder may have more by now), those that may not be asked again
    /// are skipped, and unusable peers leave. Returns whether a usable peer joined or returned.
    pub(crate) fn rediscovered(&mut self, found: impl IntoIterator<Item = PeerId>, now: Instant) -> bool {
        let mut added = false;
        for p in found {
            let state = self.peers.entry(p).or_default();
            // Only usable peers count: re-adding one that failed (and was dropped again
            // below) used to loop straight back to the DHT with no pause, lookup after
            // lookup, until the fetch timed out.
            if !state.usable_again(now) {
                continue;
            }
            if !self.order.contains(&p) {
                self.order.push(p);
            } else {
                state.have.clear();
            }
            added = true;
        }
        self.order.retain(|p| self.peers.get(p).is_some_and(PeerState::usable));
        added && !self.order.is_empty()
    }

    /// Providers found in the background while chunks flow: those not yet asked join, if they
    /// may be asked.
    pub(crate) fn join(&mut self, found: impl IntoIterator<Item = PeerId>, now: Instant) {
        for p in found {
            if !self.order.contains(&p) && self.peers.entry(p).or_default().usable_again(now) {
                self.order.push(p);
            }
        }
    }

    /// The request for `unit` from `peer` ended with `outcome` at `now`: updates the peer's
    /// state and puts the unit back in the queue unless it was written. `jitter` (0.5–1)
    /// scales a `Busy` back-off. An outcome for a unit not in flight from `peer` is ignored.
    pub(crate) fn complete(&mut self, peer: PeerId, unit: Unit, outcome: Outcome, now: Instant, jitter: f64) {
        if self.flying.get(&unit) != Some(&peer) {
            return;
        }
        self.flying.remove(&unit);
        // Whether someone else could take this peer's work now (asked only after `Busy`).
        let others_usable = matches!(outcome, Outcome::Busy)
            && self.order.iter().any(|p| *p != peer && self.peers.get(p).is_some_and(|s| s.ready(now)));
        let chunk_count = self.chunk_counts.get(unit.file).copied().unwrap_or(0);
        let state = self.peers.entry(peer).or_default();
        state.in_flight = state.in_flight.saturating_sub(1);
        match outcome {
            Outcome::Misfit(_) => {
                state.misfits.insert(unit.file);
                self.queue.push_front(unit);
            }
            Outcome::Corrupt(have) => {
                if let Some(h) = have {
                    state.record_have(unit.file, h, chunk_count, now);
                }
                state.bad = true;
                self.queue.push_front(unit);
            }
            Outcome::Written(_, have) => {
                if let Some(h) = have {
                    state.record_have(unit.file, h, chunk_count, now);
                }
                state.failures = 0;
                state.busy_streak = 0;
                state.grow_window(self.configured);
            }
            Outcome::NotHeld(bitmap) => {
                state.busy_streak = 0;
                // A partial holder that said it held the unit (its `Have` or `Watch`) and then
                // does not serve it lied, or lost it: either way it costs a failure, so a peer
                // that advertises what it does not have is soon dropped. (A seed refusing a
                // chunk it handed out already is super-seeding, not a lie.)
                let claimed = !state.seed_of.contains(&unit.file) && state.may_hold(&unit, now) == Some(false);
                if claimed {
                    state.failures += 1;
                    state.failed_at = Some(now);
                    if state.failures >= MAX_PEER_FAILURES {
                        self.order.retain(|p| *p != peer);
                    }
                }
                state.record_have(unit.file, bitmap, chunk_count, now);
                self.queue.push_front(unit);
            }
            Outcome::Forbidden => {
                self.saw_forbidden = true;
                state.failures = MAX_PEER_FAILURES;
                self.order.retain(|p| *p != peer);
                self.queue.push_front(unit);
            }
            Outcome::Busy => {
                // Its upload slots are full. Send it no more at once than it is serving us now.
                // If others could serve (a swarm: spread the load, BitTorrent's choking) or it
                // serves us nothing, leave it alone briefly; if it is our only source, keep
                // its remaining slots busy.
                state.shrink_window();
                if state.in_flight == 0 || others_usable {
                    state.busy_until = Some(now + state.busy_backoff(jitter));
                }
                self.queue.push_back(unit);
            }
            Outcome::Failed(_) => {
                state.failures += 1;
                state.failed_at = Some(now);
                if state.failures >= MAX_PEER_FAILURES {
                    self.order.retain(|p| *p != peer);
                }
                self.queue.push_front(unit);
            }
        }
    }
}
