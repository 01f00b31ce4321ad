//! Attempt limits for login and confirmation, per account and per client address: past them a
//! client gets 429 with `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::{ApiError, ErrorCode};

/// Keyed limiters for sensitive endpoints.
#[derive(Debug)]
pub struct AttemptLimits {
    per_account: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN))
}

impl AttemptLimits {
    /// `account` and `address` attempts per minute (bursts up to the same number).
    pub fn new(account: u32, address: u32) -> Self {
        Self {
            per_account: RateLimiter::keyed(per_minute(account)),
            per_address: RateLimiter::keyed(per_minute(address)),
        }
    }

    /// Counts one attempt by `address` on `account` (an e-mail, normalised by the caller).
    pub fn check(&self, account: &str, address: Option<IpAddr>) -> Result<(), ApiError> {
        let now = DefaultClock::default().now();
        let refuse = |not_until: governor::NotUntil<_>| {
            let wait = not_until.wait_time_from(now).as_secs() + 1;
            ApiError::new(ErrorCode::TooManyRequests).with_retry_after(wait)
        };
        if let Some(address) = address {
            self.per_address.check_key(&address).map_err(refuse)?;
        }
        self.per_account
            .check_key(&account.to_owned())
            .map_err(refuse)
    }
}
