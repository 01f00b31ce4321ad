//! The local identity provider: accounts in an [`AccountStore`], argon2id passwords, 6-digit
//! e-mail codes, RS256 tokens with a persisted key, rotating refresh tokens with reuse detection.

mod memory;
#[cfg(feature = "sql")]
mod sql;
pub mod store;

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use rand::Rng;
use sha2::{Digest, Sha256};

pub use memory::MemoryStore;
#[cfg(feature = "sql")]
pub use sql::SqlStore;
use store::{Account, AccountStore, RefreshRecord};

use crate::jwt::{AccessTokenClaims, IdTokenClaims, Jwks, SigningKey, Verifier};
use crate::password::{self, Policy};
use crate::sender::{CodeSender, Recipient};
use crate::{
    AuthError, Claims, Clock, IdentityProvider, Login, Profile, Result, Role, SignUp,
    SignUpOutcome, Tokens, normalize_email,
};

/// Settings of the local provider.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// `iss` of every token, e.g. `http://localhost:8080`.
    pub issuer: String,
    /// `client_id` of access tokens and `aud` of identity tokens.
    pub client_id: String,
    /// Access and identity token lifetime (Cognito's default: one hour).
    pub access_ttl: Duration,
    /// Refresh token lifetime (Cognito's default: 30 days).
    pub refresh_ttl: Duration,
    /// Confirmation code lifetime (Cognito: 24 hours).
    pub code_ttl: Duration,
    /// Wrong codes allowed before the code is locked (a new one must be requested).
    pub max_code_attempts: u32,
    /// Password rules.
    pub policy: Policy,
    /// How long this node trusts that a session it saw active is still active. A sign-out on
    /// this node takes effect at once; on another node sharing the store, within this time.
    /// Zero checks the store on every verification.
    pub session_cache: Duration,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            issuer: "somsom".into(),
            client_id: "somsom-web".into(),
            access_ttl: Duration::hours(1),
            refresh_ttl: Duration::days(30),
            code_ttl: Duration::hours(24),
            max_code_attempts: 5,
            policy: Policy::default(),
            session_cache: Duration::seconds(1),
        }
    }
}

/// The local identity provider.
#[derive(Debug, Clone)]
pub struct LocalIdentity {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn AccountStore>,
    sender: Arc<dyn CodeSender>,
    clock: Arc<dyn Clock>,
    key: SigningKey,
    verifier: Verifier,
    /// Tokens whose signature and claims were already checked. The RSA check dominates the cost
    /// of a verification; the session (revocation) check still runs on every call.
    verified: moka::sync::Cache<String, AccessTokenClaims>,
    /// Sessions (token families) seen active lately, with their owner: see
    /// [`LocalConfig::session_cache`].
    active_sessions: moka::sync::Cache<String, String>,
    config: LocalConfig,
}

impl LocalIdentity {
    /// A provider over `store`. The signing key is loaded from the store, or generated and
    /// stored on first start (every node sharing the store then signs with the same key).
    pub async fn new(
        store: Arc<dyn AccountStore>,
        sender: Arc<dyn CodeSender>,
        clock: Arc<dyn Clock>,
        config: LocalConfig,
    ) -> Result<Self> {
        let (kid, pem) = match store.signing_key().await? {
            Some(stored) => stored,
            None => {
                let fresh = tokio::task::spawn_blocking(SigningKey::generate)
                    .await
                    .map_err(|e| AuthError::unavailable("rsa", e.to_string()))??;
                store
                    .store_signing_key(fresh.kid(), fresh.private_pem())
                    .await?
            }
        };
        let key = SigningKey::from_pem(&kid, &pem)?;
        Ok(Self::with_key(store, sender, clock, config, key))
    }

    /// A provider with a given key (tests share one to skip key generation).
    pub fn with_key(
        store: Arc<dyn AccountStore>,
        sender: Arc<dyn CodeSender>,
        clock: Arc<dyn Clock>,
        config: LocalConfig,
        key: SigningKey,
    ) -> Self {
        let jwks = Jwks {
            keys: vec![key.jwk().clone()],
        };
        let verifier = Verifier::new(&jwks, &config.issuer, Some(&config.client_id));
        Self {
            inner: Arc::new(Inner {
                store,
                sender,
                clock,
                key,
                verifier,
                verified: moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(std::time::Duration::from_secs(300))
                    .build(),
                active_sessions: moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(config.session_cache.to_std().unwrap_or_default())
                    .support_invalidation_closures()
                    .build(),
                config,
            }),
        }
    }

    fn now_ms(&self) -> i64 {
        self.inner.clock.now().timestamp_millis()
    }

    async fn session_active(&self, sid: &str, username: &str) -> Result<bool> {
        if self.inner.config.session_cache > Duration::zero()
            && self.inner.active_sessions.contains_key(sid)
        {
            return Ok(true);
        }
        let active = self.inner.store.family_active(sid).await?;
        if active && self.inner.config.session_cache > Duration::zero() {
            self.inner
                .active_sessions
                .insert(sid.to_owned(), username.to_owned());
        }
        Ok(active)
    }

    /// Operator tooling for load tests and demo data: makes a confirmed account for each
    /// `(email, name)` that does not exist yet, all with `password` hashed once (so the slow KDF
    /// runs once, not per account; the accounts share one salt), and signs every one in.
    pub async fn provision(
        &self,
        people: &[(String, String)],
        password: &str,
    ) -> Result<Vec<Login>> {
        let policy = &self.inner.config.policy;
        let owned = password.to_owned();
        let password_hash = blocking(move || password::hash(&owned)).await??;
        let mut logins = Vec::with_capacity(people.len());
        for (email, name) in people {
            let (email, name) = SignUp {
                email: email.clone(),
                password: password.to_owned(),
                name: name.clone(),
            }
            .validate(policy)?;
            let account = match self.inner.store.account_by_email(&email).await? {
                Some(existing) => existing,
                None => {
                    let account = Account {
                        username: uuid::Uuid::new_v4().to_string(),
                        email,
                        name,
                        password_hash: password_hash.clone(),
                        role: Role::User,
                        confirmed: true,
                        code_hash: None,
                        code_expires_at: None,
                        code_attempts: 0,
                        created_at: self.now_ms(),
                    };
                    self.inner.store.insert_account(&account).await?;
                    account
                }
            };
            let family = uuid::Uuid::new_v4().to_string();
            let (tokens, record) = self.issue(&account, &family)?;
            self.inner.store.insert_refresh(&record).await?;
            logins.push(Login {
                tokens,
                user: profile(&account),
            });
        }
        Ok(logins)
    }

    async fn account(&self, email: &str) -> Result<Option<Account>> {
        Ok(self
            .inner
            .store
            .account_by_email(&normalize_email(email))
            .await?)
    }

    async fn send_new_code(&self, account: &mut Account) -> Result<()> {
        let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000));
        account.code_hash = Some(code_hash(&account.username, &code));
        account.code_expires_at =
            Some(self.now_ms() + self.inner.config.code_ttl.num_milliseconds());
        account.code_attempts = 0;
        self.inner.store.update_account(account).await?;
        let to = Recipient {
            email: account.email.clone(),
            name: account.name.clone(),
        };
        self.inner.sender.send_code(&to, &code).await
    }

    fn issue(&self, account: &Account, family: &str) -> Result<(Tokens, RefreshRecord)> {
        let config = &self.inner.config;
        let now = self.inner.clock.now();
        let iat = now.timestamp();
        let exp = (now + config.access_ttl).timestamp();
        let access = AccessTokenClaims {
            sub: account.username.clone(),
            username: account.username.clone(),
            iss: config.issuer.clone(),
            token_use: "access".into(),
            client_id: Some(config.client_id.clone()),
            iat,
            exp,
            jti: uuid::Uuid::new_v4().to_string(),
            sid: Some(family.to_owned()),
            email: Some(account.email.clone()),
            name: Some(account.name.clone()),
            groups: match account.role {
                Role::Admin => vec![Role::Admin.as_str().to_owned()],
                Role::User => vec![],
            },
        };
        let id = IdTokenClaims {
            sub: account.username.clone(),
            aud: config.client_id.clone(),
            iss: config.issuer.clone(),
            token_use: "id".into(),
            username: account.username.clone(),
            email: account.email.clone(),
            email_verified: account.confirmed,
            name: account.name.clone(),
            iat,
            exp,
        };
        let refresh_token = random_token();
        let record = RefreshRecord {
            token_hash: sha256_hex(refresh_token.as_bytes()),
            family: family.to_owned(),
            username: account.username.clone(),
            expires_at: (now + config.refresh_ttl).timestamp_millis(),
        };
        let tokens = Tokens {
            access_token: self.inner.key.sign(&access)?,
            id_token: self.inner.key.sign(&id)?,
            refresh_token: Some(refresh_token),
            expires_in: u64::try_from(config.access_ttl.num_seconds()).unwrap_or(0),
        };
        Ok((tokens, record))
    }
}

fn profile(a: &Account) -> Profile {
    Profile {
        username: a.username.clone(),
        email: a.email.clone(),
        name: a.name.clone(),
        role: a.role,
        confirmed: a.confirmed,
    }
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::rngs::OsRng.r#gen();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn code_hash(username: &str, code: &str) -> String {
    sha256_hex(format!("{username}:{code}").as_bytes())
}

/// Runs argon2 off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AuthError::unavailable("argon2", e.to_string()))
}

#[async_trait]
impl IdentityProvider for LocalIdentity {
    async fn sign_up(&self, request: SignUp) -> Result<SignUpOutcome> {
        let (email, name) = request.validate(&self.inner.config.policy)?;
        if self.inner.store.account_by_email(&email).await?.is_some() {
            return Err(AuthError::UserAlreadyExists);
        }
        let password = request.password;
        let password_hash = blocking(move || password::hash(&password)).await??;
        let mut account = Account {
            username: uuid::Uuid::new_v4().to_string(),
            email,
            name,
            password_hash,
            role: Role::User,
            confirmed: false,
            code_hash: None,
            code_expires_at: None,
            code_attempts: 0,
            created_at: self.now_ms(),
        };
        self.inner.store.insert_account(&account).await?;
        self.send_new_code(&mut account).await?;
        Ok(SignUpOutcome {
            username: account.username,
            confirmed: false,
        })
    }

    async fn confirm_sign_up(&self, email: &str, code: &str) -> Result<Profile> {
        let mut account = self.account(email).await?.ok_or(AuthError::UserNotFound)?;
        if account.confirmed {
            return Err(AuthError::AlreadyConfirmed);
        }
        let max = self.inner.config.max_code_attempts;
        if account.code_attempts >= max {
            return Err(AuthError::TooManyAttempts);
        }
        let Some(expected) = account.code_hash.clone() else {
            return Err(AuthError::CodeExpired);
        };
        if account.code_expires_at.is_none_or(|at| at <= self.now_ms()) {
            return Err(AuthError::CodeExpired);
        }
        if code_hash(&account.username, code.trim()) != expected {
            let attempts = self.inner.store.add_code_attempt(&account.email).await?;
            return Err(if attempts >= max {
                AuthError::TooManyAttempts
            } else {
                AuthError::CodeMismatch
            });
        }
        account.confirmed = true;
        account.code_hash = None;
        account.code_expires_at = None;
        account.code_attempts = 0;
        self.inner.store.update_account(&account).await?;
        Ok(profile(&account))
    }

    async fn resend_confirmation_code(&self, email: &str) -> Result<()> {
        let mut account = self.account(email).await?.ok_or(AuthError::UserNotFound)?;
        if account.confirmed {
            return Err(AuthError::AlreadyConfirmed);
        }
        self.send_new_code(&mut account).await
    }

    async fn sign_in(&self, email: &str, password: &str) -> Result<Login> {
        let account = self.account(email).await?;
        // The same work and the same answer whether or not the e-mail exists.
        let phc = account.as_ref().map_or_else(
            || password::decoy_hash().to_owned(),
            |a| a.password_hash.clone(),
        );
        let password = password.to_owned();
        let matches = blocking(move || password::verify(&password, &phc)).await?;
        let account = match account {
            Some(a) if matches => a,
            _ => return Err(AuthError::NotAuthorized),
        };
        if !account.confirmed {
            return Err(AuthError::UserNotConfirmed);
        }
        let family = uuid::Uuid::new_v4().to_string();
        let (tokens, record) = self.issue(&account, &family)?;
        self.inner.store.insert_refresh(&record).await?;
        Ok(Login {
            tokens,
            user: profile(&account),
        })
    }

    async fn refresh(&self, username: &str, refresh_token: &str) -> Result<Tokens> {
        let hash = sha256_hex(refresh_token.trim().as_bytes());
        let found = self
            .inner
            .store
            .refresh_by_hash(&hash)
            .await?
            .ok_or(AuthError::InvalidRefreshToken)?;
        if found.record.username != username || found.family_revoked {
            return Err(AuthError::InvalidRefreshToken);
        }
        if found.record.expires_at <= self.now_ms() {
            return Err(AuthError::RefreshTokenExpired);
        }
        if found.used || !self.inner.store.mark_refresh_used(&hash).await? {
            // A refresh token that is traded in twice has leaked: end the whole session.
            tracing::warn!(username, "refresh token reuse: revoking its session");
            self.inner.store.revoke_family(&found.record.family).await?;
            self.inner.active_sessions.invalidate(&found.record.family);
            return Err(AuthError::InvalidRefreshToken);
        }
        let account = self
            .inner
            .store
            .account_by_username(username)
            .await?
            .ok_or(AuthError::InvalidRefreshToken)?;
        let (tokens, record) = self.issue(&account, &found.record.family)?;
        self.inner.store.insert_refresh(&record).await?;
        Ok(tokens)
    }

    async fn sign_out(&self, access_token: &str) -> Result<()> {
        let claims = self.verify(access_token).await?;
        self.inner.store.revoke_user(&claims.username).await?;
        let username = claims.username.clone();
        // Closures are supported by the builder, so this cannot fail.
        let _ = self
            .inner
            .active_sessions
            .invalidate_entries_if(move |_, owner| *owner == username);
        Ok(())
    }

    async fn verify(&self, access_token: &str) -> Result<Claims> {
        let now = self.inner.clock.now().timestamp();
        let raw = match self.inner.verified.get(access_token) {
            // Same bytes, same signature: only expiry can have changed since.
            Some(raw) if raw.exp > now => raw,
            Some(_) => return Err(AuthError::TokenExpired),
            None => {
                let raw = self.inner.verifier.verify_access(access_token, now)?;
                self.inner
                    .verified
                    .insert(access_token.to_owned(), raw.clone());
                raw
            }
        };
        if let Some(sid) = &raw.sid
            && !self.session_active(sid, &raw.username).await?
        {
            return Err(AuthError::InvalidToken);
        }
        Ok(raw.claims())
    }

    async fn profile(&self, email: &str) -> Result<Profile> {
        self.account(email)
            .await?
            .map(|a| profile(&a))
            .ok_or(AuthError::UserNotFound)
    }

    async fn set_role(&self, email: &str, role: Role) -> Result<()> {
        let mut account = self.account(email).await?.ok_or(AuthError::UserNotFound)?;
        account.role = role;
        self.inner.store.update_account(&account).await?;
        Ok(())
    }

    fn jwks(&self) -> Option<Jwks> {
        Some(Jwks {
            keys: vec![self.inner.key.jwk().clone()],
        })
    }
}

/// One RSA key per test process: generating keys is slow, and tests need many providers.
#[cfg(any(test, feature = "testing"))]
pub fn test_key() -> SigningKey {
    static KEY: std::sync::OnceLock<SigningKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().expect("RSA key generation"))
        .clone()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ManualClock;
    use crate::conformance::{Harness, run_all};
    use crate::sender::MemorySender;

    /// The local provider over `store`, with a memory sender and a manual clock.
    pub(crate) fn harness(store: Arc<dyn AccountStore>) -> Harness {
        let codes = Arc::new(MemorySender::new());
        let clock = ManualClock::starting_now();
        let provider = LocalIdentity::with_key(
            store,
            codes.clone(),
            Arc::new(clock.clone()),
            LocalConfig::default(),
            test_key(),
        );
        Harness {
            provider: Arc::new(provider),
            codes: Some(Arc::new(move |email: &str| codes.last_code(email))),
            clock: Some(clock),
            rotates_refresh_tokens: true,
        }
    }

    #[tokio::test]
    async fn memory_store_passes_the_conformance_suite() {
        run_all(&harness(Arc::new(MemoryStore::new()))).await;
    }

    #[tokio::test]
    async fn provisioned_accounts_are_confirmed_and_signed_in_with_the_given_password() {
        let store: Arc<dyn AccountStore> = Arc::new(MemoryStore::new());
        let provider = LocalIdentity::with_key(
            store,
            Arc::new(MemorySender::new()),
            Arc::new(crate::SystemClock),
            LocalConfig::default(),
            test_key(),
        );
        let people: Vec<(String, String)> = (0..3)
            .map(|i| (format!("Load{i}@Bench.local"), format!("load {i}")))
            .collect();
        let logins = provider.provision(&people, "Festival1!").await.unwrap();
        assert_eq!(logins.len(), 3);
        for (login, (email, _)) in logins.iter().zip(&people) {
            assert_eq!(login.user.email, normalize_email(email));
            let claims = provider.verify(&login.tokens.access_token).await.unwrap();
            assert_eq!(claims.email.as_deref(), Some(login.user.email.as_str()));
        }
        // A real sign-in works with the shared password; a wrong one does not.
        assert!(
            provider
                .sign_in("load1@bench.local", "Festival1!")
                .await
                .is_ok()
        );
        assert!(
            provider
                .sign_in("load1@bench.local", "Wrong1!pass")
                .await
                .is_err()
        );
        // Again: the same accounts, new sessions.
        let again = provider
            .provision(&people[..1], "Festival1!")
            .await
            .unwrap();
        assert_eq!(again[0].user.username, logins[0].user.username);
        assert!(
            provider
                .provision(&[("not-an-email".into(), "x".into())], "Festival1!")
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn the_signing_key_is_generated_once_and_kept() {
        let store: Arc<dyn AccountStore> = Arc::new(MemoryStore::new());
        let sender = Arc::new(MemorySender::new());
        let first = LocalIdentity::new(
            store.clone(),
            sender.clone(),
            Arc::new(crate::SystemClock),
            LocalConfig::default(),
        )
        .await
        .unwrap();
        let second = LocalIdentity::new(
            store,
            sender,
            Arc::new(crate::SystemClock),
            LocalConfig::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            first.jwks(),
            second.jwks(),
            "a restart (or another node) reuses the stored key"
        );
    }

    #[tokio::test]
    async fn a_verified_token_still_expires_and_still_dies_with_its_session() {
        let h = harness(Arc::new(MemoryStore::new()));
        let p = h.provider.as_ref();
        p.sign_up(SignUp {
            email: "v@example.com".into(),
            password: "Festival1!".into(),
            name: "v".into(),
        })
        .await
        .unwrap();
        let code = (h.codes.as_ref().unwrap())("v@example.com").unwrap();
        p.confirm_sign_up("v@example.com", &code).await.unwrap();
        let first = p
            .sign_in("v@example.com", "Festival1!")
            .await
            .unwrap()
            .tokens;
        let second = p
            .sign_in("v@example.com", "Festival1!")
            .await
            .unwrap()
            .tokens;
        // Verified once: the next checks come from the cache.
        p.verify(&first.access_token).await.unwrap();
        p.verify(&second.access_token).await.unwrap();
        p.sign_out(&second.access_token).await.unwrap();
        assert!(matches!(
            p.verify(&first.access_token).await,
            Err(AuthError::InvalidToken)
        ));
        let third = p
            .sign_in("v@example.com", "Festival1!")
            .await
            .unwrap()
            .tokens;
        p.verify(&third.access_token).await.unwrap();
        h.clock.as_ref().unwrap().advance(Duration::hours(2));
        assert!(matches!(
            p.verify(&third.access_token).await,
            Err(AuthError::TokenExpired)
        ));
    }

    #[tokio::test]
    async fn codes_are_six_digits_and_stored_hashed() {
        let store = Arc::new(MemoryStore::new());
        let h = harness(store.clone());
        h.provider
            .sign_up(SignUp {
                email: "c@example.com".into(),
                password: "Festival1!".into(),
                name: "c".into(),
            })
            .await
            .unwrap();
        let code = (h.codes.as_ref().unwrap())("c@example.com").unwrap();
        assert_eq!(code.len(), 6);
        assert!(code.chars().all(|c| c.is_ascii_digit()));
        let account = store
            .account_by_email("c@example.com")
            .await
            .unwrap()
            .unwrap();
        assert_ne!(account.code_hash.as_deref(), Some(code.as_str()));
        assert!(account.password_hash.starts_with("$argon2id$"));
    }
}
