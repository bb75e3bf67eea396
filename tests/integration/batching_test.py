#!/usr/bin/env python3
"""Continuous batching through the real `tierserve serve` binary and SmolLM2:
many concurrent streams, each checked token for token against the same
request served alone; cancellation, preemption and the prefix cache, read
from the daemon's metrics.

    batching_test.py BINARY

Uses daemon_test.py's Daemon and stub generation (Debian's python3-grpcio).
"""
import os
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_test as dt  # noqa: E402

NAME = "smollm2"
PROMPTS = ["What is the capital of France?", "Name three colours.", "Count from one to ten.",
           "Write a haiku about rain.", "What is 12 times 12?", "Say hello in Spanish.",
           "Why is the sky blue?", "List two prime numbers."]


def serve(tmp, **keys):
    """A daemon serving SmolLM2 as `smollm2` with the given model keys."""
    config = os.path.join(tmp, "batching.yaml")
    with open(config, "w") as f:
        f.write(f"models:\n  - name: {NAME}\n    path: {dt.SMOLLM2}\n")
        for k, v in keys.items():
            f.write(f"    {k}: {v}\n")
    d = dt.Daemon(f"--config={config}")
    if not d.ready.wait(120):
        d.kill()
        raise RuntimeError("model did not load:\n" + "".join(d.log))
    return d


def request(pb, i, max_new_tokens):
    """Request i: a chat prompt, greedy when i is even, sampled with seed i when odd."""
    chat = pb.Chat(messages=[pb.ChatMessage(role="user", content=PROMPTS[i % len(PROMPTS)])])
    if i % 2 == 0:
        params = pb.GenerationParameters(max_new_tokens=max_new_tokens, temperature=0.0, ignore_eos=True)
    else:
        params = pb.GenerationParameters(max_new_tokens=max_new_tokens, temperature=0.8, top_p=0.95,
                                         seed=i, ignore_eos=True)
    return pb.GenerateStreamRequest(model=NAME, prompt=pb.Prompt(chat=chat), parameters=params)


def stream(stub, req, cancel_after=None):
    """(token ids, text, finish reason or the status code's name) of one stream."""
    import grpc
    ids, text = [], ""
    call = stub.GenerateStream(req, timeout=600)
    try:
        for msg in call:
            ids += [t.id for t in msg.tokens]
            text += msg.text
            if cancel_after is not None and len(ids) >= cancel_after:
                call.cancel()
            if msg.finish_reason:
                return ids, text, msg.finish_reason
    except grpc.RpcError as e:
        return ids, text, e.code().name + ": " + (e.details() or "")
    return ids, text, None


def wait_metric(d, name, want, seconds=30):
    """Polls the metric until it equals `want` (the engine updates it after its step)."""
    value = None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = dt.metric_value(d.metrics(), name, model=NAME)
        if value == want:
            return value
        time.sleep(0.05)
    return value


class BatchingTest(unittest.TestCase):
    def run_clients(self, stub, clients, per_client, make, cancel=lambda c, r: None):
        """`clients` threads, each streaming `per_client` requests one after the other."""
        results, errors = {}, []

        def client(c):
            try:
                for r in range(per_client):
                    i = c * per_client + r
                    results[i] = stream(stub, make(i), cancel(c, r))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(900)
        self.assertEqual(errors, [])
        self.maxDiff = None
        self.assertEqual(len(results), clients * per_client)
        return results

    def test_64_clients_of_4_requests_match_their_single_runs(self):
        import grpc
        from tierserve.v1 import generation_pb2 as pb, generation_pb2_grpc as pb_grpc
        with tempfile.TemporaryDirectory() as tmp:
            d = serve(tmp, max_batch_size=32, max_sequence_length=512)
            try:
                with grpc.insecure_channel(f"127.0.0.1:{d.port}") as ch:
                    stub = pb_grpc.GenerationStub(ch)
                    distinct = 2 * len(PROMPTS)  # every prompt greedy and sampled
                    alone = [stream(stub, request(pb, i, 12)) for i in range(distinct)]
                    for ids, _, reason in alone:
                        self.assertEqual(len(ids), 12)
                        self.assertEqual(reason, pb.FINISH_REASON_LENGTH)
                    results = self.run_clients(stub, 64, 4, lambda i: request(pb, i % distinct, 12))
                    for i, got in results.items():
                        self.assertEqual(got, alone[i % distinct], f"request {i}")
                    self.assertEqual(wait_metric(d, "tierserve_kv_cache_blocks_used", 0.0), 0.0)
                    text = d.metrics()
                    steps = dt.metric_value(text, "tierserve_batch_size_count", model=NAME)
                    alone_steps = dt.metric_value(text, "tierserve_batch_size_bucket", model=NAME, le="1")
                    self.assertLess(alone_steps, steps, "no step ran more than one sequence")
                    self.assertGreater(dt.metric_value(text, "tierserve_batch_size_sum", model=NAME) / steps, 4)
            finally:
                d.kill()

    def test_cancelled_streams_free_their_blocks_and_a_small_pool_preempts(self):
        import grpc
        from tierserve.v1 import generation_pb2 as pb, generation_pb2_grpc as pb_grpc
        with tempfile.TemporaryDirectory() as tmp:
            # One block of SmolLM2 is 737,280 bytes: 30 blocks for 16 sequences of ~120 tokens.
            d = serve(tmp, max_batch_size=16, max_sequence_length=256, kv_cache_bytes="22MiB")
            try:
                total = wait_metric(d, "tierserve_kv_cache_blocks_total", 31.0)
                self.assertEqual(total, 31.0)
                with grpc.insecure_channel(f"127.0.0.1:{d.port}") as ch:
                    stub = pb_grpc.GenerationStub(ch)
                    alone = [stream(stub, request(pb, i, 80)) for i in range(16)]
                    # Every odd client cancels its stream after 5 tokens.
                    results = self.run_clients(stub, 16, 1, lambda i: request(pb, i, 80),
                                               cancel=lambda c, r: 5 if c % 2 else None)
                    for i, (ids, text, reason) in results.items():
                        if i % 2:
                            self.assertTrue(reason.startswith("CANCELLED"), f"request {i}: {reason}")
                            self.assertEqual(ids[:5], alone[i][0][:5], f"request {i}")
                        else:
                            self.assertEqual((ids, text, reason), alone[i], f"request {i}")
                    self.assertEqual(wait_metric(d, "tierserve_kv_cache_blocks_used", 0.0), 0.0)
                    self.assertGreater(dt.metric_value(d.metrics(), "tierserve_preemptions_total", model=NAME), 0)
                    # The freed blocks serve a second round in full.
                    again = self.run_clients(stub, 16, 1, lambda i: request(pb, i, 80))
                    for i, got in again.items():
                        self.assertEqual(got, alone[i], f"request {i}")
                    self.assertEqual(wait_metric(d, "tierserve_kv_cache_blocks_used", 0.0), 0.0)
            finally:
                d.kill()

    def test_second_chat_request_takes_the_system_prompt_from_the_prefix_cache(self):
        import grpc
        from tierserve.v1 import generation_pb2 as pb, generation_pb2_grpc as pb_grpc
        with tempfile.TemporaryDirectory() as tmp:
            d = serve(tmp)
            try:
                with grpc.insecure_channel(f"127.0.0.1:{d.port}") as ch:
                    stub = pb_grpc.GenerationStub(ch)
                    first = stream(stub, request(pb, 0, 4))
                    self.assertEqual(len(first[0]), 4)
                    self.assertEqual(dt.metric_value(d.metrics(), "tierserve_prefix_cache_hits_total", model=NAME), 0)
                    queried = dt.metric_value(d.metrics(), "tierserve_prefix_cache_queries_total", model=NAME)
                    second = stream(stub, request(pb, 2, 4))
                    self.assertEqual(len(second[0]), 4)
                    text = d.metrics()
                    # The rendered default system prompt spans at least one full 16-token block.
                    hits = dt.metric_value(text, "tierserve_prefix_cache_hits_total", model=NAME)
                    self.assertGreaterEqual(hits, 16)
                    self.assertEqual(hits % 16, 0)
                    self.assertGreater(dt.metric_value(text, "tierserve_prefix_cache_queries_total", model=NAME),
                                       queried)
            finally:
                d.kill()


def unread_stream(stub, pb):
    """A greedy stream of 240 tokens with 20 logprobs each (~2.4 KB a token), left unread."""
    params = pb.GenerationParameters(max_new_tokens=240, temperature=0.0, ignore_eos=True,
                                     logprobs=True, top_logprobs=20)
    return stub.GenerateStream(pb.GenerateStreamRequest(
        model="tiny_llama", prompt=pb.Prompt(text="a"), parameters=params), timeout=120)


def wait_for_metric(daemon, name, value, seconds=60):
    """Polls the tiny model's `name` until it equals `value`; returns the last reading."""
    got = None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = dt.metric_value(daemon.metrics(), name, model="tiny_llama")
        if got == value:
            break
        time.sleep(0.05)
    return got


class SlowReaderTest(unittest.TestCase):
    def test_unread_output_pauses_the_request_and_others_are_served(self):
        import grpc
        from tierserve.v1 import generation_pb2 as pb, generation_pb2_grpc as pb_grpc
        # A small bound, so the tiny model's output fills it quickly.
        d = dt.Daemon("--testing_max_unread_stream_bytes=1024")
        try:
            self.assertTrue(d.ready.wait(60), "".join(d.log))
            # Without BDP probing the client's flow-control window stays at
            # its initial 64 KiB, which the tiny model's output overflows.
            with grpc.insecure_channel(f"127.0.0.1:{d.port}", options=[("grpc.http2.bdp_probe", 0)]) as ch:
                stub = pb_grpc.GenerationStub(ch)
                slow = unread_stream(stub, pb)
                # Nothing read: the request pauses once its unread output passes the bound.
                self.assertEqual(wait_for_metric(d, "tierserve_requests_paused", 1), 1,
                                 "the unread stream never paused")
                # The daemon serves others meanwhile.
                other = stub.Generate(pb.GenerateRequest(
                    model="tiny_llama", prompts=[pb.Prompt(text="b")],
                    parameters=pb.GenerationParameters(max_new_tokens=8, ignore_eos=True)), timeout=60)
                self.assertEqual(len(other.completions[0].tokens), 8)
                # Reading resumes it; nothing was lost.
                msgs = list(slow)
                self.assertEqual(sum(len(m.tokens) for m in msgs), 240)
                self.assertEqual(msgs[-1].finish_reason, pb.FINISH_REASON_LENGTH)
        finally:
            d.kill()

    def test_finished_but_unread_streams_count_against_the_queue(self):
        import grpc
        from tierserve.v1 import generation_pb2 as pb, generation_pb2_grpc as pb_grpc
        d = dt.Daemon("--max_queued_requests=1", "--testing_max_unread_stream_bytes=8388608")
        try:
            self.assertTrue(d.ready.wait(60), "".join(d.log))
            with grpc.insecure_channel(f"127.0.0.1:{d.port}", options=[("grpc.http2.bdp_probe", 0)]) as ch:
                stub = pb_grpc.GenerationStub(ch)
                # ~2.4 KB a token: 240 tokens overflow the client's 64 KiB
                # window and the transport's buffers but stay under the
                # (raised) bound that would pause the request, so it finishes
                # generating with its output queued, unread.
                unread = unread_stream(stub, pb)
                self.assertEqual(wait_for_metric(d, "tierserve_generated_tokens_total", 240), 240,
                                 "the unread stream did not finish generating")
                small = pb.GenerateRequest(model="tiny_llama", prompts=[pb.Prompt(text="b")],
                                           parameters=pb.GenerationParameters(max_new_tokens=2, ignore_eos=True))
                with self.assertRaises(grpc.RpcError) as cm:
                    stub.Generate(small, timeout=60)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
                self.assertIn("1 finished but not yet read by their clients", cm.exception.details())
                # Once read, it no longer counts.
                msgs = list(unread)
                self.assertEqual(sum(len(m.tokens) for m in msgs), 240)
                deadline = time.monotonic() + 30
                while True:
                    try:
                        self.assertEqual(len(stub.Generate(small, timeout=60).completions[0].tokens), 2)
                        break
                    except grpc.RpcError as e:
                        # The call ends on the client before the server's OnDone: retry briefly.
                        if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)
        finally:
            d.kill()


if __name__ == "__main__":
    dt.main()  # runs this file's tests (unittest looks in __main__)
