// The CUDA kernel bodies of bnb_kernels.cuh, built by the host compiler and run
// through the grid launcher, against the CPU kernels. Needs no GPU and no
// CUDA headers.
//
// Bit-exact: dequantize (fp32/fp16/bf16), fp32 -> fp16/bf16, int8 activation
// quantization (q, SCA, outlier lists), and the whole int8 pipeline (the int32
// GEMM is exact, here a plain loop standing in for cuBLASLt).
// Bounded: the 4-bit GEMV sums in another order than the CPU kernel. Both sum
// the very same fp32 terms t_k = round_cd(x_k) * round_cd(w_k) (each product
// exact in double); the GEMV's lane 0 sums L = 8 floor(K/256) + min(8, K%256)
// terms with one rounding each (fmaf), then 5 butterfly adds, so
//   |y_gemv - S| <= gamma_{L+5} * A,   A = sum_k |t_k|, S = sum_k t_k
// (Higham, recursive summation). The CPU kernel's own bound is
// gamma_{ceil(K/8)+ceil(K/2048)+5} * A (fourbit_matmul.h), so
//   |y_gemv - y_cpu| <= (gamma_{L+5} + gamma_{ceil(K/8)+ceil(K/2048)+5}) * A.
// S and A are computed in double (relative error <= K * 2^-53, added to the bound).
//
// Not covered here: the __syncthreads between the quantizer's phases (run as
// three launches), the warp shuffles of the GEMV (BnbWarpXorSum stands in),
// the cuBLASLt GEMMs, and the launch plumbing: bnb_kernels_gpu_test.cc.
#include "kernels/cuda/bnb_kernels.cuh"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/common/half.h"
#include "kernels/cpu/bnb_quantize.h"
#include "kernels/cpu/fourbit_matmul.h"
#include "kernels/cpu/grid_launcher.h"
#include "kernels/cpu/int8_matmul.h"

namespace tierserve::cuda {
namespace {

using cpu::HostDim3;
using cpu::HostThread;
using cpu::LaunchOnHost;

constexpr double kU = 1.0 / (1 << 24);  // fp32 unit roundoff
double Gamma(double n) { return n * kU / (1 - n * kU); }

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

const char* RoundName(BnbRound r) {
  switch (r) {
    case BnbRound::kFp32: return "fp32";
    case BnbRound::kFp16: return "fp16";
    case BnbRound::kBf16: return "bf16";
  }
  return "?";
}

cpu::ComputeDType ToCpu(BnbRound r) {
  switch (r) {
    case BnbRound::kFp16: return cpu::ComputeDType::kFp16;
    case BnbRound::kBf16: return cpu::ComputeDType::kBf16;
    default: return cpu::ComputeDType::kFp32;
  }
}

float RoundRef(BnbRound r, float v) {
  switch (r) {
    case BnbRound::kFp16: return F16ToF32(F32ToF16(v));
    case BnbRound::kBf16: return BF16ToF32(F32ToBF16(v));
    default: return v;
  }
}

// ---------------------------------------------------------------------------
// A 4-bit weight made by the CPU quantizer (bitsandbytes' bytes), with both
// views over the same host buffers.
struct FourBit {
  int64_t N = 0, K = 0, bs = 0;
  std::vector<float> dense;  // the fp32 weight quantized
  std::vector<uint8_t> packed;
  std::vector<float> code;
  std::vector<float> absmax;
  std::vector<uint8_t> qabsmax;
  std::vector<float> absmax2;
  std::vector<float> code2;
  float offset = 0.0f;
  bool nested = false;

  Bnb4bitView View() const {
    Bnb4bitView v;
    v.packed = packed.data();
    v.rows = N;
    v.cols = K;
    v.blocksize = bs;
    v.code = code.data();
    if (nested) {
      v.qabsmax = qabsmax.data();
      v.absmax2 = absmax2.data();
      v.offset = offset;
      v.code2 = code2.data();
    } else {
      v.absmax = absmax.data();
    }
    return v;
  }
  cpu::FourBitWeight CpuView() const {
    cpu::FourBitWeight v;
    v.packed = packed.data();
    v.rows = N;
    v.cols = K;
    v.blocksize = bs;
    v.code = code.data();
    if (nested) {
      v.qabsmax = qabsmax.data();
      v.absmax2 = absmax2.data();
      v.offset = offset;
      v.code2 = code2.data();
    } else {
      v.absmax = absmax.data();
    }
    return v;
  }
};

FourBit MakeFourBit(int64_t N, int64_t K, int64_t bs, cpu::FourBitType type, bool nested,
                    unsigned seed) {
  FourBit w;
  w.N = N;
  w.K = K;
  w.bs = bs;
  w.nested = nested;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  w.dense.resize(N * K);
  for (float& v : w.dense) v = normal(rng);
  const int64_t n = N * K;
  const int64_t nblocks = cpu::FourBitBlockCount(n, bs);
  w.packed.assign((n + 1) / 2, 0);
  w.absmax.resize(nblocks);
  cpu::Quantize4bit(w.dense.data(), n, bs, type, w.packed.data(), w.absmax.data());
  const float* code = cpu::FourBitCode(type);
  w.code.assign(code, code + 16);
  if (nested) {
    w.code2.resize(256);
    cpu::MakeDynamicCode(w.code2.data());
    w.qabsmax.resize(nblocks);
    w.absmax2.resize(cpu::FourBitBlockCount(nblocks, 256));
    cpu::DoubleQuantizeAbsmax(w.absmax.data(), nblocks, w.code2.data(), w.qabsmax.data(),
                              w.absmax2.data(), &w.offset);
  }
  return w;
}

// cpu::Dequantize4bit(Nested): fp32 reference of every element.
std::vector<float> CpuDequant(const FourBit& w) {
  const int64_t n = w.N * w.K;
  std::vector<float> out(n);
  if (w.nested) {
    cpu::Dequantize4bitNested(w.packed.data(), n, w.bs, w.code.data(), w.qabsmax.data(),
                              w.code2.data(), w.absmax2.data(), w.offset, out.data());
  } else {
    cpu::Dequantize4bit(w.packed.data(), n, w.bs, w.code.data(), w.absmax.data(), out.data());
  }
  return out;
}

template <BnbRound R>
std::vector<BnbStorageT<R>> HostDequant(const FourBit& w, uint32_t threads) {
  const int64_t n = w.N * w.K;
  std::vector<BnbStorageT<R>> out(n);
  const Bnb4bitView v = w.View();
  const uint32_t grid = static_cast<uint32_t>(((n + 1) / 2 + threads - 1) / threads);
  LaunchOnHost(HostDim3{grid, 1, 1}, HostDim3{threads, 1, 1}, [&](const HostThread& t) {
    Dequantize4bitBody<R>(t.block_idx.x, t.thread_idx.x, t.block_dim.x, v, out.data());
  });
  return out;
}

// ((N, K, blocksize), fp4, nested)
using FourBitParam = std::tuple<std::tuple<int64_t, int64_t, int64_t>, bool, bool>;

std::string FourBitParamName(const ::testing::TestParamInfo<FourBitParam>& info) {
  const auto [shape, fp4, nested] = info.param;
  const auto [N, K, bs] = shape;
  return "N" + std::to_string(N) + "_K" + std::to_string(K) + "_bs" + std::to_string(bs) +
         (fp4 ? "_fp4" : "_nf4") + (nested ? "_nested" : "_plain");
}

// Odd K (rows not byte-aligned), blocks straddling rows (K % bs != 0), an odd
// element count, a single element, and SmolLM2's K = 576.
const auto kFourBitShapes = ::testing::Combine(
    ::testing::Values(std::make_tuple(int64_t{7}, int64_t{45}, int64_t{64}),
                      std::make_tuple(int64_t{5}, int64_t{33}, int64_t{32}),
                      std::make_tuple(int64_t{1}, int64_t{1}, int64_t{64}),
                      std::make_tuple(int64_t{3}, int64_t{257}, int64_t{128}),
                      std::make_tuple(int64_t{9}, int64_t{576}, int64_t{64})),
    ::testing::Bool(), ::testing::Bool());

class Dequantize4bitBodyTest : public ::testing::TestWithParam<FourBitParam> {
 protected:
  void SetUp() override {
    const auto [shape, fp4, nested] = GetParam();
    const auto [N, K, bs] = shape;
    w_ = MakeFourBit(N, K, bs, fp4 ? cpu::FourBitType::kFp4 : cpu::FourBitType::kNf4, nested,
                     static_cast<unsigned>(N * 1000 + K * 10 + bs + fp4 * 3 + nested));
  }
  FourBit w_;
};

TEST_P(Dequantize4bitBodyTest, Fp32IsCpuDequantizeBitForBit) {
  const std::vector<float> ref = CpuDequant(w_);
  for (uint32_t threads : {256u, 32u, 1u}) {
    const std::vector<float> got = HostDequant<BnbRound::kFp32>(w_, threads);
    for (size_t i = 0; i < ref.size(); ++i) {
      ASSERT_EQ(Bits(got[i]), Bits(ref[i])) << "element " << i << " threads " << threads;
    }
  }
}

TEST_P(Dequantize4bitBodyTest, HalfOutputsAreTheRoundedCpuValues) {
  const std::vector<float> ref = CpuDequant(w_);
  const std::vector<uint16_t> f16 = HostDequant<BnbRound::kFp16>(w_, 256);
  const std::vector<uint16_t> bf16 = HostDequant<BnbRound::kBf16>(w_, 64);
  for (size_t i = 0; i < ref.size(); ++i) {
    ASSERT_EQ(f16[i], F32ToF16(ref[i])) << "element " << i;
    ASSERT_EQ(bf16[i], F32ToBF16(ref[i])) << "element " << i;
  }
}

TEST_P(Dequantize4bitBodyTest, RowsMatchFourBitRowF32) {
  const std::vector<float> got = HostDequant<BnbRound::kFp32>(w_, 128);
  const cpu::FourBitWeight cw = w_.CpuView();
  std::vector<float> row(w_.K);
  for (int64_t r = 0; r < w_.N; ++r) {
    cpu::FourBitRowF32(cw, r, row.data());
    for (int64_t k = 0; k < w_.K; ++k) {
      ASSERT_EQ(Bits(got[r * w_.K + k]), Bits(row[k])) << "row " << r << " col " << k;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, Dequantize4bitBodyTest, kFourBitShapes, FourBitParamName);

TEST(ConvertF32BodyTest, RoundsToNearestEven) {
  std::vector<float> x = {0.0f, -0.0f, 1.0f, 65504.0f, 65520.0f, 1e-8f, -3.14159f, 1.00048828125f,
                          1.001953125f, 3.0e38f, BitsToF32(0x7FC00001u)};
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 100.0f);
  for (int i = 0; i < 500; ++i) x.push_back(normal(rng));
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint16_t> f16(n), bf16(n);
  LaunchOnHost(HostDim3{static_cast<uint32_t>((n + 63) / 64), 1, 1}, HostDim3{64, 1, 1},
               [&](const HostThread& t) {
                 ConvertF32Body<BnbRound::kFp16>(t.block_idx.x, t.thread_idx.x, t.block_dim.x,
                                                 x.data(), n, f16.data());
                 ConvertF32Body<BnbRound::kBf16>(t.block_idx.x, t.thread_idx.x, t.block_dim.x,
                                                 x.data(), n, bf16.data());
               });
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(f16[i], F32ToF16(x[i])) << i;
    EXPECT_EQ(bf16[i], F32ToBF16(x[i])) << i;
  }
}

// ---------------------------------------------------------------------------
// 4-bit GEMV.

// y [M, N] from the GEMV body: every lane's partial, then the butterfly.
template <BnbRound R>
std::vector<float> HostGemv(const FourBit& w, const std::vector<float>& x, int64_t ldx, int64_t M,
                            uint32_t threads) {
  Bnb4bitGemvArgs a;
  a.w = w.View();
  a.x = x.data();
  a.ldx = ldx;
  std::vector<float> y(M * w.N, -999.0f);
  std::vector<float> lanes(M * w.N * kBnbWarp, -999.0f);
  const uint32_t rows_per_block = threads / kBnbWarp;
  const uint32_t grid = static_cast<uint32_t>((w.N + rows_per_block - 1) / rows_per_block);
  LaunchOnHost(HostDim3{grid, static_cast<uint32_t>(M), 1}, HostDim3{threads, 1, 1},
               [&](const HostThread& t) {
                 const float p = Bnb4bitGemvLanePartial<R>(t.block_idx.x, t.block_idx.y,
                                                           t.thread_idx.x, t.block_dim.x, a);
                 const int64_t n = Bnb4bitGemvRow(t.block_idx.x, t.thread_idx.x, t.block_dim.x);
                 if (n < w.N) lanes[(t.block_idx.y * w.N + n) * kBnbWarp + t.thread_idx.x % kBnbWarp] = p;
               });
  for (int64_t i = 0; i < M * w.N; ++i) y[i] = BnbWarpXorSum(&lanes[i * kBnbWarp]);
  return y;
}

int64_t GemvLaneTerms(int64_t K) { return 8 * (K / 256) + std::min<int64_t>(8, K % 256); }

// (shape index, fp4, nested, compute dtype)
using GemvParam = std::tuple<std::tuple<int64_t, int64_t, int64_t>, bool, bool, BnbRound>;

std::string GemvParamName(const ::testing::TestParamInfo<GemvParam>& info) {
  const auto [shape, fp4, nested, cd] = info.param;
  return "N" + std::to_string(std::get<0>(shape)) + "_K" + std::to_string(std::get<1>(shape)) +
         "_bs" + std::to_string(std::get<2>(shape)) + (fp4 ? "_fp4" : "_nf4") +
         (nested ? "_nested_" : "_plain_") + RoundName(cd);
}

class Bnb4bitGemvBodyTest : public ::testing::TestWithParam<GemvParam> {};

TEST_P(Bnb4bitGemvBodyTest, WithinTheDerivedBoundOfExactAndCpu) {
  const auto [shape, fp4, nested, cd] = GetParam();
  const auto [N, K, bs] = shape;
  const FourBit w = MakeFourBit(N, K, bs, fp4 ? cpu::FourBitType::kFp4 : cpu::FourBitType::kNf4,
                                nested, static_cast<unsigned>(K * 7 + N + bs));
  constexpr int64_t M = 2;
  const int64_t ldx = K + 3;
  std::mt19937 rng(static_cast<unsigned>(K + 11));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(M * ldx);
  for (float& v : x) v = normal(rng);

  const std::vector<float> got = HostGemv<BnbRound::kFp32>(w, x, ldx, M, 256);
  std::vector<float> got_cd;
  switch (cd) {
    case BnbRound::kFp32: got_cd = got; break;
    case BnbRound::kFp16: got_cd = HostGemv<BnbRound::kFp16>(w, x, ldx, M, 256); break;
    case BnbRound::kBf16: got_cd = HostGemv<BnbRound::kBf16>(w, x, ldx, M, 64); break;
  }
  // The same launch with fewer warps per block gives the same bits: the order
  // is K's alone.
  const std::vector<float> narrow = cd == BnbRound::kFp32 ? HostGemv<BnbRound::kFp32>(w, x, ldx, M, 32)
                                                          : got_cd;
  std::vector<float> cpu_y(M * N, -999.0f);
  cpu::FourBitMatMul(w.CpuView(), x.data(), ldx, cpu_y.data(), N, M, 0, N, ToCpu(cd));

  const cpu::FourBitWeight cw = w.CpuView();
  std::vector<float> row(K);
  const double gemv_bound = Gamma(static_cast<double>(GemvLaneTerms(K) + 5));
  const double cpu_bound = Gamma(static_cast<double>((K + 7) / 8 + (K + 2047) / 2048 + 5));
  const double double_err = static_cast<double>(K) * std::ldexp(1.0, -53);
  for (int64_t n = 0; n < N; ++n) {
    cpu::FourBitRowF32(cw, n, row.data());
    for (int64_t m = 0; m < M; ++m) {
      double s = 0.0, a = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const double t = static_cast<double>(RoundRef(cd, x[m * ldx + k])) *
                         static_cast<double>(RoundRef(cd, row[k]));
        s += t;
        a += std::fabs(t);
      }
      const float y = got_cd[m * N + n];
      EXPECT_LE(std::fabs(y - s), (gemv_bound + double_err) * a) << "m " << m << " n " << n;
      EXPECT_LE(std::fabs(static_cast<double>(y) - cpu_y[m * N + n]), (gemv_bound + cpu_bound + double_err) * a)
          << "m " << m << " n " << n;
      if (cd == BnbRound::kFp32) {
        EXPECT_EQ(Bits(narrow[m * N + n]), Bits(y));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, Bnb4bitGemvBodyTest,
    ::testing::Combine(::testing::Values(std::make_tuple(int64_t{13}, int64_t{45}, int64_t{64}),
                                         std::make_tuple(int64_t{3}, int64_t{264}, int64_t{32}),
                                         std::make_tuple(int64_t{9}, int64_t{576}, int64_t{64}),
                                         std::make_tuple(int64_t{4}, int64_t{1001}, int64_t{128})),
                       ::testing::Bool(), ::testing::Bool(),
                       ::testing::Values(BnbRound::kFp32, BnbRound::kFp16, BnbRound::kBf16)),
    GemvParamName);

TEST(BnbWarpXorSumTest, IsTheButterfly) {
  float v[kBnbWarp];
  for (int i = 0; i < kBnbWarp; ++i) v[i] = static_cast<float>(1 << (i % 24)) * (i % 2 ? 1.0f : -1.0f);
  float ref[kBnbWarp];
  std::copy(v, v + kBnbWarp, ref);
  // off = 16: lanes i and i ^ 16 hold ref[i] + ref[i ^ 16]; and so on.
  for (int off = 16; off > 0; off /= 2) {
    float next[kBnbWarp];
    for (int i = 0; i < kBnbWarp; ++i) next[i] = ref[i] + ref[i ^ off];
    std::copy(next, next + kBnbWarp, ref);
  }
  EXPECT_EQ(Bits(BnbWarpXorSum(v)), Bits(ref[0]));
  for (int i = 0; i < kBnbWarp; ++i) EXPECT_EQ(Bits(v[i]), Bits(ref[0])) << i;
}

// ---------------------------------------------------------------------------
// LLM.int8().

struct HostInt8 {
  int64_t M = 0, K = 0;
  int32_t capacity = 0;
  std::vector<int8_t> q;
  std::vector<float> sca;
  std::vector<int32_t> count;
  std::vector<int32_t> col;
  std::vector<float> ox;
};

// The quantizer's three phases as three launches; the block's shared arrays
// are per row here.
HostInt8 HostQuantize(const std::vector<float>& x, int64_t ldx, int64_t M, int64_t K,
                      float threshold, int32_t capacity, uint32_t threads) {
  HostInt8 r;
  r.M = M;
  r.K = K;
  r.capacity = capacity;
  r.q.assign(M * K, 99);
  r.sca.assign(M, -1.0f);
  r.count.assign(M, -1);
  r.col.assign(M * capacity, -1);
  r.ox.assign(M * capacity, -1.0f);
  Int8QuantizeArgs a;
  a.x = x.data();
  a.ldx = ldx;
  a.K = K;
  a.threshold = threshold;
  a.q = r.q.data();
  a.ldq = K;
  a.sca = r.sca.data();
  a.outlier_count = r.count.data();
  a.outlier_col = r.col.data();
  a.outlier_x = r.ox.data();
  a.outlier_capacity = capacity;
  std::vector<float> part_max(M * threads, -1.0f);
  std::vector<int32_t> part_count(M * threads, -1);
  const HostDim3 grid{static_cast<uint32_t>(M), 1, 1};
  const HostDim3 block{threads, 1, 1};
  LaunchOnHost(grid, block, [&](const HostThread& t) {
    QuantizeInt8RowPhase1(t.block_idx.x, t.thread_idx.x, t.block_dim.x, a,
                          &part_max[t.block_idx.x * threads], &part_count[t.block_idx.x * threads]);
  });
  LaunchOnHost(grid, block, [&](const HostThread& t) {
    if (t.thread_idx.x == 0) {
      QuantizeInt8RowPhase2(t.block_idx.x, t.block_dim.x, a, &part_max[t.block_idx.x * threads],
                            &part_count[t.block_idx.x * threads]);
    }
  });
  LaunchOnHost(grid, block, [&](const HostThread& t) {
    QuantizeInt8RowPhase3(t.block_idx.x, t.thread_idx.x, t.block_dim.x, a,
                          &part_max[t.block_idx.x * threads], &part_count[t.block_idx.x * threads]);
  });
  return r;
}

// Rows that exercise the corners: random with outliers, all zero, all
// outliers, exact .5 ties after scaling, a single huge non-outlier.
std::vector<float> Int8Input(int64_t M, int64_t K, int64_t ldx, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.5f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::vector<float> x(M * ldx, 1e30f);  // padding must never be read
  for (int64_t t = 0; t < M; ++t) {
    float* r = &x[t * ldx];
    for (int64_t k = 0; k < K; ++k) {
      switch (t % 5) {
        case 0: r[k] = normal(rng) * (unit(rng) < 0.02f ? 8.0f : 1.0f); break;
        case 1: r[k] = 0.0f; break;
        case 2: r[k] = (k % 2 ? 7.0f : -9.5f); break;
        case 3: r[k] = k == 0 ? 127.0f : static_cast<float>(k % 254) * 0.5f - 63.0f; break;
        default: r[k] = k == K / 2 ? 5.99f : normal(rng) * 0.01f; break;
      }
    }
  }
  return x;
}

void ExpectSameAsCpu(const HostInt8& got, const cpu::Int8Activations& ref, int64_t K) {
  for (int64_t t = 0; t < got.M; ++t) {
    ASSERT_EQ(Bits(got.sca[t]), Bits(ref.scale[t])) << "row " << t;
    for (int64_t k = 0; k < K; ++k) {
      ASSERT_EQ(got.q[t * K + k], ref.q[t * ref.stride + k]) << "row " << t << " col " << k;
    }
    const int64_t ob = ref.outlier_begin[t];
    const int64_t count = ref.outlier_begin[t + 1] - ob;
    ASSERT_EQ(got.count[t], count) << "row " << t;
    for (int64_t e = 0; e < std::min<int64_t>(count, got.capacity); ++e) {
      ASSERT_EQ(got.col[t * got.capacity + e], ref.outlier_col[ob + e]) << "row " << t << " e " << e;
      ASSERT_EQ(Bits(got.ox[t * got.capacity + e]), Bits(ref.outlier_x[ob + e])) << "row " << t;
    }
  }
}

std::vector<cpu::CpuPath> SupportedPaths() {
  return cpu::SupportedCpuPaths({cpu::CpuPath::kPortable, cpu::CpuPath::kAvx2, cpu::CpuPath::kAvx512Vnni});
}

// (K, threshold, threads)
using Int8Param = std::tuple<int64_t, float, uint32_t>;

std::string Int8ParamName(const ::testing::TestParamInfo<Int8Param>& info) {
  const auto [K, thr, threads] = info.param;
  return "K" + std::to_string(K) + (thr > 0 ? "_thr6" : "_nothr") + "_t" + std::to_string(threads);
}

class QuantizeInt8BodyTest : public ::testing::TestWithParam<Int8Param> {};

TEST_P(QuantizeInt8BodyTest, IsCpuQuantizeActivationsInt8BitForBit) {
  const auto [K, threshold, threads] = GetParam();
  constexpr int64_t M = 10;
  const int64_t ldx = K + 2;
  const std::vector<float> x = Int8Input(M, K, ldx, static_cast<unsigned>(K * 3 + threads));
  // The CPU kernel reads rows K apart: give it a dense copy.
  std::vector<float> dense(M * K);
  for (int64_t t = 0; t < M; ++t) std::copy(&x[t * ldx], &x[t * ldx] + K, &dense[t * K]);
  const HostInt8 got = HostQuantize(x, ldx, M, K, threshold, static_cast<int32_t>(K), threads);
  for (cpu::CpuPath path : SupportedPaths()) {
    SCOPED_TRACE(cpu::CpuPathName(path));
    cpu::Int8Activations ref;
    ref.Resize(M, K);
    cpu::QuantizeActivationsInt8OnPath(path, dense.data(), M, K, threshold, &ref);
    ExpectSameAsCpu(got, ref, K);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, QuantizeInt8BodyTest,
                         ::testing::Combine(::testing::Values(int64_t{1}, int64_t{7}, int64_t{255},
                                                              int64_t{256}, int64_t{257}, int64_t{1000}),
                                            ::testing::Values(0.0f, 6.0f),
                                            ::testing::Values(256u, 32u)),
                         Int8ParamName);

// The int8 pipeline: host quantizer, an exact int32 product (what cuBLASLt
// computes), the host epilogue; against cpu::Int8MatMul on every path.
std::vector<float> HostInt8MatMul(const HostInt8& a, const std::vector<int8_t>& cb,
                                  const std::vector<float>& scb, int64_t N, uint32_t threads) {
  const int64_t M = a.M, K = a.K;
  std::vector<int32_t> c(M * N);
  for (int64_t t = 0; t < M; ++t) {
    for (int64_t n = 0; n < N; ++n) {
      int64_t s = 0;
      for (int64_t k = 0; k < K; ++k) s += int64_t{a.q[t * K + k]} * cb[n * K + k];
      c[t * N + n] = static_cast<int32_t>(s);
    }
  }
  const int64_t ldy = N + 1;
  std::vector<float> y(M * ldy, -999.0f);
  Int8EpilogueArgs e;
  e.c = c.data();
  e.ldc = N;
  e.sca = a.sca.data();
  e.outlier_count = a.count.data();
  e.outlier_col = a.col.data();
  e.outlier_x = a.ox.data();
  e.outlier_capacity = a.capacity;
  e.cb = cb.data();
  e.scb = scb.data();
  e.N = N;
  e.K = K;
  e.y = y.data();
  e.ldy = ldy;
  LaunchOnHost(HostDim3{static_cast<uint32_t>((N + threads - 1) / threads), static_cast<uint32_t>(M), 1},
               HostDim3{threads, 1, 1}, [&](const HostThread& t) {
                 Int8EpilogueBody(t.block_idx.x, t.block_idx.y, t.thread_idx.x, t.block_dim.x, e);
               });
  return y;
}

struct Int8Weight {
  std::vector<int8_t> cb;
  std::vector<float> scb;
  std::vector<int32_t> row_sum;
  cpu::Int8WeightAux aux;
};

Int8Weight MakeInt8Weight(int64_t N, int64_t K, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.2f);
  std::vector<float> w(N * K);
  for (float& v : w) v = normal(rng);
  Int8Weight iw;
  iw.cb.resize(N * K);
  iw.scb.resize(N);
  cpu::QuantizeInt8Rows(w.data(), N, K, iw.cb.data(), iw.scb.data());
  iw.row_sum.resize(N);
  cpu::Int8RowSums(iw.cb.data(), N, K, iw.row_sum.data());
  iw.aux.row_sum = iw.row_sum.data();
  return iw;
}

TEST(Int8PipelineBodyTest, IsCpuInt8MatMulBitForBit) {
  for (int64_t K : {int64_t{7}, int64_t{300}, int64_t{1000}}) {
    for (float threshold : {0.0f, 6.0f}) {
      SCOPED_TRACE("K " + std::to_string(K) + " threshold " + std::to_string(threshold));
      constexpr int64_t M = 10, N = 37;
      const std::vector<float> x = Int8Input(M, K, K, static_cast<unsigned>(K));
      const Int8Weight w = MakeInt8Weight(N, K, static_cast<unsigned>(K + 1));
      const HostInt8 a = HostQuantize(x, K, M, K, threshold, static_cast<int32_t>(K), 256);
      const std::vector<float> y = HostInt8MatMul(a, w.cb, w.scb, N, 32);
      for (cpu::CpuPath path : SupportedPaths()) {
        SCOPED_TRACE(cpu::CpuPathName(path));
        cpu::Int8Activations ca;
        ca.Resize(M, K);
        cpu::QuantizeActivationsInt8OnPath(path, x.data(), M, K, threshold, &ca);
        std::vector<float> ref(M * N, -999.0f);
        cpu::Int8MatMulOnPath(path, ca, w.cb.data(), w.scb.data(), w.aux, ref.data(), N, M, K, 0, N);
        for (int64_t t = 0; t < M; ++t) {
          for (int64_t n = 0; n < N; ++n) {
            ASSERT_EQ(Bits(y[t * (N + 1) + n]), Bits(ref[t * N + n])) << "t " << t << " n " << n;
          }
        }
      }
    }
  }
}

TEST(Int8PipelineBodyTest, OverflowedOutlierCapacityGivesNaNRows) {
  constexpr int64_t M = 10, K = 64, N = 8;
  constexpr int32_t kCapacity = 3;
  const std::vector<float> x = Int8Input(M, K, K, 17);
  const Int8Weight w = MakeInt8Weight(N, K, 18);
  const HostInt8 a = HostQuantize(x, K, M, K, 6.0f, kCapacity, 256);
  cpu::Int8Activations ca;
  ca.Resize(M, K);
  cpu::QuantizeActivationsInt8OnPath(cpu::CpuPath::kPortable, x.data(), M, K, 6.0f, &ca);
  ExpectSameAsCpu(a, ca, K);  // counts are true counts; the lists are prefixes
  std::vector<float> ref(M * N);
  cpu::Int8MatMulOnPath(cpu::CpuPath::kPortable, ca, w.cb.data(), w.scb.data(), w.aux, ref.data(),
                        N, M, K, 0, N);
  const std::vector<float> y = HostInt8MatMul(a, w.cb, w.scb, N, 256);
  int overflowed = 0;
  for (int64_t t = 0; t < M; ++t) {
    const bool over = a.count[t] > kCapacity;
    overflowed += over;
    for (int64_t n = 0; n < N; ++n) {
      if (over) {
        EXPECT_TRUE(std::isnan(y[t * (N + 1) + n])) << "t " << t;
      } else {
        EXPECT_EQ(Bits(y[t * (N + 1) + n]), Bits(ref[t * N + n])) << "t " << t;
      }
    }
  }
  EXPECT_GT(overflowed, 0);  // row 2 (all outliers) at least
}

}  // namespace
}  // namespace tierserve::cuda
