//! Pushed availability, the serving side: a `Watch` request (a long poll) is answered with the
//! file's `Have` as soon as this node holds a number of its chunks other than the one the
//! fetcher last saw, or holds it whole, else when the wait asked for runs out. A fetcher keeps
//! one outstanding per partial holder, so it hears of each chunk a peer gains within one trip
//! instead of polling `Have` (BitTorrent's have-messages; iroh-blobs' observe).
//!
//! Waiting requests hold no upload slot and no inbound-request permit: they are idle. They are
//! bounded apart ([`WatchSlots`]): at most [`MAX_WATCHES`] in all and [`MAX_WATCHES_PER_PEER`]
//! per peer; beyond, `Busy`, and the fetcher polls instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::PeerId;
use lien_protocol::wire::{ErrorCode, Response, MAX_WATCH_WAIT_MS};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::network::TransferResponse;

/// Most `Watch` requests waiting at once on a node.
pub const MAX_WATCHES: usize = 4096;
/// Most `Watch` requests one peer may have waiting at once.
pub const MAX_WATCHES_PER_PEER: usize = 64;

/// The bound on waiting `Watch` requests, in all and per peer.
#[derive(Debug, Default)]
pub struct WatchSlots {
    /// Waiting requests by peer.
    by_peer: Mutex<HashMap<PeerId, usize>>,
}

/// A waiting `Watch` request's place; freed when dropped.
#[derive(Debug)]
pub struct WatchSlot {
    slots: Arc<WatchSlots>,
    peer: PeerId,
}

impl WatchSlots {
    /// A slot for one more waiting request from `peer`, if the bounds allow it.
    pub fn try_acquire(self: &Arc<Self>, peer: PeerId) -> Option<WatchSlot> {
        let mut by_peer = self.by_peer.lock().ok()?;
        let total: usize = by_peer.values().sum();
        let mine = by_peer.get(&peer).copied().unwrap_or(0);
        if total >= MAX_WATCHES || mine >= MAX_WATCHES_PER_PEER {
            return None;
        }
        *by_peer.entry(peer).or_default() += 1;
        Some(WatchSlot { slots: self.clone(), peer })
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.by_peer.lock().map(|m| m.values().sum()).unwrap_or(0)
    }
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        if let Ok(mut by_peer) = self.slots.by_peer.lock() {
            if let Some(n) = by_peer.get_mut(&self.peer) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    by_peer.remove(&self.peer);
                }
            }
        }
    }
}

/// Chunks a `Have` answer lists, or `None` for any other answer (a refusal, an error).
fn held(response: &TransferResponse) -> Option<(u64, u64)> {
    match &response.header {
        Response::Have { count, bitmap } => {
            let held = crate::chunks::count_held(bitmap);
            Some((held, *count))
        }
        _ => None,
    }
}

/// Whether `response` says the file is not held here.
fn not_found(response: &TransferResponse) -> bool {
    matches!(&response.header, Response::Error { code: ErrorCode::NotFound, .. })
}

/// Answers a `Watch` for a file of which the fetcher last saw `known` chunks: `have` computes
/// the current `Have` answer (with every access check; it blocks, so it runs off the async
/// threads), `gains` changes whenever the file gains chunks here. Returns at once when the
/// answer is not a `Have`, lists another number of chunks, or lists them all; else when the
/// file gains chunks; else after `wait_ms` (capped at [`MAX_WATCH_WAIT_MS`]).
pub async fn answer_watch<F>(have: F, gains: Option<watch::Receiver<()>>, known: u64, wait_ms: u32) -> TransferResponse
where
    F: Fn() -> TransferResponse + Send + Sync + 'static,
{
    let have = Arc::new(have);
    let deadline = Instant::now() + Duration::from_millis(u64::from(wait_ms.min(MAX_WATCH_WAIT_MS)));
    // Subscribed before the first look, so a gain between the look and the wait is not missed.
    let mut gains = gains;
    loop {
        let look = have.clone();
        let response = match tokio::task::spawn_blocking(move || look()).await {
            Ok(r) => r,
            Err(_) => return TransferResponse::plain(Response::error(ErrorCode::Internal, "internal error")),
        };
        let changed = match held(&response) {
            // Not held here at all (yet): to a fetcher that saw nothing, nothing changed; it
            // hears as soon as this node starts fetching the file and verifies a chunk.
            None => !(known == 0 && not_found(&response)),
            Some((held, count)) => held != known || held == count,
        };
        let Some(rx) = gains.as_mut().filter(|_| !changed) else { return response };
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            // Out of time, or the store forgot the file's waiters: the answer as it stands.
            Ok(Err(_)) | Err(_) => return response,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    fn have_of(held: &AtomicU64) -> TransferResponse {
        let n = held.load(Ordering::SeqCst);
        let bitmap = vec![((1u16 << n) - 1) as u8];
        TransferResponse::plain(Response::Have { count: 8, bitmap })
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_answers_when_the_file_gains_a_chunk_and_not_before() {
        let held = Arc::new(AtomicU64::new(2));
        let (tx, rx) = watch::channel(());
        let h = held.clone();
        let started = Instant::now();
        let waiting = tokio::spawn(answer_watch(move || have_of(&h), Some(rx), 2, 5_000));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "nothing gained yet");
        held.store(3, Ordering::SeqCst);
        tx.send_replace(());
        let answer = waiting.await.unwrap();
        assert_eq!(super::held(&answer), Some((3, 8)));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_answers_at_once_when_the_fetcher_is_behind_or_the_file_is_whole() {
        let held = Arc::new(AtomicU64::new(5));
        let (_tx, rx) = watch::channel(());
        let h = held.clone();
        let answer = answer_watch(move || have_of(&h), Some(rx.clone()), 2, 5_000).await;
        assert_eq!(super::held(&answer), Some((5, 8)), "it holds more than the fetcher saw");
        held.store(8, Ordering::SeqCst);
        let h = held.clone();
        let answer = answer_watch(move || have_of(&h), Some(rx), 8, 5_000).await;
        assert_eq!(super::held(&answer), Some((8, 8)), "a whole file is never waited on");
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_ends_after_its_wait_or_at_once_on_a_refusal() {
        let held = Arc::new(AtomicU64::new(1));
        let (_tx, rx) = watch::channel(());
        let h = held.clone();
        let started = Instant::now();
        let answer = answer_watch(move || have_of(&h), Some(rx), 1, 2_000).await;
        assert_eq!(super::held(&answer), Some((1, 8)));
        assert_eq!(started.elapsed(), Duration::from_millis(2_000));
        let refused = || TransferResponse::plain(Response::error(ErrorCode::Forbidden, "not for you"));
        let started = Instant::now();
        let answer = answer_watch(refused, None, 0, MAX_WATCH_WAIT_MS).await;
        assert!(matches!(answer.header, Response::Error { .. }));
        assert!(started.elapsed() < Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_on_a_node_without_the_file_waits_for_its_first_chunk() {
        let held = Arc::new(AtomicU64::new(0));
        let (tx, rx) = watch::channel(());
        let h = held.clone();
        let look = move || match h.load(Ordering::SeqCst) {
            0 => TransferResponse::plain(Response::error(ErrorCode::NotFound, "no file")),
            _ => have_of(&h),
        };
        let waiting = tokio::spawn(answer_watch(look, Some(rx), 0, 5_000));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "the node has not started on the file");
        held.store(1, Ordering::SeqCst);
        tx.send_replace(());
        assert_eq!(super::held(&waiting.await.unwrap()), Some((1, 8)));
        // To a fetcher that saw chunks there, a file gone is news at once.
        held.store(0, Ordering::SeqCst);
        let h = held.clone();
        let look = move || match h.load(Ordering::SeqCst) {
            0 => TransferResponse::plain(Response::error(ErrorCode::NotFound, "no file")),
            _ => have_of(&h),
        };
        let (_tx, rx) = watch::channel(());
        let started = Instant::now();
        answer_watch(look, Some(rx), 3, 5_000).await;
        assert!(started.elapsed() < Duration::from_millis(10));
    }

    #[test]
    fn watches_are_bounded_per_peer_and_freed_when_dropped() {
        let slots = Arc::new(WatchSlots::default());
        let (a, b) = (PeerId::random(), PeerId::random());
        let held: Vec<_> = (0..MAX_WATCHES_PER_PEER).map_while(|_| slots.try_acquire(a)).collect();
        assert_eq!(held.len(), MAX_WATCHES_PER_PEER);
        assert!(slots.try_acquire(a).is_none(), "one peer cannot take every slot");
        assert!(slots.try_acquire(b).is_some(), "another peer still can");
        drop(held);
        assert_eq!(slots.waiting(), 0);
        assert!(slots.try_acquire(a).is_some());
    }
}
