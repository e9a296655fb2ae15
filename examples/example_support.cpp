#include "example_support.hpp"

#include <atomic>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

namespace natsvisor_examples {

namespace {

using clock_type = std::chrono::steady_clock;

const clock_type::time_point start_time = clock_type::now();
std::mutex say_mutex;
std::atomic<bool> interrupt_flag{false};

} // namespace

config::~config() {
  if (status_ != 0) {
    std::fflush(nullptr);
    std::exit(status_); // the actor system is gone already; static destructors still run
  }
}

bool given(const caf::actor_system_config& cfg, const char* key) {
  auto group = caf::get_if<caf::settings>(&cfg.content, natsvisor::config_group);
  return group && group->count(caf::string_view{key, std::strlen(key)}) != 0;
}

caf::optional<natsvisor::settings> settings_from(const caf::actor_system_config& cfg) {
  auto parsed = natsvisor::parse_settings(cfg);
  if (!parsed) {
    say("config", "%s", natsvisor::describe(parsed.error()).c_str());
    return caf::none;
  }
  if (!given(cfg, "log_level"))
    parsed->log_level = "warn";
  return std::move(*parsed);
}

std::optional<prepared> prepare(const config& cfg) {
  auto s = settings_from(cfg);
  if (!s) {
    cfg.exit_with(2);
    return std::nullopt;
  }
  auto server = ensure_server(s->nats_url);
  if (!server.ok) {
    cfg.exit_with(1);
    return std::nullopt;
  }
  return prepared{std::move(*s), std::move(server)};
}

void say(const char* who, const char* fmt, ...) {
  char text[1024];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(text, sizeof(text), fmt, args);
  va_end(args);
  double secs = std::chrono::duration<double>(clock_type::now() - start_time).count();
  std::lock_guard<std::mutex> guard{say_mutex};
  std::printf("[%6.3fs] %-9s %s\n", secs, who, text);
  std::fflush(stdout);
}

void catch_interrupts() {
  struct sigaction sa {};
  sa.sa_handler = [](int) { interrupt_flag = true; };
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool interrupted() {
  return interrupt_flag;
}

bool nap(caf::timespan d) {
  for (auto until = clock_type::now() + d; clock_type::now() < until && !interrupted();)
    std::this_thread::sleep_for(
      std::min<clock_type::duration>(std::chrono::milliseconds{20}, until - clock_type::now()));
  return !interrupted();
}

caf::behavior watcher(caf::event_based_actor*) {
  return {
    [](const natsvisor::state_changed& ev) {
      say("watcher", "%s  %-12s generation %llu%s%s", ev.url.c_str(),
          natsvisor::to_string(ev.state), static_cast<unsigned long long>(ev.generation),
          ev.detail.empty() ? "" : "  -- ", ev.detail.c_str());
    },
    [](const natsvisor::lease_leaked&) {},
    [](const natsvisor::publishes_dropped& ev) {
      say("watcher", "%s  dropped %llu publishes (%s)", ev.url.c_str(),
          static_cast<unsigned long long>(ev.messages), natsvisor::to_string(ev.reason));
    },
  };
}

uint64_t wait_connected(natsvisor::connection_service& svc, uint64_t min_generation,
                        caf::timespan deadline) {
  for (auto until = clock_type::now() + deadline; clock_type::now() < until && !interrupted();
       std::this_thread::sleep_for(std::chrono::milliseconds{20}))
    if (auto st = svc.status())
      for (auto& u : *st)
        if (u.state == natsvisor::connection_state::connected && u.generation >= min_generation)
          return u.generation;
  return 0;
}

void print_status(natsvisor::connection_service& svc) {
  auto st = svc.status();
  if (!st) {
    std::printf("status unavailable: %s\n", natsvisor::describe(st.error()).c_str());
    return;
  }
  std::printf("\n%-28s %-12s %4s %8s %10s %8s %8s  %s\n", "url", "state", "gen", "restarts",
              "reconnects", "in_msgs", "out_msgs", "last error");
  using ull = unsigned long long;
  for (auto& u : *st)
    std::printf("%-28s %-12s %4llu %8llu %10llu %8llu %8llu  %s\n", u.url.c_str(),
                natsvisor::to_string(u.state), ull{u.generation}, ull{u.restarts},
                ull{u.reconnects}, ull{u.in_msgs}, ull{u.out_msgs},
                u.last_error.empty() ? "-" : u.last_error.c_str());
  std::fflush(stdout);
}

caf::error ensure_stream(const natsvisor::jetstream_handle& js, const char* name,
                         const char* subjects) {
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name;
  cfg.Subjects = &subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_AddStream(nullptr, js.get(), &cfg, nullptr, &jerr);
  if (s == NATS_OK || jerr == JSStreamNameExistErr) // created, or there already
    return caf::none;
  return natsvisor::make_error(natsvisor::errc::jetstream_error,
                               std::string{"js_AddStream "} + name + ": " + natsStatus_GetText(s)
                                 + " (JetStream error " + std::to_string(jerr) + ")",
                               js.url());
}

} // namespace natsvisor_examples
