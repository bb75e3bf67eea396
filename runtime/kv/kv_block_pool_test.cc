#include "runtime/kv/kv_block_pool.h"

#include <cstring>
#include <memory>

#include "gtest/gtest.h"
#include "runtime/device/device.h"

namespace tierserve {
namespace {

TEST(KvBlockPoolTest, DeviceStorageIsCountedAsKvAndHoldsEveryBlock) {
  std::unique_ptr<Device> sim = NewSimDevice(0, SimDeviceOptions{});
  const KvBlockPool::Options o{/*num_layers=*/3, /*kv_dim=*/8, /*block_tokens=*/4, /*num_blocks=*/5};
  const int64_t bytes = KvBlockPool::StorageBytes(o);
  EXPECT_EQ(bytes, 2 * 3 * 4 * 8 * 5 * static_cast<int64_t>(sizeof(float)));
  absl::StatusOr<Buffer> b = sim->Allocate(bytes, MemoryKind::kKv);
  ASSERT_TRUE(b.ok()) << b.status();
  auto storage = std::make_shared<Buffer>(std::move(*b));
  const uint8_t* begin = storage->data();
  {
    KvBlockPool pool(o, storage);
    storage.reset();  // the pool holds it now
    EXPECT_EQ(sim->usage().bytes[static_cast<int>(MemoryKind::kKv)], bytes);
    // Every block's keys and values of every layer lie inside the buffer, apart.
    for (int32_t block = 0; block < o.num_blocks; ++block) {
      for (int64_t layer = 0; layer < o.num_layers; ++layer) {
        const int64_t layer_bytes = o.block_tokens * o.kv_dim * static_cast<int64_t>(sizeof(float));
        for (const void* rows : {pool.Keys(block, layer), pool.Values(block, layer)}) {
          const auto* first = static_cast<const uint8_t*>(rows);
          EXPECT_GE(first, begin);
          EXPECT_LE(first + layer_bytes, begin + bytes);
        }
        EXPECT_EQ(static_cast<uint8_t*>(pool.Values(block, layer)) - static_cast<uint8_t*>(pool.Keys(block, layer)),
                  layer_bytes);
      }
    }
    std::memset(pool.Keys(4, 2), 0x7f, static_cast<size_t>(2 * o.block_tokens * o.kv_dim) * sizeof(float));
  }
  EXPECT_EQ(sim->usage().bytes[static_cast<int>(MemoryKind::kKv)], 0);  // freed with the pool
}

}  // namespace
}  // namespace tierserve

namespace tierserve {
namespace {

TEST(KvCacheDtypeTest, NamesParseAndPrintBothWays) {
  for (const DType t : {DType::kF32, DType::kF16}) {
    EXPECT_EQ(ParseKvCacheDtype(KvCacheDtypeName(t)), t);
  }
  EXPECT_STREQ(KvCacheDtypeName(DType::kF16), "fp16");
  for (const char* bad : {"", "bf16", "FP16", "f16", "fp16 ", "int8"}) {
    EXPECT_FALSE(ParseKvCacheDtype(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace tierserve
