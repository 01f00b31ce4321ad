//! `[auth]`: the identity provider.

use serde::{Deserialize, Serialize};

use super::serde_with::empty_is_none;

/// Identity settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// `local` (the default: accounts in the database).
    pub backend: AuthBackend,
    /// `iss` of the tokens the local provider issues.
    pub issuer: String,
    /// Code attempts (confirm, resend, forgot and reset password) allowed per e-mail per minute.
    pub attempts_per_account_per_minute: u32,
    /// Attempts on any account route allowed per client address (IPv6: per /64) per minute.
    pub attempts_per_address_per_minute: u32,
    /// Sign-ups allowed per client address per hour (each costs a password hash and a mail).
    pub signups_per_address_per_hour: u32,
    /// Sign-ups allowed per e-mail per hour.
    pub signups_per_email_per_hour: u32,
    /// Failed logins per (e-mail, client address) before each further one doubles the wait.
    pub login_free_failures: u32,
    /// The longest wait after failed logins, seconds.
    pub login_max_backoff_secs: u64,
    /// Keys each attempt limit remembers (its memory is fixed at start: about 24 bytes a key).
    pub limiter_slots: usize,
    /// Password hashes (argon2id, 19 MiB each) running at once; 0: one per CPU.
    pub password_hashes_at_once: usize,
    /// Password hashes that may wait for those; past that, 503 at once.
    pub password_hashes_waiting: usize,
    /// The token signing key (PKCS#1 or PKCS#8 RSA PEM), e.g. from a secret store through the
    /// environment (`SOMSOM_AUTH__SIGNING_KEY`). Unset (and no file), one is made at first start
    /// and kept in the database.
    #[serde(deserialize_with = "empty_is_none")]
    pub signing_key: Option<String>,
    /// A file holding the signing key (mounted secrets).
    #[serde(deserialize_with = "empty_is_none")]
    pub signing_key_file: Option<String>,
    /// Seconds a node trusts a session it saw active (local provider). A sign-out is immediate on
    /// the node that handled it and takes up to this long on the others; 0 reads the database on
    /// every request.
    pub session_cache_secs: u64,
    /// The Cognito pool, for `backend = "cognito"`.
    pub cognito: CognitoSettings,
}

/// An AWS Cognito user pool and app client (`SOMSOM_AUTH__COGNITO__USER_POOL_ID`, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CognitoSettings {
    /// Pool id.
    pub user_pool_id: String,
    /// App client id.
    pub client_id: String,
    /// App client secret, when the client has one (masked when printed).
    #[serde(deserialize_with = "empty_is_none")]
    pub client_secret: Option<String>,
    /// JWKS URL override; by default the pool's public one, or `{AWS_ENDPOINT_URL}/{pool}/...`
    /// when an endpoint is configured.
    #[serde(deserialize_with = "empty_is_none")]
    pub jwks_url: Option<String>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            backend: AuthBackend::Local,
            issuer: "somsom".into(),
            attempts_per_account_per_minute: 10,
            attempts_per_address_per_minute: 60,
            signups_per_address_per_hour: 20,
            signups_per_email_per_hour: 5,
            login_free_failures: 5,
            login_max_backoff_secs: 900,
            limiter_slots: 65_536,
            password_hashes_at_once: 0,
            password_hashes_waiting: 64,
            session_cache_secs: 1,
            signing_key: None,
            signing_key_file: None,
            cognito: CognitoSettings::default(),
        }
    }
}

/// Which identity provider to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthBackend {
    /// SomSom's own accounts (argon2id, RS256), in the configured database.
    Local,
    /// An AWS Cognito user pool (`[auth.cognito]`, region and endpoint from `[aws]`).
    Cognito,
}
