// The CUDA launch functions of bnb_kernels.h on a real device, against the CPU
// kernels (and, for the GEMV, against its own bodies run on the host). Every
// test reports SKIPPED when cudaGetDeviceCount finds no device: it never
// passes without a GPU. ctest label: gpu.
//
// Exact: dequantize, activation quantization, the int8 pipeline (cuBLASLt's
// int32 GEMM is exact), and the GEMV against its host run (the shuffle
// butterfly is BnbWarpXorSum; fmaf on both sides).
// Bounded: the cuBLASLt fp16/bf16 GEMM, whose order of summation is its own.
// Its terms are products of 16-bit values, exact in fp32, so any order of
// summation is within gamma_{K-1} * sum_k |t_k| of the exact sum; tensor cores
// do not promise IEEE round-to-nearest on their internal adds, so the test
// allows 2 * gamma_K * A, plus the CPU kernel's own gamma_{ceil(K/8)+ceil(K/2048)+5} * A.
#include "kernels/cuda/bnb_kernels.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/common/half.h"
#include "kernels/cpu/bnb_quantize.h"
#include "kernels/cpu/fourbit_matmul.h"
#include "kernels/cpu/grid_launcher.h"
#include "kernels/cpu/int8_matmul.h"

namespace tierserve::cuda {
namespace {

constexpr double kU = 1.0 / (1 << 24);
double Gamma(double n) { return n * kU / (1 - n * kU); }

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// One device allocation, freed on destruction.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t n) : n_(n) {
    if (n > 0 && cudaMalloc(&p_, n * sizeof(T)) != cudaSuccess) p_ = nullptr;
  }
  explicit DeviceArray(const std::vector<T>& v) : DeviceArray(v.size()) {
    if (p_ != nullptr) cudaMemcpy(p_, v.data(), n_ * sizeof(T), cudaMemcpyHostToDevice);
  }
  ~DeviceArray() {
    if (p_ != nullptr) cudaFree(p_);
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  T* get() const { return p_; }
  std::vector<T> Download() const {
    std::vector<T> v(n_);
    if (n_ > 0) cudaMemcpy(v.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost);
    return v;
  }

 private:
  size_t n_ = 0;
  T* p_ = nullptr;
};

class BnbKernelsGpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
      GTEST_SKIP() << "no CUDA device";
    }
    ASSERT_EQ(BlasLtContext::Create(32 << 20, &ctx_), cudaSuccess);
  }
  std::unique_ptr<BlasLtContext> ctx_;
};

// A 4-bit weight from the CPU quantizer, on the host and on the device.
struct FourBit {
  int64_t N, K, bs;
  bool nested;
  std::vector<uint8_t> packed, qabsmax;
  std::vector<float> code, absmax, absmax2, code2;
  float offset = 0.0f;
  std::unique_ptr<DeviceArray<uint8_t>> d_packed, d_qabsmax;
  std::unique_ptr<DeviceArray<float>> d_code, d_absmax, d_absmax2, d_code2;

  FourBit(int64_t n_rows, int64_t k_cols, int64_t blocksize, bool nest, unsigned seed)
      : N(n_rows), K(k_cols), bs(blocksize), nested(nest) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 0.5f);
    std::vector<float> dense(N * K);
    for (float& v : dense) v = normal(rng);
    const int64_t nblocks = cpu::FourBitBlockCount(N * K, bs);
    packed.assign((N * K + 1) / 2, 0);
    absmax.resize(nblocks);
    cpu::Quantize4bit(dense.data(), N * K, bs, cpu::FourBitType::kNf4, packed.data(), absmax.data());
    code.assign(cpu::FourBitCode(cpu::FourBitType::kNf4), cpu::FourBitCode(cpu::FourBitType::kNf4) + 16);
    if (nested) {
      code2.resize(256);
      cpu::MakeDynamicCode(code2.data());
      qabsmax.resize(nblocks);
      absmax2.resize(cpu::FourBitBlockCount(nblocks, 256));
      cpu::DoubleQuantizeAbsmax(absmax.data(), nblocks, code2.data(), qabsmax.data(), absmax2.data(),
                                &offset);
    }
    d_packed = std::make_unique<DeviceArray<uint8_t>>(packed);
    d_code = std::make_unique<DeviceArray<float>>(code);
    d_absmax = std::make_unique<DeviceArray<float>>(absmax);
    d_qabsmax = std::make_unique<DeviceArray<uint8_t>>(qabsmax);
    d_absmax2 = std::make_unique<DeviceArray<float>>(absmax2);
    d_code2 = std::make_unique<DeviceArray<float>>(code2);
  }
  // Device pointers (device = true) or host pointers.
  Bnb4bitView View(bool device) const {
    Bnb4bitView v;
    v.rows = N;
    v.cols = K;
    v.blocksize = bs;
    v.packed = device ? d_packed->get() : packed.data();
    v.code = device ? d_code->get() : code.data();
    if (nested) {
      v.qabsmax = device ? d_qabsmax->get() : qabsmax.data();
      v.absmax2 = device ? d_absmax2->get() : absmax2.data();
      v.code2 = device ? d_code2->get() : code2.data();
      v.offset = offset;
    } else {
      v.absmax = device ? d_absmax->get() : absmax.data();
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
      v.code2 = code2.data();
      v.offset = offset;
    } else {
      v.absmax = absmax.data();
    }
    return v;
  }
};

TEST_F(BnbKernelsGpuTest, Dequantize4bitIsCpuBitForBit) {
  for (bool nested : {false, true}) {
    const FourBit w(7, 45, 64, nested, 3);
    const int64_t n = w.N * w.K;
    std::vector<float> ref(n);
    const cpu::FourBitWeight cw = w.CpuView();
    for (int64_t r = 0; r < w.N; ++r) cpu::FourBitRowF32(cw, r, ref.data() + r * w.K);
    DeviceArray<float> out32(n);
    DeviceArray<uint16_t> out16(n);
    ASSERT_EQ(Dequantize4bit(w.View(true), BnbRound::kFp32, out32.get(), nullptr), cudaSuccess);
    ASSERT_EQ(Dequantize4bit(w.View(true), BnbRound::kFp16, out16.get(), nullptr), cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<float> got32 = out32.Download();
    const std::vector<uint16_t> got16 = out16.Download();
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(Bits(got32[i]), Bits(ref[i])) << i;
      ASSERT_EQ(got16[i], F32ToF16(ref[i])) << i;
    }
  }
}

TEST_F(BnbKernelsGpuTest, GemvIsItsHostRunBitForBit) {
  const FourBit w(37, 1001, 64, true, 4);
  constexpr int64_t M = 2;
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(M * w.K);
  for (float& v : x) v = normal(rng);
  DeviceArray<float> dx(x);
  DeviceArray<float> dy(M * w.N);
  ASSERT_EQ(Bnb4bitGemv(w.View(true), dx.get(), w.K, dy.get(), w.N, M, BnbRound::kFp16, nullptr),
            cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<float> got = dy.Download();
  // The bodies on the host, with the launch function's geometry.
  Bnb4bitGemvArgs a;
  a.w = w.View(false);
  a.x = x.data();
  a.ldx = w.K;
  std::vector<float> lanes(M * w.N * kBnbWarp, 0.0f);
  cpu::LaunchOnHost(cpu::HostDim3{static_cast<uint32_t>((w.N + 7) / 8), M, 1},
                    cpu::HostDim3{256, 1, 1}, [&](const cpu::HostThread& t) {
                      const int64_t n = Bnb4bitGemvRow(t.block_idx.x, t.thread_idx.x, 256);
                      const float p = Bnb4bitGemvLanePartial<BnbRound::kFp16>(
                          t.block_idx.x, t.block_idx.y, t.thread_idx.x, 256, a);
                      if (n < w.N) lanes[(t.block_idx.y * w.N + n) * kBnbWarp + t.thread_idx.x % kBnbWarp] = p;
                    });
  for (int64_t i = 0; i < M * w.N; ++i) {
    EXPECT_EQ(Bits(got[i]), Bits(BnbWarpXorSum(&lanes[i * kBnbWarp]))) << i;
  }
}

TEST_F(BnbKernelsGpuTest, Int8MatMulIsCpuBitForBit) {
  constexpr int64_t M = 6, N = 40, K = 300;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.5f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::vector<float> x(M * K), wf(N * K);
  for (float& v : x) v = normal(rng) * (unit(rng) < 0.03f ? 8.0f : 1.0f);
  for (float& v : wf) v = normal(rng) * 0.1f;
  std::vector<int8_t> cb(N * K);
  std::vector<float> scb(N);
  cpu::QuantizeInt8Rows(wf.data(), N, K, cb.data(), scb.data());
  std::vector<int32_t> row_sum(N);
  cpu::Int8RowSums(cb.data(), N, K, row_sum.data());
  const cpu::Int8WeightAux aux{row_sum.data()};
  for (float threshold : {0.0f, 6.0f}) {
    cpu::Int8Activations ca;
    ca.Resize(M, K);
    cpu::QuantizeActivationsInt8(x.data(), M, K, threshold, &ca);
    std::vector<float> ref(M * N);
    cpu::Int8MatMul(ca, cb.data(), scb.data(), aux, ref.data(), N, M, K, 0, N);

    DeviceArray<float> dx(x);
    DeviceArray<int8_t> dq(M * K), dcb(cb);
    DeviceArray<float> dsca(M), dox(M * K), dscb(scb), dy(M * N);
    DeviceArray<int32_t> dcount(M), dcol(M * K), dc(M * N);
    Int8ActivationsView av;
    av.q = dq.get();
    av.sca = dsca.get();
    av.outlier_count = dcount.get();
    av.outlier_col = dcol.get();
    av.outlier_x = dox.get();
    av.outlier_capacity = static_cast<int32_t>(K);
    ASSERT_EQ(QuantizeActivationsInt8(dx.get(), K, M, K, threshold, av, nullptr), cudaSuccess);
    ASSERT_EQ(Int8MatMul(*ctx_, av, dcb.get(), dscb.get(), dc.get(), dy.get(), N, M, N, K, nullptr),
              cudaSuccess)
        << "cuBLASLt status " << static_cast<int>(ctx_->last_status());
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<int8_t> q = dq.Download();
    const std::vector<float> y = dy.Download();
    for (int64_t t = 0; t < M; ++t) {
      for (int64_t k = 0; k < K; ++k) ASSERT_EQ(q[t * K + k], ca.q[t * ca.stride + k]) << t << "," << k;
      for (int64_t n = 0; n < N; ++n) ASSERT_EQ(Bits(y[t * N + n]), Bits(ref[t * N + n])) << t << "," << n;
    }
  }
}

TEST_F(BnbKernelsGpuTest, Int8GemmRejectsShapesOffTheRecipe) {
  DeviceArray<int8_t> a(64), b(64);
  DeviceArray<int32_t> c(64);
  EXPECT_EQ(Int8GemmI32(*ctx_, a.get(), b.get(), c.get(), 2, 6, 8, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(Int8GemmI32(*ctx_, a.get(), b.get(), c.get(), 2, 8, 6, nullptr), cudaErrorInvalidValue);
}

TEST_F(BnbKernelsGpuTest, PrefillIsCpuWithinBound) {
  for (BnbRound cd : {BnbRound::kFp16, BnbRound::kBf16}) {
    const FourBit w(24, 576, 64, false, 6);
    constexpr int64_t M = 5;
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(M * w.K);
    for (float& v : x) v = normal(rng);
    DeviceArray<float> dx(x), dy(M * w.N);
    DeviceArray<uint16_t> xs(M * w.K), ws(w.N * w.K);
    ASSERT_EQ(Bnb4bitMatMulPrefill(*ctx_, w.View(true), cd, dx.get(), M, xs.get(), ws.get(), dy.get(),
                                   w.N, nullptr),
              cudaSuccess)
        << "cuBLASLt status " << static_cast<int>(ctx_->last_status());
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<float> got = dy.Download();
    const cpu::ComputeDType ccd = cd == BnbRound::kFp16 ? cpu::ComputeDType::kFp16 : cpu::ComputeDType::kBf16;
    std::vector<float> ref(M * w.N);
    cpu::FourBitMatMul(w.CpuView(), x.data(), w.K, ref.data(), w.N, M, 0, w.N, ccd);
    const cpu::FourBitWeight cw = w.CpuView();
    std::vector<float> row(w.K);
    const double bound = 2 * Gamma(static_cast<double>(w.K)) +
                         Gamma(static_cast<double>((w.K + 7) / 8 + (w.K + 2047) / 2048 + 5));
    for (int64_t n = 0; n < w.N; ++n) {
      cpu::FourBitRowF32(cw, n, row.data());
      for (int64_t m = 0; m < M; ++m) {
        double a = 0.0;
        for (int64_t k = 0; k < w.K; ++k) {
          const float xr = cd == BnbRound::kFp16 ? F16ToF32(F32ToF16(x[m * w.K + k]))
                                                 : BF16ToF32(F32ToBF16(x[m * w.K + k]));
          const float wr = cd == BnbRound::kFp16 ? F16ToF32(F32ToF16(row[k])) : BF16ToF32(F32ToBF16(row[k]));
          a += std::fabs(static_cast<double>(xr) * wr);
        }
        EXPECT_LE(std::fabs(static_cast<double>(got[m * w.N + n]) - ref[m * w.N + n]), bound * a)
            << "m " << m << " n " << n;
      }
    }
  }
}

}  // namespace
}  // namespace tierserve::cuda
