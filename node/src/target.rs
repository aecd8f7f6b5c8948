//! What a user names a dataset by: its manifest id, or `publisher/name` (the newest version).

use std::fmt;
use std::str::FromStr;

use lien_protocol::{ContentId, PublisherKey, Slug};

/// A dataset target, parsed once where it comes in (a command line, a request body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One manifest, by id.
    Id(ContentId),
    /// The newest version of a publisher's dataset name.
    Name {
        /// The publisher.
        publisher: PublisherKey,
        /// The dataset name.
        slug: Slug,
    },
}

/// Why a text is not a target.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(String);

impl FromStr for Target {
    type Err = TargetError;

    /// A 64-hex manifest id, else `PUBLISHER/NAME`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(id) = text.parse::<ContentId>() {
            return Ok(Target::Id(id));
        }
        let (p, s) = text
            .split_once('/')
            .ok_or_else(|| TargetError(format!("{text:?} is neither a 64-hex manifest id nor PUBLISHER/NAME")))?;
        let publisher = p.parse().map_err(|e| TargetError(format!("bad publisher in {text:?}: {e}")))?;
        let slug = s.parse().map_err(|e| TargetError(format!("bad dataset name in {text:?}: {e}")))?;
        Ok(Target::Name { publisher, slug })
    }
}

impl fmt::Display for Target {
    /// The form it parses from (an id in lowercase hex).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Id(id) => write!(f, "{id}"),
            Target::Name { publisher, slug } => write!(f, "{publisher}/{slug}"),
        }
    }
}

impl From<ContentId> for Target {
    fn from(id: ContentId) -> Self {
        Target::Id(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lien_protocol::PublisherSecret;

    #[test]
    fn targets_parse_once_and_print_as_given() {
        let key = PublisherSecret::from_seed(&[5; 32]).public();
        let id = ContentId::of(b"m");
        assert_eq!(id.to_string().to_uppercase().parse::<Target>().unwrap(), Target::Id(id));
        let name: Target = format!("{key}/census").parse().unwrap();
        assert!(matches!(&name, Target::Name { publisher, slug } if *publisher == key && slug.as_str() == "census"));
        assert_eq!(name.to_string(), format!("{key}/census"));
        assert!("census".parse::<Target>().unwrap_err().to_string().contains("PUBLISHER/NAME"));
        assert!(format!("{key}/Bad Slug").parse::<Target>().unwrap_err().to_string().contains("dataset name"));
        assert!("abc/census".parse::<Target>().unwrap_err().to_string().contains("publisher"));
    }
}
