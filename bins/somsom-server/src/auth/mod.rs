//! Sign-up, confirmation, login, refresh, sign-out and token checks over the configured
//! [`IdentityProvider`], with the seed's paths and field names; plus the authenticated-user
//! extractor every protected route uses.

pub mod limits;
pub mod users;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cognito_auth::extract::Authenticated;
use cognito_auth::{AuthError, IdentityProvider, Role, SignUp};
use http::request::Parts;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::db::Database;
use crate::error::{ApiError, ErrorCode, FieldIssue};
use crate::extract::{Json, Query};

pub use limits::AttemptLimits;
pub use users::{User, UserRows};

/// E-mail addresses that are made admins once confirmed.
#[derive(Debug, Clone, Default)]
pub struct AdminEmails(Arc<HashSet<String>>);

impl AdminEmails {
    /// From configuration (normalised).
    pub fn new(emails: &[String]) -> Self {
        Self(Arc::new(
            emails
                .iter()
                .map(|e| cognito_auth::normalize_email(e))
                .collect(),
        ))
    }

    fn contains(&self, email: &str) -> bool {
        self.0.contains(&cognito_auth::normalize_email(email))
    }

    /// Grants the role to configured admins that are already confirmed (at start).
    pub async fn apply(&self, auth: &dyn IdentityProvider, db: &Database) -> Result<(), AuthError> {
        for email in self.0.iter() {
            match auth.profile(email).await {
                Ok(profile) if profile.confirmed => {
                    grant_admin(auth, db, &profile.email).await?;
                }
                Ok(_) | Err(AuthError::UserNotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Makes `email` an admin in the identity provider and in `users`.
pub async fn grant_admin(
    auth: &dyn IdentityProvider,
    db: &Database,
    email: &str,
) -> Result<User, AuthError> {
    auth.set_role(email, Role::Admin).await?;
    let profile = auth.profile(email).await?;
    users::upsert(db, &profile)
        .await
        .map_err(|e| AuthError::unavailable("database", e))
}

/// Maps the identity provider's errors onto the API's codes.
pub fn auth_error(e: AuthError) -> ApiError {
    match e {
        AuthError::UserAlreadyExists => ApiError::new(ErrorCode::UserAlreadyExists),
        AuthError::UserNotFound => ApiError::new(ErrorCode::UserNotFound),
        AuthError::NotAuthorized => ApiError::new(ErrorCode::Unauthorized),
        AuthError::UserNotConfirmed => ApiError::new(ErrorCode::UserNotConfirmed),
        AuthError::AlreadyConfirmed => ApiError::new(ErrorCode::AlreadyConfirmed),
        AuthError::CodeMismatch => ApiError::field(
            "code",
            FieldIssue::Other {
                ko: "인증 코드가 일치하지 않습니다.".into(),
                en: "wrong code".into(),
            },
        ),
        AuthError::CodeExpired => ApiError::new(ErrorCode::Unauthorized).with_field(
            "code",
            FieldIssue::Other {
                ko: "인증 코드가 만료되었습니다.".into(),
                en: "the code expired".into(),
            },
        ),
        AuthError::TooManyAttempts => ApiError::new(ErrorCode::ConfirmationLocked),
        AuthError::InvalidPassword(rule) => ApiError::new(ErrorCode::InvalidPassword).with_field(
            "password",
            FieldIssue::Other {
                ko: format!("비밀번호에 필요한 조건: {rule}"),
                en: format!("needs {rule}"),
            },
        ),
        AuthError::InvalidParameter(field) => {
            ApiError::field(field, FieldIssue::Malformed("invalid value".into()))
        }
        AuthError::InvalidToken => ApiError::new(ErrorCode::TokenVerificationFailed),
        AuthError::TokenExpired => ApiError::new(ErrorCode::AccessTokenExpired),
        AuthError::InvalidRefreshToken => ApiError::new(ErrorCode::InvalidRefreshToken),
        AuthError::RefreshTokenExpired => ApiError::new(ErrorCode::RefreshTokenExpired),
        other => crate::app::unavailable("identity provider", other),
    }
}

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
        .map_err(ApiError::internal)?
    {
        return Ok(user);
    }
    let email = claims
        .email
        .clone()
        .ok_or_else(|| ApiError::new(ErrorCode::UserNotFound))?;
    let profile = auth.profile(&email).await.map_err(auth_error)?;
    rows.upsert(&profile).await.map_err(ApiError::internal)
}

/// `{"message": "..."}`, the JSON form of the seed's plain-text answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    /// The seed's text.
    pub message: &'static str,
}

fn message(text: &'static str) -> axum::Json<Message> {
    axum::Json(Message { message: text })
}

fn required(value: &str, field: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        Err(ApiError::field(field, FieldIssue::Required))
    } else {
        Ok(())
    }
}

/// The client's address when the server knows it (absent for in-process router tests).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// Sign-up request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SignUpRequest {
    /// E-mail (the login name).
    pub email: String,
    /// Password: 8+ characters with upper, lower, digit and symbol.
    pub password: String,
    /// Display name (1–50 characters).
    pub name: String,
}

/// `POST /signup`
#[utoipa::path(post, path = "/signup", tag = "auth", request_body = SignUpRequest,
    responses((status = 200, body = Message), (status = 400, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)))]
pub async fn signup(
    State(auth): State<Arc<dyn IdentityProvider>>,
    Json(body): Json<SignUpRequest>,
) -> Result<impl IntoResponse, ApiError> {
    required(&body.email, "email")?;
    required(&body.password, "password")?;
    required(&body.name, "name")?;
    if body.name.trim().chars().count() > 50 {
        return Err(ApiError::field("name", FieldIssue::TooLong { max: 50 }));
    }
    auth.sign_up(SignUp {
        email: body.email,
        password: body.password,
        name: body.name,
    })
    .await
    .map_err(auth_error)?;
    Ok(message("이메일 인증을 완료해주세요."))
}

/// Confirmation request (the seed also sent `name`; it is accepted and ignored).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConfirmRequest {
    /// E-mail.
    pub email: String,
    /// The 6-digit code.
    pub code: String,
}

/// `POST /confirm-signup`
#[utoipa::path(post, path = "/confirm-signup", tag = "auth", request_body = ConfirmRequest,
    responses((status = 200, body = Message), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
pub async fn confirm_signup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<ConfirmRequest>,
) -> Result<impl IntoResponse, ApiError> {
    required(&body.email, "email")?;
    required(&body.code, "code")?;
    state
        .limits
        .check(&cognito_auth::normalize_email(&body.email), ip)?;
    let profile = state
        .auth
        .confirm_sign_up(&body.email, &body.code)
        .await
        .map_err(auth_error)?;
    if state.admins.contains(&profile.email) {
        grant_admin(state.auth.as_ref(), &state.db, &profile.email)
            .await
            .map_err(auth_error)?;
    } else {
        state
            .users
            .upsert(&profile)
            .await
            .map_err(ApiError::internal)?;
    }
    Ok(message("회원가입되었습니다."))
}

/// Resend request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResendRequest {
    /// E-mail.
    pub email: String,
}

/// `POST /resend-confirmation-code`: a fresh code (new in SomSom).
#[utoipa::path(post, path = "/resend-confirmation-code", tag = "auth", request_body = ResendRequest,
    responses((status = 200, body = Message), (status = 404, body = crate::error::ErrorBody)))]
pub async fn resend_code(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<ResendRequest>,
) -> Result<impl IntoResponse, ApiError> {
    required(&body.email, "email")?;
    state
        .limits
        .check(&cognito_auth::normalize_email(&body.email), ip)?;
    state
        .auth
        .resend_confirmation_code(&body.email)
        .await
        .map_err(auth_error)?;
    Ok(message("인증 코드를 다시 보냈습니다."))
}

/// Login request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// E-mail.
    pub email: String,
    /// Password.
    pub password: String,
}

/// The seed's `LoginResponse`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    /// Bearer token for API calls.
    pub access_token: String,
    /// Identity token.
    pub id_token: String,
    /// Refresh token (rotated at every refresh).
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// `Bearer`.
    pub token_type: &'static str,
    /// The stable user handle (send it to `/refresh-token`).
    pub user_name: String,
    /// `users.id`.
    pub user_id: i64,
    /// Display name.
    pub user_nickname: String,
}

/// `POST /login`
#[utoipa::path(post, path = "/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<LoginRequest>,
) -> Result<impl IntoResponse, ApiError> {
    required(&body.email, "email")?;
    required(&body.password, "password")?;
    state
        .limits
        .check(&cognito_auth::normalize_email(&body.email), ip)?;
    let login = state
        .auth
        .sign_in(&body.email, &body.password)
        .await
        .map_err(auth_error)?;
    let user = state
        .users
        .upsert(&login.user)
        .await
        .map_err(ApiError::internal)?;
    Ok(axum::Json(LoginResponse {
        access_token: login.tokens.access_token,
        id_token: login.tokens.id_token,
        refresh_token: login.tokens.refresh_token.unwrap_or_default(),
        expires_in: login.tokens.expires_in,
        token_type: "Bearer",
        user_name: user.username,
        user_id: user.id,
        user_nickname: user.name,
    }))
}

/// `POST /signout`: ends every session of the caller.
#[utoipa::path(post, path = "/signout", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Message), (status = 401, body = crate::error::ErrorBody)))]
pub async fn signout(
    State(auth): State<Arc<dyn IdentityProvider>>,
    user: CurrentUser,
) -> Result<impl IntoResponse, ApiError> {
    auth.sign_out(&user.token).await.map_err(auth_error)?;
    Ok(message("로그아웃 성공"))
}

/// `GET /verify-token`
#[utoipa::path(get, path = "/verify-token", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Message), (status = 401, body = crate::error::ErrorBody)))]
pub async fn verify_token(_user: CurrentUser) -> impl IntoResponse {
    message("유효한 토큰")
}

/// Refresh by body (the seed used a `RefreshToken` header and a `username` query parameter).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    /// The refresh token.
    pub refresh_token: Option<String>,
    /// `userName` from the login answer.
    pub username: Option<String>,
}

/// The seed's `RefreshTokenResponse`, plus the rotated refresh token and a new id token.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshResponse {
    /// New access token.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// `Bearer`.
    pub token_type: &'static str,
    /// The next refresh token: the one sent is used up.
    pub refresh_token: Option<String>,
    /// New identity token.
    pub id_token: String,
}

/// `POST /refresh-token`
#[utoipa::path(post, path = "/refresh-token", tag = "auth",
    params(("RefreshToken" = Option<String>, Header, description = "the refresh token (or in the body)"),
           ("username" = Option<String>, Query, description = "userName from login (or in the body)")),
    request_body(content = Option<RefreshRequest>),
    responses((status = 200, body = RefreshResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody)))]
pub async fn refresh_token(
    State(auth): State<Arc<dyn IdentityProvider>>,
    headers: HeaderMap,
    Query(query): Query<RefreshRequest>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let from_body: RefreshRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RefreshRequest::default()
    } else {
        crate::extract::parse_json(&body)?
    };
    let token = headers
        .get("refreshtoken")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(from_body.refresh_token)
        .or(query.refresh_token)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| ApiError::field("RefreshToken", FieldIssue::Required))?;
    let username = query
        .username
        .or(from_body.username)
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| ApiError::field("username", FieldIssue::Required))?;
    let tokens = auth.refresh(&username, &token).await.map_err(auth_error)?;
    Ok(axum::Json(RefreshResponse {
        access_token: tokens.access_token,
        expires_in: tokens.expires_in,
        token_type: "Bearer",
        refresh_token: tokens.refresh_token,
        id_token: tokens.id_token,
    }))
}

/// `GET /.well-known/jwks.json`: the keys that verify SomSom's tokens.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "JSON Web Key Set"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn jwks(State(auth): State<Arc<dyn IdentityProvider>>) -> Result<Response, ApiError> {
    let jwks = auth
        .jwks()
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound))?;
    let mut response = axum::Json(jwks).into_response();
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, max-age=300"),
    );
    Ok((StatusCode::OK, response).into_response())
}
