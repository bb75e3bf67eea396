#include "kernels/cpu/fourbit_matmul.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/common/half.h"

namespace tierserve::cpu {
namespace {

constexpr double kU = 1.0 / (1 << 24);  // fp32 unit roundoff

double Gamma(double n) { return n * kU / (1 - n * kU); }

// bitsandbytes' tables (REFERENCE.md section 3).
constexpr float kNf4[16] = {-1.0f,
                            -0.6961928009986877f,
                            -0.5250730514526367f,
                            -0.39491748809814453f,
                            -0.28444138169288635f,
                            -0.18477343022823334f,
                            -0.09105003625154495f,
                            0.0f,
                            0.07958029955625534f,
                            0.16093020141124725f,
                            0.24611230194568634f,
                            0.33791524171829224f,
                            0.44070982933044434f,
                            0.5626170039176941f,
                            0.7229568362236023f,
                            1.0f};
constexpr float kFp4Raw[16] = {0,     0.0625f,  8,  12,  4,  6,  2,  3,
                               -0.0f, -0.0625f, -8, -12, -4, -6, -2, -3};

const char* CdName(ComputeDType cd) {
  switch (cd) {
    case ComputeDType::kFp32: return "fp32";
    case ComputeDType::kFp16: return "fp16";
    case ComputeDType::kBf16: return "bf16";
  }
  return "?";
}

float RoundRef(ComputeDType cd, float v) {
  switch (cd) {
    case ComputeDType::kFp16: return F16ToF32(F32ToF16(v));
    case ComputeDType::kBf16: return BF16ToF32(F32ToBF16(v));
    default: return v;
  }
}

// A random 4-bit weight and the buffers its view points into.
struct TestWeight {
  std::vector<uint8_t> packed;
  std::vector<float> code;
  std::vector<float> absmax;
  std::vector<uint8_t> qabsmax;
  std::vector<float> absmax2;
  std::vector<float> code2;
  FourBitWeight view;

  // The contract's element f, in fp32 exactly as specified.
  float Absmax(int64_t b) const {
    if (view.absmax != nullptr) return absmax[b];
    volatile float product = code2[qabsmax[b]] * absmax2[b / 256];  // no FMA: multiply, then add
    return product + view.offset;
  }
  int Nibble(int64_t f) const { return f % 2 == 0 ? packed[f / 2] >> 4 : packed[f / 2] & 0x0F; }
  float Element(int64_t f) const { return code[Nibble(f)] * Absmax(f / view.blocksize); }
};

TestWeight MakeWeight(int64_t N, int64_t K, int64_t bs, bool double_quant, bool nf4,
                      std::mt19937* rng) {
  TestWeight t;
  const int64_t nblocks = (N * K + bs - 1) / bs;
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> pos(0.05f, 2.0f);
  t.packed.resize((N * K + 1) / 2);
  for (uint8_t& b : t.packed) b = static_cast<uint8_t>(byte(*rng));
  for (int j = 0; j < 16; ++j) t.code.push_back(nf4 ? kNf4[j] : kFp4Raw[j] / 12.0f);
  t.view.packed = t.packed.data();
  t.view.rows = N;
  t.view.cols = K;
  t.view.blocksize = bs;
  t.view.code = t.code.data();
  if (double_quant) {
    std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
    for (int j = 0; j < 256; ++j) t.code2.push_back(unit(*rng));
    std::sort(t.code2.begin(), t.code2.end());
    t.qabsmax.resize(nblocks);
    for (uint8_t& q : t.qabsmax) q = static_cast<uint8_t>(byte(*rng));
    t.absmax2.resize((nblocks + 255) / 256);
    for (float& a : t.absmax2) a = pos(*rng);
    t.view.qabsmax = t.qabsmax.data();
    t.view.absmax2 = t.absmax2.data();
    t.view.code2 = t.code2.data();
    t.view.offset = 0.7f;
  } else {
    t.absmax.resize(nblocks);
    for (float& a : t.absmax) a = pos(*rng);
    t.view.absmax = t.absmax.data();
  }
  return t;
}

// The paths this CPU runs; the others are reported by SkipsPathsThisCpuLacks.
std::vector<CpuPath> SupportedPaths() {
  return SupportedCpuPaths({CpuPath::kPortable, CpuPath::kAvx2, CpuPath::kAvx512Vnni, CpuPath::kAvx512Bf16});
}

// (K, blocksize, M, double quant, compute dtype)
using Param = std::tuple<int64_t, int64_t, int64_t, bool, ComputeDType>;

class FourBitMatMulTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    std::tie(K_, bs_, M_, dq_, cd_) = GetParam();
    std::mt19937 rng(static_cast<unsigned>(K_ * 31 + bs_ * 7 + M_ * 3 + dq_));
    // FP4 for half the shapes, NF4 for the others.
    w_ = MakeWeight(N_, K_, bs_, dq_, (K_ + bs_) % 3 != 0, &rng);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    x_.resize(M_ * ldx_());
    for (float& v : x_) v = normal(rng);
  }
  int64_t ldx_() const { return K_ + 5; }
  std::vector<float> Run(CpuPath path, int64_t M, const float* x) const {
    std::vector<float> y(M * N_, -999.0f);
    FourBitMatMulOnPath(path, w_.view, x, ldx_(), y.data(), N_, M, 0, N_, cd_);
    return y;
  }

  static constexpr int64_t N_ = 37;
  int64_t K_, bs_, M_;
  bool dq_;
  ComputeDType cd_;
  TestWeight w_;
  std::vector<float> x_;
};

// Against double sums of the contract's terms round_cd(x) * round_cd(w), both
// factors computed exactly as the contract says, so only the order of the
// fp32 summation differs. Every path sums a row's terms into at most 16
// interleaved lanes: a term meets at most ceil(K/8) additions in its lane
// (two per 32 columns for vdpbf16ps), 4 in the horizontal reduction, one per
// 2048-column panel, and its own product rounding:
//   |y - ref| <= gamma_n * sum |terms|,  n = ceil(K/8) + ceil(K/2048) + 5.
TEST_P(FourBitMatMulTest, MatchesDoubleReference) {
  const double n_round = std::ceil(K_ / 8.0) + std::ceil(K_ / 2048.0) + 5;
  std::vector<double> ref(M_ * N_), mag(M_ * N_);
  for (int64_t n = 0; n < N_; ++n) {
    std::vector<double> wr(K_);
    for (int64_t k = 0; k < K_; ++k) wr[k] = RoundRef(cd_, w_.Element(n * K_ + k));
    for (int64_t m = 0; m < M_; ++m) {
      for (int64_t k = 0; k < K_; ++k) {
        const double t = static_cast<double>(RoundRef(cd_, x_[m * ldx_() + k])) * wr[k];
        ref[m * N_ + n] += t;
        mag[m * N_ + n] += std::fabs(t);
      }
    }
  }
  for (const CpuPath path : SupportedPaths()) {
    std::vector<float> y(M_ * N_, -999.0f);
    // Two calls over split row ranges, as threads make them.
    FourBitMatMulOnPath(path, w_.view, x_.data(), ldx_(), y.data(), N_, M_, 0, 16, cd_);
    FourBitMatMulOnPath(path, w_.view, x_.data(), ldx_(), y.data(), N_, M_, 16, N_, cd_);
    for (int64_t i = 0; i < M_ * N_; ++i) {
      ASSERT_NEAR(y[i], ref[i], Gamma(n_round) * mag[i])
          << CpuPathName(path) << " " << CdName(cd_) << " m=" << i / N_ << " n=" << i % N_;
    }
  }
}

// A row's bits do not depend on the other rows of the batch.
TEST_P(FourBitMatMulTest, RowsDoNotDependOnTheBatch) {
  for (const CpuPath path : SupportedPaths()) {
    const std::vector<float> all = Run(path, M_, x_.data());
    for (int64_t m = 0; m < M_; ++m) {
      const std::vector<float> one = Run(path, 1, x_.data() + m * ldx_());
      ASSERT_EQ(std::memcmp(one.data(), all.data() + m * N_, N_ * sizeof(float)), 0)
          << CpuPathName(path) << " row " << m;
    }
  }
}

// Where the block kernels do not apply, every path runs the same loop over
// the same rounded inputs: bit-identical to the portable path.
TEST_P(FourBitMatMulTest, BitIdenticalToPortableOnTheGeneralLoop) {
  if (FourBitUsesBlockKernels(w_.view)) return;  // other orders: held to the bound above
  const std::vector<float> base = Run(CpuPath::kPortable, M_, x_.data());
  for (const CpuPath path : SupportedPaths()) {
    const std::vector<float> y = Run(path, M_, x_.data());
    ASSERT_EQ(std::memcmp(y.data(), base.data(), y.size() * sizeof(float)), 0) << CpuPathName(path);
  }
}

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  const auto& [K, bs, M, dq, cd] = info.param;
  return "K" + std::to_string(K) + "_bs" + std::to_string(bs) + "_M" + std::to_string(M) +
         (dq ? "_dq_" : "_") + CdName(cd);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, FourBitMatMulTest,
    ::testing::Combine(  // Block kernels (64, 576 with bs 64; 1536 with both),
                         // blocks straddling rows (130, 576 with bs 128), odd
                         // K (33), several panels (2112; with fp32 and bs 64
                         // the second is half of an AVX-512 nibble group).
        ::testing::Values<int64_t>(64, 576, 130, 33, 2112, 1536), ::testing::Values<int64_t>(64, 128),
        ::testing::Values<int64_t>(1, 4, 33), ::testing::Bool(),
        ::testing::Values(ComputeDType::kFp32, ComputeDType::kFp16, ComputeDType::kBf16)),
    ParamName);

// The tests above run every path this CPU has; this one says which they skipped.
TEST(FourBitMatMulPathsTest, SkipsPathsThisCpuLacks) {
  if (!CpuPathSupported(CpuPath::kAvx2)) GTEST_SKIP() << "no AVX2: the avx2 path was not tested";
  if (!CpuPathSupported(CpuPath::kAvx512Vnni)) {
    GTEST_SKIP()
        << "no AVX-512 on this CPU: the avx512vnni and avx512bf16 paths were compiled but not run";
  }
  if (!CpuPathSupported(CpuPath::kAvx512Bf16)) {
    GTEST_SKIP() << "no AVX512_BF16 on this CPU: the avx512bf16 path was compiled but not run";
  }
}

TEST(FourBitRowTest, EqualsTheContractElementExactly) {
  std::mt19937 rng(3);
  for (const bool dq : {false, true}) {
    for (const int64_t K : {33, 576, 130}) {
      const int64_t N = 9;
      const TestWeight w = MakeWeight(N, K, 64, dq, true, &rng);
      std::vector<float> row(K);
      for (int64_t r = 0; r < N; ++r) {
        FourBitRowF32(w.view, r, row.data());
        for (int64_t k = 0; k < K; ++k) ASSERT_EQ(row[k], w.Element(r * K + k)) << r << "," << k;
      }
    }
  }
}

TEST(FourBitMatMulTest, BlockKernelShapes) {
  FourBitWeight w;
  w.cols = 576;
  w.blocksize = 64;
  EXPECT_TRUE(FourBitUsesBlockKernels(w));
  w.cols = 1536;
  EXPECT_TRUE(FourBitUsesBlockKernels(w));
  w.blocksize = 128;
  w.cols = 576;
  EXPECT_FALSE(FourBitUsesBlockKernels(w));
  w.cols = 33;
  w.blocksize = 64;
  EXPECT_FALSE(FourBitUsesBlockKernels(w));
}

}  // namespace
}  // namespace tierserve::cpu
