#!/usr/bin/env python3
"""The memory gauges per device and kind against the daemon's load report, under load.

    memory_gauges_test.py BINARY

Two SmolLM2 models in one daemon, on the same devices:
  a: the host executes; layers 0-14 on disk (staging on the host);
  b: sim:0 executes; layers 0-9 rest on the host and 20-29 on disk (staging on
     sim:0 and on the host), so both devices hold weights, staging and KV.

The start-up log says what each model put where: weight bytes per device and
precision, the staging pool's bytes per device, the KV cache's bytes and its
device. tierserve_device_memory_bytes{device,kind} comes from another path, the
device layer's accounting of live buffers. While concurrent streams run on both
models (KV blocks in use on both devices, checked), and again after, every
(device, kind) of weights, staging and kv agrees with the log's sum within 1%:
the difference allowed is the fp32 norm vectors, which are read in place from
the model file and held by no device (0.2% of the host's weights here). Disk:
the offload files' weights. `scratch` is not in the load report (it grows with
the activations carried between devices) and is not compared.
"""
import collections
import os
import re
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_test as dt  # noqa: E402

STREAMS_PER_MODEL = 4
TOKENS = 200  # ~ seconds of decoding: every stream is still running when the gauges are read
KINDS = ("weights", "staging", "kv")


def load_report(log):
    """{(device, kind): bytes} summed over the models, from the start-up log."""
    text = "".join(log)
    want = collections.Counter()
    for device, b in re.findall(r"model \w+: (\S+) \S+: \d+ parameters, (\d+) bytes", text):
        want[(device, "weights")] += int(b)
    for line in re.findall(r"staging pool of \d+ bytes \(prefetch depth \d+\): (.*)", text):
        for b, device in re.findall(r"(\d+) bytes on (\S+?)(?:,|$)", line):
            want[(device, "staging")] += int(b)
    for b, device in re.findall(r"KV cache \d+ blocks of \d+ tokens, fp(?:32|16), (\d+) bytes on (\S+?);", text):
        want[(device, "kv")] += int(b)
    return want


def gauges(text):
    """{(device, kind): bytes} of tierserve_device_memory_bytes."""
    got = {}
    for labels, value in re.findall(r"^tierserve_device_memory_bytes\{([^}]*)\} (\S+)$", text, re.M):
        d = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        got[(d["device"], d["kind"])] = float(value)
    return got


@dt.model_scale
class MemoryGaugesTest(unittest.TestCase):
    def assert_agree(self, want, text, when):
        got = gauges(text)
        for key in sorted(set(want) | {k for k in got if k[1] in KINDS}):
            w, g = want.get(key, 0), got.get(key)
            self.assertIsNotNone(g, f"{when}: no gauge for {key}; gauges: {got}")
            self.assertLessEqual(abs(g - w), 0.01 * w, f"{when}: {key} gauge {g:.0f}, load report {w}")

    def test_gauges_agree_with_the_load_report_under_load(self):
        import grpc
        from tierserve.v1 import generation_pb2 as pb, generation_pb2_grpc as pb_grpc
        with tempfile.TemporaryDirectory() as tmp:
            folder = os.path.join(tmp, "offload")
            config = os.path.join(tmp, "c.yaml")
            common = (f"    path: {dt.SMOLLM2}\n    max_batch_size: {STREAMS_PER_MODEL}\n"
                      "    max_sequence_length: 256\n    kv_cache_bytes: 48MiB\n"
                      f"    offload_folder: {folder}\n")
            with open(config, "w") as f:
                f.write("server:\n  sim_device: {memory: 1GiB, link_bandwidth: 16GB}\nmodels:\n"
                        '  - name: a\n    device_map: {"": cpu, model.layers.0-14: disk}\n' + common +
                        '  - name: b\n    device_map: {"": sim:0, model.layers.0-9: cpu, '
                        "model.layers.20-29: disk}\n" + common)
            d = dt.Daemon(f"--config={config}")
            self.addCleanup(d.kill)
            self.assertTrue(d.ready.wait(180), "models did not load:\n" + "".join(d.log))
            want = load_report(d.log)
            # Every kind on both memory devices, and the disk: the config puts them there.
            for key in [(dev, k) for dev in ("cpu", "sim:0") for k in KINDS] + [("disk", "weights")]:
                self.assertGreater(want.get(key, 0), 0, f"{key} missing from the load log:\n" + "".join(d.log))
            self.assert_agree(want, d.metrics(), "idle")

            # Concurrent streams on both models; the gauges are read once every
            # stream has its first tokens (each model's four decode together).
            started = threading.Barrier(2 * STREAMS_PER_MODEL + 1, timeout=300)
            errors = []

            def stream(model, i):
                try:
                    with grpc.insecure_channel(f"127.0.0.1:{d.port}") as channel:
                        stub = pb_grpc.GenerationStub(channel)
                        req = pb.GenerateStreamRequest(
                            model=model, prompt=pb.Prompt(text=f"Story {i}: the lighthouse keeper"),
                            parameters=pb.GenerationParameters(max_new_tokens=TOKENS, temperature=0.0,
                                                               ignore_eos=True))
                        n = 0
                        for msg in stub.GenerateStream(req, timeout=300):
                            if n == 0:
                                started.wait()
                            n += len(msg.tokens)
                        if n != TOKENS:
                            errors.append(f"{model}/{i}: {n} tokens")
                except Exception as e:  # noqa: BLE001
                    errors.append(f"{model}/{i}: {e!r}")
                    started.abort()

            threads = [threading.Thread(target=stream, args=(m, i))
                       for m in ("a", "b") for i in range(STREAMS_PER_MODEL)]
            for t in threads:
                t.start()
            try:
                started.wait()
                text = d.metrics()
                for model in ("a", "b"):
                    used = dt.metric_value(text, "tierserve_kv_cache_blocks_used", model=model)
                    self.assertGreater(used, 0, f"model {model} holds no KV blocks under load")
                self.assert_agree(want, text, "under load")
            finally:
                for t in threads:
                    t.join(300)
            self.assertEqual(errors, [])
            self.assert_agree(want, d.metrics(), "after the load")


if __name__ == "__main__":
    dt.main()
