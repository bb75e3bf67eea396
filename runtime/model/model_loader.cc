#include "runtime/model/model_loader.h"

#include <sys/stat.h>

#include "runtime/base/status_macros.h"
#include "runtime/format/gguf.h"
#include "runtime/model/gpt2.h"
#include "runtime/model/llama.h"

namespace tierserve {

absl::StatusOr<LoadedModel> LoadModel(const std::string& path, ThreadPool* pool) {
  LoadedModel m;
  TS_ASSIGN_OR_RETURN(m.source, WeightSource::Open(path));
  switch (m.source->config().arch) {
    case Architecture::kLlama: {
      TS_ASSIGN_OR_RETURN(m.model, LoadLlama(*m.source, pool));
      break;
    }
    case Architecture::kGpt2: {
      TS_ASSIGN_OR_RETURN(m.model, LoadGpt2(*m.source, pool));
      break;
    }
  }
  if (m.source->gguf() != nullptr) {
    TS_ASSIGN_OR_RETURN(m.tokenizer, Tokenizer::FromGguf(*m.source->gguf()));
  } else {
    const std::string tj = path + "/tokenizer.json";
    struct stat st;
    if (stat(tj.c_str(), &st) == 0) {
      TS_ASSIGN_OR_RETURN(m.tokenizer, Tokenizer::FromTokenizerJson(tj));
    }
  }
  return m;
}

}  // namespace tierserve
