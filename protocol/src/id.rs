//! Content ids: BLAKE3-256 hashes that name files, chunk lists, manifests and other blobs.
//!
//! A file's id is the plain BLAKE3 hash of its bytes, so `b3sum FILE` prints the same 64 hex
//! digits. The text form is lowercase hex; parsing also accepts uppercase.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Length of a content id in bytes.
pub const ID_LEN: usize = 32;

/// Multihash code of BLAKE3 (used for DHT keys so standard Kademlia peers accept them).
pub const MULTIHASH_BLAKE3: u8 = 0x1e;

/// A BLAKE3-256 hash naming some bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentId([u8; ID_LEN]);

/// Why a text or byte form of a [`ContentId`] was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdParseError {
    /// The text is not 64 characters long.
    #[error("content id must be 64 hex characters, got {0}")]
    BadLength(usize),
    /// The text holds a character that is not a hex digit.
    #[error("content id has a non-hex character at position {0}")]
    BadChar(usize),
}

impl ContentId {
    /// The id of `bytes`: their BLAKE3 hash.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// Wraps 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; ID_LEN]) -> Self {
        Self(bytes)
    }

    /// The 32 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    /// The first 8 hex digits, for logs.
    pub fn short(&self) -> String {
        self.to_string()[..8].to_owned()
    }

    /// This id as a multihash (code 0x1e, length 32), the form used as a Kademlia key.
    pub fn to_multihash_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + ID_LEN);
        out.push(MULTIHASH_BLAKE3);
        out.push(ID_LEN as u8);
        out.extend_from_slice(&self.0);
        out
    }
}

impl From<blake3::Hash> for ContentId {
    fn from(h: blake3::Hash) -> Self {
        Self(*h.as_bytes())
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({})", self.short())
    }
}

impl FromStr for ContentId {
    type Err = IdParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != ID_LEN * 2 {
            return Err(IdParseError::BadLength(s.chars().count()));
        }
        let mut out = [0u8; ID_LEN];
        let bytes = s.as_bytes();
        for (i, slot) in out.iter_mut().enumerate() {
            let hi = hex_val(bytes[2 * i]).ok_or(IdParseError::BadChar(2 * i))?;
            let lo = hex_val(bytes[2 * i + 1]).ok_or(IdParseError::BadChar(2 * i + 1))?;
            *slot = (hi << 4) | lo;
        }
        Ok(Self(out))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl Serialize for ContentId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for ContentId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            let bytes: [u8; ID_LEN] = crate::cbor::bytes_array(d)?;
            Ok(Self(bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let id = ContentId::of(b"abc");
        let text = id.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<ContentId>(), Ok(id));
        assert_eq!(text.to_uppercase().parse::<ContentId>(), Ok(id));
        assert_eq!("abc".parse::<ContentId>(), Err(IdParseError::BadLength(3)));
        let mut bad = text.clone();
        bad.replace_range(10..11, "g");
        assert_eq!(bad.parse::<ContentId>(), Err(IdParseError::BadChar(10)));
        // multi-byte characters must not panic on slicing
        let weird = "é".repeat(32);
        assert!(weird.parse::<ContentId>().is_err());
    }

    #[test]
    fn known_vector_of_empty_input() {
        // BLAKE3 of the empty input, as printed by `b3sum /dev/null`.
        assert_eq!(ContentId::of(b"").to_string(), "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
    }

    #[test]
    fn multihash_form() {
        let id = ContentId::of(b"x");
        let mh = id.to_multihash_bytes();
        assert_eq!(&mh[..2], &[0x1e, 32]);
        assert_eq!(&mh[2..], id.as_bytes());
    }
}
