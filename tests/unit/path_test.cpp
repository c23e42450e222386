#include <doctest/doctest.h>

#include <string>

#include "portico/path.hpp"

using portico::ErrorKind;
using portico::normalize_path;
using portico::NormalizeOptions;

namespace {

std::string norm(std::string_view in, NormalizeOptions o = {}) {
  auto r = normalize_path(in, o);
  REQUIRE_MESSAGE(r.ok(), in, " -> ", r.ok() ? "" : r.error().message);
  return *r;
}

ErrorKind norm_error(std::string_view in, NormalizeOptions o = {}) {
  auto r = normalize_path(in, o);
  REQUIRE_MESSAGE(!r.ok(), in, " was accepted as ", r.ok() ? *r : "");
  return r.error().kind;
}

}  // namespace

TEST_CASE("paths already normal are unchanged") {
  for (const char* p : {"/", "/a", "/a/b", "/a/b/", "/users/42/events", "/a%2Fb", "/~x/_y-z.json",
                        "/a:b@c!$&'()*+,;=", "/%00"}) {
    CHECK(norm(p) == p);
  }
}

TEST_CASE("dot segments are removed as in RFC 3986 section 5.2.4") {
  CHECK(norm("/a/b/c/./../../g") == "/a/g");
  CHECK(norm("/mid/content=5/../6") == "/mid/6");
  CHECK(norm("/a/./b") == "/a/b");
  CHECK(norm("/a/b/..") == "/a/");
  CHECK(norm("/a/b/.") == "/a/b/");
  CHECK(norm("/.") == "/");
  CHECK(norm("/..") == "/");
  CHECK(norm("/a/..") == "/");
  CHECK(norm("/a/../") == "/");
  CHECK(norm("/a/.../b") == "/a/.../b");  // three dots are a name
  CHECK(norm("/a/.b/..c") == "/a/.b/..c");
}

TEST_CASE("dot dot never climbs above the root") {
  CHECK(norm("/../admin") == "/admin");
  CHECK(norm("/../../../../etc/passwd") == "/etc/passwd");
  CHECK(norm("/api/../admin") == "/admin");
  CHECK(norm("/api/v1/../../admin/users") == "/admin/users");
}

TEST_CASE("encoded dots are decoded before dot segments are removed") {
  CHECK(norm("/%2e%2e/admin") == "/admin");
  CHECK(norm("/%2E%2E/admin") == "/admin");
  CHECK(norm("/api/%2e%2e/admin") == "/admin");
  CHECK(norm("/api/.%2e/admin") == "/admin");
  CHECK(norm("/api/%2e/admin") == "/api/admin");
}

TEST_CASE("unreserved escapes are decoded, others upper-cased and kept") {
  CHECK(norm("/%41%62%7e%2D%5f") == "/Ab~-_");
  CHECK(norm("/a%2fb") == "/a%2Fb");
  CHECK(norm("/a%2Fb") == "/a%2Fb");
  CHECK(norm("/%c3%a9t%C3%A9") == "/%C3%A9t%C3%A9");
  CHECK(norm("/a%20b") == "/a%20b");
}

TEST_CASE("an encoded slash never becomes a separator") {
  // If %2F were decoded, `..` would pop `b` and yield /a/c.
  CHECK(norm("/a/b%2F..%2Fc") == "/a/b%2F..%2Fc");
  CHECK(norm("/admin%2F..%2Fpublic") == "/admin%2F..%2Fpublic");
  NormalizeOptions strict;
  strict.reject_encoded_slashes = true;
  CHECK(norm_error("/a%2fb", strict) == ErrorKind::invalid_argument);
  CHECK(norm_error("/a%5Cb", strict) == ErrorKind::invalid_argument);
  CHECK(norm("/a%2eb", strict) == "/a.b");
}

TEST_CASE("slashes are merged only when asked") {
  CHECK(norm("//a//b///") == "//a//b///");
  NormalizeOptions merge;
  merge.merge_slashes = true;
  CHECK(norm("//a//b///", merge) == "/a/b/");
  CHECK(norm("/a//../b", merge) == "/b");
  CHECK(norm("/a//../b") == "/a/b");
  CHECK(norm("//", merge) == "/");
}

TEST_CASE("malformed percent-encoding is reported with its offset") {
  for (const char* p : {"/a%", "/a%2", "/a%zz", "/a%2g", "/%%41", "/a%/b"}) {
    CHECK(norm_error(p) == ErrorKind::malformed);
  }
  auto r = normalize_path("/abc%4x");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("offset 4") != std::string::npos);
}

TEST_CASE("forbidden bytes and relative paths are rejected") {
  CHECK(norm_error("") == ErrorKind::malformed);
  CHECK(norm_error("a/b") == ErrorKind::malformed);
  CHECK(norm_error("*") == ErrorKind::malformed);
  CHECK(norm_error("/a b") == ErrorKind::malformed);
  CHECK(norm_error("/a\\..\\admin") == ErrorKind::malformed);
  CHECK(norm_error(std::string_view("/a\0b", 4)) == ErrorKind::malformed);
  CHECK(norm_error("/a\r\nb") == ErrorKind::malformed);
  CHECK(norm_error("/caf\xc3\xa9") == ErrorKind::malformed);
  CHECK(norm_error("/a\x7f") == ErrorKind::malformed);
}

TEST_CASE("the buffer form needs no more room than the input") {
  char buf[16];
  auto n = normalize_path("/a/./b/../c", std::span<char>(buf, 11));
  REQUIRE(n.ok());
  CHECK(std::string_view(buf, *n) == "/a/c");
  auto small = normalize_path("/abcdef", std::span<char>(buf, 3));
  REQUIRE_FALSE(small.ok());
  CHECK(small.error().kind == ErrorKind::capacity);
}

TEST_CASE("normalisation is idempotent over generated paths") {
  // Every normal path must be a fixed point; checked over a grammar-driven
  // sample of segments including dots, escapes and empty segments.
  const char* pieces[] = {"a", ".", "..", "%2e", "%2E%2e", "", "b%2f", "%41", "~", "x.y", "%7E"};
  std::uint64_t state = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < 5000; ++i) {
    std::string path;
    const int segs = 1 + static_cast<int>(state % 6);
    for (int s = 0; s < segs; ++s) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      path += '/';
      path += pieces[(state >> 33) % (sizeof pieces / sizeof pieces[0])];
    }
    for (bool merge : {false, true}) {
      NormalizeOptions o;
      o.merge_slashes = merge;
      const std::string once = norm(path, o);
      CHECK_MESSAGE(norm(once, o) == once, path);
      CHECK(once.find("/../") == std::string::npos);
      CHECK(once.find("/./") == std::string::npos);
      CHECK(once.size() <= path.size());
    }
  }
}
