#!/usr/bin/env python3
"""Writes tests/data/bnb/goldens.safetensors: bitsandbytes' own quantization of a
few awkward fp32 matrices on the CPU, for kernels/cpu/bnb_quantize_test.cc.

Run by hand (CI never runs it; it needs torch and bitsandbytes):

    /work/venv/bin/python tests/conformance/make_bnb_goldens.py

Deterministic: the matrices come from numpy's PCG64 with fixed seeds, and every
bitsandbytes call below is deterministic on the CPU. Everything is computed by
bitsandbytes' public functions; nothing here re-implements the format.

Per matrix `w<R>x<C>` (fp32 [R, C]) the file holds:
  w<R>x<C>                       fp32 [R, C]  the input
  .int8.CB / .int8.SCB           int8_vectorwise_quant(W): int8 [R, C], fp32 [R]
  .int8.dequant                  int8_vectorwise_dequant(CB, SCB): fp32 [R, C]
  .{nf4,fp4}.packed              quantize_4bit(W, 64, compress_statistics=False): uint8 [(R*C+1)//2]
  .{nf4,fp4}.absmax              fp32 [ceil(R*C/64)]
  .{nf4,fp4}.code                quant_state.code (the 16-entry quant_map), fp32 [16]
  .{nf4,fp4}.dequant             dequantize_4bit(packed, state): fp32 [R, C]
  .{nf4,fp4}dq.packed            quantize_4bit(..., compress_statistics=True): uint8
  .{nf4,fp4}dq.qabsmax           uint8 [ceil(R*C/64)]
  .{nf4,fp4}dq.absmax2           state2.absmax, fp32 [ceil(nblocks/256)]
  .{nf4,fp4}dq.offset            fp32 [1]
  .{nf4,fp4}dq.code2             state2.code, fp32 [256]
  .{nf4,fp4}dq.absmax_recovered  dequantize_blockwise(qabsmax, state2) + offset, fp32 [nblocks]
  .{nf4,fp4}dq.dequant           dequantize_4bit(packed, state): fp32 [R, C]
Generated vector (not stored; see generated_vector(), 9000 blocks of 64), NF4:
  gen.absmax, gen.dq.{qabsmax,absmax2,offset}
Lookup-table probe (not stored; see lut_vector(), 512 blocks of 64):
  lut.nf4dq.{qabsmax,absmax2,offset}
Global tensors:
  bnb.dynamic_map                create_dynamic_map(signed=True), fp32 [256]
  bnb.{nf4,fp4}.table_evencols   the table dequantize_4bit applies when the last dim is even
  bnb.{nf4,fp4}.table_oddcols    ... and when it is odd (bitsandbytes takes two code paths)
Linear layers on the activation X (fp32 [3, 100]) with W = w30x100:
  lin.x                          fp32 [3, 100]; X[1, 17] = 9.5 (> 6) and X[2, 3] = -7.25
  lin8.CB / lin8.SCB             Linear8bitLt's own weight state (quantized from W.half())
  lin8.t6.out / lin8.t0.out      Linear8bitLt(threshold 6.0 / 0.0, has_fp16_weights=False).eval()(X)
  lin4.{nf4,fp4}.out             Linear4bit(quant_type, compute_dtype=fp32) (compress_statistics=True)(X)
The __metadata__ records versions, the matrix list and the dtypes seen.
"""

import json
import os
import struct
import sys

import numpy as np
import torch

import bitsandbytes as bnb
import bitsandbytes.functional as F
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(ROOT, "tests", "data", "bnb")
BLOCKSIZE = 64


def f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def make_matrices():
    """Awkward shapes: rows/cols not multiples of 64, tails, zeros, outliers, ties."""
    mats = {}

    # 30x100: rows of several magnitudes; row 10 is all zero (so 4-bit block 16 and
    # int8 row 10 are all zero); 3000 elements = 46 full blocks + a 56-element tail.
    rng = np.random.default_rng(1)
    w = rng.standard_normal((30, 100)).astype(np.float32)
    scales = np.array([10.0 ** k for k in (-3, -2, -1, 0, 1, 2)], dtype=np.float32)
    w *= scales[np.arange(30) % 6][:, None]
    w[10, :] = 0.0
    mats["w30x100"] = f32(w)

    # 13x150: uniform values; 1950 elements = 30 full blocks + a 30-element tail,
    # and the tail is all zero, which exercises the tail's absmax clamp.
    rng = np.random.default_rng(2)
    w = rng.uniform(-0.5, 0.5, (13, 150)).astype(np.float32)
    w[-1, -30:] = 0.0
    mats["w13x150"] = f32(w)

    # 129x130: 16770 elements = 263 4-bit blocks, so double quant has 2 nested
    # blocks (256 + 7); column 5 holds large outliers (an LLM.int8() outlier feature).
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((129, 130)) * 0.02).astype(np.float32)
    w[:, 5] = np.where(rng.standard_normal(129) > 0, 40.0, -55.0).astype(np.float32) * (
        1.0 + rng.uniform(0, 1, 129).astype(np.float32))
    mats["w129x130"] = f32(w)

    # 5x7: 35 elements, a single partial block, odd length (the last byte is
    # padded), odd last dim (bitsandbytes dequantizes it on a different path).
    rng = np.random.default_rng(4)
    w = rng.laplace(0, 1.0, (5, 7)).astype(np.float32)
    mats["w5x7"] = f32(w)

    # 4x64: exact ties. Rows 0-2 have absmax 1, 1 and 2 (so x/absmax is exact) and hold
    # the fp32 midpoints between neighbouring NF4 and FP4 codes, which decide ties.
    # Row 3 has absmax 127 and values k + 0.5, which decide int8 rounding ties.
    nf4 = F.get_4bit_type("nf4", device="cpu").numpy()
    fp4 = np.sort(F.get_4bit_type("fp4", device="cpu").numpy())
    nf4_mid = f32((nf4[:-1] + nf4[1:]) / np.float32(2))
    fp4_mid = f32((fp4[:-1] + fp4[1:]) / np.float32(2))
    row0 = [1.0, 0.0, -0.0, 1e-30, -1e-30] + list(nf4_mid) + list(fp4_mid)
    row0 += list(-nf4_mid[:10]) + list(nf4) + list(fp4[6:9])
    row0 = f32(row0)
    assert row0.size == 64
    rng = np.random.default_rng(5)
    row1 = row0[rng.permutation(64)]
    row2 = f32(row0 * np.float32(2.0))
    row3 = f32([127.0] + [k + 0.5 for k in range(-31, 31)] + [-126.5])
    assert row3.size == 64
    mats["w4x64"] = f32(np.stack([row0, row1, row2, row3]))

    # 8x63: 7 full 4-bit blocks + a 56-element tail. Each block holds its absmax
    # and values within a few ulps of a code midpoint times it, chosen so that
    # x * (1 / absmax) and x / absmax land on different sides of the midpoint:
    # the goldens then show which of the two bitsandbytes computes, for full
    # blocks and for the tail.
    rng = np.random.default_rng(7)
    flat = np.zeros(8 * 63, dtype=np.float32)
    for start, length in [(64 * b, 64) for b in range(7)] + [(448, 56)]:
        am, xs = midpoint_discriminators(rng, length - 1)
        flat[start] = am
        flat[start + 1:start + 1 + len(xs)] = xs
    mats["w8x63"] = f32(flat.reshape(8, 63))

    # 4x50: each row holds its absmax s and values x whose int8 code differs
    # between x * fl(127 / s) and x * fl(fl(1 / s) * 127).
    rng = np.random.default_rng(8)
    w = np.zeros((4, 50), dtype=np.float32)
    for r in range(4):
        s_, xs = int8_discriminators(rng, 49)
        w[r, 0] = s_
        w[r, 1:1 + len(xs)] = xs
    mats["w4x50"] = f32(w)
    return mats


def ulp_neighbours(x, k):
    out = [np.float32(x)]
    up = dn = np.float32(x)
    for _ in range(k):
        up = np.nextafter(up, np.float32(np.inf))
        dn = np.nextafter(dn, np.float32(-np.inf))
        out += [up, dn]
    return out


def midpoint_discriminators(rng, count):
    """An absmax and up to `count` values near midpoint * absmax whose 4-bit bucket
    depends on reciprocal-multiply versus division (for NF4 or FP4)."""
    mids = []
    for qt in ("nf4", "fp4"):
        c = np.sort(F.get_4bit_type(qt, device="cpu").numpy())
        mids += list(f32((c[:-1] + c[1:]) / np.float32(2)))
    while True:
        am = np.float32(rng.uniform(0.3, 3.0))
        inv = np.float32(np.float32(1.0) / am)
        found = []
        for m in mids:
            for x in ulp_neighbours(np.float32(m) * am, 4):
                if not abs(x) < am:
                    continue
                rec = np.float32(x * inv)
                div = np.float32(x / am)
                if (rec > m) != (div > m) and x not in found:
                    found.append(x)
        if len(found) >= 4:
            return am, f32(found[:count])


def int8_discriminators(rng, count):
    """A row absmax s and up to `count` values whose int8 code depends on how
    127 / s is rounded."""
    while True:
        s_ = np.float32(rng.uniform(0.5, 5.0))
        sc_div = np.float32(np.float32(127.0) / s_)
        sc_rec = np.float32(np.float32(np.float32(1.0) / s_) * np.float32(127.0))
        if sc_div == sc_rec:
            continue
        found = []
        for k in range(-126, 126):
            for x in ulp_neighbours(np.float32((k + 0.5) * float(s_) / 127.0), 3):
                if not abs(x) < s_:
                    continue
                if np.rint(np.float32(x * sc_div)) != np.rint(np.float32(x * sc_rec)) and x not in found:
                    found.append(x)
        if len(found) >= 4:
            return s_, f32(found[:count])


GEN_BLOCKS = 9000


def generated_vector(n):
    """Block b (64 elements) starts with its absmax: 2^(16 + b % 8) when
    g(b) % 50 == 0, else 1 + (g(b) & 0x7FFFFF) * 2^-23; the other elements are
    ((h(i) & 0xFFFF) - 32768) * 2^-16, below 1 in magnitude. h(i) = (i * 2654435761
    mod 2^32) >> 8 and g(b) = h(b). Every value is exact in fp32, so C++ rebuilds
    the same bits. A few huge absmaxes among many full-mantissa ones make the
    mean's bits depend on torch's exact summation order."""
    def h(k):
        return ((k.astype(np.uint64) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)) >> np.uint64(8)
    i = np.arange(n)
    x = ((h(i) & np.uint64(0xFFFF)).astype(np.float64) - 32768.0) * 2.0 ** -16
    b = np.arange(n // BLOCKSIZE)
    g = h(b)
    head = np.where(g % np.uint64(50) == 0, np.exp2(16 + b % 8),
                    1.0 + (g & np.uint64(0x7FFFFF)).astype(np.float64) * 2.0 ** -23)
    x[b * BLOCKSIZE] = head
    return f32(x)


LUT_BLOCKS = 512


def lut_vector(n):
    """Element 0 of block b is 1.5 when b % 256 == 0, else 1 + ((37 b) % 101 - 50) * 2^-16;
    every other element is 0. Exact in fp32."""
    x = np.zeros(n, dtype=np.float32)
    b = np.arange(n // BLOCKSIZE)
    v = 1.0 + ((37 * b) % 101 - 50).astype(np.float64) * 2.0 ** -16
    v[b % 256 == 0] = 1.5
    x[b * BLOCKSIZE] = v.astype(np.float32)
    return x


def np_of(t):
    return t.detach().cpu().contiguous().numpy()


def bits_equal(a, b):
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def nibble_table(quant_type, cols):
    """The 16 values dequantize_4bit yields for nibbles 0..15 with absmax 1, on the code
    path bitsandbytes picks for a last dimension of `cols`'s parity."""
    n = 16 if cols % 2 == 0 else 17
    nibbles = list(range(16)) + [0] * (n - 16)
    if n % 2:
        nibbles.append(0)
    packed = torch.tensor([(nibbles[2 * i] << 4) | nibbles[2 * i + 1] for i in range(len(nibbles) // 2)],
                          dtype=torch.uint8).view(-1, 1)
    state = F.QuantState(absmax=torch.ones(1), shape=torch.Size([1, n]), dtype=torch.float32,
                         blocksize=BLOCKSIZE, code=F.get_4bit_type(quant_type, device="cpu"),
                         quant_type=quant_type)
    out = F.dequantize_4bit(packed, state)
    return np_of(out).reshape(-1)[:16].copy()


def canonicalize_header(path):
    """safetensors' writer emits the header's JSON objects in hash-map order,
    which changes from run to run; rewrite the header with sorted keys (same
    offsets, padded with spaces to 8 bytes as safetensors does) so a rerun gives
    identical bytes."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + blob[8 + n:])


def main():
    torch.manual_seed(0)
    mats = make_matrices()
    tensors = {}
    notes = {}

    def put(name, arr):
        assert name not in tensors, name
        tensors[name] = torch.from_numpy(np.ascontiguousarray(arr))

    dyn = F.create_dynamic_map(signed=True)
    put("bnb.dynamic_map", np_of(dyn))
    for qt in ("nf4", "fp4"):
        put(f"bnb.{qt}.table_evencols", nibble_table(qt, 2))
        put(f"bnb.{qt}.table_oddcols", nibble_table(qt, 1))

    for name, w_np in mats.items():
        w = torch.from_numpy(w_np.copy())
        rows, cols = w_np.shape
        put(name, w_np)

        # LLM.int8() row quantization of the fp32 weight.
        cb, scb, outl = F.int8_vectorwise_quant(w.clone())
        assert outl is None
        put(f"{name}.int8.CB", np_of(cb))
        put(f"{name}.int8.SCB", np_of(scb))
        put(f"{name}.int8.dequant", np_of(F.int8_vectorwise_dequant(cb, scb)))
        notes["int8.CB.dtype"] = str(cb.dtype)
        notes["int8.SCB.dtype"] = str(scb.dtype)

        for qt in ("nf4", "fp4"):
            packed, st = F.quantize_4bit(w, blocksize=BLOCKSIZE, compress_statistics=False, quant_type=qt)
            put(f"{name}.{qt}.packed", np_of(packed).reshape(-1))
            put(f"{name}.{qt}.absmax", np_of(st.absmax))
            put(f"{name}.{qt}.code", np_of(st.code))
            dq = F.dequantize_4bit(packed, st)
            put(f"{name}.{qt}.dequant", np_of(dq))
            notes[f"{qt}.packed.dtype"] = str(packed.dtype)
            notes[f"{qt}.dequant.dtype"] = str(dq.dtype)

            packed2, st2 = F.quantize_4bit(w, blocksize=BLOCKSIZE, compress_statistics=True, quant_type=qt)
            assert bits_equal(np_of(packed2), np_of(packed)), "double quant changed the packed bytes"
            assert st2.nested and st2.state2.blocksize == 256
            put(f"{name}.{qt}dq.packed", np_of(packed2).reshape(-1))
            put(f"{name}.{qt}dq.qabsmax", np_of(st2.absmax))
            put(f"{name}.{qt}dq.absmax2", np_of(st2.state2.absmax))
            put(f"{name}.{qt}dq.offset", np_of(st2.offset).reshape(1))
            put(f"{name}.{qt}dq.code2", np_of(st2.state2.code))
            rec = F.dequantize_blockwise(st2.absmax, st2.state2) + st2.offset
            # bitsandbytes' CPU blockwise quantizer goes through a 65536-entry lookup
            # table, not an exact nearest-code search: count where they disagree.
            centered = st.absmax - st2.offset
            nb = centered.numel()
            scale = st2.state2.absmax.repeat_interleave(256)[:nb]
            normed = torch.clamp(centered * (1.0 / scale), -1, 1)
            nearest = torch.argmin((normed.unsqueeze(1) - st2.state2.code.unsqueeze(0)).abs(), dim=1)
            notes.setdefault("nested_lut_vs_argmin_mismatches", {})[f"{name}.{qt}"] = int(
                (nearest.to(torch.uint8) != st2.absmax).sum())
            put(f"{name}.{qt}dq.absmax_recovered", np_of(rec))
            dq2 = F.dequantize_4bit(packed2, st2)
            put(f"{name}.{qt}dq.dequant", np_of(dq2))
            notes[f"{qt}dq.qabsmax.dtype"] = str(st2.absmax.dtype)
            notes[f"{qt}dq.offset.dtype"] = str(st2.offset.dtype)

    # A long generated vector (not stored: the C++ test rebuilds it from the same
    # integer formula) whose 9000 block absmaxes drive torch's cascade summation
    # in the double-quant mean through two levels (it stays under torch's
    # 32768-element GRAIN_SIZE, so the sum runs on one thread). The statistics
    # do not depend on the 4-bit type; NF4's are stored.
    gen = torch.from_numpy(generated_vector(GEN_BLOCKS * BLOCKSIZE))
    _, st = F.quantize_4bit(gen, blocksize=BLOCKSIZE, compress_statistics=False, quant_type="nf4")
    put("gen.absmax", np_of(st.absmax))
    _, st2 = F.quantize_4bit(gen, blocksize=BLOCKSIZE, compress_statistics=True, quant_type="nf4")
    put("gen.dq.qabsmax", np_of(st2.absmax))
    put("gen.dq.absmax2", np_of(st2.state2.absmax))
    put("gen.dq.offset", np_of(st2.offset).reshape(1))
    notes["gen_offset_sequential_sum_differs"] = bool(
        np.float32(np.cumsum(np_of(st.absmax), dtype=np.float32)[-1] / np.float32(GEN_BLOCKS))
        != np_of(st2.offset).item())

    # Block absmaxes a hair apart around 1.0 (and 1.5 at the start of each nested
    # block), so the centered values fall where the dynamic code is dense: there
    # bitsandbytes' 65536-slot lookup and an exact nearest-code search disagree.
    lut = torch.from_numpy(lut_vector(LUT_BLOCKS * BLOCKSIZE))
    _, st = F.quantize_4bit(lut, blocksize=BLOCKSIZE, compress_statistics=False, quant_type="nf4")
    _, st2 = F.quantize_4bit(lut, blocksize=BLOCKSIZE, compress_statistics=True, quant_type="nf4")
    put("lut.nf4dq.qabsmax", np_of(st2.absmax))
    put("lut.nf4dq.absmax2", np_of(st2.state2.absmax))
    put("lut.nf4dq.offset", np_of(st2.offset).reshape(1))
    centered = st.absmax - st2.offset
    scale = st2.state2.absmax.repeat_interleave(256)[: centered.numel()]
    normed = torch.clamp(centered * (1.0 / scale), -1, 1)
    nearest = torch.argmin((normed.unsqueeze(1) - st2.state2.code.unsqueeze(0)).abs(), dim=1)
    notes["lut_vector_lut_vs_argmin_mismatches"] = int((nearest.to(torch.uint8) != st2.absmax).sum())

    # Linear layers on a committed activation matrix.
    w = torch.from_numpy(mats["w30x100"].copy())
    rng = np.random.default_rng(6)
    x_np = f32(rng.standard_normal((3, 100)))
    x_np[1, 17] = 9.5
    x_np[2, 3] = -7.25
    put("lin.x", x_np)
    x = torch.from_numpy(x_np.copy())
    with torch.no_grad():
        for thr, tag in ((6.0, "t6"), (0.0, "t0")):
            lin = bnb.nn.Linear8bitLt(100, 30, bias=False, has_fp16_weights=False, threshold=thr)
            lin.weight = bnb.nn.Int8Params(w.clone(), requires_grad=False, has_fp16_weights=False)
            lin = lin.to("cpu").eval()
            assert lin.weight.dtype == torch.int8
            if tag == "t6":
                put("lin8.CB", np_of(lin.weight.CB))
                put("lin8.SCB", np_of(lin.weight.SCB))
            out = lin(x)
            put(f"lin8.{tag}.out", np_of(out))
            notes[f"lin8.{tag}.out.dtype"] = str(out.dtype)
            if tag == "t6":
                notes["lin8.t6.outlier_cols"] = [int(i) for i in lin.state.idx.tolist()]
        for qt in ("nf4", "fp4"):
            lin = bnb.nn.Linear4bit(100, 30, bias=False, compute_dtype=torch.float32, quant_type=qt)
            lin.weight = bnb.nn.Params4bit(w.clone(), requires_grad=False, quant_type=qt)
            lin = lin.to("cpu").eval()
            qs = lin.weight.quant_state
            assert bits_equal(np_of(lin.weight.data).reshape(-1), tensors[f"w30x100.{qt}dq.packed"].numpy())
            assert bits_equal(np_of(qs.absmax), tensors[f"w30x100.{qt}dq.qabsmax"].numpy())
            out = lin(x)
            put(f"lin4.{qt}.out", np_of(out))
            notes[f"lin4.{qt}.out.dtype"] = str(out.dtype)
            notes[f"lin4.{qt}.compress_statistics"] = bool(qs.nested)

    # Facts worth knowing when reading the goldens (all observed, none assumed).
    for name in mats:
        for qt in ("nf4", "fp4"):
            code2 = tensors[f"{name}.{qt}dq.code2"].numpy()
            assert bits_equal(code2, tensors["bnb.dynamic_map"].numpy()), "state2.code is not the dynamic map"
    notes["fp4_code_index8"] = {
        "quant_map": struct.pack("<f", F.get_4bit_type("fp4", device="cpu")[8].item()).hex(),
        "table_evencols": struct.pack("<f", float(tensors["bnb.fp4.table_evencols"].numpy()[8])).hex(),
        "table_oddcols": struct.pack("<f", float(tensors["bnb.fp4.table_oddcols"].numpy()[8])).hex(),
    }

    meta = {
        "bitsandbytes": bnb.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blocksize": str(BLOCKSIZE),
        "matrices": ",".join(mats.keys()),
        "gen_blocks": str(GEN_BLOCKS),
        "lut_blocks": str(LUT_BLOCKS),
        "notes": json.dumps(notes, sort_keys=True),
    }
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, "goldens.safetensors")
    save_file(tensors, path, metadata=meta)
    canonicalize_header(path)
    os.chmod(path, 0o644)
    print(f"wrote {path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")
    print(json.dumps({k: v for k, v in meta.items() if k != "notes"}, indent=1))
    print(json.dumps(notes, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
