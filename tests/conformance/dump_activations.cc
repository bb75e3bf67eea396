// Writes every activation a model's forward pass hands its ActivationTap,
// for one case of tests/data/smollm2/golden.json evaluated in one batch (all
// positions' logits), so compare_llama_cpp_layers.py can hold them against
// llama.cpp's own. Run by hand (tests/conformance/README.md); not a test.
//
//   dump_activations --case_index 0 --activation_precision int8 --out /tmp/acts
//
// Output: OUT/<name>-<layer>.f32 (OUT/<name>.f32 outside the layers),
// little-endian float32, rows x cols, and OUT/index.json listing each file
// with its name, layer, rows and cols.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "nlohmann/json.hpp"
#include "runtime/base/thread_pool.h"
#include "runtime/kv/kv_block_pool.h"
#include "runtime/model/model_loader.h"
#include "runtime/placement/precision.h"

ABSL_FLAG(std::string, model, "models/SmolLM2-135M-Instruct.Q4_1.gguf", "Model path.");
ABSL_FLAG(std::string, golden, "tests/data/smollm2/golden.json", "The golden whose case is evaluated.");
ABSL_FLAG(int32_t, case_index, 0, "The case of the golden (its \"ids\").");
ABSL_FLAG(std::string, activation_precision, "fp32", "fp32 or int8 (activation_precision).");
ABSL_FLAG(std::string, kv_cache_dtype, "fp32", "fp32 or fp16 (kv_cache_dtype).");
ABSL_FLAG(int32_t, threads, 2, "Compute threads.");
ABSL_FLAG(std::string, out, "", "Folder the tensors are written to (created). Required.");

namespace tierserve {
namespace {

class FileTap : public ActivationTap {
 public:
  explicit FileTap(std::filesystem::path dir) : dir_(std::move(dir)) {}

  void Observe(std::string_view name, int64_t layer, const float* data, int64_t rows, int64_t cols) override {
    std::string file(name);
    if (layer >= 0) file += "-" + std::to_string(layer);
    file += ".f32";
    std::ofstream out(dir_ / file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(sizeof(float) * rows * cols));
    if (!out) failed_ = true;
    index_.push_back({{"file", file}, {"name", std::string(name)}, {"layer", layer}, {"rows", rows}, {"cols", cols}});
  }

  bool Finish() {
    std::ofstream out(dir_ / "index.json");
    out << nlohmann::json(index_).dump(1) << "\n";
    return !failed_ && static_cast<bool>(out);
  }

 private:
  std::filesystem::path dir_;
  std::vector<nlohmann::json> index_;
  bool failed_ = false;
};

int Run() {
  const std::string out_dir = absl::GetFlag(FLAGS_out);
  if (out_dir.empty()) {
    std::fprintf(stderr, "dump_activations: --out is required\n");
    return 2;
  }
  const std::optional<ActivationPrecision> act = ParseActivationPrecision(absl::GetFlag(FLAGS_activation_precision));
  const std::optional<DType> kv = ParseKvCacheDtype(absl::GetFlag(FLAGS_kv_cache_dtype));
  if (!act || !kv) {
    std::fprintf(stderr, "dump_activations: --activation_precision is fp32 or int8, --kv_cache_dtype fp32 or fp16\n");
    return 2;
  }
  std::ifstream in(absl::GetFlag(FLAGS_golden));
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json golden = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  const int case_index = absl::GetFlag(FLAGS_case_index);
  if (golden.is_discarded() || !golden.contains("cases") || case_index < 0 ||
      case_index >= static_cast<int>(golden["cases"].size())) {
    std::fprintf(stderr, "dump_activations: %s has no case %d\n", absl::GetFlag(FLAGS_golden).c_str(), case_index);
    return 2;
  }
  const std::vector<int32_t> ids = golden["cases"][case_index]["ids"].get<std::vector<int32_t>>();

  ThreadPool pool(absl::GetFlag(FLAGS_threads));
  ModelLoadOptions options;
  options.pool = &pool;
  options.activations = *act;
  absl::StatusOr<LoadedModel> model = LoadModel(absl::GetFlag(FLAGS_model), options);
  if (!model.ok()) {
    std::fprintf(stderr, "dump_activations: %s\n", model.status().ToString().c_str());
    return 1;
  }
  std::filesystem::create_directories(out_dir);
  FileTap tap(out_dir);
  if (absl::Status s = model->model->SetActivationTap(&tap); !s.ok()) {
    std::fprintf(stderr, "dump_activations: %s\n", s.ToString().c_str());
    return 1;
  }
  auto cache = model->model->NewCache(static_cast<int64_t>(ids.size()), *kv);
  SequenceInput seq{ids, 0, cache.get(), /*all_logits=*/true};
  std::vector<float> logits;
  absl::Status s = model->model->Forward({&seq, 1}, &logits);
  model->model->SetActivationTap(nullptr).IgnoreError();
  if (!s.ok()) {
    std::fprintf(stderr, "dump_activations: %s\n", s.ToString().c_str());
    return 1;
  }
  if (!tap.Finish()) {
    std::fprintf(stderr, "dump_activations: could not write %s\n", out_dir.c_str());
    return 1;
  }
  std::printf("%zu tokens, tensors in %s\n", ids.size(), out_dir.c_str());
  return 0;
}

}  // namespace
}  // namespace tierserve

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return tierserve::Run();
}
