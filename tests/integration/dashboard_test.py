#!/usr/bin/env python3
"""The Grafana dashboard (deploy/grafana/dashboards/tierserve.json) reads only
metrics the server exports.

    dashboard_test.py BINARY

Parses the dashboard, takes every metric name from every panel's PromQL (and
from the model variable's query), starts the daemon on tiny_llama with a
layer on disk, sends one request, and checks that each name has samples in
the live /metrics scrape (a histogram's _bucket/_sum/_count by their own
names). No Docker, no Prometheus: deploy/test_deployment.sh runs the
expressions themselves against the stack's Prometheus.
"""
import os
import re
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_test as dt  # noqa: E402
import dashboard_queries as dq  # noqa: E402

DASHBOARD = os.path.join(dt.ROOT, "deploy/grafana/dashboards/tierserve.json")

def sample_names(text):
    return {re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            for line in text.splitlines() if line and not line.startswith("#")}


class ExtractionTest(unittest.TestCase):
    def test_names_of_an_expression(self):
        self.assertEqual(
            dq.metric_names('histogram_quantile(0.9, sum by (le, model) (rate(a_bucket{model=~"$model"}'
                            '[$__rate_interval]))) / on (model) group_left b + 1e3 * c offset 5m'),
            {"a_bucket", "b", "c"})
        self.assertEqual(dq.metric_names("tierserve_model_state == 1"), {"tierserve_model_state"})
        self.assertEqual(dq.concrete('rate(x{model=~"$model"}[$__rate_interval])'), 'rate(x{model=~".+"}[1m])')


class DashboardTest(unittest.TestCase):
    def test_every_dashboard_metric_is_exported(self):
        import grpc
        from tierserve.v1 import generation_pb2 as pb, generation_pb2_grpc as pb_grpc
        dashboard = dq.load(DASHBOARD)
        self.assertEqual(dashboard["uid"], "tierserve")
        qs = dq.queries(dashboard)
        self.assertGreater(len(qs), 20)
        names = {}
        for where, expr in qs:
            found = dq.metric_names(expr)
            self.assertTrue(found, f"{where}: no metric in {expr!r}")
            for n in found:
                names.setdefault(n, where)
        with tempfile.TemporaryDirectory() as tmp:
            config = os.path.join(tmp, "c.yaml")
            with open(config, "w") as f:
                f.write(f"models:\n  - name: tiny_llama\n    path: {dt.MODEL}\n"
                        f'    device_map: {{"": cpu, model.layers.0: disk}}\n'
                        f"    offload_folder: {os.path.join(tmp, 'offload')}\n")
            d = dt.Daemon(f"--config={config}")
            try:
                self.assertTrue(d.ready.wait(60), "model did not load:\n" + "".join(d.log))
                with grpc.insecure_channel(f"127.0.0.1:{d.port}") as channel:
                    stub = pb_grpc.GenerationStub(channel)
                    list(stub.GenerateStream(pb.GenerateStreamRequest(
                        model="tiny_llama", prompt=pb.Prompt(text="hi"),
                        parameters=pb.GenerationParameters(max_new_tokens=4, temperature=0.0)), timeout=30))
                exported = sample_names(d.metrics())
            finally:
                d.kill()
        missing = sorted(f"{n} ({where})" for n, where in names.items()
                         if n not in exported)
        print(f"{len(qs)} queries, {len(names)} metric names, all exported" if not missing else "")
        self.assertEqual(missing, [], "dashboard metrics not on /metrics")


if __name__ == "__main__":
    dt.main()
