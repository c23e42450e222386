#include "portico/path.hpp"

#include <cstdint>
#include <string>

namespace portico {
namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_unreserved(unsigned char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// Bytes a path may carry literally. Printable ASCII except the backslash,
// which IIS and some frameworks turn into a separator behind our back.
bool is_allowed_literal(unsigned char c) noexcept {
  return c > 0x20 && c < 0x7f && c != '\\';
}

Error malformed_at(std::size_t offset, std::string_view what) {
  return make_error(ErrorKind::malformed,
                    "path: " + std::string(what) + " at offset " + std::to_string(offset));
}

// Appends to `out` while normalising. The writer never checks bounds per
// byte: the caller guarantees out.size() >= input size, and every step
// writes at most as many bytes as it consumes.
class Normalizer {
 public:
  Normalizer(std::string_view in, char* out, const NormalizeOptions& options)
      : in_(in), out_(out), options_(options) {}

  Result<std::size_t> run() {
    if (in_.empty() || in_[0] != '/') return malformed_at(0, "must start with '/'");
    out_[len_++] = '/';
    std::size_t pos = 1;
    while (pos <= in_.size()) {
      std::size_t end = in_.find('/', pos);
      const bool slash_after = end != std::string_view::npos;
      if (!slash_after) end = in_.size();
      if (auto status = segment(pos, end, slash_after); !status) return std::move(status).error();
      pos = end + 1;
    }
    return len_;
  }

 private:
  // Decodes in_[begin, end) onto the output, then decides what the decoded
  // segment means: a dot segment is taken back out, anything else stays.
  Status segment(std::size_t begin, std::size_t end, bool slash_after) {
    const std::size_t start = len_;
    for (std::size_t i = begin; i < end; ++i) {
      const auto c = static_cast<unsigned char>(in_[i]);
      if (c == '%') {
        if (auto status = escape(i); !status) return status;
        i += 2;
      } else if (is_allowed_literal(c)) {
        out_[len_++] = static_cast<char>(c);
      } else {
        return malformed_at(i, "forbidden byte " + std::to_string(c));
      }
    }
    const std::string_view decoded(out_ + start, len_ - start);
    if (decoded == "." || decoded == "..") {
      len_ = start;
      if (decoded == "..") pop_segment();
      return {};
    }
    if (decoded.empty() && options_.merge_slashes) return {};
    if (slash_after) out_[len_++] = '/';
    return {};
  }

  Status escape(std::size_t at) {
    if (at + 2 >= in_.size()) return malformed_at(at, "truncated percent-encoding");
    const int hi = hex_value(in_[at + 1]);
    const int lo = hex_value(in_[at + 2]);
    if (hi < 0 || lo < 0) return malformed_at(at, "invalid percent-encoding");
    const auto byte = static_cast<unsigned char>(hi * 16 + lo);
    if (is_unreserved(byte)) {
      out_[len_++] = static_cast<char>(byte);
      return {};
    }
    if (options_.reject_encoded_slashes && (byte == '/' || byte == '\\')) {
      return make_error(ErrorKind::invalid_argument,
                        "path: encoded slash at offset " + std::to_string(at) + " is refused");
    }
    static constexpr char kHex[] = "0123456789ABCDEF";
    out_[len_++] = '%';
    out_[len_++] = kHex[hi];
    out_[len_++] = kHex[lo];
    return {};
  }

  // Removes the last complete segment (and the slash that ends it) from the
  // output; at the root there is nothing to remove, so `..` cannot climb.
  void pop_segment() noexcept {
    if (len_ <= 1) return;
    std::size_t i = len_ - 1;  // out_[i] == '/'
    while (i > 0 && out_[i - 1] != '/')
      --i;
    len_ = i;
  }

  std::string_view in_;
  char* out_;
  const NormalizeOptions& options_;
  std::size_t len_ = 0;
};

}  // namespace

Result<std::size_t> normalize_path(std::string_view path, std::span<char> out,
                                   const NormalizeOptions& options) {
  if (out.size() < path.size()) {
    return make_error(ErrorKind::capacity, "path: output buffer of " + std::to_string(out.size()) +
                                               " bytes is smaller than the " +
                                               std::to_string(path.size()) + "-byte input");
  }
  return Normalizer(path, out.data(), options).run();
}

Result<std::string> normalize_path(std::string_view path, const NormalizeOptions& options) {
  std::string out(path.size() + 1, '\0');
  auto n = normalize_path(path, std::span<char>(out.data(), out.size()), options);
  if (!n) return std::move(n).error();
  out.resize(*n);
  return out;
}

}  // namespace portico
