//! `GET /metrics`: the node's counters in the Prometheus text format (version 0.0.4).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::ApiState;

/// `GET /metrics`
pub(crate) async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let peers = state.node.peers().await.map(|p| p.len()).unwrap_or(0);
    let stats = state.node.stats();
    let usage = state.node.usage().await?;
    let (store_bytes, data_bytes, catalog, locals) =
        (usage.store_bytes, usage.data_bytes, usage.catalog, usage.datasets);
    let rows: [(&str, &str, &str, u64); 15] = [
        ("lien_peers", "gauge", "Connected peers.", peers as u64),
        ("lien_bytes_in_total", "counter", "Chunk bytes fetched from peers.", stats.fetched.values().sum()),
        ("lien_bytes_out_total", "counter", "Chunk bytes served to peers.", stats.served.values().sum()),
        ("lien_chunks_fetched_total", "counter", "Chunks fetched and verified.", stats.chunks_fetched),
        ("lien_chunks_served_total", "counter", "Chunks served to peers.", stats.chunks_served),
        ("lien_chunks_rejected_total", "counter", "Chunks that failed verification.", stats.chunks_rejected),
        ("lien_bulk_bytes_in_total", "counter", "Chunk bytes fetched over the bulk channel.", stats.bulk_fetched),
        ("lien_bulk_bytes_out_total", "counter", "Chunk bytes served over the bulk channel.", stats.bulk_served),
        ("lien_gossip_accepted_total", "counter", "Gossiped manifests accepted.", stats.gossip_accepted),
        ("lien_gossip_rejected_total", "counter", "Gossiped manifests rejected.", stats.gossip_rejected),
        (
            "lien_fetches_active",
            "gauge",
            "Fetches running for API clients and the gateway.",
            state.fetches_active.load(Ordering::Relaxed),
        ),
        ("lien_store_bytes", "gauge", "Size of the metadata store file.", store_bytes),
        ("lien_data_bytes", "gauge", "Bytes of dataset files held locally.", data_bytes),
        ("lien_catalog_manifests", "gauge", "Manifests in the catalog.", catalog),
        ("lien_local_datasets", "gauge", "Datasets held locally.", locals as u64),
    ];
    let mut text = String::new();
    for (name, kind, help, value) in rows {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}
