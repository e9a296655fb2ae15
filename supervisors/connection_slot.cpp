#include "supervisors/connection_slot.hpp"

#include <utility>

namespace natsvisor {

connection_slot::connection_slot(restart_policy policy, uint64_t last_generation)
  : policy_(std::move(policy)), generation_(last_generation), spawned_(last_generation) {}

bool connection_slot::alive(uint64_t generation) const noexcept {
  return generation != 0
         && (current(generation) || generation == next_ || generation == retiring_);
}

int connection_slot::live_children() const noexcept {
  return static_cast<int>(child_alive_) + static_cast<int>(next_ != 0)
         + static_cast<int>(retiring_ != 0);
}

bool connection_slot::usable() const noexcept {
  return state_ == connection_state::connected || state_ == connection_state::reconnecting;
}

std::vector<slot_output> connection_slot::handle(const slot_input& event) {
  out_.clear();
  std::visit([this](const auto& ev) { on(ev); }, event);
  return std::move(out_);
}

bool connection_slot::current(uint64_t generation) const noexcept {
  return child_alive_ && generation == generation_;
}

void connection_slot::enter(connection_state s, std::string detail) {
  state_ = s;
  out_.emplace_back(slot_action::notify{s, std::move(detail)});
}

void connection_slot::spawn_next() {
  generation_ = ++spawned_;
  child_alive_ = true;
  moving_ = false;
  lame_duck_seen_ = 0;
  out_.emplace_back(slot_action::spawn{generation_});
  enter(connection_state::connecting);
}

void connection_slot::on(const slot_event::start&) {
  switch (state_) {
    case connection_state::closed: spawn_next(); break;
    case connection_state::closing: reopen_ = true; break;
    default: break; // running, restarting (the timer starts it) or gave up (only reset revives)
  }
}

void connection_slot::on(const slot_event::child_up& ev) {
  if (next_ != 0 && ev.generation == next_) {
    if (state_ != connection_state::closing && !std::exchange(next_up_, true))
      out_.emplace_back(slot_action::move{next_});
    return;
  }
  if (!current(ev.generation) || state_ != connection_state::connecting)
    return;
  history_.record_up(ev.now);
  enter(connection_state::connected);
  out_.emplace_back(slot_action::ready{});
  replace_if_lame_duck(lame_duck_seen_);
}

void connection_slot::on(const slot_event::disconnected& ev) {
  if (!current(ev.generation) || state_ != connection_state::connected)
    return;
  history_.record_down(ev.now, policy_);
  enter(connection_state::reconnecting, "disconnected; nats.c reconnects");
}

void connection_slot::on(const slot_event::reconnected& ev) {
  if (!current(ev.generation) || state_ != connection_state::reconnecting)
    return;
  history_.record_up(ev.now);
  enter(connection_state::connected, "reconnected by nats.c");
  out_.emplace_back(slot_action::ready{});
}

void connection_slot::closed_if_done(steady_time now) {
  // A retiring child was stopped already: the close does not wait for it.
  if (state_ != connection_state::closing || child_alive_ || next_ != 0)
    return;
  // A slot closed while connected stops being up here: credit (or not) its up period now, or
  // the first failure after a reopen would count the time spent closed as time up.
  history_.record_down(now, policy_);
  enter(connection_state::closed, "closed on request");
  out_.emplace_back(slot_action::closed{});
  if (std::exchange(reopen_, false))
    spawn_next();
}

void connection_slot::on(const slot_event::child_down& ev) {
  if (ev.generation != 0 && ev.generation == retiring_) {
    retiring_ = 0; // replaced and done
    replace_if_lame_duck(lame_duck_seen_);
    return;
  }
  if (ev.generation != 0 && ev.generation == next_) {
    // The replacement failed before it served: the old child serves on (nats.c reconnects it
    // when its server closes it).
    next_ = 0;
    next_up_ = false;
    closed_if_done(ev.now);
    return;
  }
  if (!current(ev.generation))
    return;
  child_alive_ = false;
  moving_ = false;
  if (state_ == connection_state::closing) {
    closed_if_done(ev.now);
    return;
  }
  if (state_ == connection_state::connected) // failed without a disconnect first (a crash)
    history_.record_down(ev.now, policy_);
  last_error_ = ev.detail;
  if (next_ != 0) {
    // The replacement is there already: it takes over, no restart needed. Connected once its
    // subscriptions moved (if it is up), or once it is up.
    generation_ = std::exchange(next_, 0);
    child_alive_ = true;
    bool up = std::exchange(next_up_, false);
    out_.emplace_back(slot_action::take_over{generation_});
    enter(connection_state::connecting,
          "replacement generation " + std::to_string(generation_) + " takes over after: "
            + ev.detail);
    if (up)
      moving_ = true;
    return;
  }
  auto kind = classify(ev.code);
  auto d = decide(policy_, history_, kind, ev.detail, ev.now, ev.draw);
  if (auto* r = std::get_if<decision::restart_after>(&d)) {
    history_.record_restart(ev.now, policy_);
    enter(connection_state::restarting,
          "restart " + std::to_string(r->attempt) + " in " + std::to_string(to_ms(r->delay))
            + " ms after: " + ev.detail);
    out_.emplace_back(slot_action::arm_restart{generation_, r->delay, r->attempt});
    return;
  }
  give_up_reason_ = std::get<decision::give_up>(d).reason;
  enter(connection_state::gave_up, give_up_reason_);
  // A permanent failure's reason already is its error, and its code tells what to fix.
  if (kind == failure_kind::permanent)
    out_.emplace_back(slot_action::gave_up{give_up_reason_, ev.code});
  else
    out_.emplace_back(slot_action::gave_up{give_up_reason_ + "; last error: " + last_error_});
}

void connection_slot::on(const slot_event::timer& ev) {
  // Closed or revived in the meantime: the timer is stale.
  if (state_ != connection_state::restarting || ev.generation != generation_)
    return;
  ++restarts_;
  spawn_next();
}

void connection_slot::on(const slot_event::close&) {
  switch (state_) {
    case connection_state::connecting:
    case connection_state::connected:
    case connection_state::reconnecting:
      enter(connection_state::closing);
      out_.emplace_back(slot_action::stop{generation_});
      if (next_ != 0)
        out_.emplace_back(slot_action::stop{next_});
      break;
    case connection_state::closing:
      reopen_ = false; // the latest word is "closed"
      break;
    case connection_state::restarting: // no child: closing cancels the restart
    case connection_state::gave_up:
      give_up_reason_.clear();
      enter(connection_state::closed, "closed on request");
      out_.emplace_back(slot_action::closed{});
      break;
    case connection_state::closed: out_.emplace_back(slot_action::closed{}); break;
  }
}

void connection_slot::on(const slot_event::reset&) {
  history_.reset();
  if (state_ == connection_state::gave_up) {
    give_up_reason_.clear();
    spawn_next();
  }
}

void connection_slot::on(const slot_event::lame_duck& ev) {
  // A notice that cannot be acted on yet is remembered and acted on once it can: it overtook
  // the child's first up (nats.c reads the server's INFO on its own thread), it is about the
  // replacement before it serves, or the child it replaced has not ended yet.
  if (next_ != 0 && ev.generation == next_) {
    lame_duck_seen_ = next_;
    return;
  }
  if (!current(ev.generation))
    return;
  lame_duck_seen_ = generation_;
  replace_if_lame_duck(generation_);
}

void connection_slot::replace_if_lame_duck(uint64_t generation) {
  // One replacement at a time, and only while at most one other child lives.
  if (generation != generation_ || next_ != 0 || retiring_ != 0)
    return;
  if (state_ != connection_state::connected && state_ != connection_state::reconnecting)
    return;
  lame_duck_seen_ = 0;
  next_ = ++spawned_;
  next_up_ = false;
  out_.emplace_back(slot_action::replace{generation_, next_});
}

void connection_slot::on(const slot_event::moved& ev) {
  if (next_ != 0 && ev.generation == next_ && next_up_ && state_ != connection_state::closing) {
    retiring_ = generation_;
    generation_ = std::exchange(next_, 0);
    next_up_ = false;
    out_.emplace_back(slot_action::switch_over{retiring_, generation_});
    if (state_ == connection_state::reconnecting) { // the new child is connected
      history_.record_up(ev.now);
      enter(connection_state::connected,
            "generation " + std::to_string(generation_) + " replaced "
              + std::to_string(retiring_));
    }
    // The new child serves from now on: what waited (parked requests, publishes held while the
    // old one reconnected) goes to it, and its publishes are resumed, which also tells it to
    // say again whether nats.c reconnects (its news before the switch went unheard).
    if (state_ == connection_state::connected)
      out_.emplace_back(slot_action::ready{});
    return;
  }
  // A replacement that took over while its subscriptions were moving: now it is ready.
  if (current(ev.generation) && state_ == connection_state::connecting && moving_) {
    moving_ = false;
    history_.record_up(ev.now);
    enter(connection_state::connected);
    out_.emplace_back(slot_action::ready{});
    replace_if_lame_duck(lame_duck_seen_);
  }
}

} // namespace natsvisor
