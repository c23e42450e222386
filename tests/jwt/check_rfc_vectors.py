#!/usr/bin/env python3
"""Check rfc_vectors.json: the JWS examples of RFC 7515 Appendix A and RFC 7520 section 4.

Every signature is verified independently (hmac for HS, the `cryptography`
package for RS/PS/ES), and each decoded payload is compared with the bytes the
RFCs give. Prints "ok  <name>" or "FAIL  <name>: <reason>" per case and exits
non-zero if any case fails.

Usage (needs python3-cryptography; on Debian that is the system interpreter):
    /usr/bin/python3 tests/jwt/check_rfc_vectors.py [tests/jwt/rfc_vectors.json]
"""
import base64
import hashlib
import hmac
import json
import pathlib
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

# Payload octets as the RFCs state them.
JWT_CLAIMS = b'{"iss":"joe",\r\n "exp":1300819380,\r\n "http://example.com/is_root":true}'
FRODO = ("It\u2019s a dangerous business, Frodo, going out your door. You step onto the road, "
         "and if you don't keep your feet, there\u2019s no knowing where you might be swept off "
         "to.").encode()
EXPECTED_PAYLOAD = {"RFC 7515 A.1": JWT_CLAIMS, "RFC 7515 A.2": JWT_CLAIMS,
                    "RFC 7515 A.3": JWT_CLAIMS, "RFC 7515 A.4": b"Payload"}

HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
CURVES = {"P-256": (ec.SECP256R1, 32), "P-384": (ec.SECP384R1, 48), "P-521": (ec.SECP521R1, 66)}


def b64url(s):
    assert not set(s) - set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), s
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64int(s):
    return int.from_bytes(b64url(s), "big")


def verify(alg, jwk, signing_input, sig):
    family, bits = alg[:2], alg[2:]
    if family == "HS":
        mac = hmac.new(b64url(jwk["k"]), signing_input, getattr(hashlib, "sha" + bits)).digest()
        if not hmac.compare_digest(mac, sig):
            raise InvalidSignature
        return
    if family in ("RS", "PS"):
        key = rsa.RSAPublicNumbers(b64int(jwk["e"]), b64int(jwk["n"])).public_key()
        h = HASHES[bits]()
        pad = (padding.PKCS1v15() if family == "RS"
               else padding.PSS(mgf=padding.MGF1(HASHES[bits]()), salt_length=h.digest_size))
        key.verify(sig, signing_input, pad, h)
        return
    if family == "ES":
        curve, size = CURVES[jwk["crv"]]
        if len(sig) != 2 * size:
            raise InvalidSignature
        key = ec.EllipticCurvePublicNumbers(b64int(jwk["x"]), b64int(jwk["y"]), curve()).public_key()
        der = encode_dss_signature(int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big"))
        key.verify(der, signing_input, ec.ECDSA(HASHES[bits]()))
        return
    raise ValueError("unknown alg " + alg)


def check(case):
    header_b64, body_b64, sig_b64 = case["token"].split(".")
    header = json.loads(b64url(header_b64))
    assert header["alg"] == case["alg"], "header alg differs"
    if case["detached"]:
        assert body_b64 == "", "detached token must have an empty payload segment"
    else:
        assert body_b64 == case["payload_b64url"], "payload_b64url differs from the token"
    payload = b64url(case["payload_b64url"])
    assert payload == EXPECTED_PAYLOAD.get(case["ref"], FRODO), "payload bytes differ from the RFC"
    if case["payload_is_json"]:
        json.loads(payload)
    signing_input = (header_b64 + "." + case["payload_b64url"]).encode()
    verify(case["alg"], case["jwk"], signing_input, b64url(sig_b64))


def main():
    path = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).with_name("rfc_vectors.json"))
    failed = 0
    for case in json.loads(path.read_text(encoding="utf-8"))["cases"]:
        try:
            check(case)
            print("ok  " + case["name"])
        except (AssertionError, InvalidSignature, ValueError, KeyError) as e:
            failed += 1
            print("FAIL  %s: %s" % (case["name"], type(e).__name__ + (": %s" % e if str(e) else "")))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
