// The models the daemon serves, by name: each one's state (loading, ready,
// failed), its engine once loaded, and the limits a request to it must keep.
// Every gRPC front end looks models up here (tierserve.v1.Generation,
// inference.GRPCInferenceService), so they refuse the same requests with
// the same statuses.
//
// Ownership: the table owns the engines; an engine, once set, lives as long
// as the table (models are never removed), so a looked-up Engine* stays
// valid for the table's life.
// Thread-safety: thread-safe.
#ifndef TIERSERVE_SERVER_MODEL_TABLE_H_
#define TIERSERVE_SERVER_MODEL_TABLE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "runtime/engine/engine.h"
#include "server/request_validation.h"
#include "tierserve/v1/generation.pb.h"

namespace tierserve {

// A served model: its engine once loaded, and its limits.
struct ServedModel {
  std::string name;
  int64_t max_sequence_length = 0;  // prompt + new tokens; <= the model's context
  int64_t max_batch_size = 1;       // most prompts in one call
  bool parse_special_tokens_in_chat = false;  // see PromptLimits
  std::unique_ptr<Engine> engine;   // null while loading or after a failure to load
  v1::ModelState state = v1::MODEL_STATE_LOADING;
  std::string state_message;
};

// What a call needs of a model that serves.
struct ModelHandle {
  Engine* engine = nullptr;  // owned by the table
  PromptLimits limits;
  int64_t max_batch_size = 1;
};

class ModelTable {
 public:
  ModelTable() = default;
  ModelTable(const ModelTable&) = delete;
  ModelTable& operator=(const ModelTable&) = delete;

  // Registers a model name before it loads (requests get UNAVAILABLE).
  void AddLoading(const std::string& name, int64_t max_sequence_length, int64_t max_batch_size,
                  bool parse_special_tokens_in_chat = false);
  // Marks `name` ready with its engine, or failed with a reason.
  void SetReady(const std::string& name, std::unique_ptr<Engine> engine);
  void SetFailed(const std::string& name, const std::string& reason);

  // The model `name` if it serves; NOT_FOUND (naming the served models),
  // UNAVAILABLE while it loads, FAILED_PRECONDITION once it failed.
  absl::StatusOr<ModelHandle> Find(const std::string& name) const;
  // The state of a configured model; NOT_FOUND as Find for another name.
  absl::StatusOr<v1::ModelState> State(const std::string& name) const;
  // True when every model is ready (and there is at least one).
  bool AllReady() const;
  // Calls `visit` on every model in the order they were added (the
  // configuration file's, as ListModels promises), with the table locked:
  // `visit` must not call back into the table.
  void ForEach(const std::function<void(const ServedModel&)>& visit) const;

  // Stops every engine from accepting work; running work finishes.
  void Drain();

 private:
  absl::Status UnknownModel(const std::string& name) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The entry for `name`, added (last in order_) if new.
  ServedModel& Entry(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, ServedModel> models_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);  // names as added
};

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_MODEL_TABLE_H_
