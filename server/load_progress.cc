#include "server/load_progress.h"

#include <utility>

#include "absl/strings/str_format.h"

namespace tierserve {
namespace {

bool Quantized(Precision p) { return p == Precision::kInt8 || p == Precision::kNf4 || p == Precision::kFp4; }

}  // namespace

LoadProgressPrinter::LoadProgressPrinter(std::ostream* out, std::string prefix, Style style,
                                         std::chrono::steady_clock::duration quiet)
    : out_(out),
      prefix_(std::move(prefix)),
      style_(style),
      quiet_(quiet),
      start_(std::chrono::steady_clock::now()) {}

LoadProgressPrinter::~LoadProgressPrinter() { Finish(); }

std::string LoadProgressPrinter::Describe(const LoadProgress& p, double seconds) {
  const double total = static_cast<double>(p.parameters_total);
  const int percent = p.parameters_total > 0 ? static_cast<int>(100.0 * p.parameters_done / total) : 100;
  std::string s = absl::StrFormat("%d%% (%.1f of %.1f M parameters, %.1f s)", percent,
                                  p.parameters_done / 1e6, total / 1e6, seconds);
  if (p.module != nullptr) {
    absl::StrAppendFormat(&s, ", %s %s", Quantized(p.module->precision) ? "quantizing" : "reading",
                          p.module->module);
    if (Quantized(p.module->precision)) absl::StrAppend(&s, " to ", PrecisionName(p.module->precision));
  }
  return s;
}

void LoadProgressPrinter::Report(const LoadProgress& p) {
  const auto elapsed = std::chrono::steady_clock::now() - start_;
  if (elapsed < quiet_) return;
  const double seconds = std::chrono::duration<double>(elapsed).count();
  if (style_ == Style::kTerminal) {
    // Erase to the end of the line: the previous text may have been longer.
    *out_ << '\r' << prefix_ << "loading " << Describe(p, seconds) << "\x1b[K" << std::flush;
    drawn_ = true;
    return;
  }
  const int tenth = p.parameters_total > 0 ? static_cast<int>(10 * p.parameters_done / p.parameters_total) : 10;
  if (tenth <= last_tenth_ || tenth >= 10) return;  // the caller reports the end itself
  last_tenth_ = tenth;
  *out_ << prefix_ << "loading " << Describe(p, seconds) << std::endl;
}

void LoadProgressPrinter::Finish() {
  if (drawn_) *out_ << "\r\x1b[K" << std::flush;
  drawn_ = false;
}

}  // namespace tierserve
