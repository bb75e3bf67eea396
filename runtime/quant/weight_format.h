// The bytes of one weight matrix W [rows = out features, cols = in features]
// in one precision, and how it multiplies: one class per precision (fp32,
// GGUF blocks as stored, LLM.int8, NF4/FP4), so a Linear holds one format
// and adding a precision adds a type, not a branch in every method.
//
//   y[m, n] = sum_k x[m, k] * W[n, k]          (W as the format defines it)
//
// A forward runs in two phases: Prepare (once per call, on the calling
// thread) turns the fp32 activations into what the format's kernel reads
// (int8 per token for LLM.int8); then ForwardRows runs on disjoint row
// ranges, possibly on several threads at once.
//
// A format's bytes — weights, scales, tables — are one contiguous image
// whose arrays start 64-byte aligned: what a forward step reads, what an
// offloaded module writes to disk and streams back into a staging buffer.
// A format owns its image when made; Bind points it at a copy elsewhere (a
// staging slot, a device buffer) and drops what it owned, Unbind leaves it
// without bytes until the next Bind (an offloaded module between uses).
//
// Thread-safety: const methods are safe to call concurrently (each call
// brings its own scratch); Bind and Unbind only while no forward runs.
#ifndef TIERSERVE_RUNTIME_QUANT_WEIGHT_FORMAT_H_
#define TIERSERVE_RUNTIME_QUANT_WEIGHT_FORMAT_H_

#include <cstdint>
#include <memory>

#include "runtime/placement/precision.h"

namespace tierserve {

class ThreadPool;

// What Prepare makes of the activations; owned by the caller of Forward.
class PreparedInput {
 public:
  virtual ~PreparedInput() = default;
};

class WeightFormat {
 public:
  virtual ~WeightFormat() = default;

  virtual Precision precision() const = 0;
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  // Bytes of the image: the weight at rest, scales and tables included, what
  // one forward step reads.
  int64_t bytes() const { return bytes_; }
  // The image, or nullptr while unbound.
  const uint8_t* image() const { return image_; }
  bool bound() const { return image_ != nullptr; }

  // Reads `image` from now on and frees what the format owned. REQUIRES:
  // `image` holds bytes() bytes equal to image() as made, starts 64-byte
  // aligned, and stays valid until the next Bind or Unbind.
  void Bind(const uint8_t* image);
  // No image until the next Bind; frees what the format owned.
  void Unbind();

  // The methods below REQUIRE bound().

  // The activations x [M, cols] as this format's kernel reads them, or
  // nullptr when it reads fp32 x directly (the default). `pool` (may be
  // null) can share the work among its threads; the caller is not inside
  // one of its loops.
  virtual std::unique_ptr<PreparedInput> Prepare(const float* /*x*/, int64_t /*M*/, ThreadPool* /*pool*/) const {
    return nullptr;
  }
  // True when this format's Prepare and `other`'s make the same thing of
  // any x, so that one serves both (the Q, K and V projections of one input).
  virtual bool SharesPreparedInput(const WeightFormat& /*other*/) const { return false; }
  // y[m, n] for m < M, n0 <= n < n1; x is [M, cols] contiguous, y has row
  // stride ldy. `prepared` is what Prepare returned for this x.
  // REQUIRES: n0 and n1 multiples of kRowGrain, or n1 == rows().
  virtual void ForwardRows(const float* x, const PreparedInput* prepared, int64_t M, float* y,
                           int64_t ldy, int64_t n0, int64_t n1) const = 0;
  // Row r of W as fp32 (an embedding lookup; a tied head's table).
  virtual void Row(int64_t r, float* out) const = 0;

  // Threads split rows in chunks of this many, so kernels keep whole tiles.
  static constexpr int64_t kRowGrain = 16;

 protected:
  WeightFormat(int64_t rows, int64_t cols) : rows_(rows), cols_(cols) {}

  // The image as made (the format's own storage, or the model file's bytes).
  void SetImage(const uint8_t* image, int64_t bytes) {
    image_ = image;
    bytes_ = bytes;
  }
  // The image moved: re-derive whatever points into it.
  virtual void OnBind() {}
  // Frees the storage the format owned (its image is elsewhere now).
  virtual void DropStorage() = 0;

 private:
  int64_t rows_;
  int64_t cols_;
  const uint8_t* image_ = nullptr;
  int64_t bytes_ = 0;
};

inline void WeightFormat::Bind(const uint8_t* image) {
  DropStorage();
  image_ = image;
  OnBind();
}

inline void WeightFormat::Unbind() {
  DropStorage();
  image_ = nullptr;
}

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_QUANT_WEIGHT_FORMAT_H_
