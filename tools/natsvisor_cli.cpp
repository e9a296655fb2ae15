// natsvisor: the operator's view of every natsvisor application on a NATS cluster. It sends one
// request to natsvisor.status (or natsvisor.status.<app>), which applications with
// `status_responder` on answer with a JSON status document (api/status_responder.hpp), collects
// the replies and prints a table or the JSON. Raw nats.c only: no actor system for one request.

#include <nats/nats.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "config/redact.hpp"
#include "json_lite.hpp"

namespace {

using natsvisor::redact;
using natsvisor::cli::json;
using steady = std::chrono::steady_clock;

// Exit codes, also listed in the usage text.
constexpr int exit_usage = 1;
constexpr int exit_no_answer = 2;
constexpr int exit_no_server = 3;
constexpr int exit_malformed = 4;

constexpr const char usage_text[] = R"(Usage: natsvisor status [options]

Lists every natsvisor application on a NATS cluster that answers status requests (config key
natsvisor.status_responder = true): application, URL, state, generation, restarts, RTT, pool
use, parked requests, held (buffered) and dropped message-path publishes and last error of each
connection.

Options:
  --server URL     NATS server to ask (default: $NATS_URL, else nats://127.0.0.1:4222)
  --app NAME       ask only the application NAME (subject natsvisor.status.NAME)
  --json           print the replies as one JSON array instead of a table
  --watch          refresh every second until interrupted (Ctrl-C)
  --timeout MS     how long to wait for replies (default 1000; stops earlier once replies
                   have come and none follows for 500 ms)
  -h, --help       show this text

Exit codes: 0 replies printed, 1 bad usage, 2 no application answered, 3 cannot reach the
server, 4 a reply was malformed (the well-formed ones are still printed).
)";

struct options {
  std::string server;
  std::string app;
  bool json = false;
  bool watch = false;
  int timeout_ms = 1000;
};

// A reply is someone else's text: control characters (terminal escapes) become '?'.
std::string printable(const std::string& s, size_t max = 0) {
  std::string out;
  for (unsigned char c : s)
    out += c < 0x20 || c == 0x7f ? '?' : static_cast<char>(c);
  if (max > 0 && out.size() > max) {
    out.resize(max - 3);
    while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xc0) == 0x80)
      out.pop_back(); // not in the middle of a UTF-8 sequence
    if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xc0)
      out.pop_back();
    out += "...";
  }
  return out;
}

// -- command line --------------------------------------------------------------------------------

// Returns -1 when parsed, else the exit code (0 after --help).
int parse_args(int argc, char** argv, options& opt) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && (args[0] == "-h" || args[0] == "--help")) {
    std::cout << usage_text;
    return 0;
  }
  if (args.empty() || args[0] != "status") {
    std::cerr << "natsvisor: "
              << (args.empty() ? "missing command" : "unknown command '" + printable(args[0]) + "'")
              << " (the command is 'status'; see natsvisor --help)\n";
    return exit_usage;
  }
  if (auto env = std::getenv("NATS_URL"); env && *env)
    opt.server = env;
  else
    opt.server = "nats://127.0.0.1:4222";
  for (size_t i = 1; i < args.size(); ++i) {
    auto arg = args[i];
    std::string value;
    bool has_value = false;
    if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    auto take = [&](std::string& out) {
      if (!has_value) {
        if (i + 1 >= args.size()) {
          std::cerr << "natsvisor: " << arg << " needs a value (see natsvisor status --help)\n";
          return false;
        }
        value = args[++i];
      }
      out = value;
      return true;
    };
    if (arg == "-h" || arg == "--help") {
      std::cout << usage_text;
      return 0;
    } else if (arg == "--server") {
      if (!take(opt.server))
        return exit_usage;
    } else if (arg == "--app") {
      if (!take(opt.app))
        return exit_usage;
      // One subject token, as the config key app_name requires.
      if (opt.app.empty() || opt.app.size() > 64
          || opt.app.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789-_")
               != std::string::npos) {
        std::cerr << "natsvisor: --app takes an application name (letters, digits, - and _), got '"
                  << printable(opt.app) << "'\n";
        return exit_usage;
      }
    } else if (arg == "--timeout") {
      std::string text;
      if (!take(text))
        return exit_usage;
      char* end = nullptr;
      long ms = std::strtol(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || ms < 1 || ms > 600000) {
        std::cerr << "natsvisor: --timeout takes milliseconds (1..600000), got '" << printable(text)
                  << "'\n";
        return exit_usage;
      }
      opt.timeout_ms = static_cast<int>(ms);
    } else if ((arg == "--json" || arg == "--watch") && !has_value) {
      (arg == "--json" ? opt.json : opt.watch) = true;
    } else {
      std::cerr << "natsvisor: unknown option '" << printable(args[i])
                << "' (see natsvisor status --help)\n";
      return exit_usage;
    }
  }
  return -1;
}

// -- asking --------------------------------------------------------------------------------------

struct round_result {
  std::vector<std::string> replies; ///< raw payloads, in arrival order
  bool no_responders = false;       ///< the server said nobody listens on the subject
  std::string failure;              ///< a NATS error; nothing else is valid then
};

// One request with a fresh inbox (late replies of an earlier round cannot mix in); collects until
// the timeout, or 500 ms after the last reply.
round_result ask(natsConnection* nc, const std::string& subject, int timeout_ms) {
  round_result r;
  natsInbox* inbox = nullptr;
  natsSubscription* sub = nullptr;
  natsStatus s = natsInbox_Create(&inbox);
  if (s == NATS_OK)
    s = natsConnection_SubscribeSync(&sub, nc, inbox);
  if (s == NATS_OK)
    s = natsConnection_PublishRequest(nc, subject.c_str(), inbox, "", 0);
  if (s == NATS_OK)
    s = natsConnection_FlushTimeout(nc, timeout_ms);
  auto deadline = steady::now() + std::chrono::milliseconds(timeout_ms);
  constexpr auto quiet = std::chrono::milliseconds(500);
  while (s == NATS_OK) {
    auto now = steady::now();
    auto until = r.replies.empty() ? deadline : std::min(deadline, now + quiet);
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count();
    if (wait <= 0)
      break;
    natsMsg* m = nullptr;
    s = natsSubscription_NextMsg(&m, sub, wait);
    // nats.c turns the server's "no responders" status message (nobody subscribes to the
    // subject) into this status: the answer is known at once, no need to wait for the timeout.
    if (s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS) {
      r.no_responders = s == NATS_NO_RESPONDERS;
      s = NATS_OK;
      break;
    }
    if (s != NATS_OK)
      break;
    r.replies.emplace_back(natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m)));
    natsMsg_Destroy(m);
  }
  if (s != NATS_OK)
    r.failure = natsStatus_GetText(s);
  natsSubscription_Destroy(sub);
  natsInbox_Destroy(inbox);
  return r;
}

// -- replies -------------------------------------------------------------------------------------

struct row {
  std::string app, pid, url, state, generation, restarts, rtt, pool, parked, buffered, dropped,
    last_error;
};

std::string whole(double x) {
  std::ostringstream out;
  out.precision(15);
  out << x;
  return out.str();
}

// The rows of one reply, or the problem that makes it unusable.
bool rows_of(const std::string& text, std::vector<row>& out, std::string& problem) {
  json doc;
  if (!natsvisor::cli::parse_json(text, doc, problem)) {
    problem = "not JSON (" + problem + ")";
    return false;
  }
  auto field = [&](const json& obj, const char* key, json::kind_t kind, const std::string& where,
                   bool nullable = false) -> const json* {
    auto v = obj.get(key);
    if (v && (v->kind == kind || (nullable && v->kind == json::null)))
      return v;
    static const char* names[] = {"null", "boolean", "number", "string", "array", "object"};
    problem = where + "has no " + names[kind] + " \"" + key + "\"";
    return nullptr;
  };
  if (doc.kind != json::object) {
    problem = "not a JSON object";
    return false;
  }
  auto app = field(doc, "app", json::string, "");
  auto urls = app ? field(doc, "urls", json::array, "") : nullptr;
  if (!urls)
    return false;
  auto pid = doc.get("pid");
  std::vector<row> rows;
  for (size_t i = 0; i < urls->items.size(); ++i) {
    auto& u = urls->items[i];
    auto where = "urls[" + std::to_string(i) + "] ";
    if (u.kind != json::object) {
      problem = where + "is not an object";
      return false;
    }
    const json *url = nullptr, *state = nullptr, *gen = nullptr, *restarts = nullptr,
               *rtt = nullptr, *pool = nullptr, *active = nullptr, *size = nullptr,
               *parked = nullptr, *err = nullptr;
    if (!(url = field(u, "url", json::string, where))
        || !(state = field(u, "state", json::string, where))
        || !(gen = field(u, "generation", json::number, where))
        || !(restarts = field(u, "restarts", json::number, where))
        || !(rtt = field(u, "rtt_ms", json::number, where, true))
        || !(pool = field(u, "pool", json::object, where))
        || !(active = field(*pool, "active", json::number, where + "pool "))
        || !(size = field(*pool, "size", json::number, where + "pool "))
        || !(parked = field(u, "parked", json::number, where))
        || !(err = field(u, "last_error", json::string, where)))
      return false;
    row r;
    r.app = printable(app->s, 24);
    r.pid = pid && pid->kind == json::number ? whole(pid->n) : "-";
    r.url = printable(url->s, 48);
    r.state = printable(state->s, 16);
    r.generation = whole(gen->n);
    r.restarts = whole(restarts->n);
    if (rtt->kind == json::number) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.1fms", rtt->n);
      r.rtt = buf;
    } else {
      r.rtt = "-";
    }
    r.pool = whole(active->n) + "/" + whole(size->n);
    r.parked = whole(parked->n);
    // Optional: replies of older applications have no publish counts.
    auto count = [&](const char* key) {
      auto v = u.get(key);
      return v && v->kind == json::number ? whole(v->n) : std::string{"-"};
    };
    r.buffered = count("buffered");
    r.dropped = count("dropped");
    r.last_error = err->s.empty() ? "-" : printable(err->s, 60);
    rows.push_back(std::move(r));
  }
  if (rows.empty()) { // an application with no URL in use yet still shows up
    row r;
    r.app = printable(app->s, 24);
    r.pid = pid && pid->kind == json::number ? whole(pid->n) : "-";
    r.url = r.state = r.generation = r.restarts = r.rtt = r.pool = r.parked = r.buffered =
      r.dropped = r.last_error = "-";
    rows.push_back(std::move(r));
  }
  out.insert(out.end(), rows.begin(), rows.end());
  return true;
}

std::string table(std::vector<row> rows) {
  std::sort(rows.begin(), rows.end(), [](const row& a, const row& b) {
    return std::tie(a.app, a.pid, a.url) < std::tie(b.app, b.pid, b.url);
  });
  rows.insert(rows.begin(), row{"APP", "PID", "URL", "STATE", "GEN", "RESTARTS", "RTT", "POOL",
                                "PARKED", "BUFFERED", "DROPPED", "LAST ERROR"});
  auto cols = [](const row& r) {
    return std::vector<const std::string*>{&r.app,      &r.pid,      &r.url,     &r.state,
                                           &r.generation, &r.restarts, &r.rtt,     &r.pool,
                                           &r.parked,   &r.buffered, &r.dropped, &r.last_error};
  };
  std::vector<size_t> width(12, 0);
  for (auto& r : rows) {
    auto c = cols(r);
    for (size_t i = 0; i < c.size(); ++i)
      width[i] = std::max(width[i], c[i]->size());
  }
  std::string out;
  for (auto& r : rows) {
    auto c = cols(r);
    for (size_t i = 0; i < c.size(); ++i) {
      out += *c[i];
      if (i + 1 < c.size())
        out += std::string(width[i] - c[i]->size() + 2, ' ');
    }
    out += '\n';
  }
  return out;
}

// Asks once and renders; returns the exit code of this round.
int one_round(natsConnection* nc, const options& opt, std::string& out, std::string& err) {
  auto subject = std::string{"natsvisor.status"} + (opt.app.empty() ? "" : "." + opt.app);
  auto r = ask(nc, subject, opt.timeout_ms);
  if (!r.failure.empty()) {
    err = "natsvisor: asking " + subject + " on " + redact(opt.server) + " failed: " + r.failure
          + "\n";
    return exit_no_server;
  }
  if (r.replies.empty()) {
    auto who = opt.app.empty() ? std::string{"no natsvisor application"}
                               : "no natsvisor application named '" + opt.app + "'";
    err = "natsvisor: " + who + " answered on " + subject + " at " + redact(opt.server)
          + (r.no_responders ? " (no subscriber)"
                             : " within " + std::to_string(opt.timeout_ms) + " ms")
          + "; is status_responder enabled?\n";
    return exit_no_answer;
  }
  std::vector<row> rows;
  std::vector<const std::string*> good;
  int code = 0;
  for (size_t i = 0; i < r.replies.size(); ++i) {
    std::string problem;
    if (rows_of(r.replies[i], rows, problem)) {
      good.push_back(&r.replies[i]);
    } else {
      err += "natsvisor: malformed reply " + std::to_string(i + 1) + " of "
             + std::to_string(r.replies.size()) + " on " + subject + ": " + printable(problem)
             + "\n";
      code = exit_malformed;
    }
  }
  if (opt.json) {
    out = "[";
    for (size_t i = 0; i < good.size(); ++i)
      out += (i == 0 ? "\n" : ",\n") + *good[i];
    out += good.empty() ? "]\n" : "\n]\n";
  } else if (!rows.empty()) {
    out = table(std::move(rows));
  }
  return code;
}

} // namespace

int main(int argc, char** argv) {
  options opt;
  if (int code = parse_args(argc, argv, opt); code >= 0)
    return code;
  natsOptions* nopts = nullptr;
  natsConnection* nc = nullptr;
  natsStatus s = natsOptions_Create(&nopts);
  if (s == NATS_OK)
    s = natsOptions_SetURL(nopts, opt.server.c_str());
  if (s == NATS_OK)
    s = natsOptions_SetName(nopts, "natsvisor-cli");
  if (s == NATS_OK)
    s = natsOptions_SetTimeout(nopts, 2000); // an unreachable server fails in about 2 s
  // The scheme alone does not make nats.c use TLS.
  if (s == NATS_OK && opt.server.rfind("tls://", 0) == 0)
    s = natsOptions_SetSecure(nopts, true);
  if (s == NATS_OK)
    s = natsConnection_Connect(&nc, nopts);
  natsOptions_Destroy(nopts);
  if (s != NATS_OK) {
    std::cerr << "natsvisor: cannot connect to " << printable(redact(opt.server)) << ": "
              << natsStatus_GetText(s) << "\n";
    nats_Close();
    return exit_no_server;
  }
  int code = 0;
  for (;;) {
    auto started = steady::now();
    std::string out, err;
    code = one_round(nc, opt, out, err);
    if (!opt.watch) {
      std::cout << out << std::flush;
      std::cerr << err;
      break;
    }
    // Cursor home and clear screen, then the whole frame at once so it does not flicker.
    std::time_t now = std::time(nullptr);
    char stamp[32];
    std::strftime(stamp, sizeof(stamp), "%H:%M:%S", std::localtime(&now));
    std::cout << "\x1b[H\x1b[2J"
              << "natsvisor status at " << stamp << " (every 1 s, Ctrl-C stops)\n"
              << out << err << std::flush;
    if (code == exit_no_server)
      break; // the connection failed: later rounds would fail the same way
    std::this_thread::sleep_until(started + std::chrono::seconds(1));
  }
  natsConnection_Destroy(nc);
  nats_Close();
  return code;
}
