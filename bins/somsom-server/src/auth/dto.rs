//! The account routes' request and answer bodies, with the seed's field names.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"message": "..."}`, the JSON form of the seed's plain-text answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    /// The seed's text.
    pub message: &'static str,
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

/// Confirmation request (the seed also sent `name`; it is accepted and ignored).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConfirmRequest {
    /// E-mail.
    pub email: String,
    /// The 6-digit code.
    pub code: String,
    /// The password given at sign-up. Required when the address was signed up more than once
    /// before it was confirmed (someone else may have signed it up): the code proves the
    /// mailbox, the password proves whose sign-up it is.
    #[serde(default)]
    pub password: Option<String>,
}

/// Resend request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResendRequest {
    /// E-mail.
    pub email: String,
}

/// Forgot-password request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ForgotPasswordRequest {
    /// E-mail of the account.
    pub email: String,
}

/// Reset-password request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetPasswordRequest {
    /// E-mail of the account.
    pub email: String,
    /// The 6-digit code from the reset e-mail.
    pub code: String,
    /// The new password (same rules as at sign-up).
    pub new_password: String,
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
