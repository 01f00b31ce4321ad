//! Cognito's provider against a user pool on moto (`AWS_ENDPOINT_URL`), through the same
//! conformance suite the local provider passes.
#![cfg(all(feature = "cognito", feature = "testing"))]

use std::sync::Arc;

use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::types::ExplicitAuthFlowsType;
use cognito_auth::cognito::{CognitoConfig, CognitoIdentity};
use cognito_auth::conformance::{Harness, run_all};

/// A fresh pool and app client on moto, and a provider for them. The pool does not use
/// e-mail as an alias: moto's sign-out does not follow aliases, so there the e-mail is the
/// username.
async fn provider_on_moto(endpoint: &str, with_secret: bool) -> CognitoIdentity {
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "ap-northeast-2".into());
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.clone()))
        .endpoint_url(endpoint)
        .load()
        .await;
    let client = Client::new(&sdk);
    let pool = client
        .create_user_pool()
        .pool_name(test_support::unique_name("auth"))
        .send()
        .await
        .unwrap();
    let pool_id = pool.user_pool().and_then(|p| p.id()).unwrap().to_owned();
    let app = client
        .create_user_pool_client()
        .user_pool_id(&pool_id)
        .client_name("app")
        .generate_secret(with_secret)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
        .send()
        .await
        .unwrap();
    let app = app.user_pool_client().unwrap();
    let config = CognitoConfig::new(region, &pool_id, app.client_id().unwrap())
        .with_client_secret(app.client_secret().map(str::to_owned))
        .with_jwks_url(Some(format!(
            "{}/{pool_id}/.well-known/jwks.json",
            endpoint.trim_end_matches('/')
        )));
    CognitoIdentity::new(client, config, Arc::new(cognito_auth::SystemClock))
        .await
        .unwrap()
}

#[tokio::test]
async fn cognito_on_moto_passes_the_conformance_suite() {
    let endpoint = test_support::require_service!(test_support::AWS);
    for with_secret in [false, true] {
        let provider = provider_on_moto(&endpoint, with_secret).await;
        run_all(&Harness {
            provider: Arc::new(provider),
            // moto accepts any confirmation code and does not let tests move its clock.
            codes: None,
            clock: None,
            rotates_refresh_tokens: false,
            detects_contested_sign_ups: false,
            twin: None,
        })
        .await;
    }
}
