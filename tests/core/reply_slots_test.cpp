// Tests of the pure core reply_slots (actors/reply_slots.hpp): a reply taken on a foreign thread
// against the owner's cancel (deadline, connection loss, the actor's end): exactly one wins, a
// slot is reused only after its owner reclaimed it, stale tickets win nothing. By hand, then
// every interleaving of two owners' and two takers' steps exhaustively, then real threads racing.
#include "actors/reply_slots.hpp"

#include <algorithm>
#include <atomic>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

using natsvisor::reply_slots;

namespace {

/// Move-only, like the reply targets the slots hold: a moved-from value is empty.
using value = std::unique_ptr<std::string>;

value make(const std::string& s) {
  return std::make_unique<std::string>(s);
}

std::vector<uint64_t> reclaimed(reply_slots<value>& t) {
  std::vector<uint64_t> tickets;
  t.reclaim([&](uint64_t ticket) { tickets.push_back(ticket); });
  return tickets;
}

} // namespace

TEST_CASE("reply slots: a reply takes its value once and goes back to the owner with its ticket",
          "[reply-slots]") {
  reply_slots<value> t{4};
  auto v = make("a");
  auto ticket = t.arm(v);
  REQUIRE(ticket);
  CHECK(*ticket != 0);
  CHECK(v == nullptr); // moved in
  auto got = t.take(*ticket);
  REQUIRE(got);
  CHECK(**got == "a");
  CHECK_FALSE(t.take(*ticket));   // a second reply
  CHECK_FALSE(t.cancel(*ticket)); // the deadline after the reply
  CHECK(t.in_use() == 1);         // taken, not reclaimed yet
  CHECK(reclaimed(t) == std::vector<uint64_t>{*ticket});
  CHECK(t.in_use() == 0);
  CHECK(reclaimed(t).empty()); // once
}

TEST_CASE("reply slots: a cancel wins against a later reply and frees the slot at once",
          "[reply-slots]") {
  reply_slots<value> t{2};
  auto v = make("b");
  auto ticket = *t.arm(v);
  auto got = t.cancel(ticket);
  REQUIRE(got);
  CHECK(**got == "b");
  CHECK_FALSE(t.take(ticket));   // the late reply
  CHECK_FALSE(t.cancel(ticket)); // connection loss after the deadline
  CHECK(t.in_use() == 0);
  CHECK(reclaimed(t).empty()); // nothing was taken
}

TEST_CASE("reply slots: bounded, and a slot is reused only after reclaim with a fresh ticket",
          "[reply-slots]") {
  reply_slots<value> t{2};
  auto a = make("a"), b = make("b"), c = make("c");
  auto ta = *t.arm(a);
  auto tb = *t.arm(b);
  CHECK_FALSE(t.arm(c)); // full
  CHECK(c != nullptr);      // untouched
  REQUIRE(t.take(ta));
  CHECK_FALSE(t.arm(c)); // taken but not reclaimed: still in use
  CHECK(reclaimed(t) == std::vector<uint64_t>{ta});
  auto tc = t.arm(c);
  REQUIRE(tc);
  CHECK(*tc != ta); // the same slot, a new ticket
  CHECK(*tc % t.capacity() == ta % t.capacity());
  CHECK_FALSE(t.take(ta));   // a stale reply for the slot's previous request
  CHECK_FALSE(t.cancel(ta)); // and a stale cancel
  CHECK(**t.take(*tc) == "c");
  CHECK(**t.cancel(tb) == "b");
}

TEST_CASE("reply slots: tickets that were never handed out win nothing", "[reply-slots]") {
  reply_slots<value> t{3};
  for (uint64_t ticket : {uint64_t{0}, uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{7},
                          UINT64_MAX}) {
    CHECK_FALSE(t.take(ticket));
    CHECK_FALSE(t.cancel(ticket));
  }
  auto v = make("x");
  auto ticket = *t.arm(v);
  CHECK_FALSE(t.take(ticket + t.capacity())); // a later sequence of the same slot
  CHECK(t.take(ticket));
}

// Every interleaving of: the owner arms two requests and later cancels both (deadline and
// connection loss), two takers each try both tickets (a reply and a duplicate), and the owner
// reclaims in between. Invariants: each request is answered exactly once (by one taker or by the
// owner), reclaim reports exactly the taken ones, and in the end every slot is free again.
TEST_CASE("reply slots: every interleaving of replies and cancels answers each request once",
          "[reply-slots]") {
  // Steps: 'A' owner cancels ticket 0, 'B' owner cancels ticket 1, 'R' owner reclaims,
  // 'x'/'y' taker 1 takes ticket 0 / 1, 'p'/'q' taker 2 takes ticket 0 / 1.
  std::string steps = "ABRpqxy";
  std::sort(steps.begin(), steps.end());
  size_t orders = 0;
  do {
    reply_slots<value> t{2};
    auto v0 = make("0"), v1 = make("1");
    uint64_t tickets[2] = {*t.arm(v0), *t.arm(v1)};
    int answers[2] = {0, 0};
    std::set<uint64_t> taken_tickets, reclaimed_tickets;
    for (char step : steps) {
      switch (step) {
        case 'A':
        case 'B': {
          int k = step - 'A';
          if (t.cancel(tickets[k]))
            ++answers[k];
          break;
        }
        case 'R':
          for (auto ticket : reclaimed(t))
            reclaimed_tickets.insert(ticket);
          break;
        default: {
          int k = (step == 'x' || step == 'p') ? 0 : 1;
          if (auto got = t.take(tickets[k])) {
            CHECK(**got == std::to_string(k));
            ++answers[k];
            taken_tickets.insert(tickets[k]);
          }
        }
      }
    }
    for (auto ticket : reclaimed(t))
      reclaimed_tickets.insert(ticket);
    CHECK(answers[0] == 1);
    CHECK(answers[1] == 1);
    CHECK(reclaimed_tickets == taken_tickets);
    CHECK(t.in_use() == 0);
    ++orders;
  } while (std::next_permutation(steps.begin(), steps.end()));
  CHECK(orders == 5040);
}

// Real threads: the owner arms, cancels a random share and reclaims, while takers race for the
// same tickets (each ticket is tried by every taker: a reply and its duplicates). Every request
// is answered exactly once and its value arrives intact.
TEST_CASE("reply slots: racing takers and a cancelling owner answer each request exactly once",
          "[reply-slots][race]") {
  constexpr size_t capacity = 64;
  constexpr int requests = 40000;
  constexpr int takers = 3;
  reply_slots<value> t{capacity};
  std::vector<std::atomic<int>> answers(requests);
  std::vector<std::atomic<uint64_t>> published(requests); // ticket + 1, once armed
  std::atomic<int> armed_count{0};
  std::atomic<bool> owner_done{false};

  std::vector<std::thread> threads;
  for (int k = 0; k < takers; ++k)
    threads.emplace_back([&, k] {
      std::mt19937 rng(static_cast<unsigned>(k + 1));
      int seen = 0;
      while (!owner_done.load() || seen < armed_count.load()) {
        int upto = armed_count.load(std::memory_order_acquire);
        if (seen == upto) {
          std::this_thread::yield();
          continue;
        }
        // Take the newly published tickets, in a slightly shuffled order per taker.
        std::vector<int> batch;
        for (; seen < upto; ++seen)
          batch.push_back(seen);
        std::shuffle(batch.begin(), batch.end(), rng);
        for (int r : batch) {
          auto ticket = published[static_cast<size_t>(r)].load(std::memory_order_acquire) - 1;
          if (auto got = t.take(ticket)) {
            if (**got != std::to_string(r))
              answers[static_cast<size_t>(r)].fetch_add(100); // corrupt: fails below
            answers[static_cast<size_t>(r)].fetch_add(1);
          }
        }
      }
    });

  std::mt19937 rng(42);
  std::vector<std::pair<int, uint64_t>> live; // request, ticket
  int reclaimed_total = 0;
  for (int r = 0; r < requests;) {
    reclaimed_total += static_cast<int>(t.reclaim([&](uint64_t ticket) {
      live.erase(std::remove_if(live.begin(), live.end(),
                                [&](const auto& e) { return e.second == ticket; }),
                 live.end());
    }));
    auto v = make(std::to_string(r));
    auto ticket = t.arm(v);
    if (!ticket) {
      // Full: the owner's deadline sweep cancels the oldest live request.
      if (!live.empty()) {
        auto [req, tk] = live.front();
        if (t.cancel(tk)) {
          answers[static_cast<size_t>(req)].fetch_add(1);
          live.erase(live.begin());
        }
      }
      std::this_thread::yield();
      continue;
    }
    published[static_cast<size_t>(r)].store(*ticket + 1, std::memory_order_release);
    armed_count.store(r + 1, std::memory_order_release);
    live.emplace_back(r, *ticket);
    if (rng() % 4 == 0) { // a deadline or connection loss races the reply
      auto [req, tk] = live.back();
      if (t.cancel(tk)) {
        answers[static_cast<size_t>(req)].fetch_add(1);
        live.pop_back();
      }
    }
    ++r;
  }
  owner_done.store(true);
  for (auto& th : threads)
    th.join();
  // The actor's end: whatever is still armed is cancelled; the rest was taken.
  for (auto [req, tk] : live)
    if (t.cancel(tk))
      answers[static_cast<size_t>(req)].fetch_add(1);
  t.reclaim([](uint64_t) {});
  int wrong = 0;
  for (auto& a : answers)
    wrong += a.load() != 1;
  CHECK(wrong == 0);
  CHECK(t.in_use() == 0);
  CHECK(reclaimed_total > 0); // the takers did win some
}
