#pragma once

// A pure core (no actor, no clock): the connection router's table of URL supervisors. Each URL
// key in use has one route to the actor that supervises it (see supervisors/connection_router.cpp).
// Lookups are O(1) on average, so a flood of messages for one URL costs the router the same
// small amount per message whatever the other URLs do.
//
// A route's actor ends when its URL has nothing left (retirement, a two-step handshake): the
// actor offers (`begin_retire`), the router asks it again, and the actor either agrees and ends
// (`retired`, with the generations its URL reached) or has been given new work meanwhile
// (`kept`). Messages for the URL that arrive while the question is out are stashed and handed
// back by both answers: to a fresh actor after a retirement, to the same actor otherwise. So no
// message ever reaches an actor that ended, and two actors never serve one URL.
//
// Generations continue across a URL's lives: what a retired route reached is remembered (bounded,
// like the supervisor's own memory of closed URLs) and handed to the next actor of the URL.
// Each route has a serial: the ids its actor hands out (subscriptions) carry it in their upper
// 24 bits (route_serial_shift), so an id alone finds its route.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace natsvisor {

/// The ids of a route's actor start at serial << route_serial_shift (2^40 ids per life).
constexpr unsigned route_serial_shift = 40;

template <class Actor, class Stashed>
class route_table {
 public:
  using generations = std::pair<uint64_t, uint64_t>; ///< shared slot, highest pool slot

  struct route {
    Actor actor{};
    uint64_t serial = 0;
    bool retiring = false;      ///< asked whether it may end; messages are stashed meanwhile
    std::vector<Stashed> stash; ///< in arrival order
  };

  /// At most `remembered` retired URLs keep their generations (0 is treated as 1).
  explicit route_table(size_t remembered) : remembered_(remembered == 0 ? 1 : remembered) {}

  /// What the next actor of `key` starts with: a fresh serial and the generations its URL's
  /// previous lives reached (taken out of memory: the new actor counts on from them).
  struct opening {
    uint64_t serial = 0;
    generations from{0, 0};
  };
  opening prepare(const std::string& key) {
    opening out;
    out.serial = ++next_serial_;
    if (auto it = past_.find(key); it != past_.end()) {
      out.from = it->second;
      past_.erase(it);
    }
    return out;
  }

  /// The route of `key` to `actor`, spawned with `serial` from prepare(key).
  route& add(const std::string& key, Actor actor, uint64_t serial) {
    actors_[actor] = key;
    serials_[serial] = key;
    auto& r = routes_[key];
    r.actor = std::move(actor);
    r.serial = serial;
    return r;
  }

  route* find(const std::string& key) {
    auto it = routes_.find(key);
    return it == routes_.end() ? nullptr : &it->second;
  }

  /// The key of the route whose actor handed out `id`; null when that route is gone.
  const std::string* key_of_id(uint64_t id) const {
    auto it = serials_.find(id >> route_serial_shift);
    return it == serials_.end() ? nullptr : &it->second;
  }

  /// The key of `actor`'s route; null when it has none (any more).
  const std::string* key_of(const Actor& actor) const {
    auto it = actors_.find(actor);
    return it == actors_.end() ? nullptr : &it->second;
  }

  /// `actor` offers to end: true when the router should ask it (it serves `key` and is not
  /// asked already); from then on messages for `key` are stashed.
  bool begin_retire(const std::string& key, const Actor& actor) {
    auto* r = find(key);
    if (r == nullptr || r->retiring || !(r->actor == actor))
      return false;
    r->retiring = true;
    return true;
  }

  /// The actor agreed and ends: the route is gone, `reached` remembered. Returns the stash, for
  /// a fresh actor of the same key (none needed when it is empty).
  std::vector<Stashed> retired(const std::string& key, generations reached) {
    auto out = erase(key);
    past_[key] = reached;
    if (past_.size() > remembered_)
      past_.erase(past_.begin()); // a URL forgotten so counts from 1 again: harmless
    return out;
  }

  /// The actor got work meanwhile and stays: returns the stash, for that same actor.
  std::vector<Stashed> kept(const std::string& key) {
    auto* r = find(key);
    if (r == nullptr)
      return {};
    r->retiring = false;
    return std::exchange(r->stash, {});
  }

  /// The route of an actor that ended without retiring (it failed, or was stopped): its key and
  /// its stash; nullopt when it had no route (retired already).
  std::optional<std::pair<std::string, std::vector<Stashed>>> ended(const Actor& actor) {
    auto it = actors_.find(actor);
    if (it == actors_.end())
      return std::nullopt;
    auto key = it->second;
    auto stash = erase(key);
    return std::make_pair(std::move(key), std::move(stash));
  }

  bool empty() const noexcept { return routes_.empty(); }
  size_t size() const noexcept { return routes_.size(); }
  size_t remembered() const noexcept { return past_.size(); }

  /// Every route, for the few messages that concern every URL (status, watchers, shutdown).
  template <class F>
  void for_each(F f) {
    for (auto& [key, r] : routes_)
      f(key, r);
  }

 private:
  std::vector<Stashed> erase(const std::string& key) {
    auto it = routes_.find(key);
    if (it == routes_.end())
      return {};
    auto out = std::move(it->second.stash);
    actors_.erase(it->second.actor);
    serials_.erase(it->second.serial);
    routes_.erase(it);
    return out;
  }

  size_t remembered_;
  uint64_t next_serial_ = 0;
  std::unordered_map<std::string, route> routes_;
  std::map<Actor, std::string> actors_;
  std::unordered_map<uint64_t, std::string> serials_;
  std::map<std::string, generations> past_;
};

} // namespace natsvisor
