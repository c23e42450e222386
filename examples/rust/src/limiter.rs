//! A GCRA rate limiter per key (docs/limiter.md).

use std::ptr;
use std::time::Duration;

use crate::error::{check, Result};
use crate::{bytes_in, duration_ns, sys};

/// `rate` requests per `period` plus `burst` beyond it, per key, for up to
/// `max_keys` keys at once. Thread-safe: check from any number of threads.
pub struct Limiter {
    raw: *mut sys::portico_limiter,
}

unsafe impl Send for Limiter {}
unsafe impl Sync for Limiter {}

/// The answer to one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The request conforms and was counted.
    pub allowed: bool,
    /// The cost is 0 or above the limit: it can never pass.
    pub cost_out_of_range: bool,
    /// burst + 1.
    pub limit: i64,
    /// Requests of cost 1 that would still pass now.
    pub remaining: i64,
    /// When to try again; zero when allowed.
    pub retry_after: Duration,
    /// Until the key has its full allowance back.
    pub reset_after: Duration,
}

impl Limiter {
    pub fn new(rate: i64, period: Duration, burst: i64, max_keys: i64) -> Result<Limiter> {
        let mut raw = ptr::null_mut();
        check(unsafe {
            sys::portico_limiter_new(&mut raw, rate, duration_ns(period), burst, max_keys)
        })?;
        Ok(Limiter { raw })
    }

    /// Decides and counts a request of `cost` for `key` (any bytes) at
    /// `now_ns` ([`crate::now_ns`] timeline, or [`crate::NOW`]).
    pub fn check(&self, key: impl AsRef<[u8]>, cost: u32, now_ns: i64) -> Result<Decision> {
        let (k, kl) = bytes_in(key.as_ref());
        let mut d = sys::portico_limit_decision::default();
        check(unsafe { sys::portico_limiter_check(self.raw, k, kl, cost, now_ns, &mut d) })?;
        Ok(Decision {
            allowed: d.allowed != 0,
            cost_out_of_range: d.cost_out_of_range != 0,
            limit: d.limit,
            remaining: d.remaining,
            retry_after: nanos(d.retry_after_ns),
            reset_after: nanos(d.reset_after_ns),
        })
    }
}

fn nanos(ns: i64) -> Duration {
    Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

impl Drop for Limiter {
    fn drop(&mut self) {
        unsafe { sys::portico_limiter_free(self.raw) }
    }
}
debug_handle!(Limiter);
