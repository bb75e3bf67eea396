// Progress lines while a model loads, for `serve` (a line per tenth of the
// model once loading has taken a second: a small model loads silently) and
// `generate` on a terminal (one line rewritten in place, saying whether it is
// reading or quantizing, cleared when the load ends).
//
// Thread-safety: one printer per load, called on the loading thread.
#ifndef TIERSERVE_SERVER_LOAD_PROGRESS_H_
#define TIERSERVE_SERVER_LOAD_PROGRESS_H_

#include <chrono>
#include <ostream>
#include <string>

#include "runtime/model/model_loader.h"

namespace tierserve {

class LoadProgressPrinter {
 public:
  enum class Style {
    kLog,       // whole lines, "<prefix>loading 40% (...)"
    kTerminal,  // one line redrawn with '\r'
  };
  // `prefix` begins every line ("tierserve: model m: ").
  LoadProgressPrinter(std::ostream* out, std::string prefix, Style style,
                      std::chrono::steady_clock::duration quiet = std::chrono::seconds(1));
  ~LoadProgressPrinter();  // Finish()

  void Report(const LoadProgress& p);
  // Clears the terminal line (kTerminal); idempotent.
  void Finish();

  // The figures of one report: "40% (42.5 of 106.2 M parameters, 12.3 s), quantizing
  // model.layers.12.mlp.up_proj to nf4". Public for tests.
  static std::string Describe(const LoadProgress& p, double seconds);

 private:
  std::ostream* out_;
  const std::string prefix_;
  const Style style_;
  const std::chrono::steady_clock::duration quiet_;
  const std::chrono::steady_clock::time_point start_;
  int last_tenth_ = 0;
  bool drawn_ = false;
};

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_LOAD_PROGRESS_H_
