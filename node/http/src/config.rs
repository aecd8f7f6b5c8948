//! The `[api]` table of `lien.toml`: listen addresses, request slots, timeouts, body limit and
//! the portal's settings, validated once.

use std::net::SocketAddr;

use lien_node::ConfigFile;
use serde::{Deserialize, Serialize};

use crate::listen::Timeouts;

/// The `[api]` table of `lien.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on (loopback by default).
    pub listen: SocketAddr,
    /// Requests served at once on `listen`; more are answered 503 at once.
    pub max_concurrent_requests: usize,
    /// Requests served at once on `portal_listen` (a limit of its own, so portal users never
    /// take the API's slots); more are answered 503 at once.
    pub portal_max_concurrent_requests: usize,
    /// Seconds from the first byte of a request to the end of its head (both listeners).
    pub header_read_timeout_secs: u64,
    /// Seconds a connection may wait on its client with no byte moving (between requests, while
    /// a request body comes in, while the client does not read the response) before it is
    /// closed (both listeners).
    pub idle_timeout_secs: u64,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Where to serve the read-only portal alone (web pages, CKAN API, DCAT, gateway), e.g.
    /// `0.0.0.0:8080`; none by default. The portal is always served on `listen` as well.
    pub portal_listen: Option<SocketAddr>,
    /// Public base URL of the portal (`https://data.example.gov.vn`), used in exported links;
    /// by default links are built from the request's `Host`.
    pub public_url: Option<String>,
    /// Title of the catalog shown on the web page and in exports.
    pub portal_title: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 4041)),
            max_concurrent_requests: 64,
            portal_max_concurrent_requests: 64,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_body_bytes: 64 * 1024,
            portal_listen: None,
            public_url: None,
            portal_title: None,
        }
    }
}

/// Why the `[api]` table was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ApiConfigError {
    /// The `[api]` table does not parse.
    #[error("invalid [api] table in {path}: {message}")]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        message: String,
    },
    /// A value out of range.
    #[error("invalid config value for api.{0}: must be at least 1")]
    Invalid(&'static str),
    /// `public_url` is not a plain http(s) URL.
    #[error("invalid config value for api.public_url: {0:?} is not an http:// or https:// URL")]
    BadUrl(String),
}

impl ApiConfig {
    /// Types and validates the `[api]` table of a `lien.toml` read once by
    /// [`lien_node::ConfigFile::load`] (defaults when the table is missing).
    pub fn from_file(file: &ConfigFile) -> Result<Self, ApiConfigError> {
        let config: ApiConfig = file
            .api
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| ApiConfigError::Parse { path: file.path.clone(), message: e.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses the `[api]` table out of the text of a `lien.toml` (other tables are the node's).
    pub fn parse(text: &str) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            api: ApiConfig,
        }
        toml::from_str::<File>(text).map(|f| f.api).map_err(|e| e.to_string())
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), ApiConfigError> {
        if self.max_concurrent_requests == 0 {
            return Err(ApiConfigError::Invalid("max_concurrent_requests"));
        }
        if self.portal_max_concurrent_requests == 0 {
            return Err(ApiConfigError::Invalid("portal_max_concurrent_requests"));
        }
        if self.header_read_timeout_secs == 0 {
            return Err(ApiConfigError::Invalid("header_read_timeout_secs"));
        }
        if self.idle_timeout_secs == 0 {
            return Err(ApiConfigError::Invalid("idle_timeout_secs"));
        }
        if self.max_body_bytes == 0 {
            return Err(ApiConfigError::Invalid("max_body_bytes"));
        }
        if let Some(url) = &self.public_url {
            let ok = (url.starts_with("http://") || url.starts_with("https://"))
                && !url.chars().any(|c| c.is_whitespace() || c.is_control() || "<>\"'{}|^`\\".contains(c));
            if !ok {
                return Err(ApiConfigError::BadUrl(url.clone()));
            }
        }
        Ok(())
    }

    /// The connection timeouts of both listeners.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            header_read: std::time::Duration::from_secs(self.header_read_timeout_secs),
            idle: std::time::Duration::from_secs(self.idle_timeout_secs),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn api_table_of_the_embedded_default_parses() {
        let c = ApiConfig::parse(lien_node::config::DEFAULT_CONFIG_TOML).unwrap();
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 4041)));
        assert!(c.validate().is_ok());
        assert!(ApiConfig::parse("[api]\nlisten = \"nope\"\n").is_err());
        assert!(ApiConfig::parse("[api]\nlistne = \"127.0.0.1:1\"\n").unwrap_err().contains("unknown field"));
        assert!(ApiConfig::parse("[node]\nnetwork = \"x\"\n").is_ok());
    }

    #[test]
    fn the_api_table_of_a_file_read_once_is_typed_and_validated() {
        let file = ConfigFile::parse("[api]\nlisten = \"127.0.0.1:9\"\n").unwrap();
        assert_eq!(ApiConfig::from_file(&file).unwrap().listen, SocketAddr::from(([127, 0, 0, 1], 9)));
        let file = ConfigFile::parse("[api]\nmax_body_bytes = 0\n").unwrap();
        assert!(matches!(ApiConfig::from_file(&file), Err(ApiConfigError::Invalid("max_body_bytes"))));
        let file = ConfigFile::parse("[api]\nlistne = \"127.0.0.1:9\"\n").unwrap();
        assert!(ApiConfig::from_file(&file).unwrap_err().to_string().contains("unknown field"));
        assert!(ApiConfig::from_file(&ConfigFile::default()).is_ok());
    }
}
