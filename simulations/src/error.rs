//! The typed error of the simulator's output code: files, JSON, plots and the model runs the
//! outputs need (the portal baseline).

use std::path::{Path, PathBuf};

use crate::scenario::ScenarioError;

/// Why results could not be written or host outputs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A JSON document could not be encoded or decoded.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// A YAML document could not be encoded or decoded.
    #[error("{path}: {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_yaml::Error,
    },
    /// A plot could not be drawn.
    #[error("cannot draw {path}: {message}")]
    Plot {
        /// The SVG file.
        path: PathBuf,
        /// What plotters said.
        message: String,
    },
    /// A host selector matched nothing.
    #[error(transparent)]
    Topology(#[from] crate::topology::TopologyError),
    /// The scenario (or a model run it needs) failed.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// Input that does not make sense (named in the message).
    #[error("{0}")]
    Invalid(String),
}

impl OutputError {
    /// An I/O error on `path`, for `map_err`.
    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutputError + '_ {
        move |source| OutputError::Io { path: path.to_path_buf(), source }
    }

    /// A JSON error on `path`, for `map_err`.
    pub fn json(path: &Path) -> impl FnOnce(serde_json::Error) -> OutputError + '_ {
        move |source| OutputError::Json { path: path.to_path_buf(), source }
    }
}
