#!/usr/bin/env python3
"""The offload, model-load and build-info metrics of a live daemon.

    offload_metrics_test.py BINARY

tiny_llama (2 decoder layers) is served with both decoder layers on disk and
prefetch_depth 0. The staging pool then has one slot of the largest offloaded
group, and the two layers (same size) take turns in it: every forward reads
each layer from the offload file once, so after S engine steps

    tierserve_offload_bytes_total{source="disk",destination="cpu"} = 2 x group bytes x S

exactly, where the group bytes are the staging pool's size from the daemon's
start-up log (one slot, host execution). One greedy stream of N tokens with
ignore_eos takes S = N steps (the prefill forward gives the first token).
A single layer on disk is also checked: it stays staged from one forward to
the next, so it is read once whatever the number of steps.

Also: tierserve_model_load_seconds > 0, tierserve_model_state{state="serving"}
= 1 (the others 0), and tierserve_build_info{version,cuda} = 1 with the
version `tierserve version` prints. Uses daemon_test.py's Daemon.
"""
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_test as dt  # noqa: E402

NAME = "tiny"
TOKENS = 12


def staging_bytes(log):
    m = re.search(r"staging pool of (\d+) bytes \(prefetch depth (\d+)\)", "".join(log))
    if not m:
        raise AssertionError("no staging pool in the log:\n" + "".join(log))
    assert m.group(2) == "0", m.group(0)
    return int(m.group(1))


class OffloadMetricsTest(unittest.TestCase):
    def serve(self, tmp, device_map):
        folder = os.path.join(tmp, "offload")
        config = os.path.join(tmp, "c.yaml")
        with open(config, "w") as f:
            f.write(f"models:\n  - name: {NAME}\n    path: {dt.MODEL}\n"
                    f"    device_map: {device_map}\n    offload_folder: {folder}\n"
                    "    prefetch_depth: 0\n    max_batch_size: 1\n")
        d = dt.Daemon(f"--config={config}")
        self.addCleanup(d.kill)
        self.assertTrue(d.ready.wait(60), "model did not load:\n" + "".join(d.log))
        return d

    def generate(self, d, tokens):
        import grpc
        from tierserve.v1 import generation_pb2 as pb, generation_pb2_grpc as pb_grpc
        with grpc.insecure_channel(f"127.0.0.1:{d.port}") as channel:
            stub = pb_grpc.GenerationStub(channel)
            req = pb.GenerateStreamRequest(
                model=NAME, prompt=pb.Prompt(text="hello offload"),
                parameters=pb.GenerationParameters(max_new_tokens=tokens, temperature=0.0, ignore_eos=True))
            ids = [t.id for msg in stub.GenerateStream(req, timeout=60) for t in msg.tokens]
        self.assertEqual(len(ids), tokens)

    def offload(self, text):
        value = lambda name, **kw: dt.metric_value(text, name, model=NAME, **kw)  # noqa: E731
        return {
            "disk_bytes": value("tierserve_offload_bytes_total", source="disk", destination="cpu"),
            "activation_bytes": value("tierserve_offload_bytes_total", source="activations",
                                      destination="next_stage"),
            "staged": value("tierserve_offload_groups_staged_total"),
            "hits": value("tierserve_offload_prefetch_hits_total"),
            "transfer": value("tierserve_offload_transfer_seconds_total"),
            "stall": value("tierserve_offload_stall_seconds_total"),
            "steps": value("tierserve_batch_size_count"),
        }

    def offload_after(self, d, steps):
        """The counters once `steps` steps are published: the engine publishes a
        step's counters after the step, which may be after the client has its
        last token. Polled, up to 30 s."""
        deadline = time.monotonic() + 30
        while True:
            got = self.offload(d.metrics())
            if got["steps"] >= steps or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def test_two_layers_on_disk_are_read_once_per_step(self):
        with tempfile.TemporaryDirectory() as tmp:
            d = self.serve(tmp, '{"": cpu, model.layers.0-1: disk}')
            group = staging_bytes(d.log)
            self.assertGreater(group, 0)
            before = self.offload(d.metrics())
            self.assertEqual(before["disk_bytes"], 0)
            self.assertEqual(before["staged"], 0)
            self.assertEqual(before["steps"], 0)
            self.generate(d, TOKENS)
            after = self.offload_after(d, TOKENS)
            print(f"group {group} bytes; after {TOKENS} tokens: {after}")
            self.assertEqual(after["steps"], TOKENS)
            self.assertEqual(after["disk_bytes"], 2 * group * TOKENS)
            self.assertEqual(after["staged"], 2 * TOKENS)
            self.assertEqual(after["hits"], 0)  # nothing is read ahead at depth 0
            self.assertGreater(after["transfer"], 0)
            self.assertGreaterEqual(after["stall"], 0)
            self.assertEqual(after["activation_bytes"], 0)  # one execution device
            # No host -> execution device series: the math runs on the cpu.
            self.assertIsNone(dt.metric_value(d.metrics(), "tierserve_offload_bytes_total", source="cpu"))
            # A second stream adds exactly its steps' reads.
            self.generate(d, 5)
            again = self.offload_after(d, TOKENS + 5)
            self.assertEqual(again["steps"], TOKENS + 5)
            self.assertEqual(again["disk_bytes"], 2 * group * (TOKENS + 5))

    def test_one_layer_on_disk_stays_staged(self):
        with tempfile.TemporaryDirectory() as tmp:
            d = self.serve(tmp, '{"": cpu, model.layers.0: disk}')
            group = staging_bytes(d.log)
            self.generate(d, TOKENS)
            after = self.offload_after(d, TOKENS)
            self.assertEqual(after["steps"], TOKENS)
            self.assertEqual(after["disk_bytes"], group)
            self.assertEqual(after["staged"], 1)

    def test_load_state_and_build_info(self):
        with tempfile.TemporaryDirectory() as tmp:
            d = self.serve(tmp, '{"": cpu, model.layers.0: disk}')
            text = d.metrics()
            self.assertGreater(dt.metric_value(text, "tierserve_model_load_seconds", model=NAME), 0)
            self.assertEqual(dt.metric_value(text, "tierserve_model_state", model=NAME, state="serving"), 1)
            self.assertEqual(dt.metric_value(text, "tierserve_model_state", model=NAME, state="loading"), 0)
            self.assertEqual(dt.metric_value(text, "tierserve_model_state", model=NAME, state="failed"), 0)
            printed = subprocess.run([dt.BINARY, "version"], capture_output=True, text=True,
                                     check=True).stdout
            m = re.fullmatch(r"tierserve (\S+) \(commit (\S+)\)\n", printed)
            self.assertIsNotNone(m, f"tierserve version printed {printed!r}")
            version, commit = m.groups()
            # Built from a git checkout: the commit, not "unknown".
            if os.path.exists(os.path.join(dt.ROOT, ".git")):
                self.assertRegex(commit, r"^[0-9a-f]{12}(\+dirty)?$")
            self.assertEqual(dt.metric_value(text, "tierserve_build_info", version=version, commit=commit), 1)
            cuda = re.search(r'tierserve_build_info\{[^}]*cuda="(true|false)"', text)
            self.assertIsNotNone(cuda, "no cuda label on tierserve_build_info")


class LoadingStateTest(unittest.TestCase):
    def test_state_is_loading_before_the_model_is_ready(self):
        d = dt.Daemon("--testing_load_delay_ms=3000")
        try:
            text = d.metrics()
            self.assertEqual(dt.metric_value(text, "tierserve_model_state", state="loading"), 1)
            self.assertEqual(dt.metric_value(text, "tierserve_model_state", state="serving"), 0)
            self.assertIsNone(dt.metric_value(text, "tierserve_model_load_seconds"))
            self.assertTrue(d.ready.wait(60), "model did not load:\n" + "".join(d.log))
            text = d.metrics()
            self.assertEqual(dt.metric_value(text, "tierserve_model_state", state="serving"), 1)
            self.assertEqual(dt.metric_value(text, "tierserve_model_state", state="loading"), 0)
        finally:
            d.kill()


if __name__ == "__main__":
    dt.main()
