//! An axum extractor for the authenticated user (feature `axum`), generic over the application's
//! state: any state from which an `Arc<dyn IdentityProvider>` can be taken.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};

use crate::{AuthError, Claims, IdentityProvider};

/// The verified claims of the request's `Authorization: Bearer` access token.
///
/// As `Option<Authenticated>` it admits anonymous requests, but a token that is present and
/// invalid is still refused (a client should learn that its token is bad).
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// What the token says.
    pub claims: Claims,
    /// The raw token (for sign-out).
    pub token: String,
}

/// Why a request is not authenticated.
#[derive(Debug)]
pub enum AuthRejection {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A token that did not verify.
    Invalid(AuthError),
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            AuthRejection::Missing => (
                StatusCode::UNAUTHORIZED,
                "authentication required".to_owned(),
            ),
            AuthRejection::Invalid(AuthError::Unavailable { .. }) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "identity provider unavailable".to_owned(),
            ),
            AuthRejection::Invalid(e) => (StatusCode::UNAUTHORIZED, e.to_string()),
        };
        let mut response = (status, message).into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn authenticate<S>(parts: &Parts, state: &S) -> Option<Result<Authenticated, AuthRejection>>
where
    Arc<dyn IdentityProvider>: FromRef<S>,
{
    let token = bearer_token(parts)?;
    let provider = Arc::<dyn IdentityProvider>::from_ref(state);
    Some(
        provider
            .verify(token)
            .await
            .map(|claims| Authenticated {
                claims,
                token: token.to_owned(),
            })
            .map_err(AuthRejection::Invalid),
    )
}

impl<S> FromRequestParts<S> for Authenticated
where
    Arc<dyn IdentityProvider>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        authenticate(parts, state)
            .await
            .unwrap_or(Err(AuthRejection::Missing))
    }
}

impl<S> OptionalFromRequestParts<S> for Authenticated
where
    Arc<dyn IdentityProvider>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        authenticate(parts, state).await.transpose()
    }
}
