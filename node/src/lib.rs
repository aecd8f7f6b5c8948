//! `lien-node`: a Lien node as a library.
//!
//! The daemon (`lien daemon`), the CLI's temporary node, the simulator and the integration tests
//! all run this crate. A [`Node`] owns a redb [`store::Store`], a libp2p swarm in its own task
//! ([`network`]), and offers the operations users need: publish, resolve, fetch, search, and
//! the management of the datasets held here. It knows nothing of HTTP: the API and the portal
//! are the `lien-http` crate, a client of this one.
//!
//! - [`config`]: typed, layered configuration with an embedded default;
//! - [`keyfile`]: node and publisher key files (0600);
//! - [`store`]: all persistent metadata in one redb file;
//! - [`network`]: the behaviour, the transfer codec and the task that owns the Swarm;
//! - [`publish`], [`fetch`], [`server`]: the data paths;
//! - [`catalog`]: the in-memory, ranked catalog index every search answers from;
//! - [`local`]: the datasets held here (sizes, removal, verification);
//! - [`home`]: the files of a home folder (`lien init`, the API token, `daemon.json`);
//! - [`node`]: the running node composing its parts (serving in [`server`], fetching in
//!   [`fetch`], the catalog in [`catalog`]), each holding only what it uses; `tasks.rs`: every
//!   task it spawns, stopped and awaited by [`Node::shutdown`].

pub mod audit;
/// The bulk data channel: chunk traffic on TLS 1.3 beside the libp2p connection.
pub mod bulk;
pub mod catalog;
mod catch_up;
pub mod chunks;
pub mod config;
mod events;
pub mod fetch;
pub mod hashing;
pub mod home;
pub mod keyfile;
pub mod local;
pub mod network;
pub mod node;
pub mod output;
pub mod publish;
pub mod seeding;
pub mod server;
pub mod stats;
pub mod store;
pub mod target;
mod tasks;
pub mod trust;
pub mod watch;

pub use config::{ConfigFile, NodeConfig};
pub use fetch::{FetchOptions, FetchProgress, FetchReport};
pub use node::{Node, NodeError};
pub use publish::PublishRequest;
pub use target::Target;
