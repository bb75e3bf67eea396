#!/usr/bin/env python3
"""Disk offload through the daemon: SmolLM2 with half its decoder layers on
disk serves the tokens of the all-resident model, reports those layers on
disk, and holds only what it keeps in memory.

    offload_test.py BINARY

Peak memory: during a 256-token greedy generation, the daemon's peak resident
set (VmHWM) with layers 0-14 on disk must be at most
1.15 x (weights resident + staging pool + KV cache) + the resident set it had
before loading any model — all figures from the daemon's own start-up log —
and at least half of the offloaded weight bytes under the all-resident
daemon's peak. Uses daemon_test.py's Daemon (Debian's python3-grpcio).
"""
import os
import re
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_test as dt  # noqa: E402

NAME = "smollm2"
TOKENS = 256


def log_figures(log):
    """Bytes the daemon reported: before loading, weights per device, staging, KV."""
    text = "".join(log)
    before = int(re.search(r"resident memory before loading models: (\d+) bytes", text).group(1))
    weights = {}
    for device, b in re.findall(rf"model {NAME}: (\S+) \S+: \d+ parameters, (\d+) bytes", text):
        weights[device] = weights.get(device, 0) + int(b)
    m = re.search(r"staging pool of (\d+) bytes", text)
    staging = int(m.group(1)) if m else 0
    kv = int(re.search(r"KV cache \d+ blocks of \d+ tokens, fp(?:32|16), (\d+) bytes", text).group(1))
    return before, weights, staging, kv


def weights_fp32(info):
    """Bytes of the fp32 modules in memory: the norm vectors, which the device layer does not hold."""
    return sum(m.weight_bytes for m in info.modules if m.placement == "cpu" and m.precision == "fp32")


class OffloadTest(unittest.TestCase):
    def run_daemon(self, tmp, extra):
        """(token ids, peak RSS, log figures, ListModels entry) of one greedy generation."""
        import grpc
        from tierserve.v1 import generation_pb2 as pb, generation_pb2_grpc as pb_grpc
        config = os.path.join(tmp, "offload.yaml")
        with open(config, "w") as f:
            f.write(f"models:\n  - name: {NAME}\n    path: {dt.SMOLLM2}\n"
                    "    max_batch_size: 1\n    max_sequence_length: 512\n"
                    "    kv_cache_bytes: 24MiB\n" + extra)
        d = dt.Daemon(f"--config={config}")
        try:
            self.assertTrue(d.ready.wait(120), "model did not load:\n" + "".join(d.log))
            with grpc.insecure_channel(f"127.0.0.1:{d.port}") as channel:
                stub = pb_grpc.GenerationStub(channel)
                req = pb.GenerateStreamRequest(
                    model=NAME, prompt=pb.Prompt(text="The history of the printing press"),
                    parameters=pb.GenerationParameters(max_new_tokens=TOKENS, temperature=0.0,
                                                       ignore_eos=True))
                ids = []
                for msg in stub.GenerateStream(req, timeout=600):
                    ids += [t.id for t in msg.tokens]
                info = stub.ListModels(pb.ListModelsRequest(), timeout=10).models[0]
            peak = dt.vm_field(d.proc.pid, "VmHWM")
            text = d.metrics()
            disk_metric = dt.metric_value(text, "tierserve_model_weight_bytes", model=NAME,
                                          device="disk")
            # What the device layer counts on the host: the weights resting there (the norm
            # vectors aside) and the staging pool.
            host = {kind: dt.metric_value(text, "tierserve_device_memory_bytes", device="cpu",
                                          kind=kind) for kind in ("weights", "staging")}
            return ids, peak, log_figures(d.log), info, (disk_metric, host)
        finally:
            d.kill()

    def test_half_on_disk_matches_resident_and_holds_what_it_keeps(self):
        with tempfile.TemporaryDirectory() as tmp:
            folder = os.path.join(tmp, "offload")
            resident_ids, resident_peak, (_, resident_weights, _, _), _, _ = self.run_daemon(tmp, "")
            ids, peak, (before, weights, staging, kv), info, (disk_metric, host) = self.run_daemon(
                tmp, f'    device_map: {{"": cpu, model.layers.0-14: disk}}\n'
                     f"    offload_folder: {folder}\n")
            self.assertEqual(len(ids), TOKENS)
            self.assertEqual(ids, resident_ids)
            # The layers' linear modules rest on disk; their norm vectors stay in memory.
            placed = [(m.modules, m.placement) for m in info.modules]
            self.assertIn(("model.layers.0-14.self_attn", "disk"), placed)
            self.assertIn(("model.layers.0-14.mlp", "disk"), placed)
            self.assertIn(("model.layers.15-29.mlp", "cpu"), placed)
            self.assertTrue(os.path.exists(os.path.join(folder, f"{NAME}.offload")))

            on_disk = weights.get("disk", 0)
            in_memory = weights.get("cpu", 0)
            bound = 1.15 * (in_memory + staging + kv) + before
            mib = 1 << 20
            print(f"before loading {before / mib:.1f} MiB; weights in memory {in_memory / mib:.1f} MiB, "
                  f"on disk {on_disk / mib:.1f} MiB; staging {staging / mib:.1f} MiB; KV {kv / mib:.1f} MiB")
            print(f"peak RSS: half on disk {peak / mib:.1f} MiB (bound {bound / mib:.1f} MiB), "
                  f"all resident {resident_peak / mib:.1f} MiB "
                  f"(weights {sum(resident_weights.values()) / mib:.1f} MiB)")
            self.assertGreater(on_disk, 0)
            self.assertEqual(disk_metric, on_disk)
            self.assertEqual(host["staging"], staging)
            fp32_vectors = weights_fp32(info)
            self.assertEqual(host["weights"], in_memory - fp32_vectors)
            self.assertLessEqual(peak, bound)
            self.assertLessEqual(peak, resident_peak - on_disk / 2)


class TruncatedOffloadTest(unittest.TestCase):
    def test_a_truncated_offload_file_fails_its_request_and_stops_only_that_model(self):
        import grpc
        from tierserve.v1 import generation_pb2 as pb, generation_pb2_grpc as pb_grpc
        with tempfile.TemporaryDirectory() as tmp:
            folder = os.path.join(tmp, "offload")
            config = os.path.join(tmp, "c.yaml")
            with open(config, "w") as f:
                # prefetch_depth 0: one staging slot, so every step reads the file again.
                f.write(f"models:\n  - name: disk\n    path: {dt.MODEL}\n"
                        f'    device_map: {{"": disk}}\n    offload_folder: {folder}\n'
                        "    prefetch_depth: 0\n"
                        f"  - name: resident\n    path: {dt.MODEL}\n")
            d = dt.Daemon(f"--config={config}")
            try:
                self.assertTrue(d.ready.wait(120), "models did not load:\n" + "".join(d.log))
                with grpc.insecure_channel(f"127.0.0.1:{d.port}") as channel:
                    stub = pb_grpc.GenerationStub(channel)

                    def generate(model):
                        return stub.Generate(pb.GenerateRequest(
                            model=model, prompts=[pb.Prompt(text="hello world")],
                            parameters=pb.GenerationParameters(max_new_tokens=4, temperature=0.0)),
                            timeout=60)

                    before = generate("disk").completions[0].text
                    self.assertEqual(before, generate("resident").completions[0].text)
                    offload = os.path.join(folder, "disk.offload")
                    os.truncate(offload, 100)
                    with self.assertRaises(grpc.RpcError) as e:
                        generate("disk")
                    self.assertEqual(e.exception.code(), grpc.StatusCode.DATA_LOSS)
                    self.assertIn(f"offload file {offload}", e.exception.details())
                    # The model reports why it stopped; later requests are refused at once.
                    info = {m.name: m for m in stub.ListModels(pb.ListModelsRequest(), timeout=10).models}
                    self.assertEqual(info["disk"].state, pb.MODEL_STATE_FAILED)
                    self.assertIn("restart the daemon to rewrite it", info["disk"].state_message)
                    with self.assertRaises(grpc.RpcError) as e:
                        generate("disk")
                    self.assertEqual(e.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
                    self.assertIn("model disk stopped serving", e.exception.details())
                    # The other model serves on, and the process is alive.
                    self.assertEqual(generate("resident").completions[0].text, before)
                    self.assertEqual(info["resident"].state, pb.MODEL_STATE_READY)
                    self.assertIsNone(d.proc.poll())
            finally:
                d.kill()


if __name__ == "__main__":
    dt.main()  # runs this file's tests (unittest looks in __main__)
