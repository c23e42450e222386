//! The route table: method, host and path pattern to a route id and the
//! captured parameters (docs/router.md).

use std::ptr;

use crate::error::{check, Error, Result, Status};
use crate::{bytes_in, bytes_out, sys, text_out};

/// A route table. Add routes through `&mut self`; once built, share it
/// (`&Router` is `Sync`) and look up from many threads, each with its own
/// [`Matcher`].
pub struct Router {
    raw: *mut sys::portico_router,
}

// The header: adds need exclusive use (enforced by `&mut self`); matches
// may run on any number of threads at once.
unsafe impl Send for Router {}
unsafe impl Sync for Router {}

impl Router {
    pub fn new() -> Result<Router> {
        let mut raw = ptr::null_mut();
        check(unsafe { sys::portico_router_new(&mut raw) })?;
        Ok(Router { raw })
    }

    /// Adds a route and returns its id (0, 1, ... in insertion order).
    /// `methods`: "GET,POST", or "" for any; `host`: "", "*",
    /// "api.example.com" or "*.example.com"; `path`: "/users/{id}",
    /// "/static/{*rest}". Errors: `Malformed` pattern, `InvalidArgument`
    /// (unknown method), `Conflict` (the same place as another route).
    pub fn add(&mut self, name: &str, methods: &str, host: &str, path: &str) -> Result<u32> {
        let (n, nl) = bytes_in(name.as_bytes());
        let (m, ml) = bytes_in(methods.as_bytes());
        let (h, hl) = bytes_in(host.as_bytes());
        let (p, pl) = bytes_in(path.as_bytes());
        let mut id = 0u32;
        check(unsafe { sys::portico_router_add(self.raw, n, nl, m, ml, h, hl, p, pl, &mut id) })?;
        Ok(id)
    }

    pub fn len(&self) -> usize {
        let mut n = 0usize;
        // Cannot fail on a live handle.
        let _ = check(unsafe { sys::portico_router_size(self.raw, &mut n) });
        n
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reusable lookup state for this router (no allocation per lookup).
    pub fn matcher(&self) -> Result<Matcher<'_>> {
        let mut raw = ptr::null_mut();
        check(unsafe { sys::portico_match_new(&mut raw) })?;
        Ok(Matcher { router: self, raw })
    }

    /// One lookup with its parameters copied out: convenient, allocates.
    /// `path` without the query; it is normalised first.
    pub fn lookup(&self, method: &str, host: &str, path: &str) -> Result<Lookup> {
        let mut matcher = self.matcher()?;
        Ok(match matcher.find(method, host, path)? {
            Lookup::Found { route, .. } => Lookup::Found {
                route,
                params: matcher
                    .params()?
                    .into_iter()
                    .map(|(n, v)| (n.to_owned(), v.to_owned()))
                    .collect(),
            },
            other => other,
        })
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        unsafe { sys::portico_router_free(self.raw) }
    }
}

/// The outcome of a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The route's id and, from [`Router::lookup`], the captured
    /// parameters in pattern order (a [`Matcher`] leaves them empty: read
    /// them with [`Matcher::param`]).
    Found {
        route: u32,
        params: Vec<(String, String)>,
    },
    /// 404: no route has this path.
    NotFound,
    /// 405: a route has this path, but not for this method.
    MethodNotAllowed,
}

/// Lookup state tied to one router: it borrows the router, so it cannot
/// outlive it (the header forbids reading a match after its router is
/// freed). The parameters read from it borrow it, so the next `find`
/// (which needs `&mut self`) cannot invalidate them unseen.
pub struct Matcher<'r> {
    router: &'r Router,
    raw: *mut sys::portico_match,
}

// A match is used by one thread at a time; `&mut self` enforces that.
unsafe impl Send for Matcher<'_> {}

impl<'r> Matcher<'r> {
    /// Looks a request up. A path that fits nothing is not an error.
    pub fn find(&mut self, method: &str, host: &str, path: &str) -> Result<Lookup> {
        let (m, ml) = bytes_in(method.as_bytes());
        let (h, hl) = bytes_in(host.as_bytes());
        let (p, pl) = bytes_in(path.as_bytes());
        check(unsafe {
            sys::portico_router_match(self.router.raw, self.raw, m, ml, h, hl, p, pl)
        })?;
        let mut result = 0i32;
        check(unsafe { sys::portico_match_result(self.raw, &mut result) })?;
        match result {
            sys::PORTICO_MATCH_FOUND => {
                let mut route = 0u32;
                check(unsafe { sys::portico_match_route(self.raw, &mut route) })?;
                Ok(Lookup::Found {
                    route,
                    params: Vec::new(),
                })
            }
            sys::PORTICO_MATCH_NOT_FOUND => Ok(Lookup::NotFound),
            sys::PORTICO_MATCH_METHOD_NOT_ALLOWED => Ok(Lookup::MethodNotAllowed),
            other => Err(Error::new(
                Status::Internal,
                format!("portico_match_result gave an unknown result {}", other),
            )),
        }
    }

    /// The parameter `name` of the last lookup ("*" for an unnamed
    /// catch-all); `None` when it has none of that name.
    pub fn param(&self, name: &str) -> Option<&str> {
        let (n, nl) = bytes_in(name.as_bytes());
        let (mut v, mut vl) = (ptr::null(), 0usize);
        let code = unsafe { sys::portico_match_param_by_name(self.raw, n, nl, &mut v, &mut vl) };
        if code != sys::PORTICO_OK {
            return None;
        }
        text_out(unsafe { bytes_out(v, vl) }, "a path parameter").ok()
    }

    /// Every parameter of the last lookup, in pattern order.
    pub fn params(&self) -> Result<Vec<(&str, &str)>> {
        let mut count = 0usize;
        check(unsafe { sys::portico_match_param_count(self.raw, &mut count) })?;
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let (mut n, mut nl, mut v, mut vl) = (ptr::null(), 0usize, ptr::null(), 0usize);
            check(unsafe {
                sys::portico_match_param(self.raw, i, &mut n, &mut nl, &mut v, &mut vl)
            })?;
            let name = text_out(unsafe { bytes_out(n, nl) }, "a parameter name")?;
            let value = text_out(unsafe { bytes_out(v, vl) }, "a parameter value")?;
            out.push((name, value));
        }
        Ok(out)
    }
}

impl Drop for Matcher<'_> {
    fn drop(&mut self) {
        unsafe { sys::portico_match_free(self.raw) }
    }
}
debug_handle!(Router);
impl std::fmt::Debug for Matcher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher")
            .field("handle", &self.raw)
            .finish()
    }
}
