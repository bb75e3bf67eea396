#!/usr/bin/env python3
"""Soak: many requests from concurrent clients against the real daemon, with
cancellations, deadlines, bad requests and slow readers mixed in.

    soak_test.py BINARY [--requests N] [--clients C] [--model PATH] [--seed S]

Checks, and exits 1 if any fails:
- every request is answered, with the status its kind allows;
- every completed stream and unary answer equals the same request served
  alone before the soak (nothing lost, duplicated or reordered);
- after the soak: running, waiting and paused requests and used KV blocks
  back to 0; the daemon's resident memory within 10% of what it was after
  the warm-up; its open file descriptors back to what they were before the
  clients connected.
CI runs a short version (ctest integration.soak); the long run is by hand.
"""
import argparse
import collections
import os
import random
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_test as dt  # noqa: E402

PROMPTS = ["hello", "the cat sat on", "one two three four", "a", "lorem ipsum dolor sit amet",
           "what is the capital", "x y z", "numbers: 1 2 3"]
LENGTHS = [1, 4, 12, 32]
KINDS = [("stream", 40), ("unary", 15), ("sampled", 10), ("cancel", 10), ("deadline", 10), ("bad", 10),
         ("slow", 5)]


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_for(predicate, seconds):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


class Soak:
    def __init__(self, args, daemon, grpc, pb, pb_grpc):
        self.args, self.daemon, self.grpc, self.pb, self.pb_grpc = args, daemon, grpc, pb, pb_grpc
        self.model = os.path.basename(args.model.rstrip("/")).removesuffix(".gguf")
        self.expected = {}
        self.counts = collections.Counter()
        self.failures = []
        self.lock = threading.Lock()
        self.next = 0

    def params(self, n, sampled=False, **kw):
        if sampled:
            return self.pb.GenerationParameters(max_new_tokens=n, temperature=0.8, top_p=0.9, seed=1234,
                                                ignore_eos=True, **kw)
        return self.pb.GenerationParameters(max_new_tokens=n, temperature=0.0, ignore_eos=True, **kw)

    def stream_request(self, prompt, n, sampled=False):
        return self.pb.GenerateStreamRequest(model=self.model, prompt=self.pb.Prompt(text=prompt),
                                             parameters=self.params(n, sampled))

    def references(self, stub):
        """Each (prompt, length, sampled) served alone, before the soak."""
        for prompt in PROMPTS:
            for n in LENGTHS:
                for sampled in (False, True):
                    msgs = list(stub.GenerateStream(self.stream_request(prompt, n, sampled), timeout=60))
                    self.expected[(prompt, n, sampled)] = [t.id for m in msgs[:-1] for t in m.tokens]

    def fail(self, what):
        with self.lock:
            self.failures.append(what)

    def take(self):
        with self.lock:
            if self.next >= self.args.requests:
                return None
            self.next += 1
            return self.next

    def check_tokens(self, kind, key, got):
        want = self.expected[key]
        if got != want:
            self.fail(f"{kind} {key}: {len(got)} tokens {got[:8]}... != {len(want)} {want[:8]}...")

    def client(self, index, stub):
        rng = random.Random(self.args.seed * 1000 + index)
        kinds, weights = zip(*KINDS)
        while self.take() is not None:
            kind = rng.choices(kinds, weights)[0]
            prompt, n = rng.choice(PROMPTS), rng.choice(LENGTHS)
            try:
                self.one(kind, prompt, n, stub, rng)
            except self.grpc.RpcError as e:
                self.fail(f"{kind} ({prompt!r}, {n}): unexpected {e.code()}: {e.details()}")
            except Exception as e:  # noqa: BLE001 - any other error is a failure to report
                self.fail(f"{kind} ({prompt!r}, {n}): {type(e).__name__}: {e}")

    def one(self, kind, prompt, n, stub, rng):
        StatusCode = self.grpc.StatusCode
        code = "OK"
        if kind in ("stream", "sampled", "slow"):
            sampled = kind == "sampled"
            got = []
            for m in stub.GenerateStream(self.stream_request(prompt, n, sampled), timeout=120):
                got.extend(t.id for t in m.tokens)
                if kind == "slow":
                    time.sleep(rng.uniform(0.005, 0.03))
            self.check_tokens(kind, (prompt, n, sampled), got)
        elif kind == "unary":
            r = stub.Generate(self.pb.GenerateRequest(model=self.model, prompts=[self.pb.Prompt(text=prompt)],
                                                      parameters=self.params(n)), timeout=120)
            self.check_tokens(kind, (prompt, n, False), [t.id for t in r.completions[0].tokens])
        elif kind == "cancel":
            call = stub.GenerateStream(self.stream_request(prompt, n), timeout=120)
            read = rng.randint(0, 2)
            got = []
            try:
                for m in call:
                    got.extend(t.id for t in m.tokens)
                    read -= 1
                    if read < 0:
                        call.cancel()
            except self.grpc.RpcError as e:
                if e.code() != StatusCode.CANCELLED:
                    raise
                code = "CANCELLED"
            want = self.expected[(prompt, n, False)]
            if got != want[:len(got)]:
                self.fail(f"cancelled stream ({prompt!r}, {n}) read {got} which is not a prefix of {want}")
        elif kind == "deadline":
            got = []
            try:
                for m in stub.GenerateStream(self.stream_request(prompt, n), timeout=rng.uniform(0.001, 0.05)):
                    got.extend(t.id for t in m.tokens)
                self.check_tokens(kind, (prompt, n, False), got)
            except self.grpc.RpcError as e:
                if e.code() != StatusCode.DEADLINE_EXCEEDED:
                    raise
                code = "DEADLINE_EXCEEDED"
                want = self.expected[(prompt, n, False)]
                if got != want[:len(got)]:
                    self.fail(f"expired stream ({prompt!r}, {n}) read {got}, not a prefix of {want}")
        elif kind == "bad":
            bad = rng.randrange(3)
            request = self.stream_request(prompt, n)
            if bad == 0:
                request.model = "no-such-model"
                want = StatusCode.NOT_FOUND
            elif bad == 1:
                request.parameters.max_new_tokens = 1 << 30
                want = StatusCode.INVALID_ARGUMENT
            else:
                request.parameters.top_logprobs = 3
                want = StatusCode.INVALID_ARGUMENT
            try:
                list(stub.GenerateStream(request, timeout=60))
                self.fail(f"bad request {bad} was served")
            except self.grpc.RpcError as e:
                if e.code() != want:
                    raise
                code = want.name
        with self.lock:
            self.counts[(kind, code)] += 1

    def gauges(self):
        text = self.daemon.metrics()
        return {name: dt.metric_value(text, name, model=self.model) for name in (
            "tierserve_requests_running", "tierserve_requests_waiting", "tierserve_requests_paused",
            "tierserve_kv_cache_blocks_used")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--model", default=dt.MODEL)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no_memory_check", action="store_true",
                        help="skip the resident-memory criterion (sanitizer builds: shadow memory and "
                             "the allocator's quarantine make resident memory meaningless)")
    args = parser.parse_args()
    dt.BINARY = os.path.abspath(args.binary)
    with tempfile.TemporaryDirectory() as stubs:
        dt.generate_stubs(stubs)
        import grpc
        from tierserve.v1 import generation_pb2 as pb, generation_pb2_grpc as pb_grpc
        daemon = dt.Daemon(f"--max_queued_requests={4 * args.clients}", model=args.model)
        try:
            if not daemon.ready.wait(120):
                print("model did not load:\n" + "".join(daemon.log), file=sys.stderr)
                return 1
            return run(args, daemon, grpc, pb, pb_grpc)
        finally:
            daemon.kill()


def run(args, daemon, grpc, pb, pb_grpc):
    pid = daemon.proc.pid
    soak = Soak(args, daemon, grpc, pb, pb_grpc)
    fds_before = open_fds(pid)
    channels = [grpc.insecure_channel(f"127.0.0.1:{daemon.port}") for _ in range(args.clients)]
    stubs = [pb_grpc.GenerationStub(c) for c in channels]
    soak.references(stubs[0])
    # Warm-up: every client runs a few requests of every kind, then the memory is read.
    warm = Soak(argparse.Namespace(**{**vars(args), "requests": max(2 * args.clients, args.requests // 20)}),
                daemon, grpc, pb, pb_grpc)
    warm.expected = soak.expected
    threads = [threading.Thread(target=warm.client, args=(i, s)) for i, s in enumerate(stubs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    settled = wait_for(lambda: soak.gauges()["tierserve_requests_running"] == 0, 60)
    rss_warm = dt.vm_field(pid, "VmRSS")

    start = time.monotonic()
    threads = [threading.Thread(target=soak.client, args=(i, s)) for i, s in enumerate(stubs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - start

    failures = warm.failures + soak.failures
    answered = sum(soak.counts.values())
    if answered != args.requests:
        failures.append(f"{answered} of {args.requests} requests answered")
    gauges = wait_for(lambda: (lambda g: g if all(v == 0 for v in g.values()) else None)(soak.gauges()), 60)
    if not settled or gauges is None:
        failures.append(f"gauges not back to 0: {soak.gauges()}")
    # Memory: polled, as the heap is trimmed every few seconds.
    rss_after = None if args.no_memory_check else wait_for(
        lambda: (lambda r: r if r <= 1.10 * rss_warm else None)(dt.vm_field(pid, "VmRSS")), 30)
    rss_after = rss_after or dt.vm_field(pid, "VmRSS")
    if rss_after > 1.10 * rss_warm and not args.no_memory_check:
        failures.append(f"resident memory {rss_after / 2**20:.1f} MiB after the soak, "
                        f"{rss_warm / 2**20:.1f} MiB after the warm-up (> 10% more)")
    for c in channels:
        c.close()
    fds_after = wait_for(lambda: (lambda n: n if n <= fds_before else None)(open_fds(pid)), 30)
    if fds_after is None:
        failures.append(f"{open_fds(pid)} file descriptors open after the clients left, {fds_before} before")
    if daemon.proc.poll() is not None:
        failures.append(f"the daemon exited with {daemon.proc.returncode}")

    print(f"soak: {args.requests} requests from {args.clients} clients in {seconds:.1f} s "
          f"({args.requests / seconds:.1f} requests/s); resident {rss_warm / 2**20:.1f} MiB after warm-up, "
          f"{rss_after / 2**20:.1f} MiB after; fds {fds_before} before, {open_fds(pid)} after")
    for (kind, code), n in sorted(soak.counts.items()):
        print(f"  {kind:9s} {code:18s} {n}")
    for f in failures[:50]:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
