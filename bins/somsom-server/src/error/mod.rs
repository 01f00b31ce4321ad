//! The API's one error body, `{"status", "code", "message", "errors"?}`, for every status.
//!
//! Handlers return [`ApiError`]. The [`json_errors`] middleware makes sure that responses produced
//! elsewhere (axum's 405, a body-limit 413, a timeout 408, a caught panic) carry the same body,
//! and re-renders messages in English for clients that prefer it (`Accept-Language: en`).

mod codes;
mod lang;
mod render;
#[cfg(test)]
mod tests;

pub use codes::ErrorCode;
pub use lang::{FieldIssue, Lang};
pub use render::{json_errors, not_found};

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;

/// An error and every cause under it, on one line, for logs. The engines' errors name what
/// failed (`sql unavailable`); what the backend said is their `source()`.
pub struct Report<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

/// An error answered to the client. Cheap to clone; rendered in the client's language by
/// [`json_errors`].
#[derive(Debug, Clone)]
pub struct ApiError {
    code: ErrorCode,
    status: StatusCode,
    fields: BTreeMap<String, FieldIssue>,
    retry_after_secs: Option<u64>,
    /// The shared service whose failure this is (for the outage gate), if known.
    dependency: Option<&'static str>,
    /// More about this error, by code (see [`ErrorBody::details`]).
    details: Option<serde_json::Value>,
}

/// The JSON error body, as documented in the OpenAPI document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The HTTP status, repeated.
    pub status: u16,
    /// The machine-readable code.
    pub code: ErrorCode,
    /// A message for people (Korean by default).
    pub message: String,
    /// Each field at fault and why; absent when no field is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, String>>,
    /// More about the error, by code: for `TICKET_ALREADY_CHECKED_IN` the first check-in
    /// (`checkedInBy`, `gate`, `checkedInAt`). Absent for most codes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// The server's own database failed or timed out: 503 with `Retry-After`, the cause logged.
    pub fn database(error: sqlx::Error) -> Self {
        crate::app::unavailable("database", &error)
    }

    /// An error with `code` and its status.
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            status: code.status(),
            fields: BTreeMap::new(),
            retry_after_secs: None,
            dependency: None,
            details: None,
        }
    }

    /// A 400 naming one field.
    pub fn field(name: impl Into<String>, issue: FieldIssue) -> Self {
        Self::new(ErrorCode::BadRequest).with_field(name, issue)
    }

    /// Adds one more field at fault.
    pub fn with_field(mut self, name: impl Into<String>, issue: FieldIssue) -> Self {
        self.fields.insert(name.into(), issue);
        self
    }

    /// Adds `Retry-After` (for 429 and 503).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// Adds `details` to the body.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Names the shared service that failed (the outage gate marks it down).
    pub fn with_dependency(mut self, dependency: &'static str) -> Self {
        self.dependency = Some(dependency);
        self
    }

    /// The shared service whose failure this is, if known.
    pub fn dependency(&self) -> Option<&'static str> {
        self.dependency
    }

    /// A 500 for an unexpected failure: logs `error` (never shown to the client).
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(ErrorCode::InternalServerError)
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The fields at fault.
    pub fn fields(&self) -> &BTreeMap<String, FieldIssue> {
        &self.fields
    }

    fn for_status(status: StatusCode) -> Self {
        Self {
            status,
            ..Self::new(ErrorCode::for_status(status))
        }
    }

    /// The body in `lang`.
    pub fn body(&self, lang: Lang) -> ErrorBody {
        ErrorBody {
            status: self.status.as_u16(),
            code: self.code,
            message: self.code.message(lang).to_owned(),
            errors: (!self.fields.is_empty()).then(|| {
                self.fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.render(lang)))
                    .collect()
            }),
            details: self.details.clone(),
        }
    }

    fn render(&self, lang: Lang) -> Response {
        let mut response = (self.status, Json(self.body(lang))).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(self.clone());
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.render(Lang::Ko)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} ({})", self.code, self.status)
    }
}

impl std::error::Error for ApiError {}
