#include "portico/filters/jwt_auth.hpp"

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <new>

#include "../common/ascii.hpp"
#include "credentials.hpp"
#include "error_response.hpp"
#include "jwks_fetcher.hpp"
#include "portico/filters/request_state.hpp"

namespace portico::filters {

namespace {

using detail::IdentityHeaders;

// Why a request is refused: its status, the RFC 6750 error code (empty for
// a request that carried no token) and the description for the client.
struct Refusal {
  int status = 401;
  std::string_view code;
  std::string_view description;
};

enum class Step : std::uint8_t { pass, refuse, wait };

// The verified token, kept alive until on_log so that RequestState::claims
// stays valid for every filter after this one. Lives in the request arena.
struct TokenSlot {
  std::shared_ptr<const jwt::VerifiedToken> token;
};

enum class TokenPlace : std::uint8_t { none, header, query, cookie };

std::string_view describe(jwt::Reason reason) noexcept {
  switch (reason) {
    case jwt::Reason::malformed:
      return "the token is malformed";
    case jwt::Reason::unsupported_alg:
    case jwt::Reason::alg_not_allowed:
      return "the token's algorithm is not accepted";
    case jwt::Reason::unknown_kid:
      return "the token's signing key is not known";
    case jwt::Reason::bad_signature:
      return "the token's signature is not valid";
    case jwt::Reason::expired:
      return "the token has expired";
    case jwt::Reason::not_yet_valid:
      return "the token is not valid yet";
    case jwt::Reason::bad_issuer:
      return "the token's issuer is not accepted";
    case jwt::Reason::bad_audience:
      return "the token's audience is not accepted";
    case jwt::Reason::missing_claim:
      return "the token lacks a required claim";
    case jwt::Reason::too_large:
      return "the token is too large";
  }
  return "the token is not valid";
}

bool fits_header_value(std::string_view v) noexcept {
  for (unsigned char c : v)
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  return true;
}

// Joins a JSON array of plain strings ("[\"a\", \"b\"]" -> "a,b") into the
// arena without decoding anything; nullopt when an element is not a
// string or has an escape (the caller then decodes).
std::optional<std::string_view> join_plain_strings(proxy::RequestContext& ctx,
                                                   std::string_view json) {
  auto skip_space = [&](std::size_t& i) {
    while (i < json.size() &&
           (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r'))
      ++i;
  };
  std::size_t i = 0;
  skip_space(i);
  if (i >= json.size() || json[i] != '[') return std::nullopt;
  ++i;
  auto* out = static_cast<char*>(ctx.allocate(json.size(), 1));
  std::size_t n = 0;
  skip_space(i);
  if (i < json.size() && json[i] == ']') return std::string_view();
  for (;;) {
    skip_space(i);
    if (i >= json.size() || json[i] != '"') return std::nullopt;
    const std::size_t end = json.find('"', i + 1);
    if (end == std::string_view::npos) return std::nullopt;
    const std::string_view item = json.substr(i + 1, end - i - 1);
    if (item.find('\\') != std::string_view::npos) return std::nullopt;
    if (n > 0) out[n++] = ',';
    std::memcpy(out + n, item.data(), item.size());
    n += item.size();
    i = end + 1;
    skip_space(i);
    if (i < json.size() && json[i] == ',') {
      ++i;
      continue;
    }
    if (i < json.size() && json[i] == ']') return std::string_view(out, n);
    return std::nullopt;
  }
}

// The claim at `path` as a header value: a string as it is, an array of
// strings joined with ',', anything else as its JSON text. Two lookups at
// most (a string, then the JSON text): this runs for every mapped claim of
// every request.
std::optional<std::string_view> claim_value(proxy::RequestContext& ctx, const jwt::Claims& claims,
                                            std::string_view path) {
  if (auto text = claims.string(path)) return text;
  const std::string_view json = claims.json(path);
  if (json.empty() || json == "null") return std::nullopt;
  if (json.front() != '[') return json;
  if (auto joined = join_plain_strings(ctx, json)) return joined;
  const auto items = claims.strings(path);
  if (!items) return json;
  std::size_t size = 0;
  for (std::string_view s : *items)
    size += s.size() + 1;
  auto* out = static_cast<char*>(ctx.allocate(size + 1, 1));
  std::size_t n = 0;
  for (std::string_view s : *items) {
    if (n > 0) out[n++] = ',';
    std::memcpy(out + n, s.data(), s.size());
    n += s.size();
  }
  return std::string_view(out, n);
}

// A space-separated "scope" string (RFC 8693) or an array ("scp").
bool has_scope(const jwt::Claims& claims, std::string_view path, std::string_view scope) {
  if (auto text = claims.string(path)) {
    std::string_view rest = *text;
    while (!rest.empty()) {
      const std::size_t space = rest.find(' ');
      if (rest.substr(0, space) == scope) return true;
      if (space == std::string_view::npos) break;
      rest.remove_prefix(space + 1);
    }
    return false;
  }
  return claims.contains(path, scope);
}

// The error body respond_error() sends, for answers given through a
// ResumeHandle (which takes the body itself).
std::string error_body(const proxy::RequestContext& ctx, std::string_view message) {
  std::string body = "{\"error\":\"";
  detail::append_json_escaped(body, message);
  body += "\",\"request_id\":\"";
  const RequestState* state = find_request_state(ctx);
  if (state != nullptr && !state->request_id.empty()) {
    detail::append_json_escaped(body, state->request_id);
  } else {
    body += std::to_string(ctx.request_id());
  }
  body += "\"}\n";
  return body;
}

class JwtAuth final : public proxy::Filter, public detail::KeyWaitTarget {
 public:
  JwtAuth(JwtAuthOptions options, std::shared_ptr<const jwt::Verifier> verifier,
          std::shared_ptr<detail::JwksSource> source, bool refuse_all)
      : options_(std::move(options)),
        verifier_(std::move(verifier)),
        source_(std::move(source)),
        refuse_all_(refuse_all),
        identity_{options_.consumer_id_header, options_.consumer_plan_header,
                  options_.anonymous_header} {
    caches_.reserve(options_.workers);
    for (unsigned i = 0; i < options_.workers; ++i)
      caches_.push_back(std::make_unique<jwt::TokenCache>(verifier_, options_.cache));
    for (std::size_t i = 0; i < options_.required_scopes.size(); ++i)
      scopes_ += (i > 0 ? " " : "") + options_.required_scopes[i];
    distinct_claim_headers_ = distinct_headers(options_.claims_to_headers);
    if (options_.consumers != nullptr && options_.consumers->size() == 0)
      options_.consumers = nullptr;
  }

  ~JwtAuth() override {
    if (source_ != nullptr) source_->stop();
  }

  const std::shared_ptr<detail::JwksSource>& source() const noexcept { return source_; }

  std::string_view name() const noexcept override { return "jwt-auth"; }

  proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
    Refusal refusal;
    switch (authenticate(ctx, true, refusal)) {
      case Step::pass:
        return proxy::FilterStatus::next;
      case Step::wait:
        return proxy::FilterStatus::pause;
      case Step::refuse:
        break;
    }
    const std::string challenge = challenge_for(refusal);
    const http::Header headers[] = {{"WWW-Authenticate", challenge}};
    detail::respond_error(ctx, refusal.status, refusal.description, headers);
    return proxy::FilterStatus::respond;
  }

  // After the refetch a paused request waited for: verified again, without
  // waiting a second time.
  void keys_ready(proxy::ResumeHandle handle) override {
    proxy::RequestContext* ctx = handle.context();
    if (ctx == nullptr) return;
    Refusal refusal;
    if (authenticate(*ctx, false, refusal) == Step::pass) {
      handle.resume();
      return;
    }
    const std::string challenge = challenge_for(refusal);
    const std::string body = error_body(*ctx, refusal.description);
    const http::Header headers[] = {{"WWW-Authenticate", challenge},
                                    {"Content-Type", "application/json"}};
    handle.respond(refusal.status, body, headers);
  }

  void on_log(const proxy::RequestContext& ctx) override {
    auto* slot = static_cast<TokenSlot*>(ctx.state());
    if (slot == nullptr) return;
    // The shared state is the request's, in its arena: the claims must not
    // be read through it once the token is gone.
    if (const RequestState* state = find_request_state(ctx);
        state != nullptr && slot->token != nullptr && state->claims == &slot->token->claims)
      const_cast<RequestState*>(state)->claims = nullptr;
    slot->~TokenSlot();
  }

 private:
  Step refuse(Refusal& out, int status, std::string_view code, std::string_view description) {
    out = Refusal{status, code, description};
    return Step::refuse;
  }

  std::string challenge_for(const Refusal& r) const {
    std::string c = fmt::format("Bearer realm=\"{}\"", options_.realm);
    if (!r.code.empty())
      c += fmt::format(", error=\"{}\", error_description=\"{}\"", r.code, r.description);
    if (r.code == "insufficient_scope" && !scopes_.empty())
      c += fmt::format(", scope=\"{}\"", scopes_);
    return c;
  }

  // Client-sent copies of what this filter sets never reach the upstream.
  // The identity headers are handled in accept(): only an accepted request
  // is forwarded, and set_consumer() replaces or removes all three. So are
  // the claim headers when no two mappings name the same header (then each
  // is set or removed there, one edit each); otherwise they are removed
  // here first, and a later mapping's absent claim does not undo an
  // earlier one's value.
  void remove_client_headers(proxy::RequestContext& ctx) const {
    if (distinct_claim_headers_) return;
    for (const JwtClaimHeader& m : options_.claims_to_headers)
      ctx.remove_request_header(m.header);
  }

  static bool distinct_headers(const std::vector<JwtClaimHeader>& mappings) {
    for (std::size_t i = 0; i < mappings.size(); ++i)
      for (std::size_t j = i + 1; j < mappings.size(); ++j)
        if (detail::ascii_iequals(mappings[i].header, mappings[j].header)) return false;
    return true;
  }

  jwt::Verification verify(const proxy::RequestContext& ctx, std::string_view token) {
    const jwt::WallTime now = std::chrono::system_clock::now();
    const unsigned worker = ctx.worker_index();
    if (worker < caches_.size()) return caches_[worker]->verify(token, now);
    return verifier_->verify(token, now);
  }

  // Finds the one token of the request; a refusal when there is not
  // exactly one.
  std::optional<Refusal> find_token(proxy::RequestContext& ctx, std::string_view& token,
                                    TokenPlace& place) const {
    std::size_t count = 0;
    if (options_.from_header) {
      std::string_view authorization;
      const std::size_t headers = detail::count_headers(ctx, "authorization", &authorization);
      if (headers > 1)
        return Refusal{401, "invalid_request", "more than one Authorization header was sent"};
      if (headers == 1) {
        if (auto t = detail::bearer_token(authorization)) {
          token = *t;
          place = TokenPlace::header;
          ++count;
        }
      }
    }
    bool bad_escape = false;
    if (!options_.query_param.empty()) {
      detail::for_each_query_param(ctx.query(), [&](std::string_view name, std::string_view value) {
        if (!detail::query_name_is(name, options_.query_param)) return;
        const auto decoded = detail::percent_decode(ctx, value);
        bad_escape = bad_escape || !decoded;
        token = decoded.value_or(std::string_view());
        place = TokenPlace::query;
        ++count;
      });
    }
    if (!options_.cookie.empty()) {
      for (const http::Header& h : ctx.request().headers) {
        if (!detail::ascii_iequals(h.name, "cookie")) continue;
        detail::for_each_cookie(h.value, [&](std::string_view name, std::string_view value) {
          if (name != options_.cookie) return;
          token = value;
          place = TokenPlace::cookie;
          ++count;
        });
      }
    }
    if (count > 1) return Refusal{401, "invalid_request", "more than one token was sent"};
    if (count == 0) return Refusal{401, {}, "no bearer token was sent"};
    if (token.empty() || bad_escape)
      return Refusal{401, "invalid_token", describe(jwt::Reason::malformed)};
    return std::nullopt;
  }

  bool authorized(const jwt::Claims& claims, Refusal& out) const {
    for (const std::string& scope : options_.required_scopes) {
      if (!has_scope(claims, options_.scopes_claim, scope)) {
        out = {403, "insufficient_scope", "the token lacks a required scope"};
        return false;
      }
    }
    if (options_.required_roles.empty()) return true;
    std::size_t held = 0;
    for (const std::string& role : options_.required_roles)
      held += claims.contains(options_.roles_claim, role) ? 1 : 0;
    const bool ok = options_.require_all_roles ? held == options_.required_roles.size() : held > 0;
    if (!ok) out = {403, "insufficient_scope", "the token lacks a required role"};
    return ok;
  }

  Step authenticate(proxy::RequestContext& ctx, bool may_wait, Refusal& out) {
    remove_client_headers(ctx);
    std::string_view token;
    TokenPlace place = TokenPlace::none;
    if (auto r = find_token(ctx, token, place)) {
      out = *r;
      return Step::refuse;
    }
    if (refuse_all_) return refuse(out, 401, "invalid_token", describe(jwt::Reason::unknown_kid));
    jwt::Verification v = verify(ctx, token);
    if (!v) {
      if (v.reason() == jwt::Reason::unknown_kid && may_wait && source_ != nullptr &&
          source_->request_refetch(std::chrono::steady_clock::now()) ==
              detail::JwksSource::Refetch::running) {
        uv_loop_t* loop = ctx.loop();
        if (loop != nullptr) {
          if (source_->wait(loop, ctx.pause_handle(), this)) return Step::wait;
          return authenticate(ctx, false, out);  // the fetch ended meanwhile
        }
      }
      return refuse(out, 401, "invalid_token", describe(v.reason()));
    }
    const jwt::Claims& claims = v.claims();
    if (!authorized(claims, out)) return Step::refuse;
    const Consumer* consumer = nullptr;
    if (options_.consumers != nullptr) {
      if (auto sub = claims.string("sub"))
        consumer = options_.consumers->find_by_jwt(claims.string("iss").value_or(""), *sub);
      if (consumer == nullptr && options_.consumer_required)
        return refuse(out, 401, "invalid_token", "the token's subject is not a known consumer");
    }
    accept(ctx, v, place, consumer);
    return Step::pass;
  }

  void accept(proxy::RequestContext& ctx, const jwt::Verification& v, TokenPlace place,
              const Consumer* consumer) {
    const jwt::Claims& claims = v.claims();
    for (const JwtClaimHeader& m : options_.claims_to_headers) {
      const auto value = claim_value(ctx, claims, m.claim);
      if (value && fits_header_value(*value)) {
        ctx.set_request_header(m.header, *value);
      } else if (distinct_claim_headers_) {
        ctx.remove_request_header(m.header);
      }
    }
    if (!options_.forward_token) {
      switch (place) {
        case TokenPlace::header:
          ctx.remove_request_header("Authorization");
          break;
        case TokenPlace::query:
          detail::strip_query_params(ctx, std::span<const std::string>(&options_.query_param, 1));
          break;
        case TokenPlace::cookie:
          detail::strip_cookie(ctx, options_.cookie);
          break;
        case TokenPlace::none:
          break;
      }
    }
    RequestState& state = request_state(ctx);
    if (consumer != nullptr) {
      detail::set_consumer(ctx, *consumer, "jwt-auth", false, identity_);
    } else if (state.consumer.empty()) {
      // No consumer, from this filter or an earlier one (which removed the
      // client's identity headers and set its own).
      if (options_.consumers != nullptr) detail::remove_identity_headers(ctx, identity_);
      state.credential = "jwt-auth";
    }
    auto* slot = static_cast<TokenSlot*>(ctx.state());
    if (slot == nullptr) {
      slot = new (ctx.allocate(sizeof(TokenSlot), alignof(TokenSlot))) TokenSlot{};
      ctx.set_state(slot);
    }
    slot->token = v.shared_token();
    state.claims = &slot->token->claims;
  }

  JwtAuthOptions options_;
  std::shared_ptr<const jwt::Verifier> verifier_;
  std::shared_ptr<detail::JwksSource> source_;
  bool refuse_all_;
  IdentityHeaders identity_;
  std::string scopes_;                                    // the required scopes, for the challenge
  bool distinct_claim_headers_ = true;                    // see remove_client_headers()
  std::vector<std::unique_ptr<jwt::TokenCache>> caches_;  // one per worker index
};

// ----------------------------------------------------------- validation

Error invalid(std::string message) {
  return make_error(ErrorKind::invalid_argument, std::move(message));
}

bool is_plain_name(std::string_view name) noexcept {
  return !name.empty() && name.find_first_of("&=#%; ,") == std::string_view::npos &&
         detail::is_plain_quoted_text(name);
}

Status check_names(const JwtAuthOptions& o) {
  if (o.workers == 0) return invalid("workers: must be at least 1");
  if (!o.from_header && o.query_param.empty() && o.cookie.empty())
    return invalid("from_header: no place to read the token from (header, query_param, cookie)");
  if (!o.query_param.empty() && !is_plain_name(o.query_param))
    return invalid(fmt::format("query_param: \"{}\" is not a plain parameter name", o.query_param));
  if (!o.cookie.empty() && !detail::is_header_name(o.cookie))
    return invalid(fmt::format("cookie: \"{}\" is not a valid cookie name", o.cookie));
  for (std::size_t i = 0; i < o.claims_to_headers.size(); ++i) {
    const JwtClaimHeader& m = o.claims_to_headers[i];
    if (m.claim.empty())
      return invalid(fmt::format("claims_to_headers[{}]: the claim is empty", i));
    if (!detail::is_header_name(m.header))
      return invalid(fmt::format("claims_to_headers.{}: \"{}\" is not a valid header name", m.claim,
                                 m.header));
  }
  for (std::size_t i = 0; i < o.required_scopes.size(); ++i) {
    if (!is_plain_name(o.required_scopes[i]))
      return invalid(
          fmt::format("required_scopes[{}]: a scope is a non-empty word without "
                      "spaces or quotes",
                      i));
  }
  for (std::size_t i = 0; i < o.required_roles.size(); ++i) {
    if (o.required_roles[i].empty())
      return invalid(fmt::format("required_roles[{}]: the role is empty", i));
  }
  if (!o.required_scopes.empty() && o.scopes_claim.empty())
    return invalid("scopes_claim: required with required_scopes");
  if (!o.required_roles.empty() && o.roles_claim.empty())
    return invalid("roles_claim: required with required_roles");
  const std::pair<std::string_view, const std::string*> identity[] = {
      {"consumer_id_header", &o.consumer_id_header},
      {"consumer_plan_header", &o.consumer_plan_header},
      {"anonymous_header", &o.anonymous_header}};
  for (const auto& [field, value] : identity) {
    if (!detail::is_header_name(*value))
      return invalid(fmt::format("{}: \"{}\" is not a valid header name", field, *value));
  }
  if (!detail::is_plain_quoted_text(o.realm))
    return invalid("realm: quotes, backslashes and control characters are not allowed");
  if (o.consumer_required && (o.consumers == nullptr || o.consumers->size() == 0))
    return invalid("consumer_required: no consumers are configured");
  return {};
}

Status check_fetching(const JwtAuthOptions& o) {
  if (o.jwks_refresh_interval < std::chrono::seconds(1))
    return invalid("jwks_refresh_interval: must be at least 1s");
  if (o.jwks_retry_interval < std::chrono::milliseconds(100))
    return invalid("jwks_retry_interval: must be at least 100ms");
  if (o.jwks_refetch_interval < Duration::zero())
    return invalid("jwks_refetch_interval: must not be negative");
  if (o.jwks_timeout < std::chrono::milliseconds(10) || o.jwks_timeout > std::chrono::minutes(5))
    return invalid("jwks_timeout: must be from 10ms to 5m");
  if (o.jwks_max_bytes < 64) return invalid("jwks_max_bytes: must be at least 64");
  if (!o.validate_only && o.control_loop == nullptr)
    return invalid("control_loop: required with jwks_url");
  return {};
}

// The PEM blocks of a file, each "-----BEGIN ...-----" to its "-----END ...-----".
std::vector<std::string_view> pem_blocks(std::string_view text) {
  std::vector<std::string_view> out;
  for (;;) {
    const std::size_t begin = text.find("-----BEGIN ");
    if (begin == std::string_view::npos) break;
    const std::size_t end = text.find("-----END ", begin);
    if (end == std::string_view::npos) break;
    const std::size_t close = text.find("-----", end + 9);
    if (close == std::string_view::npos) break;
    out.push_back(text.substr(begin, close + 5 - begin));
    text.remove_prefix(close + 5);
  }
  return out;
}

Result<jwt::KeySet> jwks_set(std::string_view field, std::string_view document) {
  auto set = jwt::KeySet::from_jwks(document);
  if (!set) return make_error(set.error().kind, fmt::format("{}: {}", field, set.error().message));
  if (set->empty()) {
    std::string why = fmt::format("{}: the JWKS has no usable key", field);
    if (!set->skipped().empty()) why += " (first skipped: " + set->skipped()[0].reason + ")";
    return invalid(std::move(why));
  }
  return set;
}

Result<jwt::KeySet> load_static_keys(const JwtAuthOptions& o) {
  std::string file_text;
  bool file_is_jwks = false;
  if (!o.keys_file.empty()) {
    std::ifstream in(o.keys_file, std::ios::binary);
    if (!in)
      return make_error(ErrorKind::not_found,
                        fmt::format("keys_file: \"{}\" cannot be read", o.keys_file));
    file_text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    const std::size_t first = file_text.find_first_not_of(" \t\r\n");
    file_is_jwks = first != std::string::npos && file_text[first] == '{';
    if (file_is_jwks && !o.jwks.empty())
      return invalid("keys_file: holds a JWKS document, and jwks is set too: give only one");
  }
  jwt::KeySet set;
  if (!o.jwks.empty()) {
    auto s = jwks_set("jwks", o.jwks);
    if (!s) return std::move(s).error();
    set = std::move(*s);
  } else if (file_is_jwks) {
    auto s = jwks_set("keys_file", file_text);
    if (!s) return std::move(s).error();
    set = std::move(*s);
  } else if (!o.keys_file.empty()) {
    const auto blocks = pem_blocks(file_text);
    if (blocks.empty()) return invalid("keys_file: holds neither a JWKS document nor PEM keys");
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      if (Status st = set.add_pem(blocks[i]); !st)
        return invalid(fmt::format("keys_file: PEM key {}: {}", i + 1, st.error().message));
    }
  }
  for (std::size_t i = 0; i < o.pem_keys.size(); ++i) {
    const JwtPemKey& k = o.pem_keys[i];
    if (Status st = set.add_pem(k.pem, {k.kid, k.algorithm}); !st)
      return invalid(fmt::format("pem_keys[{}]: {}", i, st.error().message));
  }
  return set;
}

}  // namespace

Result<std::shared_ptr<proxy::Filter>> make_jwt_auth(JwtAuthOptions o) {
  if (Status st = check_names(o); !st) return std::move(st).error();
  const bool has_static = !o.jwks.empty() || !o.pem_keys.empty() || !o.keys_file.empty();
  if (!o.jwks_url.empty() && has_static)
    return invalid("jwks_url: cannot be combined with jwks, pem_keys or keys_file");
  if (o.jwks_url.empty() && !has_static)
    return invalid("jwks: no key source: give jwks, pem_keys, keys_file or jwks_url");
  auto holder = std::make_shared<jwt::KeySetHolder>();
  std::optional<detail::HttpUrl> url;
  std::shared_ptr<detail::TlsClientContext> tls;
  if (!o.jwks_url.empty()) {
    auto parsed = detail::parse_http_url(o.jwks_url);
    if (!parsed) return invalid("jwks_url: " + parsed.error().message);
    url = std::move(*parsed);
    if (Status st = check_fetching(o); !st) return std::move(st).error();
    if (!o.jwks_ca_file.empty() && !url->tls)
      return invalid("jwks_ca_file: only for an https:// jwks_url");
    if (url->tls) {
      auto context = detail::TlsClientContext::create(o.jwks_ca_file);
      if (!context) {
        const std::string& why = context.error().message;
        return make_error(context.error().kind,
                          o.jwks_ca_file.empty()
                              ? "jwks_url: the system CA bundle " + why +
                                    " (install ca-certificates, or set jwks_ca_file)"
                              : "jwks_ca_file: " + why);
      }
      tls = std::move(*context);
    }
  } else {
    if (!o.jwks_ca_file.empty()) return invalid("jwks_ca_file: only for an https:// jwks_url");
    auto set = load_static_keys(o);
    if (!set) return std::move(set).error();
    holder->replace(std::move(*set));
  }
  auto verifier = jwt::Verifier::create(holder, o.verifier);
  if (!verifier) return std::move(verifier).error();
  auto shared_verifier = std::make_shared<const jwt::Verifier>(std::move(*verifier));
  std::shared_ptr<detail::JwksSource> source;
  const bool refuse_all = url.has_value() && o.validate_only;
  if (url && !o.validate_only) {
    detail::JwksFetchOptions f;
    f.url = std::move(*url);
    f.url_text = detail::url_for_display(o.jwks_url);
    f.tls = std::move(tls);
    f.refresh_interval = o.jwks_refresh_interval;
    f.retry_interval = o.jwks_retry_interval;
    f.refetch_interval = o.jwks_refetch_interval;
    f.timeout = o.jwks_timeout;
    f.max_bytes = o.jwks_max_bytes;
    source = detail::JwksSource::start(o.control_loop, holder, std::move(f));
  }
  return std::shared_ptr<proxy::Filter>(std::make_shared<JwtAuth>(
      std::move(o), std::move(shared_verifier), std::move(source), refuse_all));
}

}  // namespace portico::filters

namespace portico::detail {

std::shared_ptr<JwksSource> jwks_source_of(const proxy::Filter& filter) noexcept {
  const auto* jwt = dynamic_cast<const filters::JwtAuth*>(&filter);
  return jwt != nullptr ? jwt->source() : nullptr;
}

}  // namespace portico::detail
