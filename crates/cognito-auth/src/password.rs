//! The password policy (Cognito's default) and argon2id hashing.

use argon2::password_hash::{
    Output, ParamsString, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::AuthError;

/// Cognito's default policy: at least 8 characters with an upper-case letter, a lower-case
/// letter, a digit and a symbol. At most 256 characters (argon2 does not need more, and it keeps
/// hashing cost bounded).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
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
    /// Cognito's rules with a minimum length of `min_len` characters.
    #[must_use]
    pub fn with_min_len(mut self, min_len: usize) -> Self {
        self.min_len = min_len;
        self
    }

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

/// The memory of one hash, kept and reused: argon2 otherwise allocates its 19 MiB anew for every
/// hash, and a server hashing on a few threads then holds on to freed blocks it cannot reuse
/// (measured: resident memory grew 19 MiB with every login).
pub struct Workspace {
    blocks: Vec<argon2::Block>,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("blocks", &self.blocks.len())
            .finish()
    }
}

impl Default for Workspace {
    fn default() -> Self {
        Self::new()
    }
}

impl Workspace {
    /// Memory for [`hasher`]'s parameters (19 MiB).
    pub fn new() -> Self {
        Self {
            blocks: vec![argon2::Block::default(); hasher().params().block_count()],
        }
    }
}

/// [`hash`] in `workspace`'s memory.
pub fn hash_in(password: &str, workspace: &mut Workspace) -> Result<String, AuthError> {
    let fail = |e: String| AuthError::unavailable("argon2", e);
    let argon = hasher();
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| fail(e.to_string()))?;
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        argon
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt_bytes,
                out,
                &mut workspace.blocks,
            )
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|e| fail(e.to_string()))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon.params()).map_err(|e| fail(e.to_string()))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// [`verify`] in `workspace`'s memory (a hash with parameters needing more memory than it has
/// is checked the allocating way).
pub fn verify_in(password: &str, phc: &str, workspace: &mut Workspace) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(expected), Some(salt)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.hash,
        parsed.salt,
    ) else {
        return false;
    };
    if params.block_count() > workspace.blocks.len() {
        return verify(password, phc);
    }
    let version = parsed
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or_default();
    let argon = Argon2::new(algorithm, version, params);
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let computed = Output::init_with(expected.len(), |out| {
        argon
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt_bytes,
                out,
                &mut workspace.blocks,
            )
            .map_err(|_| argon2::password_hash::Error::Crypto)
    });
    // Output compares in constant time.
    computed.is_ok_and(|computed| computed == expected)
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

    #[test]
    fn a_reused_workspace_hashes_and_verifies_like_the_allocating_functions() {
        let mut workspace = Workspace::new();
        let phc = hash_in("Festival1!", &mut workspace).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("Festival1!", &phc), "the standard verifier agrees");
        assert!(verify_in("Festival1!", &phc, &mut workspace));
        assert!(!verify_in("Festival2!", &phc, &mut workspace));
        let standard = hash("Festival1!").unwrap();
        assert!(verify_in("Festival1!", &standard, &mut workspace));
        assert!(!verify_in("Festival1!", "not a phc string", &mut workspace));
    }
}
