//! One request of the download: a peer's `Have` (when the scheduler asks for it), then a unit's
//! chunks, verified and written inside the request's task so that verification and disk writes
//! of one response overlap with the transfers of others.

use std::fs::File;
use std::sync::Arc;

use libp2p::PeerId;
use lien_protocol::wire::{ErrorCode, Request, Response};
use lien_protocol::{ChunkList, FileEntry};

use super::schedule::{Outcome, Unit, WatchAnswer};
use super::write::verify_and_write;
use super::Fetcher;
use crate::chunks::bit;

/// Where a unit's verified bytes go.
pub(crate) struct WriteTarget {
    /// The file's chunk list.
    pub(crate) list: Option<Arc<ChunkList>>,
    /// The open partial file.
    pub(crate) file: Option<Arc<File>>,
    /// The file.
    pub(crate) entry: FileEntry,
}

/// Sends a `Have` (when the peer's holdings are unknown or stale), then a `Chunks` request, and
/// verifies and writes what arrives.
pub(crate) async fn request_unit(
    fetcher: Arc<Fetcher>,
    peer: PeerId,
    unit: Unit,
    target: WriteTarget,
    ask_have: bool,
) -> (PeerId, Unit, Outcome) {
    let file = target.entry.id;
    let mut have = None;
    if ask_have {
        match fetcher.net.request(peer, Request::Have { file }).await {
            Ok(r) => match r.header {
                Response::Have { count, bitmap } => {
                    let expected = target.entry.chunk_size.count(target.entry.size);
                    if let Err(reason) = check_have(count, &bitmap, expected) {
                        return (peer, unit, Outcome::Misfit(reason));
                    }
                    if !unit.chunks().all(|i| bit(&bitmap, i)) {
                        return (peer, unit, Outcome::NotHeld(bitmap));
                    }
                    have = Some(bitmap);
                }
                Response::Error { code: ErrorCode::Busy, .. } => return (peer, unit, Outcome::Busy),
                Response::Error { code: ErrorCode::Forbidden, .. } => return (peer, unit, Outcome::Forbidden),
                Response::Error { .. } => return (peer, unit, Outcome::NotHeld(Vec::new())),
                other => return (peer, unit, Outcome::Failed(format!("unexpected answer {other:?}"))),
            },
            Err(e) => return (peer, unit, Outcome::Failed(e.to_string())),
        }
    }
    let request = Request::Chunks { file, first: unit.first, count: unit.count };
    let outcome = match fetcher.bulk.request_chunks(peer, request).await {
        Ok(r) => match r.header {
            Response::Chunks { first, count, len }
                if first == unit.first && count == unit.count && len == r.payload.len() as u64 =>
            {
                let payload = r.payload;
                let written = tokio::task::spawn_blocking(move || {
                    let result =
                        verify_and_write(target.list.as_deref(), target.file.as_deref(), &target.entry, unit, &payload);
                    (result, payload)
                })
                .await
                .map(|(result, payload)| {
                    fetcher.bulk.pool.give(payload);
                    result
                });
                match written {
                    Ok(Ok(true)) => Outcome::Written(len, have),
                    Ok(Ok(false)) => Outcome::Corrupt(have),
                    Ok(Err(e)) => Outcome::Failed(format!("cannot write: {e}")),
                    Err(e) => Outcome::Failed(format!("write task failed: {e}")),
                }
            }
            Response::Error { code: ErrorCode::Busy, .. } => Outcome::Busy,
            Response::Error { code: ErrorCode::Forbidden, .. } => Outcome::Forbidden,
            Response::Error { code: ErrorCode::NotFound, .. } => Outcome::NotHeld(have.unwrap_or_default()),
            other => Outcome::Failed(format!("unexpected answer {other:?}")),
        },
        Err(e) => Outcome::Failed(e.to_string()),
    };
    (peer, unit, outcome)
}

/// How long a `Watch` asks the peer to wait for a change before answering anyway.
const WATCH_WAIT_MS: u32 = 5_000;

/// Watches `peer`'s holdings of `entry` (the fetch's file `index`), of which we last saw
/// `known` chunks: answers when the peer gains chunks, or after [`WATCH_WAIT_MS`].
pub(crate) async fn watch_peer(
    fetcher: Arc<Fetcher>,
    peer: PeerId,
    index: usize,
    entry: FileEntry,
    known: u64,
) -> (PeerId, usize, WatchAnswer) {
    let request = Request::Watch { file: entry.id, known, wait_ms: WATCH_WAIT_MS };
    let answer = match fetcher.net.request(peer, request).await {
        Ok(r) => match r.header {
            Response::Have { count, bitmap } => {
                let expected = entry.chunk_size.count(entry.size);
                match check_have(count, &bitmap, expected) {
                    Ok(()) => WatchAnswer::Have(bitmap),
                    Err(_) => WatchAnswer::Misfit,
                }
            }
            // An older node does not know the request (an unknown variant is a bad request).
            Response::Error { code: ErrorCode::BadRequest, .. } => WatchAnswer::Unsupported,
            _ => WatchAnswer::Paused,
        },
        Err(_) => WatchAnswer::Paused,
    };
    (peer, index, answer)
}

/// Checks a peer's `Have` answer against the file's chunk count: a bitmap for another count
/// (too short or too long) is the peer's error, never read as if it were about our chunks.
fn check_have(count: u64, bitmap: &[u8], expected: u64) -> Result<(), String> {
    if count != expected {
        return Err(format!("its Have counts {count} chunks, the file has {expected}"));
    }
    if bitmap.len() as u64 != expected.div_ceil(8) {
        return Err(format!("its Have bitmap has {} bytes for {expected} chunks", bitmap.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_have_that_does_not_fit_the_file_is_the_peers_error() {
        assert_eq!(check_have(10, &[0xff, 0x03], 10), Ok(()));
        assert!(check_have(5, &[0x1f], 10).is_err(), "too short: the file cut into other chunks");
        assert!(check_have(20, &[0xff, 0xff, 0x0f], 10).is_err(), "too long");
        assert!(check_have(10, &[0xff], 10).is_err(), "bitmap too short for its count");
        assert!(check_have(10, &[0xff, 0x03, 0], 10).is_err(), "bitmap too long for its count");
        assert!(check_have(0, &[], 0).is_ok());
    }
}
