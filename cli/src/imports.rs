//! Metadata brought in from other catalogs' formats: a Frictionless `datapackage.json` next to
//! the files of `lien publish`, and a CKAN package (`package_show` output) for `lien import ckan`.
//!
//! Both only fill a [`PublishBody`]; the daemon validates the metadata as for any publish, so a
//! field over its limit is reported by name there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use lien_http::api::types::PublishBody;
use serde::Deserialize;
use serde_json::Value;

/// File name of a Frictionless Data package descriptor.
pub const DATAPACKAGE: &str = "datapackage.json";

/// The parts of a Frictionless `datapackage.json` that map onto Lien metadata.
#[derive(Debug, Default, Deserialize)]
pub struct DataPackage {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    licenses: Vec<DpLicense>,
    #[serde(default)]
    contributors: Vec<DpContributor>,
    #[serde(default)]
    spatial: Option<String>,
    #[serde(default)]
    temporal: Option<Value>,
    #[serde(default)]
    languages: Vec<String>,
    #[serde(default)]
    themes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct DpLicense {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    title: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct DpContributor {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    organization: Option<String>,
}

/// Reads `DIR/datapackage.json` when `path` is a folder holding one.
pub fn read_datapackage(path: &Path) -> Result<Option<DataPackage>> {
    let file = path.join(DATAPACKAGE);
    if !path.is_dir() || !file.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let dp = serde_json::from_str(&text).with_context(|| format!("{} is not a valid data package", file.display()))?;
    Ok(Some(dp))
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl DataPackage {
    /// Fills every field of `body` that the command line left empty.
    pub fn fill(self, body: &mut PublishBody) {
        if body.name.is_empty() {
            body.name = non_empty(self.name).unwrap_or_default();
        }
        if body.title.is_empty() {
            body.title = non_empty(self.title).unwrap_or_default();
        }
        if body.description.is_empty() {
            body.description = non_empty(self.description).unwrap_or_default();
        }
        if body.keywords.is_empty() {
            body.keywords = self.keywords.into_iter().filter(|k| !k.trim().is_empty()).collect();
        }
        if body.license.is_empty() {
            if let Some(l) = self.licenses.into_iter().next() {
                body.license = non_empty(l.name).or(non_empty(l.path)).or(non_empty(l.title)).unwrap_or_default();
            }
        }
        let role = |c: &DpContributor, r: &[&str]| c.role.as_deref().is_some_and(|x| r.contains(&x));
        if body.organisation.is_empty() {
            let publisher = self.contributors.iter().find(|c| role(c, &["publisher"]));
            body.organisation = publisher
                .and_then(|c| non_empty(c.title.clone()))
                .or_else(|| self.contributors.iter().find_map(|c| non_empty(c.organization.clone())))
                .unwrap_or_default();
        }
        if body.contact.is_empty() {
            let contact = self
                .contributors
                .iter()
                .find(|c| role(c, &["maintainer", "contact", "publisher"]) && c.email.is_some())
                .or_else(|| self.contributors.iter().find(|c| c.email.is_some()));
            body.contact = contact.and_then(|c| non_empty(c.email.clone())).unwrap_or_default();
        }
        if body.spatial.is_empty() {
            body.spatial = non_empty(self.spatial).unwrap_or_default();
        }
        if body.temporal.is_empty() {
            body.temporal = match self.temporal {
                Some(Value::String(s)) => s,
                Some(Value::Object(o)) => {
                    let get = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                    let (s, e) = (get("start"), get("end"));
                    if s.is_empty() && e.is_empty() {
                        String::new()
                    } else {
                        format!("{s}/{e}")
                    }
                }
                _ => String::new(),
            };
        }
        if body.languages.is_empty() {
            body.languages = self.languages;
        }
        if body.themes.is_empty() {
            body.themes = self.themes;
        }
    }
}

/// A CKAN package as `package_show` returns it (alone, or inside `{"success", "result"}`).
#[derive(Debug, Deserialize)]
pub struct CkanPackage {
    name: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    license_id: Option<String>,
    #[serde(default)]
    license_url: Option<String>,
    #[serde(default)]
    license_title: Option<String>,
    #[serde(default)]
    tags: Vec<CkanNamed>,
    #[serde(default)]
    groups: Vec<CkanNamed>,
    #[serde(default)]
    organization: Option<CkanNamed>,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    author_email: Option<String>,
    #[serde(default)]
    maintainer: Option<String>,
    #[serde(default)]
    maintainer_email: Option<String>,
    #[serde(default)]
    extras: Vec<CkanExtra>,
    #[serde(default)]
    resources: Vec<CkanResource>,
}

#[derive(Debug, Deserialize)]
struct CkanNamed {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

impl CkanNamed {
    fn label(&self) -> Option<String> {
        non_empty(self.title.clone()).or(non_empty(self.display_name.clone())).or(non_empty(self.name.clone()))
    }
}

#[derive(Debug, Deserialize)]
struct CkanExtra {
    key: String,
    #[serde(default)]
    value: Value,
}

#[derive(Debug, Deserialize)]
struct CkanResource {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

/// Reads a CKAN package file.
pub fn read_ckan_package(file: &Path) -> Result<CkanPackage> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let value: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    let package = match value {
        Value::Object(mut o) if o.contains_key("success") && (o.contains_key("result") || o.contains_key("error")) => {
            if o.get("success") != Some(&Value::Bool(true)) {
                bail!("{} holds a failed CKAN answer (success is not true)", file.display());
            }
            o.remove("result").unwrap_or(Value::Null)
        }
        v => v,
    };
    serde_json::from_value(package)
        .with_context(|| format!("{} is not a CKAN package (package_show result)", file.display()))
}

/// Percent-decodes a URL path segment (invalid escapes are kept as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The file name a resource's URL ends in (`.../download/table.csv?x=1` → `table.csv`).
fn url_file_name(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    let name = percent_decode(last);
    (!name.is_empty() && !name.contains(':')).then_some(name)
}

impl CkanPackage {
    /// The publish request for this package with its files in `staging` (relative to it).
    pub fn to_body(&self, staging: PathBuf) -> PublishBody {
        let extra = |keys: &[&str]| {
            self.extras.iter().find(|e| keys.contains(&e.key.as_str())).and_then(|e| match &e.value {
                Value::String(s) => non_empty(Some(s.clone())),
                Value::Null => None,
                v => Some(v.to_string()),
            })
        };
        let temporal = extra(&["temporal", "temporal_coverage"]).unwrap_or_else(|| {
            match (
                extra(&["temporal_start", "temporal_coverage_from"]),
                extra(&["temporal_end", "temporal_coverage_to"]),
            ) {
                (None, None) => String::new(),
                (s, e) => format!("{}/{}", s.unwrap_or_default(), e.unwrap_or_default()),
            }
        });
        let languages = extra(&["language", "languages"])
            .map(|l| l.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        PublishBody {
            path: staging,
            name: self.name.trim().to_ascii_lowercase(),
            title: non_empty(self.title.clone()).unwrap_or_else(|| self.name.clone()),
            description: non_empty(self.notes.clone()).unwrap_or_default(),
            license: non_empty(self.license_id.clone())
                .or(non_empty(self.license_url.clone()))
                .or(non_empty(self.license_title.clone()))
                .unwrap_or_default(),
            keywords: self.tags.iter().filter_map(|t| non_empty(t.name.clone()).or(t.label())).collect(),
            themes: self.groups.iter().filter_map(CkanNamed::label).collect(),
            organisation: self
                .organization
                .as_ref()
                .and_then(CkanNamed::label)
                .or(non_empty(self.author.clone()))
                .unwrap_or_default(),
            spatial: extra(&["spatial_text", "spatial"]).unwrap_or_default(),
            temporal,
            contact: non_empty(self.maintainer_email.clone())
                .or(non_empty(self.author_email.clone()))
                .or(non_empty(self.maintainer.clone()))
                .unwrap_or_default(),
            languages,
            in_place: false,
            chunk_size: None,
            ..PublishBody::default()
        }
    }

    /// For each resource, the file in `data` holding it: found by the name its URL ends in, then
    /// by the resource's name, then by its id. Fails naming every resource not found.
    pub fn resource_files(&self, data: &Path) -> Result<BTreeMap<String, PathBuf>> {
        if self.resources.is_empty() {
            bail!("the CKAN package {} has no resources to import", self.name);
        }
        let mut found = BTreeMap::new();
        let mut missing = Vec::new();
        for (i, r) in self.resources.iter().enumerate() {
            let candidates: Vec<String> =
                [r.url.as_deref().and_then(url_file_name), non_empty(r.name.clone()), non_empty(r.id.clone())]
                    .into_iter()
                    .flatten()
                    .filter(|c| !c.contains('/') && !c.contains('\\') && c != "." && c != "..")
                    .collect();
            match candidates.iter().find(|c| data.join(c).is_file()) {
                Some(c) => {
                    if found.insert(c.clone(), data.join(c)).is_some() {
                        bail!("two resources of {} map to the same file {c}", self.name);
                    }
                }
                None => missing.push(format!(
                    "resource {} ({}) : looked for {}",
                    i + 1,
                    r.name.as_deref().unwrap_or("unnamed"),
                    if candidates.is_empty() { "nothing usable".into() } else { candidates.join(", ") }
                )),
            }
        }
        if !missing.is_empty() {
            bail!("resources not found in {}: {}", data.display(), missing.join("; "));
        }
        Ok(found)
    }
}

/// Puts the resource files into a fresh folder `dir` (hard links, else copies).
pub fn stage(files: &BTreeMap<String, PathBuf>, dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, src) in files {
        let dst = dir.join(name);
        if std::fs::hard_link(src, &dst).is_err() {
            std::fs::copy(src, &dst).with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn url_names() {
        assert_eq!(
            url_file_name("https://x.gov/dataset/1/resource/2/download/bang%201.csv?a=b").unwrap(),
            "bang 1.csv"
        );
        assert_eq!(url_file_name("table.csv").unwrap(), "table.csv");
        assert_eq!(percent_decode("a%zz%41%"), "a%zzA%");
        assert_eq!(percent_decode("%C3%A2"), "â");
    }

    #[test]
    fn datapackage_fills_only_what_is_missing() {
        let dp: DataPackage = serde_json::from_str(
            r#"{"name":"gdp","title":"GDP","keywords":["economy"],"licenses":[{"name":"ODC-BY-1.0"}],
                "contributors":[{"title":"Ministry of Finance","role":"publisher","email":"data@mof.gov.vn"}],
                "temporal":{"start":"2010","end":"2024"},"resources":[{"path":"gdp.csv"}]}"#,
        )
        .unwrap();
        let mut body = PublishBody {
            path: "/x".into(),
            name: String::new(),
            title: "Given title".into(),
            description: String::new(),
            license: String::new(),
            keywords: vec![],
            themes: vec![],
            organisation: String::new(),
            spatial: String::new(),
            temporal: String::new(),
            contact: String::new(),
            languages: vec![],
            in_place: false,
            chunk_size: None,
            ..PublishBody::default()
        };
        dp.fill(&mut body);
        assert_eq!(body.name, "gdp");
        assert_eq!(body.title, "Given title");
        assert_eq!(body.license, "ODC-BY-1.0");
        assert_eq!(body.organisation, "Ministry of Finance");
        assert_eq!(body.contact, "data@mof.gov.vn");
        assert_eq!(body.temporal, "2010/2024");
        assert_eq!(body.keywords, ["economy"]);
    }
}
