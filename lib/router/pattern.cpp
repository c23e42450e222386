#include "pattern.hpp"

#include <string>

#include "../common/ascii.hpp"
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

// Every capture, the unnamed `/**` included, takes one of a Match's
// kMaxParams slots, and two captures of one name would make
// Match::param(name) ambiguous.
Status add_capture(std::string_view pattern, PatternToken::Kind kind, std::string name,
                   std::vector<PatternToken>& tokens) {
  std::size_t captures = 0;
  for (const PatternToken& t : tokens) {
    if (t.kind == PatternToken::Kind::text) continue;
    if (t.text == name) return bad_pattern(pattern, "two captures named '" + name + "'");
    ++captures;
  }
  if (captures == kMaxParams) {
    return bad_pattern(pattern, "more than " + std::to_string(kMaxParams) + " captures");
  }
  tokens.push_back({kind, std::move(name)});
  return {};
}

}  // namespace

Result<std::vector<PatternToken>> parse_path_pattern(std::string_view pattern) {
  if (pattern.empty() || pattern[0] != '/') return bad_pattern(pattern, "must start with '/'");
  std::vector<PatternToken> tokens;
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
      if (auto s = add_capture(pattern, PatternToken::Kind::catchall, "*", tokens); !s) {
        return std::move(s).error();
      }
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
    pos = close + 1;
    if (catchall && pos != pattern.size()) {
      return bad_pattern(pattern, "a catch-all may only end the pattern");
    }
    if (!catchall && pos < pattern.size() && pattern[pos] != '/') {
      return bad_pattern(pattern, "a capture must take a whole segment (no text after '}')");
    }
    const auto kind = catchall ? PatternToken::Kind::catchall : PatternToken::Kind::param;
    if (auto s = add_capture(pattern, kind, name.empty() ? "*" : std::string(name), tokens); !s) {
      return std::move(s).error();
    }
  }
  return tokens;
}

namespace {

bool is_label_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// Dot-separated labels, none of them empty: a request host with an empty
// label is never looked up (see canonical_request_host), so a pattern with
// one could never match.
bool is_host_name(std::string_view name) noexcept {
  std::size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
    } else if (is_label_char(c)) {
      ++label;
    } else {
      return false;
    }
  }
  return label > 0;
}

// "[::1]", "[2001:db8::1]", "[::ffff:192.0.2.1]", already lower-cased.
bool is_ip_literal(std::string_view host) noexcept {
  return host.size() > 2 && host.front() == '[' && host.back() == ']' &&
         host.substr(1, host.size() - 2).find_first_not_of("0123456789abcdef:.") ==
             std::string_view::npos;
}

Error bad_host(std::string_view host, std::string_view what) {
  return make_error(ErrorKind::malformed,
                    "host pattern '" + std::string(host) + "': " + std::string(what));
}

}  // namespace

Result<HostPattern> parse_host_pattern(std::string_view host) {
  if (host.empty() || host == "*") return HostPattern{HostPattern::Kind::any, {}};
  if (host.size() > 255) return bad_host(host.substr(0, 32), "longer than 255 characters");
  std::string lower(host);
  for (char& c : lower)
    c = ascii_lower(c);
  if (is_ip_literal(lower)) return HostPattern{HostPattern::Kind::exact, std::move(lower)};
  // The request's host is looked up without its trailing dot, so the
  // pattern's goes too: "api.example.com." and "api.example.com" are one.
  if (lower.size() > 1 && lower.back() == '.') lower.pop_back();
  const bool wildcard = lower.starts_with("*.");
  if (!is_host_name(std::string_view(lower).substr(wildcard ? 2 : 0))) {
    // A port is refused too: the request's port is never compared, so a
    // pattern with one would silently match nothing.
    return bad_host(host,
                    "expected a name ('api.example.com'), a wildcard ('*.example.com') or an "
                    "IPv6 literal ('[::1]'), without a port or empty labels");
  }
  if (wildcard) return HostPattern{HostPattern::Kind::wildcard, lower.substr(1)};
  return HostPattern{HostPattern::Kind::exact, std::move(lower)};
}

int canonical_request_host(std::string_view host, char* buf, std::size_t cap) noexcept {
  const bool literal = !host.empty() && host[0] == '[';
  if (literal) {
    const std::size_t close = host.find(']');
    if (close != std::string_view::npos) host = host.substr(0, close + 1);
  } else if (const std::size_t colon = host.find(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.empty() || host.size() > cap) return -1;
  char previous = '.';  // so that a leading dot counts as an empty label
  for (std::size_t i = 0; i < host.size(); ++i) {
    const char c = host[i];
    // An empty label ("a..example.com", ".example.com") names no host; it
    // must not reach a wildcard as if it were a subdomain.
    if (!literal && c == '.' && previous == '.') return -1;
    buf[i] = ascii_lower(c);
    previous = c;
  }
  return static_cast<int>(host.size());
}

}  // namespace portico::detail
