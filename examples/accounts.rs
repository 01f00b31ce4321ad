//! Accounts for your own service with `cognito-auth`'s local provider, nothing else from
//! SomSom: sign-up with an e-mailed code (printed here), sign-in, verifying the access token as
//! an API would, refresh-token rotation (a stolen refresh token used twice ends the session),
//! and sign-out. Accounts and the signing key live in a SQLite file; with AWS Cognito instead
//! (feature `cognito`) the same `IdentityProvider` calls work unchanged.
//!
//! ```sh
//! cargo run -p somsom-examples --example accounts
//! ```

#![expect(clippy::print_stdout, reason = "what this example prints is its point")]

use std::sync::Arc;

use async_trait::async_trait;
use cognito_auth::local::{LocalConfig, LocalIdentity, SqlStore};
use cognito_auth::sender::{CodePurpose, CodeSender, Recipient};
use cognito_auth::{AuthError, IdentityProvider, SignUp, SystemClock};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

/// Where confirmation codes go: your mailer. This one prints, and keeps the last code so the
/// example can type it in.
#[derive(Debug, Default)]
struct Mailbox {
    last: std::sync::Mutex<Option<String>>,
}

#[async_trait]
impl CodeSender for Mailbox {
    async fn send_code(
        &self,
        to: &Recipient,
        code: &str,
        purpose: CodePurpose,
    ) -> Result<(), AuthError> {
        println!(
            "  (mail to {} <{}>, {purpose:?}: your code is {code})",
            to.name, to.email
        );
        *self.last.lock().expect("not poisoned") = Some(code.to_owned());
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = std::env::temp_dir().join(format!("accounts-{}.db", std::process::id()));
    let pool = SqlitePoolOptions::new()
        .connect_with(
            SqliteConnectOptions::new()
                .filename(&file)
                .create_if_missing(true),
        )
        .await?;
    let store = SqlStore::Sqlite(pool);
    store.migrate().await?;
    let mailbox = Arc::new(Mailbox::default());
    let auth = LocalIdentity::new(
        Arc::new(store),
        mailbox.clone(),
        Arc::new(SystemClock),
        LocalConfig::default(),
    )
    .await?;

    let (email, password) = ("ana@example.com", "Festival1!");
    println!("sign up {email}");
    auth.sign_up(SignUp {
        email: email.into(),
        password: password.into(),
        name: "Ana".into(),
    })
    .await?;
    let code = mailbox.last.lock().expect("not poisoned").clone();
    let code = code.expect("a code was mailed");
    // The password again: whoever confirms the mailbox must also know the account's password.
    auth.confirm_sign_up(email, &code, Some(password)).await?;

    let login = auth.sign_in(email, password).await?;
    println!("signed in as {} ({})", login.user.name, login.user.username);

    // What your API does with every request's bearer token.
    let claims = auth.verify(&login.tokens.access_token).await?;
    println!("the access token is {}'s", claims.username);

    // Refresh tokens rotate: the new one works, replaying the old one ends the whole session.
    let stolen = login.tokens.refresh_token.clone().expect("a refresh token");
    let fresh = auth.refresh(&claims.username, &stolen).await?;
    println!("refreshed: a new access token and a new refresh token");
    match auth.refresh(&claims.username, &stolen).await {
        Err(e) => println!("the old refresh token again: refused ({e})"),
        Ok(_) => unreachable!("a used refresh token must not work twice"),
    }
    let after_replay = auth.verify(&fresh.access_token).await;
    println!(
        "and the session it belonged to is over: {}",
        if after_replay.is_err() { "yes" } else { "no" }
    );

    // A fresh sign-in, then sign-out: its token stops verifying at once.
    let login = auth.sign_in(email, password).await?;
    auth.sign_out(&login.tokens.access_token).await?;
    assert!(auth.verify(&login.tokens.access_token).await.is_err());
    println!("signed out: the token no longer verifies");

    std::fs::remove_file(&file).ok();
    Ok(())
}
