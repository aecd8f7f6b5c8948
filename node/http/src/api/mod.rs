//! The API listener's own routes: the JSON endpoints under `/v1` ([`v1`], [`trust`]), the
//! gateway under `/d` (served by the portal listener too), `/metrics` and the OpenAPI document,
//! with the JSON bodies they share with the CLI ([`types`]).

pub(crate) mod gateway;
pub(crate) mod metrics;
pub(crate) mod openapi;
pub mod trust;
pub mod types;
pub(crate) mod v1;
