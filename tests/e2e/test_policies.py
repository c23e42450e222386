"""End-to-end tests of portico-gateway: every built-in policy through the
binary, each checked on both sides (what reached the upstream, what the
client got)."""
import json
import sys
import re
import time
import unittest

from harness import (Gateway, GatewayTestCase, Upstream, config, hs256_jwks, hs256_token,
                     refused_port, service, sha256_key)

SECRET = b"e2e-test-secret-0123456789abcdef"
ISSUER = "https://idp.test"
JWKS = hs256_jwks(SECRET)

RICH_BODY = (b'{"id": 12345678901234567890, "name": "widget",'
             b' "internal_metadata": {"shard": 3}, "tags": ["a"]}')


def rich_reply(req):
    return (200, {"Content-Type": "application/json", "X-Internal-Trace-Id": "trace-42",
                  "X-Public": "kept"}, RICH_BODY)


def route(name, prefix, plugins, **extra):
    r = {"name": name, "paths": [prefix + "/**"], "service": "app", "plugins": plugins}
    r.update(extra)
    return r


def jwt_plugin(**extra):
    c = {"jwks": JWKS, "issuers": [ISSUER]}
    c.update(extra)
    return {"name": "jwt-auth", "config": c}


ROUTES = [
    route("deny-local", "/deny", [{"name": "ip-restriction", "config": {"deny": ["127.0.0.1"]}}]),
    route("allow-ten", "/allow-ten",
          [{"name": "ip-restriction", "config": {"allow": ["10.0.0.0/8"]}}]),
    route("allow-local", "/allow-local",
          [{"name": "ip-restriction",
            "config": {"allow": ["127.0.0.0/8"], "deny": ["10.9.0.0/16"]}}]),
    route("cors", "/cors",
          [{"name": "cors", "config": {
              "origins": ["https://app.example.com", "https://*.example.org"],
              "methods": ["GET", "POST"], "headers": ["Content-Type", "Authorization"],
              "exposed_headers": ["X-Request-ID"], "credentials": True, "max_age": "10m"}}]),
    route("small", "/small",
          [{"name": "request-size-limiting", "config": {"max_body_bytes": 10}}]),
    route("keys", "/keys", [{"name": "key-auth", "config": {"query_names": ["apikey"]}}]),
    route("jwt", "/jwt",
          [jwt_plugin(query_param="access_token"),
           {"name": "request-transformer",
            "config": {"add": {"headers": ["X-Subject:$(claims.sub)"]}}}]),
    route("both-auth", "/both",
          [{"name": "key-auth", "config": {"query_names": ["apikey"]}},
           jwt_plugin(query_param="access_token")]),
    route("strip-keys", "/strip-keys",
          [{"name": "key-auth", "config": {"query_names": ["apikey"]}}], strip_path=True),
    route("jwt-role", "/jwt-role", [jwt_plugin(required_roles=["admin"])]),
    route("jwt-scope", "/jwt-scope", [jwt_plugin(required_scopes=["orders:read"])]),
    route("limited", "/limited",
          [{"name": "rate-limit", "config": {"limit_by": "ip", "limits": {"minute": 3}}}]),
    route("planned", "/planned",
          [{"name": "key-auth"},
           {"name": "rate-limit", "config": {"limit_by": "consumer", "limits": {"minute": 5}}}]),
    {"name": "items", "paths": ["/items/{id}"], "service": "app",
     "plugins": [{"name": "key-auth"},
                 {"name": "request-transformer", "config": {
                     "remove": {"headers": ["X-Debug"]},
                     "add": {"headers": ["X-Consumer:$(consumer.id)",
                                         "X-Item:$(route.param.id)"]}}}]},
    {"name": "resp", "paths": ["/resp/**"], "service": "rich",
     "plugins": [{"name": "response-transformer", "config": {
         "remove": {"headers": ["X-Internal-Trace-Id"], "json": ["internal_metadata"]}}}]},
]

CONSUMERS = [
    {"id": "alice", "plan": "gold", "api_keys": ["alice-key"]},
    {"id": "bob", "api_keys": [sha256_key("bob-key")]},
    {"id": "carol", "plan": "tiny", "api_keys": ["carol-key"]},
    {"id": "dave", "jwt": [{"issuer": ISSUER, "subject": "dave"}]},
]
PLANS = [{"name": "gold", "limits": {"minute": 1000}},
         {"name": "tiny", "limits": {"minute": 2}}]


def route_index(name):
    return next(i for i, r in enumerate(ROUTES) if r["name"] == name)


def token(**claims):
    base = {"iss": ISSUER, "sub": "alice", "exp": int(time.time()) + 300}
    base.update(claims)
    return hs256_token(SECRET, {k: v for k, v in base.items() if v is not None})


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


class Policies(GatewayTestCase):
    @classmethod
    def setUpClass(cls):
        cls.app = Upstream(name="app")
        cls.rich = Upstream(reply=rich_reply, name="rich")
        cls.gw = Gateway(config([service("app", cls.app.port), service("rich", cls.rich.port)],
                                ROUTES, consumers=CONSUMERS, plans=PLANS,
                                plugins=[{"name": "request-id"}]))

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.app.close()
        cls.rich.close()

    def setUp(self):
        self.app.clear()
        self.rich.clear()

    def upstream_saw(self, name):
        return self.app.last()["headers"].get(name.lower())

    # ip-restriction

    def test_ip_restriction_deny_list_refuses_the_client(self):
        self.assertJsonError(self.gw.get("/deny/x"), 403, "your IP address is not allowed")
        self.assertEqual(self.app.requests, [])

    def test_ip_restriction_allow_list(self):
        self.assertJsonError(self.gw.get("/allow-ten/x"), 403, "not allowed")
        self.assertEqual(self.app.requests, [])
        self.assertFromUpstream(self.gw.get("/allow-local/x"), "app", "/allow-local/x")

    # cors

    def test_cors_preflight_is_answered_at_the_gateway(self):
        r = self.gw.request("OPTIONS", "/cors/a", {
            "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.headers.get("access-control-allow-origin"), "https://app.example.com")
        self.assertIn("POST", r.headers.get("access-control-allow-methods", ""))
        self.assertIn("content-type", r.headers.get("access-control-allow-headers", "").lower())
        self.assertEqual(r.headers.get("access-control-max-age"), "600")
        self.assertEqual(r.headers.get("access-control-allow-credentials"), "true")
        self.assertIn("Origin", r.headers.get("vary", ""))
        self.assertEqual(self.app.requests, [])

    def test_cors_subdomain_pattern_matches(self):
        r = self.gw.request("OPTIONS", "/cors/a", {
            "Origin": "https://shop.eu.example.org", "Access-Control-Request-Method": "GET"})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.headers.get("access-control-allow-origin"),
                         "https://shop.eu.example.org")

    def test_cors_preflight_refused(self):
        cases = [({"Origin": "https://evil.example.com"}, "origin not allowed"),
                 ({"Origin": "https://example.org"}, "origin not allowed"),
                 ({"Origin": "https://app.example.com",
                   "Access-Control-Request-Method": "DELETE"}, "method not allowed")]
        for headers, phrase in cases:
            with self.subTest(headers=headers):
                h = {"Access-Control-Request-Method": "GET"}
                h.update(headers)
                self.assertJsonError(self.gw.request("OPTIONS", "/cors/a", h), 403, phrase)
        self.assertEqual(self.app.requests, [])

    def test_cors_actual_request_gets_the_allow_origin(self):
        r = self.gw.get("/cors/a", {"Origin": "https://app.example.com"})
        self.assertFromUpstream(r, "app", "/cors/a")
        self.assertEqual(r.headers.get("access-control-allow-origin"), "https://app.example.com")
        self.assertEqual(r.headers.get("access-control-expose-headers"), "X-Request-ID")
        self.assertEqual(self.upstream_saw("origin"), "https://app.example.com")

    # request-size-limiting

    def test_request_size_limiting(self):
        self.assertJsonError(self.gw.request("POST", "/small/a", body=b"x" * 11), 413,
                             "larger than 10 bytes")
        self.assertEqual(self.app.requests, [])
        r = self.gw.request("POST", "/small/a", body=b"y" * 10)
        self.assertFromUpstream(r, "app", "/small/a")
        self.assertEqual(self.app.last()["body"], b"y" * 10)

    # key-auth

    def test_key_auth_refuses_missing_and_unknown_keys(self):
        for headers, phrase in (({}, "no API key was sent"),
                                ({"X-API-Key": "nope"}, "the API key is not valid"),
                                ([("X-API-Key", "alice-key"), ("X-API-Key", "alice-key")],
                                 "more than one API key")):
            with self.subTest(headers=headers):
                r = self.gw.get("/keys/a", headers)
                self.assertJsonError(r, 401, phrase)
                self.assertEqual(r.headers.get("www-authenticate"), 'Key realm="portico"')
        self.assertEqual(self.app.requests, [])

    def test_key_auth_resolves_the_consumer_and_hides_the_key(self):
        r = self.gw.get("/keys/a", {"X-API-Key": "alice-key", "X-Consumer-ID": "mallory",
                                    "X-Anonymous-Consumer": "true"})
        self.assertFromUpstream(r, "app", "/keys/a")
        seen = self.app.last()
        self.assertNotIn("x-api-key", seen["headers"])
        self.assertEqual([v for k, v in seen["header_list"] if k == "x-consumer-id"], ["alice"])
        self.assertEqual(seen["headers"].get("x-consumer-plan"), "gold")
        self.assertNotIn("x-anonymous-consumer", seen["headers"])

    def test_key_auth_query_key_is_removed_from_the_target(self):
        r = self.gw.get("/keys/q?a=1&apikey=alice-key&b=%2F")
        self.assertFromUpstream(r, "app", "/keys/q?a=1&b=%2F")
        self.assertEqual(self.upstream_saw("x-consumer-id"), "alice")

    def test_key_auth_accepts_a_key_stored_as_sha256(self):
        r = self.gw.get("/keys/b", {"X-API-Key": "bob-key"})
        self.assertFromUpstream(r, "app", "/keys/b")
        self.assertEqual(self.upstream_saw("x-consumer-id"), "bob")
        self.assertNotIn("x-consumer-plan", self.app.last()["headers"])
        self.assertJsonError(self.gw.get("/keys/b", {"X-API-Key": sha256_key("bob-key")}), 401)

    # jwt-auth

    def assertBearerChallenge(self, r, status, error=None):
        challenge = r.headers.get("www-authenticate", "")
        self.assertTrue(challenge.startswith('Bearer realm="portico"'), challenge)
        if error:
            self.assertIn(f'error="{error}"', challenge)
        else:
            self.assertNotIn("error=", challenge)
        return challenge

    def test_jwt_missing_token(self):
        r = self.gw.get("/jwt/a")
        self.assertJsonError(r, 401, "no bearer token was sent")
        self.assertBearerChallenge(r, 401)
        r = self.gw.get("/jwt/a", {"Authorization": "Basic YTpi"})
        self.assertJsonError(r, 401, "no bearer token was sent")
        self.assertEqual(self.app.requests, [])

    def test_jwt_invalid_tokens(self):
        now = int(time.time())
        cases = [
            ("expired", token(exp=now - 3600), "the token has expired"),
            ("bad signature", hs256_token(b"another-secret-of-32-bytes-long!",
                                          {"iss": ISSUER, "sub": "alice", "exp": now + 300}),
             "signature is not valid"),
            ("issuer", token(iss="https://other.test"), "issuer is not accepted"),
            ("unknown kid", hs256_token(SECRET, {"iss": ISSUER, "sub": "a", "exp": now + 60},
                                        kid="k9"), "signing key is not known"),
            ("malformed", "abc.def", "malformed"),
        ]
        for what, tok, phrase in cases:
            with self.subTest(what):
                r = self.gw.get("/jwt/a", bearer(tok))
                self.assertJsonError(r, 401, phrase)
                self.assertBearerChallenge(r, 401, "invalid_token")
                self.assertNotIn(tok, r.headers.get("www-authenticate", ""))
        self.assertEqual(self.app.requests, [])

    def test_jwt_valid_token_maps_claims_and_strips_the_token(self):
        r = self.gw.get("/jwt/a", bearer(token(roles=["user", "ops"])))
        self.assertFromUpstream(r, "app", "/jwt/a")
        seen = self.app.last()["headers"]
        self.assertEqual(seen.get("x-user-id"), "alice")
        self.assertEqual(seen.get("x-user-roles"), "user,ops")
        self.assertEqual(seen.get("x-subject"), "alice")
        self.assertNotIn("authorization", seen)

    def test_jwt_client_sent_identity_headers_are_stripped(self):
        r = self.gw.get("/jwt/a", [("Authorization", "Bearer " + token()),
                                   ("X-User-Id", "mallory"), ("X-User-Roles", "admin"),
                                   ("X-Consumer-ID", "dave")])
        self.assertEqual(r.status, 200, r)
        seen = self.app.last()
        self.assertEqual([v for k, v in seen["header_list"] if k == "x-user-id"], ["alice"])
        self.assertNotIn("x-user-roles", seen["headers"])
        self.assertNotIn("x-consumer-id", seen["headers"])

    def test_jwt_subject_resolves_to_a_consumer(self):
        r = self.gw.get("/jwt/a", bearer(token(sub="dave")))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.upstream_saw("x-consumer-id"), "dave")
        self.assertEqual(self.upstream_saw("x-user-id"), "dave")

    def test_jwt_token_from_the_query_is_removed_from_the_target(self):
        r = self.gw.get(f"/jwt/q?x=1&access_token={token()}")
        self.assertFromUpstream(r, "app", "/jwt/q?x=1")
        self.assertEqual(self.upstream_saw("x-user-id"), "alice")

    def test_two_policies_strip_their_query_parameters_from_one_target(self):
        # Each builds on the target as the one before left it: neither
        # parameter reaches the upstream, every other byte does.
        r = self.gw.get(f"/both/q?a=1&apikey=alice-key&b=%2F&access_token={token()}&c")
        self.assertFromUpstream(r, "app", "/both/q?a=1&b=%2F&c")
        r = self.gw.get(f"/both/q?access_token={token()}&apikey=alice-key")
        self.assertFromUpstream(r, "app", "/both/q")

    def test_query_key_stripping_keeps_the_strip_path_rewrite(self):
        r = self.gw.get("/strip-keys/q?a=1&apikey=alice-key")
        self.assertFromUpstream(r, "app", "/q?a=1")
        self.assertEqual(self.upstream_saw("x-consumer-id"), "alice")

    def test_jwt_two_tokens_are_refused(self):
        tok = token()
        for what, path, headers in (
                ("two headers", "/jwt/a", [("Authorization", "Bearer " + tok),
                                           ("Authorization", "Bearer " + tok)]),
                ("header and query", f"/jwt/a?access_token={tok}", bearer(tok))):
            with self.subTest(what):
                r = self.gw.get(path, headers)
                self.assertJsonError(r, 401, "more than one")
                self.assertBearerChallenge(r, 401, "invalid_request")
        self.assertEqual(self.app.requests, [])

    def test_jwt_required_role(self):
        r = self.gw.get("/jwt-role/a", bearer(token(roles=["user"])))
        self.assertJsonError(r, 403, "the token lacks a required role")
        self.assertBearerChallenge(r, 403, "insufficient_scope")
        self.assertEqual(self.app.requests, [])
        r = self.gw.get("/jwt-role/a", bearer(token(roles=["user", "admin"])))
        self.assertFromUpstream(r, "app", "/jwt-role/a")

    def test_jwt_required_scope(self):
        r = self.gw.get("/jwt-scope/a", bearer(token(scope="orders:write")))
        self.assertJsonError(r, 403, "the token lacks a required scope")
        challenge = self.assertBearerChallenge(r, 403, "insufficient_scope")
        self.assertIn('scope="orders:read"', challenge)
        self.assertEqual(self.app.requests, [])
        r = self.gw.get("/jwt-scope/a", bearer(token(scope="profile orders:read")))
        self.assertFromUpstream(r, "app", "/jwt-scope/a")

    # rate-limit

    def test_rate_limit_refuses_after_the_limit(self):
        for remaining in (2, 1, 0):
            r = self.gw.get("/limited/a")
            self.assertFromUpstream(r, "app")
            self.assertEqual(r.headers.get("x-ratelimit-limit"), "3")
            self.assertEqual(r.headers.get("x-ratelimit-remaining"), str(remaining))
        r = self.gw.get("/limited/a")
        self.assertJsonError(r, 429, "rate limit exceeded")
        self.assertGreaterEqual(int(r.headers["retry-after"]), 1)
        self.assertEqual(r.headers.get("x-ratelimit-limit"), "3")
        self.assertEqual(r.headers.get("x-ratelimit-remaining"), "0")
        self.assertGreaterEqual(int(r.headers["x-ratelimit-reset"]), 1)
        self.assertIn('"minute";q=3;w=60', r.headers.get("ratelimit-policy", ""))
        self.assertRegex(r.headers.get("ratelimit", ""), r'"minute";r=0;t=\d+')
        self.assertEqual(len(self.app.requests), 3)
        scope = f'routes[{route_index("limited")}].plugins[0]'
        self.assertRegex(self.gw.metrics(),
                         rf'portico_rate_limit_rejections_total{{scope="{re.escape(scope)}"}} 1\b')

    def test_rate_limit_takes_the_consumers_plan(self):
        carol = {"X-API-Key": "carol-key"}
        for _ in range(2):
            r = self.gw.get("/planned/a", carol)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.headers.get("x-ratelimit-limit"), "2")
        r = self.gw.get("/planned/a", carol)
        self.assertJsonError(r, 429, "rate limit exceeded")
        self.assertIn("retry-after", r.headers)
        self.assertEqual(len(self.app.requests), 2)
        # A consumer without a plan gets the route's limits; carol's refusal is hers alone.
        for _ in range(3):
            r = self.gw.get("/planned/a", {"X-API-Key": "bob-key"})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.headers.get("x-ratelimit-limit"), "5")
        r = self.gw.get("/planned/a", {"X-API-Key": "alice-key"})
        self.assertEqual(r.headers.get("x-ratelimit-limit"), "1000")

    # request-transformer

    def test_request_transformer_templates(self):
        r = self.gw.get("/items/77", {"X-API-Key": "alice-key", "X-Debug": "1",
                                      "X-Consumer": "forged"})
        self.assertFromUpstream(r, "app", "/items/77")
        seen = self.app.last()["headers"]
        self.assertNotIn("x-debug", seen)
        self.assertEqual(seen.get("x-item"), "77")
        # add leaves a field the client sent alone (docs: list it under remove to force it).
        self.assertEqual(seen.get("x-consumer"), "forged")
        self.gw.get("/items/78", {"X-API-Key": "bob-key"})
        self.assertEqual(self.upstream_saw("x-consumer"), "bob")
        self.assertEqual(self.upstream_saw("x-item"), "78")

    # response-transformer

    def test_response_transformer_edits_body_and_headers(self):
        r = self.gw.get("/resp/a")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(self.rich.requests), 1)
        doc = json.loads(r.body)
        self.assertNotIn("internal_metadata", doc)
        self.assertEqual(doc["name"], "widget")
        self.assertEqual(doc["tags"], ["a"])
        self.assertIn(b"12345678901234567890", r.body)
        self.assertEqual(int(r.headers["content-length"]), len(r.body))
        self.assertNotIn("x-internal-trace-id", r.headers)
        self.assertEqual(r.headers.get("x-public"), "kept")

    def test_errors_carry_the_request_id_the_client_sent(self):
        r = self.gw.get("/deny/x", {"X-Request-ID": "rid-from-client"})
        doc = self.assertJsonError(r, 403)
        self.assertEqual(doc["request_id"], "rid-from-client")


class Fallback(GatewayTestCase):
    def test_static_fallback_once_the_breaker_opens(self):
        body = '{"items":[],"degraded":true}'
        down = service("down", refused_port(),
                       breaker={"consecutive_failures": 2, "failure_ratio": 0,
                                "open_duration": "30s"},
                       outlier={"consecutive_failures": 0},
                       retries={"max_retries": 0})
        routes = [{"name": "down", "paths": ["/down/**"], "service": "down",
                   "plugins": [{"name": "fallback", "config": {"static_response": {
                       "status": 200, "content_type": "application/json", "body": body}}}]}]
        gw = Gateway(config([down], routes, workers=1, plugins=[{"name": "request-id"}]))
        try:
            before, fallbacks = [], []
            for _ in range(12):
                r = gw.get("/down/x")
                if r.headers.get("x-portico-fallback") == "static":
                    fallbacks.append(r)
                    if len(fallbacks) == 3:
                        break
                else:
                    self.assertFalse(fallbacks, "an error after the fallback started")
                    before.append(r)
            self.assertEqual(len(fallbacks), 3, [r.status for r in before])
            self.assertGreaterEqual(len(before), 1)
            for r in before:
                self.assertIn(r.status, (502, 503), r)
            for r in fallbacks:
                self.assertEqual(r.status, 200)
                self.assertEqual(r.body.decode(), body)
                self.assertTrue(r.headers.get("content-type", "").startswith("application/json"))
            self.assertRegex(gw.metrics(),
                             r'portico_upstream_breaker_state\{service="down",endpoint="[^"]+"\} 1')
            print(f"\n  fallback: {[r.status for r in before]} then static",
                  file=sys.stderr)
        finally:
            gw.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
