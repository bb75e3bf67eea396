#include "server/security.h"

#include <string>

#include "gtest/gtest.h"
#include "runtime/format/testing/test_files.h"

namespace tierserve {
namespace {

TEST(ApiKeysTest, OneKeyPerLineCommentsAndBlanksSkipped) {
  absl::StatusOr<ApiKeys> keys = ApiKeys::Parse("# keys\n\n  alpha-1 \r\nbeta-2\n#gamma\n", "k: ");
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->size(), 2u);
  EXPECT_TRUE(keys->Matches("alpha-1"));
  EXPECT_TRUE(keys->Matches("beta-2"));
  for (const char* wrong : {"", "alpha-", "alpha-12", "Alpha-1", "#gamma", "gamma", " alpha-1"}) {
    EXPECT_FALSE(keys->Matches(wrong)) << wrong;
  }
}

TEST(ApiKeysTest, BadFiles) {
  EXPECT_EQ(ApiKeys::Parse("# only a comment\n\n", "k: ").status().message(),
            "k: holds no key; expected one API key per line");
  EXPECT_EQ(ApiKeys::Parse("good\ntwo words\n", "k: ").status().message(),
            "k: line 2: a key holds spaces or characters outside printable ASCII; expected one key "
            "per line");
  EXPECT_FALSE(ApiKeys::Parse("caf\xc3\xa9\n", "k: ").ok());
}

TEST(ConstantTimeEqualsTest, Equality) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secret2"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
}

TEST(LoadServerSecurityTest, PlaintextWithoutSettings) {
  ServerConfig config;
  absl::StatusOr<ServerSecurity> s = LoadServerSecurity(config);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->tls);
  EXPECT_EQ(s->api_keys, nullptr);
  EXPECT_TRUE(s->health_open);
  EXPECT_TRUE(s->reflection_open);
  EXPECT_FALSE(s->metrics_auth);
}

TEST(LoadServerSecurityTest, FilesAreCheckedWithTheirKeyPath) {
  ScopedTempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string garbage = dir.File("garbage.pem");
  ASSERT_TRUE(WriteFile(garbage, "not a certificate\n").ok());
  ServerConfig config;
  config.source = "c.yaml";
  config.tls = TlsSettings{dir.File("missing.crt"), garbage, ""};
  EXPECT_EQ(LoadServerSecurity(config).status().message(),
            "c.yaml: server.tls.cert_file: " + dir.File("missing.crt") +
                ": cannot open the certificate: No such file or directory; expected a PEM "
                "certificate chain (-----BEGIN CERTIFICATE-----)");
  config.tls = TlsSettings{garbage, garbage, ""};
  EXPECT_EQ(LoadServerSecurity(config).status().message(),
            "c.yaml: server.tls.cert_file: " + garbage +
                ": holds no PEM certificate; expected a PEM certificate chain");
  config.tls.reset();

  const std::string keys = dir.File("keys");
  ASSERT_TRUE(WriteFile(keys, "k1\nk2\n").ok());
  config.api_keys_file = keys;
  config.open_services = {"reflection"};
  absl::StatusOr<ServerSecurity> s = LoadServerSecurity(config);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_NE(s->api_keys, nullptr);
  EXPECT_EQ(s->api_keys->size(), 2u);
  EXPECT_FALSE(s->health_open);
  EXPECT_TRUE(s->reflection_open);
  config.api_keys_file = dir.path();
  EXPECT_EQ(LoadServerSecurity(config).status().message(),
            "c.yaml: server.api_keys_file: " + dir.path() +
                ": not a regular file; expected a file of API keys, one per line");
  config.api_keys_file.clear();

  const std::string password = dir.File("pw");
  ASSERT_TRUE(WriteFile(password, "s3cret\nignored\n").ok());
  config.metrics_auth = MetricsAuthSettings{"prom", password};
  s = LoadServerSecurity(config);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE(s->metrics_auth);
  EXPECT_TRUE(s->metrics_auth("prom", "s3cret"));
  EXPECT_FALSE(s->metrics_auth("prom", "ignored"));
  EXPECT_FALSE(s->metrics_auth("prom2", "s3cret"));
  EXPECT_FALSE(s->metrics_auth("", ""));
  ASSERT_TRUE(WriteFile(password, "\n").ok());
  EXPECT_EQ(LoadServerSecurity(config).status().message(),
            "c.yaml: server.metrics_auth.password_file: " + password +
                ": the first line is empty; expected the password");
}

}  // namespace
}  // namespace tierserve
