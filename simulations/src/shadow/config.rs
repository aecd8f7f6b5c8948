//! `shadow.yaml` as typed values: what the export writes and what `shadow-summary` and the tests
//! read back. Only the keys the export uses (Shadow 3's configuration format).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowConfig {
    /// `general:`.
    pub general: General,
    /// `network:`.
    pub network: Network,
    /// `experimental:`.
    pub experimental: Experimental,
    /// `hosts:` by host name.
    pub hosts: BTreeMap<String, HostConfig>,
}

/// `general:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct General {
    /// Simulated time at which Shadow stops, e.g. `"245s"`.
    pub stop_time: String,
    /// Shadow's seed.
    pub seed: u64,
    /// Advance the clock on non-blocking system calls (busy loops cannot hang the run).
    pub model_unblocked_syscall_latency: bool,
    /// Folder copied into `shadow.data` before the run (per-host homes and the dataset).
    pub template_directory: String,
}

/// `network:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// `graph:`.
    pub graph: Graph,
}

/// `network.graph:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// `gml`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `file:`.
    pub file: GraphFile,
}

/// `network.graph.file:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphFile {
    /// Path of the GML file, relative to `shadow.yaml`.
    pub path: String,
}

/// `experimental:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experimental {
    /// Socket send buffer, e.g. `"4 MiB"`.
    pub socket_send_buffer: String,
    /// Socket receive buffer.
    pub socket_recv_buffer: String,
}

/// One host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostConfig {
    /// Vertex of the network graph.
    pub network_node_id: usize,
    /// Its fixed IP address.
    pub ip_addr: String,
    /// What it runs; each process's working folder is `shadow.data/hosts/<host>/`.
    pub processes: Vec<Process>,
}

/// One process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    /// The executable.
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Simulated start time, e.g. `"1010ms"`.
    pub start_time: String,
    /// What Shadow expects at the end: `running` or `{exited: 0}`.
    pub expected_final_state: FinalState,
}

/// `expected_final_state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FinalState {
    /// `running`.
    Named(String),
    /// `{exited: CODE}`.
    Exited {
        /// The exit code.
        exited: i32,
    },
}

impl Process {
    /// The start time in milliseconds, when it is written as `<N>ms` (as the export writes it).
    pub fn start_ms(&self) -> Option<u64> {
        self.start_time.strip_suffix("ms").and_then(|n| n.parse().ok())
    }
}
