#pragma once

// The credit of one URL's message path: what its publishes may occupy in the mailboxes between
// their sender and nats.c (the supervisor's and the connection actor's). CAF mailboxes have no
// bound of their own, so a producer faster than the connection drains would otherwise grow them
// without limit and never hear of it.
//
// - A publish is charged before it is sent (by the sender's publisher, or by the supervisor when
//   it arrives without a charge) and refunded when it leaves those mailboxes: written to nats.c,
//   failed, handed back, held in the URL's outbox (bounded on its own) or dropped.
// - Past the bound a charge is refused: the sender is told `overloaded` at once and nothing is
//   sent. A publish is always admitted when nothing is charged, so one larger than the bound still
//   goes (alone). Publishes natsvisor accepted once (handed back, replayed from the outbox) are
//   charged without asking: refusing them would drop what was accepted.
// - Lock-free: add, then take it back when the sum went past the bound. Concurrent senders may
//   refuse each other spuriously near the bound, but what is admitted never exceeds it.
// - A connection actor that ends cannot refund what its mailbox still held: its ledger knows what
//   it was handed and what it settled, and the supervisor refunds the difference at its end.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "caf/actor.hpp"
#include "caf/meta/type_name.hpp"

#include "messages/types.hpp"

namespace natsvisor {

struct publish_cost {
  uint64_t messages = 0;
  uint64_t bytes = 0; ///< subject, payload and headers, as the outbox counts them

  publish_cost& operator+=(publish_cost x) noexcept {
    messages += x.messages;
    bytes += x.bytes;
    return *this;
  }
  friend bool operator==(publish_cost a, publish_cost b) noexcept {
    return a.messages == b.messages && a.bytes == b.bytes;
  }
};

inline publish_cost cost_of(const outgoing& m) {
  uint64_t n = m.subject.size() + m.payload.size();
  for (auto& [k, v] : m.headers)
    n += k.size() + v.size();
  return {1, n};
}

inline publish_cost cost_of(const std::vector<outgoing>& batch) {
  publish_cost c;
  for (auto& m : batch)
    c += cost_of(m);
  return c;
}

inline publish_cost cost_of(const packed_batch& batch) {
  return {batch.size(), batch.data.size() + batch.subject.size() * batch.size()};
}

/// The decision, pure: may `cost` be charged on top of `used` under `limit`?
constexpr bool credit_admits(publish_cost used, publish_cost cost, publish_cost limit) noexcept {
  if (used.messages == 0 && used.bytes == 0)
    return true; // nothing in flight: even a publish larger than the bound goes, alone
  return cost.messages <= limit.messages && used.messages <= limit.messages - cost.messages
         && cost.bytes <= limit.bytes && used.bytes <= limit.bytes - cost.bytes;
}

class publish_credit {
 public:
  explicit publish_credit(publish_cost limit) : limit_(limit) {}

  /// Charges `c` if the bound admits it; false (nothing charged, counted refused) otherwise.
  bool try_charge(publish_cost c) noexcept {
    auto m = messages_.fetch_add(c.messages, std::memory_order_relaxed);
    auto b = bytes_.fetch_add(c.bytes, std::memory_order_relaxed);
    if (credit_admits({m, b}, c, limit_))
      return true;
    refund(c);
    refused_.fetch_add(c.messages, std::memory_order_relaxed);
    return false;
  }

  /// Charges without asking (a publish accepted once).
  void charge(publish_cost c) noexcept {
    messages_.fetch_add(c.messages, std::memory_order_relaxed);
    bytes_.fetch_add(c.bytes, std::memory_order_relaxed);
  }

  void refund(publish_cost c) noexcept {
    messages_.fetch_sub(c.messages, std::memory_order_relaxed);
    bytes_.fetch_sub(c.bytes, std::memory_order_relaxed);
  }

  publish_cost used() const noexcept {
    return {messages_.load(std::memory_order_relaxed), bytes_.load(std::memory_order_relaxed)};
  }
  publish_cost limit() const noexcept { return limit_; }
  /// Messages refused so far (publishes told overloaded).
  uint64_t refused() const noexcept { return refused_.load(std::memory_order_relaxed); }

 private:
  publish_cost limit_;
  std::atomic<uint64_t> messages_{0};
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> refused_{0};
};

/// One connection actor's part of its URL's credit.
class publish_ledger {
 public:
  explicit publish_ledger(std::shared_ptr<publish_credit> credit) : credit_(std::move(credit)) {}

  /// Supervisor: a charged publish sent to the connection actor.
  void handed(publish_cost c) noexcept { handed_ += c; }

  /// Connection actor: a publish it took from its mailbox (whatever became of it): refunded.
  void settle(publish_cost c) noexcept {
    credit_->refund(c);
    settled_messages_.fetch_add(c.messages, std::memory_order_relaxed);
    settled_bytes_.fetch_add(c.bytes, std::memory_order_relaxed);
  }

  /// Supervisor, once the connection actor ended: refunds what it never took (once).
  publish_cost close() noexcept {
    publish_cost left{handed_.messages - settled_messages_.load(std::memory_order_acquire),
                      handed_.bytes - settled_bytes_.load(std::memory_order_acquire)};
    credit_->refund(left);
    handed_ = {};
    settled_messages_ = 0;
    settled_bytes_ = 0;
    return left;
  }

 private:
  std::shared_ptr<publish_credit> credit_;
  publish_cost handed_; ///< written by the supervisor only
  std::atomic<uint64_t> settled_messages_{0};
  std::atomic<uint64_t> settled_bytes_{0};
};

/// What a sender publishes through, obtained once per URL (request_publisher in
/// api/requests.hpp): charges the URL's credit before each publish is sent, so a sender faster
/// than the connection is told `overloaded` instead of filling the mailboxes.
struct publisher {
  caf::actor svc;  ///< the supervisor
  std::string url; ///< as the sender named it (empty: the configured default)
  std::shared_ptr<publish_credit> credit;
  explicit operator bool() const noexcept { return svc && credit; }
};

/// Local messages only: the actor handle and the credit travel as they are.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, publisher& x) {
  return f(caf::meta::type_name("publisher"), x.url);
}

} // namespace natsvisor
