//! Each primitive on its own through the safe wrapper, in simulated time
//! where time matters.

mod support;

use std::time::Duration;

use portico::{
    hash_key, sys, Admission, Balancer, Breaker, BreakerState, JwtCache, JwtKey, JwtReason,
    JwtVerifier, Limiter, Lookup, Outcome, Router, Status,
};
use support::{hs256_token, unix_now};

const SECOND: i64 = 1_000_000_000;

#[test]
fn the_loaded_library_matches_the_declarations() {
    assert!(
        portico::library_is_compatible(),
        "library {:?}",
        portico::library_version()
    );
    assert!(portico::now_ns() > 0);
}

// ---------------------------------------------------------------- router

fn sample_router() -> Router {
    let mut router = Router::new().unwrap();
    assert_eq!(router.add("user", "GET", "", "/users/{id}").unwrap(), 0);
    assert_eq!(router.add("files", "", "", "/static/{*rest}").unwrap(), 1);
    assert_eq!(
        router
            .add("create", "POST", "api.example.com", "/users")
            .unwrap(),
        2
    );
    router
}

#[test]
fn router_finds_routes_and_captures_parameters() {
    let router = sample_router();
    assert_eq!(router.len(), 3);
    assert_eq!(
        router.lookup("GET", "", "/users/42").unwrap(),
        Lookup::Found {
            route: 0,
            params: vec![("id".to_owned(), "42".to_owned())]
        }
    );
    assert_eq!(
        router.lookup("PUT", "", "/static/css/a.css").unwrap(),
        Lookup::Found {
            route: 1,
            params: vec![("rest".to_owned(), "css/a.css".to_owned())]
        }
    );
    // The path is normalised before the lookup.
    assert!(matches!(
        router.lookup("GET", "", "/users/./7").unwrap(),
        Lookup::Found { route: 0, .. }
    ));
    assert_eq!(
        router.lookup("GET", "", "/nothing").unwrap(),
        Lookup::NotFound
    );
    assert_eq!(
        router.lookup("DELETE", "", "/users/42").unwrap(),
        Lookup::MethodNotAllowed
    );
    assert!(matches!(
        router.lookup("POST", "api.example.com", "/users").unwrap(),
        Lookup::Found { route: 2, .. }
    ));
    assert_eq!(
        router
            .lookup("POST", "other.example.com", "/users")
            .unwrap(),
        Lookup::NotFound
    );
}

#[test]
fn a_matcher_is_reused_across_lookups() {
    let router = sample_router();
    let mut matcher = router.matcher().unwrap();
    for id in ["1", "22", "333"] {
        let found = matcher.find("GET", "", &format!("/users/{}", id)).unwrap();
        assert_eq!(
            found,
            Lookup::Found {
                route: 0,
                params: vec![]
            }
        );
        assert_eq!(matcher.param("id"), Some(id));
        assert_eq!(matcher.params().unwrap(), vec![("id", id)]);
        assert_eq!(matcher.param("missing"), None);
    }
}

#[test]
fn router_lookups_run_on_many_threads_at_once() {
    let router = sample_router();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let router = &router;
            scope.spawn(move || {
                let mut matcher = router.matcher().unwrap();
                for i in 0..500 {
                    let id = format!("{}-{}", t, i);
                    matcher.find("GET", "", &format!("/users/{}", id)).unwrap();
                    assert_eq!(matcher.param("id"), Some(id.as_str()));
                }
            });
        }
    });
}

#[test]
fn router_errors_say_what_is_wrong() {
    let mut router = sample_router();
    let e = router.add("broken", "GET", "", "/users/{id").unwrap_err();
    assert_eq!(e.status(), Status::Malformed, "{}", e);
    assert!(e.message().contains('{'), "{}", e);
    let e = router.add("again", "GET", "", "/users/{id}").unwrap_err();
    assert_eq!(e.status(), Status::Conflict, "{}", e);
    let e = router.add("verb", "FETCH", "", "/fetch").unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument, "{}", e);
    assert!(
        e.to_string().starts_with("PORTICO_ERR_INVALID_ARGUMENT: "),
        "{}",
        e
    );
    // Failed adds leave the table as it was.
    assert_eq!(router.len(), 3);
}

#[test]
fn text_that_is_not_utf8_is_refused_at_the_boundary() {
    // A &str cannot hold such bytes, so this goes through the raw ABI.
    let bad: &[u8] = b"/caf\xe9";
    let good: &[u8] = b"/cafe";
    let text = |b: &[u8]| (b.as_ptr() as *const std::os::raw::c_char, b.len());
    unsafe {
        let mut router = std::ptr::null_mut();
        let mut m = std::ptr::null_mut();
        assert_eq!(sys::portico_router_new(&mut router), sys::PORTICO_OK);
        assert_eq!(sys::portico_match_new(&mut m), sys::PORTICO_OK);
        let mut id = 0u32;
        let none = std::ptr::null();
        let (p, len) = text(bad);
        let status = sys::portico_router_add(router, none, 0, none, 0, none, 0, p, len, &mut id);
        assert_eq!(status, sys::PORTICO_ERR_INVALID_UTF8);
        let message = std::ffi::CStr::from_ptr(sys::portico_last_error())
            .to_string_lossy()
            .into_owned();
        assert!(!message.is_empty());
        let (p, len) = text(good);
        assert_eq!(
            sys::portico_router_add(router, none, 0, none, 0, none, 0, p, len, &mut id),
            sys::PORTICO_OK
        );
        let (get, get_len) = text(b"GET");
        let (p, len) = text(bad);
        // A request path is bytes off the wire: the normaliser refuses a raw
        // non-ASCII byte as malformed before any UTF-8 question arises.
        let status = sys::portico_router_match(router, m, get, get_len, none, 0, p, len);
        assert!(
            status == sys::PORTICO_ERR_MALFORMED || status == sys::PORTICO_ERR_INVALID_UTF8,
            "status {}",
            status
        );
        // A lying length (NULL with a length) is refused, not read.
        let status = sys::portico_router_match(router, m, get, get_len, none, 0, none, 5);
        assert_eq!(status, sys::PORTICO_ERR_INVALID_ARGUMENT);
        sys::portico_match_free(m);
        sys::portico_router_free(router);
    }
}

// ------------------------------------------------------------------- JWT

const SECRET: &[u8] = b"a-secret-of-at-least-thirty-two-bytes!!";

fn verifier(options: &str) -> JwtVerifier {
    JwtVerifier::from_key(JwtKey::Hmac(SECRET), "", options).unwrap()
}

#[test]
fn jwt_verifier_accepts_a_good_token_and_reads_its_claims() {
    let now = unix_now();
    let token = hs256_token(
        SECRET,
        &format!(
            r#"{{"sub":"alice","exp":{},"realm":{{"role":"admin"}}}}"#,
            now + 300
        ),
    );
    let verdict = verifier(r#"{"algorithms": ["HS256"]}"#)
        .verify(&token, now)
        .unwrap();
    assert!(verdict.is_valid(), "{:?}", verdict);
    assert_eq!(verdict.reason(), JwtReason::Valid);
    assert_eq!(verdict.message(), "");
    assert_eq!(verdict.claim_str("sub"), Some("alice"));
    assert_eq!(verdict.claim_str("realm.role"), Some("admin"));
    assert_eq!(verdict.claim_str("nope"), None);
    assert!(verdict.claims().unwrap().contains("\"alice\""));
    assert!(!verdict.from_cache());
}

#[test]
fn jwt_verifier_says_why_a_token_is_refused() {
    let now = unix_now();
    let v = verifier(r#"{"issuers": ["https://issuer.test"], "leeway": 0}"#);
    let expired = hs256_token(
        SECRET,
        &format!(r#"{{"iss":"https://issuer.test","exp":{}}}"#, now - 100),
    );
    let verdict = v.verify(&expired, now).unwrap();
    assert_eq!(verdict.reason(), JwtReason::Expired);
    assert_eq!(verdict.reason().name(), "expired");
    assert!(!verdict.message().is_empty());
    assert_eq!(verdict.claims(), None);

    let wrong_issuer = hs256_token(
        SECRET,
        &format!(r#"{{"iss":"https://evil.test","exp":{}}}"#, now + 100),
    );
    assert_eq!(
        v.verify(&wrong_issuer, now).unwrap().reason(),
        JwtReason::BadIssuer
    );

    let forged = hs256_token(
        b"another-secret-of-thirty-two-bytes!!!!!",
        r#"{"iss":"https://issuer.test"}"#,
    );
    assert_eq!(
        v.verify(&forged, now).unwrap().reason(),
        JwtReason::BadSignature
    );

    // Tokens are bytes: garbage, even not UTF-8, is a refusal, not an error.
    let verdict = v.verify(b"\xff\xfe.\x00\x01.\x80", now).unwrap();
    assert_eq!(verdict.reason(), JwtReason::Malformed);
    assert_eq!(v.verify("", now).unwrap().reason(), JwtReason::Malformed);
}

#[test]
fn jwt_cache_answers_a_repeated_token_without_the_signature_check() {
    let now = unix_now();
    let token = hs256_token(SECRET, &format!(r#"{{"sub":"bob","exp":{}}}"#, now + 300));
    let v = verifier("");
    let mut cache = JwtCache::new(&v, 16).unwrap();
    drop(v); // the cache keeps the verifier alive
    let first = cache.verify(&token, now).unwrap();
    assert!(first.is_valid() && !first.from_cache());
    let second = cache.verify(&token, now).unwrap();
    assert!(second.is_valid() && second.from_cache());
    assert_eq!(second.claim_str("sub"), Some("bob"));
}

#[test]
fn jwt_verifier_from_a_jwks() {
    let jwks = format!(
        r#"{{"keys": [{{"kty": "oct", "kid": "k1", "alg": "HS256", "k": "{}"}}]}}"#,
        support::base64url(SECRET)
    );
    let v = JwtVerifier::from_jwks(&jwks, "").unwrap();
    let now = unix_now();
    let token = support::hs256_token_with_kid(SECRET, "k1", r#"{"sub":"carol"}"#);
    let verdict = v.verify(&token, now).unwrap();
    assert!(verdict.is_valid(), "{:?}", verdict);
    assert_eq!(verdict.claim_str("sub"), Some("carol"));
    let token = support::hs256_token_with_kid(SECRET, "k2", r#"{"sub":"carol"}"#);
    assert_eq!(
        v.verify(&token, now).unwrap().reason(),
        JwtReason::UnknownKid
    );
}

#[test]
fn jwt_construction_errors_name_the_problem() {
    let e = JwtVerifier::from_key(JwtKey::Hmac(b"short"), "", "").unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument, "{}", e);
    let e = JwtVerifier::from_key(JwtKey::Hmac(SECRET), "", "{not json").unwrap_err();
    assert_eq!(e.status(), Status::InvalidJson, "{}", e);
    let e = JwtVerifier::from_key(
        JwtKey::Hmac(SECRET),
        "",
        r#"{"leeway": 5, "colour": "red"}"#,
    )
    .unwrap_err();
    assert!(e.message().contains("colour"), "{}", e);
    let e = JwtVerifier::from_jwks(r#"{"keys": []}"#, "").unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument, "{}", e);
    let e = JwtVerifier::from_key(JwtKey::Pem(b"-----BEGIN PUBLIC KEY-----\nnope\n"), "", "")
        .unwrap_err();
    assert_ne!(e.message(), "", "{}", e);
}

// --------------------------------------------------------------- limiter

#[test]
fn limiter_allows_the_burst_then_refuses_until_time_passes() {
    // 2 per second, burst 1: two requests pass at once, the third waits.
    let limiter = Limiter::new(2, Duration::from_secs(1), 1, 100).unwrap();
    let t0 = 1000 * SECOND;
    let first = limiter.check("alice", 1, t0).unwrap();
    assert!(first.allowed);
    assert_eq!(first.limit, 2);
    assert_eq!(first.remaining, 1);
    assert!(limiter.check("alice", 1, t0).unwrap().allowed);
    let refused = limiter.check("alice", 1, t0).unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    assert!(
        refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_millis(500)
    );
    // Another key has its own allowance; keys are bytes, UTF-8 or not.
    assert!(limiter.check(b"\xff\x00bob", 1, t0).unwrap().allowed);
    // Half a second later one more fits.
    assert!(limiter.check("alice", 1, t0 + SECOND / 2).unwrap().allowed);
    // A cost above the limit can never pass.
    let too_big = limiter.check("carol", 5, t0).unwrap();
    assert!(!too_big.allowed && too_big.cost_out_of_range);
}

#[test]
fn limiter_checks_from_many_threads_count_every_request_once() {
    let limiter = Limiter::new(100, Duration::from_secs(1), 99, 10).unwrap();
    let t0 = 5 * SECOND;
    let allowed = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..50 {
                    if limiter.check("shared", 1, t0).unwrap().allowed {
                        allowed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(allowed.into_inner(), 100);
}

#[test]
fn limiter_refuses_a_bad_configuration() {
    let e = Limiter::new(0, Duration::from_secs(1), 0, 10).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument, "{}", e);
    assert!(Limiter::new(1, Duration::ZERO, 0, 10).is_err());
    assert!(Limiter::new(1, Duration::from_secs(1), -1, 10).is_err());
}

// --------------------------------------------------------------- breaker

#[test]
fn breaker_opens_after_failures_then_probes_and_closes() {
    let mut b =
        Breaker::new(r#"{"consecutive_failures": 2, "failure_ratio": 0, "open_duration": "1s"}"#)
            .unwrap();
    let t0 = 100 * SECOND;
    assert_eq!(b.state(t0).unwrap(), BreakerState::Closed);
    for _ in 0..2 {
        let permit = b.acquire(t0).unwrap();
        assert_eq!(permit.admission(), Admission::Admitted);
        b.failure(permit, t0).unwrap();
    }
    assert_eq!(b.state(t0).unwrap(), BreakerState::Open);
    assert_eq!(b.state(t0).unwrap().name(), "open");
    let refused = b.acquire(t0).unwrap();
    assert_eq!(refused.admission(), Admission::RejectedOpen);
    assert!(!refused.is_admitted());
    assert_eq!(
        b.retry_after(t0 + SECOND / 4).unwrap(),
        Duration::from_millis(750)
    );

    let later = t0 + SECOND;
    assert_eq!(b.state(later).unwrap(), BreakerState::HalfOpen);
    let probe = b.acquire(later).unwrap();
    assert!(probe.is_admitted());
    // One probe at a time while half-open.
    assert_eq!(
        b.acquire(later).unwrap().admission(),
        Admission::RejectedHalfOpenFull
    );
    b.success(probe, later).unwrap();
    assert_eq!(b.state(later).unwrap(), BreakerState::Closed);
    assert_eq!(b.retry_after(later).unwrap(), Duration::ZERO);

    // A cancelled request counts neither way.
    let permit = b.acquire(later).unwrap();
    b.cancel(permit).unwrap();
    assert_eq!(b.state(later).unwrap(), BreakerState::Closed);
}

#[test]
fn breaker_refuses_a_bad_configuration_naming_the_field() {
    let e = Breaker::new(r#"{"open_duration": "soon"}"#).unwrap_err();
    assert_eq!(e.status(), Status::InvalidConfig, "{}", e);
    assert!(e.message().contains("open_duration"), "{}", e);
    let e = Breaker::new("[1, 2").unwrap_err();
    assert_eq!(e.status(), Status::InvalidJson, "{}", e);
    // Empty: the defaults.
    assert!(Breaker::new("").is_ok());
}

// -------------------------------------------------------------- balancer

#[test]
fn balancer_round_robin_visits_every_endpoint() {
    let mut b = Balancer::new(
        r#"{"policy": "round_robin", "endpoints": [{"id": "a:1"}, {"id": "b:1"}, {"id": "c:1"}]}"#,
    )
    .unwrap();
    let mut seen: Vec<String> = (0..6)
        .map(|_| {
            let ep = b.pick(0, portico::NOW).unwrap();
            b.endpoint_id(ep).unwrap().to_owned()
        })
        .collect();
    assert_eq!(seen[..3], seen[3..], "a cycle of three: {:?}", seen);
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["a:1", "b:1", "c:1"]);
}

#[test]
fn balancer_skips_unhealthy_and_removed_endpoints() {
    let mut b =
        Balancer::new(r#"{"endpoints": [{"id": "a:1"}, {"id": "b:1"}], "panic_threshold": 0}"#)
            .unwrap();
    let a = b.find("a:1").unwrap();
    b.set_healthy(a, false).unwrap();
    for _ in 0..4 {
        let ep = b.pick(0, portico::NOW).unwrap();
        assert_eq!(b.endpoint_id(ep).unwrap(), "b:1");
        b.start(ep).unwrap();
        b.end(ep, Duration::from_millis(3), Outcome::Success, portico::NOW)
            .unwrap();
    }
    let c = b.add("c:1", 1).unwrap();
    assert_eq!(b.endpoint_id(c).unwrap(), "c:1");
    b.remove("b:1").unwrap();
    b.remove("c:1").unwrap();
    assert_eq!(b.endpoint_id(c).unwrap_err().status(), Status::NotFound);
    assert_eq!(b.find("b:1").unwrap_err().status(), Status::NotFound);
    // Only the unhealthy one is left: nothing to pick (panic mode off).
    assert_eq!(
        b.pick(0, portico::NOW).unwrap_err().status(),
        Status::NotFound
    );
    assert_eq!(b.add("a:1", 1).unwrap_err().status(), Status::Conflict);
}

#[test]
fn balancer_maglev_keeps_a_key_on_one_endpoint() {
    let mut b = Balancer::new(
        r#"{"policy": "maglev", "endpoints": [{"id": "a:1"}, {"id": "b:1"}, {"id": "c:1"}, {"id": "d:1"}]}"#,
    )
    .unwrap();
    assert_eq!(hash_key(b"user-7"), hash_key(b"user-7"));
    assert_ne!(hash_key(b"user-7"), hash_key(b"user-8"));
    let mut spread = std::collections::HashSet::new();
    for user in 0..32 {
        let key = hash_key(format!("user-{}", user).as_bytes());
        let first = b.pick(key, portico::NOW).unwrap();
        for _ in 0..3 {
            assert_eq!(b.pick(key, portico::NOW).unwrap(), first);
        }
        spread.insert(b.endpoint_id(first).unwrap().to_owned());
    }
    assert!(spread.len() > 1, "32 keys all on {:?}", spread);
}

#[test]
fn balancer_refuses_a_bad_configuration() {
    let e = Balancer::new(r#"{"policy": "random", "endpoints": [{"id": "a:1"}]}"#).unwrap_err();
    assert!(
        e.message().contains("random") || e.message().contains("policy"),
        "{}",
        e
    );
    let e = Balancer::new("").unwrap_err();
    assert_ne!(e.status(), Status::Internal, "{}", e);
    let e = Balancer::new("{\"endpoints\": [").unwrap_err();
    assert_eq!(e.status(), Status::InvalidJson, "{}", e);
}
