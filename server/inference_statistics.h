// Per-model counts and durations of inference, as Triton's ModelStatistics
// method reports them (KServe's inference.GRPCInferenceService): fed by the
// same hooks as the Prometheus metrics (a finished request, a finished
// sequence, an engine step) and read by that method.
//
// What each figure counts here:
//   success, fail    inference requests of the model (tierserve.v1 Generate
//                    and GenerateStream, KServe ModelInfer, and each request
//                    of a ModelStreamInfer stream) that ended OK / with an
//                    error, and their durations from arrival to the last
//                    byte sent
//   inference_count  sequences (prompts) completed, whatever their request
//   execution_count  engine steps that ran a forward pass
//   queue            each sequence's wait from arrival until its first step
//   compute_infer    each forward pass's wall time once per sequence in it
//                    (a sequence's compute is the steps it ran in), counted
//                    once per completed sequence
//   last_inference   when the last request of the model ended OK, in
//                    milliseconds since the Unix epoch (0: none yet)
//
// Thread-safety: every method may be called from any thread.
#ifndef TIERSERVE_SERVER_INFERENCE_STATISTICS_H_
#define TIERSERVE_SERVER_INFERENCE_STATISTICS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace tierserve {

class InferenceStatistics {
 public:
  struct Duration {
    uint64_t count = 0;
    uint64_t ns = 0;
  };
  struct Model {
    uint64_t last_inference_ms = 0;
    uint64_t inference_count = 0;
    uint64_t execution_count = 0;
    Duration success;
    Duration fail;
    Duration queue;
    Duration compute_infer;
  };

  // An inference request of `model` ended (ok or not) after `seconds`;
  // `now_ms` is the time it ended, in milliseconds since the Unix epoch.
  void RequestEnded(const std::string& model, bool ok, double seconds, uint64_t now_ms);
  // A sequence of `model` completed.
  void SequenceEnded(const std::string& model);
  // An engine step of `model` ran a forward pass of `sequences` sequences in
  // `seconds`; `queue_seconds` are the waits of those that started in it.
  void StepRan(const std::string& model, int64_t sequences, double seconds, const std::vector<double>& queue_seconds);

  // The figures of `model` so far (zeros for a model never seen).
  Model Get(const std::string& model) const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Model> models_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_INFERENCE_STATISTICS_H_
