// Typed, strict reading of YAML config values and byte sizes.
#include "server/config_node.h"

#include <cstdint>
#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace tierserve {
namespace {

// The value under `key` of a one-key document, as node "f.yaml" / "a.key".
ConfigNode ValueOf(const std::string& yaml) {
  YAML::Node doc = YAML::Load(yaml);
  return ConfigNode(doc.begin()->second, "f.yaml", "a.key");
}

TEST(ParseByteSizeTest, UnitsAndFractions) {
  EXPECT_EQ(ParseByteSize("0"), 0);
  EXPECT_EQ(ParseByteSize("1234"), 1234);
  EXPECT_EQ(ParseByteSize("1234B"), 1234);
  EXPECT_EQ(ParseByteSize("2KB"), 2000);
  EXPECT_EQ(ParseByteSize("2kB"), 2000);
  EXPECT_EQ(ParseByteSize("2KiB"), 2048);
  EXPECT_EQ(ParseByteSize("512MiB"), 512LL * 1024 * 1024);
  EXPECT_EQ(ParseByteSize("2GiB"), 2LL * 1024 * 1024 * 1024);
  EXPECT_EQ(ParseByteSize("1.5GB"), 1'500'000'000LL);
  EXPECT_EQ(ParseByteSize("1.5GiB"), 1'610'612'736LL);  // 1.5 * 2^30, exact
  EXPECT_EQ(ParseByteSize("3TB"), 3'000'000'000'000LL);
  EXPECT_EQ(ParseByteSize("1TiB"), 1LL << 40);
  EXPECT_EQ(ParseByteSize("8 GiB"), 8LL << 30);
  // 0.3 * 2^30 = 322122547.2: the fraction of a byte is dropped.
  EXPECT_EQ(ParseByteSize("0.3GiB"), 322'122'547LL);
  EXPECT_EQ(ParseByteSize("9223372036854775807"), std::numeric_limits<int64_t>::max());
}

TEST(ParseByteSizeTest, Rejects) {
  for (const char* bad :
       {"", "GiB", "-1", "-1GiB", "1.5", "2gib", "2Gb", "2 G", "1e9", "0x10", "1.GiB", ".5GiB",
        "2GiB extra", "9223372036854775808", "10000000TiB", "1234567890123456GB"}) {
    EXPECT_FALSE(ParseByteSize(bad).has_value()) << bad;
  }
}

TEST(ChildKeyPathTest, IdentifiersAndQuotedKeys) {
  EXPECT_EQ(ChildKeyPath("", "server"), "server");
  EXPECT_EQ(ChildKeyPath("server", "listen"), "server.listen");
  EXPECT_EQ(ChildKeyPath("models[0].device_map", "model.layers.0-14"),
            "models[0].device_map[\"model.layers.0-14\"]");
  EXPECT_EQ(ChildKeyPath("models[0].device_map", ""), "models[0].device_map[\"\"]");
  EXPECT_EQ(ChildKeyPath("m", "a\nb"), "m[\"a\\nb\"]");  // one line, always
}

TEST(ConfigNodeTest, IntIsStrict) {
  EXPECT_EQ(*ValueOf("k: 42").Int(0, 100), 42);
  EXPECT_EQ(*ValueOf("k: -3").Int(-5, 5), -3);
  EXPECT_EQ(ValueOf("k: 0x10").Int(0, 100).status().message(),
            "f.yaml: a.key: \"0x10\" is not an integer; expected an integer from 0 to 100");
  EXPECT_EQ(ValueOf("k: \"42\"").Int(0, 100).status().message(),
            "f.yaml: a.key: \"42\" is not an integer; expected an integer from 0 to 100");
  EXPECT_EQ(ValueOf("k: 101").Int(0, 100).status().message(),
            "f.yaml: a.key: 101 is out of range; expected an integer from 0 to 100");
  for (const char* bad : {"k: 1.0", "k: 010", "k: 1e3", "k: [1]", "k: {a: 1}", "k:", "k: +5",
                          "k: 99999999999999999999"}) {
    EXPECT_FALSE(ValueOf(bad).Int(-100, 100).ok()) << bad;
  }
}

TEST(ConfigNodeTest, BoolIsStrict) {
  EXPECT_TRUE(*ValueOf("k: true").Bool());
  EXPECT_TRUE(*ValueOf("k: True").Bool());
  EXPECT_FALSE(*ValueOf("k: false").Bool());
  EXPECT_FALSE(*ValueOf("k: FALSE").Bool());
  EXPECT_EQ(ValueOf("k: yes").Bool().status().message(),
            "f.yaml: a.key: \"yes\" is not a boolean; expected true or false");
  for (const char* bad : {"k: on", "k: 1", "k: \"true\"", "k: [true]", "k:"}) {
    EXPECT_FALSE(ValueOf(bad).Bool().ok()) << bad;
  }
}

TEST(ConfigNodeTest, NonNegativeDouble) {
  EXPECT_DOUBLE_EQ(*ValueOf("k: 6.0").NonNegativeDouble(), 6.0);
  EXPECT_DOUBLE_EQ(*ValueOf("k: 3").NonNegativeDouble(), 3.0);
  EXPECT_DOUBLE_EQ(*ValueOf("k: 0").NonNegativeDouble(), 0.0);
  for (const char* bad : {"k: -0.5", "k: -1.5", "k: .inf", "k: nan", "k: \"6.0\"", "k: six"}) {
    EXPECT_FALSE(ValueOf(bad).NonNegativeDouble().ok()) << bad;
  }
}

TEST(ConfigNodeTest, ByteSizeRange) {
  EXPECT_EQ(*ValueOf("k: 4MiB").ByteSize(1, 1 << 30), 4 << 20);
  EXPECT_EQ(*ValueOf("k: 1024").ByteSize(1, 1 << 30), 1024);
  EXPECT_EQ(
      ValueOf("k: 2GiB").ByteSize(1, 1 << 30).status().message(),
      "f.yaml: a.key: \"2GiB\" is 2147483648 bytes, out of range; expected 1 to 1073741824 bytes");
  const absl::Status bad = ValueOf("k: lots").ByteSize(1, 100).status();
  EXPECT_EQ(bad.message(),
            std::string("f.yaml: a.key: \"lots\" is not a size; expected ") + kByteSizeForms);
}

TEST(ConfigNodeTest, MapKeysAreCheckedAndUnique) {
  ConfigNode root(YAML::Load("a: 1\nb: 2\n"), "f.yaml", "top");
  EXPECT_TRUE(root.CheckMap({"a", "b", "c"}, "a map").ok());
  EXPECT_EQ(root.CheckMap({"a", "c"}, "a map").message(),
            "f.yaml: top.b: unknown key; known keys: a, c");
  ConfigNode dup(YAML::Load("a: 1\nb: 2\na: 3\n"), "f.yaml", "top");
  EXPECT_EQ(dup.CheckMap({"a", "b"}, "a map").message(),
            "f.yaml: top.a: duplicate key; each key may appear once");
  ConfigNode list(YAML::Load("[1, 2]"), "f.yaml", "top");
  EXPECT_EQ(list.CheckMap({"a"}, "a map of settings").message(),
            "f.yaml: top: got a list; expected a map of settings");
  ConfigNode complex_key(YAML::Load("? [a, b]\n: 1\n"), "f.yaml", "top");
  EXPECT_EQ(complex_key.CheckMap({"a"}, "a map").message(),
            "f.yaml: top: has a key that is a list; keys must be text");
}

TEST(ConfigNodeTest, OneOfAndString) {
  EXPECT_EQ(*ValueOf("k: nf4").OneOf({"nf4", "fp4"}), "nf4");
  EXPECT_EQ(ValueOf("k: NF4").OneOf({"nf4", "fp4"}).status().message(),
            "f.yaml: a.key: \"NF4\" is not one of nf4, fp4");
  EXPECT_EQ(ValueOf("k: \"\"").String("a name").status().message(),
            "f.yaml: a.key: got \"\"; expected a name");
  EXPECT_EQ(ValueOf("k:").String("a name").status().message(),
            "f.yaml: a.key: got no value; expected a name");
  // Multi-line text stays on one line in the message.
  EXPECT_EQ(ValueOf("k: \"a\\nb\"").OneOf({"x"}).status().message(),
            "f.yaml: a.key: \"a\\nb\" is not one of x");
}

}  // namespace
}  // namespace tierserve
