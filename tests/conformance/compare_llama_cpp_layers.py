#!/usr/bin/env python3
"""tierserve's intermediate activations against llama.cpp's, tensor by tensor.

Evaluates one case of tests/data/smollm2/golden.json in one batch, in
llama.cpp (llama_cpp_tap.py, the golden's settings) and in tierserve with
fp32 and with int8 activations (the dump_activations tool, which writes what
the model's ActivationTap sees), and prints for each tensor of the chosen
layers the relative L2 distance ||ours - llama.cpp|| / ||llama.cpp||. It
shows where the paths part: tests/conformance/README.md discusses a run.

Run by hand from the reference venv after building (bash scripts/build.sh):

    /work/refvenv/bin/python tests/conformance/compare_llama_cpp_layers.py --layers 0,1,2,15,29

Nothing is written to the repository.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from llama_cpp_tap import capture

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "smollm2" / "golden.json"
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
HEAD_DIM = 64  # SmolLM2's

# our name -> (llama.cpp's name, which occurrence); Q and K come out of
# llama.cpp's products in the GGUF's row order (each head's rotary pairs
# interleaved), which `hf_order` undoes.
LAYER_TENSORS = [
    ("attn_norm", "attn_norm", "last"),
    ("Qcur", "Qcur", "first"),
    ("Kcur", "Kcur", "first"),
    ("Vcur", "Vcur", "last"),
    ("Qrope", "Qcur", "last"),
    ("Krope", "Kcur", "last"),
    ("kqv_out", "kqv_out", "last"),
    ("attn_out", "attn_out", "last"),
    ("ffn_inp", "ffn_inp", "last"),
    ("ffn_norm", "ffn_norm", "last"),
    ("ffn_gate", "ffn_gate", "last"),
    ("ffn_up", "ffn_up", "last"),
    ("ffn_swiglu", "ffn_swiglu", "last"),
    ("ffn_out", "ffn_out", "last"),
    ("l_out", "l_out", "last"),
]


def hf_order(a: np.ndarray) -> np.ndarray:
    """[T, heads * hd] with each head's pairs interleaved -> halves (HF's order)."""
    h = a.reshape(a.shape[0], -1, HEAD_DIM)
    return np.concatenate([h[..., 0::2], h[..., 1::2]], axis=-1).reshape(a.shape[0], -1)


def dump(build: Path, out: Path, case: int, precision: str, kv: str) -> dict[str, np.ndarray]:
    subprocess.run([str(build / "tests" / "conformance" / "dump_activations"), f"--model={MODEL}",
                    f"--golden={GOLDEN}", f"--case_index={case}", f"--activation_precision={precision}",
                    f"--kv_cache_dtype={kv}", f"--out={out}"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    index = json.loads((out / "index.json").read_text())
    return {(e["name"], e["layer"]): np.fromfile(out / e["file"], dtype="<f4").reshape(e["rows"], e["cols"])
            for e in index}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", type=Path, default=ROOT / "build")
    ap.add_argument("--case", type=int, default=0)
    ap.add_argument("--layers", default="0,1,2,15,29")
    ap.add_argument("--kv-cache-dtype", default="fp32", choices=["fp32", "fp16"])
    args = ap.parse_args()
    golden = json.loads(GOLDEN.read_text())
    settings = dict(golden["settings"]["llama_cpp"])
    settings.pop("kv_cache", None)
    ids = golden["cases"][args.case]["ids"]
    ref = capture(MODEL, settings, ids)
    with tempfile.TemporaryDirectory() as tmp:
        ours = {p: dump(args.build, Path(tmp) / p, args.case, p, args.kv_cache_dtype) for p in ("fp32", "int8")}

    def rel(a, b):
        return float(np.linalg.norm(a - b) / np.linalg.norm(b))

    print(f"case {args.case} ({len(ids)} tokens), tierserve KV cache {args.kv_cache_dtype}; "
          "relative L2 against llama.cpp's tensor")
    print(f"{'tensor':<18} {'fp32':>9} {'int8':>9}")
    rows = [(f"{o}-{l}", o, l, f"{n}-{l}", w) for l in map(int, args.layers.split(",")) for o, n, w in LAYER_TENSORS]
    rows += [(n, n, -1, n, "last") for n in ("result_norm", "result_output")]
    for label, name, layer, lname, which in rows:
        got = ref.get(lname, [])
        if not got:
            print(f"{label:<18} (not in llama.cpp's graph)")
            continue
        r = got[0] if which == "first" else got[-1]
        if name in ("Qcur", "Kcur", "Qrope", "Krope"):
            r = hf_order(r)
        print(f"{label:<18} " + " ".join(f"{rel(ours[p][(name, layer)], r):9.2e}" for p in ("fp32", "int8")))


if __name__ == "__main__":
    main()
