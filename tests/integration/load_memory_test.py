#!/usr/bin/env python3
"""Peak memory while loading SmolLM2: quantized at load to nf4 (double quant)
against every linear layer in fp32. Each module is read, quantized and its
fp32 copy dropped before the next, so the nf4 load must peak well under the
fp32 one (the quantization issue asks for < 60%).

    load_memory_test.py BINARY

The daemon is started with each config, and its peak resident set (VmHWM)
is read once it reports serving, before any request.
"""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf")


def peak_rss_kib(binary, model_yaml):
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "c.yaml")
        with open(config, "w") as f:
            f.write(f"models:\n  - name: m\n    path: {MODEL}\n{model_yaml}")
        proc = subprocess.Popen([binary, "serve", f"--config={config}", "--listen=127.0.0.1:0",
                                 "--metrics_listen=127.0.0.1:0", "--threads=1"],
                                stderr=subprocess.PIPE, text=True)
        log = []
        try:
            for line in proc.stderr:  # blocks until the daemon writes; ends if it exits
                log.append(line)
                if line.startswith("tierserve: serving"):
                    with open(f"/proc/{proc.pid}/status") as s:
                        for field in s:
                            if field.startswith("VmHWM:"):
                                return int(field.split()[1]), log
            raise RuntimeError("the daemon exited before serving:\n" + "".join(log))
        finally:
            proc.kill()
            proc.wait(10)


def main():
    binary = sys.argv[1]
    fp32, log32 = peak_rss_kib(binary, '    device_map: {"": {device: cpu, precision: fp32}}\n')
    nf4, log4 = peak_rss_kib(binary, "    quantization: {load_in_4bit: true, bnb_4bit_quant_type: nf4, "
                                     "bnb_4bit_use_double_quant: true}\n")
    for line in log32 + log4:
        if "parameters" in line:
            print(line.rstrip())
    ratio = nf4 / fp32
    print(f"peak RSS while loading: fp32 {fp32 / 1024:.1f} MiB, nf4 {nf4 / 1024:.1f} MiB, ratio {ratio:.3f}")
    if ratio >= 0.6:
        print("FAIL: the nf4 load peaks at 60% or more of the fp32 load")
        sys.exit(1)


if __name__ == "__main__":
    main()
