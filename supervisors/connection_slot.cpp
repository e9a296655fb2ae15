#include "supervisors/connection_slot.hpp"

#include <utility>

namespace natsvisor {

connection_slot::connection_slot(restart_policy policy, uint64_t last_generation)
  : policy_(std::move(policy)), generation_(last_generation) {}

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
  ++generation_;
  child_alive_ = true;
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
  if (!current(ev.generation) || state_ != connection_state::connecting)
    return;
  history_.record_up(ev.now);
  enter(connection_state::connected);
  out_.emplace_back(slot_action::ready{});
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

void connection_slot::on(const slot_event::child_down& ev) {
  if (!current(ev.generation))
    return;
  child_alive_ = false;
  if (state_ == connection_state::closing) {
    // A slot closed while connected stops being up here: credit (or not) its up period now, or
    // the first failure after a reopen would count the time spent closed as time up.
    history_.record_down(ev.now, policy_);
    enter(connection_state::closed, "closed on request");
    out_.emplace_back(slot_action::closed{});
    if (std::exchange(reopen_, false))
      spawn_next();
    return;
  }
  if (state_ == connection_state::connected) // failed without a disconnect first (a crash)
    history_.record_down(ev.now, policy_);
  last_error_ = ev.detail;
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

} // namespace natsvisor
