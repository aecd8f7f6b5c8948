//! The task that owns the Swarm: it turns [`Command`]s into swarm calls and swarm events into
//! replies and [`NetEvent`]s. Answers that arrive later are matched through maps keyed by
//! request or query id. Nothing here blocks: slow work (store, disk) happens in the node.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use futures::StreamExt;
use libp2p::kad::store::RecordStore;
use libp2p::kad::{self, GetProvidersOk, GetRecordOk, QueryId, QueryResult, RecordKey};
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::{dial_opts::DialOpts, SwarmEvent};
use libp2p::{gossipsub, identify, noise, tcp, yamux, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};

use super::behaviour::{Behaviour, BehaviourEvent, WireNames};
use super::{
    peer_id_of, Command, NetError, NetEvent, NetworkHandle, NetworkSetup, PeerInfo, ResponseSlot, TransferResponse,
    Verdict,
};
use crate::config::NodeConfig;

/// Capacity of the command channel.
const COMMAND_CAPACITY: usize = 256;
/// Longest pause between two checks of the connection count against `peer_high_water`.
const TRIM_EVERY_MAX: Duration = Duration::from_secs(10);

/// Builds the swarm, starts listening and dialing, and spawns the task that owns it.
/// Events go to `events` (a bounded channel owned by the node).
pub fn spawn(
    config: &NodeConfig,
    setup: NetworkSetup,
    events: mpsc::Sender<NetEvent>,
) -> Result<(NetworkHandle, tokio::task::JoinHandle<()>), NetError> {
    let names = WireNames::new(&config.network).map_err(NetError::Setup)?;
    let peer_id = setup.keypair.public().to_peer_id();
    let mut swarm = build_swarm(&setup.keypair, &setup, config, &names)?;
    let topic = gossipsub::IdentTopic::new(names.topic.clone());
    swarm.behaviour_mut().gossip.subscribe(&topic).map_err(|e| NetError::Setup(e.to_string()))?;
    let trust_topic = gossipsub::IdentTopic::new(names.trust_topic.clone());
    swarm.behaviour_mut().gossip.subscribe(&trust_topic).map_err(|e| NetError::Setup(e.to_string()))?;
    for addr in &config.listen {
        let is_tcp = addr.iter().any(|p| matches!(p, libp2p::multiaddr::Protocol::Tcp(_)));
        if config.psk().is_some() && !is_tcp {
            tracing::warn!(%addr, "private network: skipping a non-TCP listen address");
            continue;
        }
        swarm.listen_on(addr.clone()).map_err(|e| NetError::Setup(format!("cannot listen on {addr}: {e}")))?;
    }
    for addr in &config.explicit_peers {
        if let Some(peer) = peer_id_of(addr) {
            swarm.behaviour_mut().gossip.add_explicit_peer(&peer);
        }
    }
    for addr in config.bootstrap.iter().chain(&config.explicit_peers) {
        if let Some(peer) = peer_id_of(addr) {
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            if let Err(e) = swarm.dial(addr.clone()) {
                tracing::warn!(%addr, "cannot dial bootstrap peer: {e}");
            }
        }
    }
    let (tx, rx) = mpsc::channel(COMMAND_CAPACITY);
    let explicit = config.explicit_peers.iter().filter_map(peer_id_of).collect();
    let trim_every = Duration::from_secs(config.idle_peer_secs / 3).clamp(Duration::from_secs(1), TRIM_EVERY_MAX);
    let mut trim_timer = tokio::time::interval_at(Instant::now() + trim_every, trim_every);
    trim_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let event_loop = EventLoop {
        swarm,
        commands: rx,
        events,
        topic,
        trust_topic,
        setup,
        pending_dials: HashMap::new(),
        pending_requests: HashMap::new(),
        responses_sending: HashMap::new(),
        pending_providers: HashMap::new(),
        pending_records: HashMap::new(),
        agents: HashMap::new(),
        connections: HashMap::new(),
        usage: HashMap::new(),
        trim: TrimPolicy {
            high: config.peer_high_water.min(config.max_connections) as usize,
            low: config.peer_low_water.min(config.peer_high_water).min(config.max_connections) as usize,
            idle: Duration::from_secs(config.idle_peer_secs),
            stale: Duration::from_secs(config.request_timeout_secs.saturating_mul(4)),
            explicit,
        },
        trim_timer,
    };
    let task = tokio::spawn(event_loop.run());
    Ok((NetworkHandle { tx, peer_id }, task))
}

/// Builds the swarm: TCP (whose inbound connections pass the bulk channel's port sharing,
/// `shared_port`) and QUIC with noise and yamux, or, for a private network, TCP with the
/// pre-shared-key layer (pnet) under noise and yamux, or the transport `setup` supplies.
fn build_swarm(
    keypair: &libp2p::identity::Keypair,
    setup: &NetworkSetup,
    config: &NodeConfig,
    names: &WireNames,
) -> Result<Swarm<Behaviour>, NetError> {
    let setup_err = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    // `/dns`, `/dns4` and `/dns6` addresses (bootstrap, explicit peers, the API's connect) are
    // resolved with the system's resolver configuration and hosts file.
    let dns_err = |e: &dyn std::fmt::Display| {
        NetError::Setup(format!("cannot read the system's DNS configuration (/etc/resolv.conf): {e}"))
    };
    let behaviour = |key: &libp2p::identity::Keypair| {
        Behaviour::new(key, config, names).map_err(Box::<dyn std::error::Error + Send + Sync>::from)
    };
    let idle = |c: libp2p::swarm::Config| c.with_idle_connection_timeout(Duration::from_secs(120));
    let builder = libp2p::SwarmBuilder::with_existing_identity(keypair.clone()).with_tokio();
    if let Some(factory) = setup.transport.clone() {
        let swarm = builder
            .with_other_transport(move |key| factory(key))
            .map_err(|e| setup_err(&e))?
            .with_behaviour(behaviour)
            .map_err(|e| setup_err(&e))?
            .with_swarm_config(idle)
            .build();
        return Ok(swarm);
    }
    let handoff = setup.bulk_handoff.clone();
    let swarm = match config.psk() {
        None => builder
            .with_quic()
            .with_other_transport(move |key| {
                use libp2p::Transport;
                let noise = noise::Config::new(key)?;
                let handoff = handoff.clone();
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                    tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                        .and_then(move |socket, endpoint| super::shared_port::demux(socket, endpoint, handoff.clone()))
                        .upgrade(libp2p::core::upgrade::Version::V1Lazy)
                        .authenticate(noise)
                        .multiplex(yamux_config()),
                )
            })
            .map_err(|e| setup_err(&e))?
            .with_dns()
            .map_err(|e| dns_err(&e))?
            .with_behaviour(behaviour)
            .map_err(|e| setup_err(&e))?
            .with_swarm_config(idle)
            .build(),
        Some(psk) => builder
            .with_other_transport(|key| {
                use libp2p::Transport;
                let noise = noise::Config::new(key)?;
                let psk = libp2p::pnet::PreSharedKey::new(psk);
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                    tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                        .and_then(move |socket, _| libp2p::pnet::PnetConfig::new(psk).handshake(socket))
                        .upgrade(libp2p::core::upgrade::Version::V1)
                        .authenticate(noise)
                        .multiplex(yamux_config()),
                )
            })
            .map_err(|e| setup_err(&e))?
            .with_dns()
            .map_err(|e| dns_err(&e))?
            .with_behaviour(behaviour)
            .map_err(|e| setup_err(&e))?
            .with_swarm_config(idle)
            .build(),
    };
    Ok(swarm)
}

/// Yamux at its defaults. Bigger data frames (yamux's `split_send_size`, through an adapter of
/// our own) measured no faster here: bulk chunk traffic takes the bulk channel instead.
fn yamux_config() -> yamux::Config {
    yamux::Config::default()
}

/// Values found so far by a DHT record query, and where to send them.
type PendingRecords = (Vec<Vec<u8>>, oneshot::Sender<Vec<Vec<u8>>>);

struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetEvent>,
    topic: gossipsub::IdentTopic,
    trust_topic: gossipsub::IdentTopic,
    setup: NetworkSetup,
    pending_dials: HashMap<PeerId, Vec<oneshot::Sender<Result<PeerId, NetError>>>>,
    pending_requests: HashMap<OutboundRequestId, oneshot::Sender<Result<TransferResponse, NetError>>>,
    /// Responses being written whose server waits to hear that they left (`Command::Respond`).
    responses_sending: HashMap<request_response::InboundRequestId, oneshot::Sender<()>>,
    pending_providers: HashMap<QueryId, (HashSet<PeerId>, oneshot::Sender<Vec<PeerId>>)>,
    pending_records: HashMap<QueryId, PendingRecords>,
    agents: HashMap<PeerId, String>,
    /// Remote address of every open connection, per peer.
    connections: HashMap<PeerId, Vec<(libp2p::swarm::ConnectionId, Multiaddr)>>,
    /// How each connected peer is used, for trimming.
    usage: HashMap<PeerId, PeerUse>,
    trim: TrimPolicy,
    trim_timer: tokio::time::Interval,
}

/// Transfer use of one connected peer.
#[derive(Debug, Clone, Copy)]
struct PeerUse {
    /// When the first connection opened or a transfer request last went either way.
    last: Instant,
    /// Transfer requests in flight, ours and theirs.
    in_flight: u32,
}

/// When idle connections are closed (see `NodeConfig::peer_high_water`).
#[derive(Debug, Clone)]
struct TrimPolicy {
    high: usize,
    low: usize,
    idle: Duration,
    /// Requests in flight for longer than this no longer protect a peer (a count that missed its
    /// end event must not pin a connection forever).
    stale: Duration,
    explicit: HashSet<PeerId>,
}

/// The peers to disconnect: with more than `policy.high` connected, the least recently used of
/// those not protected (gossip mesh, explicit peers, requests in flight, used within
/// `policy.idle`), until `policy.low` would remain.
fn peers_to_trim(
    connected: &[PeerId],
    usage: &HashMap<PeerId, PeerUse>,
    mesh: &HashSet<PeerId>,
    policy: &TrimPolicy,
    now: Instant,
) -> Vec<PeerId> {
    if connected.len() <= policy.high {
        return Vec::new();
    }
    let mut idle: Vec<(Instant, PeerId)> = connected
        .iter()
        .filter(|p| !mesh.contains(p) && !policy.explicit.contains(p))
        .filter_map(|p| {
            // A peer with no record yet has just connected: leave it alone.
            let u = usage.get(p)?;
            let quiet = now.saturating_duration_since(u.last);
            let busy = u.in_flight > 0 && quiet < policy.stale;
            (!busy && quiet >= policy.idle).then_some((u.last, *p))
        })
        .collect();
    idle.sort();
    idle.into_iter().take(connected.len() - policy.low).map(|(_, p)| p).collect()
}

fn record_key(id: &lien_protocol::ContentId) -> RecordKey {
    RecordKey::new(&id.to_multihash_bytes())
}

impl EventLoop {
    async fn run(mut self) {
        loop {
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Shutdown) | None => break,
                    Some(cmd) => self.on_command(cmd),
                },
                event = self.swarm.select_next_some() => self.on_event(event).await,
                _ = self.trim_timer.tick() => self.trim_idle(),
            }
        }
        tracing::debug!("network task stopped");
    }

    /// Closes idle connections beyond the high-water mark (see [`peers_to_trim`]).
    fn trim_idle(&mut self) {
        if self.swarm.network_info().num_peers() <= self.trim.high {
            return;
        }
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        let mesh: HashSet<PeerId> = self.swarm.behaviour().gossip.all_mesh_peers().copied().collect();
        let gone = peers_to_trim(&connected, &self.usage, &mesh, &self.trim, Instant::now());
        tracing::debug!(connected = connected.len(), closing = gone.len(), "trimming idle connections");
        for peer in gone {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// Notes transfer use of `peer`: `delta` requests start (+1) or end (-1). Only connected
    /// peers (and peers a request is dialling) are tracked.
    fn used(&mut self, peer: PeerId, delta: i32) {
        let now = Instant::now();
        if delta > 0 || self.swarm.is_connected(&peer) {
            let u = self.usage.entry(peer).or_insert(PeerUse { last: now, in_flight: 0 });
            u.last = now;
            u.in_flight = u.in_flight.saturating_add_signed(delta);
        } else {
            self.usage.remove(&peer);
        }
    }

    fn on_command(&mut self, cmd: Command) {
        let swarm = &mut self.swarm;
        match cmd {
            Command::Dial { addr, reply } => {
                let Some(peer) = peer_id_of(&addr) else {
                    let _ = reply.send(Err(NetError::Dial {
                        addr: addr.to_string(),
                        reason: "address does not end in /p2p/<peer id>".into(),
                    }));
                    return;
                };
                if swarm.is_connected(&peer) {
                    let _ = reply.send(Ok(peer));
                    return;
                }
                swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
                let opts = DialOpts::peer_id(peer).addresses(vec![addr.clone()]).build();
                match swarm.dial(opts) {
                    Ok(()) => self.pending_dials.entry(peer).or_default().push(reply),
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dial { addr: addr.to_string(), reason: e.to_string() }));
                    }
                }
            }
            Command::Request { peer, request, reply } => {
                let id = swarm.behaviour_mut().transfer.send_request(&peer, request);
                self.pending_requests.insert(id, reply);
                self.used(peer, 1);
            }
            Command::Respond { slot, response, sent } => {
                if swarm.behaviour_mut().transfer.send_response(slot.0, response).is_err() {
                    tracing::debug!("requester went away before the response was sent");
                } else if let Some(sent) = sent {
                    self.responses_sending.insert(slot.1, sent);
                }
            }
            Command::AnnounceTrust { bytes } => {
                if let Err(e) = swarm.behaviour_mut().gossip.publish(self.trust_topic.clone(), bytes) {
                    tracing::debug!("gossip publish: {e}");
                }
            }
            Command::Announce { bytes } => {
                if let Err(e) = swarm.behaviour_mut().gossip.publish(self.topic.clone(), bytes) {
                    // No peers yet is normal for a lone node; late joiners catch up via the catalog.
                    tracing::debug!("gossip publish: {e}");
                }
            }
            Command::Provide { key } => {
                if let Err(e) = swarm.behaviour_mut().kad.start_providing(record_key(&key)) {
                    tracing::warn!(key = %key.short(), "cannot provide: {e}");
                }
            }
            Command::StopProviding { key } => swarm.behaviour_mut().kad.stop_providing(&record_key(&key)),
            Command::FindProviders { key, reply } => {
                let id = swarm.behaviour_mut().kad.get_providers(record_key(&key));
                self.pending_providers.insert(id, (HashSet::new(), reply));
            }
            Command::PutRecord { key, value } => {
                let record = kad::Record::new(record_key(&key), value);
                if let Err(e) = swarm.behaviour_mut().kad.put_record(record, kad::Quorum::One) {
                    tracing::warn!("cannot store name record: {e}");
                }
            }
            Command::GetRecord { key, reply } => {
                let id = swarm.behaviour_mut().kad.get_record(record_key(&key));
                self.pending_records.insert(id, (Vec::new(), reply));
            }
            Command::GossipStanding { peer, reply } => {
                let gossip = &swarm.behaviour().gossip;
                let in_mesh = gossip.mesh_peers(&self.topic.hash()).any(|p| *p == peer);
                let _ = reply.send((gossip.peer_score(&peer), in_mesh));
            }
            Command::Peers { reply } => {
                let mut peers: HashMap<PeerId, Vec<String>> = HashMap::new();
                for peer in swarm.connected_peers() {
                    peers.entry(*peer).or_default();
                }
                let _ = reply.send(
                    peers
                        .into_keys()
                        .map(|p| PeerInfo {
                            peer_id: p.to_string(),
                            addrs: self
                                .connections
                                .get(&p)
                                .map(|list| list.iter().map(|(_, a)| a.to_string()).collect())
                                .unwrap_or_default(),
                            agent: self.agents.get(&p).cloned(),
                        })
                        .collect(),
                );
            }
            Command::PeerAddrs { peer, reply } => {
                let addrs = self.connections.get(&peer).map(|list| list.iter().map(|(_, a)| a.clone()).collect());
                let _ = reply.send(addrs.unwrap_or_default());
            }
            Command::ListenAddrs { reply } => {
                let me = *swarm.local_peer_id();
                let addrs = swarm.listeners().map(|a| a.clone().with_p2p(me).unwrap_or_else(|a| a)).collect();
                let _ = reply.send(addrs);
            }
            Command::Bootstrap => {
                if let Err(e) = swarm.behaviour_mut().kad.bootstrap() {
                    tracing::debug!("dht bootstrap: {e}");
                }
            }
            Command::Shutdown => {}
        }
    }

    fn emit(&self, event: NetEvent) -> impl std::future::Future<Output = ()> + Send + 'static {
        // Bounded: if the node is saturated the network task waits, which slows remote peers
        // down instead of queueing without limit.
        let tx = self.events.clone();
        async move {
            let _ = tx.send(event).await;
        }
    }

    async fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => tracing::info!(%address, "listening"),
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, num_established, .. } => {
                self.connections
                    .entry(peer_id)
                    .or_default()
                    .push((connection_id, endpoint.get_remote_address().clone()));
                self.usage.entry(peer_id).or_insert(PeerUse { last: Instant::now(), in_flight: 0 });
                if let Some(waiters) = self.pending_dials.remove(&peer_id) {
                    for w in waiters {
                        let _ = w.send(Ok(peer_id));
                    }
                }
                if num_established.get() == 1 {
                    let addr = endpoint.get_remote_address().clone();
                    self.emit(NetEvent::Connected { peer: peer_id, addr }).await;
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, connection_id, num_established, .. } => {
                if num_established == 0 {
                    self.usage.remove(&peer_id);
                }
                if let Some(list) = self.connections.get_mut(&peer_id) {
                    list.retain(|(id, _)| *id != connection_id);
                    if list.is_empty() {
                        self.connections.remove(&peer_id);
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id: Some(peer), error, .. } => {
                if let Some(waiters) = self.pending_dials.remove(&peer) {
                    for w in waiters {
                        let _ = w.send(Err(NetError::Dial { addr: peer.to_string(), reason: error.to_string() }));
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                for addr in info.listen_addrs {
                    if is_dialable(&addr) {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                    }
                }
                self.agents.insert(peer_id, info.agent_version);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let is_trust = message.topic == self.trust_topic.hash();
                let verdict = if is_trust {
                    (self.setup.validate_trust)(&message.data)
                } else {
                    (self.setup.validate_manifest)(&message.data)
                };
                let acceptance = match verdict {
                    Verdict::Accept => gossipsub::MessageAcceptance::Accept,
                    Verdict::Ignore => gossipsub::MessageAcceptance::Ignore,
                    Verdict::Reject => gossipsub::MessageAcceptance::Reject,
                };
                self.swarm.behaviour_mut().gossip.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    acceptance,
                );
                match (verdict, is_trust) {
                    (Verdict::Accept, true) => self.emit(NetEvent::TrustRecord { bytes: message.data }).await,
                    (Verdict::Accept, false) => {
                        self.emit(NetEvent::Manifest { bytes: message.data, source: propagation_source }).await
                    }
                    (Verdict::Ignore, _) => {
                        tracing::debug!(peer = %propagation_source, "ignored gossip from an untrusted source")
                    }
                    (Verdict::Reject, _) => tracing::info!(peer = %propagation_source, "rejected invalid gossip"),
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Transfer(event)) => self.on_transfer(event).await,
            SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => self.on_kad(event).await,
            other => tracing::trace!(?other, "swarm event"),
        }
    }

    async fn on_transfer(&mut self, event: request_response::Event<lien_protocol::wire::Request, TransferResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, request_id } => {
                    self.used(peer, 1);
                    self.emit(NetEvent::Inbound { peer, request, channel: ResponseSlot(channel, request_id) }).await;
                }
                request_response::Message::Response { request_id, response } => {
                    self.used(peer, -1);
                    if let Some(reply) = self.pending_requests.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                self.used(peer, -1);
                if let Some(reply) = self.pending_requests.remove(&request_id) {
                    let _ = reply.send(Err(NetError::Request { peer, reason: error.to_string() }));
                }
            }
            request_response::Event::InboundFailure { peer, error, request_id, .. } => {
                self.used(peer, -1);
                // Dropped: whoever waits for the response to leave stops waiting.
                self.responses_sending.remove(&request_id);
                tracing::debug!(%peer, "inbound transfer failed: {error}");
            }
            request_response::Event::ResponseSent { peer, request_id, .. } => {
                self.used(peer, -1);
                if let Some(sent) = self.responses_sending.remove(&request_id) {
                    let _ = sent.send(());
                }
            }
        }
    }

    async fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::OutboundQueryProgressed { id, result, step, .. } => match result {
                QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders { providers, .. })) => {
                    if let Some((found, _)) = self.pending_providers.get_mut(&id) {
                        found.extend(providers);
                    }
                    if step.last {
                        self.finish_providers(id);
                    }
                }
                QueryResult::GetProviders(_) if step.last => self.finish_providers(id),
                QueryResult::GetRecord(Ok(GetRecordOk::FoundRecord(found))) => {
                    if (self.setup.validate_record)(found.record.key.as_ref(), &found.record.value, None) {
                        if let Some((values, _)) = self.pending_records.get_mut(&id) {
                            values.push(found.record.value);
                        }
                    }
                    if step.last {
                        self.finish_records(id);
                    }
                }
                QueryResult::GetRecord(_) if step.last => self.finish_records(id),
                _ => {}
            },
            kad::Event::InboundRequest { request } => match request {
                kad::InboundRequest::PutRecord { record: Some(record), .. } => {
                    let existing = self.swarm.behaviour_mut().kad.store_mut().get(&record.key).map(|r| r.value.clone());
                    if (self.setup.validate_record)(record.key.as_ref(), &record.value, existing.as_deref()) {
                        let value = record.value.clone();
                        if let Err(e) = self.swarm.behaviour_mut().kad.store_mut().put(record) {
                            tracing::debug!("dht store full: {e}");
                        }
                        self.emit(NetEvent::NameRecord { bytes: value }).await;
                    } else {
                        tracing::info!("rejected an invalid DHT record");
                    }
                }
                kad::InboundRequest::AddProvider { record: Some(record) } => {
                    if let Err(e) = self.swarm.behaviour_mut().kad.store_mut().add_provider(record) {
                        tracing::debug!("dht provider store full: {e}");
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn finish_providers(&mut self, id: QueryId) {
        if let Some((found, reply)) = self.pending_providers.remove(&id) {
            let _ = reply.send(found.into_iter().collect());
        }
    }

    fn finish_records(&mut self, id: QueryId) {
        if let Some((values, reply)) = self.pending_records.remove(&id) {
            let _ = reply.send(values);
        }
    }
}

/// Addresses worth remembering for a peer: anything but unspecified (0.0.0.0) ones.
fn is_dialable(addr: &Multiaddr) -> bool {
    !addr.iter().any(|p| matches!(p, libp2p::multiaddr::Protocol::Ip4(ip) if ip.is_unspecified()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(high: usize, low: usize, explicit: &[PeerId]) -> TrimPolicy {
        TrimPolicy {
            high,
            low,
            idle: Duration::from_secs(30),
            stale: Duration::from_secs(120),
            explicit: explicit.iter().copied().collect(),
        }
    }

    #[test]
    fn trimming_closes_the_least_recently_used_idle_peers_down_to_the_low_mark() {
        let now = Instant::now() + Duration::from_secs(1000);
        let peers: Vec<PeerId> = (0..10).map(|_| PeerId::random()).collect();
        let mut usage = HashMap::new();
        // Peer i was last used 500 - 10 i seconds before `now`: peer 0 longest ago.
        for (i, p) in peers.iter().enumerate() {
            usage.insert(*p, PeerUse { last: now - Duration::from_secs(500 - 10 * i as u64), in_flight: 0 });
        }
        let none = HashSet::new();
        // At or under the high mark nothing is closed.
        assert!(peers_to_trim(&peers, &usage, &none, &policy(10, 4, &[]), now).is_empty());
        // Over it: down to the low mark, oldest first.
        let gone = peers_to_trim(&peers, &usage, &none, &policy(8, 4, &[]), now);
        assert_eq!(gone, peers[..6].to_vec());
    }

    #[test]
    fn mesh_explicit_busy_and_recently_used_peers_are_kept() {
        let now = Instant::now() + Duration::from_secs(1000);
        let peers: Vec<PeerId> = (0..8).map(|_| PeerId::random()).collect();
        let old = now - Duration::from_secs(300);
        let mut usage: HashMap<PeerId, PeerUse> =
            peers.iter().map(|p| (*p, PeerUse { last: old, in_flight: 0 })).collect();
        let mesh: HashSet<PeerId> = [peers[0]].into_iter().collect();
        // peers[1] explicit; peers[2] has a request in flight (recent); peers[3] was used 5 s
        // ago; peers[4] has a request "in flight" for far longer than requests can last; peers[5]
        // has no record (it just connected).
        usage.insert(peers[2], PeerUse { last: now - Duration::from_secs(60), in_flight: 2 });
        usage.insert(peers[3], PeerUse { last: now - Duration::from_secs(5), in_flight: 0 });
        usage.insert(peers[4], PeerUse { last: now - Duration::from_secs(200), in_flight: 1 });
        usage.remove(&peers[5]);
        let gone: HashSet<PeerId> =
            peers_to_trim(&peers, &usage, &mesh, &policy(1, 1, &[peers[1]]), now).into_iter().collect();
        assert_eq!(gone, [peers[4], peers[6], peers[7]].into_iter().collect::<HashSet<_>>());
    }
}
