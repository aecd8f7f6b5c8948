//! Upload slots shared by libp2p and the bulk channel, handed out fairly between peers.
//!
//! As BitTorrent's unchoke slots: beyond them chunk requests get `Busy`, so fetchers spread over
//! other holders instead of all queueing at the publisher. A peer alone may use every slot; once
//! other peers hold slots or were refused one in the last [`WANT_WINDOW`], each peer may hold
//! at most its share (slots ÷ those peers, rounded up), so one peer that pipelines many large
//! requests cannot keep the others out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::PeerId;
use tokio::time::Instant;

/// How long a refused peer counts as wanting a slot.
pub const WANT_WINDOW: Duration = Duration::from_secs(10);

/// Chunk requests that may wait for a slot at once, per slot: a short queue, so that a slot
/// that frees is taken by a request already here instead of idling for a round trip and a
/// fetcher's back-off (BitTorrent's request pipelining). Beyond it, `Busy`.
pub const QUEUED_PER_SLOT: usize = 1;
/// How long a queued chunk request waits for a slot before it is answered `Busy`.
pub const QUEUE_WAIT: Duration = Duration::from_millis(1_000);

/// The node's upload slots.
#[derive(Debug)]
pub struct UploadSlots {
    total: usize,
    state: Mutex<State>,
    /// Signalled whenever a slot is given back.
    released: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct State {
    held: HashMap<PeerId, usize>,
    in_use: usize,
    wanting: HashMap<PeerId, Instant>,
    /// Peers with a request waiting for a slot (one each).
    queued: std::collections::HashSet<PeerId>,
}

/// One slot, given back when dropped.
#[derive(Debug)]
pub struct UploadSlot {
    slots: Arc<UploadSlots>,
    peer: PeerId,
}

impl UploadSlots {
    /// `total` slots (at least one).
    pub fn new(total: usize) -> Arc<UploadSlots> {
        Arc::new(UploadSlots {
            total: total.max(1),
            state: Mutex::new(State::default()),
            released: tokio::sync::Notify::new(),
        })
    }

    /// A slot for `peer` now, or, if none is free, after waiting in the short queue for one to
    /// free (at most [`QUEUE_WAIT`]; one waiting request per peer, [`QUEUED_PER_SLOT`] per
    /// slot in all). `None`: answer `Busy`.
    pub async fn acquire_queued(self: &Arc<Self>, peer: PeerId) -> Option<UploadSlot> {
        if let Some(slot) = self.try_acquire(peer) {
            return Some(slot);
        }
        {
            let mut state = self.state.lock().ok()?;
            if state.queued.len() >= self.total * QUEUED_PER_SLOT || !state.queued.insert(peer) {
                return None;
            }
        }
        let _queued = Queued { slots: self, peer };
        let deadline = Instant::now() + QUEUE_WAIT;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(slot) = self.try_acquire(peer) {
                return Some(slot);
            }
            tokio::time::timeout_at(deadline, released).await.ok()?;
        }
    }

    /// A slot for `peer` if one is free and `peer` holds less than its share; otherwise `None`
    /// (and `peer` counts as wanting one for a while).
    pub fn try_acquire(self: &Arc<Self>, peer: PeerId) -> Option<UploadSlot> {
        let mut state = self.state.lock().ok()?;
        let now = Instant::now();
        state.wanting.retain(|_, since| now.duration_since(*since) < WANT_WINDOW);
        let mine = state.held.get(&peer).copied().unwrap_or(0);
        let others = state
            .held
            .keys()
            .chain(state.wanting.keys())
            .filter(|p| **p != peer)
            .collect::<std::collections::HashSet<_>>()
            .len();
        let share = self.total.div_ceil(others + 1);
        if state.in_use < self.total && mine < share {
            state.in_use += 1;
            *state.held.entry(peer).or_default() += 1;
            state.wanting.remove(&peer);
            Some(UploadSlot { slots: self.clone(), peer })
        } else {
            if mine == 0 {
                state.wanting.insert(peer, now);
            }
            None
        }
    }

    /// Slots held now.
    pub fn in_use(&self) -> usize {
        self.state.lock().map(|s| s.in_use).unwrap_or(0)
    }

    fn release(&self, peer: &PeerId) {
        if let Ok(mut state) = self.state.lock() {
            state.in_use = state.in_use.saturating_sub(1);
            if let Some(n) = state.held.get_mut(peer) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    state.held.remove(peer);
                }
            }
        }
        // Every queued request tries again (at most a few): the fair share decides who gets it.
        self.released.notify_waiters();
    }
}

/// A request's place in the queue; left when dropped.
struct Queued<'a> {
    slots: &'a UploadSlots,
    peer: PeerId,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.slots.state.lock() {
            state.queued.remove(&self.peer);
        }
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        self.slots.release(&self.peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_chunk_request_waits_briefly_for_a_slot_in_a_short_queue() {
        let slots = UploadSlots::new(1);
        let (a, c, d) = (PeerId::random(), PeerId::random(), PeerId::random());
        let held = slots.try_acquire(a).unwrap();
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire_queued(c).await }
        });
        tokio::task::yield_now().await;
        assert!(slots.acquire_queued(d).await.is_none(), "one slot, one place in the queue");
        assert!(!waiting.is_finished());
        drop(held);
        let got = waiting.await.unwrap();
        assert!(got.is_some(), "the freed slot goes to the request waiting for it");
        // Nothing frees within the wait: Busy after QUEUE_WAIT, and the queue is free again.
        let started = Instant::now();
        assert!(slots.acquire_queued(d).await.is_none());
        assert_eq!(started.elapsed(), QUEUE_WAIT);
        drop(got);
        assert!(slots.acquire_queued(d).await.is_some());
    }

    #[test]
    fn bulk_upload_slots_are_shared_fairly() {
        let slots = UploadSlots::new(4);
        let (greedy, other, third) = (PeerId::random(), PeerId::random(), PeerId::random());
        // Alone, a peer may use every slot.
        let mut held: Vec<UploadSlot> = (0..4).filter_map(|_| slots.try_acquire(greedy)).collect();
        assert_eq!(held.len(), 4);
        // Another peer is refused (none free) and from then on counts as wanting one.
        assert!(slots.try_acquire(other).is_none());
        // The greedy peer gets no slot back above its share (4 / 2) while the other waits.
        held.truncate(1);
        assert!(slots.try_acquire(greedy).is_some_and(|s| {
            held.push(s);
            true
        }));
        assert!(slots.try_acquire(greedy).is_none(), "a peer took more than its share");
        let mine: Vec<UploadSlot> = (0..2).filter_map(|_| slots.try_acquire(other)).collect();
        assert_eq!(mine.len(), 2);
        // A third peer: shares of ceil(4 / 3) = 2; all slots are in use.
        assert!(slots.try_acquire(third).is_none());
        assert_eq!(slots.in_use(), 4);
        drop(mine);
        drop(held);
        assert_eq!(slots.in_use(), 0);
    }
}
