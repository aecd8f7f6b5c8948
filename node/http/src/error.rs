//! API errors: every failure is an HTTP status with a JSON body naming what was wrong.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use lien_node::fetch::FetchError;
use lien_node::local::LocalError;
use lien_node::publish::PublishError;
use lien_node::store::StoreError;
use lien_node::trust::TrustStoreError;
use lien_node::NodeError;

use crate::api::types::{ErrorBody, ErrorDetail};

/// A failed API request.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The machine-readable code.
    pub code: &'static str,
    /// One human line.
    pub message: String,
}

impl ApiError {
    /// An error with this status and message; the code follows from the status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let code = match status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::CONFLICT => "conflict",
            StatusCode::MISDIRECTED_REQUEST => "misdirected_request",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
            StatusCode::RANGE_NOT_SATISFIABLE => "range_not_satisfiable",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            StatusCode::GATEWAY_TIMEOUT => "timeout",
            StatusCode::BAD_GATEWAY => "bad_gateway",
            StatusCode::INSUFFICIENT_STORAGE => "insufficient_storage",
            s if s.is_client_error() => "bad_request",
            _ => "internal",
        };
        Self { status, code, message: message.into() }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody { error: self.detail() }
    }

    /// The error detail.
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail { code: self.code.to_owned(), message: self.message.clone() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, "api: {}", self.message);
        }
        (self.status, Json(self.body())).into_response()
    }
}

/// The status that says what happened: the caller's bad input 400, refused access (restricted
/// data, an untrusted publisher) 403, nothing to be found 404, a storage quota 507, peers that
/// sent bad data 502, no peer able to finish 503, anything inside the node 500.
fn status_of(e: &NodeError) -> StatusCode {
    match e {
        NodeError::Invalid(_) => StatusCode::BAD_REQUEST,
        NodeError::NotFound(_) => StatusCode::NOT_FOUND,
        NodeError::Local(l) => match l {
            LocalError::NotHeld(_) | LocalError::NoManifest(_) | LocalError::NoFileList(_) => StatusCode::NOT_FOUND,
            LocalError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        },
        NodeError::Publish(p) => match p {
            PublishError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        },
        NodeError::Fetch(f) => fetch_status(f),
        // A record or key the caller handed in does not verify.
        NodeError::Trust(TrustStoreError::Trust(_)) => StatusCode::BAD_REQUEST,
        NodeError::Home { .. }
        | NodeError::Key(_)
        | NodeError::Store(_)
        | NodeError::Net(_)
        | NodeError::Catalog(_)
        | NodeError::Trust(_)
        | NodeError::Audit(_)
        | NodeError::Record(_)
        | NodeError::Task(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn fetch_status(e: &FetchError) -> StatusCode {
    match e {
        FetchError::NoProviders { .. } => StatusCode::NOT_FOUND,
        FetchError::Stalled { .. } => StatusCode::SERVICE_UNAVAILABLE,
        FetchError::Forbidden { .. } | FetchError::Untrusted { .. } => StatusCode::FORBIDDEN,
        FetchError::QuotaExceeded { .. } => StatusCode::INSUFFICIENT_STORAGE,
        FetchError::Invalid(_)
        | FetchError::FileMismatch(_)
        | FetchError::ChunkList(_)
        | FetchError::ReservedPath(_) => StatusCode::BAD_GATEWAY,
        // The output folder the caller named cannot be written.
        FetchError::Io { .. } => StatusCode::BAD_REQUEST,
        FetchError::Store(_) | FetchError::Net(_) | FetchError::Task(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        Self::new(status_of(&e), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use lien_protocol::ContentId;

    use super::*;

    fn status(e: NodeError) -> StatusCode {
        ApiError::from(e).status
    }

    #[test]
    fn statuses_say_what_happened() {
        let id = ContentId::of(b"dataset");
        assert_eq!(status(NodeError::Invalid("bad name".into())), StatusCode::BAD_REQUEST);
        assert_eq!(status(NodeError::NotFound("no such name".into())), StatusCode::NOT_FOUND);
        assert_eq!(status(LocalError::NotHeld(id).into()), StatusCode::NOT_FOUND);
        assert_eq!(status(FetchError::Forbidden { id }.into()), StatusCode::FORBIDDEN);
        assert_eq!(status(FetchError::Untrusted { id, reason: "unknown".into() }.into()), StatusCode::FORBIDDEN);
        let quota = ApiError::from(NodeError::from(FetchError::QuotaExceeded { need: 2, free: 1 }));
        assert_eq!((quota.status, quota.code), (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage"));
        assert_eq!(status(FetchError::Invalid("bad chunk".into()).into()), StatusCode::BAD_GATEWAY);
        assert_eq!(status(NodeError::Record("cannot sign".into())), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(status(NodeError::Task("panicked".into())), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
