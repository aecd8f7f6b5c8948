//! The files of a node's home folder that belong to the daemon and its API: creating a home
//! (`lien init`), the API token, and `daemon.json`, the note a running daemon leaves so that
//! clients can find it.
//!
//! Layout of a home (the store and data folder are the node's, see [`crate::config`]):
//!
//! | file          | what                                                        | mode |
//! |---------------|-------------------------------------------------------------|------|
//! | `lien.toml`   | configuration, the commented embedded default at first      | 0644 |
//! | `node.key`    | libp2p identity seed                                        | 0600 |
//! | `publisher.key` | publisher signing seed                                    | 0600 |
//! | `api.token`   | bearer token for the API's mutating endpoints               | 0600 |
//! | `daemon.json` | written by a running daemon once it is ready, removed on exit | 0644 |

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::config::DEFAULT_CONFIG_TOML;
use crate::keyfile::{self, KeyFileError};

/// File name of the API bearer token.
pub const TOKEN_FILE: &str = "api.token";
/// File name of the running daemon's note.
pub const DAEMON_FILE: &str = "daemon.json";
/// File name of the configuration.
pub const CONFIG_FILE: &str = "lien.toml";

/// Why a home folder could not be prepared or read.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// `lien init` on a home that already holds a node.
    #[error("{0} already holds a lien home (found {1}); refusing to overwrite it")]
    Exists(PathBuf, &'static str),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file failed.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// `api.token` does not hold a token.
    #[error("{0} is damaged: expected 64 hex digits")]
    BadToken(PathBuf),
    /// `daemon.json` does not parse.
    #[error("{path} is damaged: {message}")]
    BadDaemonFile {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HomeError + '_ {
    move |source| HomeError::Io { path: path.to_path_buf(), source }
}

/// What `init` created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitReport {
    /// The home folder.
    pub home: PathBuf,
    /// The node's peer id.
    pub peer_id: String,
    /// The publisher key, text form.
    pub publisher: String,
}

/// True if `home` already holds any of a node's files.
pub fn is_initialised(home: &Path) -> bool {
    existing_marker(home).is_some()
}

fn existing_marker(home: &Path) -> Option<&'static str> {
    [CONFIG_FILE, keyfile::NODE_KEY_FILE, keyfile::PUBLISHER_KEY_FILE, TOKEN_FILE, "store.redb"]
        .into_iter()
        .find(|f| home.join(f).exists())
}

/// Creates a new home: keys, API token, commented `lien.toml`. Refuses if one is already there.
pub fn init(home: &Path) -> Result<InitReport, HomeError> {
    if let Some(found) = existing_marker(home) {
        return Err(HomeError::Exists(home.to_path_buf(), found));
    }
    std::fs::create_dir_all(home).map_err(io(home))?;
    let node = keyfile::node_keypair(home)?;
    let publisher = keyfile::publisher_secret(home)?.public();
    ensure_token(home)?;
    let config = home.join(CONFIG_FILE);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&config).map_err(io(&config))?;
    f.write_all(DEFAULT_CONFIG_TOML.as_bytes()).map_err(io(&config))?;
    f.sync_all().map_err(io(&config))?;
    Ok(InitReport {
        home: home.to_path_buf(),
        peer_id: node.public().to_peer_id().to_string(),
        publisher: publisher.to_string(),
    })
}

/// The API token of `home`, created (0600) if missing.
pub fn ensure_token(home: &Path) -> Result<Zeroizing<String>, HomeError> {
    let path = home.join(TOKEN_FILE);
    match read_token(home) {
        Err(HomeError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            let mut raw = Zeroizing::new([0u8; 32]);
            rand::thread_rng().fill_bytes(&mut *raw);
            let text = Zeroizing::new(raw.iter().map(|b| format!("{b:02x}")).collect::<String>());
            keyfile::write_private(&path, &format!("{}\n", text.as_str()))?;
            Ok(text)
        }
        other => other,
    }
}

/// Reads the API token of `home`.
pub fn read_token(home: &Path) -> Result<Zeroizing<String>, HomeError> {
    let path = home.join(TOKEN_FILE);
    let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(io(&path))?);
    let token = text.trim();
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(HomeError::BadToken(path));
    }
    Ok(Zeroizing::new(token.to_owned()))
}

/// The note a ready daemon leaves in `HOME/daemon.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// The node's peer id.
    pub peer_id: String,
    /// Full listen multiaddrs, each ending in `/p2p/<peer id>`.
    pub listen_addrs: Vec<String>,
    /// Address of the HTTP API.
    pub api: SocketAddr,
    /// Process id of the daemon.
    pub pid: u32,
}

impl DaemonInfo {
    /// Writes the note atomically (temporary file, then rename).
    pub fn write(&self, home: &Path) -> Result<(), HomeError> {
        let path = home.join(DAEMON_FILE);
        let tmp = home.join(format!(".{DAEMON_FILE}.{}", std::process::id()));
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| HomeError::BadDaemonFile { path: path.clone(), message: e.to_string() })?;
        std::fs::write(&tmp, text + "\n").map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Reads the note, `None` when no daemon left one.
    pub fn read(home: &Path) -> Result<Option<DaemonInfo>, HomeError> {
        let path = home.join(DAEMON_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| HomeError::BadDaemonFile { path: path.clone(), message: e.to_string() })
    }

    /// Removes the note if it is this process's own (a refused second daemon must not remove
    /// the first one's).
    pub fn remove_own(home: &Path) -> Result<(), HomeError> {
        if let Ok(Some(info)) = Self::read(home) {
            if info.pid == std::process::id() {
                let path = home.join(DAEMON_FILE);
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn init_creates_private_files_and_refuses_twice() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let report = init(&home).unwrap();
        assert_eq!(report.publisher.len(), lien_protocol::keys::PUBLIC_KEY_TEXT_LEN);
        let token = read_token(&home).unwrap();
        assert_eq!(ensure_token(&home).unwrap(), token);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(home.join(TOKEN_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(crate::NodeConfig::load(&home).is_ok());
        let err = init(&home).unwrap_err().to_string();
        assert!(err.contains("refusing to overwrite"), "{err}");
    }

    #[test]
    fn daemon_note_round_trips_and_only_its_owner_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(DaemonInfo::read(dir.path()).unwrap(), None);
        let mut info = DaemonInfo {
            peer_id: "p".into(),
            listen_addrs: vec!["/ip4/127.0.0.1/tcp/1".into()],
            api: "127.0.0.1:1".parse().unwrap(),
            pid: std::process::id() + 1,
        };
        info.write(dir.path()).unwrap();
        assert_eq!(DaemonInfo::read(dir.path()).unwrap(), Some(info.clone()));
        DaemonInfo::remove_own(dir.path()).unwrap();
        assert!(DaemonInfo::read(dir.path()).unwrap().is_some());
        info.pid = std::process::id();
        info.write(dir.path()).unwrap();
        DaemonInfo::remove_own(dir.path()).unwrap();
        assert_eq!(DaemonInfo::read(dir.path()).unwrap(), None);
    }
}
