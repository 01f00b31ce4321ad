//! E-ticket codes. A reservation of N tickets has N codes, one per ticket:
//!
//! `T1.{reservation}.{ticket}.{festival}.{yyyymmdd}.{mac}`
//!
//! where `mac` is the first 16 bytes of an HMAC-SHA256 under the server's ticket key over
//! everything before it, in unpadded base64url. The code is bound to the reservation, the
//! ticket's number and the festival day: change any of them and the MAC no longer matches, and
//! without the key no code can be made (a 128-bit MAC). Whether the ticket is still valid
//! (not cancelled, not checked in) is the database's answer at the gate, not the code's. A code
//! is about 50 characters: a small QR code, readable from a phone screen.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::NaiveDate;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The code's version prefix.
const PREFIX: &str = "T1";
/// Bytes of the MAC kept.
const MAC_BYTES: usize = 16;
/// The shortest key accepted.
pub const SECRET_MIN: usize = 32;

/// What a code names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketRef {
    /// The reservation.
    pub reservation: i64,
    /// The ticket's number in it, from 1.
    pub number: u32,
    /// The festival.
    pub festival: i64,
    /// The festival day.
    pub date: NaiveDate,
}

/// Why a code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Not a ticket code at all.
    #[error("not a ticket code")]
    Malformed,
    /// Shaped like one, but the MAC does not match: forged or altered.
    #[error("the ticket code's signature does not match")]
    Forged,
}

/// Issues and reads codes under one key.
#[derive(Clone)]
pub struct TicketCodes {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for TicketCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketCodes { .. }")
    }
}

impl TicketCodes {
    /// Codes under `secret` (at least [`SECRET_MIN`] bytes).
    pub fn new(secret: &[u8]) -> Option<Self> {
        if secret.len() < SECRET_MIN {
            return None;
        }
        Some(Self {
            mac: Hmac::<Sha256>::new_from_slice(secret).ok()?,
        })
    }

    fn signed_part(ticket: &TicketRef) -> String {
        format!(
            "{PREFIX}.{}.{}.{}.{}",
            ticket.reservation,
            ticket.number,
            ticket.festival,
            ticket.date.format("%Y%m%d")
        )
    }

    /// The code of `ticket`.
    pub fn issue(&self, ticket: &TicketRef) -> String {
        let signed = Self::signed_part(ticket);
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{signed}.{}", B64.encode(&tag[..MAC_BYTES]))
    }

    /// What `code` names, if this server issued it.
    pub fn read(&self, code: &str) -> Result<TicketRef, CodeError> {
        let code = code.trim();
        let (signed, tag) = code.rsplit_once('.').ok_or(CodeError::Malformed)?;
        let mut parts = signed.split('.');
        if parts.next() != Some(PREFIX) {
            return Err(CodeError::Malformed);
        }
        let mut field = || parts.next().ok_or(CodeError::Malformed);
        let reservation: i64 = field()?.parse().map_err(|_| CodeError::Malformed)?;
        let number: u32 = field()?.parse().map_err(|_| CodeError::Malformed)?;
        let festival: i64 = field()?.parse().map_err(|_| CodeError::Malformed)?;
        let date =
            NaiveDate::parse_from_str(field()?, "%Y%m%d").map_err(|_| CodeError::Malformed)?;
        if parts.next().is_some() {
            return Err(CodeError::Malformed);
        }
        let tag = B64.decode(tag).map_err(|_| CodeError::Malformed)?;
        if tag.len() != MAC_BYTES {
            return Err(CodeError::Malformed);
        }
        let ticket = TicketRef {
            reservation,
            number,
            festival,
            date,
        };
        // The canonical form must be what was signed (no leading zeros or signs slipping by).
        if Self::signed_part(&ticket) != signed {
            return Err(CodeError::Forged);
        }
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        mac.verify_truncated_left(&tag)
            .map_err(|_| CodeError::Forged)?;
        Ok(ticket)
    }

    /// The tickets of a reservation of `quantity`, numbered from 1, with their codes.
    pub fn tickets(
        &self,
        reservation: i64,
        festival: i64,
        date: NaiveDate,
        quantity: u32,
    ) -> Vec<(u32, String)> {
        (1..=quantity)
            .map(|number| {
                let code = self.issue(&TicketRef {
                    reservation,
                    number,
                    festival,
                    date,
                });
                (number, code)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes() -> TicketCodes {
        TicketCodes::new(&[7u8; 32]).unwrap()
    }

    fn ticket() -> TicketRef {
        TicketRef {
            reservation: 42,
            number: 2,
            festival: 7,
            date: NaiveDate::from_ymd_opt(2099, 8, 1).unwrap(),
        }
    }

    #[test]
    fn a_code_reads_back_as_what_it_was_issued_for() {
        let code = codes().issue(&ticket());
        assert!(code.starts_with("T1.42.2.7.20990801."), "{code}");
        assert_eq!(codes().read(&code), Ok(ticket()));
        assert_eq!(
            codes().read(&format!(" {code}\n")),
            Ok(ticket()),
            "scanner whitespace"
        );
    }

    #[test]
    fn altered_forged_and_foreign_codes_are_refused() {
        let code = codes().issue(&ticket());
        for altered in [
            code.replacen("T1.42.", "T1.43.", 1),
            code.replacen(".2.7.", ".3.7.", 1),
            code.replacen("20990801", "20990802", 1),
            code.replacen("T1.42.", "T1.042.", 1),
        ] {
            assert_eq!(codes().read(&altered), Err(CodeError::Forged), "{altered}");
        }
        let other_key = TicketCodes::new(&[8u8; 32]).unwrap().issue(&ticket());
        assert_eq!(codes().read(&other_key), Err(CodeError::Forged));
        let (signed, _) = code.rsplit_once('.').unwrap();
        let guessed = format!("{signed}.{}", B64.encode([0u8; 16]));
        assert_eq!(codes().read(&guessed), Err(CodeError::Forged));
        for junk in [
            "",
            "hello",
            "T1.1.1.1.1",
            "T2.42.2.7.20990801.AAAA",
            &format!("{code}.x"),
        ] {
            assert_eq!(codes().read(junk), Err(CodeError::Malformed), "{junk}");
        }
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(TicketCodes::new(&[1u8; 31]).is_none());
    }
}
