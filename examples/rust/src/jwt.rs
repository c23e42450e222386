//! Verifying compact JWS tokens against a key set and a policy
//! (docs/jwt.md), with an optional cache of verified tokens.

use std::ptr;

use crate::error::{check, static_str, Result};
use crate::{bytes_in, bytes_out, sys, text_out};

/// A verifier: a key set plus a policy (algorithms, issuers, audiences,
/// required claims, leeway). Thread-safe: share it and verify from any
/// number of threads at once.
pub struct JwtVerifier {
    raw: *mut sys::portico_jwt_verifier,
}

unsafe impl Send for JwtVerifier {}
unsafe impl Sync for JwtVerifier {}

/// One key for [`JwtVerifier::from_key`].
#[derive(Debug, Clone, Copy)]
pub enum JwtKey<'a> {
    /// An RSA or EC public key in PEM.
    Pem(&'a [u8]),
    /// A raw HMAC secret of at least 32 bytes.
    Hmac(&'a [u8]),
    /// One JWK object (JSON).
    Jwk(&'a str),
}

impl JwtVerifier {
    /// From a JWKS document (`{"keys": [...]}`). Keys that cannot be used
    /// are left out; `InvalidArgument` when none is left. `options_json` is
    /// "" for the defaults or an object with "algorithms", "issuers",
    /// "audiences", "required_claims", "leeway", "max_token_bytes".
    pub fn from_jwks(jwks: &str, options_json: &str) -> Result<JwtVerifier> {
        let (j, jl) = bytes_in(jwks.as_bytes());
        let (o, ol) = bytes_in(options_json.as_bytes());
        let mut raw = ptr::null_mut();
        check(unsafe { sys::portico_jwt_verifier_new_jwks(&mut raw, j, jl, o, ol) })?;
        Ok(JwtVerifier { raw })
    }

    /// From one key; `kid` may be "" (then the key answers any token).
    pub fn from_key(key: JwtKey<'_>, kid: &str, options_json: &str) -> Result<JwtVerifier> {
        let (kind, bytes) = match key {
            JwtKey::Pem(b) => (sys::PORTICO_JWT_KEY_PEM, b),
            JwtKey::Hmac(b) => (sys::PORTICO_JWT_KEY_HMAC, b),
            JwtKey::Jwk(s) => (sys::PORTICO_JWT_KEY_JWK, s.as_bytes()),
        };
        let (k, kl) = bytes_in(bytes);
        let (i, il) = bytes_in(kid.as_bytes());
        let (o, ol) = bytes_in(options_json.as_bytes());
        let mut raw = ptr::null_mut();
        check(unsafe { sys::portico_jwt_verifier_new_key(&mut raw, kind, k, kl, i, il, o, ol) })?;
        Ok(JwtVerifier { raw })
    }

    /// Verifies `token` at `now_unix_seconds` (wall clock; 0 reads the
    /// clock). A refused token is not an error: read the verdict.
    pub fn verify(&self, token: impl AsRef<[u8]>, now_unix_seconds: i64) -> Result<JwtVerdict> {
        let verdict = JwtVerdict::new()?;
        let (t, tl) = bytes_in(token.as_ref());
        check(unsafe { sys::portico_jwt_verify(self.raw, t, tl, now_unix_seconds, verdict.raw) })?;
        Ok(verdict)
    }
}

impl Drop for JwtVerifier {
    fn drop(&mut self) {
        unsafe { sys::portico_jwt_verifier_free(self.raw) }
    }
}

/// Verified tokens kept in front of a verifier, so a repeated token skips
/// the signature check. One per thread (`Send`, not `Sync`).
pub struct JwtCache {
    raw: *mut sys::portico_jwt_cache,
}

unsafe impl Send for JwtCache {}

impl JwtCache {
    /// Keeps up to `capacity` tokens (0: 4096). The cache holds its own
    /// reference to the verifier, which may be dropped first.
    pub fn new(verifier: &JwtVerifier, capacity: usize) -> Result<JwtCache> {
        let mut raw = ptr::null_mut();
        check(unsafe { sys::portico_jwt_cache_new(&mut raw, verifier.raw, capacity) })?;
        Ok(JwtCache { raw })
    }

    pub fn verify(&mut self, token: impl AsRef<[u8]>, now_unix_seconds: i64) -> Result<JwtVerdict> {
        let verdict = JwtVerdict::new()?;
        let (t, tl) = bytes_in(token.as_ref());
        check(unsafe {
            sys::portico_jwt_cache_verify(self.raw, t, tl, now_unix_seconds, verdict.raw)
        })?;
        Ok(verdict)
    }
}

impl Drop for JwtCache {
    fn drop(&mut self) {
        unsafe { sys::portico_jwt_cache_free(self.raw) }
    }
}

/// Why a token was refused, or `Valid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtReason {
    Valid,
    Malformed,
    UnsupportedAlg,
    AlgNotAllowed,
    UnknownKid,
    BadSignature,
    Expired,
    NotYetValid,
    BadIssuer,
    BadAudience,
    MissingClaim,
    TooLarge,
    Unknown(i32),
}

impl JwtReason {
    // In the order of the C codes (PORTICO_JWT_VALID = 0, ...).
    const REASONS: [JwtReason; 12] = [
        JwtReason::Valid,
        JwtReason::Malformed,
        JwtReason::UnsupportedAlg,
        JwtReason::AlgNotAllowed,
        JwtReason::UnknownKid,
        JwtReason::BadSignature,
        JwtReason::Expired,
        JwtReason::NotYetValid,
        JwtReason::BadIssuer,
        JwtReason::BadAudience,
        JwtReason::MissingClaim,
        JwtReason::TooLarge,
    ];

    fn from_code(code: i32) -> JwtReason {
        usize::try_from(code)
            .ok()
            .and_then(|i| Self::REASONS.get(i).copied())
            .unwrap_or(JwtReason::Unknown(code))
    }

    fn code(self) -> i32 {
        match self {
            JwtReason::Unknown(code) => code,
            known => Self::REASONS.iter().position(|r| *r == known).unwrap_or(0) as i32,
        }
    }

    /// "valid", "malformed", "expired", ...
    pub fn name(self) -> &'static str {
        unsafe { static_str(sys::portico_jwt_reason_name(self.code())) }
    }
}

impl std::fmt::Display for JwtReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The outcome of one verification. Owns the library's result, so its
/// views (message, claims) live as long as it does.
pub struct JwtVerdict {
    raw: *mut sys::portico_jwt_result,
}

unsafe impl Send for JwtVerdict {}

impl JwtVerdict {
    fn new() -> Result<JwtVerdict> {
        let mut raw = ptr::null_mut();
        check(unsafe { sys::portico_jwt_result_new(&mut raw) })?;
        Ok(JwtVerdict { raw })
    }

    pub fn reason(&self) -> JwtReason {
        let mut code = 0i32;
        match check(unsafe { sys::portico_jwt_result_reason(self.raw, &mut code) }) {
            Ok(()) => JwtReason::from_code(code),
            Err(_) => JwtReason::Unknown(-1),
        }
    }

    pub fn is_valid(&self) -> bool {
        self.reason() == JwtReason::Valid
    }

    /// Why it was refused, safe to log (never the token); "" when valid.
    pub fn message(&self) -> &str {
        let (mut p, mut len) = (ptr::null(), 0usize);
        if check(unsafe { sys::portico_jwt_result_message(self.raw, &mut p, &mut len) }).is_err() {
            return "";
        }
        text_out(unsafe { bytes_out(p, len) }, "the message").unwrap_or("")
    }

    /// The verified payload as JSON; `None` unless valid.
    pub fn claims(&self) -> Option<&str> {
        let (mut p, mut len) = (ptr::null(), 0usize);
        check(unsafe { sys::portico_jwt_result_claims(self.raw, &mut p, &mut len) }).ok()?;
        text_out(unsafe { bytes_out(p, len) }, "the claims").ok()
    }

    /// One string claim ("sub", or a dotted path "realm_access.role");
    /// `None` when absent or not a string.
    pub fn claim_str(&self, path: &str) -> Option<&str> {
        let (c, cl) = bytes_in(path.as_bytes());
        let (mut p, mut len) = (ptr::null(), 0usize);
        check(unsafe { sys::portico_jwt_result_claim_string(self.raw, c, cl, &mut p, &mut len) })
            .ok()?;
        text_out(unsafe { bytes_out(p, len) }, "a claim").ok()
    }

    /// True when the answer came from a cache without a signature check.
    pub fn from_cache(&self) -> bool {
        let mut out = 0i32;
        check(unsafe { sys::portico_jwt_result_from_cache(self.raw, &mut out) }).is_ok() && out == 1
    }
}

impl std::fmt::Debug for JwtVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerdict")
            .field("reason", &self.reason())
            .field("message", &self.message())
            .finish()
    }
}

impl Drop for JwtVerdict {
    fn drop(&mut self) {
        unsafe { sys::portico_jwt_result_free(self.raw) }
    }
}
debug_handle!(JwtVerifier, JwtCache);
