"""End-to-end tests of portico-gateway: configuration validation, through
`--check` and through start, one case per class of problem."""
import json
import subprocess
import unittest

from harness import GATEWAY, GatewayTestCase, check, run_config


def base():
    return {"services": [{"name": "s", "urls": ["http://127.0.0.1:9"]}],
            "routes": [{"name": "r", "paths": ["/r"], "service": "s"}]}


def edited(edit):
    doc = base()
    edit(doc)
    return json.dumps(doc, indent=1)


def with_plugin(entry):
    return edited(lambda d: d.update(plugins=[entry]))


def duplicate_names(d):
    d["services"].append({"name": "s", "urls": ["http://127.0.0.1:10"]})
    d["routes"].append({"name": "r", "paths": ["/other"], "service": "s"})


def several(d):
    d["listeners"] = [{"port": "80"}]
    d["admin"] = {"prot": 8001}
    d["routes"].append({"name": "bad", "paths": ["/a/{id"], "service": "nope"})
    d["services"][0]["retries"] = {"max_retries": 11}


# (name, document, [(path, phrase)]): each expected problem is a line
# starting with its JSON path and holding the phrase.
CASES = [
    ("malformed JSON", '{\n  "routes": [\n    {"name": 1,}\n  ]\n}',
     [("(document)", "invalid JSON: syntax error at line 3")]),
    ("wrong type", edited(lambda d: d.update(listeners=[{"port": "80"}])),
     [("listeners[0].port", "expected an integer, found a string")]),
    ("unknown field", edited(lambda d: d.update(admin={"prot": 8001})),
     [("admin.prot", "unknown field")]),
    ("missing required", edited(lambda d: d["routes"][0].pop("paths")),
     [("routes[0].paths", "is required")]),
    ("out of range", edited(lambda d: d["services"][0].update(retries={"max_retries": 11})),
     [("services[0].retries.max_retries", "expected an integer from 0 to 10, found 11")]),
    ("bad route pattern", edited(lambda d: d["routes"][0].update(paths=["/a/{id"])),
     [("routes[0].paths[0]", "unclosed '{'")]),
    ("unknown service", edited(lambda d: d["routes"][0].update(service="nope")),
     [("routes[0].service", "no service named 'nope'")]),
    ("duplicate names", edited(duplicate_names),
     [("services[1].name", "service 's' is already defined at services[0].name"),
      ("routes[1].name", "route 'r' is already defined at routes[0].name")]),
    ("bad CIDR in trusted_proxies",
     edited(lambda d: d.update(server={"trusted_proxies": ["300.1.1.1/8"]})),
     [("server.trusted_proxies[0]", "not an IPv4 or IPv6 address")]),
    ("host bits in trusted_proxies",
     edited(lambda d: d.update(server={"trusted_proxies": ["127.0.0.1", "10.0.0.1/8"]})),
     [("server.trusted_proxies[1]", "bits are set after the /8 prefix")]),
    ("bad CIDR in ip-restriction",
     with_plugin({"name": "ip-restriction", "config": {"allow": ["10.0.0.0/40"]}}),
     [("plugins[0].config.allow[0]", "the prefix length must be a number from 0 to 32")]),
    ("unknown plugin name", with_plugin({"name": "rate-limitt"}),
     [("plugins[0].name", "unknown plugin 'rate-limitt'")]),
    ("bad plugin field",
     with_plugin({"name": "rate-limit", "config": {"limits": {"second": 0}}}),
     [("plugins[0].config.limits.second", "expected an integer from 1 to 1000000000, found 0")]),
    ("too deep", "[" * 100 + "]" * 100,
     [("(document)", "JSON nested deeper than 64 levels")]),
    ("several problems", edited(several),
     [("listeners[0].port", "expected an integer"),
      ("admin.prot", "unknown field"),
      ("services[0].retries.max_retries", "from 0 to 10"),
      ("routes[1].paths[0]", "unclosed '{'"),
      ("routes[1].service", "no service named 'nope'")]),
]


class Validation(GatewayTestCase):
    def assertProblems(self, lines, expected, document_prefix=True):
        """Start reports a problem of the whole document without the
        "(document): " that --check prints."""
        for path, phrase in expected:
            prefix = path + ": " if document_prefix or path != "(document)" else ""
            self.assertTrue(any(l.startswith(prefix) and phrase in l for l in lines),
                            f"no '{prefix}...{phrase}...' in {lines}")

    def test_check_reports_each_class(self):
        for name, document, expected in CASES:
            with self.subTest(name):
                code, lines, out = check(document)
                self.assertEqual(code, 1, lines)
                self.assertProblems(lines, expected)
                if name == "several problems":
                    self.assertEqual(len(lines), len(expected), lines)
                self.assertNotIn("valid", out)

    def test_start_refuses_each_class(self):
        for name, document, expected in CASES:
            with self.subTest(name):
                code, err = run_config(document)
                self.assertEqual(code, 1, err)
                head, _, rest = err.partition("\n")
                self.assertTrue(head.startswith("portico-gateway: ") and head.endswith(":"), err)
                self.assertProblems(rest.splitlines(), expected, document_prefix=False)

    def test_check_accepts_a_valid_document(self):
        doc = base()
        doc["$schema"] = "config.schema.json"
        doc["plugins"] = [{"name": "request-id"},
                          {"name": "rate-limit", "config": {"limits": {"minute": 10}}}]
        code, lines, out = check(json.dumps(doc))
        self.assertEqual((code, lines), (0, []))
        self.assertTrue(out.strip().endswith(": valid"), out)
        self.assertEqual(check("{}")[0], 0)

    def test_check_of_a_missing_file(self):
        p = subprocess.run([GATEWAY, "--check", "/nonexistent/e2e.json"], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot be read", p.stderr)

    # Every problem at once: a plugin's own with the document's.
    def test_plugin_problems_are_reported_with_structural_ones(self):
        def both(d):
            d["admin"] = {"prot": 8001}
            d["plugins"] = [{"name": "rate-limitt"}]
        code, lines, _ = check(edited(both))
        self.assertEqual(code, 1)
        self.assertProblems(lines, [("admin.prot", "unknown field"),
                                    ("plugins[0].name", "unknown plugin")])


if __name__ == "__main__":
    unittest.main(verbosity=2)
