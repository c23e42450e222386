// HTTP/1.1 message heads and their strict parsers (over llhttp).
//
// The parsers never copy: a parsed head is a set of views into the caller's
// buffer, which holds every received byte not yet consumed, starting at the
// first byte of the message. The caller keeps those bytes in place while it
// uses the head. The head is parsed only once it is complete (a head arrives
// in one read almost always; when it does not, the parser starts over on the
// longer buffer, which bounded head sizes make cheap), and body bytes are
// then fed incrementally and come back as views too.
//
// Strictness (RFC 9110/9112; each violation is a ParseError naming the status
// to answer, and the connection must be closed after it):
//   request line longer than max_request_line                414
//   head longer than max_head_bytes, more than max_headers    431
//   Content-Length with Transfer-Encoding, differing or
//   invalid Content-Length, Transfer-Encoding whose last
//   coding is not chunked (requests), obs-fold, bare LF,
//   NUL/CR/LF in a field value, space before the colon,
//   missing or repeated Host in HTTP/1.1, bad chunk size     400
//   HTTP version other than 1.0 and 1.1                       505
//   unknown method, transfer coding other than chunked        501
// (docs/http.md has the full table.) A ResponseParser's errors all carry
// 502: the message at fault came from the upstream.
//
// Threading: a parser belongs to one connection; no shared state. A
// moved-from parser may only be assigned to or destroyed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "portico/export.hpp"

namespace portico::http {

struct Header {
  std::string_view name;
  std::string_view value;  // without leading and trailing whitespace
};

enum class Version : std::uint8_t { http10, http11 };

// How the message body is delimited.
enum class Framing : std::uint8_t {
  none,            // no body
  content_length,  // exactly content_length bytes
  chunked,         // chunked transfer coding
  until_close,     // responses only: until the connection closes
};

struct RequestHead {
  std::string_view method;  // as sent ("GET")
  std::string_view target;  // the request-target as sent
  // The path and query of the target: the target itself in origin form, the
  // part after the authority in absolute form ("/" if empty), empty for
  // CONNECT's authority form and for "*".
  std::string_view path;
  // The Host header, or the authority of an absolute-form target (which
  // takes precedence, RFC 9112 section 3.2.2) or of CONNECT's target.
  std::string_view host;
  Version version = Version::http11;
  std::span<const Header> headers;  // in arrival order
  Framing framing = Framing::none;
  std::uint64_t content_length = 0;  // when framing == content_length (may be 0)
  bool keep_alive = true;            // the connection may carry another request after this one
  bool expect_continue = false;      // "Expect: 100-continue"
  bool upgrade = false;              // Connection: upgrade with an Upgrade header

  // The first header named `name` (case-insensitive), or empty.
  PORTICO_API std::string_view header(std::string_view name) const noexcept;
};

struct ResponseHead {
  int status = 0;
  std::string_view reason;
  Version version = Version::http11;
  std::span<const Header> headers;
  Framing framing = Framing::none;
  std::uint64_t content_length = 0;
  bool keep_alive = true;

  PORTICO_API std::string_view header(std::string_view name) const noexcept;
};

struct Limits {
  std::size_t max_request_line = 8 * 1024;  // method + target + version
  std::size_t max_head_bytes = 32 * 1024;   // request line and all header lines
  std::size_t max_headers = 100;
};

struct ParseError {
  int status = 400;         // the response to send before closing
  std::string_view reason;  // static text fit for the response body and logs
};

enum class ParseState : std::uint8_t {
  incomplete,  // need more bytes
  complete,    // the head (or the body) is complete
  error,       // see error()
};

// Receives a body's bytes as they are decoded (chunk framing removed). The
// views point into the buffer given to parse_body.
class BodySink {
 public:
  virtual ~BodySink() = default;
  virtual void on_body(std::string_view data) = 0;
};

struct BodyProgress {
  ParseState state = ParseState::incomplete;
  std::size_t consumed = 0;  // bytes of the input used (a pipelined next message may follow)
};

class PORTICO_API RequestParser {
 public:
  explicit RequestParser(const Limits& limits = {});
  ~RequestParser();
  RequestParser(RequestParser&&) noexcept;
  RequestParser& operator=(RequestParser&&) noexcept;

  // Parses a head from `buffered` (all unconsumed bytes). On complete,
  // head_size() is the length of the head and head() is valid until the
  // buffer changes or reset() is called.
  ParseState parse_head(std::string_view buffered);
  const RequestHead& head() const noexcept;
  std::size_t head_size() const noexcept;

  // After a complete head: feeds body bytes (those after the head, then
  // each later read). Complete when the body has ended; bytes past it are
  // not consumed. A request without a body is complete at once.
  BodyProgress parse_body(std::string_view data, BodySink& sink);

  const ParseError& error() const noexcept;
  // Ready for the next message on the same connection.
  void reset() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class PORTICO_API ResponseParser {
 public:
  explicit ResponseParser(const Limits& limits = {});
  ~ResponseParser();
  ResponseParser(ResponseParser&&) noexcept;
  ResponseParser& operator=(ResponseParser&&) noexcept;

  // `request_method` decides whether the response can have a body (HEAD,
  // and a 2xx to CONNECT, never do; nor do 1xx, 204 and 304).
  ParseState parse_head(std::string_view buffered, std::string_view request_method);
  const ResponseHead& head() const noexcept;
  std::size_t head_size() const noexcept;

  BodyProgress parse_body(std::string_view data, BodySink& sink);
  // The peer closed: complete for until_close framing (and for a message
  // already complete), an error if the head or a delimited body was cut.
  ParseState finish_at_eof() noexcept;

  const ParseError& error() const noexcept;
  void reset() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Case-insensitive comparison of header names (ASCII).
PORTICO_API bool header_name_equals(std::string_view a, std::string_view b) noexcept;

}  // namespace portico::http
