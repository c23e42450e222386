#include "json.hpp"

#include <algorithm>
#include <charconv>
#include <string>

namespace portico::detail {
namespace {

class Parser {
 public:
  Parser(std::string_view text, std::string& strings, std::vector<JsonNode>& nodes,
         std::string& error)
      : s_(text), strings_(strings), nodes_(nodes), error_(error) {}

  bool parse_document() {
    skip_ws();
    if (!value(0)) return false;
    skip_ws();
    if (pos_ != s_.size()) return fail("unexpected data after the JSON value");
    return true;
  }

 private:
  bool fail(const char* what) {
    error_ = std::string(what) + " at byte " + std::to_string(pos_);
    return false;
  }

  void skip_ws() noexcept {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return fail("invalid literal");
    pos_ += word.size();
    return true;
  }

  std::uint32_t push(JsonType type) {
    nodes_.emplace_back();
    nodes_.back().type = type;
    nodes_.back().raw_offset = static_cast<std::uint32_t>(pos_);
    return static_cast<std::uint32_t>(nodes_.size() - 1);
  }

  void close(std::uint32_t index) {
    JsonNode& n = nodes_[index];
    n.raw_length = static_cast<std::uint32_t>(pos_ - n.raw_offset);
    n.next = static_cast<std::uint32_t>(nodes_.size());
  }

  bool value(std::size_t depth) {
    if (pos_ >= s_.size()) return fail("unexpected end of JSON");
    switch (s_[pos_]) {
      case '{':
        return object(depth);
      case '[':
        return array(depth);
      case '"': {
        std::uint32_t i = push(JsonType::string);
        if (!string(i)) return false;
        close(i);
        return true;
      }
      case 't':
      case 'f': {
        std::uint32_t i = push(JsonType::boolean);
        nodes_[i].boolean = s_[pos_] == 't';
        if (!literal(nodes_[i].boolean ? "true" : "false")) return false;
        close(i);
        return true;
      }
      case 'n': {
        std::uint32_t i = push(JsonType::null);
        if (!literal("null")) return false;
        close(i);
        return true;
      }
      default:
        return number();
    }
  }

  // An object or array: the opening byte, then `item` (a member or an
  // element) repeated with commas in between, then `close_char`.
  template <class Item>
  bool container(JsonType type, char close_char, std::size_t depth, std::uint32_t& self,
                 Item item) {
    if (depth >= JsonDoc::kMaxDepth) return fail("JSON nested too deeply");
    self = push(type);
    ++pos_;
    skip_ws();
    std::uint32_t count = 0;
    if (pos_ < s_.size() && s_[pos_] == close_char) {
      ++pos_;
    } else {
      for (;;) {
        skip_ws();
        if (!item()) return false;
        ++count;
        skip_ws();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < s_.size() && s_[pos_] == close_char) {
          ++pos_;
          break;
        }
        return fail(close_char == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
      }
    }
    nodes_[self].count = count;
    close(self);
    return true;
  }

  bool object(std::size_t depth) {
    std::uint32_t self = 0;
    const bool ok = container(JsonType::object, '}', depth, self, [&] {
      if (pos_ >= s_.size() || s_[pos_] != '"') return fail("expected a member name");
      std::uint32_t key = push(JsonType::string);
      if (!string(key)) return false;
      close(key);
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != ':') return fail("expected ':'");
      ++pos_;
      skip_ws();
      return value(depth + 1);
    });
    return ok && unique_names(self);
  }

  // Member names must be unique; sorting the names' views finds repeats in
  // O(n log n), so a header of many members costs no more than parsing it.
  bool unique_names(std::uint32_t self) {
    const JsonNode& obj = nodes_[self];
    if (obj.count < 2) return true;
    // Reused per thread: sorting names must not cost an allocation per token.
    thread_local std::vector<std::string_view> names_;
    names_.clear();
    std::uint32_t i = self + 1;
    for (std::uint32_t m = 0; m < obj.count; ++m) {
      const JsonNode& k = nodes_[i];
      names_.emplace_back(strings_.data() + k.str_offset, k.str_length);
      i = nodes_[i + 1].next;
    }
    std::sort(names_.begin(), names_.end());
    if (std::adjacent_find(names_.begin(), names_.end()) != names_.end()) {
      pos_ = obj.raw_offset;
      return fail("duplicate member name in object");
    }
    return true;
  }

  bool array(std::size_t depth) {
    std::uint32_t self = 0;
    return container(JsonType::array, ']', depth, self, [&] { return value(depth + 1); });
  }

  bool number() {
    std::uint32_t self = push(JsonType::number);
    const std::size_t start = pos_;
    auto digit = [&] { return pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9'; };
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    if (!digit()) return fail("invalid value");
    if (s_[pos_] == '0') {
      ++pos_;
    } else {
      while (digit())
        ++pos_;
    }
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (!digit()) return fail("invalid number");
      while (digit())
        ++pos_;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digit()) return fail("invalid number");
      while (digit())
        ++pos_;
    }
    double v = 0;
    auto [end, ec] = std::from_chars(s_.data() + start, s_.data() + pos_, v);
    if (ec != std::errc() || end != s_.data() + pos_) return fail("number out of range");
    nodes_[self].number = v;
    close(self);
    return true;
  }

  static int hex(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  bool hex4(std::uint32_t& out) {
    if (pos_ + 4 > s_.size()) return fail("truncated \\u escape");
    out = 0;
    for (int k = 0; k < 4; ++k) {
      int h = hex(s_[pos_ + static_cast<std::size_t>(k)]);
      if (h < 0) return fail("invalid \\u escape");
      out = out << 4 | static_cast<std::uint32_t>(h);
    }
    pos_ += 4;
    return true;
  }

  void put_utf8(std::uint32_t cp) {
    if (cp < 0x80) {
      strings_ += static_cast<char>(cp);
    } else if (cp < 0x800) {
      strings_ += static_cast<char>(0xc0 | cp >> 6);
      strings_ += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      strings_ += static_cast<char>(0xe0 | cp >> 12);
      strings_ += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      strings_ += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      strings_ += static_cast<char>(0xf0 | cp >> 18);
      strings_ += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      strings_ += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      strings_ += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  bool escape() {
    ++pos_;  // the backslash
    if (pos_ >= s_.size()) return fail("truncated escape");
    char c = s_[pos_++];
    switch (c) {
      case '"':
      case '\\':
      case '/':
        strings_ += c;
        return true;
      case 'b':
        strings_ += '\b';
        return true;
      case 'f':
        strings_ += '\f';
        return true;
      case 'n':
        strings_ += '\n';
        return true;
      case 'r':
        strings_ += '\r';
        return true;
      case 't':
        strings_ += '\t';
        return true;
      case 'u':
        break;
      default:
        --pos_;
        return fail("invalid escape");
    }
    std::uint32_t cp = 0;
    if (!hex4(cp)) return false;
    if (cp >= 0xdc00 && cp <= 0xdfff) return fail("unpaired surrogate escape");
    if (cp >= 0xd800 && cp <= 0xdbff) {
      std::uint32_t low = 0;
      if (pos_ + 2 > s_.size() || s_[pos_] != '\\' || s_[pos_ + 1] != 'u') {
        return fail("unpaired surrogate escape");
      }
      pos_ += 2;
      if (!hex4(low)) return false;
      if (low < 0xdc00 || low > 0xdfff) return fail("unpaired surrogate escape");
      cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
    }
    put_utf8(cp);
    return true;
  }

  // Copies one UTF-8 sequence starting at pos_, validating it (no overlong
  // forms, no surrogates, nothing above U+10FFFF).
  bool utf8_sequence() {
    const auto* p = reinterpret_cast<const unsigned char*>(s_.data());
    unsigned char b0 = p[pos_];
    std::size_t len;
    std::uint32_t min, cp;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
      len = 2, min = 0x80, cp = b0 & 0x1f;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      len = 3, min = 0x800, cp = b0 & 0x0f;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      len = 4, min = 0x10000, cp = b0 & 0x07;
    } else {
      return fail("invalid UTF-8");
    }
    if (pos_ + len > s_.size()) return fail("invalid UTF-8");
    for (std::size_t k = 1; k < len; ++k) {
      unsigned char b = p[pos_ + k];
      if ((b & 0xc0) != 0x80) return fail("invalid UTF-8");
      cp = cp << 6 | (b & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return fail("invalid UTF-8");
    strings_.append(s_.data() + pos_, len);
    pos_ += len;
    return true;
  }

  bool string(std::uint32_t self) {
    ++pos_;  // opening quote
    nodes_[self].str_offset = static_cast<std::uint32_t>(strings_.size());
    for (;;) {
      // Copy the run of plain characters in one go.
      std::size_t run = pos_;
      while (run < s_.size()) {
        auto c = static_cast<unsigned char>(s_[run]);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
        ++run;
      }
      strings_.append(s_.data() + pos_, run - pos_);
      pos_ = run;
      if (pos_ >= s_.size()) return fail("unterminated string");
      auto c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        break;
      }
      if (c == '\\') {
        if (!escape()) return false;
      } else if (c < 0x20) {
        return fail("control character in string");
      } else if (!utf8_sequence()) {
        return false;
      }
    }
    nodes_[self].str_length = static_cast<std::uint32_t>(strings_.size() - nodes_[self].str_offset);
    return true;
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  std::string& strings_;
  std::vector<JsonNode>& nodes_;
  std::string& error_;
};

}  // namespace

bool JsonDoc::parse(std::string_view text, std::string& error) {
  text_ = text;
  strings_.clear();
  nodes_.clear();
  // Unescaped strings never outgrow their source, so views stay valid once
  // the buffer is sized; a node needs at least one byte of source.
  strings_.reserve(text.size());
  nodes_.reserve(text.size() / 8 + 8);
  if (text.size() >= UINT32_MAX) {
    error = "JSON text too large";
    return false;
  }
  Parser p(text, strings_, nodes_, error);
  return p.parse_document();
}

const JsonNode* JsonDoc::member(const JsonNode& obj, std::string_view name) const noexcept {
  if (obj.type != JsonType::object) return nullptr;
  std::uint32_t i = index_of(obj) + 1;
  for (std::uint32_t m = 0; m < obj.count; ++m) {
    if (string(nodes_[i]) == name) return &nodes_[i + 1];
    i = nodes_[i + 1].next;
  }
  return nullptr;
}

const JsonNode& JsonDoc::element(const JsonNode& arr, std::uint32_t index) const noexcept {
  std::uint32_t i = index_of(arr) + 1;
  for (std::uint32_t e = 0; e < index; ++e)
    i = nodes_[i].next;
  return nodes_[i];
}

const JsonNode* JsonDoc::find(std::string_view path) const noexcept {
  if (nodes_.empty()) return nullptr;
  if (const JsonNode* whole = member(root(), path)) return whole;
  const JsonNode* at = &root();
  while (at != nullptr) {
    std::size_t dot = path.find('.');
    at = member(*at, path.substr(0, dot));
    if (dot == std::string_view::npos) return at;
    path.remove_prefix(dot + 1);
  }
  return nullptr;
}

}  // namespace portico::detail
