//! Lien's integration-test harness: real nodes on 127.0.0.1, every wait bounded.
//!
//! Each [`TestNode`] is a full `lien_node::Node` with its own temporary home, listening on
//! `127.0.0.1:0` (TCP), on the `test` network.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
pub use libp2p::Multiaddr;
use lien_node::{Node, NodeConfig};
use rand::{RngCore, SeedableRng};

/// A node with its home folder (deleted when dropped).
#[allow(missing_debug_implementations)]
pub struct TestNode {
    /// The node.
    pub node: Node,
    /// Its home.
    pub home: tempfile::TempDir,
    /// Its first listen address, ending in `/p2p/<peer id>`.
    pub addr: Multiaddr,
}

/// A test config for `home`: loopback only, short timeouts.
pub fn test_config(home: &Path) -> NodeConfig {
    let mut c = NodeConfig::for_home(home);
    c.network = "test".into();
    c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")];
    c.request_timeout_secs = 10;
    c.hash_threads = 2;
    c
}

impl TestNode {
    /// Starts a node that dials `bootstrap`.
    pub async fn start(bootstrap: &[&TestNode]) -> Result<TestNode> {
        Self::start_with(bootstrap, |_| {}).await
    }

    /// Starts a node after letting `tweak` adjust its config.
    pub async fn start_with(bootstrap: &[&TestNode], tweak: impl FnOnce(&mut NodeConfig)) -> Result<TestNode> {
        let home = tempfile::tempdir()?;
        let mut config = test_config(home.path());
        config.bootstrap = bootstrap.iter().map(|n| n.addr.clone()).collect();
        tweak(&mut config);
        Self::start_in(home, config).await
    }

    /// Starts a node that dials `bootstrap` and trusts `root` as its one trust root.
    pub async fn start_trusting(bootstrap: &[&TestNode], root: lien_protocol::PublisherKey) -> Result<TestNode> {
        Self::start_with(bootstrap, move |c| c.trust_roots = vec![root.to_string()]).await
    }

    /// Starts a node in an existing home with `config`.
    pub async fn start_in(home: tempfile::TempDir, config: NodeConfig) -> Result<TestNode> {
        let node = Node::start(config).await?;
        let addr = node.listen_addrs().await?.into_iter().next().context("node has no listen address")?;
        let t = TestNode { node, home, addr };
        Ok(t)
    }

    /// Waits until the node has at least `n` connected peers.
    pub async fn wait_peers(&self, n: usize) -> Result<()> {
        wait_for(&format!("{n} peers"), Duration::from_secs(20), || async { Ok(self.node.peers().await?.len() >= n) })
            .await
    }
}

/// Polls `check` every 100 ms until it returns true, failing after `limit`.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let start = std::time::Instant::now();
    let rounds = (limit.as_millis() / 100).max(1);
    for _ in 0..rounds {
        if check().await? {
            return Ok(());
        }
        if start.elapsed() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("timed out after {limit:?} waiting for {what}")
}

/// Writes a folder of files with seeded random content; returns its path.
pub fn make_dataset(dir: &Path, seed: u64, files: &[(&str, usize)]) -> Result<PathBuf> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let root = dir.join(format!("dataset-{seed}"));
    for (path, size) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().context("no parent")?)?;
        let mut bytes = vec![0u8; *size];
        rng.fill_bytes(&mut bytes);
        std::fs::write(&p, bytes)?;
    }
    Ok(root)
}

/// Fails unless every file under `a` has an identical file under `b`.
pub fn assert_same_tree(a: &Path, b: &Path) -> Result<()> {
    let mut stack = vec![a.to_path_buf()];
    let mut n = 0;
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                stack.push(e.path());
                continue;
            }
            let rel = e.path().strip_prefix(a)?.to_path_buf();
            let other = b.join(&rel);
            let x = std::fs::read(e.path())?;
            let y = std::fs::read(&other).with_context(|| format!("missing {}", other.display()))?;
            if x != y {
                bail!("{} differs", rel.display());
            }
            n += 1;
        }
    }
    if n == 0 {
        bail!("no files compared");
    }
    Ok(())
}
