//! The password policy (Cognito's default) and argon2id hashing.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::AuthError;

/// Cognito's default policy: at least 8 characters with an upper-case letter, a lower-case
/// letter, a digit and a symbol. At most 256 characters (argon2 does not need more, and it keeps
/// hashing cost bounded).
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Minimum length in characters.
    pub min_len: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self { min_len: 8 }
    }
}

impl Policy {
    /// Checks `password`, naming the first rule it breaks.
    pub fn check(&self, password: &str) -> Result<(), AuthError> {
        let len = password.chars().count();
        let rule = if len < self.min_len {
            format!("at least {} characters", self.min_len)
        } else if len > 256 {
            "at most 256 characters".to_owned()
        } else if !password.chars().any(|c| c.is_uppercase()) {
            "an upper-case letter".to_owned()
        } else if !password.chars().any(|c| c.is_lowercase()) {
            "a lower-case letter".to_owned()
        } else if !password.chars().any(|c| c.is_ascii_digit()) {
            "a digit".to_owned()
        } else if !password
            .chars()
            .any(|c| c.is_ascii_punctuation() || (!c.is_alphanumeric() && !c.is_whitespace()))
        {
            "a symbol".to_owned()
        } else {
            return Ok(());
        };
        Err(AuthError::InvalidPassword(rule))
    }
}

/// Argon2id parameters: OWASP's recommended minimum (19 MiB, 2 passes, 1 lane). The time one
/// login costs is measured in `docs/benchmarks.md`.
pub fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`). CPU-heavy: run it
/// on a blocking thread.
pub fn hash(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::unavailable("argon2", e.to_string()))
}

/// Checks a password against a PHC string. CPU-heavy: run it on a blocking thread.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            hasher()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of no one's password, verified against when the e-mail is unknown so that unknown
/// users and wrong passwords take the same time.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("decoy-password-never-used-1A!").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_the_missing_rule() {
        let p = Policy::default();
        assert!(p.check("Passw0rd!").is_ok());
        assert!(p.check("비밀번호Ab1!").is_ok());
        for (bad, rule) in [
            ("Pw0rd!", "at least 8"),
            ("password1!", "upper-case"),
            ("PASSWORD1!", "lower-case"),
            ("Password!!", "digit"),
            ("Password11", "symbol"),
        ] {
            let err = p.check(bad).unwrap_err().to_string();
            assert!(err.contains(rule), "{bad}: {err}");
        }
    }

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash("Passw0rd!").unwrap();
        let b = hash("Passw0rd!").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("Passw0rd!", &a));
        assert!(!verify("Passw0rd?", &a));
        assert!(!verify("Passw0rd!", "not a hash"));
    }
}
