//! Portico from Rust: a safe wrapper over its C ABI (`capi/portico.h`).
//!
//! - [`Gateway`] runs a configured gateway; [`GatewayOptions`] registers
//!   Rust closures as filters ([`Filter`]) and in-process handlers.
//! - The primitives on their own: [`Router`], [`JwtVerifier`], [`Limiter`],
//!   [`Breaker`], [`Balancer`].
//!
//! Every fallible call returns [`Result`], whose [`Error`] carries the
//! library's [`Status`] and its message. Handles are owned by the types that
//! wrap them and freed on `Drop`. [`sys`] is the raw C ABI underneath.
//!
//! A panic inside a filter or handler never crosses into C: it is caught,
//! the request is answered 500, and the gateway goes on serving (this needs
//! the default `panic = "unwind"`; with `panic = "abort"` the process ends).

/// `Debug` for a handle type: its name and address, nothing to read.
macro_rules! debug_handle {
    ($($ty:ident),*) => {$(
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty)).field("handle", &self.raw).finish()
            }
        }
    )*};
}

mod balancer;
mod breaker;
mod error;
mod gateway;
mod jwt;
mod limiter;
mod request;
mod router;
pub mod sys;

pub use balancer::{Balancer, Endpoint, Outcome};
pub use breaker::{Admission, Breaker, BreakerState, Permit};
pub use error::{Error, Result, Status};
pub use gateway::{Filter, Gateway, GatewayOptions};
pub use jwt::{JwtCache, JwtKey, JwtReason, JwtVerdict, JwtVerifier};
pub use limiter::{Decision, Limiter};
pub use request::{Action, Request, Response};
pub use router::{Lookup, Matcher, Router};

use std::os::raw::c_char;
use std::time::Duration;

/// The version of the library actually loaded, as (major, minor, patch).
pub fn library_version() -> (u32, u32, u32) {
    let v = unsafe { sys::portico_version() };
    (v >> 16, (v >> 8) & 0xff, v & 0xff)
}

/// True when the loaded library can serve this crate's declarations: the
/// same major version and at least the header's minor version.
pub fn library_is_compatible() -> bool {
    let (major, minor, _) = library_version();
    major == sys::PORTICO_VERSION_MAJOR && minor >= sys::PORTICO_VERSION_MINOR
}

/// The monotonic clock the primitives read, in nanoseconds. Pass readings
/// of it (or [`NOW`]) as the `now_ns` arguments; tests pass simulated times.
pub fn now_ns() -> i64 {
    unsafe { sys::portico_now_ns() }
}

/// Tells a primitive to read the clock itself.
pub const NOW: i64 = sys::PORTICO_NOW;

/// A stable 64-bit hash of an affinity key, for the maglev balancer.
pub fn hash_key(key: &[u8]) -> u64 {
    let (p, len) = bytes_in(key);
    unsafe { sys::portico_hash_key(p, len) }
}

/// A slice as the C ABI's pointer + length (no terminating NUL needed).
pub(crate) fn bytes_in(s: &[u8]) -> (*const c_char, usize) {
    (s.as_ptr() as *const c_char, s.len())
}

/// A view the library returned, as a slice living as long as `'a` (the
/// caller ties `'a` to what the header says keeps the view valid).
pub(crate) unsafe fn bytes_out<'a>(p: *const c_char, len: usize) -> &'a [u8] {
    if p.is_null() || len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(p as *const u8, len)
    }
}

/// A view of text the library produced. The library's text is UTF-8; should
/// it ever not be, the error says so rather than the bytes being trusted.
pub(crate) fn text_out<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str> {
    std::str::from_utf8(bytes)
        .map_err(|_| Error::new(Status::InvalidUtf8, format!("{} is not UTF-8", what)))
}

/// A duration as the C ABI's int64 nanoseconds (saturating).
pub(crate) fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}
