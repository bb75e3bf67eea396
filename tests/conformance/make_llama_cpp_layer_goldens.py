#!/usr/bin/env python3
"""llama.cpp's own inputs and outputs of SmolLM2's layer-0 matrix products.

The int8-activation path claims llama.cpp's CPU arithmetic for every Q4_1 and
Q8_0 product: activations quantized per 32 columns (Q8_1 for Q4_1 weights,
Q8_0 for Q8_0 weights) and exact integer block dot products. This script
records, from llama.cpp itself, what each product of layer 0 (q, k, v, o,
gate, up, down) and of the tied head received and returned, so a test can
feed tierserve's int8 kernels llama.cpp's exact inputs and compare the
outputs. Fed the same inputs, the same arithmetic differs only by the fp32
order in which the blocks' terms are added; one activation rounded to another
integer would move an output by about 1/127 of its block's range.

It reads the tensors through llama.cpp's graph evaluation callback
(llama_cpp_tap.py) while llama.cpp evaluates the first case of
tests/data/smollm2/golden.json in one batch, with the golden's settings. Beside each product it checks a NumPy evaluation of the
block formulas (exact integer sums, float64 elsewhere) against llama.cpp's
output, and prints the relative difference: a large one would mean llama.cpp
took another path (a repacked or fp32 kernel), and the script then fails.

Run by hand from the reference venv (tests/conformance/README.md):

    /work/refvenv/bin/python tests/conformance/make_llama_cpp_layer_goldens.py

Output: tests/data/smollm2/llama_cpp_layer0.json (what is where) and
tests/data/smollm2/llama_cpp_layer0.f32 (little-endian float32 rows).
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import llama_cpp
import numpy as np

from llama_cpp_tap import capture

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "smollm2" / "golden.json"
OUT_JSON = ROOT / "tests" / "data" / "smollm2" / "llama_cpp_layer0.json"
OUT_BIN = ROOT / "tests" / "data" / "smollm2" / "llama_cpp_layer0.f32"
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"

CASE = 0
POSITIONS = [1, 37, 74]  # rows of the case kept (a few, to keep the file small)
HEAD_COLUMNS = 2048  # the head's first logits only
# (weight, input tensor, output tensor, which occurrence of the output name:
# llama.cpp names Q and K again after RoPE, so theirs is the first)
PRODUCTS = [
    ("blk.0.attn_q.weight", "attn_norm-0", "Qcur-0", "first"),
    ("blk.0.attn_k.weight", "attn_norm-0", "Kcur-0", "first"),
    ("blk.0.attn_v.weight", "attn_norm-0", "Vcur-0", "last"),
    ("blk.0.attn_output.weight", "kqv_out-0", "attn_out-0", "last"),
    ("blk.0.ffn_gate.weight", "ffn_norm-0", "ffn_gate-0", "last"),
    ("blk.0.ffn_up.weight", "ffn_norm-0", "ffn_up-0", "last"),
    ("blk.0.ffn_down.weight", "ffn_swiglu-0", "ffn_out-0", "last"),
    ("token_embd.weight", "result_norm", "result_output", "last"),
]


def f16(a):
    return a.astype(np.float32).astype(np.float16).astype(np.float64)


def block_reference(tensor, x: np.ndarray) -> np.ndarray:
    """y = x W^T as llama.cpp's Q4_1 x Q8_1 / Q8_0 x Q8_0 dot products define it."""
    raw = np.asarray(tensor.data)
    n_rows = int(tensor.shape[1])
    xb = x.astype(np.float32).reshape(x.shape[0], -1, 32)
    amax = np.abs(xb).max(-1)
    d = (amax / np.float32(127)).astype(np.float32)
    inv = np.where(amax != 0, np.float32(127) / np.where(amax != 0, amax, 1), 0).astype(np.float32)
    q = np.rint((xb * inv[..., None]).astype(np.float32)).astype(np.float64)
    if tensor.tensor_type == gguf.GGMLQuantizationType.Q4_1:
        b = raw.reshape(n_rows, -1, 20)
        dw = b[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float64)
        mw = b[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float64)
        nib = b[..., 4:]
        w = np.concatenate([nib & 15, nib >> 4], axis=-1).astype(np.float64)
        s = f16(d * q.sum(-1).astype(np.float32))
        isum = np.einsum("nbk,tbk->tnb", w, q)
        return (isum * dw[None] * f16(d)[:, None, :] + mw[None] * s[:, None, :]).sum(-1)
    assert tensor.tensor_type == gguf.GGMLQuantizationType.Q8_0
    b = raw.reshape(n_rows, -1, 34)
    dw = b[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float64)
    w = b[..., 2:].copy().view(np.int8).astype(np.float64)
    isum = np.einsum("nbk,tbk->tnb", w, q)
    return (isum * dw[None] * f16(d)[:, None, :]).sum(-1)


def main() -> None:
    golden = json.loads(GOLDEN.read_text())
    kw = dict(golden["settings"]["llama_cpp"])
    kw.pop("kv_cache", None)
    ids = golden["cases"][CASE]["ids"]
    seen = capture(MODEL, kw, ids, {p[1] for p in PRODUCTS} | {p[2] for p in PRODUCTS})
    T = len(ids)
    reader = gguf.GGUFReader(str(MODEL))
    weights = {t.name: t for t in reader.tensors}

    def tensor(name, which):
        got = seen.get(name, [])
        assert got, f"{name}: no F32 tensor seen"
        return got[0] if which == "first" else got[-1]

    blob = []
    offset = 0
    entries = []
    inputs_written = {}
    for wname, xname, yname, which in PRODUCTS:
        x = tensor(xname, "last")
        y = tensor(yname, which)
        ref = block_reference(weights[wname], x)
        rel = float(np.linalg.norm(ref - y) / np.linalg.norm(ref))
        print(f"{wname:28s} {xname:>13s} -> {yname:<13s} [{T}, {y.shape[1]}]: "
              f"llama.cpp vs the block formulas, relative L2 {rel:.2e}")
        if rel > 1e-5:
            raise SystemExit(f"{wname}: llama.cpp does not compute the block formulas here ({rel:.2e})")
        if xname not in inputs_written:
            inputs_written[xname] = offset
            rows = x[POSITIONS].astype("<f4")
            blob.append(rows.tobytes())
            offset += rows.size
        cols = min(y.shape[1], HEAD_COLUMNS) if yname == "result_output" else y.shape[1]
        out_rows = np.ascontiguousarray(y[POSITIONS, :cols]).astype("<f4")
        entries.append({
            "weight": wname, "input": xname, "output": yname,
            "k": int(x.shape[1]), "n": int(cols),
            "input_offset": inputs_written[xname], "output_offset": offset,
        })
        blob.append(out_rows.tobytes())
        offset += out_rows.size
    OUT_BIN.write_bytes(b"".join(blob))
    record = {
        "about": "llama.cpp's own inputs and outputs of SmolLM2's layer-0 matrix products and the "
                 "head's first columns (make_llama_cpp_layer_goldens.py); offsets count float32 "
                 "values into the .f32 file, each block `rows` x k (inputs) or `rows` x n (outputs)",
        "llama_cpp_python": llama_cpp.__version__,
        "model": MODEL.name,
        "golden_case": CASE,
        "positions": POSITIONS,
        "rows": len(POSITIONS),
        "data": OUT_BIN.name,
        "products": entries,
    }
    OUT_JSON.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {OUT_JSON.relative_to(ROOT)} and {OUT_BIN.relative_to(ROOT)} ({offset * 4} bytes)")


if __name__ == "__main__":
    main()
