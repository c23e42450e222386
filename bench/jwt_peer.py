#!/usr/bin/env python3
"""The peer of bench/jwt_bench: verifies the bench's tokens with PyJWT.

Usage: jwt_peer.py FILE

FILE is JSON written by jwt_bench: the JWKS, the issuer, audience, leeway and
required claims Portico's verifier was given, the number of timed runs and
their length, and one token per algorithm. Each token is verified as an
application would: jwt.decode with the key built from its JWK, signature,
issuer, audience, time claims and required claims all checked. Prints
"info TEXT" (versions), then "ALG usec_per_op" per token, the median of the
runs. A token PyJWT refuses is an error: the two verifiers must agree.
"""
import json
import statistics
import sys
import time

import jwt
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, RSAAlgorithm

KEY_LOADERS = {"oct": HMACAlgorithm.from_jwk, "RSA": RSAAlgorithm.from_jwk, "EC": ECAlgorithm.from_jwk}


def versions():
    import cryptography

    try:
        from cryptography.hazmat.backends.openssl.backend import backend

        openssl = backend.openssl_version_text()
    except Exception:  # the backend moved in later releases; the figure is informative only
        openssl = "OpenSSL (version unknown)"
    return f"PyJWT {jwt.__version__}, cryptography {cryptography.__version__}, {openssl}"


def seconds_for(decode, n):
    start = time.perf_counter()
    for _ in range(n):
        decode()
    return time.perf_counter() - start


def usec_per_op(decode, runs, seconds_per_run):
    # Size a run from a trial long enough for the clock to resolve.
    n = 1
    while (trial := seconds_for(decode, n)) < 0.002:
        n *= 2
    n = max(1, round(n * seconds_per_run / trial))
    return statistics.median(seconds_for(decode, n) / n for _ in range(runs)) * 1e6


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: jwt_peer.py FILE")
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    keys = {k["kid"]: KEY_LOADERS[k["kty"]](k) for k in spec["jwks"]["keys"]}
    print("info", versions(), flush=True)
    for entry in spec["tokens"]:
        alg, token = entry["alg"], entry["token"]
        key = keys[jwt.get_unverified_header(token)["kid"]]

        def decode():
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=spec["audience"],
                issuer=spec["issuer"],
                leeway=spec["leeway"],
                options={"require": spec["require"]},
            )

        decode()  # raises if PyJWT refuses the token
        print(alg, f"{usec_per_op(decode, spec['runs'], spec['seconds_per_run']):.3f}", flush=True)


if __name__ == "__main__":
    main()
