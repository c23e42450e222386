// KeySet: JWKS documents (RFC 7517, parsed with picojson), PEM public keys
// and raw HMAC secrets; KeySetHolder: the set in force, swapped atomically.
#include <picojson.h>

#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>

#include "../common/describe.hpp"
#include "base64url.hpp"
#include "json.hpp"
#include "key.hpp"

namespace portico::detail {

std::uint64_t next_key_set_id() noexcept {
  static std::atomic<std::uint64_t> counter{0};
  return counter.fetch_add(1, std::memory_order_relaxed) + 1;
}

}  // namespace portico::detail

namespace portico::jwt {

using detail::JwtKey;

namespace {

// A JWKS larger than this is almost certainly not a real key set.
constexpr std::size_t kMaxJwksKeys = 256;
constexpr std::size_t kMinHmacSecret = 32;

const picojson::value* field(const picojson::object& o, const char* name) {
  auto it = o.find(name);
  return it == o.end() ? nullptr : &it->second;
}

// Reads an optional string member; false when present with another type.
bool optional_string(const picojson::object& o, const char* name, std::string& out,
                     std::string& error) {
  const picojson::value* v = field(o, name);
  if (v == nullptr) return true;
  if (!v->is<std::string>()) {
    error = std::string("\"") + name + "\" is not a string";
    return false;
  }
  out = v->get<std::string>();
  return true;
}

bool required_base64url(const picojson::object& o, const char* name, std::string& out,
                        std::string& error) {
  const picojson::value* v = field(o, name);
  if (v == nullptr || !v->is<std::string>()) {
    error = std::string("\"") + name + "\" is missing or not a string";
    return false;
  }
  if (!detail::base64url_decode(v->get<std::string>(), out) || out.empty()) {
    error = std::string("\"") + name + "\" is not base64url";
    return false;
  }
  return true;
}

bool load_hmac(JwtKey& key, std::string_view secret, std::string& error) {
  if (secret.size() < kMinHmacSecret) {
    error = "HMAC secret has " + std::to_string(secret.size()) + " bytes; at least 32 are required";
    return false;
  }
  key.type = KeyType::oct;
  key.secret_bytes = secret.size();
  if (key.algorithm && detail::family_of(*key.algorithm) != KeyType::oct) {
    error = "\"alg\" " + std::string(algorithm_name(*key.algorithm)) + " does not fit this key";
    return false;
  }
  for (Algorithm a : {Algorithm::hs256, Algorithm::hs384, Algorithm::hs512}) {
    auto h = detail::hash_of(a);
    // RFC 7518 3.2: a key at least as long as the hash output.
    if (secret.size() >= detail::hash_size(h) && (!key.algorithm || *key.algorithm == a)) {
      key.hmac[static_cast<unsigned>(h)] =
          std::make_unique<detail::HmacKey>(h, detail::as_bytes(secret));
    }
  }
  if (key.algorithm && !key.fits(*key.algorithm)) {
    error = "HMAC secret is too short for " + std::string(algorithm_name(*key.algorithm));
    return false;
  }
  return true;
}

bool check_alg_binding(const JwtKey& key, std::string& error) {
  if (key.algorithm && !key.fits(*key.algorithm)) {
    error = "\"alg\" " + std::string(algorithm_name(*key.algorithm)) + " does not fit this key";
    return false;
  }
  return true;
}

// Builds one key from a JWK object, or says why it cannot be used.
std::unique_ptr<JwtKey> load_jwk(const picojson::value& v, std::string& kid, std::string& error) {
  if (!v.is<picojson::object>()) {
    error = "not a JSON object";
    return nullptr;
  }
  const auto& o = v.get<picojson::object>();
  auto key = std::make_unique<JwtKey>();
  std::string kty, use, alg;
  if (!optional_string(o, "kid", kid, error) || !optional_string(o, "kty", kty, error) ||
      !optional_string(o, "use", use, error) || !optional_string(o, "alg", alg, error)) {
    return nullptr;
  }
  key->kid = kid;
  if (field(o, "use") != nullptr && use != "sig") {
    error = "\"use\" is " + detail::describe_untrusted(use) +
            "; only signature keys (\"sig\") are used";
    return nullptr;
  }
  if (const picojson::value* ops = field(o, "key_ops")) {
    bool verify = false;
    if (ops->is<picojson::array>()) {
      for (const auto& op : ops->get<picojson::array>()) {
        verify = verify || (op.is<std::string>() && op.get<std::string>() == "verify");
      }
    }
    if (!verify) {
      error = "\"key_ops\" does not include \"verify\"";
      return nullptr;
    }
  }
  if (field(o, "alg") != nullptr) {
    key->algorithm = parse_algorithm(alg);
    if (!key->algorithm) {
      error =
          "\"alg\" " + detail::describe_untrusted(alg) + " is not a supported signature algorithm";
      return nullptr;
    }
  }
  std::string a, b;
  if (kty == "RSA") {
    if (!required_base64url(o, "n", a, error) || !required_base64url(o, "e", b, error)) {
      return nullptr;
    }
    key->type = KeyType::rsa;
    key->public_key = detail::PublicKey::rsa(detail::as_bytes(a), detail::as_bytes(b), error);
  } else if (kty == "EC") {
    std::string crv;
    if (!optional_string(o, "crv", crv, error)) return nullptr;
    detail::EcCurve curve;
    if (crv == "P-256") {
      curve = detail::EcCurve::p256;
    } else if (crv == "P-384") {
      curve = detail::EcCurve::p384;
    } else if (crv == "P-521") {
      curve = detail::EcCurve::p521;
    } else {
      error =
          "\"crv\" " + detail::describe_untrusted(crv) + " is not supported (P-256, P-384, P-521)";
      return nullptr;
    }
    if (!required_base64url(o, "x", a, error) || !required_base64url(o, "y", b, error)) {
      return nullptr;
    }
    key->type = KeyType::ec;
    key->public_key = detail::PublicKey::ec(curve, detail::as_bytes(a), detail::as_bytes(b), error);
  } else if (kty == "oct") {
    if (!required_base64url(o, "k", a, error) || !load_hmac(*key, a, error)) return nullptr;
  } else {
    error = field(o, "kty") == nullptr
                ? "\"kty\" is missing"
                : "\"kty\" " + detail::describe_untrusted(kty) + " is not supported";
    return nullptr;
  }
  if (key->type != KeyType::oct && key->public_key == nullptr) return nullptr;
  if (!check_alg_binding(*key, error)) return nullptr;
  return key;
}

// The document must pass the strict reader used for tokens first (no
// duplicate names, no trailing text, valid UTF-8, bounded depth): picojson
// alone would take the last of two "keys" and ignore what follows the value.
Result<picojson::value> parse_json(std::string_view json) {
  std::string err;
  detail::JsonDoc strict;
  if (!strict.parse(json, err)) {
    return make_error(ErrorKind::malformed, "JWKS is not valid JSON: " + err);
  }
  picojson::value v;
  try {
    err = picojson::parse(v, std::string(json));
  } catch (const std::exception&) {
    err = "number out of range";
  }
  if (!err.empty()) return make_error(ErrorKind::malformed, "JWKS is not valid JSON: " + err);
  return v;
}

}  // namespace

KeySet::KeySet() : impl_(std::make_unique<Impl>()) {}
KeySet::~KeySet() = default;
KeySet::KeySet(KeySet&&) noexcept = default;
KeySet& KeySet::operator=(KeySet&&) noexcept = default;

Result<KeySet> KeySet::from_jwks(std::string_view json) {
  auto parsed = parse_json(json);
  if (!parsed) return std::move(parsed).error();
  const picojson::value& doc = *parsed;
  if (!doc.is<picojson::object>() || !doc.contains("keys") ||
      !doc.get("keys").is<picojson::array>()) {
    return make_error(ErrorKind::malformed, "JWKS must be an object with a \"keys\" array");
  }
  const auto& entries = doc.get("keys").get<picojson::array>();
  KeySet set;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    std::string kid, error;
    if (i >= kMaxJwksKeys) {
      set.impl_->skipped.push_back({i, "", "more than 256 keys in the set"});
      continue;
    }
    auto key = load_jwk(entries[i], kid, error);
    if (key) {
      set.impl_->add(std::move(key));
    } else {
      set.impl_->skipped.push_back({i, std::move(kid), std::move(error)});
    }
  }
  return set;
}

Status KeySet::add_jwk(std::string_view json) {
  auto parsed = parse_json(json);
  if (!parsed) return std::move(parsed).error();
  std::string kid, error;
  auto key = load_jwk(*parsed, kid, error);
  if (!key)
    return make_error(ErrorKind::invalid_argument,
                      "JWK " + detail::describe_untrusted(kid) + ": " + error);
  impl_->add(std::move(key));
  return {};
}

Status KeySet::add_pem(std::string_view pem, KeyOptions options) {
  std::string error;
  auto key = std::make_unique<JwtKey>();
  key->kid = std::move(options.kid);
  key->algorithm = options.algorithm;
  key->public_key = detail::PublicKey::from_pem(pem, error);
  if (!key->public_key) return make_error(ErrorKind::invalid_argument, error);
  key->type = key->public_key->type() == detail::PublicKey::Type::rsa ? KeyType::rsa : KeyType::ec;
  if (!check_alg_binding(*key, error)) return make_error(ErrorKind::invalid_argument, error);
  impl_->add(std::move(key));
  return {};
}

Status KeySet::add_hmac_secret(std::string_view secret, KeyOptions options) {
  std::string error;
  auto key = std::make_unique<JwtKey>();
  key->kid = std::move(options.kid);
  key->algorithm = options.algorithm;
  if (!load_hmac(*key, secret, error)) return make_error(ErrorKind::invalid_argument, error);
  impl_->add(std::move(key));
  return {};
}

std::size_t KeySet::size() const noexcept {
  return impl_->keys.size();
}

KeyInfo KeySet::key(std::size_t index) const noexcept {
  const JwtKey& k = *impl_->keys[index];
  return {k.kid, k.type, k.algorithm, k.bits()};
}

std::span<const SkippedKey> KeySet::skipped() const noexcept {
  return impl_->skipped;
}
std::uint64_t KeySet::id() const noexcept {
  return impl_->id;
}

// ---------------------------------------------------------------- holder

// Two slots, one of them current. A reader marks the slot it found current
// as in use, checks it is still the current one, and only then copies the
// shared_ptr out of it; a writer fills the other slot, makes it current,
// then waits for the marks on the old one to go before it lets the old set
// go. The mark and the check are a Dekker pair (both sides seq_cst): either
// the writer sees the reader's mark, or the reader sees the new index and
// backs off without touching the old slot. So a slot's shared_ptr is never
// written while a reader copies it, and readers take no lock.
//
// Not std::atomic<std::shared_ptr>: libstdc++ 12 implements it with a lock
// bit in the control-block word, and load() releases that bit with a
// relaxed fetch_sub. The store() that takes the bit next (acquire) then
// synchronises only with the previous store(), not with that load(), so the
// load's plain read of the stored pointer and the store's plain write of it
// are unordered: a data race under the C++ memory model, which
// ThreadSanitizer reports as such. On x86-64 it is harmless in practice (a
// load is never reordered after a later store), but nothing in the language
// forbids the compiler, or a weaker CPU, from moving the read past the
// unlock and pairing a new pointer with an old control block.
struct KeySetHolder::Slots {
  struct Slot {
    std::atomic<std::uint32_t> readers{0};
    std::shared_ptr<const KeySet> set;  // written only while no reader can copy it
  };
  Slot slot[2];
  std::atomic<unsigned> current{0};
  std::mutex writer;  // replace() against replace(); readers never take it
};

KeySetHolder::KeySetHolder(KeySet initial) : slots_(std::make_unique<Slots>()) {
  replace(std::move(initial));
}

KeySetHolder::~KeySetHolder() = default;

std::shared_ptr<const KeySet> KeySetHolder::current() const noexcept {
  for (;;) {
    const unsigned index = slots_->current.load(std::memory_order_seq_cst);
    Slots::Slot& s = slots_->slot[index];
    s.readers.fetch_add(1, std::memory_order_seq_cst);
    if (slots_->current.load(std::memory_order_seq_cst) == index) {
      std::shared_ptr<const KeySet> set = s.set;
      s.readers.fetch_sub(1, std::memory_order_release);
      return set;
    }
    // A replacement came in between: the slot may be about to be emptied.
    s.readers.fetch_sub(1, std::memory_order_release);
  }
}

void KeySetHolder::replace(KeySet next) {
  auto set = std::make_shared<const KeySet>(std::move(next));
  const std::uint64_t id = set->id();
  std::lock_guard<std::mutex> lock(slots_->writer);
  const unsigned old = slots_->current.load(std::memory_order_relaxed);
  // The other slot is empty and stays unread until it is made current.
  slots_->slot[1 - old].set = std::move(set);
  slots_->current.store(1 - old, std::memory_order_seq_cst);
  current_id_.store(id, std::memory_order_release);
  // Readers that marked the old slot before the switch finish their copy;
  // any later mark backs off. Each waits for one reference-count increment.
  Slots::Slot& retired = slots_->slot[old];
  while (retired.readers.load(std::memory_order_seq_cst) != 0)
    std::this_thread::yield();
  retired.set.reset();
}

Status KeySetHolder::replace_from_jwks(std::string_view json) {
  auto set = KeySet::from_jwks(json);
  if (!set) return std::move(set).error();
  if (set->empty()) {
    std::string why = "JWKS has no usable key; keeping the current set";
    if (!set->skipped().empty()) why += " (first skipped: " + set->skipped()[0].reason + ")";
    return make_error(ErrorKind::invalid_argument, std::move(why));
  }
  replace(std::move(*set));
  return {};
}

}  // namespace portico::jwt
