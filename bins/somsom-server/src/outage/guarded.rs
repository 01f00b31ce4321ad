//! Engines that stop asking a dependency known to be down: each call goes through
//! [`Dependency::call`], so while Redis is down a waiting-room request, a cache lookup or a
//! presence update fails at once with the engine's own "unavailable" error (which the API
//! answers as 503 with `Retry-After`, and which the search cache treats as a miss). The same for
//! the AWS services a request may need: Cognito and the DynamoDB message store.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chat_relay::{
    Appended, ChatError, ChatMessage, Draft, HistoryPage, MessageStore, Presence, RoomId, UserId,
};
use chrono::{DateTime, Utc};
use cognito_auth::jwt::Jwks;
use cognito_auth::{
    AuthError, Claims, IdentityProvider, Login, Profile, Revocation, Role, SignUp, SignUpOutcome,
    Tokens,
};
use search_cache::{CacheError, CacheStore, Generation, Lookup};
use waiting_queue::{
    Admission, Consumption, Place, Policy, QueueError, QueueName, QueueStats, Tick, TickRule,
    WaitingQueue,
};

use super::{Dependency, Recovery};

/// Delegates each method to `self.inner` through `self.dependency`.
macro_rules! through {
    ($self:ident, $error:ident, $call:expr) => {
        $self
            .dependency
            .call(
                |down| $error::unavailable($self.dependency.name(), down),
                $error::is_retryable,
                $call,
            )
            .await
    };
}

/// A waiting queue that fails fast while its backend is down.
#[derive(Debug)]
pub struct GuardedQueue {
    inner: Arc<dyn WaitingQueue>,
    dependency: Arc<Dependency>,
}

impl GuardedQueue {
    /// `inner`, asked only while `dependency` is up.
    pub fn new(inner: Arc<dyn WaitingQueue>, dependency: Arc<Dependency>) -> Self {
        Self { inner, dependency }
    }
}

#[async_trait]
impl WaitingQueue for GuardedQueue {
    async fn join(&self, queue: &QueueName, user: &str) -> waiting_queue::Result<Place> {
        through!(self, QueueError, self.inner.join(queue, user))
    }
    async fn place(&self, queue: &QueueName, user: &str) -> waiting_queue::Result<Option<Place>> {
        through!(self, QueueError, self.inner.place(queue, user))
    }
    async fn rank(&self, queue: &QueueName, user: &str) -> waiting_queue::Result<Option<u64>> {
        through!(self, QueueError, self.inner.rank(queue, user))
    }
    async fn admission(
        &self,
        queue: &QueueName,
        user: &str,
    ) -> waiting_queue::Result<Option<Admission>> {
        through!(self, QueueError, self.inner.admission(queue, user))
    }
    async fn leave(&self, queue: &QueueName, user: &str) -> waiting_queue::Result<bool> {
        through!(self, QueueError, self.inner.leave(queue, user))
    }
    async fn finish(&self, queue: &QueueName, user: &str) -> waiting_queue::Result<bool> {
        through!(self, QueueError, self.inner.finish(queue, user))
    }
    async fn consume(
        &self,
        queue: &QueueName,
        user: &str,
        admission: u64,
    ) -> waiting_queue::Result<Consumption> {
        through!(self, QueueError, self.inner.consume(queue, user, admission))
    }
    async fn release(
        &self,
        queue: &QueueName,
        user: &str,
        admission: u64,
    ) -> waiting_queue::Result<bool> {
        through!(self, QueueError, self.inner.release(queue, user, admission))
    }
    async fn admit(&self, queue: &QueueName, count: u32) -> waiting_queue::Result<Tick> {
        through!(self, QueueError, self.inner.admit(queue, count))
    }
    async fn tick(&self, queue: &QueueName, rule: TickRule) -> waiting_queue::Result<Tick> {
        through!(self, QueueError, self.inner.tick(queue, rule))
    }
    async fn configure(
        &self,
        queue: &QueueName,
        policy: Option<Policy>,
    ) -> waiting_queue::Result<()> {
        through!(self, QueueError, self.inner.configure(queue, policy))
    }
    async fn schedule(
        &self,
        queue: &QueueName,
        opens_at: Option<DateTime<Utc>>,
    ) -> waiting_queue::Result<()> {
        through!(self, QueueError, self.inner.schedule(queue, opens_at))
    }
    async fn set_sold_out(&self, queue: &QueueName, sold_out: bool) -> waiting_queue::Result<()> {
        through!(self, QueueError, self.inner.set_sold_out(queue, sold_out))
    }
    async fn set_paused(&self, queue: &QueueName, paused: bool) -> waiting_queue::Result<()> {
        through!(self, QueueError, self.inner.set_paused(queue, paused))
    }
    async fn stats(&self, queue: &QueueName) -> waiting_queue::Result<QueueStats> {
        through!(self, QueueError, self.inner.stats(queue))
    }
    async fn queues(&self) -> waiting_queue::Result<Vec<QueueName>> {
        through!(self, QueueError, self.inner.queues())
    }
    async fn version(&self, queue: &QueueName) -> waiting_queue::Result<u64> {
        through!(self, QueueError, self.inner.version(queue))
    }
}

/// A cache store that fails fast while its backend is down (the cache-aside then reads the
/// database), and that remembers the invalidations it could not make, making them before the
/// backend is used again: otherwise an entry written before the outage would outlive a change
/// made during it.
#[derive(Debug)]
pub struct GuardedCache {
    inner: Arc<dyn CacheStore + Send + Sync>,
    dependency: Arc<Dependency>,
    missed: Arc<Mutex<HashSet<String>>>,
}

impl GuardedCache {
    /// `inner`, asked only while `dependency` is up; registers its catching up with it.
    pub fn new(inner: Arc<dyn CacheStore + Send + Sync>, dependency: Arc<Dependency>) -> Self {
        let missed = Arc::new(Mutex::new(HashSet::new()));
        dependency.on_recovery(Arc::new(Invalidations {
            inner: inner.clone(),
            missed: missed.clone(),
        }));
        Self {
            inner,
            dependency,
            missed,
        }
    }
}

/// The invalidations a cache missed during an outage.
struct Invalidations {
    inner: Arc<dyn CacheStore + Send + Sync>,
    missed: Arc<Mutex<HashSet<String>>>,
}

#[async_trait]
impl Recovery for Invalidations {
    async fn recover(&self) -> Result<(), String> {
        let missed: Vec<String> = self
            .missed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        for namespace in missed {
            self.inner
                .invalidate(&namespace)
                .await
                .map_err(|e| e.to_string())?;
            self.missed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&namespace);
        }
        Ok(())
    }
}

#[async_trait]
impl CacheStore for GuardedCache {
    async fn get(&self, namespace: &str, key: &str) -> Result<Lookup, CacheError> {
        through!(self, CacheError, self.inner.get(namespace, key))
    }

    async fn put(
        &self,
        namespace: &str,
        generation: Generation,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        through!(
            self,
            CacheError,
            self.inner.put(namespace, generation, key, value, ttl)
        )
    }

    async fn invalidate(&self, namespace: &str) -> Result<Generation, CacheError> {
        let result = through!(self, CacheError, self.inner.invalidate(namespace));
        if result.is_err() {
            self.missed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(namespace.to_owned());
        }
        result
    }
}

/// Presence that fails fast while its backend is down (the sequencer then delivers without
/// unread counts, and a subscription is refused with a reason).
#[derive(Debug)]
pub struct GuardedPresence {
    inner: Arc<dyn Presence>,
    dependency: Arc<Dependency>,
}

impl GuardedPresence {
    /// `inner`, asked only while `dependency` is up.
    pub fn new(inner: Arc<dyn Presence>, dependency: Arc<Dependency>) -> Self {
        Self { inner, dependency }
    }
}

#[async_trait]
impl Presence for GuardedPresence {
    async fn forget(&self, room: RoomId, user: UserId) -> chat_relay::Result<()> {
        through!(self, ChatError, self.inner.forget(room, user))
    }
    async fn enter(&self, room: RoomId, user: UserId) -> chat_relay::Result<()> {
        through!(self, ChatError, self.inner.enter(room, user))
    }
    async fn exit(&self, room: RoomId, user: UserId) -> chat_relay::Result<()> {
        through!(self, ChatError, self.inner.exit(room, user))
    }
    async fn is_present(&self, room: RoomId, user: UserId) -> chat_relay::Result<bool> {
        through!(self, ChatError, self.inner.is_present(room, user))
    }
    async fn count_message(
        &self,
        room: RoomId,
        members: &[UserId],
    ) -> chat_relay::Result<Vec<(UserId, u64)>> {
        through!(self, ChatError, self.inner.count_message(room, members))
    }
    async fn unread(&self, user: UserId, rooms: &[RoomId]) -> chat_relay::Result<Vec<Option<u64>>> {
        through!(self, ChatError, self.inner.unread(user, rooms))
    }
}

/// An identity provider (Cognito) that fails fast while its service is down. Verifying a token
/// is local (the pool's published keys) and goes on regardless, so signed-in users keep using
/// every route that does not need the provider itself.
pub struct GuardedIdentity {
    inner: Arc<dyn IdentityProvider>,
    dependency: Arc<Dependency>,
}

impl GuardedIdentity {
    /// `inner`, asked only while `dependency` is up (except to verify a token).
    pub fn new(inner: Arc<dyn IdentityProvider>, dependency: Arc<Dependency>) -> Self {
        Self { inner, dependency }
    }
}

#[async_trait]
impl IdentityProvider for GuardedIdentity {
    async fn sign_up(&self, request: SignUp) -> cognito_auth::Result<SignUpOutcome> {
        through!(self, AuthError, self.inner.sign_up(request))
    }
    async fn confirm_sign_up(
        &self,
        email: &str,
        code: &str,
        password: Option<&str>,
    ) -> cognito_auth::Result<Profile> {
        through!(
            self,
            AuthError,
            self.inner.confirm_sign_up(email, code, password)
        )
    }
    async fn resend_confirmation_code(&self, email: &str) -> cognito_auth::Result<()> {
        through!(self, AuthError, self.inner.resend_confirmation_code(email))
    }
    async fn forgot_password(&self, email: &str) -> cognito_auth::Result<()> {
        through!(self, AuthError, self.inner.forgot_password(email))
    }
    async fn reset_password(
        &self,
        email: &str,
        code: &str,
        new_password: &str,
    ) -> cognito_auth::Result<()> {
        through!(
            self,
            AuthError,
            self.inner.reset_password(email, code, new_password)
        )
    }
    async fn sign_in(&self, email: &str, password: &str) -> cognito_auth::Result<Login> {
        through!(self, AuthError, self.inner.sign_in(email, password))
    }
    async fn refresh(&self, username: &str, refresh_token: &str) -> cognito_auth::Result<Tokens> {
        through!(self, AuthError, self.inner.refresh(username, refresh_token))
    }
    async fn sign_out(&self, access_token: &str) -> cognito_auth::Result<()> {
        through!(self, AuthError, self.inner.sign_out(access_token))
    }
    async fn verify(&self, access_token: &str) -> cognito_auth::Result<Claims> {
        self.inner.verify(access_token).await
    }
    async fn profile(&self, email: &str) -> cognito_auth::Result<Profile> {
        through!(self, AuthError, self.inner.profile(email))
    }
    async fn set_role(&self, email: &str, role: Role) -> cognito_auth::Result<()> {
        through!(self, AuthError, self.inner.set_role(email, role))
    }
    async fn poll_revocations(&self) -> cognito_auth::Result<Vec<Revocation>> {
        self.inner.poll_revocations().await
    }
    async fn purge_expired(&self) -> cognito_auth::Result<u64> {
        self.inner.purge_expired().await
    }
    fn jwks(&self) -> Option<Jwks> {
        self.inner.jwks()
    }
}

/// A message store (DynamoDB) that fails fast while its service is down.
#[derive(Debug)]
pub struct GuardedStore {
    inner: Arc<dyn MessageStore>,
    dependency: Arc<Dependency>,
}

impl GuardedStore {
    /// `inner`, asked only while `dependency` is up.
    pub fn new(inner: Arc<dyn MessageStore>, dependency: Arc<Dependency>) -> Self {
        Self { inner, dependency }
    }
}

#[async_trait]
impl MessageStore for GuardedStore {
    async fn append(&self, draft: &Draft) -> chat_relay::Result<Appended> {
        through!(self, ChatError, self.inner.append(draft))
    }
    async fn history(
        &self,
        room: RoomId,
        before: Option<i64>,
        limit: usize,
    ) -> chat_relay::Result<HistoryPage> {
        through!(self, ChatError, self.inner.history(room, before, limit))
    }
    async fn after(
        &self,
        room: RoomId,
        after: i64,
        limit: usize,
    ) -> chat_relay::Result<Vec<ChatMessage>> {
        through!(self, ChatError, self.inner.after(room, after, limit))
    }
}
