//! The catalog's word index: which words a manifest is found by, and prefix lookups.
//!
//! Words are cut at every non-alphanumeric character and lowercased, exactly like
//! [`lien_protocol::Metadata::words`], so a query is tokenised the same way as what it searches.
//! The index table holds `(word, manifest id) → ()`; every manifest whose indexed word starts with
//! a query word is found by one range scan from `(query word, 0…0)`.

use std::collections::BTreeSet;

use lien_protocol::Manifest;
use redb::ReadableTable;

use super::{DbResult, StoreError};
use crate::store::tables::Id;

/// Splits `text` into lowercased alphanumeric words, the way metadata words are cut.
pub(crate) fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

/// Every word `m` is indexed under: its metadata words, its publisher key's text and its slug
/// (whole, and cut into words).
pub(crate) fn manifest_words(m: &Manifest) -> BTreeSet<String> {
    let body = m.body();
    let mut words: BTreeSet<String> = body.metadata.words().into_iter().collect();
    words.insert(body.publisher.to_string());
    words.insert(body.slug.as_str().to_owned());
    words.extend(tokens(body.slug.as_str()));
    words
}

/// The query's distinct words, longest first (long words tend to match fewer manifests, which
/// makes the intersection shrink quickly).
pub(crate) fn query_words(query: &str) -> Vec<String> {
    let set: BTreeSet<String> = tokens(query).collect();
    let mut words: Vec<String> = set.into_iter().collect();
    words.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    words
}

/// Ids of the manifests indexed under a word that starts with `prefix`.
pub(crate) fn ids_with_prefix(
    table: &impl ReadableTable<(&'static str, Id<'static>), ()>,
    prefix: &str,
) -> Result<BTreeSet<[u8; 32]>, StoreError> {
    const ZERO: [u8; 32] = [0; 32];
    let mut ids = BTreeSet::new();
    for entry in table.range((prefix, &ZERO)..).db()? {
        let (key, _) = entry.db()?;
        let (word, id) = key.value();
        if !word.starts_with(prefix) {
            break;
        }
        ids.insert(*id);
    }
    Ok(ids)
}

/// Ids of the manifests that match every word of `words` (an empty list matches nothing).
pub(crate) fn ids_matching_all(
    table: &impl ReadableTable<(&'static str, Id<'static>), ()>,
    words: &[String],
) -> Result<BTreeSet<[u8; 32]>, StoreError> {
    let mut result: Option<BTreeSet<[u8; 32]>> = None;
    for word in words {
        let found = ids_with_prefix(table, word)?;
        let next = match result {
            None => found,
            Some(so_far) => so_far.intersection(&found).copied().collect(),
        };
        if next.is_empty() {
            return Ok(next);
        }
        result = Some(next);
    }
    Ok(result.unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn store_tokens_match_metadata_words() {
        let m = lien_protocol::Metadata::titled("Dân-số 2025: Population, CENSUS");
        let t: Vec<String> = tokens(&m.title).collect();
        assert_eq!(t, m.words());
        assert_eq!(query_words("census  Census a-b"), vec!["census", "a", "b"]);
    }
}
