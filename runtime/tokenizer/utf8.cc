#include "runtime/tokenizer/utf8.h"

namespace tierserve {
namespace {

constexpr char32_t kReplacement = 0xFFFD;

// For a lead byte: the sequence length and the allowed range of the second
// byte (which excludes overlong forms, surrogates and values past U+10FFFF).
// Length 0 marks a byte that cannot start a sequence.
struct LeadInfo {
  uint8_t len;
  uint8_t second_lo;
  uint8_t second_hi;
};

LeadInfo Lead(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b < 0xC2) return {0, 0, 0};
  if (b < 0xE0) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b < 0xF0) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b < 0xF4) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// Scans the sequence at `pos`: returns how many bytes form its maximal valid
// prefix, and whether the whole sequence is present (`complete`).
struct Scan {
  uint32_t len;
  bool complete;
  bool truncated;  // valid so far, cut off by the end of the buffer
};

Scan ScanAt(std::string_view text, size_t pos) {
  const uint8_t b0 = static_cast<uint8_t>(text[pos]);
  const LeadInfo lead = Lead(b0);
  if (lead.len == 0) return {1, false, false};
  if (lead.len == 1) return {1, true, false};
  uint32_t n = 1;
  while (n < lead.len) {
    if (pos + n >= text.size()) return {n, false, true};
    const uint8_t b = static_cast<uint8_t>(text[pos + n]);
    const uint8_t lo = n == 1 ? lead.second_lo : 0x80;
    const uint8_t hi = n == 1 ? lead.second_hi : 0xBF;
    if (b < lo || b > hi) return {n, false, false};
    ++n;
  }
  return {n, true, false};
}

}  // namespace

Utf8Char DecodeUtf8At(std::string_view text, size_t pos) {
  const Scan scan = ScanAt(text, pos);
  if (!scan.complete) return {kReplacement, scan.len, false};
  const auto* p = reinterpret_cast<const uint8_t*>(text.data() + pos);
  switch (scan.len) {
    case 1:
      return {p[0], 1, true};
    case 2:
      return {(char32_t{p[0] & 0x1Fu} << 6) | (p[1] & 0x3Fu), 2, true};
    case 3:
      return {(char32_t{p[0] & 0x0Fu} << 12) | (char32_t{p[1] & 0x3Fu} << 6) | (p[2] & 0x3Fu), 3,
              true};
    default:
      return {(char32_t{p[0] & 0x07u} << 18) | (char32_t{p[1] & 0x3Fu} << 12) |
                  (char32_t{p[2] & 0x3Fu} << 6) | (p[3] & 0x3Fu),
              4, true};
  }
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string LossyUtf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    // Copy runs of ASCII and whole valid sequences verbatim.
    const Scan scan = ScanAt(bytes, pos);
    if (scan.complete) {
      out.append(bytes.substr(pos, scan.len));
    } else {
      AppendUtf8(kReplacement, &out);
    }
    pos += scan.len;
  }
  return out;
}

size_t IncompleteUtf8Suffix(std::string_view bytes) {
  // A sequence is at most 4 bytes, so only the last 3 bytes can start one
  // that is still incomplete.
  const size_t n = bytes.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const size_t pos = n - back;
    const uint8_t b = static_cast<uint8_t>(bytes[pos]);
    if (b >= 0x80 && b < 0xC0) continue;  // continuation byte: look further back
    const Scan scan = ScanAt(bytes, pos);
    return scan.truncated ? back : 0;
  }
  return 0;
}

}  // namespace tierserve
