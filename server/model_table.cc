#include "server/model_table.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/base/config_error.h"

namespace tierserve {

ServedModel& ModelTable::Entry(const std::string& name) {
  auto [it, added] = models_.try_emplace(name);
  if (added) {
    it->second.name = name;
    order_.push_back(name);
  }
  return it->second;
}

void ModelTable::AddLoading(const std::string& name, int64_t max_sequence_length, int64_t max_batch_size,
                            bool parse_special_tokens_in_chat) {
  absl::MutexLock lock(&mu_);
  ServedModel& m = Entry(name);
  m.max_sequence_length = max_sequence_length;
  m.parse_special_tokens_in_chat = parse_special_tokens_in_chat;
  m.max_batch_size = max_batch_size;
}

void ModelTable::SetReady(const std::string& name, std::unique_ptr<Engine> engine) {
  absl::MutexLock lock(&mu_);
  ServedModel& m = Entry(name);
  const int64_t context = engine->model().model->config().max_position_embeddings;
  if (m.max_sequence_length <= 0 || m.max_sequence_length > context) m.max_sequence_length = context;
  m.engine = std::move(engine);
  m.state = v1::MODEL_STATE_READY;
}

void ModelTable::SetFailed(const std::string& name, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  ServedModel& m = Entry(name);
  m.state = v1::MODEL_STATE_FAILED;
  m.state_message = reason;
}

absl::Status ModelTable::UnknownModel(const std::string& name) const {
  return absl::NotFoundError(absl::StrCat("unknown model ", QuoteForMessage(name), "; served models: ",
                                          order_.empty() ? "none" : absl::StrJoin(order_, ", ")));
}

absl::StatusOr<ModelHandle> ModelTable::Find(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return UnknownModel(name);
  const ServedModel& m = it->second;
  if (m.state == v1::MODEL_STATE_LOADING) {
    return absl::UnavailableError(absl::StrCat("model ", name, " is still loading; retry shortly"));
  }
  if (m.engine == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("model ", name, " failed to load: ", m.state_message));
  }
  if (m.state == v1::MODEL_STATE_FAILED) {
    return absl::FailedPreconditionError(
        absl::StrCat("model ", name, " stopped serving: ", m.state_message));
  }
  ModelHandle handle;
  handle.engine = m.engine.get();
  handle.limits.max_sequence_length = m.max_sequence_length;
  handle.limits.parse_special_tokens_in_chat = m.parse_special_tokens_in_chat;
  handle.max_batch_size = m.max_batch_size;
  return handle;
}

absl::StatusOr<v1::ModelState> ModelTable::State(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return UnknownModel(name);
  return it->second.state;
}

bool ModelTable::AllReady() const {
  absl::MutexLock lock(&mu_);
  if (models_.empty()) return false;
  for (const auto& [name, m] : models_)
    if (m.state != v1::MODEL_STATE_READY) return false;
  return true;
}

void ModelTable::ForEach(const std::function<void(const ServedModel&)>& visit) const {
  absl::MutexLock lock(&mu_);
  for (const std::string& name : order_) visit(models_.at(name));
}

void ModelTable::Drain() {
  absl::MutexLock lock(&mu_);
  for (auto& [name, m] : models_)
    if (m.engine) m.engine->Shutdown();
}

}  // namespace tierserve
