//! Accounts over the configured [`IdentityProvider`], with the seed's paths and field names:
//! `handlers` (the routes), `dto` (their bodies), `extract` (who is calling), `limits` (attempt
//! limits no caller can grow), `users` (the seed's `users` table).

pub mod build;
pub mod dto;
mod extract;
mod handlers;
pub mod limits;
pub mod sessions;
pub mod users;

use std::collections::HashSet;
use std::sync::Arc;

use cognito_auth::{AuthError, IdentityProvider};

use crate::db::Database;
use crate::error::{ApiError, ErrorCode, FieldIssue};

pub use dto::{
    ConfirmRequest, ForgotPasswordRequest, LoginRequest, LoginResponse, Message, RefreshRequest,
    RefreshResponse, ResendRequest, ResetPasswordRequest, SignUpRequest,
};
pub use extract::{Caller, CurrentUser, check_bearer, user_for};
pub use handlers::*;
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
                    crate::workflows::accounts::grant_admin(auth, db, &profile.email).await?;
                }
                Ok(_) | Err(AuthError::UserNotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn weak_password(field: &str, rule: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidPassword).with_field(
        field,
        FieldIssue::Other {
            ko: format!("비밀번호에 필요한 조건: {rule}"),
            en: format!("needs {rule}"),
        },
    )
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        auth_error(e)
    }
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
        AuthError::PasswordRequired => ApiError::field(
            "password",
            FieldIssue::Other {
                ko: "이 이메일로 여러 번 가입 신청이 있었습니다. 가입할 때 입력한 비밀번호를 함께 보내주세요."
                    .into(),
                en: "this address was signed up more than once: send the password you signed up with"
                    .into(),
            },
        ),
        AuthError::Overloaded => {
            ApiError::new(ErrorCode::ServiceUnavailable).with_retry_after(1)
        }
        AuthError::InvalidPassword(rule) => weak_password("password", &rule),
        AuthError::InvalidParameter(field) => {
            ApiError::field(field, FieldIssue::Malformed("invalid value".into()))
        }
        AuthError::InvalidToken => ApiError::new(ErrorCode::TokenVerificationFailed),
        AuthError::TokenExpired => ApiError::new(ErrorCode::AccessTokenExpired),
        AuthError::InvalidRefreshToken => ApiError::new(ErrorCode::InvalidRefreshToken),
        AuthError::RefreshTokenExpired => ApiError::new(ErrorCode::RefreshTokenExpired),
        other => crate::app::unavailable("identity provider", &other),
    }
}
