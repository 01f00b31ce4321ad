//! Accounts under attack: signing up someone else's address, guessing codes, locking a user out,
//! and taking an account back with a password reset.

use serde_json::{Value, json};

use super::PASSWORD;
use crate::common::{Ctx, start};

async fn sign_up(ctx: &Ctx, email: &str, password: &str) -> (u16, Value) {
    ctx.post(
        "/signup",
        json!({"email": email, "password": password, "name": "someone"}),
    )
    .await
}

async fn confirm(ctx: &Ctx, email: &str, password: Option<&str>) -> (u16, Value) {
    let code = ctx.codes.last_code(email).unwrap();
    let mut body = json!({"email": email, "code": code, "name": "someone"});
    if let Some(password) = password {
        body["password"] = json!(password);
    }
    ctx.post("/confirm-signup", body).await
}

async fn login(ctx: &Ctx, email: &str, password: &str) -> u16 {
    ctx.post("/login", json!({"email": email, "password": password}))
        .await
        .0
}

/// The reproduction: the attacker signs up the victim's address (an admin address, even)
/// first; the victim's own sign-up is not refused, and confirming it with the code from the
/// mailbox ends with the victim's password, never the attacker's.
#[tokio::test]
async fn signing_up_someone_elses_address_first_wins_nothing() {
    let ctx = start(|c| c.admin_emails = vec!["victim@example.com".into()]).await;
    let victim = "victim@example.com";
    assert_eq!(sign_up(&ctx, victim, "Attacker1!").await.0, 200);
    let (status, body) = sign_up(&ctx, victim, PASSWORD).await;
    assert_eq!(
        status, 200,
        "the owner's sign-up replaces the pending one: {body}"
    );
    // A contested address needs the password with the code; the web app sends it.
    let (status, body) = confirm(&ctx, victim, None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"]["password"].is_string(), "{body}");
    let (status, body) = confirm(&ctx, victim, Some(PASSWORD)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(login(&ctx, victim, "Attacker1!").await, 401);
    let session = ctx.login(victim).await;
    let (_, me) = ctx.get("/me", session["accessToken"].as_str()).await;
    assert_eq!(me["profile"]["role"], "ADMIN", "{me}");
    ctx.server.shutdown().await;
}

/// The attacker signs up again after the owner: the owner, holding the (new) code but not the
/// attacker's password, cannot confirm the attacker's sign-up; signing up once more and
/// confirming works.
#[tokio::test]
async fn a_squatter_who_signs_up_last_cannot_have_the_owner_confirm_for_them() {
    let ctx = start(|_| {}).await;
    let victim = "owner@example.com";
    assert_eq!(sign_up(&ctx, victim, PASSWORD).await.0, 200);
    assert_eq!(sign_up(&ctx, victim, "Attacker1!").await.0, 200);
    let (status, body) = confirm(&ctx, victim, Some(PASSWORD)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("UNAUTHORIZED")),
        "{body}"
    );
    assert_eq!(
        login(&ctx, victim, "Attacker1!").await,
        403,
        "still unconfirmed"
    );
    assert_eq!(sign_up(&ctx, victim, PASSWORD).await.0, 200);
    assert_eq!(confirm(&ctx, victim, Some(PASSWORD)).await.0, 200);
    assert_eq!(login(&ctx, victim, PASSWORD).await, 200);
    assert_eq!(login(&ctx, victim, "Attacker1!").await, 401);
    ctx.server.shutdown().await;
}

/// Resending does not reset the guesses: after 20 wrong codes over four codes, even the right
/// one is refused; and 40 guesses sent at once are never all compared.
#[tokio::test]
async fn codes_cannot_be_guessed_by_resending_or_by_racing() {
    let ctx = start(|c| {
        c.auth.attempts_per_account_per_minute = 10_000;
        c.auth.attempts_per_address_per_minute = 10_000;
    })
    .await;
    let email = "guessed@example.com";
    assert_eq!(sign_up(&ctx, email, PASSWORD).await.0, 200);
    for _ in 0..4 {
        for _ in 0..5 {
            let right = ctx.codes.last_code(email).unwrap();
            let wrong = if right == "000000" {
                "000001"
            } else {
                "000000"
            };
            ctx.post("/confirm-signup", json!({"email": email, "code": wrong}))
                .await;
        }
        let (status, _) = ctx
            .post("/resend-confirmation-code", json!({"email": email}))
            .await;
        assert_eq!(status, 200);
    }
    let (status, body) = confirm(&ctx, email, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("CONFIRMATION_LOCKED")),
        "{body}"
    );

    let raced = "raced@example.com";
    assert_eq!(sign_up(&ctx, raced, PASSWORD).await.0, 200);
    let right = ctx.codes.last_code(raced).unwrap();
    let wrong = if right == "000000" {
        "000001"
    } else {
        "000000"
    };
    let mut guesses = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let (http, url) = (ctx.http.clone(), ctx.server.url("/confirm-signup"));
        guesses.spawn(async move {
            let res = http
                .post(url)
                .json(&json!({"email": raced, "code": wrong}))
                .send()
                .await
                .unwrap();
            res.status().as_u16()
        });
    }
    let statuses = guesses.join_all().await;
    let compared = statuses.iter().filter(|s| **s == 400).count();
    assert!(
        compared <= 5,
        "{compared} of 40 racing guesses were compared: {statuses:?}"
    );
    ctx.server.shutdown().await;
}

/// Failing on purpose from elsewhere does not lock the owner out: limits are per account and
/// address, and only the attacker's address backs off.
#[tokio::test]
async fn nobody_elsewhere_can_lock_a_user_out() {
    let ctx = start(|c| c.http.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let email = "target@example.com";
    ctx.confirmed(email).await;
    let attempt = |from: &'static str, password: &'static str| {
        let (http, url) = (ctx.http.clone(), ctx.server.url("/login"));
        async move {
            http.post(url)
                .header("x-forwarded-for", from)
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let mut refused = 0;
    for _ in 0..30 {
        match attempt("203.0.113.66", "Wrong-pass1!").await {
            401 => {}
            429 => refused += 1,
            other => panic!("{other}"),
        }
    }
    assert!(
        refused > 20,
        "the attacker's address backs off ({refused} refused)"
    );
    assert_eq!(
        attempt("198.51.100.10", PASSWORD).await,
        200,
        "the owner logs in"
    );
    ctx.server.shutdown().await;
}

/// Forgot password: a code by mail, a new password, and every session of the account ends
/// (on every node: the access token is refused). Unknown addresses get the same answer.
#[tokio::test]
async fn a_password_reset_takes_the_account_back() {
    let ctx = start(|_| {}).await;
    let email = "forgetful@example.com";
    ctx.confirmed(email).await;
    let stolen = ctx.login(email).await["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, known) = ctx.post("/forgot-password", json!({"email": email})).await;
    assert_eq!(status, 200);
    let (status, unknown) = ctx
        .post("/forgot-password", json!({"email": "nobody@example.com"}))
        .await;
    assert_eq!((status, &unknown), (200, &known), "no account enumeration");
    let code = ctx
        .codes
        .last_code_for(email, cognito_auth::sender::CodePurpose::PasswordReset)
        .unwrap();
    let (status, body) = ctx
        .post(
            "/reset-password",
            json!({"email": email, "code": code, "newPassword": "weak"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_PASSWORD"))
    );
    let (status, body) = ctx
        .post(
            "/reset-password",
            json!({"email": email, "code": code, "newPassword": "Renewed1!"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = ctx.get("/verify-token", Some(&stolen)).await;
    assert_eq!(status, 401, "the old session ended");
    assert_eq!(login(&ctx, email, PASSWORD).await, 401);
    assert_eq!(login(&ctx, email, "Renewed1!").await, 200);
    ctx.server.shutdown().await;
}
