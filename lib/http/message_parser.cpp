#include "message_parser.hpp"

#include <algorithm>

#include "fields.hpp"

namespace portico::detail {

// llhttp's callbacks, forwarding to the parser found in llhttp_t::data.
struct LlhttpCallbacks {
  static MessageParser& self(llhttp_t* p) noexcept { return *static_cast<MessageParser*>(p->data); }

  static int method(llhttp_t* p, const char* at, std::size_t length) {
    return self(p).on_span(self(p).method_, at, length);
  }
  static int url(llhttp_t* p, const char* at, std::size_t length) {
    return self(p).on_span(self(p).target_, at, length);
  }
  static int version_complete(llhttp_t* p) { return self(p).on_version_complete(); }
  static int header_field(llhttp_t* p, const char* at, std::size_t length) {
    return self(p).on_header_field(at, length);
  }
  static int header_field_complete(llhttp_t* p) { return self(p).on_header_field_complete(); }
  static int header_value(llhttp_t* p, const char* at, std::size_t length) {
    return self(p).on_header_value(at, length);
  }
  static int header_value_complete(llhttp_t* p) { return self(p).on_header_value_complete(); }
  static int headers_complete(llhttp_t* p) { return self(p).on_headers_complete(); }
  static int body(llhttp_t* p, const char* at, std::size_t length) {
    return self(p).on_body(at, length);
  }
  static int message_complete(llhttp_t* p) { return self(p).on_message_complete(); }

  static const llhttp_settings_t& settings() noexcept {
    static const llhttp_settings_t s = [] {
      llhttp_settings_t made;
      llhttp_settings_init(&made);
      made.on_method = method;
      made.on_url = url;
      made.on_version_complete = version_complete;
      made.on_header_field = header_field;
      made.on_header_field_complete = header_field_complete;
      made.on_header_value = header_value;
      made.on_header_value_complete = header_value_complete;
      made.on_headers_complete = headers_complete;
      made.on_body = body;
      made.on_message_complete = message_complete;
      return made;
    }();
    return s;
  }
};

namespace {

// Values the on_headers_complete callback may return (llhttp.h).
constexpr int kSkipBody = 1;
constexpr int kCallbackError = -1;

// llhttp wants a pointer even for no bytes.
constexpr char kNoBytes[1] = {0};

const char* bytes_of(std::string_view s) noexcept {
  return s.data() != nullptr ? s.data() : kNoBytes;
}

// A string_view grown by a span that continues it. llhttp reports a span in
// one piece per execute, so within one head the pieces always touch; a gap
// would mean bytes llhttp skipped, which no view may silently swallow.
bool extend(std::string_view& view, const char* at, std::size_t length) noexcept {
  if (view.empty()) {
    view = {at, length};
    return true;
  }
  if (at != view.data() + view.size()) return false;
  view = {view.data(), view.size() + length};
  return true;
}

bool is_field_value_byte(unsigned char c) noexcept {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

}  // namespace

MessageParser::MessageParser(Direction direction, const http::Limits& limits)
    : direction_(direction),
      limits_(limits),
      // One slot more than the limit: a field is counted when its colon
      // arrives (see on_header_field_complete), after its name is stored.
      headers_(std::make_unique<http::Header[]>(std::min(limits.max_headers, SIZE_MAX - 1) + 1)) {
  llhttp_init(&llhttp_, direction == Direction::request ? HTTP_REQUEST : HTTP_RESPONSE,
              &LlhttpCallbacks::settings());
  llhttp_.data = this;
}

void MessageParser::reset() noexcept {
  llhttp_reset(&llhttp_);
  header_count_ = 0;
  field_open_ = false;
  start_line_ = {};
  line_start_ = 0;
  method_ = {};
  target_ = {};
  phase_ = Phase::head;
  own_error_ = false;
  error_ = {};
  head_size_ = 0;
  body_ = {};
  body_left_ = 0;
  head_accepted_ = false;
  message_complete_ = false;
  sink_ = nullptr;
  cursor_ = nullptr;
  framing_run_ = 0;
  trailer_fields_ = 0;
  tail_ = {};
  clear_head();
}

void MessageParser::fail(int request_status, std::string_view reason) noexcept {
  if (own_error_ || phase_ == Phase::failed) return;
  own_error_ = true;
  phase_ = Phase::failed;
  error_.status = direction_ == Direction::response ? 502 : request_status;
  error_.reason = reason;
}

http::ParseState MessageParser::parse_head(std::string_view buffered) {
  reset();
  const HeadScan scan = scan_head(buffered, limits_.max_request_line, limits_.max_head_bytes);
  line_start_ = scan.line_start;
  if (scan.line_end != HeadScan::npos) {
    start_line_ = buffered.substr(scan.line_start, scan.line_end - scan.line_start);
  }
  const char* data = bytes_of(buffered);
  const llhttp_errno_t err = llhttp_execute(&llhttp_, data, scan.usable);
  if (own_error_) return http::ParseState::error;
  if (err == HPE_PAUSED && head_accepted_) {
    head_size_ = static_cast<std::size_t>(llhttp_get_error_pos(&llhttp_) - data);
    if (head_size_ != scan.head_end) {
      fail(400, "malformed message head");
      return http::ParseState::error;
    }
    phase_ = message_complete_ ? Phase::done : Phase::body;
    return http::ParseState::complete;
  }
  if (err != HPE_OK) {
    fail_from_llhttp(err, data);
    return http::ParseState::error;
  }
  return fail_head(scan);
}

// llhttp took every usable byte and wants more: either the scan stopped it
// short of a violation, or the head is simply not all there yet.
http::ParseState MessageParser::fail_head(const HeadScan& scan) noexcept {
  const bool response = direction_ == Direction::response;
  switch (scan.violation) {
    case HeadViolation::none:
      if (scan.head_end == HeadScan::npos) return http::ParseState::incomplete;
      fail(400, "malformed message head");
      break;
    case HeadViolation::bare_lf:
      fail(400, "bare LF line ending");
      break;
    case HeadViolation::bare_cr:
      fail(400, "CR not followed by LF");
      break;
    case HeadViolation::line_folding:
      fail(400, "header line starting with whitespace (obs-fold)");
      break;
    case HeadViolation::start_line_length:
      fail(414, response ? "status line too long" : "request line too long");
      break;
    case HeadViolation::head_length:
      fail(431, "header section too large");
      break;
  }
  return http::ParseState::error;
}

void MessageParser::fail_from_llhttp(llhttp_errno_t err, const char* data) noexcept {
  const char* llhttp_reason = llhttp_get_error_reason(&llhttp_);
  const std::string_view reason = llhttp_reason != nullptr ? llhttp_reason : "malformed message";
  if (phase_ != Phase::head || direction_ == Direction::response) {
    fail(400, reason);
    return;
  }
  if (err == HPE_INVALID_METHOD) {
    // A well-formed method that llhttp does not know is one this server
    // does not implement (RFC 9110 section 9.1); anything else is garbage.
    // Only the bytes up to the one llhttp stopped at are looked at, so that
    // a longer buffer gives the same answer.
    const char* first = data + line_start_;
    const char* last = llhttp_get_error_pos(&llhttp_);
    bool token = last != nullptr && last >= first;
    for (const char* c = first; token && c <= last; ++c) {
      token = is_tchar(static_cast<unsigned char>(*c));
    }
    fail(token ? 501 : 400, token ? "method not implemented" : reason);
    return;
  }
  const bool unsupported_version =
      (err == HPE_INVALID_VERSION && reason == "Invalid HTTP version") ||
      err == HPE_PAUSED_H2_UPGRADE;
  fail(unsupported_version ? 505 : 400,
       unsupported_version ? "HTTP version not supported" : reason);
}

int MessageParser::on_span(std::string_view& into, const char* at, std::size_t length) noexcept {
  if (phase_ != Phase::head || length == 0) return 0;
  if (!extend(into, at, length)) {
    fail(400, "malformed start line");
    return kCallbackError;
  }
  return 0;
}

// llhttp takes 0.9 and 2.0 as well; answering at the version, before the
// rest of the head, also answers the HTTP/2 preface ("PRI * HTTP/2.0").
int MessageParser::on_version_complete() noexcept {
  if (llhttp_.http_major == 1 && llhttp_.http_minor <= 1) return 0;
  fail(505, "HTTP version not supported");
  return kCallbackError;
}

int MessageParser::on_header_field(const char* at, std::size_t length) noexcept {
  if (phase_ != Phase::head) return 0;  // trailer fields are ignored
  if (!field_open_) {
    if (header_count_ > limits_.max_headers) return kCallbackError;  // failed already
    headers_[header_count_++] = {};
    field_open_ = true;
  }
  if (length != 0 && !extend(headers_[header_count_ - 1].name, at, length)) {
    fail(400, "malformed header field name");
    return kCallbackError;
  }
  return 0;
}

// Fields are counted here, at the colon, and not when a name begins: llhttp
// reports a name's first bytes only when the name ends or the buffer does,
// so counting at the start would make the verdict depend on where the
// buffer ends. llhttp also takes ": value" as a field with an empty name,
// which a field name (a token) never is.
int MessageParser::on_header_field_complete() noexcept {
  field_open_ = false;
  if (phase_ != Phase::head) {
    if (++trailer_fields_ <= limits_.max_headers) return 0;
    fail(431, "too many trailer fields");
    return kCallbackError;
  }
  if (header_count_ == 0 || headers_[header_count_ - 1].name.empty()) {
    fail(400, "empty header field name");
    return kCallbackError;
  }
  if (header_count_ <= limits_.max_headers) return 0;
  fail(431, "too many header fields");
  return kCallbackError;
}

int MessageParser::on_header_value(const char* at, std::size_t length) noexcept {
  if (phase_ != Phase::head || length == 0 || header_count_ == 0) return 0;
  if (!extend(headers_[header_count_ - 1].value, at, length)) {
    fail(400, "header line starting with whitespace (obs-fold)");
    return kCallbackError;
  }
  return 0;
}

int MessageParser::on_header_value_complete() noexcept {
  if (phase_ != Phase::head || header_count_ == 0) return 0;
  std::string_view& value = headers_[header_count_ - 1].value;
  for (const char c : value) {
    if (!is_field_value_byte(static_cast<unsigned char>(c))) {
      fail(400, "control character in a header value");
      return kCallbackError;
    }
  }
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
    value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
    value.remove_suffix(1);
  return 0;
}

int MessageParser::on_headers_complete() noexcept {
  if (phase_ != Phase::head) return 0;
  const std::optional<BodyShape> shape = finish_head();
  if (!shape) return kCallbackError;
  body_ = *shape;
  body_left_ = body_.framing == http::Framing::content_length ? body_.content_length : 0;
  head_accepted_ = true;
  const bool no_body =
      body_.framing == http::Framing::none ||
      (body_.framing == http::Framing::content_length && body_.content_length == 0);
  // Skipping lets llhttp end the message here (it would otherwise read a
  // body after a 204 or a HEAD response); either way it pauses at the
  // head's end, in this callback or in on_message_complete.
  return no_body ? kSkipBody : HPE_PAUSED;
}

int MessageParser::on_body(const char* at, std::size_t length) noexcept {
  if (sink_ == nullptr) return 0;
  if (!note_framing_bytes(at)) return kCallbackError;
  framing_run_ = 0;
  cursor_ = at + length;
  sink_->on_body({at, length});
  return 0;
}

int MessageParser::on_message_complete() noexcept {
  message_complete_ = true;
  // Stops llhttp at the message's last byte, so that a pipelined next
  // message stays in the caller's buffer.
  return HPE_PAUSED;
}

bool MessageParser::note_framing_bytes(const char* upto) noexcept {
  framing_run_ += static_cast<std::size_t>(upto - cursor_);
  cursor_ = upto;
  if (framing_run_ <= limits_.max_head_bytes) return true;
  fail(431, "chunk framing or trailer section too large");
  return false;
}

// How many bytes llhttp may take next. Chunk framing and trailers are
// checked between executes, so for a chunked body llhttp is stopped where
// the run of non-data bytes could first pass the limit: the limit is then
// found at its byte, as a byte-by-byte feed would find it.
std::size_t MessageParser::next_slice(std::size_t remaining) const noexcept {
  if (body_.framing != http::Framing::chunked) return remaining;
  const std::size_t room = limits_.max_head_bytes - framing_run_;
  return room >= remaining ? remaining : room + 1;
}

void MessageParser::remember_tail(std::string_view consumed) noexcept {
  for (const char c :
       consumed.substr(consumed.size() - std::min<std::size_t>(consumed.size(), 4))) {
    std::rotate(tail_.begin(), tail_.begin() + 1, tail_.end());
    tail_.back() = c;
  }
}

// llhttp 8 accepts a bare LF as the blank line that ends a chunked body;
// the four bytes before the end must be CRLF CRLF ("0\r\n\r\n" or the end of
// a trailer section).
bool MessageParser::ends_with_blank_line(std::string_view consumed) const noexcept {
  std::array<char, 4> last = tail_;
  for (const char c :
       consumed.substr(consumed.size() - std::min<std::size_t>(consumed.size(), 4))) {
    std::rotate(last.begin(), last.begin() + 1, last.end());
    last.back() = c;
  }
  return std::string_view(last.data(), last.size()) == "\r\n\r\n";
}

http::BodyProgress MessageParser::parse_body(std::string_view data, http::BodySink& sink) {
  switch (phase_) {
    case Phase::failed:
      return {http::ParseState::error, 0};
    case Phase::head:
      fail(500, "body parsed before a complete head");
      return {http::ParseState::error, 0};
    case Phase::done:
      return {http::ParseState::complete, 0};
    case Phase::body:
      break;
  }
  if (body_.framing == http::Framing::content_length) return take_counted_body(data, sink);
  const char* bytes = bytes_of(data);
  llhttp_resume(&llhttp_);
  sink_ = &sink;
  cursor_ = bytes;
  std::size_t fed = 0;
  llhttp_errno_t err = HPE_OK;
  do {
    const std::size_t slice = next_slice(data.size() - fed);
    err = llhttp_execute(&llhttp_, bytes + fed, slice);
    if (err != HPE_OK || own_error_) break;
    fed += slice;
    if (!note_framing_bytes(bytes + fed)) break;
  } while (fed < data.size());
  sink_ = nullptr;
  if (own_error_) return {http::ParseState::error, 0};
  if (err == HPE_PAUSED && message_complete_) {
    const auto consumed = static_cast<std::size_t>(llhttp_get_error_pos(&llhttp_) - bytes);
    if (!note_framing_bytes(bytes + consumed)) return {http::ParseState::error, 0};
    if (body_.framing == http::Framing::chunked &&
        !ends_with_blank_line(data.substr(0, consumed))) {
      fail(400, "bare LF line ending");
      return {http::ParseState::error, 0};
    }
    phase_ = Phase::done;
    return {http::ParseState::complete, consumed};
  }
  if (err != HPE_OK) {
    fail_from_llhttp(err, bytes);
    return {http::ParseState::error, 0};
  }
  remember_tail(data);
  return {http::ParseState::incomplete, data.size()};
}

// A Content-Length body has no framing to check: its bytes are counted
// rather than run through llhttp a second time.
http::BodyProgress MessageParser::take_counted_body(std::string_view data, http::BodySink& sink) {
  const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(body_left_, data.size()));
  if (take > 0) sink.on_body(data.substr(0, take));
  body_left_ -= take;
  if (body_left_ > 0) return {http::ParseState::incomplete, take};
  phase_ = Phase::done;
  return {http::ParseState::complete, take};
}

http::ParseState MessageParser::finish_at_eof() noexcept {
  switch (phase_) {
    case Phase::failed:
      return http::ParseState::error;
    case Phase::done:
      return http::ParseState::complete;
    case Phase::head:
      fail(400, "connection closed before the head ended");
      return http::ParseState::error;
    case Phase::body:
      break;
  }
  if (body_.framing != http::Framing::until_close) {
    fail(400, "connection closed before the body ended");
    return http::ParseState::error;
  }
  // Every byte before the close was body: nothing is left to check.
  phase_ = Phase::done;
  return http::ParseState::complete;
}

}  // namespace portico::detail
