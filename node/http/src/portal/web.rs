//! Server-rendered pages for people: `/` (search with facets), `/dataset/{name}` (metadata,
//! files with sizes and BLAKE3 hashes, download links through the gateway, versions, providers,
//! the `lien get` command), `/node` (peers, transfers, storage).
//!
//! On a public listener (`portal_listen`) `/node` lists peers by id only (no IP addresses) and
//! leaves restricted datasets held (`Metadata.readers`) out of its table: it only counts them;
//! a restricted dataset's page does not say whether this node holds it.
//!
//! Plain HTML forms and links: everything reads and works without JavaScript; `portal.js` only
//! adds a "copy" button. Stylesheet and script are served by the node itself, so the pages need
//! nothing from the internet, and a strict `Content-Security-Policy` forbids anything else.

use std::fmt::Write;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query as UrlQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lien_protocol::ContentId;
use serde::Deserialize;

use lien_node::catalog::index::{ckan_name, format_of, Field, Query, Sort};

use super::{iso_time, lookup, with_index, Detail};
use crate::api::types::LocalInfo;
use crate::error::ApiError;
use crate::extract::blocking;
use crate::state::ApiState;
use crate::text::{escape, percent_encode};

/// Results per search page.
const PAGE_ROWS: usize = 20;
/// How long the dataset page asks the DHT for providers.
const PROVIDERS_TIMEOUT: Duration = Duration::from_secs(3);

const CSS: &str = include_str!("portal.css");
const JS: &str = include_str!("portal.js");

fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width, initial-scale=1\">\
<title>{t} · Lien</title><link rel=stylesheet href=/static/portal.css><script src=/static/portal.js defer></script></head>\
<body><header><a class=brand href=/>Lien</a><nav><a href=/>Datasets</a><a href=/node>Node</a>\
<a href=/catalog.jsonld>DCAT JSON-LD</a><a href=/catalog.ttl>DCAT Turtle</a><a href=/api/3/action/package_search>CKAN API</a></nav></header>\
<main>{body}</main><footer>Every file is verified against its BLAKE3 hash before it is served.</footer></body></html>\n",
        t = escape(title)
    );
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
                ),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
        html,
    )
        .into_response()
}

/// `GET /static/portal.css`
pub(crate) async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], CSS)
        .into_response()
}

/// `GET /static/portal.js`
pub(crate) async fn js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], JS)
        .into_response()
}

/// Human size.
fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    organization: Option<String>,
    #[serde(default)]
    tags: Option<String>,
    #[serde(default)]
    license_id: Option<String>,
    #[serde(default)]
    res_format: Option<String>,
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    page: Option<usize>,
}

impl SearchParams {
    fn filters(&self) -> Vec<(Field, String)> {
        [
            (Field::Organization, &self.organization),
            (Field::Tags, &self.tags),
            (Field::License, &self.license_id),
            (Field::Format, &self.res_format),
        ]
        .into_iter()
        .filter_map(|(f, v)| v.as_ref().filter(|v| !v.is_empty()).map(|v| (f, v.clone())))
        .collect()
    }

    /// This search's URL with `field` set to `value` (or removed when `None`), back on page 1.
    fn href_with(&self, field: Option<Field>, value: Option<&str>) -> String {
        let mut parts = Vec::new();
        if !self.q.is_empty() {
            parts.push(format!("q={}", percent_encode(&self.q)));
        }
        for (f, v) in self.filters() {
            if Some(f) != field {
                parts.push(format!("{}={}", f.name(), percent_encode(&v)));
            }
        }
        if let (Some(f), Some(v)) = (field, value) {
            parts.push(format!("{}={}", f.name(), percent_encode(v)));
        }
        if let Some(s) = &self.sort {
            parts.push(format!("sort={}", percent_encode(s)));
        }
        if parts.is_empty() {
            "/".into()
        } else {
            format!("/?{}", parts.join("&amp;"))
        }
    }
}

/// The search for `q` without filters.
fn clear_filters(q: &str) -> String {
    if q.is_empty() {
        "/".into()
    } else {
        format!("/?q={}", percent_encode(q))
    }
}

/// `GET /?q=...&organization=...&tags=...&license_id=...&res_format=...&page=N`
pub(crate) async fn search_page(
    State(state): State<ApiState>,
    params: Result<UrlQuery<SearchParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    // A malformed query (e.g. `page=x`) shows the first page rather than an error.
    let p = params.map(|UrlQuery(p)| p).unwrap_or_default();
    let page_no = p.page.unwrap_or(1).max(1);
    let sort = match p.sort.as_deref() {
        Some("newest") => Sort::Modified { desc: true },
        Some("title") => Sort::Title { desc: false },
        _ => Sort::Score,
    };
    let query = Query {
        text: p.q.clone(),
        filters: p.filters(),
        sort,
        start: (page_no - 1).saturating_mul(PAGE_ROWS),
        rows: PAGE_ROWS,
        facets: vec![Field::Organization, Field::Tags, Field::License, Field::Format],
        facet_limit: 12,
    };
    let (hits, total) = with_index(&state, move |ix, _| Ok((ix.search(&query), ix.len()))).await?;
    let mut body = String::new();
    let _ = write!(
        body,
        "<form class=search method=get action=/><input type=search name=q value=\"{}\" placeholder=\"Search {total} datasets\" aria-label=Search autofocus>",
        escape(&p.q)
    );
    for (f, v) in p.filters() {
        let _ = write!(body, "<input type=hidden name={} value=\"{}\">", f.name(), escape(&v));
    }
    let _ = write!(
        body,
        "<select name=sort aria-label=Sort><option value=\"\">Relevance</option><option value=newest{}>Newest</option><option value=title{}>Title</option></select><button type=submit id=search-button>Search</button></form>",
        if p.sort.as_deref() == Some("newest") { " selected" } else { "" },
        if p.sort.as_deref() == Some("title") { " selected" } else { "" },
    );
    body.push_str("<div class=columns><aside class=facets>");
    let active = p.filters();
    for (field, values) in &hits.facets {
        if values.is_empty() {
            continue;
        }
        let _ = write!(body, "<section><h3>{}</h3><ul>", field.title());
        for (value, display, count) in values {
            let on = active.iter().any(|(f, v)| f == field && v.eq_ignore_ascii_case(value));
            let href = if on { p.href_with(Some(*field), None) } else { p.href_with(Some(*field), Some(value)) };
            let _ = write!(
                body,
                "<li><a class=\"facet{}\" data-field={} href=\"{href}\">{}</a> <span class=count>{count}</span></li>",
                if on { " on" } else { "" },
                field.name(),
                escape(display)
            );
        }
        body.push_str("</ul></section>");
    }
    let _ = write!(
        body,
        "</aside><section class=results><p class=summary id=result-count>{} dataset{} found",
        hits.count,
        if hits.count == 1 { "" } else { "s" }
    );
    if !active.is_empty() {
        let _ = write!(body, " · <a href=\"{}\">clear filters</a>", clear_filters(&p.q));
    }
    body.push_str("</p><ol class=datasets>");
    for d in &hits.docs {
        let _ = write!(
            body,
            "<li class=dataset><h2><a href=\"/dataset/{}\">{}</a></h2><p class=meta>{} · v{} · {} · {}</p>",
            percent_encode(&d.ckan_name),
            escape(&d.title),
            escape(d.organization.as_ref().map_or(d.name.as_str(), |(_, t)| t.as_str())),
            d.version,
            escape(&d.formats.join(", ")),
            &iso_time(d.modified)[..10],
        );
        if !d.tags.is_empty() {
            body.push_str("<p class=tags>");
            for t in &d.tags {
                let _ = write!(body, "<span class=tag>{}</span>", escape(t));
            }
            body.push_str("</p>");
        }
        body.push_str("</li>");
    }
    body.push_str("</ol>");
    let pages = hits.count.div_ceil(PAGE_ROWS);
    if pages > 1 {
        let base = p.href_with(None, None);
        let sep = if base.contains('?') { "&amp;" } else { "?" };
        body.push_str("<nav class=pages>");
        if page_no > 1 {
            let _ = write!(body, "<a rel=prev href=\"{base}{sep}page={}\">previous</a> ", page_no - 1);
        }
        let _ = write!(body, "page {page_no} of {pages}");
        if page_no < pages {
            let _ = write!(body, " <a rel=next href=\"{base}{sep}page={}\">next</a>", page_no + 1);
        }
        body.push_str("</nav>");
    }
    body.push_str("</section></div>");
    Ok(page("Datasets", &body))
}

/// `GET /dataset/{key}`: key = CKAN name or manifest id.
pub(crate) async fn dataset_page(
    State(state): State<ApiState>,
    UrlPath(key): UrlPath<String>,
) -> Result<Response, ApiError> {
    let lookup_key = key.clone();
    let found = with_index(&state, move |ix, store| lookup(ix, store, &lookup_key)).await?;
    let Some(d) = found else {
        let body = format!("<h1>Not found</h1><p>No dataset {} is known to this node.</p>", escape(&key));
        let mut r = page("Not found", &body);
        *r.status_mut() = StatusCode::NOT_FOUND;
        return Ok(r);
    };
    let id = d.manifest.id();
    let providers = match tokio::time::timeout(PROVIDERS_TIMEOUT, state.node.network().find_providers(id)).await {
        Ok(Ok(p)) => Some(p.into_iter().map(|p| p.to_string()).collect::<Vec<_>>()),
        _ => None,
    };
    Ok(page(&d.manifest.body().metadata.title, &dataset_body(&state, &d, providers)))
}

fn dataset_body(state: &ApiState, d: &Detail, providers: Option<Vec<String>>) -> String {
    let m = &d.manifest;
    let b = m.body();
    let md = &b.metadata;
    let id = m.id();
    let mut h = String::new();
    let _ = write!(h, "<article class=dataset-page><h1 id=dataset-title>{}</h1>", escape(&md.title));
    if !md.description.is_empty() {
        let _ = write!(h, "<p class=description>{}</p>", escape(&md.description).replace('\n', "<br>"));
    }
    let get_cmd = format!("lien get {} -o ./{}", m.name(), b.slug);
    let _ = write!(
        h,
        "<h2>Get it</h2><div class=cmd><code id=get-command>{}</code><button type=button class=copy data-copy=get-command hidden>copy</button></div>\
<p class=hint>or by this exact version: <code>lien get {id} -o ./{}</code></p>",
        escape(&get_cmd),
        escape(b.slug.as_str())
    );
    h.push_str("<h2>Metadata</h2><table class=metadata>");
    fn row(h: &mut String, k: &str, v: &str) {
        if !v.is_empty() {
            let _ = write!(h, "<tr><th>{k}</th><td>{}</td></tr>", escape(v));
        }
    }
    row(&mut h, "Name", &m.name());
    row(&mut h, "Version", &b.version.to_string());
    row(&mut h, "Manifest id", &id.to_string());
    // Verified through the trust chain, or only declared by the publisher: said as such.
    match state.node.organisation_of(m) {
        lien_node::trust::Organisation::Verified { name, chain } => {
            let _ = write!(
                h,
                "<tr><th>Organisation</th><td><span title=\"{}\">{}</span> <span class=verified>(verified by the trust chain)</span></td></tr>",
                escape(&format!("chain: {}", chain.join(" \u{2190} "))),
                escape(&name)
            );
        }
        lien_node::trust::Organisation::Declared { name } => {
            let _ = write!(
                h,
                "<tr><th>Organisation</th><td>{} <span class=declared>(declared by the publisher, not verified)</span></td></tr>",
                escape(&name)
            );
        }
        lien_node::trust::Organisation::Unknown => {}
    }
    row(&mut h, "License", &md.license);
    row(&mut h, "Keywords", &md.keywords.join(", "));
    row(&mut h, "Themes", &md.themes.join(", "));
    row(&mut h, "Spatial", &md.spatial);
    row(&mut h, "Temporal", &md.temporal);
    row(&mut h, "Contact", &md.contact);
    row(&mut h, "Languages", &md.languages.join(", "));
    row(&mut h, "Published", &format!("{} UTC", iso_time(b.created).replace('T', " ")));
    row(&mut h, "Signature", "valid (ed25519, checked when the manifest was received)");
    h.push_str("</table>");

    let _ = write!(h, "<h2>Files</h2><table class=files id=files><thead><tr><th>File</th><th>Size</th><th>Format</th><th>BLAKE3</th></tr></thead><tbody>");
    match &d.files {
        Some(files) => {
            for e in files {
                let href: Vec<String> = e.path.as_str().split('/').map(percent_encode).collect();
                let file_name = e.path.as_str().rsplit('/').next().unwrap_or(e.path.as_str());
                let _ = write!(
                    h,
                    "<tr><td><a class=download href=\"/d/{id}/{}\" download=\"{}\">{}</a></td><td data-bytes={}>{}</td><td>{}</td><td><code class=hash>{}</code></td></tr>",
                    href.join("/"),
                    escape(file_name),
                    escape(e.path.as_str()),
                    e.size,
                    size(e.size),
                    escape(&format_of(e)),
                    e.id
                );
            }
        }
        None => h.push_str("<tr><td colspan=4>The file list is not stored on this node yet; open the <a href=\"/d/ID/\">gateway listing</a> to fetch it.</td></tr>".replace("ID", &id.to_string()).as_str()),
    }
    let _ = write!(h, "</tbody></table><p class=hint>{} in {} files. Downloads go through this node's gateway, which fetches from peers when needed and verifies every chunk. Check a copy with <code>b3sum</code>.</p>", size(b.files.total_size()), b.files.count());

    h.push_str("<h2>Versions</h2><ul class=versions>");
    for (v, vid) in d.versions.iter().rev() {
        let current = *vid == id;
        let _ = write!(
            h,
            "<li>{}<a href=\"/dataset/{vid}\">v{v}</a>{} <code>{}</code></li>",
            if current { "<strong>" } else { "" },
            if current { "</strong> (shown)" } else { "" },
            vid.short()
        );
    }
    h.push_str("</ul><h2>Providers</h2><ul class=providers>");
    match &d.local {
        // Whether this node holds restricted data is for its operator, not every visitor.
        _ if state.public && md.is_restricted() => h.push_str(
            "<li>this node: not shown (a restricted dataset; authorised nodes use <code>lien get</code>)</li>",
        ),
        Some(l) => {
            let _ = write!(
                h,
                "<li>this node ({}): {}{}</li>",
                state.node.peer_id(),
                if l.complete { "complete copy" } else { "partial copy" },
                if l.pinned { ", pinned" } else { "" }
            );
        }
        None if state.public && !state.node.config().mirrors(b) => h.push_str(
            "<li>this node: not held (downloads here need a copy on this node: <code>lien get</code> it there)</li>",
        ),
        None => h.push_str("<li>this node: not held (the gateway fetches it on first download)</li>"),
    }
    match providers {
        Some(list) => {
            for p in list.iter().filter(|p| **p != state.node.peer_id().to_string()) {
                let _ = write!(h, "<li>peer <code>{}</code></li>", escape(p));
            }
        }
        None => h.push_str("<li>(the DHT did not answer in time)</li>"),
    }
    let _ = write!(
        h,
        "</ul><p class=hint>Machine-readable: <a href=\"/api/3/action/package_show?id={}\">CKAN package</a> · <a href=\"/d/{id}/\">gateway listing</a></p></article>",
        percent_encode(&ckan_name(m))
    );
    h
}

/// `GET /node`
pub(crate) async fn node_page(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let node = state.node.clone();
    let peers = node.peers().await.unwrap_or_default();
    let listen = node.listen_addrs().await.unwrap_or_default();
    let stats = node.stats();
    let store = node.store().clone();
    let (locals, catalog, store_bytes) = blocking(move || {
        let store_bytes = std::fs::metadata(store.path()).map(|m| m.len()).unwrap_or(0);
        let mut locals = Vec::new();
        for l in lien_node::local::summaries(&store)?.into_iter().map(LocalInfo::from) {
            let restricted = match l.id.parse::<ContentId>() {
                Ok(id) => store.manifest(&id)?.is_some_and(|m| m.body().metadata.is_restricted()),
                Err(_) => true, // cannot tell: keep it private
            };
            locals.push((l, restricted));
        }
        Ok((locals, store.manifest_count()?, store_bytes))
    })
    .await?;
    let public = state.public;
    let mut h = String::new();
    let _ = write!(h, "<h1>Node</h1><table class=metadata>");
    let rows = [
        ("Peer id", node.peer_id().to_string()),
        ("Publisher key", node.publisher().to_string()),
        ("Network", node.config().network.clone()),
        ("Version", env!("CARGO_PKG_VERSION").to_owned()),
        ("Catalog", format!("{catalog} manifests")),
        ("Metadata store", size(store_bytes)),
        ("Data held", size(locals.iter().map(|(l, _)| l.present).sum())),
        ("Received from peers", size(stats.fetched.values().sum())),
        ("Served to peers", size(stats.served.values().sum())),
        ("Fetches running", state.fetches_active.load(std::sync::atomic::Ordering::Relaxed).to_string()),
    ];
    for (k, v) in rows {
        let _ = write!(h, "<tr><th>{k}</th><td>{}</td></tr>", escape(&v));
    }
    for a in &listen {
        let _ = write!(h, "<tr><th>Listening</th><td><code>{}</code></td></tr>", escape(&a.to_string()));
    }
    let _ = write!(h, "</table><h2>Peers ({})</h2><ul id=peers>", peers.len());
    for p in &peers {
        // Peers' IP addresses are for the operator (`lien peers`), not for every visitor.
        let addrs = if public { String::new() } else { p.addrs.join(", ") };
        let _ = write!(
            h,
            "<li><code>{}</code> {} <span class=hint>{}</span></li>",
            escape(&p.peer_id),
            escape(&addrs),
            escape(p.agent.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</ul><h2>Transfers and local datasets</h2><table class=files><thead><tr><th>Dataset</th><th>State</th><th>Held</th></tr></thead><tbody>");
    let mut hidden = 0;
    for (l, restricted) in &locals {
        if public && *restricted {
            hidden += 1; // not even its title: that this node holds it is not for every visitor
            continue;
        }
        let state_text = if l.complete {
            format!("{}{}", l.kind, if l.pinned { ", pinned" } else { "" })
        } else {
            format!("fetching ({:.0}%)", if l.size == 0 { 100.0 } else { l.present as f64 * 100.0 / l.size as f64 })
        };
        let label = l.name.clone().unwrap_or_else(|| l.id.clone());
        let link = l.id.parse::<ContentId>().map(|id| format!("/dataset/{id}")).unwrap_or_default();
        let _ = write!(
            h,
            "<tr><td><a href=\"{link}\">{}</a></td><td>{}</td><td>{} of {}</td></tr>",
            escape(l.title.as_deref().unwrap_or(&label)),
            escape(&state_text),
            size(l.present),
            size(l.size)
        );
    }
    h.push_str("</tbody></table>");
    if hidden > 0 {
        let _ = write!(
            h,
            "<p class=hint id=restricted-held>and {hidden} restricted dataset{} (not listed here)</p>",
            if hidden == 1 { "" } else { "s" }
        );
    }
    h.push_str("<h2>Trust</h2><p class=hint>Only manifests signed by trusted publishers enter the catalog; the trust roots are set in <code>lien.toml</code>.</p>");
    Ok(page("Node", &h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_web_helpers() {
        assert_eq!(size(10), "10 B");
        assert_eq!(size(1536), "1.5 KiB");
        let p = SearchParams { q: "dân số".into(), tags: Some("a b".into()), ..SearchParams::default() };
        assert_eq!(
            p.href_with(Some(Field::Organization), Some("gso")),
            "/?q=d%C3%A2n%20s%E1%BB%91&amp;tags=a%20b&amp;organization=gso"
        );
        assert_eq!(p.href_with(Some(Field::Tags), None), "/?q=d%C3%A2n%20s%E1%BB%91");
    }
}
