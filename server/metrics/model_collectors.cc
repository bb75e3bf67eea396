#include "server/metrics/model_collectors.h"

#include <utility>

namespace tierserve {
namespace {

prometheus::MetricFamily Family(const char* name, const char* help, prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

void AddSample(prometheus::MetricFamily& family, std::vector<prometheus::ClientMetric::Label> labels,
               double value) {
  prometheus::ClientMetric sample;
  sample.label = std::move(labels);
  if (family.type == prometheus::MetricType::Counter) {
    sample.counter.value = value;
  } else {
    sample.gauge.value = value;
  }
  family.metric.push_back(std::move(sample));
}

}  // namespace

void OffloadCollector::AddModel(const std::string& model, const std::string& execution_device) {
  absl::MutexLock lock(&mu_);
  models_[model] = Entry{execution_device, OffloadSnapshot{}};
}

void OffloadCollector::Publish(const std::string& model, const OffloadSnapshot& snapshot) {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(model);
  if (it != models_.end()) it->second.snapshot = snapshot;
}

std::vector<prometheus::MetricFamily> OffloadCollector::Collect() const {
  using prometheus::MetricType;
  prometheus::MetricFamily bytes = Family(
      "tierserve_offload_bytes_total",
      "Bytes the streamer moved: weights from the offload file to host staging (source=disk, "
      "destination=cpu), weights from the host to the execution device (source=cpu), and "
      "activations carried between pipeline stages (source=activations, destination=next_stage).",
      MetricType::Counter);
  prometheus::MetricFamily transfer = Family(
      "tierserve_offload_transfer_seconds_total",
      "Time the streamer's reads of offloaded weight groups took, on its copy thread.",
      MetricType::Counter);
  prometheus::MetricFamily stall = Family(
      "tierserve_offload_stall_seconds_total",
      "Time the compute waited for offloaded weights not yet staged.", MetricType::Counter);
  prometheus::MetricFamily staged = Family(
      "tierserve_offload_groups_staged_total",
      "Offloaded weight groups (a decoder layer, the embedding, the head) staged for use.",
      MetricType::Counter);
  prometheus::MetricFamily hits = Family(
      "tierserve_offload_prefetch_hits_total",
      "Acquires of offloaded groups whose read had been issued ahead of need.", MetricType::Counter);
  prometheus::MetricFamily activation = Family(
      "tierserve_offload_activation_seconds_total",
      "Time the compute waited for activations to reach the next pipeline stage's device.",
      MetricType::Counter);
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [model, e] : models_) {
      const OffloadSnapshot& s = e.snapshot;
      AddSample(bytes, {{"model", model}, {"source", "disk"}, {"destination", "cpu"}},
                static_cast<double>(s.bytes_from_disk));
      if (e.execution_device != "cpu") {
        AddSample(bytes, {{"model", model}, {"source", "cpu"}, {"destination", e.execution_device}},
                  static_cast<double>(s.bytes_to_execution));
      }
      AddSample(bytes, {{"model", model}, {"source", "activations"}, {"destination", "next_stage"}},
                static_cast<double>(s.activation_bytes));
      AddSample(transfer, {{"model", model}}, s.transfer_seconds);
      AddSample(stall, {{"model", model}}, s.stall_seconds);
      AddSample(staged, {{"model", model}}, static_cast<double>(s.groups_staged));
      AddSample(hits, {{"model", model}}, static_cast<double>(s.prefetch_hits));
      AddSample(activation, {{"model", model}}, s.activation_seconds);
    }
  }
  std::vector<prometheus::MetricFamily> families;
  for (prometheus::MetricFamily* f : {&bytes, &transfer, &stall, &staged, &hits, &activation}) {
    if (!f->metric.empty()) families.push_back(std::move(*f));
  }
  return families;
}

const char* ModelStateName(ModelState state) {
  switch (state) {
    case ModelState::kLoading:
      return "loading";
    case ModelState::kServing:
      return "serving";
    case ModelState::kFailed:
      return "failed";
  }
  return "failed";
}

void ModelLoadCollector::AddModel(const std::string& model) {
  absl::MutexLock lock(&mu_);
  models_.try_emplace(model);
}

void ModelLoadCollector::SetState(const std::string& model, ModelState state) {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(model);
  if (it != models_.end()) it->second.state = state;
}

void ModelLoadCollector::SetLoadSeconds(const std::string& model, double seconds) {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(model);
  if (it != models_.end()) it->second.load_seconds = seconds < 0 ? 0 : seconds;
}

std::vector<prometheus::MetricFamily> ModelLoadCollector::Collect() const {
  using prometheus::MetricType;
  prometheus::MetricFamily load = Family(
      "tierserve_model_load_seconds",
      "Time a model took to load: weights read, placed and offloaded, until it could serve.",
      MetricType::Gauge);
  prometheus::MetricFamily state = Family(
      "tierserve_model_state", "1 for the model's current state (loading, serving, failed), else 0.",
      MetricType::Gauge);
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [model, e] : models_) {
      if (e.load_seconds >= 0) AddSample(load, {{"model", model}}, e.load_seconds);
      for (ModelState s : {ModelState::kLoading, ModelState::kServing, ModelState::kFailed}) {
        AddSample(state, {{"model", model}, {"state", ModelStateName(s)}}, s == e.state ? 1 : 0);
      }
    }
  }
  std::vector<prometheus::MetricFamily> families;
  if (!load.metric.empty()) families.push_back(std::move(load));
  if (!state.metric.empty()) families.push_back(std::move(state));
  return families;
}

std::vector<prometheus::MetricFamily> BuildInfoCollector::Collect() const {
  prometheus::MetricFamily info =
      Family("tierserve_build_info",
             "Always 1: the version of tierserve, the git commit it was built from (unknown when "
             "built outside a checkout) and whether CUDA kernels are compiled in.",
             prometheus::MetricType::Gauge);
  AddSample(info, {{"version", version_}, {"commit", commit_}, {"cuda", cuda_ ? "true" : "false"}}, 1);
  std::vector<prometheus::MetricFamily> families;
  families.push_back(std::move(info));
  return families;
}

}  // namespace tierserve
