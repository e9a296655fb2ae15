// Tests of the pure core publish_outbox (see its header), by hand and against a model of the
// protocol around it: the supervisor, a connection actor that hands publishes back while it is
// disconnected, and the mailboxes between them (FIFO per sender).
#include "supervisors/publish_outbox.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include <catch2/catch.hpp>

using namespace natsvisor;

namespace {

using outbox = publish_outbox<int>;

outbox::entry item(int id, uint64_t messages = 1, uint64_t bytes = 10) {
  return outbox::entry{id, messages, bytes, std::nullopt};
}

std::vector<int> ids(const std::vector<outbox::entry>& entries) {
  std::vector<int> out;
  for (auto& e : entries)
    out.push_back(e.item);
  return out;
}

} // namespace

TEST_CASE("handed-back publishes go before those accepted since, each queue in order",
          "[outbox]") {
  outbox o{100, 1000};
  CHECK_FALSE(o.add(item(3)));
  CHECK_FALSE(o.add_returned(item(1)));
  CHECK_FALSE(o.add(item(4)));
  CHECK_FALSE(o.add_returned(item(2)));
  CHECK(o.messages() == 4);
  CHECK(o.bytes() == 40);
  CHECK(ids(o.take_all()) == std::vector<int>{1, 2, 3, 4});
  CHECK(o.empty());
  CHECK(o.messages() == 0);
  CHECK(o.bytes() == 0);
  CHECK(o.replayed() == 4);
}

TEST_CASE("a publish that does not fit is handed back and counted over_bound", "[outbox]") {
  outbox o{5, 100};
  CHECK_FALSE(o.add(item(1, 3, 50)));
  CHECK_FALSE(o.add(item(2, 2, 50))); // exactly at both bounds
  auto refused = o.add(item(3, 1, 1));
  REQUIRE(refused);
  CHECK(refused->item == 3);
  auto too_big = o.add_returned(item(4, 1, 0)); // a handed-back one obeys the bound too
  REQUIRE(too_big);
  CHECK(o.dropped(drop_reason::over_bound) == 2);
  CHECK(o.messages() == 5);
  CHECK(o.bytes() == 100);
  outbox bytes_only{100, 10};
  CHECK(bytes_only.add(item(5, 1, 11)));
  CHECK(bytes_only.dropped(drop_reason::over_bound) == 1);
}

TEST_CASE("drop_all hands everything back in order and counts it by reason", "[outbox]") {
  outbox o{100, 1000};
  o.add(item(2, 3));
  o.add_returned(item(1, 2));
  CHECK(ids(o.drop_all(drop_reason::gave_up)) == std::vector<int>{1, 2});
  CHECK(o.dropped(drop_reason::gave_up) == 5);
  CHECK(o.empty());
  o.count_dropped(drop_reason::stopped, 7);
  CHECK(o.dropped(drop_reason::stopped) == 7);
  CHECK(o.dropped(drop_reason::closed) == 0);
  CHECK(o.replayed() == 0);
}

TEST_CASE("awaited publishes expire at their deadline, the rest keep their order", "[outbox]") {
  outbox o{100, 1000};
  auto t0 = steady_time{} + std::chrono::seconds(100);
  auto at = [&](int ms) { return t0 + std::chrono::milliseconds(ms); };
  o.add(outbox::entry{1, 1, 10, std::nullopt}); // fire and forget: no deadline
  o.add(outbox::entry{2, 2, 10, at(30)});
  o.add_returned(outbox::entry{0, 1, 10, at(10)});
  o.add(outbox::entry{3, 1, 10, at(20)});
  auto first = o.rearm();
  REQUIRE(first);
  CHECK(*first == at(10));
  CHECK_FALSE(o.rearm()); // armed already
  CHECK(o.expire(at(5)).empty());
  CHECK(ids(o.expire(at(20))) == std::vector<int>{0, 3});
  CHECK(o.dropped(drop_reason::timeout) == 2);
  CHECK(o.messages() == 3);
  CHECK(o.bytes() == 20);
  auto next = o.rearm();
  REQUIRE(next);
  CHECK(*next == at(30));
  CHECK(ids(o.take_all()) == std::vector<int>{1, 2});
  CHECK_FALSE(o.rearm());
  CHECK(o.expire(at(1000)).empty());
}

namespace {

// -- a model of the protocol around the outbox ---------------------------------------------------
//
// Supervisor: forwards a publish to the child while it knows the slot connected and resumed,
// else keeps it in the outbox. On the child's reconnected event it asks the child to resume
// (a marker through the child's mailbox) and drains the outbox once the child answered the
// latest marker (an answer to an older one may arrive after a newer disconnect and reconnect).
// Child: writes publishes while connected and not holding; from a disconnect until it processed
// a resume marker it hands every publish back. nats.c's callbacks reach the child through the
// same mailbox as the supervisor's messages.

struct pub {
  int id;
};
struct net_down {};
struct net_up {};
struct resume {
  int token;
};
using to_child = std::variant<pub, net_down, net_up, resume>;

struct disconnected {};
struct reconnected {};
struct bounced {
  int id;
};
struct resumed {
  int token;
};
using to_supervisor = std::variant<disconnected, reconnected, bounced, resumed>;

struct model {
  explicit model(uint64_t max_messages, bool with_handshake = true)
    : box(max_messages, max_messages * 10), handshake(with_handshake) {}

  outbox box;
  bool handshake; ///< false: drain at the reconnect, without asking the child to resume
  std::map<int, uint64_t> size; // messages of each publish
  // Supervisor.
  bool slot_connected = true;
  bool resuming = false;
  int resume_token = 0;
  std::deque<to_supervisor> sup_mailbox;
  // Child.
  bool connected = true;
  bool holding = false;
  bool network_up = true;
  std::deque<to_child> child_mailbox;
  // Fates.
  std::vector<int> written;
  std::map<int, int> fates; // id -> how many fates it got
  std::map<int, int> dropped;

  void drop(const outbox::entry& e) {
    ++fates[e.item];
    ++dropped[e.item];
  }

  void publish(int id, uint64_t messages) {
    size[id] = messages;
    if (slot_connected && !resuming && box.empty()) {
      child_mailbox.push_back(pub{id});
      return;
    }
    if (auto refused = box.add(outbox::entry{id, messages, messages * 10, std::nullopt}))
      drop(*refused);
  }

  void toggle_network() {
    network_up = !network_up;
    if (network_up)
      child_mailbox.push_back(net_up{});
    else
      child_mailbox.push_back(net_down{});
  }

  void child_step() {
    if (child_mailbox.empty())
      return;
    auto next = child_mailbox.front();
    child_mailbox.pop_front();
    if (auto* p = std::get_if<pub>(&next)) {
      if (connected && !holding) {
        written.push_back(p->id);
        ++fates[p->id];
      } else {
        sup_mailbox.push_back(bounced{p->id});
      }
    } else if (std::holds_alternative<net_down>(next)) {
      connected = false;
      holding = true;
      sup_mailbox.push_back(disconnected{});
    } else if (std::holds_alternative<net_up>(next)) {
      connected = true;
      if (!handshake)
        holding = false; // without the marker, nothing else would end it
      sup_mailbox.push_back(reconnected{});
    } else {
      holding = false;
      sup_mailbox.push_back(resumed{std::get<resume>(next).token});
    }
  }

  void drain() {
    for (auto& e : box.take_all())
      child_mailbox.push_back(pub{e.item});
  }

  void supervisor_step() {
    if (sup_mailbox.empty())
      return;
    auto next = sup_mailbox.front();
    sup_mailbox.pop_front();
    if (std::holds_alternative<disconnected>(next)) {
      slot_connected = false;
    } else if (std::holds_alternative<reconnected>(next)) {
      slot_connected = true;
      if (!handshake) {
        drain();
        return;
      }
      resuming = true;
      child_mailbox.push_back(resume{++resume_token});
    } else if (auto* b = std::get_if<bounced>(&next)) {
      if (slot_connected && !resuming && box.empty()) {
        child_mailbox.push_back(pub{b->id}); // a late one: nothing older is held
      } else if (auto refused = box.add_returned(outbox::entry{b->id, size[b->id],
                                                               size[b->id] * 10,
                                                               std::nullopt})) {
        drop(*refused);
      }
    } else if (std::get<resumed>(next).token == resume_token) {
      resuming = false;
      if (slot_connected)
        drain();
    }
  }
};

} // namespace

/// Random steps of `m` from `seed`; returns how many publishes were made.
int run_random(model& m, std::mt19937& rng) {
  auto roll = [&](int n) { return std::uniform_int_distribution<int>{0, n - 1}(rng); };
  int next_id = 0;
  for (int step = 0; step < 2000; ++step) {
    switch (roll(10)) {
      case 0:
      case 1:
      case 2: m.publish(next_id++, 1 + roll(3)); break;
      case 3:
        if (roll(4) == 0)
          m.toggle_network();
        break;
      case 4:
      case 5:
      case 6: m.child_step(); break;
      default: m.supervisor_step(); break;
    }
    REQUIRE(m.box.messages() <= m.box.max_messages());
    REQUIRE(m.box.bytes() <= m.box.max_bytes());
  }
  // The network comes back for good and every mailbox runs dry: whatever is left is written.
  if (!m.network_up)
    m.toggle_network();
  while (!m.child_mailbox.empty() || !m.sup_mailbox.empty()) {
    m.child_step();
    m.supervisor_step();
  }
  return next_id;
}

TEST_CASE("random event orders: order kept, bounds never exceeded, exactly one fate each",
          "[outbox]") {
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    std::mt19937 rng{seed};
    auto roll = [&](int n) { return std::uniform_int_distribution<int>{0, n - 1}(rng); };
    model m{static_cast<uint64_t>(1 + roll(40))};
    INFO("seed " << seed);
    int next_id = run_random(m, rng);
    CHECK(m.box.empty());
    CHECK(std::is_sorted(m.written.begin(), m.written.end()));
    CHECK(std::adjacent_find(m.written.begin(), m.written.end()) == m.written.end());
    uint64_t dropped_messages = 0;
    for (auto& [id, n] : m.dropped)
      dropped_messages += m.size[id] * n;
    CHECK(dropped_messages == m.box.dropped(drop_reason::over_bound));
    for (int id = 0; id < next_id; ++id)
      REQUIRE(m.fates[id] == 1);
  }
}

TEST_CASE("without the resume handshake a handed-back publish can be overtaken", "[outbox]") {
  // Why the supervisor waits for the child's answer: publishes still in the child's mailbox
  // when it reconnects would be written before older ones it handed back.
  int reordered = 0;
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    std::mt19937 rng{seed};
    model m{1000, false};
    run_random(m, rng);
    if (!std::is_sorted(m.written.begin(), m.written.end()))
      ++reordered;
  }
  CHECK(reordered > 0);
}

TEST_CASE("random give-ups and closes: every message is written or dropped with its reason, once",
          "[outbox]") {
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    std::mt19937 rng{seed};
    auto roll = [&](int n) { return std::uniform_int_distribution<int>{0, n - 1}(rng); };
    outbox o{static_cast<uint64_t>(1 + roll(30)), static_cast<uint64_t>(10 + roll(300))};
    auto now = steady_time{} + std::chrono::seconds(1);
    std::map<int, int> fates;
    std::vector<int> written;
    std::map<drop_reason, uint64_t> dropped;
    uint64_t replayed = 0;
    int next_id = 0;
    for (int step = 0; step < 1000; ++step) {
      auto e = outbox::entry{next_id, static_cast<uint64_t>(1 + roll(3)),
                             static_cast<uint64_t>(roll(40)), std::nullopt};
      if (roll(2) == 0)
        e.deadline = now + std::chrono::milliseconds(roll(100));
      now += std::chrono::milliseconds(roll(10));
      switch (roll(9)) {
        case 0:
        case 1:
        case 2:
        case 3:
          ++next_id;
          if (auto refused = (roll(2) == 0 ? o.add(e) : o.add_returned(e))) {
            ++fates[refused->item];
            dropped[drop_reason::over_bound] += refused->messages;
          }
          break;
        case 8:
          for (auto& x : o.expire(now)) {
            REQUIRE(x.deadline);
            REQUIRE(*x.deadline <= now);
            ++fates[x.item];
            dropped[drop_reason::timeout] += x.messages;
          }
          break;
        case 4:
        case 5:
          for (auto& x : o.take_all()) {
            ++fates[x.item];
            written.push_back(x.item);
            replayed += x.messages;
          }
          break;
        default: {
          auto reason = static_cast<drop_reason>(1 + roll(3));
          for (auto& x : o.drop_all(reason)) {
            ++fates[x.item];
            dropped[reason] += x.messages;
          }
        }
      }
      REQUIRE(o.messages() <= o.max_messages());
      REQUIRE(o.bytes() <= o.max_bytes());
    }
    for (auto& x : o.drop_all(drop_reason::stopped)) {
      ++fates[x.item];
      dropped[drop_reason::stopped] += x.messages;
    }
    INFO("seed " << seed);
    for (int id = 0; id < next_id; ++id)
      REQUIRE(fates[id] == 1);
    CHECK(o.replayed() == replayed);
    for (auto r : {drop_reason::over_bound, drop_reason::gave_up, drop_reason::closed,
                   drop_reason::stopped, drop_reason::timeout})
      CHECK(o.dropped(r) == dropped[r]);
  }
}
