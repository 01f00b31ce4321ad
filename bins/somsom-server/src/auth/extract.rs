//! Who is calling: the bearer-token check every request passes, and the extractors handlers take
//! ([`CurrentUser`] with its `users` row, [`Caller`] from the token alone).

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cognito_auth::extract::Authenticated;
use cognito_auth::{IdentityProvider, Role};
use http::request::Parts;

use super::auth_error;
use super::users::{User, UserRows};
use crate::error::{ApiError, ErrorCode};

/// Middleware: a request that carries a bearer token must carry a valid one, on every route
/// (as the seed's filter did). The verified token is kept for [`CurrentUser`].
pub async fn check_bearer(
    State(auth): State<Arc<dyn IdentityProvider>>,
    mut request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    if cognito_auth::extract::bearer_token(&parts).is_some() {
        match Authenticated::from_request_parts(&mut parts, &auth).await {
            Ok(authenticated) => {
                parts.extensions.insert(authenticated);
            }
            Err(cognito_auth::extract::AuthRejection::Invalid(e)) => {
                return auth_error(e).into_response();
            }
            Err(cognito_auth::extract::AuthRejection::Missing) => {}
        }
    }
    request = Request::from_parts(parts, body);
    next.run(request).await
}

/// The signed-in user: a verified access token and its `users` row. Routes that take it answer
/// 401 without a token.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// The `users` row.
    pub user: User,
    /// The access token (for sign-out).
    pub token: String,
    /// Role according to the token.
    pub role: Role,
}

/// The signed-in caller as the verified token tells it, without a database read: for hot
/// routes that only need to know who is asking (the waiting room). Tokens without an e-mail
/// claim (Cognito access tokens) fall back to the `users` row.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The normalised e-mail.
    pub email: String,
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    UserRows: FromRef<S>,
    Arc<dyn IdentityProvider>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Some(authenticated) = parts.extensions.get::<Authenticated>() else {
            return Err(ApiError::new(ErrorCode::Unauthorized));
        };
        if let Some(email) = &authenticated.claims.email {
            return Ok(Caller {
                email: cognito_auth::normalize_email(email),
            });
        }
        let user = CurrentUser::from_request_parts(parts, state).await?;
        Ok(Caller {
            email: cognito_auth::normalize_email(&user.user.email),
        })
    }
}

impl CurrentUser {
    /// Refuses (403) anyone but an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::PermissionDenied))
        }
    }
}

impl<S> FromRequestParts<S> for CurrentUser
where
    S: Send + Sync,
    UserRows: FromRef<S>,
    Arc<dyn IdentityProvider>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Some(authenticated) = parts.extensions.get::<Authenticated>().cloned() else {
            return Err(ApiError::new(ErrorCode::Unauthorized));
        };
        let rows = UserRows::from_ref(state);
        let auth = Arc::<dyn IdentityProvider>::from_ref(state);
        let user = user_for(&rows, &*auth, &authenticated.claims).await?;
        let claims = &authenticated.claims;
        Ok(CurrentUser {
            user,
            token: authenticated.token,
            role: claims.role,
        })
    }
}

/// The `users` row of a verified token's owner. An account confirmed before its row existed gets
/// its row made from the provider's profile.
pub async fn user_for(
    rows: &UserRows,
    auth: &dyn IdentityProvider,
    claims: &cognito_auth::Claims,
) -> Result<User, ApiError> {
    if let Some(user) = rows
        .by_username(&claims.username)
        .await
        .map_err(ApiError::database)?
    {
        return Ok(user);
    }
    let email = claims
        .email
        .clone()
        .ok_or_else(|| ApiError::new(ErrorCode::UserNotFound))?;
    let profile = auth.profile(&email).await?;
    rows.upsert(&profile).await.map_err(ApiError::database)
}
