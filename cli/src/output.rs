//! Printing: data to stdout (text or `--json`), progress to stderr (a bar on a terminal).

use std::io::{IsTerminal, Write};

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use lien_http::api::types::Progress;
use serde::Serialize;

/// Where a command's data goes.
#[derive(Debug)]
pub struct Out {
    /// Print JSON instead of text.
    pub json: bool,
}

impl Out {
    /// An output in text or JSON mode.
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Prints one line of text to stdout. A closed stdout (`lien search | head`) is not an error.
    pub fn line(&self, text: impl AsRef<str>) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}", text.as_ref());
    }

    /// Prints `value` as pretty JSON.
    pub fn json<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(value)?;
        self.line(text);
        Ok(())
    }
}

/// Formats a byte count (`1.5 MiB`).
pub fn bytes(n: u64) -> String {
    HumanBytes(n).to_string()
}

/// A progress display on stderr: a bar when stderr is a terminal, nothing otherwise.
#[derive(Debug)]
pub struct Bar {
    bar: Option<ProgressBar>,
    with_peers: bool,
}

impl Bar {
    /// A bar for hashing (`with_peers = false`) or fetching.
    pub fn new(with_peers: bool) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { bar: None, with_peers };
        }
        let template = if with_peers {
            "{spinner} [{bar:32}] {bytes}/{total_bytes} {bytes_per_sec} {msg} eta {eta}"
        } else {
            "{spinner} hashing [{bar:32}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        };
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        Self { bar: Some(bar), with_peers }
    }

    /// Shows `p`.
    pub fn update(&self, p: Progress) {
        if let Some(bar) = &self.bar {
            bar.set_length(p.total);
            bar.set_position(p.done);
            if self.with_peers {
                bar.set_message(format!("{} peers", p.peers));
            }
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
