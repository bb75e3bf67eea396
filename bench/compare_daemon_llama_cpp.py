#!/usr/bin/env python3
"""Races decode through the daemon's gRPC stream against llama.cpp, in one run.

tierserve: `tierserve serve` on loopback with the model, thread count,
activation precision and KV cache type given; greedy GenerateStream calls of
--tokens new tokens (ignore_eos) after a fixed text prompt. The decode rate of
a call is the tokens after the first divided by the time from the first
token's message to the last one's (extra tokens / extra time: the prefill
and the call's set-up are outside it). The best of --repeats calls, after one
warm-up call, is reported.

llama.cpp (llama-cpp-python): the same GGUF and thread count, the prompt's
token count evaluated, then --tokens single-token evaluations timed; the
best of --repeats. It runs in --llama-python (a venv with llama-cpp-python),
after the daemon has exited, so the two never share the cores.

--rounds N runs N such pairs by turns (daemon, then llama.cpp, N times) and
prints each pair's ratio and the median: on a shared machine a neighbour's
burst then spoils one pair, not the figure.

Run with Debian's python3 (python3-grpcio, protoc and grpc_python_plugin,
which scripts/setup.sh installs), from the repository root:

    /usr/bin/python3 bench/compare_daemon_llama_cpp.py --threads 2 \
        --llama-python /path/to/venv/bin/python --activation-precision int8
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPT = "Write a long story about a lighthouse keeper and the sea."

LLAMA_SNIPPET = r"""
import sys, time
from llama_cpp import Llama
model, threads, prompt_tokens, tokens, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
llm = Llama(model_path=model, n_ctx=prompt_tokens + tokens + 8, n_threads=threads, n_threads_batch=threads,
            n_batch=512, verbose=False, seed=0)
vocab = min(llm.n_vocab(), 30000)
prompt = [(i * 7919 + 13) % vocab for i in range(prompt_tokens)]
best = float("inf")
for _ in range(repeats + 1):
    llm.reset()
    llm.eval(prompt)
    tok = prompt[-1]
    t0 = time.perf_counter()
    for _ in range(tokens):
        llm.eval([tok])
        tok = (tok * 7919 + 13) % vocab
    best = min(best, time.perf_counter() - t0)
print(tokens / best)
"""


def start_daemon(args, config_path):
    proc = subprocess.Popen([args.binary, "serve", f"--config={config_path}"], stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    port = None
    ready = threading.Event()
    log = []

    def read():
        nonlocal port
        for line in proc.stderr:
            log.append(line)
            m = re.search(r"\(port (\d+)\)", line)
            if m:
                port = int(m.group(1))
            if line.startswith("tierserve: serving"):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(120):
        proc.kill()
        sys.exit("the daemon did not start serving:\n" + "".join(log))
    return proc, port


def daemon_decode_rate(args):
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "tierserve.yaml")
        with open(config, "w") as f:
            f.write("server:\n  listen: 127.0.0.1:0\n  metrics_listen: 127.0.0.1:0\n"
                    f"  threads: {args.threads}\n"
                    f"models:\n  - name: m\n    path: {os.path.abspath(args.model)}\n"
                    f"    activation_precision: {args.activation_precision}\n"
                    f"    kv_cache_dtype: {args.kv_cache_dtype}\n")
        subprocess.run(["protoc", f"--proto_path={ROOT}/proto", f"--python_out={tmp}", f"--grpc_out={tmp}",
                        "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin", "tierserve/v1/generation.proto"],
                       check=True)
        sys.path.insert(0, tmp)
        import grpc
        from tierserve.v1 import generation_pb2 as pb, generation_pb2_grpc as pb_grpc
        proc, port = start_daemon(args, config)
        try:
            stub = pb_grpc.GenerationStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
            best, prompt_tokens = 0.0, 0
            for r in range(args.repeats + 1):
                stamps = []
                request = pb.GenerateStreamRequest(
                    model="m", prompt=pb.Prompt(text=PROMPT),
                    parameters=pb.GenerationParameters(max_new_tokens=args.tokens, temperature=0.0,
                                                       ignore_eos=True))
                for msg in stub.GenerateStream(request, timeout=300):
                    if msg.tokens:
                        stamps.append((time.perf_counter(), len(msg.tokens)))
                    if msg.HasField("usage"):
                        prompt_tokens = msg.usage.prompt_tokens
                extra = sum(n for _, n in stamps[1:])
                rate = extra / (stamps[-1][0] - stamps[0][0])
                if r > 0:  # the first call warms up
                    best = max(best, rate)
            return best, prompt_tokens
        finally:
            proc.terminate()
            proc.wait(60)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--binary", default=os.path.join(ROOT, "build/server/tierserve"))
    p.add_argument("--model", default=os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--activation-precision", default="fp32", choices=("fp32", "int8"))
    p.add_argument("--kv-cache-dtype", default="fp32", choices=("fp32", "fp16"))
    p.add_argument("--llama-python", required=True, help="a python with llama-cpp-python")
    p.add_argument("--rounds", type=int, default=1, help="pairs run by turns; the median ratio is printed")
    args = p.parse_args()

    pairs = []
    for _ in range(args.rounds):
        ours, prompt_tokens = daemon_decode_rate(args)
        ref = float(subprocess.run([args.llama_python, "-c", LLAMA_SNIPPET, args.model, str(args.threads),
                                    str(prompt_tokens), str(args.tokens), str(args.repeats)],
                                   check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        pairs.append((ours, ref))
    print(f"threads {args.threads}, activations {args.activation_precision}, KV cache {args.kv_cache_dtype}, "
          f"prompt {prompt_tokens} tokens, {args.tokens} new tokens, best of {args.repeats}")
    print(f"{'':32}{'tierserve':>12}{'llama.cpp':>12}{'ratio':>10}")
    for i, (ours, ref) in enumerate(pairs):
        label = "decode tok/s (gRPC stream)" + (f", pair {i + 1}" if len(pairs) > 1 else "")
        print(f"{label:32}{ours:12.1f}{ref:12.1f}{ours / ref:10.2f}")
    if len(pairs) > 1:
        ratios = sorted(o / r for o, r in pairs)
        mid = len(ratios) // 2
        median = ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2
        print(f"{'median ratio of ' + str(len(pairs)) + ' pairs':32}{'':24}{median:10.2f}")


if __name__ == "__main__":
    main()
