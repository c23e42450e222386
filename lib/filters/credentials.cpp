#include "credentials.hpp"

#include <cstring>

#include "../common/ascii.hpp"
#include "../http/fields.hpp"
#include "portico/filters/request_state.hpp"

namespace portico::detail {

namespace {

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes into `out` (at least raw.size() bytes); the decoded length, or
// nullopt for a malformed escape.
std::optional<std::size_t> decode_into(std::string_view raw, char* out) noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '%') {
      out[n++] = raw[i];
      continue;
    }
    if (i + 2 >= raw.size()) return std::nullopt;
    const int hi = hex_digit(raw[i + 1]), lo = hex_digit(raw[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[n++] = static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return n;
}

bool names_one_of(std::string_view raw_name, std::span<const std::string> names) noexcept {
  for (const std::string& n : names)
    if (query_name_is(raw_name, n)) return true;
  return false;
}

}  // namespace

std::optional<std::string_view> percent_decode(proxy::RequestContext& ctx, std::string_view raw) {
  if (raw.find('%') == std::string_view::npos) return raw;
  auto* out = static_cast<char*>(ctx.allocate(raw.size(), 1));
  const auto n = decode_into(raw, out);
  if (!n) return std::nullopt;
  return std::string_view(out, *n);
}

bool query_name_is(std::string_view raw_name, std::string_view name) noexcept {
  if (raw_name.find('%') == std::string_view::npos) return raw_name == name;
  // An escape makes the raw name longer than what it decodes to.
  if (raw_name.size() > 3 * name.size() + 3) return false;
  char buf[256];
  if (raw_name.size() > sizeof buf) return false;
  const auto n = decode_into(raw_name, buf);
  return n && std::string_view(buf, *n) == name;
}

void strip_query_params(proxy::RequestContext& ctx, std::span<const std::string> names) {
  // The target as the filters before this one left it (a path rewrite, a
  // parameter another policy stripped), so that the edits add up.
  const std::string_view target = ctx.upstream_path();
  const std::size_t q = target.find('?');
  if (q == std::string_view::npos) return;
  bool found = false;
  for_each_query_param(target.substr(q + 1), [&](std::string_view raw_name, std::string_view) {
    found = found || names_one_of(raw_name, names);
  });
  if (!found) return;
  auto* out = static_cast<char*>(ctx.allocate(target.size(), 1));
  std::memcpy(out, target.data(), q);
  std::size_t n = q;
  bool first = true;
  // The other parameters are copied as they were sent (escapes and empty
  // values kept; only empty "&&" pairs are dropped).
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const std::size_t amp = rest.find('&');
    const std::string_view part = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (part.empty() || names_one_of(part.substr(0, part.find('=')), names)) continue;
    out[n++] = first ? '?' : '&';
    first = false;
    std::memcpy(out + n, part.data(), part.size());
    n += part.size();
  }
  ctx.set_upstream_path(std::string_view(out, n));
}

void strip_cookie(proxy::RequestContext& ctx, std::string_view name) {
  const http::RequestHead& head = ctx.request();
  bool found = false;
  for (const http::Header& h : head.headers) {
    if (!ascii_iequals(h.name, "cookie")) continue;
    for_each_cookie(h.value,
                    [&](std::string_view n, std::string_view) { found = found || n == name; });
  }
  if (!found) return;
  ctx.remove_request_header("Cookie");
  for (const http::Header& h : head.headers) {
    if (!ascii_iequals(h.name, "cookie")) continue;
    auto* out = static_cast<char*>(ctx.allocate(h.value.size() + 1, 1));
    std::size_t n = 0;
    for_each_cookie(h.value, [&](std::string_view cn, std::string_view cv) {
      if (cn == name) return;
      if (n > 0) {
        std::memcpy(out + n, "; ", 2);
        n += 2;
      }
      std::memcpy(out + n, cn.data(), cn.size());
      n += cn.size();
      out[n++] = '=';
      std::memcpy(out + n, cv.data(), cv.size());
      n += cv.size();
    });
    if (n > 0) ctx.add_request_header("Cookie", std::string_view(out, n));
  }
}

std::optional<std::string_view> bearer_token(std::string_view value) noexcept {
  constexpr std::string_view kScheme = "bearer";
  if (value.size() <= kScheme.size() || !ascii_iequals(value.substr(0, kScheme.size()), kScheme))
    return std::nullopt;
  std::string_view rest = value.substr(kScheme.size());
  if (rest.front() != ' ') return std::nullopt;
  while (!rest.empty() && rest.front() == ' ')
    rest.remove_prefix(1);
  if (rest.empty()) return std::nullopt;
  // A token is hundreds of bytes, sent with every request: three memchr
  // passes (vectorised) cost a fraction of one byte-by-byte loop.
  for (const char ch : {' ', '\t', ','})
    if (std::memchr(rest.data(), ch, rest.size()) != nullptr) return std::nullopt;
  return rest;
}

std::size_t count_headers(const proxy::RequestContext& ctx, std::string_view name,
                          std::string_view* first) noexcept {
  std::size_t n = 0;
  for (const http::Header& h : ctx.request().headers) {
    if (!ascii_iequals(h.name, name)) continue;
    if (n++ == 0 && first != nullptr) *first = h.value;
  }
  return n;
}

bool is_header_name(std::string_view name) noexcept {
  return is_token(name);
}

bool is_plain_quoted_text(std::string_view text) noexcept {
  for (unsigned char c : text)
    if (c == '"' || c == '\\' || c < 0x20 || c == 0x7f) return false;
  return true;
}

void remove_identity_headers(proxy::RequestContext& ctx, const IdentityHeaders& headers) {
  ctx.remove_request_header(headers.consumer_id);
  ctx.remove_request_header(headers.consumer_plan);
  ctx.remove_request_header(headers.anonymous);
}

void set_consumer(proxy::RequestContext& ctx, const filters::Consumer& consumer,
                  std::string_view credential, bool anonymous, const IdentityHeaders& headers) {
  filters::RequestState& state = filters::request_state(ctx);
  state.consumer = consumer.id;
  state.plan =
      consumer.plan != nullptr ? std::string_view(consumer.plan->name) : std::string_view();
  state.credential = credential;
  ctx.set_request_header(headers.consumer_id, consumer.id);
  if (state.plan.empty()) {
    ctx.remove_request_header(headers.consumer_plan);
  } else {
    ctx.set_request_header(headers.consumer_plan, state.plan);
  }
  if (anonymous) {
    ctx.set_request_header(headers.anonymous, "true");
  } else {
    ctx.remove_request_header(headers.anonymous);
  }
}

}  // namespace portico::detail
