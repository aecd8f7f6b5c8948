//! The bulk data channel: chunk requests on a second TCP connection per peer, running TLS 1.3
//! with both nodes' libp2p identities as certificates (rules and framing in
//! `lien_protocol::bulk`). The libp2p connection stays the control plane: discovery, manifests,
//! `Have`, catalog and the channel offer itself; only `Chunks` requests take the bulk channel.
//!
//! A fetcher asks a peer where it offers the channel the first time it wants chunks from it; a
//! peer that has no
//! bulk channel (an older node, `bulk_transfer = false`, a private network, a transport without
//! IP addresses) or whose port cannot be reached is asked again only after a pause, and in the
//! meantime every request goes over libp2p as before. Nothing about a fetch depends on which
//! path carried the bytes: they are verified against the chunk list either way, and the server
//! applies the same access checks, upload slots and audit log to both.

mod client;
pub mod frames;
mod server;
pub mod slots;
#[cfg(test)]
mod tests;
pub mod tls;

pub(crate) use client::BulkClients;
pub use client::{connect, BulkStream};
pub(crate) use server::{accept_loop, BulkServer, HANDOFF_QUEUE};
pub use server::{HANDSHAKE_TIMEOUT, MAX_CONNECTIONS, MAX_PER_PEER, STALL_TIMEOUT};

/// Receive buffers reused from frame to frame. A fresh 1 MiB buffer per chunk response is
/// memory the allocator has just returned to the kernel (and, on a VM, the kernel to the host):
/// receiving into it page-faults all the way down. Reused buffers stay mapped and warm.
#[derive(Debug, Default)]
pub struct BufferPool {
    free: std::sync::Mutex<Vec<Vec<u8>>>,
}

/// Buffers kept in a pool.
const POOL_BUFFERS: usize = 16;
/// Buffers above this capacity are not kept (a response is at most one 16 MiB payload).
const POOL_MAX_CAPACITY: usize = lien_protocol::bulk::MAX_FRAME_LEN;

impl BufferPool {
    /// A buffer of `len` bytes to be filled by the caller, reused when one is free (its old
    /// contents are not cleared).
    pub(crate) fn take(&self, len: usize) -> Vec<u8> {
        let mut buf = self.free.lock().ok().and_then(|mut free| free.pop()).unwrap_or_default();
        // Old bytes may stay: the caller overwrites all `len` of them (read_exact) before use.
        if buf.len() >= len {
            buf.truncate(len);
        } else {
            buf.resize(len, 0);
        }
        buf
    }

    /// Returns a buffer for reuse.
    pub(crate) fn give(&self, buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > POOL_MAX_CAPACITY {
            return;
        }
        if let Ok(mut free) = self.free.lock() {
            if free.len() < POOL_BUFFERS {
                free.push(buf);
            }
        }
    }
}
