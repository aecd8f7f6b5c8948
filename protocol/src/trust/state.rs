//! The trust state: the operator's policy, the records admitted under it, and the trusted set
//! computed from them.
//!
//! The trusted set (a [`Graph`]) is computed breadth-first from the roots, once per change of
//! the records or of the time window in which every delegation's validity stays the same, so
//! [`TrustState::check`] is a hash lookup. Adding a delegation from an already trusted issuer
//! extends the set from that edge only; a counted revocation or a window boundary recomputes it.
//!
//! Revocations and the trusted set depend on each other (a delegator's revocation counts only if
//! the delegator is trusted). The set is the least fixed point of: start with the revocations
//! signed by the key itself or by a root; compute the set without the revoked keys; add the
//! revocations whose issuer is trusted to delegate and holds a valid delegation to the subject;
//! repeat until no revocation is added. The revoked set only grows, so this ends after at most
//! one round per revoked key.
//!
//! Records whose issuer is out of reach of every root are **not admitted**: they wait in a
//! bounded in-memory pool (records can arrive before the delegation that makes their issuer
//! trusted) and are admitted when their issuer comes within reach. "Within reach" ignores
//! revocations and validity windows (a second graph, `reach`), so the records admitted, and hence
//! every answer, do not depend on the order in which records arrive. The caller stores admitted
//! records, and forwards and serves only those whose issuer is trusted now ([`TrustState::admits`],
//! [`TrustState::serves`]): a revoked or expired issuer's records are kept but not passed on.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use super::{Delegation, Revocation, TrustError, TrustRecord, DEFAULT_MAX_DEPTH};
use crate::id::ContentId;
use crate::keys::PublisherKey;
use crate::slug::Slug;

/// Most admitted records signed by one issuer (a ministry certifying its departments and node keys).
pub const MAX_RECORDS_PER_ISSUER: usize = 4096;
/// Most admitted delegations, and most admitted revocations, about one subject.
pub const MAX_RECORDS_PER_SUBJECT: usize = 32;
/// Most records waiting for their issuer to become trusted (oldest dropped first).
pub const MAX_PENDING: usize = 1024;
/// Most distinct ways (prefix, organisation, delegation right) one key is trusted; the shortest
/// chains are kept.
const MAX_GRANTS_PER_KEY: usize = 8;

/// Which keys this node trusts on its own authority.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustPolicy {
    /// Roots whose delegations are accepted.
    pub roots: BTreeSet<PublisherKey>,
    /// Publisher keys accepted directly.
    pub publishers: BTreeSet<PublisherKey>,
    /// Longest chain from a root to a publisher.
    pub max_depth: usize,
    /// This node's own publisher key: records it signed are admitted here (stored and served to
    /// peers, who judge them by their own trust) whatever its standing; they grant nothing more
    /// than any other record.
    pub own: Option<PublisherKey>,
}

/// How a publisher came to be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trusted {
    /// No roots or keys configured: an open network.
    Open,
    /// The key is trusted directly.
    Direct,
    /// Through delegations; the organisations from the publisher up to the root.
    Delegated {
        /// Verified organisation names, publisher first: each is the one the chain allows.
        organisations: Vec<String>,
    },
}

/// What [`TrustState::add`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Admitted now: store it, forward it, serve it.
    Admitted,
    /// Already known (admitted or waiting).
    Known,
    /// Its issuer is not trusted (yet): kept in memory only, admitted if the issuer becomes
    /// trusted; not to be stored, forwarded or served.
    Pending,
    /// Over a per-issuer or per-subject bound: dropped.
    Refused(&'static str),
}

/// Whether organisation `child` lies inside `parent`: equal, or a sub-unit written
/// `parent/unit` (any depth: `Bo Y te/Cuc CNTT/Phong 1`).
pub fn org_within(child: &str, parent: &str) -> bool {
    match child.strip_prefix(parent) {
        Some("") => true,
        Some(rest) => rest.strip_prefix('/').is_some_and(|unit| !unit.trim().is_empty()),
        None => false,
    }
}

/// One way a key is trusted: the effect of one chain of delegations from a root.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    /// Dataset names the key may publish start with this (the longest prefix on the chain).
    prefix: String,
    /// Organisations from the key up to the root's delegation (verified; empty for a root).
    organisations: Vec<String>,
    /// Whether the key may delegate.
    can_delegate: bool,
    /// Delegations on the chain (0 for a root).
    depth: usize,
}

impl Grant {
    fn root() -> Self {
        Grant { prefix: String::new(), organisations: Vec::new(), can_delegate: true, depth: 0 }
    }

    /// The grant the subject of `d` receives through this grant of its issuer, if the
    /// delegation is within what this grant allows.
    fn extend(&self, d: &Delegation, max_depth: usize) -> Result<Grant, Blocked> {
        let b = &d.body;
        if !self.can_delegate {
            return Err(Blocked::Untrusted);
        }
        if self.depth + 1 > max_depth {
            return Err(Blocked::TooDeep);
        }
        if let Some(own) = self.organisations.first() {
            if !org_within(&b.organisation, own) {
                return Err(Blocked::Untrusted);
            }
        }
        let prefix = if b.prefix.starts_with(&self.prefix) {
            b.prefix.clone()
        } else if self.prefix.starts_with(&b.prefix) {
            self.prefix.clone()
        } else {
            return Err(Blocked::Untrusted);
        };
        let mut organisations = Vec::with_capacity(self.organisations.len() + 1);
        organisations.push(b.organisation.clone());
        organisations.extend(self.organisations.iter().cloned());
        Ok(Grant { prefix, organisations, can_delegate: b.can_delegate, depth: self.depth + 1 })
    }

    /// Whether `self` allows everything `other` allows.
    fn covers(&self, other: &Grant) -> bool {
        other.prefix.starts_with(&self.prefix)
            && self.organisations.first() == other.organisations.first()
            && (self.can_delegate || !other.can_delegate)
            && self.depth <= other.depth
    }
}

/// Why a delegation gave its subject nothing (for error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blocked {
    Untrusted,
    TooDeep,
}

/// The trusted set at one time window.
#[derive(Debug, Clone, Default)]
struct Graph {
    /// Every trusted key's grants (roots included).
    grants: HashMap<PublisherKey, Vec<Grant>>,
    /// Keys whose revocation counts.
    revoked: HashSet<PublisherKey>,
    /// Keys that a chain reached only beyond the depth limit.
    too_deep: HashSet<PublisherKey>,
    /// The graph holds for times in `from..until`.
    from: u64,
    until: u64,
}

impl Graph {
    fn holds_at(&self, now: u64) -> bool {
        (self.from..self.until).contains(&now)
    }

    /// Whether `key` holds a grant whose delegations can give anything within `max_depth`.
    fn may_delegate(&self, key: &PublisherKey, max_depth: usize) -> bool {
        self.grants.get(key).is_some_and(|gs| gs.iter().any(|g| g.can_delegate && g.depth < max_depth))
    }

    /// Adds `grant` to `key` unless an existing grant covers it; returns whether it was added.
    fn offer(&mut self, key: PublisherKey, grant: Grant) -> bool {
        let list = self.grants.entry(key).or_default();
        if list.iter().any(|g| g.covers(&grant)) {
            return false;
        }
        list.retain(|g| !grant.covers(g));
        if list.len() >= MAX_GRANTS_PER_KEY {
            // Keep the shortest chains: replace the deepest one if the new one is shorter.
            let Some((at, deepest)) = list.iter().enumerate().max_by_key(|(_, g)| g.depth) else { return false };
            if deepest.depth <= grant.depth {
                return false;
            }
            list.remove(at);
        }
        list.push(grant);
        true
    }
}

/// Admitted delegations, indexed both ways.
#[derive(Debug, Clone, Default)]
struct Delegations {
    /// By subject.
    by_subject: HashMap<PublisherKey, Vec<Delegation>>,
    /// By issuer: (subject, index into `by_subject[subject]`); records are never removed.
    by_issuer: HashMap<PublisherKey, Vec<(PublisherKey, usize)>>,
}

impl Delegations {
    fn to(&self, subject: &PublisherKey) -> &[Delegation] {
        self.by_subject.get(subject).map(Vec::as_slice).unwrap_or_default()
    }

    fn from(&self, issuer: &PublisherKey) -> impl Iterator<Item = &Delegation> {
        self.by_issuer
            .get(issuer)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|(subject, at)| self.by_subject.get(subject).and_then(|ds| ds.get(*at)))
    }

    fn all(&self) -> impl Iterator<Item = &Delegation> {
        self.by_subject.values().flatten()
    }
}

/// A node's trust policy plus the delegations and revocations it has admitted.
#[derive(Debug, Clone, Default)]
pub struct TrustState {
    policy: TrustPolicy,
    /// Admitted delegations.
    delegations: Delegations,
    /// Admitted revocations by subject.
    revocations: HashMap<PublisherKey, Vec<Revocation>>,
    /// Admitted records per issuer.
    per_issuer: HashMap<PublisherKey, usize>,
    /// Admitted records by id.
    admitted: HashMap<ContentId, TrustRecord>,
    /// Records waiting for their issuer, oldest first, with their ids.
    pending: VecDeque<(ContentId, TrustRecord)>,
    /// Records admitted since [`Self::drain_admitted`] was last called.
    newly_admitted: Vec<TrustRecord>,
    /// The trusted set now: what checks answer from.
    graph: Graph,
    /// Who could be trusted at some time: the same chains, ignoring revocations and validity
    /// windows. Admission asks this one, so the records admitted do not depend on the order in
    /// which they arrive, nor on when.
    reach: Graph,
}

impl TrustState {
    /// A state with `policy` and no records.
    pub fn new(mut policy: TrustPolicy) -> Self {
        if policy.max_depth == 0 {
            policy.max_depth = DEFAULT_MAX_DEPTH;
        }
        let mut s = Self { policy, ..Self::default() };
        s.graph = s.compute(0);
        s.reach = s.compute_without(&HashSet::new(), None);
        s
    }

    /// The same records (admitted and waiting) under a new policy.
    pub fn with_policy(&self, policy: TrustPolicy, now: u64) -> Self {
        let mut fresh = Self::new(policy);
        fresh.add_all(self.records().into_iter().chain(self.pending.iter().map(|(_, r)| r.clone())), now);
        fresh
    }

    /// Adds many verified records in any order (loading a store, importing a file): each is
    /// admitted once its issuer is trusted, whatever the order; the rest wait as with [`Self::add`].
    /// Returns how many were admitted.
    pub fn add_all(&mut self, records: impl IntoIterator<Item = TrustRecord>, now: u64) -> usize {
        self.refresh(now);
        let mut waiting: Vec<(ContentId, TrustRecord)> = Vec::new();
        for r in records {
            if let Ok(id) = r.id() {
                if !self.admitted.contains_key(&id) && !waiting.iter().any(|(w, _)| *w == id) {
                    waiting.push((id, r));
                }
            }
        }
        let mut admitted = 0;
        // Each pass admits at least one record or ends.
        loop {
            let before = waiting.len();
            let mut rest = Vec::with_capacity(waiting.len());
            for (id, r) in waiting {
                if self.issuer_trusted(&r, &self.reach) {
                    if self.admit(id, r, now) == Admission::Admitted {
                        admitted += 1;
                    }
                } else {
                    rest.push((id, r));
                }
            }
            waiting = rest;
            if waiting.len() == before || waiting.is_empty() {
                break;
            }
        }
        for (id, r) in waiting {
            self.admit(id, r, now);
        }
        self.admit_pending(now);
        admitted
    }

    /// The policy.
    pub fn policy(&self) -> &TrustPolicy {
        &self.policy
    }

    /// True when no roots or keys are configured (any validly signed manifest is accepted).
    pub fn is_open(&self) -> bool {
        self.policy.roots.is_empty() && self.policy.publishers.is_empty()
    }

    /// Whether the trusted set must be recomputed before checks at `now` are fast.
    pub fn is_stale(&self, now: u64) -> bool {
        !self.graph.holds_at(now)
    }

    /// Recomputes the trusted set for `now` if a validity window opened or closed since.
    pub fn refresh(&mut self, now: u64) {
        if self.is_stale(now) {
            self.graph = self.compute(now);
            self.admit_pending(now);
        }
    }

    /// Adds a verified record at time `now`: admitted if its issuer is trusted to sign it.
    pub fn add(&mut self, record: TrustRecord, now: u64) -> Admission {
        let Ok(id) = record.id() else { return Admission::Refused("record does not encode") };
        if self.admitted.contains_key(&id) || self.pending.iter().any(|(p, _)| *p == id) {
            return Admission::Known;
        }
        self.refresh(now);
        let admission = self.admit(id, record, now);
        if admission == Admission::Admitted {
            self.admit_pending(now);
        }
        admission
    }

    /// Whether the record's issuer is trusted now to sign it (what the gossip validator asks
    /// before forwarding, and catch-up before serving): stricter than admission, it leaves out
    /// revoked and expired issuers.
    pub fn admits(&self, record: &TrustRecord, now: u64) -> bool {
        let graph = self.graph_at(now);
        self.issuer_trusted(record, &graph)
    }

    /// Whether the record with this id is admitted and its issuer is still trusted to sign it:
    /// what catch-up serves to other nodes.
    pub fn serves(&self, id: &ContentId) -> bool {
        self.admitted.get(id).is_some_and(|r| self.issuer_trusted(r, &self.graph))
    }

    /// Every admitted record.
    pub fn records(&self) -> Vec<TrustRecord> {
        self.admitted.values().cloned().collect()
    }

    /// Records admitted since the last call (the one just added and any waiting record it made
    /// admissible): what the caller stores.
    pub fn drain_admitted(&mut self) -> Vec<TrustRecord> {
        std::mem::take(&mut self.newly_admitted)
    }

    /// Number of records waiting for their issuer to become trusted.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Whether `key` is withdrawn at `now` by a revocation that counts.
    pub fn is_revoked(&self, key: &PublisherKey, now: u64) -> bool {
        self.graph_at(now).revoked.contains(key)
    }

    /// Checks that `publisher` may publish `slug` at time `now` (Unix seconds).
    pub fn check(&self, publisher: &PublisherKey, slug: &Slug, now: u64) -> Result<Trusted, TrustError> {
        let graph = self.graph_at(now);
        if graph.revoked.contains(publisher) {
            return Err(TrustError::Revoked(publisher.to_string()));
        }
        if self.is_open() {
            return Ok(Trusted::Open);
        }
        if self.policy.publishers.contains(publisher) {
            return Ok(Trusted::Direct);
        }
        let grants: Vec<&Grant> =
            graph.grants.get(publisher).map(|gs| gs.iter().filter(|g| g.depth > 0).collect()).unwrap_or_default();
        // Ties between grants go to a total order (shortest chain, then organisations, then
        // prefix), so the answer never depends on the order records arrived in.
        let order = |g: &&&Grant| (g.depth, g.organisations.clone(), g.prefix.clone());
        if let Some(g) = grants.iter().filter(|g| slug.as_str().starts_with(&g.prefix)).min_by_key(order) {
            return Ok(Trusted::Delegated { organisations: g.organisations.clone() });
        }
        if let Some(g) = grants.iter().min_by_key(order) {
            return Err(TrustError::WrongPrefix { prefix: g.prefix.clone(), slug: slug.as_str().to_owned() });
        }
        Err(self.why_untrusted(publisher, &graph, now))
    }

    /// The verified organisations `key` is delegated to (from a trusted root, at time `now`),
    /// whatever the dataset name: what a serving node checks before serving restricted data.
    pub fn organisations_of(&self, key: &PublisherKey, now: u64) -> Vec<String> {
        let graph = self.graph_at(now);
        if graph.revoked.contains(key) {
            return Vec::new();
        }
        let mut out: Vec<String> = Vec::new();
        for g in graph.grants.get(key).map(Vec::as_slice).unwrap_or_default() {
            if let Some(org) = g.organisations.first() {
                if !out.contains(org) {
                    out.push(org.clone());
                }
            }
        }
        out
    }

    /// The graph for `now`: the cached one, or (slow path) one computed for this call.
    fn graph_at(&self, now: u64) -> std::borrow::Cow<'_, Graph> {
        if self.graph.holds_at(now) {
            std::borrow::Cow::Borrowed(&self.graph)
        } else {
            std::borrow::Cow::Owned(self.compute(now))
        }
    }

    /// The most useful reason `key` has no grant.
    fn why_untrusted(&self, key: &PublisherKey, graph: &Graph, now: u64) -> TrustError {
        if graph.too_deep.contains(key) {
            return TrustError::TooDeep(key.to_string());
        }
        // The most telling reason wins, whatever order the delegations arrived in: a revoked
        // issuer (the smallest key, if several) over an expired link over plain "untrusted".
        let mut revoked_issuer: Option<&PublisherKey> = None;
        let mut expired = false;
        let waiting = self.pending.iter().filter_map(|(_, r)| match r {
            TrustRecord::Delegation(d) if &d.body.subject == key => Some(d),
            _ => None,
        });
        for d in self.delegations.to(key).iter().chain(waiting) {
            let b = &d.body;
            let issuer_at_limit = graph
                .grants
                .get(&b.issuer)
                .is_some_and(|gs| gs.iter().any(|g| g.can_delegate && g.depth >= self.policy.max_depth));
            if issuer_at_limit {
                return TrustError::TooDeep(key.to_string());
            }
            if graph.revoked.contains(&b.issuer) {
                if revoked_issuer.is_none_or(|k| b.issuer.to_string() < k.to_string()) {
                    revoked_issuer = Some(&b.issuer);
                }
            } else if graph.too_deep.contains(&b.issuer) {
                return TrustError::TooDeep(key.to_string());
            } else if (now < b.not_before || now > b.not_after) && graph.grants.contains_key(&b.issuer) {
                expired = true;
            }
        }
        match revoked_issuer {
            Some(issuer) => TrustError::Revoked(issuer.to_string()),
            None if expired => TrustError::Expired(key.to_string()),
            None => TrustError::Untrusted(key.to_string()),
        }
    }

    /// Whether the record's issuer is trusted to sign it under `graph`.
    fn issuer_trusted(&self, record: &TrustRecord, graph: &Graph) -> bool {
        let issuer = match record {
            TrustRecord::Delegation(d) => &d.body.issuer,
            TrustRecord::Revocation(r) => &r.body.issuer,
        };
        if self.policy.own.as_ref() == Some(issuer) {
            return true;
        }
        match record {
            TrustRecord::Delegation(d) => {
                let issuer = &d.body.issuer;
                !graph.revoked.contains(issuer) && graph.may_delegate(issuer, self.policy.max_depth)
            }
            TrustRecord::Revocation(r) => {
                let (issuer, subject) = (&r.body.issuer, &r.body.subject);
                if issuer == subject {
                    // A key may always withdraw itself; store it where the key matters here.
                    return self.is_open()
                        || self.policy.roots.contains(subject)
                        || self.policy.publishers.contains(subject)
                        || graph.grants.contains_key(subject);
                }
                self.policy.roots.contains(issuer)
                    || (!self.operator_trusted(subject)
                        && graph.may_delegate(issuer, self.policy.max_depth)
                        && !graph.revoked.contains(issuer)
                        && self.delegations.from(issuer).any(|d| &d.body.subject == subject))
            }
        }
    }

    /// Admits `record` if its issuer is within reach of a root, else queues it.
    fn admit(&mut self, id: ContentId, record: TrustRecord, now: u64) -> Admission {
        if !self.issuer_trusted(&record, &self.reach) {
            if self.pending.len() >= MAX_PENDING {
                self.pending.pop_front();
            }
            self.pending.push_back((id, record));
            return Admission::Pending;
        }
        let record_copy = record.clone();
        let (issuer, subject) = match &record {
            TrustRecord::Delegation(d) => (d.body.issuer, d.body.subject),
            TrustRecord::Revocation(r) => (r.body.issuer, r.body.subject),
        };
        if self.per_issuer.get(&issuer).copied().unwrap_or(0) >= MAX_RECORDS_PER_ISSUER {
            return Admission::Refused("the issuer has signed too many records");
        }
        match record {
            TrustRecord::Delegation(d) => {
                let list = self.delegations.by_subject.entry(subject).or_default();
                if list.len() >= MAX_RECORDS_PER_SUBJECT {
                    return Admission::Refused("too many delegations to this key");
                }
                list.push(d.clone());
                let at = list.len() - 1;
                self.delegations.by_issuer.entry(issuer).or_default().push((subject, at));
                self.note_window(&d, now);
                self.extend_from(&d, now);
            }
            TrustRecord::Revocation(r) => {
                let list = self.revocations.entry(subject).or_default();
                if list.len() >= MAX_RECORDS_PER_SUBJECT {
                    return Admission::Refused("too many revocations of this key");
                }
                list.push(r);
                if !self.graph.revoked.contains(&subject) {
                    self.graph = self.compute(now);
                }
            }
        }
        *self.per_issuer.entry(issuer).or_default() += 1;
        self.newly_admitted.push(record_copy.clone());
        self.admitted.insert(id, record_copy);
        Admission::Admitted
    }

    /// Admits waiting records whose issuer has become trusted, until none does.
    fn admit_pending(&mut self, now: u64) {
        loop {
            let ready = self.pending.iter().position(|(_, r)| self.issuer_trusted(r, &self.reach));
            let Some(at) = ready else { return };
            let Some((id, record)) = self.pending.remove(at) else { return };
            self.admit(id, record, now);
        }
    }

    /// Narrows the graph's time window to where `d`'s validity does not change.
    fn note_window(&mut self, d: &Delegation, now: u64) {
        let (from, until) = window_around(d, now);
        self.graph.from = self.graph.from.max(from);
        self.graph.until = self.graph.until.min(until);
    }

    /// Extends the trusted set through a newly admitted delegation; recomputes it instead when the
    /// extension makes a waiting revocation count.
    fn extend_from(&mut self, d: &Delegation, now: u64) {
        extend_through(&self.delegations, &mut self.reach, d, None, self.policy.max_depth);
        let b = &d.body;
        if now < b.not_before || now > b.not_after || self.graph.revoked.contains(&b.subject) {
            return;
        }
        let grown = extend_through(&self.delegations, &mut self.graph, d, Some(now), self.policy.max_depth);
        // A waiting revocation may now count: one by a key that just became trusted, or one by
        // this delegation's issuer of its subject (it counts only while such a delegation holds).
        let revocation_now_counts = self.revocations.values().flatten().any(|r| {
            !self.graph.revoked.contains(&r.body.subject)
                && (grown.contains(&r.body.issuer) || (r.body.issuer == b.issuer && r.body.subject == b.subject))
        });
        if revocation_now_counts {
            self.graph = self.compute(now);
        }
    }

    /// Whether this node's operator trusts `key` directly (a root or a direct publisher): such a
    /// key's trust does not come from any delegation, so only the key itself or a root withdraws
    /// it, never a key that happens to have delegated to it as well.
    fn operator_trusted(&self, key: &PublisherKey) -> bool {
        self.policy.roots.contains(key) || self.policy.publishers.contains(key)
    }

    /// The trusted set at `now`, from scratch (see the module doc for the fixed point).
    fn compute(&self, now: u64) -> Graph {
        let (mut from, mut until) = (0, u64::MAX);
        for d in self.delegations.all() {
            let (f, u) = window_around(d, now);
            from = from.max(f);
            until = until.min(u);
        }
        let mut revoked: HashSet<PublisherKey> = self
            .revocations
            .values()
            .flatten()
            .filter(|r| r.body.issuer == r.body.subject || self.policy.roots.contains(&r.body.issuer))
            .map(|r| r.body.subject)
            .collect();
        // Each round either adds a revoked key or ends; bounded by the number of revocations.
        let rounds = self.revocations.len() + 1;
        let mut graph = Graph::default();
        for _ in 0..rounds {
            graph = self.compute_without(&revoked, Some(now));
            let before = revoked.len();
            for r in self.revocations.values().flatten() {
                let (issuer, subject) = (&r.body.issuer, &r.body.subject);
                if revoked.contains(subject)
                    || revoked.contains(issuer)
                    || self.operator_trusted(subject)
                    || !graph.may_delegate(issuer, self.policy.max_depth)
                {
                    continue;
                }
                let delegated_now = self
                    .delegations
                    .to(subject)
                    .iter()
                    .any(|d| &d.body.issuer == issuer && now >= d.body.not_before && now <= d.body.not_after);
                if delegated_now {
                    revoked.insert(*subject);
                }
            }
            if revoked.len() == before {
                break;
            }
        }
        graph.revoked = revoked;
        graph.from = from;
        graph.until = until;
        graph
    }

    /// The trusted set at `now` when the keys in `revoked` are withdrawn.
    fn compute_without(&self, revoked: &HashSet<PublisherKey>, now: Option<u64>) -> Graph {
        let mut graph = Graph { revoked: revoked.clone(), ..Graph::default() };
        let mut queue = VecDeque::new();
        for root in &self.policy.roots {
            if !revoked.contains(root) && graph.offer(*root, Grant::root()) {
                queue.push_back((*root, Grant::root()));
            }
        }
        spread(&self.delegations, &mut graph, queue, now, self.policy.max_depth);
        graph
    }
}

/// Spreads the grants of `d`'s issuer in `graph` to its subject and onwards; returns the keys
/// that gained a grant. `now`: the time whose validity windows count (`None`: every window).
fn extend_through(
    delegations: &Delegations,
    graph: &mut Graph,
    d: &Delegation,
    now: Option<u64>,
    max_depth: usize,
) -> Vec<PublisherKey> {
    let b = &d.body;
    let Some(issuer_grants) = graph.grants.get(&b.issuer).cloned() else { return Vec::new() };
    let mut queue = VecDeque::new();
    for g in &issuer_grants {
        match g.extend(d, max_depth) {
            Ok(grant) => {
                if graph.offer(b.subject, grant.clone()) {
                    queue.push_back((b.subject, grant));
                }
            }
            Err(Blocked::TooDeep) => {
                graph.too_deep.insert(b.subject);
            }
            Err(Blocked::Untrusted) => {}
        }
    }
    spread(delegations, graph, queue, now, max_depth)
}

/// Breadth-first spread of new grants through the delegations valid at `now`; returns the keys
/// that gained a grant.
fn spread(
    delegations: &Delegations,
    graph: &mut Graph,
    mut queue: VecDeque<(PublisherKey, Grant)>,
    now: Option<u64>,
    max_depth: usize,
) -> Vec<PublisherKey> {
    let mut grown = Vec::new();
    while let Some((key, grant)) = queue.pop_front() {
        grown.push(key);
        if !grant.can_delegate {
            continue;
        }
        for d in delegations.from(&key) {
            let b = &d.body;
            let outside = now.is_some_and(|now| now < b.not_before || now > b.not_after);
            if outside || graph.revoked.contains(&b.subject) {
                continue;
            }
            match grant.extend(d, max_depth) {
                Ok(next) => {
                    if graph.offer(b.subject, next.clone()) {
                        queue.push_back((b.subject, next));
                    }
                }
                Err(Blocked::TooDeep) => {
                    graph.too_deep.insert(b.subject);
                }
                Err(Blocked::Untrusted) => {}
            }
        }
    }
    grown
}

/// The times around `now` between which `d`'s validity does not change: `[from, until)`.
fn window_around(d: &Delegation, now: u64) -> (u64, u64) {
    let (start, end) = (d.body.not_before, d.body.not_after.saturating_add(1));
    if now < start {
        (0, start)
    } else if now < end {
        (start, end)
    } else {
        (end, u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Delegation, DelegationBody, Revocation};
    use super::*;
    use crate::keys::PublisherSecret;

    fn key(n: u8) -> PublisherSecret {
        PublisherSecret::from_seed(&[n; 32])
    }

    const NOW: u64 = 1_800_000_000;
    const VALID: (u64, u64) = (NOW - 100, NOW + 100);

    fn delegation(
        issuer: &PublisherSecret,
        subject: &PublisherSecret,
        org: &str,
        prefix: &str,
        window: (u64, u64),
        can: bool,
    ) -> TrustRecord {
        let body = DelegationBody {
            issuer: issuer.public(),
            subject: subject.public(),
            organisation: org.into(),
            prefix: prefix.into(),
            not_before: window.0,
            not_after: window.1,
            can_delegate: can,
        };
        let record = TrustRecord::Delegation(Delegation::sign(issuer, body).unwrap());
        TrustRecord::decode(&record.encode().unwrap()).unwrap()
    }

    fn revocation(issuer: &PublisherSecret, subject: &PublisherSecret) -> TrustRecord {
        TrustRecord::Revocation(Revocation::sign(issuer, subject.public(), NOW, "").unwrap())
    }

    fn state(roots: &[&PublisherSecret], records: Vec<TrustRecord>) -> TrustState {
        let mut s = TrustState::new(TrustPolicy {
            roots: roots.iter().map(|k| k.public()).collect(),
            publishers: BTreeSet::new(),
            max_depth: 3,
            own: None,
        });
        for r in records {
            assert_eq!(s.add(r, NOW), Admission::Admitted);
        }
        s
    }

    fn slug(s: &str) -> Slug {
        s.parse().unwrap()
    }

    #[test]
    fn open_network_accepts_anyone_until_a_root_is_set() {
        let s = TrustState::new(TrustPolicy::default());
        assert_eq!(s.check(&key(1).public(), &slug("x"), NOW), Ok(Trusted::Open));
        let s = state(&[&key(9)], vec![]);
        assert!(matches!(s.check(&key(1).public(), &slug("x"), NOW), Err(TrustError::Untrusted(_))));
    }

    #[test]
    fn chain_root_ministry_department() {
        let (root, ministry, dept) = (key(1), key(2), key(3));
        let s = state(
            &[&root],
            vec![
                delegation(&root, &ministry, "Bo Y te", "moh-", VALID, true),
                delegation(&ministry, &dept, "Bo Y te/So Y te HCM", "moh-hcm", VALID, false),
            ],
        );
        let t = s.check(&dept.public(), &slug("moh-hcm-clinics"), NOW).unwrap();
        assert_eq!(t, Trusted::Delegated { organisations: vec!["Bo Y te/So Y te HCM".into(), "Bo Y te".into()] });
        assert!(matches!(s.check(&ministry.public(), &slug("moh-budget"), NOW), Ok(Trusted::Delegated { .. })));
        // the department's prefix is the longer one on its chain
        assert!(matches!(s.check(&dept.public(), &slug("moh-hn-x"), NOW), Err(TrustError::WrongPrefix { .. })));
    }

    #[test]
    fn wrong_prefix_expired_and_not_delegable_are_rejected() {
        let (root, ministry, dept) = (key(1), key(2), key(3));
        let mut s = state(&[&root], vec![delegation(&root, &ministry, "Bo Y te", "moh-", VALID, false)]);
        // the ministry may not delegate: its delegation to the department is not admitted
        assert_eq!(s.add(delegation(&ministry, &dept, "Bo Y te", "", VALID, false), NOW), Admission::Pending);
        assert!(s.check(&dept.public(), &slug("moh-x"), NOW).is_err());
        assert!(matches!(s.check(&ministry.public(), &slug("mof-budget"), NOW), Err(TrustError::WrongPrefix { .. })));
        assert!(matches!(s.check(&ministry.public(), &slug("moh-x"), NOW + 1000), Err(TrustError::Expired(_))));
        assert!(matches!(s.check(&ministry.public(), &slug("moh-x"), NOW - 1000), Err(TrustError::Expired(_))));
        // a refresh at a later time gives the same answers from the cached set
        s.refresh(NOW + 1000);
        assert!(!s.is_stale(NOW + 1000));
        assert!(matches!(s.check(&ministry.public(), &slug("moh-x"), NOW + 1000), Err(TrustError::Expired(_))));
        assert!(s.check(&ministry.public(), &slug("moh-x"), NOW).is_ok());
    }

    #[test]
    fn too_deep_chains_are_rejected() {
        let keys: Vec<PublisherSecret> = (1..=6).map(key).collect();
        let records = keys.windows(2).map(|w| delegation(&w[0], &w[1], "Bo", "", VALID, true)).collect::<Vec<_>>();
        let mut s =
            TrustState::new(TrustPolicy { roots: [keys[0].public()].into(), max_depth: 3, ..TrustPolicy::default() });
        assert_eq!(s.add_all(records, NOW), 3, "only records whose issuer is within the depth limit are admitted");
        assert!(s.check(&keys[3].public(), &slug("x"), NOW).is_ok(), "depth 3 is within the limit");
        assert!(matches!(s.check(&keys[4].public(), &slug("x"), NOW), Err(TrustError::TooDeep(_))));
    }

    #[test]
    fn revocations_withdraw_keys_and_their_subtrees() {
        let (root, ministry, dept, stranger) = (key(1), key(2), key(3), key(4));
        let mut s = state(
            &[&root],
            vec![
                delegation(&root, &ministry, "Bo Y te", "", VALID, true),
                delegation(&ministry, &dept, "Bo Y te", "", VALID, false),
            ],
        );
        // a stranger's revocation counts for nothing and is not admitted
        assert_eq!(s.add(revocation(&stranger, &dept), NOW), Admission::Pending);
        assert!(s.check(&dept.public(), &slug("x"), NOW).is_ok());
        // the ministry, which delegated to the department, may revoke it
        let mut by_ministry = s.clone();
        assert_eq!(by_ministry.add(revocation(&ministry, &dept), NOW), Admission::Admitted);
        assert!(matches!(by_ministry.check(&dept.public(), &slug("x"), NOW), Err(TrustError::Revoked(_))));
        assert!(by_ministry.check(&ministry.public(), &slug("x"), NOW).is_ok());
        // the root revokes the ministry: the ministry and everything below it fall
        assert_eq!(s.add(revocation(&root, &ministry), NOW), Admission::Admitted);
        assert!(matches!(s.check(&ministry.public(), &slug("x"), NOW), Err(TrustError::Revoked(_))));
        assert!(matches!(s.check(&dept.public(), &slug("x"), NOW), Err(TrustError::Revoked(_))));
        // self-revocation works even in an open network
        let mut open = TrustState::new(TrustPolicy::default());
        assert_eq!(open.add(revocation(&stranger, &stranger), NOW), Admission::Admitted);
        assert!(matches!(open.check(&stranger.public(), &slug("x"), NOW), Err(TrustError::Revoked(_))));
    }

    #[test]
    fn own_records_are_admitted_but_grant_nothing_more() {
        let (me, agency) = (key(1), key(2));
        let mut s = TrustState::new(TrustPolicy { own: Some(me.public()), ..TrustPolicy::default() });
        assert_eq!(s.add(delegation(&me, &agency, "Bo", "", VALID, false), NOW), Admission::Admitted);
        assert_eq!(s.add(revocation(&me, &agency), NOW), Admission::Admitted);
        assert!(!s.is_revoked(&agency.public(), NOW), "an untrusted key's revocation counts only for itself");
        assert_eq!(s.records().len(), 2);
    }

    /// The attack of issue 12: a stranger delegates to the root, then revokes it.
    #[test]
    fn a_stranger_cannot_revoke_a_root_or_its_delegates() {
        let (root, ministry, stranger) = (key(1), key(2), key(66));
        let mut s = state(&[&root], vec![delegation(&root, &ministry, "Bo Y te", "", VALID, true)]);
        let forged = [
            delegation(&stranger, &root, "x", "", VALID, true),
            revocation(&stranger, &root),
            delegation(&stranger, &ministry, "x", "", VALID, true),
            revocation(&stranger, &ministry),
        ];
        for r in forged.iter().cloned() {
            assert!(!s.admits(&r, NOW));
            assert_eq!(s.add(r, NOW), Admission::Pending);
        }
        assert!(!s.is_revoked(&root.public(), NOW));
        assert!(s.check(&ministry.public(), &slug("moh"), NOW).is_ok());
        // in any order, in bulk, the same
        let mut bulk = TrustState::new(s.policy().clone());
        bulk.add_all(forged.iter().cloned().chain(s.records()), NOW);
        assert!(bulk.check(&ministry.public(), &slug("moh"), NOW).is_ok());
        for r in &forged {
            assert!(!bulk.serves(&r.id().unwrap()));
        }
    }

    /// A ministry the root trusts to delegate cannot withdraw the root by delegating to it and
    /// then revoking it: the root's trust comes from the operator, not from that delegation.
    #[test]
    fn a_delegate_cannot_revoke_the_root_it_delegated_to() {
        let (root, ministry) = (key(1), key(2));
        let mut s = state(
            &[&root],
            vec![
                delegation(&root, &ministry, "Bo Y te", "", VALID, true),
                delegation(&ministry, &root, "Bo Y te", "", VALID, true),
            ],
        );
        assert_eq!(s.add(revocation(&ministry, &root), NOW), Admission::Pending, "not stored, not passed on");
        let mut bulk = TrustState::new(s.policy().clone());
        bulk.add_all(s.records().into_iter().chain([revocation(&ministry, &root)]), NOW);
        assert!(!bulk.is_revoked(&root.public(), NOW));
        assert!(!s.is_revoked(&root.public(), NOW));
        assert!(s.check(&ministry.public(), &slug("moh"), NOW).is_ok());
    }

    /// A revocation stored while its issuer's delegation to the subject had expired counts from
    /// the moment a valid delegation from that issuer arrives, even when the subject was already
    /// trusted through another chain (found by the property test).
    #[test]
    fn a_revocation_counts_once_its_issuers_delegation_arrives() {
        let (root, ministry, department) = (key(1), key(2), key(3));
        let mut s = state(
            &[&root],
            vec![
                delegation(&root, &ministry, "Bo Y te", "", VALID, true),
                delegation(&root, &department, "Bo Y te", "", VALID, false),
                delegation(&ministry, &department, "Bo Y te", "", (NOW - 100, NOW - 50), false),
                revocation(&ministry, &department),
            ],
        );
        assert!(!s.is_revoked(&department.public(), NOW), "the ministry's delegation had expired");
        s.add(delegation(&ministry, &department, "Bo Y te", "", VALID, false), NOW);
        assert!(s.is_revoked(&department.public(), NOW));
    }

    /// A delegate whose delegation to the subject expired, or who is not trusted to delegate,
    /// cannot revoke it; one whose chain is valid can.
    #[test]
    fn a_delegators_revocation_needs_a_valid_delegation_that_chains_to_a_root() {
        let (root, m1, m2, dept) = (key(1), key(2), key(3), key(4));
        let expired = (NOW - 100, NOW - 50);
        let mut s = state(
            &[&root],
            vec![
                delegation(&root, &m1, "Bo A", "", VALID, true),
                delegation(&root, &m2, "Bo B", "", VALID, true),
                delegation(&m1, &dept, "Bo A", "", VALID, false),
                delegation(&m2, &dept, "Bo B", "", expired, false),
            ],
        );
        s.add(revocation(&m2, &dept), NOW);
        assert!(!s.is_revoked(&dept.public(), NOW), "m2's delegation expired: its revocation does not count");
        s.add(revocation(&m1, &dept), NOW);
        assert!(s.is_revoked(&dept.public(), NOW));
    }

    #[test]
    fn records_arriving_before_their_issuers_delegation_wait_then_count() {
        let (root, ministry, dept) = (key(1), key(2), key(3));
        let mut s = state(&[&root], vec![]);
        assert_eq!(s.add(delegation(&ministry, &dept, "Bo Y te", "", VALID, false), NOW), Admission::Pending);
        assert_eq!(s.pending_len(), 1);
        assert_eq!(s.add(delegation(&root, &ministry, "Bo Y te", "", VALID, true), NOW), Admission::Admitted);
        assert_eq!(s.pending_len(), 0);
        assert!(s.check(&dept.public(), &slug("x"), NOW).is_ok());
        assert_eq!(s.records().len(), 2);
    }

    /// Issue 12, item 2: a department cannot give a key another ministry's organisation.
    #[test]
    fn delegates_name_organisations_only_inside_their_own() {
        let (root, ministry, dept, node, fake) = (key(1), key(2), key(3), key(4), key(5));
        let s = state(
            &[&root],
            vec![
                delegation(&root, &ministry, "Bo Y te", "", VALID, true),
                delegation(&ministry, &dept, "Bo Y te/Cuc CNTT", "", VALID, true),
                delegation(&dept, &node, "Bo Y te/Cuc CNTT/May chu 1", "", VALID, false),
                delegation(&dept, &fake, "Bo Cong an", "", VALID, false),
            ],
        );
        assert_eq!(s.organisations_of(&node.public(), NOW), vec!["Bo Y te/Cuc CNTT/May chu 1".to_owned()]);
        assert!(s.organisations_of(&fake.public(), NOW).is_empty());
        assert!(s.check(&fake.public(), &slug("x"), NOW).is_err());
        assert!(org_within("Bo Y te/Cuc CNTT", "Bo Y te"));
        assert!(!org_within("Bo Y tế", "Bo Y te"));
        assert!(!org_within("Bo Y te2", "Bo Y te"));
        assert!(!org_within("Bo Y te/", "Bo Y te"));
    }

    #[test]
    fn organisations_of_a_node_key() {
        let (root, ministry, node, other) = (key(1), key(2), key(3), key(4));
        let mut s = state(
            &[&root],
            vec![
                delegation(&root, &ministry, "Bo Y te", "", VALID, true),
                delegation(&ministry, &node, "Bo Y te", "", VALID, false),
            ],
        );
        assert_eq!(s.organisations_of(&node.public(), NOW), vec!["Bo Y te".to_owned()]);
        assert!(s.organisations_of(&other.public(), NOW).is_empty());
        assert!(s.organisations_of(&node.public(), NOW + 1000).is_empty(), "expired delegation counted");
        s.add(revocation(&root, &ministry), NOW);
        assert!(s.organisations_of(&node.public(), NOW).is_empty(), "delegation from a revoked issuer counted");
    }

    #[test]
    fn records_per_subject_are_bounded() {
        let (root, ministry) = (key(1), key(2));
        let mut s = state(&[&root], vec![delegation(&root, &ministry, "Bo", "", VALID, true)]);
        let target = key(3);
        let mut refused = 0;
        for i in 0..(MAX_RECORDS_PER_SUBJECT as u64 + 5) {
            let r = delegation(&ministry, &target, "Bo", "", (NOW - 100 - i, NOW + 100), false);
            if matches!(s.add(r, NOW), Admission::Refused(_)) {
                refused += 1;
            }
        }
        assert_eq!(refused, 5, "32 delegations to one key fit, the other 5 are refused");
    }

    /// Issue 12, item 3: 150 keys that all delegate to each other still give the right answer,
    /// and the set stays valid for `now` after the flood (what a check costs is measured in
    /// benches/trust.rs, not here).
    #[test]
    fn all_pairs_delegations_still_answer_and_keep_the_set_current() {
        let keys: Vec<PublisherSecret> = (10..160).map(key).collect();
        let root = key(1);
        let mut s = state(&[&root], vec![delegation(&root, &keys[0], "Bo", "", VALID, true)]);
        let mut records = Vec::new();
        for a in &keys {
            for b in &keys {
                if a.public() != b.public() {
                    records.push(delegation(a, b, "Bo", "", VALID, true));
                }
            }
        }
        s.add_all(records, NOW);
        assert!(!s.is_stale(NOW));
        assert!(s.check(&keys[149].public(), &slug("x"), NOW).is_ok());
    }
}
