//! Key files in the node's home: the libp2p node key and the publisher key, each a hex seed in a
//! file only the owner can read (mode 0600), created on first use.

use std::io::Write;
use std::path::Path;

use lien_protocol::PublisherSecret;
use zeroize::Zeroizing;

/// File name of the node's libp2p identity key.
pub const NODE_KEY_FILE: &str = "node.key";
/// File name of the publisher signing key.
pub const PUBLISHER_KEY_FILE: &str = "publisher.key";

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not hold a 64-hex-digit seed.
    #[error("key file {0} is damaged: expected 64 hex digits")]
    Damaged(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io { path: path.display().to_string(), source }
}

/// Reads the seed in `path`, or creates the file with a fresh random seed.
fn load_or_create_seed(path: &Path) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_seed(text.trim()).ok_or_else(|| KeyFileError::Damaged(path.display().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let seed = PublisherSecret::generate().to_seed();
            write_private(path, &hex(&*seed))?;
            Ok(seed)
        }
        Err(e) => Err(io_err(path)(e)),
    }
}

fn parse_seed(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let id: lien_protocol::ContentId = text.parse().ok()?;
    Some(Zeroizing::new(*id.as_bytes()))
}

fn hex(bytes: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n")
}

/// Writes `text` to a new file readable only by its owner; never overwrites.
pub fn write_private(path: &Path, text: &str) -> Result<(), KeyFileError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io_err(path))?;
    f.write_all(text.as_bytes()).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// The node's libp2p identity from `home/node.key`, created if missing.
pub fn node_keypair(home: &Path) -> Result<libp2p::identity::Keypair, KeyFileError> {
    let path = home.join(NODE_KEY_FILE);
    let seed = load_or_create_seed(&path)?;
    let mut bytes = *seed;
    libp2p::identity::Keypair::ed25519_from_bytes(&mut bytes)
        .map_err(|_| KeyFileError::Damaged(path.display().to_string()))
}

/// The publisher key from `home/publisher.key`, created if missing.
pub fn publisher_secret(home: &Path) -> Result<PublisherSecret, KeyFileError> {
    let seed = load_or_create_seed(&home.join(PUBLISHER_KEY_FILE))?;
    Ok(PublisherSecret::from_seed(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = publisher_secret(dir.path()).unwrap().public();
        let b = publisher_secret(dir.path()).unwrap().public();
        assert_eq!(a, b);
        let n1 = node_keypair(dir.path()).unwrap().public().to_peer_id();
        let n2 = node_keypair(dir.path()).unwrap().public().to_peer_id();
        assert_eq!(n1, n2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(PUBLISHER_KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join("bad.key"), "zz").unwrap();
        assert!(matches!(load_or_create_seed(&dir.path().join("bad.key")), Err(KeyFileError::Damaged(_))));
    }
}
