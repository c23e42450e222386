// Consumers: the identities a gateway knows (Kong's "consumers"), the
// credentials that resolve to them, and the plans (tiers) that set their
// limits.
//
// key-auth resolves an API key to a consumer, jwt-auth a token's issuer and
// subject; rate-limit reads the consumer's plan. API keys are stored as
// SHA-256 digests only (a leaked config or memory dump does not reveal
// them) and compared in constant time.
//
// Threading: immutable after create(); any number of threads may read it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "portico/clock.hpp"
#include "portico/export.hpp"
#include "portico/result.hpp"

namespace portico::filters {

// One rate window of a plan: `limit` requests per `period` (a second, a
// minute, an hour, a day).
struct PlanLimit {
  Duration period{};
  std::uint64_t limit = 0;
};

struct PlanConfig {
  std::string name;
  std::vector<PlanLimit> limits;  // all apply at once
  std::uint64_t daily_quota = 0;  // requests per calendar day (UTC); 0: none
};

struct JwtIdentity {
  std::string issuer;   // empty: any issuer
  std::string subject;  // the token's "sub"
};

struct ConsumerConfig {
  std::string id;
  std::string plan;  // a PlanConfig name; empty: none
  // API keys: the key itself, or "sha256:<64 hex digits>" of it, so that
  // configuration files need not hold the secret.
  std::vector<std::string> api_keys;
  std::vector<JwtIdentity> jwt;
};

struct Consumer {
  std::string id;
  const PlanConfig* plan = nullptr;  // null: none
};

class ConsumersImpl;

class PORTICO_API Consumers {
 public:
  // Errors name the consumer or plan: duplicate ids, an unknown plan, a
  // key given to two consumers, a malformed "sha256:" digest.
  static Result<std::shared_ptr<const Consumers>> create(std::vector<ConsumerConfig> consumers,
                                                         std::vector<PlanConfig> plans);
  ~Consumers();

  // The consumer whose API key this is, or null.
  const Consumer* find_by_key(std::string_view key) const noexcept;
  // The consumer with this JWT identity (an exact issuer match first, then
  // one configured for any issuer), or null.
  const Consumer* find_by_jwt(std::string_view issuer, std::string_view subject) const noexcept;
  const Consumer* find(std::string_view id) const noexcept;
  const PlanConfig* plan(std::string_view name) const noexcept;
  std::size_t size() const noexcept;

  explicit Consumers(std::unique_ptr<ConsumersImpl> impl);

 private:
  std::unique_ptr<ConsumersImpl> impl_;
};

}  // namespace portico::filters
