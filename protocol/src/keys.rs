//! Publisher keys: the ed25519 keys that sign manifests and name records.
//!
//! A [`PublisherKey`] is public and has a text form (52 lowercase base32 characters, RFC 4648
//! alphabet without padding) that round-trips. A [`PublisherSecret`] never prints its bytes and is
//! zeroized when dropped. Saving keys to disk is the node's job, not this crate's.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Length of a public key in bytes.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of a signature in bytes.
pub const SIGNATURE_LEN: usize = 64;
/// Length of a publisher key's text form.
pub const PUBLIC_KEY_TEXT_LEN: usize = 52;

/// Why a publisher key or signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text form has the wrong length.
    #[error("publisher key must be {PUBLIC_KEY_TEXT_LEN} base32 characters, got {0}")]
    BadTextLength(usize),
    /// The text form is not valid base32.
    #[error("publisher key is not valid base32 (a-z, 2-7)")]
    BadText,
    /// The bytes are not a valid ed25519 public key.
    #[error("bytes are not a valid ed25519 public key")]
    BadKey,
    /// The byte string has the wrong length.
    #[error("expected {expected} bytes, got {got}")]
    BadLength {
        /// Bytes expected.
        expected: usize,
        /// Bytes found.
        got: usize,
    },
    /// A signature did not verify.
    #[error("signature does not verify")]
    BadSignature,
}

/// A publisher's public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublisherKey(VerifyingKey);

impl PublisherKey {
    /// Parses 32 raw bytes, rejecting bytes that are not a curve point.
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<Self, KeyError> {
        VerifyingKey::from_bytes(bytes).map(Self).map_err(|_| KeyError::BadKey)
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        self.0.as_bytes()
    }

    /// The first 8 characters of the text form, for logs.
    pub fn short(&self) -> String {
        self.to_string()[..8].to_owned()
    }

    /// Verifies `signature` over `message` with strict rules (no malleable or small-order forms).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), KeyError> {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.0.verify_strict(message, &sig).map_err(|_| KeyError::BadSignature)
    }
}

impl PartialOrd for PublisherKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PublisherKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Display for PublisherKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = data_encoding::BASE32_NOPAD.encode(self.as_bytes());
        f.write_str(&text.to_ascii_lowercase())
    }
}

impl fmt::Debug for PublisherKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublisherKey({})", self.short())
    }
}

impl FromStr for PublisherKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != PUBLIC_KEY_TEXT_LEN {
            return Err(KeyError::BadTextLength(s.chars().count()));
        }
        if !s.bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)) {
            return Err(KeyError::BadText);
        }
        let raw =
            data_encoding::BASE32_NOPAD.decode(s.to_ascii_uppercase().as_bytes()).map_err(|_| KeyError::BadText)?;
        let bytes: [u8; PUBLIC_KEY_LEN] = raw.try_into().map_err(|_| KeyError::BadText)?;
        let key = Self::from_bytes(&bytes)?;
        // Only the canonical text form is accepted (the last character carries spare bits).
        if key.to_string() != s {
            return Err(KeyError::BadText);
        }
        Ok(key)
    }
}

impl Serialize for PublisherKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_bytes(self.as_bytes())
        }
    }
}

impl<'de> Deserialize<'de> for PublisherKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            let bytes: [u8; PUBLIC_KEY_LEN] = crate::cbor::bytes_array(d)?;
            Self::from_bytes(&bytes).map_err(serde::de::Error::custom)
        }
    }
}

/// A publisher's secret signing key. Its `Debug` shows only the public half; it is zeroized on
/// drop.
pub struct PublisherSecret(SigningKey);

impl PublisherSecret {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        Self(SigningKey::generate(&mut rand_core::OsRng))
    }

    /// The key for a 32-byte seed (key files store the seed).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed, for saving in a key file. Handle with care.
    pub fn to_seed(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.0.to_bytes())
    }

    /// The matching public key.
    pub fn public(&self) -> PublisherKey {
        PublisherKey(self.0.verifying_key())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for PublisherSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublisherSecret(public: {})", self.public().short())
    }
}

/// An ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; SIGNATURE_LEN]);

impl Signature {
    /// Wraps 64 raw bytes.
    pub const fn from_bytes(bytes: [u8; SIGNATURE_LEN]) -> Self {
        Self(bytes)
    }

    /// The 64 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({:02x}{:02x}{:02x}{:02x}..)", self.0[0], self.0[1], self.0[2], self.0[3])
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(crate::cbor::bytes_array(d)?))
    }
}

/// Prepends the domain-separation tag `domain` and a zero byte to `body`: what gets signed.
pub fn signing_message(domain: &str, body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(domain.len() + 1 + body.len());
    msg.extend_from_slice(domain.as_bytes());
    msg.push(0);
    msg.extend_from_slice(body);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        let secret = PublisherSecret::from_seed(&[7; 32]);
        let key = secret.public();
        let text = key.to_string();
        assert_eq!(text.len(), PUBLIC_KEY_TEXT_LEN);
        assert_eq!(text.parse::<PublisherKey>(), Ok(key));
    }

    #[test]
    fn bad_text_is_rejected_with_a_reason() {
        let text = PublisherSecret::from_seed(&[7; 32]).public().to_string();
        assert_eq!("abc".parse::<PublisherKey>(), Err(KeyError::BadTextLength(3)));
        assert_eq!(text.to_uppercase().parse::<PublisherKey>(), Err(KeyError::BadText));
        let mut bad = text.clone();
        bad.replace_range(0..1, "1");
        assert_eq!(bad.parse::<PublisherKey>(), Err(KeyError::BadText));
        assert!("é".repeat(26).parse::<PublisherKey>().is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = PublisherSecret::from_seed(&[0xab; 32]);
        let shown = format!("{secret:?}");
        assert!(!shown.contains("abab"), "{shown}");
        assert!(shown.contains(&secret.public().short()));
    }

    #[test]
    fn signatures_verify_and_reject_other_messages() {
        let secret = PublisherSecret::from_seed(&[1; 32]);
        let sig = secret.sign(b"hello");
        assert_eq!(secret.public().verify(b"hello", &sig), Ok(()));
        assert_eq!(secret.public().verify(b"hellp", &sig), Err(KeyError::BadSignature));
        let other = PublisherSecret::from_seed(&[2; 32]).public();
        assert_eq!(other.verify(b"hello", &sig), Err(KeyError::BadSignature));
    }
}
