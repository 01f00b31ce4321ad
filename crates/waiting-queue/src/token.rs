//! Admission tokens: proof that a user was admitted from a queue, checked without a lookup.
//!
//! `wq2.<payload>.<tag>`, both parts base64url without padding. The payload is
//! `expires-ms \n admission-number \n queue \n user`; the tag is HMAC-SHA256 over
//! `wq2.<payload>` under a secret the nodes share. Neither a queue name nor a user key can hold a
//! newline, so no field can be forged by another. The signature proves who was admitted where
//! and until when without a lookup; that the admission is still unused is the engine's to say
//! ([`WaitingQueue::consume`](crate::WaitingQueue::consume) with the number the token carries),
//! so a token cannot be replayed, shared or used twice.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::QueueName;

const VERSION: &str = "wq2";
/// The shortest secret accepted, in bytes.
pub const SECRET_MIN: usize = 32;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a token of this kind.
    #[error("malformed admission token")]
    Malformed,
    /// Altered, or signed with another secret.
    #[error("admission token signature does not match")]
    BadSignature,
    /// Issued for another user or queue.
    #[error("admission token is for another user or queue")]
    WrongHolder,
    /// Past its expiry.
    #[error("admission token expired")]
    Expired,
}

/// Issues and checks admission tokens with one secret.
#[derive(Clone)]
pub struct AdmissionTokens {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for AdmissionTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdmissionTokens(..)")
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// The admission's number in its queue.
    pub admission: u64,
}

impl AdmissionTokens {
    /// Tokens signed with `secret`, which must be at least [`SECRET_MIN`] bytes (`None` if not).
    pub fn new(secret: &[u8]) -> Option<Self> {
        if secret.len() < SECRET_MIN {
            return None;
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
        Some(Self { mac })
    }

    /// A token saying `user` holds `admission` in `queue`.
    pub fn issue(&self, queue: &QueueName, user: &str, admission: &crate::Admission) -> String {
        let payload = format!(
            "{}\n{}\n{queue}\n{user}",
            admission.expires_at.timestamp_millis(),
            admission.id
        );
        let signed = format!("{VERSION}.{}", B64.encode(payload));
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        format!("{signed}.{}", B64.encode(mac.finalize().into_bytes()))
    }

    /// Checks that `token` is genuine, for `user` in `queue`, and not expired at `now`.
    pub fn verify(
        &self,
        token: &str,
        queue: &QueueName,
        user: &str,
        now: DateTime<Utc>,
    ) -> Result<Verified, TokenError> {
        let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (version, payload) = signed.split_once('.').ok_or(TokenError::Malformed)?;
        if version != VERSION {
            return Err(TokenError::Malformed);
        }
        let tag = B64.decode(tag).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        mac.verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        // Only a signed payload is parsed.
        let payload = B64.decode(payload).map_err(|_| TokenError::Malformed)?;
        let payload = String::from_utf8(payload).map_err(|_| TokenError::Malformed)?;
        let mut fields = payload.splitn(4, '\n');
        let (Some(expires), Some(admission), Some(for_queue), Some(for_user)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(TokenError::Malformed);
        };
        let expires: i64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        let admission: u64 = admission.parse().map_err(|_| TokenError::Malformed)?;
        if for_queue != queue.as_str() || for_user != user {
            return Err(TokenError::WrongHolder);
        }
        if now.timestamp_millis() >= expires {
            return Err(TokenError::Expired);
        }
        Ok(Verified {
            expires_at: DateTime::from_timestamp_millis(expires).ok_or(TokenError::Malformed)?,
            admission,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn tokens(secret: u8) -> AdmissionTokens {
        AdmissionTokens::new(&[secret; 32]).unwrap()
    }

    fn admission(expires_at: DateTime<Utc>) -> crate::Admission {
        crate::Admission { expires_at, id: 42 }
    }

    #[test]
    fn a_token_proves_admission_for_its_holder_until_it_expires() {
        let now = Utc::now();
        let q = QueueName::new("festival1").unwrap();
        let t = tokens(7).issue(
            &q,
            "a@example.com",
            &admission(now + TimeDelta::minutes(10)),
        );
        let ok = tokens(7).verify(&t, &q, "a@example.com", now).unwrap();
        assert_eq!(
            ok.expires_at.timestamp_millis(),
            (now + TimeDelta::minutes(10)).timestamp_millis()
        );
        assert_eq!(ok.admission, 42);
        assert_eq!(
            tokens(7).verify(&t, &q, "b@example.com", now),
            Err(TokenError::WrongHolder)
        );
        let other = QueueName::new("festival2").unwrap();
        assert_eq!(
            tokens(7).verify(&t, &other, "a@example.com", now),
            Err(TokenError::WrongHolder)
        );
        assert_eq!(
            tokens(7).verify(&t, &q, "a@example.com", now + TimeDelta::minutes(10)),
            Err(TokenError::Expired)
        );
        assert_eq!(
            tokens(8).verify(&t, &q, "a@example.com", now),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn altered_or_garbage_tokens_are_refused() {
        let now = Utc::now();
        let q = QueueName::new("festival1").unwrap();
        let t = tokens(7).issue(
            &q,
            "a@example.com",
            &admission(now + TimeDelta::minutes(10)),
        );
        // Swap in a payload naming someone else, keeping the tag.
        let (_, rest) = t.split_once('.').unwrap();
        let (_, tag) = rest.split_once('.').unwrap();
        let forged_payload = B64.encode(format!(
            "{}\n42\nfestival1\nb@example.com",
            (now + TimeDelta::minutes(10)).timestamp_millis()
        ));
        let forged = format!("wq2.{forged_payload}.{tag}");
        assert_eq!(
            tokens(7).verify(&forged, &q, "b@example.com", now),
            Err(TokenError::BadSignature)
        );
        for garbage in ["", "wq2", "wq2..", "x.y.z", "wq2.%%%.%%%", "wq1.YQ.YQ"] {
            assert!(
                tokens(7).verify(garbage, &q, "a@example.com", now).is_err(),
                "{garbage}"
            );
        }
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(AdmissionTokens::new(&[1; 31]).is_none());
    }
}
