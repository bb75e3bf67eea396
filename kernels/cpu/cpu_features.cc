#include "kernels/cpu/cpu_features.h"

#include <initializer_list>

namespace tierserve::cpu {
namespace {

CpuFeatures Detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.f16c = __builtin_cpu_supports("f16c");
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
