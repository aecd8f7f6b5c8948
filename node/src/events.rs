//! What a node does with what the network brings: validating DHT name records, dispatching
//! inbound requests to the serving part and gossip to the catalog part (`dispatch`), and
//! staying connected after partitions (`keep_connected`). `Node::start` spawns these.

use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use lien_protocol::name::NameRecord;
use lien_protocol::wire::{Request, Response};
use lien_protocol::Manifest;
use tokio::sync::mpsc;

use crate::catalog::keeper::CatalogKeeper;
use crate::config::NodeConfig;
use crate::network::{self, Command, NetEvent, NetworkHandle, TransferResponse};
use crate::node::tcp_port_of;
use crate::server::Serving;
use crate::store::Store;
use crate::tasks::Tasks;

/// Most addresses redialled in one reconnection round.
pub(crate) const MAX_REDIALS: usize = 16;
/// How long one redial may take.
pub(crate) const REDIAL_TIMEOUT: Duration = Duration::from_secs(10);

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

/// What the dispatcher of network events hands them to: the serving part (inbound requests),
/// the catalog part (manifests, trust records, peers to catch up with) and the store (peers
/// met, remembered for later redials).
pub(crate) struct Dispatcher {
    /// Where answers are sent (always from a task of their own).
    pub(crate) net: NetworkHandle,
    /// Where connected peers are remembered.
    pub(crate) store: Store,
    /// Where the work of each event runs.
    pub(crate) tasks: Tasks,
    /// Answers inbound requests, after its one admission check.
    pub(crate) serving: Arc<Serving>,
    /// Keeps gossiped manifests and trust records, and catches up with new peers.
    pub(crate) catalog: Arc<CatalogKeeper>,
}

/// Longest an upload slot stays held while a chunk response is being written to a peer that
/// reads it slowly (a stalled reader must not hold a slot for the request timeout).
const SLOT_HELD_WHILE_SENDING: Duration = Duration::from_secs(10);

/// Handles the network task's events until it stops. It never awaits the network task (whose bounded sends of
/// events may be waiting on this loop): everything that talks back runs in a task of its own.
pub(crate) async fn dispatch(d: Dispatcher, mut events: mpsc::Receiver<NetEvent>) {
    while let Some(event) = events.recv().await {
        match event {
            NetEvent::Manifest { bytes, source } => {
                let catalog = d.catalog.clone();
                d.tasks.spawn_to_end(async move {
                    let keeping = catalog.clone();
                    let kept = catalog
                        .tasks
                        .spawn_blocking(move || match Manifest::decode(&bytes) {
                            Ok(m) => keeping.keep_manifest(&m).then_some(m),
                            Err(e) => {
                                tracing::debug!(%source, "dropping manifest: {e}");
                                None
                            }
                        })
                        .await;
                    if let Ok(Some(m)) = kept {
                        catalog.maybe_mirror(&m);
                    }
                });
            }
            NetEvent::Inbound { peer: _, request: Request::OpenBulk { version }, channel } => {
                // Never await the network task here: it may itself be waiting to hand us an
                // event (both channels are bounded), so the answer is sent from a task.
                let (net, bulk_server) = (d.net.clone(), d.serving.bulk.clone());
                d.tasks.spawn_to_end(async move {
                    if let Some(server) = bulk_server.as_ref().filter(|s| s.port() == 0) {
                        // The port the listener got (the config may say /tcp/0) is known once
                        // listening.
                        let addrs = net.listen_addrs().await.unwrap_or_default();
                        if let Some(port) = addrs.iter().find_map(tcp_port_of) {
                            server.set_port(port);
                        }
                    }
                    let response = match &bulk_server {
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
                    let _ = net.send(Command::Respond { slot: channel, response, sent: None }).await;
                });
            }
            NetEvent::Inbound { peer, request, channel } => {
                // Admitted (or `Busy`) here, answered off the async threads, sent from a task as
                // every answer (see the OpenBulk arm).
                let answer = d.serving.serve(peer, request);
                let net = d.net.clone();
                d.tasks.spawn_to_end(async move {
                    let (response, admitted) = answer.response().await;
                    // A chunk response holds its upload slot until its bytes have left (or
                    // `SLOT_HELD_WHILE_SENDING` has passed): released when handed to the
                    // network task, slots bounded nothing, and a seed's uplink queued answers
                    // to every fetcher at once, each arriving seconds late.
                    let chunks = matches!(response.header, Response::Chunks { .. }) && admitted.is_some();
                    let (sent, left) = if chunks {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        (Some(tx), Some(rx))
                    } else {
                        (None, None)
                    };
                    let _ = net.send(Command::Respond { slot: channel, response, sent }).await;
                    if let Some(left) = left {
                        let _ = tokio::time::timeout(SLOT_HELD_WHILE_SENDING, left).await;
                    }
                    drop(admitted);
                });
            }
            NetEvent::Connected { peer, addr } => {
                let store = d.store.clone();
                let shown = addr.clone().with_p2p(peer).map(|a| a.to_string()).unwrap_or_else(|a| a.to_string());
                let peer_text = peer.to_string();
                d.tasks.spawn_blocking(move || store.remember_peer(&peer_text, &[shown]));
                d.catalog.catch_up.offer(peer);
            }
            NetEvent::NameRecord { .. } => {}
            NetEvent::TrustRecord { bytes } => {
                let catalog = d.catalog.clone();
                d.tasks.spawn_blocking(move || {
                    if let Err(e) = catalog.keep_trust_record(&bytes) {
                        tracing::info!("dropping a trust record: {e}");
                    }
                });
            }
        }
    }
}

/// What [`keep_connected`] uses: the network, the remembered peers and the config's
/// reconnection settings.
pub(crate) struct Reconnect {
    /// Dials and the routing-table refresh.
    pub(crate) net: NetworkHandle,
    /// Where remembered peers are read.
    pub(crate) store: Store,
    /// With fewer peers than this, redial (`min_peers`).
    pub(crate) min_peers: usize,
    /// How often to look (`reconnect_secs`, at least 1 s).
    pub(crate) period: Duration,
    /// The explicit and bootstrap peers, redialled first.
    pub(crate) configured: Vec<Multiaddr>,
}

impl Reconnect {
    /// The reconnection settings of `config`, over `net` and `store`.
    pub(crate) fn of(config: &NodeConfig, net: NetworkHandle, store: Store) -> Reconnect {
        Reconnect {
            net,
            store,
            min_peers: config.min_peers as usize,
            period: Duration::from_secs(config.reconnect_secs.max(1)),
            configured: config.explicit_peers.iter().chain(&config.bootstrap).cloned().collect(),
        }
    }
}

/// Every `reconnect_secs`, when fewer than `min_peers` peers are connected (after a partition
/// heals, or when every peer went away): redials the bootstrap and explicit peers and the most
/// recently seen remembered peers (at most [`MAX_REDIALS`] addresses, each for at most
/// [`REDIAL_TIMEOUT`]), and refreshes the DHT routing table. A new connection pulls the peer's
/// catalog, so the node catches up on what it missed. Without this, only Kademlia's periodic
/// bootstrap (every 5 minutes) would dial anyone.
pub(crate) async fn keep_connected(r: Reconnect) {
    let period = r.period;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(peers) = r.net.peers().await else { return };
        if peers.len() >= r.min_peers {
            continue;
        }
        let connected: std::collections::HashSet<PeerId> =
            peers.iter().filter_map(|p| p.peer_id.parse().ok()).collect();
        let store = r.store.clone();
        let remembered = tokio::task::spawn_blocking(move || store.known_peers(MAX_REDIALS))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let mut addrs: Vec<Multiaddr> = Vec::new();
        let candidates = r
            .configured
            .iter()
            .cloned()
            .chain(remembered.into_iter().flat_map(|(_, a)| a).filter_map(|a| a.parse::<Multiaddr>().ok()));
        for addr in candidates {
            let fresh = network::peer_id_of(&addr).is_some_and(|p| p != r.net.peer_id() && !connected.contains(&p));
            if fresh && !addrs.contains(&addr) && addrs.len() < MAX_REDIALS {
                addrs.push(addr);
            }
        }
        tracing::debug!(connected = peers.len(), redialling = addrs.len(), "few peers: reconnecting");
        let dials = addrs.into_iter().map(|addr| r.net.dial(addr, REDIAL_TIMEOUT));
        let _ = r.net.send(Command::Bootstrap).await;
        futures::future::join_all(dials).await;
    }
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
