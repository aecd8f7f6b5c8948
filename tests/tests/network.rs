//! Multi-node tests of lien-node: real nodes on 127.0.0.1, every wait bounded.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use lien_node::network::Command;
use lien_node::{FetchOptions, PublishRequest};
use lien_protocol::wire::{Request, Response};
use lien_protocol::{ChunkSize, ContentId, Metadata};
use lien_tests::{assert_same_tree, make_dataset, wait_for, TestNode};

fn request(path: &std::path::Path, slug: &str, title: &str, chunk: u64) -> Result<PublishRequest> {
    let mut metadata = Metadata::titled(title);
    metadata.keywords = vec!["census".into(), "test".into()];
    Ok(PublishRequest {
        path: path.into(),
        slug: slug.parse()?,
        metadata,
        in_place: false,
        chunk_size: ChunkSize::new(chunk)?,
    })
}

fn quiet() -> Arc<dyn Fn(u64, u64) + Send + Sync> {
    Arc::new(|_, _| {})
}

async fn has_manifest(n: &TestNode, id: ContentId) -> Result<bool> {
    Ok(n.node.store().has_manifest(&id)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_in_a_line_publish_find_and_fetch() -> Result<()> {
    let a = TestNode::start(&[]).await?;
    let b = TestNode::start(&[&a]).await?;
    let c = TestNode::start(&[&b]).await?;
    c.wait_peers(1).await?;
    b.wait_peers(2).await?;
    let src = tempfile::tempdir()?;
    let data = make_dataset(
        src.path(),
        1,
        &[("pop/2025.csv", 300_000), ("README.txt", 1_000), ("empty.txt", 0), ("empty2.txt", 0)],
    )?;
    // The same content twice in one dataset.
    std::fs::copy(data.join("pop/2025.csv"), data.join("pop/copy.csv"))?;
    let m = a.node.publish(request(&data, "census", "Population census 2025", 1 << 16)?, quiet()).await?;
    // C learns of it through B (gossip or catalog sync) without knowing A.
    wait_for("C to see the manifest", Duration::from_secs(30), || has_manifest(&c, m.id())).await?;
    let hits = c.node.search("population", 10)?;
    assert!(hits.iter().any(|h| h.id() == m.id()), "search did not find the dataset");

    let out = tempfile::tempdir()?;
    let report = c.node.fetch(&m.id().to_string(), &out.path().join("by-id"), FetchOptions::default()).await?;
    assert_eq!(report.total_bytes, 601_000);
    assert_same_tree(&data, &out.path().join("by-id"))?;
    assert!(!report.per_peer.contains_key(&b.node.peer_id().to_string()), "B holds no data but served some");

    let name = format!("{}/census", a.node.publisher());
    c.node.fetch(&name, &out.path().join("by-name"), FetchOptions::default()).await?;
    assert_same_tree(&data, &out.path().join("by-name"))?;
    // Every range A served is in its hash-chained audit log, with C as the requester.
    let (entries, _) = a.node.audit_verify()?;
    assert!(entries > 0, "nothing was audited");
    let log = std::fs::read_to_string(a.node.audit_path())?;
    assert!(log.contains(&c.node.peer_id().to_string()));
    for n in [&a, &b, &c] {
        n.node.shutdown().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_nodes_fetch_from_several_providers_and_survive_the_publisher_leaving() -> Result<()> {
    let a = TestNode::start(&[]).await?;
    let mut others = Vec::new();
    for _ in 0..5 {
        others.push(TestNode::start(&[&a]).await?);
    }
    a.wait_peers(5).await?;
    let src = tempfile::tempdir()?;
    let data = make_dataset(src.path(), 2, &[("big.bin", 6 << 20)])?;
    let m = a.node.publish(request(&data, "big", "Big dataset", 1 << 16)?, quiet()).await?;
    let id = m.id().to_string();
    let outs: Vec<_> = (0..5).map(|_| tempfile::tempdir()).collect::<Result<_, _>>()?;
    // Two nodes fetch first, so three providers exist.
    for (n, out) in others.iter().zip(&outs).take(2) {
        n.node.fetch(&id, out.path(), FetchOptions::default()).await?;
    }
    // The other three fetch at once.
    let mut tasks = Vec::new();
    for (n, out) in others.iter().zip(&outs).skip(2) {
        let node = n.node.clone();
        let (id, path) = (id.clone(), out.path().to_path_buf());
        tasks.push(tokio::spawn(async move { node.fetch(&id, &path, FetchOptions::default()).await }));
    }
    let mut max_providers = 0;
    for t in tasks {
        let report = t.await??;
        max_providers = max_providers.max(report.per_peer.len());
    }
    for out in &outs {
        assert_same_tree(&data, out.path())?;
    }
    assert!(max_providers >= 2, "every fetch used a single provider");
    // The publisher leaves; a fresh node still gets the dataset from the others.
    a.node.shutdown().await;
    let late = TestNode::start(&[&others[0], &others[1]]).await?;
    let out = tempfile::tempdir()?;
    let report = late
        .node
        .fetch(&id, out.path(), FetchOptions { timeout: Duration::from_secs(30), ..Default::default() })
        .await?;
    assert_same_tree(&data, out.path())?;
    assert!(!report.per_peer.contains_key(&a.node.peer_id().to_string()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_chunks_are_detected_and_honest_peers_finish_the_fetch() -> Result<()> {
    let a = TestNode::start(&[]).await?;
    let evil = TestNode::start_with(&[&a], |c| c.adversary_corrupt_chunks = true).await?;
    let src = tempfile::tempdir()?;
    let data = make_dataset(src.path(), 3, &[("x.bin", 2 << 20)])?;
    let m = a.node.publish(request(&data, "x", "X", 1 << 16)?, quiet()).await?;
    let id = m.id().to_string();
    // The adversary gets an honest copy first, then serves it corrupted.
    let evil_copy = tempfile::tempdir()?; // kept alive: the adversary serves from these files
    evil.node.fetch(&id, evil_copy.path(), FetchOptions::default()).await?;
    let victim = TestNode::start(&[&evil, &a]).await?;
    victim.wait_peers(2).await?;
    let out = tempfile::tempdir()?;
    let report = victim.node.fetch(&id, out.path(), FetchOptions::default()).await?;
    assert_same_tree(&data, out.path())?;
    let evil_id = evil.node.peer_id().to_string();
    assert!(!report.per_peer.contains_key(&evil_id), "bytes from the adversary were accepted");
    // Both peers were asked from the first round, so the adversary's chunks were seen and refused.
    assert!(victim.node.stats().chunks_rejected > 0, "no corrupt chunk was detected");
    assert!(report.bad_peers.contains(&evil_id), "the adversary was not banned: {:?}", report.bad_peers);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_malformed_manifests_are_rejected_and_not_forwarded() -> Result<()> {
    let a = TestNode::start(&[]).await?;
    let b = TestNode::start(&[&a]).await?;
    // C and the forger may hold one connection only (to B), so the DHT's own walks cannot
    // link them directly and the only path from the forger to C goes through B.
    let c = TestNode::start_with(&[&b], |cfg| cfg.max_connections = 1).await?;
    b.wait_peers(2).await?;
    // A valid manifest first, so the gossip mesh is known to work end to end.
    let src = tempfile::tempdir()?;
    let data = make_dataset(src.path(), 4, &[("a.csv", 10)])?;
    let good = a.node.publish(request(&data, "good", "Good", 1 << 16)?, quiet()).await?;
    wait_for("C to get the good manifest", Duration::from_secs(30), || has_manifest(&c, good.id())).await?;
    // A forger joins through B only, and gossips a signed manifest with one byte of the title
    // changed (so its signature breaks), then bytes that are no manifest at all.
    let forger = TestNode::start_with(&[&b], |cfg| cfg.max_connections = 1).await?;
    forger.wait_peers(1).await?;
    let secret = lien_protocol::PublisherSecret::from_seed(&[42; 32]);
    let entry = lien_protocol::FileEntry {
        path: lien_protocol::RelPath::new("f.csv")?,
        size: 1,
        id: ContentId::of(b"x"),
        chunk_size: ChunkSize::DEFAULT,
        media_type: String::new(),
    };
    let body = lien_protocol::ManifestBody {
        publisher: secret.public(),
        slug: "forged".parse()?,
        version: 1,
        previous: None,
        created: 0,
        metadata: Metadata::titled("Forged title"),
        files: lien_protocol::manifest::FileList::build(vec![entry])?.0,
    };
    let honest = lien_protocol::Manifest::sign(body, &secret)?;
    let mut forged = honest.bytes().to_vec();
    let pos = forged.windows(6).position(|w| w == b"Forged").context("title not found")?;
    forged[pos] = b'X';
    let forged_id = ContentId::of(&forged);
    // Give the forger's gossip mesh a few heartbeats to include B.
    tokio::time::sleep(Duration::from_secs(2)).await;
    forger.node.network().send(Command::Announce { bytes: forged.clone() }).await?;
    forger.node.network().send(Command::Announce { bytes: b"not a manifest at all".to_vec() }).await?;
    wait_for("B to reject both", Duration::from_secs(20), || async { Ok(b.node.stats().gossip_rejected >= 2) }).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!has_manifest(&b, forged_id).await?);
    assert!(!has_manifest(&c, forged_id).await?);
    let c_peers: Vec<String> = c.node.peers().await?.into_iter().map(|p| p.peer_id).collect();
    assert!(!c_peers.contains(&forger.node.peer_id().to_string()), "C connected to the forger directly");
    assert_eq!(c.node.stats().gossip_rejected, 0, "B forwarded an invalid manifest to C");
    assert_eq!(c.node.stats().gossip_accepted, 1, "C should have accepted exactly the good manifest");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_sees_the_whole_catalog() -> Result<()> {
    let a = TestNode::start(&[]).await?;
    let b = TestNode::start(&[&a]).await?;
    b.wait_peers(1).await?;
    let src = tempfile::tempdir()?;
    let mut ids = Vec::new();
    for i in 0..3u64 {
        let data = make_dataset(src.path(), 10 + i, &[("f.txt", 100)])?;
        ids.push(
            a.node.publish(request(&data, &format!("set-{i}"), &format!("Set {i}"), 1 << 16)?, quiet()).await?.id(),
        );
    }
    let late = TestNode::start(&[&b]).await?;
    wait_for("the late joiner's catalog", Duration::from_secs(30), || async {
        let mut all = true;
        for id in &ids {
            all &= late.node.store().has_manifest(id)?;
        }
        Ok(all)
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_mid_fetch_resumes_without_refetching_verified_chunks() -> Result<()> {
    let a = TestNode::start(&[]).await?;
    let src = tempfile::tempdir()?;
    let total = 96usize << 20;
    let data = make_dataset(src.path(), 6, &[("large.bin", total)])?;
    let m = a.node.publish(request(&data, "large", "Large", 1 << 20)?, quiet()).await?;
    let id = m.id();
    let home = tempfile::tempdir()?;
    let mut config = lien_tests::test_config(home.path());
    config.bootstrap = vec![a.addr.clone()];
    let node = lien_node::Node::start(config.clone()).await?;
    let out = tempfile::tempdir()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let progress = Arc::new(move |p: lien_node::FetchProgress| {
        if p.done * 10 >= p.total * 6 {
            if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(());
            }
        }
    });
    let fetching = {
        let node = node.clone();
        let root = out.path().to_path_buf();
        tokio::spawn(async move {
            node.fetch(&id.to_string(), &root, FetchOptions { progress: Some(progress), ..Default::default() }).await
        })
    };
    tokio::time::timeout(Duration::from_secs(60), rx).await??;
    // Stop the node abruptly: the fetch task is cancelled wherever it is.
    fetching.abort();
    let _ = fetching.await;
    // Shutdown waits for every task of the node: the store can be opened again at once.
    node.shutdown().await;
    drop(node);

    let node = lien_node::Node::start(config).await?;
    wait_for("the resumed fetch", Duration::from_secs(60), || async {
        Ok(node.store().local(&id)?.is_some_and(|l| l.complete))
    })
    .await?;
    assert_same_tree(&data, out.path())?;
    let refetched: u64 = node.stats().fetched.values().sum();
    assert!(refetched <= (total as u64) - (32 << 20), "resumed fetch downloaded {refetched} of {total} bytes again");
    assert!(!out.path().join("large.bin.lien-part").exists());
    node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_lets_its_store_be_reopened_at_once() -> Result<()> {
    // A serving node with a peer fetching from it (dispatcher, per-request tasks, bulk channel,
    // catch-up all busy) is stopped and started again in the same home, with no pause between,
    // several times: `shutdown` has waited for every task that held the store.
    let a = TestNode::start(&[]).await?;
    let src = tempfile::tempdir()?;
    let data = make_dataset(src.path(), 21, &[("x.bin", 8 << 20)])?;
    let m = a.node.publish(request(&data, "reopen", "Reopen", 1 << 20)?, quiet()).await?;
    let home = tempfile::tempdir()?;
    let mut config = lien_tests::test_config(home.path());
    config.bootstrap = vec![a.addr.clone()];
    for round in 0..4 {
        let node = lien_node::Node::start(config.clone()).await.with_context(|| format!("restart {round}"))?;
        let out = tempfile::tempdir()?;
        let fetching = {
            let node = node.clone();
            let (id, root) = (m.id().to_string(), out.path().to_path_buf());
            tokio::spawn(async move { node.fetch(&id, &root, FetchOptions::default()).await })
        };
        tokio::time::sleep(Duration::from_millis(50 * round)).await;
        fetching.abort();
        let _ = fetching.await;
        node.shutdown().await;
        drop(node);
    }
    let node = lien_node::Node::start(config).await.context("the last restart")?;
    node.shutdown().await;
    a.node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_links_the_previous_and_names_resolve_to_the_newest() -> Result<()> {
    let a = TestNode::start(&[]).await?;
    let b = TestNode::start(&[&a]).await?;
    b.wait_peers(1).await?;
    let src = tempfile::tempdir()?;
    let v1_data = make_dataset(src.path(), 20, &[("data.csv", 1000)])?;
    let v1 = a.node.publish(request(&v1_data, "budget", "Budget", 1 << 16)?, quiet()).await?;
    let v2_data = make_dataset(src.path(), 21, &[("data.csv", 2000)])?;
    let v2 = a.node.publish(request(&v2_data, "budget", "Budget", 1 << 16)?, quiet()).await?;
    assert_eq!(v1.body().version, 1);
    assert_eq!(v2.body().version, 2);
    assert_eq!(v2.body().previous, Some(v1.id()));
    wait_for("B to hear both versions", Duration::from_secs(30), || async {
        Ok(has_manifest(&b, v1.id()).await? && has_manifest(&b, v2.id()).await?)
    })
    .await?;
    let name = format!("{}/budget", a.node.publisher());
    assert_eq!(b.node.resolve(&name).await?, v2.id());
    // Hearing version 1 again (a replay) does not roll the name back.
    b.node.store().put_manifest(&v1)?;
    assert_eq!(b.node.resolve(&name).await?, v2.id());
    let out = tempfile::tempdir()?;
    b.node.fetch(&name, out.path(), FetchOptions::default()).await?;
    assert_same_tree(&v2_data, out.path())?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_network_is_invisible_to_outsiders() -> Result<()> {
    let key = "11".repeat(32);
    let with_key = |k: String| move |c: &mut lien_node::NodeConfig| c.private_network_key = Some(k);
    let a = TestNode::start_with(&[], with_key(key.clone())).await?;
    let b = TestNode::start_with(&[&a], with_key(key.clone())).await?;
    b.wait_peers(1).await?;
    let src = tempfile::tempdir()?;
    let data = make_dataset(src.path(), 30, &[("secret.csv", 5000)])?;
    let m = a.node.publish(request(&data, "internal", "Internal", 1 << 16)?, quiet()).await?;
    let out = tempfile::tempdir()?;
    b.node.fetch(&m.id().to_string(), out.path(), FetchOptions::default()).await?;
    assert_same_tree(&data, out.path())?;

    // An outsider without the key, and one with another key, cannot connect at all.
    let outsider = TestNode::start(&[]).await?;
    let wrong = TestNode::start_with(&[], with_key("22".repeat(32))).await?;
    for n in [&outsider, &wrong] {
        let dialed = n.node.connect(a.addr.clone()).await;
        assert!(dialed.is_err(), "an outsider connected to the private network");
        assert!(n.node.peers().await?.is_empty());
        assert!(!n.node.store().has_manifest(&m.id())?);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_publishers_vouched_for_by_a_trusted_root_get_through() -> Result<()> {
    let root = TestNode::start(&[]).await?;
    let agency = TestNode::start(&[&root]).await?;
    let root_key = root.node.publisher().to_string();
    let strict = {
        let k = root_key.clone();
        TestNode::start_with(&[&root, &agency], move |c| c.trust_roots = vec![k]).await?
    };
    strict.wait_peers(2).await?;
    let src = tempfile::tempdir()?;
    let publish = |seed: u64, slug: &'static str| {
        let agency = agency.node.clone();
        let dir = src.path().to_path_buf();
        async move {
            let data = make_dataset(&dir, seed, &[("f.csv", 100)])?;
            anyhow::Ok(agency.publish(request(&data, slug, "Health data", 1 << 16)?, quiet()).await?)
        }
    };
    // Unknown publisher: ignored by the strict node, accepted by the open root node.
    let early = publish(40, "moh-early").await?;
    wait_for("the open node to accept it", Duration::from_secs(20), || has_manifest(&root, early.id())).await?;
    wait_for("the strict node to ignore it", Duration::from_secs(20), || async {
        Ok(strict.node.stats().gossip_ignored >= 1)
    })
    .await?;
    assert!(!has_manifest(&strict, early.id()).await?, "an unknown publisher's manifest was stored");
    let err = strict.node.fetch(&early.id().to_string(), tempfile::tempdir()?.path(), FetchOptions::default()).await;
    assert!(err.is_err_and(|e| e.to_string().contains("not trusted")), "fetched an untrusted dataset");

    // The root vouches for the agency under "moh-": now its datasets go through.
    root.node.delegate(agency.node.publisher(), "Ministry of Health", "moh-", 30, false).await?;
    wait_for("the strict node to learn the delegation", Duration::from_secs(20), || async {
        Ok(strict.node.check_trust(&early).is_ok())
    })
    .await?;
    let vouched = publish(41, "moh-beds").await?;
    wait_for("the strict node to accept the vouched manifest", Duration::from_secs(20), || {
        has_manifest(&strict, vouched.id())
    })
    .await?;
    // Outside the delegated prefix: still refused.
    let outside = publish(42, "mof-budget").await?;
    wait_for("the open node to see it", Duration::from_secs(20), || has_manifest(&root, outside.id())).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!has_manifest(&strict, outside.id()).await?, "a manifest outside the delegated prefix was stored");

    // The root revokes the agency: its new manifests are refused, old ones are marked.
    root.node.revoke(agency.node.publisher(), "key compromised").await?;
    wait_for("the strict node to learn the revocation", Duration::from_secs(20), || async {
        Ok(strict.node.is_revoked(&agency.node.publisher()))
    })
    .await?;
    assert!(strict.node.check_trust(&vouched).is_err(), "a revoked publisher's old manifest still counts as trusted");
    let ignored = strict.node.stats().gossip_ignored;
    let after = publish(43, "moh-after").await?;
    wait_for("the strict node to ignore it", Duration::from_secs(20), || async {
        Ok(strict.node.stats().gossip_ignored > ignored)
    })
    .await?;
    assert!(!has_manifest(&strict, after.id()).await?, "a revoked publisher's new manifest was stored");

    // A late joiner with the same root learns delegation and revocation from its peer.
    let k = root_key.clone();
    let late = TestNode::start_with(&[&root], move |c| c.trust_roots = vec![k]).await?;
    wait_for("the late joiner to learn the revocation", Duration::from_secs(20), || async {
        Ok(late.node.is_revoked(&agency.node.publisher()))
    })
    .await?;
    Ok(())
}

/// Issue 12, item 1: a stranger signs a delegation to the root and revocations of the root and
/// of the root's agency. Nodes that trust the root neither use, store nor pass on those records,
/// and the agency stays trusted, for the nodes that heard them and for late joiners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_revocations_do_not_count_and_do_not_spread() -> Result<()> {
    let root = TestNode::start(&[]).await?;
    let root_key = root.node.publisher();
    let agency = TestNode::start_trusting(&[&root], root_key).await?;
    let strict = TestNode::start_trusting(&[&root, &agency], root_key).await?;
    let stranger = TestNode::start(&[&strict]).await?;
    strict.wait_peers(3).await?;
    root.node.delegate(agency.node.publisher(), "Ministry of Health", "moh-", 30, true).await?;
    let src = tempfile::tempdir()?;
    let data = make_dataset(src.path(), 60, &[("beds.csv", 1000)])?;
    let m = agency.node.publish(request(&data, "moh-beds", "Beds", 1 << 16)?, quiet()).await?;
    wait_for("the strict node to accept the agency's manifest", Duration::from_secs(20), || {
        has_manifest(&strict, m.id())
    })
    .await?;
    let stored_before = strict.node.store().trust_page(0, 100)?.0.len();

    stranger.node.delegate(root_key, "x", "", 30, true).await?;
    stranger.node.revoke(root_key, "gotcha").await?;
    stranger.node.revoke(agency.node.publisher(), "gotcha").await?;
    wait_for("the strict node to hear the stranger's records", Duration::from_secs(20), || async {
        Ok(strict.node.trust_records_waiting() >= 3)
    })
    .await?;
    assert!(!strict.node.is_revoked(&root_key), "a stranger revoked the root");
    assert!(!strict.node.is_revoked(&agency.node.publisher()), "a stranger revoked the agency");
    assert!(strict.node.check_trust(&m).is_ok(), "the agency lost the root's trust");
    assert_eq!(strict.node.store().trust_page(0, 100)?.0.len(), stored_before, "a stranger's record was stored");
    // The agency, which may delegate, is trusted to revoke keys it delegated to, not the root.
    agency.node.revoke(root_key, "not mine to revoke").await?;
    wait_for("the strict node to hear the agency's record", Duration::from_secs(20), || async {
        Ok(strict.node.trust_records_waiting() >= 4)
    })
    .await?;
    assert!(!strict.node.is_revoked(&root_key), "a delegate revoked its root");

    // A late joiner that meets only the strict node learns the delegation, none of the rest.
    let late = TestNode::start_trusting(&[&strict], root_key).await?;
    wait_for("the late joiner to learn the delegation", Duration::from_secs(20), || async {
        Ok(late.node.check_trust(&m).is_ok())
    })
    .await?;
    assert!(!late.node.is_revoked(&root_key) && !late.node.is_revoked(&agency.node.publisher()));
    // (It may meet the stranger through the DHT and hear the records from it; it stores none.)
    assert_eq!(late.node.store().trust_page(0, 100)?.0.len(), stored_before, "a stranger's record was stored");
    Ok(())
}

/// Issue 12, item 3: a delegate the root trusts floods the network with cross-delegations among
/// 40 keys (1,560 records, every key reachable from every other). Trust checks stay lookups on
/// the task that owns the Swarm, so another agency's manifest still gets through while the flood
/// is being gossiped and admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_cross_delegations_does_not_hold_up_other_manifests() -> Result<()> {
    use lien_protocol::trust::{Delegation, DelegationBody, TrustRecord};
    use lien_protocol::PublisherSecret;
    let root = TestNode::start(&[]).await?;
    let root_key = root.node.publisher();
    let flooder = TestNode::start_trusting(&[&root], root_key).await?;
    let agency = TestNode::start_trusting(&[&root], root_key).await?;
    let strict = TestNode::start_trusting(&[&flooder, &agency], root_key).await?;
    strict.wait_peers(2).await?;
    root.node.delegate(agency.node.publisher(), "Bo Y te", "", 30, false).await?;
    let mesh: Vec<PublisherSecret> = (0..40u8).map(|i| PublisherSecret::from_seed(&[i + 100; 32])).collect();
    root.node.delegate(mesh[0].public(), "Bo X", "", 30, true).await?;
    wait_for("the flooder and the strict node to learn the delegations", Duration::from_secs(20), || async {
        Ok(strict.node.store().trust_page(0, 10)?.0.len() >= 2 && flooder.node.store().trust_page(0, 10)?.0.len() >= 2)
    })
    .await?;
    let now = lien_node::trust::now_secs();
    let mut flood = Vec::new();
    for a in &mesh {
        for b in &mesh {
            if a.public() == b.public() {
                continue;
            }
            let body = DelegationBody {
                issuer: a.public(),
                subject: b.public(),
                organisation: "Bo X".into(),
                prefix: String::new(),
                not_before: now - 60,
                not_after: now + 3600,
                can_delegate: true,
            };
            flood.push(TrustRecord::Delegation(Delegation::sign(a, body)?).encode()?);
        }
    }
    let total = flood.len();
    let flooding = {
        let node = flooder.node.clone();
        tokio::spawn(async move {
            for bytes in flood {
                node.import_trust_record(bytes).await?;
            }
            anyhow::Ok(())
        })
    };
    // While the flood is on its way: another agency's manifest.
    let src = tempfile::tempdir()?;
    let data = make_dataset(src.path(), 61, &[("beds.csv", 1000)])?;
    let m = agency.node.publish(request(&data, "moh-beds", "Beds", 1 << 16)?, quiet()).await?;
    wait_for("the strict node to accept the manifest during the flood", Duration::from_secs(30), || {
        has_manifest(&strict, m.id())
    })
    .await?;
    flooding.await??;
    let (all, _, _) = flooder.node.store().trust_page(0, 5000)?;
    assert!(all.len() > total / 2, "the flood was not admitted where its issuers are trusted ({})", all.len());
    assert!(strict.node.check_trust(&m).is_ok());
    Ok(())
}

/// Issue 12, item 2: a ministry the root lets delegate certifies a node key under another
/// ministry's name. That node is refused the other ministry's restricted data; a node the
/// ministry certifies inside its own organisation (a sub-unit) reads the ministry's data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegate_cannot_give_a_node_another_ministrys_organisation() -> Result<()> {
    let root = TestNode::start(&[]).await?;
    let root_key = root.node.publisher();
    let publisher = TestNode::start_trusting(&[&root], root_key).await?;
    let ministry = TestNode::start_trusting(&[&root, &publisher], root_key).await?;
    let pretender = TestNode::start_trusting(&[&root, &publisher], root_key).await?;
    let unit = TestNode::start_trusting(&[&root, &publisher], root_key).await?;
    publisher.wait_peers(4).await?;
    root.node.delegate(publisher.node.publisher(), "General Statistics Office", "", 30, false).await?;
    root.node.delegate(ministry.node.publisher(), "Bo Y te", "", 30, true).await?;
    // The ministry's key signs for two node keys: one inside its organisation, one claiming
    // another ministry's.
    ministry.node.delegate(unit.node.node_key().context("node key")?, "Bo Y te/Cuc CNTT", "", 30, false).await?;
    ministry.node.delegate(pretender.node.node_key().context("node key")?, "Bo Cong an", "", 30, false).await?;
    wait_for("the publisher to learn the delegations", Duration::from_secs(20), || async {
        Ok(publisher.node.store().trust_page(0, 10)?.0.len() >= 4)
    })
    .await?;

    let src = tempfile::tempdir()?;
    let police = make_dataset(src.path(), 70, &[("cases.csv", 5_000)])?;
    let mut req = request(&police, "cases", "Cases", 1 << 16)?;
    req.metadata.readers = vec!["Bo Cong an".into()];
    let police = publisher.node.publish(req, quiet()).await?;
    let health_dir = tempfile::tempdir()?;
    let health = make_dataset(health_dir.path(), 71, &[("beds.csv", 5_000)])?;
    let mut req = request(&health, "beds", "Beds", 1 << 16)?;
    req.metadata.readers = vec!["Bo Y te".into()];
    let health_manifest = publisher.node.publish(req, quiet()).await?;

    let opts = || FetchOptions { timeout: Duration::from_secs(10), ..Default::default() };
    let denied = pretender.node.fetch(&police.id().to_string(), tempfile::tempdir()?.path(), opts()).await;
    let message = denied.err().context("a node certified under a borrowed name read restricted data")?.to_string();
    assert!(message.contains("refused"), "unclear refusal: {message}");
    let out = tempfile::tempdir()?;
    unit.node.fetch(&health_manifest.id().to_string(), out.path(), opts()).await?;
    assert_same_tree(&health, out.path())?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_dataset_is_served_only_to_nodes_of_allowed_organisations() -> Result<()> {
    let root = TestNode::start(&[]).await?;
    let root_key = root.node.publisher().to_string();
    let trusting = |k: String| move |c: &mut lien_node::NodeConfig| c.trust_roots = vec![k];
    let publisher = TestNode::start_with(&[&root], trusting(root_key.clone())).await?;
    let finance = TestNode::start_with(&[&root, &publisher], trusting(root_key.clone())).await?;
    let outsider = TestNode::start_with(&[&root, &publisher], trusting(root_key.clone())).await?;
    publisher.wait_peers(3).await?;
    // The root vouches for the publisher, and for the finance ministry's node key.
    root.node.delegate(publisher.node.publisher(), "General Statistics Office", "", 30, false).await?;
    let finance_key = finance.node.node_key().context("node key")?;
    root.node.delegate(finance_key, "Ministry of Finance", "", 30, false).await?;
    wait_for("the publisher to learn both delegations", Duration::from_secs(20), || async {
        Ok(publisher.node.store().trust_page(0, 10)?.0.len() >= 2)
    })
    .await?;

    let src = tempfile::tempdir()?;
    let data = make_dataset(src.path(), 50, &[("salaries.csv", 300_000), ("note.txt", 100)])?;
    let mut req = request(&data, "salaries", "Civil service salaries", 1 << 16)?;
    req.metadata.readers = vec!["Ministry of Finance".into()];
    let m = publisher.node.publish(req, quiet()).await?;
    let id = m.id().to_string();

    let out = tempfile::tempdir()?;
    finance
        .node
        .fetch(&id, out.path(), FetchOptions { timeout: Duration::from_secs(20), ..Default::default() })
        .await?;
    assert_same_tree(&data, out.path())?;
    assert_eq!(finance.node.stats().bulk_fetched, 300_100, "the authorised copy did not take the bulk channel");

    // On the bulk channel the outsider's certificate carries its own identity: chunks refused too.
    let salaries = m.body().files.inline().context("inline file list")?.iter().find(|f| f.size == 300_000).cloned();
    let salaries = salaries.context("no salaries.csv in the manifest")?;
    let chunk0 = Request::Chunks { file: salaries.id, first: 0, count: 1 };
    let (header, _) = bulk_request(&outsider, &publisher, chunk0).await?;
    assert!(
        matches!(header, Response::Error { code: lien_protocol::wire::ErrorCode::Forbidden, .. }),
        "the bulk channel served a restricted chunk to an outsider: {header:?}"
    );

    let denied = outsider
        .node
        .fetch(
            &id,
            tempfile::tempdir()?.path(),
            FetchOptions { timeout: Duration::from_secs(10), ..Default::default() },
        )
        .await;
    let message = denied.err().context("an unauthorised node fetched a restricted dataset")?.to_string();
    assert!(message.contains("refused"), "unclear refusal: {message}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_invalid_gossip_sinks_the_senders_score_until_it_is_pruned() -> Result<()> {
    let a = TestNode::start(&[]).await?;
    let b = TestNode::start(&[&a]).await?;
    let flooder = TestNode::start_with(&[&b], |c| c.max_connections = 1).await?;
    flooder.wait_peers(1).await?;
    // Let the mesh form so the flooder's messages reach B.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let f = flooder.node.peer_id();
    for i in 0..20u32 {
        let junk = format!("junk manifest number {i}").into_bytes();
        flooder.node.network().send(Command::Announce { bytes: junk }).await?;
    }
    wait_for("B to graylist the flooder", Duration::from_secs(20), || async {
        let (score, in_mesh) = b.node.gossip_standing(f).await?;
        Ok(score.is_some_and(|s| s < -1000.0) && !in_mesh)
    })
    .await?;
    // An honest peer keeps a neutral score.
    let (honest, _) = b.node.gossip_standing(a.node.peer_id()).await?;
    assert!(honest.unwrap_or(0.0) >= 0.0, "the honest peer was penalised: {honest:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_connections_are_capped_per_ip_address() -> Result<()> {
    let a = TestNode::start_with(&[], |c| c.max_connections_per_ip = 1).await?;
    let b = TestNode::start(&[]).await?;
    let c = TestNode::start(&[]).await?;
    b.node.connect(a.addr.clone()).await?;
    a.wait_peers(1).await?;
    // Both come from 127.0.0.1: the second is refused however many peer ids it has.
    assert!(c.node.connect(a.addr.clone()).await.is_err(), "a second connection from the same IP was accepted");
    assert_eq!(a.node.peers().await?.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_policies_mirror_by_publisher_cap_publishers_and_enforce_the_quota() -> Result<()> {
    let a = TestNode::start(&[]).await?;
    let key = a.node.publisher().to_string();
    let mirror = TestNode::start_with(&[&a], move |c| c.mirror_publishers = vec![key]).await?;
    let capped = TestNode::start_with(&[&a], |c| {
        c.max_manifests_per_publisher = 2;
        c.storage_quota_bytes = 100_000;
    })
    .await?;
    a.wait_peers(2).await?;
    let src = tempfile::tempdir()?;
    let mut ids = Vec::new();
    for i in 0..3u64 {
        let data = make_dataset(src.path(), 60 + i, &[("t.csv", 150_000)])?;
        ids.push(a.node.publish(request(&data, &format!("set-{i}"), "Mirrored", 1 << 16)?, quiet()).await?.id());
    }
    // The mirror fetches and pins every dataset of that publisher on its own.
    wait_for("the mirror to hold all three", Duration::from_secs(30), || async {
        let mut all = true;
        for id in &ids {
            all &= mirror.node.store().local(id)?.is_some_and(|l| l.complete && l.pinned);
        }
        Ok(all)
    })
    .await?;
    // Fetching a mirrored dataset again (as a resume would) keeps it pinned.
    let again = tempfile::tempdir()?;
    mirror.node.fetch(&ids[0].to_string(), again.path(), FetchOptions::default()).await?;
    assert!(
        mirror.node.store().local(&ids[0])?.is_some_and(|l| l.pinned && l.complete),
        "a repeated fetch unpinned a mirror"
    );
    // The capped node keeps at most two manifests of that publisher.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(capped.node.store().manifest_count()?, 2, "the per-publisher cap was not enforced");
    // And its quota refuses a dataset bigger than the space left.
    let e = capped.node.fetch(&ids[0].to_string(), tempfile::tempdir()?.path(), FetchOptions::default()).await;
    let message = e.err().context("a fetch over the quota succeeded")?.to_string();
    assert!(message.contains("storage quota"), "{message}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_travel_on_the_bulk_channel_and_fall_back_to_libp2p() -> Result<()> {
    let a = TestNode::start(&[]).await?;
    let src = tempfile::tempdir()?;
    let data = make_dataset(src.path(), 11, &[("big.bin", 3 << 20), ("small.txt", 5_000)])?;
    let m = a.node.publish(request(&data, "bulk", "Bulk", 1 << 16)?, quiet()).await?;
    let id = m.id().to_string();
    let size = 3 * (1 << 20) + 5_000;

    // B fetches from A: every chunk byte on the bulk channel, verified like any other.
    let b = TestNode::start(&[&a]).await?;
    b.wait_peers(1).await?;
    let out_b = tempfile::tempdir()?;
    b.node.fetch(&id, out_b.path(), FetchOptions::default()).await?;
    assert_same_tree(&data, out_b.path())?;
    assert_eq!(b.node.stats().bulk_fetched, size, "B's chunks did not all come over the bulk channel");
    assert_eq!(a.node.stats().bulk_served, size);
    // The bulk channel goes through the same audit log as libp2p requests.
    let log = std::fs::read_to_string(a.node.audit_path())?;
    assert!(log.contains(&b.node.peer_id().to_string()), "bulk transfers were not audited");

    // C has the channel switched off: everything over libp2p, same bytes.
    let c = TestNode::start_with(&[&a], |c| c.bulk_transfer = false).await?;
    c.wait_peers(1).await?;
    let out_c = tempfile::tempdir()?;
    c.node.fetch(&id, out_c.path(), FetchOptions::default()).await?;
    assert_same_tree(&data, out_c.path())?;
    assert_eq!(c.node.stats().bulk_fetched, 0);
    assert_eq!(c.node.stats().chunks_fetched, b.node.stats().chunks_fetched);

    // D can only reach C, which offers no channel: D asks, is told no, and fetches over libp2p.
    a.node.shutdown().await;
    b.node.shutdown().await;
    let d = TestNode::start(&[&c]).await?;
    d.wait_peers(1).await?;
    let out_d = tempfile::tempdir()?;
    d.node.fetch(&id, out_d.path(), FetchOptions::default()).await?;
    assert_same_tree(&data, out_d.path())?;
    assert_eq!(d.node.stats().bulk_fetched, 0);
    assert!(d.node.stats().served.is_empty() && c.node.stats().served.values().sum::<u64>() >= size);
    Ok(())
}

/// The TLS stream of a bulk channel (client side).
type BulkStream = lien_node::bulk::BulkStream;

/// Where `server` offers its bulk channel, asked over libp2p by `asker`.
async fn bulk_port(asker: &TestNode, server: &TestNode) -> Result<u16> {
    let offer = asker
        .node
        .network()
        .request(server.node.peer_id(), Request::OpenBulk { version: lien_protocol::bulk::VERSION })
        .await?;
    match offer.header {
        Response::BulkPort { port } => Ok(port),
        other => anyhow::bail!("no bulk channel: {other:?}"),
    }
}

/// Opens the bulk channel to `server` as `asker` would, from this test: TLS 1.3 with `asker`'s
/// libp2p identity as its certificate, accepting only `server`'s.
async fn bulk_connect(asker: &TestNode, server: &TestNode) -> Result<BulkStream> {
    let port = bulk_port(asker, server).await?;
    let keypair = lien_node::keyfile::node_keypair(asker.home.path())?;
    let identity = lien_node::bulk::tls::Identity::new(&keypair)?;
    let config = identity.client_config(server.node.peer_id())?;
    lien_node::bulk::connect(config, std::net::Ipv4Addr::LOCALHOST.into(), port).await.map_err(anyhow::Error::msg)
}

/// One request on an open bulk channel; returns the response header and payload.
async fn bulk_ask<S>(s: &mut S, request: &Request) -> Result<(Response, Vec<u8>)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use lien_node::bulk::frames::{read_message, write_message};
    write_message(s, &[&request.encode()?], None).await?;
    let limit = lien_protocol::bulk::MAX_FRAME_LEN;
    let mut body =
        tokio::time::timeout(Duration::from_secs(15), read_message(s, limit, None)).await??.context("closed")?;
    let header = lien_protocol::bulk::split_response(&mut body)?;
    Ok((header, body))
}

/// One request on a fresh bulk channel from `asker` to `server`.
async fn bulk_request(asker: &TestNode, server: &TestNode, request: Request) -> Result<(Response, Vec<u8>)> {
    let mut s = bulk_connect(asker, server).await?;
    bulk_ask(&mut s, &request).await
}

/// A TLS client that takes any server certificate and has none of its own: a stock client.
#[derive(Debug)]
struct AnyServer;

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        lien_node::bulk::tls::provider().signature_verification_algorithms.supported_schemes()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bulk_channel_is_tls_1_3_and_admits_only_certified_peers() -> Result<()> {
    let a = TestNode::start(&[]).await?;
    let b = TestNode::start(&[&a]).await?;
    b.wait_peers(1).await?;
    let src = tempfile::tempdir()?;
    let data = make_dataset(src.path(), 12, &[("f.bin", 200_000)])?;
    let m = a.node.publish(request(&data, "f", "F", 1 << 16)?, quiet()).await?;
    let entry = m.body().files.inline().context("inline file list")?[0].clone();
    let chunks = Request::Chunks { file: entry.id, first: 1, count: 1 };

    // B with its libp2p identity: chunk 1 comes back and verifies; A's audit log names B, the
    // peer A learnt from B's certificate.
    let (header, body) = bulk_request(&b, &a, chunks.clone()).await?;
    assert!(matches!(header, Response::Chunks { first: 1, count: 1, .. }), "{header:?}");
    let original = std::fs::read(data.join("f.bin"))?;
    assert_eq!(body, original[1 << 16..2 << 16]);
    let log = std::fs::read_to_string(a.node.audit_path())?;
    assert!(log.contains(&b.node.peer_id().to_string()), "the bulk request was not audited as B's");

    // A stock TLS 1.3 client without a certificate, on the libp2p TCP port: A answers as a TLS
    // 1.3 server with a libp2p certificate naming A, then refuses the client; nothing served.
    let port = bulk_port(&b, &a).await?;
    let served_before = a.node.stats().bulk_served;
    let mut stock = rustls::ClientConfig::builder_with_provider(lien_node::bulk::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer))
        .with_no_client_auth();
    stock.alpn_protocols = vec![lien_protocol::bulk::ALPN.to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(stock)).connect(name, tcp).await?;
    let (_, session) = tls.get_ref();
    assert_eq!(session.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    let cert = session.peer_certificates().and_then(|c| c.first()).context("no server certificate")?;
    assert_eq!(libp2p::tls::certificate::parse(cert)?.peer_id(), a.node.peer_id());
    let refused = bulk_ask(&mut tls, &chunks).await;
    assert!(refused.is_err(), "a client without a certificate was answered: {:?}", refused.map(|r| r.0));
    assert_eq!(a.node.stats().bulk_served, served_before);

    // B expecting another peer at A's port: B's side refuses A's certificate.
    let keypair = lien_node::keyfile::node_keypair(b.home.path())?;
    let identity = lien_node::bulk::tls::Identity::new(&keypair)?;
    let wrong = identity.client_config(libp2p::PeerId::random())?;
    let mismatch = lien_node::bulk::connect(wrong, std::net::Ipv4Addr::LOCALHOST.into(), port).await;
    assert!(mismatch.is_err(), "a fetcher accepted a certificate of another peer");
    assert_eq!(a.node.stats().bulk_served, served_before);
    Ok(())
}

/// One `GET` over a fresh connection (bounded): the status code and the whole response.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1).context("no status line")?.parse()?;
    Ok((status, text))
}

/// Serves `node`'s API (and so its gateway) on 127.0.0.1; stops when the sender is dropped.
async fn start_api(node: &lien_node::Node) -> Result<(std::net::SocketAddr, tokio::sync::oneshot::Sender<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let token = zeroize::Zeroizing::new("test-token".to_owned());
    let config = lien_http::ApiConfig::default();
    tokio::spawn(lien_http::serve(listener, node.clone(), token, &config, async move {
        let _ = stopped.await;
    }));
    Ok((addr, stop))
}

/// Issue 12, item 4: bytes are served by file id, so a public manifest naming a restricted
/// file's id (anyone trusted to publish can sign one) must not open the file up: not on the
/// publisher, and not on an authorised node that fetched the file through both manifests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_alias_of_a_restricted_file_is_refused_over_p2p_and_by_the_gateway() -> Result<()> {
    use lien_protocol::wire::ErrorCode;
    let root = TestNode::start(&[]).await?;
    let root_key = root.node.publisher().to_string();
    let trusting = |k: String| move |c: &mut lien_node::NodeConfig| c.trust_roots = vec![k];
    let a = TestNode::start_with(&[&root], trusting(root_key.clone())).await?;
    let finance = TestNode::start_with(&[&root, &a], trusting(root_key.clone())).await?;
    let attacker = TestNode::start_with(&[&root, &a, &finance], trusting(root_key.clone())).await?;
    a.wait_peers(3).await?;
    attacker.wait_peers(3).await?;
    // The root vouches for A, for the finance ministry's node key, and for a publisher that goes
    // rogue (in an open network anyone may publish; here it takes a trusted publisher).
    let rogue = lien_protocol::PublisherSecret::from_seed(&[77; 32]);
    root.node.delegate(a.node.publisher(), "General Statistics Office", "", 30, false).await?;
    root.node.delegate(finance.node.node_key().context("node key")?, "Ministry of Finance", "", 30, false).await?;
    root.node.delegate(rogue.public(), "Rogue Agency", "", 30, false).await?;
    for n in [&a, &finance, &attacker] {
        wait_for("every node to learn the three delegations", Duration::from_secs(20), || async {
            Ok(n.node.store().trust_page(0, 10)?.0.len() >= 3)
        })
        .await?;
    }

    // A publishes salaries for the finance ministry only.
    let src = tempfile::tempdir()?;
    let data = make_dataset(src.path(), 60, &[("salaries.csv", 2_000_000)])?;
    let mut req = request(&data, "salaries", "Civil service salaries", 1 << 16)?;
    req.metadata.readers = vec!["Ministry of Finance".into()];
    let m = a.node.publish(req, quiet()).await?;
    let salaries = m.body().files.inline().context("inline file list")?[0].clone();
    let opts = || FetchOptions { timeout: Duration::from_secs(20), ..Default::default() };
    // The ministry holds part of it (as its gateway does after a Range request).
    let out = tempfile::tempdir()?;
    let range = lien_node::fetch::ChunkRange { file: salaries.id, first: 0, last: 0 };
    finance.node.fetch_range(m.id(), &out.path().join("salaries"), opts(), range).await?;
    let partial = finance.node.store().file(&salaries.id)?.context("no record")?;
    assert!(!partial.complete, "the whole file came with the first chunk: make it larger");

    // The rogue publisher signs a public manifest listing the file's id, size and chunk size
    // (all public in A's gossiped manifest); the attacker's node holds and gossips it.
    let entry = lien_protocol::FileEntry { path: lien_protocol::RelPath::new("copy.csv")?, ..salaries.clone() };
    let body = lien_protocol::ManifestBody {
        publisher: rogue.public(),
        slug: "copy".parse()?,
        version: 1,
        previous: None,
        created: 0,
        metadata: Metadata::titled("Nothing to see"),
        files: lien_protocol::manifest::FileList::build(vec![entry])?.0,
    };
    let alias = lien_protocol::Manifest::sign(body, &rogue)?;
    assert!(!alias.body().metadata.is_restricted());
    attacker.node.store().put_manifest(&alias)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    attacker.node.network().send(Command::Announce { bytes: alias.bytes().to_vec() }).await?;
    for n in [&a, &finance] {
        wait_for("the alias to spread", Duration::from_secs(20), || has_manifest(n, alias.id())).await?;
    }
    // The ministry fetches the alias too (it may read the file, so A serves it): its record of
    // the file stays restricted, though the alias is public.
    finance.node.fetch(&alias.id().to_string(), &out.path().join("alias"), opts()).await?;
    let rec = finance.node.store().file(&salaries.id)?.context("no record")?;
    assert!(rec.complete);
    assert!(rec.readers.is_restricted(), "a public alias opened up a restricted file: {}", rec.readers);

    // Over P2P (libp2p and the bulk channel), neither holder serves the file to the attacker.
    for (who, holder) in [("A", &a), ("the ministry", &finance)] {
        let peer = holder.node.peer_id();
        for request in [
            Request::Have { file: salaries.id },
            Request::Watch { file: salaries.id, known: 0, wait_ms: 1_000 },
            Request::ChunkList { file: salaries.id },
            Request::Chunks { file: salaries.id, first: 0, count: 1 },
        ] {
            let r = attacker.node.network().request(peer, request.clone()).await?;
            assert!(
                matches!(r.header, Response::Error { code: ErrorCode::Forbidden, .. }) && r.payload.is_empty(),
                "{who} answered {request:?} from an outsider with {:?}",
                r.header
            );
        }
        let chunk0 = Request::Chunks { file: salaries.id, first: 0, count: 1 };
        let (header, body) = bulk_request(&attacker, holder, chunk0).await?;
        assert!(
            matches!(header, Response::Error { code: ErrorCode::Forbidden, .. }) && body.is_empty(),
            "{who}'s bulk channel served the file to an outsider: {header:?}"
        );
    }
    let denied = attacker
        .node
        .fetch(
            &alias.id().to_string(),
            &out.path().join("stolen"),
            FetchOptions { timeout: Duration::from_secs(10), ..Default::default() },
        )
        .await;
    let message = denied.err().context("the attacker fetched the restricted file through its alias")?.to_string();
    assert!(message.contains("refused"), "unclear refusal: {message}");

    // Over HTTP, neither gateway serves the alias's file (403), though the alias is public.
    for (who, holder) in [("A", &a), ("the ministry", &finance)] {
        let (addr, _stop) = start_api(&holder.node).await?;
        let (status, text) = http_get(addr, &format!("/d/{}/copy.csv", alias.id())).await?;
        assert_eq!(status, 403, "{who}'s gateway answered the alias path with {status}: {text:.300}");
    }
    for n in [&root, &a, &finance, &attacker] {
        n.node.shutdown().await;
    }
    Ok(())
}

/// Issue 12, item 6: a peer that holds the file cut into other chunks (another manifest listed
/// it with another chunk size) answers `Have` with another chunk count. That is not read as if
/// it were about our chunks (which would send it requests it answers with other bytes, and mark
/// an honest peer bad): the peer is not asked for that file again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_have_does_not_fit_the_file_is_skipped_not_blamed() -> Result<()> {
    let p = TestNode::start(&[]).await?;
    let s = TestNode::start(&[&p]).await?;
    let f = TestNode::start(&[&p, &s]).await?;
    f.wait_peers(2).await?;
    let src = tempfile::tempdir()?;
    let data = make_dataset(src.path(), 61, &[("big.bin", 4 << 20)])?;
    // S holds the same bytes in 64 KiB chunks; P publishes them in 128 KiB chunks.
    s.node.publish(request(&data, "small-chunks", "Small chunks", 1 << 16)?, quiet()).await?;
    let m = p.node.publish(request(&data, "big-chunks", "Big chunks", 1 << 17)?, quiet()).await?;
    let out = tempfile::tempdir()?;
    let report = f
        .node
        .fetch(&m.id().to_string(), out.path(), FetchOptions { timeout: Duration::from_secs(30), ..Default::default() })
        .await?;
    assert_same_tree(&data, out.path())?;
    assert!(report.bad_peers.is_empty(), "an honest peer was marked bad: {:?}", report.bad_peers);
    assert!(!report.per_peer.contains_key(&s.node.peer_id().to_string()), "S's chunks do not fit, yet it served");
    assert_eq!(f.node.stats().chunks_rejected, 0, "chunks of another size were asked for and rejected");
    Ok(())
}

/// Issue 12, item 6: the suffix of partial files is reserved. A dataset listing `a` and
/// `a.lien-part` would have the second file's download overwrite the first one's partial file,
/// so it is refused, before anything is written, by `fetch` and by `publish`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_path_ending_in_lien_part_is_refused_before_anything_is_written() -> Result<()> {
    let a = TestNode::start(&[]).await?;
    let src = tempfile::tempdir()?;
    let data = make_dataset(src.path(), 62, &[("a", 100_000), ("a.lien-part", 100_000)])?;
    let refused = a.node.publish(request(&data, "clash", "Clash", 1 << 16)?, quiet()).await;
    let message = refused.err().context("published a dataset with a reserved path")?.to_string();
    assert!(message.contains("a.lien-part") && message.contains("partially downloaded"), "{message}");

    // Someone else's manifest with such paths (signed elsewhere, heard over gossip).
    let secret = lien_protocol::PublisherSecret::from_seed(&[62; 32]);
    let entry = |path: &str, seed: &[u8]| -> Result<lien_protocol::FileEntry> {
        Ok(lien_protocol::FileEntry {
            path: lien_protocol::RelPath::new(path)?,
            size: 100_000,
            id: ContentId::of(seed),
            chunk_size: ChunkSize::new(1 << 16)?,
            media_type: String::new(),
        })
    };
    let body = lien_protocol::ManifestBody {
        publisher: secret.public(),
        slug: "clash".parse()?,
        version: 1,
        previous: None,
        created: 0,
        metadata: Metadata::titled("Clash"),
        files: lien_protocol::manifest::FileList::build(vec![entry("a", b"1")?, entry("sub/b.LIEN-PART/c", b"2")?])?.0,
    };
    let m = lien_protocol::Manifest::sign(body, &secret)?;
    a.node.store().put_manifest(&m)?;
    let out = tempfile::tempdir()?;
    let root = out.path().join("clash");
    let refused = a
        .node
        .fetch(&m.id().to_string(), &root, FetchOptions { timeout: Duration::from_secs(5), ..Default::default() })
        .await;
    let message = refused.err().context("fetched a dataset with a reserved path")?.to_string();
    assert!(message.contains("sub/b.LIEN-PART/c") && message.contains("partially downloaded"), "{message}");
    assert!(!root.exists(), "the refused dataset's folder was created");
    assert!(a.node.store().local(&m.id())?.is_none(), "the refused dataset was recorded as local");
    Ok(())
}

/// Issue 12, item 6: files are written into the output folder without following links planted
/// there (at a partial file's name, at a final name, as a folder of the dataset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_files_are_written_without_following_planted_symlinks() -> Result<()> {
    use std::os::unix::fs::symlink;
    let a = TestNode::start(&[]).await?;
    let b = TestNode::start(&[&a]).await?;
    b.wait_peers(1).await?;
    let src = tempfile::tempdir()?;
    let first = make_dataset(src.path(), 63, &[("f.csv", 200_000), ("empty.txt", 0)])?;
    let m1 = a.node.publish(request(&first, "first", "First", 1 << 16)?, quiet()).await?;
    // The same content under another name (B will copy its copy), and in a subfolder.
    let second = src.path().join("second");
    std::fs::create_dir_all(&second)?;
    std::fs::copy(first.join("f.csv"), second.join("g.csv"))?;
    let m2 = a.node.publish(request(&second, "second", "Second", 1 << 16)?, quiet()).await?;
    let third = make_dataset(src.path(), 64, &[("sub/h.csv", 1_000)])?;
    let m3 = a.node.publish(request(&third, "third", "Third", 1 << 16)?, quiet()).await?;

    let dir = tempfile::tempdir()?;
    let victims = dir.path().join("victims");
    std::fs::create_dir_all(&victims)?;
    for v in ["v1", "v2", "v3"] {
        std::fs::write(victims.join(v), b"precious")?;
    }
    let opts = || FetchOptions { timeout: Duration::from_secs(20), ..Default::default() };
    let is_regular = |p: &std::path::Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file());

    // A link at a partial file's name and one at an (empty) file's final name.
    let out1 = dir.path().join("out1");
    std::fs::create_dir_all(&out1)?;
    symlink(victims.join("v1"), out1.join("f.csv.lien-part"))?;
    symlink(victims.join("v2"), out1.join("empty.txt"))?;
    b.node.fetch(&m1.id().to_string(), &out1, opts()).await?;
    assert_same_tree(&first, &out1)?;
    assert!(is_regular(&out1.join("f.csv")) && is_regular(&out1.join("empty.txt")));

    // A link at the final name of a file copied from the copy B holds already.
    let out2 = dir.path().join("out2");
    std::fs::create_dir_all(&out2)?;
    symlink(victims.join("v3"), out2.join("g.csv"))?;
    b.node.fetch(&m2.id().to_string(), &out2, opts()).await?;
    assert_same_tree(&second, &out2)?;
    assert!(is_regular(&out2.join("g.csv")));

    // A link where a folder of the dataset goes: refused, nothing written where it points.
    let out3 = dir.path().join("out3");
    std::fs::create_dir_all(&out3)?;
    symlink(&victims, out3.join("sub"))?;
    let refused = b.node.fetch(&m3.id().to_string(), &out3, opts()).await;
    let message = refused.err().context("wrote through a planted folder link")?.to_string();
    assert!(message.contains("symbolic link"), "{message}");
    assert!(!victims.join("h.csv").exists() && !victims.join("h.csv.lien-part").exists());

    for v in ["v1", "v2", "v3"] {
        assert_eq!(std::fs::read(victims.join(v))?, b"precious", "{v} was written through a link");
    }
    Ok(())
}

/// Pushed availability over real nodes: a `Watch` on a partial holder answers as soon as it
/// gains a chunk (not when its wait runs out), a `Watch` asking to wait too long is refused,
/// and a watch on a node that does not hold the file waits for its first chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_answers_as_soon_as_a_partial_holder_gains_chunks() -> Result<()> {
    let a = TestNode::start(&[]).await?;
    let b = TestNode::start(&[&a]).await?;
    let c = TestNode::start(&[&a]).await?;
    let src = tempfile::tempdir()?;
    // Four chunks of 1 MiB: one chunk per request (`REQUEST_BYTES`), so a range is one chunk.
    let data = make_dataset(src.path(), 61, &[("table.csv", 4 << 20)])?;
    let m = a.node.publish(request(&data, "table", "Table", 1 << 20)?, quiet()).await?;
    let file = m.body().files.inline().context("inline file list")?[0].clone();
    let opts = || FetchOptions { timeout: Duration::from_secs(20), ..Default::default() };
    wait_for("B to know the manifest", Duration::from_secs(20), || has_manifest(&b, m.id())).await?;
    c.node.network().dial(b.addr.clone(), Duration::from_secs(10)).await?;

    // B does not hold the file yet: C's watch waits for B's first chunk.
    let watch = |known: u64, wait_ms: u32| {
        let (net, peer) = (c.node.network().clone(), b.node.peer_id());
        let request = Request::Watch { file: file.id, known, wait_ms };
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let r = net.request(peer, request).await;
            (r, started.elapsed())
        })
    };
    let first = watch(0, 10_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!first.is_finished(), "answered before B held anything");
    let out = tempfile::tempdir()?;
    let chunk = |i: u64| lien_node::fetch::ChunkRange { file: file.id, first: i, last: i };
    b.node.fetch_range(m.id(), &out.path().join("table"), opts(), chunk(0)).await?;
    let (answer, waited) = first.await?;
    match answer?.header {
        Response::Have { count: 4, bitmap } => assert_eq!(bitmap, vec![0b0001]),
        other => anyhow::bail!("unexpected answer to a watch: {other:?}"),
    }
    assert!(
        waited < Duration::from_secs(9),
        "the watch waited out its time ({waited:?}) instead of answering the gain"
    );

    // B holds one chunk; C saw one: the next watch answers when B gains another.
    let second = watch(1, 10_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "answered with no news");
    b.node.fetch_range(m.id(), &out.path().join("table"), opts(), chunk(2)).await?;
    let (answer, waited) = second.await?;
    match answer?.header {
        Response::Have { count: 4, bitmap } => assert_eq!(bitmap, vec![0b0101]),
        other => anyhow::bail!("unexpected answer to a watch: {other:?}"),
    }
    assert!(waited < Duration::from_secs(9), "waited {waited:?}");

    // A watch asking to wait longer than the protocol allows is not a request the node answers.
    let (too_long, _) = watch(2, lien_protocol::wire::MAX_WATCH_WAIT_MS + 1).await?;
    assert!(
        too_long.as_ref().map_or(true, |r| matches!(r.header, Response::Error { .. })),
        "an over-long watch was answered: {too_long:?}"
    );
    for n in [a, b, c] {
        n.node.shutdown().await;
    }
    Ok(())
}

/// A node given its bootstrap peer by DNS name (`/dns4/localhost/...`, as agencies name their
/// servers) finds and fetches a dataset, and uses the fast path to the resolved address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_peer_named_by_dns_is_reached_and_fetched_from() -> Result<()> {
    let a = TestNode::start(&[]).await?;
    let named: libp2p::Multiaddr = a.addr.to_string().replace("/ip4/127.0.0.1/", "/dns4/localhost/").parse()?;
    assert!(named.to_string().starts_with("/dns4/localhost/tcp/"), "{named}");
    let src = tempfile::tempdir()?;
    let data = make_dataset(src.path(), 62, &[("census.csv", 3 << 20)])?;
    let m = a.node.publish(request(&data, "census", "Census", 1 << 20)?, quiet()).await?;
    let home = tempfile::tempdir()?;
    let mut config = lien_tests::test_config(home.path());
    config.bootstrap = vec![named];
    let b = lien_node::Node::start(config).await?;
    let out = tempfile::tempdir()?;
    b.fetch(&m.id().to_string(), out.path(), FetchOptions { timeout: Duration::from_secs(30), ..Default::default() })
        .await?;
    assert_same_tree(&data, out.path())?;
    assert!(b.stats().bulk_fetched > 0, "the fast path was not used to the resolved address");
    b.shutdown().await;
    a.node.shutdown().await;
    Ok(())
}
