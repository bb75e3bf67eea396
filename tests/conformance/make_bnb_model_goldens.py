#!/usr/bin/env python3
"""Whole-model goldens from transformers + bitsandbytes on the CPU: int8 (LLM.int8()),
nf4 (double quant) and fp4 models loaded with BitsAndBytesConfig, plus the fp32 model.

Run by hand (CI never runs it; it needs torch, transformers and bitsandbytes), after
`bash scripts/fetch_model.sh`:

    HF_HUB_OFFLINE=1 /work/venv/bin/python tests/conformance/make_bnb_model_goldens.py

Models:
  tiny_llama  tests/data/tiny_llama (fp32, untied head); a 37-token English prompt
              tokenized with its own tokenizer.
  smollm2     models/SmolLM2-135M-Instruct.Q4_1.gguf, dequantized to fp32 by transformers
              and saved as an HF folder in a temporary directory (never committed), then
              reloaded from there; the first 512 tokens of tests/data/quality/english.txt
              (the GGUF's tokenizer as transformers loads it, no BOS).
Configs: fp32 (no quantization), int8 (load_in_8bit, llm_int8_threshold 6.0, default skip
modules), nf4 (double quant, compute dtype fp32), fp4 (no double quant, compute dtype fp32).

The sequence is teacher-forced INCREMENTALLY: one token per forward call with a KV cache
(use_cache=True). LLM.int8() picks its outlier columns over all rows of a call, while
tierserve decides them per row; with one row per call the two definitions coincide.

Outputs: tests/data/bnb_models/<model>_<config>.json, each
  {"reference": versions, "config": the exact BitsAndBytesConfig (null for fp32),
   "activation_dtype": ..., "execution": how bitsandbytes ran on this CPU,
   "modules": what got quantized, "input_ids": [...],
   "top": per position p, the TOP best [id, logit] predicting token p+1, best first,
   "next_logprob": per position p < n-1, log_softmax(logits in float64)[input_ids[p+1]],
   "perplexity": exp(-mean(next_logprob)), "argmax_agreement_with_fp32": fraction,
   ...}
Floats have 7 significant digits. Nothing here re-implements bitsandbytes: the checks
below only observe what its public entry points receive and return.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may come from a model hub

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, DynamicCache

import bitsandbytes as bnb
import bitsandbytes.functional as bnbF
from bitsandbytes.nn import Linear4bit, Linear8bitLt

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
OUT = DATA / "bnb_models"
MODEL_DIR = ROOT / "models"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TEXT = DATA / "quality" / "english.txt"

N_SMOLLM2 = 512
TINY_TEXT = "The old printer set each letter by hand and inked every page twice."
TOP = 10
THRESHOLD = 6.0
N_THREADS = 1  # the machine is shared; the whole run is ~12.5 min on one thread
ATTN = "eager"

CONFIGS = {
    "fp32": None,
    "int8": dict(load_in_8bit=True, llm_int8_threshold=THRESHOLD),
    "nf4": dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.float32),
    "fp4": dict(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_use_double_quant=False,
                bnb_4bit_compute_dtype=torch.float32),
}


ACTIVATION_NOTE = {
    "fp32": "no quantization; fp32 throughout",
    "int8": "MatMul8bitLt casts the fp32 layer input to fp16 and quantizes that (row absmax, round "
            "to int8, outlier columns |x_fp16| >= threshold zeroed); the int32 product is rescaled "
            "in fp32; the outlier columns use the original fp32 input times the dequantized int8 "
            "weight columns (fp32); the output is fp32",
    "nf4": "the fp32 input is multiplied in fp32 by the weight dequantized to fp32 (compute dtype)",
    "fp4": "the fp32 input is multiplied in fp32 by the weight dequantized to fp32 (compute dtype)",
}


def r7(x: float) -> float:
    return float(f"{x:.7g}")


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n")
    print(f"  wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")


def versions() -> dict:
    from bitsandbytes.backends.cpu import ops as cpu_ops
    from bitsandbytes.cextension import lib
    return {
        "transformers": transformers.__version__, "torch": torch.__version__,
        "bitsandbytes": bnb.__version__, "accelerate": importlib.metadata.version("accelerate"),
        "gguf": importlib.metadata.version("gguf"), "tokenizers": importlib.metadata.version("tokenizers"),
        "numpy": np.__version__, "python": platform.python_version(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bnb_native_cpu_lib": type(lib).__name__,
        "bnb_cpu_int8_matmul_uses_torch_int_mm": bool(cpu_ops._has_avx512),
        "bnb_cpu_avx512bf16_4bit_repack": bool(bnbF.has_avx512bf16()),
        "torch_threads": N_THREADS,
    }


def config_dict(kw) -> dict | None:
    if kw is None:
        return None
    d = BitsAndBytesConfig(**kw).to_dict()
    return json.loads(json.dumps(d, default=str))


# --------------------------------------------------------------------------- observation

class Observer:
    """Pass-through wrappers around the bitsandbytes entry points that the quantized
    linear layers call, recording only the dtypes they see."""

    def __init__(self):
        self.seen: dict[str, set] = {}
        self._orig = (bnbF.int8_vectorwise_quant, bnb.matmul, bnb.matmul_4bit)

        def vq(A, *a, **k):
            self._note("int8_vectorwise_quant input (activation being quantized)", A.dtype)
            return self._orig[0](A, *a, **k)

        def mm8(A, B, *a, state=None, **k):
            self._note("bnb.matmul input A", A.dtype)
            self._note("MatmulLtState.is_training", state.is_training if state is not None else None)
            return self._orig[1](A, B, *a, state=state, **k)

        def mm4(A, B, quant_state, *a, **k):
            self._note("bnb.matmul_4bit input A (activation)", A.dtype)
            self._note("quant_state.dtype (dequantized weight)", quant_state.dtype)
            self._note("quant_state.packing_format_for_cpu",
                       bool(getattr(quant_state, "packing_format_for_cpu", False)))
            return self._orig[2](A, B, quant_state, *a, **k)

        bnbF.int8_vectorwise_quant, bnb.matmul, bnb.matmul_4bit = vq, mm8, mm4

        # bitsandbytes logs "MatMul8bitLt: inputs will be cast from torch.float32 to float16
        # during quantization" on every call: keep each distinct message once, do not print.
        observer = self

        class Keep(logging.Handler):
            def emit(self, record):
                observer._note("bitsandbytes log messages", record.getMessage())

        bnb_log = logging.getLogger("bitsandbytes")
        bnb_log.addHandler(Keep())
        bnb_log.propagate = False

    def _note(self, key, value):
        self.seen.setdefault(key, set()).add(str(value).replace("torch.", ""))

    def report(self) -> dict:
        return {k: sorted(v) for k, v in self.seen.items()}

    def reset(self):
        self.seen = {}


class ActStats:
    """Forward pre-hooks on every Linear8bitLt: the largest |input| and, per call (one
    token), how many input columns bitsandbytes would treat as outliers. bnb builds its
    mask on the fp16 cast of the input (|A_fp16| >= threshold), so that is what is counted."""

    def __init__(self, model):
        self.per: dict[str, dict] = {}
        self.handles = []
        for name, mod in model.named_modules():
            if isinstance(mod, Linear8bitLt):
                self.per[name] = {"calls": 0, "cols": 0, "calls_with": 0, "max_abs": 0.0,
                                  "i32_inexact_calls": 0, "i32_max_err": 0.0}
                self.handles.append(mod.register_forward_pre_hook(self._hook(name)))

    def _hook(self, name):
        def f(mod, args):
            x = args[0].detach()
            assert x.numel() == x.shape[-1], "one row per call expected"
            n = int((x.half().abs() >= THRESHOLD).sum())
            s = self.per[name]
            s["calls"] += 1
            s["cols"] += n
            s["calls_with"] += int(n > 0)
            s["max_abs"] = max(s["max_abs"], float(x.abs().max()))
            # Without AVX-512, bitsandbytes' int8 x int8 -> int32 product is an fp32 matmul
            # (backends/default _int8_linear_matmul_impl). Compare it with the exact sum.
            ca, _, _ = torch.ops.bitsandbytes.int8_vectorwise_quant.default(
                x.reshape(1, -1).half(), THRESHOLD)
            cb = mod.weight.data if mod.weight.dtype == torch.int8 else mod.state.CB
            got = torch.ops.bitsandbytes.int8_linear_matmul.default(ca, cb)
            exact = ca.double() @ cb.double().t()
            err = float((got.double() - exact).abs().max())
            s["i32_inexact_calls"] += int(err > 0)
            s["i32_max_err"] = max(s["i32_max_err"], err)
        return f

    def summary(self) -> dict:
        for h in self.handles:
            h.remove()
        per = self.per
        calls = sum(s["calls"] for s in per.values())
        tokens = next(iter(per.values()))["calls"]
        worst = max(per, key=lambda k: per[k]["max_abs"])
        by_kind = {}
        for name, s in per.items():
            kind = name.rsplit(".", 1)[-1]
            k = by_kind.setdefault(kind, {"calls": 0, "cols": 0, "calls_with": 0, "max_abs": 0.0})
            for f in ("calls", "cols", "calls_with"):
                k[f] += s[f]
            k["max_abs"] = max(k["max_abs"], s["max_abs"])
        busiest = sorted(per, key=lambda k: -per[k]["cols"])[:8]
        return {
            "threshold": THRESHOLD,
            "counted_on": "fp16 cast of the layer input, |x| >= threshold (bitsandbytes' own mask)",
            "tokens": tokens, "int8_linear_layers": len(per),
            "max_abs_input": r7(per[worst]["max_abs"]), "max_abs_input_at": worst,
            "mean_outlier_cols_per_token_per_layer": r7(sum(s["cols"] for s in per.values()) / calls),
            "mean_outlier_cols_per_token_all_layers": r7(sum(s["cols"] for s in per.values()) / tokens),
            "fraction_of_layer_calls_with_outliers": r7(sum(s["calls_with"] for s in per.values()) / calls),
            "int32_product_inexact_calls": sum(s["i32_inexact_calls"] for s in per.values()),
            "int32_product_max_abs_error": r7(max(s["i32_max_err"] for s in per.values())),
            "by_projection": {k: {"mean_outlier_cols_per_token": r7(v["cols"] / v["calls"]),
                                  "fraction_of_calls_with_outliers": r7(v["calls_with"] / v["calls"]),
                                  "max_abs_input": r7(v["max_abs"])} for k, v in sorted(by_kind.items())},
            "busiest_layers": {k: {"mean_outlier_cols_per_token": r7(per[k]["cols"] / per[k]["calls"]),
                                   "max_abs_input": r7(per[k]["max_abs"])} for k in busiest},
        }


def probe_int8(model, fp32_sd: dict) -> dict:
    """Direct evidence of what the int8 path computes on this CPU, from the library's own
    results: how the weights were quantized, and in which dtype the activation is quantized."""
    name, mod = next((n, m) for n, m in model.named_modules() if isinstance(m, Linear8bitLt))
    w = fp32_sd[name + ".weight"]
    cb = mod.weight.data if mod.weight.dtype == torch.int8 else mod.state.CB
    scb = mod.weight.SCB if getattr(mod.weight, "SCB", None) is not None else mod.state.SCB
    cb16, scb16, _ = bnbF.int8_vectorwise_quant(w.half())
    cb32, scb32, _ = bnbF.int8_vectorwise_quant(w.clone())
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, w.shape[1], generator=g)  # |x| < 6: no outliers
    with torch.no_grad():
        same_no_outlier = torch.equal(mod(x), mod(x.half().float()))
        xo = x.clone()
        xo[0, 0, 3] = 9.123456789  # not an fp16 value, above the threshold
        same_outlier = torch.equal(mod(xo), mod(xo.half().float()))
    return {
        "probe_layer": name,
        "weights_quantized_from_fp16_cast": bool(torch.equal(cb, cb16) and torch.equal(scb, scb16)),
        "weights_equal_fp32_quantization": bool(torch.equal(cb, cb32) and torch.equal(scb, scb32)),
        "output_unchanged_by_fp16_rounding_of_input_without_outliers": bool(same_no_outlier),
        "output_unchanged_by_fp16_rounding_of_input_with_an_outlier": bool(same_outlier),
    }


def describe_modules(model) -> dict:
    kinds = {}
    for name, mod in model.named_modules():
        if isinstance(mod, (Linear8bitLt, Linear4bit, torch.nn.Linear)):
            kinds.setdefault(type(mod).__name__, []).append(name)
    emb = model.get_input_embeddings()
    head = model.get_output_embeddings()
    plain = kinds.get("Linear", [])
    return {
        "linear_classes": {k: len(v) for k, v in kinds.items()},
        # the layers left unquantized (all of them for fp32: not listed)
        "plain_linear_layers": plain if len(plain) < len(sum(kinds.values(), [])) else "all",
        "lm_head": f"{type(head).__name__} weight {str(head.weight.dtype).replace('torch.', '')}",
        "embed_tokens": f"{type(emb).__name__} weight {str(emb.weight.dtype).replace('torch.', '')}",
        "lm_head_tied_to_embeddings": head.weight is emb.weight,
    }


# --------------------------------------------------------------------------- runs

def incremental_logits(model, ids: list[int]) -> torch.Tensor:
    """Teacher forcing, one token per forward call with a KV cache."""
    cache = DynamicCache(config=model.config)
    rows = []
    with torch.no_grad():
        for t in ids:
            out = model(input_ids=torch.tensor([[t]]), cache=cache, use_cache=True)
            cache = out.cache
            rows.append(out.logits[0, -1].float().clone())
    return torch.stack(rows)


def top_k(logits: torch.Tensor, k: int) -> list:
    """Per position, the k best [id, logit], best first (ties by lower id)."""
    out = []
    for row in logits.numpy():
        idx = np.lexsort((np.arange(row.size), -row))[:k]
        out.append([[int(i), r7(float(row[i]))] for i in idx])
    return out


def load(folder: Path, kw):
    q = {} if kw is None else {"quantization_config": BitsAndBytesConfig(**kw)}
    m = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, device_map="cpu",
                                             attn_implementation=ATTN, **q)
    return m.eval()  # eval matters: on CPU a training-mode Linear8bitLt dequantizes instead


def activation_dtype(cfg: str, seen: dict) -> str:
    if cfg == "fp32":
        return "float32"
    if cfg == "int8":
        return ", ".join(seen.get("int8_vectorwise_quant input (activation being quantized)", ["?"]))
    return ", ".join(seen.get("bnb.matmul_4bit input A (activation)", ["?"]))


def run_model(mname: str, folder: Path, ids: list[int], extra: dict, vers: dict, obs: Observer) -> dict:
    fp32_sd = None
    fp32_logp = fp32_arg = None
    figures = {}
    for cname, kw in CONFIGS.items():
        t0 = time.time()
        model = load(folder, kw)
        if cname == "fp32":
            fp32_sd = {k: v.clone() for k, v in model.state_dict().items()}
        rec = {"model": mname, "config_name": cname, "reference": vers, "config": config_dict(kw),
               **extra, "modules": describe_modules(model)}
        if cname == "int8":
            rec["int8_probe"] = probe_int8(model, fp32_sd)
            stats = ActStats(model)
        obs.reset()
        logits = incremental_logits(model, ids)
        rec["activation_dtype"] = activation_dtype(cname, obs.seen)
        rec["activation_dtype_note"] = ACTIVATION_NOTE[cname]
        rec["execution"] = {"observed": obs.report(), "calls": "one token per forward, DynamicCache, "
                            "torch.no_grad, model.eval()", "attn_implementation": ATTN}
        if cname == "int8":
            rec["activation_stats"] = stats.summary()
        if cname == "fp32":
            with torch.no_grad():
                full = model(torch.tensor([ids])).logits[0].float()
            rec["incremental_vs_one_pass_max_abs_diff"] = r7(float((full - logits).abs().max()))

        logp = torch.log_softmax(logits.double(), dim=-1)
        nxt = torch.tensor(ids[1:])
        next_lp = logp[:-1].gather(1, nxt[:, None])[:, 0]
        ppl = math.exp(-float(next_lp.mean()))
        arg = torch.tensor([row[0][0] for row in top_k(logits, 1)])
        rec.update({
            "input_ids": ids,
            "top_k": TOP,
            "top": top_k(logits, TOP),
            "next_logprob": [r7(v) for v in next_lp.tolist()],
            "perplexity": r7(ppl),
            "perplexity_tokens": len(ids) - 1,
        })
        if cname == "fp32":
            fp32_logp, fp32_arg = logp, arg
            rec["argmax_agreement_with_fp32"] = 1.0
        else:
            agree = int((arg == fp32_arg).sum())
            kl = (fp32_logp.exp() * (fp32_logp - logp)).sum(-1)
            rec["argmax_agreement_with_fp32"] = r7(agree / len(ids))
            rec["argmax_agree_positions"] = [agree, len(ids)]
            rec["mean_kl_fp32_to_this"] = r7(float(kl.mean()))
        write_json(OUT / f"{mname}_{cname}.json", rec)
        figures[cname] = {k: rec.get(k) for k in ("perplexity", "argmax_agreement_with_fp32",
                                                   "mean_kl_fp32_to_this", "activation_dtype")}
        print(f"  {mname} {cname}: ppl {rec['perplexity']}, argmax agreement "
              f"{rec['argmax_agreement_with_fp32']}, activation {rec['activation_dtype']}, "
              f"{time.time() - t0:.0f} s")
        if cname == "int8":
            print(f"    probe: {rec['int8_probe']}")
            a = rec["activation_stats"]
            print(f"    max |input| {a['max_abs_input']} at {a['max_abs_input_at']}; outlier cols per token: "
                  f"{a['mean_outlier_cols_per_token_per_layer']} per layer, "
                  f"{a['mean_outlier_cols_per_token_all_layers']} over all layers")
        print(f"    modules: {rec['modules']}")
        del model
    return figures


def smollm2_folder(tmp: Path) -> Path:
    """The GGUF dequantized to fp32 by transformers, saved as a plain HF folder. The GGUF
    load carries a non-serializable GgufConfig, so the weights go through a fresh model."""
    src = AutoModelForCausalLM.from_pretrained(MODEL_DIR, gguf_file=GGUF, dtype=torch.float32)
    cfg = src.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    fresh = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    fresh.load_state_dict(src.state_dict())
    folder = tmp / "smollm2_fp32"
    fresh.save_pretrained(folder)
    back = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    for k, v in src.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), f"{k} changed on save/load"
    print(f"  saved the dequantized GGUF to {folder}: {sorted(os.listdir(folder))}")
    return folder


def main() -> None:
    start = time.time()
    if not (MODEL_DIR / GGUF).exists():
        sys.exit(f"{MODEL_DIR / GGUF} is missing: run scripts/fetch_model.sh first")
    torch.manual_seed(0)
    torch.set_num_threads(N_THREADS)
    vers = versions()
    print(vers)
    OUT.mkdir(parents=True, exist_ok=True)
    obs = Observer()
    table = {}

    tok = AutoTokenizer.from_pretrained(DATA / "tiny_llama")
    ids = tok(TINY_TEXT, add_special_tokens=False)["input_ids"]
    print(f"tiny_llama: {len(ids)} prompt tokens")
    table["tiny_llama"] = run_model("tiny_llama", DATA / "tiny_llama", ids,
                                    {"text": TINY_TEXT, "tokenizer": "tests/data/tiny_llama, no BOS"},
                                    vers, obs)

    tok = AutoTokenizer.from_pretrained(MODEL_DIR, gguf_file=GGUF)
    text = TEXT.read_text()
    all_ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(all_ids) >= 600, f"english.txt has only {len(all_ids)} tokens"
    ids = all_ids[:N_SMOLLM2]
    from tokenizers import Tokenizer  # the committed tokenizer tierserve's tests use
    committed = Tokenizer.from_file(str(DATA / "tokenizers" / "smollm2" / "tokenizer.json"))
    same_ids = committed.encode(text, add_special_tokens=False).ids == all_ids
    print(f"  tests/data/tokenizers/smollm2/tokenizer.json gives the same ids: {same_ids}")
    print(f"smollm2: english.txt has {len(all_ids)} tokens, using the first {len(ids)}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = smollm2_folder(Path(tmp))
        table["smollm2"] = run_model("smollm2", folder, ids,
                                     {"gguf": GGUF, "text": "tests/data/quality/english.txt",
                                      "tokenizer": "the GGUF's tokenizer as transformers loads it, no BOS",
                                      "text_tokens": len(all_ids),
                                      "same_ids_as_tests_data_tokenizers_smollm2": same_ids}, vers, obs)

    print("summary:")
    for m, figs in table.items():
        for c, f in figs.items():
            print(f"  {m:10s} {c:5s} {f}")
    total = sum(p.stat().st_size for p in OUT.glob("*.json"))
    print(f"total size of {OUT.relative_to(ROOT)}: {total} bytes; run time {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
