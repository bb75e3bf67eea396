#include "runtime/model/module_loader.h"

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"
#include "runtime/quant/f32_format.h"
#include "runtime/quant/gguf_block_format.h"
#include "runtime/quant/quantize_weight.h"

namespace tierserve {

ModuleLoader::ModuleLoader(const WeightSource& src, const QuantizationConfig& quantization,
                           const DeviceMap& device_map, OffloadOptions offload, Pass pass)
    : src_(src),
      quantization_(quantization),
      device_map_(device_map),
      pass_(pass),
      offload_(std::move(offload)),
      // cpu and sim:N execution devices; cuda placements are refused before.
      kernels_(&CpuKernels()),
      streamer_(std::make_unique<Streamer>(
          offload_.devices->host(),
          Streamer::Options{offload_.prefetch_depth,
                            offload_.execution.tier == Location::Tier::kSim
                                ? offload_.devices->Sim(offload_.execution.index)
                                : nullptr})) {
  if (quantization_.enabled()) skip_ = quantization_.SkipModules();
  skip_used_.assign(skip_.size(), false);
}

Streamer::GroupId ModuleLoader::BeginGroup(const std::string& name) {
  group_ = streamer_->AddGroup(name);
  return group_;
}

absl::StatusOr<std::unique_ptr<Streamer>> ModuleLoader::FinishStreamer() {
  TS_RETURN_IF_ERROR(streamer_->Finish(std::move(file_)));
  return std::move(streamer_);
}

absl::StatusOr<Placement> ModuleLoader::PlacementOf(const std::string& module,
                                                    Streamer::GroupId group) {
  Placement placement{Location{Location::Tier::kCpu, 0}, std::nullopt};
  if (!device_map_.is_auto() && !device_map_.entries().empty()) {
    TS_ASSIGN_OR_RETURN(placement, device_map_.Resolve(module + ".weight"));
  }
  const Location& where = placement.device;
  if (where.tier == Location::Tier::kCuda) {
    return absl::UnimplementedError(absl::StrCat(
        module, ": cuda placements are not served yet; expected cpu, disk or sim:N"));
  }
  if (where.tier == Location::Tier::kDisk && offload_.path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(module, " is placed on disk, but there is no offload folder to put it in"));
  }
  if (static_cast<size_t>(group) >= group_location_.size()) group_location_.resize(group + 1);
  auto& [first, first_where] = group_location_[group];
  if (first.empty()) {
    first = module;
    first_where = where;
  } else if (!(first_where == where)) {
    return absl::InvalidArgumentError(absl::StrCat(
        streamer_->group_name(group), " would be split across placements (", first, " on ",
        first_where.ToString(), ", ", module, " on ", where.ToString(),
        "); a decoder layer rests in one place: place it as a whole"));
  }
  return placement;
}

absl::Status ModuleLoader::Place(const std::string& module, Streamer::GroupId group,
                                 const Location& where, WeightFormat* w) {
  absl::Status placed;
  switch (where.tier) {
    case Location::Tier::kCpu:
      // Computed where it rests, or copied over the link at each use; either
      // way its bytes are the host device's, counted there.
      placed = offload_.execution.tier == Location::Tier::kCpu
                   ? streamer_->PlaceOn(w, offload_.devices->host())
                   : streamer_->RestOnHost(group, w);
      break;
    case Location::Tier::kSim:
      placed = streamer_->PlaceOn(w, offload_.devices->Sim(where.index));
      streamer_->ComputeOn(group, offload_.devices->Sim(where.index));
      break;
    case Location::Tier::kDisk:
      if (file_ == nullptr) {
        TS_ASSIGN_OR_RETURN(file_, OffloadFile::Create(offload_.path));
      }
      placed = streamer_->Offload(group, w, file_.get());
      break;
    case Location::Tier::kCuda:
      return absl::UnimplementedError(absl::StrCat(module, ": cuda placements are not served yet"));
  }
  if (!placed.ok()) {
    return absl::Status(placed.code(), absl::StrCat(module, ": ", placed.message()));
  }
  src_.ReleaseStored(module + ".weight");  // it lives elsewhere from now on
  return absl::OkStatus();
}

std::optional<Precision> ModuleLoader::LinearPrecision(const std::string& name,
                                                       const Placement& placement) {
  if (placement.precision.has_value()) return placement.precision;
  const Location& where = placement.device;
  for (size_t i = 0; i < skip_.size(); ++i) {
    if (IsModulePrefix(skip_[i], name)) {
      skip_used_[i] = true;
      return std::nullopt;
    }
  }
  // transformers keeps what rests off the execution device in fp32.
  if (quantization_.enabled() && quantization_.llm_int8_enable_fp32_cpu_offload &&
      (where.tier == Location::Tier::kDisk ||
       (where.tier == Location::Tier::kCpu && offload_.execution.tier != Location::Tier::kCpu))) {
    return Precision::kFp32;
  }
  return quantization_.LinearPrecision(name);
}

absl::StatusOr<std::unique_ptr<WeightFormat>> ModuleLoader::LoadWeight(
    const std::string& tensor, int64_t rows, int64_t cols, bool conv1d,
    std::optional<Precision> precision) {
  if (precision.has_value() && !kernels_->multiplies(*precision)) {
    return absl::UnimplementedError(absl::StrCat(src_.path(), ": ", tensor, ": precision ",
                                                 PrecisionName(*precision),
                                                 " is not multiplied on ",
                                                 offload_.execution.ToString()));
  }
  if (!precision.has_value() && !conv1d) {
    TS_ASSIGN_OR_RETURN(const TensorView* t, src_.Stored(tensor, {rows, cols}));
    if (ServedAsStored(*t, precision, conv1d)) {
      TS_ASSIGN_OR_RETURN(std::optional<BlockWeight> blocks, src_.LoadBlocks(tensor, rows, cols));
      if (blocks.has_value()) return std::make_unique<GgufBlockFormat>(std::move(*blocks), activations_);
    }
  }
  TS_ASSIGN_OR_RETURN(F32Weight w, src_.Load(tensor, {rows, cols}, conv1d));
  if (!precision.has_value() || *precision == Precision::kFp32) {
    return std::make_unique<F32Format>(std::move(w));
  }
  absl::StatusOr<std::unique_ptr<WeightFormat>> f = QuantizeWeight(*precision, w, Quantize());
  if (!f.ok()) {
    return absl::Status(f.status().code(), absl::StrCat(src_.path(), ": ", tensor, ": ",
                                                        f.status().message()));
  }
  // The fp32 copy `w` goes here, before the next module is read.
  return f;
}

bool ModuleLoader::ServedAsStored(const TensorView& stored, std::optional<Precision> precision,
                                  bool conv1d) const {
  return !precision.has_value() && !conv1d && kernels_->multiplies_stored(stored.dtype);
}

QuantizeOptions ModuleLoader::Quantize() const {
  QuantizeOptions q;
  q.int8_threshold = static_cast<float>(quantization_.llm_int8_threshold);
  q.double_quant = quantization_.bnb_4bit_use_double_quant;
  q.compute = quantization_.bnb_4bit_compute_dtype;
  return q;
}

absl::Status ModuleLoader::SizeWeight(const std::string& name, Streamer::GroupId group,
                                      int64_t rows, int64_t cols, bool conv1d, bool linear) {
  TS_ASSIGN_OR_RETURN(const TensorView* t, src_.Stored(name + ".weight", {rows, cols}, conv1d));
  std::optional<Precision> explicit_precision;
  if (!device_map_.is_auto() && !device_map_.entries().empty()) {
    absl::StatusOr<Placement> p = device_map_.Resolve(name + ".weight");
    if (p.ok()) explicit_precision = p->precision;
  }
  // As LoadWeight makes it.
  auto image = [&](std::optional<Precision> precision, Precision* made) {
    if (ServedAsStored(*t, precision, conv1d)) {
      *made = GgufBlockFormat::PrecisionOf(t->dtype);
      return GgufBlockFormat::ImageBytes(t->dtype, rows, cols);
    }
    *made = precision.value_or(Precision::kFp32);
    return QuantizedImageBytes(*made, rows, cols, Quantize());
  };
  auto precision_at = [&](const Location& where) -> std::optional<Precision> {
    return linear ? LinearPrecision(name, Placement{where, explicit_precision}) : std::nullopt;
  };
  ModuleSize s;
  s.group = streamer_->group_name(group);
  s.module = name;
  s.layer = group_ != Streamer::kResident;
  s.parameters = rows * cols;
  s.resident_bytes = image(precision_at(offload_.execution), &s.resident_precision);
  s.offloaded_bytes =
      image(precision_at(Location{Location::Tier::kDisk, 0}), &s.offloaded_precision);
  sizes_.push_back(std::move(s));
  return absl::OkStatus();
}

void ModuleLoader::Record(const std::string& module, const std::string& device,
                          Precision precision, int64_t parameters, int64_t bytes) {
  records_.push_back(ModuleRecord{module, device, precision, parameters, bytes});
  if (on_record_) on_record_(records_.back());
}

absl::StatusOr<ModuleLoader::PlacedWeight> ModuleLoader::LoadPlaced(const std::string& name,
                                                                     int64_t rows, int64_t cols,
                                                                     bool conv1d, bool linear) {
  PlacedWeight p;
  p.group = group_ != Streamer::kResident ? group_ : streamer_->AddGroup(name);
  if (pass_ == Pass::kSize) {
    TS_RETURN_IF_ERROR(SizeWeight(name, p.group, rows, cols, conv1d, linear));
    return p;  // no format: nothing was read
  }
  TS_ASSIGN_OR_RETURN(Placement placement, PlacementOf(name, p.group));
  p.where = placement.device;
  TS_ASSIGN_OR_RETURN(p.format,
                      LoadWeight(name + ".weight", rows, cols, conv1d,
                                 linear ? LinearPrecision(name, placement) : std::nullopt));
  TS_RETURN_IF_ERROR(Place(name, p.group, p.where, p.format.get()));
  return p;
}

absl::StatusOr<Linear> ModuleLoader::LoadLinear(const std::string& name, int64_t in_features,
                                                int64_t out_features, bool bias, bool conv1d) {
  TS_ASSIGN_OR_RETURN(PlacedWeight p,
                      LoadPlaced(name, out_features, in_features, conv1d, /*linear=*/true));
  if (pass_ == Pass::kSize) {
    if (bias) TS_RETURN_IF_ERROR(LoadF32(name + ".bias", {out_features}).status());
    return Linear(nullptr, F32Weight(), p.group);
  }
  const WeightFormat& w = *p.format;
  F32Weight b;
  if (bias) {
    TS_ASSIGN_OR_RETURN(b, src_.Load(name + ".bias", {out_features}));
  }
  const int64_t bias_bytes = bias ? out_features * static_cast<int64_t>(sizeof(float)) : 0;
  if (p.where.tier != Location::Tier::kCpu && bias) {
    // The weight rests there; its bias stays in host memory with the norms.
    Record(name, p.where.ToString(), w.precision(), out_features * in_features, w.bytes());
    Record(name + ".bias", "cpu", Precision::kFp32, out_features, bias_bytes);
  } else {
    Record(name, p.where.ToString(), w.precision(),
           out_features * in_features + (bias ? out_features : 0), w.bytes() + bias_bytes);
  }
  return Linear(std::move(p.format), std::move(b), p.group);
}

absl::StatusOr<Linear> ModuleLoader::LoadEmbedding(const std::string& name, int64_t rows,
                                                   int64_t cols) {
  TS_ASSIGN_OR_RETURN(PlacedWeight p, LoadPlaced(name, rows, cols, false, /*linear=*/false));
  if (pass_ == Pass::kSize) return Linear(nullptr, F32Weight(), p.group);
  Record(name, p.where.ToString(), p.format->precision(), rows * cols, p.format->bytes());
  return Linear(std::move(p.format), F32Weight(), p.group);
}

absl::StatusOr<F32Weight> ModuleLoader::LoadF32(const std::string& tensor_name,
                                                const std::vector<int64_t>& shape) {
  if (pass_ == Pass::kSize) {
    TS_RETURN_IF_ERROR(src_.Stored(tensor_name, shape).status());
    ModuleSize s;
    s.module = tensor_name;
    s.host_only = true;
    s.layer = group_ != Streamer::kResident;
    s.parameters = 1;
    for (int64_t d : shape) s.parameters *= d;
    s.resident_bytes = s.offloaded_bytes = s.parameters * static_cast<int64_t>(sizeof(float));
    sizes_.push_back(std::move(s));
    return F32Weight();
  }
  TS_ASSIGN_OR_RETURN(F32Weight w, src_.Load(tensor_name, shape));
  const size_t dot = tensor_name.rfind('.');
  Record(dot == std::string::npos ? tensor_name : tensor_name.substr(0, dot), "cpu",
         Precision::kFp32, w.size(), w.size() * static_cast<int64_t>(sizeof(float)));
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
