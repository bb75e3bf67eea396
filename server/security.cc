#include "server/security.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <utility>

#include <grpcpp/security/server_credentials.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "runtime/base/config_error.h"
#include "runtime/base/status_macros.h"
#include "server/small_file.h"

namespace tierserve {
namespace {

constexpr int64_t kMaxPemBytes = 1 << 20;
constexpr int64_t kMaxApiKeysBytes = 1 << 20;
constexpr int64_t kMaxPasswordBytes = 4096;
constexpr absl::string_view kBearer = "Bearer ";

std::string Context(const ServerConfig& config, absl::string_view key_path) {
  return config.source.empty() ? absl::StrCat(key_path, ": ")
                               : absl::StrCat(config.source, ": ", key_path, ": ");
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, BioDeleter> MemoryBio(const std::string& pem) {
  return std::unique_ptr<BIO, BioDeleter>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The first certificate of a PEM text, or null.
std::unique_ptr<X509, X509Deleter> FirstCertificate(const std::string& pem) {
  auto bio = MemoryBio(pem);
  return std::unique_ptr<X509, X509Deleter>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

// Reads a PEM file named by `key` under server.tls.
absl::StatusOr<std::string> ReadPem(const ServerConfig& config, absl::string_view key,
                                    const std::string& path, absl::string_view noun,
                                    absl::string_view expected) {
  return ReadSmallFile(path, kMaxPemBytes, Context(config, absl::StrCat("server.tls.", key)),
                       SmallFileKind{noun, expected});
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> TlsCredentials(const ServerConfig& config,
                                                                         const TlsSettings& tls) {
  TS_ASSIGN_OR_RETURN(std::string cert,
                      ReadPem(config, "cert_file", tls.cert_file, "certificate",
                              "a PEM certificate chain (-----BEGIN CERTIFICATE-----)"));
  TS_ASSIGN_OR_RETURN(std::string key, ReadPem(config, "key_file", tls.key_file, "private key",
                                               "a PEM private key (-----BEGIN PRIVATE KEY-----)"));
  auto x509 = FirstCertificate(cert);
  if (x509 == nullptr) {
    return ConfigError("", Context(config, "server.tls.cert_file") + tls.cert_file,
                       "holds no PEM certificate; expected a PEM certificate chain");
  }
  auto key_bio = MemoryBio(key);
  std::unique_ptr<EVP_PKEY, KeyDeleter> pkey(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (pkey == nullptr) {
    return ConfigError("", Context(config, "server.tls.key_file") + tls.key_file,
                       "holds no unencrypted PEM private key; expected one (-----BEGIN PRIVATE "
                       "KEY-----)");
  }
  if (X509_check_private_key(x509.get(), pkey.get()) != 1) {
    return ConfigError("", Context(config, "server.tls.key_file") + tls.key_file,
                       absl::StrCat("is not the key of the certificate in ", tls.cert_file,
                                    "; expected the private key that matches cert_file"));
  }
  grpc::SslServerCredentialsOptions options(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_key_cert_pairs.push_back({std::move(key), std::move(cert)});
  if (!tls.client_ca_file.empty()) {
    TS_ASSIGN_OR_RETURN(options.pem_root_certs,
                        ReadPem(config, "client_ca_file", tls.client_ca_file, "CA certificate",
                                "a PEM CA certificate (-----BEGIN CERTIFICATE-----)"));
    if (FirstCertificate(options.pem_root_certs) == nullptr) {
      return ConfigError("", Context(config, "server.tls.client_ca_file") + tls.client_ca_file,
                         "holds no PEM certificate; expected the CA that signs client certificates");
    }
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

}  // namespace

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

ApiKeys::Digest ApiKeys::Hash(absl::string_view key) {
  Digest d{};
  unsigned int n = 0;
  EVP_Digest(key.data(), key.size(), d.data(), &n, EVP_sha256(), nullptr);
  return d;
}

absl::StatusOr<ApiKeys> ApiKeys::Parse(absl::string_view text, absl::string_view context) {
  ApiKeys keys;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    const bool printable = std::all_of(line.begin(), line.end(), [](char c) {
      return c > ' ' && c < 127;
    });
    if (!printable) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, "line ", line_number,
                       ": a key holds spaces or characters outside printable ASCII; expected one "
                       "key per line"));
    }
    keys.digests_.push_back(Hash(line));
  }
  if (keys.digests_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, "holds no key; expected one API key per line"));
  }
  return keys;
}

bool ApiKeys::Matches(absl::string_view key) const {
  const Digest d = Hash(key);
  // Every key is compared, whatever matched before.
  int matched = 0;
  for (const Digest& k : digests_) matched |= CRYPTO_memcmp(d.data(), k.data(), d.size()) == 0;
  return matched != 0;
}

grpc::Status ApiKeys::Check(const grpc::ServerContextBase& ctx) const {
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "no API key; send the metadata 'authorization: Bearer <key>'");
  }
  const absl::string_view value(it->second.data(), it->second.size());
  if (!absl::StartsWith(value, kBearer) || !Matches(value.substr(kBearer.size()))) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "the API key is not valid; send the metadata 'authorization: Bearer <key>' "
                        "with a key of the server's api_keys_file");
  }
  return grpc::Status::OK;
}

grpc::Status ServerSecurity::Authorize(const grpc::ServerContextBase& ctx) const {
  return api_keys == nullptr ? grpc::Status::OK : api_keys->Check(ctx);
}

absl::StatusOr<ServerSecurity> LoadServerSecurity(const ServerConfig& config) {
  ServerSecurity s;
  if (config.tls.has_value()) {
    TS_ASSIGN_OR_RETURN(s.credentials, TlsCredentials(config, *config.tls));
    s.tls = true;
    s.mutual_tls = !config.tls->client_ca_file.empty();
  } else {
    s.credentials = grpc::InsecureServerCredentials();
  }
  if (!config.api_keys_file.empty()) {
    const std::string context = Context(config, "server.api_keys_file");
    TS_ASSIGN_OR_RETURN(std::string text,
                        ReadSmallFile(config.api_keys_file, kMaxApiKeysBytes, context,
                                      SmallFileKind{"API keys file", "a file of API keys, one per line"}));
    TS_ASSIGN_OR_RETURN(ApiKeys keys,
                        ApiKeys::Parse(text, absl::StrCat(context, config.api_keys_file, ": ")));
    s.api_keys = std::make_shared<const ApiKeys>(std::move(keys));
    auto open = [&](const char* name) {
      return std::find(config.open_services.begin(), config.open_services.end(), name) !=
             config.open_services.end();
    };
    s.health_open = open(kOpenServiceHealth);
    s.reflection_open = open(kOpenServiceReflection);
  }
  if (config.metrics_auth.has_value()) {
    const std::string context = Context(config, "server.metrics_auth.password_file");
    TS_ASSIGN_OR_RETURN(std::string text,
                        ReadSmallFile(config.metrics_auth->password_file, kMaxPasswordBytes, context,
                                      SmallFileKind{"password file", "a file holding the password"}));
    std::string password(absl::StripAsciiWhitespace(text.substr(0, text.find('\n'))));
    if (password.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          context, config.metrics_auth->password_file, ": the first line is empty; expected the password"));
    }
    s.metrics_auth = [user = config.metrics_auth->username, password = std::move(password)](
                         const std::string& u, const std::string& p) {
      const bool user_ok = ConstantTimeEquals(u, user);
      const bool password_ok = ConstantTimeEquals(p, password);
      return user_ok && password_ok;
    };
  }
  return s;
}

}  // namespace tierserve
