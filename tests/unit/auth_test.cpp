// The identity and admission policies without sockets: the consumer
// directory, the options' validation and the plugins' JSON config.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "../../lib/common/cidr.hpp"
#include "../../lib/filters/jwks_fetcher.hpp"
#include "../../lib/filters/registry.hpp"
#include "../support/alloc_counter.hpp"
#include "portico/filters/consumers.hpp"
#include "portico/filters/ip_restriction.hpp"
#include "portico/filters/jwt_auth.hpp"
#include "portico/filters/key_auth.hpp"
#include "portico/filters/request_size_limiting.hpp"

using namespace portico;
using namespace portico::filters;

namespace {

std::shared_ptr<const Consumers> directory() {
  std::vector<PlanConfig> plans = {{"gold", {{std::chrono::seconds(1), 100}}, 0},
                                   {"free", {{std::chrono::minutes(1), 10}}, 1000}};
  std::vector<ConsumerConfig> consumers = {
      {"alice", "gold", {"key-of-alice", "second-key-of-alice"}, {{"https://idp", "u-1"}}},
      {"bob", "free", {"key-of-bob"}, {{"", "u-2"}}},
      {"carol", "", {}, {{"https://idp", "u-2"}}},
      {"guest", "", {}, {}},
  };
  auto c = Consumers::create(std::move(consumers), std::move(plans));
  REQUIRE_MESSAGE(c, (c ? "" : c.error().message));
  return *c;
}

Result<std::shared_ptr<const Consumers>> create(std::vector<ConsumerConfig> consumers,
                                                std::vector<PlanConfig> plans = {}) {
  return Consumers::create(std::move(consumers), std::move(plans));
}

// "key-7" (built by appending: GCC 12 warns wrongly about "literal" + string).
std::string numbered(std::string_view prefix, int i) {
  std::string s(prefix);
  s += std::to_string(i);
  return s;
}

std::string error_of(const Result<std::shared_ptr<const Consumers>>& r) {
  return r ? std::string() : r.error().message;
}

// Builds a plugin from its JSON config text, as the registry would.
template <class Build>
std::shared_ptr<proxy::Filter> build(Build build_fn, std::string_view json,
                                     detail::ConfigProblems& problems, detail::PluginEnv env = {}) {
  auto doc = detail::parse_json_document(json);
  REQUIRE(doc);
  detail::JsonObject config(*doc, "plugins[0].config", problems);
  if (env.consumers == nullptr) env.consumers = directory();
  return build_fn(config, env);
}

}  // namespace

TEST_CASE("consumers: keys, JWT identities, ids and plans resolve") {
  auto c = directory();
  CHECK(c->size() == 4);
  REQUIRE(c->find_by_key("key-of-alice") != nullptr);
  CHECK(c->find_by_key("key-of-alice")->id == "alice");
  CHECK(c->find_by_key("second-key-of-alice")->id == "alice");
  CHECK(c->find_by_key("key-of-alice")->plan->name == "gold");
  CHECK(c->find_by_key("key-of-bob")->id == "bob");
  CHECK(c->find_by_key("key-of-bob")->plan->daily_quota == 1000);
  CHECK(c->find_by_key("key-of-carol") == nullptr);
  CHECK(c->find_by_key("") == nullptr);
  CHECK(c->find_by_key("KEY-OF-ALICE") == nullptr);
  CHECK(c->find_by_key("key-of-alice ") == nullptr);

  // An exact issuer first, then an identity configured for any issuer.
  CHECK(c->find_by_jwt("https://idp", "u-1")->id == "alice");
  CHECK(c->find_by_jwt("https://other", "u-1") == nullptr);
  CHECK(c->find_by_jwt("https://idp", "u-2")->id == "carol");
  CHECK(c->find_by_jwt("https://other", "u-2")->id == "bob");
  CHECK(c->find_by_jwt("", "u-2")->id == "bob");
  CHECK(c->find_by_jwt("https://idp", "") == nullptr);

  CHECK(c->find("guest")->plan == nullptr);
  CHECK(c->find("nobody") == nullptr);
  CHECK(c->plan("free")->limits.front().limit == 10);
  CHECK(c->plan("platinum") == nullptr);
}

TEST_CASE("consumers: a key given as its sha256 digest matches the key") {
  // A well-formed digest of some other key matches nothing.
  auto wrong = create({{"bob", "", {"sha256:" + std::string(64, '0')}, {}}});
  REQUIRE(wrong);
  CHECK((*wrong)->find_by_key("key-of-bob") == nullptr);
  // sha256("abc") from FIPS 180-2, in upper-case hex.
  auto fips = create({{"abc-owner",
                       "",
                       {"sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"},
                       {}}});
  REQUIRE_MESSAGE(fips, error_of(fips));
  REQUIRE((*fips)->find_by_key("abc") != nullptr);
  CHECK((*fips)->find_by_key("abc")->id == "abc-owner");
  // The same key in both forms for two consumers is a conflict.
  auto both = create(
      {{"a", "", {"abc"}, {}},
       {"b", "", {"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}, {}}});
  CHECK(error_of(both) == "consumer \"b\": api_keys[0] is already a key of consumer \"a\"");
}

TEST_CASE("consumers: every problem is reported, naming the consumer or plan, never the key") {
  auto r = create(
      {
          {"alice", "gold", {"k1"}, {}},
          {"alice", "", {}, {}},
          {"bob", "platinum", {"k1", ""}, {}},
          {"", "", {}, {}},
          {"dave", "", {"sha256:xyz"}, {{"", ""}, {"https://idp", "s"}}},
          {"erin", "", {}, {{"https://idp", "s"}}},
      },
      {{"gold", {{Duration::zero(), 1}}, 0}, {"gold", {}, 0}, {"", {}, 0}});
  REQUIRE_FALSE(r);
  const std::string& m = r.error().message;
  CHECK(m.find("plan \"gold\": limits[0]: the period must be positive") != std::string::npos);
  CHECK(m.find("plan \"gold\": defined twice") != std::string::npos);
  CHECK(m.find("plans[2]: the plan has no name") != std::string::npos);
  CHECK(m.find("consumer \"alice\": defined twice") != std::string::npos);
  CHECK(m.find("consumer \"bob\": plan \"platinum\" is not defined") != std::string::npos);
  CHECK(m.find("consumer \"bob\": api_keys[0] is already a key of consumer \"alice\"") !=
        std::string::npos);
  CHECK(m.find("consumer \"bob\": api_keys[1] is empty") != std::string::npos);
  CHECK(m.find("consumers[3]: the consumer has no id") != std::string::npos);
  CHECK(m.find("consumer \"dave\": api_keys[0]: \"sha256:\" must be followed by 64 "
               "hexadecimal digits") != std::string::npos);
  CHECK(m.find("consumer \"dave\": jwt[0]: the subject is empty") != std::string::npos);
  CHECK(m.find("consumer \"erin\": the JWT subject \"s\" of https://idp is already consumer "
               "\"dave\"'s") != std::string::npos);
  CHECK(m.find("k1") == std::string::npos);
  // Empty is fine.
  auto empty = create({});
  REQUIRE(empty);
  CHECK((*empty)->size() == 0);
  CHECK((*empty)->find_by_key("anything") == nullptr);
}

TEST_CASE("consumers: lookups do not allocate, a large directory stays correct") {
  // Longer than the small-string buffer: a copied id would allocate.
  constexpr std::string_view kLongId = "consumer-with-a-long-identifier-";
  std::vector<ConsumerConfig> many;
  for (int i = 0; i < 2000; ++i)
    many.push_back(
        {numbered(kLongId, i), "", {numbered("key-", i)}, {{"iss", numbered("sub-", i)}}});
  auto r = create(std::move(many));
  REQUIRE(r);
  const Consumers& c = **r;
  for (int i = 0; i < 2000; i += 37) {
    CHECK(c.find_by_key(numbered("key-", i))->id == numbered(kLongId, i));
    CHECK(c.find_by_jwt("iss", numbered("sub-", i))->id == numbered(kLongId, i));
  }
  const std::string key = "key-1999", miss = "key-2000", sub = "sub-5", id = numbered(kLongId, 77);
  int found = 0;
  const auto before = test::allocation_count();
  for (int i = 0; i < 100; ++i) {
    found += c.find_by_key(key) != nullptr;
    found += c.find_by_key(miss) == nullptr;
    found += c.find_by_jwt("iss", sub) != nullptr;
    found += c.find(id) != nullptr;
  }
  const auto allocated = test::allocation_count() - before;
  CHECK(found == 400);
  CHECK(allocated == 0);
}

TEST_CASE("key-auth: options are checked, naming the field") {
  auto consumers = directory();
  auto error = [&](KeyAuthOptions o) {
    if (o.consumers == nullptr) o.consumers = consumers;
    auto f = make_key_auth(std::move(o));
    return f ? std::string() : f.error().message;
  };
  CHECK(error({}) == "");
  KeyAuthOptions none;
  none.header_names.clear();
  CHECK(error(none) == "header_names: at least one header or query parameter name is needed");
  KeyAuthOptions bad_header;
  bad_header.header_names = {"X-API-Key", "x key"};
  CHECK(error(bad_header) == "header_names[1]: \"x key\" is not a valid header name");
  KeyAuthOptions bad_query;
  bad_query.query_names = {"a=b"};
  CHECK(error(bad_query) == "query_names[0]: \"a=b\" is not a plain query parameter name");
  KeyAuthOptions anonymous;
  anonymous.anonymous = "nobody";
  CHECK(error(anonymous) == "anonymous: no consumer \"nobody\"");
  anonymous.anonymous = "guest";
  CHECK(error(anonymous) == "");
  KeyAuthOptions realm;
  realm.realm = "a\"b";
  CHECK(error(realm) == "realm: quotes, backslashes and control characters are not allowed");
  KeyAuthOptions identity;
  identity.consumer_plan_header = "";
  CHECK(error(identity) == "consumer_plan_header: \"\" is not a valid header name");
  KeyAuthOptions no_consumers;
  no_consumers.consumers = nullptr;
  CHECK(make_key_auth(no_consumers).error().message == "consumers: required");
}

TEST_CASE("key-auth config: fields are read, problems carry their JSON path") {
  detail::ConfigProblems ok;
  auto f = build(detail::build_key_auth,
                 R"({"header_names": ["X-API-Key", "apikey"], "query_names": ["apikey"],
                     "anonymous": "guest", "hide_credentials": false, "realm": "api"})",
                 ok);
  CHECK(ok.to_string() == "");
  REQUIRE(f != nullptr);
  CHECK(f->name() == "key-auth");

  detail::ConfigProblems bad;
  CHECK(build(detail::build_key_auth,
              R"({"header_names": "X-API-Key", "hide_credentials": 1, "color": "red"})",
              bad) == nullptr);
  CHECK(bad.to_string() ==
        "plugins[0].config.header_names: expected an array of strings, found a string\n"
        "plugins[0].config.hide_credentials: expected true or false, found a number\n"
        "plugins[0].config.color: unknown field\n");

  detail::ConfigProblems unknown;
  CHECK(build(detail::build_key_auth, R"({"anonymous": "ghost"})", unknown) == nullptr);
  CHECK(unknown.to_string() == "plugins[0].config.anonymous: no consumer \"ghost\"\n");

  detail::ConfigProblems bad_name;
  CHECK(build(detail::build_key_auth, R"({"header_names": ["ok", "not ok"]})", bad_name) ==
        nullptr);
  CHECK(bad_name.to_string() ==
        "plugins[0].config.header_names[1]: \"not ok\" is not a valid header name\n");
}

namespace {

std::string network_error(std::string_view text) {
  auto n = detail::parse_ip_network(text);
  return n ? std::string() : n.error().message;
}

bool in(std::string_view network, std::string_view address) {
  auto n = detail::parse_ip_network(network);
  REQUIRE_MESSAGE(n, (n ? "" : n.error().message));
  auto a = detail::parse_ip_address(address);
  REQUIRE(a);
  return detail::network_contains(*n, *a);
}

}  // namespace

TEST_CASE("cidr: networks and single addresses of both families match") {
  CHECK(in("10.0.0.0/8", "10.255.1.2"));
  CHECK_FALSE(in("10.0.0.0/8", "11.0.0.0"));
  CHECK(in("192.0.2.7", "192.0.2.7"));
  CHECK_FALSE(in("192.0.2.7", "192.0.2.8"));
  CHECK(in("192.0.2.0/25", "192.0.2.127"));
  CHECK_FALSE(in("192.0.2.0/25", "192.0.2.128"));
  CHECK(in("172.16.0.0/12", "172.31.255.255"));
  CHECK_FALSE(in("172.16.0.0/12", "172.32.0.0"));
  CHECK(in("0.0.0.0/0", "203.0.113.9"));
  CHECK(in("2001:db8::/32", "2001:db8:ffff::1"));
  CHECK_FALSE(in("2001:db8::/32", "2001:db9::1"));
  CHECK(in("::1", "::1"));
  CHECK(in("::/0", "2001:db8::1"));
  // Families never match each other, except through IPv4-mapped addresses.
  CHECK_FALSE(in("::/0", "10.0.0.1"));
  CHECK_FALSE(in("0.0.0.0/0", "::1"));
  CHECK(in("10.0.0.0/8", "::ffff:10.1.2.3"));
  CHECK(in("::ffff:10.0.0.0/104", "10.1.2.3"));
  CHECK(in("::ffff:10.0.0.0/104", "::ffff:10.9.9.9"));
  CHECK_FALSE(in("::ffff:10.0.0.0/104", "11.0.0.1"));
}

TEST_CASE("cidr: malformed networks are refused with a precise reason") {
  CHECK(network_error("10.0.0.1/8") ==
        "\"10.0.0.1/8\": bits are set after the /8 prefix (the network is 10.0.0.0/8)");
  CHECK(network_error("2001:db8::1/32") ==
        "\"2001:db8::1/32\": bits are set after the /32 prefix (the network is 2001:db8::/32)");
  CHECK(network_error("10.0.0.0/33") ==
        "\"10.0.0.0/33\": the prefix length must be a number from 0 to 32");
  CHECK(network_error("::/129") == "\"::/129\": the prefix length must be a number from 0 to 128");
  CHECK(network_error("10.0.0.0/08") ==
        "\"10.0.0.0/08\": the prefix length must be a number from 0 to 32");
  CHECK(network_error("10.0.0.0/") ==
        "\"10.0.0.0/\": the prefix length must be a number from 0 to 32");
  CHECK(network_error("10.0.0.0/+8") ==
        "\"10.0.0.0/+8\": the prefix length must be a number from 0 to 32");
  CHECK(network_error("10.0.0.0/8 ") ==
        "\"10.0.0.0/8 \": the prefix length must be a number from 0 to 32");
  for (const char* bad : {"10.0.0/8", "010.0.0.1", "10.0.0.256", " 10.0.0.1", "localhost", "/8",
                          "1.2.3.4.5", ":::1"}) {
    CAPTURE(bad);
    CHECK(network_error(bad).find("not an IPv4 or IPv6 address") != std::string::npos);
  }
  CHECK(network_error("10.0.0.0/8/8") ==
        "\"10.0.0.0/8/8\": the prefix length must be a number from 0 to 32");
  CHECK(network_error("") == "\"\": an empty network");
  CHECK_FALSE(detail::parse_ip_address("10.0.0.1:80"));
  CHECK_FALSE(detail::parse_ip_address(""));
  CHECK_FALSE(detail::parse_ip_address(std::string(100, '1')));
}

TEST_CASE("cidr: zone ids are refused in networks, and ignored on forwarded addresses") {
  const std::string why =
      "cannot be part of a network: write the address without it (an X-Forwarded-For address "
      "with a zone matches the network of its address)";
  CHECK(network_error("fe80::1%eth0") == "\"fe80::1%eth0\": a zone id (\"%eth0\") " + why);
  CHECK(network_error("fe80::%eth0/10") == "\"fe80::%eth0/10\": a zone id (\"%eth0\") " + why);
  CHECK(network_error("fe80::/10%1") == "\"fe80::/10%1\": a zone id (\"%1\") " + why);
  CHECK(network_error("10.0.0.1%eth0") == "\"10.0.0.1%eth0\": a zone id (\"%eth0\") " + why);
  // Plain addresses still have none.
  CHECK_FALSE(detail::parse_ip_address("fe80::1%eth0"));

  auto zoned = [](std::string_view text) { return detail::parse_ip_address_ignoring_zone(text); };
  const auto plain = detail::parse_ip_address("fe80::1");
  REQUIRE(plain);
  for (const char* ok :
       {"fe80::1%eth0", "fe80::1%1", "fe80::1%en0.100", "fe80::1%br-lan_2", "fe80::1"}) {
    CAPTURE(ok);
    const auto a = zoned(ok);
    REQUIRE(a);
    CHECK(a->bytes == plain->bytes);
    CHECK_FALSE(a->v4);
  }
  const auto net = detail::parse_ip_network("fe80::/10");
  REQUIRE(net);
  CHECK(detail::network_contains(*net, *zoned("fe80::1%eth0")));
  CHECK_FALSE(detail::network_contains(*net, *zoned("2001:db8::1%eth0")));
  // An IPv4-mapped address keeps matching its IPv4 network.
  const auto mapped = zoned("::ffff:10.1.2.3%eth0");
  REQUIRE(mapped);
  CHECK(mapped->v4);
  CHECK(detail::network_contains(*detail::parse_ip_network("10.0.0.0/8"), *mapped));
  for (const std::string& bad :
       {std::string("10.0.0.1%eth0"), std::string("fe80::1%"), std::string("%eth0"),
        std::string("fe80::1%eth 0"), std::string("fe80::1%eth0%1"), std::string("fe80::1%eth0/64"),
        std::string("fe80::1%") + std::string(65, 'a'), std::string("not-an-address%eth0")}) {
    CAPTURE(bad);
    CHECK_FALSE(zoned(bad));
  }
  CHECK(zoned("fe80::1%" + std::string(64, 'a')));
}

TEST_CASE("ip-restriction: options and JSON config name the entry at fault") {
  filters::IpRestrictionOptions o;
  CHECK(filters::make_ip_restriction(o).error().message ==
        "allow: at least one network is needed in allow or deny");
  o.allow = {"10.0.0.0/8"};
  o.deny = {"10.1.0.0/16", "10.2.0.1/16"};
  CHECK(filters::make_ip_restriction(o).error().message ==
        "deny[1]: \"10.2.0.1/16\": bits are set after the /16 prefix (the network is "
        "10.2.0.0/16)");
  o.deny.pop_back();
  CHECK(filters::make_ip_restriction(o));

  detail::ConfigProblems ok;
  CHECK(build(detail::build_ip_restriction,
              R"({"allow": ["10.0.0.0/8", "::1"], "deny": ["10.9.0.0/16"], "message": "no"})",
              ok) != nullptr);
  CHECK(ok.to_string() == "");
  detail::ConfigProblems bad;
  CHECK(build(detail::build_ip_restriction, R"({"allow": ["10.0.0.0/8", "10.0.0.0/40"]})", bad) ==
        nullptr);
  CHECK(bad.to_string() ==
        "plugins[0].config.allow[1]: \"10.0.0.0/40\": the prefix length must be a number from 0 "
        "to 32\n");
  detail::ConfigProblems empty;
  CHECK(build(detail::build_ip_restriction, R"({"deny": []})", empty) == nullptr);
  CHECK(empty.to_string() ==
        "plugins[0].config.allow: at least one network is needed in allow or deny\n");
  detail::ConfigProblems types;
  CHECK(build(detail::build_ip_restriction, R"({"allow": [10], "status": 401})", types) == nullptr);
  CHECK(types.to_string() ==
        "plugins[0].config.allow[0]: expected a string, found a number\n"
        "plugins[0].config.status: unknown field\n");
}

TEST_CASE("request-size-limiting: options and JSON config") {
  CHECK(filters::make_request_size_limiting({}).error().message ==
        "max_body_bytes: must be at least 1");
  CHECK(filters::make_request_size_limiting({1, true}));
  detail::ConfigProblems ok;
  CHECK(build(detail::build_request_size_limiting,
              R"({"max_body_bytes": 1048576, "require_content_length": true})", ok) != nullptr);
  CHECK(ok.to_string() == "");
  detail::ConfigProblems missing;
  CHECK(build(detail::build_request_size_limiting, "{}", missing) == nullptr);
  CHECK(missing.to_string() == "plugins[0].config.max_body_bytes: is required (an integer)\n");
  detail::ConfigProblems bad;
  CHECK(build(detail::build_request_size_limiting, R"({"max_body_bytes": 0, "size_unit": "kb"})",
              bad) == nullptr);
  CHECK(bad.to_string() ==
        "plugins[0].config.max_body_bytes: expected an integer from 1 to 9007199254740992, found "
        "0\n"
        "plugins[0].config.size_unit: unknown field\n");
}

namespace {

std::string url_error(std::string_view url) {
  auto u = detail::parse_http_url(url);
  return u ? std::string() : u.error().message;
}

const std::string kJwks =
    R"({"keys":[{"kty":"oct","kid":"hs","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]})";

std::string jwt_error(filters::JwtAuthOptions o) {
  auto f = filters::make_jwt_auth(std::move(o));
  return f ? std::string() : f.error().message;
}

filters::JwtAuthOptions with_jwks() {
  filters::JwtAuthOptions o;
  o.jwks = kJwks;
  return o;
}

}  // namespace

TEST_CASE("jwks url: http and https, precise reasons") {
  auto u = detail::parse_http_url("http://idp.example.com:8080/realms/x/certs?v=1#frag");
  REQUIRE(u);
  CHECK(u->host == "idp.example.com");
  CHECK(u->port == 8080);
  CHECK(u->authority == "idp.example.com:8080");
  CHECK(u->target == "/realms/x/certs?v=1");
  auto v6 = detail::parse_http_url("HTTP://[::1]/jwks");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->port == 80);
  CHECK(v6->authority == "[::1]");
  auto bare = detail::parse_http_url("http://10.0.0.1?x=1");
  REQUIRE(bare);
  CHECK(bare->target == "/?x=1");
  CHECK_FALSE(u->tls);
  auto tls = detail::parse_http_url("HTTPS://idp.example.com/certs");
  REQUIRE(tls);
  CHECK(tls->tls);
  CHECK(tls->port == 443);
  CHECK(tls->host == "idp.example.com");
  CHECK(tls->authority == "idp.example.com");
  auto tls_port = detail::parse_http_url("https://127.0.0.1:8443/certs");
  REQUIRE(tls_port);
  CHECK(tls_port->port == 8443);
  CHECK(url_error("https:///jwks") == "the URL has no host");
  CHECK(url_error("ftp://idp/jwks") == "expected an http:// or https:// URL");
  CHECK(url_error("http://user:pw@idp/jwks") == "user information in the URL is not supported");
  CHECK(url_error("http:///jwks") == "the URL has no host");
  CHECK(url_error("http://idp:0/") == "the URL's port must be a number from 1 to 65535");
  CHECK(url_error("http://idp:65536/") == "the URL's port must be a number from 1 to 65535");
  CHECK(url_error("http://idp:/") == "the URL's port is empty");
  CHECK(url_error("http://[::1/") == "the URL's IPv6 address lacks its ']'");
  CHECK(url_error("http://[zz]/") == "the URL's host is not a valid IPv6 address");
  CHECK(url_error("http://id p/") == "the URL's host is not a valid host name or address");
  CHECK(url_error("http://idp/a b") ==
        "the URL's path has spaces, control or non-ASCII characters");
}

TEST_CASE("jwt-auth: options are checked, naming the field") {
  CHECK(jwt_error(with_jwks()) == "");
  CHECK(jwt_error({}) == "jwks: no key source: give jwks, pem_keys, keys_file or jwks_url");
  filters::JwtAuthOptions both = with_jwks();
  both.jwks_url = "http://idp/jwks";
  CHECK(jwt_error(both) == "jwks_url: cannot be combined with jwks, pem_keys or keys_file");
  filters::JwtAuthOptions https;
  https.jwks_url = "https://idp/jwks";
  https.validate_only = true;
  CHECK(jwt_error(https) == "");  // the system CA bundle (ca-certificates)
  https.jwks_ca_file = "/nonexistent/ca.pem";
  CHECK(jwt_error(https) == "jwks_ca_file: \"/nonexistent/ca.pem\" cannot be read");
  const auto not_pem = std::filesystem::temp_directory_path() /
                       ("portico-ca-test-" + std::to_string(::getpid()) + ".pem");
  std::ofstream(not_pem) << "not a certificate\n";
  https.jwks_ca_file = not_pem.string();
  CHECK(jwt_error(https).find("jwks_ca_file: \"" + not_pem.string() +
                              "\" holds no PEM certificate") == 0);
  std::filesystem::remove(not_pem);
  filters::JwtAuthOptions ca_for_http;
  ca_for_http.jwks_url = "http://idp/jwks";
  ca_for_http.jwks_ca_file = "/etc/ssl/certs/ca-certificates.crt";
  ca_for_http.validate_only = true;
  CHECK(jwt_error(ca_for_http) == "jwks_ca_file: only for an https:// jwks_url");
  filters::JwtAuthOptions ca_without_url = with_jwks();
  ca_without_url.jwks_ca_file = "/etc/ssl/certs/ca-certificates.crt";
  CHECK(jwt_error(ca_without_url) == "jwks_ca_file: only for an https:// jwks_url");
  filters::JwtAuthOptions no_loop;
  no_loop.jwks_url = "http://idp/jwks";
  CHECK(jwt_error(no_loop) == "control_loop: required with jwks_url");
  no_loop.validate_only = true;
  CHECK(jwt_error(no_loop) == "");
  no_loop.jwks_timeout = std::chrono::hours(1);
  CHECK(jwt_error(no_loop) == "jwks_timeout: must be from 10ms to 5m");

  filters::JwtAuthOptions bad_jwks;
  bad_jwks.jwks = "{\"keys\": [";
  CHECK(jwt_error(bad_jwks).find("jwks: JWKS is not valid JSON") == 0);
  bad_jwks.jwks = R"({"keys":[{"kty":"oct","k":"c2hvcnQ"}]})";
  CHECK(jwt_error(bad_jwks).find("jwks: the JWKS has no usable key (first skipped: ") == 0);
  filters::JwtAuthOptions bad_pem;
  bad_pem.pem_keys = {{"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "k", {}}};
  CHECK(jwt_error(bad_pem).find("pem_keys[0]: ") == 0);
  filters::JwtAuthOptions missing_file;
  missing_file.keys_file = "/nonexistent/keys.pem";
  CHECK(jwt_error(missing_file) == "keys_file: \"/nonexistent/keys.pem\" cannot be read");

  filters::JwtAuthOptions o = with_jwks();
  o.verifier.algorithms = {};
  CHECK(jwt_error(o) == "algorithms: the allow-list is empty");
  o = with_jwks();
  o.verifier.issuers = {""};
  CHECK(jwt_error(o) == "issuers: empty string");
  o = with_jwks();
  o.from_header = false;
  CHECK(jwt_error(o) ==
        "from_header: no place to read the token from (header, query_param, cookie)");
  o.cookie = "a=b";
  CHECK(jwt_error(o) == "cookie: \"a=b\" is not a valid cookie name");
  o = with_jwks();
  o.query_param = "a&b";
  CHECK(jwt_error(o) == "query_param: \"a&b\" is not a plain parameter name");
  o = with_jwks();
  o.claims_to_headers = {{"sub", "X User"}};
  CHECK(jwt_error(o) == "claims_to_headers.sub: \"X User\" is not a valid header name");
  o.claims_to_headers = {{"", "X-User"}};
  CHECK(jwt_error(o) == "claims_to_headers[0]: the claim is empty");
  o = with_jwks();
  o.required_scopes = {"read write"};
  CHECK(jwt_error(o) == "required_scopes[0]: a scope is a non-empty word without spaces or quotes");
  o = with_jwks();
  o.required_roles = {"admin", ""};
  CHECK(jwt_error(o) == "required_roles[1]: the role is empty");
  o = with_jwks();
  o.consumer_required = true;
  CHECK(jwt_error(o) == "consumer_required: no consumers are configured");
  o = with_jwks();
  o.workers = 0;
  CHECK(jwt_error(o) == "workers: must be at least 1");
  o = with_jwks();
  o.realm = "a\nb";
  CHECK(jwt_error(o) == "realm: quotes, backslashes and control characters are not allowed");
}

TEST_CASE("jwt-auth config: every problem at its JSON path") {
  detail::ConfigProblems ok;
  auto f = build(detail::build_jwt_auth,
                 R"({"jwks": {"keys":[{"kty":"oct","kid":"hs",
                               "k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]},
                     "issuers": ["https://idp"], "audiences": ["api"], "leeway": "10s",
                     "required_claims": ["sub"], "algorithms": ["HS256"],
                     "query_param": "access_token", "cookie": "session",
                     "claims_to_headers": {"sub": "X-User-Id", "realm_access.roles": "X-Roles"},
                     "required_scopes": ["read"], "required_roles": ["admin"],
                     "cache_capacity": 128, "cache_ttl": "1m", "forward_token": false})",
                 ok);
  CHECK(ok.to_string() == "");
  REQUIRE(f != nullptr);
  CHECK(f->name() == "jwt-auth");

  detail::ConfigProblems bad;
  CHECK(build(detail::build_jwt_auth,
              R"({"jwks": 42, "algorithms": ["HS256", "none"], "leeway": "forever",
                  "claims_to_headers": {"sub": 7}, "pem_keys": [{"kid": "x", "alg": "XS1"}],
                  "jwks_timeout": "1h", "colour": 1})",
              bad) == nullptr);
  CHECK(bad.to_string() ==
        "plugins[0].config.jwks: expected a JWKS object or its text, found a number\n"
        "plugins[0].config.pem_keys[0].pem: is required (a string)\n"
        "plugins[0].config.pem_keys[0].alg: \"XS1\" is not a supported algorithm\n"
        "plugins[0].config.jwks_timeout: expected a duration from 10ms to 300s\n"
        "plugins[0].config.algorithms[1]: \"none\" is not a supported algorithm\n"
        "plugins[0].config.leeway: expected a duration such as \"250ms\", \"5s\" or \"2m\", "
        "found \"forever\"\n"
        "plugins[0].config.claims_to_headers.sub: expected a header name, found a number\n"
        "plugins[0].config.colour: unknown field\n");

  // A claim name that cannot be written in a path keeps the problem at the
  // config object, with the whole message naming it.
  detail::ConfigProblems claim_url;
  CHECK(build(detail::build_jwt_auth,
              R"({"jwks_url": "http://idp/certs",
                  "claims_to_headers": {"https://idp/roles": "X Roles"}})",
              claim_url) == nullptr);
  CHECK(claim_url.to_string() ==
        "plugins[0].config: claims_to_headers.https://idp/roles: \"X Roles\" is not a valid "
        "header name\n");
  detail::ConfigProblems claim_spaced;
  CHECK(build(detail::build_jwt_auth,
              R"({"jwks_url": "http://idp/certs", "claims_to_headers": {"a b": 1}})",
              claim_spaced) == nullptr);
  CHECK(claim_spaced.to_string() ==
        "plugins[0].config.claims_to_headers: 'a b': expected a header name, found a number\n");

  detail::ConfigProblems https;
  CHECK(build(detail::build_jwt_auth, R"({"jwks_url": "https://idp/certs"})", https) != nullptr);
  CHECK(https.to_string() == "");
  detail::ConfigProblems bad_ca;
  CHECK(build(detail::build_jwt_auth,
              R"({"jwks_url": "https://idp/certs", "jwks_ca_file": "/nonexistent/ca.pem"})",
              bad_ca) == nullptr);
  CHECK(bad_ca.to_string() ==
        "plugins[0].config.jwks_ca_file: \"/nonexistent/ca.pem\" cannot be read\n");
  detail::ConfigProblems ca_type;
  CHECK(build(detail::build_jwt_auth, R"({"jwks_url": "https://idp/certs", "jwks_ca_file": 1})",
              ca_type) == nullptr);
  CHECK(ca_type.to_string().find("plugins[0].config.jwks_ca_file: ") == 0);
  detail::ConfigProblems http_ca;
  CHECK(
      build(
          detail::build_jwt_auth,
          R"({"jwks_url": "http://idp/certs", "jwks_ca_file": "/etc/ssl/certs/ca-certificates.crt"})",
          http_ca) == nullptr);
  CHECK(http_ca.to_string() == "plugins[0].config.jwks_ca_file: only for an https:// jwks_url\n");
  detail::ConfigProblems none;
  CHECK(build(detail::build_jwt_auth, R"({"issuers": ["x"]})", none) == nullptr);
  CHECK(none.to_string() ==
        "plugins[0].config.jwks: no key source: give jwks, pem_keys, keys_file or jwks_url\n");
  detail::ConfigProblems check_only;
  CHECK(build(detail::build_jwt_auth, R"({"jwks_url": "http://idp/certs"})", check_only) !=
        nullptr);
  CHECK(check_only.to_string() == "");
}
