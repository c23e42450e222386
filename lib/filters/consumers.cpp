#include "portico/filters/consumers.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <tuple>
#include <utility>

#include "../tls/crypto.hpp"
#include "../tls/sha256.hpp"

namespace portico::filters {

namespace {

using KeyDigest = std::array<unsigned char, detail::Sha256::kDigestSize>;

constexpr std::string_view kDigestPrefix = "sha256:";

KeyDigest digest_of(std::string_view key) noexcept {
  KeyDigest out;
  detail::Sha256 hasher;
  hasher.update(reinterpret_cast<const unsigned char*>(key.data()), key.size());
  hasher.finish(out.data());
  return out;
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "sha256:<64 hex digits>" as the digest; nullopt when malformed.
std::optional<KeyDigest> parse_digest(std::string_view text) noexcept {
  text.remove_prefix(kDigestPrefix.size());
  if (text.size() != 2 * std::tuple_size_v<KeyDigest>) return std::nullopt;
  KeyDigest out;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return out;
}

// Problems found while building, all reported at once.
struct Problems {
  std::string text;
  ErrorKind kind = ErrorKind::invalid_argument;
  bool any = false;

  void add(ErrorKind k, std::string message) {
    if (!any) kind = k;
    any = true;
    if (!text.empty()) text += "; ";
    text += message;
  }
};

}  // namespace

// Lookups by digest go through an open-addressing table whose slot is chosen
// by the digest's first bytes (SHA-256 output is uniform, so no further
// hashing is needed) and whose candidates are compared in constant time: the
// time a lookup takes says nothing about how much of a stored digest a guess
// matched. Ids, plans and JWT identities are sorted for binary search, so no
// lookup allocates.
class ConsumersImpl {
 public:
  struct KeySlot {
    KeyDigest digest{};
    std::uint32_t consumer = 0;  // index + 1; 0: empty
  };
  struct JwtEntry {
    std::string issuer;
    std::string subject;
    std::uint32_t consumer = 0;
  };

  std::vector<PlanConfig> plans;  // never resized after the consumers point into it
  std::vector<Consumer> consumers;
  std::vector<std::uint32_t> plans_by_name;
  std::vector<std::uint32_t> consumers_by_id;
  std::vector<KeySlot> key_slots;  // size a power of two, at most half full
  std::vector<JwtEntry> jwt;       // sorted by (issuer, subject)

  std::size_t key_slot_of(const KeyDigest& d) const noexcept {
    std::uint64_t h;
    std::memcpy(&h, d.data(), sizeof h);
    return static_cast<std::size_t>(h) & (key_slots.size() - 1);
  }

  // The consumer owning `d` (index + 1), or 0.
  std::uint32_t find_digest(const KeyDigest& d) const noexcept {
    if (key_slots.empty()) return 0;
    const std::size_t mask = key_slots.size() - 1;
    for (std::size_t i = key_slot_of(d);; i = (i + 1) & mask) {
      const KeySlot& s = key_slots[i];
      if (s.consumer == 0) return 0;
      if (detail::constant_time_equal({s.digest.data(), s.digest.size()}, {d.data(), d.size()}))
        return s.consumer;
    }
  }

  // Inserts `d`; the owner (index + 1) of an equal digest already there, or 0.
  std::uint32_t insert_digest(const KeyDigest& d, std::uint32_t consumer) {
    const std::size_t mask = key_slots.size() - 1;
    for (std::size_t i = key_slot_of(d);; i = (i + 1) & mask) {
      KeySlot& s = key_slots[i];
      if (s.consumer == 0) {
        s.digest = d;
        s.consumer = consumer;
        return 0;
      }
      if (s.digest == d) return s.consumer;
    }
  }

  template <class T, class Name>
  static const T* find_sorted(const std::vector<T>& items, const std::vector<std::uint32_t>& order,
                              std::string_view name, Name name_of) noexcept {
    auto it = std::lower_bound(order.begin(), order.end(), name, [&](std::uint32_t i, auto n) {
      return std::string_view(name_of(items[i])) < n;
    });
    if (it == order.end() || std::string_view(name_of(items[*it])) != name) return nullptr;
    return &items[*it];
  }

  const JwtEntry* find_jwt(std::string_view issuer, std::string_view subject) const noexcept {
    auto less = [](const JwtEntry& e, std::pair<std::string_view, std::string_view> k) {
      return std::pair<std::string_view, std::string_view>(e.issuer, e.subject) < k;
    };
    auto it = std::lower_bound(jwt.begin(), jwt.end(), std::pair(issuer, subject), less);
    if (it == jwt.end() || it->issuer != issuer || it->subject != subject) return nullptr;
    return &*it;
  }
};

namespace {

std::vector<std::uint32_t> sorted_order(std::size_t n, auto name_of) {
  std::vector<std::uint32_t> order(n);
  for (std::size_t i = 0; i < n; ++i)
    order[i] = static_cast<std::uint32_t>(i);
  // Ties in index order, so that duplicate reports name the earlier one.
  std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
    const std::string_view x(name_of(a)), y(name_of(b));
    return x != y ? x < y : a < b;
  });
  return order;
}

void check_plans(const ConsumersImpl& impl, Problems& problems) {
  for (std::size_t i = 0; i < impl.plans.size(); ++i) {
    const PlanConfig& p = impl.plans[i];
    if (p.name.empty()) {
      problems.add(ErrorKind::invalid_argument, fmt::format("plans[{}]: the plan has no name", i));
      continue;
    }
    for (std::size_t j = 0; j < p.limits.size(); ++j) {
      if (p.limits[j].period <= Duration::zero())
        problems.add(
            ErrorKind::invalid_argument,
            fmt::format("plan \"{}\": limits[{}]: the period must be positive", p.name, j));
    }
  }
  for (std::size_t k = 1; k < impl.plans_by_name.size(); ++k) {
    const std::string& name = impl.plans[impl.plans_by_name[k]].name;
    if (!name.empty() && name == impl.plans[impl.plans_by_name[k - 1]].name)
      problems.add(ErrorKind::conflict, fmt::format("plan \"{}\": defined twice", name));
  }
}

void add_keys(ConsumersImpl& impl, const std::vector<ConsumerConfig>& configs, Problems& problems) {
  std::size_t key_count = 0;
  for (const auto& c : configs)
    key_count += c.api_keys.size();
  std::size_t slots = 8;
  while (slots < 2 * key_count)
    slots *= 2;
  impl.key_slots.assign(slots, {});
  for (std::size_t i = 0; i < configs.size(); ++i) {
    const ConsumerConfig& c = configs[i];
    for (std::size_t k = 0; k < c.api_keys.size(); ++k) {
      const std::string& key = c.api_keys[k];
      // Never quote a key: errors end up in logs and admin answers.
      if (key.empty()) {
        problems.add(ErrorKind::invalid_argument,
                     fmt::format("consumer \"{}\": api_keys[{}] is empty", c.id, k));
        continue;
      }
      KeyDigest digest;
      if (std::string_view(key).starts_with(kDigestPrefix)) {
        auto parsed = parse_digest(key);
        if (!parsed) {
          problems.add(ErrorKind::malformed,
                       fmt::format("consumer \"{}\": api_keys[{}]: \"sha256:\" must be followed "
                                   "by 64 hexadecimal digits",
                                   c.id, k));
          continue;
        }
        digest = *parsed;
      } else {
        digest = digest_of(key);
      }
      const std::uint32_t owner = impl.insert_digest(digest, static_cast<std::uint32_t>(i + 1));
      if (owner != 0) {
        const std::string& other = configs[owner - 1].id;
        problems.add(ErrorKind::conflict,
                     other == c.id
                         ? fmt::format("consumer \"{}\": api_keys[{}] is given twice", c.id, k)
                         : fmt::format("consumer \"{}\": api_keys[{}] is already a key of "
                                       "consumer \"{}\"",
                                       c.id, k, other));
      }
    }
  }
}

void add_jwt_identities(ConsumersImpl& impl, const std::vector<ConsumerConfig>& configs,
                        Problems& problems) {
  for (std::size_t i = 0; i < configs.size(); ++i) {
    const ConsumerConfig& c = configs[i];
    for (std::size_t j = 0; j < c.jwt.size(); ++j) {
      if (c.jwt[j].subject.empty()) {
        problems.add(ErrorKind::invalid_argument,
                     fmt::format("consumer \"{}\": jwt[{}]: the subject is empty", c.id, j));
        continue;
      }
      impl.jwt.push_back({c.jwt[j].issuer, c.jwt[j].subject, static_cast<std::uint32_t>(i)});
    }
  }
  std::sort(impl.jwt.begin(), impl.jwt.end(), [](const auto& a, const auto& b) {
    return std::tie(a.issuer, a.subject, a.consumer) < std::tie(b.issuer, b.subject, b.consumer);
  });
  for (std::size_t k = 1; k < impl.jwt.size(); ++k) {
    const auto &a = impl.jwt[k - 1], &b = impl.jwt[k];
    if (a.issuer != b.issuer || a.subject != b.subject) continue;
    const std::string_view issuer = b.issuer.empty() ? "any issuer" : std::string_view(b.issuer);
    problems.add(ErrorKind::conflict,
                 fmt::format("consumer \"{}\": the JWT subject \"{}\" of {} is already "
                             "consumer \"{}\"'s",
                             configs[b.consumer].id, b.subject, issuer, configs[a.consumer].id));
  }
}

}  // namespace

Result<std::shared_ptr<const Consumers>> Consumers::create(std::vector<ConsumerConfig> configs,
                                                           std::vector<PlanConfig> plans) {
  auto impl = std::make_unique<ConsumersImpl>();
  Problems problems;
  impl->plans = std::move(plans);
  impl->plans_by_name =
      sorted_order(impl->plans.size(),
                   [&](std::uint32_t i) -> const std::string& { return impl->plans[i].name; });
  check_plans(*impl, problems);

  impl->consumers.reserve(configs.size());
  for (std::size_t i = 0; i < configs.size(); ++i) {
    const ConsumerConfig& c = configs[i];
    Consumer consumer{c.id, nullptr};
    if (c.id.empty())
      problems.add(ErrorKind::invalid_argument,
                   fmt::format("consumers[{}]: the consumer has no id", i));
    if (!c.plan.empty()) {
      consumer.plan = ConsumersImpl::find_sorted(
          impl->plans, impl->plans_by_name, c.plan,
          [](const PlanConfig& p) -> const std::string& { return p.name; });
      if (consumer.plan == nullptr)
        problems.add(ErrorKind::not_found,
                     fmt::format("consumer \"{}\": plan \"{}\" is not defined", c.id, c.plan));
    }
    impl->consumers.push_back(std::move(consumer));
  }
  impl->consumers_by_id =
      sorted_order(impl->consumers.size(),
                   [&](std::uint32_t i) -> const std::string& { return impl->consumers[i].id; });
  for (std::size_t k = 1; k < impl->consumers_by_id.size(); ++k) {
    const std::string& id = impl->consumers[impl->consumers_by_id[k]].id;
    if (!id.empty() && id == impl->consumers[impl->consumers_by_id[k - 1]].id)
      problems.add(ErrorKind::conflict, fmt::format("consumer \"{}\": defined twice", id));
  }
  add_keys(*impl, configs, problems);
  add_jwt_identities(*impl, configs, problems);
  if (problems.any) return make_error(problems.kind, std::move(problems.text));
  return std::shared_ptr<const Consumers>(std::make_shared<Consumers>(std::move(impl)));
}

Consumers::Consumers(std::unique_ptr<ConsumersImpl> impl) : impl_(std::move(impl)) {}

Consumers::~Consumers() = default;

const Consumer* Consumers::find_by_key(std::string_view key) const noexcept {
  if (key.empty()) return nullptr;
  const std::uint32_t owner = impl_->find_digest(digest_of(key));
  return owner == 0 ? nullptr : &impl_->consumers[owner - 1];
}

const Consumer* Consumers::find_by_jwt(std::string_view issuer,
                                       std::string_view subject) const noexcept {
  if (subject.empty()) return nullptr;
  const ConsumersImpl::JwtEntry* e = impl_->find_jwt(issuer, subject);
  if (e == nullptr && !issuer.empty()) e = impl_->find_jwt({}, subject);
  return e == nullptr ? nullptr : &impl_->consumers[e->consumer];
}

const Consumer* Consumers::find(std::string_view id) const noexcept {
  return ConsumersImpl::find_sorted(impl_->consumers, impl_->consumers_by_id, id,
                                    [](const Consumer& c) -> const std::string& { return c.id; });
}

const PlanConfig* Consumers::plan(std::string_view name) const noexcept {
  return ConsumersImpl::find_sorted(
      impl_->plans, impl_->plans_by_name, name,
      [](const PlanConfig& p) -> const std::string& { return p.name; });
}

std::size_t Consumers::size() const noexcept {
  return impl_->consumers.size();
}

}  // namespace portico::filters
