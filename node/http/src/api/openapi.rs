//! `GET /v1/openapi.json`: an OpenAPI 3.1 description of the API, written by hand next to the
//! handlers it describes (a test checks that every route is in it).

use axum::Json;
use serde_json::{json, Value};

fn err() -> Value {
    json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok(schema: Value) -> Value {
    json!({"description": "ok", "content": {"application/json": {"schema": schema}}})
}

fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "description": "manifest id"})
}

fn progress_param() -> Value {
    json!({"name": "progress", "in": "query", "schema": {"type": "boolean"},
        "description": "stream NDJSON lines: {\"progress\":{done,total,peers}}..., then {\"result\":...} or {\"error\":{status,error}}"})
}

/// A read that needs the token (it shows paths, addresses or the audit log).
fn private_read(summary: &str, params: Value, result: Value) -> Value {
    json!({"summary": summary, "security": [{"bearer": []}], "parameters": params,
        "responses": {"200": ok(result), "401": err()}})
}

fn mutating(summary: &str, params: Value, body: Option<&str>, result: Value) -> Value {
    let mut op = json!({
        "summary": summary, "security": [{"bearer": []}], "parameters": params,
        "responses": {"200": ok(result), "400": err(), "401": err(), "404": err()}
    });
    if let (Some(schema), Some(map)) = (body, op.as_object_mut()) {
        map.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}}),
        );
    }
    op
}

/// The document.
pub(crate) fn spec() -> Value {
    let obj = json!({"type": "object"});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Lien node API", "version": "1",
            "description": "Local API of a Lien node. Mutating endpoints, /v1/local, /v1/peers and /v1/audit need `Authorization: Bearer <HOME/api.token>`. A request for a host name the listener does not answer gets 421. Errors are JSON: {\"error\":{\"code\",\"message\"}}."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
                "PublishBody": {"type": "object", "required": ["path", "name", "title"], "properties": {
                    "path": {"type": "string", "description": "absolute path on the daemon's machine"},
                    "name": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
                    "license": {"type": "string"}, "keywords": {"type": "array", "items": {"type": "string"}},
                    "in_place": {"type": "boolean"}, "chunk_size": {"type": "integer"}}},
                "GetBody": {"type": "object", "required": ["target", "dir"], "properties": {
                    "target": {"type": "string", "description": "manifest id or PUBLISHER/NAME"},
                    "dir": {"type": "string", "description": "absolute folder"},
                    "timeout_secs": {"type": "integer"}}},
                "ConnectBody": {"type": "object", "required": ["addr"], "properties": {"addr": {"type": "string"}}}
            }
        },
        "paths": {
            "/v1/status": {"get": {"summary": "node status", "responses": {"200": ok(obj.clone())}}},
            "/v1/peers": {"get": private_read("connected peers and their addresses", json!([]), json!({"type": "array"}))},
            "/v1/search": {"get": {"summary": "search the catalog",
                "parameters": [{"name": "q", "in": "query", "schema": {"type": "string"}},
                               {"name": "limit", "in": "query", "schema": {"type": "integer"}}],
                "responses": {"200": ok(json!({"type": "array"})), "400": err()}}},
            "/v1/datasets/{id}": {"get": {"summary": "a manifest", "parameters": [id_param()],
                "responses": {"200": ok(obj.clone()), "400": err(), "404": err()}}},
            "/v1/names/{publisher}/{slug}": {"get": {"summary": "resolve a name to its newest manifest id",
                "parameters": [{"name": "publisher", "in": "path", "required": true, "schema": {"type": "string"}},
                               {"name": "slug", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": ok(obj.clone()), "400": err(), "404": err()}}},
            "/v1/local": {"get": private_read("datasets held locally, with their folders", json!([]), json!({"type": "array"}))},
            "/v1/publish": {"post": mutating("publish a file or folder", json!([progress_param()]), Some("PublishBody"), obj.clone())},
            "/v1/get": {"post": mutating("fetch a dataset into a folder", json!([progress_param()]), Some("GetBody"), obj.clone())},
            "/v1/connect": {"post": mutating("connect to a peer", json!([]), Some("ConnectBody"), obj.clone())},
            "/v1/local/{id}/pin": {"post": mutating("keep a local dataset", json!([id_param()]), None, obj.clone())},
            "/v1/local/{id}/unpin": {"post": mutating("release a local dataset", json!([id_param()]), None, obj.clone())},
            "/v1/local/{id}": {"delete": mutating("remove a local dataset", json!([id_param()]), None, obj.clone())},
            "/v1/local/{id}/verify": {"post": mutating("re-hash a local dataset", json!([id_param()]), None, obj.clone())},
            "/v1/openapi.json": {"get": {"summary": "this document", "responses": {"200": ok(obj.clone())}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                "responses": {"200": {"description": "ok", "content": {"text/plain": {}}}}}},
            "/d/{id}/": {"get": {"summary": "list a dataset's files (JSON, or HTML for browsers)", "parameters": [id_param()],
                "responses": {"200": ok(obj.clone()), "400": err(), "403": err(), "404": err()}}},
            "/d/{id}/{path}": {"get": {"summary": "download a file (Range, ETag = file id)",
                "parameters": [id_param(), {"name": "path", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the file"}, "206": {"description": "a byte range"},
                    "304": {"description": "not modified"}, "400": err(), "403": err(), "404": err(), "416": err()}}}
        }
    })
}

/// The trust and audit paths, kept apart from the big literal above.
fn trust_paths() -> Value {
    let obj = json!({"type": "object"});
    let key_param = json!({"name": "key", "in": "path", "required": true, "schema": {"type": "string"}});
    json!({
        "/v1/trust": {
            "get": {"summary": "the trust store: roots, trusted publishers, this node's keys", "responses": {"200": ok(obj.clone())}},
            "post": mutating("trust a key as a root or a publisher", json!([]), Some("TrustKeyBody"), obj.clone())
        },
        "/v1/trust/{key}": {"delete": mutating("stop trusting a key added with POST /v1/trust", json!([key_param]), None, obj.clone())},
        "/v1/trust/records": {"post": mutating("import and gossip a delegation or revocation (hex)", json!([]), Some("ImportBody"), obj.clone())},
        "/v1/delegate": {"post": mutating("sign and gossip a delegation from this node's publisher key", json!([]), Some("DelegateBody"), obj.clone())},
        "/v1/revoke": {"post": mutating("sign and gossip a revocation", json!([]), Some("RevokeBody"), obj.clone())},
        "/v1/audit": {"get": private_read("verify the audit log and show its newest entries",
            json!([{"name": "limit", "in": "query", "schema": {"type": "integer"}}]), obj)}
    })
}

fn trust_schemas() -> Value {
    let s = |props: Value, required: Value| json!({"type": "object", "required": required, "properties": props});
    json!({
        "TrustKeyBody": s(json!({"key": {"type": "string"}, "kind": {"type": "string", "enum": ["root", "publisher"]}}), json!(["key", "kind"])),
        "ImportBody": s(json!({"record": {"type": "string", "description": "hex of the record's canonical CBOR"}}), json!(["record"])),
        "DelegateBody": s(json!({"to": {"type": "string"}, "organisation": {"type": "string"}, "prefix": {"type": "string"},
            "days": {"type": "integer"}, "can_delegate": {"type": "boolean"}}), json!(["to", "organisation"])),
        "RevokeBody": s(json!({"key": {"type": "string"}, "reason": {"type": "string"}}), json!(["key"]))
    })
}

/// `GET /v1/openapi.json`
pub(crate) async fn document() -> Json<Value> {
    Json(full_spec())
}

/// The whole document: the main literal plus the trust and audit parts.
pub(crate) fn full_spec() -> Value {
    let mut doc = spec();
    if let (Some(paths), Value::Object(extra)) = (doc["paths"].as_object_mut(), trust_paths()) {
        paths.extend(extra);
    }
    if let (Some(schemas), Value::Object(extra)) = (doc["components"]["schemas"].as_object_mut(), trust_schemas()) {
        schemas.extend(extra);
    }
    doc
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_described() {
        let spec = super::full_spec();
        let paths = spec["paths"].as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
        let source = include_str!("../router.rs");
        for line in source.lines().filter(|l| l.trim_start().starts_with(".route(\"")) {
            let route = line.split('"').nth(1).unwrap_or_default().replace("{*path}", "{path}");
            if route == "/d/{id}" {
                continue; // a redirect to /d/{id}/
            }
            assert!(paths.contains(&route), "{route} is missing from openapi.json");
        }
    }
}
