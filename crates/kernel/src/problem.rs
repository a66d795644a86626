//! RFC 9457 problem details, mapped once at the HTTP edge.
//!
//! Every error a client can see has a stable `type` URI of the form
//! `https://gureum.dev/problems/<code>` and the same `code` as an extension member, so clients can
//! branch on it without parsing prose.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The base every problem `type` URI starts with.
pub const PROBLEM_TYPE_BASE: &str = "https://gureum.dev/problems/";

/// The media type of a problem response.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// An RFC 9457 problem details object.
///
/// ```
/// use kernel::Problem;
/// let p = Problem::new(404, "account_not_found", "Account not found")
///     .with_detail("no account has id 7");
/// assert_eq!(p.type_uri, "https://gureum.dev/problems/account_not_found");
/// assert_eq!(p.status, 404);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// `https://gureum.dev/problems/<code>`; stable for a given code.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short, human-readable summary that does not change between occurrences.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time and, where useful, what to do next.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
    /// The stable snake_case code (the last segment of `type`).
    pub code: String,
}

impl Problem {
    /// A problem with the given status, stable code and title.
    pub fn new(status: u16, code: &str, title: &str) -> Self {
        Problem {
            type_uri: format!("{PROBLEM_TYPE_BASE}{code}"),
            title: title.to_owned(),
            status,
            detail: None,
            code: code.to_owned(),
        }
    }

    /// The same problem with a detail message.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// 404 `not_found` for a route or resource that does not exist.
    pub fn not_found(code: &str, detail: impl Into<String>) -> Self {
        Problem::new(404, code, "Not found").with_detail(detail)
    }

    /// 503 `unavailable`: the service cannot take requests now; retrying later may succeed.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Problem::new(503, "unavailable", "The service is unavailable").with_detail(detail)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.title, self.code)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_serializes_with_rfc9457_members_and_code() {
        let p = Problem::new(
            400,
            "malformed_json",
            "The request body is not a valid batch",
        )
        .with_detail("expected a JSON array");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "type": "https://gureum.dev/problems/malformed_json",
                "title": "The request body is not a valid batch",
                "status": 400,
                "detail": "expected a JSON array",
                "code": "malformed_json",
            })
        );
    }

    #[test]
    fn problem_response_has_problem_content_type_and_status() {
        let response = Problem::not_found("account_not_found", "no account 7").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            PROBLEM_CONTENT_TYPE
        );
    }
}
