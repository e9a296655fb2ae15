#pragma once

// The life of one supervised connection slot (a URL's shared connection, or one lease-pool slot),
// as a pure state machine: events in, actions out. No actor, no clock, no nats.c, no random
// generator: the time and the random draw arrive with the events, so every ordering can be
// driven by hand in a test.
//
//                 start                 child_up
//   ┌────────┐ ─────────► ┌────────────┐ ─────────► ┌───────────┐  disconnected  ┌──────────────┐
//   │ closed │            │ connecting │            │ connected │ ─────────────► │ reconnecting │
//   └────────┘ ◄───┐      └────────────┘            └───────────┘ ◄───────────── └──────────────┘
//        ▲         │            │  ▲                      │          reconnected         │
//        │      closed          │  │ timer                └──────────┬───────────────────┘
//        │         │   child_down  │                        child_down (failure)
//   ┌─────────┐    │            ▼  │                                 ▼
//   │ closing │    │      ┌────────────┐ ◄──────────────── restart policy: restart_after
//   └─────────┘    │      │ restarting │
//     ▲ close      │      └────────────┘ ──── restart policy: give_up ───► ┌─────────┐
//     │ (a child   └── close (no child: restarting or gave_up) ◄────────── │ gave_up │ ─ reset ─►
//     │  is alive)                                                         └─────────┘ connecting
//
// - A child is identified by its generation; events of a generation the slot does not know alive
//   are stale and ignored. At most one child serves (`generation()`); besides it, at most one
//   more is alive: a replacement being prepared, or an old one retiring.
// - Make before break (lame duck): when the serving child's server enters lame duck mode, a
//   replacement is spawned beside it while the old one keeps serving; once the replacement is
//   up its subscriptions are moved to it (`move`, confirmed by `moved`), then it serves and the
//   old one is retired (`switch_over`). If the replacement fails first, the old one serves on
//   (nats.c reconnects it when the server closes it); if the old one fails first, the
//   replacement takes over as if it were a restart that needed no delay. A notice that cannot be
//   acted on yet is kept until it can: one that overtakes the child's first up, one about the
//   replacement before it serves (acted on once the replaced child ended), or one while the
//   replaced child has not ended.
// - A close always completes: with a live child it stops it and ends at its child_down; without
//   one it ends at once. A `start` that arrives while closing is remembered and honoured after
//   the close completed (close first, then a fresh connection), so the close is never stranded.
// - A slot up for at least `stable_period` ends its failure episode: its next failure is
//   restart attempt 1 (credited at the disconnect, which nats.c always reports first, or when
//   the child of a slot closed while connected is down).

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "base/time.hpp"
#include "config/restart_policy.hpp"
#include "messages/types.hpp"
#include "supervisors/restart_policy.hpp"

namespace natsvisor {

namespace slot_event {

/// Something needs the connection (a request, a subscription, the configured URL list).
struct start {};

/// The child of `generation` connected for the first time.
struct child_up {
  uint64_t generation;
  steady_time now;
};

/// nats.c lost the server of `generation` and reconnects inside the same connection.
struct disconnected {
  uint64_t generation;
  steady_time now;
};

/// nats.c reconnected `generation`.
struct reconnected {
  uint64_t generation;
  steady_time now;
};

/// The child of `generation` ended (nats.c gave up, the first connect failed, it crashed, or it
/// stopped because it was asked to). `code` is the error it ended with (errc::none for a plain
/// stop or a crash), sorted by `classify`; `detail` says why, without URL; `draw` is a random
/// number in [0, 1) for the restart jitter.
struct child_down {
  uint64_t generation;
  errc code;
  std::string detail;
  steady_time now;
  double draw;
};

/// The restart delay armed for the failure of `generation` elapsed.
struct timer {
  uint64_t generation;
};

/// The server of `generation` entered lame duck mode: it will close the connection soon.
struct lame_duck {
  uint64_t generation;
};

/// Every message-path subscription is made and confirmed on the replacement `generation`.
struct moved {
  uint64_t generation;
  steady_time now;
};

/// Close the slot (close_connection, shutdown).
struct close {};

/// Forget the failure history; revive a slot that gave up.
struct reset {};

} // namespace slot_event

using slot_input = std::variant<slot_event::start, slot_event::child_up, slot_event::disconnected,
                                slot_event::reconnected, slot_event::child_down,
                                slot_event::timer, slot_event::close, slot_event::reset,
                                slot_event::lame_duck, slot_event::moved>;

namespace slot_action {

/// Spawn a connection actor for `generation`.
struct spawn {
  uint64_t generation;
};

/// Ask the child of `generation` to close its connection and stop.
struct stop {
  uint64_t generation;
};

/// Send yourself slot_event::timer{generation} after `delay`.
struct arm_restart {
  uint64_t generation;
  caf::timespan delay;
  int attempt;
};

/// Tell watchers: the slot is now in `state` (generation: the slot's current one).
struct notify {
  connection_state state;
  std::string detail;
};

/// The slot became usable (connected): serve what waits for it.
struct ready {};

/// The slot gave up: fail what waits for it with `code` and `reason`. After a permanent failure
/// the code is the failure's own (auth_failed, tls_failed, invalid_config, ...: the caller learns
/// what to fix) and the reason is its detail; after a limit was hit the code is errc::gave_up and
/// the reason names the limit and the last error. The supervisor escalates here if configured to.
struct gave_up {
  std::string reason;
  errc code = errc::gave_up;
};

/// A close completed: answer those who asked for it; requests still waiting for this slot fail.
struct closed {};

/// Spawn a connection actor for `next` beside `old`, which keeps serving meanwhile.
struct replace {
  uint64_t old;
  uint64_t next;
};

/// Make every message-path subscription on the child of `generation`, then feed
/// slot_event::moved once the server confirmed each (or the child answered no more).
struct move {
  uint64_t generation;
};

/// The child of `next` serves the message path from now on; the child of `old` is retired:
/// what it has in flight goes back to be served by `next`, then it closes and stops.
struct switch_over {
  uint64_t old;
  uint64_t next;
};

/// The serving child failed while its replacement `generation` was prepared: the replacement
/// is the slot's child from now on (the slot reports connected once it is up and has the
/// subscriptions).
struct take_over {
  uint64_t generation;
};

} // namespace slot_action

using slot_output = std::variant<slot_action::spawn, slot_action::stop, slot_action::arm_restart,
                                 slot_action::notify, slot_action::ready, slot_action::gave_up,
                                 slot_action::closed, slot_action::replace, slot_action::move,
                                 slot_action::switch_over, slot_action::take_over>;

class connection_slot {
 public:
  /// `last_generation`: the generation a previous life of this slot reached (a URL closed and
  /// opened again), so generations keep increasing and old handles stay distinguishable.
  explicit connection_slot(restart_policy policy, uint64_t last_generation = 0);

  /// Feeds one event; returns the actions to take, in order.
  std::vector<slot_output> handle(const slot_input& event);

  connection_state state() const noexcept { return state_; }

  /// The generation of the current (serving) child, or of the last one.
  uint64_t generation() const noexcept { return generation_; }

  /// The last generation spawned: generation(), or a replacement prepared or failed.
  uint64_t last_spawned() const noexcept { return spawned_; }

  /// True while a child of `generation()` is alive (spawned and not yet down).
  bool child_alive() const noexcept { return child_alive_; }

  /// The replacement being prepared (0: none).
  uint64_t next_generation() const noexcept { return next_; }

  /// The replaced child that was retired and has not ended yet (0: none).
  uint64_t retiring_generation() const noexcept { return retiring_; }

  /// Whether the child of `generation` is alive: serving, being prepared or retiring.
  bool alive(uint64_t generation) const noexcept;

  /// How many children are alive (at most two).
  int live_children() const noexcept;

  /// Requests can be served: connected, or reconnecting (nats.c buffers meanwhile).
  bool usable() const noexcept;

  /// Children started by the restart timer (after failures); a reset or a reopen is not counted.
  uint64_t restarts() const noexcept { return restarts_; }

  /// Why the last child failed (kept after recovery); empty if none did.
  const std::string& last_error() const noexcept { return last_error_; }

  /// The reason of the give-up, while in gave_up.
  const std::string& give_up_reason() const noexcept { return give_up_reason_; }

  /// A start arrived while closing: a fresh child follows the close.
  bool reopen_pending() const noexcept { return reopen_; }

  const failure_history& history() const noexcept { return history_; }
  const restart_policy& policy() const noexcept { return policy_; }

 private:
  void on(const slot_event::start&);
  void on(const slot_event::child_up&);
  void on(const slot_event::disconnected&);
  void on(const slot_event::reconnected&);
  void on(const slot_event::child_down&);
  void on(const slot_event::timer&);
  void on(const slot_event::close&);
  void on(const slot_event::reset&);
  void on(const slot_event::lame_duck&);
  void on(const slot_event::moved&);
  void closed_if_done(steady_time now);
  void replace_if_lame_duck(uint64_t generation);

  void spawn_next();
  void enter(connection_state s, std::string detail = {});
  bool current(uint64_t generation) const noexcept;

  restart_policy policy_;
  failure_history history_;
  connection_state state_ = connection_state::closed;
  uint64_t generation_ = 0;
  uint64_t spawned_ = 0; ///< the last generation spawned (a failed replacement is never reused)
  bool child_alive_ = false;
  uint64_t next_ = 0;     ///< the replacement's generation, while it is prepared
  bool next_up_ = false;  ///< the replacement connected; its subscriptions are being moved
  uint64_t retiring_ = 0; ///< a replaced child not yet down
  bool moving_ = false;   ///< a replacement took over while its subscriptions were moving
  uint64_t lame_duck_seen_ = 0; ///< a lame duck notice not acted on yet (its generation)
  bool reopen_ = false;
  uint64_t restarts_ = 0;
  std::string last_error_;
  std::string give_up_reason_;
  std::vector<slot_output> out_; ///< the actions of the event being handled
};

} // namespace natsvisor
