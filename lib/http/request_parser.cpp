// What a request head means: version, request-target form, Host, framing
// and the connection options, with the refusals RFC 9112 asks of a server
// that may sit in front of another one (sections 3, 6 and 7).
#include "portico/http.hpp"

#include "fields.hpp"
#include "message_parser.hpp"

namespace portico::detail {

using http::Framing;
using http::Limits;
using http::ParseState;
using http::RequestHead;
using http::Version;

// In portico::detail, and so hidden from the shared library's interface.
class RequestReader : public MessageParser {
 public:
  explicit RequestReader(const Limits& limits) : MessageParser(Direction::request, limits) {}

  RequestHead head;

  void clear_head() noexcept override { head = {}; }

  std::optional<BodyShape> finish_head() noexcept override {
    const llhttp_t& p = llhttp();
    if (p.http_major != 1 || p.http_minor > 1) {
      fail(505, "HTTP version not supported");
      return std::nullopt;
    }
    head.version = p.http_minor == 0 ? Version::http10 : Version::http11;
    if (!well_formed_request_line()) {
      fail(400, "malformed request line");
      return std::nullopt;
    }
    head.method = method();
    head.target = target();
    head.headers = headers();
    std::string_view target_authority;
    if (!read_target(target_authority)) return std::nullopt;
    const HeaderFacts facts = read_header_facts(head.headers);
    if (!read_host(facts, target_authority)) return std::nullopt;
    const std::optional<BodyShape> body = read_framing(facts);
    if (!body) return std::nullopt;
    head.framing = body->framing;
    head.content_length = body->content_length;
    read_connection(facts);
    return body;
  }

  // method SP request-target SP HTTP-version, single spaces: llhttp also
  // takes runs of spaces, which another parser may split differently.
  bool well_formed_request_line() const noexcept {
    const std::string_view line = start_line();
    const std::string_view m = method();
    const std::string_view t = target();
    constexpr std::size_t kSpaceAndVersion = sizeof(" HTTP/1.1") - 1;
    return !m.empty() && !t.empty() && m.data() == line.data() &&
           t.data() == m.data() + m.size() + 1 &&
           line.size() == m.size() + 1 + t.size() + kSpaceAndVersion;
  }

  bool refuse(int status, std::string_view reason) noexcept {
    fail(status, reason);
    return false;
  }

  // RFC 9112 section 3.2: origin form for most requests, absolute form
  // (proxies), authority form for CONNECT only, asterisk for OPTIONS only.
  bool read_target(std::string_view& authority) noexcept {
    const std::string_view target = head.target;
    if (target.find('#') != std::string_view::npos) {
      return refuse(400, "fragment in the request target");
    }
    if (head.method == "CONNECT") {
      if (!is_valid_authority(target, true)) {
        return refuse(400, "CONNECT needs a host:port target");
      }
      authority = target;
      return true;
    }
    if (target == "*") {
      return head.method == "OPTIONS" || refuse(400, "asterisk target outside OPTIONS");
    }
    if (target.front() == '/') {
      head.path = target;
      return true;
    }
    const std::optional<AbsoluteTarget> parts = split_absolute_target(target);
    if (!parts) return refuse(400, "invalid absolute-form target");
    authority = parts->authority;
    head.path = parts->path;
    return true;
  }

  bool read_host(const HeaderFacts& facts, std::string_view target_authority) noexcept {
    if (facts.host_count > 1) return refuse(400, "more than one Host header");
    if (facts.host_count == 0 && head.version == Version::http11) {
      return refuse(400, "missing Host header");
    }
    if (!facts.host.empty() && !is_valid_authority(facts.host, false)) {
      return refuse(400, "invalid Host header");
    }
    head.host = target_authority.empty() ? facts.host : target_authority;
    return true;
  }

  // RFC 9112 section 6: the framing must be unambiguous, or the request is
  // refused before a byte of its body is read.
  std::optional<BodyShape> read_framing(const HeaderFacts& facts) noexcept {
    BodyShape body;
    if (facts.transfer_encoding_count > 0) {
      if (!read_transfer_encoding(facts)) return std::nullopt;
      body.framing = Framing::chunked;
    } else if (facts.content_length_count > 0) {
      // Identical repeats are refused too: a recipient may merge them, but
      // one in front of another parser cannot know that the next one does.
      if (facts.content_length_count > 1) {
        fail(400, "more than one Content-Length header");
        return std::nullopt;
      }
      if (facts.content_length_invalid) {
        fail(400, "invalid Content-Length");
        return std::nullopt;
      }
      body.framing = Framing::content_length;
      body.content_length = *facts.content_length;
    }
    const bool has_body = body.framing == Framing::chunked || body.content_length > 0;
    if (head.method == "CONNECT" && has_body) {
      fail(400, "CONNECT request with a body");
      return std::nullopt;
    }
    return body;
  }

  bool read_transfer_encoding(const HeaderFacts& facts) noexcept {
    if (facts.content_length_count > 0) {
      return refuse(400, "Content-Length together with Transfer-Encoding");
    }
    if (head.version == Version::http10) {
      return refuse(400, "Transfer-Encoding in an HTTP/1.0 request");
    }
    if (facts.coding_count == 0 || facts.malformed_coding) {
      return refuse(400, "invalid Transfer-Encoding");
    }
    if (facts.chunked_count > 1) return refuse(400, "chunked applied more than once");
    if (!facts.last_coding_chunked) return refuse(400, "Transfer-Encoding does not end in chunked");
    if (facts.other_coding) return refuse(501, "transfer coding not implemented");
    return true;
  }

  void read_connection(const HeaderFacts& facts) noexcept {
    const bool http11 = head.version == Version::http11;
    head.keep_alive = !facts.connection_close && (http11 || facts.connection_keep_alive);
    // HTTP/1.0 knows neither (RFC 9110 sections 10.1.1 and 7.8).
    head.expect_continue = http11 && facts.expect_continue;
    head.upgrade = http11 && facts.connection_upgrade && facts.upgrade_field;
  }
};

}  // namespace portico::detail

namespace portico::http {

struct RequestParser::Impl final : detail::RequestReader {
  using RequestReader::RequestReader;
};

RequestParser::RequestParser(const Limits& limits) : impl_(std::make_unique<Impl>(limits)) {}
RequestParser::~RequestParser() = default;
RequestParser::RequestParser(RequestParser&&) noexcept = default;
RequestParser& RequestParser::operator=(RequestParser&&) noexcept = default;

ParseState RequestParser::parse_head(std::string_view buffered) {
  return impl_->parse_head(buffered);
}

const RequestHead& RequestParser::head() const noexcept {
  return impl_->head;
}

std::size_t RequestParser::head_size() const noexcept {
  return impl_->head_size();
}

BodyProgress RequestParser::parse_body(std::string_view data, BodySink& sink) {
  return impl_->parse_body(data, sink);
}

const ParseError& RequestParser::error() const noexcept {
  return impl_->error();
}

void RequestParser::reset() noexcept {
  impl_->reset();
}

}  // namespace portico::http
