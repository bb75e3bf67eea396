#!/usr/bin/env python3
"""Writes tests/data/gguf_quants/goldens.safetensors: the `gguf` package's own
dequantization (and, where it has one, quantization) of GGUF blocks, for
kernels/cpu/dequantize_test.cc.

Run by hand (CI never runs it; it needs numpy and gguf, nothing else):

    /work/venv/bin/python tests/conformance/make_gguf_dequant_goldens.py

Deterministic: the inputs come from numpy's PCG64 with fixed seeds, gguf-py's
numpy code is deterministic, and the file is written here with sorted keys, so
a rerun with the same versions gives the same bytes. Every expected float is
computed by gguf.quants.dequantize and every quantized byte by
gguf.quants.quantize; nothing here re-implements the formats' arithmetic.
The raw blocks are only *built* here (bytes from a seeded RNG, with the fp16
scale fields overwritten by chosen finite values), which needs no knowledge of
the arithmetic, only of where each block keeps its fp16 fields.

Types: every type DequantizeRowF32 accepts — F32, F16, BF16, Q8_0, Q4_0, Q4_1,
Q5_0, Q5_1, Q4_K, Q6_K. (tierserve has no Q5_K dequantizer, so Q5_K is not
here.) gguf 0.19.0 can quantize F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0 and
Q5_1 in numpy; the K-quants it can only dequantize.

Tensors, for type T (GGML name) and case C:
  T.C.blocks     U8  [n_blocks, type_size]   raw little-endian blocks
  T.C.values     F32 [n_blocks * block_size] gguf.quants.dequantize(blocks)
and for the `quantize` case of a type gguf can quantize:
  T.quantize.input  F32 [n]                  the fp32 input
  T.quantize.blocks                          gguf.quants.quantize(input)
  T.quantize.values                          gguf.quants.dequantize(blocks)
The __metadata__ holds the versions and `cases`: a JSON object from type to its
list of case names, so a reader can tell a missing case from a missing type.
"""

import importlib.metadata
import json
import os
import platform
import struct
import sys

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT
from gguf.constants import GGML_QUANT_SIZES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(ROOT, "tests", "data", "gguf_quants")

# Byte offsets of each block's fp16 scale fields, and whether each may carry a
# sign: "d" fields are scales, "m" fields are mins/offsets (both signed fp16).
HALF_FIELDS = {
    QT.Q8_0: [0],
    QT.Q4_0: [0],
    QT.Q4_1: [0, 2],
    QT.Q5_0: [0],
    QT.Q5_1: [0, 2],
    QT.Q4_K: [0, 2],
    QT.Q6_K: [208],
}
BLOCK_TYPES = list(HALF_FIELDS)
QUANTIZABLE = [QT.Q8_0, QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1]

HALF_MAX = 0x7BFF        # 65504
HALF_MIN_SUB = 0x0001    # 2^-24
HALF_MAX_SUB = 0x03FF    # just under 2^-14
HALF_MIN_NORMAL = 0x0400


def sizes(qt):
    return GGML_QUANT_SIZES[qt]


def put_half(blocks, offset, bits):
    """Writes fp16 bit patterns `bits` (one per block, or a scalar) at `offset`."""
    bits = np.broadcast_to(np.asarray(bits, dtype=np.uint16), (blocks.shape[0],))
    blocks[:, offset:offset + 2] = bits.astype("<u2").view(np.uint8).reshape(-1, 2)


def moderate_halves(rng, n):
    """Random finite fp16 bit patterns of either sign with magnitudes in
    [2^-10, 2^6): every mantissa bit is exercised and outputs stay finite."""
    sign = rng.integers(0, 2, n, dtype=np.uint16) << 15
    exp = rng.integers(15 - 10, 15 + 6, n, dtype=np.uint16) << 10
    mant = rng.integers(0, 1024, n, dtype=np.uint16)
    return sign | exp | mant


def random_blocks(rng, qt, n):
    _, type_size = sizes(qt)
    b = rng.integers(0, 256, (n, type_size), dtype=np.uint8)
    for off in HALF_FIELDS[qt]:
        put_half(b, off, moderate_halves(rng, n))
    return b


def alternating_extremes(qt, n):
    """Blocks whose bytes cycle through 0x0F, 0xF0, 0xFF, 0x00, 0x80, 0x7F
    (rotated by one per block), so each 4-bit field sees its smallest and
    largest code and each signed byte (Q8_0's quants, Q6_K's scales) sees
    -128, 127, -1 and 0. The fp16 fields are overwritten by the caller."""
    _, type_size = sizes(qt)
    pattern = np.array([0x0F, 0xF0, 0xFF, 0x00, 0x80, 0x7F], dtype=np.uint8)
    b = np.resize(pattern, (n, type_size)).copy()
    for i in range(n):
        b[i] = np.roll(b[i], i)
    return b


def block_cases(qt, rng):
    """The awkward inputs, as {case: raw blocks [n, type_size]}."""
    _, type_size = sizes(qt)
    fields = HALF_FIELDS[qt]
    cases = {}

    cases["zeros"] = np.zeros((2, type_size), dtype=np.uint8)

    # The largest finite fp16 in every scale field, with both signs, over quants
    # at their extremes: the outputs reach their largest finite magnitudes.
    b = alternating_extremes(qt, 4)
    for off in fields:
        put_half(b, off, [HALF_MAX, HALF_MAX | 0x8000, HALF_MAX, HALF_MAX | 0x8000])
    if len(fields) == 2:  # the min/offset field with the opposite sign pattern too
        put_half(b, fields[1], [HALF_MAX | 0x8000, HALF_MAX, HALF_MAX, HALF_MAX | 0x8000])
    cases["max_magnitude"] = b

    # Negative scales (and mins), random quants.
    b = random_blocks(rng, qt, 3)
    for off in fields:
        put_half(b, off, moderate_halves(rng, 3) | 0x8000)
    cases["negative_scales"] = b

    # Subnormal and smallest-normal fp16 scales: the fp16 decode of the scale
    # must handle subnormals, and the products land in fp32's normal range.
    b = random_blocks(rng, qt, 4)
    for off in fields:
        put_half(b, off, [HALF_MIN_SUB, HALF_MAX_SUB | 0x8000, HALF_MIN_NORMAL, 0x0155])
    cases["subnormal_scales"] = b

    # Signed zero scales: 0 * q gives +-0 depending on the signs, which a bit
    # comparison sees.
    b = random_blocks(rng, qt, 2)
    for off in fields:
        put_half(b, off, [0x0000, 0x8000])
    cases["signed_zero_scales"] = b

    if qt == QT.Q4_K:
        # Block i sets only scale byte i (of 12) to 0xFF, so each byte's share of
        # the packed 6-bit scales and mins (and their borrowed high bits) shows
        # alone. d and dmin are 1 and 1/4 so the outputs are plain integers.
        b = random_blocks(rng, qt, 12)
        put_half(b, 0, 0x3C00)
        put_half(b, 2, 0x3400)
        b[:, 4:16] = 0
        for i in range(12):
            b[i, 4 + i] = 0xFF
        cases["scale_bytes_one_hot"] = b
    if qt == QT.Q6_K:
        # Block i sets scale 2i to 127 and scale 2i+1 to -128, the rest 0: each
        # of the 16 int8 scales, at both extremes, applies to its 16 elements only.
        b = random_blocks(rng, qt, 8)
        put_half(b, 208, 0x3C00)
        b[:, 192:208] = 0
        for i in range(8):
            b[i, 192 + 2 * i] = 127
            b[i, 192 + 2 * i + 1] = 0x80
        cases["scales_one_hot"] = b

    # Random bytes with moderate random scales: the bulk of the coverage.
    cases["random"] = random_blocks(rng, qt, 16 if sizes(qt)[0] == 32 else 6)
    return cases


def quantize_input():
    """An fp32 vector of 12 blocks of 32, each block awkward in its own way for
    the quantizers' scale choice and rounding."""
    rng = np.random.default_rng(7)
    blocks = []
    blocks.append(rng.standard_normal(32))                          # plain
    blocks.append(np.zeros(32))                                      # all +0: d = 0
    blocks.append(np.full(32, 3.25))                                 # constant: Q4_1/Q5_1 d = 0
    blocks.append(rng.standard_normal(32) * 1e-6)                    # fp16 d is subnormal
    blocks.append(rng.standard_normal(32) * 3e3)                     # large, d still finite
    b = rng.standard_normal(32) * 0.1                                # one negative outlier
    b[13] = -100.0
    blocks.append(b)
    blocks.append(np.arange(32) - 16.0)                              # integer ramp, signed max -16
    blocks.append(np.arange(32) * 1.0)                               # ramp from 0, max positive
    # Q8_0 with amax 127 has d = 1: the halves are exact ties for its rounding.
    b = np.array([127, -127] + [s * (k + 0.5) for k in range(15) for s in (1, -1)])
    blocks.append(b)
    # Q4_0 with max -8 has d = 1 and adds 8.5: again exact ties after the shift.
    b = np.array([-8.0] + [(k % 16) - 8 + 0.5 * (k % 3 == 0) for k in range(31)])
    blocks.append(b)
    b = rng.uniform(-1, 1, 32)                                       # -0.0 and fp32 subnormals
    b[[1, 5, 9]] = -0.0
    b[[2, 6]] = [1e-40, -1e-42]
    blocks.append(b)
    blocks.append(rng.uniform(2.0, 2.5, 32))                         # all positive, narrow range
    return np.concatenate(blocks).astype(np.float32)


def fp_cases(qt):
    """F32, F16 and BF16 rows as raw bytes, with the special values."""
    rng = np.random.default_rng(11)
    if qt == QT.F16:
        # Signalling NaNs are left out: ggml's F16C path quiets them and numpy's
        # software path does not, so their fp32 bits have no single reference.
        special = np.array([0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3BFF, 0x3C00,
                            0x3C01, 0xC000, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7E00, 0xFE00,
                            0x7FFF, 0x7E01, 0x0155, 0x8200], dtype=np.uint16)
        bits = rng.integers(0, 1 << 16, 4096, dtype=np.uint16)
        quiet_or_not_nan = ((bits & 0x7C00) != 0x7C00) | ((bits & 0x03FF) == 0) | ((bits & 0x0200) != 0)
        bits = bits[quiet_or_not_nan][:2048]
        return {"special": special.view(np.uint8).reshape(-1, 2),
                "random": bits.view(np.uint8).reshape(-1, 2)}
    if qt == QT.BF16:
        special = np.array([0x0000, 0x8000, 0x0001, 0x807F, 0x0080, 0x3F80, 0xC2F7, 0x7F7F,
                            0xFF7F, 0x7F80, 0xFF80, 0x7FC0, 0xFFC1, 0x7F81], dtype=np.uint16)
        bits = rng.integers(0, 1 << 16, 2048, dtype=np.uint16)
        return {"special": special.view(np.uint8).reshape(-1, 2),
                "random": bits.view(np.uint8).reshape(-1, 2)}
    assert qt == QT.F32
    special = np.array([0x00000000, 0x80000000, 0x00000001, 0x007FFFFF, 0x3F800000, 0x7F7FFFFF,
                        0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0xFFFFFFFF],
                       dtype=np.uint32)
    bits = rng.integers(0, 1 << 32, 256, dtype=np.uint32)
    return {"special": special.view(np.uint8).reshape(-1, 4),
            "random": bits.view(np.uint8).reshape(-1, 4)}


def fp_quantize_input():
    """fp32 values for the F16/BF16 conversions: the quantizers' vector plus
    values that overflow, round to subnormals, and tie under round-to-even."""
    extra = np.array([65504.0, 65519.99, 65520.0, 1e6, -1e6, 6e-8, 2.9e-8, 3e-8, 1e-45, -0.0,
                      np.inf, -np.inf, np.nan,
                      struct.unpack("<f", struct.pack("<I", 0x3F801000))[0],  # f16 tie, to even (down)
                      struct.unpack("<f", struct.pack("<I", 0x3F803000))[0],  # f16 tie, to even (up)
                      struct.unpack("<f", struct.pack("<I", 0x3F808000))[0],  # bf16 tie, down
                      struct.unpack("<f", struct.pack("<I", 0x3F818000))[0],  # bf16 tie, up
                      struct.unpack("<f", struct.pack("<I", 0x7F7FFFFF))[0]],  # bf16 rounds to inf
                     dtype=np.float32)
    return np.concatenate([quantize_input(), extra]).astype(np.float32)


def dequant(blocks, qt):
    values = gguf.quants.dequantize(np.ascontiguousarray(blocks).reshape(-1), qt)
    return np.ascontiguousarray(values, dtype=np.float32).reshape(-1)


def write_safetensors(path, tensors, metadata):
    """safetensors with the header's keys sorted and the data in key order, so
    the bytes depend only on the contents."""
    dtypes = {np.dtype(np.uint8): "U8", np.dtype(np.float32): "F32"}
    header = {"__metadata__": metadata}
    offset = 0
    for name in sorted(tensors):
        a = tensors[name]
        header[name] = {"dtype": dtypes[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for name in sorted(tensors):
            f.write(np.ascontiguousarray(tensors[name]).tobytes())


def main():
    tensors = {}
    cases = {}

    def put(qt, case, blocks, values, inp=None):
        _, type_size = sizes(qt)
        blocks = np.ascontiguousarray(blocks, dtype=np.uint8).reshape(-1, type_size)
        values = np.ascontiguousarray(values, dtype=np.float32)
        assert values.size == blocks.shape[0] * sizes(qt)[0]
        tensors[f"{qt.name}.{case}.blocks"] = blocks
        tensors[f"{qt.name}.{case}.values"] = values
        if inp is not None:
            tensors[f"{qt.name}.{case}.input"] = np.ascontiguousarray(inp, dtype=np.float32)
        cases.setdefault(qt.name, []).append(case)

    for k, qt in enumerate(BLOCK_TYPES):
        rng = np.random.default_rng(1000 + k)
        for case, blocks in block_cases(qt, rng).items():
            values = dequant(blocks, qt)
            assert np.isfinite(values).all(), (qt.name, case)
            put(qt, case, blocks, values)
        if qt in QUANTIZABLE:
            x = quantize_input()
            q = gguf.quants.quantize(x, qt).view(np.uint8)
            put(qt, "quantize", q, dequant(q, qt), x)

    for qt in (QT.F32, QT.F16, QT.BF16):
        for case, blocks in fp_cases(qt).items():
            put(qt, case, blocks, dequant(blocks, qt))
        x = fp_quantize_input()
        with np.errstate(over="ignore"):  # 1e6 and FLT_MAX overflow F16 to inf, as intended
            q = np.ascontiguousarray(gguf.quants.quantize(x, qt)).view(np.uint8)
        put(qt, "quantize", q, dequant(q, qt), x)

    meta = {
        "gguf": importlib.metadata.version("gguf"),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "script": "tests/conformance/make_gguf_dequant_goldens.py",
        "cases": json.dumps(cases, sort_keys=True),
    }
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, "goldens.safetensors")
    write_safetensors(path, tensors, meta)
    os.chmod(path, 0o644)
    print(f"wrote {path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")
    print(json.dumps({k: v for k, v in meta.items() if k != "cases"}, indent=1))
    for t, cs in cases.items():
        print(f"  {t}: {', '.join(cs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
