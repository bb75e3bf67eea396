#include "runtime/model/module_loader.h"

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"
#include "runtime/quant/f32_format.h"
#include "runtime/quant/gguf_block_format.h"
#include "runtime/quant/quantize_weight.h"

namespace tierserve {

ModuleLoader::ModuleLoader(const WeightSource& src, const QuantizationConfig& quantization,
                           const DeviceMap& device_map)
    : src_(src), quantization_(quantization), device_map_(device_map) {
  if (quantization_.enabled()) skip_ = quantization_.SkipModules();
  skip_used_.assign(skip_.size(), false);
}

std::optional<Precision> ModuleLoader::LinearPrecision(const std::string& name) {
  if (!device_map_.is_auto() && !device_map_.entries().empty()) {
    absl::StatusOr<Placement> p = device_map_.Resolve(name + ".weight");
    if (p.ok() && p->precision.has_value()) return p->precision;
  }
  for (size_t i = 0; i < skip_.size(); ++i) {
    if (IsModulePrefix(skip_[i], name)) {
      skip_used_[i] = true;
      return std::nullopt;
    }
  }
  return quantization_.LinearPrecision(name);
}

absl::StatusOr<std::unique_ptr<WeightFormat>> ModuleLoader::LoadWeight(
    const std::string& tensor, int64_t rows, int64_t cols, bool conv1d,
    std::optional<Precision> precision) {
  if (!precision.has_value() && !conv1d) {
    TS_ASSIGN_OR_RETURN(std::optional<BlockWeight> blocks, src_.LoadBlocks(tensor, rows, cols));
    if (blocks.has_value()) return std::make_unique<GgufBlockFormat>(std::move(*blocks));
  }
  TS_ASSIGN_OR_RETURN(F32Weight w, src_.Load(tensor, {rows, cols}, conv1d));
  if (!precision.has_value() || *precision == Precision::kFp32) {
    return std::make_unique<F32Format>(std::move(w));
  }
  QuantizeOptions q;
  q.int8_threshold = static_cast<float>(quantization_.llm_int8_threshold);
  q.double_quant = quantization_.bnb_4bit_use_double_quant;
  q.compute = quantization_.bnb_4bit_compute_dtype;
  absl::StatusOr<std::unique_ptr<WeightFormat>> f = QuantizeWeight(*precision, w, q);
  if (!f.ok()) {
    return absl::Status(f.status().code(), absl::StrCat(src_.path(), ": ", tensor, ": ",
                                                        f.status().message()));
  }
  // The fp32 copy `w` goes here, before the next module is read.
  return f;
}

void ModuleLoader::Record(const std::string& module, Precision precision, int64_t parameters,
                          int64_t bytes) {
  records_.push_back(ModuleRecord{module, "cpu", precision, parameters, bytes});
}

absl::StatusOr<Linear> ModuleLoader::LoadLinear(const std::string& name, int64_t in_features,
                                                int64_t out_features, bool bias, bool conv1d) {
  TS_ASSIGN_OR_RETURN(std::unique_ptr<WeightFormat> w,
                      LoadWeight(name + ".weight", out_features, in_features, conv1d,
                                 LinearPrecision(name)));
  if (!w->ViewsSource()) src_.ReleaseStored(name + ".weight");
  F32Weight b;
  if (bias) {
    TS_ASSIGN_OR_RETURN(b, src_.Load(name + ".bias", {out_features}));
  }
  Record(name, w->precision(), out_features * in_features + (bias ? out_features : 0),
         w->bytes() + (bias ? out_features * static_cast<int64_t>(sizeof(float)) : 0));
  return Linear(std::move(w), std::move(b));
}

absl::StatusOr<Linear> ModuleLoader::LoadEmbedding(const std::string& name, int64_t rows,
                                                   int64_t cols) {
  TS_ASSIGN_OR_RETURN(std::unique_ptr<WeightFormat> w,
                      LoadWeight(name + ".weight", rows, cols, false, std::nullopt));
  if (!w->ViewsSource()) src_.ReleaseStored(name + ".weight");
  Record(name, w->precision(), rows * cols, w->bytes());
  return Linear(std::move(w), F32Weight());
}

absl::StatusOr<F32Weight> ModuleLoader::LoadF32(const std::string& tensor_name,
                                                const std::vector<int64_t>& shape) {
  TS_ASSIGN_OR_RETURN(F32Weight w, src_.Load(tensor_name, shape));
  const size_t dot = tensor_name.rfind('.');
  Record(dot == std::string::npos ? tensor_name : tensor_name.substr(0, dot), Precision::kFp32,
         w.size(), w.size() * static_cast<int64_t>(sizeof(float)));
  return w;
}

std::vector<std::string> ModuleLoader::UnusedSkipModules() const {
  std::vector<std::string> unused;
  // The default list names the output head, which a tied model does not have.
  if (!quantization_.llm_int8_skip_modules.has_value()) return unused;
  for (size_t i = 0; i < skip_.size(); ++i)
    if (!skip_used_[i]) unused.push_back(skip_[i]);
  return unused;
}

}  // namespace tierserve
