#pragma once

// Internal to the connection supervisor: supervision.cpp acts on the pure cores' decisions,
// supervision_handlers.cpp holds the message handlers, connection_supervisor.cpp composes them.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "caf/error.hpp"
#include "caf/expected.hpp"
#include "caf/message_handler.hpp"

#include "supervisors/connection_supervisor.hpp"

namespace natsvisor::supervision {

using self_ptr = supervisor_type*;

url_entry* find_entry(self_ptr self, const std::string& key);
const std::string& key_of(self_ptr self, const std::string& url);
caf::expected<url_entry*> entry_for(self_ptr self, const std::string& url);
caf::error gave_up_error(const url_entry& e);
/// The message path's credit of `key` (made on first use, kept for good).
std::shared_ptr<publish_credit> credit_of(self_ptr self, const std::string& key);
/// A URL's credit bounds, as `cfg` sets them.
publish_cost credit_limit(const settings& cfg);
/// The credit `credits[key]` holds, made there with `cfg`'s bounds on first use (a URL
/// supervisor made without one from the router).
std::shared_ptr<publish_credit>
credit_in(std::map<std::string, std::shared_ptr<publish_credit>>& credits, const std::string& key,
          const settings& cfg);

void answer(self_ptr self, url_entry& e, parked_request& r);
void refuse(const url_entry& e, parked_request& r, caf::error err);
void fail_parked(url_entry& e, const caf::error& err);
void arm_timers(self_ptr self, url_entry& e);

/// Feeds one event to slot `index` of `e` and does what it decides (pool slots: the pool too).
void apply(self_ptr self, url_entry& e, uint32_t index, slot_input event);
void ensure_shared(self_ptr self, url_entry& e);
/// Hands out the pool's grants and starts the slots it asks for.
void act_on_pool(self_ptr self, url_entry& e, lease_pool<lease_waiter>::decisions d);
/// Every entry, for loops that may change them (closing) without touching the map.
std::vector<url_entry*> entries(self_ptr self);
void subscribe_on_child(self_ptr self, url_entry& e,
                        const subscription_registry<caf::actor>::record& r,
                        caf::response_promise rp);
/// Ends a message-path subscription on the URL's shared child (and on its replacement, if any).
void unsubscribe_on_children(self_ptr self, url_entry& e, uint64_t id);
void child_ended(self_ptr self, url_entry& e, uint32_t index, uint64_t generation,
                 const caf::error& reason);
void notify(self_ptr self, url_entry& e, uint32_t index, const slot_action::notify& n);
void close_entry(self_ptr self, url_entry& e, caf::error reason);
/// Nothing runs, waits or is held: the entry may be erased.
bool idle(const url_entry& e);
/// Sends the entry's erasure to self when it is idle (checked again when it arrives).
void forget_if_idle(self_ptr self, const url_entry& e);
/// Stops monitoring `a` unless it still watches or subscribes.
void release_monitor(self_ptr self, const caf::actor& a);
void shut_down(self_ptr self, caf::error reason);
url_status status_of(const url_entry& e);

// -- publishes (the message path): written when the shared connection takes them, else held in
// the URL's outbox; what cannot be kept is reported (see supervisors/publish_outbox.hpp).

/// (pub, ...) or (pub_conf, ...): a message for the connection actor that publishes.
bool is_publish(const caf::message& m);
/// Messages and bytes of a publish message, as the outbox and the credit count them.
std::pair<uint64_t, uint64_t> publish_size(const caf::message& m);
/// Writes `p` through the shared connection if it takes publishes now, else holds it (after the
/// other handed-back ones if `returned`); reports it dropped when it does not fit.
void publish(self_ptr self, url_entry& e, held_publish p, bool returned);
/// Counts and reports a publish refused at the door (the URL gave up, closes, or the service
/// stops): its sender gets `err` (errc::dropped when none), a fire-and-forget one an event.
void refuse_publish(self_ptr self, url_entry& e, held_publish p, caf::error err);
/// Tells the sender of an uncharged publish that the URL's credit is used up.
void refuse_overloaded(self_ptr self, url_entry& e, held_publish p);
/// Reports the fire-and-forget publishes refused for credit since the last report.
void report_overloaded(self_ptr self, url_entry& e);
std::string overload_detail(const publish_credit& c);
/// Drops (reason timeout) the held publishes whose senders waited request_timeout.
void expire_publishes(self_ptr self, url_entry& e);
void on_down(self_ptr self, caf::down_msg& msg);

/// Tells the router this URL supervisor has nothing left (no entry, no subscription), so that it
/// may be asked to end (see supervisors/route_table.hpp).
void offer_retirement(self_ptr self, const std::string& key);

caf::message_handler handle_requests(self_ptr self);
caf::message_handler message_path(self_ptr self);
caf::message_handler from_children(self_ptr self);
/// The router's question whether this URL supervisor may end (connection_supervisor.cpp).
caf::message_handler from_router(self_ptr self);

} // namespace natsvisor::supervision
