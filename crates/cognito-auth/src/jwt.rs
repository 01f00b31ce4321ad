//! RS256 JSON Web Tokens: signing keys with a `kid`, the JWKS that publishes them, and one
//! verifier used for the local provider's tokens and for Cognito's alike.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::{AuthError, Claims, Role};

/// One public key in a JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type, `RSA`.
    pub kty: String,
    /// Key id, matched against the token header's `kid`.
    pub kid: String,
    /// Algorithm, `RS256`.
    #[serde(default)]
    pub alg: Option<String>,
    /// Use, `sig`.
    #[serde(rename = "use", default)]
    pub use_: Option<String>,
    /// Modulus, base64url.
    pub n: String,
    /// Exponent, base64url.
    pub e: String,
}

/// A JSON Web Key Set, as served at `/.well-known/jwks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// An RSA private key that signs tokens.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    pem: String,
    jwk: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new 2048-bit RSA key with a random `kid`. Takes a moment: do it once and persist it.
    pub fn generate() -> Result<Self, AuthError> {
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
            .map_err(|e| AuthError::unavailable("rsa", e.to_string()))?;
        let pem = key
            .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
            .map_err(|e| AuthError::unavailable("rsa", e.to_string()))?;
        Self::from_pem(&uuid::Uuid::new_v4().simple().to_string(), &pem)
    }

    /// A key from a PEM file an operator made (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE
    /// KEY`, as `openssl genrsa` writes), with its RFC 7638 thumbprint as `kid`: the same key
    /// gets the same `kid` on every node.
    pub fn from_operator_pem(pem: &str) -> Result<Self, AuthError> {
        use rsa::pkcs8::DecodePrivateKey;
        let bad = |e: String| AuthError::InvalidParameter(format!("signing key: {e}"));
        let key = rsa::RsaPrivateKey::from_pkcs1_pem(pem)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs8_pem(pem))
            .map_err(|e| bad(e.to_string()))?;
        let pkcs1 = key
            .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
            .map_err(|e| bad(e.to_string()))?;
        // RFC 7638: the SHA-256 of the required members, in lexicographic order, no spaces.
        let thumbprint = format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
            URL_SAFE_NO_PAD.encode(key.n().to_bytes_be())
        );
        let kid = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(thumbprint.as_bytes()));
        Self::from_pem(&kid, &pkcs1)
    }

    /// A key from its PKCS#1 PEM (as persisted) and its `kid`.
    pub fn from_pem(kid: &str, pem: &str) -> Result<Self, AuthError> {
        let bad = |e: String| AuthError::unavailable("signing key", e);
        let key = rsa::RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| bad(e.to_string()))?;
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let jwk = Jwk {
            kty: "RSA".into(),
            kid: kid.to_owned(),
            alg: Some("RS256".into()),
            use_: Some("sig".into()),
            n: URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
            e: URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        };
        Ok(Self {
            kid: kid.to_owned(),
            encoding,
            pem: pem.to_owned(),
            jwk,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key as PKCS#1 PEM, for persisting. Treat as a secret.
    pub fn private_pem(&self) -> &str {
        &self.pem
    }

    /// The public half.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// Signs `claims` with RS256 and this key's `kid`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, AuthError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| AuthError::unavailable("jwt", e.to_string()))
    }
}

/// The claims the local provider (and Cognito) put in an access token. Unknown claims are ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Subject: the stable user handle.
    pub sub: String,
    /// The user handle again, under the name some clients read.
    pub username: String,
    /// Issuer.
    pub iss: String,
    /// `access`.
    pub token_use: String,
    /// The app client the token was issued to.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Issued at, seconds.
    pub iat: i64,
    /// Expiry, seconds.
    pub exp: i64,
    /// Token id.
    pub jti: String,
    /// The refresh-token family (sign-in session) this token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// E-mail (the local provider's tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Display name (the local provider's tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Groups; `ADMIN` makes the role admin (Cognito's claim name).
    #[serde(
        rename = "cognito:groups",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub groups: Vec<String>,
}

impl AccessTokenClaims {
    /// The public view.
    pub fn claims(&self) -> Claims {
        Claims {
            username: self.username.clone(),
            email: self.email.clone(),
            name: self.name.clone(),
            role: if self.groups.iter().any(|g| g == Role::Admin.as_str()) {
                Role::Admin
            } else {
                Role::User
            },
            expires_at: self.exp,
            token_id: self.jti.clone(),
        }
    }
}

/// The claims of an identity token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// Subject.
    pub sub: String,
    /// Audience: the app client.
    pub aud: String,
    /// Issuer.
    pub iss: String,
    /// `id`.
    pub token_use: String,
    /// The user handle (Cognito's claim name).
    #[serde(rename = "cognito:username")]
    pub username: String,
    /// E-mail.
    pub email: String,
    /// Whether the e-mail is confirmed.
    pub email_verified: bool,
    /// Display name.
    pub name: String,
    /// Issued at.
    pub iat: i64,
    /// Expiry.
    pub exp: i64,
}

/// Verifies access tokens against a key set, an issuer and (optionally) a client id.
#[derive(Clone)]
pub struct Verifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
    client_id: Option<String>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .field("client_id", &self.client_id)
            .finish()
    }
}

/// Why a token was refused before its claims were looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The header names a key this verifier does not have (maybe the issuer rotated keys).
    UnknownKey,
    /// Expired.
    Expired,
    /// Anything else: malformed, bad signature, wrong issuer, wrong use, wrong client.
    Invalid,
}

impl From<Refusal> for AuthError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Expired => AuthError::TokenExpired,
            Refusal::UnknownKey | Refusal::Invalid => AuthError::InvalidToken,
        }
    }
}

impl Verifier {
    /// A verifier for tokens from `issuer` signed by a key of `jwks`; with `client_id`, only
    /// tokens issued to that app client pass.
    pub fn new(jwks: &Jwks, issuer: &str, client_id: Option<&str>) -> Self {
        let keys = jwks
            .keys
            .iter()
            .filter(|k| k.kty == "RSA")
            .filter_map(|k| {
                DecodingKey::from_rsa_components(&k.n, &k.e)
                    .ok()
                    .map(|d| (k.kid.clone(), d))
            })
            .collect();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_aud = false;
        validation.leeway = 0;
        Self {
            keys,
            validation,
            client_id: client_id.map(str::to_owned),
        }
    }

    /// Checks signature, issuer, expiry (against `now_secs`), `token_use = access` and the
    /// client id.
    pub fn verify_access(&self, token: &str, now_secs: i64) -> Result<AccessTokenClaims, Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Invalid)?;
        if header.alg != Algorithm::RS256 {
            return Err(Refusal::Invalid);
        }
        let kid = header.kid.ok_or(Refusal::Invalid)?;
        let key = self.keys.get(&kid).ok_or(Refusal::UnknownKey)?;
        // Expiry is checked below against the injected clock, not the system time.
        let mut validation = self.validation.clone();
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<AccessTokenClaims>(token, key, &validation)
            .map_err(|_| Refusal::Invalid)?;
        let claims = data.claims;
        if claims.token_use != "access" {
            return Err(Refusal::Invalid);
        }
        if let Some(expected) = &self.client_id
            && claims.client_id.as_deref() != Some(expected.as_str())
        {
            return Err(Refusal::Invalid);
        }
        if claims.exp <= now_secs {
            return Err(Refusal::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn claims(iss: &str, exp: i64) -> AccessTokenClaims {
        AccessTokenClaims {
            sub: "u1".into(),
            username: "u1".into(),
            iss: iss.into(),
            token_use: "access".into(),
            client_id: Some("client".into()),
            iat: exp - 3600,
            exp,
            jti: "j1".into(),
            sid: None,
            email: Some("a@b.co".into()),
            name: None,
            groups: vec!["ADMIN".into()],
        }
    }

    #[test]
    fn sign_and_verify_round_trip_and_refusals() {
        let key = crate::local::test_key();
        let jwks = Jwks {
            keys: vec![key.jwk().clone()],
        };
        let verifier = Verifier::new(&jwks, "https://issuer", Some("client"));
        let now = 1_800_000_000;
        let token = key.sign(&claims("https://issuer", now + 60)).unwrap();
        let ok = verifier.verify_access(&token, now).unwrap();
        assert_eq!(ok.claims().role, Role::Admin);
        assert_eq!(
            verifier.verify_access(&token, now + 60).unwrap_err(),
            Refusal::Expired
        );

        let other_issuer = key.sign(&claims("https://evil", now + 60)).unwrap();
        assert_eq!(
            verifier.verify_access(&other_issuer, now).unwrap_err(),
            Refusal::Invalid
        );

        let other_client = Verifier::new(&jwks, "https://issuer", Some("other"));
        assert_eq!(
            other_client.verify_access(&token, now).unwrap_err(),
            Refusal::Invalid
        );

        // A flipped signature byte.
        let mut tampered = token.into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            verifier.verify_access(&tampered, now).unwrap_err(),
            Refusal::Invalid
        );

        // A key the verifier does not know.
        let stranger = SigningKey::from_pem("other-kid", key.private_pem()).unwrap();
        let unknown = stranger.sign(&claims("https://issuer", now + 60)).unwrap();
        assert_eq!(
            verifier.verify_access(&unknown, now).unwrap_err(),
            Refusal::UnknownKey
        );

        assert_eq!(
            verifier.verify_access("garbage", now).unwrap_err(),
            Refusal::Invalid
        );
    }

    #[test]
    fn persisted_keys_round_trip() {
        let key = crate::local::test_key();
        let again = SigningKey::from_pem(key.kid(), key.private_pem()).unwrap();
        assert_eq!(again.jwk(), key.jwk());
    }

    #[test]
    fn an_operator_key_gets_its_thumbprint_as_kid_in_either_pem_form() {
        use rsa::pkcs8::EncodePrivateKey;
        let generated = crate::local::test_key();
        let pkcs1 = generated.private_pem();
        let key = rsa::RsaPrivateKey::from_pkcs1_pem(pkcs1).unwrap();
        let pkcs8 = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        let a = SigningKey::from_operator_pem(pkcs1).unwrap();
        let b = SigningKey::from_operator_pem(&pkcs8).unwrap();
        assert_eq!(a.kid(), b.kid(), "the same key, the same kid");
        assert_eq!(a.kid().len(), 43, "a base64url SHA-256");
        assert!(SigningKey::from_operator_pem("not a key").is_err());
    }
}
