#!/usr/bin/env python3
"""Where decode time goes, per op class, from perf.

Runs bench_generate under `perf record -e cpu-clock -k monotonic` (Debian's
linux-perf; cpu-clock works in a VM without hardware counters), keeps the
samples of bench_generate's threads inside its last decode (the
DECODE_WINDOW line it prints), groups the symbols into op classes and prints
a Markdown table: each class's share of the samples of all compute threads.
"Thread pool" is the workers' and the caller's waiting (spin or sleep) and
chunk hand-out: time a thread spent not computing.

    python3 bench/profile_decode.py --threads 2 --prompt-tokens 128 \
        --activation-precision int8 --kv-cache-dtype fp16
"""
import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# First match wins; patterns are searched in the demangled symbol.
CLASSES = [
    ("matmul, int8 activations", r"GroupVnni|GroupAvx2|GroupPortable|Q8Dot|QuantizeQ8"),
    ("matmul, fp32 activations", r"RepackedMatMul|QuantMatMul|MatMul|Gemm|Gemv|Dequantize"),
    ("attention", r"Attend|MergeSpans|AttentionExp|CausalAttention|KvCache::Store"),
    ("thread pool (waiting, hand-out)", r"ThreadPool|WorkerLoop|RunChunks|RunLoop|sched_yield|__schedule|futex"),
    ("norms, rotary, activations, residuals", r"RmsNorm|LayerNorm|Rope|SiluMul|GeluTanh|AddInPlace|expf"),
    ("argmax of the logits (bench)", r"anonymous namespace\)::Run$|max_element"),
    ("memory allocation", r"malloc|_int_free|free$|operator new|operator delete|cfree"),
]


def classify(symbol):
    for name, pattern in CLASSES:
        if re.search(pattern, symbol):
            return name
    return "other"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bench-binary", default=os.path.join(ROOT, "build/bench/bench_generate"))
    p.add_argument("--model", default=os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--decode-tokens", type=int, default=256)
    p.add_argument("--activation-precision", default="fp32", choices=("fp32", "int8"))
    p.add_argument("--kv-cache-dtype", default="fp32", choices=("fp32", "fp16"))
    p.add_argument("--show-symbols", type=int, default=0, help="also print the N hottest symbols")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        cmd = ["perf", "record", "-q", "-e", "cpu-clock", "-k", "monotonic", "-o", data, "--",
               args.bench_binary, f"--model={args.model}", f"--threads={args.threads}",
               f"--prompt_tokens={args.prompt_tokens}", f"--decode_tokens={args.decode_tokens}",
               f"--activation_precision={args.activation_precision}", "--repeats=2", "--bandwidth_mib=64"]
        if args.kv_cache_dtype != "fp32":  # older builds know no such flag: fp32 is theirs
            cmd.append(f"--kv_cache_dtype={args.kv_cache_dtype}")
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
        window = re.search(r"^DECODE_WINDOW (\S+)$", out, re.M)
        rate = re.search(r"^decode \(\d+ tokens\)\s+(\S+) tokens/s", out, re.M)
        if not window:
            sys.exit("bench_generate printed no DECODE_WINDOW line")
        report = subprocess.run(
            ["perf", "report", "-i", data, "--comm", "bench_generate", "--time", window.group(1),
             "--no-children", "--sort", "sym", "--stdio", "-g", "none", "--percent-limit", "0"],
            check=True, capture_output=True, text=True).stdout
    shares = collections.Counter()
    symbols = []
    for line in report.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+\[[.k]\]\s+(.*)$", line)
        if m:
            share, symbol = float(m.group(1)), m.group(2).strip()
            shares[classify(symbol)] += share
            symbols.append((share, symbol))
    total = sum(shares.values())
    print(f"decode, {args.threads} thread(s), {args.prompt_tokens}-token prompt + {args.decode_tokens} tokens, "
          f"activations {args.activation_precision}, KV cache {args.kv_cache_dtype}: "
          f"{rate.group(1) if rate else '?'} tok/s")
    print()
    print("| op class | share of thread time |")
    print("|---|---|")
    for name, share in shares.most_common():
        print(f"| {name} | {100 * share / total:.1f}% |")
    for share, symbol in sorted(symbols, reverse=True)[:args.show_symbols]:
        print(f"{100 * share / total:6.1f}%  {symbol}")


if __name__ == "__main__":
    main()
