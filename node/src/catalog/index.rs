//! The catalog's search index, held in memory: one entry per dataset name (its newest version
//! known here) with a ranked full-text index and the facet fields (organisation, tags, license,
//! file formats). It answers `Node::search`, `/v1/search` and every portal query.
//!
//! It is fed incrementally from the store's catalog sequence (`Store::catalog_page`, see
//! [`super::Catalog`]), so a search costs one cheap "anything new?" read of the store plus
//! in-memory work, and a node that learns a manifest finds it on the next search. It replaced
//! the store's word index (range scans inside redb, no relevance, no facets, every version of a
//! name): ranking, facet counts and filters over the current versions are cheap in memory (see
//! `BENCHMARKS.md`: at most 22 ms per query at 100,000 datasets, against up to 195 ms for the
//! store's word index).
//!
//! Ranking: each indexed word carries a weight per dataset, the sum over fields of
//! `field boost × occurrences` (title 3, keywords and name 2, organisation and themes 1.5,
//! description 1); a query word matches every indexed word it is a prefix of (an exact match
//! counts fully, a longer word 0.6), scored BM25-style as `idf × w(k+1)/(w+k)`. Every query word
//! must match (AND, as CKAN's default `q.op`).

use std::collections::{BTreeMap, HashMap};

use lien_protocol::{ContentId, FileEntry, Manifest};

/// BM25 saturation constant.
const K: f32 = 1.2;
/// Weight of a prefix (not exact) match of a query word.
const PREFIX_MATCH: f32 = 0.6;

/// How many facet fields there are.
const FIELDS: usize = 5;

/// A facet / filter field, named as CKAN names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Field {
    /// `organization`: the slug of the publishing organisation's name.
    Organization,
    /// `tags`: keywords.
    Tags,
    /// `license_id`.
    License,
    /// `res_format`: file formats (upper-case extension).
    Format,
    /// `groups`: themes.
    Groups,
}

impl Field {
    /// Parses a CKAN field name.
    pub fn parse(name: &str) -> Option<Field> {
        match name {
            "organization" | "owner_org" => Some(Field::Organization),
            "tags" | "tag" => Some(Field::Tags),
            "license_id" | "license" => Some(Field::License),
            "res_format" | "format" => Some(Field::Format),
            "groups" | "theme" => Some(Field::Groups),
            _ => None,
        }
    }

    /// The CKAN name.
    pub fn name(self) -> &'static str {
        match self {
            Field::Organization => "organization",
            Field::Tags => "tags",
            Field::License => "license_id",
            Field::Format => "res_format",
            Field::Groups => "groups",
        }
    }

    /// A human title.
    pub fn title(self) -> &'static str {
        match self {
            Field::Organization => "Organizations",
            Field::Tags => "Tags",
            Field::License => "Licenses",
            Field::Format => "Formats",
            Field::Groups => "Themes",
        }
    }
}

/// One dataset name in the index (its newest version known here).
#[derive(Debug, Clone)]
pub struct Doc {
    /// Manifest id of the newest version.
    pub id: ContentId,
    /// Its version.
    pub version: u64,
    /// Catalog sequence when that version was heard.
    pub seq: u64,
    /// `publisher/slug`.
    pub name: String,
    /// The CKAN name: `slug_` + the first 8 characters of the publisher key.
    pub ckan_name: String,
    /// Title.
    pub title: String,
    /// Lowercased title, for sorting.
    pub title_key: String,
    /// (slug, display name) of the organisation.
    pub organization: Option<(String, String)>,
    /// Keywords.
    pub tags: Vec<String>,
    /// License.
    pub license: String,
    /// File formats.
    pub formats: Vec<String>,
    /// Themes.
    pub groups: Vec<String>,
    /// Creation time of this version, unix seconds.
    pub modified: u64,
    /// Indexed words (to take the postings out again when a newer version replaces it).
    pub terms: Vec<String>,
    /// Interned facet values, per [`Field`] (index = `field as usize`).
    facet_ids: [Vec<u32>; FIELDS],
}

impl Doc {
    fn values(&self, field: Field) -> Vec<(&str, &str)> {
        match field {
            Field::Organization => self.organization.iter().map(|(s, t)| (s.as_str(), t.as_str())).collect(),
            Field::Tags => self.tags.iter().map(|t| (t.as_str(), t.as_str())).collect(),
            Field::License if self.license.is_empty() => Vec::new(),
            Field::License => vec![(self.license.as_str(), self.license.as_str())],
            Field::Format => self.formats.iter().map(|t| (t.as_str(), t.as_str())).collect(),
            Field::Groups => self.groups.iter().map(|t| (t.as_str(), t.as_str())).collect(),
        }
    }

    fn has(&self, field: Field, value: &str) -> bool {
        self.values(field)
            .iter()
            .any(|(v, _)| v.eq_ignore_ascii_case(value) || v.to_lowercase() == value.to_lowercase())
    }
}

/// How results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Relevance, then newest first.
    Score,
    /// By modification time.
    Modified { desc: bool },
    /// By title.
    Title { desc: bool },
    /// By CKAN name.
    Name { desc: bool },
}

impl Sort {
    /// Parses a CKAN sort string (`"score desc, metadata_modified desc"`); the first clause decides.
    pub fn parse(text: &str) -> Result<Sort, String> {
        let first = text.split(',').next().unwrap_or("").trim();
        if first.is_empty() {
            return Ok(Sort::Score);
        }
        let mut parts = first.split_whitespace();
        let field = parts.next().unwrap_or("");
        let desc = match parts.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => return Err(format!("sort direction must be asc or desc, not {other:?}")),
        };
        match field {
            "score" | "rank" => Ok(Sort::Score),
            "metadata_modified" | "metadata_created" => Ok(Sort::Modified { desc }),
            "title_string" | "title" => Ok(Sort::Title { desc }),
            "name" => Ok(Sort::Name { desc }),
            other => Err(format!("cannot sort by {other:?} (use score, metadata_modified, title_string or name)")),
        }
    }
}

/// A search.
#[derive(Debug, Clone)]
pub struct Query {
    /// Free-text query.
    pub text: String,
    /// Every filter must hold.
    pub filters: Vec<(Field, String)>,
    /// Ordering.
    pub sort: Sort,
    /// Results to skip.
    pub start: usize,
    /// Results to return.
    pub rows: usize,
    /// Facets to count.
    pub facets: Vec<Field>,
    /// Most values per facet.
    pub facet_limit: usize,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            text: String::new(),
            filters: Vec::new(),
            sort: Sort::Score,
            start: 0,
            rows: 10,
            facets: Vec::new(),
            facet_limit: 50,
        }
    }
}

/// One facet's counts: (value, display name, count), most frequent first.
pub type FacetCounts = Vec<(String, String, usize)>;

/// What a search found.
#[derive(Debug, Clone)]
pub struct Hits {
    /// How many datasets match in all.
    pub count: usize,
    /// The page asked for.
    pub docs: Vec<Doc>,
    /// Facet counts over every match, in the order asked.
    pub facets: Vec<(Field, FacetCounts)>,
}

/// The in-memory catalog index.
#[derive(Debug, Default)]
pub struct CatalogIndex {
    /// Last catalog sequence taken in.
    pub after: u64,
    docs: Vec<Doc>,
    /// `publisher/slug` → slot.
    by_name: HashMap<String, u32>,
    /// CKAN name → slot.
    by_ckan: HashMap<String, u32>,
    /// word → (slot, weight), each slot at most once per word.
    postings: BTreeMap<String, Vec<(u32, f32)>>,
    /// Per field: interned (value, display name), and value → id.
    facet_values: [Vec<(String, String)>; FIELDS],
    facet_lookup: [HashMap<String, u32>; FIELDS],
}

/// Lowercased alphanumeric words, cut like the store's word index.
pub fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

/// A URL-safe name for a free-text value: lowercased alphanumerics joined by '-'.
pub fn slugify(text: &str) -> String {
    tokens(text).collect::<Vec<_>>().join("-")
}

/// The CKAN name of publisher/slug.
pub fn ckan_name(m: &Manifest) -> String {
    let b = m.body();
    format!("{}_{}", b.slug, b.publisher.short())
}

/// The format of a file: the upper-case extension, else the media type's subtype.
pub fn format_of(e: &FileEntry) -> String {
    let path = e.path.as_str();
    let file = path.rsplit('/').next().unwrap_or(path);
    match file.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() && ext.len() <= 8 => ext.to_ascii_uppercase(),
        _ => e.media_type.rsplit('/').next().unwrap_or("").to_ascii_uppercase(),
    }
}

impl CatalogIndex {
    /// How many dataset names the index holds.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Takes in a manifest heard at catalog sequence `seq`, with its files when known. Returns
    /// false if an equal or newer version of its name is already indexed.
    pub fn add(&mut self, m: &Manifest, seq: u64, files: Option<&[FileEntry]>) -> bool {
        self.after = self.after.max(seq);
        let b = m.body();
        let name = m.name();
        let slot = self.by_name.get(&name).copied();
        if let Some(slot) = slot {
            if self.docs.get(slot as usize).is_some_and(|d| d.version >= b.version) {
                return false;
            }
        }
        let md = &b.metadata;
        let mut weights: HashMap<String, f32> = HashMap::new();
        let mut put = |text: &str, boost: f32| {
            for w in tokens(text) {
                *weights.entry(w).or_default() += boost;
            }
        };
        put(&md.title, 3.0);
        md.keywords.iter().for_each(|k| put(k, 2.0));
        put(b.slug.as_str(), 2.0);
        put(&md.organisation, 1.5);
        md.themes.iter().for_each(|t| put(t, 1.5));
        put(&md.description, 1.0);
        put(&md.spatial, 1.0);
        weights.insert(b.publisher.to_string(), 1.0);

        let mut formats: Vec<String> =
            files.unwrap_or_default().iter().map(format_of).filter(|f| !f.is_empty()).collect();
        formats.sort();
        formats.dedup();
        let org_slug = slugify(&md.organisation);
        let ckan = ckan_name(m);
        let doc = Doc {
            id: m.id(),
            version: b.version,
            seq,
            name: name.clone(),
            ckan_name: ckan.clone(),
            title: md.title.clone(),
            title_key: md.title.to_lowercase(),
            organization: (!org_slug.is_empty()).then(|| (org_slug, md.organisation.clone())),
            tags: md.keywords.clone(),
            license: md.license.clone(),
            formats,
            groups: md.themes.clone(),
            modified: b.created,
            terms: weights.keys().cloned().collect(),
            facet_ids: Default::default(),
        };
        let mut doc = doc;
        for field in [Field::Organization, Field::Tags, Field::License, Field::Format, Field::Groups] {
            let mut ids: Vec<u32> = Vec::new();
            for (value, display) in doc.values(field) {
                let f = field as usize;
                let id = match self.facet_lookup[f].get(value) {
                    Some(id) => *id,
                    None => {
                        let Ok(id) = u32::try_from(self.facet_values[f].len()) else { continue };
                        self.facet_values[f].push((value.to_owned(), display.to_owned()));
                        self.facet_lookup[f].insert(value.to_owned(), id);
                        id
                    }
                };
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            doc.facet_ids[field as usize] = ids;
        }
        let slot = match slot {
            Some(slot) => {
                let old_terms = std::mem::take(&mut self.docs[slot as usize].terms);
                for t in old_terms {
                    if let Some(list) = self.postings.get_mut(&t) {
                        list.retain(|(s, _)| *s != slot);
                        if list.is_empty() {
                            self.postings.remove(&t);
                        }
                    }
                }
                self.docs[slot as usize] = doc;
                slot
            }
            None => {
                let Ok(slot) = u32::try_from(self.docs.len()) else { return false };
                self.docs.push(doc);
                self.by_name.insert(name, slot);
                slot
            }
        };
        self.by_ckan.insert(ckan, slot);
        for (word, w) in weights {
            self.postings.entry(word).or_default().push((slot, w));
        }
        true
    }

    /// The dataset with this CKAN name or `publisher/slug`.
    pub fn find(&self, key: &str) -> Option<&Doc> {
        let slot = self.by_ckan.get(key).or_else(|| self.by_name.get(key))?;
        self.docs.get(*slot as usize)
    }

    /// Every dataset, in CKAN-name order.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.docs.iter().map(|d| d.ckan_name.as_str()).collect();
        names.sort_unstable();
        names
    }

    /// Every dataset, in the order first heard.
    pub fn docs(&self) -> &[Doc] {
        &self.docs
    }

    /// Each value of `field` over all datasets: (value, display name, count), most frequent first.
    pub fn values(&self, field: Field) -> FacetCounts {
        self.count_facet(self.docs.iter(), field, usize::MAX)
    }

    /// Counts the values of `field` over `docs` through the interned ids (no string hashing).
    fn count_facet<'a>(&self, docs: impl Iterator<Item = &'a Doc>, field: Field, limit: usize) -> FacetCounts {
        let f = field as usize;
        let mut counts = vec![0usize; self.facet_values[f].len()];
        for d in docs {
            for &id in &d.facet_ids[f] {
                if let Some(c) = counts.get_mut(id as usize) {
                    *c += 1;
                }
            }
        }
        let mut out: Vec<(usize, usize)> = counts.into_iter().enumerate().filter(|(_, n)| *n > 0).collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| self.facet_values[f][a.0].0.cmp(&self.facet_values[f][b.0].0)));
        out.truncate(limit);
        out.into_iter()
            .map(|(id, n)| {
                let (v, d) = &self.facet_values[f][id];
                (v.clone(), d.clone(), n)
            })
            .collect()
    }

    /// (slot, score) of the datasets matching every word of `text`; `None` for an empty query.
    ///
    /// Dense accumulators (one f32 per dataset) rather than hash maps: a common word touches
    /// most of the catalog, and a memset plus array indexing is several times cheaper than
    /// hashing every posting.
    fn scores(&self, text: &str) -> Option<Vec<(u32, f32)>> {
        let mut words: Vec<String> = tokens(text).collect();
        words.sort();
        words.dedup();
        if words.is_empty() {
            return None;
        }
        let n = self.docs.len();
        let nf = n as f32;
        let mut total = vec![0f32; n];
        let mut matched = vec![0u16; n];
        let mut best = vec![0f32; n];
        let mut touched: Vec<u32> = Vec::new();
        for (round, word) in words.iter().enumerate() {
            touched.clear();
            for (term, list) in self.postings.range::<String, _>(word..) {
                if !term.starts_with(word.as_str()) {
                    break;
                }
                let exact = if term == word { 1.0 } else { PREFIX_MATCH };
                let idf = (1.0 + (nf - list.len() as f32 + 0.5) / (list.len() as f32 + 0.5)).ln();
                for &(slot, w) in list {
                    let i = slot as usize;
                    // Only datasets that matched every earlier word can still match them all.
                    if matched[i] as usize != round {
                        continue;
                    }
                    let s = exact * idf * (w * (K + 1.0)) / (w + K);
                    if best[i] == 0.0 {
                        touched.push(slot);
                    }
                    best[i] = best[i].max(s); // the best-matching indexed word counts, not their sum
                }
            }
            if touched.is_empty() {
                return Some(Vec::new());
            }
            for &slot in &touched {
                let i = slot as usize;
                total[i] += best[i];
                best[i] = 0.0;
                matched[i] += 1;
            }
        }
        let all = words.len();
        // `touched` holds the datasets that matched the last word, hence every word.
        Some(
            touched.iter().filter(|s| matched[**s as usize] as usize == all).map(|&s| (s, total[s as usize])).collect(),
        )
    }

    /// Runs a search.
    pub fn search(&self, q: &Query) -> Hits {
        let scored: Vec<(u32, f32)> = match self.scores(&q.text) {
            Some(list) => list,
            None => (0..self.docs.len()).filter_map(|s| u32::try_from(s).ok()).map(|s| (s, 0.0)).collect(),
        };
        let mut matched: Vec<(&Doc, f32)> = scored
            .into_iter()
            .filter_map(|(slot, s)| self.docs.get(slot as usize).map(|d| (d, s)))
            .filter(|(d, _)| q.filters.iter().all(|(f, v)| d.has(*f, v)))
            .collect();
        let facets = q
            .facets
            .iter()
            .map(|f| (*f, self.count_facet(matched.iter().map(|(d, _)| *d), *f, q.facet_limit)))
            .collect();
        let count = matched.len();
        let newest = |a: &Doc, b: &Doc| b.modified.cmp(&a.modified).then(b.seq.cmp(&a.seq));
        let dir = |o: std::cmp::Ordering, desc: bool| if desc { o.reverse() } else { o };
        let order = |(a, sa): &(&Doc, f32), (b, sb): &(&Doc, f32)| match q.sort {
            Sort::Score => sb.total_cmp(sa).then_with(|| newest(a, b)),
            Sort::Modified { desc } => dir(a.modified.cmp(&b.modified).then(a.seq.cmp(&b.seq)), desc),
            Sort::Title { desc } => {
                dir(a.title_key.cmp(&b.title_key).then_with(|| a.ckan_name.cmp(&b.ckan_name)), desc)
            }
            Sort::Name { desc } => dir(a.ckan_name.cmp(&b.ckan_name), desc),
        };
        // Only the page asked for needs ordering: select the first start+rows, then sort those.
        let keep = q.start.saturating_add(q.rows);
        if keep < matched.len() {
            matched.select_nth_unstable_by(keep, order);
            matched.truncate(keep);
        }
        matched.sort_by(order);
        let docs = matched.into_iter().skip(q.start).take(q.rows).map(|(d, _)| d.clone()).collect();
        Hits { count, docs, facets }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use lien_protocol::{ChunkSize, FileList, ManifestBody, Metadata, PublisherSecret, RelPath};

    fn manifest(secret: &PublisherSecret, slug: &str, version: u64, md: Metadata) -> Manifest {
        let file = FileEntry {
            path: RelPath::new("data/table.csv").unwrap(),
            size: 3,
            id: ContentId::of(b"abc"),
            chunk_size: ChunkSize::DEFAULT,
            media_type: "text/csv".into(),
        };
        let body = ManifestBody {
            publisher: secret.public(),
            slug: slug.parse().unwrap(),
            version,
            previous: (version > 1).then(|| ContentId::of(b"prev")),
            created: 1_700_000_000 + version,
            metadata: md,
            files: FileList::Inline(vec![file]),
        };
        Manifest::sign(body, secret).unwrap()
    }

    fn md(title: &str, org: &str, tags: &[&str], license: &str) -> Metadata {
        Metadata {
            title: title.into(),
            organisation: org.into(),
            keywords: tags.iter().map(|t| t.to_string()).collect(),
            license: license.into(),
            ..Metadata::default()
        }
    }

    #[test]
    fn portal_index_ranks_filters_and_counts() {
        let s = PublisherSecret::generate();
        let mut ix = CatalogIndex::default();
        let a = manifest(
            &s,
            "census",
            1,
            md("Population census 2024", "General Statistics Office", &["population"], "CC-BY-4.0"),
        );
        let b =
            manifest(&s, "budget", 1, md("State budget", "Ministry of Finance", &["finance", "population"], "ODbL"));
        let files = files_of(&a);
        assert!(ix.add(&a, 1, Some(&files)));
        assert!(ix.add(&b, 2, None));
        let hits =
            ix.search(&Query { text: "population".into(), facets: vec![Field::Organization], ..Query::default() });
        assert_eq!(hits.count, 2);
        assert_eq!(hits.docs[0].title, "Population census 2024", "a title match ranks above a keyword match");
        assert_eq!(hits.facets[0].1.len(), 2);
        let hits = ix.search(&Query {
            text: "popul".into(),
            filters: vec![(Field::Organization, "ministry-of-finance".into())],
            ..Query::default()
        });
        assert_eq!(hits.count, 1);
        assert_eq!(hits.docs[0].title, "State budget");
        assert_eq!(ix.search(&Query { text: "population nothing".into(), ..Query::default() }).count, 0);
        assert_eq!(ix.find(&hits.docs[0].ckan_name.clone()).unwrap().version, 1);
        assert_eq!(a.body().files.count(), 1);
        assert_eq!(ix.find(&ckan_name(&a)).unwrap().formats, vec!["CSV".to_string()]);

        // A newer version replaces the old one, and its old words stop matching.
        let a2 = manifest(&s, "census", 2, md("Housing census", "General Statistics Office", &[], "CC-BY-4.0"));
        assert!(ix.add(&a2, 3, None));
        assert!(!ix.add(&a, 1, None), "an older version never replaces a newer one");
        assert_eq!(ix.len(), 2);
        assert_eq!(ix.search(&Query { text: "census".into(), ..Query::default() }).docs[0].version, 2);
        assert_eq!(ix.search(&Query { text: "population".into(), ..Query::default() }).count, 1);
        let all = ix.search(&Query { sort: Sort::Title { desc: false }, ..Query::default() });
        assert_eq!(all.docs.iter().map(|d| d.title.as_str()).collect::<Vec<_>>(), ["Housing census", "State budget"]);
    }

    fn files_of(m: &Manifest) -> Vec<FileEntry> {
        match &m.body().files {
            FileList::Inline(f) => f.clone(),
            FileList::Blob(_) => Vec::new(),
        }
    }

    #[test]
    fn portal_sort_parses() {
        assert_eq!(Sort::parse("score desc, metadata_modified desc").unwrap(), Sort::Score);
        assert_eq!(Sort::parse("title_string asc").unwrap(), Sort::Title { desc: false });
        assert_eq!(Sort::parse("metadata_modified desc").unwrap(), Sort::Modified { desc: true });
        assert!(Sort::parse("size desc").is_err());
        assert!(Sort::parse("name sideways").is_err());
        assert_eq!(slugify("Bộ Tài chính / Finance"), "bộ-tài-chính-finance");
    }
}
