// The llhttp driver shared by the request and the response parser: it runs
// the head scan, feeds llhttp, collects the start line and the header views,
// pauses llhttp at the end of the head and of the body, and turns llhttp's
// errors into ParseErrors. What a head means is left to the subclass.
//
// llhttp is reached from this folder only (house rule), and its state lives
// inside the parser object, so a parser allocates once, when it is made.
#pragma once

#include <llhttp.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "head_scan.hpp"
#include "portico/http.hpp"

namespace portico::detail {

struct LlhttpCallbacks;

class MessageParser {
 public:
  enum class Direction : unsigned char { request, response };

  MessageParser(Direction direction, const http::Limits& limits);
  virtual ~MessageParser() = default;
  MessageParser(const MessageParser&) = delete;
  MessageParser& operator=(const MessageParser&) = delete;

  http::ParseState parse_head(std::string_view buffered);
  std::size_t head_size() const noexcept { return head_size_; }
  http::BodyProgress parse_body(std::string_view data, http::BodySink& sink);
  http::ParseState finish_at_eof() noexcept;
  const http::ParseError& error() const noexcept { return error_; }
  void reset() noexcept;

 protected:
  struct BodyShape {
    http::Framing framing = http::Framing::none;
    std::uint64_t content_length = 0;
  };

  // Gives the head its meaning once llhttp has accepted all of it: fills the
  // subclass's head, or calls fail() and returns nothing.
  virtual std::optional<BodyShape> finish_head() noexcept = 0;
  virtual void clear_head() noexcept = 0;

  // Records the error to answer (the first one wins). A response parser's
  // errors are all the gateway's 502: the peer that erred is the upstream.
  void fail(int request_status, std::string_view reason) noexcept;

  Direction direction() const noexcept { return direction_; }
  const http::Limits& limits() const noexcept { return limits_; }
  const llhttp_t& llhttp() const noexcept { return llhttp_; }
  // The request or status line, without its CRLF.
  std::string_view start_line() const noexcept { return start_line_; }
  std::string_view method() const noexcept { return method_; }
  std::string_view target() const noexcept { return target_; }
  std::span<const http::Header> headers() const noexcept { return {headers_.get(), header_count_}; }

 private:
  friend struct LlhttpCallbacks;
  enum class Phase : unsigned char { head, body, done, failed };

  http::ParseState fail_head(const HeadScan& scan) noexcept;
  void fail_from_llhttp(llhttp_errno_t err, const char* data) noexcept;
  bool note_framing_bytes(const char* upto) noexcept;
  std::size_t next_slice(std::size_t remaining) const noexcept;
  bool ends_with_blank_line(std::string_view consumed) const noexcept;
  void remember_tail(std::string_view consumed) noexcept;
  http::BodyProgress take_counted_body(std::string_view data, http::BodySink& sink);

  // Callback bodies.
  int on_span(std::string_view& into, const char* at, std::size_t length) noexcept;
  int on_version_complete() noexcept;
  int on_header_field(const char* at, std::size_t length) noexcept;
  int on_header_field_complete() noexcept;
  int on_header_value(const char* at, std::size_t length) noexcept;
  int on_header_value_complete() noexcept;
  int on_headers_complete() noexcept;
  int on_body(const char* at, std::size_t length) noexcept;
  int on_message_complete() noexcept;

  const Direction direction_;
  const http::Limits limits_;
  llhttp_t llhttp_{};
  std::unique_ptr<http::Header[]> headers_;  // max_headers + 1 of them, made once
  std::size_t header_count_ = 0;
  bool field_open_ = false;  // a header name is being received
  std::string_view start_line_;
  std::size_t line_start_ = 0;  // offset of the start line in the head's buffer
  std::string_view method_;
  std::string_view target_;

  Phase phase_ = Phase::head;
  bool own_error_ = false;
  http::ParseError error_;
  std::size_t head_size_ = 0;
  BodyShape body_;
  std::uint64_t body_left_ = 0;  // of a Content-Length body
  bool head_accepted_ = false;
  bool message_complete_ = false;

  // Body phase.
  http::BodySink* sink_ = nullptr;
  const char* cursor_ = nullptr;  // end of the last body piece in this feed
  std::size_t framing_run_ = 0;   // chunk-framing and trailer bytes since the last body byte
  std::size_t trailer_fields_ = 0;
  std::array<char, 4> tail_{};  // the last bytes of earlier feeds, newest last
};

}  // namespace portico::detail
