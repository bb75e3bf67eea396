#!/usr/bin/env python3
"""Races tierserve's quantized linear layers against transformers +
bitsandbytes on the CPU: the same model (SmolLM2 from its GGUF, which
transformers dequantizes), the same BitsAndBytesConfig, prompt length, decode
length, batch sizes and thread counts, in one run. Prints both speeds and
their ratios. Needs torch, transformers and bitsandbytes (see
tests/conformance/README.md for the venv); run with that venv's python:

    /path/to/venv/bin/python bench/compare_bnb.py --threads 1,2 --batches 1,8
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_tierserve(args):
    cmd = [args.bench_binary, f"--model={args.model}", f"--threads={args.threads}",
           f"--batches={args.batches}", "--precisions=fp32,int8,nf4,fp4",
           f"--prompt_tokens={args.prompt_tokens}", f"--decode_tokens={args.decode_tokens}",
           f"--repeats={args.repeats}"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    sys.stdout.write("".join(l + "\n" for l in out.splitlines() if not l.startswith("RESULT")))
    results = {}
    for m in re.finditer(r"^RESULT (.*)$", out, re.M):
        kv = dict(x.split("=") for x in m.group(1).split())
        results[(kv["precision"], int(kv["threads"]), int(kv["batch"]))] = (
            float(kv["prefill_tps"]), float(kv["decode_tps"]))
    return results


def run_bnb(args):
    os.environ["HF_HUB_OFFLINE"] = "1"
    import logging
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, DynamicCache
    from transformers.utils import logging as hf_logging
    # bitsandbytes warns on every int8 call that it casts activations to fp16.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    configs = {
        "fp32": None,
        "int8": BitsAndBytesConfig(load_in_8bit=True),
        "nf4": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                  bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float32),
        "fp4": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="fp4",
                                  bnb_4bit_compute_dtype=torch.float32),
    }
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = AutoModelForCausalLM.from_pretrained(os.path.dirname(args.model), gguf_file=os.path.basename(args.model),
                                                   dtype=torch.float32)
        cfg = src.config
        if hasattr(cfg, "quantization_config"):
            del cfg.quantization_config
        fresh = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        fresh.load_state_dict(src.state_dict())
        fresh.save_pretrained(tmp)
        del src, fresh
        vocab = min(cfg.vocab_size, 30000)
        for name, q in configs.items():
            kw = {"quantization_config": q} if q is not None else {}
            model = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32, device_map="cpu", **kw).eval()
            for threads in [int(t) for t in args.threads.split(",")]:
                torch.set_num_threads(threads)
                for batch in [int(b) for b in args.batches.split(",")]:
                    # The same deterministic prompts as bench_quantized.
                    ids = torch.tensor([[(i * 7919 + 13 + 101 * b) % vocab for i in range(args.prompt_tokens)]
                                        for b in range(batch)])
                    best_p = best_d = float("inf")
                    for _ in range(args.repeats):
                        cache = DynamicCache()
                        with torch.no_grad():
                            t0 = time.perf_counter()
                            out = model(ids, past_key_values=cache, use_cache=True)
                            best_p = min(best_p, time.perf_counter() - t0)
                            tok = out.logits[:, -1].argmax(-1, keepdim=True)
                            t0 = time.perf_counter()
                            for _ in range(args.decode_tokens):
                                out = model(tok, past_key_values=cache, use_cache=True)
                                tok = out.logits[:, -1].argmax(-1, keepdim=True)
                            best_d = min(best_d, time.perf_counter() - t0)
                    results[(name, threads, batch)] = (batch * args.prompt_tokens / best_p,
                                                       batch * args.decode_tokens / best_d)
            del model
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--bench_binary", default=os.path.join(ROOT, "build/bench/bench_quantized"))
    p.add_argument("--threads", default="1,2")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--prompt_tokens", type=int, default=256)
    p.add_argument("--decode_tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    ours = run_tierserve(args)
    theirs = run_bnb(args)
    print("\ntierserve vs transformers + bitsandbytes (same run, same model, prompt "
          f"{args.prompt_tokens}, {args.decode_tokens} decode steps)")
    print(f"{'prec':6} {'thr':>3} {'batch':>5} {'prefill ours':>13} {'bnb':>9} {'ratio':>7} "
          f"{'decode ours':>12} {'bnb':>9} {'ratio':>7}")
    for key in sorted(ours):
        if key not in theirs:
            continue
        (op, od), (tp, td) = ours[key], theirs[key]
        print(f"{key[0]:6} {key[1]:3d} {key[2]:5d} {op:13.1f} {tp:9.1f} {op / tp:6.2f}x "
              f"{od:12.1f} {td:9.1f} {od / td:6.2f}x")


if __name__ == "__main__":
    main()
