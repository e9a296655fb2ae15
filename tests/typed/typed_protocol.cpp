// Compiled three ways by tests/CMakeLists.txt: as is (it must compile), and with
// NATSVISOR_WRONG_MESSAGE or NATSVISOR_WRONG_ANSWER (each must NOT compile): the connection
// service's typed protocol rejects a wrongly typed request, and a handler for the wrong answer,
// at compile time.

#include <chrono>
#include <string>

#include "caf/all.hpp"

#include "api/protocol.hpp"

void use(caf::scoped_actor& self, const natsvisor::connection_api& svc) {
  using namespace std::chrono_literals;
#if defined(NATSVISOR_WRONG_MESSAGE)
  // The URL must be a string.
  natsvisor::ask(self.ptr(), svc, natsvisor::get_conn_atom_v, 42);
#elif defined(NATSVISOR_WRONG_ANSWER)
  // get_conn answers a connection_handle, not a JetStream acknowledgement.
  natsvisor::ask(self.ptr(), svc, natsvisor::get_conn_atom_v, std::string{})
    .receive([](natsvisor::js_ack&) {}, [](caf::error&) {});
#else
  natsvisor::ask(self.ptr(), svc, natsvisor::get_conn_atom_v, std::string{})
    .receive([](natsvisor::connection_handle&) {}, [](caf::error&) {});
#endif
}
