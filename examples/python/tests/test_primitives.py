"""Each primitive on its own through the binding."""
import time

import pytest

import portico
from conftest import HMAC_SECRET, hs256_jwks, hs256_token

SECOND = 1_000_000_000


def test_router_matches_routes_and_parameters():
    with portico.Router() as router:
        users = router.add("/users/{id}", methods=["GET", "DELETE"])
        files = router.add("/static/{*rest}", name="static")
        api = router.add("/api/v1/items", methods="POST", host="api.example.com")
        assert (users, files, api) == (0, 1, 2)
        assert len(router) == 3

        found = router.match("GET", "/users/42")
        assert found and found.route == users and found.params == {"id": "42"}
        assert router.match("GET", "/static/css/site.css").params == {"rest": "css/site.css"}
        assert router.match("GET", "/a/./../users/7").params == {"id": "7"}  # normalised
        assert router.match("POST", "/api/v1/items", host="api.example.com").route == api

        missing = router.match("GET", "/nothing")
        assert not missing and missing.result == "not_found" and missing.route is None
        assert router.match("POST", "/users/1").result == "method_not_allowed"
        assert router.match("POST", "/api/v1/items", host="other.example.com").result == "not_found"


def test_router_refuses_bad_patterns_and_conflicts():
    with portico.Router() as router:
        router.add("/users/{id}")
        with pytest.raises(portico.MalformedError) as bad:
            router.add("/users/{id")
        assert bad.value.status == 6 and bad.value.status_name == "PORTICO_ERR_MALFORMED"
        assert bad.value.message
        with pytest.raises(portico.ConflictError):
            router.add("/users/{id}")
        with pytest.raises(portico.InvalidArgumentError):
            router.add("/x", methods=["FETCH"])
        assert len(router) == 1


def test_jwt_verifier_accepts_and_refuses():
    now = int(time.time())
    good = hs256_token({"sub": "ada", "iss": "https://idp.test", "exp": now + 600,
                        "realm": {"role": "admin"}})
    with portico.JwtVerifier.from_jwks(hs256_jwks(), algorithms=["HS256"],
                                       issuers=["https://idp.test"]) as verifier:
        result = verifier.verify(good)
        assert result and result.reason == "valid" and result.message == ""
        assert result.claims["sub"] == "ada"
        assert result.claim("realm.role") == "admin"
        assert not result.from_cache

        expired = verifier.verify(hs256_token({"sub": "ada", "iss": "https://idp.test",
                                               "exp": now - 3600}))
        assert not expired and expired.reason == "expired" and expired.claims is None
        assert expired.message

        forged = verifier.verify(hs256_token({"sub": "eve", "iss": "https://idp.test",
                                              "exp": now + 600}, secret=b"x" * 40))
        assert forged.reason == "bad_signature"
        assert verifier.verify(hs256_token({"sub": "ada", "iss": "https://evil.test",
                                            "exp": now + 600})).reason == "bad_issuer"
        assert verifier.verify("not.a.token").reason == "malformed"
        # Time is the caller's: the same token checked two hours later.
        assert verifier.verify(good, now=now + 7200).reason == "expired"


def test_jwt_verifier_from_one_key_and_its_cache():
    token = hs256_token({"sub": "bob", "exp": int(time.time()) + 600})
    verifier = portico.JwtVerifier.from_key(HMAC_SECRET, kind="hmac", kid="test-hs256")
    cache = verifier.cache(capacity=16)
    verifier.close()  # the cache keeps what it needs
    first, second = cache.verify(token), cache.verify(token)
    assert first.valid and not first.from_cache
    assert second.valid and second.from_cache and second.claims["sub"] == "bob"
    cache.close()


def test_limiter_in_simulated_time():
    start = portico.now_ns()
    with portico.Limiter(rate=2, period=1.0, burst=1, max_keys=100) as limiter:
        decisions = [limiter.check("alice", now_ns=start) for _ in range(3)]
        assert [d.allowed for d in decisions] == [True, True, False]
        assert decisions[0].limit == 2
        refused = decisions[2]
        assert not refused and 0 < refused.retry_after <= 0.5
        assert limiter.check("bob", now_ns=start).allowed  # another key, its own allowance
        later = limiter.check("alice", now_ns=start + refused.retry_after_ns)
        assert later.allowed
        assert limiter.check("alice", cost=5, now_ns=start + 10 * SECOND).cost_out_of_range
        assert limiter.check(b"\xff\x00binary key", now_ns=start).allowed  # keys are bytes


def test_breaker_trips_opens_and_recovers():
    t0 = portico.now_ns()
    config = {"consecutive_failures": 2, "failure_ratio": 0, "open_duration": "1s",
              "half_open_max_probes": 1, "half_open_successes_to_close": 1}
    with portico.Breaker(config) as breaker:
        assert breaker.state(t0) == "closed"
        for _ in range(2):
            permit = breaker.acquire(t0)
            assert permit.admitted
            permit.failure(t0)
        assert breaker.state(t0) == "open"
        assert breaker.retry_after(t0) == pytest.approx(1.0)
        refused = breaker.acquire(t0)
        assert not refused and refused.admission == "rejected_open"
        with pytest.raises(portico.BreakerRejected) as rejected:
            with breaker.acquire():
                pass
        assert rejected.value.admission == "rejected_open"

        later = t0 + 2 * SECOND
        assert breaker.state(later) == "half_open"
        probe = breaker.acquire(later)
        assert probe.admitted
        assert breaker.acquire(later).admission == "rejected_half_open_full"
        probe.success(later)
        assert breaker.state(later) == "closed"
        with pytest.raises(portico.StateError):
            probe.success(later)  # a permit is handed back once


def test_breaker_permit_as_context_manager_reports_failure():
    with portico.Breaker({"consecutive_failures": 1, "failure_ratio": 0}) as breaker:
        with pytest.raises(RuntimeError):
            with breaker.acquire():
                raise RuntimeError("upstream failed")
        assert breaker.state() == "open"


def test_balancer_round_robin_maglev_and_updates():
    endpoints = [{"id": f"10.0.0.{i}:80"} for i in range(1, 4)]
    with portico.Balancer({"policy": "round_robin", "endpoints": endpoints}) as balancer:
        picks = [balancer.pick().id for _ in range(6)]
        assert sorted(picks[:3]) == ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]
        assert picks[3:] == picks[:3]

        second = balancer.find("10.0.0.2:80")
        balancer.set_healthy(second, False)
        assert "10.0.0.2:80" not in {balancer.pick().id for _ in range(6)}
        balancer.set_healthy(second, True)

        added = balancer.add("10.0.0.9:80", weight=1)
        assert added.id == "10.0.0.9:80"
        balancer.start(added)
        balancer.end(added, latency=0.003, outcome="success")
        balancer.remove("10.0.0.9:80")
        with pytest.raises(portico.NotFoundError):
            balancer.find("10.0.0.9:80")
        with pytest.raises(ValueError):
            balancer.end(second, outcome="maybe")

    with portico.Balancer({"policy": "maglev", "endpoints": endpoints}) as maglev:
        chosen = {key: maglev.pick(key).id for key in ("user-1", "user-2", "user-3")}
        for _ in range(5):
            assert {key: maglev.pick(key).id for key in chosen} == chosen
        assert maglev.pick(portico.hash_key("user-1")).id == chosen["user-1"]
    assert portico.hash_key("user-1") == portico.hash_key(b"user-1") != portico.hash_key("user-2")
