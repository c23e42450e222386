#include "json_fields.hpp"

#include <cctype>
#include <vector>

#include "../error_response.hpp"

namespace portico::detail {

namespace {

struct Member {
  std::string_view raw_key;  // between the quotes, escapes as written
  std::string_view value;    // the value's text
  std::string key;           // decoded, only when raw_key has escapes
  bool escaped = false;
  std::string_view name() const { return escaped ? std::string_view(key) : raw_key; }
};

class Scanner {
 public:
  Scanner(std::string_view text, unsigned max_depth) : s_(text), max_depth_(max_depth) {}

  bool at_end() {
    skip_ws();
    return i_ == s_.size();
  }
  bool eat(char c) {
    skip_ws();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  // A string; `raw` gets its contents between the quotes.
  bool string(std::string_view& raw, bool& escaped) {
    skip_ws();
    if (i_ >= s_.size() || s_[i_] != '"') return false;
    const std::size_t start = ++i_;
    escaped = false;
    while (i_ < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        raw = s_.substr(start, i_ - start);
        ++i_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        escaped = true;
        if (++i_ >= s_.size()) return false;
        const char e = s_[i_];
        if (e == 'u') {
          for (int k = 1; k <= 4; ++k)
            if (i_ + k >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_ + k])))
              return false;
          i_ += 4;
        } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
          return false;
        }
      }
      ++i_;
    }
    return false;
  }
  // Any value; `text` gets its span.
  bool value(std::string_view& text, unsigned depth = 0) {
    skip_ws();
    const std::size_t start = i_;
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    bool ok;
    if (c == '"') {
      std::string_view unused;
      bool escaped;
      ok = string(unused, escaped);
    } else if (c == '{' || c == '[') {
      ok = depth < max_depth_ && container(depth + 1);
    } else if (c == 't') {
      ok = literal("true");
    } else if (c == 'f') {
      ok = literal("false");
    } else if (c == 'n') {
      ok = literal("null");
    } else {
      ok = number();
    }
    text = s_.substr(start, i_ - start);
    return ok;
  }

 private:
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }
  bool digits() {
    const std::size_t start = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9')
      ++i_;
    return i_ > start;
  }
  bool number() {
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    if (i_ < s_.size() && s_[i_] == '0') {
      ++i_;
    } else if (!digits()) {
      return false;
    }
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      if (!digits()) return false;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (!digits()) return false;
    }
    return true;
  }
  // An object or array whose opening bracket is at i_.
  bool container(unsigned depth) {
    const bool object = s_[i_++] == '{';
    const char close = object ? '}' : ']';
    if (eat(close)) return true;
    for (;;) {
      std::string_view unused;
      if (object) {
        bool escaped;
        if (!string(unused, escaped) || !eat(':')) return false;
      }
      if (!value(unused, depth)) return false;
      if (eat(close)) return true;
      if (!eat(',')) return false;
    }
  }

  std::string_view s_;
  std::size_t i_ = 0;
  unsigned max_depth_;
};

void append_utf8(std::string& out, unsigned cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

unsigned hex4(std::string_view s) {
  unsigned v = 0;
  for (char c : s.substr(0, 4))
    v = v * 16 + static_cast<unsigned>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
  return v;
}

// The key a scanned (hence well-formed) string body stands for, so that
// "internal\u005fmetadata" is the same name as internal_metadata.
std::string decode(std::string_view raw) {
  std::string out;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\\') {
      out += raw[i];
      continue;
    }
    const char e = raw[++i];
    switch (e) {
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        unsigned cp = hex4(raw.substr(i + 1));
        i += 4;
        if (cp >= 0xd800 && cp < 0xdc00 && i + 6 < raw.size() && raw[i + 1] == '\\' &&
            raw[i + 2] == 'u') {
          const unsigned low = hex4(raw.substr(i + 3));
          if (low >= 0xdc00 && low < 0xe000) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            i += 6;
          }
        }
        append_utf8(out, cp);
        break;
      }
      default:
        out += e;
        break;
    }
  }
  return out;
}

bool listed(std::span<const std::string> names, std::string_view name) {
  for (const auto& n : names)
    if (n == name) return true;
  return false;
}

const filters::Rename* rename_of(std::span<const filters::Rename> renames, std::string_view name) {
  for (const auto& r : renames)
    if (r.from == name) return &r;
  return nullptr;
}

}  // namespace

std::optional<std::string> edit_json_members(std::string_view body,
                                             std::span<const std::string> remove,
                                             std::span<const filters::Rename> rename,
                                             unsigned max_depth) {
  Scanner scan(body, max_depth);
  if (!scan.eat('{')) return std::nullopt;
  std::vector<Member> members;
  if (!scan.eat('}')) {
    for (;;) {
      Member m;
      if (!scan.string(m.raw_key, m.escaped) || !scan.eat(':') || !scan.value(m.value, 1))
        return std::nullopt;
      if (m.escaped) m.key = decode(m.raw_key);
      members.push_back(std::move(m));
      if (scan.eat('}')) break;
      if (!scan.eat(',')) return std::nullopt;
    }
  }
  if (!scan.at_end()) return std::nullopt;

  // Which renames have a source here: their target, if present too, is
  // replaced.
  std::vector<bool> source_present(rename.size(), false);
  for (std::size_t k = 0; k < rename.size(); ++k) {
    for (const Member& m : members)
      if (m.name() == rename[k].from) source_present[k] = true;
  }
  bool changed = false;
  std::string out;
  out.reserve(body.size());
  out += '{';
  for (const Member& m : members) {
    const std::string_view name = m.name();
    const filters::Rename* r = rename_of(rename, name);
    bool drop = r == nullptr && listed(remove, name);
    for (std::size_t k = 0; r == nullptr && !drop && k < rename.size(); ++k)
      drop = source_present[k] && rename[k].to == name;
    if (drop) {
      changed = true;
      continue;
    }
    if (out.size() > 1) out += ',';
    out += '"';
    if (r != nullptr) {
      append_json_escaped(out, r->to);
      changed = true;
    } else {
      out += m.raw_key;
    }
    out += "\":";
    out += m.value;
  }
  out += '}';
  if (!changed) return std::nullopt;
  return out;
}

}  // namespace portico::detail
