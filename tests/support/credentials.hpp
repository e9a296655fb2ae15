#pragma once

// Test credentials made on the spot, never taken from anywhere: a CA with a server certificate
// for 127.0.0.1 and a client certificate (openssl on PATH), a second CA nobody trusts, and NATS
// nkey pairs (an ed25519 key from openssl, encoded the way NATS encodes nkeys).

#include <cstddef>
#include <cstdint>
#include <string>

namespace natsvisor::testing {

/// A private temporary directory holding the files below, removed with the object.
class test_credentials {
 public:
  /// Generates everything; throws std::runtime_error (with openssl's output) on failure.
  test_credentials();
  ~test_credentials();
  test_credentials(const test_credentials&) = delete;
  test_credentials& operator=(const test_credentials&) = delete;

  const std::string& dir() const { return dir_; }
  std::string ca_file() const { return dir_ + "/ca.pem"; }
  std::string server_cert() const { return dir_ + "/server.pem"; }
  std::string server_key() const { return dir_ + "/server.key"; }
  std::string client_cert() const { return dir_ + "/client.pem"; }
  std::string client_key() const { return dir_ + "/client.key"; }
  /// A CA that signed nothing the server uses: trusting only it fails verification.
  std::string other_ca_file() const { return dir_ + "/other-ca.pem"; }

  /// The server's `tls { ... }` block; `verify`: client certificates are required (mutual TLS).
  std::string server_tls(bool verify = false) const;

  /// Writes `content` to `<dir>/<name>` and returns the path.
  std::string write(const std::string& name, const std::string& content) const;

 private:
  std::string dir_;
};

/// A NATS user nkey pair: the public key ("U...", for the server's config) and the seed
/// ("SU...", the secret the client signs with).
struct nkey_pair {
  std::string public_key;
  std::string seed;
};

/// A fresh user nkey pair; its files are made in `dir`. Throws std::runtime_error on failure.
nkey_pair make_user_nkey(const std::string& dir);

/// Pure: NATS's encoding of a key: base32 (RFC 4648, no padding) of prefix bytes + key + CRC16
/// (XMODEM, little endian). Exposed for its own test.
std::string nkey_encode_public(const unsigned char (&key)[32]);
std::string nkey_encode_seed(const unsigned char (&seed)[32]);
uint16_t nkey_crc16(const unsigned char* data, size_t size);

} // namespace natsvisor::testing
