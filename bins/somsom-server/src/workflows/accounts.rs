//! Account changes that span the identity provider and the server's `users` table.

use cognito_auth::{AuthError, IdentityProvider, Role};

use crate::auth::{User, users};
use crate::db::Database;

/// Makes `email` an admin in the identity provider and in `users` (the command line's
/// `grant-admin`, and configured admins once they confirm).
pub async fn grant_admin(
    auth: &dyn IdentityProvider,
    db: &Database,
    email: &str,
) -> Result<User, AuthError> {
    auth.set_role(email, Role::Admin).await?;
    let profile = auth.profile(email).await?;
    users::upsert(db, &profile)
        .await
        .map_err(|e| AuthError::unavailable("database", e))
}
