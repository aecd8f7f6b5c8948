//! Dataset slugs: the short, stable name a publisher gives a dataset (`population-2025`).
//!
//! 1 to 64 characters from `a-z`, `0-9`, `-`, `_` and `.`, starting with a letter or digit.
//! Together with the publisher key a slug names a dataset across versions: `PUBLISHER/slug`.

use std::fmt;
use std::str::FromStr;

/// Longest slug accepted.
pub const MAX_SLUG_LEN: usize = 64;

/// Why a slug was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlugError {
    /// Empty or longer than [`MAX_SLUG_LEN`].
    #[error("dataset name must be 1 to {MAX_SLUG_LEN} characters, got {0}")]
    BadLength(usize),
    /// A character outside the allowed set.
    #[error("dataset name {0:?} may only hold a-z, 0-9, '-', '_' and '.', and must start with a letter or digit")]
    BadCharacter(String),
}

/// A validated dataset slug.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Slug {
    type Err = SlugError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let n = s.chars().count();
        if n == 0 || n > MAX_SLUG_LEN {
            return Err(SlugError::BadLength(n));
        }
        let ok_first = s.as_bytes()[0].is_ascii_lowercase() || s.as_bytes()[0].is_ascii_digit();
        let ok_rest = s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if !ok_first || !ok_rest {
            return Err(SlugError::BadCharacter(s.escape_debug().to_string()));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Slug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!("population-2025".parse::<Slug>().is_ok());
        assert!("a".parse::<Slug>().is_ok());
        assert!("v1.2_x".parse::<Slug>().is_ok());
        assert_eq!("".parse::<Slug>(), Err(SlugError::BadLength(0)));
        assert_eq!("x".repeat(65).parse::<Slug>(), Err(SlugError::BadLength(65)));
        for bad in ["-a", "A", "a b", "a/b", "dân-số", ".x", "a\n"] {
            assert!(matches!(bad.parse::<Slug>(), Err(SlugError::BadCharacter(_))), "{bad}");
        }
    }
}
