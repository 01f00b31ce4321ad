//! The auth routes over a real socket: every route, every error code, bad input, bearer checks,
//! rate limits and admin grants.

use crate::common;

use serde_json::{Value, json};
use somsom_server::Config;

use common::{start, start_with_clock};

#[tokio::test]
async fn sign_up_confirm_login_verify_refresh_sign_out() {
    let ctx = start(|_| {}).await;
    let email = "flow@example.com";
    ctx.signed_up(email).await;

    let (status, body) = ctx
        .post("/login", json!({"email": email, "password": "Festival1!"}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("USER_NOT_CONFIRMED")),
        "{body}"
    );

    let code = ctx.codes.last_code(email).unwrap();
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let (status, body) = ctx
        .post("/confirm-signup", json!({"email": email, "code": wrong}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("BAD_REQUEST")),
        "{body}"
    );
    assert!(body["errors"]["code"].is_string());

    let (status, _) = ctx
        .post("/confirm-signup", json!({"email": email, "code": code}))
        .await;
    assert_eq!(status, 200);
    let (status, body) = ctx
        .post("/confirm-signup", json!({"email": email, "code": code}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("ALREADY_CONFIRMED"))
    );

    let login = ctx.login(email).await;
    for key in [
        "accessToken",
        "idToken",
        "refreshToken",
        "userName",
        "userNickname",
    ] {
        assert!(
            login[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key} in {login}"
        );
    }
    assert_eq!(login["tokenType"], "Bearer");
    assert_eq!(login["expiresIn"], 3600);
    assert_eq!(login["userNickname"], "솜솜");
    let user_id = login["userId"].as_i64().unwrap();
    assert!(user_id > 0);
    let access = login["accessToken"].as_str().unwrap();

    let (status, body) = ctx.get("/verify-token", Some(access)).await;
    assert_eq!((status, &body["message"]), (200, &json!("유효한 토큰")));

    // Refresh, seed style: RefreshToken header and username query parameter.
    let username = login["userName"].as_str().unwrap();
    let old_refresh = login["refreshToken"].as_str().unwrap();
    let res = ctx
        .http
        .post(
            ctx.server
                .url(&format!("/refresh-token?username={username}")),
        )
        .header("RefreshToken", old_refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let refreshed: Value = res.json().await.unwrap();
    assert_eq!(refreshed["tokenType"], "Bearer");
    let new_access = refreshed["accessToken"].as_str().unwrap().to_owned();
    let new_refresh = refreshed["refreshToken"].as_str().unwrap().to_owned();

    // The same, with a JSON body; the used token is refused (and ends the session).
    let (status, body) = ctx
        .post(
            "/refresh-token",
            json!({"refreshToken": old_refresh, "username": username}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_REFRESH_TOKEN")),
        "{body}"
    );
    let (status, body) = ctx
        .post(
            "/refresh-token",
            json!({"refreshToken": new_refresh, "username": username}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_REFRESH_TOKEN")),
        "reuse revoked the family: {body}"
    );
    let (status, body) = ctx.get("/verify-token", Some(&new_access)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("TOKEN_VERIFICATION_FAILED"))
    );

    // Sign out ends every session: the first login's access token dies too.
    let second = ctx.login(email).await;
    let second_access = second["accessToken"].as_str().unwrap();
    let res = ctx
        .http
        .post(ctx.server.url("/signout"))
        .bearer_auth(second_access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap()["message"],
        "로그아웃 성공"
    );
    for token in [access, second_access] {
        let (status, body) = ctx.get("/verify-token", Some(token)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("TOKEN_VERIFICATION_FAILED"))
        );
    }
    let (status, body) = ctx
        .post(
            "/refresh-token",
            json!({"refreshToken": second["refreshToken"], "username": username}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_REFRESH_TOKEN")),
        "{body}"
    );

    // The users row the seed's other tables refer to.
    let user = somsom_server::auth::users::by_username(&ctx.db, username)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (user.id, user.email.as_str(), user.name.as_str()),
        (user_id, email, "솜솜")
    );
    ctx.server.shutdown().await;
}

#[tokio::test]
async fn bad_input_and_error_codes() {
    let ctx = start(|_| {}).await;
    ctx.confirmed("taken@example.com").await;

    let (status, body) = ctx
        .post(
            "/signup",
            json!({"email": "TAKEN@example.com", "password": "Festival1!", "name": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("USER_ALREADY_EXISTS"))
    );

    let (status, body) = ctx
        .post(
            "/signup",
            json!({"email": "weak@example.com", "password": "weakpass", "name": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_PASSWORD"))
    );
    assert!(body["errors"]["password"].is_string(), "{body}");

    let (status, body) = ctx
        .post("/signup", json!({"password": "Festival1!", "name": "x"}))
        .await;
    assert_eq!(
        (status, &body["errors"]["email"]),
        (400, &json!("필수 값입니다.")),
        "{body}"
    );
    let (status, body) = ctx
        .post(
            "/signup",
            json!({"email": "bad", "password": "Festival1!", "name": "x"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["errors"]["email"].is_string(), "{body}");
    let (status, body) = ctx
        .post(
            "/signup",
            json!({"email": "n@example.com", "password": "Festival1!", "name": "x".repeat(51)}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["errors"]["name"].is_string(), "{body}");
    let res = ctx
        .http
        .post(ctx.server.url("/login"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.json::<Value>().await.unwrap()["errors"]["body"].is_string());

    // Wrong password and unknown e-mail: the same answer.
    let (s1, wrong) = ctx
        .post(
            "/login",
            json!({"email": "taken@example.com", "password": "Wrong-pass1!"}),
        )
        .await;
    let (s2, unknown) = ctx
        .post(
            "/login",
            json!({"email": "nobody@example.com", "password": "Festival1!"}),
        )
        .await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["code"], "UNAUTHORIZED");

    let (status, body) = ctx
        .post(
            "/confirm-signup",
            json!({"email": "nobody@example.com", "code": "123456"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("USER_NOT_FOUND"))
    );

    // Missing and invalid bearer tokens: 401 JSON; an invalid one even on public routes.
    let (status, body) = ctx.get("/verify-token", None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHORIZED")));
    let (status, body) = ctx.get("/healthz", Some("not-a-token")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("TOKEN_VERIFICATION_FAILED"))
    );
    let res = ctx
        .http
        .post(ctx.server.url("/signout"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let (status, body) = ctx.post("/refresh-token", json!({})).await;
    assert_eq!(
        (status, body["errors"]["RefreshToken"].as_str()),
        (400, Some("필수 값입니다.")),
        "{body}"
    );
    let (status, body) = ctx
        .post("/refresh-token", json!({"refreshToken": "x"}))
        .await;
    assert_eq!(status, 400);
    assert!(body["errors"]["username"].is_string(), "{body}");

    let (status, jwks) = ctx.get("/.well-known/jwks.json", None).await;
    assert_eq!(status, 200);
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
    ctx.server.shutdown().await;
}

#[tokio::test]
async fn failed_logins_back_off_per_account_and_address() {
    // Behind a trusted proxy, so that the test can be two addresses.
    let ctx = start(|c| {
        c.auth.login_free_failures = 3;
        c.http.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let from = |address: &'static str| {
        let ctx = &ctx;
        move |email: &'static str| async move {
            ctx.http
                .post(ctx.server.url("/login"))
                .header("x-forwarded-for", address)
                .json(&json!({"email": email, "password": "Wrong-pass1!"}))
                .send()
                .await
                .unwrap()
        }
    };
    let attacker = from("203.0.113.7");
    for _ in 0..3 {
        assert_eq!(attacker("x@example.com").await.status(), 401);
    }
    assert_eq!(
        attacker("x@example.com").await.status(),
        401,
        "the first backoff starts after it"
    );
    let res = attacker("X@example.com").await;
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "TOO_MANY_REQUESTS"
    );
    // The account's owner elsewhere is not locked out, and another account is not affected.
    assert_eq!(from("198.51.100.20")("x@example.com").await.status(), 401);
    assert_eq!(attacker("y@example.com").await.status(), 401);
    ctx.server.shutdown().await;
}

#[tokio::test]
async fn configured_admins_become_admins_once_confirmed() {
    let ctx = start(|c| c.admin_emails = vec!["Boss@Example.com".into()]).await;
    ctx.confirmed("boss@example.com").await;
    ctx.confirmed("staff@example.com").await;
    let boss = ctx.login("boss@example.com").await;
    let staff = ctx.login("staff@example.com").await;
    let role = |login: &Value| {
        let username = login["userName"].as_str().unwrap().to_owned();
        let db = ctx.db.clone();
        async move {
            somsom_server::auth::users::by_username(&db, &username)
                .await
                .unwrap()
                .unwrap()
                .role
        }
    };
    assert_eq!(role(&boss).await, cognito_auth::Role::Admin);
    assert_eq!(role(&staff).await, cognito_auth::Role::User);
    ctx.server.shutdown().await;
}

/// A fresh user pool and app client (password and refresh-token flows) on the AWS endpoint
/// `aws` names: `(pool id, client id)`.
pub(crate) async fn cognito_pool(aws: &somsom_server::config::AwsSettings) -> (String, String) {
    use aws_sdk_cognitoidentityprovider::types::ExplicitAuthFlowsType;
    let sdk = somsom_server::backends::aws_config(aws).await;
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&sdk);
    let pool = cognito
        .create_user_pool()
        .pool_name(test_support::unique_name("somsom_server"))
        .send()
        .await
        .unwrap();
    let pool_id = pool.user_pool().and_then(|p| p.id()).unwrap().to_owned();
    let app = cognito
        .create_user_pool_client()
        .user_pool_id(&pool_id)
        .client_name("somsom")
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
        .send()
        .await
        .unwrap();
    let client_id = app
        .user_pool_client()
        .and_then(|c| c.client_id())
        .unwrap()
        .to_owned();
    (pool_id, client_id)
}

/// The same routes with `auth.backend = "cognito"`, against a pool on moto (which accepts any
/// confirmation code).
#[tokio::test]
async fn cognito_backend_end_to_end_on_moto() {
    let endpoint = test_support::require_service!(test_support::AWS);
    let aws = somsom_server::config::AwsSettings {
        region: Some(std::env::var("AWS_REGION").unwrap_or_else(|_| "ap-northeast-2".into())),
        endpoint_url: Some(endpoint),
    };
    let (pool_id, client_id) = cognito_pool(&aws).await;

    let ctx = start(|c| {
        c.aws = aws.clone();
        c.auth.backend = somsom_server::config::AuthBackend::Cognito;
        c.auth.cognito.user_pool_id = pool_id.clone();
        c.auth.cognito.client_id = client_id.clone();
        c.admin_emails = vec!["cog-admin@example.com".into()];
    })
    .await;
    let email = "cog-admin@example.com";
    ctx.signed_up(email).await;
    let (status, body) = ctx
        .post("/confirm-signup", json!({"email": email, "code": "123456"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let login = ctx.login(email).await;
    assert!(login["userId"].as_i64().unwrap() > 0);
    let access = login["accessToken"].as_str().unwrap();
    let (status, _) = ctx.get("/verify-token", Some(access)).await;
    assert_eq!(status, 200);
    let username = login["userName"].as_str().unwrap();
    let user = somsom_server::auth::users::by_username(&ctx.db, username)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        user.role,
        cognito_auth::Role::Admin,
        "admin e-mails become admins with Cognito too"
    );

    let res = ctx
        .http
        .post(
            ctx.server
                .url(&format!("/refresh-token?username={username}")),
        )
        .header("RefreshToken", login["refreshToken"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = ctx
        .http
        .post(ctx.server.url("/signout"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, body) = ctx.get("/verify-token", Some(access)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("TOKEN_VERIFICATION_FAILED"))
    );
    let (status, jwks) = ctx.get("/.well-known/jwks.json", None).await;
    assert_eq!(
        (status, jwks["code"].as_str()),
        (404, Some("NOT_FOUND")),
        "Cognito publishes its own JWKS"
    );
    ctx.server.shutdown().await;
}

/// A token from `/login` verifies with an independent JWT library (PyJWT) against the JWKS the
/// server publishes, with the issuer and `token_use` SomSom documents.
#[tokio::test]
async fn tokens_verify_with_pyjwt_against_the_published_jwks() {
    let python = test_support::require_service!(test_support::PYTHON);
    let ctx = start(|_| {}).await;
    ctx.confirmed("py@example.com").await;
    let login = ctx.login("py@example.com").await;
    let (_, jwks) = ctx.get("/.well-known/jwks.json", None).await;
    let script = r#"
import json, sys, jwt
jwks, token = json.loads(sys.argv[1]), sys.argv[2]
kid = jwt.get_unverified_header(token)["kid"]
key = jwt.PyJWKSet.from_dict(jwks)[kid].key
claims = jwt.decode(token, key, algorithms=["RS256"], issuer="somsom", options={"require": ["exp", "iss", "sub"]})
assert claims["token_use"] == "access", claims
print(claims["username"])
try:
    jwt.decode(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"), key, algorithms=["RS256"])
    print("TAMPERED TOKEN ACCEPTED")
except jwt.InvalidSignatureError:
    pass
"#;
    let token = login["accessToken"].as_str().unwrap().to_owned();
    let out = tokio::process::Command::new(python)
        .args(["-c", script, &jwks.to_string(), &token])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "PyJWT refused the token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), login["userName"].as_str().unwrap());
    ctx.server.shutdown().await;
}

/// `SOMSOM_SMTP_URL` switches the code sender to e-mail: the code arrives by SMTP and confirms.
#[tokio::test]
async fn smtp_url_sends_confirmation_codes_by_email() {
    let python = test_support::require_service!(test_support::PYTHON);
    let sink = test_support::smtp::SmtpSink::start(&python);
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        smtp_url: Some(sink.url()),
        ..common::config_in(dir.path())
    };
    let server = common::spawn(somsom_server::build(config).await.unwrap());
    let http = reqwest::Client::new();
    let res = http
        .post(server.url("/signup"))
        .json(&json!({"email": "mail@example.com", "password": "Festival1!", "name": "메일"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mail = tokio::task::spawn_blocking(move || sink.message())
        .await
        .unwrap()
        .expect("an e-mail");
    assert_eq!(mail["to"], json!(["mail@example.com"]));
    let body = mail["body"].as_str().unwrap();
    let code = body
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 6 && l.chars().all(|c| c.is_ascii_digit()))
        .expect("a code line");
    let res = http
        .post(server.url("/confirm-signup"))
        .json(&json!({"email": "mail@example.com", "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn expiry_locks_resend_and_per_address_limits() {
    let clock = cognito_auth::ManualClock::starting_now();
    let ctx = start_with_clock(
        |c| c.auth.attempts_per_address_per_minute = 12,
        clock.clone(),
    )
    .await;

    // Five wrong codes lock the code; a resent one works.
    let email = "lock@example.com";
    ctx.signed_up(email).await;
    let right = ctx.codes.last_code(email).unwrap();
    let wrong = if right == "000000" {
        "000001"
    } else {
        "000000"
    };
    for _ in 0..4 {
        let (status, _) = ctx
            .post("/confirm-signup", json!({"email": email, "code": wrong}))
            .await;
        assert_eq!(status, 400);
    }
    let (status, body) = ctx
        .post("/confirm-signup", json!({"email": email, "code": wrong}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("CONFIRMATION_LOCKED"))
    );
    let (status, body) = ctx
        .post("/resend-confirmation-code", json!({"email": email}))
        .await;
    assert_eq!(
        (status, &body["message"]),
        (200, &json!("인증 코드를 다시 보냈습니다."))
    );
    assert_eq!(ctx.codes.count(email), 2);
    let (status, _) = ctx
        .post(
            "/confirm-signup",
            json!({"email": email, "code": ctx.codes.last_code(email).unwrap()}),
        )
        .await;
    assert_eq!(status, 200);

    // Expired access and refresh tokens.
    let login = ctx.login(email).await;
    clock.advance(chrono::Duration::hours(2));
    let (status, body) = ctx
        .get("/verify-token", login["accessToken"].as_str())
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("ACCESS_TOKEN_EXPIRED"))
    );
    clock.advance(chrono::Duration::days(31));
    let (status, body) = ctx
        .post(
            "/refresh-token",
            json!({"refreshToken": login["refreshToken"], "username": login["userName"]}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("REFRESH_TOKEN_EXPIRED"))
    );

    // A sign-up left unconfirmed past its lifetime is gone, code and all: sign up again.
    ctx.signed_up("late@example.com").await;
    clock.advance(chrono::Duration::hours(25));
    let (status, body) = ctx
        .post("/confirm-signup", json!({"email": "late@example.com", "code": ctx.codes.last_code("late@example.com").unwrap()}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("USER_NOT_FOUND")),
        "{body}"
    );

    // Per client address: 12 attempts a minute in all, whichever accounts they name. The limits
    // run on the server's clock, which moved on by a day above: since then this address made 1
    // attempt (the late confirmation), so the 12th spray attempt is refused.
    let mut limited = None;
    for i in 0..12 {
        let (status, body) = ctx
            .post(
                "/login",
                json!({"email": format!("spray{i}@example.com"), "password": "Wrong-pass1!"}),
            )
            .await;
        if status == 429 {
            assert_eq!(i, 11, "refused at the 13th attempt of the minute");
            limited = Some(body);
            break;
        }
        assert_eq!(status, 401);
    }
    let body = limited.expect("the address limit stops a password spray across accounts");
    assert_eq!(body["code"], "TOO_MANY_REQUESTS");
    ctx.server.shutdown().await;
}
