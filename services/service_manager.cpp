#include "services/service_manager.hpp"

#include <algorithm>
#include <exception>

#include "caf/all.hpp"

#include "base/logging.hpp"
#include "base/replies.hpp"
#include "supervisors/connection_supervisor.hpp"

namespace natsvisor {

// -- pure parts
// ---------------------------------------------------------------------------

caf::error validate(const std::vector<service_definition>& defs) {
  std::set<std::string> seen;
  for (size_t i = 0; i < defs.size(); ++i) {
    auto& d = defs[i];
    if (d.name.empty())
      return make_error(errc::invalid_config,
                        "service definition " + std::to_string(i) + " has no name");
    if (!d.make)
      return make_error(errc::invalid_config, "service '" + d.name + "' has no factory");
    if (!seen.insert(d.name).second)
      return make_error(errc::invalid_config, "service '" + d.name + "' is defined twice");
  }
  return caf::none;
}

std::vector<std::string> find_cycle(const std::map<std::string, std::set<std::string>>& awaits,
                                    const std::string& requester, const std::string& wanted) {
  std::vector<std::string> path;
  std::set<std::string> visited;
  std::function<bool(const std::string&)> reaches = [&](const std::string& node) {
    path.push_back(node);
    if (node == requester)
      return true;
    if (visited.insert(node).second)
      if (auto it = awaits.find(node); it != awaits.end())
        for (auto& next : it->second)
          if (reaches(next))
            return true;
    path.pop_back();
    return false;
  };
  if (!reaches(wanted))
    return {};
  path.insert(path.begin(), requester);
  return path;
}

caf::error init_failure(const std::string& name, const caf::error& err) {
  auto prefix = "service '" + name + "' failed to initialize";
  if (auto code = code_of(err); code != errc::none) {
    auto detail = detail_of(err);
    return make_error(code, detail.empty() ? prefix : prefix + ": " + detail, url_of(err));
  }
  if (err == caf::sec::request_timeout)
    return make_error(errc::timeout, prefix + ": no answer before the deadline");
  if (err == caf::sec::request_receiver_down)
    return make_error(errc::service_stopped, prefix + ": it exited");
  return err;
}

// -- the manager actor
// ----------------------------------------------------------------------
//
// One behavior per state, each composed of small handler groups:
//
//   running  = queries + lookups (starting on first use) + stop_request
//   draining = queries + lookups (no new start)          + stop_join
//   stopping = queries + lookups (no new start)          + stop_join
//
// running -> draining on svc_stop; draining -> stopping once no start is in progress (at once
// when none is); stopping cleans the services up one after the other and quits after the last.
// Draining and stopping answer alike: they differ in what the manager does meanwhile (waiting
// for starts, or running the cleanups).

service_manager_state::~service_manager_state() {
  // A stopped manager has nothing left here; a manager that was killed takes
  // its services with it rather than leaving them running unowned.
  for (auto& s : started) {
    log().warn("service manager exited without stop: stopping service '{}' uncleaned", s.name);
    caf::anon_send_exit(s.handle, caf::exit_reason::user_shutdown);
  }
  for (auto& [name, s] : starting) {
    log().warn("service manager exited without stop: abandoning start of service '{}'", name);
    caf::anon_send_exit(s.handle, caf::exit_reason::user_shutdown);
  }
}

namespace {

using manager = service_manager_actor;
using waiter = service_manager_state::waiter;
using acquire_fn = void (*)(manager*, const std::string&, waiter);

caf::behavior draining(manager* self);
caf::behavior stopping(manager* self);

caf::error manager_stopping(const std::string& name) {
  return make_error(errc::service_stopped, "service '" + name + "': the manager is stopping");
}

const service_definition* find_definition(manager* self, const std::string& name) {
  auto& defs = self->state.defs;
  auto i = std::find_if(defs.begin(), defs.end(), [&](auto& d) { return d.name == name; });
  return i == defs.end() ? nullptr : &*i;
}

const caf::actor* find_started(manager* self, const std::string& name) {
  auto& started = self->state.started;
  auto i = std::find_if(started.begin(), started.end(), [&](auto& s) { return s.name == name; });
  return i == started.end() ? nullptr : &i->handle;
}

// -- stopping

/// Cleans up the last started service, then the next; answers the stop and quits after the
/// last one.
void clean_next(manager* self) {
  auto& st = self->state;
  if (st.started.empty()) {
    log().info("service manager: all services stopped");
    for (auto& rp : st.stop_waiters)
      rp.deliver(caf::unit);
    st.stop_waiters.clear();
    self->quit();
    return;
  }
  auto svc = std::move(st.started.back());
  st.started.pop_back();
  self->demonitor(svc.handle);
  self->request(svc.handle, service_cleanup_deadline, svc_clean_atom_v)
    .then(
      [self, svc] {
        log().info("service '{}' stopped", svc.name);
        self->send_exit(svc.handle, caf::exit_reason::user_shutdown);
        clean_next(self);
      },
      [self, svc](caf::error& err) {
        log().error("service '{}' failed to clean up: {}", svc.name, describe(err));
        self->send_exit(svc.handle, caf::exit_reason::user_shutdown);
        clean_next(self);
      });
}

/// draining -> stopping, once no start is in progress. Nothing starts after a stop request, so
/// this passes only once.
void stop_when_drained(manager* self) {
  auto& st = self->state;
  if (!st.stop_requested() || !st.starting.empty())
    return;
  log().info("service manager: stopping {} service(s)", st.started.size());
  self->become(stopping(self));
  clean_next(self);
}

// -- starting

/// Ends the start of `name` by the actor `handle` (answers from an older
/// attempt are ignored).
void finish_start(manager* self, const std::string& name, const caf::actor& handle,
                  const caf::error& err) {
  auto& st = self->state;
  auto i = st.starting.find(name);
  if (i == st.starting.end() || i->second.handle != handle)
    return;
  auto entry = std::move(i->second);
  st.starting.erase(i);
  st.awaits.erase(name);
  for (auto& [_, wanted] : st.awaits)
    wanted.erase(name);
  if (err) {
    // Nothing half-started stays behind: the actor goes and the name is not
    // recorded.
    auto failure = init_failure(name, err);
    log().error("{}", describe(failure));
    self->demonitor(entry.handle);
    self->send_exit(entry.handle, failure);
    for (auto& w : entry.waiters)
      w(failure);
  } else {
    st.started.push_back({name, entry.handle});
    log().info("service '{}' started", name);
    for (auto& w : entry.waiters) {
      if (st.stop_requested())
        w(manager_stopping(name));
      else
        w(entry.handle);
    }
  }
  stop_when_drained(self);
}

/// Spawns service `def` and initializes it; `w` gets the outcome.
void start_service(manager* self, const service_definition& def, waiter w) {
  auto& st = self->state;
  auto& name = def.name;
  caf::actor handle;
  std::string problem;
  try {
    handle = def.make(self->system(), *st.cfg);
    if (!handle)
      problem = "its factory returned no actor";
  } catch (const std::exception& e) {
    problem = std::string{"its factory threw: "} + e.what();
  } catch (...) {
    problem = "its factory threw";
  }
  if (!problem.empty()) {
    auto err
      = make_error(errc::invalid_config, "service '" + name + "' failed to start: " + problem);
    log().error("{}", describe(err));
    w(std::move(err));
    return;
  }
  log().info("service '{}' starting", name);
  self->monitor(handle);
  auto& entry = st.starting[name];
  entry.handle = handle;
  entry.waiters.push_back(std::move(w));
  self->request(handle, init_deadline(*st.cfg), svc_init_atom_v, caf::actor{self})
    .then([self, name, handle] { finish_start(self, name, handle, caf::none); },
          [self, name, handle](caf::error& err) { finish_start(self, name, handle, err); });
}

/// Serves `w` from what exists: a started service at once, a start in progress once it ends
/// (single start), an unknown name with unknown_service. Returns the definition of a service
/// that is neither started nor starting (`w` untouched), nullptr once `w` is served.
const service_definition* serve_existing(manager* self, const std::string& name, waiter& w) {
  auto& st = self->state;
  if (auto started = find_started(self, name)) {
    w(*started);
    return nullptr;
  }
  if (auto i = st.starting.find(name); i != st.starting.end()) {
    i->second.waiters.push_back(std::move(w));
    return nullptr;
  }
  auto def = find_definition(self, name);
  if (def == nullptr)
    w(make_error(errc::unknown_service, "no service named '" + name + "'"));
  return def;
}

/// running: hands the service to `w`, starting it when needed.
void acquire_or_start(manager* self, const std::string& name, waiter w) {
  if (auto def = serve_existing(self, name, w))
    start_service(self, *def, std::move(w));
}

/// draining and stopping: hands over what exists; nothing new starts.
void acquire_existing(manager* self, const std::string& name, waiter w) {
  if (serve_existing(self, name, w))
    w(manager_stopping(name));
}

void end_eager(manager* self, caf::error err) {
  auto& st = self->state;
  st.eager_outcome = std::move(err);
  for (auto& rp : st.ready_waiters) {
    if (*st.eager_outcome)
      rp.deliver(*st.eager_outcome);
    else
      rp.deliver(caf::unit);
  }
  st.ready_waiters.clear();
}

/// Starts the eager services one after the other, from definition `from` on.
/// Runs while running only: a stop request ends it.
void start_eager(manager* self, size_t from) {
  auto& defs = self->state.defs;
  for (size_t i = from; i < defs.size(); ++i) {
    if (!defs[i].eager)
      continue;
    acquire_or_start(self, defs[i].name, [self, i](caf::expected<caf::actor> x) {
      if (!x)
        end_eager(self, std::move(x.error()));
      else if (self->state.stop_requested())
        end_eager(self, make_error(errc::service_stopped, "the manager is stopping"));
      else
        start_eager(self, i + 1);
    });
    return;
  }
  end_eager(self, caf::none);
}

/// The initializing service that sent the current message, if any.
const std::string* current_starter(manager* self) {
  auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
  if (!sender)
    return nullptr;
  for (auto& [name, s] : self->state.starting)
    if (s.handle.address() == sender)
      return &name;
  return nullptr;
}

// -- handler groups

/// Every state: the started services, and how the eager start went.
caf::message_handler queries(manager* self) {
  return {
    [self](svc_list_atom) {
      std::vector<std::string> names;
      for (auto& s : self->state.started)
        names.push_back(s.name);
      return names;
    },
    [self](svc_ready_atom) -> caf::result<void> {
      auto& st = self->state;
      if (!st.eager_outcome) {
        auto rp = self->make_response_promise();
        st.ready_waiters.push_back(rp);
        return rp;
      }
      if (*st.eager_outcome)
        return *st.eager_outcome;
      return caf::unit;
    },
  };
}

/// Every state: get_svc. A started service at once, a dependency cycle refused at once; the
/// rest is up to `acquire` (which starts a service or refuses to, depending on the state).
caf::message_handler lookups(manager* self, acquire_fn acquire) {
  return {
    [self, acquire](get_svc_atom, const std::string& name) -> caf::result<caf::actor> {
      auto& st = self->state;
      if (auto started = find_started(self, name))
        return *started;
      std::string requester;
      if (auto starter = current_starter(self)) {
        requester = *starter;
        auto cycle = find_cycle(st.awaits, requester, name);
        if (!cycle.empty()) {
          std::string chain;
          for (auto& n : cycle)
            chain += (chain.empty() ? "" : " -> ") + n;
          auto err = make_error(errc::invalid_config, "service dependency cycle: " + chain);
          log().error("{}", describe(err));
          return err;
        }
      }
      auto rp = self->make_response_promise();
      acquire(self, name, [rp](caf::expected<caf::actor> x) mutable { rp.deliver(std::move(x)); });
      // Only a wait that is really pending can close a cycle later.
      if (!requester.empty() && st.starting.count(name) > 0)
        st.awaits[requester].insert(name);
      return rp;
    },
  };
}

/// running: svc_stop begins the stop (running -> draining -> stopping).
caf::message_handler stop_request(manager* self) {
  return {
    [self](svc_stop_atom) -> caf::result<void> {
      auto rp = self->make_response_promise();
      self->state.stop_waiters.push_back(rp);
      self->become(draining(self));
      stop_when_drained(self);
      return rp;
    },
  };
}

/// draining and stopping: a further svc_stop is answered with the first one.
caf::message_handler stop_join(manager* self) {
  return {
    [self](svc_stop_atom) -> caf::result<void> {
      auto rp = self->make_response_promise();
      self->state.stop_waiters.push_back(rp);
      return rp;
    },
  };
}

// -- states

caf::behavior running(manager* self) {
  return queries(self).or_else(lookups(self, acquire_or_start)).or_else(stop_request(self));
}

caf::behavior draining(manager* self) {
  return queries(self).or_else(lookups(self, acquire_existing)).or_else(stop_join(self));
}

caf::behavior stopping(manager* self) {
  return queries(self).or_else(lookups(self, acquire_existing)).or_else(stop_join(self));
}

} // namespace

caf::behavior service_manager_behavior(service_manager_actor* self,
                                       std::shared_ptr<const settings> cfg,
                                       std::vector<service_definition> defs) {
  self->state.cfg = std::move(cfg);
  self->state.defs = std::move(defs);
  // Whatever strays in is dropped unprinted: it may carry a URL with credentials.
  detail::tolerate_strays(self, "service manager");
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& started = self->state.started;
    auto i = std::find_if(started.begin(), started.end(),
                          [&](auto& s) { return s.handle.address() == dm.source; });
    if (i != started.end()) {
      log().error("service '{}' exited ({}); it restarts on next use", i->name,
                  describe(dm.reason));
      started.erase(i);
      return;
    }
    // Exited while initializing: fail its start now rather than at the init
    // deadline.
    for (auto& [name, s] : self->state.starting)
      if (s.handle.address() == dm.source) {
        auto err = dm.reason ? dm.reason : caf::error{caf::sec::request_receiver_down};
        finish_start(self, std::string{name}, caf::actor{s.handle}, err);
        return;
      }
  });
  start_eager(self, 0);
  return running(self);
}

caf::expected<caf::actor> spawn_service_manager(caf::actor_system& sys, settings cfg,
                                                std::vector<service_definition> defs) {
  if (auto err = validate(defs))
    return err;
  return sys.spawn(service_manager_behavior, std::make_shared<const settings>(std::move(cfg)),
                   std::move(defs));
}

service_definition connection_service_definition() {
  return {connection_service_name,
          [](caf::actor_system& sys, const settings& cfg) {
            return sys.spawn(connection_supervisor, std::make_shared<const settings>(cfg));
          },
          false};
}

// -- blocking façade
// --------------------------------------------------------------------------

service_error::service_error(caf::error err)
  : std::runtime_error(describe(err)), err_(std::move(err)) {
  // nop
}

service_manager::service_manager(caf::actor_system& sys, settings cfg,
                                 std::vector<service_definition> defs)
  : sys_(sys), cfg_(std::move(cfg)) {
  set_log_level(cfg_.log_level);
  auto named_connection = [](auto& d) { return d.name == connection_service_name; };
  if (std::none_of(defs.begin(), defs.end(), named_connection))
    defs.insert(defs.begin(), connection_service_definition());
  service_count_ = defs.size();
  auto spawned = spawn_service_manager(sys_, cfg_, std::move(defs));
  if (!spawned)
    throw service_error(std::move(spawned.error()));
  manager_ = std::move(*spawned);
  caf::error failure;
  caf::scoped_actor self{sys_};
  // Each eager start is bounded by init_deadline, so this deadline only
  // guards a lost manager.
  auto deadline
    = init_deadline(cfg_) * static_cast<int64_t>(service_count_ + 1) + std::chrono::seconds(5);
  self->request(manager_, deadline, svc_ready_atom_v)
    .receive([] { /* nop: eager services started */ },
             [&](caf::error& err) { failure = std::move(err); });
  if (failure) {
    log().error("service manager: start-up failed: {}", describe(failure));
    stop();
    throw service_error(std::move(failure));
  }
}

service_manager::~service_manager() {
  stop();
}

caf::expected<caf::actor> service_manager::get(const std::string& name) {
  if (!manager_)
    return make_error(errc::service_stopped, "the service manager was stopped");
  caf::scoped_actor self{sys_};
  caf::expected<caf::actor> result{caf::error{}};
  // The manager answers by itself (a start, with the starts it depends on, is
  // bounded by init_deadline each); this only guards a lost manager.
  request_service(self.ptr(), manager_, name,
                  init_deadline(cfg_) * static_cast<int64_t>(service_count_ + 1)
                    + std::chrono::seconds(5))
    .receive([&](caf::actor& svc) { result = std::move(svc); },
             [&](caf::error& err) {
               if (err == caf::sec::request_timeout)
                 result = make_error(errc::timeout, "the service manager did not answer");
               else if (err == caf::sec::request_receiver_down)
                 result = make_error(errc::service_stopped, "the service manager is gone");
               else
                 result = std::move(err);
             });
  return result;
}

std::vector<std::string> service_manager::started() {
  std::vector<std::string> names;
  if (!manager_)
    return names;
  caf::scoped_actor self{sys_};
  self->request(manager_, cfg_.request_timeout, svc_list_atom_v)
    .receive([&](std::vector<std::string>& xs) { names = std::move(xs); },
             [](caf::error&) { /* nop: a manager that is gone has no services */ });
  return names;
}

void service_manager::stop() {
  if (!manager_)
    return;
  caf::scoped_actor self{sys_};
  self->monitor(manager_);
  // Starts in progress finish first (init_deadline), then one cleanup after
  // the other.
  auto deadline = init_deadline(cfg_)
                  + service_cleanup_deadline * static_cast<int64_t>(service_count_)
                  + std::chrono::seconds(5);
  bool stopped = false;
  self->request(manager_, deadline, svc_stop_atom_v)
    .receive([&] { stopped = true; },
             [&](caf::error& err) {
               // A manager stopped by its own svc_stop (from an actor) is
               // simply gone.
               if (err != caf::sec::request_receiver_down)
                 log().error("service manager: stop failed: {}", describe(err));
             });
  if (!stopped)
    self->send_exit(manager_, caf::exit_reason::user_shutdown);
  self->receive([](const caf::down_msg&) { /* nop: gone */ });
  manager_ = nullptr;
}

} // namespace natsvisor
