//! Follows revoked sessions on every node: once a second, one query learns the sign-outs,
//! password resets and reused refresh tokens of every node, so that verifying a token needs no
//! read per request, and the chat sockets those sessions opened are closed. Now and then it also
//! purges unconfirmed accounts past their lifetime.

use std::sync::Arc;
use std::time::Duration;

use cognito_auth::IdentityProvider;
use tokio_util::sync::CancellationToken;

use super::UserRows;

/// How often expired unconfirmed accounts are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Polls `auth` for revocations every `interval` until `cancel`, closing the chat connections of
/// every user whose session ended.
pub async fn follow(
    auth: Arc<dyn IdentityProvider>,
    users: UserRows,
    chat: chat_relay::ChatServer,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut purged = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match auth.poll_revocations().await {
            Ok(revoked) => {
                for revocation in revoked {
                    match users.by_username(&revocation.username).await {
                        Ok(Some(user)) => {
                            chat.disconnect_user(
                                chat_relay::UserId(user.id),
                                "your session ended (signed out)",
                            );
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(error = %crate::error::Report(&e), "cannot look up a signed-out user")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %crate::error::Report(&e), "cannot poll revoked sessions")
            }
        }
        if purged.elapsed() >= PURGE_EVERY {
            purged = tokio::time::Instant::now();
            match auth.purge_expired().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    purged = n,
                    "removed unconfirmed accounts past their lifetime"
                ),
                Err(e) => {
                    tracing::warn!(error = %crate::error::Report(&e), "cannot purge unconfirmed accounts")
                }
            }
        }
    }
}
