//! The local identity provider: accounts in an [`AccountStore`], argon2id passwords, 6-digit
//! e-mail codes, RS256 tokens with a persisted key, rotating refresh tokens with reuse detection.
//!
//! What it does against hostile callers:
//!
//! - **Password hashes are rationed** ([`LocalConfig::kdf_concurrency`], `kdf_queue`): argon2id
//!   takes 19 MiB and tens of milliseconds each; past the queue a caller gets
//!   [`AuthError::Overloaded`] at once instead of memory and latency for everyone.
//! - **Nobody keeps an address they do not own.** A sign-up for an address whose account is
//!   still unconfirmed replaces that pending account (new password, new code). An address signed
//!   up more than once is *contested*: confirming it needs the latest sign-up's password as well
//!   as the code, so a squatter's password never becomes the mailbox owner's account. A pending
//!   account lives [`LocalConfig::pending_ttl`] from its first sign-up.
//! - **Codes cannot be guessed**: each code allows `max_code_attempts` guesses and each code
//!   window (`code_window`) `max_window_attempts`, however many codes are resent; every guess is
//!   taken atomically in the store before it is compared.
//! - **Sign-out reaches every node within a poll**: nodes learn revoked sessions with one query
//!   per poll ([`IdentityProvider::poll_revocations`]) instead of one per request; while the
//!   list is stale they fall back to reading the session.

mod memory;
mod revocations;
#[cfg(any(feature = "sqlite", feature = "mysql"))]
mod sql;
pub mod store;

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

pub use memory::MemoryStore;
use revocations::Revocations;
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub use sql::SqlStore;
use store::{Account, AccountStore, RefreshRecord};

use crate::jwt::{AccessTokenClaims, IdTokenClaims, Jwks, SigningKey, Verifier};
use crate::password::{self, Policy};
use crate::sender::{CodePurpose, CodeSender, Recipient};
use crate::{
    AuthError, Claims, Clock, IdentityProvider, Login, Profile, Result, Revocation, Role, SignUp,
    SignUpOutcome, Tokens, normalize_email,
};

/// Settings of the local provider.
#[derive(Debug, Clone)]
#[non_exhaustive]
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
    /// Password-reset code lifetime.
    pub reset_code_ttl: Duration,
    /// How long an unconfirmed account lives after its first sign-up.
    pub pending_ttl: Duration,
    /// Guesses allowed per code (a new one must then be requested).
    pub max_code_attempts: u32,
    /// Guesses allowed per code window, over every code sent in it.
    pub max_window_attempts: u32,
    /// The code window: it begins with the first code sent after the previous one ended.
    pub code_window: Duration,
    /// Password rules.
    pub policy: Policy,
    /// How long this node trusts that a session it saw active is still active, and how stale its
    /// list of revoked sessions may be before it reads sessions from the store again. A sign-out
    /// on this node takes effect at once; on another node sharing the store, within this time
    /// (with [`IdentityProvider::poll_revocations`] called at this interval). Zero reads the
    /// store on every verification.
    pub session_cache: Duration,
    /// Password hashes (sign-up, login, reset) running at once.
    pub kdf_concurrency: usize,
    /// Password hashes that may wait for one of those; past that, [`AuthError::Overloaded`].
    pub kdf_queue: usize,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            issuer: "local".into(),
            client_id: "web".into(),
            access_ttl: Duration::hours(1),
            refresh_ttl: Duration::days(30),
            code_ttl: Duration::hours(24),
            reset_code_ttl: Duration::hours(1),
            pending_ttl: Duration::hours(24),
            max_code_attempts: 5,
            max_window_attempts: 20,
            code_window: Duration::hours(24),
            policy: Policy::default(),
            session_cache: Duration::seconds(1),
            kdf_concurrency: std::thread::available_parallelism().map_or(2, usize::from),
            kdf_queue: 64,
        }
    }
}

impl LocalConfig {
    /// The defaults with this token issuer.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            ..Self::default()
        }
    }

    /// With this session cache (see [`LocalConfig::session_cache`]).
    #[must_use]
    pub fn with_session_cache(mut self, session_cache: Duration) -> Self {
        self.session_cache = session_cache;
        self
    }

    /// With `concurrency` password hashes at once and `queue` more waiting.
    #[must_use]
    pub fn with_kdf_limits(mut self, concurrency: usize, queue: usize) -> Self {
        self.kdf_concurrency = concurrency.max(1);
        self.kdf_queue = queue;
        self
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
    /// Sessions (token families) seen active lately, with their owner: the fallback while the
    /// revocation list is stale.
    active_sessions: moka::sync::Cache<String, String>,
    revocations: Revocations,
    kdf: Kdf,
    config: LocalConfig,
}

/// Rations password hashing: a fixed set of threads hash one password each at a time, and
/// `admit` bounds those plus the waiting. Dedicated threads, not the runtime's blocking pool:
/// argon2's 19 MiB per hash lands in each thread's malloc arena and stays there, so memory is
/// bounded by the hashing threads, not by however many blocking threads ever ran one.
#[derive(Debug)]
struct Kdf {
    admit: Semaphore,
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<KdfJob>>,
}

type KdfJob = Box<dyn FnOnce(&mut password::Workspace) + Send>;

impl Kdf {
    fn new(concurrency: usize, queue: usize) -> Self {
        let concurrency = concurrency.max(1);
        let (tx, rx) = std::sync::mpsc::channel::<KdfJob>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for n in 0..concurrency {
            let rx = rx.clone();
            // The threads end when the provider (the sender) is dropped.
            let spawned = std::thread::Builder::new()
                .name(format!("password-hash-{n}"))
                .spawn(move || {
                    // Allocated once per thread, on its first job.
                    let mut workspace: Option<password::Workspace> = None;
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(workspace.get_or_insert_with(password::Workspace::new)),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(
                    error = &e as &dyn std::error::Error,
                    "cannot start a password-hash thread"
                );
            }
        }
        Self {
            admit: Semaphore::new(concurrency + queue),
            jobs: std::sync::Mutex::new(tx),
        }
    }

    /// Runs `f` (argon2, in the thread's workspace) on a hashing thread, or refuses at once when
    /// too many wait.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut password::Workspace) -> T + Send + 'static,
    ) -> Result<T> {
        let _admitted = self
            .admit
            .try_acquire()
            .map_err(|_| AuthError::Overloaded)?;
        let (done, result) = tokio::sync::oneshot::channel();
        let job: KdfJob = Box::new(move |workspace| {
            let _ = done.send(f(workspace));
        });
        self.jobs
            .lock()
            .map_err(|_| AuthError::unavailable("argon2", "hashing threads poisoned"))?
            .send(job)
            .map_err(|_| AuthError::unavailable("argon2", "no hashing thread"))?;
        result
            .await
            .map_err(|_| AuthError::unavailable("argon2", "a hashing thread died"))
    }
}

/// How an account stands for confirmation.
enum Pending {
    /// No account, or a pending one past its lifetime.
    None,
    /// Unconfirmed and alive.
    Live(Account),
    /// Confirmed.
    Confirmed(Account),
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

    /// A provider with a given key: from a file or the environment, so that it need not be kept
    /// in the database (and tests share one to skip key generation).
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
                verified: moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(std::time::Duration::from_secs(300))
                    .build(),
                active_sessions: moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(config.session_cache.to_std().unwrap_or_default())
                    .support_invalidation_closures()
                    .build(),
                revocations: Revocations::new(config.access_ttl, config.session_cache),
                kdf: Kdf::new(config.kdf_concurrency, config.kdf_queue),
                clock,
                key,
                verifier,
                config,
            }),
        }
    }

    fn now_ms(&self) -> i64 {
        self.inner.clock.now().timestamp_millis()
    }

    async fn session_active(&self, sid: &str, username: &str) -> Result<bool> {
        let cache = self.inner.config.session_cache > Duration::zero();
        match self.inner.revocations.lookup(sid, self.now_ms()) {
            Some(revoked) => return Ok(!revoked),
            None if cache && self.inner.active_sessions.contains_key(sid) => return Ok(true),
            None => {}
        }
        let active = self.inner.store.family_active(sid).await?;
        if active && cache {
            self.inner
                .active_sessions
                .insert(sid.to_owned(), username.to_owned());
        }
        Ok(active)
    }

    /// Revokes every session of `username` in the store and ends them on this node at once
    /// (other nodes learn it from their next poll).
    async fn revoke_user(&self, username: &str) -> Result<()> {
        let now = self.now_ms();
        self.inner.store.revoke_user(username, now).await?;
        let owner = username.to_owned();
        // Closures are supported by the builder, so this cannot fail.
        let _ = self
            .inner
            .active_sessions
            .invalidate_entries_if(move |_, o| *o == owner);
        // Which families that was: the list must know them before the next poll.
        let revoked = self.inner.store.revoked_since(now).await?;
        self.inner.revocations.learn(revoked, now, false);
        Ok(())
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
        let password_hash = self
            .inner
            .kdf
            .run(move |ws| password::hash_in(&owned, ws))
            .await??;
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
                        confirmed: true,
                        ..self.new_account(email, name, password_hash.clone())
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

    fn new_account(&self, email: String, name: String, password_hash: String) -> Account {
        Account {
            username: uuid::Uuid::new_v4().to_string(),
            email,
            name,
            password_hash,
            role: Role::User,
            confirmed: false,
            code_hash: None,
            code_expires_at: None,
            code_attempts: 0,
            window_attempts: 0,
            window_started_at: 0,
            sign_ups: 1,
            created_at: self.now_ms(),
        }
    }

    async fn account(&self, email: &str) -> Result<Option<Account>> {
        Ok(self
            .inner
            .store
            .account_by_email(&normalize_email(email))
            .await?)
    }

    /// The account of `email` as confirmation sees it: a pending account past its lifetime is
    /// as good as none.
    async fn pending(&self, email: &str) -> Result<Pending> {
        Ok(match self.account(email).await? {
            Some(a) if a.confirmed => Pending::Confirmed(a),
            Some(a) if !self.expired(&a) => Pending::Live(a),
            _ => Pending::None,
        })
    }

    fn expired(&self, account: &Account) -> bool {
        !account.confirmed
            && account.created_at + self.inner.config.pending_ttl.num_milliseconds()
                <= self.now_ms()
    }

    /// Puts a fresh code on `account` (in memory; the caller stores it) and returns it. The code
    /// window starts over if the last one ended.
    fn fresh_code(&self, account: &mut Account, ttl: Duration) -> String {
        let now = self.now_ms();
        let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000));
        account.code_hash = Some(code_hash(&account.username, &code));
        let mut expires = now + ttl.num_milliseconds();
        if !account.confirmed {
            // A pending account's codes die with it.
            expires =
                expires.min(account.created_at + self.inner.config.pending_ttl.num_milliseconds());
        }
        account.code_expires_at = Some(expires);
        account.code_attempts = 0;
        if now >= account.window_started_at + self.inner.config.code_window.num_milliseconds() {
            account.window_started_at = now;
            account.window_attempts = 0;
        }
        code
    }

    async fn send(&self, account: &Account, code: &str, purpose: CodePurpose) -> Result<()> {
        let to = Recipient {
            email: account.email.clone(),
            name: account.name.clone(),
        };
        self.inner.sender.send_code(&to, code, purpose).await
    }

    /// Checks `code` against the account's current one, counting the guess first (atomically,
    /// in the store), so that concurrent guesses cannot exceed the caps.
    async fn check_code(&self, account: &Account, code: &str) -> Result<String> {
        let Some(expected) = account.code_hash.clone() else {
            return Err(AuthError::CodeExpired);
        };
        if account.code_expires_at.is_none_or(|at| at <= self.now_ms()) {
            return Err(AuthError::CodeExpired);
        }
        let config = &self.inner.config;
        if !self
            .inner
            .store
            .take_code_attempt(
                &account.email,
                config.max_code_attempts,
                config.max_window_attempts,
            )
            .await?
        {
            return Err(AuthError::TooManyAttempts);
        }
        if code_hash(&account.username, code.trim()) != expected {
            // The last allowed guess tells the caller to stop.
            let used = account.code_attempts + 1;
            let window_used = account.window_attempts + 1;
            return Err(
                if used >= config.max_code_attempts || window_used >= config.max_window_attempts {
                    AuthError::TooManyAttempts
                } else {
                    AuthError::CodeMismatch
                },
            );
        }
        Ok(expected)
    }

    async fn password_matches(&self, password: &str, phc: &str) -> Result<bool> {
        let (password, phc) = (password.to_owned(), phc.to_owned());
        self.inner
            .kdf
            .run(move |ws| password::verify_in(&password, &phc, ws))
            .await
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

#[async_trait]
impl IdentityProvider for LocalIdentity {
    async fn sign_up(&self, request: SignUp) -> Result<SignUpOutcome> {
        let (email, name) = request.validate(&self.inner.config.policy)?;
        // Cheap refusal before the expensive hash.
        let existing = self.account(&email).await?;
        if existing.as_ref().is_some_and(|a| a.confirmed) {
            return Err(AuthError::UserAlreadyExists);
        }
        let password = request.password;
        let password_hash = self
            .inner
            .kdf
            .run(move |ws| password::hash_in(&password, ws))
            .await??;
        let existed = existing.is_some();
        let mut account = match existing {
            // A later sign-up replaces a live pending one: the address is now contested.
            Some(pending) if !self.expired(&pending) => Account {
                name,
                password_hash,
                sign_ups: pending.sign_ups.saturating_add(1),
                ..pending
            },
            // One past its lifetime starts over, keeping its row and handle.
            Some(expired) => Account {
                username: expired.username,
                ..self.new_account(email, name, password_hash)
            },
            None => self.new_account(email, name, password_hash),
        };
        let code = self.fresh_code(&mut account, self.inner.config.code_ttl);
        if existed {
            self.inner.store.update_account(&account).await?;
        } else {
            self.inner.store.insert_account(&account).await?;
        }
        self.send(&account, &code, CodePurpose::SignUp).await?;
        Ok(SignUpOutcome {
            username: account.username,
            confirmed: false,
        })
    }

    async fn confirm_sign_up(
        &self,
        email: &str,
        code: &str,
        password: Option<&str>,
    ) -> Result<Profile> {
        let account = match self.pending(email).await? {
            Pending::None => return Err(AuthError::UserNotFound),
            Pending::Confirmed(_) => return Err(AuthError::AlreadyConfirmed),
            Pending::Live(account) => account,
        };
        let expected = self.check_code(&account, code).await?;
        match password {
            Some(password)
                if !self
                    .password_matches(password, &account.password_hash)
                    .await? =>
            {
                return Err(AuthError::NotAuthorized);
            }
            None if account.sign_ups > 1 => return Err(AuthError::PasswordRequired),
            Some(_) | None => {}
        }
        let confirmed = Account {
            confirmed: true,
            code_hash: None,
            code_expires_at: None,
            code_attempts: 0,
            window_attempts: 0,
            sign_ups: 1,
            ..account
        };
        // Only if no later sign-up replaced the account (and its password) meanwhile.
        if !self
            .inner
            .store
            .update_if_code(&confirmed, &expected)
            .await?
        {
            return Err(AuthError::CodeExpired);
        }
        Ok(profile(&confirmed))
    }

    async fn resend_confirmation_code(&self, email: &str) -> Result<()> {
        let mut account = match self.pending(email).await? {
            Pending::None => return Err(AuthError::UserNotFound),
            Pending::Confirmed(_) => return Err(AuthError::AlreadyConfirmed),
            Pending::Live(account) => account,
        };
        let code = self.fresh_code(&mut account, self.inner.config.code_ttl);
        self.inner.store.update_account(&account).await?;
        self.send(&account, &code, CodePurpose::SignUp).await
    }

    async fn forgot_password(&self, email: &str) -> Result<()> {
        crate::validate_email(email)?;
        let Pending::Confirmed(mut account) = self.pending(email).await? else {
            // The same answer as for an account: this must not tell who has one.
            return Ok(());
        };
        let code = self.fresh_code(&mut account, self.inner.config.reset_code_ttl);
        self.inner.store.update_account(&account).await?;
        self.send(&account, &code, CodePurpose::PasswordReset).await
    }

    async fn reset_password(&self, email: &str, code: &str, new_password: &str) -> Result<()> {
        self.inner.config.policy.check(new_password)?;
        let Pending::Confirmed(account) = self.pending(email).await? else {
            return Err(AuthError::CodeMismatch);
        };
        let expected = self.check_code(&account, code).await?;
        let new_password = new_password.to_owned();
        let password_hash = self
            .inner
            .kdf
            .run(move |ws| password::hash_in(&new_password, ws))
            .await??;
        let username = account.username.clone();
        let updated = Account {
            password_hash,
            code_hash: None,
            code_expires_at: None,
            code_attempts: 0,
            window_attempts: 0,
            ..account
        };
        if !self.inner.store.update_if_code(&updated, &expected).await? {
            return Err(AuthError::CodeExpired);
        }
        // Whoever knew the old password is out, everywhere.
        self.revoke_user(&username).await
    }

    async fn sign_in(&self, email: &str, password: &str) -> Result<Login> {
        let account = self.account(email).await?.filter(|a| !self.expired(a));
        // The same work and the same answer whether or not the e-mail exists.
        let phc = account.as_ref().map_or_else(
            || password::decoy_hash().to_owned(),
            |a| a.password_hash.clone(),
        );
        let matches = self.password_matches(password, &phc).await?;
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
            let now = self.now_ms();
            self.inner
                .store
                .revoke_family(&found.record.family, now)
                .await?;
            self.inner.active_sessions.invalidate(&found.record.family);
            self.inner
                .revocations
                .revoke_locally(&found.record.family, username, now);
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
        self.revoke_user(&claims.username).await
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

    async fn poll_revocations(&self) -> Result<Vec<Revocation>> {
        let now = self.now_ms();
        let since = self.inner.revocations.poll_from(now);
        let seen = self.inner.store.revoked_since(since).await?;
        Ok(self.inner.revocations.learn(seen, now, true))
    }

    /// Deletes unconfirmed accounts past [`LocalConfig::pending_ttl`]: it bounds what anonymous
    /// sign-ups leave in the store.
    async fn purge_expired(&self) -> Result<u64> {
        let before = self.now_ms() - self.inner.config.pending_ttl.num_milliseconds();
        Ok(self.inner.store.purge_pending(before).await?)
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
        let node = || {
            LocalIdentity::with_key(
                store.clone(),
                codes.clone(),
                Arc::new(clock.clone()),
                LocalConfig::default(),
                test_key(),
            )
        };
        let (provider, twin) = (node(), node());
        Harness {
            provider: Arc::new(provider),
            codes: Some(Arc::new(move |email: &str| codes.last_code(email))),
            clock: Some(clock),
            rotates_refresh_tokens: true,
            detects_contested_sign_ups: true,
            twin: Some(Arc::new(twin)),
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
        p.confirm_sign_up("v@example.com", &code, None)
            .await
            .unwrap();
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
