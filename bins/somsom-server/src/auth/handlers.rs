//! The account routes: sign-up, confirmation, resend, forgot and reset password, login, refresh,
//! sign-out, token check, JWKS. Every route that an anonymous caller can hit checks the e-mail's
//! syntax first (so a limit never keys on caller-chosen bytes) and then its attempt limits.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use cognito_auth::{AuthError, IdentityProvider, SignUp};
use http::{HeaderMap, StatusCode};

use super::dto::{
    ConfirmRequest, ForgotPasswordRequest, LoginRequest, LoginResponse, Message, RefreshRequest,
    RefreshResponse, ResendRequest, ResetPasswordRequest, SignUpRequest,
};
use super::{CurrentUser, auth_error};
use crate::app::AppState;
use crate::client_ip::ClientIp;
use crate::error::{ApiError, ErrorBody, ErrorCode, FieldIssue};
use crate::extract::{Json, Query};
use crate::workflows::accounts::grant_admin;

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

/// The normalised e-mail, once its syntax (and so its length, at most 254) is checked.
fn checked_email(raw: &str) -> Result<String, ApiError> {
    required(raw, "email")?;
    cognito_auth::validate_email(raw).map_err(|_| {
        ApiError::field(
            "email",
            FieldIssue::Malformed("not an e-mail address".into()),
        )
    })?;
    Ok(cognito_auth::normalize_email(raw))
}

/// `POST /signup`
#[utoipa::path(post, path = "/signup", tag = "auth", request_body = SignUpRequest,
    responses((status = 200, body = Message), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 429, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn signup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<SignUpRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let email = checked_email(&body.email)?;
    required(&body.password, "password")?;
    required(&body.name, "name")?;
    if body.name.trim().chars().count() > 50 {
        return Err(ApiError::field("name", FieldIssue::TooLong { max: 50 }));
    }
    state.limits.check_signup(&email, ip)?;
    state
        .auth
        .sign_up(SignUp {
            email,
            password: body.password,
            name: body.name,
        })
        .await?;
    Ok(message("이메일 인증을 완료해주세요."))
}

/// `POST /confirm-signup`
#[utoipa::path(post, path = "/confirm-signup", tag = "auth", request_body = ConfirmRequest,
    responses((status = 200, body = Message), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 429, body = ErrorBody)))]
pub async fn confirm_signup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<ConfirmRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let email = checked_email(&body.email)?;
    required(&body.code, "code")?;
    state.limits.check_code(&email, ip)?;
    let password = body.password.as_deref().filter(|p| !p.is_empty());
    let profile = state
        .auth
        .confirm_sign_up(&email, &body.code, password)
        .await?;
    if state.admins.contains(&profile.email) {
        grant_admin(state.auth.as_ref(), &state.db, &profile.email).await?;
    } else {
        state
            .users
            .upsert(&profile)
            .await
            .map_err(ApiError::database)?;
    }
    Ok(message("회원가입되었습니다."))
}

/// `POST /resend-confirmation-code`: a fresh code (new in SomSom).
#[utoipa::path(post, path = "/resend-confirmation-code", tag = "auth", request_body = ResendRequest,
    responses((status = 200, body = Message), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 429, body = ErrorBody)))]
pub async fn resend_code(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<ResendRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let email = checked_email(&body.email)?;
    state.limits.check_code(&email, ip)?;
    state.auth.resend_confirmation_code(&email).await?;
    Ok(message("인증 코드를 다시 보냈습니다."))
}

/// `POST /forgot-password`: e-mails a reset code. The answer is the same whether or not the
/// address has an account.
#[utoipa::path(post, path = "/forgot-password", tag = "auth", request_body = ForgotPasswordRequest,
    responses((status = 200, body = Message), (status = 400, body = ErrorBody),
              (status = 429, body = ErrorBody)))]
pub async fn forgot_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<ForgotPasswordRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let email = checked_email(&body.email)?;
    state.limits.check_code(&email, ip)?;
    state.auth.forgot_password(&email).await?;
    Ok(message(
        "가입된 이메일이라면 비밀번호 재설정 코드를 보냈습니다.",
    ))
}

/// `POST /reset-password`: a new password with the e-mailed code; every session of the account
/// ends, on every node.
#[utoipa::path(post, path = "/reset-password", tag = "auth", request_body = ResetPasswordRequest,
    responses((status = 200, body = Message), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 429, body = ErrorBody)))]
pub async fn reset_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<ResetPasswordRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let email = checked_email(&body.email)?;
    required(&body.code, "code")?;
    required(&body.new_password, "newPassword")?;
    state.limits.check_code(&email, ip)?;
    state
        .auth
        .reset_password(&email, &body.code, &body.new_password)
        .await
        .map_err(|e| match e {
            AuthError::InvalidPassword(rule) => super::weak_password("newPassword", &rule),
            other => auth_error(other),
        })?;
    Ok(message("비밀번호를 변경했습니다. 다시 로그인해주세요."))
}

/// `POST /login`
#[utoipa::path(post, path = "/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<LoginRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let email = checked_email(&body.email)?;
    required(&body.password, "password")?;
    state.limits.check_login(&email, ip)?;
    let signed_in = state.auth.sign_in(&email, &body.password).await;
    match &signed_in {
        Ok(_) => state.limits.login_result(&email, ip, true),
        Err(AuthError::NotAuthorized) => state.limits.login_result(&email, ip, false),
        Err(_) => {}
    }
    let login = signed_in?;
    let user = state
        .users
        .upsert(&login.user)
        .await
        .map_err(ApiError::database)?;
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
    responses((status = 200, body = Message), (status = 401, body = ErrorBody)))]
pub async fn signout(
    State(auth): State<Arc<dyn IdentityProvider>>,
    user: CurrentUser,
) -> Result<impl IntoResponse, ApiError> {
    auth.sign_out(&user.token).await?;
    Ok(message("로그아웃 성공"))
}

/// `GET /verify-token`
#[utoipa::path(get, path = "/verify-token", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Message), (status = 401, body = ErrorBody)))]
pub async fn verify_token(_user: CurrentUser) -> impl IntoResponse {
    message("유효한 토큰")
}

/// `POST /refresh-token`
#[utoipa::path(post, path = "/refresh-token", tag = "auth",
    params(("RefreshToken" = Option<String>, Header, description = "the refresh token (or in the body)"),
           ("username" = Option<String>, Query, description = "userName from login (or in the body)")),
    request_body(content = Option<RefreshRequest>),
    responses((status = 200, body = RefreshResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)))]
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
    let tokens = auth.refresh(&username, &token).await?;
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
    responses((status = 200, description = "JSON Web Key Set"), (status = 404, body = ErrorBody)))]
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
