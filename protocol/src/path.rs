//! Normalised relative file paths inside a dataset.
//!
//! A [`RelPath`] is UTF-8, uses `/` between components, and has no empty, `.` or `..`
//! component, no leading `/`, no backslash, no control character, and stays within length
//! limits. So a path from a manifest can never escape the folder a dataset is written to.

use std::fmt;

/// Longest path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Longest single component accepted, in bytes.
pub const MAX_COMPONENT_LEN: usize = 255;

/// Why a path was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path is empty.
    #[error("path is empty")]
    Empty,
    /// The path is absolute.
    #[error("path {0:?} is absolute")]
    Absolute(String),
    /// The path has a `..` component.
    #[error("path {0:?} has a '..' component")]
    ParentComponent(String),
    /// The path has an empty or `.` component.
    #[error("path {0:?} has an empty or '.' component")]
    EmptyComponent(String),
    /// The path has a control character or backslash.
    #[error("path {0:?} has a control character or backslash")]
    BadCharacter(String),
    /// The path is not UTF-8.
    #[error("path is not valid UTF-8: {0}")]
    NotUtf8(String),
    /// The path or a component is too long.
    #[error("path {0:?} is too long")]
    TooLong(String),
}

/// A validated, normalised relative path.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct RelPath(String);

impl RelPath {
    /// Validates a `/`-separated relative path.
    pub fn new(s: &str) -> Result<Self, PathError> {
        if s.is_empty() {
            return Err(PathError::Empty);
        }
        if s.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong(s.chars().take(64).collect()));
        }
        if s.starts_with('/') {
            return Err(PathError::Absolute(s.into()));
        }
        if s.chars().any(|c| c.is_control() || c == '\\') {
            return Err(PathError::BadCharacter(s.escape_debug().to_string()));
        }
        for part in s.split('/') {
            match part {
                ".." => return Err(PathError::ParentComponent(s.into())),
                "" | "." => return Err(PathError::EmptyComponent(s.into())),
                p if p.len() > MAX_COMPONENT_LEN => return Err(PathError::TooLong(s.into())),
                _ => {}
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// Builds a path from the components of a relative filesystem path.
    pub fn from_path(path: &std::path::Path) -> Result<Self, PathError> {
        use std::path::Component;
        let mut parts = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(os) => {
                    let s = os.to_str().ok_or_else(|| PathError::NotUtf8(path.to_string_lossy().into_owned()))?;
                    parts.push(s);
                }
                Component::CurDir => {}
                Component::ParentDir => return Err(PathError::ParentComponent(path.to_string_lossy().into_owned())),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(PathError::Absolute(path.to_string_lossy().into_owned()))
                }
            }
        }
        Self::new(&parts.join("/"))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components, in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// True if `self` is a strict directory prefix of `other` (`a` of `a/b`).
    pub fn is_dir_prefix_of(&self, other: &RelPath) -> bool {
        other.0.len() > self.0.len() && other.0.starts_with(&self.0) && other.0.as_bytes()[self.0.len()] == b'/'
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl<'de> serde::Deserialize<'de> for RelPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_normal_paths() {
        for p in ["a", "a/b.csv", "dữ liệu/2025/dân số.csv", ".hidden", "a..b"] {
            assert_eq!(RelPath::new(p).unwrap().as_str(), p);
        }
    }

    #[test]
    fn rejects_bad_paths() {
        assert_eq!(RelPath::new(""), Err(PathError::Empty));
        assert!(matches!(RelPath::new("/etc/passwd"), Err(PathError::Absolute(_))));
        assert!(matches!(RelPath::new("a/../../b"), Err(PathError::ParentComponent(_))));
        assert!(matches!(RelPath::new(".."), Err(PathError::ParentComponent(_))));
        assert!(matches!(RelPath::new("a//b"), Err(PathError::EmptyComponent(_))));
        assert!(matches!(RelPath::new("a/./b"), Err(PathError::EmptyComponent(_))));
        assert!(matches!(RelPath::new("a/"), Err(PathError::EmptyComponent(_))));
        assert!(matches!(RelPath::new("a\nb"), Err(PathError::BadCharacter(_))));
        assert!(matches!(RelPath::new("a\\b"), Err(PathError::BadCharacter(_))));
        assert!(matches!(RelPath::new(&"x".repeat(300)), Err(PathError::TooLong(_))));
        assert!(matches!(RelPath::new(&"x/".repeat(600)), Err(PathError::TooLong(_))));
    }

    #[test]
    fn from_filesystem_path() {
        use std::path::Path;
        assert_eq!(RelPath::from_path(Path::new("./a/b")).unwrap().as_str(), "a/b");
        assert!(RelPath::from_path(Path::new("/a")).is_err());
        assert!(RelPath::from_path(Path::new("a/../b")).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let p = Path::new(std::ffi::OsStr::from_bytes(b"a/\xff"));
            assert!(matches!(RelPath::from_path(p), Err(PathError::NotUtf8(_))));
        }
    }

    #[test]
    fn dir_prefix() {
        let a = RelPath::new("a").unwrap();
        assert!(a.is_dir_prefix_of(&RelPath::new("a/b").unwrap()));
        assert!(!a.is_dir_prefix_of(&RelPath::new("ab").unwrap()));
        assert!(!a.is_dir_prefix_of(&a));
    }
}
