//! Building the identity provider the configuration names.

use std::sync::Arc;

use cognito_auth::local::{LocalConfig, LocalIdentity, SqlStore};
use cognito_auth::sender::CodeSender;
use cognito_auth::{Clock, IdentityProvider};

use crate::application::{BuildError, engine_failed, secret_error};

use crate::config::{AuthBackend, Config, Invalid};
use crate::db::Database;

/// The local identity provider over the server's database (also for operator commands).
pub async fn local_identity(
    config: &Config,
    db: &Database,
    sender: Arc<dyn CodeSender>,
    clock: Arc<dyn Clock>,
) -> Result<LocalIdentity, BuildError> {
    let store = match db {
        Database::Sqlite(pool) => SqlStore::Sqlite(pool.clone()),
        Database::MySql(pool) => SqlStore::MySql(pool.clone()),
    };
    store
        .migrate()
        .await
        .map_err(engine_failed("identity store"))?;
    let kdf_concurrency = match config.auth.password_hashes_at_once {
        0 => std::thread::available_parallelism().map_or(2, usize::from),
        n => n,
    };
    let mut local = LocalConfig::new(config.auth.issuer.clone())
        .with_session_cache(chrono::Duration::seconds(
            i64::try_from(config.auth.session_cache_secs).unwrap_or(i64::MAX),
        ))
        .with_kdf_limits(kdf_concurrency, config.auth.password_hashes_waiting);
    // Tokens already issued carry this audience; nodes of every release must agree on it.
    local.client_id = "somsom-web".into();
    let key = crate::config::secret(
        "auth.signing_key",
        &config.auth.signing_key,
        &config.auth.signing_key_file,
    )
    .map_err(secret_error("auth.signing_key"))?;
    match key {
        // From the operator: never written to the database.
        Some(pem) => {
            let key = cognito_auth::jwt::SigningKey::from_operator_pem(&pem).map_err(|e| {
                BuildError::Secret {
                    name: "auth.signing_key",
                    reason: e.to_string(),
                }
            })?;
            Ok(LocalIdentity::with_key(
                Arc::new(store),
                sender,
                clock,
                local,
                key,
            ))
        }
        None => LocalIdentity::new(Arc::new(store), sender, clock, local)
            .await
            .map_err(engine_failed("identity provider")),
    }
}

/// The identity provider the configuration names, over the server's database.
pub(crate) async fn identity_provider(
    config: &Config,
    db: &Database,
    sender: Arc<dyn CodeSender>,
    clock: Arc<dyn Clock>,
    watches: &crate::outage::Watches,
) -> Result<Arc<dyn IdentityProvider>, BuildError> {
    match config.auth.backend {
        AuthBackend::Local => Ok(Arc::new(local_identity(config, db, sender, clock).await?)),
        AuthBackend::Cognito => cognito(config, clock, watches).await,
    }
}

/// Cognito's user pool, through the AWS SDK, failing fast while Cognito is known to be down.
#[cfg(feature = "aws")]
async fn cognito(
    config: &Config,
    clock: Arc<dyn Clock>,
    watches: &crate::outage::Watches,
) -> Result<Arc<dyn IdentityProvider>, BuildError> {
    use cognito_auth::cognito::{CognitoConfig, CognitoIdentity};
    let settings = &config.auth.cognito;
    let sdk = crate::backends::aws_config(&config.aws).await;
    let region = sdk
        .region()
        .map(ToString::to_string)
        .ok_or_else(|| Invalid::one("auth.backend = cognito needs an AWS region (AWS_REGION)"))?;
    let jwks_url = settings.jwks_url.clone().or_else(|| {
        config.aws.endpoint_url.as_ref().map(|endpoint| {
            format!(
                "{}/{}/.well-known/jwks.json",
                endpoint.trim_end_matches('/'),
                settings.user_pool_id
            )
        })
    });
    let cognito = CognitoConfig::new(region, &settings.user_pool_id, &settings.client_id)
        .with_client_secret(settings.client_secret.clone())
        .with_jwks_url(jwks_url);
    let client = aws_sdk_cognitoidentityprovider::Client::new(&sdk);
    let provider = CognitoIdentity::new(client.clone(), cognito, clock)
        .await
        .map_err(engine_failed("identity provider (cognito)"))?;
    let pool = settings.user_pool_id.clone();
    let probe = crate::outage::Call(move || {
        let request = client.describe_user_pool().user_pool_id(&pool);
        async move {
            request.send().await.map(drop).map_err(|e| {
                aws_sdk_cognitoidentityprovider::error::DisplayErrorContext(e).to_string()
            })
        }
    });
    let dependency = watches.watch("cognito", Arc::new(probe));
    Ok(Arc::new(crate::outage::guarded::GuardedIdentity::new(
        Arc::new(provider),
        dependency,
    )))
}

#[cfg(not(feature = "aws"))]
async fn cognito(
    _config: &Config,
    _clock: Arc<dyn Clock>,
    _watches: &crate::outage::Watches,
) -> Result<Arc<dyn IdentityProvider>, BuildError> {
    Err(Invalid::not_built("auth.backend = cognito", "aws").into())
}
