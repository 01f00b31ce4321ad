//! What the local provider keeps, and the trait its stores implement.

use async_trait::async_trait;

use crate::{AuthError, Role};

/// One account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Stable handle (UUID).
    pub username: String,
    /// Normalised e-mail (unique).
    pub email: String,
    /// Display name.
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// E-mail confirmed.
    pub confirmed: bool,
    /// SHA-256 of the pending confirmation code.
    pub code_hash: Option<String>,
    /// When the pending code expires (ms since the epoch).
    pub code_expires_at: Option<i64>,
    /// Guesses at the current code (right or wrong).
    pub code_attempts: u32,
    /// Guesses at any code in the current code window, however many codes were sent: resending
    /// does not buy more guesses.
    pub window_attempts: u32,
    /// When the current code window began (ms since the epoch).
    pub window_started_at: i64,
    /// Sign-ups this pending account has had (a later one replaces the earlier): more than one
    /// means someone else may have signed this address up, so confirming needs the password.
    pub sign_ups: u32,
    /// Creation time (ms since the epoch); for a pending account, of its first sign-up.
    pub created_at: i64,
}

/// One refresh token, stored only as its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    /// SHA-256 of the token (hex).
    pub token_hash: String,
    /// The sign-in session (family) it belongs to; every rotation stays in the family.
    pub family: String,
    /// Owner.
    pub username: String,
    /// Expiry (ms since the epoch).
    pub expires_at: i64,
}

/// A revoked sign-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedSession {
    /// The session (token family).
    pub family: String,
    /// Its owner.
    pub username: String,
    /// When it was revoked (ms since the epoch).
    pub revoked_at: i64,
}

/// What a refresh-token lookup finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshLookup {
    /// The record.
    pub record: RefreshRecord,
    /// Already traded in once (a second use means it leaked).
    pub used: bool,
    /// The family was revoked (sign-out or reuse).
    pub family_revoked: bool,
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique key (e-mail) is taken.
    #[error("already exists")]
    Conflict,
    /// The backing service failed.
    #[error("{0}")]
    Backend(String),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => AuthError::UserAlreadyExists,
            StoreError::Backend(why) => AuthError::unavailable("account store", why),
        }
    }
}

/// Where the local provider keeps accounts, refresh tokens and its signing key.
#[async_trait]
pub trait AccountStore: Send + Sync + std::fmt::Debug + 'static {
    /// Adds an account; [`StoreError::Conflict`] if the e-mail is taken.
    async fn insert_account(&self, account: &Account) -> Result<(), StoreError>;
    /// Finds an account by normalised e-mail.
    async fn account_by_email(&self, email: &str) -> Result<Option<Account>, StoreError>;
    /// Finds an account by its stable handle.
    async fn account_by_username(&self, username: &str) -> Result<Option<Account>, StoreError>;
    /// Replaces an account's mutable fields (everything but the username and e-mail).
    async fn update_account(&self, account: &Account) -> Result<(), StoreError>;
    /// [`update_account`](Self::update_account) only if the stored code is still
    /// `expected_code_hash` (no other sign-up, resend or reset replaced it meanwhile); `false`
    /// when it was replaced.
    async fn update_if_code(
        &self,
        account: &Account,
        expected_code_hash: &str,
    ) -> Result<bool, StoreError>;
    /// Takes one guess at the current code, atomically: `false` (and nothing counted) when the
    /// code already had `per_code` guesses or the window `per_window`.
    async fn take_code_attempt(
        &self,
        email: &str,
        per_code: u32,
        per_window: u32,
    ) -> Result<bool, StoreError>;
    /// Deletes unconfirmed accounts created before `before` (ms); returns how many.
    async fn purge_pending(&self, before: i64) -> Result<u64, StoreError>;
    /// Stores a refresh token (creating its family when new).
    async fn insert_refresh(&self, record: &RefreshRecord) -> Result<(), StoreError>;
    /// Looks a refresh token up by hash.
    async fn refresh_by_hash(&self, token_hash: &str) -> Result<Option<RefreshLookup>, StoreError>;
    /// Marks a refresh token used; `false` when it already was (atomic).
    async fn mark_refresh_used(&self, token_hash: &str) -> Result<bool, StoreError>;
    /// Revokes one family at `at` (ms).
    async fn revoke_family(&self, family: &str, at: i64) -> Result<(), StoreError>;
    /// Revokes every family of a user (sign-out everywhere) at `at` (ms).
    async fn revoke_user(&self, username: &str, at: i64) -> Result<(), StoreError>;
    /// Sessions revoked at or after `since` (ms), by any node sharing the store.
    async fn revoked_since(&self, since: i64) -> Result<Vec<RevokedSession>, StoreError>;
    /// Whether a family exists and is not revoked.
    async fn family_active(&self, family: &str) -> Result<bool, StoreError>;
    /// The persisted signing key `(kid, pem)`, if any.
    async fn signing_key(&self) -> Result<Option<(String, String)>, StoreError>;
    /// Persists `(kid, pem)` unless a key exists already; returns the key that is stored.
    async fn store_signing_key(&self, kid: &str, pem: &str)
    -> Result<(String, String), StoreError>;
}
