//! The running node: store, network task, dispatcher of network events, and the operations the
//! CLI, the HTTP API, the simulator and the tests call (`publish`, `fetch`, `search`, the local
//! datasets, ...).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use lien_protocol::name::{name_key, NameRecord};
use lien_protocol::{ContentId, Manifest, PublisherKey, PublisherSecret, Slug};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::audit::{AuditError, AuditLog};
use crate::catalog::index::{CatalogIndex, Query};
use crate::catalog::keeper::CatalogKeeper;
use crate::catalog::CatalogError;
use crate::config::NodeConfig;
use crate::events::{dispatch, keep_connected, validate_name_record, Dispatcher, Reconnect};
use crate::fetch::{self, FetchError, FetchOptions, FetchReport, FetchSettings, Fetcher};
use crate::keyfile::{self, KeyFileError};
use crate::local::{self, FileCheck, LocalError, LocalSummary, Removal};
use crate::network::{self, Command, NetError, NetworkHandle, NetworkSetup, PeerInfo, Verdict};
use crate::publish::{self, PublishError, PublishRequest};
use crate::server::{Serving, ServingSettings};
use crate::stats::{Stats, StatsSnapshot};
use crate::store::{LocalDataset, LocalKind, Store, StoreError};
use crate::target::Target;
use crate::tasks::Tasks;
use crate::trust::{SharedTrust, TrustStoreError};
use lien_protocol::trust::Admission;

/// Capacity of the network → node event channel.
const EVENT_CAPACITY: usize = 1024;
/// How long [`Node::shutdown`] waits for each stage (tasks, network task, blocking work).
const STOP_LIMIT: Duration = Duration::from_secs(10);
/// How often [`Node::shutdown`] looks whether blocking work has given the store back.
const STOP_POLL: Duration = Duration::from_millis(5);

/// Why the node could not start or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The home folder could not be prepared.
    #[error("cannot prepare home {path}: {source}")]
    Home {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file failed.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The network failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Publishing failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Fetching failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// An operation on a local dataset failed.
    #[error(transparent)]
    Local(#[from] LocalError),
    /// The catalog index failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Trust data could not be loaded, stored or accepted.
    #[error(transparent)]
    Trust(#[from] TrustStoreError),
    /// The audit log failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A name or id that cannot be resolved.
    #[error("{0}")]
    NotFound(String),
    /// Bad input from the caller.
    #[error("{0}")]
    Invalid(String),
    /// Signing or encoding a record of this node's own failed (a bug, not the caller's input).
    #[error("cannot make a record: {0}")]
    Record(String),
    /// A background task panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(String),
}

/// What a running node is made of: the handles its own operations use, and the parts that do
/// the work (each holding only what it uses; none of them sees this struct).
struct Inner {
    config: NodeConfig,
    store: Store,
    net: NetworkHandle,
    secret: PublisherSecret,
    stats: Arc<Stats>,
    trust: SharedTrust,
    audit: Arc<AuditLog>,
    /// Every task the node spawns, and the token that stops them (each part holds a clone).
    tasks: Tasks,
    /// Answers other peers' requests, on libp2p and the bulk channel.
    serving: Arc<Serving>,
    /// Downloads datasets (`get`, resumed fetches, mirrors).
    fetcher: Arc<Fetcher>,
    /// Keeps, indexes and mirrors the catalog; catches up with new peers.
    catalog: Arc<CatalogKeeper>,
}

impl Inner {
    /// Handles on the node's state held now: the store's and each part's. Beyond those the node
    /// holds itself, they belong to running work.
    fn holders(&self) -> usize {
        self.store.handles()
            + Arc::strong_count(&self.serving)
            + Arc::strong_count(&self.fetcher)
            + Arc::strong_count(&self.catalog)
    }
}

/// A running Lien node. Cheap to clone; call [`Node::shutdown`] to stop it.
#[derive(Clone)]
pub struct Node {
    shared: Arc<Shared>,
}

/// What every clone of a [`Node`] shares. Clones of `Node` share this one `Arc<Inner>`, so the
/// count of `inner` beyond one is the number of blocking operations still holding it.
struct Shared {
    inner: Arc<Inner>,
    /// The network task (stopped last, after every task that may still talk to it).
    net_task: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// [`Inner::holders`] when nothing ran yet: the node's own handles (any more belong to
    /// running work).
    own_holders: usize,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("peer_id", &self.peer_id()).finish()
    }
}

impl Node {
    /// Starts a node from `config`: opens (or creates) its home, keys and store, starts the
    /// network, dials bootstrap peers and resumes unfinished fetches.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        Self::start_with_transport(config, None).await
    }

    /// Like [`Node::start`], on `transport` instead of TCP and QUIC when given: how lien-sim runs
    /// real nodes over its simulated network.
    pub async fn start_with_transport(
        config: NodeConfig,
        transport: Option<network::TransportFactory>,
    ) -> Result<Node, NodeError> {
        let home = config.home.clone();
        std::fs::create_dir_all(config.data_dir()).map_err(|source| NodeError::Home { path: home.clone(), source })?;
        let keypair = keyfile::node_keypair(&home)?;
        let secret = keyfile::publisher_secret(&home)?;
        let bulk_identity = match config.bulk_enabled().then(|| crate::bulk::tls::Identity::new(&keypair)) {
            Some(Ok(identity)) => Some(Arc::new(identity)),
            Some(Err(e)) => {
                tracing::warn!("no bulk channel: {e}");
                None
            }
            None => None,
        };
        let store_path = config.store_path();
        let store = tokio::task::spawn_blocking(move || Store::open(&store_path))
            .await
            .map_err(|e| NodeError::Task(e.to_string()))??;
        let stats = Arc::new(Stats::default());
        let (events_tx, events_rx) = mpsc::channel(EVENT_CAPACITY);
        let trust_store = store.clone();
        let trust_config = config.clone();
        let own_key = secret.public();
        let trust = tokio::task::spawn_blocking(move || SharedTrust::load(&trust_config, &trust_store, own_key))
            .await
            .map_err(|e| NodeError::Task(e.to_string()))??;
        let audit = Arc::new(open_audit_log(&home.join(crate::audit::AUDIT_FILE))?);
        let gossip_stats = stats.clone();
        let manifest_trust = trust.clone();
        let record_trust = trust.clone();
        let setup = NetworkSetup {
            keypair,
            validate_manifest: Arc::new(move |bytes| {
                let verdict = match Manifest::decode(bytes) {
                    Err(_) => Verdict::Reject,
                    Ok(m) => match manifest_trust.check_manifest(&m) {
                        Ok(_) => Verdict::Accept,
                        Err(e) => {
                            tracing::info!(manifest = %m.id().short(), "ignoring an untrusted manifest: {e}");
                            Verdict::Ignore
                        }
                    },
                };
                let counter = match verdict {
                    Verdict::Accept => &gossip_stats.gossip_accepted,
                    Verdict::Ignore => &gossip_stats.gossip_ignored,
                    Verdict::Reject => &gossip_stats.gossip_rejected,
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                verdict
            }),
            // Forward only records whose issuer this node trusts to sign them; hold the rest in
            // memory in case their issuer's delegation arrives later (issue 12: a stranger's
            // records are neither stored nor spread).
            validate_trust: Arc::new(move |bytes| match lien_protocol::trust::TrustRecord::decode(bytes) {
                Ok(record) => {
                    if record_trust.admits_or_holds(record) {
                        Verdict::Accept
                    } else {
                        Verdict::Ignore
                    }
                }
                Err(_) => Verdict::Reject,
            }),
            validate_record: Arc::new(validate_name_record),
            bulk_handoff: None,
            transport,
        };
        // The bulk channel shares the libp2p TCP port (network/shared_port.rs): there is no
        // port of its own to bind, so daemons on one host never collide over it.
        let simulated = setup.transport.is_some();
        let bulk = match &bulk_identity {
            Some(identity) if !simulated && listens_on_tcp(&config) => {
                match crate::bulk::BulkServer::new(identity, config.max_connections_per_ip as usize) {
                    Ok(server) => {
                        let (handoff, accepted) = mpsc::channel(crate::bulk::HANDOFF_QUEUE);
                        Some((handoff, accepted, server))
                    }
                    Err(e) => {
                        tracing::warn!("no bulk channel server: {e}");
                        None
                    }
                }
            }
            _ => None,
        };
        let setup = NetworkSetup { bulk_handoff: bulk.as_ref().map(|(handoff, _, _)| handoff.clone()), ..setup };
        let (net, net_task) = network::spawn(&config, setup, events_tx)?;
        let tasks = Tasks::default();
        let serving = Arc::new(Serving::new(
            store.clone(),
            stats.clone(),
            audit.clone(),
            trust.clone(),
            tasks.clone(),
            bulk.as_ref().map(|(_, _, server)| server.clone()),
            ServingSettings::of(&config),
        ));
        let bulk_clients = crate::bulk::BulkClients::new(
            config.bulk_enabled(),
            Duration::from_secs(config.request_timeout_secs.max(1)),
            bulk_identity,
            net.clone(),
            tasks.clone(),
            stats.clone(),
        );
        let fetcher = Arc::new(Fetcher::new(
            store.clone(),
            net.clone(),
            trust.clone(),
            stats.clone(),
            bulk_clients,
            tasks.clone(),
            FetchSettings::of(&config),
        ));
        let mirror_fetcher = fetcher.clone();
        let catalog = Arc::new(CatalogKeeper::new(
            store.clone(),
            trust.clone(),
            net.clone(),
            tasks.clone(),
            config.max_manifests_per_publisher,
            config.mirror_policy(),
            Arc::new(move |id| mirror_fetcher.mirror(id)),
        ));
        let inner =
            Arc::new(Inner { config, store, net, secret, stats, trust, audit, tasks, serving, fetcher, catalog });
        // Measured before any task holds a handle: more than this belongs to running work.
        let own_holders = inner.holders();
        let dispatcher = Dispatcher {
            net: inner.net.clone(),
            store: inner.store.clone(),
            tasks: inner.tasks.clone(),
            serving: inner.serving.clone(),
            catalog: inner.catalog.clone(),
        };
        inner.tasks.spawn(dispatch(dispatcher, events_rx));
        inner.tasks.spawn(crate::catch_up::run(inner.catalog.clone()));
        if inner.config.min_peers > 0 {
            inner.tasks.spawn(keep_connected(Reconnect::of(&inner.config, inner.net.clone(), inner.store.clone())));
        }
        if let Some((_, accepted, server)) = bulk {
            inner.tasks.spawn(crate::bulk::accept_loop(inner.serving.clone(), server, accepted));
        }
        let shared = Shared { inner, net_task: std::sync::Mutex::new(Some(net_task)), own_holders };
        let node = Node { shared: Arc::new(shared) };
        node.reconnect_known_peers();
        let resumed = match node.resume_fetches() {
            Ok(()) => node.reannounce().await,
            Err(e) => Err(e),
        };
        if let Err(e) = resumed {
            node.shutdown().await;
            return Err(e);
        }
        Ok(node)
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.shared.inner.net.peer_id()
    }

    /// This node's own key in publisher-key form: what a root delegates to give this node read
    /// access to restricted datasets.
    pub fn node_key(&self) -> Option<PublisherKey> {
        crate::trust::peer_key(&self.peer_id())
    }

    /// This node's publisher key.
    pub fn publisher(&self) -> PublisherKey {
        self.shared.inner.secret.public()
    }

    /// The node's config.
    pub fn config(&self) -> &NodeConfig {
        &self.shared.inner.config
    }

    /// The node's serving part (tests inside the crate).
    #[cfg(test)]
    pub(crate) fn serving(&self) -> &Arc<Serving> {
        &self.shared.inner.serving
    }

    /// The handle to the node's network task (for tools and tests that speak the protocol).
    pub fn network(&self) -> &NetworkHandle {
        &self.shared.inner.net
    }

    /// The node's store.
    pub fn store(&self) -> &Store {
        &self.shared.inner.store
    }

    /// Listen addresses ending in `/p2p/<peer id>`, waiting up to 5 s for the first one.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NodeError> {
        for _ in 0..100 {
            let addrs = self.shared.inner.net.listen_addrs().await?;
            if !addrs.is_empty() {
                return Ok(addrs);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Vec::new())
    }

    /// Connects to a peer at `addr` (ending in `/p2p/<peer id>`).
    pub async fn connect(&self, addr: Multiaddr) -> Result<PeerId, NodeError> {
        Ok(self.shared.inner.net.dial(addr, Duration::from_secs(10)).await?)
    }

    /// Connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NodeError> {
        Ok(self.shared.inner.net.peers().await?)
    }

    /// This node's gossip score of `peer` and whether it keeps `peer` in its manifest mesh.
    pub async fn gossip_standing(&self, peer: PeerId) -> Result<(Option<f64>, bool), NodeError> {
        Ok(self.shared.inner.net.gossip_standing(peer).await?)
    }

    /// Transfer statistics.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.inner.stats.snapshot()
    }

    /// Publishes a file or folder: hash, sign, store, gossip, provide, name record.
    pub async fn publish(
        &self,
        req: PublishRequest,
        progress: Arc<dyn Fn(u64, u64) + Send + Sync>,
    ) -> Result<Manifest, NodeError> {
        let inner = self.shared.inner.clone();
        let manifest = tokio::task::spawn_blocking(move || {
            let data_dir = inner.config.data_dir();
            publish::prepare(&inner.store, &data_dir, &inner.secret, &req, inner.config.hash_threads(), &*progress)
        })
        .await
        .map_err(|e| NodeError::Task(e.to_string()))??;
        self.announce(&manifest).await?;
        Ok(manifest)
    }

    /// Gossips a manifest, provides it in the DHT and stores its name record.
    async fn announce(&self, manifest: &Manifest) -> Result<(), NodeError> {
        let net = &self.shared.inner.net;
        net.send(Command::Announce { bytes: manifest.bytes().to_vec() }).await?;
        net.send(Command::Provide { key: manifest.id() }).await?;
        if manifest.body().publisher == self.publisher() {
            let b = manifest.body();
            let record = NameRecord::sign(&self.shared.inner.secret, b.slug.clone(), b.version, manifest.id())
                .and_then(|r| r.encode())
                .map_err(|e| NodeError::Record(e.to_string()))?;
            net.send(Command::PutRecord { key: name_key(&b.publisher, &b.slug), value: record }).await?;
        }
        Ok(())
    }

    /// Provides every complete local dataset again (after a restart).
    async fn reannounce(&self) -> Result<(), NodeError> {
        for local in self.shared.inner.store.locals()? {
            if local.complete {
                self.shared.inner.net.send(Command::Provide { key: local.manifest }).await?;
            }
        }
        Ok(())
    }

    fn reconnect_known_peers(&self) {
        let Ok(peers) = self.shared.inner.store.known_peers(32) else { return };
        for (_, addrs) in peers {
            for addr in addrs.iter().filter_map(|a| a.parse::<Multiaddr>().ok()) {
                let net = self.shared.inner.net.clone();
                self.shared.inner.tasks.spawn(async move {
                    let _ = net.dial(addr, Duration::from_secs(10)).await;
                });
            }
        }
    }

    fn resume_fetches(&self) -> Result<(), NodeError> {
        for local in self.shared.inner.store.locals()? {
            if local.kind == LocalKind::Fetched && !local.complete {
                tracing::info!(manifest = %local.manifest.short(), "resuming fetch");
                let fetcher = self.shared.inner.fetcher.clone();
                self.shared.inner.tasks.spawn(async move {
                    if let Err(e) = fetch::fetch(&fetcher, local.manifest, &local.root, FetchOptions::default()).await {
                        tracing::warn!(manifest = %local.manifest.short(), "resumed fetch failed: {e}");
                    }
                });
            }
        }
        Ok(())
    }

    /// Resolves a manifest id (64 hex) or `publisher/slug` to the newest known manifest id
    /// (text from callers that have not parsed it: see [`Node::resolve_target`]).
    pub async fn resolve(&self, target: &str) -> Result<ContentId, NodeError> {
        self.resolve_target(&parse_target(target)?).await
    }

    /// Resolves a target to a manifest id: an id is itself; a name is the highest version
    /// known locally or in the DHT.
    pub async fn resolve_target(&self, target: &Target) -> Result<ContentId, NodeError> {
        let (publisher, slug) = match target {
            Target::Id(id) => return Ok(*id),
            Target::Name { publisher, slug } => (publisher, slug),
        };
        let local = self.shared.inner.store.resolve(publisher, slug)?;
        let mut best = local;
        let records = self.shared.inner.net.get_record(name_key(publisher, slug)).await.unwrap_or_default();
        for bytes in records {
            if let Ok(r) = NameRecord::decode(&bytes) {
                if r.body.publisher == *publisher
                    && r.body.slug == *slug
                    && best.is_none_or(|(v, _)| r.body.version > v)
                {
                    best = Some((r.body.version, r.body.manifest));
                }
            }
        }
        best.map(|(_, id)| id).ok_or_else(|| NodeError::NotFound(format!("no dataset named {target} is known")))
    }

    /// Fetches dataset `target` (id or `publisher/slug`, as text) into folder `root`; see
    /// [`Node::fetch_target`].
    pub async fn fetch(&self, target: &str, root: &Path, opts: FetchOptions) -> Result<FetchReport, NodeError> {
        self.fetch_target(&parse_target(target)?, root, opts).await
    }

    /// Fetches dataset `target` into folder `root`.
    pub async fn fetch_target(
        &self,
        target: &Target,
        root: &Path,
        opts: FetchOptions,
    ) -> Result<FetchReport, NodeError> {
        let id = match tokio::time::timeout(opts.timeout, self.resolve_target(target)).await {
            Ok(r) => r?,
            Err(_) => return Err(NodeError::NotFound(format!("timed out resolving {target}"))),
        };
        Ok(fetch::fetch(&self.shared.inner.fetcher, id, root, opts).await?)
    }

    /// The trust policy in force (config plus keys added by the operator).
    pub fn trust_policy(&self) -> lien_protocol::trust::TrustPolicy {
        self.shared.inner.trust.policy()
    }

    /// The organisation that published `m`, as this node knows it: verified through the trust
    /// chain when a root vouches for the publisher, else as the publisher declared it.
    pub fn organisation_of(&self, m: &Manifest) -> crate::trust::Organisation {
        crate::trust::Organisation::of(self.check_trust(m).ok(), &m.body().metadata.organisation)
    }

    /// Whether this node trusts the manifest's publisher for its name, and how.
    pub fn check_trust(&self, m: &Manifest) -> Result<lien_protocol::trust::Trusted, lien_protocol::trust::TrustError> {
        self.shared.inner.trust.check_manifest(m)
    }

    /// Whether `key` is revoked.
    pub fn is_revoked(&self, key: &PublisherKey) -> bool {
        self.shared.inner.trust.is_revoked(key)
    }

    /// Trust records held in memory because their issuer is not trusted here (not stored, not
    /// forwarded, not served; used if the issuer becomes trusted).
    pub fn trust_records_waiting(&self) -> usize {
        self.shared.inner.trust.waiting()
    }

    /// Trusts `key` as a root or a publisher (stored; survives restarts).
    pub async fn trust_add(&self, key: PublisherKey, kind: crate::store::TrustKind) -> Result<(), NodeError> {
        let inner = self.shared.inner.clone();
        tokio::task::spawn_blocking(move || {
            inner.store.set_trusted_key(&key, kind)?;
            Ok(inner.trust.reload_policy(&inner.config, &inner.store)?)
        })
        .await
        .map_err(|e| NodeError::Task(e.to_string()))?
    }

    /// Stops trusting `key` directly; returns false if it was not in the store (keys from
    /// `lien.toml` are removed there).
    pub async fn trust_remove(&self, key: PublisherKey) -> Result<bool, NodeError> {
        let inner = self.shared.inner.clone();
        tokio::task::spawn_blocking(move || {
            let removed = inner.store.remove_trusted_key(&key)?;
            inner.trust.reload_policy(&inner.config, &inner.store)?;
            Ok(removed)
        })
        .await
        .map_err(|e| NodeError::Task(e.to_string()))?
    }

    /// Signs a delegation from this node's publisher key to `subject`, keeps it and gossips it.
    /// Returns the record's canonical bytes.
    pub async fn delegate(
        &self,
        subject: PublisherKey,
        organisation: &str,
        prefix: &str,
        days: u64,
        can_delegate: bool,
    ) -> Result<Vec<u8>, NodeError> {
        use lien_protocol::trust::{Delegation, DelegationBody, TrustRecord};
        let now = crate::trust::now_secs();
        let body = DelegationBody {
            issuer: self.publisher(),
            subject,
            organisation: organisation.to_owned(),
            prefix: prefix.to_owned(),
            not_before: now,
            not_after: now.saturating_add(days.saturating_mul(86_400)),
            can_delegate,
        };
        let record = TrustRecord::Delegation(
            Delegation::sign(&self.shared.inner.secret, body).map_err(|e| NodeError::Record(e.to_string()))?,
        );
        Ok(self.import_trust_record(record.encode().map_err(|e| NodeError::Record(e.to_string()))?).await?.0)
    }

    /// Signs a revocation of `subject` with this node's publisher key, keeps it and gossips it.
    pub async fn revoke(&self, subject: PublisherKey, reason: &str) -> Result<Vec<u8>, NodeError> {
        use lien_protocol::trust::{Revocation, TrustRecord};
        let r = Revocation::sign(&self.shared.inner.secret, subject, crate::trust::now_secs(), reason)
            .map_err(|e| NodeError::Record(e.to_string()))?;
        let bytes = TrustRecord::Revocation(r).encode().map_err(|e| NodeError::Record(e.to_string()))?;
        Ok(self.import_trust_record(bytes).await?.0)
    }

    /// Verifies a trust record (from a file or another node) and adds it: when its issuer is
    /// trusted here (or is this node's own key) it is stored and gossiped; otherwise it is held
    /// in memory only, and the returned [`Admission`] says so.
    pub async fn import_trust_record(&self, bytes: Vec<u8>) -> Result<(Vec<u8>, Admission), NodeError> {
        let inner = self.shared.inner.clone();
        let kept = bytes.clone();
        let admission = tokio::task::spawn_blocking(move || inner.trust.accept(&inner.store, &kept))
            .await
            .map_err(|e| NodeError::Task(e.to_string()))??;
        if matches!(admission, Admission::Admitted | Admission::Known) && self.shared.inner.trust.serves_bytes(&bytes) {
            self.shared.inner.net.send(Command::AnnounceTrust { bytes: bytes.clone() }).await?;
        }
        Ok((bytes, admission))
    }

    /// The audit log's path.
    pub fn audit_path(&self) -> PathBuf {
        self.shared.inner.config.home.join(crate::audit::AUDIT_FILE)
    }

    /// Verifies the audit log: (entries, hash of the last entry), or where it is broken.
    pub fn audit_verify(&self) -> Result<(u64, ContentId), AuditError> {
        self.shared.inner.audit.sync()?;
        crate::audit::verify(&self.audit_path())
    }

    /// Fetches only chunks `range` of one file of dataset `id` into `root` (the dataset stays
    /// incomplete unless nothing else was missing): the HTTP gateway's on-demand path.
    pub async fn fetch_range(
        &self,
        id: ContentId,
        root: &Path,
        opts: FetchOptions,
        range: crate::fetch::ChunkRange,
    ) -> Result<FetchReport, NodeError> {
        Ok(fetch::fetch_range(&self.shared.inner.fetcher, id, root, opts, range).await?)
    }

    /// Searches the catalog: the newest version of each matching name, best match first (see
    /// [`crate::catalog::index`] for the ranking), at most `limit`. Blocking.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Manifest>, NodeError> {
        let q = Query { text: query.to_owned(), rows: limit, ..Query::default() };
        let docs = self.with_catalog(|index, _| index.search(&q).docs)?;
        let mut found = Vec::with_capacity(docs.len());
        for doc in docs {
            if let Some(m) = self.shared.inner.store.manifest(&doc.id)? {
                found.push(m);
            }
        }
        Ok(found)
    }

    /// Brings the catalog index up to date and runs `f` on it (with the store, to load what the
    /// index points at). Blocking: call it off the async threads.
    pub fn with_catalog<T>(&self, f: impl FnOnce(&CatalogIndex, &Store) -> T) -> Result<T, NodeError> {
        let index = self.shared.inner.catalog.index()?;
        Ok(f(&index, &self.shared.inner.store))
    }

    /// The files of `manifest`, if its list is inline or stored here. Blocking.
    pub fn files_of(&self, manifest: &Manifest) -> Result<Option<Vec<lien_protocol::FileEntry>>, NodeError> {
        Ok(local::files_of(&self.shared.inner.store, manifest)?)
    }

    /// Runs blocking work on the node's inner state off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, NodeError> + Send + 'static,
    ) -> Result<T, NodeError> {
        let inner = self.shared.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner)).await.map_err(|e| NodeError::Task(e.to_string()))?
    }

    /// Every dataset held here (published or fetched) with its sizes, oldest first.
    pub async fn local_datasets(&self) -> Result<Vec<LocalSummary>, NodeError> {
        self.blocking(|inner| Ok(local::summaries(&inner.store)?)).await
    }

    /// How much this node holds (datasets, their bytes, catalog size, store size).
    pub async fn usage(&self) -> Result<local::Usage, NodeError> {
        self.blocking(|inner| Ok(local::usage(&inner.store)?)).await
    }

    /// Pins (kept even when space runs short) or unpins local dataset `id`.
    pub async fn set_pinned(&self, id: ContentId, pinned: bool) -> Result<LocalDataset, NodeError> {
        self.blocking(move |inner| Ok(local::set_pinned(&inner.store, &id, pinned)?)).await
    }

    /// Forgets local dataset `id` and stops serving its files; deletes those in the node's data
    /// folder that no other local dataset lists (see [`local::remove`]).
    pub async fn remove_local(&self, id: ContentId) -> Result<Removal, NodeError> {
        self.blocking(move |inner| Ok(local::remove(&inner.store, &inner.config.data_dir(), &id)?)).await
    }

    /// Re-hashes every file of local dataset `id` on disk and reports each one.
    pub async fn verify_local(&self, id: ContentId) -> Result<Vec<FileCheck>, NodeError> {
        self.blocking(move |inner| Ok(local::verify(&inner.store, &id, inner.config.hash_threads())?)).await
    }

    /// A manifest from the catalog.
    pub fn manifest(&self, id: &ContentId) -> Result<Option<Manifest>, NodeError> {
        Ok(self.shared.inner.store.manifest(id)?)
    }

    /// A token cancelled when the node begins to shut down (cancelling it does not stop the
    /// node): what servers built on the node (the HTTP API) stop with.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shared.inner.tasks.stop_token().child_token()
    }

    /// Stops every task the node spawned and waits for them: the loops, catch-up, fetches and
    /// mirrors stop at their next await, answers being sent are finished, then the network task
    /// stops. When this returns, no task of the node holds its store any more: once the caller
    /// drops its `Node` handles, the store can be opened again at once. Calling it again is
    /// harmless.
    pub async fn shutdown(&self) {
        let inner = &self.shared.inner;
        if !inner.tasks.stop(STOP_LIMIT).await {
            tracing::warn!("some node tasks were still running {STOP_LIMIT:?} after the stop");
        }
        let net_task = self.shared.net_task.lock().ok().and_then(|mut t| t.take());
        if let Some(mut task) = net_task {
            let _ = tokio::time::timeout(STOP_LIMIT, inner.net.send(Command::Shutdown)).await;
            if tokio::time::timeout(STOP_LIMIT, &mut task).await.is_err() {
                tracing::warn!("the network task did not stop within {STOP_LIMIT:?}; aborting it");
                task.abort();
                let _ = task.await;
            }
        }
        // Work the tasks started on the blocking pool (an fsync, a store write) cannot be
        // cancelled: it ends on its own, soon. Wait for it to give back the node's state.
        let released = || Arc::strong_count(inner) == 1 && inner.holders() <= self.shared.own_holders;
        for _ in 0..STOP_LIMIT.as_millis() / STOP_POLL.as_millis() {
            if released() {
                return;
            }
            tokio::time::sleep(STOP_POLL).await;
        }
        if !released() {
            tracing::warn!("blocking work still holds the store {STOP_LIMIT:?} after the stop");
        }
    }
}

/// The IP the bulk listener binds: that of the first TCP listen address (none without TCP).
fn listens_on_tcp(config: &NodeConfig) -> bool {
    config.listen.iter().any(|a| tcp_port_of(a).is_some())
}

/// The TCP port of a multiaddr, if it has one.
pub(crate) fn tcp_port_of(addr: &Multiaddr) -> Option<u16> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
        _ => None,
    })
}

/// Opens the audit log; a log that no longer verifies is set aside (kept as evidence) and a new
/// one started, with an error in the log, rather than refusing to run.
fn open_audit_log(path: &Path) -> Result<AuditLog, NodeError> {
    match AuditLog::open(path) {
        Ok(log) => Ok(log),
        Err(AuditError::Broken { line, reason }) => {
            let aside = path.with_extension(format!("broken-{}", crate::trust::now_secs()));
            tracing::error!(line, %reason, kept = %aside.display(), "audit log does not verify; starting a new one");
            std::fs::rename(path, &aside).map_err(|source| NodeError::Home { path: path.to_path_buf(), source })?;
            Ok(AuditLog::open(path)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Splits `publisher/slug`.
pub fn parse_name(text: &str) -> Result<(PublisherKey, Slug), NodeError> {
    match parse_target(text)? {
        Target::Name { publisher, slug } => Ok((publisher, slug)),
        Target::Id(_) => Err(NodeError::Invalid(format!("{text:?} is a manifest id, not PUBLISHER/NAME"))),
    }
}

/// Parses a manifest id or `publisher/slug`, as bad input when it is neither.
pub fn parse_target(text: &str) -> Result<Target, NodeError> {
    text.parse().map_err(|e: crate::target::TargetError| NodeError::Invalid(e.to_string()))
}
