#include "pattern.hpp"

#include <string>

#include "portico/path.hpp"
#include "portico/router.hpp"

namespace portico::detail {
namespace {

Error bad_pattern(std::string_view pattern, std::string_view what) {
  return make_error(ErrorKind::malformed,
                    "path pattern '" + std::string(pattern) + "': " + std::string(what));
}

bool is_name_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

// True for ".", "..", and their percent-encoded spellings.
bool is_dot_segment(std::string_view segment) noexcept {
  std::size_t dots = 0;
  std::size_t i = 0;
  while (i < segment.size()) {
    if (segment[i] == '.') {
      ++i;
    } else if (segment.substr(i, 3) == "%2e" || segment.substr(i, 3) == "%2E") {
      i += 3;
    } else {
      return false;
    }
    ++dots;
  }
  return dots == 1 || dots == 2;
}

bool has_dot_segment(std::string_view text) noexcept {
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find('/', pos);
    if (end == std::string_view::npos) end = text.size();
    if (is_dot_segment(text.substr(pos, end - pos))) return true;
    pos = end + 1;
  }
  return false;
}

// Normalises one run of static text so that it compares equal to a
// normalised request path, and refuses what no normalised path can contain.
Status append_static(std::string_view pattern, std::string_view text,
                     std::vector<PatternToken>& out) {
  if (text.find_first_of("{}") != std::string_view::npos) {
    return bad_pattern(pattern, "'{' and '}' may only enclose a whole segment's capture");
  }
  // Normalise as if it were a path of its own: a leading '/' is always there
  // because text runs start at the pattern's start or right after a capture.
  if (has_dot_segment(text)) {
    return bad_pattern(pattern, "contains '.' or '..' segments; write the path they stand for");
  }
  auto normal = normalize_path(text);
  if (!normal) return bad_pattern(pattern, normal.error().message);
  if (!out.empty() && out.back().kind == PatternToken::Kind::text) {
    out.back().text += *normal;
  } else {
    out.push_back({PatternToken::Kind::text, std::move(*normal)});
  }
  return {};
}

}  // namespace

Result<std::vector<PatternToken>> parse_path_pattern(std::string_view pattern) {
  if (pattern.empty() || pattern[0] != '/') return bad_pattern(pattern, "must start with '/'");
  std::vector<PatternToken> tokens;
  std::size_t captures = 0;
  std::size_t pos = 0;
  while (pos < pattern.size()) {
    const std::size_t open = pattern.find('{', pos);
    const std::size_t stars = pattern.find("/**", pos);
    if (stars != std::string_view::npos && stars < open) {
      if (stars + 3 != pattern.size()) {
        return bad_pattern(pattern, "'/**' may only end the pattern");
      }
      if (auto s = append_static(pattern, pattern.substr(pos, stars + 1 - pos), tokens); !s) {
        return std::move(s).error();
      }
      tokens.push_back({PatternToken::Kind::catchall, "*"});
      return tokens;
    }
    if (open == std::string_view::npos) {
      if (auto s = append_static(pattern, pattern.substr(pos), tokens); !s) {
        return std::move(s).error();
      }
      break;
    }
    if (open == 0 || pattern[open - 1] != '/') {
      return bad_pattern(pattern, "a capture must take a whole segment (no text before '{')");
    }
    if (auto s = append_static(pattern, pattern.substr(pos, open - pos), tokens); !s) {
      return std::move(s).error();
    }
    const std::size_t close = pattern.find('}', open);
    if (close == std::string_view::npos) return bad_pattern(pattern, "unclosed '{'");
    std::string_view name = pattern.substr(open + 1, close - open - 1);
    const bool catchall = !name.empty() && name[0] == '*';
    if (catchall) name.remove_prefix(1);
    for (char c : name) {
      if (!is_name_char(c)) {
        return bad_pattern(pattern, "capture name '" + std::string(name) +
                                        "' may hold only letters, digits, '_' and '-'");
      }
    }
    if (name.empty() && !catchall) return bad_pattern(pattern, "empty capture name '{}'");
    if (++captures > kMaxParams) {
      return bad_pattern(pattern, "more than " + std::to_string(kMaxParams) + " captures");
    }
    pos = close + 1;
    if (catchall) {
      if (pos != pattern.size())
        return bad_pattern(pattern, "a catch-all may only end the pattern");
      tokens.push_back({PatternToken::Kind::catchall, name.empty() ? "*" : std::string(name)});
      return tokens;
    }
    if (pos < pattern.size() && pattern[pos] != '/') {
      return bad_pattern(pattern, "a capture must take a whole segment (no text after '}')");
    }
    tokens.push_back({PatternToken::Kind::param, std::string(name)});
  }
  return tokens;
}

Result<HostPattern> parse_host_pattern(std::string_view host) {
  if (host.empty() || host == "*") return HostPattern{HostPattern::Kind::any, {}};
  std::string lower;
  lower.reserve(host.size());
  for (char c : host) {
    const char l = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    const bool ok = (l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') || l == '-' || l == '.' ||
                    l == '_' || l == '*' || l == ':' || l == '[' || l == ']';
    if (!ok) {
      return make_error(ErrorKind::malformed,
                        "host pattern '" + std::string(host) + "': character not allowed");
    }
    lower.push_back(l);
  }
  if (lower.size() > 255) {
    return make_error(ErrorKind::malformed, "host pattern longer than 255 characters");
  }
  const std::size_t star = lower.find('*');
  if (star == std::string::npos) return HostPattern{HostPattern::Kind::exact, std::move(lower)};
  if (star != 0 || lower.size() < 3 || lower[1] != '.' || lower.find('*', 1) != std::string::npos) {
    return make_error(ErrorKind::malformed, "host pattern '" + std::string(host) +
                                                "': '*' may only stand as the first label, "
                                                "as in '*.example.com'");
  }
  return HostPattern{HostPattern::Kind::wildcard, lower.substr(1)};
}

int canonical_request_host(std::string_view host, char* buf, std::size_t cap) noexcept {
  if (!host.empty() && host[0] == '[') {
    const std::size_t close = host.find(']');
    if (close != std::string_view::npos) host = host.substr(0, close + 1);
  } else if (const std::size_t colon = host.find(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.empty() || host.size() > cap) return -1;
  for (std::size_t i = 0; i < host.size(); ++i) {
    const char c = host[i];
    buf[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  return static_cast<int>(host.size());
}

}  // namespace portico::detail
