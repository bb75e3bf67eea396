// Per-model figures read at each scrape from snapshots the server publishes:
// the streamer's offload traffic, and each model's load duration and state.
// Also the build-info gauge.
//
//   tierserve_offload_bytes_total{model,source,destination}   counter
//       source="disk",        destination="cpu"       offload file -> host staging
//       source="cpu",         destination=EXEC        host -> execution device (sim:N,
//                                                     cuda:N; only when that is not cpu)
//       source="activations", destination="next_stage" activations carried to the
//                                                     next pipeline stage's device
//   tierserve_offload_transfer_seconds_total{model}           counter, time the reads took
//   tierserve_offload_stall_seconds_total{model}              counter, compute waiting for weights
//   tierserve_offload_groups_staged_total{model}              counter
//   tierserve_offload_prefetch_hits_total{model}              counter
//   tierserve_offload_activation_seconds_total{model}         counter
//   tierserve_model_load_seconds{model}                       gauge
//   tierserve_model_state{model,state}                        gauge, 1 for the current state
//   tierserve_build_info{version,commit,cuda}                 gauge, always 1
//
// The collectors know nothing of the runtime: the server copies the
// streamer's counters into an OffloadSnapshot on the thread that runs the
// model (after each engine step) and publishes it here.
//
// Thread-safety: every method may be called from any thread, concurrently.
#ifndef TIERSERVE_SERVER_METRICS_MODEL_COLLECTORS_H_
#define TIERSERVE_SERVER_METRICS_MODEL_COLLECTORS_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace tierserve {

// The streamer's counters, as of one moment.
struct OffloadSnapshot {
  int64_t groups_staged = 0;
  int64_t bytes_from_disk = 0;      // offload file -> host staging
  int64_t bytes_to_execution = 0;   // host -> execution device
  double transfer_seconds = 0;
  double stall_seconds = 0;
  int64_t prefetch_hits = 0;
  int64_t activation_bytes = 0;
  double activation_seconds = 0;
};

class OffloadCollector : public prometheus::Collectable {
 public:
  // Starts reporting `model` (every counter at zero). `execution_device` is
  // where its math runs ("cpu", "sim:0"): the destination of host copies.
  void AddModel(const std::string& model, const std::string& execution_device);
  // Replaces the model's figures. Ignored for a model not added.
  void Publish(const std::string& model, const OffloadSnapshot& snapshot);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct Entry {
    std::string execution_device;
    OffloadSnapshot snapshot;
  };
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> models_ ABSL_GUARDED_BY(mu_);
};

// The states of tierserve_model_state's `state` label.
enum class ModelState { kLoading, kServing, kFailed };
const char* ModelStateName(ModelState state);

class ModelLoadCollector : public prometheus::Collectable {
 public:
  // Every series of `model` reports from now on; its state starts at loading.
  void AddModel(const std::string& model);
  void SetState(const std::string& model, ModelState state);
  // The time the model took to load (reported once known).
  void SetLoadSeconds(const std::string& model, double seconds);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct Entry {
    ModelState state = ModelState::kLoading;
    double load_seconds = -1;  // -1: not loaded yet
  };
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> models_ ABSL_GUARDED_BY(mu_);
};

// tierserve_build_info{version,commit,cuda} 1.
class BuildInfoCollector : public prometheus::Collectable {
 public:
  BuildInfoCollector(std::string version, std::string commit, bool cuda)
      : version_(std::move(version)), commit_(std::move(commit)), cuda_(cuda) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::string version_;
  const std::string commit_;
  const bool cuda_;
};

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_METRICS_MODEL_COLLECTORS_H_
