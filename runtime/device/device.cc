#include "runtime/device/device.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/base/byte_size.h"

namespace tierserve {
namespace {

// "1020.0 MiB in use (weights 1000.0 MiB, staging 20.0 MiB, kv 0 B, scratch 0 B)".
std::string FormatInUse(const MemoryUsage& usage) {
  std::string by_kind;
  for (int k = 0; k < kMemoryKinds; ++k) {
    absl::StrAppend(&by_kind, k == 0 ? "" : ", ", MemoryKindName(static_cast<MemoryKind>(k)), " ",
                    FormatBytes(usage.bytes[k]));
  }
  return absl::StrCat(FormatBytes(usage.total()), " in use (", by_kind, ")");
}

}  // namespace

const char* MemoryKindName(MemoryKind kind) {
  switch (kind) {
    case MemoryKind::kWeights:
      return "weights";
    case MemoryKind::kStaging:
      return "staging";
    case MemoryKind::kKv:
      return "kv";
    case MemoryKind::kScratch:
      return "scratch";
  }
  return "unknown";
}

Buffer::~Buffer() { Reset(); }

Buffer::Buffer(Buffer&& other) noexcept
    : device_(std::exchange(other.device_, nullptr)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      kind_(other.kind_) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    Reset();
    device_ = std::exchange(other.device_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    kind_ = other.kind_;
  }
  return *this;
}

void Buffer::Reset() {
  if (data_ != nullptr) device_->Free(data_, size_, kind_);
  device_ = nullptr;
  data_ = nullptr;
  size_ = 0;
}

Device::Device(DeviceKind kind, int index, int64_t capacity)
    : kind_(kind), index_(index) {
  usage_.capacity = capacity;
}

std::string Device::name() const {
  switch (kind_) {
    case DeviceKind::kCpu:
      return "cpu";
    case DeviceKind::kSim:
      return absl::StrCat("sim:", index_);
    case DeviceKind::kCuda:
      return absl::StrCat("cuda:", index_);
  }
  return absl::StrCat("unknown:", index_);
}

absl::StatusOr<Buffer> Device::Allocate(int64_t bytes, MemoryKind kind) {
  if (bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name(), ": cannot allocate a negative size (", bytes, " bytes)"));
  }
  if (bytes == 0) return Buffer(this, nullptr, 0, kind);
  const int k = static_cast<int>(kind);
  {
    // Reserve first, allocate outside the lock (allocation can be slow).
    absl::MutexLock lock(&mu_);
    if (usage_.capacity >= 0 && bytes > usage_.capacity - usage_.total()) {
      return absl::ResourceExhaustedError(absl::StrCat(
          name(), ": cannot allocate ", FormatBytes(bytes), " of ", MemoryKindName(kind), ": ",
          FormatBytes(usage_.capacity), " capacity, ", FormatInUse(usage_)));
    }
    usage_.bytes[k] += bytes;
  }
  absl::StatusOr<uint8_t*> data = RawAllocate(bytes);
  if (!data.ok()) {
    absl::MutexLock lock(&mu_);
    usage_.bytes[k] -= bytes;
    return absl::Status(data.status().code(),
                        absl::StrCat(name(), ": cannot allocate ", FormatBytes(bytes), " of ",
                                     MemoryKindName(kind), ": ", data.status().message(), ", ",
                                     FormatInUse(usage_)));
  }
  return Buffer(this, *data, bytes, kind);
}

MemoryUsage Device::usage() const {
  absl::MutexLock lock(&mu_);
  return usage_;
}

void Device::Free(uint8_t* data, int64_t bytes, MemoryKind kind) {
  RawFree(data, bytes);
  absl::MutexLock lock(&mu_);
  usage_.bytes[static_cast<int>(kind)] -= bytes;
}

}  // namespace tierserve
