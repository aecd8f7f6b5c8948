//! Locating what a fetch needs before any chunk: providers (the DHT's and the connected peers),
//! the manifest (from the catalog or a provider, checked against its id and the trust policy),
//! the file list and the chunk lists of multi-chunk files (each checked against its file id).

use std::time::Duration;

use libp2p::PeerId;
use lien_protocol::manifest::FileList;
use lien_protocol::wire::{ErrorCode, Request, Response};
use lien_protocol::{ChunkList, ContentId, FileEntry, Manifest};
use tokio::time::Instant;

use super::FetchError;
use super::Fetcher;
use crate::chunks::chunk_list_key;
use crate::network::NetworkHandle;

/// Candidate providers of `key`: the DHT's answer plus every connected peer.
pub(crate) async fn discover(net: &NetworkHandle, key: ContentId, wait: Duration) -> Vec<PeerId> {
    let mut out = Vec::new();
    if let Ok(Ok(found)) = tokio::time::timeout(wait, net.find_providers(key)).await {
        out.extend(found);
    }
    if let Ok(peers) = net.peers().await {
        for p in peers {
            if let Ok(id) = p.peer_id.parse::<PeerId>() {
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
    }
    out.retain(|p| *p != net.peer_id());
    out
}

/// Asks candidates in turn until one answers `request` with something `accept` takes.
async fn ask_any<T>(
    net: &NetworkHandle,
    key: ContentId,
    what: &'static str,
    request: Request,
    deadline: Instant,
    accept: impl Fn(Response) -> Option<T>,
) -> Result<T, FetchError> {
    let start = Instant::now();
    let mut forbidden = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        for peer in discover(net, key, left.min(Duration::from_secs(10))).await {
            if let Ok(r) = net.request(peer, request.clone()).await {
                if let Response::Error { code: ErrorCode::Forbidden, .. } = r.header {
                    forbidden = true;
                    continue;
                }
                if let Some(v) = accept(r.header) {
                    return Ok(v);
                }
            }
        }
        if forbidden {
            return Err(FetchError::Forbidden { id: key });
        }
        if Instant::now() >= deadline {
            return Err(FetchError::NoProviders { what, id: key, secs: start.elapsed().as_secs() });
        }
        tokio::time::sleep(Duration::from_millis(300).min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

/// The manifest `id`: from the catalog, or from a provider (checked against the id, then stored
/// if trusted); refused unless this node trusts its publisher.
pub(crate) async fn manifest(fetcher: &Fetcher, id: ContentId, deadline: Instant) -> Result<Manifest, FetchError> {
    let manifest = match fetcher.store.manifest(&id)? {
        Some(m) => m,
        None => {
            let m = ask_any(&fetcher.net, id, "manifest", Request::Manifest { id }, deadline, |r| match r {
                Response::Manifest { bytes } if ContentId::of(&bytes) == id => Manifest::decode(&bytes).ok(),
                _ => None,
            })
            .await?;
            if let Err(e) = fetcher.trust.check_manifest(&m) {
                return Err(FetchError::Untrusted { id, reason: e.to_string() });
            }
            fetcher.store.put_manifest(&m)?;
            m
        }
    };
    if let Err(e) = fetcher.trust.check_manifest(&manifest) {
        return Err(FetchError::Untrusted { id, reason: e.to_string() });
    }
    Ok(manifest)
}

/// The files of `manifest` (id `id`): inline, or its file-list blob from the store or a provider
/// (checked against the blob's id, then stored).
pub(crate) async fn file_list(
    fetcher: &Fetcher,
    id: ContentId,
    manifest: &Manifest,
    deadline: Instant,
) -> Result<Vec<FileEntry>, FetchError> {
    Ok(match &manifest.body().files {
        FileList::Inline(files) => files.clone(),
        FileList::Blob(r) => {
            let r = *r;
            match fetcher.store.blob(&r.id)? {
                Some(bytes) => FileList::decode_blob(&r, &bytes).map_err(|e| FetchError::Invalid(e.to_string()))?,
                None => {
                    let (files, bytes) =
                        ask_any(&fetcher.net, id, "file list", Request::FileList { id: r.id }, deadline, |resp| {
                            match resp {
                                Response::FileList { bytes } => {
                                    FileList::decode_blob(&r, &bytes).ok().map(|f| (f, bytes))
                                }
                                _ => None,
                            }
                        })
                        .await?;
                    fetcher.store.put_blob(&r.id, &bytes)?;
                    files
                }
            }
        }
    })
}

/// Makes sure the chunk list of every multi-chunk file of `entries` is stored, asking the
/// providers of dataset `id` for those missing (each checked against its file id).
pub(crate) async fn chunk_lists(
    fetcher: &Fetcher,
    id: ContentId,
    entries: &[FileEntry],
    deadline: Instant,
) -> Result<(), FetchError> {
    for e in entries {
        if e.chunk_size.count(e.size) > 1 && fetcher.store.blob(&chunk_list_key(&e.id))?.is_none() {
            let (size, cs, fid) = (e.size, e.chunk_size, e.id);
            let bytes =
                ask_any(&fetcher.net, id, "chunk list", Request::ChunkList { file: fid }, deadline, |r| match r {
                    Response::ChunkList { bytes } if ChunkList::from_bytes(fid, size, cs, &bytes).is_ok() => {
                        Some(bytes)
                    }
                    _ => None,
                })
                .await?;
            fetcher.store.put_blob(&chunk_list_key(&fid), &bytes)?;
        }
    }
    Ok(())
}
