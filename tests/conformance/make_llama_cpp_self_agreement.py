#!/usr/bin/env python3
"""How far llama.cpp agrees with itself: the noise floor of its goldens.

tests/data/smollm2/golden.json holds llama.cpp's logits for whole sequences
evaluated in one batch. llama.cpp evaluating the same sequences one token at
a time (its decode path) gives other logits: its activations are quantized
to 8 bits per 32 (Q8_1) inside the Q4_1 dot products, and any change of
summation order moves a value across a rounding step somewhere, which 30
layers amplify. This script measures, over every position of the golden's
cases, how often llama.cpp's one-token-at-a-time argmax equals its batch
argmax, and the mean |logit difference| over the batch's top 5, beside the
same figures for transformers (fp32, the file's exact result) against the
batch. The conformance tests print it beside their own agreement with the
golden: an agreement figure is only meaningful to within this floor.

Run by hand from the reference venv (tests/conformance/README.md):

    /work/refvenv/bin/python tests/conformance/make_llama_cpp_self_agreement.py

Output: tests/data/smollm2/llama_cpp_self_agreement.json, and
tests/data/smollm2/llama_cpp_decode_top.json: the decode path's own top 5
(token id, logit) at every position of every case, the golden for what
tierserve's int8 activations mirror (the conformance tests print both
paths' agreement with it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import llama_cpp
from llama_cpp import Llama

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "smollm2" / "golden.json"
OUT = ROOT / "tests" / "data" / "smollm2" / "llama_cpp_self_agreement.json"
DECODE_OUT = ROOT / "tests" / "data" / "smollm2" / "llama_cpp_decode_top.json"
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def main() -> None:
    golden = json.loads(GOLDEN.read_text())
    kw = dict(golden["settings"]["llama_cpp"])
    kw.pop("kv_cache", None)
    llm = Llama(str(MODEL), **kw)
    positions = agree = 0
    diff_sum = 0.0
    hf_agree = 0
    hf_diff_sum = 0.0
    decode_cases = []
    for case in golden["cases"]:
        llm.reset()
        decode_top = []
        for p, token in enumerate(case["ids"]):
            llm.eval([token])
            row = np.asarray(llm.scores[llm.n_tokens - 1])
            top = np.argsort(-row, kind="stable")[:5]
            decode_top.append([[int(i), round(float(row[i]), 5)] for i in top])
            batch_top = case["llamacpp_top"][p]
            ids = [t[0] for t in batch_top[:5]]
            logits = np.array([t[1] for t in batch_top[:5]])
            positions += 1
            agree += int(np.argmax(row) == batch_top[0][0])
            diff_sum += float(np.abs(row[ids] - logits).mean())
            hf = {t[0]: t[1] for t in case["transformers_top"][p]}
            hf_agree += int(case["transformers_top"][p][0][0] == batch_top[0][0])
            hf_diff_sum += float(np.mean([abs(hf[i] - l) for i, l in zip(ids, logits) if i in hf]))
        decode_cases.append({"ids": case["ids"], "llamacpp_decode_top": decode_top})
    out = {
        "golden": "tests/data/smollm2/golden.json",
        "llama_cpp_python": llama_cpp.__version__,
        "llama_cpp": kw,
        "positions": positions,
        "decode_vs_batch": {"argmax_agree": agree, "mean_abs_delta_top5": round(diff_sum / positions, 4)},
        "transformers_vs_batch": {"argmax_agree": hf_agree,
                                  "mean_abs_delta_top5": round(hf_diff_sum / positions, 4)},
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    DECODE_OUT.write_text(json.dumps({"golden": out["golden"], "llama_cpp_python": out["llama_cpp_python"],
                                      "llama_cpp": kw, "cases": decode_cases}) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
