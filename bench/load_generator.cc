// Load generator for a running tierserve daemon, in the manner of vLLM's
// benchmark_serving: it streams GenerateStream calls over gRPC and reports,
// per load level, throughput (output tokens/s, requests/s) and latency
// percentiles: TTFT, inter-token latency (ITL) and end-to-end time.
//
// Two ways to load the daemon:
// - Closed loop (default): for each N in --concurrency, N client threads each
//   send --requests_per_client requests back to back. One row per N.
// - Open loop (--rate R > 0): --num_requests requests arrive as a Poisson
//   process of R requests/s (exponential gaps drawn with --seed), each sent
//   on its own thread whether or not earlier ones have finished. One row.
//
// Definitions, per call (only calls that end OK enter the percentiles and the
// token throughput; failed calls are counted by their gRPC status code):
// - TTFT: from just before the call is started to the first message that
//   carries at least one token (the chat template's rendering and the
//   prefill are inside it).
// - ITL: for each later token-carrying message, the time since the previous
//   token-carrying message divided by the message's token count, recorded
//   once per token, so the percentiles are over tokens. The daemon sends one
//   token per message today, so this is the gap between messages.
// - e2e: from the start of the call to its final status.
// - tokens: the `tokens` entries of all messages.
// Percentiles are nearest-rank over the sorted samples.
//
// Run, from the repository root:
//   cmake --build build --target tierserve load_generator
//   build/server/tierserve serve --config deploy/tierserve.yaml &
//   build/bench/load_generator --concurrency 1,4,16 --svg /tmp/load.svg
//   build/bench/load_generator --rate 2 --num_requests 50
// Before measuring it waits (--wait_ready_seconds) until the daemon answers
// and lists the model as READY, then sends --warmup_requests unmeasured calls.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tierserve/v1/generation.grpc.pb.h"

ABSL_FLAG(std::string, target, "localhost:50051", "The daemon's gRPC address, host:port.");
ABSL_FLAG(std::string, model, "smollm2", "Model name, as configured in the daemon.");
ABSL_FLAG(std::string, prompt, "What is the capital of France?", "Prompt text (the user message with --chat).");
ABSL_FLAG(bool, chat, true,
          "Send --prompt as a one-user-message Chat, so the daemon applies the chat template "
          "and its default system prompt; false sends it as raw text.");
ABSL_FLAG(int32_t, max_new_tokens, 64, "Tokens to generate per request.");
ABSL_FLAG(float, temperature, 0.0f, "Sampling temperature; 0 decodes greedily.");
ABSL_FLAG(bool, ignore_eos, true, "Generate past end-of-sequence, so every request makes max_new_tokens.");
ABSL_FLAG(std::string, concurrency, "1,4,16,64", "Closed loop: comma-separated client counts, one row each.");
ABSL_FLAG(int32_t, requests_per_client, 4, "Closed loop: requests each client sends back to back.");
ABSL_FLAG(double, rate, 0, "Open loop: Poisson arrivals at this many requests/s instead of the sweep (0: off).");
ABSL_FLAG(int32_t, num_requests, 64, "Open loop: requests sent.");
ABSL_FLAG(uint64_t, seed, 1, "Seeds the open-loop arrival gaps and each request's sampling (request i: seed + i).");
ABSL_FLAG(double, deadline_seconds, 600, "Deadline of each call.");
ABSL_FLAG(double, wait_ready_seconds, 120, "Longest wait for the daemon to serve the model before measuring.");
ABSL_FLAG(int32_t, warmup_requests, 1, "Unmeasured requests sent one at a time before measuring.");
ABSL_FLAG(std::string, svg, "", "Write a plot of throughput and latencies against the load to this SVG file.");

namespace tierserve {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// gRPC deadlines take the system clock.
std::chrono::system_clock::time_point DeadlineIn(double seconds) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(seconds));
}

// What one GenerateStream call measured (see the definitions at the top).
struct CallResult {
  grpc::StatusCode code = grpc::StatusCode::OK;
  int64_t tokens = 0;
  double ttft_s = NAN;
  double e2e_s = 0;
  std::vector<double> itl_s;
};

// Nearest-rank percentile of sorted samples: the smallest sample with at
// least p% of the samples at or below it. NaN when there are none.
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return NAN;
  const auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

// The gRPC and absl status codes share their numbers and names.
std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

v1::GenerateStreamRequest MakeRequest(uint64_t index) {
  v1::GenerateStreamRequest req;
  req.set_model(absl::GetFlag(FLAGS_model));
  if (absl::GetFlag(FLAGS_chat)) {
    v1::ChatMessage* m = req.mutable_prompt()->mutable_chat()->add_messages();
    m->set_role("user");
    m->set_content(absl::GetFlag(FLAGS_prompt));
  } else {
    req.mutable_prompt()->set_text(absl::GetFlag(FLAGS_prompt));
  }
  v1::GenerationParameters* p = req.mutable_parameters();
  p->set_max_new_tokens(absl::GetFlag(FLAGS_max_new_tokens));
  p->set_temperature(absl::GetFlag(FLAGS_temperature));
  p->set_seed(absl::GetFlag(FLAGS_seed) + index);
  p->set_ignore_eos(absl::GetFlag(FLAGS_ignore_eos));
  return req;
}

// One streamed call, timed message by message. Thread-safe: the stub is.
CallResult RunCall(v1::Generation::Stub& stub, const v1::GenerateStreamRequest& req) {
  CallResult r;
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(absl::GetFlag(FLAGS_deadline_seconds)));
  const Clock::time_point start = Clock::now();
  std::unique_ptr<grpc::ClientReader<v1::GenerateStreamResponse>> reader = stub.GenerateStream(&ctx, req);
  v1::GenerateStreamResponse msg;
  Clock::time_point last;
  while (reader->Read(&msg)) {
    const Clock::time_point now = Clock::now();
    const int k = msg.tokens_size();
    if (k == 0) continue;  // a text-less final message, or text held back
    if (r.tokens == 0) {
      r.ttft_s = Seconds(start, now);
    } else {
      r.itl_s.insert(r.itl_s.end(), k, Seconds(last, now) / k);
    }
    last = now;
    r.tokens += k;
  }
  r.code = reader->Finish().error_code();
  r.e2e_s = Seconds(start, Clock::now());
  return r;
}

// Closed loop: `clients` threads, each sending `per_client` calls back to
// back. All share one channel: gRPC multiplexes the calls as HTTP/2 streams
// over one connection, as a gateway in front of the daemon would, and the
// daemon caps no streams per connection, so no call waits for a stream slot
// in the client. (Several channels with equal arguments would share the same
// connection anyway unless given distinct arguments.)
std::vector<CallResult> RunClosedLoop(v1::Generation::Stub& stub, int clients, int per_client, double* wall_s) {
  std::vector<std::vector<CallResult>> results(clients);
  std::vector<std::thread> threads;
  const Clock::time_point t0 = Clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&stub, &results, c, per_client] {
      for (int i = 0; i < per_client; ++i)
        results[c].push_back(RunCall(stub, MakeRequest(static_cast<uint64_t>(c) * per_client + i)));
    });
  }
  for (std::thread& t : threads) t.join();
  *wall_s = Seconds(t0, Clock::now());
  std::vector<CallResult> all;
  for (std::vector<CallResult>& v : results) all.insert(all.end(), v.begin(), v.end());
  return all;
}

// Open loop: the first call at once, each next one an exponential gap of mean
// 1/rate later, on a thread of its own so a slow daemon cannot slow arrivals.
std::vector<CallResult> RunOpenLoop(v1::Generation::Stub& stub, double rate, int n, double* wall_s) {
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed));
  std::exponential_distribution<double> gap(rate);
  std::vector<CallResult> results(n);
  std::vector<std::thread> threads;
  const Clock::time_point t0 = Clock::now();
  double at = 0;
  for (int i = 0; i < n; ++i) {
    std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(at)));
    threads.emplace_back([&stub, &results, i] { results[i] = RunCall(stub, MakeRequest(i)); });
    at += gap(rng);
  }
  for (std::thread& t : threads) t.join();
  *wall_s = Seconds(t0, Clock::now());
  return results;
}

// One measurement row: a load level and what it gave.
struct Level {
  double load = 0;  // clients (closed loop) or requests/s (open loop)
  int requests = 0, ok = 0;
  std::map<std::string, int> errors;  // status code name -> calls
  double wall_s = 0, tokens_per_s = 0, requests_per_s = 0, tokens_per_request = NAN;
  double ttft_ms[3] = {}, itl_ms[3] = {}, e2e_s[2] = {};  // p50, p90, p99 / p50, p99
};

Level Summarize(double load, const std::vector<CallResult>& calls, double wall_s) {
  Level l;
  l.load = load;
  l.requests = static_cast<int>(calls.size());
  l.wall_s = wall_s;
  std::vector<double> ttft, itl, e2e;
  int64_t tokens = 0;
  for (const CallResult& c : calls) {
    if (c.code != grpc::StatusCode::OK) {
      ++l.errors[CodeName(c.code)];
      continue;
    }
    ++l.ok;
    tokens += c.tokens;
    if (c.tokens > 0) ttft.push_back(c.ttft_s * 1e3);
    for (double s : c.itl_s) itl.push_back(s * 1e3);
    e2e.push_back(c.e2e_s);
  }
  for (std::vector<double>* v : {&ttft, &itl, &e2e}) std::sort(v->begin(), v->end());
  l.tokens_per_s = static_cast<double>(tokens) / wall_s;
  l.requests_per_s = l.ok / wall_s;
  if (l.ok > 0) l.tokens_per_request = static_cast<double>(tokens) / l.ok;
  const double ps[3] = {50, 90, 99};
  for (int i = 0; i < 3; ++i) {
    l.ttft_ms[i] = Percentile(ttft, ps[i]);
    l.itl_ms[i] = Percentile(itl, ps[i]);
  }
  l.e2e_s[0] = Percentile(e2e, 50);
  l.e2e_s[1] = Percentile(e2e, 99);
  return l;
}

void PrintHeader(const char* load_name) {
  std::printf("%6s %5s %5s %8s %9s %7s %7s | %8s %8s %8s | %7s %7s %7s | %7s %7s | %s\n", load_name, "ok",
              "err", "wall_s", "tok/s", "req/s", "tok/req", "ttft_p50", "ttft_p90", "ttft_p99", "itl_p50",
              "itl_p90", "itl_p99", "e2e_p50", "e2e_p99", "errors");
  std::printf("%6s %5s %5s %8s %9s %7s %7s | %26s | %23s | %15s |\n", "", "", "", "", "", "", "", "ms", "ms", "s");
}

void PrintLevel(const Level& l, const char* mode, const char* load_key) {
  std::vector<std::string> errors;
  for (const auto& [name, count] : l.errors) errors.push_back(absl::StrCat(name, ":", count));
  const std::string error_list = errors.empty() ? "-" : absl::StrJoin(errors, ",");
  const int failed = l.requests - l.ok;
  std::printf("%6g %5d %5d %8.2f %9.1f %7.3f %7.1f | %8.1f %8.1f %8.1f | %7.2f %7.2f %7.2f | %7.2f %7.2f | %s\n",
              l.load, l.ok, failed, l.wall_s, l.tokens_per_s, l.requests_per_s, l.tokens_per_request,
              l.ttft_ms[0], l.ttft_ms[1], l.ttft_ms[2], l.itl_ms[0], l.itl_ms[1], l.itl_ms[2], l.e2e_s[0],
              l.e2e_s[1], error_list.c_str());
  // One machine-readable line for scripts.
  std::printf("RESULT mode=%s %s=%g requests=%d ok=%d errors=%d error_codes=%s wall_s=%.3f output_tps=%.3f "
              "requests_per_s=%.4f tokens_per_request=%.2f ttft_p50_ms=%.3f ttft_p90_ms=%.3f ttft_p99_ms=%.3f "
              "itl_p50_ms=%.3f itl_p90_ms=%.3f itl_p99_ms=%.3f e2e_p50_s=%.4f e2e_p99_s=%.4f\n",
              mode, load_key, l.load, l.requests, l.ok, failed, error_list.c_str(), l.wall_s, l.tokens_per_s,
              l.requests_per_s, l.tokens_per_request, l.ttft_ms[0], l.ttft_ms[1], l.ttft_ms[2], l.itl_ms[0],
              l.itl_ms[1], l.itl_ms[2], l.e2e_s[0], l.e2e_s[1]);
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------
// The SVG plot, written by hand: no C++ plotting library is available here,
// and two line charts need only axes, polylines and text.
// ---------------------------------------------------------------------------

struct Series {
  const char* name;
  const char* color;
  bool dashed;
  std::vector<double> y;  // one per load level; NaN (or <= 0 on a log axis) is left out
};

std::string XmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// 1, 2 or 5 times a power of ten, at least `raw`.
double NiceStep(double raw) {
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

constexpr double kPanelW = 500, kPanelH = 380;
constexpr double kLeft = 70, kRight = 20, kTop = 62, kBottom = 50;  // plot-area margins

// One panel at horizontal offset `x0`: log2 x axis over `xs`, and a y axis
// from 0 (linear) or over whole decades (log10).
void DrawPanel(std::string* svg, double x0, const char* title, const char* x_label, const char* y_label,
               bool log_y, const std::vector<double>& xs, const std::vector<Series>& series) {
  const double px0 = x0 + kLeft, px1 = x0 + kPanelW - kRight, py0 = kTop, py1 = kPanelH - kBottom;
  double xlo = std::log2(*std::min_element(xs.begin(), xs.end()));
  double xhi = std::log2(*std::max_element(xs.begin(), xs.end()));
  if (xhi - xlo < 1e-9) xlo -= 1, xhi += 1;
  const double pad = 0.06 * (xhi - xlo);
  xlo -= pad, xhi += pad;
  auto sx = [&](double x) { return px0 + (std::log2(x) - xlo) / (xhi - xlo) * (px1 - px0); };

  auto usable = [&](double v) { return std::isfinite(v) && (!log_y || v > 0); };
  double vmin = INFINITY, vmax = 0;
  for (const Series& s : series)
    for (double v : s.y)
      if (usable(v)) vmin = std::min(vmin, v), vmax = std::max(vmax, v);
  double ylo = 0, yhi = 1, step = 1;  // in axis units: the value, or its log10
  if (log_y && vmax > 0) {
    ylo = std::floor(std::log10(vmin)), yhi = std::max(ylo + 1, std::ceil(std::log10(vmax)));
  } else if (!log_y && vmax > 0) {
    step = NiceStep(vmax / 5), yhi = std::ceil(vmax / step) * step;
  }
  auto sy = [&](double v) { return py1 - ((log_y ? std::log10(v) : v) - ylo) / (yhi - ylo) * (py1 - py0); };

  absl::StrAppendFormat(svg, "<text x=\"%.1f\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">%s</text>\n",
                        (px0 + px1) / 2, title);
  for (double t = ylo; t <= yhi + step * 1e-6; t += step) {
    const double v = log_y ? std::pow(10.0, t) : t, y = sy(v);
    absl::StrAppendFormat(svg, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", px0, y,
                          px1, y);
    absl::StrAppendFormat(svg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", px0 - 6, y + 4, v);
  }
  for (double x : xs) {
    absl::StrAppendFormat(svg, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\"/>\n", sx(x),
                          py1, sx(x), py1 + 5);
    absl::StrAppendFormat(svg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", sx(x), py1 + 18, x);
  }
  absl::StrAppendFormat(svg, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#000\"/>\n",
                        px0, py0, px1 - px0, py1 - py0);
  absl::StrAppendFormat(svg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", (px0 + px1) / 2,
                        py1 + 38, x_label);
  absl::StrAppendFormat(svg, "<text transform=\"translate(%.1f,%.1f) rotate(-90)\" text-anchor=\"middle\">%s</text>\n",
                        x0 + 18, (py0 + py1) / 2, y_label);
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    const char* dash = s.dashed ? " stroke-dasharray=\"6,4\"" : "";
    const double lx = px0 + 110.0 * static_cast<double>(i);  // legend, in a row above the plot
    absl::StrAppendFormat(svg, "<line x1=\"%.1f\" y1=\"44\" x2=\"%.1f\" y2=\"44\" stroke=\"%s\" stroke-width=\"2\"%s/>\n",
                          lx, lx + 24, s.color, dash);
    absl::StrAppendFormat(svg, "<text x=\"%.1f\" y=\"48\">%s</text>\n", lx + 28, s.name);
    std::string points;
    for (size_t j = 0; j < xs.size(); ++j) {
      if (!usable(s.y[j])) continue;
      absl::StrAppendFormat(&points, "%.1f,%.1f ", sx(xs[j]), sy(s.y[j]));
      absl::StrAppendFormat(svg, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", sx(xs[j]), sy(s.y[j]),
                            s.color);
    }
    absl::StrAppendFormat(svg, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s/>\n",
                          points, s.color, dash);
  }
}

std::string RenderSvg(std::vector<Level> levels, const char* x_label, const std::string& caption) {
  std::sort(levels.begin(), levels.end(), [](const Level& a, const Level& b) { return a.load < b.load; });
  std::vector<double> xs;
  Series tps{"output tokens/s", "#1f77b4", false, {}};
  Series lat[4] = {{"TTFT p50", "#d62728", false, {}}, {"TTFT p99", "#d62728", true, {}},
                   {"ITL p50", "#2ca02c", false, {}},  {"ITL p99", "#2ca02c", true, {}}};
  for (const Level& l : levels) {
    xs.push_back(l.load);
    tps.y.push_back(l.tokens_per_s);
    lat[0].y.push_back(l.ttft_ms[0]), lat[1].y.push_back(l.ttft_ms[2]);
    lat[2].y.push_back(l.itl_ms[0]), lat[3].y.push_back(l.itl_ms[2]);
  }
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n",
      2 * kPanelW, kPanelH + 24, 2 * kPanelW, kPanelH + 24);
  DrawPanel(&svg, 0, "Throughput", x_label, "output tokens/s", false, xs, {tps});
  DrawPanel(&svg, kPanelW, "Latency", x_label, "ms (log scale)", true, xs, {lat[0], lat[1], lat[2], lat[3]});
  absl::StrAppendFormat(&svg, "<text x=\"%g\" y=\"%g\" font-size=\"11\" fill=\"#555\">%s</text>\n</svg>\n", kLeft,
                        kPanelH + 12, XmlEscape(caption));
  return svg;
}

// ---------------------------------------------------------------------------

// Waits until the daemon answers ListModels with the model READY.
absl::Status WaitUntilReady(v1::Generation::Stub& stub, const std::string& model, double seconds) {
  const Clock::time_point end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::string last = "no answer";
  while (Clock::now() < end) {
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);  // wait for the daemon to listen instead of failing at once
    ctx.set_deadline(DeadlineIn(std::min(5.0, std::max(0.1, Seconds(Clock::now(), end)))));
    v1::ListModelsResponse models;
    const grpc::Status s = stub.ListModels(&ctx, v1::ListModelsRequest(), &models);
    if (s.ok()) {
      const auto it = std::find_if(models.models().begin(), models.models().end(),
                                   [&](const v1::ModelInfo& m) { return m.name() == model; });
      if (it == models.models().end()) return absl::NotFoundError(absl::StrCat("the daemon serves no model ", model));
      if (it->state() == v1::MODEL_STATE_READY) return absl::OkStatus();
      if (it->state() == v1::MODEL_STATE_FAILED)
        return absl::FailedPreconditionError(absl::StrCat(model, " failed to load: ", it->state_message()));
      last = v1::ModelState_Name(it->state());
    } else {
      last = absl::StrCat(CodeName(s.error_code()), ": ", s.error_message());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return absl::DeadlineExceededError(absl::StrCat(model, " not ready after ", seconds, " s (", last, ")"));
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "load_generator: %s\n", message.c_str());
  return 1;
}

int Run() {
  const double rate = absl::GetFlag(FLAGS_rate);
  std::vector<int> levels;
  for (absl::string_view c : absl::StrSplit(absl::GetFlag(FLAGS_concurrency), ',', absl::SkipEmpty())) {
    int n = 0;
    if (!absl::SimpleAtoi(c, &n) || n < 1) return Fail(absl::StrCat("--concurrency: '", c, "' is not an integer >= 1"));
    levels.push_back(n);
  }
  if (rate < 0 || !std::isfinite(rate)) return Fail("--rate must be >= 0 and finite");
  if (rate == 0 && levels.empty()) return Fail("--concurrency lists no level");
  if (absl::GetFlag(FLAGS_requests_per_client) < 1) return Fail("--requests_per_client must be >= 1");
  if (absl::GetFlag(FLAGS_num_requests) < 1) return Fail("--num_requests must be >= 1");

  const std::string model = absl::GetFlag(FLAGS_model);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials());
  std::unique_ptr<v1::Generation::Stub> stub = v1::Generation::NewStub(channel);
  if (absl::Status s = WaitUntilReady(*stub, model, absl::GetFlag(FLAGS_wait_ready_seconds)); !s.ok())
    return Fail(std::string(s.message()));
  for (int i = 0; i < absl::GetFlag(FLAGS_warmup_requests); ++i) {
    const CallResult r = RunCall(*stub, MakeRequest(i));
    if (r.code != grpc::StatusCode::OK) std::fprintf(stderr, "load_generator: warmup call: %s\n", CodeName(r.code).c_str());
  }

  const std::string caption = absl::StrFormat(
      "tierserve %s, model %s, %d new tokens per request, %s, temperature %g", absl::GetFlag(FLAGS_target), model,
      absl::GetFlag(FLAGS_max_new_tokens),
      rate > 0 ? absl::StrFormat("open loop, %d requests", absl::GetFlag(FLAGS_num_requests))
               : absl::StrFormat("closed loop, %d requests per client", absl::GetFlag(FLAGS_requests_per_client)),
      absl::GetFlag(FLAGS_temperature));
  std::printf("%s\n", caption.c_str());
  std::vector<Level> rows;
  double wall_s = 0;
  if (rate > 0) {
    PrintHeader("rate");
    const std::vector<CallResult> calls = RunOpenLoop(*stub, rate, absl::GetFlag(FLAGS_num_requests), &wall_s);
    rows.push_back(Summarize(rate, calls, wall_s));
    PrintLevel(rows.back(), "open", "rate");
  } else {
    PrintHeader("conc");
    for (int n : levels) {
      const std::vector<CallResult> calls = RunClosedLoop(*stub, n, absl::GetFlag(FLAGS_requests_per_client), &wall_s);
      rows.push_back(Summarize(n, calls, wall_s));
      PrintLevel(rows.back(), "closed", "concurrency");
    }
  }

  if (const std::string path = absl::GetFlag(FLAGS_svg); !path.empty()) {
    std::ofstream out(path);
    out << RenderSvg(rows, rate > 0 ? "requests/s offered (log2)" : "concurrent clients (log2)", caption);
    if (!out.flush()) return Fail(absl::StrCat("cannot write ", path));
  }
  return 0;
}

}  // namespace
}  // namespace tierserve

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return tierserve::Run();
}
