//! The audit log: every chunk range this node serves, appended to a hash-chained log.
//!
//! `HOME/audit.log` holds one JSON object per line: sequence number, time, requester (peer id),
//! file id, first chunk, chunk count, bytes, the previous entry's hash and this entry's hash,
//! where `hash = BLAKE3(prev || the entry's fields as canonical CBOR)`. Editing, removing or
//! reordering any entry breaks the chain from that line on, which [`verify`] reports.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lien_protocol::ContentId;
use serde::{Deserialize, Serialize};

/// File name of the audit log in the node's home.
pub const AUDIT_FILE: &str = "audit.log";

/// Why the audit log could not be written or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading or writing failed.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An entry does not parse or does not chain.
    #[error("audit log line {line} is not intact: {reason}")]
    Broken {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        reason: String,
    },
}

/// What is recorded of one served range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFields {
    /// Position in the log, from 1.
    pub seq: u64,
    /// Unix seconds.
    pub time: u64,
    /// Peer id of the requester.
    pub requester: String,
    /// File served.
    pub file: ContentId,
    /// First chunk index.
    pub first: u64,
    /// Number of chunks.
    pub count: u32,
    /// Bytes sent.
    pub bytes: u64,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// The recorded fields.
    #[serde(flatten)]
    pub fields: AuditFields,
    /// Hash of the previous entry (all zeros for the first).
    pub prev: ContentId,
    /// Hash of this entry.
    pub hash: ContentId,
}

fn entry_hash(prev: &ContentId, fields: &AuditFields) -> ContentId {
    let mut h = blake3::Hasher::new();
    h.update(b"lien/audit/v1\0");
    h.update(prev.as_bytes());
    // Canonical CBOR of the fields: identical on every platform.
    let encoded = lien_protocol::cbor::to_canonical_vec(fields).unwrap_or_default();
    h.update(&encoded);
    ContentId::from(h.finalize())
}

/// The append side of the log.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    state: Mutex<(File, u64, ContentId)>,
}

impl AuditLog {
    /// Opens (or creates) the log at `path`, verifying the existing chain to continue it.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let io = |source| AuditError::Io { path: path.to_path_buf(), source };
        let (seq, last) = if path.exists() { verify(path)? } else { (0, ContentId::from_bytes([0; 32])) };
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        Ok(Self { path: path.to_path_buf(), state: Mutex::new((file, seq, last)) })
    }

    /// Appends one served range.
    pub fn record(
        &self,
        requester: &str,
        file: ContentId,
        first: u64,
        count: u32,
        bytes: u64,
    ) -> Result<(), AuditError> {
        let io = |source| AuditError::Io { path: self.path.clone(), source };
        let mut state =
            self.state.lock().map_err(|_| AuditError::Broken { line: 0, reason: "lock poisoned".into() })?;
        let (f, seq, last) = &mut *state;
        let fields = AuditFields {
            seq: *seq + 1,
            time: crate::trust::now_secs(),
            requester: requester.to_owned(),
            file,
            first,
            count,
            bytes,
        };
        let hash = entry_hash(last, &fields);
        let entry = AuditEntry { fields, prev: *last, hash };
        let mut line = serde_json::to_vec(&entry).map_err(|e| io(std::io::Error::other(e)))?;
        line.push(b'\n');
        f.write_all(&line).map_err(io)?;
        *seq += 1;
        *last = hash;
        Ok(())
    }

    /// Flushes the log to disk.
    pub fn sync(&self) -> Result<(), AuditError> {
        let state = self.state.lock().map_err(|_| AuditError::Broken { line: 0, reason: "lock poisoned".into() })?;
        state.0.sync_data().map_err(|source| AuditError::Io { path: self.path.clone(), source })
    }
}

/// Checks the whole chain; returns (entries, hash of the last entry).
pub fn verify(path: &Path) -> Result<(u64, ContentId), AuditError> {
    let mut last = ContentId::from_bytes([0; 32]);
    let mut n = 0;
    for entry in read(path)? {
        let (line, entry) = entry?;
        if entry.fields.seq != n + 1 {
            return Err(AuditError::Broken {
                line,
                reason: format!("sequence {} where {} was expected", entry.fields.seq, n + 1),
            });
        }
        if entry.prev != last {
            return Err(AuditError::Broken { line, reason: "does not follow the previous entry".into() });
        }
        if entry_hash(&entry.prev, &entry.fields) != entry.hash {
            return Err(AuditError::Broken { line, reason: "its content does not match its hash (edited)".into() });
        }
        last = entry.hash;
        n += 1;
    }
    Ok((n, last))
}

/// Every entry with its line number, parsed but not verified.
pub fn read(path: &Path) -> Result<impl Iterator<Item = Result<(u64, AuditEntry), AuditError>>, AuditError> {
    let f = File::open(path).map_err(|source| AuditError::Io { path: path.to_path_buf(), source })?;
    let path = path.to_path_buf();
    Ok(BufReader::new(f).lines().enumerate().map(move |(i, line)| {
        let n = i as u64 + 1;
        let line = line.map_err(|source| AuditError::Io { path: path.clone(), source })?;
        serde_json::from_str::<AuditEntry>(&line)
            .map(|e| (n, e))
            .map_err(|e| AuditError::Broken { line: n, reason: format!("not an audit entry: {e}") })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_verifies_and_detects_edits_removals_and_reorders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(AUDIT_FILE);
        let log = AuditLog::open(&path).unwrap();
        for i in 0..5 {
            log.record("12D3KooWpeer", ContentId::of(&[i]), i.into(), 1, 1024).unwrap();
        }
        drop(log);
        // reopening continues the chain
        AuditLog::open(&path).unwrap().record("other", ContentId::of(b"x"), 0, 2, 10).unwrap();
        assert_eq!(verify(&path).unwrap().0, 6);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();

        let edited = text.replacen("\"bytes\":1024", "\"bytes\":9999", 1);
        std::fs::write(&path, edited).unwrap();
        assert!(matches!(verify(&path), Err(AuditError::Broken { line: 1, .. })));

        let mut removed = lines.clone();
        removed.remove(2);
        std::fs::write(&path, removed.join("\n") + "\n").unwrap();
        assert!(matches!(verify(&path), Err(AuditError::Broken { line: 3, .. })));

        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        std::fs::write(&path, swapped.join("\n") + "\n").unwrap();
        assert!(matches!(verify(&path), Err(AuditError::Broken { line: 2, .. })));
        assert!(AuditLog::open(&path).is_err(), "a broken log must not be silently continued");
    }
}
