// Encode/decode throughput of the byte-level BPE tokenizer, single thread.
//
//   bench_tokenizer [tokenizer.json] [text file]
//
// Defaults: SmolLM2's tokenizer and tests/data/tokenizers/training_text.txt
// repeated to at least 100 KB (run from the repository root). Prints figures
// only; nothing is asserted.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/tokenizer/tokenizer.h"

namespace {

std::string ReadAll(const char* path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

int main(int argc, char** argv) {
  const char* tokenizer_path = argc > 1 ? argv[1] : "tests/data/tokenizers/smollm2/tokenizer.json";
  const char* text_path = argc > 2 ? argv[2] : "tests/data/tokenizers/training_text.txt";

  const auto load_start = std::chrono::steady_clock::now();
  auto tokenizer = tierserve::Tokenizer::FromTokenizerJson(tokenizer_path);
  const double load_s = Seconds(std::chrono::steady_clock::now() - load_start);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "%s\n", std::string(tokenizer.status().message()).c_str());
    return 1;
  }
  std::string text = ReadAll(text_path);
  if (text.empty()) {
    std::fprintf(stderr, "%s: empty or unreadable\n", text_path);
    return 1;
  }
  if (argc <= 2) {
    const std::string unit = text;
    while (text.size() < 100 * 1024) text += unit;
  }

  const tierserve::Tokenizer& tok = **tokenizer;
  std::vector<int32_t> ids = tok.Encode(text, false);  // warm-up
  int rounds = 0;
  size_t tokens = 0;
  const auto start = std::chrono::steady_clock::now();
  double encode_s = 0;
  do {
    ids = tok.Encode(text, false);
    tokens += ids.size();
    ++rounds;
    encode_s = Seconds(std::chrono::steady_clock::now() - start);
  } while (encode_s < 2.0);

  const auto decode_start = std::chrono::steady_clock::now();
  int decode_rounds = 0;
  double decode_s = 0;
  std::string decoded;
  do {
    decoded = tok.Decode(ids);
    ++decode_rounds;
    decode_s = Seconds(std::chrono::steady_clock::now() - decode_start);
  } while (decode_s < 1.0);

  std::printf("tokenizer      %s (loaded in %.3f s)\n", tokenizer_path, load_s);
  std::printf("text           %zu bytes -> %zu tokens (%.2f bytes/token)\n", text.size(),
              ids.size(), static_cast<double>(text.size()) / ids.size());
  std::printf("encode         %.0f tokens/s, %.2f MB/s (%d rounds)\n", tokens / encode_s,
              rounds * text.size() / encode_s / 1e6, rounds);
  std::printf("decode         %.0f tokens/s (%d rounds)\n",
              static_cast<double>(decode_rounds) * ids.size() / decode_s, decode_rounds);
  std::printf("round trip     %s\n", decoded == text ? "exact" : "DIFFERS");
  return 0;
}
