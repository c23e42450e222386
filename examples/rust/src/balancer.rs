//! Choosing an endpoint of a pool per request (docs/balancer.md).

use std::ptr;
use std::time::Duration;

use crate::error::{check, Result};
use crate::{bytes_in, bytes_out, duration_ns, sys, text_out};

/// A pool of endpoints and a policy. Used by one thread at a time.
pub struct Balancer {
    raw: *mut sys::portico_balancer,
}

unsafe impl Send for Balancer {}

/// Names one endpoint; stale (`NotFound`) once the endpoint is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint(sys::portico_endpoint);

/// How a request sent to an endpoint ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    Failure,
    Cancelled,
}

impl Balancer {
    /// `config_json`: {"policy": "round_robin" | "weighted_round_robin" |
    /// "least_request" | "power_of_two_choices" | "peak_ewma" | "maglev",
    /// "endpoints": [{"id": "10.0.0.1:80", "weight": 1}], "seed": 0,
    /// "panic_threshold": 0.5}; only "endpoints" is required.
    pub fn new(config_json: &str) -> Result<Balancer> {
        let (c, cl) = bytes_in(config_json.as_bytes());
        let mut raw = ptr::null_mut();
        check(unsafe { sys::portico_balancer_new(&mut raw, c, cl) })?;
        Ok(Balancer { raw })
    }

    /// Chooses an endpoint. `hash` is maglev's affinity key
    /// ([`crate::hash_key`]); the other policies ignore it. `NotFound` when
    /// none is available.
    pub fn pick(&mut self, hash: u64, now_ns: i64) -> Result<Endpoint> {
        let mut ep = sys::portico_endpoint::default();
        check(unsafe { sys::portico_balancer_pick(self.raw, hash, now_ns, &mut ep) })?;
        Ok(Endpoint(ep))
    }

    /// The endpoint's id ("10.0.0.1:80").
    pub fn endpoint_id(&self, endpoint: Endpoint) -> Result<&str> {
        let (mut p, mut len) = (ptr::null(), 0usize);
        check(unsafe {
            sys::portico_balancer_endpoint_id(self.raw, endpoint.0, &mut p, &mut len)
        })?;
        text_out(unsafe { bytes_out(p, len) }, "an endpoint id")
    }

    pub fn find(&self, id: &str) -> Result<Endpoint> {
        let (i, il) = bytes_in(id.as_bytes());
        let mut ep = sys::portico_endpoint::default();
        check(unsafe { sys::portico_balancer_find(self.raw, i, il, &mut ep) })?;
        Ok(Endpoint(ep))
    }

    /// A request was sent to `endpoint` (for the load-aware policies).
    pub fn start(&mut self, endpoint: Endpoint) -> Result<()> {
        check(unsafe { sys::portico_balancer_start(self.raw, endpoint.0) })
    }

    /// The request started on `endpoint` ended: once per `start`.
    pub fn end(
        &mut self,
        endpoint: Endpoint,
        latency: Duration,
        outcome: Outcome,
        now_ns: i64,
    ) -> Result<()> {
        let outcome = match outcome {
            Outcome::Success => sys::PORTICO_OUTCOME_SUCCESS,
            Outcome::Failure => sys::PORTICO_OUTCOME_FAILURE,
            Outcome::Cancelled => sys::PORTICO_OUTCOME_CANCELLED,
        };
        check(unsafe {
            sys::portico_balancer_end(self.raw, endpoint.0, duration_ns(latency), outcome, now_ns)
        })
    }

    pub fn set_healthy(&mut self, endpoint: Endpoint, healthy: bool) -> Result<()> {
        check(unsafe {
            sys::portico_balancer_set_healthy(self.raw, endpoint.0, i32::from(healthy))
        })
    }

    pub fn add(&mut self, id: &str, weight: u32) -> Result<Endpoint> {
        let (i, il) = bytes_in(id.as_bytes());
        let mut ep = sys::portico_endpoint::default();
        check(unsafe { sys::portico_balancer_add(self.raw, i, il, weight, &mut ep) })?;
        Ok(Endpoint(ep))
    }

    pub fn remove(&mut self, id: &str) -> Result<()> {
        let (i, il) = bytes_in(id.as_bytes());
        check(unsafe { sys::portico_balancer_remove(self.raw, i, il) })
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        unsafe { sys::portico_balancer_free(self.raw) }
    }
}
debug_handle!(Balancer);
