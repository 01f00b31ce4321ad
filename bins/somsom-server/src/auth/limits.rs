//! Attempt limits on the account routes, in memory that no caller can grow (see [`crate::rate`]).
//!
//! - every account route: per client address (IPv6 per /64);
//! - codes (confirm, resend, forgot and reset password): per e-mail too;
//! - sign-up: per address and per e-mail, per hour (each one costs a password hash and a mail);
//! - login: per (e-mail, address) pair, with a backoff after a few failures. A per-account limit
//!   would let anyone lock a user out by failing on purpose; keyed on the pair, an attacker only
//!   slows down their own address.
//!
//! Callers check the e-mail's syntax (and so its length) before asking: a key is a hash of the
//! normalised address, never the caller's bytes.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use cognito_auth::Clock;

use crate::client_ip::limit_key;
use crate::config::AuthSettings;
use crate::error::{ApiError, ErrorCode};
use crate::rate::{Backoff, Rate};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// The limits of the account routes.
#[derive(Debug)]
pub struct AttemptLimits {
    per_address: Rate,
    per_email: Rate,
    signups_per_address: Rate,
    signups_per_email: Rate,
    logins: Backoff,
    clock: Arc<dyn Clock>,
}

fn refuse(wait: Duration) -> ApiError {
    ApiError::new(ErrorCode::TooManyRequests).with_retry_after(wait.as_secs() + 1)
}

impl AttemptLimits {
    /// The limits `settings` describe, timed by `clock`.
    pub fn new(settings: &AuthSettings, clock: Arc<dyn Clock>) -> Self {
        let slots = settings.limiter_slots;
        Self {
            per_address: Rate::new(settings.attempts_per_address_per_minute, MINUTE, slots),
            per_email: Rate::new(settings.attempts_per_account_per_minute, MINUTE, slots),
            signups_per_address: Rate::new(settings.signups_per_address_per_hour, HOUR, slots),
            signups_per_email: Rate::new(settings.signups_per_email_per_hour, HOUR, slots),
            logins: Backoff::new(
                settings.login_free_failures,
                Duration::from_secs(settings.login_max_backoff_secs),
                slots,
            ),
            clock,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    fn address(&self, address: Option<IpAddr>, now: i64) -> Result<(), ApiError> {
        match address {
            Some(ip) => self.per_address.check(&limit_key(ip), now).map_err(refuse),
            None => Ok(()),
        }
    }

    /// One attempt with a code (confirm, resend, forgot or reset password) on `email`
    /// (normalised, syntax checked).
    pub fn check_code(&self, email: &str, address: Option<IpAddr>) -> Result<(), ApiError> {
        let now = self.now();
        self.address(address, now)?;
        self.per_email.check(&email, now).map_err(refuse)
    }

    /// One sign-up of `email` (normalised, syntax checked).
    pub fn check_signup(&self, email: &str, address: Option<IpAddr>) -> Result<(), ApiError> {
        let now = self.now();
        self.address(address, now)?;
        if let Some(ip) = address {
            self.signups_per_address
                .check(&limit_key(ip), now)
                .map_err(refuse)?;
        }
        self.signups_per_email.check(&email, now).map_err(refuse)
    }

    /// Whether a login of `email` (normalised, syntax checked) from `address` may be tried.
    pub fn check_login(&self, email: &str, address: Option<IpAddr>) -> Result<(), ApiError> {
        let now = self.now();
        self.address(address, now)?;
        self.logins
            .check(&(email, address.map(limit_key)), now)
            .map_err(refuse)
    }

    /// Records how a login attempt went.
    pub fn login_result(&self, email: &str, address: Option<IpAddr>, succeeded: bool) {
        let key = (email, address.map(limit_key));
        if succeeded {
            self.logins.succeeded(&key);
        } else {
            self.logins.failed(&key, self.now());
        }
    }

    /// Keys remembered now, over every table (for the memory tests).
    pub fn occupied(&self) -> usize {
        [
            &self.per_address,
            &self.per_email,
            &self.signups_per_address,
            &self.signups_per_email,
        ]
        .iter()
        .map(|rate| rate.table().occupied())
        .sum::<usize>()
            + self.logins.table().occupied()
    }
}
