// The vector paths' attention of one tile, written once for every SIMD path
// of kernels/cpu/attention.cc. This file has no include guard on purpose:
// attention.cc includes it once per instruction set, inside that set's
// TIERSERVE_TARGET region and namespace, after defining there:
//
//   V, kWidth          a vector of kWidth floats (kAttentionTile % kWidth == 0)
//   kMaxHeads          query heads whose partial sums fit the registers at once
//   Zero(), Splat(f), Add/Sub/Mul(a, b), Fma(a, b, c)   (c + a * b, fused)
//   Load(const float*), Load(const uint16_t*)  (fp16 widened), Store(float*, v)
//   Max(a, b), AtLeast(x, lo) (a lane mask), ZeroUnless(mask, v),
//   RoundToInteger(v) (to nearest even), Pow2(n) (2^n of integral lanes)
//   Masked(s, sc, i0, len)   s * sc in lanes i0 + l < len, -inf elsewhere
//   TileMax(x), TileSum(p)   over the tile's kAttentionTile / kWidth vectors;
//                            TileSum adds as SumTile does
//
// so that the GCC target of the region applies to every function here (a
// template defined outside a region could not inline the region's
// intrinsics). Every path computes AttendTilePortable's operations lane by
// lane, so all give the same bits.

// ExpScalar's operations lane by lane (fused where it fuses).
V Exp(V x) {
  const auto keep = AtLeast(x, kExpMin);
  x = Max(x, Splat(kExpMin));
  const V n = RoundToInteger(Mul(x, Splat(kLog2e)));
  V r = Fma(n, Splat(-kLn2Hi), x);
  r = Fma(n, Splat(-kLn2Lo), r);
  V p = Splat(kP0);
  p = Fma(p, r, Splat(kP1));
  p = Fma(p, r, Splat(kP2));
  p = Fma(p, r, Splat(kP3));
  p = Fma(p, r, Splat(kP4));
  p = Fma(p, r, Splat(kP5));
  p = Add(Fma(p, Mul(r, r), r), Splat(1.0f));
  return ZeroUnless(keep, Mul(p, Pow2(n)));
}

// Lane groups of kWidth per tile.
constexpr int kGroups = static_cast<int>(kAttentionTile) / kWidth;

// The scores of H heads in lanes [kWidth * lg, kWidth * lg + kWidth) of the
// tile: four partial sums per lane over the dimensions d = j mod 4.
template <int H, typename T>
void Scores(const float* q, int64_t head_dim, const Tile<T>& tile, int lg, V s[H]) {
  V a[H][4];
  for (int h = 0; h < H; ++h)
    for (int j = 0; j < 4; ++j) a[h][j] = Zero();
  const T* kt = tile.kt + kWidth * lg;
  int64_t d = 0;
  for (; d + 4 <= head_dim; d += 4) {
    if (lg == 0) PrefetchKeys(tile, d);
    for (int j = 0; j < 4; ++j) {
      const V k = Load(kt + (d + j) * tile.ks);
      for (int h = 0; h < H; ++h) a[h][j] = Fma(Splat(q[h * head_dim + d + j]), k, a[h][j]);
    }
  }
  for (int j = 0; d < head_dim; ++d, ++j) {
    const V k = Load(kt + d * tile.ks);
    for (int h = 0; h < H; ++h) a[h][j] = Fma(Splat(q[h * head_dim + d]), k, a[h][j]);
  }
  for (int h = 0; h < H; ++h) s[h] = Add(Add(a[h][0], a[h][1]), Add(a[h][2], a[h][3]));
}

// Query heads' outputs, dimensions [d, d + kWidth * NV): o = o * c, then
// + p_i * v_i for each valid position i.
template <int H, int NV, typename T>
void AccumulateValues(const Tile<T>& tile, const float (&p)[H][kAttentionTile], const float c[H], int64_t d,
                      float* partials, int64_t partial_stride) {
  V acc[H][NV];
  for (int h = 0; h < H; ++h) {
    const float* o = partials + h * partial_stride + 2 + d;
    for (int j = 0; j < NV; ++j) acc[h][j] = Mul(Load(o + kWidth * j), Splat(c[h]));
  }
  for (int64_t i = 0; i < tile.len; ++i) {
    const T* vi = tile.v + i * tile.vs + d;
    if constexpr (NV == 4) PrefetchValues(tile, i, d, kWidth * NV);
    for (int j = 0; j < NV; ++j) {
      const V v = Load(vi + kWidth * j);
      for (int h = 0; h < H; ++h) acc[h][j] = Fma(Splat(p[h][i]), v, acc[h][j]);
    }
  }
  for (int h = 0; h < H; ++h)
    for (int j = 0; j < NV; ++j) Store(partials + h * partial_stride + 2 + d + kWidth * j, acc[h][j]);
}

// H query heads sharing one KV head, over one tile.
template <int H, typename T>
void AttendHeads(const float* q, int64_t head_dim, float scale, const Tile<T>& tile, float* partials,
                 int64_t partial_stride) {
  V s[kGroups][H];
  for (int lg = 0; lg < kGroups; ++lg) Scores<H>(q, head_dim, tile, lg, s[lg]);
  const V sc = Splat(scale);
  alignas(64) float p[H][kAttentionTile];
  float c[H];
  for (int h = 0; h < H; ++h) {
    float* part = partials + h * partial_stride;
    V x[kGroups];
    for (int lg = 0; lg < kGroups; ++lg) x[lg] = Masked(s[lg][h], sc, kWidth * lg, tile.len);
    const float m = std::fmax(part[0], TileMax(x));
    V pv[kGroups];
    for (int lg = 0; lg < kGroups; ++lg) {
      pv[lg] = Exp(Sub(x[lg], Splat(m)));
      Store(p[h] + kWidth * lg, pv[lg]);
    }
    c[h] = ExpScalar(part[0] - m);
    part[0] = m;
    part[1] = std::fma(part[1], c[h], TileSum(pv));
  }
  // Four vectors of dimensions per head at a time, then one, then scalars.
  int64_t d = 0;
  for (; d + 4 * kWidth <= head_dim; d += 4 * kWidth) AccumulateValues<H, 4>(tile, p, c, d, partials, partial_stride);
  for (; d + kWidth <= head_dim; d += kWidth) AccumulateValues<H, 1>(tile, p, c, d, partials, partial_stride);
  for (; d < head_dim; ++d) {
    for (int h = 0; h < H; ++h) {
      float* o = partials + h * partial_stride + 2 + d;
      float acc = *o * c[h];
      for (int64_t i = 0; i < tile.len; ++i) acc = std::fma(p[h][i], ToF32(tile.v[i * tile.vs + d]), acc);
      *o = acc;
    }
  }
}

// Every query head of one KV head over one tile, kMaxHeads at a time.
template <typename T>
void AttendTile(const float* q, int64_t heads, int64_t head_dim, float scale, const Tile<T>& tile, float* partials,
                int64_t partial_stride) {
  int64_t h = 0;
  for (; h + kMaxHeads <= heads; h += kMaxHeads)
    AttendHeads<kMaxHeads>(q + h * head_dim, head_dim, scale, tile, partials + h * partial_stride, partial_stride);
  const float* qh = q + h * head_dim;
  float* ph = partials + h * partial_stride;
  switch (heads - h) {
    case 3: if constexpr (kMaxHeads > 3) AttendHeads<3>(qh, head_dim, scale, tile, ph, partial_stride); break;
    case 2: AttendHeads<2>(qh, head_dim, scale, tile, ph, partial_stride); break;
    case 1: AttendHeads<1>(qh, head_dim, scale, tile, ph, partial_stride); break;
    default: break;
  }
}

void AttentionExpN(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + kWidth <= n; i += kWidth) Store(x + i, Exp(Load(x + i)));
  for (; i < n; ++i) x[i] = ExpScalar(x[i]);
}
