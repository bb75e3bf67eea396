// The streamer: brings offloaded module groups (a decoder layer, the
// embedding, the head) to the execution device ahead of use, so compute
// waits only when the link is slower than the math.
//
//   Streamer::Lease w = streamer.Acquire(layer.group);   // waits for layer l only
//   ... the layer's Linears run on the staged bytes ...
//   (w goes out of scope: the staging slot is free for a group further ahead)
//
// A group's weights are WeightFormats whose images lie back to back (64-byte
// aligned) in one staging slot on the execution device. A group rests on
// disk (one region of the offload file), or — when the execution device is
// an accelerator — in host memory. Acquire queues, on the execution device's
// copy stream, the read of the region (into host staging, then over the link
// into the slot when the execution device is not the host) or the copies of
// the host images, and Binds each format to its part of the slot; releasing
// the lease Unbinds them. Groups placed on a device rest bound to buffers
// there and are never streamed. While group g is in
// use, the next `depth` offloaded groups of the forward's order are already
// on their way into the other slots. The order is learned: the first forward
// records the order in which groups are acquired, and every later forward
// prefetches along it (wrapping from the head back to the embedding, so the
// next step's first layers load while this step's logits are computed).
//
// The staging pool is bounded: depth + kMaxHeld slots of the largest
// offloaded group's size, allocated once on the execution device as staging
// memory (plus as many host slots for disk reads when that device is not the
// host). Resident groups cost nothing to acquire.
//
// Thread-safety: Acquire, leases and BeginForward on one thread (the model's
// forward); the reads run on the copy stream's thread.
#ifndef TIERSERVE_RUNTIME_STREAM_STREAMER_H_
#define TIERSERVE_RUNTIME_STREAM_STREAMER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/device/device.h"
#include "runtime/quant/weight_format.h"
#include "runtime/stream/offload_file.h"

namespace tierserve {

// What the streamer has done since it was made: the figures of the
// offload metrics and the benchmark.
struct StreamerStats {
  int64_t groups_read = 0;     // groups staged: read from disk or copied from the host
  int64_t bytes_read = 0;      // offload file -> host staging
  double read_seconds = 0;     // time the reads took, on the copy thread
  int64_t bytes_copied = 0;    // host -> execution device, when it is not the host
  double stall_seconds = 0;    // time Acquire waited for bytes not yet read
  int64_t acquires = 0;        // of offloaded groups
  int64_t prefetch_hits = 0;   // acquires whose read had been issued ahead
                               // (a group still staged from its last use
                               // counts as neither hit nor read)
  // Activations carried from one device to the next where a forward crosses
  // from groups computing on one device to groups on another.
  int64_t activation_moves = 0;
  int64_t activation_bytes = 0;
  double activation_seconds = 0;  // waited for those copies
};

class Streamer {
 public:
  struct Options {
    int depth = 2;  // offloaded groups read ahead of the one in use
    // Where the math runs and the staging slots live; nullptr: the host.
    Device* execution = nullptr;
  };
  // Leases held at once, most: the architectures hold one group at a time.
  static constexpr int kMaxHeld = 1;

  // A group id; kResident for modules that never stream.
  using GroupId = int;
  static constexpr GroupId kResident = -1;

  // Releases the group's staging slot when destroyed (or moved from).
  class Lease {
   public:
    Lease() = default;
    ~Lease();
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

   private:
    friend class Streamer;
    Lease(Streamer* streamer, int slot) : streamer_(streamer), slot_(slot) {}
    void Release();
    Streamer* streamer_ = nullptr;
    int slot_ = -1;
  };

  // A streamer with no offloaded groups; `host` (the staging device) must
  // outlive it.
  Streamer(Device* host, Options options);
  ~Streamer();
  Streamer(const Streamer&) = delete;
  Streamer& operator=(const Streamer&) = delete;

  // Loading. AddGroup starts a group; each weight of it then rests one way,
  // the same for the whole group:
  //  Offload     writes `format`'s image into the group's region of `file`
  //              and unbinds the format (its bytes live only on disk);
  //  RestOnHost  moves the image into host memory the streamer owns, copied
  //              to the execution device at each use (REQUIRES: that device
  //              is not the host);
  //  PlaceOn     moves the image into a buffer on `device` (the host, or a
  //              sim:N) and binds the format there for good, so the device
  //              counts it; ResourceExhausted, with the figures, when the
  //              device is full.
  // Finish allocates the staging pool. `file` is set by the first Offload
  // and must be the same for every call.
  GroupId AddGroup(std::string name);
  absl::Status Offload(GroupId group, WeightFormat* format, OffloadFile* file);
  absl::Status RestOnHost(GroupId group, WeightFormat* format);
  absl::Status PlaceOn(WeightFormat* format, Device* device);
  absl::Status Finish(std::unique_ptr<OffloadFile> file);

  // `group` computes on `device` (it rests there), not on the execution
  // device: a pipeline stage.
  void ComputeOn(GroupId group, Device* device);

  // The group's weights, bound and readable until the lease ends. An error
  // (the offload file is gone or truncated) leaves every format unbound.
  // `activations` (`activation_bytes` of them; none for an embedding) are
  // what the group reads: when the previous group computed on another
  // device, they are copied to this group's device over its link first, and
  // Acquire waits for that copy (the sim devices share host memory, so the
  // math then reads them in place; the copy is what the link would carry).
  absl::StatusOr<Lease> Acquire(GroupId group, const void* activations = nullptr,
                                int64_t activation_bytes = 0);
  // A forward pass starts: its acquires follow the order learned so far.
  void BeginForward();

  const std::string& group_name(GroupId group) const { return groups_[group].name; }
  bool offloaded(GroupId group) const { return group >= 0 && !groups_[group].members.empty(); }
  int64_t group_bytes(GroupId group) const { return groups_[group].bytes; }
  // Staging pool size in bytes (0 when nothing is offloaded).
  int64_t staging_bytes() const;
  // The part of it allocated on `device`.
  int64_t staging_bytes(const Device* device) const;
  StreamerStats stats() const;

 private:
  struct Member {
    WeightFormat* format;
    int64_t offset;  // in the group's image
    Buffer host;     // the image, when the group rests on the host
  };
  enum class Rest { kResident, kDisk, kHost };
  struct Group {
    std::string name;
    Device* computes_on = nullptr;  // nullptr: the execution device
    Rest rest = Rest::kResident;
    std::vector<Member> members;  // empty: resident
    int64_t file_offset = -1;     // kDisk
    int64_t bytes = 0;
  };
  struct Slot;

  // Adds `format` to `group`, resting as `rest`; its offset in the image.
  absl::StatusOr<int64_t> AddMember(GroupId group, Rest rest, WeightFormat* format);
  // Issues the read of `group` into a slot that is free or holds a group
  // needed later (any unheld slot when `demand`: an acquire is waiting);
  // returns the slot, or -1 when there is none.
  int StartRead(GroupId group, bool demand);
  // Reads ahead along the learned order from position `cursor_`.
  void Prefetch();
  void Release(int slot);
  int SlotOf(GroupId group) const;

  Device* host_;
  Device* execution_;  // host_ unless options say otherwise
  Options options_;
  std::vector<Group> groups_;
  std::vector<Buffer> placed_;  // the images PlaceOn moved to devices
  std::unique_ptr<OffloadFile> file_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::unique_ptr<CopyStream> reads_;

  // The order of offloaded acquires in a forward, as last observed.
  std::vector<GroupId> order_;
  std::vector<GroupId> recording_;
  size_t cursor_ = 0;  // position in order_ after the last acquire

  StreamerStats stats_;

  // Carries `bytes` of activations to `to` when the forward's last group
  // computed elsewhere.
  absl::Status MoveActivations(Device* to, const void* activations, int64_t bytes);
  Device* activations_on_ = nullptr;  // where the forward's activations are
  struct Landing {                    // per device: a buffer they are copied into
    Device* device;
    Buffer buffer;
    std::unique_ptr<CopyStream> link;
  };
  std::vector<Landing> landings_;
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_STREAM_STREAMER_H_
