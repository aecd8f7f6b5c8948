//! The catalog as DCAT-AP 3: `GET /catalog.jsonld` (JSON-LD with an inline context, so no
//! processor needs the internet) and `GET /catalog.ttl` (Turtle). Both are written from one
//! small graph model, so they always hold the same triples.
//!
//! Paged as DCAT-AP recommends for large catalogs (Hydra, as data.europa.eu harvests):
//! `?page=N&page_size=M` (defaults 1 and [`DEFAULT_PAGE_SIZE`], at most [`MAX_PAGE_SIZE`]);
//! each page holds the catalog with that page's datasets and a `hydra:PartialCollectionView`
//! with `hydra:totalItems`, `hydra:first`, `hydra:last` and `hydra:next`/`hydra:previous`.
//!
//! - `dcat:Catalog`: `dct:title`, `dct:description`, `dct:publisher`, `foaf:homepage`,
//!   `dct:modified`, `dcat:dataset`.
//! - `dcat:Dataset` (one per dataset name, newest version): mandatory `dct:title`,
//!   `dct:description`; recommended `dcat:contactPoint`, `dcat:distribution`, `dcat:keyword`,
//!   `dct:publisher`, `dct:spatial`, `dct:temporal`, `dcat:theme`; and `dct:identifier`,
//!   `dcat:version`, `dct:issued`, `dct:modified`, `dct:language`, `dcat:landingPage`.
//! - `dcat:Distribution` (one per file): mandatory `dcat:accessURL`; `dcat:downloadURL` (the
//!   gateway), `dcat:byteSize` (`xsd:nonNegativeInteger`), `spdx:checksum` (an `spdx:Checksum`
//!   with `spdx:algorithm spdx:checksumAlgorithm_blake3` and the hex `spdx:checksumValue`),
//!   `dct:format` (EU file-type authority), `dcat:mediaType` (IANA), `dct:license`, `dct:title`.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use lien_node::catalog::index::{ckan_name, format_of, slugify};

use super::{base_url, download_url, iso_time, with_index, Detail};
use crate::error::ApiError;
use crate::state::ApiState;

/// Datasets per page when the harvester does not say.
pub const DEFAULT_PAGE_SIZE: usize = 1000;
/// Most datasets per page.
pub const MAX_PAGE_SIZE: usize = 5000;

const PREFIXES: [(&str, &str); 10] = [
    ("dcat", "http://www.w3.org/ns/dcat#"),
    ("dct", "http://purl.org/dc/terms/"),
    ("foaf", "http://xmlns.com/foaf/0.1/"),
    ("vcard", "http://www.w3.org/2006/vcard/ns#"),
    ("spdx", "http://spdx.org/rdf/terms#"),
    ("xsd", "http://www.w3.org/2001/XMLSchema#"),
    ("skos", "http://www.w3.org/2004/02/skos/core#"),
    ("rdfs", "http://www.w3.org/2000/01/rdf-schema#"),
    ("adms", "http://www.w3.org/ns/adms#"),
    ("hydra", "http://www.w3.org/ns/hydra/core#"),
];

/// Which page of the catalog to export.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub(crate) struct PageQuery {
    /// 1-based page number.
    #[serde(default = "first_page")]
    page: usize,
    /// Datasets per page.
    #[serde(default = "default_page_size")]
    page_size: usize,
}

fn first_page() -> usize {
    1
}

fn default_page_size() -> usize {
    DEFAULT_PAGE_SIZE
}

/// A page of the catalog: where it is, how many datasets there are in all, and the page's URL
/// pattern (`{page}` is replaced by a page number).
struct Page {
    number: usize,
    size: usize,
    total: usize,
    url: String,
}

impl Page {
    fn last(&self) -> usize {
        self.total.div_ceil(self.size).max(1)
    }

    fn url_of(&self, n: usize) -> String {
        self.url.replace("{page}", &n.to_string())
    }

    /// The Hydra view of this page.
    fn view(&self) -> Node {
        let mut v = Node::new(Term::Iri(self.url_of(self.number)), "hydra:PartialCollectionView");
        v.add("hydra:totalItems", Term::Lit(self.total.to_string(), Some("xsd:nonNegativeInteger")));
        v.add("hydra:itemsPerPage", Term::Lit(self.size.to_string(), Some("xsd:nonNegativeInteger")));
        v.add("hydra:first", Term::Iri(self.url_of(1)));
        v.add("hydra:last", Term::Iri(self.url_of(self.last())));
        if self.number > 1 {
            v.add("hydra:previous", Term::Iri(self.url_of((self.number - 1).min(self.last()))));
        }
        if self.number < self.last() {
            v.add("hydra:next", Term::Iri(self.url_of(self.number + 1)));
        }
        v
    }
}

/// An RDF term in object position.
#[derive(Debug, Clone, PartialEq)]
enum Term {
    Iri(String),
    Blank(String),
    /// A literal with an optional datatype (a prefixed name such as `xsd:dateTime`).
    Lit(String, Option<&'static str>),
}

/// One subject with its types and properties (predicates are prefixed names).
#[derive(Debug, Clone)]
struct Node {
    subject: Term,
    types: Vec<&'static str>,
    props: Vec<(&'static str, Term)>,
}

impl Node {
    fn new(subject: Term, ty: &'static str) -> Self {
        Node { subject, types: vec![ty], props: Vec::new() }
    }

    fn add(&mut self, p: &'static str, o: Term) -> &mut Self {
        self.props.push((p, o));
        self
    }

    fn text(&mut self, p: &'static str, value: &str) -> &mut Self {
        if !value.trim().is_empty() {
            self.props.push((p, Term::Lit(value.to_owned(), None)));
        }
        self
    }
}

#[derive(Debug, Default)]
struct Graph {
    nodes: Vec<Node>,
    blanks: usize,
}

impl Graph {
    fn blank(&mut self) -> Term {
        self.blanks += 1;
        Term::Blank(format!("b{}", self.blanks))
    }
}

/// Whether `s` can stand as an IRI in Turtle and JSON-LD as is.
fn iri_safe(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://") || s.starts_with("mailto:"))
        && !s.chars().any(|c| c.is_whitespace() || c.is_control() || "<>\"{}|^`\\".contains(c))
}

/// The IRI of a license: itself when it is one, an SPDX licence IRI for an SPDX-like id.
fn license_iri(license: &str) -> Option<String> {
    if iri_safe(license) {
        return Some(license.to_owned());
    }
    let id_like = !license.is_empty() && license.chars().all(|c| c.is_ascii_alphanumeric() || "-.+".contains(c));
    id_like.then(|| format!("http://spdx.org/licenses/{license}"))
}

/// The IRI of a language code (ISO 639-1 two letters → EU language authority for common ones).
fn language_iri(code: &str) -> Option<String> {
    const EU: [(&str, &str); 10] = [
        ("vi", "VIE"),
        ("en", "ENG"),
        ("fr", "FRA"),
        ("de", "DEU"),
        ("zh", "ZHO"),
        ("ja", "JPN"),
        ("ko", "KOR"),
        ("es", "SPA"),
        ("ru", "RUS"),
        ("km", "KHM"),
    ];
    let code = code.trim().to_ascii_lowercase();
    if let Some((_, eu)) = EU.iter().find(|(c, _)| *c == code) {
        return Some(format!("http://publications.europa.eu/resource/authority/language/{eu}"));
    }
    (code.len() == 2 && code.chars().all(|c| c.is_ascii_lowercase()))
        .then(|| format!("http://id.loc.gov/vocabulary/iso639-1/{code}"))
}

/// A date or year for `dcat:startDate` / `dcat:endDate`, with its datatype.
fn date_term(s: &str) -> Option<Term> {
    let s = s.trim();
    let digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
    if s.len() == 4 && digits(s) {
        return Some(Term::Lit(s.to_owned(), Some("xsd:gYear")));
    }
    let b = s.as_bytes();
    if s.len() == 10 && b[4] == b'-' && b[7] == b'-' && digits(&s[..4]) && digits(&s[5..7]) && digits(&s[8..]) {
        return Some(Term::Lit(s.to_owned(), Some("xsd:date")));
    }
    None
}

/// Builds the graph of the catalog.
fn build(base: &str, title: &str, datasets: &[Detail], page: Option<&Page>) -> Graph {
    let mut g = Graph::default();
    if let Some(page) = page {
        g.nodes.push(page.view());
    }
    let catalog_iri = format!("{base}/catalog");
    let mut catalog = Node::new(Term::Iri(catalog_iri), "dcat:Catalog");
    catalog
        .text("dct:title", title)
        .text("dct:description", "Datasets known to this Lien node, verified by BLAKE3 and shared peer to peer")
        .add("foaf:homepage", Term::Iri(format!("{base}/")));
    let node_agent = Term::Iri(format!("{base}/node"));
    let mut agent = Node::new(node_agent.clone(), "foaf:Agent");
    agent.text("foaf:name", title);
    catalog.add("dct:publisher", node_agent);
    g.nodes.push(agent);
    let modified = datasets.iter().map(|d| d.manifest.body().created).max().unwrap_or(0);
    catalog.add("dct:modified", Term::Lit(format!("{}Z", iso_time(modified)), Some("xsd:dateTime")));

    for d in datasets {
        let m = &d.manifest;
        let b = m.body();
        let md = &b.metadata;
        let name = ckan_name(m);
        let ds_iri = format!("{base}/dataset/{name}");
        catalog.add("dcat:dataset", Term::Iri(ds_iri.clone()));
        let mut ds = Node::new(Term::Iri(ds_iri.clone()), "dcat:Dataset");
        let description = if md.description.trim().is_empty() { &md.title } else { &md.description };
        ds.text("dct:title", &md.title)
            .text("dct:description", description)
            .text("dct:identifier", &m.name())
            .text("dcat:version", &b.version.to_string())
            .add("dcat:landingPage", Term::Iri(ds_iri.clone()));
        let time = Term::Lit(format!("{}Z", iso_time(b.created)), Some("xsd:dateTime"));
        ds.add("dct:modified", time.clone());
        ds.add("dct:issued", time);
        for k in &md.keywords {
            ds.text("dcat:keyword", k);
        }
        for t in &md.themes {
            if iri_safe(t) {
                ds.add("dcat:theme", Term::Iri(t.clone()));
            } else {
                let concept = g.blank();
                let mut c = Node::new(concept.clone(), "skos:Concept");
                c.text("skos:prefLabel", t);
                g.nodes.push(c);
                ds.add("dcat:theme", concept);
            }
        }
        // Publisher: the organisation when named, else the signing key.
        let org_slug = slugify(&md.organisation);
        let (pub_iri, pub_name) = if org_slug.is_empty() {
            (format!("{base}/publisher/{}", b.publisher), b.publisher.to_string())
        } else {
            (format!("{base}/organization/{org_slug}"), md.organisation.clone())
        };
        let mut publisher = Node::new(Term::Iri(pub_iri.clone()), "foaf:Agent");
        publisher.text("foaf:name", &pub_name);
        g.nodes.push(publisher);
        ds.add("dct:publisher", Term::Iri(pub_iri));
        if !md.contact.trim().is_empty() {
            let kind = g.blank();
            let mut v = Node::new(kind.clone(), "vcard:Kind");
            let email = md.contact.trim();
            if email.contains('@') && !email.contains(' ') && iri_safe(&format!("mailto:{email}")) {
                v.text("vcard:fn", email).add("vcard:hasEmail", Term::Iri(format!("mailto:{email}")));
            } else {
                v.text("vcard:fn", email);
            }
            g.nodes.push(v);
            ds.add("dcat:contactPoint", kind);
        }
        if !md.spatial.trim().is_empty() {
            let loc = g.blank();
            let mut l = Node::new(loc.clone(), "dct:Location");
            l.text("skos:prefLabel", &md.spatial);
            g.nodes.push(l);
            ds.add("dct:spatial", loc);
        }
        if !md.temporal.trim().is_empty() {
            let period = g.blank();
            let mut p = Node::new(period.clone(), "dct:PeriodOfTime");
            let (start, end) = md.temporal.split_once('/').unwrap_or((&md.temporal, ""));
            match (date_term(start), date_term(end)) {
                (Some(s), e) => {
                    p.add("dcat:startDate", s);
                    if let Some(e) = e {
                        p.add("dcat:endDate", e);
                    }
                }
                _ => {
                    p.text("rdfs:label", &md.temporal);
                }
            }
            g.nodes.push(p);
            ds.add("dct:temporal", period);
        }
        for lang in &md.languages {
            if let Some(iri) = language_iri(lang) {
                ds.add("dct:language", Term::Iri(iri));
            }
        }
        let license = license_iri(&md.license);
        for e in d.entries() {
            let url = download_url(base, &m.id(), e.path.as_str());
            let dist_iri = format!("{ds_iri}/v{}/{}", b.version, url.rsplit_once("/d/").map_or("", |(_, p)| p));
            ds.add("dcat:distribution", Term::Iri(dist_iri.clone()));
            let mut dist = Node::new(Term::Iri(dist_iri), "dcat:Distribution");
            dist.text("dct:title", e.path.as_str())
                .add("dcat:accessURL", Term::Iri(url.clone()))
                .add("dcat:downloadURL", Term::Iri(url))
                .add("dcat:byteSize", Term::Lit(e.size.to_string(), Some("xsd:nonNegativeInteger")));
            let format = format_of(e);
            if !format.is_empty() && format.chars().all(|c| c.is_ascii_alphanumeric()) {
                dist.add(
                    "dct:format",
                    Term::Iri(format!("http://publications.europa.eu/resource/authority/file-type/{format}")),
                );
            }
            let media = format!("https://www.iana.org/assignments/media-types/{}", e.media_type);
            if !e.media_type.is_empty() && e.media_type.contains('/') && iri_safe(&media) {
                dist.add("dcat:mediaType", Term::Iri(media));
            }
            if let Some(l) = &license {
                dist.add("dct:license", Term::Iri(l.clone()));
            }
            let checksum = g.blank();
            let mut c = Node::new(checksum.clone(), "spdx:Checksum");
            c.add("spdx:algorithm", Term::Iri("http://spdx.org/rdf/terms#checksumAlgorithm_blake3".into()))
                .add("spdx:checksumValue", Term::Lit(e.id.to_string(), Some("xsd:hexBinary")));
            g.nodes.push(c);
            dist.add("spdx:checksum", checksum);
            g.nodes.push(dist);
        }
        g.nodes.push(ds);
    }
    g.nodes.insert(0, catalog);
    g
}

fn turtle_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

fn turtle_term(t: &Term) -> String {
    match t {
        Term::Iri(i) => format!("<{i}>"),
        Term::Blank(b) => format!("_:{b}"),
        Term::Lit(v, None) => format!("\"{}\"", turtle_escape(v)),
        Term::Lit(v, Some(dt)) => format!("\"{}\"^^{dt}", turtle_escape(v)),
    }
}

fn to_turtle(g: &Graph) -> String {
    let mut out = String::new();
    for (p, iri) in PREFIXES {
        out.push_str(&format!("@prefix {p}: <{iri}> .\n"));
    }
    for n in &g.nodes {
        out.push('\n');
        out.push_str(&turtle_term(&n.subject));
        out.push_str(&format!(" a {}", n.types.join(", ")));
        for (p, o) in &n.props {
            out.push_str(&format!(" ;\n    {p} {}", turtle_term(o)));
        }
        out.push_str(" .\n");
    }
    out
}

fn jsonld_term(t: &Term) -> Value {
    match t {
        Term::Iri(i) => json!({"@id": i}),
        Term::Blank(b) => json!({"@id": format!("_:{b}")}),
        Term::Lit(v, None) => json!({"@value": v}),
        Term::Lit(v, Some(dt)) => json!({"@value": v, "@type": dt}),
    }
}

fn to_jsonld(g: &Graph) -> Value {
    let context: Map<String, Value> = PREFIXES.iter().map(|(p, iri)| ((*p).to_owned(), json!(iri))).collect();
    let graph: Vec<Value> = g
        .nodes
        .iter()
        .map(|n| {
            let mut obj = Map::new();
            if let Value::Object(id) = jsonld_term(&n.subject) {
                obj.extend(id);
            }
            obj.insert("@type".into(), json!(n.types));
            for (p, o) in &n.props {
                if let Value::Array(list) = obj.entry(*p).or_insert_with(|| Value::Array(Vec::new())) {
                    list.push(jsonld_term(o));
                }
            }
            Value::Object(obj)
        })
        .collect();
    json!({"@context": context, "@graph": graph})
}

async fn graph(state: &ApiState, headers: &HeaderMap, q: PageQuery, path: &str) -> Result<Graph, ApiError> {
    if q.page == 0 || q.page_size == 0 || q.page_size > MAX_PAGE_SIZE {
        return Err(ApiError::bad_request(format!(
            "page starts at 1 and page_size must be 1..={MAX_PAGE_SIZE} (got page={}, page_size={})",
            q.page, q.page_size
        )));
    }
    let base = base_url(state, headers);
    let title = state.portal.title.clone();
    let url = format!("{base}{path}?page={{page}}&page_size={}", q.page_size);
    with_index(state, move |ix, store| {
        let total = ix.len();
        let page = Page { number: q.page, size: q.page_size, total, url };
        let start = (q.page - 1).saturating_mul(q.page_size);
        let mut datasets = Vec::with_capacity(q.page_size.min(total));
        for doc in ix.docs().iter().skip(start).take(q.page_size) {
            if let Some(d) = Detail::load(store, &doc.id)? {
                datasets.push(d);
            }
        }
        // A catalog that fits one page is exported whole, without a Hydra view.
        let view = (total > q.page_size || q.page > 1).then_some(&page);
        Ok(build(&base, &title, &datasets, view))
    })
    .await
}

/// `GET /catalog.jsonld`
pub(crate) async fn jsonld(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let g = graph(&state, &headers, q, "/catalog.jsonld").await?;
    let body = serde_json::to_vec_pretty(&to_jsonld(&g)).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/ld+json; charset=utf-8")], body).into_response())
}

/// `GET /catalog.ttl`
pub(crate) async fn turtle(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let g = graph(&state, &headers, q, "/catalog.ttl").await?;
    Ok(([(header::CONTENT_TYPE, "text/turtle; charset=utf-8")], to_turtle(&g)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_dcat_terms() {
        assert_eq!(license_iri("CC-BY-4.0").as_deref(), Some("http://spdx.org/licenses/CC-BY-4.0"));
        assert_eq!(license_iri("https://example.org/l").as_deref(), Some("https://example.org/l"));
        assert_eq!(license_iri("open government licence"), None);
        assert_eq!(
            language_iri("vi").as_deref(),
            Some("http://publications.europa.eu/resource/authority/language/VIE")
        );
        assert_eq!(date_term("2020"), Some(Term::Lit("2020".into(), Some("xsd:gYear"))));
        assert_eq!(date_term("2020-01-31"), Some(Term::Lit("2020-01-31".into(), Some("xsd:date"))));
        assert_eq!(date_term("soon"), None);
        assert_eq!(turtle_escape("a\"b\\\n"), "a\\\"b\\\\\\n");
        let g = build("http://h", "T", &[], None);
        let ttl = to_turtle(&g);
        assert!(ttl.contains("<http://h/catalog> a dcat:Catalog"));
        let ld = to_jsonld(&g);
        assert_eq!(ld["@graph"][0]["@type"][0], "dcat:Catalog");
    }

    #[test]
    fn pages_link_to_their_neighbours() {
        let url = "http://h/catalog.ttl?page={page}&page_size=10".to_owned();
        let middle = Page { number: 2, size: 10, total: 25, url: url.clone() };
        let ttl = to_turtle(&build("http://h", "T", &[], Some(&middle)));
        assert!(ttl.contains("hydra:totalItems \"25\"^^xsd:nonNegativeInteger"), "{ttl}");
        assert!(ttl.contains("hydra:last <http://h/catalog.ttl?page=3&page_size=10>"), "{ttl}");
        assert!(ttl.contains("hydra:previous <http://h/catalog.ttl?page=1&page_size=10>"), "{ttl}");
        assert!(ttl.contains("hydra:next <http://h/catalog.ttl?page=3&page_size=10>"), "{ttl}");
        let last = Page { number: 3, size: 10, total: 25, url };
        let ttl = to_turtle(&build("http://h", "T", &[], Some(&last)));
        assert!(!ttl.contains("hydra:next"), "{ttl}");
    }
}
