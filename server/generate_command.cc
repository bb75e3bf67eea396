#include "server/generate_command.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <optional>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "runtime/base/thread_pool.h"
#include "runtime/generate/chat_prompt.h"
#include "runtime/generate/generator.h"
#include "runtime/kv/kv_block_pool.h"
#include "runtime/model/model_loader.h"
#include "server/common_flags.h"
#include "server/config.h"
#include "server/load_progress.h"

ABSL_FLAG(std::string, prompt, "", "The prompt text (or the user message with --chat).");
ABSL_FLAG(bool, chat, false, "Treat --prompt as a user message and apply the model's chat template.");
ABSL_FLAG(std::string, system, "",
          "System message for --chat (default: the template's own default, if any).");
ABSL_FLAG(bool, parse_special_tokens_in_chat, false,
          "With --chat, match special tokens typed in the messages (<|im_start|>, ...) as special "
          "tokens; by default they are tokenized as plain text.");
ABSL_FLAG(int32_t, max_new_tokens, 128, "Most tokens to generate.");
ABSL_FLAG(float, temperature, 0.0f, "Sampling temperature; 0 decodes greedily.");
ABSL_FLAG(int32_t, top_k, 0, "Keep the k most likely tokens (0: off).");
ABSL_FLAG(float, top_p, 1.0f, "Nucleus sampling mass in (0, 1] (1: off).");
ABSL_FLAG(float, min_p, 0.0f, "Drop tokens below min_p times the top probability (0: off).");
ABSL_FLAG(float, repetition_penalty, 1.0f, "CTRL-style repetition penalty (1: off).");
ABSL_FLAG(uint64_t, seed, 0, "Random seed; the same seed gives the same text.");
ABSL_FLAG(std::vector<std::string>, stop, {}, "Comma-separated stop strings.");
ABSL_FLAG(bool, ignore_eos, false, "Keep generating past the end-of-sequence token.");
ABSL_FLAG(std::string, activation_precision, "fp32",
          "What GGUF block weights (Q4_0, Q4_1, Q8_0 as stored) multiply: fp32, or int8 (activations "
          "quantized per 32 columns, integer dot products, as llama.cpp does).");
ABSL_FLAG(std::string, kv_cache_dtype, "fp32",
          "What the KV cache stores: fp32, or fp16 (half the memory and the bytes long contexts read "
          "per token; keys and values rounded to fp16, as llama.cpp's default cache).");
ABSL_FLAG(bool, stats, true, "Print token counts and speeds to stderr at the end.");
// Quantization, as the config file's `quantization` section (transformers'
// BitsAndBytesConfig); the same checks apply.
ABSL_FLAG(bool, load_in_8bit, false, "Quantize the linear layers with LLM.int8().");
ABSL_FLAG(bool, load_in_4bit, false, "Quantize the linear layers to 4 bits (see --bnb_4bit_quant_type).");
ABSL_FLAG(std::string, llm_int8_threshold, "",
          "LLM.int8() outlier threshold, >= 0 (default 6.0; 0 turns the outlier split off).");
ABSL_FLAG(std::vector<std::string>, llm_int8_skip_modules, {},
          "Comma-separated module-path prefixes kept unquantized (default: lm_head).");
ABSL_FLAG(bool, llm_int8_enable_fp32_cpu_offload, false,
          "Keep modules offloaded from the execution device in fp32.");
ABSL_FLAG(bool, llm_int8_has_fp16_weight, false,
          "Accepted for compatibility; inference numbers are the same either way.");
ABSL_FLAG(std::string, bnb_4bit_quant_type, "", "nf4 or fp4 (default fp4, as transformers).");
ABSL_FLAG(bool, bnb_4bit_use_double_quant, false, "Quantize the 4-bit absmax values again.");
ABSL_FLAG(std::string, bnb_4bit_compute_dtype, "", "fp32, fp16 or bf16: the 4-bit matmul precision (default fp32).");
ABSL_FLAG(std::string, bnb_4bit_quant_storage, "", "uint8, int8, fp16, bf16 or fp32 (storage view; default uint8).");

namespace tierserve {
namespace {

// The quantization flags as a `quantization` section: only the flags given.
std::string QuantizationYaml() {
  std::string yaml;
  auto add = [&](const char* key, const std::string& value) {
    absl::StrAppend(&yaml, key, ": ", value, "\n");
  };
  auto add_bool = [&](const char* key, bool value) {
    if (value) add(key, "true");
  };
  auto add_text = [&](const char* key, const std::string& value) {
    if (!value.empty()) add(key, value);
  };
  add_bool("load_in_8bit", absl::GetFlag(FLAGS_load_in_8bit));
  add_bool("load_in_4bit", absl::GetFlag(FLAGS_load_in_4bit));
  add_text("llm_int8_threshold", absl::GetFlag(FLAGS_llm_int8_threshold));
  if (!absl::GetFlag(FLAGS_llm_int8_skip_modules).empty()) {
    std::string list;
    for (const std::string& m : absl::GetFlag(FLAGS_llm_int8_skip_modules)) {
      absl::StrAppend(&list, list.empty() ? "" : ", ", "\"", absl::CEscape(m), "\"");
    }
    add("llm_int8_skip_modules", absl::StrCat("[", list, "]"));
  }
  add_bool("llm_int8_enable_fp32_cpu_offload", absl::GetFlag(FLAGS_llm_int8_enable_fp32_cpu_offload));
  add_bool("llm_int8_has_fp16_weight", absl::GetFlag(FLAGS_llm_int8_has_fp16_weight));
  add_text("bnb_4bit_quant_type", absl::GetFlag(FLAGS_bnb_4bit_quant_type));
  add_bool("bnb_4bit_use_double_quant", absl::GetFlag(FLAGS_bnb_4bit_use_double_quant));
  add_text("bnb_4bit_compute_dtype", absl::GetFlag(FLAGS_bnb_4bit_compute_dtype));
  add_text("bnb_4bit_quant_storage", absl::GetFlag(FLAGS_bnb_4bit_quant_storage));
  return yaml;
}

}  // namespace

int RunGenerateCommand(const std::vector<std::string>& args) {
  ParseCommandFlags("generate",
                    "tierserve generate --model PATH --prompt TEXT [--chat] [sampling flags]\n"
                    "Loads a model and prints the completion of a prompt as it is generated.",
                    args);

  auto fail = [](const absl::Status& s) {
    std::cerr << "tierserve generate: " << s.message() << "\n";
    return 1;
  };
  const std::string path = absl::GetFlag(FLAGS_model);
  if (path.empty()) return fail(absl::InvalidArgumentError("--model is required"));
  if (absl::GetFlag(FLAGS_prompt).empty()) return fail(absl::InvalidArgumentError("--prompt is required"));
  int threads = absl::GetFlag(FLAGS_threads);
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  ModelLoadOptions load_options;
  {
    absl::StatusOr<QuantizationConfig> q = ParseQuantizationConfig(QuantizationYaml(), "flags");
    if (!q.ok()) return fail(q.status());
    load_options.quantization = *q;
  }
  {
    const std::string name = absl::GetFlag(FLAGS_activation_precision);
    const std::optional<ActivationPrecision> a = ParseActivationPrecision(name);
    if (!a.has_value()) {
      return fail(absl::InvalidArgumentError(
          absl::StrCat("--activation_precision: \"", name, "\" is not fp32 or int8")));
    }
    if (*a == ActivationPrecision::kInt8 && load_options.quantization.enabled()) {
      return fail(absl::InvalidArgumentError(
          "--activation_precision: int8 applies to GGUF block weights served as stored; with "
          "--load_in_8bit or --load_in_4bit the linear layers multiply fp32 activations"));
    }
    load_options.activations = *a;
  }
  const std::optional<DType> kv_dtype = ParseKvCacheDtype(absl::GetFlag(FLAGS_kv_cache_dtype));
  if (!kv_dtype.has_value()) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "--kv_cache_dtype: \"", absl::GetFlag(FLAGS_kv_cache_dtype), "\" is not ", kKvCacheDtypes)));
  }
  ThreadPool pool(threads);
  load_options.pool = &pool;
  // On a terminal, one line says what the load is reading or quantizing.
  std::optional<LoadProgressPrinter> progress;
  if (isatty(STDERR_FILENO)) {
    progress.emplace(&std::cerr, "tierserve generate: ", LoadProgressPrinter::Style::kTerminal);
    load_options.on_progress = [&progress](const LoadProgress& p) { progress->Report(p); };
  }
  absl::StatusOr<LoadedModel> loaded = LoadModel(path, load_options);
  if (progress) progress->Finish();
  if (!loaded.ok()) return fail(loaded.status());
  for (const std::string& w : loaded->warnings) std::cerr << "tierserve generate: warning: " << w << "\n";
  if (absl::GetFlag(FLAGS_stats)) {
    for (const MemoryLine& line : MemoryByPrecision(loaded->modules)) {
      std::cerr << absl::StrCat("[weights: ", line.device, " ", PrecisionName(line.precision), ": ",
                                line.parameters, " parameters, ", line.bytes, " bytes]\n");
    }
  }
  if (loaded->tokenizer == nullptr) {
    return fail(absl::FailedPreconditionError(absl::StrCat(path, ": the model ships no tokenizer")));
  }
  const Tokenizer& tok = *loaded->tokenizer;

  const std::string text = absl::GetFlag(FLAGS_prompt);
  RenderedPrompt prompt{text, {}};
  if (absl::GetFlag(FLAGS_chat)) {
    std::vector<ChatMessage> messages;
    if (!absl::GetFlag(FLAGS_system).empty()) messages.push_back({"system", absl::GetFlag(FLAGS_system)});
    messages.push_back({"user", text});
    absl::StatusOr<RenderedPrompt> rendered = RenderChatPrompt(tok, messages);
    if (!rendered.ok()) return fail(rendered.status());
    prompt = std::move(*rendered);
  }

  GenerationRequest req;
  req.prompt = prompt.Encode(tok, absl::GetFlag(FLAGS_parse_special_tokens_in_chat));
  req.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  req.sampling.temperature = absl::GetFlag(FLAGS_temperature);
  req.sampling.top_k = absl::GetFlag(FLAGS_top_k);
  req.sampling.top_p = absl::GetFlag(FLAGS_top_p);
  req.sampling.min_p = absl::GetFlag(FLAGS_min_p);
  req.sampling.repetition_penalty = absl::GetFlag(FLAGS_repetition_penalty);
  req.sampling.seed = absl::GetFlag(FLAGS_seed);
  req.stop = absl::GetFlag(FLAGS_stop);
  req.ignore_eos = absl::GetFlag(FLAGS_ignore_eos);

  Generator gen(loaded->model.get(), &tok, *kv_dtype);
  absl::StatusOr<GenerationResult> result = gen.Generate(req, [](const GenerationDelta& d) {
    std::fwrite(d.text.data(), 1, d.text.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  std::fputc('\n', stdout);
  if (!result.ok()) return fail(result.status());
  if (absl::GetFlag(FLAGS_stats)) {
    const size_t n = result->tokens.size();
    std::cerr << absl::StrCat("[", result->prompt_tokens, " prompt tokens, ", n,
                              " generated, finish: ", FinishReasonName(result->finish_reason),
                              "; prefill ", result->prompt_tokens / std::max(1e-9, result->prefill_seconds),
                              " tok/s, decode ",
                              n > 1 ? (n - 1) / std::max(1e-9, result->decode_seconds) : 0.0,
                              " tok/s, ", threads, " threads]\n");
  }
  return 0;
}

}  // namespace tierserve
