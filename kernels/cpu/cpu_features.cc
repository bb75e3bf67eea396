#include "kernels/cpu/cpu_features.h"

#include <initializer_list>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace tierserve::cpu {
namespace {

CpuFeatures Detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
#if defined(__clang__)
  // clang 14's __builtin_cpu_supports does not know "f16c": CPUID leaf 1, ECX bit 29.
  unsigned eax, ebx, ecx, edx;
  f.f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
#else
  f.f16c = __builtin_cpu_supports("f16c");
#endif
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512vnni = __builtin_cpu_supports("avx512vnni");
  f.avx512bf16 = __builtin_cpu_supports("avx512bf16");
#endif
  return f;
}

}  // namespace

const CpuFeatures& GetCpuFeatures() {
  static const CpuFeatures features = Detect();
  return features;
}

bool CpuPathSupported(CpuPath path) {
  const CpuFeatures& f = GetCpuFeatures();
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  const bool vnni = avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni;
  switch (path) {
    case CpuPath::kPortable: return true;
    case CpuPath::kAvx2: return avx2;
    case CpuPath::kAvx512Vnni: return vnni;
    case CpuPath::kAvx512Bf16: return vnni && f.avx512bf16;
  }
  return false;
}

CpuPath BestCpuPath() {
  static const CpuPath best = [] {
    for (CpuPath p : {CpuPath::kAvx512Bf16, CpuPath::kAvx512Vnni, CpuPath::kAvx2}) {
      if (CpuPathSupported(p)) return p;
    }
    return CpuPath::kPortable;
  }();
  return best;
}

std::vector<CpuPath> SupportedCpuPaths(std::initializer_list<CpuPath> candidates) {
  std::vector<CpuPath> paths;
  for (CpuPath p : candidates) {
    if (CpuPathSupported(p)) paths.push_back(p);
  }
  return paths;
}

const char* CpuPathName(CpuPath path) {
  switch (path) {
    case CpuPath::kPortable: return "portable";
    case CpuPath::kAvx2: return "avx2";
    case CpuPath::kAvx512Vnni: return "avx512vnni";
    case CpuPath::kAvx512Bf16: return "avx512bf16";
  }
  return "?";
}

}  // namespace tierserve::cpu
