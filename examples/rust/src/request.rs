//! A request as a filter or handler closure sees it, and what the closure
//! answers.

use std::marker::PhantomData;
use std::os::raw::c_char;
use std::ptr;

use crate::error::{check, Error, Result, Status};
use crate::{bytes_in, bytes_out, sys, text_out};

/// One request, lent to a filter or handler for the length of one call.
///
/// It cannot be kept: the closure receives `&mut Request<'_>` for a
/// lifetime that ends when it returns, and `Request` is neither `Send` nor
/// `Sync` (the library allows it on the calling worker thread only). Views
/// it returns borrow it, so they cannot be kept either: copy what you need.
///
/// ```compile_fail
/// use std::sync::Mutex;
/// let kept: Mutex<Option<&[u8]>> = Mutex::new(None);
/// portico::Filter::new("keep").on_request(move |req| {
///     *kept.lock().unwrap() = req.header("x");  // borrowed past the call
///     portico::Action::Continue
/// });
/// ```
pub struct Request<'a> {
    raw: *mut sys::portico_request,
    _call: PhantomData<&'a mut sys::portico_request>,
}

/// What a filter or handler closure decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Filters: go on with the next filter and the upstream. A handler
    /// must respond: for it, `Continue` is a bug, answered 500 and reported.
    Continue,
    /// Answer now with this response (filters: in the request phase only).
    Respond(Response),
}

/// A local answer: status, headers and body. Content-Length is added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }
}

type Getter =
    unsafe extern "C" fn(*const sys::portico_request, *mut *const c_char, *mut usize) -> i32;
type NamedGetter = unsafe extern "C" fn(
    *const sys::portico_request,
    *const c_char,
    usize,
    *mut *const c_char,
    *mut usize,
) -> i32;

impl<'a> Request<'a> {
    /// Only the trampolines make one, with the pointer the library passed.
    pub(crate) unsafe fn from_raw(raw: *mut sys::portico_request) -> Request<'a> {
        Request {
            raw,
            _call: PhantomData,
        }
    }

    fn view(&self, getter: Getter) -> Result<&[u8]> {
        let (mut p, mut len) = (ptr::null(), 0usize);
        check(unsafe { getter(self.raw, &mut p, &mut len) })?;
        // Valid until the callback returns, which outlives `&self`.
        Ok(unsafe { bytes_out(p, len) })
    }

    fn named_view(&self, getter: NamedGetter, name: &str) -> Result<&[u8]> {
        let (n, nl) = bytes_in(name.as_bytes());
        let (mut p, mut len) = (ptr::null(), 0usize);
        check(unsafe { getter(self.raw, n, nl, &mut p, &mut len) })?;
        Ok(unsafe { bytes_out(p, len) })
    }

    // Text the gateway produced from what it parsed: "" if ever unreadable,
    // so that a closure returning `Action` needs no error path for it.
    fn text(&self, getter: Getter, what: &str) -> &str {
        self.view(getter)
            .and_then(|b| text_out(b, what))
            .unwrap_or("")
    }

    /// "GET", "POST", ...
    pub fn method(&self) -> &str {
        self.text(sys::portico_request_method, "the method")
    }

    /// The normalised path without the query (the original, not a rewrite).
    /// Always text: the gateway answers 400 to a path with raw non-ASCII
    /// bytes before any filter runs.
    pub fn path(&self) -> &str {
        self.text(sys::portico_request_path, "the path")
    }

    /// The raw query without '?', as received ("" when none); may hold any
    /// byte a client sent.
    pub fn query(&self) -> &[u8] {
        self.view(sys::portico_request_query).unwrap_or(&[])
    }

    /// The first header of that name (case-insensitive) with the edits of
    /// earlier filters applied, as bytes (values need not be UTF-8).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.named_view(sys::portico_request_header, name).ok()
    }

    /// The header as text: `Ok(None)` when absent, an `InvalidUtf8` error
    /// when the client sent bytes that are not UTF-8.
    pub fn header_str(&self, name: &str) -> Result<Option<&str>> {
        match self.header(name) {
            None => Ok(None),
            Some(bytes) => std::str::from_utf8(bytes).map(Some).map_err(|_| {
                Error::new(
                    Status::InvalidUtf8,
                    format!("header '{}' is not UTF-8", name),
                )
            }),
        }
    }

    /// The headers as received (edits not applied), in arrival order.
    pub fn headers(&self) -> Vec<(&[u8], &[u8])> {
        let mut count = 0usize;
        if check(unsafe { sys::portico_request_header_count(self.raw, &mut count) }).is_err() {
            return Vec::new();
        }
        (0..count)
            .filter_map(|i| {
                let (mut n, mut nl, mut v, mut vl) = (ptr::null(), 0usize, ptr::null(), 0usize);
                let code = unsafe {
                    sys::portico_request_header_at(self.raw, i, &mut n, &mut nl, &mut v, &mut vl)
                };
                if code != sys::PORTICO_OK {
                    return None;
                }
                Some(unsafe { (bytes_out(n, nl), bytes_out(v, vl)) })
            })
            .collect()
    }

    /// The client's address ("127.0.0.1"); "" in a handler.
    pub fn client_address(&self) -> &str {
        self.text(sys::portico_request_client_address, "the client address")
    }

    /// A path parameter of the matched route ("{id}"), in filters and
    /// handlers.
    pub fn param(&self, name: &str) -> Option<&str> {
        let bytes = self.named_view(sys::portico_request_param, name).ok()?;
        text_out(bytes, "a path parameter").ok()
    }

    /// The claims (JSON) of the JWT the jwt-auth policy verified.
    pub fn claims(&self) -> Option<&str> {
        let bytes = self.view(sys::portico_request_claims).ok()?;
        text_out(bytes, "the claims").ok()
    }

    /// The consumer an authentication policy resolved.
    pub fn consumer(&self) -> Option<&str> {
        let bytes = self.view(sys::portico_request_consumer).ok()?;
        text_out(bytes, "the consumer").ok()
    }

    /// The "config" object (JSON) of this filter's plugin entry; "{}" when
    /// it had none. Filters only.
    pub fn plugin_config(&self) -> &str {
        self.text(sys::portico_request_plugin_config, "the plugin config")
    }

    /// The request body (handlers only; filters see none).
    pub fn body(&self) -> &[u8] {
        self.view(sys::portico_request_body).unwrap_or(&[])
    }

    /// Sets a header sent upstream (request phase). Hop-by-hop and framing
    /// headers, and values with CR, LF or NUL, are refused.
    pub fn set_header(&mut self, name: &str, value: impl AsRef<[u8]>) -> Result<()> {
        let (n, nl) = bytes_in(name.as_bytes());
        let (v, vl) = bytes_in(value.as_ref());
        check(unsafe { sys::portico_request_set_header(self.raw, n, nl, v, vl) })
    }

    pub fn remove_header(&mut self, name: &str) -> Result<()> {
        let (n, nl) = bytes_in(name.as_bytes());
        check(unsafe { sys::portico_request_remove_header(self.raw, n, nl) })
    }

    /// Replaces the path and query sent upstream ("/v2/items?id=3").
    pub fn set_path(&mut self, path_and_query: &str) -> Result<()> {
        let (p, pl) = bytes_in(path_and_query.as_bytes());
        check(unsafe { sys::portico_request_set_path(self.raw, p, pl) })
    }

    /// The upstream's status (response phase).
    pub fn response_status(&self) -> Result<u16> {
        let mut status = 0i32;
        check(unsafe { sys::portico_request_response_status(self.raw, &mut status) })?;
        Ok(u16::try_from(status).unwrap_or(0))
    }

    /// Replaces the status the client gets (response phase; 200..599,
    /// else `Status::InvalidArgument`).
    pub fn set_response_status(&mut self, status: u16) -> Result<()> {
        check(unsafe { sys::portico_request_set_response_status(self.raw, i32::from(status)) })
    }

    /// A header of the upstream's response (response phase).
    pub fn response_header(&self, name: &str) -> Option<&[u8]> {
        self.named_view(sys::portico_request_response_header, name)
            .ok()
    }

    pub fn set_response_header(&mut self, name: &str, value: impl AsRef<[u8]>) -> Result<()> {
        let (n, nl) = bytes_in(name.as_bytes());
        let (v, vl) = bytes_in(value.as_ref());
        check(unsafe { sys::portico_request_set_response_header(self.raw, n, nl, v, vl) })
    }

    pub fn remove_response_header(&mut self, name: &str) -> Result<()> {
        let (n, nl) = bytes_in(name.as_bytes());
        check(unsafe { sys::portico_request_remove_response_header(self.raw, n, nl) })
    }

    /// Answers with `response` (the trampolines call it for
    /// `Action::Respond`; the library copies everything).
    pub(crate) fn respond(&mut self, response: &Response) -> Result<()> {
        let headers: Vec<sys::portico_header> = response
            .headers
            .iter()
            .map(|(name, value)| sys::portico_header {
                name: name.as_ptr() as *const c_char,
                name_len: name.len(),
                value: value.as_ptr() as *const c_char,
                value_len: value.len(),
            })
            .collect();
        let (b, bl) = bytes_in(&response.body);
        check(unsafe {
            sys::portico_request_respond(
                self.raw,
                i32::from(response.status),
                headers.as_ptr(),
                headers.len(),
                b,
                bl,
            )
        })
    }
}
