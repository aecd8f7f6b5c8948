//! Catching up with peers: pulling their trust records and catalogs, which holds what gossip
//! delivered while this node was away or cut off.
//!
//! A node used to pull from every peer it connected to. Kademlia's lookups connect a node to
//! dozens or hundreds of peers for a few seconds each (at start-up, nearly every peer of a
//! network of a few hundred), so that was one full catalog pull per peer met: start-up cost
//! grew with peers × catalog size, and every new connection cost four request round trips.
//! Now new peers wait in a queue, and at most [`PEERS_PER_WINDOW`] are caught up with per
//! [`WINDOW`], in the order they were met, skipping those no longer connected (a skipped peer
//! uses none of the budget: after the start-up, most queued peers are gone). A node that
//! starts, or comes back after a partition, catches up from the first peers it meets (its
//! bootstrap and remembered peers, or the first across the healed cut) within moments.
//!
//! The queue and the pulls belong to the node's catalog part (`catalog::keeper`), which keeps
//! what they bring.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::PeerId;
use lien_protocol::manifest::Manifest;
use lien_protocol::wire::{Request, Response, MAX_CATALOG_PAGE};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::catalog::keeper::CatalogKeeper;

/// Peers caught up with per [`WINDOW`].
pub(crate) const PEERS_PER_WINDOW: usize = 8;
/// The window of [`PEERS_PER_WINDOW`].
pub(crate) const WINDOW: Duration = Duration::from_secs(30);
/// Most pages pulled from one peer (trust records, then catalog).
const MAX_PAGES: u64 = 4096;
/// Most peers waiting; beyond it the oldest are dropped (they were met long ago).
const MAX_QUEUED: usize = 4096;

/// The queue of peers to catch up with, and the record of recent catch-ups that bounds them.
#[derive(Debug, Default)]
pub(crate) struct CatchUpQueue {
    state: Mutex<State>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct State {
    waiting: VecDeque<PeerId>,
    queued: HashSet<PeerId>,
    /// When the catch-ups of the current window started.
    started: VecDeque<Instant>,
}

impl CatchUpQueue {
    /// Queues a newly connected peer (once, however often it is offered while waiting).
    pub(crate) fn offer(&self, peer: PeerId) {
        let Ok(mut s) = self.state.lock() else { return };
        if s.queued.insert(peer) {
            s.waiting.push_back(peer);
            while s.waiting.len() > MAX_QUEUED {
                if let Some(old) = s.waiting.pop_front() {
                    s.queued.remove(&old);
                }
            }
        }
        drop(s);
        self.ready.notify_one();
    }

    /// Gives back the place [`CatchUpQueue::next`] took for a peer that was not caught up with
    /// (no longer connected), so gone peers do not hold up the ones still there.
    pub(crate) fn refund(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.started.pop_back();
        }
    }

    /// The next peer to catch up with: waits for one to be queued and for a place in the window.
    pub(crate) async fn next(&self) -> PeerId {
        loop {
            let wait_until = {
                let Ok(mut s) = self.state.lock() else {
                    // A poisoned lock: nothing more will be queued; wait forever.
                    return std::future::pending().await;
                };
                let now = Instant::now();
                while s.started.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                    s.started.pop_front();
                }
                if s.waiting.is_empty() {
                    None
                } else if s.started.len() < PEERS_PER_WINDOW {
                    if let Some(peer) = s.waiting.pop_front() {
                        s.queued.remove(&peer);
                        s.started.push_back(now);
                        return peer;
                    }
                    None
                } else {
                    s.started.front().map(|t| *t + WINDOW)
                }
            };
            match wait_until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => self.ready.notified().await,
            }
        }
    }
}

/// Catches up with the peers queued in `keeper` for as long as the node runs, each in a task of
/// its own.
pub(crate) async fn run(keeper: Arc<CatalogKeeper>) {
    loop {
        let peer = keeper.catch_up.next().await;
        match keeper.net.peer_addrs(peer).await {
            Ok(addrs) if !addrs.is_empty() => {
                keeper.tasks.spawn(catch_up_with(keeper.clone(), peer));
            }
            Ok(_) => {
                tracing::debug!(%peer, "not catching up: no longer connected");
                keeper.catch_up.refund();
            }
            Err(_) => return,
        }
    }
}

/// Catches up with one peer: its trust records first (so delegations are known before the
/// manifests they vouch for), then its catalog.
pub(crate) async fn catch_up_with(keeper: Arc<CatalogKeeper>, peer: PeerId) {
    pull_trust(&keeper, peer).await;
    pull_catalog(keeper, peer).await;
}

/// Pulls a peer's trust records page by page, keeping every valid one.
async fn pull_trust(keeper: &Arc<CatalogKeeper>, peer: PeerId) {
    let mut after = 0;
    for _ in 0..MAX_PAGES {
        let Ok(r) = keeper.net.request(peer, Request::TrustRecords { after, limit: MAX_CATALOG_PAGE }).await else {
            return;
        };
        let Response::TrustRecords { records, next, more } = r.header else { return };
        let keeping = keeper.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for bytes in records {
                if let Err(e) = keeping.keep_trust_record(&bytes) {
                    tracing::info!(%peer, "peer holds an invalid trust record: {e}");
                }
            }
        })
        .await;
        if !more || next <= after {
            return;
        }
        after = next;
    }
}

/// Pulls a peer's catalog page by page, keeping every valid, trusted manifest.
async fn pull_catalog(keeper: Arc<CatalogKeeper>, peer: PeerId) {
    let mut after = 0;
    for _ in 0..MAX_PAGES {
        let response = match keeper.net.request(peer, Request::Catalog { after, limit: MAX_CATALOG_PAGE }).await {
            Ok(r) => r.header,
            Err(e) => {
                tracing::debug!(%peer, "catalog sync stopped: {e}");
                return;
            }
        };
        let Response::Catalog { manifests, next, more } = response else { return };
        let keeping = keeper.clone();
        let stored = tokio::task::spawn_blocking(move || {
            let mut new = Vec::new();
            for bytes in manifests {
                match Manifest::decode(&bytes) {
                    Ok(m) => {
                        if keeping.keep_manifest(&m) {
                            new.push(m);
                        }
                    }
                    Err(e) => tracing::info!(%peer, "peer's catalog holds an invalid manifest: {e}"),
                }
            }
            new
        })
        .await;
        let Ok(new) = stored else { return };
        for m in &new {
            keeper.maybe_mirror(m);
        }
        if !more || next <= after {
            return;
        }
        after = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn peers_are_caught_up_with_in_order_at_most_eight_per_window() {
        let q = CatchUpQueue::default();
        let peers: Vec<PeerId> = (0..20).map(|_| PeerId::random()).collect();
        for p in &peers {
            q.offer(*p);
        }
        q.offer(peers[0]);
        let start = Instant::now();
        for p in &peers[..PEERS_PER_WINDOW] {
            assert_eq!(q.next().await, *p, "in the order met");
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the first eight at once");
        assert_eq!(q.next().await, peers[PEERS_PER_WINDOW]);
        assert_eq!(start.elapsed(), WINDOW, "the ninth when the window has passed");
        // Offered twice while waiting: caught up with once.
        let mut rest = Vec::new();
        for _ in PEERS_PER_WINDOW + 1..peers.len() {
            rest.push(q.next().await);
        }
        assert_eq!(rest, peers[PEERS_PER_WINDOW + 1..]);
        let more = tokio::time::timeout(Duration::from_secs(600), q.next()).await;
        assert!(more.is_err(), "nothing queued twice");
    }

    #[tokio::test(start_paused = true)]
    async fn a_place_given_back_is_used_at_once() {
        let q = CatchUpQueue::default();
        let peers: Vec<PeerId> = (0..PEERS_PER_WINDOW + 1).map(|_| PeerId::random()).collect();
        for p in &peers {
            q.offer(*p);
        }
        let start = Instant::now();
        for _ in 0..PEERS_PER_WINDOW {
            q.next().await;
        }
        q.refund();
        assert_eq!(q.next().await, peers[PEERS_PER_WINDOW]);
        assert_eq!(start.elapsed(), Duration::ZERO, "a gone peer's place went to the next one");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_catch_up_wakes_when_a_peer_is_offered() {
        let q = Arc::new(CatchUpQueue::default());
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.next().await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        let p = PeerId::random();
        q.offer(p);
        let got = tokio::time::timeout(Duration::from_millis(1), waiter).await;
        assert!(matches!(got, Ok(Ok(x)) if x == p), "woken by the offer");
    }
}
