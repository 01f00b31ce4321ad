//! Web Push (feature `webpush`): RFC 8030 delivery, RFC 8291 message encryption
//! (`aes128gcm`, RFC 8188) and RFC 8292 VAPID.
//!
//! A device's token is the browser's `PushSubscription` as JSON
//! (`{"endpoint": …, "keys": {"p256dh": …, "auth": …}}`). Each message is encrypted for the
//! subscription with a fresh ephemeral P-256 key and salt, and carries a VAPID JWT signed by the
//! application server's key, whose public half the browser was given when it subscribed.

use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use engine_clock::{Clock, SystemClock};
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use rand::RngCore;
use serde::Deserialize;
use sha2::Sha256;

use super::http::{is_passing, retry_after, transport};
use crate::{Device, Message, PushError, SendOutcome, Sender};

/// The record size written in the header; one record holds the whole message.
const RECORD_SIZE: u32 = 4096;
/// The largest plaintext one record carries: the record size less the tag (16) and the
/// delimiter (1).
pub const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - 17;

/// A browser's push subscription.
#[derive(Debug, Clone, Deserialize)]
pub struct Subscription {
    /// The push service URL for this browser.
    pub endpoint: String,
    /// Its keys.
    pub keys: SubscriptionKeys,
}

/// The subscription's keys, Base64url.
#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionKeys {
    /// The browser's P-256 public key (65 bytes, uncompressed).
    pub p256dh: String,
    /// The 16-byte authentication secret.
    pub auth: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> PushError {
    PushError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn decode(field: &'static str, value: &str) -> Result<Vec<u8>, PushError> {
    B64.decode(value.trim_end_matches('='))
        .map_err(|e| invalid(field, e.to_string()))
}

impl Subscription {
    /// Parses a token holding a subscription.
    pub fn parse(token: &str) -> Result<Self, PushError> {
        let sub: Self = serde_json::from_str(token).map_err(|e| invalid("token", e.to_string()))?;
        let url =
            reqwest::Url::parse(&sub.endpoint).map_err(|e| invalid("endpoint", e.to_string()))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(invalid("endpoint", "not an http(s) URL"));
        }
        Ok(sub)
    }
}

/// The application server's VAPID key pair (P-256).
#[derive(Clone)]
pub struct VapidKey {
    secret: SecretKey,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey")
            .field("public", &self.public_base64())
            .finish_non_exhaustive()
    }
}

impl VapidKey {
    /// A new random key.
    pub fn generate() -> Self {
        Self {
            secret: SecretKey::random(&mut rand::thread_rng()),
        }
    }

    /// The key from its private scalar, Base64url (32 bytes; what web-push tools print).
    pub fn from_base64(private: &str) -> Result<Self, PushError> {
        let bytes = decode("vapid_private_key", private)?;
        let secret = SecretKey::from_slice(&bytes)
            .map_err(|e| invalid("vapid_private_key", e.to_string()))?;
        Ok(Self { secret })
    }

    /// The private scalar, Base64url (keep it secret; store it to keep subscriptions valid).
    pub fn private_base64(&self) -> String {
        B64.encode(self.secret.to_bytes())
    }

    /// The public key, uncompressed and Base64url: the browser's `applicationServerKey`.
    pub fn public_base64(&self) -> String {
        B64.encode(self.secret.public_key().to_encoded_point(false).as_bytes())
    }

    /// A VAPID JWT (ES256) for the push service at `audience`, valid until `expires` (Unix
    /// seconds; at most 24 h ahead by RFC 8292).
    pub fn jwt(&self, audience: &str, subject: &str, expires: i64) -> String {
        let header = B64.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({ "aud": audience, "exp": expires, "sub": subject });
        let claims = B64.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let key = p256::ecdsa::SigningKey::from(&self.secret);
        let signature: p256::ecdsa::Signature = key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(signature.to_bytes()))
    }
}

/// Encrypts `plaintext` for a subscription (RFC 8291) with the given ephemeral key and salt;
/// returns the `aes128gcm` body (header and one record).
pub fn encrypt(
    plaintext: &[u8],
    p256dh: &[u8],
    auth: &[u8],
    ephemeral: &SecretKey,
    salt: [u8; 16],
) -> Result<Vec<u8>, PushError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(invalid(
            "payload",
            format!("longer than {MAX_PLAINTEXT} bytes"),
        ));
    }
    let ua_public =
        PublicKey::from_sec1_bytes(p256dh).map_err(|e| invalid("p256dh", e.to_string()))?;
    let as_public = ephemeral.public_key().to_encoded_point(false);
    let shared = p256::ecdh::diffie_hellman(ephemeral.to_nonzero_scalar(), ua_public.as_affine());

    // IKM = HKDF(auth, ecdh_secret, "WebPush: info" 0x00 ua_public as_public, 32)
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(ua_public.to_encoded_point(false).as_bytes());
    key_info.extend_from_slice(as_public.as_bytes());
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), shared.raw_secret_bytes())
        .expand(&key_info, &mut ikm)
        .map_err(|e| invalid("auth", e.to_string()))?;

    let prk = Hkdf::<Sha256>::new(Some(&salt), &ikm);
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .and_then(|()| prk.expand(b"Content-Encoding: nonce\0", &mut nonce))
        .map_err(|e| invalid("payload", e.to_string()))?;

    // One record, so it is the last: the delimiter is 0x02, no padding.
    let mut record = plaintext.to_vec();
    record.push(2);
    let cipher = Aes128Gcm::new_from_slice(&cek).map_err(|e| invalid("payload", e.to_string()))?;
    let sealed = cipher
        .encrypt(&Nonce::from(nonce), record.as_slice())
        .map_err(|e| invalid("payload", e.to_string()))?;

    let mut body = Vec::with_capacity(16 + 4 + 1 + 65 + sealed.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(u8::try_from(as_public.len()).unwrap_or(65));
    body.extend_from_slice(as_public.as_bytes());
    body.extend_from_slice(&sealed);
    Ok(body)
}

/// Sends through the browsers' push services.
#[derive(Debug, Clone)]
pub struct WebPushSender {
    http: reqwest::Client,
    policy: super::endpoint::EndpointPolicy,
    vapid: Arc<VapidKey>,
    subject: String,
    ttl: Duration,
    clock: Arc<dyn Clock>,
}

impl WebPushSender {
    /// A sender signing with `vapid`; `subject` is a `mailto:` or `https:` contact for the push
    /// services' operators. It sends only to public `https` endpoints
    /// ([`EndpointPolicy::strict`](super::endpoint::EndpointPolicy::strict)).
    pub fn new(vapid: VapidKey, subject: impl Into<String>) -> Result<Self, PushError> {
        Self::with_policy(vapid, subject, super::endpoint::EndpointPolicy::strict())
    }

    /// [`new`](Self::new) with another endpoint policy (tests against a local push service).
    pub fn with_policy(
        vapid: VapidKey,
        subject: impl Into<String>,
        policy: super::endpoint::EndpointPolicy,
    ) -> Result<Self, PushError> {
        let mut builder = super::http::builder();
        if !policy.allow_private {
            builder = builder.dns_resolver(Arc::new(super::endpoint::PublicOnly));
        }
        let http = builder
            .build()
            .map_err(|e| PushError::unavailable("webpush", e))?;
        Ok(Self {
            http,
            policy,
            vapid: Arc::new(vapid),
            subject: subject.into(),
            ttl: Duration::from_secs(24 * 3600),
            clock: Arc::new(SystemClock),
        })
    }

    /// With time from `clock` (the VAPID expiry).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The JSON the service worker receives.
    pub fn payload(message: &Message) -> Vec<u8> {
        serde_json::json!({
            "title": message.title,
            "body": message.body,
            "tag": message.collapse_id,
        })
        .to_string()
        .into_bytes()
    }

    fn request(
        &self,
        sub: &Subscription,
        message: &Message,
    ) -> Result<reqwest::RequestBuilder, PushError> {
        let p256dh = decode("p256dh", &sub.keys.p256dh)?;
        let auth = decode("auth", &sub.keys.auth)?;
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        let ephemeral = SecretKey::random(&mut rand::thread_rng());
        let body = encrypt(&Self::payload(message), &p256dh, &auth, &ephemeral, salt)?;
        let url =
            reqwest::Url::parse(&sub.endpoint).map_err(|e| invalid("endpoint", e.to_string()))?;
        self.allowed(&url)?;
        let audience = url.origin().ascii_serialization();
        let expires = self.clock.now().timestamp() + 12 * 3600;
        let jwt = self.vapid.jwt(&audience, &self.subject, expires);
        Ok(self
            .http
            .post(url)
            .header("TTL", self.ttl.as_secs().to_string())
            .header("Urgency", "normal")
            .header("Topic", super::topic(&message.collapse_id))
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .header(
                "Authorization",
                format!("vapid t={jwt}, k={}", self.vapid.public_base64()),
            )
            .body(body))
    }
}

impl WebPushSender {
    /// The policy's checks that need no lookup: the scheme, and an address written in the URL
    /// (names are checked by the resolver when connecting).
    fn allowed(&self, url: &reqwest::Url) -> Result<(), PushError> {
        let scheme_ok =
            url.scheme() == "https" || (self.policy.allow_http && url.scheme() == "http");
        let literal = match url.host() {
            Some(url::Host::Ipv4(v4)) => Some(std::net::IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(std::net::IpAddr::V6(v6)),
            _ => None,
        };
        let address_ok =
            self.policy.allow_private || literal.is_none_or(super::endpoint::is_public);
        if scheme_ok && address_ok {
            Ok(())
        } else {
            Err(invalid("endpoint", "not a public https push service"))
        }
    }
}

#[async_trait]
impl Sender for WebPushSender {
    async fn send(&self, device: &Device, message: &Message) -> SendOutcome {
        let request =
            match Subscription::parse(&device.token).and_then(|sub| self.request(&sub, message)) {
                Ok(r) => r,
                // A subscription we cannot use will never work: deactivate it.
                Err(e) => {
                    tracing::warn!(
                        user = device.user,
                        error = &e as &dyn std::error::Error,
                        "unusable web push subscription"
                    );
                    return SendOutcome::Gone;
                }
            };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return transport("webpush", &e),
        };
        let status = response.status();
        if status.is_success() {
            return SendOutcome::Delivered;
        }
        let after = retry_after(response.headers());
        let text = super::http::answer_text(response).await;
        let reason = format!("push service answered {status}: {text}");
        match status.as_u16() {
            404 | 410 => SendOutcome::Gone,
            _ if is_passing(status) => SendOutcome::Retry { after, reason },
            _ => SendOutcome::Failed { reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vapid_keys_round_trip_and_sign_verifiable_jwts() {
        use p256::ecdsa::signature::Verifier;
        let key = VapidKey::generate();
        let again = VapidKey::from_base64(&key.private_base64()).unwrap();
        assert_eq!(key.public_base64(), again.public_base64());
        assert_eq!(B64.decode(key.public_base64()).unwrap().len(), 65);
        let jwt = key.jwt(
            "https://push.example.net",
            "mailto:ops@example.com",
            1_900_000_000,
        );
        let parts: Vec<_> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://push.example.net");
        let public =
            p256::ecdsa::VerifyingKey::from_sec1_bytes(&B64.decode(key.public_base64()).unwrap())
                .unwrap();
        let signature = p256::ecdsa::Signature::from_slice(&B64.decode(parts[2]).unwrap()).unwrap();
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .unwrap();
        assert!(VapidKey::from_base64("short").is_err());
    }

    #[test]
    fn oversized_payloads_and_bad_keys_are_refused() {
        let ua = SecretKey::random(&mut rand::thread_rng());
        let p256dh = ua.public_key().to_encoded_point(false).as_bytes().to_vec();
        let eph = SecretKey::random(&mut rand::thread_rng());
        let ok = encrypt(b"hi", &p256dh, &[0; 16], &eph, [0; 16]).unwrap();
        // salt 16 + rs 4 + idlen 1 + key 65 + (2 bytes + delimiter) + tag 16
        assert_eq!(ok.len(), 16 + 4 + 1 + 65 + 3 + 16);
        assert_eq!(&ok[16..20], &4096u32.to_be_bytes());
        assert!(
            encrypt(
                &vec![0; MAX_PLAINTEXT + 1],
                &p256dh,
                &[0; 16],
                &eph,
                [0; 16]
            )
            .is_err()
        );
        assert!(encrypt(b"hi", &[4; 65], &[0; 16], &eph, [0; 16]).is_err());
        assert!(Subscription::parse("{}").is_err());
        assert!(
            Subscription::parse(r#"{"endpoint":"ftp://x","keys":{"p256dh":"a","auth":"b"}}"#)
                .is_err()
        );
    }
}
