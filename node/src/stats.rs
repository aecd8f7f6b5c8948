//! Transfer statistics of a node: bytes served and fetched, per peer and in total.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters shared by the server and the fetcher.
#[derive(Debug, Default)]
pub struct Stats {
    served: Mutex<BTreeMap<String, u64>>,
    fetched: Mutex<BTreeMap<String, u64>>,
    /// Chunks served to peers.
    pub chunks_served: AtomicU64,
    /// Chunks fetched and verified.
    pub chunks_fetched: AtomicU64,
    /// Chunks that failed verification.
    pub chunks_rejected: AtomicU64,
    /// Gossiped manifests accepted.
    pub gossip_accepted: AtomicU64,
    /// Gossiped manifests rejected as invalid.
    pub gossip_rejected: AtomicU64,
    /// Gossiped manifests ignored (valid but not trusted here).
    pub gossip_ignored: AtomicU64,
    /// Chunk bytes fetched over the bulk channel (also counted in `fetched`).
    pub bulk_fetched: AtomicU64,
    /// Chunk bytes served over the bulk channel (also counted in `served`).
    pub bulk_served: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StatsSnapshot {
    /// Bytes served, per peer id.
    pub served: BTreeMap<String, u64>,
    /// Bytes fetched, per peer id.
    pub fetched: BTreeMap<String, u64>,
    /// Chunks served.
    pub chunks_served: u64,
    /// Chunks fetched.
    pub chunks_fetched: u64,
    /// Chunks rejected.
    pub chunks_rejected: u64,
    /// Gossip accepted.
    pub gossip_accepted: u64,
    /// Gossip rejected.
    pub gossip_rejected: u64,
    /// Gossip ignored.
    pub gossip_ignored: u64,
    /// Chunk bytes fetched over the bulk channel.
    pub bulk_fetched: u64,
    /// Chunk bytes served over the bulk channel.
    pub bulk_served: u64,
}

fn add(map: &Mutex<BTreeMap<String, u64>>, peer: &str, bytes: u64) {
    if let Ok(mut m) = map.lock() {
        *m.entry(peer.to_owned()).or_default() += bytes;
    }
}

impl Stats {
    /// Records bytes served to `peer`.
    pub fn served(&self, peer: &str, bytes: u64, chunks: u64) {
        add(&self.served, peer, bytes);
        self.chunks_served.fetch_add(chunks, Ordering::Relaxed);
    }

    /// Records bytes fetched from `peer`.
    pub fn fetched(&self, peer: &str, bytes: u64, chunks: u64) {
        add(&self.fetched, peer, bytes);
        self.chunks_fetched.fetch_add(chunks, Ordering::Relaxed);
    }

    /// A copy of everything.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            served: self.served.lock().map(|m| m.clone()).unwrap_or_default(),
            fetched: self.fetched.lock().map(|m| m.clone()).unwrap_or_default(),
            chunks_served: self.chunks_served.load(Ordering::Relaxed),
            chunks_fetched: self.chunks_fetched.load(Ordering::Relaxed),
            chunks_rejected: self.chunks_rejected.load(Ordering::Relaxed),
            gossip_accepted: self.gossip_accepted.load(Ordering::Relaxed),
            gossip_rejected: self.gossip_rejected.load(Ordering::Relaxed),
            gossip_ignored: self.gossip_ignored.load(Ordering::Relaxed),
            bulk_fetched: self.bulk_fetched.load(Ordering::Relaxed),
            bulk_served: self.bulk_served.load(Ordering::Relaxed),
        }
    }
}
