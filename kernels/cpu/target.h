// Compiling a stretch of a kernel file for an instruction set beyond the
// build's baseline, for paths chosen at run time (cpu_features.h):
//
//   TIERSERVE_TARGET_BEGIN("avx2,fma,f16c")
//   ... functions ...
//   TIERSERVE_TARGET_END
//
// GCC's `#pragma GCC target` and clang's `#pragma clang attribute`, one
// spelling for both compilers.
#ifndef TIERSERVE_KERNELS_CPU_TARGET_H_
#define TIERSERVE_KERNELS_CPU_TARGET_H_

#define TIERSERVE_PRAGMA(...) _Pragma(#__VA_ARGS__)

#if defined(__clang__)
#define TIERSERVE_TARGET_BEGIN(features) \
  TIERSERVE_PRAGMA(clang attribute push(__attribute__((target(features))), apply_to = function))
#define TIERSERVE_TARGET_END TIERSERVE_PRAGMA(clang attribute pop)
#else
#define TIERSERVE_TARGET_BEGIN(features) \
  TIERSERVE_PRAGMA(GCC push_options)     \
  TIERSERVE_PRAGMA(GCC target(features))
#define TIERSERVE_TARGET_END TIERSERVE_PRAGMA(GCC pop_options)
#endif

#endif  // TIERSERVE_KERNELS_CPU_TARGET_H_
