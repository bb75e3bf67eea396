#include "server/inference_statistics.h"

#include <cmath>

namespace tierserve {
namespace {

uint64_t Nanoseconds(double seconds) {
  return seconds > 0 ? static_cast<uint64_t>(std::llround(seconds * 1e9)) : 0;
}

void Add(InferenceStatistics::Duration* d, double seconds) {
  ++d->count;
  d->ns += Nanoseconds(seconds);
}

}  // namespace

void InferenceStatistics::RequestEnded(const std::string& model, bool ok, double seconds, uint64_t now_ms) {
  absl::MutexLock lock(&mu_);
  Model& m = models_[model];
  Add(ok ? &m.success : &m.fail, seconds);
  if (ok) m.last_inference_ms = now_ms;
}

void InferenceStatistics::SequenceEnded(const std::string& model) {
  absl::MutexLock lock(&mu_);
  Model& m = models_[model];
  ++m.inference_count;
  ++m.compute_infer.count;
}

void InferenceStatistics::StepRan(const std::string& model, int64_t sequences, double seconds,
                                  const std::vector<double>& queue_seconds) {
  absl::MutexLock lock(&mu_);
  Model& m = models_[model];
  for (double q : queue_seconds) Add(&m.queue, q);
  if (sequences <= 0) return;
  ++m.execution_count;
  m.compute_infer.ns += Nanoseconds(seconds) * static_cast<uint64_t>(sequences);
}

InferenceStatistics::Model InferenceStatistics::Get(const std::string& model) const {
  absl::MutexLock lock(&mu_);
  const auto it = models_.find(model);
  return it == models_.end() ? Model{} : it->second;
}

}  // namespace tierserve
