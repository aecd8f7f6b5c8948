//! Canonical CBOR: the one encoding of every signed, hashed or wire structure.
//!
//! Encoding follows RFC 8949 §4.2.1 (core deterministic encoding): shortest integer and length
//! arguments, definite lengths only, map keys sorted by the bytewise order of their encodings.
//! Lien uses a subset of CBOR: unsigned and negative integers, byte and text strings, arrays,
//! maps, `false`, `true` and `null`. Floats, tags, `undefined` and other simple values never
//! appear.
//!
//! Decoding is strict: [`validate`] walks the raw bytes first and names the first rule the input
//! breaks, then serde decodes with unknown fields denied, and finally the value is re-encoded and
//! must give back exactly the input. So one value has one encoding, one id, and signatures cannot
//! be malleated.

use ciborium::Value;
use serde::de::DeserializeOwned;
use serde::{Deserializer, Serialize};

/// Deepest nesting of arrays and maps accepted.
pub const MAX_DEPTH: usize = 32;

/// Why bytes were rejected as canonical CBOR, or a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    /// The input is longer than the limit for its kind.
    #[error("input is {len} bytes, over the limit of {limit}")]
    TooLarge {
        /// Input length.
        len: usize,
        /// Limit.
        limit: usize,
    },
    /// The input is empty or ends in the middle of an item.
    #[error("input ends in the middle of an item at byte {0}")]
    Truncated(usize),
    /// Bytes remain after the first complete item.
    #[error("{extra} trailing bytes after the item, at byte {offset}")]
    TrailingBytes {
        /// Where the trailing bytes start.
        offset: usize,
        /// How many there are.
        extra: usize,
    },
    /// An indefinite-length string, array or map.
    #[error("indefinite length at byte {0}")]
    IndefiniteLength(usize),
    /// An integer or length not in its shortest form.
    #[error("integer or length not in shortest form at byte {0}")]
    NonShortestInteger(usize),
    /// Map keys out of canonical order.
    #[error("map keys not in canonical order at byte {0}")]
    UnsortedKeys(usize),
    /// The same key twice in one map.
    #[error("duplicate map key at byte {0}")]
    DuplicateKey(usize),
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH} at byte {0}")]
    TooDeep(usize),
    /// A text string that is not UTF-8.
    #[error("text string is not valid UTF-8 at byte {0}")]
    InvalidUtf8(usize),
    /// A float, tag, reserved or other item outside Lien's subset.
    #[error("unsupported CBOR item ({what}) at byte {offset}")]
    Unsupported {
        /// What was found.
        what: &'static str,
        /// Where.
        offset: usize,
    },
    /// A map field that the structure does not define.
    #[error("unknown field: {0}")]
    UnknownField(String),
    /// Well-formed CBOR that does not fit the expected structure.
    #[error("wrong structure: {0}")]
    Schema(String),
    /// Decoded fine but re-encodes differently (for example an explicit null for an absent field).
    #[error("not the canonical encoding of its value")]
    NotCanonical,
    /// A value could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// Encodes `value` canonically.
pub fn to_canonical_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CborError> {
    let mut v = Value::serialized(value).map_err(|e| CborError::Encode(e.to_string()))?;
    canonicalize(&mut v)?;
    let mut out = Vec::new();
    ciborium::into_writer(&v, &mut out).map_err(|e| CborError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decodes `bytes` as the canonical encoding of a `T`, no longer than `limit` bytes.
pub fn from_canonical_slice<T>(bytes: &[u8], limit: usize) -> Result<T, CborError>
where
    T: DeserializeOwned + Serialize,
{
    validate(bytes, limit)?;
    let value: T = ciborium::from_reader(bytes).map_err(|e| {
        let msg = match e {
            ciborium::de::Error::Semantic(_, m) => m,
            other => other.to_string(),
        };
        if msg.contains("unknown field") || msg.contains("unknown variant") {
            CborError::UnknownField(msg)
        } else {
            CborError::Schema(msg)
        }
    })?;
    if to_canonical_vec(&value)? != bytes {
        return Err(CborError::NotCanonical);
    }
    Ok(value)
}

/// Sorts every map's entries by their encoded keys, recursively; rejects floats and tags.
fn canonicalize(v: &mut Value) -> Result<(), CborError> {
    match v {
        Value::Array(items) => items.iter_mut().try_for_each(canonicalize),
        Value::Map(entries) => {
            let mut keyed = Vec::with_capacity(entries.len());
            for (mut k, mut val) in entries.drain(..) {
                canonicalize(&mut k)?;
                canonicalize(&mut val)?;
                let mut enc = Vec::new();
                ciborium::into_writer(&k, &mut enc).map_err(|e| CborError::Encode(e.to_string()))?;
                keyed.push((enc, k, val));
            }
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            if keyed.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(CborError::Encode("duplicate map key".into()));
            }
            entries.extend(keyed.into_iter().map(|(_, k, val)| (k, val)));
            Ok(())
        }
        Value::Float(_) => Err(CborError::Encode("floats are not allowed".into())),
        Value::Tag(..) => Err(CborError::Encode("tags are not allowed".into())),
        _ => Ok(()),
    }
}

/// Checks that `bytes` is exactly one item in Lien's canonical CBOR subset, at most `limit` long.
pub fn validate(bytes: &[u8], limit: usize) -> Result<(), CborError> {
    if bytes.len() > limit {
        return Err(CborError::TooLarge { len: bytes.len(), limit });
    }
    let mut r = Reader { bytes, pos: 0 };
    r.item(0)?;
    if r.pos != bytes.len() {
        return Err(CborError::TrailingBytes { offset: r.pos, extra: bytes.len() - r.pos });
    }
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CborError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(CborError::Truncated(self.pos)),
        }
    }

    /// Reads an initial byte and its argument; returns (major type, argument).
    fn head(&mut self) -> Result<(u8, u64), CborError> {
        let start = self.pos;
        let b = self.take(1)?[0];
        let major = b >> 5;
        let info = b & 0x1f;
        let (arg, min) = match info {
            0..=23 => (u64::from(info), 0),
            24 => (u64::from(self.take(1)?[0]), 24),
            25 => {
                let s = self.take(2)?;
                (u64::from(u16::from_be_bytes([s[0], s[1]])), 0x100)
            }
            26 => {
                let s = self.take(4)?;
                (u64::from(u32::from_be_bytes([s[0], s[1], s[2], s[3]])), 0x1_0000)
            }
            27 => {
                let s = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                (u64::from_be_bytes(a), 0x1_0000_0000)
            }
            31 => return Err(CborError::IndefiniteLength(start)),
            _ => return Err(CborError::Unsupported { what: "reserved additional information", offset: start }),
        };
        if major == 7 {
            return match (info, arg) {
                (20..=22, _) => Ok((7, arg)),
                (25..=27, _) => Err(CborError::Unsupported { what: "float", offset: start }),
                _ => Err(CborError::Unsupported { what: "simple value", offset: start }),
            };
        }
        if arg < min {
            return Err(CborError::NonShortestInteger(start));
        }
        Ok((major, arg))
    }

    fn len(&self, arg: u64) -> Result<usize, CborError> {
        let remaining = self.bytes.len() - self.pos;
        usize::try_from(arg).ok().filter(|&n| n <= remaining).ok_or(CborError::Truncated(self.pos))
    }

    fn item(&mut self, depth: usize) -> Result<(), CborError> {
        let start = self.pos;
        let (major, arg) = self.head()?;
        match major {
            0 | 1 | 7 => Ok(()),
            2 => {
                let n = self.len(arg)?;
                self.take(n).map(|_| ())
            }
            3 => {
                let n = self.len(arg)?;
                let s = self.take(n)?;
                std::str::from_utf8(s).map(|_| ()).map_err(|_| CborError::InvalidUtf8(start))
            }
            4 => {
                if depth >= MAX_DEPTH {
                    return Err(CborError::TooDeep(start));
                }
                // Each item takes at least one byte, so this bounds the loop by the input size.
                let n = self.len(arg)?;
                (0..n).try_for_each(|_| self.item(depth + 1))
            }
            5 => {
                if depth >= MAX_DEPTH {
                    return Err(CborError::TooDeep(start));
                }
                let n = self.len(arg)?;
                let mut prev: Option<(usize, usize)> = None;
                for _ in 0..n {
                    let key_start = self.pos;
                    self.item(depth + 1)?;
                    let key = (key_start, self.pos);
                    if let Some(p) = prev {
                        let (a, b) = (&self.bytes[p.0..p.1], &self.bytes[key.0..key.1]);
                        match a.cmp(b) {
                            std::cmp::Ordering::Less => {}
                            std::cmp::Ordering::Equal => return Err(CborError::DuplicateKey(key_start)),
                            std::cmp::Ordering::Greater => return Err(CborError::UnsortedKeys(key_start)),
                        }
                    }
                    prev = Some(key);
                    self.item(depth + 1)?;
                }
                Ok(())
            }
            _ => Err(CborError::Unsupported { what: "tag", offset: start }),
        }
    }
}

/// Deserializes a CBOR byte string of exactly `N` bytes (for ids, keys, signatures).
pub fn bytes_array<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
    struct V<const N: usize>;
    impl<const N: usize> serde::de::Visitor<'_> for V<N> {
        type Value = [u8; N];
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a byte string of {N} bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
            v.try_into().map_err(|_| E::invalid_length(v.len(), &self))
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
            self.visit_bytes(&v)
        }
    }
    d.deserialize_bytes(V::<N>)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        zebra: u64,
        a: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        maybe: Option<u64>,
        list: Vec<u32>,
    }

    fn sample() -> Sample {
        Sample { zebra: 500, a: "x".into(), maybe: None, list: vec![1, 2] }
    }

    fn decode(bytes: &[u8]) -> Result<Sample, CborError> {
        from_canonical_slice::<Sample>(bytes, 1024)
    }

    #[test]
    fn keys_are_sorted_length_first() {
        let bytes = to_canonical_vec(&sample()).unwrap();
        // map(3) "a" "x"  "list" [1,2]  "zebra" 500
        let expected: Vec<u8> = [
            vec![0xa3, 0x61, b'a', 0x61, b'x'],
            vec![0x64, b'l', b'i', b's', b't', 0x82, 0x01, 0x02],
            vec![0x65, b'z', b'e', b'b', b'r', b'a', 0x19, 0x01, 0xf4],
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn trailing_bytes_rejected() {
        let mut bytes = to_canonical_vec(&sample()).unwrap();
        bytes.push(0);
        assert!(matches!(decode(&bytes), Err(CborError::TrailingBytes { extra: 1, .. })));
    }

    #[test]
    fn indefinite_length_rejected() {
        let bytes = [0xbf, 0x61, b'a', 0x61, b'x', 0xff];
        assert_eq!(decode(&bytes), Err(CborError::IndefiniteLength(0)));
        assert_eq!(validate(&[0x9f, 0xff], 10), Err(CborError::IndefiniteLength(0)));
    }

    #[test]
    fn non_shortest_integer_rejected() {
        // 500 is fine as 0x19 01f4; 1 written as 0x18 0x01 is not shortest.
        assert_eq!(validate(&[0x18, 0x01], 10), Err(CborError::NonShortestInteger(0)));
        assert_eq!(validate(&[0x19, 0x00, 0xff], 10), Err(CborError::NonShortestInteger(0)));
        assert_eq!(validate(&[0x1a, 0, 0, 0xff, 0xff], 10), Err(CborError::NonShortestInteger(0)));
        assert_eq!(validate(&[0x1b, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], 10), Err(CborError::NonShortestInteger(0)));
        // lengths too: a 1-byte text with a 1-byte length argument
        assert_eq!(validate(&[0x78, 0x01, b'a'], 10), Err(CborError::NonShortestInteger(0)));
        assert_eq!(validate(&[0x19, 0x01, 0x00], 10), Ok(()));
    }

    #[test]
    fn unsorted_and_duplicate_keys_rejected() {
        // {"b": 1, "a": 2}
        assert_eq!(validate(&[0xa2, 0x61, b'b', 1, 0x61, b'a', 2], 20), Err(CborError::UnsortedKeys(4)));
        // {"aa": 1, "b": 2}: length-first ordering puts "b" before "aa"
        assert_eq!(validate(&[0xa2, 0x62, b'a', b'a', 1, 0x61, b'b', 2], 20), Err(CborError::UnsortedKeys(5)));
        assert_eq!(validate(&[0xa2, 0x61, b'a', 1, 0x61, b'a', 2], 20), Err(CborError::DuplicateKey(4)));
    }

    #[test]
    fn unknown_field_rejected() {
        let mut v = Value::serialized(&sample()).unwrap();
        if let Value::Map(m) = &mut v {
            m.push((Value::Text("zz".into()), Value::Integer(1.into())));
        }
        let bytes = to_canonical_vec(&v).unwrap();
        assert!(matches!(decode(&bytes), Err(CborError::UnknownField(_))), "{:?}", decode(&bytes));
    }

    #[test]
    fn oversized_input_rejected() {
        let bytes = to_canonical_vec(&sample()).unwrap();
        assert_eq!(from_canonical_slice::<Sample>(&bytes, 4), Err(CborError::TooLarge { len: bytes.len(), limit: 4 }));
    }

    #[test]
    fn explicit_null_for_absent_field_is_not_canonical() {
        let mut v = Value::serialized(&sample()).unwrap();
        if let Value::Map(m) = &mut v {
            m.push((Value::Text("maybe".into()), Value::Null));
        }
        let bytes = to_canonical_vec(&v).unwrap();
        assert_eq!(decode(&bytes), Err(CborError::NotCanonical));
    }

    #[test]
    fn other_items_rejected() {
        assert!(matches!(validate(&[0xf9, 0, 0], 10), Err(CborError::Unsupported { what: "float", .. })));
        assert!(matches!(validate(&[0xc1, 0x01], 10), Err(CborError::Unsupported { what: "tag", .. })));
        assert!(matches!(validate(&[0xf7], 10), Err(CborError::Unsupported { .. })));
        assert_eq!(validate(&[0x62, 0xff, 0xfe], 10), Err(CborError::InvalidUtf8(0)));
        assert_eq!(validate(&[0x82, 0x01], 10), Err(CborError::Truncated(1)));
        assert_eq!(validate(&[], 10), Err(CborError::Truncated(0)));
        // a claimed huge array with no items must fail fast, not loop
        assert_eq!(validate(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 10), Err(CborError::Truncated(9)));
        let deep = [vec![0x81; 40], vec![0x01]].concat();
        assert!(matches!(validate(&deep, 100), Err(CborError::TooDeep(_))));
    }
}
