//! The error every Drover JSON API answers with: an HTTP status and the body
//! `{"error": "...", "detail": ...}` (`detail` only when there is one: field-level messages,
//! the parameters a route takes). One type for every router (the Marathon-compatible `/v2`
//! API keeps Marathon's own error bodies); clients decode the same type. With the `axum`
//! feature it is an axum response.
use serde::{Deserialize, Serialize};

/// An API error: a status code and a JSON body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}")]
pub struct ApiError {
    /// The HTTP status (not in the body).
    #[serde(skip, default = "internal_status")]
    pub status: u16,
    /// What went wrong, for a person.
    pub error: String,
    /// Machine-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

fn internal_status() -> u16 {
    500
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: u16, error: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
            detail: None,
        }
    }

    /// A 400: the caller sent something wrong.
    pub fn bad_request(error: impl Into<String>) -> Self {
        Self::new(400, error)
    }

    /// A 404.
    pub fn not_found(error: impl Into<String>) -> Self {
        Self::new(404, error)
    }

    /// A 500: a fault on this side.
    pub fn internal(error: impl Into<String>) -> Self {
        Self::new(500, error)
    }

    /// Adds a machine-readable `detail`.
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let status = axum::http::StatusCode::from_u16(self.status)
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_error_and_detail_only_when_there_is_one() {
        let e = ApiError::bad_request("no such field");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"error": "no such field"})
        );
        let e = e.with_detail(serde_json::json!({"parameters": ["q"]}));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["detail"]["parameters"][0], "q");
        let back: ApiError = serde_json::from_value(v).unwrap();
        assert_eq!(back.error, "no such field");
        assert_eq!(e.status, 400);
    }
}
