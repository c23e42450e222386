//! A circuit breaker: stops sending requests to a failing upstream, then
//! probes it (docs/breaker.md).

use std::ptr;
use std::time::Duration;

use crate::error::{check, static_str, Result};
use crate::{bytes_in, sys};

/// One breaker. Used by one thread at a time (`Send`, and `&mut self` for
/// everything that changes it).
pub struct Breaker {
    raw: *mut sys::portico_breaker,
}

unsafe impl Send for Breaker {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// "closed", "open", "half_open".
    pub fn name(self) -> &'static str {
        let code = match self {
            BreakerState::Closed => sys::PORTICO_BREAKER_CLOSED,
            BreakerState::Open => sys::PORTICO_BREAKER_OPEN,
            BreakerState::HalfOpen => sys::PORTICO_BREAKER_HALF_OPEN,
        };
        unsafe { static_str(sys::portico_breaker_state_name(code)) }
    }
}

/// Whether a request may go, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Admission {
    Admitted,
    RejectedOpen,
    RejectedHalfOpenFull,
    RejectedMaxInFlight,
    RejectedMaxPending,
    Unknown(i32),
}

/// A request's ticket. Hand an admitted one back exactly once, through
/// [`Breaker::success`], [`Breaker::failure`] or [`Breaker::cancel`],
/// which consume it.
#[must_use = "an admitted permit must be handed back to its breaker"]
#[derive(Debug)]
pub struct Permit {
    raw: sys::portico_breaker_permit,
}

impl Permit {
    pub fn admission(&self) -> Admission {
        match self.raw.admission {
            0 => Admission::Admitted,
            1 => Admission::RejectedOpen,
            2 => Admission::RejectedHalfOpenFull,
            3 => Admission::RejectedMaxInFlight,
            4 => Admission::RejectedMaxPending,
            other => Admission::Unknown(other),
        }
    }

    pub fn is_admitted(&self) -> bool {
        self.raw.admission == sys::PORTICO_BREAKER_ADMITTED
    }
}

impl Breaker {
    /// `config_json`: "" for the defaults, or an object as a service's
    /// "breaker" in the configuration ("consecutive_failures",
    /// "open_duration": "5s", ...).
    pub fn new(config_json: &str) -> Result<Breaker> {
        let (c, cl) = bytes_in(config_json.as_bytes());
        let mut raw = ptr::null_mut();
        check(unsafe { sys::portico_breaker_new(&mut raw, c, cl) })?;
        Ok(Breaker { raw })
    }

    /// Asks to send a request at `now_ns`.
    pub fn acquire(&mut self, now_ns: i64) -> Result<Permit> {
        let mut raw = sys::portico_breaker_permit::default();
        check(unsafe { sys::portico_breaker_acquire(self.raw, now_ns, &mut raw) })?;
        Ok(Permit { raw })
    }

    pub fn success(&mut self, permit: Permit, now_ns: i64) -> Result<()> {
        check(unsafe { sys::portico_breaker_success(self.raw, &permit.raw, now_ns) })
    }

    pub fn failure(&mut self, permit: Permit, now_ns: i64) -> Result<()> {
        check(unsafe { sys::portico_breaker_failure(self.raw, &permit.raw, now_ns) })
    }

    /// The request was not sent after all: counts neither way.
    pub fn cancel(&mut self, permit: Permit) -> Result<()> {
        check(unsafe { sys::portico_breaker_cancel(self.raw, &permit.raw) })
    }

    pub fn state(&mut self, now_ns: i64) -> Result<BreakerState> {
        let mut s = 0i32;
        check(unsafe { sys::portico_breaker_state(self.raw, now_ns, &mut s) })?;
        Ok(match s {
            sys::PORTICO_BREAKER_OPEN => BreakerState::Open,
            sys::PORTICO_BREAKER_HALF_OPEN => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        })
    }

    /// Time left in the open period; zero unless open.
    pub fn retry_after(&self, now_ns: i64) -> Result<Duration> {
        let mut ns = 0i64;
        check(unsafe { sys::portico_breaker_retry_after(self.raw, now_ns, &mut ns) })?;
        Ok(Duration::from_nanos(u64::try_from(ns).unwrap_or(0)))
    }
}

impl Drop for Breaker {
    fn drop(&mut self) {
        unsafe { sys::portico_breaker_free(self.raw) }
    }
}
debug_handle!(Breaker);
