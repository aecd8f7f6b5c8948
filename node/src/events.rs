//! What a node does with what the network brings: validating DHT name records, dispatching
//! inbound requests and gossip (`dispatch`), keeping and mirroring gossiped manifests, and
//! staying connected after partitions (`keep_connected`). `Node::start` spawns these.

use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use lien_protocol::name::NameRecord;
use lien_protocol::wire::{Request, Response};
use lien_protocol::Manifest;
use tokio::sync::mpsc;

use crate::fetch::FetchOptions;
use crate::network::{self, Command, NetEvent, TransferResponse};
use crate::node::{tcp_port_of, Inner, MAX_REDIALS, REDIAL_TIMEOUT};

/// A DHT record is accepted only if it is a valid name record stored under its own key, with a
/// higher version than the record already held (a replayed old record cannot roll a name back).
pub(crate) fn validate_name_record(key: &[u8], value: &[u8], existing: Option<&[u8]>) -> bool {
    let Ok(r) = NameRecord::decode(value) else { return false };
    if r.key().to_multihash_bytes() != key {
        return false;
    }
    match existing.and_then(|e| NameRecord::decode(e).ok()) {
        Some(old) => r.body.version > old.body.version,
        None => true,
    }
}

/// Handles the network task's events until it stops. It never awaits the network task (whose bounded sends of
/// events may be waiting on this loop): everything that talks back runs in a task of its own.
pub(crate) async fn dispatch(inner: Arc<Inner>, mut events: mpsc::Receiver<NetEvent>) {
    let inbound = inner.inbound.clone();
    while let Some(event) = events.recv().await {
        match event {
            NetEvent::Manifest { bytes, source } => {
                let task_inner = inner.clone();
                inner.tasks.spawn_to_end(async move {
                    let inner = task_inner;
                    let keep_inner = inner.clone();
                    let kept = inner
                        .tasks
                        .spawn_blocking(move || match Manifest::decode(&bytes) {
                            Ok(m) => keep_manifest(&keep_inner, &m).then_some(m),
                            Err(e) => {
                                tracing::debug!(%source, "dropping manifest: {e}");
                                None
                            }
                        })
                        .await;
                    if let Ok(Some(m)) = kept {
                        maybe_mirror(&inner, &m);
                    }
                });
            }
            NetEvent::Inbound { peer: _, request: Request::OpenBulk { version }, channel } => {
                // Never await the network task here: it may itself be waiting to hand us an
                // event (both channels are bounded), so the answer is sent from a task.
                let task_inner = inner.clone();
                inner.tasks.spawn_to_end(async move {
                    let inner = task_inner;
                    if let Some(server) = inner.bulk_server.as_ref().filter(|s| s.port() == 0) {
                        // The port the listener got (the config may say /tcp/0) is known once
                        // listening.
                        let addrs = inner.net.listen_addrs().await.unwrap_or_default();
                        if let Some(port) = addrs.iter().find_map(tcp_port_of) {
                            server.set_port(port);
                        }
                    }
                    let response = match &inner.bulk_server {
                        Some(server) if server.port() == 0 => Response::error(
                            lien_protocol::wire::ErrorCode::NotFound,
                            "the bulk channel is not listening yet",
                        ),
                        Some(server) if version == lien_protocol::bulk::VERSION => {
                            Response::BulkPort { port: server.port() }
                        }
                        Some(_) => {
                            Response::error(lien_protocol::wire::ErrorCode::BadRequest, "unsupported bulk version")
                        }
                        None => {
                            Response::error(lien_protocol::wire::ErrorCode::NotFound, "this node has no bulk channel")
                        }
                    };
                    let response = TransferResponse::plain(response);
                    let _ = inner.net.send(Command::Respond { slot: channel, response }).await;
                });
            }
            NetEvent::Inbound { peer, request: Request::Watch { file, known, wait_ms }, channel } => {
                // A long poll: it waits idle, so it takes a watch slot, not an upload slot or an
                // inbound permit (`watch.rs`).
                let net = inner.net.clone();
                let Some(slot) = inner.watches.try_acquire(peer) else {
                    let busy = TransferResponse::plain(Response::error(lien_protocol::wire::ErrorCode::Busy, "busy"));
                    inner.tasks.spawn_to_end(async move {
                        net.send(Command::Respond { slot: channel, response: busy }).await
                    });
                    continue;
                };
                let task_inner = inner.clone();
                // Dropped at its next await when the node stops: a long poll is not waited for.
                inner.tasks.spawn(async move {
                    let inner = task_inner;
                    let gains = inner.store.watch_gains(&file);
                    let look = inner.clone();
                    let have = move || {
                        crate::server::answer(
                            &look.store,
                            &look.stats,
                            &look.audit,
                            &look.trust,
                            &look.seeding,
                            &peer,
                            Request::Have { file },
                            false,
                        )
                    };
                    let response = crate::watch::answer_watch(have, gains, known, wait_ms).await;
                    let _ = net.send(Command::Respond { slot: channel, response }).await;
                    drop(slot);
                });
            }
            NetEvent::Inbound { peer, request, channel } => {
                let net = inner.net.clone();
                let upload = match &request {
                    Request::Chunks { .. } => inner.uploads.try_acquire(peer),
                    _ => None,
                };
                let is_chunks = matches!(request, Request::Chunks { .. });
                let permit = inbound.clone().try_acquire_owned();
                let (Ok(permit), true) = (permit, !is_chunks || upload.is_some()) else {
                    let busy = TransferResponse::plain(Response::error(lien_protocol::wire::ErrorCode::Busy, "busy"));
                    // From a task, as every answer: see the OpenBulk arm.
                    inner.tasks.spawn_to_end(async move {
                        net.send(Command::Respond { slot: channel, response: busy }).await
                    });
                    continue;
                };
                let task_inner = inner.clone();
                inner.tasks.spawn_to_end(async move {
                    let inner = task_inner;
                    let answer_inner = inner.clone();
                    let response = inner
                        .tasks
                        .spawn_blocking(move || {
                            crate::server::answer(
                                &answer_inner.store,
                                &answer_inner.stats,
                                &answer_inner.audit,
                                &answer_inner.trust,
                                &answer_inner.seeding,
                                &peer,
                                request,
                                answer_inner.config.adversary_corrupt_chunks,
                            )
                        })
                        .await
                        .unwrap_or_else(|_| {
                            TransferResponse::plain(Response::error(
                                lien_protocol::wire::ErrorCode::Internal,
                                "internal error",
                            ))
                        });
                    let _ = net.send(Command::Respond { slot: channel, response }).await;
                    drop(permit);
                    drop(upload);
                });
            }
            NetEvent::Connected { peer, addr } => {
                let store = inner.store.clone();
                let shown = addr.clone().with_p2p(peer).map(|a| a.to_string()).unwrap_or_else(|a| a.to_string());
                let peer_text = peer.to_string();
                inner.tasks.spawn_blocking(move || store.remember_peer(&peer_text, &[shown]));
                inner.catch_up.offer(peer);
            }
            NetEvent::NameRecord { .. } => {}
            NetEvent::TrustRecord { bytes } => {
                let (store, trust) = (inner.store.clone(), inner.trust.clone());
                inner.tasks.spawn_blocking(move || {
                    if let Err(e) = trust.accept(&store, &bytes) {
                        tracing::info!("dropping a trust record: {e}");
                    }
                });
            }
        }
    }
}

/// Every `reconnect_secs`, when fewer than `min_peers` peers are connected (after a partition
/// heals, or when every peer went away): redials the bootstrap and explicit peers and the most
/// recently seen remembered peers (at most [`MAX_REDIALS`] addresses, each for at most
/// [`REDIAL_TIMEOUT`]), and refreshes the DHT routing table. A new connection pulls the peer's
/// catalog, so the node catches up on what it missed. Without this, only Kademlia's periodic
/// bootstrap (every 5 minutes) would dial anyone.
pub(crate) async fn keep_connected(inner: Arc<Inner>) {
    let period = Duration::from_secs(inner.config.reconnect_secs.max(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(peers) = inner.net.peers().await else { return };
        if peers.len() >= inner.config.min_peers as usize {
            continue;
        }
        let connected: std::collections::HashSet<PeerId> =
            peers.iter().filter_map(|p| p.peer_id.parse().ok()).collect();
        let store = inner.store.clone();
        let remembered = tokio::task::spawn_blocking(move || store.known_peers(MAX_REDIALS))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let config = &inner.config;
        let mut addrs: Vec<Multiaddr> = Vec::new();
        let candidates = config
            .explicit_peers
            .iter()
            .chain(&config.bootstrap)
            .cloned()
            .chain(remembered.into_iter().flat_map(|(_, a)| a).filter_map(|a| a.parse::<Multiaddr>().ok()));
        for addr in candidates {
            let fresh = network::peer_id_of(&addr).is_some_and(|p| p != inner.net.peer_id() && !connected.contains(&p));
            if fresh && !addrs.contains(&addr) && addrs.len() < MAX_REDIALS {
                addrs.push(addr);
            }
        }
        tracing::debug!(connected = peers.len(), redialling = addrs.len(), "few peers: reconnecting");
        let dials = addrs.into_iter().map(|addr| inner.net.dial(addr, REDIAL_TIMEOUT));
        let _ = inner.net.send(Command::Bootstrap).await;
        futures::future::join_all(dials).await;
    }
}

/// Keeps a verified manifest in the catalog if this node trusts its publisher and the publisher
/// is under its cap; returns true if it was new (blocking: call off the async threads).
pub(crate) fn keep_manifest(inner: &Inner, m: &Manifest) -> bool {
    if let Err(e) = inner.trust.check_manifest(m) {
        tracing::debug!(manifest = %m.id().short(), "not keeping an untrusted manifest: {e}");
        return false;
    }
    match inner.store.put_manifest_capped(m, inner.config.max_manifests_per_publisher) {
        Ok(Some(new)) => new,
        Ok(None) => {
            tracing::warn!(publisher = %m.body().publisher.short(), "publisher is at its catalog cap; manifest dropped");
            false
        }
        Err(e) => {
            tracing::warn!("cannot store manifest: {e}");
            false
        }
    }
}

/// Fetches and pins a new dataset when the mirror policy asks for it.
pub(crate) fn maybe_mirror(inner: &Arc<Inner>, m: &Manifest) {
    if !inner.config.mirrors(m.body()) {
        return;
    }
    let (task_inner, id) = (inner.clone(), m.id());
    inner.tasks.spawn(async move {
        let inner = task_inner;
        let root = inner.config.data_dir().join("mirror").join(id.to_string());
        tracing::info!(manifest = %id.short(), "mirroring a dataset by policy");
        match crate::fetch::fetch(&inner, id, &root, FetchOptions::default()).await {
            Ok(_) => {
                let store = inner.store.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Ok(Some(mut local)) = store.local(&id) {
                        local.pinned = true;
                        let _ = store.put_local(&local);
                    }
                })
                .await;
            }
            Err(e) => tracing::warn!(manifest = %id.short(), "mirroring failed: {e}"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::parse_name;
    use lien_protocol::{ContentId, PublisherSecret, Slug};

    #[test]
    fn name_records_only_move_forward() {
        let secret = PublisherSecret::from_seed(&[5; 32]);
        let slug: Slug = "census".parse().unwrap();
        let v1 = NameRecord::sign(&secret, slug.clone(), 1, ContentId::of(b"1")).unwrap();
        let v2 = NameRecord::sign(&secret, slug.clone(), 2, ContentId::of(b"2")).unwrap();
        let key = v1.key().to_multihash_bytes();
        let (b1, b2) = (v1.encode().unwrap(), v2.encode().unwrap());
        assert!(validate_name_record(&key, &b1, None));
        assert!(validate_name_record(&key, &b2, Some(&b1)));
        assert!(!validate_name_record(&key, &b1, Some(&b2)), "replayed old version accepted");
        assert!(!validate_name_record(&key, &b2, Some(&b2)));
        assert!(!validate_name_record(&ContentId::of(b"other").to_multihash_bytes(), &b1, None), "wrong key accepted");
        let mut forged = b2.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert!(!validate_name_record(&key, &forged, None), "bad signature accepted");
    }

    #[test]
    fn names_parse_with_clear_errors() {
        let key = PublisherSecret::from_seed(&[5; 32]).public();
        assert!(parse_name(&format!("{key}/census")).is_ok());
        assert!(parse_name("census").unwrap_err().to_string().contains("PUBLISHER/NAME"));
        assert!(parse_name(&format!("{key}/Bad Slug")).unwrap_err().to_string().contains("dataset name"));
        assert!(parse_name("abc/census").unwrap_err().to_string().contains("publisher"));
    }
}
