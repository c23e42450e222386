//! Errors: the C ABI's status and the calling thread's last message.

use std::ffi::CStr;
use std::fmt;

use crate::sys;

/// What went wrong, from the C ABI's one list of status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// A value out of range, or a missing value.
    InvalidArgument,
    /// A handle the library does not know (a bug in this crate if seen).
    InvalidHandle,
    /// Text that is not UTF-8, or holds a NUL byte.
    InvalidUtf8,
    /// A document that is not JSON.
    InvalidJson,
    /// JSON, but not a valid configuration.
    InvalidConfig,
    /// Text that does not follow its grammar (a route pattern, a token).
    Malformed,
    /// Clashes with something already present.
    Conflict,
    /// A fixed bound would be exceeded.
    Capacity,
    /// The named item does not exist.
    NotFound,
    /// A file or socket operation failed.
    Io,
    /// Not allowed now (already started, stopped, wrong phase...).
    State,
    NoMemory,
    /// A bug in the library: report it with the message.
    Internal,
    /// A code this crate does not know (a newer library).
    Unknown(i32),
}

impl Status {
    /// The status of a C return code; `None` for `PORTICO_OK`.
    pub fn from_code(code: sys::portico_status) -> Option<Status> {
        Some(match code {
            sys::PORTICO_OK => return None,
            sys::PORTICO_ERR_INVALID_ARGUMENT => Status::InvalidArgument,
            sys::PORTICO_ERR_INVALID_HANDLE => Status::InvalidHandle,
            sys::PORTICO_ERR_INVALID_UTF8 => Status::InvalidUtf8,
            sys::PORTICO_ERR_INVALID_JSON => Status::InvalidJson,
            sys::PORTICO_ERR_INVALID_CONFIG => Status::InvalidConfig,
            sys::PORTICO_ERR_MALFORMED => Status::Malformed,
            sys::PORTICO_ERR_CONFLICT => Status::Conflict,
            sys::PORTICO_ERR_CAPACITY => Status::Capacity,
            sys::PORTICO_ERR_NOT_FOUND => Status::NotFound,
            sys::PORTICO_ERR_IO => Status::Io,
            sys::PORTICO_ERR_STATE => Status::State,
            sys::PORTICO_ERR_NO_MEMORY => Status::NoMemory,
            sys::PORTICO_ERR_INTERNAL => Status::Internal,
            other => Status::Unknown(other),
        })
    }

    /// The C code (`PORTICO_ERR_...`).
    pub fn code(self) -> sys::portico_status {
        match self {
            Status::InvalidArgument => sys::PORTICO_ERR_INVALID_ARGUMENT,
            Status::InvalidHandle => sys::PORTICO_ERR_INVALID_HANDLE,
            Status::InvalidUtf8 => sys::PORTICO_ERR_INVALID_UTF8,
            Status::InvalidJson => sys::PORTICO_ERR_INVALID_JSON,
            Status::InvalidConfig => sys::PORTICO_ERR_INVALID_CONFIG,
            Status::Malformed => sys::PORTICO_ERR_MALFORMED,
            Status::Conflict => sys::PORTICO_ERR_CONFLICT,
            Status::Capacity => sys::PORTICO_ERR_CAPACITY,
            Status::NotFound => sys::PORTICO_ERR_NOT_FOUND,
            Status::Io => sys::PORTICO_ERR_IO,
            Status::State => sys::PORTICO_ERR_STATE,
            Status::NoMemory => sys::PORTICO_ERR_NO_MEMORY,
            Status::Internal => sys::PORTICO_ERR_INTERNAL,
            Status::Unknown(code) => code,
        }
    }

    /// The library's name for it: "PORTICO_ERR_INVALID_JSON", ...
    pub fn name(self) -> &'static str {
        // Static storage, never NULL (the header's promise).
        unsafe { static_str(sys::portico_status_name(self.code())) }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed call: its status and the library's message, which says what
/// was wrong ("routes[3].paths[0]: pattern has an unclosed '{'").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: Status,
    message: String,
}

impl Error {
    pub fn new(status: Status, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
        }
    }

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.status)
        } else {
            write!(f, "{}: {}", self.status, self.message)
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Turns a C return code into a `Result`, taking the message of the calling
/// thread's last failure. Must be called right after the failing call, on
/// the same thread, as every wrapper here does.
pub(crate) fn check(code: sys::portico_status) -> Result<()> {
    match Status::from_code(code) {
        None => Ok(()),
        Some(status) => Err(Error::new(status, last_error())),
    }
}

fn last_error() -> String {
    // Never NULL; copied at once because the next failure overwrites it.
    unsafe { CStr::from_ptr(sys::portico_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// A static NUL-terminated string of the library as `&str`.
pub(crate) unsafe fn static_str(p: *const std::os::raw::c_char) -> &'static str {
    if p.is_null() {
        return "";
    }
    CStr::from_ptr(p).to_str().unwrap_or("")
}
