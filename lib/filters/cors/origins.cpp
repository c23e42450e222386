#include "origins.hpp"

#include "../../common/ascii.hpp"
#include "../../http/fields.hpp"

namespace portico::detail {

namespace {

bool is_alpha(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_label_char(char c) noexcept {
  return is_alpha(c) || (c >= '0' && c <= '9') || c == '-';
}

// RFC 3986 scheme, followed by "://"; returns the length of the
// "scheme://" prefix, or 0.
std::size_t scheme_prefix(std::string_view s) noexcept {
  const std::size_t colon = s.find("://");
  if (colon == std::string_view::npos || colon == 0 || !is_alpha(s[0])) return 0;
  for (std::size_t i = 1; i < colon; ++i) {
    const char c = s[i];
    if (!(is_alpha(c) || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')) return 0;
  }
  return colon + 3;
}

// One or more dot-separated labels of [A-Za-z0-9-], none empty.
bool is_labels(std::string_view s) noexcept {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  char previous = '.';
  for (char c : s) {
    if (c == '.' ? previous == '.' : !is_label_char(c)) return false;
    previous = c;
  }
  return true;
}

// host [":" port]: dot-separated labels (browsers send names in their
// ASCII form) or a bracketed IP literal, then up to five digits. Narrower
// than a Host header's grammar, which would let "*" or "%" through.
bool is_host_and_port(std::string_view s) noexcept {
  std::string_view host = s;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    const std::size_t close = s.find(']');
    if (close == std::string_view::npos) return false;
    host = s.substr(0, close + 1);
    if (close + 1 < s.size()) {
      if (s[close + 1] != ':') return false;
      port = s.substr(close + 2);
      if (port.empty()) return false;
    }
    if (!is_valid_authority(host, false)) return false;
  } else {
    const std::size_t colon = s.find(':');
    if (colon != std::string_view::npos) {
      host = s.substr(0, colon);
      port = s.substr(colon + 1);
      if (port.empty()) return false;
    }
    if (!is_labels(host)) return false;
  }
  if (port.size() > 5) return false;
  for (char c : port)
    if (c < '0' || c > '9') return false;
  return true;
}

bool ends_with_icase(std::string_view s, std::string_view suffix) noexcept {
  return s.size() >= suffix.size() && ascii_iequals(s.substr(s.size() - suffix.size()), suffix);
}

}  // namespace

bool is_serialized_origin(std::string_view origin) noexcept {
  if (origin == "null") return true;
  const std::size_t prefix = scheme_prefix(origin);
  if (prefix == 0) return false;
  return is_host_and_port(origin.substr(prefix));
}

Result<OriginRule> parse_origin_rule(std::string_view text) {
  OriginRule rule;
  if (text == "*") {
    rule.kind = OriginRule::Kind::any;
    return rule;
  }
  const std::size_t prefix = scheme_prefix(text);
  if (prefix != 0 && text.substr(prefix).starts_with("*.")) {
    const std::string_view rest = text.substr(prefix + 2);
    const std::string_view host = rest.substr(0, rest.find(':'));
    if (host.find('.') == std::string_view::npos || !is_host_and_port(rest))
      return make_error(ErrorKind::malformed,
                        "expected \"scheme://*.domain[:port]\" with a domain of two or more "
                        "labels, found \"" +
                            std::string(text) + "\"");
    rule.kind = OriginRule::Kind::subdomains;
    rule.prefix.assign(text.substr(0, prefix));
    rule.suffix.assign(text.substr(prefix + 1));
    return rule;
  }
  if (!is_serialized_origin(text))
    return make_error(ErrorKind::malformed,
                      "expected \"*\", \"null\", \"scheme://host[:port]\" or "
                      "\"scheme://*.domain[:port]\", found \"" +
                          std::string(text) + "\"");
  rule.kind = OriginRule::Kind::exact;
  rule.prefix.assign(text);
  return rule;
}

bool origin_matches(const OriginRule& rule, std::string_view origin) noexcept {
  switch (rule.kind) {
    case OriginRule::Kind::any:
      return true;
    case OriginRule::Kind::exact:
      return ascii_iequals(origin, rule.prefix);
    case OriginRule::Kind::subdomains:
      break;
  }
  if (origin.size() <= rule.prefix.size() + rule.suffix.size()) return false;
  if (!ascii_iequals(origin.substr(0, rule.prefix.size()), rule.prefix)) return false;
  if (!ends_with_icase(origin, rule.suffix)) return false;
  // What the "*" stands for: whole labels, so "https://evil.com/.example.com"
  // or "https://a.b@example.com" cannot pass.
  const std::string_view labels =
      origin.substr(rule.prefix.size(), origin.size() - rule.prefix.size() - rule.suffix.size());
  return is_labels(labels);
}

}  // namespace portico::detail
