#include "nats/options.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <strings.h>

#include "base/time.hpp"
#include "messages/errors.hpp"

namespace natsvisor {

natsStatus configure_options(natsOptions* opts, const std::vector<std::string>& servers,
                             const settings& cfg, const std::string& name) {
  std::vector<const char*> raw;
  for (auto& s : servers)
    raw.push_back(s.c_str());
  auto& n = cfg.nats;
  natsStatus s = natsOptions_SetServers(opts, raw.data(), static_cast<int>(raw.size()));
  // Keep the configured order: the first server of a list is the preferred one.
  if (s == NATS_OK)
    s = natsOptions_SetNoRandomize(opts, true);
  if (s == NATS_OK)
    s = natsOptions_SetName(opts, name.c_str());
  if (s == NATS_OK)
    s = natsOptions_SetTimeout(opts, to_ms(cfg.connection_timeout));
  if (s == NATS_OK)
    s = natsOptions_SetAllowReconnect(opts, true);
  if (s == NATS_OK)
    s = natsOptions_SetMaxReconnect(opts, n.max_reconnect);
  if (s == NATS_OK)
    s = natsOptions_SetReconnectWait(opts, to_ms(n.reconnect_wait));
  if (s == NATS_OK)
    s = natsOptions_SetReconnectJitter(opts, to_ms(n.reconnect_jitter), to_ms(n.reconnect_jitter));
  if (s == NATS_OK)
    s = natsOptions_SetPingInterval(opts, to_ms(n.ping_interval));
  if (s == NATS_OK)
    s = natsOptions_SetMaxPingsOut(opts, n.max_pings_out);
  if (s == NATS_OK)
    s = natsOptions_SetReconnectBufSize(opts, n.reconnect_buf_size);
  if (s == NATS_OK)
    s = natsOptions_SetSendAsap(opts, n.send_asap);
  if (s == NATS_OK && !cfg.user.empty())
    s = natsOptions_SetUserInfo(opts, cfg.user.c_str(), cfg.password.c_str());
  if (s == NATS_OK && !cfg.token.empty())
    s = natsOptions_SetToken(opts, cfg.token.c_str());
  if (s == NATS_OK && !cfg.creds_file.empty())
    s = natsOptions_SetUserCredentialsFromFiles(opts, cfg.creds_file.c_str(), nullptr);
  if (s == NATS_OK && !cfg.nkey.empty())
    s = natsOptions_SetNKeyFromSeed(opts, cfg.nkey.c_str(), cfg.nkey_seed_file.c_str());
  if (s == NATS_OK && requires_tls(servers, cfg))
    s = natsOptions_SetSecure(opts, true);
  if (s == NATS_OK && !cfg.tls_ca_file.empty())
    s = natsOptions_LoadCATrustedCertificates(opts, cfg.tls_ca_file.c_str());
  if (s == NATS_OK && !cfg.tls_cert_file.empty())
    s = natsOptions_LoadCertificatesChain(opts, cfg.tls_cert_file.c_str(),
                                          cfg.tls_key_file.c_str());
  return s;
}

bool requires_tls(const std::vector<std::string>& servers, const settings& cfg) {
  if (cfg.tls)
    return true;
  for (auto& server : servers)
    if (server.size() >= 6 && ::strncasecmp(server.c_str(), "tls://", 6) == 0)
      return true;
  return false;
}

bool may_use_tls(const std::vector<std::string>& servers, const settings& cfg) {
  return requires_tls(servers, cfg) || !cfg.tls_ca_file.empty() || !cfg.tls_cert_file.empty();
}

caf::error check_credential_files(const settings& cfg, const std::string& url) {
  for (auto [key, path] : {std::pair{"creds_file", &cfg.creds_file},
                           std::pair{"nkey_seed_file", &cfg.nkey_seed_file}}) {
    if (path->empty())
      continue;
    // Opened (not just stat'ed): an unreadable file fails here the way nats.c would fail later.
    std::ifstream file{*path};
    if (!file)
      return make_error(
        errc::invalid_config,
        std::string{key} + " '" + *path + "' cannot be read: " + std::strerror(errno), url);
  }
  return caf::none;
}

std::string connection_name(const std::string& app_name, uint32_t slot, uint64_t generation) {
  auto role = slot == 0 ? std::string{"shared"} : "pool-" + std::to_string(slot);
  return app_name + "/" + role + "/" + std::to_string(generation);
}

natsStatus use_shared_delivery(natsOptions* opts, int threads) {
  // A few threads serve every subscription of the process; nats.c grows the pool on demand up to
  // this size (process-wide, never shrinking: the largest size any service asked for). One
  // thread per subscription would let 10,000 subscriptions cost 10,000 threads. Each
  // subscription stays on one thread, so its messages keep their order, and nats.c still runs
  // its completion callback after its last delivery.
  natsStatus s = nats_SetMessageDeliveryPoolSize(threads);
  if (s != NATS_OK)
    return s;
  return natsOptions_UseGlobalMessageDelivery(opts, true);
}

} // namespace natsvisor
