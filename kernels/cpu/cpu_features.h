// Which SIMD code path the CPU kernels run, chosen at run time from CPUID.
//
// The library is built for a baseline (-march of the build), but a kernel
// with several ISA paths compiles each with its own target attribute, so one
// binary carries the AVX2 and AVX-512 paths and picks the best one the CPU
// (and OS) supports. Tests pass a path explicitly to the kernels' *OnPath
// entry points to compare paths against each other.
//
// Thread-safe: detection runs once (function-local static) and is read-only.
#ifndef TIERSERVE_KERNELS_CPU_CPU_FEATURES_H_
#define TIERSERVE_KERNELS_CPU_CPU_FEATURES_H_

#include <initializer_list>
#include <vector>

namespace tierserve::cpu {

// Ordered: each path's CPU requirements include those of the paths before it.
enum class CpuPath {
  kPortable,    // plain C++ (whatever the baseline flags vectorize)
  kAvx2,        // AVX2 + FMA + F16C (Haswell, Zen 1 and later)
  kAvx512Vnni,  // AVX-512 F/BW/VL + VNNI (Ice Lake, Zen 4 and later)
  kAvx512Bf16,  // kAvx512Vnni + AVX512_BF16 (Cooper Lake, Sapphire Rapids, Zen 4);
                // int8 kernels run it as kAvx512Vnni
};

// The CPU's features that matter to the kernels, read once from CPUID (and
// XCR0, through __builtin_cpu_supports: a feature the OS does not save the
// state of counts as absent).
struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vnni = false;
  bool avx512bf16 = false;
};

const CpuFeatures& GetCpuFeatures();

// True when this CPU can run `path` (kPortable always).
bool CpuPathSupported(CpuPath path);

// The fastest supported path.
CpuPath BestCpuPath();

// The paths of `candidates` this CPU runs, in their order (what a test or
// benchmark compares on this machine).
std::vector<CpuPath> SupportedCpuPaths(std::initializer_list<CpuPath> candidates);

// "portable", "avx2", "avx512vnni", "avx512bf16".
const char* CpuPathName(CpuPath path);

}  // namespace tierserve::cpu

#endif  // TIERSERVE_KERNELS_CPU_CPU_FEATURES_H_
