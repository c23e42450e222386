#!/usr/bin/env python3
"""Generate the JWT verifier test vectors (tests/jwt/vectors.json).

Usage:
    python3 tests/jwt/gen_vectors.py > tests/jwt/vectors.json
    python3 tests/jwt/gen_vectors.py tests/jwt/vectors.json

Requires PyJWT 2.6 and cryptography (Debian: python3-jwt, python3-cryptography).
Keys are freshly generated on every run and ECDSA/PSS signatures are randomised,
so regenerating changes key material and tokens; the case list, names and
expected results are stable. After generating, the script cross-checks every
case against PyJWT (clock pinned to NOW) and aborts if a check fails.

Verifier rules the expected results assume
------------------------------------------
Checks run in this order; the first failure is the result.

 1. too_large     len(token) > max_token_bytes (before any parsing).
 2. malformed     not exactly 3 '.'-separated segments (a 5-segment JWE is
                  malformed, not a JWS); a segment that is not strict base64url
                  (alphabet A-Z a-z 0-9 '-' '_' only: no '=' padding, no '+' or
                  '/', no whitespace anywhere, including a trailing newline);
                  header not a JSON object; header without a string "alg";
                  header with "crit" (this verifier understands no critical
                  extensions, so any "crit" is rejected as malformed).
 3. unsupported_alg  "alg" is not one of the 12 algorithms the verifier
                  implements (HS/RS/PS/ES 256/384/512). "none" (any case) is
                  never implemented, so it is unsupported_alg and is reported
                  before the allow-list is consulted: "none" cannot be enabled
                  by configuration. Algorithm names are case-sensitive.
 4. alg_not_allowed  alg is implemented but not in config.algorithms.
 5. unknown_kid   no usable key. A JWK is a candidate only if all hold:
                    - kty/curve fits the alg family: HS* -> "oct",
                      RS*/PS* -> "RSA", ES256 -> EC P-256, ES384 -> EC P-384,
                      ES512 -> EC P-521;
                    - "use" is absent or "sig"; "key_ops", if present,
                      contains "verify";
                    - "alg", if present, equals the token's alg;
                    - if the token has a "kid", the JWK's kid equals it.
                  If there is no candidate the result is unknown_kid, even when
                  a JWK with that kid exists but fails the other conditions
                  (wrong family, use=enc, different alg). This is how the
                  RS256->HS256 confusion attack is stopped: an HS256 token
                  naming the RSA key's kid has no "oct" candidate, so it is
                  unknown_kid and the RSA key is never used as an HMAC secret.
                  Without a kid every candidate is tried and the token is
                  accepted if any of them verifies it. With a kid, only keys
                  with that kid are tried (no fallback to other keys).
 6. bad_signature the signature does not verify with any candidate. This
                  includes signatures of the wrong length: ECDSA signatures
                  must be the raw R||S form of RFC 7518 section 3.4 (64/96/132
                  bytes); a DER-encoded ECDSA signature is bad_signature, as is
                  an empty signature segment.
 7. malformed     payload not a JSON object; "exp"/"nbf" present but not a
                  JSON number; "iss"/"sub" present but not a string; "aud"
                  present but neither a string nor an array of strings.
 8. missing_claim a claim in required_claims is absent; also "iss" absent
                  while config.issuers is non-empty, and "aud" absent while
                  config.audiences is non-empty.
 9. expired       with leeway L: expired when now >= exp + L (RFC 7519 4.1.4:
                  not accepted "on or after" exp). exp == now - L is expired,
                  exp == now - L + 1 is accepted.
10. not_yet_valid with leeway L: not yet valid when now < nbf - L. nbf == now + L
                  is accepted, nbf == now + L + 1 is not_yet_valid.
11. bad_issuer    config.issuers non-empty and iss not in it (exact match).
12. bad_audience  config.audiences non-empty and no aud value (string, or any
                  array element) is in it.
"iat" and "typ" are not checked. An empty issuers/audiences list disables the
respective check.
"""

import base64
import copy
import hashlib
import hmac
import json
import os
import sys

import jwt
import jwt.api_jwt
from jwt.algorithms import get_default_algorithms
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

NOW = 1735689600  # 2025-01-01T00:00:00Z, the verifier's clock for every case
ISSUER = "https://idp.example.com"
AUDIENCE = "portico"
LEEWAY = 30

ALL_ALGS = ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
            "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]

DEFAULT_CONFIG = {
    "algorithms": ALL_ALGS,
    "issuers": [ISSUER],
    "audiences": [AUDIENCE],
    "leeway_s": LEEWAY,
    "required_claims": ["sub"],
    "max_token_bytes": 8192,
}

ALGOS = get_default_algorithms()


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_dec(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jdump(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# --------------------------------------------------------------------- keys

EC_CURVES = {"P-256": (ec.SECP256R1(), 32), "P-384": (ec.SECP384R1(), 48),
             "P-521": (ec.SECP521R1(), 66)}


def rsa_jwk(pub, kid):
    n = pub.public_numbers()
    return {"kty": "RSA", "kid": kid, "use": "sig",
            "n": b64u(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")),
            "e": b64u(n.e.to_bytes((n.e.bit_length() + 7) // 8, "big"))}


def ec_jwk(pub, crv, kid):
    size = EC_CURVES[crv][1]
    n = pub.public_numbers()
    # RFC 7518 6.2.1.2: coordinates are full length, not minimal.
    return {"kty": "EC", "kid": kid, "use": "sig", "crv": crv,
            "x": b64u(n.x.to_bytes(size, "big")),
            "y": b64u(n.y.to_bytes(size, "big"))}


def oct_jwk(secret, kid):
    return {"kty": "oct", "kid": kid, "use": "sig", "k": b64u(secret)}


PRIV = {}   # key name -> private key object / HMAC secret
JWKS_KEYS = {}  # key name -> public JWK


def make_keys():
    for name in ("rsa-1", "rsa-2"):
        k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        PRIV[name] = k
        JWKS_KEYS[name] = rsa_jwk(k.public_key(), name)
    for name, crv in (("ec-p256", "P-256"), ("ec-p384", "P-384"),
                      ("ec-p521", "P-521")):
        k = ec.generate_private_key(EC_CURVES[crv][0])
        PRIV[name] = k
        JWKS_KEYS[name] = ec_jwk(k.public_key(), crv, name)
    for name, size in (("hs-32", 32), ("hs-48", 48), ("hs-64", 64)):
        s = os.urandom(size)
        PRIV[name] = s
        JWKS_KEYS[name] = oct_jwk(s, name)


ALG_KEY = {"HS256": "hs-32", "HS384": "hs-48", "HS512": "hs-64",
           "RS256": "rsa-1", "RS384": "rsa-1", "RS512": "rsa-1",
           "PS256": "rsa-1", "PS384": "rsa-1", "PS512": "rsa-1",
           "ES256": "ec-p256", "ES384": "ec-p384", "ES512": "ec-p521"}


def jwk_with(name, **overrides):
    j = copy.deepcopy(JWKS_KEYS[name])
    j.update(overrides)
    return j


def make_jwks():
    return {
        "default": {"keys": [jwk_with(n) for n in (
            "rsa-1", "ec-p256", "ec-p384", "ec-p521", "hs-32", "hs-48",
            "hs-64")]},
        "single-rsa": {"keys": [jwk_with("rsa-1")]},
        "multi-rsa": {"keys": [jwk_with("rsa-1"), jwk_with("rsa-2")]},
        "rsa-use-enc": {"keys": [jwk_with("rsa-1", use="enc")]},
        "rsa-alg-rs256": {"keys": [jwk_with("rsa-1", alg="RS256")]},
        "rsa-alg-ps256": {"keys": [jwk_with("rsa-1", alg="PS256")]},
    }


# ------------------------------------------------------------------- tokens

def sign(alg, key_name, signing_input: bytes) -> bytes:
    algo = ALGOS[alg]
    key = PRIV[key_name]
    return algo.sign(signing_input, key)


def raw_token(header_bytes: bytes, payload_bytes: bytes, alg=None,
              key_name=None, sig=None) -> str:
    si = (b64u(header_bytes) + "." + b64u(payload_bytes)).encode()
    if sig is None:
        sig = sign(alg, key_name, si) if alg else b""
    return si.decode() + "." + b64u(sig)


def header(alg, kid=True, key_name=None, **extra):
    h = {"alg": alg, "typ": "JWT"}
    if kid:
        h["kid"] = kid if isinstance(kid, str) else (key_name or ALG_KEY[alg])
    h.update(extra)
    return h


def claims(**overrides):
    c = {"iss": ISSUER, "sub": "user-123", "aud": AUDIENCE,
         "iat": NOW - 60, "nbf": NOW - 60, "exp": NOW + 3600,
         "jti": "jti-0001"}
    for k, v in overrides.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def token(alg, payload=None, key_name=None, kid=True, hdr=None):
    key_name = key_name or ALG_KEY[alg]
    h = hdr if hdr is not None else header(alg, kid, key_name)
    p = payload if payload is not None else claims()
    return raw_token(jdump(h), jdump(p), alg, key_name)


def flip_sig_bit(tok):
    h, p, s = tok.split(".")
    sig = bytearray(b64u_dec(s))
    sig[len(sig) // 2] ^= 0x01
    return h + "." + p + "." + b64u(bytes(sig))


# -------------------------------------------------------------------- cases

CASES = []
CHECK = {}  # case name -> (how PyJWT should treat it, key name, alg)


def add(name, tok, expect, keys="default", config=None, payload=None,
        check=None):
    """check: ("accept", key, alg) | ("reject", key, alg, exc) | None.

    "reject" means PyJWT itself must refuse the token (exc: expected exception
    class or None for any). None means the case is about a verifier policy
    PyJWT does not model (size limit, key selection, strict base64url)."""
    assert name not in CHECK, name
    cfg = copy.deepcopy(DEFAULT_CONFIG)
    if config:
        cfg.update(config)
    case = {"name": name, "token": tok, "keys": keys, "config": cfg,
            "expect": expect}
    if expect == "ok":
        case["claims"] = payload
    CASES.append(case)
    CHECK[name] = check


def ok(name, alg, payload=None, key_name=None, kid=True, keys="default",
       config=None, hdr=None):
    key_name = key_name or ALG_KEY[alg]
    payload = payload if payload is not None else claims()
    tok = token(alg, payload, key_name, kid, hdr)
    add(name, tok, "ok", keys, config, payload, ("accept", key_name, alg))
    return tok


def bad(name, tok, expect, key_name, alg, exc=None, keys="default",
        config=None):
    add(name, tok, expect, keys, config, None,
        ("reject", key_name, alg, exc))


def policy(name, tok, expect, keys="default", config=None):
    add(name, tok, expect, keys, config, None, None)


def build_cases():
    E = jwt.exceptions

    # Valid token for every algorithm.
    valid = {}
    for alg in ALL_ALGS:
        valid[alg] = ok(f"valid_{alg}", alg)

    # Tampering.
    for alg in ("HS256", "RS256", "PS256", "ES256"):
        k = ALG_KEY[alg]
        h, p, s = valid[alg].split(".")
        th = b64u(jdump(header(alg, typ="JOSE")))
        bad(f"tampered_header_{alg}", th + "." + p + "." + s,
            "bad_signature", k, alg, E.InvalidSignatureError)
        tp = b64u(jdump(claims(sub="admin")))
        bad(f"tampered_payload_{alg}", h + "." + tp + "." + s,
            "bad_signature", k, alg, E.InvalidSignatureError)
    for alg in ("HS256", "HS512", "RS256", "RS512", "PS384", "ES256",
                "ES384", "ES512"):
        bad(f"tampered_signature_{alg}", flip_sig_bit(valid[alg]),
            "bad_signature", ALG_KEY[alg], alg, E.InvalidSignatureError)
    h, p, _ = valid["RS256"].split(".")
    bad("signature_stripped_RS256", h + "." + p + ".", "bad_signature",
        "rsa-1", "RS256", E.InvalidSignatureError)

    # ECDSA signature in DER form instead of raw R||S.
    for alg, hcls in (("ES256", hashes.SHA256()), ("ES384", hashes.SHA384())):
        k = ALG_KEY[alg]
        si = (b64u(jdump(header(alg))) + "." + b64u(jdump(claims()))).encode()
        der = PRIV[k].sign(si, ec.ECDSA(hcls))
        bad(f"ecdsa_der_signature_{alg}", si.decode() + "." + b64u(der),
            "bad_signature", k, alg, E.InvalidSignatureError)

    # Time claims (exp / nbf) around the leeway boundaries.
    for alg in ("HS256", "ES256"):
        k = ALG_KEY[alg]
        bad(f"expired_{alg}", token(alg, claims(exp=NOW - LEEWAY - 1)),
            "expired", k, alg, E.ExpiredSignatureError)
        bad(f"expired_at_leeway_boundary_{alg}",
            token(alg, claims(exp=NOW - LEEWAY)),
            "expired", k, alg, E.ExpiredSignatureError)
        ok(f"exp_one_second_inside_leeway_{alg}", alg,
           claims(exp=NOW - LEEWAY + 1))
        bad(f"nbf_beyond_leeway_{alg}",
            token(alg, claims(nbf=NOW + LEEWAY + 1)),
            "not_yet_valid", k, alg, E.ImmatureSignatureError)
        ok(f"nbf_at_leeway_boundary_{alg}", alg, claims(nbf=NOW + LEEWAY))
    bad("expired_zero_leeway_RS256", token("RS256", claims(exp=NOW)),
        "expired", "rsa-1", "RS256", E.ExpiredSignatureError,
        config={"leeway_s": 0})
    ok("exp_zero_leeway_one_second_left_RS256", "RS256",
       claims(exp=NOW + 1), config={"leeway_s": 0})
    ok("no_exp_no_nbf_HS256", "HS256", claims(exp=None, nbf=None))
    bad("exp_required_but_missing_HS256",
        token("HS256", claims(exp=None)), "missing_claim", "hs-32", "HS256",
        E.MissingRequiredClaimError, config={"required_claims": ["sub", "exp"]})
    # PyJWT 2.6 coerces numeric strings with int(), so only the non-numeric
    # variant can be cross-checked; the verifier must reject all of them.
    policy("exp_is_numeric_string_HS256",
           token("HS256", claims(exp=str(NOW + 3600))), "malformed")
    policy("exp_is_numeric_string_RS256",
           token("RS256", claims(exp=str(NOW + 3600))), "malformed")
    bad("exp_is_non_numeric_string_HS256",
        token("HS256", claims(exp="2025-01-01T01:00:00Z")),
        "malformed", "hs-32", "HS256", E.DecodeError)
    policy("nbf_is_numeric_string_ES256",
           token("ES256", claims(nbf=str(NOW - 60))), "malformed")

    # Issuer.
    bad("wrong_issuer_RS256",
        token("RS256", claims(iss="https://evil.example.com")),
        "bad_issuer", "rsa-1", "RS256", E.InvalidIssuerError)
    bad("issuer_trailing_slash_ES256",
        token("ES256", claims(iss=ISSUER + "/")),
        "bad_issuer", "ec-p256", "ES256", E.InvalidIssuerError)
    bad("missing_iss_HS256", token("HS256", claims(iss=None)),
        "missing_claim", "hs-32", "HS256", E.MissingRequiredClaimError)

    # Audience.
    ok("aud_string_match_RS256", "RS256", claims(aud=AUDIENCE))
    ok("aud_array_intersects_ES256", "ES256",
       claims(aud=["other-service", AUDIENCE]))
    bad("aud_array_no_intersection_ES256",
        token("ES256", claims(aud=["other-service", "billing"])),
        "bad_audience", "ec-p256", "ES256", E.InvalidAudienceError)
    bad("aud_string_mismatch_HS256", token("HS256", claims(aud="billing")),
        "bad_audience", "hs-32", "HS256", E.InvalidAudienceError)
    bad("missing_aud_HS256", token("HS256", claims(aud=None)),
        "missing_claim", "hs-32", "HS256", E.MissingRequiredClaimError)

    # Required claims.
    bad("missing_sub_RS256", token("RS256", claims(sub=None)),
        "missing_claim", "rsa-1", "RS256", E.MissingRequiredClaimError)
    bad("missing_sub_ES384", token("ES384", claims(sub=None)),
        "missing_claim", "ec-p384", "ES384", E.MissingRequiredClaimError)

    # Algorithm policy.
    bad("alg_not_in_allow_list_ES256", valid["ES256"], "alg_not_allowed",
        "ec-p256", "RS256", E.InvalidAlgorithmError,
        config={"algorithms": ["RS256"]})
    ok("alg_in_restricted_allow_list_RS256", "RS256",
       config={"algorithms": ["RS256"]})
    p = b64u(jdump(claims()))
    for name, algname in (("alg_none", "none"), ("alg_none_uppercase", "NONE"),
                          ("alg_none_mixed_case", "None")):
        h = b64u(jdump({"alg": algname, "typ": "JWT"}))
        bad(name, h + "." + p + ".", "unsupported_alg", "hs-32", "HS256",
            E.InvalidAlgorithmError)
    h = b64u(jdump({"alg": "none", "typ": "JWT", "kid": "hs-32"}))
    bad("alg_none_with_kid_and_hmac_signature",
        raw_token(b64u_dec(h), b64u_dec(p), sig=hmac.new(
            PRIV["hs-32"], (h + "." + p).encode(), hashlib.sha256).digest()),
        "unsupported_alg", "hs-32", "HS256", E.InvalidAlgorithmError)
    hdr = {"alg": "HS1024", "typ": "JWT", "kid": "hs-64"}
    si = b64u(jdump(hdr)) + "." + p
    bad("alg_unknown_HS1024",
        si + "." + b64u(hmac.new(PRIV["hs-64"], si.encode(),
                                 hashlib.sha512).digest()),
        "unsupported_alg", "hs-64", "HS512", E.InvalidAlgorithmError)
    hdr = {"alg": "hs256", "typ": "JWT", "kid": "hs-32"}
    si = b64u(jdump(hdr)) + "." + p
    bad("alg_lowercase_hs256",
        si + "." + b64u(hmac.new(PRIV["hs-32"], si.encode(),
                                 hashlib.sha256).digest()),
        "unsupported_alg", "hs-32", "HS256", E.InvalidAlgorithmError)

    # RS256 -> HS256 key confusion: HMAC keyed with the RSA public key PEM.
    pem = PRIV["rsa-1"].public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    for name, hdr, keys in (
            ("rs256_to_hs256_confusion_with_kid",
             {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, "default"),
            ("rs256_to_hs256_confusion_no_kid",
             {"alg": "HS256", "typ": "JWT"}, "single-rsa")):
        si = b64u(jdump(hdr)) + "." + p
        tok = si + "." + b64u(hmac.new(pem, si.encode(),
                                       hashlib.sha256).digest())
        add(name, tok, "unknown_kid", keys, None, None,
            ("reject_pem", "rsa-1", "HS256"))
    add("rs256_to_hs256_confusion_alg_restricted", tok, "alg_not_allowed",
        "single-rsa", {"algorithms": ["RS256"]}, None,
        ("reject_pem", "rsa-1", "HS256"))

    # Key selection.
    ok("no_kid_single_rsa_key_RS256", "RS256", kid=False, keys="single-rsa")
    ok("no_kid_default_set_ES384", "ES384", kid=False)
    ok("no_kid_default_set_HS512", "HS512", kid=False)
    ok("no_kid_multi_rsa_second_key_RS256", "RS256", key_name="rsa-2",
       kid=False, keys="multi-rsa")
    ok("kid_selects_second_key_PS256", "PS256", key_name="rsa-2",
       keys="multi-rsa")
    bad("kid_names_other_key_RS256",
        token("RS256", key_name="rsa-2", hdr=header("RS256", "rsa-1")),
        "bad_signature", "rsa-1", "RS256", E.InvalidSignatureError,
        keys="multi-rsa")
    policy("kid_not_found_RS256",
           token("RS256", hdr=header("RS256", "no-such-key")), "unknown_kid")
    policy("kid_not_found_HS256",
           token("HS256", hdr=header("HS256", "no-such-key")), "unknown_kid")
    policy("kid_of_wrong_family_ES256",
           token("ES256", hdr=header("ES256", "rsa-1")), "unknown_kid")
    policy("kid_of_wrong_curve_ES256",
           token("ES256", hdr=header("ES256", "ec-p384")), "unknown_kid")
    policy("no_kid_no_key_of_family_ES256", token("ES256", kid=False),
           "unknown_kid", keys="single-rsa")
    policy("jwk_use_enc_RS256", token("RS256"), "unknown_kid",
           keys="rsa-use-enc")
    ok("jwk_alg_matches_RS256", "RS256", keys="rsa-alg-rs256")
    policy("jwk_alg_differs_RS256", token("RS256"), "unknown_kid",
           keys="rsa-alg-ps256")
    ok("jwk_alg_matches_PS256", "PS256", keys="rsa-alg-ps256")

    # Size limit.
    big = claims(pad="x" * 6500)
    policy("oversized_token_HS256", token("HS256", big), "too_large")
    tok = valid["HS256"]
    ok("token_exactly_at_size_limit_HS256", "HS256",
       config={"max_token_bytes": len(tok)})
    CASES[-1]["token"] = tok  # same token the size was measured on
    policy("token_one_byte_over_size_limit_HS256", tok, "too_large",
           config={"max_token_bytes": len(tok) - 1})
    ok("large_token_under_default_limit_HS256", "HS256",
       claims(pad="x" * 5000))

    # Base64url strictness.
    tok = valid["HS256"]
    policy("b64_padding_in_signature", tok + "=", "malformed")
    h, p_, s = tok.split(".")
    hp = next(b64u(jdump(header("HS256", pad="x" * n))) for n in range(4)
              if len(b64u(jdump(header("HS256", pad="x" * n)))) % 4)
    hp_tok = raw_token(b64u_dec(hp), b64u_dec(p_), "HS256", "hs-32")
    hh, pp, ss = hp_tok.split(".")
    policy("b64_padding_in_header",
           hh + "=" * (-len(hh) % 4) + "." + pp + "." + ss, "malformed")
    plus = slash = None
    for i in range(1000):
        t = token("HS256", claims(jti=f"jti-{i:04d}"))
        seg = t.split(".")[2]
        if plus is None and "-" in seg:
            plus = t.replace("-", "+")
        if slash is None and "_" in seg:
            slash = t.replace("_", "/")
        if plus and slash:
            break
    policy("b64_standard_alphabet_plus", plus, "malformed")
    policy("b64_standard_alphabet_slash", slash, "malformed")
    policy("whitespace_inside_payload",
           h + "." + p_[:10] + " " + p_[10:] + "." + s, "malformed")
    policy("whitespace_newline_inside_signature",
           h + "." + p_ + "." + s[:20] + "\n" + s[20:], "malformed")
    policy("whitespace_trailing_newline", tok + "\n", "malformed")
    policy("whitespace_leading_space", " " + tok, "malformed")
    policy("invalid_b64_character", h + "." + p_ + "." + s[:-1] + "*",
           "malformed")

    # Segment count.
    bad("two_segments", h + "." + p_, "malformed", "hs-32", "HS256",
        E.DecodeError)
    bad("four_segments", tok + "." + s, "malformed", "hs-32", "HS256",
        E.DecodeError)
    jwe_hdr = b64u(jdump({"alg": "RSA-OAEP", "enc": "A256GCM",
                          "kid": "rsa-1"}))
    jwe = ".".join([jwe_hdr, b64u(os.urandom(256)), b64u(os.urandom(12)),
                    b64u(os.urandom(64)), b64u(os.urandom(16))])
    bad("five_segments_jwe", jwe, "malformed", "rsa-1", "RS256")
    bad("one_segment", h, "malformed", "hs-32", "HS256", E.DecodeError)
    policy("empty_token", "", "malformed")

    # Header problems.
    bad("crit_unknown_extension_ES256",
        token("ES256", hdr=header("ES256", crit=["urn:example:ext"],
                                  **{"urn:example:ext": True})),
        "malformed", "ec-p256", "ES256", E.InvalidTokenError)
    pl = jdump(claims())
    bad("header_not_json",
        raw_token(b"this is not json", pl, "HS256", "hs-32"),
        "malformed", "hs-32", "HS256", E.DecodeError)
    bad("header_json_array",
        raw_token(b'["HS256"]', pl, "HS256", "hs-32"),
        "malformed", "hs-32", "HS256", E.DecodeError)
    policy("header_missing_alg",
           raw_token(jdump({"typ": "JWT", "kid": "hs-32"}), pl, "HS256",
                     "hs-32"), "malformed")
    policy("header_alg_not_string",
           raw_token(jdump({"alg": 256, "typ": "JWT", "kid": "hs-32"}), pl,
                     "HS256", "hs-32"), "malformed")

    # Payload problems (validly signed).
    hd = jdump(header("HS256"))
    bad("payload_not_json", raw_token(hd, b"not json", "HS256", "hs-32"),
        "malformed", "hs-32", "HS256", E.DecodeError)
    bad("payload_json_array",
        raw_token(hd, b'["sub","user-123"]', "HS256", "hs-32"),
        "malformed", "hs-32", "HS256", E.DecodeError)
    bad("payload_json_string",
        raw_token(hd, b'"user-123"', "HS256", "hs-32"),
        "malformed", "hs-32", "HS256", E.DecodeError)
    hd = jdump(header("RS256"))
    bad("payload_not_json_RS256",
        raw_token(hd, b"{sub: user-123}", "RS256", "rsa-1"),
        "malformed", "rsa-1", "RS256", E.DecodeError)


# ------------------------------------------------------------ self-check

class _FixedClock:
    """Stands in for datetime inside jwt.api_jwt so PyJWT sees NOW."""
    from datetime import datetime as _dt, timezone as _tz

    @classmethod
    def now(cls, tz=None):
        return cls._dt.fromtimestamp(NOW, tz=cls._tz.utc)


def pyjwt_decode(tok, key_name, alg, cfg):
    jwk = JWKS_KEYS[key_name]
    cls = {"oct": "HS256", "RSA": "RS256", "EC": "ES256"}[jwk["kty"]]
    key = ALGOS[cls].from_jwk(json.dumps(jwk))
    assert len(cfg["issuers"]) == 1
    return jwt.decode(tok, key, algorithms=[a for a in [alg]
                                            if a in cfg["algorithms"]],
                      audience=cfg["audiences"], issuer=cfg["issuers"][0],
                      leeway=cfg["leeway_s"],
                      options={"require": cfg["required_claims"]})


def self_check(doc):
    jwt.api_jwt.datetime = _FixedClock
    problems = []
    stats = {"accepted": 0, "rejected": 0, "policy-only": 0}
    for case in doc["cases"]:
        chk = CHECK[case["name"]]
        tok, cfg = case["token"], case["config"]
        if chk is None:
            stats["policy-only"] += 1
            continue
        kind, key_name, alg = chk[0], chk[1], chk[2]
        if kind == "accept":
            try:
                got = pyjwt_decode(tok, key_name, alg, cfg)
                if got != case["claims"]:
                    problems.append(f"{case['name']}: claims differ")
                stats["accepted"] += 1
            except Exception as e:  # noqa: BLE001
                problems.append(f"{case['name']}: PyJWT rejected: {e!r}")
        elif kind == "reject_pem":
            # PyJWT must refuse to use the RSA public key as an HMAC secret.
            pub = PRIV[key_name].public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo)
            try:
                jwt.decode(tok, pub, algorithms=["HS256"],
                           audience=cfg["audiences"])
                problems.append(f"{case['name']}: PyJWT accepted")
            except jwt.exceptions.InvalidKeyError:
                stats["rejected"] += 1
            except Exception as e:  # noqa: BLE001
                problems.append(f"{case['name']}: unexpected {e!r}")
        else:
            exc = chk[3]
            try:
                pyjwt_decode(tok, key_name, alg, cfg)
                problems.append(f"{case['name']}: PyJWT accepted")
            except Exception as e:  # noqa: BLE001
                if exc is not None and not isinstance(e, exc):
                    problems.append(f"{case['name']}: expected "
                                    f"{exc.__name__}, got {e!r}")
                else:
                    stats["rejected"] += 1
    # Size-limit sanity and unique names.
    for case in doc["cases"]:
        if case["expect"] == "too_large":
            assert len(case["token"]) > case["config"]["max_token_bytes"]
        elif case["expect"] == "ok":
            assert len(case["token"]) <= case["config"]["max_token_bytes"]
    names = [c["name"] for c in doc["cases"]]
    assert len(names) == len(set(names))
    return problems, stats


def make_pems():
    """The public RSA and EC keys as SubjectPublicKeyInfo PEM, for the
    verifier's PEM loader."""
    out = {}
    for name in ("rsa-1", "ec-p256", "ec-p384", "ec-p521"):
        out[name] = PRIV[name].public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return out


def main():
    make_keys()
    build_cases()
    doc = {"version": 1, "now": NOW, "keys": JWKS_KEYS, "jwks": make_jwks(),
           "pem": make_pems(), "cases": CASES}
    text = json.dumps(doc, indent=2) + "\n"
    problems, stats = self_check(json.loads(text))
    counts = {}
    for c in CASES:
        counts[c["expect"]] = counts.get(c["expect"], 0) + 1
    print(f"{len(CASES)} cases {counts}; PyJWT cross-check {stats}",
          file=sys.stderr)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
