#!/usr/bin/env python3
"""Races tierserve against llama.cpp (llama-cpp-python) on the same GGUF,
prompt length, decode length and thread count, in one run, and prints both
speeds and their ratios. Needs llama-cpp-python (see tests/conformance/README.md
for the venv); run with that venv's python:

    /path/to/venv/bin/python bench/compare_llama_cpp.py --threads 2
"""
import argparse
import os
import re
import subprocess
import sys
import time


def run_tierserve(args):
    cmd = [args.bench_binary, f"--model={args.model}", f"--threads={args.threads}",
           f"--prompt_tokens={args.prompt_tokens}", f"--decode_tokens={args.decode_tokens}",
           f"--repeats={args.repeats}", f"--activation_precision={args.activation_precision}",
           f"--kv_cache_dtype={args.kv_cache_dtype}"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    sys.stdout.write(out)
    m = re.search(r"^RESULT (.*)$", out, re.M)
    if not m:
        sys.exit("bench_generate printed no RESULT line")
    return {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def run_llama_cpp(args):
    try:
        from llama_cpp import Llama
    except ImportError:
        sys.exit("llama-cpp-python is not installed in this interpreter")
    llm = Llama(model_path=args.model, n_ctx=args.prompt_tokens + args.decode_tokens + 8,
                n_threads=args.threads, n_threads_batch=args.threads, n_batch=512,
                verbose=False, seed=0)
    vocab = min(llm.n_vocab(), 30000)
    # The same deterministic prompt as bench_generate.
    prompt = [(i * 7919 + 13) % vocab for i in range(args.prompt_tokens)]
    best_prefill = best_decode = float("inf")
    for _ in range(args.repeats):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        best_prefill = min(best_prefill, time.perf_counter() - t0)
        # Decode speed does not depend on which tokens are fed; a fixed
        # sequence avoids reading llama-cpp-python's score rows, which it
        # keeps for the last n_batch positions only.
        tok = prompt[-1]
        t0 = time.perf_counter()
        for _ in range(args.decode_tokens):
            llm.eval([tok])
            tok = (tok * 7919 + 13) % vocab
        best_decode = min(best_decode, time.perf_counter() - t0)
    return {"prefill_tps": args.prompt_tokens / best_prefill,
            "decode_tps": args.decode_tokens / best_decode}


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.path.join(root, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--bench-binary", default=os.path.join(root, "build/bench/bench_generate"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--decode-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--activation-precision", default="fp32", choices=("fp32", "int8"),
                   help="what tierserve's GGUF block weights multiply")
    p.add_argument("--kv-cache-dtype", default="fp32", choices=("fp32", "fp16"),
                   help="what tierserve's KV cache stores (llama.cpp's is fp16, its default)")
    args = p.parse_args()

    ours = run_tierserve(args)
    ref = run_llama_cpp(args)
    print()
    print(f"{'':24}{'tierserve':>12}{'llama.cpp':>12}{'ratio':>10}")
    for key, name in (("prefill_tps", f"prefill tok/s ({args.prompt_tokens})"),
                      ("decode_tps", f"decode tok/s ({args.decode_tokens})")):
        print(f"{name:24}{ours[key]:12.1f}{ref[key]:12.1f}{ours[key] / ref[key]:10.2f}")
    print(f"{'decode roofline fraction':24}{ours['roofline_fraction']:12.3f}")


if __name__ == "__main__":
    main()
