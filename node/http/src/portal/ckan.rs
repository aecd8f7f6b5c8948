//! A read-only subset of the CKAN Action API (v3), so harvesters, `ckanapi` and analysts' scripts
//! can use any node as a CKAN portal.
//!
//! Actions are answered on `GET` (parameters in the query string; lists as JSON text, as CKAN
//! takes them) and on `POST` with a JSON object body (what `ckanapi` sends), under both
//! `/api/3/action/{name}` and `/api/action/{name}`. Every answer is CKAN-shaped:
//! `{"help", "success": true, "result"}`, or `{"success": false, "error": {"__type", "message"}}`
//! with CKAN's status codes (404 Not Found Error, 409 Validation / Search Query Error, 403
//! Authorization Error for every writing action, 400 for an unknown action).
//!
//! Mapping: one CKAN package per dataset name (`publisher/slug`), at its newest version known
//! here. Its CKAN `name` is `slug_` + the first 8 characters of the publisher key (CKAN names
//! cannot hold '/'), its `id` the newest manifest id; `package_show` also takes `publisher/slug`
//! or the manifest id of any version. Each file is a resource whose `url` is this node's gateway
//! (`/d/{manifest}/{path}`), with `size`, `format`, `mimetype` and `hash` = the file's BLAKE3 (hex,
//! what `b3sum` prints). The organisation (metadata `organisation`) is the CKAN organization,
//! keywords are tags, themes are groups.

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use lien_node::catalog::index::{ckan_name, format_of, slugify, Field, Query, Sort};

use super::{base_url, download_url, iso_time, lookup, with_index, Detail};
use crate::error::ApiError;
use crate::state::ApiState;
use crate::text::percent_encode;

/// Most rows `package_search` returns at once (CKAN's default `ckan.search.rows_max`).
const MAX_ROWS: usize = 1000;
/// Most names `package_list` / `organization_list` return at once without `limit`.
const MAX_LIST: usize = 100_000;

/// A failed action, as CKAN reports it.
#[derive(Debug)]
pub(crate) struct CkanError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl CkanError {
    fn not_found(message: impl Into<String>) -> Self {
        CkanError { status: StatusCode::NOT_FOUND, kind: "Not Found Error", message: message.into() }
    }

    fn validation(message: impl Into<String>) -> Self {
        CkanError { status: StatusCode::CONFLICT, kind: "Validation Error", message: message.into() }
    }

    fn search(message: impl Into<String>) -> Self {
        CkanError { status: StatusCode::CONFLICT, kind: "Search Query Error", message: message.into() }
    }
}

impl From<ApiError> for CkanError {
    fn from(e: ApiError) -> Self {
        CkanError { status: e.status, kind: "Internal Error", message: e.message }
    }
}

/// The action's parameters, from the query string and a JSON body.
struct Params(Map<String, Value>);

impl Params {
    fn parse(uri: &Uri, body: &Bytes) -> Result<Params, CkanError> {
        let mut map = Map::new();
        let query = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| CkanError::validation(format!("bad query string: {e}")))?;
        for (k, v) in query.0 {
            map.insert(k, Value::String(v));
        }
        let text = std::str::from_utf8(body).map_err(|_| CkanError::validation("request body is not UTF-8"))?;
        if !text.trim().is_empty() {
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(body)) => map.extend(body),
                _ => return Err(CkanError::validation("request body must be a JSON object")),
            }
        }
        Ok(Params(map))
    }

    fn str(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    fn usize(&self, key: &str, default: usize) -> Result<usize, CkanError> {
        let Some(v) = self.0.get(key) else { return Ok(default) };
        let n = match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) if s.trim().is_empty() => return Ok(default),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            Value::Null => return Ok(default),
            _ => None,
        };
        n.and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| CkanError::validation(format!("{key} must be a non-negative whole number")))
    }

    fn bool(&self, key: &str) -> bool {
        match self.0.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on"),
            _ => false,
        }
    }

    /// A list: a JSON array, or a string holding a JSON array, or one plain string.
    fn list(&self, key: &str) -> Result<Vec<String>, CkanError> {
        let values = match self.0.get(key) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(a)) => a.clone(),
            Some(Value::String(s)) if s.trim_start().starts_with('[') => match serde_json::from_str::<Value>(s) {
                Ok(Value::Array(a)) => a,
                _ => return Err(CkanError::validation(format!("{key} must be a JSON list of strings"))),
            },
            Some(Value::String(s)) => vec![Value::String(s.clone())],
            Some(_) => return Err(CkanError::validation(format!("{key} must be a list of strings"))),
        };
        values
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(CkanError::validation(format!("{key} must be a list of strings"))),
            })
            .collect()
    }
}

/// `GET /api/3`: the API version, as CKAN answers it.
pub(crate) async fn version() -> Json<Value> {
    Json(json!({"version": 3}))
}

/// `GET|POST /api/3/action/{action}`
pub(crate) async fn action(
    State(state): State<ApiState>,
    UrlPath(action): UrlPath<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let base = base_url(&state, &headers);
    let help = format!("{base}/api/3/action/help_show?name={}", percent_encode(&action));
    let result = match Params::parse(&uri, &body) {
        Ok(params) => run(&state, &base, &action, params).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(result) => Json(json!({"help": help, "success": true, "result": result})).into_response(),
        Err(e) => {
            let body = json!({"help": help, "success": false, "error": {"__type": e.kind, "message": e.message}});
            (e.status, Json(body)).into_response()
        }
    }
}

const WRITING_PREFIXES: [&str; 8] =
    ["package_", "resource_", "organization_", "group_", "user_", "member_", "dataset_", "tag_"];

async fn run(state: &ApiState, base: &str, action: &str, p: Params) -> Result<Value, CkanError> {
    let base = base.to_owned();
    match action {
        "package_list" => {
            let (limit, offset) = (p.usize("limit", MAX_LIST)?, p.usize("offset", 0)?);
            Ok(with_index(state, move |ix, _| {
                Ok(json!(ix.names().into_iter().skip(offset).take(limit).collect::<Vec<_>>()))
            })
            .await?)
        }
        "package_show" => {
            let id = p.str("id").or_else(|| p.str("name")).filter(|s| !s.trim().is_empty());
            let Some(id) = id else { return Err(CkanError::validation("Missing value: id")) };
            let key = id.trim().to_owned();
            let found = with_index(state, move |ix, store| lookup(ix, store, &key)).await?;
            match found {
                Some(d) => Ok(package(&base, &d)),
                None => Err(CkanError::not_found(format!("Not found: no dataset {id:?} is known here"))),
            }
        }
        "package_search" => {
            let q = search_query(&p)?;
            let facets = q.facets.clone();
            let sort = p.str("sort").unwrap_or_else(|| "score desc, metadata_modified desc".into());
            let (count, details, counts) = with_index(state, move |ix, store| {
                let hits = ix.search(&q);
                let mut details = Vec::with_capacity(hits.docs.len());
                for doc in &hits.docs {
                    if let Some(d) = Detail::load(store, &doc.id)? {
                        details.push(d);
                    }
                }
                Ok((hits.count, details, hits.facets))
            })
            .await?;
            let mut facet_map = Map::new();
            let mut search_facets = Map::new();
            for (field, values) in counts {
                let plain: Map<String, Value> = values.iter().map(|(v, _, n)| (v.clone(), json!(n))).collect();
                facet_map.insert(field.name().into(), Value::Object(plain));
                let items: Vec<Value> =
                    values.iter().map(|(v, d, n)| json!({"name": v, "display_name": d, "count": n})).collect();
                search_facets.insert(field.name().into(), json!({"title": field.name(), "items": items}));
            }
            let _ = facets;
            Ok(json!({
                "count": count,
                "sort": sort,
                "results": details.iter().map(|d| package(&base, d)).collect::<Vec<_>>(),
                "facets": facet_map,
                "search_facets": search_facets,
            }))
        }
        "organization_list" | "organization_show" => {
            let all_fields = p.bool("all_fields") || action == "organization_show";
            let wanted = p.str("id").filter(|_| action == "organization_show");
            let (limit, offset) = (p.usize("limit", MAX_LIST)?, p.usize("offset", 0)?);
            let orgs = with_index(state, move |ix, _| Ok(ix.values(Field::Organization))).await?;
            if let Some(id) = wanted {
                return orgs
                    .iter()
                    .find(|(slug, title, _)| *slug == id || *title == id)
                    .map(|(s, t, n)| organization(s, t, *n))
                    .ok_or_else(|| CkanError::not_found(format!("Not found: no organization {id:?}")));
            }
            let mut orgs = orgs;
            orgs.sort_by(|a, b| a.0.cmp(&b.0));
            let page = orgs.into_iter().skip(offset).take(limit);
            Ok(if all_fields {
                json!(page.map(|(s, t, n)| organization(&s, &t, n)).collect::<Vec<_>>())
            } else {
                json!(page.map(|(s, _, _)| s).collect::<Vec<_>>())
            })
        }
        "tag_list" => {
            let mut tags = with_index(state, move |ix, _| Ok(ix.values(Field::Tags))).await?;
            tags.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(json!(tags.into_iter().map(|(t, _, _)| t).collect::<Vec<_>>()))
        }
        "status_show" => Ok(json!({
            "site_title": state.portal.title,
            "site_url": base,
            "site_description": "A Lien node: datasets verified by BLAKE3, shared peer to peer",
            "ckan_version": "2.10.0",
            "locale_default": "en",
            "extensions": ["lien"],
        })),
        other if WRITING_PREFIXES.iter().any(|p| other.starts_with(p)) => Err(CkanError {
            status: StatusCode::FORBIDDEN,
            kind: "Authorization Error",
            message: format!(
                "Access denied: {other} is not available; this catalog is read-only (publish with `lien publish`)"
            ),
        }),
        other => Err(CkanError {
            status: StatusCode::BAD_REQUEST,
            kind: "Bad Request",
            message: format!("Bad request - Action name not known: {other}"),
        }),
    }
}

/// Builds the index query of a `package_search`.
fn search_query(p: &Params) -> Result<Query, CkanError> {
    let mut filters = Vec::new();
    let mut text = Vec::new();
    for clause in clauses(&p.str("q").unwrap_or_default()) {
        match clause.split_once(':') {
            Some(("*", "*")) => {}
            Some((field, value)) => match Field::parse(field) {
                Some(f) => filters.push((f, value.to_owned())),
                None if field == "text" || field == "title" || field == "name" => text.push(value.to_owned()),
                None => return Err(CkanError::search(format!("cannot search on field {field:?}"))),
            },
            None => text.push(clause),
        }
    }
    for clause in clauses(&p.str("fq").unwrap_or_default()) {
        let Some((field, value)) = clause.split_once(':') else {
            return Err(CkanError::search(format!("fq clause {clause:?} is not field:value")));
        };
        match Field::parse(field) {
            Some(f) => filters.push((f, value.to_owned())),
            None if matches!(field, "dataset_type" | "type") && value == "dataset" => {}
            None if matches!(field, "+state" | "state") && value == "active" => {}
            None => {
                return Err(CkanError::search(format!(
                    "cannot filter on {field:?} (use organization, tags, license_id, res_format or groups)"
                )))
            }
        }
    }
    let sort = Sort::parse(&p.str("sort").unwrap_or_default()).map_err(CkanError::search)?;
    let mut facets = Vec::new();
    let mut names = p.list("facet.field")?;
    names.extend(p.list("facet_field")?);
    for name in names {
        facets.push(Field::parse(&name).ok_or_else(|| CkanError::search(format!("cannot facet on {name:?}")))?);
    }
    let facet_limit = match p.str("facet.limit").map(|s| s.trim().parse::<i64>()) {
        None => 50,
        Some(Ok(n)) if n < 0 => usize::MAX,
        Some(Ok(n)) => usize::try_from(n).unwrap_or(usize::MAX),
        Some(Err(_)) => return Err(CkanError::validation("facet.limit must be a whole number")),
    };
    Ok(Query {
        text: text.join(" "),
        filters,
        sort,
        start: p.usize("start", 0)?,
        rows: p.usize("rows", 10)?.min(MAX_ROWS),
        facets,
        facet_limit,
    })
}

/// Splits a Solr-ish query into clauses: whitespace-separated, `"quoted values"` kept whole,
/// `AND` and leading `+` dropped.
fn clauses(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out.into_iter()
        .map(|c| c.trim_start_matches('+').to_owned())
        .filter(|c| !c.is_empty() && c != "AND" && c != "&&")
        .collect()
}

fn organization(slug: &str, title: &str, count: usize) -> Value {
    json!({
        "id": slug,
        "name": slug,
        "title": title,
        "display_name": title,
        "description": "",
        "image_url": "",
        "type": "organization",
        "is_organization": true,
        "state": "active",
        "approval_status": "approved",
        "package_count": count,
    })
}

/// The CKAN package dict of one dataset version.
pub(crate) fn package(base: &str, d: &Detail) -> Value {
    let m = &d.manifest;
    let b = m.body();
    let md = &b.metadata;
    let id = m.id().to_string();
    let name = ckan_name(m);
    let created = iso_time(b.created);
    let org_slug = slugify(&md.organisation);
    let org = (!org_slug.is_empty()).then(|| organization(&org_slug, &md.organisation, 0));
    let resources: Vec<Value> = d
        .entries()
        .iter()
        .enumerate()
        .map(|(i, e)| {
            json!({
                "id": e.id.to_string(),
                "package_id": id,
                "name": e.path.as_str(),
                "description": "",
                "url": download_url(base, &m.id(), e.path.as_str()),
                "format": format_of(e),
                "mimetype": e.media_type,
                "size": e.size,
                "hash": e.id.to_string(),
                "hash_algorithm": "blake3",
                "position": i,
                "state": "active",
                "created": created,
                "last_modified": created,
                "url_type": Value::Null,
            })
        })
        .collect();
    let tags: Vec<Value> = md
        .keywords
        .iter()
        .map(|k| json!({"name": k, "display_name": k, "state": "active", "vocabulary_id": null}))
        .collect();
    let groups: Vec<Value> =
        md.themes.iter().map(|t| json!({"name": slugify(t), "title": t, "display_name": t})).collect();
    let mut extras = vec![
        json!({"key": "lien_name", "value": m.name()}),
        json!({"key": "lien_publisher", "value": b.publisher.to_string()}),
        json!({"key": "lien_manifest_id", "value": id}),
        json!({"key": "lien_get", "value": format!("lien get {} -o ./{}", m.name(), b.slug)}),
    ];
    for (key, value) in [("spatial_text", &md.spatial), ("temporal", &md.temporal)] {
        if !value.is_empty() {
            extras.push(json!({"key": key, "value": value}));
        }
    }
    if !md.languages.is_empty() {
        extras.push(json!({"key": "language", "value": md.languages.join(",")}));
    }
    let (maintainer, email) = if md.contact.contains('@') && !md.contact.contains(' ') {
        (Value::Null, json!(md.contact))
    } else {
        (json!(md.contact), Value::Null)
    };
    let license_url = if md.license.starts_with("http://") || md.license.starts_with("https://") {
        json!(md.license)
    } else {
        Value::Null
    };
    json!({
        "id": id,
        "name": name,
        "title": md.title,
        "notes": md.description,
        "url": format!("{base}/dataset/{name}"),
        "version": b.version.to_string(),
        "type": "dataset",
        "state": "active",
        "private": false,
        "isopen": !md.license.is_empty(),
        "metadata_created": created.clone(),
        "metadata_modified": created,
        "author": md.organisation,
        "author_email": Value::Null,
        "maintainer": maintainer,
        "maintainer_email": email,
        "license_id": md.license,
        "license_title": md.license,
        "license_url": license_url,
        "organization": org,
        "owner_org": org.as_ref().map(|_| org_slug.clone()),
        "tags": tags,
        "num_tags": md.keywords.len(),
        "groups": groups,
        "extras": extras,
        "resources": resources,
        "num_resources": d.entries().len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_solr_clauses() {
        assert_eq!(
            clauses(r#"organization:gso +tags:"dân số" AND license_id:CC-BY-4.0"#),
            vec!["organization:gso", "tags:dân số", "license_id:CC-BY-4.0"]
        );
        assert!(clauses("  ").is_empty());
    }
}
