//! A configured gateway, and the Rust closures it calls as filters and
//! in-process handlers.

use std::any::Any;
use std::os::raw::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::ptr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{check, Result};
use crate::request::{Action, Request, Response};
use crate::{bytes_in, bytes_out, duration_ns, sys};

/// A filter or handler body. Called on the gateway's worker threads,
/// concurrently for different requests, hence `Send + Sync`. A closure that
/// blocks stalls every connection of its worker (other workers go on).
pub type Callback = dyn Fn(&mut Request<'_>) -> Action + Send + Sync;

type ErrorCallback = dyn Fn(&str) + Send + Sync;

/// Where misbehaving callbacks are reported: the closure given to
/// [`GatewayOptions::on_error`], or standard error. Shared by every
/// callback of the options, so it can be set before or after them.
#[derive(Default)]
struct ErrorSink {
    // Locked only when something is reported, never on a healthy request.
    callback: Mutex<Option<Arc<ErrorCallback>>>,
}

impl ErrorSink {
    fn report(&self, message: &str) {
        let callback = match self.callback.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        match callback {
            Some(f) => {
                // A panicking error callback must not unwind into C either.
                let _ = catch_unwind(AssertUnwindSafe(|| f(message)));
            }
            None => eprintln!("portico: {}", message),
        }
    }
}

/// A host filter, registered as a plugin by name: a configuration's
/// `"plugins": [{"name": "<name>", "config": {...}}]` list then uses it like
/// a built-in policy, one instance per entry.
pub struct Filter {
    name: String,
    priority: i32,
    on_request: Option<Box<Callback>>,
    on_response: Option<Box<Callback>>,
}

impl Filter {
    /// Priority 0: after every built-in policy in the request phase (so
    /// authentication has run and [`Request::claims`] is known).
    pub fn new(name: impl Into<String>) -> Filter {
        Filter {
            name: name.into(),
            priority: 0,
            on_request: None,
            on_response: None,
        }
    }

    /// Higher runs earlier in the request phase; the built-ins use 300..1000.
    pub fn priority(mut self, priority: i32) -> Filter {
        self.priority = priority;
        self
    }

    /// The request phase: read and edit the request, or answer it.
    pub fn on_request<F>(mut self, f: F) -> Filter
    where
        F: Fn(&mut Request<'_>) -> Action + Send + Sync + 'static,
    {
        self.on_request = Some(Box::new(f));
        self
    }

    /// The response phase: read and edit the upstream's response headers.
    /// `Action::Respond` is not possible here (answered 500, reported).
    pub fn on_response<F>(mut self, f: F) -> Filter
    where
        F: Fn(&mut Request<'_>) -> Action + Send + Sync + 'static,
    {
        self.on_response = Some(Box::new(f));
        self
    }
}

/// What the library's `void* user` points at for one filter. Owned by the
/// options and by every gateway built from them (through `Arc`), so it
/// outlives every call.
struct FilterContext {
    name: String,
    on_request: Option<Box<Callback>>,
    on_response: Option<Box<Callback>>,
    errors: Arc<ErrorSink>,
}

struct HandlerContext {
    name: String,
    handler: Box<Callback>,
    errors: Arc<ErrorSink>,
}

/// What a gateway is built with besides its configuration: filters and
/// handlers by name, port overrides, an error callback. Building copies it
/// (closures are shared), so one `GatewayOptions` may build several
/// gateways and may be dropped right after.
pub struct GatewayOptions {
    raw: *mut sys::portico_gateway_options,
    contexts: Vec<Arc<dyn Any + Send + Sync>>,
    errors: Arc<ErrorSink>,
}

// The options handle is only touched through `&mut self` or, when building
// a gateway, `&self` with no concurrent mutation possible.
unsafe impl Send for GatewayOptions {}
unsafe impl Sync for GatewayOptions {}

impl GatewayOptions {
    pub fn new() -> Result<GatewayOptions> {
        let mut raw = ptr::null_mut();
        check(unsafe { sys::portico_gateway_options_new(&mut raw) })?;
        let options = GatewayOptions {
            raw,
            contexts: Vec::new(),
            errors: Arc::new(ErrorSink::default()),
        };
        let user = Arc::as_ptr(&options.errors) as *mut c_void;
        check(unsafe {
            sys::portico_gateway_options_set_error_callback(raw, Some(error_trampoline), user)
        })?;
        Ok(options)
    }

    /// Registers a filter. `Conflict` when the name is a built-in's;
    /// `InvalidArgument` when it has neither phase.
    pub fn add_filter(&mut self, filter: Filter) -> Result<&mut GatewayOptions> {
        let context = Arc::new(FilterContext {
            name: filter.name,
            on_request: filter.on_request,
            on_response: filter.on_response,
            errors: self.errors.clone(),
        });
        let on_request: sys::portico_filter_fn =
            context.on_request.as_ref().map(|_| request_phase as _);
        let on_response: sys::portico_filter_fn =
            context.on_response.as_ref().map(|_| response_phase as _);
        let (n, nl) = bytes_in(context.name.as_bytes());
        let user = Arc::as_ptr(&context) as *mut c_void;
        check(unsafe {
            sys::portico_gateway_options_add_filter(
                self.raw,
                n,
                nl,
                filter.priority,
                on_request,
                on_response,
                user,
            )
        })?;
        self.contexts.push(context);
        Ok(self)
    }

    /// Registers an in-process handler: a service of the configuration that
    /// says `{"name": "svc", "handler": "<name>"}` is served by `f`, which
    /// sees the whole request body and must answer with `Action::Respond`.
    pub fn add_handler<F>(&mut self, name: &str, f: F) -> Result<&mut GatewayOptions>
    where
        F: Fn(&mut Request<'_>) -> Action + Send + Sync + 'static,
    {
        let context = Arc::new(HandlerContext {
            name: name.to_owned(),
            handler: Box::new(f),
            errors: self.errors.clone(),
        });
        let (n, nl) = bytes_in(name.as_bytes());
        let user = Arc::as_ptr(&context) as *mut c_void;
        check(unsafe {
            sys::portico_gateway_options_add_handler(self.raw, n, nl, Some(handler_call), user)
        })?;
        self.contexts.push(context);
        Ok(self)
    }

    /// Replaces the port of listener `index` (0: an ephemeral port).
    pub fn set_port(&mut self, index: usize, port: u16) -> Result<&mut GatewayOptions> {
        check(unsafe { sys::portico_gateway_options_set_port(self.raw, index, port) })?;
        Ok(self)
    }

    /// Replaces the admin listener's port (0: ephemeral).
    pub fn set_admin_port(&mut self, port: u16) -> Result<&mut GatewayOptions> {
        check(unsafe { sys::portico_gateway_options_set_admin_port(self.raw, port) })?;
        Ok(self)
    }

    /// Receives what the gateway reports about misbehaving callbacks (a
    /// panic, a refused edit, a handler that did not answer). Called on a
    /// worker thread: must not block. Without it, reports go to stderr.
    pub fn on_error<F>(&mut self, f: F) -> &mut GatewayOptions
    where
        F: Fn(&str) + Send + Sync + 'static,
    {
        let mut slot = match self.errors.callback.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Some(Arc::new(f));
        drop(slot);
        self
    }
}

impl Drop for GatewayOptions {
    fn drop(&mut self) {
        // Gateways built from these options hold their own references to
        // the contexts; dropping ours is safe.
        unsafe { sys::portico_gateway_options_free(self.raw) }
    }
}

/// A configured gateway (docs/gateway.md): listeners with worker threads,
/// an admin listener, hot reload. Thread-safe: share it (`Arc`, scoped
/// threads) and call it from anywhere but its own callbacks.
pub struct Gateway {
    raw: *mut sys::portico_gateway,
    // Freed only after the gateway (fields drop after Drop::drop).
    _callbacks: Callbacks,
}

unsafe impl Send for Gateway {}
unsafe impl Sync for Gateway {}

/// What a gateway keeps alive for the `user` pointers its callbacks get.
#[derive(Default)]
struct Callbacks {
    _contexts: Vec<Arc<dyn Any + Send + Sync>>,
    _errors: Option<Arc<ErrorSink>>,
}

fn split(options: Option<&GatewayOptions>) -> (*const sys::portico_gateway_options, Callbacks) {
    match options {
        None => (ptr::null(), Callbacks::default()),
        Some(o) => (
            o.raw,
            Callbacks {
                _contexts: o.contexts.clone(),
                _errors: Some(o.errors.clone()),
            },
        ),
    }
}

impl Gateway {
    /// Reads and validates a JSON configuration; nothing is bound yet.
    /// `InvalidJson` or `InvalidConfig` with every problem, one per line.
    pub fn new(config_json: &str, options: Option<&GatewayOptions>) -> Result<Gateway> {
        let (raw_options, callbacks) = split(options);
        let (c, cl) = bytes_in(config_json.as_bytes());
        let mut raw = ptr::null_mut();
        check(unsafe { sys::portico_gateway_new(&mut raw, c, cl, raw_options) })?;
        Ok(Gateway {
            raw,
            _callbacks: callbacks,
        })
    }

    /// The same from a file, which [`Gateway::reload_file`] reads again.
    pub fn from_file(path: &Path, options: Option<&GatewayOptions>) -> Result<Gateway> {
        let (raw_options, callbacks) = split(options);
        // The path's bytes as they are: the library refuses non-UTF-8.
        let (p, pl) = bytes_in(path_bytes(path));
        let mut raw = ptr::null_mut();
        check(unsafe { sys::portico_gateway_new_from_file(&mut raw, p, pl, raw_options) })?;
        Ok(Gateway {
            raw,
            _callbacks: callbacks,
        })
    }

    /// Checks a configuration without binding anything.
    pub fn check(config_json: &str, options: Option<&GatewayOptions>) -> Result<()> {
        let raw_options = options.map_or(ptr::null(), |o| o.raw as *const _);
        let (c, cl) = bytes_in(config_json.as_bytes());
        check(unsafe { sys::portico_gateway_check(c, cl, raw_options) })
    }

    /// Binds every listener and serves on the gateway's own threads;
    /// returns once serving. `Io` when a port cannot be bound, `State` when
    /// already started.
    pub fn start(&self) -> Result<()> {
        check(unsafe { sys::portico_gateway_start(self.raw) })
    }

    /// Starts (unless started) and blocks until stopped from elsewhere
    /// ([`Gateway::stop`], [`Gateway::request_stop`]).
    pub fn run(&self) -> Result<()> {
        check(unsafe { sys::portico_gateway_run(self.raw) })
    }

    /// Swaps in a new configuration; requests in flight finish on the old
    /// one. An invalid one leaves the running one in place.
    pub fn reload(&self, config_json: &str) -> Result<()> {
        let (c, cl) = bytes_in(config_json.as_bytes());
        check(unsafe { sys::portico_gateway_reload(self.raw, c, cl) })
    }

    pub fn reload_file(&self) -> Result<()> {
        check(unsafe { sys::portico_gateway_reload_file(self.raw) })
    }

    /// Graceful stop: stops accepting, lets requests in flight finish for up
    /// to `drain`, joins the threads. Idempotent.
    pub fn stop(&self, drain: Duration) -> Result<()> {
        check(unsafe { sys::portico_gateway_stop(self.raw, duration_ns(drain)) })
    }

    /// Asks for a stop and returns at once; safe from anywhere, callbacks
    /// included.
    pub fn request_stop(&self) -> Result<()> {
        check(unsafe { sys::portico_gateway_request_stop(self.raw) })
    }

    /// The Prometheus text of GET /metrics.
    pub fn metrics(&self) -> Result<String> {
        let (mut p, mut len) = (ptr::null_mut::<c_char>(), 0usize);
        check(unsafe { sys::portico_gateway_metrics(self.raw, &mut p, &mut len) })?;
        let text = String::from_utf8_lossy(unsafe { bytes_out(p, len) }).into_owned();
        unsafe { sys::portico_string_free(p) };
        Ok(text)
    }

    /// The bound port of listener `index` (after start).
    pub fn port(&self, index: usize) -> Result<u16> {
        let mut port = 0u16;
        check(unsafe { sys::portico_gateway_port(self.raw, index, &mut port) })?;
        Ok(port)
    }

    /// The admin listener's port; 0 when it is disabled.
    pub fn admin_port(&self) -> Result<u16> {
        let mut port = 0u16;
        check(unsafe { sys::portico_gateway_admin_port(self.raw, &mut port) })?;
        Ok(port)
    }

    /// The configuration generation now serving (0 after start, +1 per
    /// reload).
    pub fn generation(&self) -> Result<u64> {
        let mut generation = 0u64;
        check(unsafe { sys::portico_gateway_generation(self.raw, &mut generation) })?;
        Ok(generation)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // Stops and joins the workers first; the contexts (fields) are
        // dropped after this, when no callback can run any more.
        unsafe { sys::portico_gateway_free(self.raw) }
    }
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes()
}

#[cfg(not(unix))]
fn path_bytes(path: &Path) -> &[u8] {
    // Lossy would hide a wrong path; a non-Unicode path yields "" and the
    // library reports it missing.
    path.to_str().map_or(&[], str::as_bytes)
}

// ---------------------------------------------------------------- calls
//
// The library calls these with the `user` pointer given at registration.
// Nothing may unwind out of them: each closure runs under catch_unwind.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    RequestFilter,
    ResponseFilter,
    Handler,
}

unsafe extern "C" fn request_phase(request: *mut sys::portico_request, user: *mut c_void) -> i32 {
    let context = &*(user as *const FilterContext);
    match &context.on_request {
        Some(f) => call(
            request,
            &context.name,
            Role::RequestFilter,
            f.as_ref(),
            &context.errors,
        ),
        None => sys::PORTICO_FILTER_CONTINUE,
    }
}

unsafe extern "C" fn response_phase(request: *mut sys::portico_request, user: *mut c_void) -> i32 {
    let context = &*(user as *const FilterContext);
    match &context.on_response {
        Some(f) => call(
            request,
            &context.name,
            Role::ResponseFilter,
            f.as_ref(),
            &context.errors,
        ),
        None => sys::PORTICO_FILTER_CONTINUE,
    }
}

unsafe extern "C" fn handler_call(request: *mut sys::portico_request, user: *mut c_void) -> i32 {
    let context = &*(user as *const HandlerContext);
    call(
        request,
        &context.name,
        Role::Handler,
        context.handler.as_ref(),
        &context.errors,
    )
}

unsafe extern "C" fn error_trampoline(message: *const c_char, len: usize, user: *mut c_void) {
    let sink = &*(user as *const ErrorSink);
    let text = String::from_utf8_lossy(bytes_out(message, len));
    sink.report(&text);
}

// Neither CONTINUE, RESPOND nor OK: the library answers 500 and reports.
// Returned only when even answering (or setting) 500 from here failed.
const GIVE_UP: i32 = -1;

fn call(
    raw: *mut sys::portico_request,
    name: &str,
    role: Role,
    f: &Callback,
    errors: &ErrorSink,
) -> i32 {
    let what = match role {
        Role::Handler => "handler",
        _ => "filter",
    };
    let mut request = unsafe { Request::from_raw(raw) };
    let outcome = catch_unwind(AssertUnwindSafe(|| f(&mut request)));
    let problem = match outcome {
        Ok(Action::Continue) if role != Role::Handler => return sys::PORTICO_FILTER_CONTINUE,
        Ok(Action::Continue) => format!(
            "handler '{}' returned Action::Continue; a handler must respond",
            name
        ),
        Ok(Action::Respond(response)) => match request.respond(&response) {
            Ok(()) => return answered(role),
            Err(e) => format!("{} '{}' could not respond: {}", what, name, e),
        },
        Err(panic) => format!(
            "{} '{}' panicked: {}",
            what,
            name,
            panic_message(panic.as_ref())
        ),
    };
    errors.report(&problem);
    // Reported here, so the library must have nothing to report again: the
    // response phase cannot answer, but it can set the status.
    let settled = match role {
        Role::ResponseFilter => request
            .set_response_status(500)
            .map(|()| sys::PORTICO_FILTER_CONTINUE),
        _ => request
            .respond(&Response::new(500).body("internal error\n"))
            .map(|()| answered(role)),
    };
    settled.unwrap_or(GIVE_UP)
}

fn answered(role: Role) -> i32 {
    match role {
        Role::Handler => sys::PORTICO_OK,
        _ => sys::PORTICO_FILTER_RESPOND,
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(a panic without a message)"
    }
}
debug_handle!(GatewayOptions, Gateway);
