// TS_HD marks functions compiled for both the host and a CUDA device.
#ifndef TIERSERVE_KERNELS_COMMON_HOST_DEVICE_H_
#define TIERSERVE_KERNELS_COMMON_HOST_DEVICE_H_

#if defined(__CUDACC__)
#define TS_HD __host__ __device__ __forceinline__
#else
#define TS_HD inline
#endif

#endif  // TIERSERVE_KERNELS_COMMON_HOST_DEVICE_H_
