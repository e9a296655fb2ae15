#include "credentials.hpp"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "subprocess.hpp"

namespace natsvisor::testing {

namespace {

constexpr auto openssl_deadline = std::chrono::seconds(30);

void openssl(std::vector<std::string> args) {
  args.insert(args.begin(), "/usr/bin/openssl");
  auto r = run_process(args, openssl_deadline);
  if (r.exit_code != 0)
    throw std::runtime_error("openssl " + args[1] + " failed: " + r.err);
}

std::vector<unsigned char> read_bytes(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

// A key and a certificate signed by the CA in `dir` ("ca"), with extensions from `ext`.
void signed_cert(const std::string& dir, const std::string& name, const std::string& cn,
                 const std::string& ext) {
  auto base = dir + "/" + name;
  openssl({"req", "-newkey", "rsa:2048", "-nodes", "-keyout", base + ".key", "-out", base + ".csr",
           "-subj", "/CN=" + cn});
  std::ofstream{base + ".ext"} << ext << "\n";
  openssl({"x509", "-req", "-in", base + ".csr", "-CA", dir + "/ca.pem", "-CAkey", dir + "/ca.key",
           "-CAcreateserial", "-out", base + ".pem", "-days", "2", "-extfile", base + ".ext"});
}

void self_signed_ca(const std::string& dir, const std::string& name, const std::string& cn) {
  openssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/" + name + ".key",
           "-out", dir + "/" + name + ".pem", "-days", "2", "-subj", "/CN=" + cn});
}

std::string base32(const std::vector<unsigned char>& data) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (auto byte : data) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0)
    out += alphabet[(buffer << (5 - bits)) & 31];
  return out;
}

std::string with_crc(std::vector<unsigned char> raw) {
  auto crc = nkey_crc16(raw.data(), raw.size());
  raw.push_back(static_cast<unsigned char>(crc & 0xff));
  raw.push_back(static_cast<unsigned char>(crc >> 8));
  return base32(raw);
}

// nkeys' prefix bytes: 'U' (user) is 20 << 3, 'S' (seed) is 18 << 3.
constexpr unsigned char prefix_user = 20 << 3;
constexpr unsigned char prefix_seed = 18 << 3;

} // namespace

uint16_t nkey_crc16(const unsigned char* data, size_t size) {
  uint16_t crc = 0;
  for (size_t i = 0; i < size; ++i) {
    crc ^= static_cast<uint16_t>(data[i]) << 8;
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<uint16_t>(crc << 1);
  }
  return crc;
}

std::string nkey_encode_public(const unsigned char (&key)[32]) {
  std::vector<unsigned char> raw{prefix_user};
  raw.insert(raw.end(), std::begin(key), std::end(key));
  return with_crc(std::move(raw));
}

std::string nkey_encode_seed(const unsigned char (&seed)[32]) {
  // Two prefix bytes, arranged so that base32 spells "S" then "U".
  std::vector<unsigned char> raw{static_cast<unsigned char>(prefix_seed | (prefix_user >> 5)),
                                 static_cast<unsigned char>((prefix_user & 31) << 3)};
  raw.insert(raw.end(), std::begin(seed), std::end(seed));
  return with_crc(std::move(raw));
}

nkey_pair make_user_nkey(const std::string& dir) {
  auto priv = dir + "/nkey.der";
  auto pub = dir + "/nkey.pub.der";
  openssl({"genpkey", "-algorithm", "ed25519", "-outform", "DER", "-out", priv});
  openssl({"pkey", "-inform", "DER", "-in", priv, "-pubout", "-outform", "DER", "-out", pub});
  // The DER encodings of ed25519 keys end with the raw 32 bytes: the seed (PKCS#8, 48 bytes)
  // and the public key (SubjectPublicKeyInfo, 44 bytes).
  auto p = read_bytes(priv);
  auto q = read_bytes(pub);
  std::error_code ec;
  std::filesystem::remove(priv, ec); // the seed stays only in the encoded form the caller keeps
  if (p.size() != 48 || q.size() != 44)
    throw std::runtime_error("unexpected ed25519 DER sizes from openssl");
  unsigned char seed[32];
  unsigned char key[32];
  std::copy(p.end() - 32, p.end(), seed);
  std::copy(q.end() - 32, q.end(), key);
  return {nkey_encode_public(key), nkey_encode_seed(seed)};
}

test_credentials::test_credentials() {
  char templ[] = "/tmp/natsvisor-creds-XXXXXX";
  if (::mkdtemp(templ) == nullptr)
    throw std::system_error(errno, std::generic_category(), "test_credentials: mkdtemp failed");
  dir_ = templ;
  try {
    self_signed_ca(dir_, "ca", "natsvisor-test-ca");
    self_signed_ca(dir_, "other-ca", "natsvisor-untrusted-ca");
    signed_cert(dir_, "server", "127.0.0.1", "subjectAltName=IP:127.0.0.1");
    signed_cert(dir_, "client", "natsvisor-test-client", "extendedKeyUsage=clientAuth");
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    throw;
  }
}

test_credentials::~test_credentials() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string test_credentials::server_tls(bool verify) const {
  return "tls {\n  cert_file: \"" + server_cert() + "\"\n  key_file: \"" + server_key()
         + "\"\n  ca_file: \"" + ca_file() + "\"\n  verify: " + (verify ? "true" : "false")
         + "\n  timeout: 2\n}\n";
}

std::string test_credentials::write(const std::string& name, const std::string& content) const {
  auto path = dir_ + "/" + name;
  std::ofstream out{path};
  out << content;
  if (!out)
    throw std::runtime_error("test_credentials: cannot write " + path);
  return path;
}

} // namespace natsvisor::testing
