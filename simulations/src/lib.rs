//! `lien-sim`: topology simulations of Lien networks.
//!
//! One scenario format ([`scenario`]) drives three engines: the deterministic discrete-event
//! model ([`model`]) for 10,000+ nodes, real `lien-node` nodes in one process ([`real`]), and an
//! export to the Shadow simulator ([`shadow`]). [`output`] writes events, CSVs, the summary and
//! plots; [`checks`] holds the closed-form results the model is tested against. See
//! `docs/simulation.md`.

pub mod calibrate;
pub mod checks;
pub mod dataset;
pub mod error;
pub mod model;
pub mod output;
pub mod real;
pub mod report;
pub mod scenario;
pub mod shadow;
pub mod simnet;
pub mod topology;
