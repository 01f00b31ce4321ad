//! The conformance suite every [`IdentityProvider`] passes: the local provider over each store
//! and Cognito (on moto). Differences between backends are declared in [`Harness`], never copied
//! into a second suite.

use std::sync::Arc;

use crate::jwt::AccessTokenClaims;
use crate::{AuthError, IdentityProvider, ManualClock, SignUp};

/// Reads the last confirmation code sent to an e-mail address.
pub type CodeReader = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// A provider under test and what it can show.
pub struct Harness {
    /// The provider.
    pub provider: Arc<dyn IdentityProvider>,
    /// The last code sent to an e-mail; `None` for backends that accept any code (moto).
    pub codes: Option<CodeReader>,
    /// The provider's clock, when tests can move it.
    pub clock: Option<ManualClock>,
    /// Whether a used refresh token is replaced and refused when traded in again.
    pub rotates_refresh_tokens: bool,
    /// Whether the backend counts sign-ups of a pending address and then demands the password
    /// to confirm it (Cognito keeps no such count).
    pub detects_contested_sign_ups: bool,
    /// Another node on the same store, for checks that span nodes.
    pub twin: Option<Arc<dyn IdentityProvider>>,
}

const PASSWORD: &str = "Festival1!";

fn email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

impl Harness {
    fn p(&self) -> &dyn IdentityProvider {
        self.provider.as_ref()
    }

    fn code(&self, email: &str) -> String {
        match &self.codes {
            Some(codes) => codes(email).expect("a code was sent"),
            None => "123456".into(),
        }
    }

    /// A new, unconfirmed user with [`PASSWORD`].
    async fn unconfirmed_user(&self) -> String {
        let email = email();
        self.p()
            .sign_up(SignUp {
                email: email.clone(),
                password: PASSWORD.into(),
                name: "솜솜".into(),
            })
            .await
            .expect("sign up");
        email
    }

    async fn confirmed_user(&self) -> String {
        let email = self.unconfirmed_user().await;
        self.p()
            .confirm_sign_up(&email, &self.code(&email), None)
            .await
            .expect("confirm");
        email
    }
}

/// Runs every check.
pub async fn run_all(h: &Harness) {
    life_cycle(h).await;
    wrong_password_and_unknown_user_look_the_same(h).await;
    unconfirmed_login_is_refused(h).await;
    duplicate_sign_up_is_refused(h).await;
    weak_passwords_and_bad_emails_are_refused(h).await;
    wrong_codes_lock_after_five(h).await;
    codes_expire(h).await;
    tampered_and_forged_tokens_are_refused(h).await;
    access_tokens_expire(h).await;
    refresh_tokens_rotate_and_reuse_revokes(h).await;
    roles_reach_new_tokens(h).await;
    a_later_sign_up_replaces_a_pending_one(h).await;
    a_contested_address_needs_the_latest_password(h).await;
    code_guesses_are_capped_across_resends(h).await;
    concurrent_guesses_never_exceed_the_cap(h).await;
    a_password_reset_ends_every_session(h).await;
    sign_out_reaches_another_node_with_its_next_poll(h).await;
}

async fn sign_up(h: &Harness, email: &str, password: &str) {
    h.p()
        .sign_up(SignUp {
            email: email.into(),
            password: password.into(),
            name: "솜솜".into(),
        })
        .await
        .expect("sign up");
}

/// Whoever signed an address up first does not keep it: the owner's own sign-up replaces the
/// pending account, and confirming it ends with the owner's password.
pub async fn a_later_sign_up_replaces_a_pending_one(h: &Harness) {
    let email = email();
    sign_up(h, &email, "Squatter1!").await;
    sign_up(h, &email, PASSWORD).await;
    let password = h.detects_contested_sign_ups.then_some(PASSWORD);
    h.p()
        .confirm_sign_up(&email, &h.code(&email), password)
        .await
        .expect("the owner confirms");
    h.p()
        .sign_in(&email, PASSWORD)
        .await
        .expect("owner's password");
    let squatter = h.p().sign_in(&email, "Squatter1!").await;
    assert!(
        matches!(squatter, Err(AuthError::NotAuthorized)),
        "{squatter:?}"
    );
}

/// An address signed up twice is confirmed only with the latest sign-up's password, whoever
/// holds the code: a squatter who signs up after the owner cannot have the owner confirm it.
pub async fn a_contested_address_needs_the_latest_password(h: &Harness) {
    if !h.detects_contested_sign_ups || h.codes.is_none() {
        return;
    }
    let email = email();
    sign_up(h, &email, PASSWORD).await;
    sign_up(h, &email, "Squatter1!").await;
    // The owner has the code (it went to their mailbox) but not the squatter's password.
    let code = h.code(&email);
    let bare = h.p().confirm_sign_up(&email, &code, None).await;
    assert!(matches!(bare, Err(AuthError::PasswordRequired)), "{bare:?}");
    let owners = h.p().confirm_sign_up(&email, &code, Some(PASSWORD)).await;
    assert!(
        matches!(owners, Err(AuthError::NotAuthorized)),
        "{owners:?}"
    );
    let login = h.p().sign_in(&email, "Squatter1!").await;
    assert!(
        matches!(login, Err(AuthError::UserNotConfirmed)),
        "still unconfirmed: {login:?}"
    );
    // The owner signs up again and confirms with their password.
    sign_up(h, &email, PASSWORD).await;
    h.p()
        .confirm_sign_up(&email, &h.code(&email), Some(PASSWORD))
        .await
        .expect("the owner confirms");
    assert!(h.p().sign_in(&email, PASSWORD).await.is_ok());
    assert!(h.p().sign_in(&email, "Squatter1!").await.is_err());
}

fn wrong_code(right: &str) -> &'static str {
    if right == "000000" {
        "000001"
    } else {
        "000000"
    }
}

/// Resending a code does not buy more guesses: a window allows 20 over every code.
pub async fn code_guesses_are_capped_across_resends(h: &Harness) {
    if h.codes.is_none() {
        return;
    }
    let email = h.unconfirmed_user().await;
    for _ in 0..4 {
        for _ in 0..5 {
            let wrong = wrong_code(&h.code(&email));
            let _ = h.p().confirm_sign_up(&email, wrong, None).await;
        }
        h.p().resend_confirmation_code(&email).await.unwrap();
    }
    let right = h.code(&email);
    let locked = h.p().confirm_sign_up(&email, &right, None).await;
    assert!(
        matches!(locked, Err(AuthError::TooManyAttempts)),
        "the 21st guess, with the right code: {locked:?}"
    );
}

/// Guesses sent at once are counted before they are compared: no more than the five a code
/// allows are tried.
pub async fn concurrent_guesses_never_exceed_the_cap(h: &Harness) {
    if h.codes.is_none() {
        return;
    }
    let email = h.unconfirmed_user().await;
    let wrong = wrong_code(&h.code(&email));
    let mut guesses = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let (provider, email) = (h.provider.clone(), email.clone());
        guesses.spawn(async move { provider.confirm_sign_up(&email, wrong, None).await });
    }
    let results: Vec<_> = guesses.join_all().await;
    let compared = results
        .iter()
        .filter(|r| matches!(r, Err(AuthError::CodeMismatch)))
        .count();
    // Five guesses per code (the last of them may be told "too many" already).
    assert!(
        compared <= 5,
        "{compared} concurrent guesses were compared: {results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(AuthError::CodeMismatch | AuthError::TooManyAttempts))),
        "{results:?}"
    );
}

/// Forgot password → a code by mail → a new password; every session of the account ends, the
/// old password stops working. Asking for an unknown address answers the same as a known one.
pub async fn a_password_reset_ends_every_session(h: &Harness) {
    let email = h.confirmed_user().await;
    let before = h.p().sign_in(&email, PASSWORD).await.unwrap();
    h.p()
        .forgot_password(&self::email())
        .await
        .expect("unknown addresses are not told apart");
    h.p().forgot_password(&email).await.unwrap();
    let code = h.code(&email);
    let weak = h.p().reset_password(&email, &code, "weak").await;
    assert!(
        matches!(weak, Err(AuthError::InvalidPassword(_))),
        "{weak:?}"
    );
    if h.codes.is_some() {
        let wrong = h
            .p()
            .reset_password(&email, wrong_code(&code), "Renewed1!")
            .await;
        assert!(matches!(wrong, Err(AuthError::CodeMismatch)), "{wrong:?}");
    }
    h.p()
        .reset_password(&email, &code, "Renewed1!")
        .await
        .unwrap();
    let old_session = h.p().verify(&before.tokens.access_token).await;
    assert!(
        old_session.is_err(),
        "the old session ended: {old_session:?}"
    );
    assert!(matches!(
        h.p().sign_in(&email, PASSWORD).await,
        Err(AuthError::NotAuthorized)
    ));
    h.p().sign_in(&email, "Renewed1!").await.unwrap();
    if h.codes.is_some() {
        let replay = h.p().reset_password(&email, &code, "Another1!").await;
        assert!(replay.is_err(), "a reset code works once: {replay:?}");
    }
}

/// A sign-out on one node ends the session on another once that node has polled.
pub async fn sign_out_reaches_another_node_with_its_next_poll(h: &Harness) {
    let Some(twin) = &h.twin else { return };
    let email = h.confirmed_user().await;
    let login = h.p().sign_in(&email, PASSWORD).await.unwrap();
    let token = &login.tokens.access_token;
    twin.poll_revocations().await.unwrap();
    twin.verify(token).await.expect("valid on the other node");
    h.p().sign_out(token).await.unwrap();
    let revoked = twin.poll_revocations().await.unwrap();
    assert!(
        revoked.iter().any(|r| r.username == login.user.username),
        "{revoked:?}"
    );
    let after = twin.verify(token).await;
    assert!(matches!(after, Err(AuthError::InvalidToken)), "{after:?}");
    // Polling again reports nothing new.
    assert!(twin.poll_revocations().await.unwrap().is_empty());
}

/// Sign up → confirm → sign in → verify → refresh → sign out → refresh refused.
pub async fn life_cycle(h: &Harness) {
    let email = email();
    let outcome = h
        .p()
        .sign_up(SignUp {
            email: email.to_uppercase(),
            password: PASSWORD.into(),
            name: "솜솜".into(),
        })
        .await
        .unwrap();
    assert!(!outcome.confirmed);
    let profile = h
        .p()
        .confirm_sign_up(&email, &h.code(&email), None)
        .await
        .unwrap();
    assert!(profile.confirmed);
    assert_eq!(profile.username, outcome.username);
    assert_eq!(profile.email, email, "e-mail is normalised");

    let login = h
        .p()
        .sign_in(&email.to_uppercase(), PASSWORD)
        .await
        .unwrap();
    assert_eq!(login.user.username, outcome.username);
    assert_eq!(login.user.name, "솜솜");
    assert!(login.tokens.expires_in > 0);
    let claims = h.p().verify(&login.tokens.access_token).await.unwrap();
    assert_eq!(claims.username, outcome.username);

    let refresh = login.tokens.refresh_token.clone().expect("a refresh token");
    let refreshed = h.p().refresh(&outcome.username, &refresh).await.unwrap();
    let claims = h.p().verify(&refreshed.access_token).await.unwrap();
    assert_eq!(claims.username, outcome.username);
    let wrong_user = h
        .p()
        .refresh(
            "someone-else",
            refreshed.refresh_token.as_deref().unwrap_or(&refresh),
        )
        .await;
    assert!(
        matches!(wrong_user, Err(AuthError::InvalidRefreshToken)),
        "{wrong_user:?}"
    );

    h.p().sign_out(&refreshed.access_token).await.unwrap();
    let current_refresh = refreshed.refresh_token.unwrap_or(refresh);
    let after = h.p().refresh(&outcome.username, &current_refresh).await;
    assert!(
        matches!(
            after,
            Err(AuthError::InvalidRefreshToken | AuthError::RefreshTokenExpired)
        ),
        "refresh after sign-out: {after:?}"
    );
    let revoked = h.p().verify(&refreshed.access_token).await;
    assert!(
        matches!(revoked, Err(AuthError::InvalidToken)),
        "access token after sign-out: {revoked:?}"
    );
    let other_session = h.p().verify(&login.tokens.access_token).await;
    assert!(
        other_session.is_err(),
        "sign-out is global: {other_session:?}"
    );
}

/// Unknown e-mail and wrong password give the same error.
pub async fn wrong_password_and_unknown_user_look_the_same(h: &Harness) {
    let email = h.confirmed_user().await;
    let wrong = h.p().sign_in(&email, "Wrong-pass1!").await;
    let unknown = h.p().sign_in(&self::email(), PASSWORD).await;
    assert!(matches!(wrong, Err(AuthError::NotAuthorized)), "{wrong:?}");
    assert!(
        matches!(unknown, Err(AuthError::NotAuthorized)),
        "{unknown:?}"
    );
}

/// No tokens before the e-mail is confirmed.
pub async fn unconfirmed_login_is_refused(h: &Harness) {
    let email = h.unconfirmed_user().await;
    let login = h.p().sign_in(&email, PASSWORD).await;
    assert!(
        matches!(login, Err(AuthError::UserNotConfirmed)),
        "{login:?}"
    );
}

/// One account per e-mail, whatever its case.
pub async fn duplicate_sign_up_is_refused(h: &Harness) {
    let email = h.confirmed_user().await;
    let again = h
        .p()
        .sign_up(SignUp {
            email: email.to_uppercase(),
            password: PASSWORD.into(),
            name: "b".into(),
        })
        .await;
    assert!(
        matches!(again, Err(AuthError::UserAlreadyExists)),
        "{again:?}"
    );
}

/// The password policy and e-mail syntax are enforced before anything is stored.
pub async fn weak_passwords_and_bad_emails_are_refused(h: &Harness) {
    let weak = h
        .p()
        .sign_up(SignUp {
            email: email(),
            password: "short".into(),
            name: "a".into(),
        })
        .await;
    assert!(
        matches!(weak, Err(AuthError::InvalidPassword(_))),
        "{weak:?}"
    );
    let bad = h
        .p()
        .sign_up(SignUp {
            email: "not-an-email".into(),
            password: PASSWORD.into(),
            name: "a".into(),
        })
        .await;
    assert!(
        matches!(bad, Err(AuthError::InvalidParameter(_))),
        "{bad:?}"
    );
}

/// Wrong codes are refused; the fifth locks the code; a resent code works.
pub async fn wrong_codes_lock_after_five(h: &Harness) {
    if h.codes.is_none() {
        return; // moto accepts any code.
    }
    let email = h.unconfirmed_user().await;
    let right = h.code(&email);
    let wrong = if right == "000000" {
        "000001"
    } else {
        "000000"
    };
    for attempt in 1..=5 {
        let result = h.p().confirm_sign_up(&email, wrong, None).await;
        if attempt < 5 {
            assert!(
                matches!(result, Err(AuthError::CodeMismatch)),
                "attempt {attempt}: {result:?}"
            );
        } else {
            assert!(
                matches!(result, Err(AuthError::TooManyAttempts)),
                "attempt {attempt}: {result:?}"
            );
        }
    }
    let locked = h.p().confirm_sign_up(&email, &right, None).await;
    assert!(
        matches!(locked, Err(AuthError::TooManyAttempts)),
        "{locked:?}"
    );
    h.p().resend_confirmation_code(&email).await.unwrap();
    let fresh = h.code(&email);
    h.p().confirm_sign_up(&email, &fresh, None).await.unwrap();
    let twice = h.p().confirm_sign_up(&email, &fresh, None).await;
    assert!(
        matches!(twice, Err(AuthError::AlreadyConfirmed)),
        "{twice:?}"
    );
    let unknown = h.p().confirm_sign_up(&self::email(), "123456", None).await;
    assert!(
        matches!(unknown, Err(AuthError::UserNotFound)),
        "{unknown:?}"
    );
}

/// A pending account and its code end after their lifetime; the address can be signed up
/// afresh (not contested).
pub async fn codes_expire(h: &Harness) {
    let (Some(clock), Some(_)) = (&h.clock, &h.codes) else {
        return;
    };
    let email = h.unconfirmed_user().await;
    clock.advance(chrono::Duration::hours(25));
    let expired = h.p().confirm_sign_up(&email, &h.code(&email), None).await;
    assert!(
        matches!(expired, Err(AuthError::UserNotFound)),
        "{expired:?}"
    );
    assert!(matches!(
        h.p().sign_in(&email, PASSWORD).await,
        Err(AuthError::NotAuthorized)
    ));
    sign_up(h, &email, PASSWORD).await;
    h.p()
        .confirm_sign_up(&email, &h.code(&email), None)
        .await
        .expect("a fresh sign-up is not contested");
}

/// Altered, unsigned, foreign and garbage tokens are all refused.
pub async fn tampered_and_forged_tokens_are_refused(h: &Harness) {
    let email = h.confirmed_user().await;
    let login = h.p().sign_in(&email, PASSWORD).await.unwrap();
    let token = &login.tokens.access_token;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    assert_eq!(parts.len(), 3);

    // Change the payload (claim someone else's handle) but keep the signature.
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut payload: serde_json::Value =
        serde_json::from_slice(&engine.decode(&parts[1]).unwrap()).unwrap();
    payload["username"] = "admin".into();
    parts[1] = engine.encode(payload.to_string());
    let tampered = parts.join(".");
    assert!(matches!(
        h.p().verify(&tampered).await,
        Err(AuthError::InvalidToken)
    ));

    // No signature at all.
    let unsigned = format!(
        "{}.{}.",
        engine.encode(r#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    assert!(matches!(
        h.p().verify(&unsigned).await,
        Err(AuthError::InvalidToken)
    ));

    // Signed by a key that is not the provider's, with the provider's kid and a wrong issuer.
    let kid = h
        .p()
        .jwks()
        .and_then(|j| j.keys.first().map(|k| k.kid.clone()))
        .unwrap_or_default();
    let forger =
        crate::jwt::SigningKey::from_pem(&kid, crate::local::test_key().private_pem()).unwrap();
    let claims: AccessTokenClaims = serde_json::from_value(serde_json::json!({
        "sub": "x", "username": "x", "iss": "https://evil.example", "token_use": "access",
        "client_id": "somsom-web", "iat": 0, "exp": 4_000_000_000i64, "jti": "j"
    }))
    .unwrap();
    let forged = forger.sign(&claims).unwrap();
    assert!(matches!(
        h.p().verify(&forged).await,
        Err(AuthError::InvalidToken)
    ));

    for garbage in ["", "abc", "a.b.c", "Bearer x"] {
        assert!(
            matches!(h.p().verify(garbage).await, Err(AuthError::InvalidToken)),
            "{garbage}"
        );
    }
}

/// An access token past its expiry is refused as expired.
pub async fn access_tokens_expire(h: &Harness) {
    let Some(clock) = &h.clock else { return };
    let email = h.confirmed_user().await;
    let login = h.p().sign_in(&email, PASSWORD).await.unwrap();
    clock.advance(chrono::Duration::seconds(
        i64::try_from(login.tokens.expires_in).unwrap() + 1,
    ));
    let expired = h.p().verify(&login.tokens.access_token).await;
    assert!(
        matches!(expired, Err(AuthError::TokenExpired)),
        "{expired:?}"
    );
}

/// A refresh token works once; trading it in again revokes the whole session.
pub async fn refresh_tokens_rotate_and_reuse_revokes(h: &Harness) {
    if !h.rotates_refresh_tokens {
        return;
    }
    let email = h.confirmed_user().await;
    let login = h.p().sign_in(&email, PASSWORD).await.unwrap();
    let username = login.user.username.clone();
    let first = login.tokens.refresh_token.unwrap();
    let rotated = h.p().refresh(&username, &first).await.unwrap();
    let second = rotated.refresh_token.clone().unwrap();
    assert_ne!(first, second);
    let replay = h.p().refresh(&username, &first).await;
    assert!(
        matches!(replay, Err(AuthError::InvalidRefreshToken)),
        "{replay:?}"
    );
    let after_replay = h.p().refresh(&username, &second).await;
    assert!(
        matches!(after_replay, Err(AuthError::InvalidRefreshToken)),
        "the family is revoked: {after_replay:?}"
    );
    assert!(
        h.p().verify(&rotated.access_token).await.is_err(),
        "its access tokens too"
    );
    assert!(matches!(
        h.p().refresh(&username, "no-such-token").await,
        Err(AuthError::InvalidRefreshToken)
    ));
}

/// Granting a role shows in the next login's token and in the profile.
pub async fn roles_reach_new_tokens(h: &Harness) {
    let email = h.confirmed_user().await;
    h.p().set_role(&email, crate::Role::Admin).await.unwrap();
    assert_eq!(
        h.p().profile(&email).await.unwrap().role,
        crate::Role::Admin
    );
    let login = h.p().sign_in(&email, PASSWORD).await.unwrap();
    let claims = h.p().verify(&login.tokens.access_token).await.unwrap();
    assert_eq!(claims.role, crate::Role::Admin);
    assert!(matches!(
        h.p().profile(&self::email()).await,
        Err(AuthError::UserNotFound)
    ));
}
