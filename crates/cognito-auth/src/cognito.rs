//! AWS Cognito user pools (feature `cognito`): the same flows through the Cognito API, tokens
//! verified locally against the pool's JWKS.
//!
//! The pool should use e-mail as a username alias (`UsernameAttributes = [email]`), so the stable
//! handle is Cognito's generated `sub`, and have an app client allowing `USER_PASSWORD_AUTH` and
//! `REFRESH_TOKEN_AUTH`. With a client secret, every call carries the `SECRET_HASH`.
//!
//! Sign-out calls `GlobalSignOut` (Cognito then refuses the user's refresh tokens) and, since
//! Cognito's JWTs stay verifiable until they expire, also remembers the revocation in this
//! process: the presented token and every token of that user issued up to that second are
//! refused here until they expire. Other server nodes learn of it only through the refresh
//! tokens; share revocations (e.g. through Redis) where that matters.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::error::ProvideErrorMetadata;
use aws_sdk_cognitoidentityprovider::types::{AttributeType, AuthFlowType};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::jwt::{Jwks, Refusal, Verifier};
use crate::password::Policy;
use crate::{
    AuthError, Claims, Clock, IdentityProvider, Login, Profile, Result, Role, SignUp,
    SignUpOutcome, Tokens, normalize_email,
};

/// Where the pool is: [`CognitoConfig::new`], then `with_*` for what a pool may add.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CognitoConfig {
    /// Region of the pool, e.g. `ap-northeast-2`.
    pub region: String,
    /// Pool id, e.g. `ap-northeast-2_AbCdEf`.
    pub user_pool_id: String,
    /// App client id.
    pub client_id: String,
    /// App client secret, when the client has one.
    pub client_secret: Option<String>,
    /// JWKS URL; by default the pool's public one. With a local endpoint (moto) it is
    /// `{endpoint}/{pool}/.well-known/jwks.json`.
    pub jwks_url: Option<String>,
}

impl CognitoConfig {
    /// The pool `user_pool_id` in `region`, used through the app client `client_id`.
    pub fn new(
        region: impl Into<String>,
        user_pool_id: impl Into<String>,
        client_id: impl Into<String>,
    ) -> Self {
        Self {
            region: region.into(),
            user_pool_id: user_pool_id.into(),
            client_id: client_id.into(),
            client_secret: None,
            jwks_url: None,
        }
    }

    /// The app client's secret, when it has one.
    #[must_use]
    pub fn with_client_secret(mut self, secret: Option<String>) -> Self {
        self.client_secret = secret;
        self
    }

    /// Where the pool's keys are, when not at the public address (a local endpoint).
    #[must_use]
    pub fn with_jwks_url(mut self, url: Option<String>) -> Self {
        self.jwks_url = url;
        self
    }

    /// The `iss` of the pool's tokens.
    pub fn issuer(&self) -> String {
        format!(
            "https://cognito-idp.{}.amazonaws.com/{}",
            self.region, self.user_pool_id
        )
    }

    fn jwks_url(&self) -> String {
        self.jwks_url
            .clone()
            .unwrap_or_else(|| format!("{}/.well-known/jwks.json", self.issuer()))
    }
}

/// The Cognito identity provider.
pub struct CognitoIdentity {
    client: Client,
    config: CognitoConfig,
    http: reqwest::Client,
    verifier: RwLock<(Arc<Verifier>, Option<Instant>)>,
    /// username → the second up to which its access tokens are revoked.
    revoked_before: moka::sync::Cache<String, i64>,
    clock: Arc<dyn Clock>,
    policy: Policy,
}

impl std::fmt::Debug for CognitoIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CognitoIdentity")
            .field("user_pool_id", &self.config.user_pool_id)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

const ADMIN_GROUP: &str = "ADMIN";
const JWKS_REFETCH_AFTER: Duration = Duration::from_secs(30);

fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> AuthError {
    AuthError::unavailable("cognito", e)
}

impl CognitoIdentity {
    /// Verifies an access token (signature, claims, expiry, local revocation) and returns its
    /// raw claims.
    async fn verify_raw(&self, access_token: &str) -> Result<crate::jwt::AccessTokenClaims> {
        let now = self.clock.now().timestamp();
        let (verifier, fetched) = self.current_verifier();
        let raw = match verifier.verify_access(access_token, now) {
            // A key we do not know: the pool may have rotated; look again (not too often).
            Err(Refusal::UnknownKey)
                if fetched.is_none_or(|t| t.elapsed() > JWKS_REFETCH_AFTER) =>
            {
                self.refetch_jwks().await?;
                self.current_verifier().0.verify_access(access_token, now)?
            }
            other => other?,
        };
        if let Some(revoked) = self.revoked_before.get(&raw.username)
            && raw.iat <= revoked
        {
            return Err(AuthError::InvalidToken);
        }
        Ok(raw)
    }

    /// A provider for the pool in `config`, talking through `client`. Fetches the JWKS once.
    pub async fn new(client: Client, config: CognitoConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(unavailable)?;
        let provider = Self {
            client,
            http,
            verifier: RwLock::new((Arc::new(Verifier::new(&Jwks::default(), "", None)), None)),
            revoked_before: moka::sync::Cache::builder()
                .time_to_live(Duration::from_secs(24 * 3600))
                .build(),
            clock,
            policy: Policy::default(),
            config,
        };
        provider.refetch_jwks().await?;
        Ok(provider)
    }

    async fn refetch_jwks(&self) -> Result<()> {
        let jwks: Jwks = self
            .http
            .get(self.config.jwks_url())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        let verifier = Verifier::new(&jwks, &self.config.issuer(), Some(&self.config.client_id));
        *self.verifier.write().expect("verifier lock") = (Arc::new(verifier), Some(Instant::now()));
        Ok(())
    }

    fn current_verifier(&self) -> (Arc<Verifier>, Option<Instant>) {
        self.verifier.read().expect("verifier lock").clone()
    }

    fn secret_hash(&self, username: &str) -> Option<String> {
        let secret = self.config.client_secret.as_ref()?;
        Some(secret_hash(secret, username, &self.config.client_id))
    }

    fn tokens(
        result: Option<&aws_sdk_cognitoidentityprovider::types::AuthenticationResultType>,
    ) -> Result<Tokens> {
        let r = result.ok_or_else(|| {
            AuthError::unavailable("cognito", "no authentication result (challenge?)")
        })?;
        Ok(Tokens {
            access_token: r.access_token().unwrap_or_default().to_owned(),
            id_token: r.id_token().unwrap_or_default().to_owned(),
            refresh_token: r.refresh_token().map(str::to_owned),
            expires_in: u64::try_from(r.expires_in()).unwrap_or(0),
        })
    }

    /// Cognito's `SignUp`; whether the user came out confirmed.
    async fn cognito_sign_up(&self, email: &str, name: &str, password: &str) -> Result<bool> {
        let attribute = |n: &str, v: &str| {
            AttributeType::builder()
                .name(n)
                .value(v)
                .build()
                .map_err(unavailable)
        };
        let out = self
            .client
            .sign_up()
            .client_id(&self.config.client_id)
            .set_secret_hash(self.secret_hash(email))
            .username(email)
            .password(password)
            .user_attributes(attribute("email", email)?)
            .user_attributes(attribute("name", name)?)
            .send()
            .await
            .map_err(|e| map_error(e.into_service_error()))?;
        Ok(out.user_confirmed())
    }

    async fn is_admin(&self, username: &str) -> Result<bool> {
        let groups = self
            .client
            .admin_list_groups_for_user()
            .user_pool_id(&self.config.user_pool_id)
            .username(username)
            .send()
            .await
            .map_err(|e| map_error(e.into_service_error()))?;
        Ok(groups
            .groups()
            .iter()
            .any(|g| g.group_name() == Some(ADMIN_GROUP)))
    }
}

/// `Base64(HMAC_SHA256(key = client secret, message = username + client id))`, the
/// `SECRET_HASH` Cognito wants from clients that have a secret.
pub fn secret_hash(secret: &str, username: &str, client_id: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    mac.update(client_id.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Cognito's error codes, by meaning.
fn map_error<E>(e: E) -> AuthError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = e.message().unwrap_or_default().to_owned();
    match e.code().unwrap_or_default() {
        "UsernameExistsException" | "AliasExistsException" => AuthError::UserAlreadyExists,
        "UserNotFoundException" => AuthError::UserNotFound,
        "UserNotConfirmedException" => AuthError::UserNotConfirmed,
        "CodeMismatchException" => AuthError::CodeMismatch,
        "ExpiredCodeException" => AuthError::CodeExpired,
        "TooManyFailedAttemptsException" | "LimitExceededException" => AuthError::TooManyAttempts,
        "InvalidPasswordException" => AuthError::InvalidPassword(message),
        "InvalidParameterException" => AuthError::InvalidParameter(message),
        "NotAuthorizedException" if message.contains("not confirmed") => {
            AuthError::UserNotConfirmed
        }
        "NotAuthorizedException" if message.contains("Current status is CONFIRMED") => {
            AuthError::AlreadyConfirmed
        }
        "NotAuthorizedException" => AuthError::NotAuthorized,
        _ => unavailable(e),
    }
}

#[async_trait]
impl IdentityProvider for CognitoIdentity {
    async fn sign_up(&self, request: SignUp) -> Result<SignUpOutcome> {
        let (email, name) = request.validate(&self.policy)?;
        let out = match self.cognito_sign_up(&email, &name, &request.password).await {
            // A later sign-up replaces an unconfirmed one: nobody keeps an address by signing
            // it up first (Cognito itself would refuse the owner for ever).
            Err(AuthError::UserAlreadyExists) if !self.profile(&email).await?.confirmed => {
                self.client
                    .admin_delete_user()
                    .user_pool_id(&self.config.user_pool_id)
                    .username(&email)
                    .send()
                    .await
                    .map_err(|e| map_error(e.into_service_error()))?;
                self.cognito_sign_up(&email, &name, &request.password)
                    .await?
            }
            other => other?,
        };
        // The stable handle is the pool's username: the generated UUID in pools that use e-mail
        // as an alias, the e-mail itself in pools that do not.
        let username = self.profile(&email).await?.username;
        Ok(SignUpOutcome {
            username,
            confirmed: out,
        })
    }

    async fn confirm_sign_up(
        &self,
        email: &str,
        code: &str,
        password: Option<&str>,
    ) -> Result<Profile> {
        let email = normalize_email(email);
        // Cognito keeps no count of sign-ups, so a password is checked when given (an
        // unconfirmed user with the right password is told "not confirmed"), never required.
        if let Some(password) = password {
            match self.sign_in(&email, password).await {
                Err(AuthError::UserNotConfirmed) => {}
                Err(AuthError::NotAuthorized) => return Err(AuthError::NotAuthorized),
                Ok(_) => return Err(AuthError::AlreadyConfirmed),
                Err(e) => return Err(e),
            }
        }
        self.client
            .confirm_sign_up()
            .client_id(&self.config.client_id)
            .set_secret_hash(self.secret_hash(&email))
            .username(&email)
            .confirmation_code(code.trim())
            .send()
            .await
            .map_err(|e| map_error(e.into_service_error()))?;
        self.profile(&email).await
    }

    async fn forgot_password(&self, email: &str) -> Result<()> {
        crate::validate_email(email)?;
        let email = normalize_email(email);
        let sent = self
            .client
            .forgot_password()
            .client_id(&self.config.client_id)
            .set_secret_hash(self.secret_hash(&email))
            .username(&email)
            .send()
            .await
            .map_err(|e| map_error(e.into_service_error()));
        match sent {
            // The same answer whether or not the address has an account.
            Ok(_) | Err(AuthError::UserNotFound | AuthError::NotAuthorized) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn reset_password(&self, email: &str, code: &str, new_password: &str) -> Result<()> {
        self.policy.check(new_password)?;
        let email = normalize_email(email);
        self.client
            .confirm_forgot_password()
            .client_id(&self.config.client_id)
            .set_secret_hash(self.secret_hash(&email))
            .username(&email)
            .confirmation_code(code.trim())
            .password(new_password)
            .send()
            .await
            .map_err(|e| match map_error(e.into_service_error()) {
                AuthError::UserNotFound => AuthError::CodeMismatch,
                other => other,
            })?;
        // Whoever knew the old password is out, everywhere.
        self.client
            .admin_user_global_sign_out()
            .user_pool_id(&self.config.user_pool_id)
            .username(&email)
            .send()
            .await
            .map_err(|e| map_error(e.into_service_error()))?;
        let username = self.profile(&email).await?.username;
        self.revoked_before
            .insert(username, self.clock.now().timestamp());
        Ok(())
    }

    async fn resend_confirmation_code(&self, email: &str) -> Result<()> {
        let email = normalize_email(email);
        self.client
            .resend_confirmation_code()
            .client_id(&self.config.client_id)
            .set_secret_hash(self.secret_hash(&email))
            .username(&email)
            .send()
            .await
            .map(drop)
            .map_err(|e| map_error(e.into_service_error()))
    }

    async fn sign_in(&self, email: &str, password: &str) -> Result<Login> {
        let email = normalize_email(email);
        let mut request = self
            .client
            .initiate_auth()
            .client_id(&self.config.client_id)
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .auth_parameters("USERNAME", &email)
            .auth_parameters("PASSWORD", password);
        if let Some(hash) = self.secret_hash(&email) {
            request = request.auth_parameters("SECRET_HASH", hash);
        }
        let out = request
            .send()
            .await
            .map_err(|e| match map_error(e.into_service_error()) {
                // The same answer for unknown users and wrong passwords.
                AuthError::UserNotFound => AuthError::NotAuthorized,
                other => other,
            })?;
        let tokens = Self::tokens(out.authentication_result())?;
        let user = self.profile(&email).await?;
        Ok(Login { tokens, user })
    }

    async fn refresh(&self, username: &str, refresh_token: &str) -> Result<Tokens> {
        let mut request = self
            .client
            .initiate_auth()
            .client_id(&self.config.client_id)
            .auth_flow(AuthFlowType::RefreshTokenAuth)
            .auth_parameters("REFRESH_TOKEN", refresh_token.trim());
        if let Some(hash) = self.secret_hash(username) {
            request = request.auth_parameters("SECRET_HASH", hash);
        }
        let out = request.send().await.map_err(|e| {
            let e = e.into_service_error();
            let expired = e.message().is_some_and(|m| m.contains("expired"));
            match map_error(e) {
                AuthError::NotAuthorized if expired => AuthError::RefreshTokenExpired,
                AuthError::NotAuthorized | AuthError::UserNotFound => {
                    AuthError::InvalidRefreshToken
                }
                other => other,
            }
        })?;
        let tokens = Self::tokens(out.authentication_result())?;
        // The refresh token must belong to the user the client says it does.
        let claims = self.verify(&tokens.access_token).await?;
        if claims.username != username {
            return Err(AuthError::InvalidRefreshToken);
        }
        Ok(tokens)
    }

    async fn sign_out(&self, access_token: &str) -> Result<()> {
        let raw = self.verify_raw(access_token).await?;
        let claims = raw.claims();
        // The admin call, not GlobalSignOut: the server holds IAM credentials anyway, and it
        // works the same on every Cognito-compatible endpoint (moto cannot route GlobalSignOut,
        // which is unsigned, to the pool's region).
        self.client
            .admin_user_global_sign_out()
            .user_pool_id(&self.config.user_pool_id)
            .username(&claims.username)
            .send()
            .await
            .map_err(|e| map_error(e.into_service_error()))?;
        // Tokens carry whole seconds: everything issued up to now is refused here. "Now" is
        // at least this token's own issue time, should the pool's clock run ahead of ours.
        self.revoked_before
            .insert(claims.username, self.clock.now().timestamp().max(raw.iat));
        Ok(())
    }

    async fn verify(&self, access_token: &str) -> Result<Claims> {
        Ok(self.verify_raw(access_token).await?.claims())
    }

    async fn profile(&self, email: &str) -> Result<Profile> {
        let email = normalize_email(email);
        let user = self
            .client
            .admin_get_user()
            .user_pool_id(&self.config.user_pool_id)
            .username(&email)
            .send()
            .await
            .map_err(|e| map_error(e.into_service_error()))?;
        let attr = |name: &str| {
            user.user_attributes()
                .iter()
                .find(|a| a.name() == name)
                .and_then(|a| a.value())
                .map(str::to_owned)
        };
        let username = user.username().to_owned();
        let confirmed = user
            .user_status()
            .is_some_and(|s| s.as_str() == "CONFIRMED");
        let role = if self.is_admin(&email).await? {
            Role::Admin
        } else {
            Role::User
        };
        Ok(Profile {
            username,
            email: attr("email").unwrap_or(email),
            name: attr("name").unwrap_or_default(),
            role,
            confirmed,
        })
    }

    async fn set_role(&self, email: &str, role: Role) -> Result<()> {
        let email = normalize_email(email);
        match role {
            Role::Admin => {
                let created = self
                    .client
                    .create_group()
                    .user_pool_id(&self.config.user_pool_id)
                    .group_name(ADMIN_GROUP)
                    .send()
                    .await;
                if let Err(e) = created {
                    let e = e.into_service_error();
                    if e.code() != Some("GroupExistsException") {
                        return Err(map_error(e));
                    }
                }
                self.client
                    .admin_add_user_to_group()
                    .user_pool_id(&self.config.user_pool_id)
                    .username(&email)
                    .group_name(ADMIN_GROUP)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| map_error(e.into_service_error()))
            }
            Role::User => self
                .client
                .admin_remove_user_from_group()
                .user_pool_id(&self.config.user_pool_id)
                .username(&email)
                .group_name(ADMIN_GROUP)
                .send()
                .await
                .map(drop)
                .map_err(|e| map_error(e.into_service_error())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_hash_matches_an_independent_computation() {
        // python3: base64.b64encode(hmac.new(b"secret", b"userclient", hashlib.sha256).digest())
        assert_eq!(
            secret_hash("secret", "user", "client"),
            "wvW87lzZoI+qQCVGmWVBJLlucdJ65huAVP1z+0MgA6E="
        );
        let config = CognitoConfig {
            region: "r".into(),
            user_pool_id: "p".into(),
            client_id: "c".into(),
            client_secret: None,
            jwks_url: None,
        };
        assert_eq!(config.issuer(), "https://cognito-idp.r.amazonaws.com/p");
        assert_eq!(
            config.jwks_url(),
            "https://cognito-idp.r.amazonaws.com/p/.well-known/jwks.json"
        );
    }
}
