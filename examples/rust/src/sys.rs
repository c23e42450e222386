//! The C ABI of `capi/portico.h`, declared by hand, one to one.
//!
//! Everything here is `unsafe` to call and follows the header's contract
//! (ownership, lifetimes, threads). The safe wrapper in the rest of the crate
//! is built on it; it is public so that tests and advanced users can reach
//! the boundary itself (for example, to hand it bytes a `&str` cannot hold).
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_void};

pub type portico_status = i32;

pub const PORTICO_OK: portico_status = 0;
pub const PORTICO_ERR_INVALID_ARGUMENT: portico_status = 1;
pub const PORTICO_ERR_INVALID_HANDLE: portico_status = 2;
pub const PORTICO_ERR_INVALID_UTF8: portico_status = 3;
pub const PORTICO_ERR_INVALID_JSON: portico_status = 4;
pub const PORTICO_ERR_INVALID_CONFIG: portico_status = 5;
pub const PORTICO_ERR_MALFORMED: portico_status = 6;
pub const PORTICO_ERR_CONFLICT: portico_status = 7;
pub const PORTICO_ERR_CAPACITY: portico_status = 8;
pub const PORTICO_ERR_NOT_FOUND: portico_status = 9;
pub const PORTICO_ERR_IO: portico_status = 10;
pub const PORTICO_ERR_STATE: portico_status = 11;
pub const PORTICO_ERR_NO_MEMORY: portico_status = 12;
pub const PORTICO_ERR_INTERNAL: portico_status = 13;

/// The header's version; compare with `portico_version()`.
pub const PORTICO_VERSION_MAJOR: u32 = 0;
pub const PORTICO_VERSION_MINOR: u32 = 1;
pub const PORTICO_VERSION_PATCH: u32 = 0;

/// Tells a primitive to read the monotonic clock itself.
pub const PORTICO_NOW: i64 = i64::MIN;

pub const PORTICO_MATCH_FOUND: i32 = 0;
pub const PORTICO_MATCH_NOT_FOUND: i32 = 1;
pub const PORTICO_MATCH_METHOD_NOT_ALLOWED: i32 = 2;

pub const PORTICO_JWT_VALID: i32 = 0;
pub const PORTICO_JWT_KEY_PEM: i32 = 0;
pub const PORTICO_JWT_KEY_HMAC: i32 = 1;
pub const PORTICO_JWT_KEY_JWK: i32 = 2;

pub const PORTICO_BREAKER_CLOSED: i32 = 0;
pub const PORTICO_BREAKER_OPEN: i32 = 1;
pub const PORTICO_BREAKER_HALF_OPEN: i32 = 2;
pub const PORTICO_BREAKER_ADMITTED: i32 = 0;

pub const PORTICO_OUTCOME_SUCCESS: i32 = 0;
pub const PORTICO_OUTCOME_FAILURE: i32 = 1;
pub const PORTICO_OUTCOME_CANCELLED: i32 = 2;

pub const PORTICO_FILTER_CONTINUE: i32 = 0;
pub const PORTICO_FILTER_RESPOND: i32 = 1;

// Opaque handles: only ever behind pointers, never built or moved in Rust.
macro_rules! opaque {
    ($($name:ident),*) => {$(
        #[repr(C)]
        pub struct $name {
            _private: [u8; 0],
        }
    )*};
}
opaque!(
    portico_router,
    portico_match,
    portico_jwt_verifier,
    portico_jwt_cache,
    portico_jwt_result,
    portico_limiter,
    portico_breaker,
    portico_balancer,
    portico_request,
    portico_gateway_options,
    portico_gateway
);

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct portico_limit_decision {
    pub allowed: i32,
    pub cost_out_of_range: i32,
    pub limit: i64,
    pub remaining: i64,
    pub retry_after_ns: i64,
    pub reset_after_ns: i64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct portico_breaker_permit {
    pub opaque: [u64; 2],
    pub admission: i32,
    pub reserved: i32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct portico_endpoint {
    pub slot: u32,
    pub generation: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct portico_header {
    pub name: *const c_char,
    pub name_len: usize,
    pub value: *const c_char,
    pub value_len: usize,
}

pub type portico_filter_fn =
    Option<unsafe extern "C" fn(request: *mut portico_request, user: *mut c_void) -> i32>;
pub type portico_handler_fn =
    Option<unsafe extern "C" fn(request: *mut portico_request, user: *mut c_void) -> i32>;
pub type portico_error_fn =
    Option<unsafe extern "C" fn(message: *const c_char, len: usize, user: *mut c_void)>;

// The library to link (libportico by default) is chosen by build.rs.
extern "C" {
    pub fn portico_version() -> u32;
    pub fn portico_version_string() -> *const c_char;
    pub fn portico_status_name(status: portico_status) -> *const c_char;
    pub fn portico_last_error() -> *const c_char;
    pub fn portico_string_free(s: *mut c_char);
    pub fn portico_now_ns() -> i64;

    // router
    pub fn portico_router_new(out: *mut *mut portico_router) -> portico_status;
    pub fn portico_router_free(router: *mut portico_router);
    pub fn portico_router_add(
        router: *mut portico_router,
        name: *const c_char,
        name_len: usize,
        methods: *const c_char,
        methods_len: usize,
        host: *const c_char,
        host_len: usize,
        path: *const c_char,
        path_len: usize,
        out_id: *mut u32,
    ) -> portico_status;
    pub fn portico_router_size(router: *const portico_router, out: *mut usize) -> portico_status;
    pub fn portico_match_new(out: *mut *mut portico_match) -> portico_status;
    pub fn portico_match_free(m: *mut portico_match);
    pub fn portico_router_match(
        router: *const portico_router,
        m: *mut portico_match,
        method: *const c_char,
        method_len: usize,
        host: *const c_char,
        host_len: usize,
        path: *const c_char,
        path_len: usize,
    ) -> portico_status;
    pub fn portico_match_result(m: *const portico_match, out: *mut i32) -> portico_status;
    pub fn portico_match_route(m: *const portico_match, out_id: *mut u32) -> portico_status;
    pub fn portico_match_param_count(m: *const portico_match, out: *mut usize) -> portico_status;
    pub fn portico_match_param(
        m: *const portico_match,
        index: usize,
        name: *mut *const c_char,
        name_len: *mut usize,
        value: *mut *const c_char,
        value_len: *mut usize,
    ) -> portico_status;
    pub fn portico_match_param_by_name(
        m: *const portico_match,
        name: *const c_char,
        name_len: usize,
        value: *mut *const c_char,
        value_len: *mut usize,
    ) -> portico_status;

    // JWT
    pub fn portico_jwt_reason_name(reason: i32) -> *const c_char;
    pub fn portico_jwt_verifier_new_jwks(
        out: *mut *mut portico_jwt_verifier,
        jwks: *const c_char,
        jwks_len: usize,
        options_json: *const c_char,
        options_len: usize,
    ) -> portico_status;
    pub fn portico_jwt_verifier_new_key(
        out: *mut *mut portico_jwt_verifier,
        key_kind: i32,
        key: *const c_char,
        key_len: usize,
        kid: *const c_char,
        kid_len: usize,
        options_json: *const c_char,
        options_len: usize,
    ) -> portico_status;
    pub fn portico_jwt_verifier_free(verifier: *mut portico_jwt_verifier);
    pub fn portico_jwt_cache_new(
        out: *mut *mut portico_jwt_cache,
        verifier: *const portico_jwt_verifier,
        capacity: usize,
    ) -> portico_status;
    pub fn portico_jwt_cache_free(cache: *mut portico_jwt_cache);
    pub fn portico_jwt_result_new(out: *mut *mut portico_jwt_result) -> portico_status;
    pub fn portico_jwt_result_free(result: *mut portico_jwt_result);
    pub fn portico_jwt_verify(
        verifier: *const portico_jwt_verifier,
        token: *const c_char,
        token_len: usize,
        now_unix_seconds: i64,
        result: *mut portico_jwt_result,
    ) -> portico_status;
    pub fn portico_jwt_cache_verify(
        cache: *mut portico_jwt_cache,
        token: *const c_char,
        token_len: usize,
        now_unix_seconds: i64,
        result: *mut portico_jwt_result,
    ) -> portico_status;
    pub fn portico_jwt_result_reason(
        result: *const portico_jwt_result,
        out_reason: *mut i32,
    ) -> portico_status;
    pub fn portico_jwt_result_message(
        result: *const portico_jwt_result,
        message: *mut *const c_char,
        len: *mut usize,
    ) -> portico_status;
    pub fn portico_jwt_result_claims(
        result: *const portico_jwt_result,
        json: *mut *const c_char,
        len: *mut usize,
    ) -> portico_status;
    pub fn portico_jwt_result_claim_string(
        result: *const portico_jwt_result,
        path: *const c_char,
        path_len: usize,
        value: *mut *const c_char,
        value_len: *mut usize,
    ) -> portico_status;
    pub fn portico_jwt_result_from_cache(
        result: *const portico_jwt_result,
        out: *mut i32,
    ) -> portico_status;

    // rate limiter
    pub fn portico_limiter_new(
        out: *mut *mut portico_limiter,
        rate: i64,
        period_ns: i64,
        burst: i64,
        max_keys: i64,
    ) -> portico_status;
    pub fn portico_limiter_free(limiter: *mut portico_limiter);
    pub fn portico_limiter_check(
        limiter: *mut portico_limiter,
        key: *const c_char,
        key_len: usize,
        cost: u32,
        now_ns: i64,
        out: *mut portico_limit_decision,
    ) -> portico_status;

    // circuit breaker
    pub fn portico_breaker_new(
        out: *mut *mut portico_breaker,
        config_json: *const c_char,
        config_len: usize,
    ) -> portico_status;
    pub fn portico_breaker_free(breaker: *mut portico_breaker);
    pub fn portico_breaker_acquire(
        breaker: *mut portico_breaker,
        now_ns: i64,
        out: *mut portico_breaker_permit,
    ) -> portico_status;
    pub fn portico_breaker_success(
        breaker: *mut portico_breaker,
        permit: *const portico_breaker_permit,
        now_ns: i64,
    ) -> portico_status;
    pub fn portico_breaker_failure(
        breaker: *mut portico_breaker,
        permit: *const portico_breaker_permit,
        now_ns: i64,
    ) -> portico_status;
    pub fn portico_breaker_cancel(
        breaker: *mut portico_breaker,
        permit: *const portico_breaker_permit,
    ) -> portico_status;
    pub fn portico_breaker_state(
        breaker: *mut portico_breaker,
        now_ns: i64,
        out_state: *mut i32,
    ) -> portico_status;
    pub fn portico_breaker_retry_after(
        breaker: *const portico_breaker,
        now_ns: i64,
        out_ns: *mut i64,
    ) -> portico_status;
    pub fn portico_breaker_state_name(state: i32) -> *const c_char;

    // balancer
    pub fn portico_balancer_new(
        out: *mut *mut portico_balancer,
        config_json: *const c_char,
        config_len: usize,
    ) -> portico_status;
    pub fn portico_balancer_free(balancer: *mut portico_balancer);
    pub fn portico_balancer_pick(
        balancer: *mut portico_balancer,
        hash: u64,
        now_ns: i64,
        out: *mut portico_endpoint,
    ) -> portico_status;
    pub fn portico_balancer_endpoint_id(
        balancer: *const portico_balancer,
        endpoint: portico_endpoint,
        id: *mut *const c_char,
        id_len: *mut usize,
    ) -> portico_status;
    pub fn portico_balancer_find(
        balancer: *const portico_balancer,
        id: *const c_char,
        id_len: usize,
        out: *mut portico_endpoint,
    ) -> portico_status;
    pub fn portico_balancer_start(
        balancer: *mut portico_balancer,
        endpoint: portico_endpoint,
    ) -> portico_status;
    pub fn portico_balancer_end(
        balancer: *mut portico_balancer,
        endpoint: portico_endpoint,
        latency_ns: i64,
        outcome: i32,
        now_ns: i64,
    ) -> portico_status;
    pub fn portico_balancer_set_healthy(
        balancer: *mut portico_balancer,
        endpoint: portico_endpoint,
        healthy: i32,
    ) -> portico_status;
    pub fn portico_balancer_add(
        balancer: *mut portico_balancer,
        id: *const c_char,
        id_len: usize,
        weight: u32,
        out: *mut portico_endpoint,
    ) -> portico_status;
    pub fn portico_balancer_remove(
        balancer: *mut portico_balancer,
        id: *const c_char,
        id_len: usize,
    ) -> portico_status;
    pub fn portico_hash_key(key: *const c_char, key_len: usize) -> u64;

    // requests, from filter and handler callbacks
    pub fn portico_request_method(
        request: *const portico_request,
        value: *mut *const c_char,
        len: *mut usize,
    ) -> portico_status;
    pub fn portico_request_path(
        request: *const portico_request,
        value: *mut *const c_char,
        len: *mut usize,
    ) -> portico_status;
    pub fn portico_request_query(
        request: *const portico_request,
        value: *mut *const c_char,
        len: *mut usize,
    ) -> portico_status;
    pub fn portico_request_header(
        request: *const portico_request,
        name: *const c_char,
        name_len: usize,
        value: *mut *const c_char,
        value_len: *mut usize,
    ) -> portico_status;
    pub fn portico_request_header_count(
        request: *const portico_request,
        out: *mut usize,
    ) -> portico_status;
    pub fn portico_request_header_at(
        request: *const portico_request,
        index: usize,
        name: *mut *const c_char,
        name_len: *mut usize,
        value: *mut *const c_char,
        value_len: *mut usize,
    ) -> portico_status;
    pub fn portico_request_client_address(
        request: *const portico_request,
        value: *mut *const c_char,
        len: *mut usize,
    ) -> portico_status;
    pub fn portico_request_param(
        request: *const portico_request,
        name: *const c_char,
        name_len: usize,
        value: *mut *const c_char,
        value_len: *mut usize,
    ) -> portico_status;
    pub fn portico_request_claims(
        request: *const portico_request,
        json: *mut *const c_char,
        len: *mut usize,
    ) -> portico_status;
    pub fn portico_request_consumer(
        request: *const portico_request,
        value: *mut *const c_char,
        len: *mut usize,
    ) -> portico_status;
    pub fn portico_request_plugin_config(
        request: *const portico_request,
        json: *mut *const c_char,
        len: *mut usize,
    ) -> portico_status;
    pub fn portico_request_body(
        request: *const portico_request,
        value: *mut *const c_char,
        len: *mut usize,
    ) -> portico_status;
    pub fn portico_request_set_header(
        request: *mut portico_request,
        name: *const c_char,
        name_len: usize,
        value: *const c_char,
        value_len: usize,
    ) -> portico_status;
    pub fn portico_request_remove_header(
        request: *mut portico_request,
        name: *const c_char,
        name_len: usize,
    ) -> portico_status;
    pub fn portico_request_set_path(
        request: *mut portico_request,
        path_and_query: *const c_char,
        len: usize,
    ) -> portico_status;
    pub fn portico_request_response_status(
        request: *const portico_request,
        out: *mut i32,
    ) -> portico_status;
    pub fn portico_request_set_response_status(
        request: *mut portico_request,
        status: i32,
    ) -> portico_status;
    pub fn portico_request_response_header(
        request: *const portico_request,
        name: *const c_char,
        name_len: usize,
        value: *mut *const c_char,
        value_len: *mut usize,
    ) -> portico_status;
    pub fn portico_request_set_response_header(
        request: *mut portico_request,
        name: *const c_char,
        name_len: usize,
        value: *const c_char,
        value_len: usize,
    ) -> portico_status;
    pub fn portico_request_remove_response_header(
        request: *mut portico_request,
        name: *const c_char,
        name_len: usize,
    ) -> portico_status;
    pub fn portico_request_respond(
        request: *mut portico_request,
        status: i32,
        headers: *const portico_header,
        header_count: usize,
        body: *const c_char,
        body_len: usize,
    ) -> portico_status;

    // gateway
    pub fn portico_gateway_options_new(out: *mut *mut portico_gateway_options) -> portico_status;
    pub fn portico_gateway_options_free(options: *mut portico_gateway_options);
    pub fn portico_gateway_options_add_filter(
        options: *mut portico_gateway_options,
        name: *const c_char,
        name_len: usize,
        priority: i32,
        on_request: portico_filter_fn,
        on_response: portico_filter_fn,
        user: *mut c_void,
    ) -> portico_status;
    pub fn portico_gateway_options_add_handler(
        options: *mut portico_gateway_options,
        name: *const c_char,
        name_len: usize,
        handler: portico_handler_fn,
        user: *mut c_void,
    ) -> portico_status;
    pub fn portico_gateway_options_set_port(
        options: *mut portico_gateway_options,
        index: usize,
        port: u16,
    ) -> portico_status;
    pub fn portico_gateway_options_set_admin_port(
        options: *mut portico_gateway_options,
        port: u16,
    ) -> portico_status;
    pub fn portico_gateway_options_set_error_callback(
        options: *mut portico_gateway_options,
        callback: portico_error_fn,
        user: *mut c_void,
    ) -> portico_status;
    pub fn portico_gateway_check(
        config_json: *const c_char,
        config_len: usize,
        options: *const portico_gateway_options,
    ) -> portico_status;
    pub fn portico_gateway_new(
        out: *mut *mut portico_gateway,
        config_json: *const c_char,
        config_len: usize,
        options: *const portico_gateway_options,
    ) -> portico_status;
    pub fn portico_gateway_new_from_file(
        out: *mut *mut portico_gateway,
        path: *const c_char,
        path_len: usize,
        options: *const portico_gateway_options,
    ) -> portico_status;
    pub fn portico_gateway_free(gateway: *mut portico_gateway);
    pub fn portico_gateway_start(gateway: *mut portico_gateway) -> portico_status;
    pub fn portico_gateway_run(gateway: *mut portico_gateway) -> portico_status;
    pub fn portico_gateway_reload(
        gateway: *mut portico_gateway,
        config_json: *const c_char,
        config_len: usize,
    ) -> portico_status;
    pub fn portico_gateway_reload_file(gateway: *mut portico_gateway) -> portico_status;
    pub fn portico_gateway_stop(gateway: *mut portico_gateway, drain_ns: i64) -> portico_status;
    pub fn portico_gateway_request_stop(gateway: *mut portico_gateway) -> portico_status;
    pub fn portico_gateway_metrics(
        gateway: *mut portico_gateway,
        out: *mut *mut c_char,
        out_len: *mut usize,
    ) -> portico_status;
    pub fn portico_gateway_port(
        gateway: *const portico_gateway,
        index: usize,
        out: *mut u16,
    ) -> portico_status;
    pub fn portico_gateway_admin_port(
        gateway: *const portico_gateway,
        out: *mut u16,
    ) -> portico_status;
    pub fn portico_gateway_generation(
        gateway: *const portico_gateway,
        out: *mut u64,
    ) -> portico_status;
}
