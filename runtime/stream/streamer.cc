#include "runtime/stream/streamer.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "runtime/base/aligned_bytes.h"
#include "runtime/base/status_macros.h"

namespace tierserve {
namespace {

// Groups start on page boundaries in the offload file (as direct I/O
// would need); the images inside a group on 64-byte boundaries.
constexpr int64_t kGroupAlignment = 4096;

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

struct Streamer::Slot {
  Buffer buffer;                 // on the execution device
  Buffer host;                   // disk reads land here first when that is not the host
  GroupId group = kResident;     // held, read or being read; kResident: empty
  bool held = false;             // a lease is out
  bool prefetched = false;       // the read was issued before an acquire asked
  bool fresh = false;            // read, not yet counted in the stats
  std::shared_ptr<Event> ready;  // the read is done
  // Written by the read on the copy thread before `ready` fires.
  absl::Status read_status;
  double read_seconds = 0;
};

Streamer::Lease::~Lease() { Release(); }

Streamer::Lease::Lease(Lease&& other) noexcept : streamer_(other.streamer_), slot_(other.slot_) {
  other.streamer_ = nullptr;
  other.slot_ = -1;
}

Streamer::Lease& Streamer::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    streamer_ = other.streamer_;
    slot_ = other.slot_;
    other.streamer_ = nullptr;
    other.slot_ = -1;
  }
  return *this;
}

void Streamer::Lease::Release() {
  if (streamer_ != nullptr) streamer_->Release(slot_);
  streamer_ = nullptr;
  slot_ = -1;
}

Streamer::Streamer(Device* host, Options options)
    : host_(host),
      execution_(options.execution != nullptr ? options.execution : host),
      options_(options) {}

Streamer::~Streamer() {
  // Reads in flight write into the slots: let them land first.
  reads_.reset();
}

Streamer::GroupId Streamer::AddGroup(std::string name) {
  groups_.push_back(Group{std::move(name), nullptr, Rest::kResident, {}, -1, 0});
  return static_cast<GroupId>(groups_.size()) - 1;
}

absl::StatusOr<int64_t> Streamer::AddMember(GroupId group, Rest rest, WeightFormat* format) {
  Group& g = groups_[group];
  if (!g.members.empty() && g.rest != rest) {
    return absl::InternalError(absl::StrCat(g.name, ": its weights must rest in one place"));
  }
  g.rest = rest;
  const int64_t offset = g.members.empty() ? 0 : AlignUp(g.bytes);
  g.members.push_back(Member{format, offset, Buffer()});
  g.bytes = offset + format->bytes();
  return offset;
}

absl::Status Streamer::Offload(GroupId group, WeightFormat* format, OffloadFile* file) {
  Group& g = groups_[group];
  const bool first = g.members.empty();
  if (!first && file->size() != g.file_offset + g.bytes) {
    return absl::InternalError(absl::StrCat("offloading ", g.name,
                                            ": its images must be written back to back"));
  }
  absl::StatusOr<int64_t> at =
      file->Append(format->image(), format->bytes(), first ? kGroupAlignment : kByteAlignment);
  if (!at.ok()) return at.status();
  if (first) g.file_offset = *at;
  absl::StatusOr<int64_t> offset = AddMember(group, Rest::kDisk, format);
  if (!offset.ok()) return offset.status();
  if (*offset != *at - g.file_offset) {
    return absl::InternalError(absl::StrCat(g.name, ": offload file layout mismatch"));
  }
  format->Unbind();
  return absl::OkStatus();
}

absl::Status Streamer::RestOnHost(GroupId group, WeightFormat* format) {
  if (execution_ == host_) {
    return absl::InternalError("weights rest on the host only when computing elsewhere");
  }
  absl::StatusOr<Buffer> b = host_->Allocate(format->bytes(), MemoryKind::kWeights);
  if (!b.ok()) return b.status();
  std::memcpy(b->data(), format->image(), static_cast<size_t>(format->bytes()));
  absl::StatusOr<int64_t> offset = AddMember(group, Rest::kHost, format);
  if (!offset.ok()) return offset.status();
  groups_[group].members.back().host = std::move(*b);
  format->Unbind();
  return absl::OkStatus();
}

absl::Status Streamer::PlaceOn(WeightFormat* format, Device* device) {
  absl::StatusOr<Buffer> b = device->Allocate(format->bytes(), MemoryKind::kWeights);
  if (!b.ok()) return b.status();
  // cpu and sim buffers are host memory; a CUDA device copies through its stream.
  std::memcpy(b->data(), format->image(), static_cast<size_t>(format->bytes()));
  format->Bind(b->data());
  placed_.push_back(std::move(*b));
  return absl::OkStatus();
}

absl::Status Streamer::Finish(std::unique_ptr<OffloadFile> file) {
  file_ = std::move(file);
  int64_t largest = 0;
  for (const Group& g : groups_) largest = std::max(largest, g.bytes);
  if (largest == 0) return absl::OkStatus();
  bool disk = false;
  for (const Group& g : groups_) disk |= g.rest == Rest::kDisk;
  for (int i = 0; i < options_.depth + kMaxHeld; ++i) {
    auto slot = std::make_unique<Slot>();
    absl::StatusOr<Buffer> b = execution_->Allocate(largest, MemoryKind::kStaging);
    if (!b.ok()) return b.status();
    slot->buffer = std::move(*b);
    if (disk && execution_ != host_) {
      absl::StatusOr<Buffer> h = host_->Allocate(largest, MemoryKind::kStaging);
      if (!h.ok()) return h.status();
      slot->host = std::move(*h);
    }
    slots_.push_back(std::move(slot));
  }
  reads_ = execution_->NewCopyStream();
  return absl::OkStatus();
}

int64_t Streamer::staging_bytes() const {
  int64_t b = 0;
  for (const auto& s : slots_) b += s->buffer.size() + s->host.size();
  return b;
}

int64_t Streamer::staging_bytes(const Device* device) const {
  int64_t b = 0;
  for (const auto& s : slots_) {
    if (s->buffer.device() == device) b += s->buffer.size();
    if (s->host.device() == device) b += s->host.size();
  }
  return b;
}

StreamerStats Streamer::stats() const { return stats_; }

int Streamer::SlotOf(GroupId group) const {
  for (size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i]->group == group) return static_cast<int>(i);
  return -1;
}

int Streamer::StartRead(GroupId group, bool demand) {
  // How many acquires from now `g` is next needed (the learned order).
  auto distance = [&](GroupId g) -> size_t {
    for (size_t i = 0; i < order_.size(); ++i)
      if (order_[(cursor_ + i) % order_.size()] == g) return i;
    return std::numeric_limits<size_t>::max();
  };
  // An empty slot, else the one whose group is needed last — and, for a read
  // ahead, later than `group` itself, or it would evict what comes first.
  int best = -1;
  size_t best_distance = 0;
  const size_t wanted = distance(group);
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = *slots_[i];
    if (s.held) continue;
    if (s.group == kResident) {
      best = static_cast<int>(i);
      break;
    }
    const size_t d = distance(s.group);
    if ((demand || d > wanted) && (best < 0 || d >= best_distance)) {
      best = static_cast<int>(i);
      best_distance = d;
    }
  }
  if (best < 0) return -1;
  Slot& slot = *slots_[best];
  if (slot.ready != nullptr) slot.ready->Wait().IgnoreError();  // an earlier read into it
  slot.group = group;
  slot.fresh = true;
  slot.prefetched = false;
  slot.read_status = absl::OkStatus();
  const Group& g = groups_[group];
  if (g.rest == Rest::kDisk) {
    Slot* target = &slot;
    OffloadFile* file = file_.get();
    uint8_t* landing = slot.host.empty() ? slot.buffer.data() : slot.host.data();
    reads_->Enqueue([target, file, landing, offset = g.file_offset, bytes = g.bytes] {
      const auto t0 = std::chrono::steady_clock::now();
      target->read_status = file->Read(offset, bytes, landing);
      target->read_seconds = SecondsSince(t0);
      return absl::OkStatus();  // the slot carries the outcome; the stream stays usable
    });
    if (!slot.host.empty()) reads_->Copy(slot.host.data(), slot.buffer.data(), g.bytes);
  } else {  // Rest::kHost
    for (const Member& m : g.members) {
      reads_->Copy(m.host.data(), slot.buffer.data() + m.offset, m.format->bytes());
    }
  }
  slot.ready = reads_->Record();
  return best;
}

void Streamer::Prefetch() {
  if (order_.empty()) return;
  const size_t ahead = std::min(order_.size(), static_cast<size_t>(options_.depth));
  for (size_t i = 0; i < ahead; ++i) {
    const GroupId g = order_[(cursor_ + i) % order_.size()];
    if (SlotOf(g) >= 0) continue;
    const int s = StartRead(g, /*demand=*/false);
    if (s < 0) return;
    slots_[s]->prefetched = true;
  }
}

void Streamer::ComputeOn(GroupId group, Device* device) { groups_[group].computes_on = device; }

absl::Status Streamer::MoveActivations(Device* to, const void* activations, int64_t bytes) {
  Device* from = activations_on_;
  activations_on_ = to;
  if (from == nullptr || from == to || activations == nullptr || bytes <= 0) return absl::OkStatus();
  auto it = std::find_if(landings_.begin(), landings_.end(),
                         [to](const Landing& l) { return l.device == to; });
  if (it == landings_.end()) {
    landings_.push_back(Landing{to, Buffer(), to->NewCopyStream()});
    it = landings_.end() - 1;
  }
  if (it->buffer.size() < bytes) {
    it->buffer = Buffer();  // the old one's bytes count no more
    absl::StatusOr<Buffer> b = to->Allocate(bytes, MemoryKind::kScratch);
    if (!b.ok()) {
      return absl::Status(b.status().code(),
                          absl::StrCat("activations from ", from->name(), ": ", b.status().message()));
    }
    it->buffer = std::move(*b);
  }
  const auto t0 = std::chrono::steady_clock::now();
  it->link->Copy(activations, it->buffer.data(), bytes);
  TS_RETURN_IF_ERROR(it->link->Record()->Wait());
  stats_.activation_seconds += SecondsSince(t0);
  stats_.activation_bytes += bytes;
  ++stats_.activation_moves;
  return absl::OkStatus();
}

void Streamer::BeginForward() {
  activations_on_ = nullptr;  // the tokens come from the host
  if (!recording_.empty()) order_ = std::move(recording_);
  recording_.clear();
  cursor_ = 0;
  Prefetch();  // the forward's first groups, if the last one did not already
}

absl::StatusOr<Streamer::Lease> Streamer::Acquire(GroupId group, const void* activations,
                                                  int64_t activation_bytes) {
  Device* on = group >= 0 && groups_[group].computes_on != nullptr ? groups_[group].computes_on
                                                                    : execution_;
  TS_RETURN_IF_ERROR(MoveActivations(on, activations, activation_bytes));
  if (!offloaded(group)) return Lease();
  recording_.push_back(group);
  for (size_t i = 0; i < order_.size(); ++i) {
    const size_t at = (cursor_ + i) % order_.size();
    if (order_[at] == group) {
      cursor_ = (at + 1) % order_.size();
      break;
    }
  }
  ++stats_.acquires;
  int s = SlotOf(group);
  if (s >= 0 && slots_[s]->held) {
    return absl::InternalError(absl::StrCat(groups_[group].name, " is acquired twice"));
  }
  if (s >= 0) {
    if (slots_[s]->prefetched) ++stats_.prefetch_hits;
  } else {
    s = StartRead(group, /*demand=*/true);
    if (s < 0) {
      return absl::InternalError(absl::StrCat("no free staging slot for ", groups_[group].name,
                                              ": more than ", kMaxHeld, " groups held at once"));
    }
  }
  Slot& slot = *slots_[s];
  slot.held = true;
  if (!slot.ready->Done()) {
    const auto t0 = std::chrono::steady_clock::now();
    slot.ready->Wait().IgnoreError();
    stats_.stall_seconds += SecondsSince(t0);
  } else {
    slot.ready->Wait().IgnoreError();
  }
  if (slot.fresh) {  // the first use of this read
    const Group& g = groups_[group];
    stats_.read_seconds += slot.read_seconds;
    if (g.rest == Rest::kDisk) stats_.bytes_read += g.bytes;
    if (execution_ != host_) stats_.bytes_copied += g.bytes;
    ++stats_.groups_read;
    slot.fresh = false;
  }
  slot.prefetched = false;
  if (!slot.read_status.ok()) {
    const absl::Status st = slot.read_status;
    slot.held = false;
    slot.group = kResident;
    return absl::Status(st.code(), absl::StrCat(groups_[group].name, ": ", st.message()));
  }
  for (const Member& m : groups_[group].members) m.format->Bind(slot.buffer.data() + m.offset);
  Prefetch();
  return Lease(this, s);
}

void Streamer::Release(int s) {
  Slot& slot = *slots_[s];
  for (const Member& m : groups_[slot.group].members) m.format->Unbind();
  slot.held = false;  // the bytes stay until the slot is needed for another group
  Prefetch();
}

}  // namespace tierserve
