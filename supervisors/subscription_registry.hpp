#pragma once

// The message-path subscriptions of every URL, as a pure core. The supervisor keeps them (not the
// connection actors), so every new connection of a URL subscribes them again, and a subscriber
// that dies loses its subscriptions. The registry also says when a subscriber gains its first or
// loses its last subscription, so the supervisor monitors each subscriber once and stops
// monitoring it when nothing is left to clean up (no monitor is ever leaked).
//
// `Subscriber` identifies the receiving actor (caf::actor_addr in the supervisor, an int in tests)
// and must be ordered (operator<).

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace natsvisor {

template <class Subscriber>
class subscription_registry {
 public:
  struct record {
    uint64_t id = 0;
    std::string url; ///< the URL key (as configured; may hold credentials: never log it)
    std::string subject;
    std::string queue;
    Subscriber subscriber{};
  };

  /// At most `capacity` subscriptions over all URLs (0 is treated as 1).
  explicit subscription_registry(size_t capacity);

  struct added {
    bool ok = false;                   ///< false: full, or the id is taken
    bool first_for_subscriber = false; ///< monitor the subscriber now
  };
  added add(record r);

  struct removed {
    record rec;
    bool last_for_subscriber = false; ///< the subscriber has no subscription left
  };
  /// Removes one subscription; nullopt if unknown (removed already).
  std::optional<removed> remove(uint64_t id);

  /// Removes every subscription of a subscriber that died (unsubscribe each on its connection).
  std::vector<record> remove_subscriber(const Subscriber& s);

  /// The subscriptions of `url`, in id order (to subscribe again on a fresh connection).
  std::vector<record> of_url(const std::string& url) const;

  const record* find(uint64_t id) const;
  bool has_subscriber(const Subscriber& s) const;
  size_t count_url(const std::string& url) const;
  size_t size() const noexcept;
  bool full() const noexcept;

 private:
  size_t capacity_;
  std::map<uint64_t, record> by_id_;
  std::map<Subscriber, size_t> per_subscriber_;
  std::map<std::string, size_t> per_url_;
};

} // namespace natsvisor

#include "supervisors/subscription_registry_impl.hpp"
