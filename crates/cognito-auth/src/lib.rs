#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc = include_str!("../README.md")]

pub mod jwt;
pub mod local;
pub mod password;
pub mod sender;

#[cfg(feature = "axum")]
pub mod extract;

#[cfg(feature = "cognito")]
pub mod cognito;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use engine_clock::{Clock, ManualClock, SystemClock};

/// What a new user gives at sign-up.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SignUp {
    /// The e-mail address; also the login name.
    pub email: String,
    /// The password, checked against [`password::Policy`].
    pub password: String,
    /// The display name.
    pub name: String,
}

/// The result of a sign-up: an unconfirmed user, a code on its way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignUpOutcome {
    /// The stable user handle (a UUID, as Cognito makes when e-mail is an alias).
    pub username: String,
    /// Whether the account is already confirmed (never, in the default flow).
    pub confirmed: bool,
}

/// A user's role. Role changes reach tokens issued after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    /// Everyone.
    #[default]
    User,
    /// May create festivals and see queue statistics.
    Admin,
}

impl Role {
    /// `USER` or `ADMIN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "USER",
            Role::Admin => "ADMIN",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, AuthError> {
        match s {
            "USER" => Ok(Role::User),
            "ADMIN" => Ok(Role::Admin),
            other => Err(AuthError::InvalidParameter(format!(
                "unknown role {other:?}"
            ))),
        }
    }
}

/// Who a user is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// The stable handle (`username` claim of access tokens).
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Whether the e-mail was confirmed.
    pub confirmed: bool,
}

/// Tokens handed out at login and refresh.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    /// Bearer token for API calls (a JWT).
    pub access_token: String,
    /// Identity token (a JWT with e-mail and name).
    pub id_token: String,
    /// The refresh token; rotated at every refresh (absent when the backend does not rotate).
    pub refresh_token: Option<String>,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl std::fmt::Debug for Tokens {
    // Tokens are credentials: never print them, not even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// A successful login: tokens and who they belong to.
#[derive(Debug, Clone)]
pub struct Login {
    /// The tokens.
    pub tokens: Tokens,
    /// The user.
    pub user: Profile,
}

/// What a verified access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The stable user handle.
    pub username: String,
    /// E-mail, when the token carries it.
    pub email: Option<String>,
    /// Display name, when the token carries it.
    pub name: Option<String>,
    /// Role.
    pub role: Role,
    /// Expiry, seconds since the epoch.
    pub expires_at: i64,
    /// Token id (`jti`).
    pub token_id: String,
}

/// Everything that can go wrong, named by meaning. Backend errors are wrapped in
/// [`AuthError::Unavailable`] and never leak their types.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Sign-up with an e-mail that already has an account.
    #[error("a user with this e-mail already exists")]
    UserAlreadyExists,
    /// Confirm or resend for an e-mail without an account.
    #[error("no such user")]
    UserNotFound,
    /// Wrong e-mail or password (deliberately the same answer for both).
    #[error("incorrect e-mail or password")]
    NotAuthorized,
    /// Login before the e-mail was confirmed.
    #[error("the e-mail address is not confirmed")]
    UserNotConfirmed,
    /// Confirm of an already confirmed account.
    #[error("the account is already confirmed")]
    AlreadyConfirmed,
    /// Wrong confirmation code.
    #[error("wrong confirmation code")]
    CodeMismatch,
    /// The confirmation code expired; ask for a new one.
    #[error("the confirmation code expired")]
    CodeExpired,
    /// Too many guesses at this code (ask for a new one), or at any code of this address lately.
    #[error("too many wrong attempts; request a new code")]
    TooManyAttempts,
    /// This address was signed up more than once before it was confirmed (perhaps by someone
    /// else): confirming needs the password of the latest sign-up.
    #[error("confirming this sign-up needs its password")]
    PasswordRequired,
    /// Too many password hashes are running or waiting; try again shortly.
    #[error("too busy checking passwords; try again shortly")]
    Overloaded,
    /// The password does not meet the policy.
    #[error("the password does not meet the policy: {0}")]
    InvalidPassword(String),
    /// A malformed input (e-mail, name, ...).
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The access token is malformed, forged, revoked or for someone else.
    #[error("invalid token")]
    InvalidToken,
    /// The access token expired.
    #[error("the token expired")]
    TokenExpired,
    /// The refresh token is unknown, revoked, reused or for another user.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// The refresh token expired.
    #[error("the refresh token expired")]
    RefreshTokenExpired,
    /// The backend could not be reached or failed: worth trying again later
    /// ([`AuthError::is_retryable`]). What it said is the [`source`](std::error::Error::source).
    #[error("{backend} unavailable")]
    Unavailable {
        /// Which backend.
        backend: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl AuthError {
    /// [`AuthError::Unavailable`] from whatever `backend` said.
    pub fn unavailable(
        backend: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        AuthError::Unavailable {
            backend,
            source: source.into(),
        }
    }

    /// Whether trying again later may succeed: the backend was unavailable. Every other error
    /// is an answer about the request itself.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// A sign-in session that ended (sign-out, password reset, a reused refresh token), as seen by
/// [`IdentityProvider::poll_revocations`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The session's owner (the stable handle).
    pub username: String,
}

/// Result alias.
pub type Result<T, E = AuthError> = std::result::Result<T, E>;

/// An identity provider: the local one or AWS Cognito.
#[async_trait]
pub trait IdentityProvider: Send + Sync + 'static {
    /// Creates an unconfirmed user and sends a confirmation code.
    async fn sign_up(&self, request: SignUp) -> Result<SignUpOutcome>;
    /// Confirms the e-mail with the code that was sent. `password`, when given, must be the
    /// latest sign-up's; it is required ([`AuthError::PasswordRequired`]) when the address was
    /// signed up more than once, so that whoever confirms the mailbox also knows the password
    /// (no one can sign up someone else's address and keep it).
    async fn confirm_sign_up(
        &self,
        email: &str,
        code: &str,
        password: Option<&str>,
    ) -> Result<Profile>;
    /// Sends a fresh code. Wrong guesses keep counting against the account's window, so
    /// resending does not buy more guesses.
    async fn resend_confirmation_code(&self, email: &str) -> Result<()>;
    /// Sends a password-reset code to a confirmed account. Answers the same whether or not the
    /// address has an account, so it cannot be used to find out.
    async fn forgot_password(&self, email: &str) -> Result<()>;
    /// Sets a new password with a reset code and ends every session of the account.
    async fn reset_password(&self, email: &str, code: &str, new_password: &str) -> Result<()>;
    /// Checks the password and hands out tokens.
    async fn sign_in(&self, email: &str, password: &str) -> Result<Login>;
    /// Trades a refresh token for new tokens. `username` is the stable handle (Cognito needs it
    /// for its secret hash).
    async fn refresh(&self, username: &str, refresh_token: &str) -> Result<Tokens>;
    /// Signs the user out everywhere: revokes the user's refresh tokens and the given access
    /// token (until it expires).
    async fn sign_out(&self, access_token: &str) -> Result<()>;
    /// Verifies an access token.
    async fn verify(&self, access_token: &str) -> Result<Claims>;
    /// Looks a user up by e-mail.
    async fn profile(&self, email: &str) -> Result<Profile>;
    /// Changes a user's role.
    async fn set_role(&self, email: &str, role: Role) -> Result<()>;
    /// Learns the sessions revoked since the last call, on any node, so that verification needs
    /// no store read per request; returns them so the application can close what they opened
    /// (sockets). Call it every second or so. Providers that keep no sessions return nothing.
    async fn poll_revocations(&self) -> Result<Vec<Revocation>> {
        Ok(Vec::new())
    }
    /// Deletes what expired and would otherwise pile up (unconfirmed accounts past their
    /// lifetime); returns how many. Run it now and then.
    async fn purge_expired(&self) -> Result<u64> {
        Ok(0)
    }
    /// The JSON Web Key Set that verifies this provider's tokens, if it issues its own.
    fn jwks(&self) -> Option<jwt::Jwks> {
        None
    }
}

impl SignUp {
    /// Checks the request the same way for every backend (e-mail syntax, a 1–50 character name,
    /// `policy`) and returns the normalised e-mail and the trimmed name.
    pub fn validate(&self, policy: &password::Policy) -> Result<(String, String)> {
        validate_email(&self.email)?;
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 50 {
            return Err(AuthError::InvalidParameter("name".into()));
        }
        policy.check(&self.password)?;
        Ok((normalize_email(&self.email), name))
    }
}

/// Normalises an e-mail address for lookups: trimmed and lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A light syntactic check of an e-mail address (one `@`, something on both sides, a dot in the
/// domain, no spaces); the confirmation code proves the rest.
pub fn validate_email(email: &str) -> Result<()> {
    let email = email.trim();
    let ok = email.len() <= 254
        && !email.contains(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if ok {
        Ok(())
    } else {
        Err(AuthError::InvalidParameter("email".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(validate_email("a@b.co").is_ok());
        assert!(validate_email(" 솜솜@축제.한국 ").is_ok());
        for bad in [
            "", "a", "a@b", "@b.co", "a@@b.co", "a b@c.de", "a@.co", "a@co.",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
        assert_eq!(normalize_email(" A@B.Co "), "a@b.co");
    }
}
