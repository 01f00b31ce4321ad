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
    /// Wrong codes entered since the code was sent.
    pub code_attempts: u32,
    /// Creation time (ms since the epoch).
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
    /// Replaces an account's mutable fields (name, hash, role, confirmation state).
    async fn update_account(&self, account: &Account) -> Result<(), StoreError>;
    /// Adds one wrong code attempt atomically and returns the new count.
    async fn add_code_attempt(&self, email: &str) -> Result<u32, StoreError>;
    /// Stores a refresh token (creating its family when new).
    async fn insert_refresh(&self, record: &RefreshRecord) -> Result<(), StoreError>;
    /// Looks a refresh token up by hash.
    async fn refresh_by_hash(&self, token_hash: &str) -> Result<Option<RefreshLookup>, StoreError>;
    /// Marks a refresh token used; `false` when it already was (atomic).
    async fn mark_refresh_used(&self, token_hash: &str) -> Result<bool, StoreError>;
    /// Revokes one family.
    async fn revoke_family(&self, family: &str) -> Result<(), StoreError>;
    /// Revokes every family of a user (sign-out everywhere).
    async fn revoke_user(&self, username: &str) -> Result<(), StoreError>;
    /// Whether a family exists and is not revoked.
    async fn family_active(&self, family: &str) -> Result<bool, StoreError>;
    /// The persisted signing key `(kid, pem)`, if any.
    async fn signing_key(&self) -> Result<Option<(String, String)>, StoreError>;
    /// Persists `(kid, pem)` unless a key exists already; returns the key that is stored.
    async fn store_signing_key(&self, kid: &str, pem: &str)
    -> Result<(String, String), StoreError>;
}
