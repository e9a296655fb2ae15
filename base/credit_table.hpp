#pragma once

// A pure core (no actor, no clock): each URL's message-path credit (base/publish_credit.hpp), one
// per URL, made on first use and shared by whoever publishes to that URL: its supervisor, their
// connection actors' ledgers, senders' publishers. The connection router keeps it, so that a
// publisher made before its URL's supervisor ended charges the same credit as the next one.
//
// Bounded: a program that publishes to ever new URLs must not grow it forever. A credit that
// nobody else holds (no supervisor, no ledger, no publisher: none can charge or refund it any more)
// and that has nothing charged is forgotten once the table is full; a URL used again gets a fresh
// one (nothing is lost but its count of refused publishes). Past `bound` credits still in use,
// a new URL gets none, and its caller answers errc::overloaded.

#include <cstddef>
#include <map>
#include <memory>
#include <string>

#include "base/publish_credit.hpp"

namespace natsvisor {

/// The connection router's bound: URLs whose credits are in use at once (like the URLs whose
/// generations it remembers, supervisors/route_table.hpp).
constexpr size_t max_url_credits = 10000;

class credit_table {
 public:
  /// At most `bound` credits at once (0 is treated as 1).
  explicit credit_table(size_t bound) : bound_(bound == 0 ? 1 : bound) {}

  /// The credit of `key`, made with `limit` on first use; null when the table is full of credits
  /// in use.
  std::shared_ptr<publish_credit> of(const std::string& key, publish_cost limit) {
    if (auto it = credits_.find(key); it != credits_.end())
      return it->second;
    if (credits_.size() >= bound_ && forget_unused() == 0)
      return nullptr;
    return credits_.emplace(key, std::make_shared<publish_credit>(limit)).first->second;
  }

  size_t size() const noexcept { return credits_.size(); }
  size_t bound() const noexcept { return bound_; }

 private:
  // O(size), run only when the table is full: each run forgets every unused credit at once.
  size_t forget_unused() {
    size_t n = 0;
    for (auto it = credits_.begin(); it != credits_.end();) {
      // Only this table holds it: nobody else can get hold of it again, so the count is exact.
      if (it->second.use_count() == 1 && it->second->used() == publish_cost{}) {
        it = credits_.erase(it);
        ++n;
      } else {
        ++it;
      }
    }
    return n;
  }

  size_t bound_;
  std::map<std::string, std::shared_ptr<publish_credit>> credits_;
};

} // namespace natsvisor
