//! Descriptive metadata of a dataset, modelled on DCAT: title, description, keywords, license,
//! themes, spatial and temporal coverage, publishing organisation, contact and languages.

use serde::{Deserialize, Serialize};

/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 8000;
/// Longest short field (license, coverage, organisation, contact, a keyword), in characters.
pub const MAX_SHORT: usize = 200;
/// Most entries in a list field (keywords, themes, languages).
pub const MAX_LIST: usize = 32;

/// Why metadata was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The title is empty.
    #[error("title must not be empty")]
    EmptyTitle,
    /// A field is over its length limit.
    #[error("{field} is longer than {limit} characters")]
    TooLong {
        /// Field name.
        field: &'static str,
        /// Limit.
        limit: usize,
    },
    /// A list has too many entries, or an empty one.
    #[error("{field} must have at most {MAX_LIST} non-empty entries")]
    BadList {
        /// Field name.
        field: &'static str,
    },
    /// A field holds control characters other than newline and tab.
    #[error("{field} holds control characters")]
    ControlCharacters {
        /// Field name.
        field: &'static str,
    },
}

/// DCAT-like descriptive metadata. Absent fields are omitted from the encoding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Human title (`dct:title`); required.
    pub title: String,
    /// Free-text description (`dct:description`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Keywords (`dcat:keyword`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// License name or URL (`dct:license`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub license: String,
    /// Themes (`dcat:theme`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub themes: Vec<String>,
    /// Spatial coverage (`dct:spatial`), e.g. a province.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub spatial: String,
    /// Temporal coverage (`dct:temporal`), e.g. `2020/2025`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub temporal: String,
    /// Publishing organisation's name (`dct:publisher`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub organisation: String,
    /// Contact point (`dcat:contactPoint`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub contact: String,
    /// Languages (`dct:language`), e.g. `vi`, `en`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub languages: Vec<String>,
    /// Access rights (`dct:accessRights`): the organisations allowed to read the data. Empty means
    /// public. A serving node checks that the requesting node's key is delegated to one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readers: Vec<String>,
}

impl Metadata {
    /// Metadata with just a title.
    pub fn titled(title: impl Into<String>) -> Self {
        Self { title: title.into(), ..Self::default() }
    }

    /// Checks every limit.
    pub fn validate(&self) -> Result<(), MetadataError> {
        if self.title.trim().is_empty() {
            return Err(MetadataError::EmptyTitle);
        }
        text("title", &self.title, MAX_TITLE)?;
        text("description", &self.description, MAX_DESCRIPTION)?;
        for (field, value) in [
            ("license", &self.license),
            ("spatial", &self.spatial),
            ("temporal", &self.temporal),
            ("organisation", &self.organisation),
            ("contact", &self.contact),
        ] {
            text(field, value, MAX_SHORT)?;
        }
        for (field, list) in [
            ("keywords", &self.keywords),
            ("themes", &self.themes),
            ("languages", &self.languages),
            ("readers", &self.readers),
        ] {
            if list.len() > MAX_LIST || list.iter().any(|s| s.trim().is_empty()) {
                return Err(MetadataError::BadList { field });
            }
            list.iter().try_for_each(|s| text(field, s, MAX_SHORT))?;
        }
        Ok(())
    }

    /// True if only the listed organisations may read the data.
    pub fn is_restricted(&self) -> bool {
        !self.readers.is_empty()
    }

    /// Every searchable word of the metadata, lowercased.
    pub fn words(&self) -> Vec<String> {
        let mut all = vec![self.title.as_str(), self.description.as_str(), self.organisation.as_str()];
        all.extend(self.keywords.iter().map(String::as_str));
        all.extend(self.themes.iter().map(String::as_str));
        all.iter()
            .flat_map(|s| s.split(|c: char| !c.is_alphanumeric()))
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    }
}

fn text(field: &'static str, value: &str, limit: usize) -> Result<(), MetadataError> {
    if value.chars().count() > limit {
        return Err(MetadataError::TooLong { field, limit });
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(MetadataError::ControlCharacters { field });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(Metadata::default().validate(), Err(MetadataError::EmptyTitle));
        assert!(Metadata::titled("Dân số 2025").validate().is_ok());
        let long = Metadata::titled("x".repeat(201));
        assert_eq!(long.validate(), Err(MetadataError::TooLong { field: "title", limit: 200 }));
        let mut m = Metadata::titled("t");
        m.keywords = vec![String::new()];
        assert_eq!(m.validate(), Err(MetadataError::BadList { field: "keywords" }));
        m.keywords = vec!["k".into(); 33];
        assert_eq!(m.validate(), Err(MetadataError::BadList { field: "keywords" }));
        m.keywords.clear();
        m.license = "a\u{7}".into();
        assert_eq!(m.validate(), Err(MetadataError::ControlCharacters { field: "license" }));
    }

    #[test]
    fn words_are_lowercased() {
        let mut m = Metadata::titled("Population Census");
        m.keywords = vec!["Dân-số".into()];
        let w = m.words();
        assert!(w.contains(&"population".to_string()));
        assert!(w.contains(&"dân".to_string()));
    }
}
