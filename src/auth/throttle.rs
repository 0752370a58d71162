//! Login throttling: a token bucket per (address, username) and one per address, so one
//! account cannot be guessed at speed and one address cannot spray many accounts.

use super::AuthError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;

/// Limits login attempts.
pub struct LoginThrottle {
    per_account: DefaultKeyedRateLimiter<(String, String)>,
    per_address: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl LoginThrottle {
    /// Allows `per_account` attempts a minute per address and username, `per_address` per address.
    pub fn new(per_account: u32, per_address: u32) -> LoginThrottle {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        LoginThrottle {
            per_account: RateLimiter::keyed(quota(per_account)),
            per_address: RateLimiter::keyed(quota(per_address)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one attempt; refuses with the wait time when either bucket is empty.
    pub fn check(&self, address: &str, username: &str) -> Result<(), AuthError> {
        let refuse = |not_until: governor::NotUntil<_>| AuthError::Throttled {
            retry_after_secs: not_until.wait_time_from(self.clock.now()).as_secs().max(1),
        };
        self.per_address
            .check_key(&address.to_string())
            .map_err(refuse)?;
        self.per_account
            .check_key(&(address.to_string(), username.to_lowercase()))
            .map_err(refuse)?;
        Ok(())
    }

    /// Drops buckets that have refilled, bounding memory under a spray of usernames.
    pub fn prune(&self) {
        self.per_account.retain_recent();
        self.per_address.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_quota_per_account() {
        let t = LoginThrottle::new(3, 100);
        for _ in 0..3 {
            t.check("10.0.0.1", "alice").unwrap();
        }
        match t.check("10.0.0.1", "Alice") {
            Err(AuthError::Throttled { retry_after_secs }) => assert!(retry_after_secs >= 1),
            other => panic!("expected throttling, got {other:?}"),
        }
        // Another account from the same address, and the same account elsewhere, still pass.
        t.check("10.0.0.1", "bob").unwrap();
        t.check("10.0.0.2", "alice").unwrap();
    }

    #[test]
    fn refuses_after_quota_per_address() {
        let t = LoginThrottle::new(100, 2);
        t.check("10.0.0.1", "a").unwrap();
        t.check("10.0.0.1", "b").unwrap();
        assert!(matches!(
            t.check("10.0.0.1", "c"),
            Err(AuthError::Throttled { .. })
        ));
    }
}
