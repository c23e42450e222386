// What a response head means: status line, and how the body is delimited
// given the request it answers (RFC 9112 section 6.3).
#include "portico/http.hpp"

#include "fields.hpp"
#include "message_parser.hpp"

namespace portico::detail {

using http::Framing;
using http::Limits;
using http::ParseState;
using http::ResponseHead;
using http::Version;

namespace {

bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

bool is_reason_byte(unsigned char c) noexcept {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

}  // namespace

// In portico::detail, and so hidden from the shared library's interface.
class ResponseReader : public MessageParser {
 public:
  explicit ResponseReader(const Limits& limits) : MessageParser(Direction::response, limits) {}

  ResponseHead head;
  std::string_view request_method;  // during parse_head only

  void clear_head() noexcept override { head = {}; }

  std::optional<BodyShape> finish_head() noexcept override {
    const llhttp_t& p = llhttp();
    if (p.http_major != 1 || p.http_minor > 1) {
      fail(502, "upstream HTTP version not supported");
      return std::nullopt;
    }
    head.version = p.http_minor == 0 ? Version::http10 : Version::http11;
    if (!read_status_line()) {
      fail(502, "malformed status line");
      return std::nullopt;
    }
    head.headers = headers();
    const HeaderFacts facts = read_header_facts(head.headers);
    const std::optional<BodyShape> body = read_framing(facts);
    if (!body) return std::nullopt;
    head.framing = body->framing;
    head.content_length = body->content_length;
    const bool http11 = head.version == Version::http11;
    head.keep_alive = body->framing != Framing::until_close && !facts.connection_close &&
                      (http11 || facts.connection_keep_alive);
    return body;
  }

  // HTTP-version SP 3DIGIT [ SP reason-phrase ]. The SP before an empty
  // reason is optional here: servers that leave it out are common.
  bool read_status_line() noexcept {
    const std::string_view line = start_line();
    constexpr std::size_t kCodeEnd = sizeof("HTTP/1.1 200") - 1;
    if (line.size() < kCodeEnd || line[8] != ' ') return false;
    int status = 0;
    for (std::size_t i = 9; i < kCodeEnd; ++i) {
      if (!is_digit(line[i])) return false;
      status = status * 10 + (line[i] - '0');
    }
    if (status < 100 || status > 599) return false;
    if (line.size() > kCodeEnd && line[kCodeEnd] != ' ') return false;
    const std::string_view reason = line.size() > kCodeEnd ? line.substr(kCodeEnd + 1) : "";
    for (const char c : reason) {
      if (!is_reason_byte(static_cast<unsigned char>(c))) return false;
    }
    head.status = status;
    head.reason = reason;
    return true;
  }

  bool has_no_body() const noexcept {
    const int s = head.status;
    return s / 100 == 1 || s == 204 || s == 304 || request_method == "HEAD" ||
           (request_method == "CONNECT" && s / 100 == 2);
  }

  std::optional<BodyShape> read_framing(const HeaderFacts& facts) noexcept {
    BodyShape body;
    if (facts.content_length_count > 1 || facts.content_length_invalid) {
      fail(502, "invalid or repeated Content-Length from upstream");
      return std::nullopt;
    }
    if (facts.transfer_encoding_count > 0 &&
        (facts.content_length_count > 0 || head.version == Version::http10 ||
         facts.coding_count == 0 || facts.malformed_coding || facts.chunked_count > 1)) {
      fail(502, "invalid Transfer-Encoding from upstream");
      return std::nullopt;
    }
    if (has_no_body()) return body;
    if (facts.transfer_encoding_count > 0) {
      // A last coding other than chunked leaves only the close to end the
      // body (RFC 9112 section 6.3, item 4).
      body.framing = facts.last_coding_chunked ? Framing::chunked : Framing::until_close;
    } else if (facts.content_length_count == 1) {
      body.framing = Framing::content_length;
      body.content_length = *facts.content_length;
    } else {
      body.framing = Framing::until_close;
    }
    return body;
  }
};

}  // namespace portico::detail

namespace portico::http {

struct ResponseParser::Impl final : detail::ResponseReader {
  using ResponseReader::ResponseReader;
};

ResponseParser::ResponseParser(const Limits& limits) : impl_(std::make_unique<Impl>(limits)) {}
ResponseParser::~ResponseParser() = default;
ResponseParser::ResponseParser(ResponseParser&&) noexcept = default;
ResponseParser& ResponseParser::operator=(ResponseParser&&) noexcept = default;

ParseState ResponseParser::parse_head(std::string_view buffered, std::string_view request_method) {
  impl_->request_method = request_method;
  const ParseState state = impl_->parse_head(buffered);
  impl_->request_method = {};
  return state;
}

const ResponseHead& ResponseParser::head() const noexcept {
  return impl_->head;
}

std::size_t ResponseParser::head_size() const noexcept {
  return impl_->head_size();
}

BodyProgress ResponseParser::parse_body(std::string_view data, BodySink& sink) {
  return impl_->parse_body(data, sink);
}

ParseState ResponseParser::finish_at_eof() noexcept {
  return impl_->finish_at_eof();
}

const ParseError& ResponseParser::error() const noexcept {
  return impl_->error();
}

void ResponseParser::reset() noexcept {
  impl_->reset();
}

}  // namespace portico::http
