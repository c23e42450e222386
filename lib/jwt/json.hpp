// A small strict JSON reader (RFC 8259) for JOSE headers and JWT claims.
//
// Tokens are parsed on every cache miss, so this reader is built for that
// job rather than general use: one pass into a flat array of nodes (a tape),
// string values unescaped once into a side buffer so that lookups return
// views, and lookups that walk the tape without allocating. It refuses what a
// security-sensitive reader should: duplicate member names (RFC 7515 section
// 5.2 lets a JOSE reader reject them, and two `alg`s or two `sub`s must never
// be read differently by two components), invalid UTF-8, unpaired
// surrogates, nesting deeper than a fixed bound, and trailing bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace portico::detail {

enum class JsonType : std::uint8_t { null, boolean, number, string, array, object };

struct JsonNode {
  JsonType type = JsonType::null;
  bool boolean = false;
  std::uint32_t count = 0;                       // array elements or object members
  std::uint32_t next = 0;                        // index of the node after this value's subtree
  std::uint32_t str_offset = 0, str_length = 0;  // strings: into the side buffer
  std::uint32_t raw_offset = 0, raw_length = 0;  // the value's text in the source
  double number = 0;
};

class JsonDoc {
 public:
  static constexpr std::size_t kMaxDepth = 32;

  // Parses `text`, which must stay alive and unchanged while the document is
  // used (raw() returns views into it). On failure returns false and says
  // why in `error`, with the byte offset.
  bool parse(std::string_view text, std::string& error);

  // Points the document at a moved copy of the text it parsed.
  void rebind(std::string_view text) noexcept { text_ = text; }
  bool empty() const noexcept { return nodes_.empty(); }
  const JsonNode& root() const noexcept { return nodes_[0]; }
  std::string_view string(const JsonNode& n) const noexcept {
    return {strings_.data() + n.str_offset, n.str_length};
  }
  std::string_view raw(const JsonNode& n) const noexcept {
    return text_.substr(n.raw_offset, n.raw_length);
  }

  // The value of member `name` of object `obj`, or nullptr.
  const JsonNode* member(const JsonNode& obj, std::string_view name) const noexcept;
  // The `i`-th element of array `arr` (i < arr.count).
  const JsonNode& element(const JsonNode& arr, std::uint32_t i) const noexcept;
  // A claim by path: first `path` as one top-level member name (claim names
  // are often URIs full of dots), then as dot-separated member names.
  const JsonNode* find(std::string_view path) const noexcept;

  const JsonNode* first_child(const JsonNode& n) const noexcept { return &n + 1; }
  const JsonNode& at(std::uint32_t index) const noexcept { return nodes_[index]; }
  std::uint32_t index_of(const JsonNode& n) const noexcept {
    return static_cast<std::uint32_t>(&n - nodes_.data());
  }

 private:
  std::string_view text_;
  std::string strings_;
  std::vector<JsonNode> nodes_;
};

}  // namespace portico::detail
