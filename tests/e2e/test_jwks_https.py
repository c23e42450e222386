"""End-to-end: jwt-auth fetching its JWKS from an https:// URL, through the
binary. The test makes its own CA and server certificate (python3-cryptography)
and serves the JWKS with the standard library's ssl module on 127.0.0.1."""
import datetime
import http.server
import ipaddress
import json
import os
import ssl
import tempfile
import threading
import time
import unittest

from harness import (Gateway, GatewayTestCase, Upstream, config, hs256_jwks, hs256_token,
                     service)

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
except ImportError:  # pragma: no cover - install-deps.sh installs it
    x509 = None

SECRET = b"e2e-https-secret-0123456789abcdef"
URL_SECRET = "e2e-url-secret-4711"
ISSUER = "https://idp.test"


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(cn, issuer=None, ca=False):
    """(key, certificate): self-signed when `issuer` is None, else signed
    by issuer = (key, certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    signer_key, signer_name = (key, _name(cn)) if issuer is None else (issuer[0],
                                                                       issuer[1].subject)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(signer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("127.0.0.1"), x509.DNSName("localhost"),
             x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return key, b.sign(signer_key, hashes.SHA256())


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


class HttpsJwksServer:
    """Serves `jwks` over TLS with the given (key, certificate)."""

    def __init__(self, jwks, key, cert, folder):
        body = json.dumps(jwks).encode()
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        cert_path = os.path.join(folder, "server.pem")
        with open(cert_path, "wb") as f:
            f.write(pem(cert))
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_path)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self):
        return f"https://127.0.0.1:{self.port}/jwks"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@unittest.skipIf(x509 is None, "python3-cryptography is not installed")
class JwksOverHttps(GatewayTestCase):
    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.TemporaryDirectory()
        ca = make_cert("e2e CA", ca=True)
        other_ca = make_cert("e2e other CA", ca=True)
        server = make_cert("127.0.0.1", issuer=ca)
        cls.ca_file = os.path.join(cls.folder.name, "ca.pem")
        cls.other_ca_file = os.path.join(cls.folder.name, "other-ca.pem")
        with open(cls.ca_file, "wb") as f:
            f.write(pem(ca[1]))
        with open(cls.other_ca_file, "wb") as f:
            f.write(pem(other_ca[1]))
        cls.jwks = HttpsJwksServer(hs256_jwks(SECRET), server[0], server[1], cls.folder.name)
        cls.app = Upstream(name="app")

        def jwt_route(name, ca_file):
            # The query stands for a key some identity providers take in the URL.
            return {"name": name, "paths": [f"/{name}/**"], "service": "app",
                    "plugins": [{"name": "jwt-auth", "config": {
                        "jwks_url": cls.jwks.url() + "?tenant_key=" + URL_SECRET,
                        "jwks_ca_file": ca_file,
                        "issuers": [ISSUER], "jwks_timeout": "2s",
                        "jwks_refetch_interval": "100ms"}}]}

        cls.gw = Gateway(config([service("app", cls.app.port)],
                                [jwt_route("trusted", cls.ca_file),
                                 jwt_route("untrusted", cls.other_ca_file)]))

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.app.close()
        cls.jwks.close()
        cls.folder.cleanup()

    def token(self):
        return hs256_token(SECRET, {"iss": ISSUER, "sub": "e2e-user",
                                    "exp": int(time.time()) + 600})

    def test_a_token_verifies_with_keys_fetched_over_https(self):
        r = self.gw.get("/trusted/x", {"Authorization": "Bearer " + self.token()})
        self.assertFromUpstream(r, "app")
        self.assertEqual(self.app.last()["headers"].get("x-user-id"), "e2e-user")
        self.assertGreaterEqual(self.jwks.hits, 1)

    def test_the_admin_api_never_shows_the_urls_query(self):
        self.gw.get("/trusted/x", {"Authorization": "Bearer " + self.token()})
        for path in ("/config", "/status", "/metrics"):
            r = self.gw.admin("GET", path)
            self.assertEqual(r.status, 200, path)
            self.assertNotIn(URL_SECRET.encode(), r.body, path)
        doc = self.gw.admin("GET", "/config").json()
        url = doc["routes"][0]["plugins"][0]["config"]["jwks_url"]
        self.assertEqual(url, self.jwks.url() + "?<redacted>")

    def test_a_server_the_ca_file_does_not_vouch_for_gives_no_keys(self):
        started = time.monotonic()
        r = self.gw.get("/untrusted/x", {"Authorization": "Bearer " + self.token()})
        self.assertJsonError(r, 401, "the token's signing key is not known")
        self.assertLess(time.monotonic() - started, 4)

    def test_check_reports_an_unreadable_ca_file_at_its_path(self):
        from harness import check
        doc = config([service("app", self.app.port)], [{
            "name": "r", "paths": ["/r/**"], "service": "app",
            "plugins": [{"name": "jwt-auth", "config": {
                "jwks_url": "https://127.0.0.1:1/jwks",
                "jwks_ca_file": "/nonexistent/ca.pem"}}]}])
        code, lines, _ = check(json.dumps(doc))
        self.assertEqual(code, 1)
        self.assertIn('routes[0].plugins[0].config.jwks_ca_file: "/nonexistent/ca.pem" '
                      "cannot be read", lines)


if __name__ == "__main__":
    unittest.main()
