#!/usr/bin/env python3
"""The project's Prometheus config scrapes every metric the README documents,
and the histograms give quantiles, with a real Prometheus on loopback.

    prometheus_test.py BINARY

Starts the daemon on 127.0.0.1 (tiny_llama on the simulated accelerator
sim:0, one layer on disk and one on the host, so that the device-capacity and
offload metrics have samples too), then Prometheus (Debian's `prometheus`)
with deploy/prometheus/prometheus.yml where only the target address is
replaced, and the tierserve job's scrape interval and timeout are set to 1 s
(the file's 5 s would make the test wait several times longer). After a first
scrape it sends streaming and unary requests over gRPC, waits until
Prometheus holds the counts the daemon reports after them, and then, for each
metric of the README's metrics table (parsed, not listed here), requires a
series in Prometheus, the type Prometheus read from the scrape to be the
documented one, and for each histogram observations from the load and a
finite histogram_quantile(0.5, ...) of its rate.
"""
import math
import os
import re
import sys
import tempfile
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_test as dt  # noqa: E402
from prometheus_server import PrometheusServer, wait_until  # noqa: E402

README = os.path.join(dt.ROOT, "README.md")
PROMETHEUS_CONFIG = os.path.join(dt.ROOT, "deploy/prometheus/prometheus.yml")
JOB = "tierserve"
MODEL_NAME = "tiny_llama"
SCRAPE_SECONDS = 1


def documented_metrics(readme_text):
    """(name, type) of every metric in the table of the README's "### Metrics"
    section. A cell may name several metrics: `a_x_total`, `b_total`; an item
    that starts with "_" replaces the last word of the first name
    (`tierserve_kv_cache_blocks_used`, `_cached` is ..._blocks_cached)."""
    section = re.search(r"^### Metrics\n(.*?)(?=^#)", readme_text, re.S | re.M)
    if not section:
        raise ValueError("README.md has no '### Metrics' section")
    rows = [line for line in section.group(1).splitlines() if line.startswith("|")]
    out = []
    for row in rows[2:]:  # past the header and the |---| line
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]
        names = re.findall(r"`([^`]+)`", cells[0])
        kind = cells[1].split(",")[0].strip()
        if not names or not names[0].startswith("tierserve_") or kind not in ("counter", "gauge", "histogram"):
            raise ValueError(f"README.md metrics table: cannot read the row {row!r}")
        first = names[0]
        for n in names:
            out.append((first.rsplit("_", 1)[0] + n if n.startswith("_") else n, kind))
    return out


def derived_config(text, target):
    """deploy/prometheus/prometheus.yml with the target replaced and the scrape
    interval and timeout of the job shortened; every other line as it is."""
    replacements = [
        (r'targets: \["tierserve:9464"\]', f'targets: ["{target}"]'),
        (r"(\n    )scrape_interval: \S+", rf"\g<1>scrape_interval: {SCRAPE_SECONDS}s"),
        (r"(\n    )scrape_timeout: \S+", rf"\g<1>scrape_timeout: {SCRAPE_SECONDS}s"),
    ]
    for pattern, value in replacements:
        text, n = re.subn(pattern, value, text)
        if n != 1:
            raise ValueError(f"{PROMETHEUS_CONFIG}: {pattern!r} matches {n} times, not once")
    return text


class ReadmeTableTest(unittest.TestCase):
    def test_rows_with_several_names(self):
        text = ("### Metrics\n\n| metric | type | labels | meaning |\n|---|---|---|---|\n"
                "| `tierserve_a_total`, `tierserve_b_total` | counter | `model` | x |\n"
                "| `tierserve_blocks_used`, `_cached` | gauge | | y \\| z |\n"
                "| `tierserve_t_seconds` | histogram, 1 ms .. 60 s | `model` | t |\n\n## Next\n")
        self.assertEqual(documented_metrics(text), [
            ("tierserve_a_total", "counter"), ("tierserve_b_total", "counter"),
            ("tierserve_blocks_used", "gauge"), ("tierserve_blocks_cached", "gauge"),
            ("tierserve_t_seconds", "histogram")])
        with self.assertRaises(ValueError):
            documented_metrics("## Metrics\n")
        with self.assertRaises(ValueError):
            documented_metrics("### Metrics\n| metric | type |\n|---|---|\n| `x_total` | counter |\n\n## N\n")


class PrometheusServerTest(unittest.TestCase):
    def test_ready_whichever_log_line_comes_first(self):
        """Prometheus logs "Server is ready" and "Listening on <port>" from two
        goroutines, in either order; the harness needs both, in any order."""
        for first, second in ((READY_LINE, LISTENING_LINE), (LISTENING_LINE, READY_LINE)):
            with tempfile.TemporaryDirectory() as tmp:
                fake = os.path.join(tmp, "prometheus")
                with open(fake, "w") as f:
                    f.write(f"#!/bin/sh\necho '{first}' >&2\necho '{second}' >&2\nexec sleep 60\n")
                os.chmod(fake, 0o755)
                prom = PrometheusServer("", binary=fake, start_timeout=10)
                try:
                    self.assertEqual(prom.port, 45678)
                finally:
                    prom.stop()


READY_LINE = 'ts=0 caller=main.go:973 level=info msg="Server is ready to receive web requests."'
LISTENING_LINE = 'ts=0 caller=tls_config.go:232 level=info component=web msg="Listening on" address=127.0.0.1:45678'


class PrometheusTest(unittest.TestCase):
    def test_every_documented_metric_scraped(self):
        import grpc
        from tierserve.v1 import generation_pb2 as pb, generation_pb2_grpc as pb_grpc
        with open(README) as f:
            metrics = documented_metrics(f.read())
        self.assertGreaterEqual(len(metrics), 20, f"the README's metrics table parsed to {metrics}")
        histograms = [n for n, kind in metrics if kind == "histogram"]
        self.assertTrue(histograms, "no histogram in the README's metrics table")

        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        config = os.path.join(tmp.name, "c.yaml")
        with open(config, "w") as f:
            f.write("server:\n  sim_device: {memory: 64MiB, link_bandwidth: 16GB, link_latency_us: 1}\n"
                    f"models:\n  - name: {MODEL_NAME}\n    path: {dt.MODEL}\n    accelerator: sim\n"
                    '    device_map: {"": sim:0, model.layers.0: disk, model.layers.1: cpu}\n'
                    f"    offload_folder: {os.path.join(tmp.name, 'offload')}\n")
        daemon = dt.Daemon(f"--config={config}")
        self.addCleanup(daemon.kill)
        self.assertTrue(daemon.ready.wait(60), "model did not load:\n" + "".join(daemon.log))

        with open(PROMETHEUS_CONFIG) as f:
            prom_config = derived_config(f.read(), f"127.0.0.1:{daemon.metrics_port}")
        prom = PrometheusServer(prom_config)
        self.addCleanup(prom.stop)
        targets = prom.wait_target_up(JOB, timeout=60)
        print(f"Prometheus on port {prom.port}; target {targets[0]['scrapeUrl']} up", flush=True)
        # A scrape before the load holds every histogram's zero counts (the
        # daemon exports them from the start), so rate() sees the load's increase.
        prom.wait_until("a first scrape in the TSDB", lambda: prom.query("tierserve_build_info"), 30)
        load_start = time.monotonic()

        # The load: streams at once (batched), unary calls, and the other methods.
        requests = 0
        with grpc.insecure_channel(f"127.0.0.1:{daemon.port}") as channel:
            stub = pb_grpc.GenerationStub(channel)
            params = pb.GenerationParameters(max_new_tokens=8, temperature=0.0, ignore_eos=True)

            def stream(i):
                msgs = list(stub.GenerateStream(pb.GenerateStreamRequest(
                    model=MODEL_NAME, prompt=pb.Prompt(text=f"count {i}:"), parameters=params), timeout=60))
                return msgs[-1].finish_reason

            with ThreadPoolExecutor(4) as pool:
                reasons = list(pool.map(stream, range(4)))
            self.assertEqual(reasons, [pb.FINISH_REASON_LENGTH] * 4)
            requests += 4
            for prompts in (["hello"], ["a b", "c d e"]):
                resp = stub.Generate(pb.GenerateRequest(
                    model=MODEL_NAME, prompts=[pb.Prompt(text=p) for p in prompts], parameters=params), timeout=60)
                self.assertEqual(len(resp.completions), len(prompts))
                requests += 1
            stub.Tokenize(pb.TokenizeRequest(model=MODEL_NAME, prompt=pb.Prompt(text="hi")), timeout=30)
            stub.ListModels(pb.ListModelsRequest(), timeout=30)
            requests += 2

        # The daemon records a call when it ends, after its client has the
        # answer: wait for all of them on /metrics, then for Prometheus to hold them.
        def finished_calls():
            text = daemon.metrics()
            calls = sum(float(v) for v in re.findall(r"^tierserve_requests_total\{[^}]*\} (\S+)$", text, re.M))
            return text if calls == requests else None
        after = wait_until(f"{requests} calls counted on /metrics", finished_calls, 30)
        tokens = dt.metric_value(after, "tierserve_generated_tokens_total", model=MODEL_NAME)
        self.assertGreater(tokens, 0)

        def scraped_after_load():
            calls = prom.query("sum(tierserve_requests_total)")
            gen = prom.query(f'tierserve_generated_tokens_total{{model="{MODEL_NAME}"}}')
            return (calls and gen and float(calls[0]["value"][1]) == requests
                    and float(gen[0]["value"][1]) == tokens)
        prom.wait_until("a scrape after the load in the TSDB", scraped_after_load, 30)
        # rate() over a window that holds the scrape before the load.
        window = max(60, math.ceil(time.monotonic() - load_start) + 10)

        failures = []
        for name, kind in metrics:
            series = name + "_bucket" if kind == "histogram" else name
            result = prom.query(series)
            if not result:
                failures.append(f"{series}: no series in Prometheus")
                continue
            meta = prom.api("metadata", metric=name).get(name, [])
            types = sorted({m["type"] for m in meta})
            if types != [kind]:
                failures.append(f"{name}: documented as a {kind}, scraped as {types}")
            line = f"{name}: {len(result)} series, {'/'.join(types)}"
            if kind == "histogram":
                observed = prom.query(f"sum(increase({name}_count[{window}s]))")
                q = prom.query(f"histogram_quantile(0.5, sum by (le) (rate({name}_bucket[{window}s])))")
                value = float(q[0]["value"][1]) if q else math.nan
                if not observed or float(observed[0]["value"][1]) <= 0:
                    failures.append(f"{name}: no observation from the load in Prometheus")
                elif not math.isfinite(value):
                    failures.append(f"{name}: histogram_quantile(0.5) is {value}")
                line += f", median {value:.6g}"
            print(line, flush=True)
        print(f"{len(metrics)} documented metrics, {len(histograms)} histograms, {requests} requests, "
              f"rate window {window} s", flush=True)
        self.assertEqual(failures, [], "documented metrics not in Prometheus as documented")


if __name__ == "__main__":
    dt.main()
