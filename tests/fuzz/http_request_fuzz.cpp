// Fuzz target for the HTTP/1.1 parsers: any bytes are read as a stream of
// pipelined requests (heads, then bodies), and again as responses.
//
// Asserted on every input (a violation aborts, and libFuzzer keeps it):
//  - an error carries a status a request may be answered with (400, 413,
//    414, 431, 501, 505; 502 for every response error) and a reason;
//  - a complete head is no longer than the buffer nor the head limit, holds
//    at most max_headers fields, and every view in it (method, target,
//    path, host, names, values, reason) lies inside the head's bytes;
//  - growing prefixes of the buffer, each parsed afresh, reach the same
//    verdict as the whole buffer, at the same head size, and no sooner than
//    the bytes that decide it;
//  - a body fed in one piece and fed byte by byte gives the same bytes, the
//    same end and the same consumed count; pieces are views into the feed;
//    consumed never exceeds the feed; a Content-Length body is exactly
//    content_length bytes when complete, and never more.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "portico/http.hpp"

namespace {

using portico::http::BodyProgress;
using portico::http::BodySink;
using portico::http::Framing;
using portico::http::Limits;
using portico::http::ParseState;
using portico::http::RequestParser;
using portico::http::ResponseParser;

[[noreturn]] void fail(const char* what, std::string_view input) {
  std::fprintf(stderr, "http_request_fuzz: %s\n  input: '%.*s'\n", what,
               static_cast<int>(input.size()), input.data());
  std::abort();
}

void require(bool ok, const char* what, std::string_view input) {
  if (!ok) fail(what, input);
}

// Small limits, so that every limit is reached by inputs libFuzzer makes
// and the byte-by-byte head check stays short: any input has a verdict by
// byte kMaxHead + 1.
constexpr std::size_t kMaxHead = 384;

Limits small_limits() {
  Limits limits;
  limits.max_request_line = 96;
  limits.max_head_bytes = kMaxHead;
  limits.max_headers = 8;
  return limits;
}

bool inside(std::string_view view, std::string_view buffer) {
  return view.empty() || (view.data() >= buffer.data() &&
                          view.data() + view.size() <= buffer.data() + buffer.size());
}

bool request_status_ok(int status) {
  return status == 400 || status == 413 || status == 414 || status == 431 || status == 501 ||
         status == 505;
}

class CheckedSink final : public BodySink {
 public:
  CheckedSink(std::string_view input) : input_(input) {}
  void expect_within(std::string_view feed) { feed_ = feed; }
  void on_body(std::string_view piece) override {
    require(inside(piece, feed_), "a body piece outside the fed bytes", input_);
    bytes.append(piece);
  }
  std::string bytes;

 private:
  std::string_view input_;
  std::string_view feed_;
};

struct BodyResult {
  ParseState state = ParseState::incomplete;
  int status = 0;
  std::size_t consumed = 0;
  std::string bytes;
};

template <class Parser>
BodyResult body_whole(Parser& parser, std::string_view rest, std::string_view input) {
  CheckedSink sink(input);
  sink.expect_within(rest);
  const BodyProgress p = parser.parse_body(rest, sink);
  require(p.consumed <= rest.size(), "consumed more than was fed", input);
  BodyResult r{p.state, p.state == ParseState::error ? parser.error().status : 0, p.consumed,
               sink.bytes};
  if (p.state == ParseState::error) r.consumed = 0;
  return r;
}

template <class Parser>
BodyResult body_split(Parser& parser, std::string_view rest, std::string_view input) {
  CheckedSink sink(input);
  BodyResult r;
  char byte[1];
  for (std::size_t i = 0; i <= rest.size(); ++i) {
    // One empty feed at the end, as the whole feed of an empty rest is.
    std::string_view feed;
    if (i < rest.size()) {
      byte[0] = rest[i];
      feed = std::string_view(byte, 1);
    } else if (i != 0) {
      break;
    }
    sink.expect_within(feed);
    const BodyProgress p = parser.parse_body(feed, sink);
    require(p.consumed <= feed.size(), "consumed more than was fed", input);
    r.consumed += p.consumed;
    r.state = p.state;
    if (p.state == ParseState::error) {
      r.status = parser.error().status;
      r.consumed = 0;
    }
    if (p.state != ParseState::incomplete) break;
  }
  r.bytes = sink.bytes;
  return r;
}

void same_body(const BodyResult& a, const BodyResult& b, std::string_view input) {
  require(a.state == b.state, "body verdicts differ between one feed and byte feeds", input);
  require(a.status == b.status, "body error statuses differ between feeds", input);
  require(a.consumed == b.consumed, "consumed counts differ between feeds", input);
  require(a.bytes == b.bytes, "body bytes differ between feeds", input);
}

void check_request_head(const RequestParser& parser, std::string_view buffered,
                        const Limits& limits) {
  const std::size_t size = parser.head_size();
  require(size > 0 && size <= buffered.size() && size <= limits.max_head_bytes,
          "head size out of range", buffered);
  const std::string_view bytes = buffered.substr(0, size);
  const auto& head = parser.head();
  require(head.headers.size() <= limits.max_headers, "more headers than the limit", buffered);
  for (std::string_view v : {head.method, head.target, head.path, head.host}) {
    require(inside(v, bytes), "a head view outside the head", buffered);
  }
  for (const auto& h : head.headers) {
    require(inside(h.name, bytes) && inside(h.value, bytes), "a header outside the head", buffered);
    require(!h.name.empty(), "an empty header name", buffered);
  }
  require(!head.method.empty() && !head.target.empty(), "empty method or target", buffered);
}

// The verdict on growing prefixes, each parsed afresh, must be the verdict
// on the whole buffer, and come exactly when the deciding byte arrives.
template <class Parser, class... Method>
void check_prefixes(Parser& whole, ParseState verdict, std::string_view buffered,
                    const Limits& limits, Method... method) {
  Parser parser(limits);
  for (std::size_t n = 0; n <= buffered.size(); ++n) {
    const ParseState state = parser.parse_head(buffered.substr(0, n), method...);
    if (state == ParseState::incomplete) continue;
    require(state == verdict, "a prefix reached another verdict than the whole buffer", buffered);
    if (state == ParseState::error) {
      require(parser.error().status == whole.error().status, "prefix error status differs",
              buffered);
    } else {
      require(parser.head_size() == whole.head_size() && n == whole.head_size(),
              "a prefix completed at another size", buffered);
    }
    return;
  }
  require(verdict == ParseState::incomplete, "no prefix reached the whole buffer's verdict",
          buffered);
}

void check_error(int status, std::string_view reason, bool response, std::string_view input) {
  require(response ? status == 502 : request_status_ok(status), "unexpected error status", input);
  require(!reason.empty(), "an error without a reason", input);
}

// One request per round, as a connection would take them: head, body,
// reset, and the next head from the bytes left.
void fuzz_requests(std::string_view input, const Limits& limits, bool check_split) {
  RequestParser parser(limits);
  RequestParser split(limits);
  std::string_view buffered = input;
  for (int round = 0; round < 4; ++round) {
    const ParseState state = parser.parse_head(buffered);
    if (check_split) check_prefixes(parser, state, buffered, limits);
    if (state == ParseState::error) {
      check_error(parser.error().status, parser.error().reason, false, input);
      return;
    }
    if (state == ParseState::incomplete) return;
    check_request_head(parser, buffered, limits);
    const std::string_view rest = buffered.substr(parser.head_size());
    const BodyResult whole = body_whole(parser, rest, input);
    if (whole.state == ParseState::error) {
      check_error(whole.status, parser.error().reason, false, input);
    }
    if (parser.head().framing == Framing::content_length) {
      require(whole.bytes.size() <= parser.head().content_length, "body longer than its length",
              input);
      require(
          whole.state != ParseState::complete || whole.bytes.size() == parser.head().content_length,
          "body complete before its length", input);
    }
    if (check_split) {
      require(split.parse_head(buffered) == ParseState::complete, "head not repeatable", input);
      same_body(whole, body_split(split, rest, input), input);
      split.reset();
    }
    if (whole.state != ParseState::complete) return;
    buffered = rest.substr(whole.consumed);
    parser.reset();
  }
}

void fuzz_response(std::string_view input, std::string_view method) {
  const Limits limits = small_limits();
  ResponseParser parser(limits);
  const ParseState state = parser.parse_head(input, method);
  check_prefixes(parser, state, input, limits, method);
  if (state == ParseState::error) {
    check_error(parser.error().status, parser.error().reason, true, input);
    return;
  }
  if (state == ParseState::incomplete) {
    require(parser.finish_at_eof() == ParseState::error, "a cut head accepted at EOF", input);
    return;
  }
  const auto& head = parser.head();
  const std::string_view bytes = input.substr(0, parser.head_size());
  require(inside(head.reason, bytes), "reason outside the head", input);
  require(head.status >= 100 && head.status <= 599, "status out of range", input);
  for (const auto& h : head.headers) {
    require(inside(h.name, bytes) && inside(h.value, bytes), "a header outside the head", input);
  }
  const std::string_view rest = input.substr(parser.head_size());
  const BodyResult whole = body_whole(parser, rest, input);
  ResponseParser split(limits);
  require(split.parse_head(input, method) == ParseState::complete, "head not repeatable", input);
  same_body(whole, body_split(split, rest, input), input);
  if (whole.state == ParseState::error)
    check_error(whole.status, parser.error().reason, true, input);
  if (whole.state == ParseState::incomplete && head.framing == Framing::until_close) {
    require(parser.finish_at_eof() == ParseState::complete, "until_close not ended by EOF", input);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  fuzz_requests(input, small_limits(), true);
  fuzz_requests(input, Limits{}, false);
  fuzz_response(input, size % 2 == 0 ? "GET" : "HEAD");
  return 0;
}
