// bitsandbytes' LLM.int8() row quantization and its 4-bit (NF4/FP4) blockwise
// quantization with optional double quant, bit-exact with what bitsandbytes
// 0.50.2 computes on a CPU tensor (the formulas are in
// kernels/common/bnb_quant.h). They serve offline conversion of fp32 weights
// into bitsandbytes' checkpoint layout and tests; they are not tuned for speed.
//
// All functions are free functions over caller-owned buffers; none allocates.
// Element counts are int64_t; a "block count" is ceil(n / blocksize).
#ifndef TIERSERVE_KERNELS_CPU_BNB_QUANTIZE_H_
#define TIERSERVE_KERNELS_CPU_BNB_QUANTIZE_H_

#include <cstdint>

namespace tierserve::cpu {

enum class FourBitType { kNf4, kFp4 };

// The 16-entry code bitsandbytes stores as `quant_map` for `t`
// (get_4bit_type). FP4's index 8 is +0.0 there.
const float* FourBitCode(FourBitType t);

// ceil(n / blocksize). REQUIRES: n >= 0, blocksize > 0.
int64_t FourBitBlockCount(int64_t n, int64_t blocksize);

// w [rows, cols] row-major -> cb int8 [rows, cols], scb fp32 [rows].
// scb[r] = max |w[r, :]|, cb = round_half_even(w * ((1 / scb[r]) * 127)); a zero row
// gives scb 0 and cb 0. REQUIRES: finite w.
void QuantizeInt8Rows(const float* w, int64_t rows, int64_t cols, int8_t* cb, float* scb);

// w[r, c] = (cb[r, c] * scb[r]) * 0.007874016f (int8_vectorwise_dequant).
void DequantizeInt8Rows(const int8_t* cb, const float* scb, int64_t rows, int64_t cols, float* w);

// x[0..n) (the flattened tensor) -> packed[(n + 1) / 2], absmax[FourBitBlockCount(n, blocksize)].
// REQUIRES: finite x; blocksize > 0 (bitsandbytes allows 32..4096, powers of 2).
void Quantize4bit(const float* x, int64_t n, int64_t blocksize, FourBitType t, uint8_t* packed,
                  float* absmax);

// out[i] = code[nibble i] * absmax[i / blocksize], for i in [0, n).
// `code` is the checkpoint's quant_map (or FourBitCode(t)).
void Dequantize4bit(const uint8_t* packed, int64_t n, int64_t blocksize, const float* code,
                    const float* absmax, float* out);

// bitsandbytes' signed 8-bit dynamic map, create_dynamic_map(signed=True),
// bit-exact: the code double quant uses (`nested_quant_map` in checkpoints).
void MakeDynamicCode(float code[256]);

// Double quant of the 4-bit absmax vector: *offset = torch.mean(absmax) (in
// torch's summation order), then absmax - *offset is quantized in blocks of
// 256 with `code2` -> qabsmax[nblocks], absmax2[FourBitBlockCount(nblocks, 256)].
// REQUIRES: nblocks > 0; code2 ascending, 256 entries (MakeDynamicCode's).
void DoubleQuantizeAbsmax(const float* absmax, int64_t nblocks, const float* code2, uint8_t* qabsmax,
                          float* absmax2, float* offset);

// absmax[i] = code2[qabsmax[i]] * absmax2[i / 256] + offset (two roundings).
void RecoverAbsmax(const uint8_t* qabsmax, int64_t nblocks, const float* code2, const float* absmax2,
                   float offset, float* absmax);

// Dequantize4bit with double-quantized statistics; each block's absmax is
// recovered as in RecoverAbsmax.
void Dequantize4bitNested(const uint8_t* packed, int64_t n, int64_t blocksize, const float* code,
                          const uint8_t* qabsmax, const float* code2, const float* absmax2, float offset,
                          float* out);

// torch.sum(x) of a contiguous fp32 vector, in the order torch 2.15's CPU kernel
// (cascade_sum, AVX2 build: 8-lane vectors, 4-way ILP) adds the elements on
// one thread. bitsandbytes' offset is this sum divided by n. torch sums on one
// thread below n = 32768 (GRAIN_SIZE: 2M weights at blocksize 64); above that
// it splits the sum across its threads, so bitsandbytes' offset for a large
// matrix depends on torch.get_num_threads() at quantization time (observed:
// n = 40000 differs between 1 and 2 threads). This function gives the 1-thread
// value. Where torch dispatches its AVX-512 kernels (16 lanes), the order
// differs too.
float SumLikeTorch(const float* x, int64_t n);

}  // namespace tierserve::cpu

#endif  // TIERSERVE_KERNELS_CPU_BNB_QUANTIZE_H_
