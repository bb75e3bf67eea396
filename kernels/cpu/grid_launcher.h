// Runs a CUDA kernel body on the host by walking its grid serially, so that a
// `TS_HD` body (kernels/cuda/*.cuh) is tested by the host compiler against the
// CPU kernels, without a GPU.
//
// The walk visits blocks in x-fastest order and, within a block, threads in
// x-fastest order, each to completion before the next. A body therefore must
// not wait for another thread of its block: a kernel with a barrier
// (__syncthreads) is run here as one LaunchOnHost per barrier-free phase, with
// the block's "shared memory" held by the caller. Header-only, host-only.
#ifndef TIERSERVE_KERNELS_CPU_GRID_LAUNCHER_H_
#define TIERSERVE_KERNELS_CPU_GRID_LAUNCHER_H_

#include <cstdint>

namespace tierserve::cpu {

// dim3 without the CUDA headers.
struct HostDim3 {
  uint32_t x = 1, y = 1, z = 1;
};

// What a device thread reads from blockIdx, threadIdx, blockDim and gridDim.
struct HostThread {
  HostDim3 block_idx;
  HostDim3 thread_idx;
  HostDim3 block_dim;
  HostDim3 grid_dim;
};

// Calls body(const HostThread&) once for every (block, thread) of the launch
// grid x block. Dim is any type with x, y, z members (HostDim3, or CUDA's
// dim3 where it is available).
template <typename GridDim, typename BlockDim, typename Body>
void LaunchOnHost(const GridDim& grid, const BlockDim& block, Body&& body) {
  HostThread t;
  t.grid_dim = {static_cast<uint32_t>(grid.x), static_cast<uint32_t>(grid.y),
                static_cast<uint32_t>(grid.z)};
  t.block_dim = {static_cast<uint32_t>(block.x), static_cast<uint32_t>(block.y),
                 static_cast<uint32_t>(block.z)};
  for (uint32_t bz = 0; bz < t.grid_dim.z; ++bz)
    for (uint32_t by = 0; by < t.grid_dim.y; ++by)
      for (uint32_t bx = 0; bx < t.grid_dim.x; ++bx) {
        t.block_idx = {bx, by, bz};
        for (uint32_t tz = 0; tz < t.block_dim.z; ++tz)
          for (uint32_t ty = 0; ty < t.block_dim.y; ++ty)
            for (uint32_t tx = 0; tx < t.block_dim.x; ++tx) {
              t.thread_idx = {tx, ty, tz};
              body(static_cast<const HostThread&>(t));
            }
      }
}

}  // namespace tierserve::cpu

#endif  // TIERSERVE_KERNELS_CPU_GRID_LAUNCHER_H_
