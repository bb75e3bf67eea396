#!/usr/bin/env python3
"""TLS, mutual TLS, API keys and /metrics basic authentication through the real
`tierserve serve` binary, from Python's grpcio client (Debian's python3-grpcio).

    security_test.py BINARY

Certificates are made with `openssl` at test time: a CA, a server certificate
for 127.0.0.1 and localhost, a client certificate from the same CA, and a
client certificate from a CA the server does not trust. Each refusal must be
clean: the daemon answers the next good call.
"""
import base64
import os
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_test as dt  # noqa: E402

KEYS = ["k3y-one-7c1f0b2e9a", "k3y-two-55d0e3a1b4"]
METRICS_USER, METRICS_PASSWORD = "prometheus", "scrape-secret-91"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """CA, server and client certificates (and an untrusted client) in `d`."""
    for ca in ("ca", "rogue_ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=tierserve test {ca}",
                "-keyout", f"{ca}.key", "-out", f"{ca}.crt", cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, ca, ext in (("server", "ca", ["-extfile", "server.ext"]), ("client", "ca", []),
                          ("rogue_client", "rogue_ca", [])):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", *ext, cwd=d)


def read(d, name):
    with open(os.path.join(d, name), "rb") as f:
        return f.read()


class SecurityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import grpc
        from tierserve.v1 import generation_pb2 as pb, generation_pb2_grpc as pb_grpc
        cls.grpc, cls.pb, cls.pb_grpc = grpc, pb, pb_grpc
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.dir = cls.tmp.name
        make_pki(d)
        with open(os.path.join(d, "api_keys"), "w") as f:
            f.write("# one key per line\n\n" + "\n".join(KEYS) + "\n")
        with open(os.path.join(d, "metrics_password"), "w") as f:
            f.write(METRICS_PASSWORD + "\n")
        cls.daemons = []
        # TLS + keys, health open (the default), /metrics with basic auth.
        cls.tls = cls.start("tls.yaml", f"""
  tls: {{cert_file: {d}/server.crt, key_file: {d}/server.key}}
  api_keys_file: {d}/api_keys
  metrics_auth: {{username: {METRICS_USER}, password_file: {d}/metrics_password}}
""")
        # Mutual TLS + keys, reflection open and health keyed.
        cls.mtls = cls.start("mtls.yaml", f"""
  tls: {{cert_file: {d}/server.crt, key_file: {d}/server.key, client_ca_file: {d}/ca.crt}}
  api_keys_file: {d}/api_keys
  open_services: [reflection]
""")

    @classmethod
    def start(cls, name, server_section):
        path = os.path.join(cls.dir, name)
        with open(path, "w") as f:
            f.write(f"server:{server_section}models:\n  - name: tiny_llama\n    path: {dt.MODEL}\n")
        daemon = dt.Daemon(f"--config={path}")
        cls.daemons.append(daemon)
        assert daemon.ready.wait(60), "model did not load:\n" + "".join(daemon.log)
        return daemon

    @classmethod
    def tearDownClass(cls):
        for d in cls.daemons:
            d.kill()
        cls.tmp.cleanup()

    def channel(self, daemon, client=None, tls=True):
        target = f"127.0.0.1:{daemon.port}"
        if not tls:
            return self.grpc.insecure_channel(target)
        kw = {"root_certificates": read(self.dir, "ca.crt")}
        if client:
            kw.update(private_key=read(self.dir, f"{client}.key"), certificate_chain=read(self.dir, f"{client}.crt"))
        return self.grpc.secure_channel(target, self.grpc.ssl_channel_credentials(**kw))

    def list_models(self, channel, key=None):
        md = [("authorization", f"Bearer {key}")] if key is not None else None
        return self.pb_grpc.GenerationStub(channel).ListModels(self.pb.ListModelsRequest(), timeout=10, metadata=md)

    def assertCode(self, code, fn):
        with self.assertRaises(self.grpc.RpcError) as cm:
            fn()
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        return cm.exception

    def test_tls_with_a_key_generates(self):
        with self.channel(self.tls) as ch:
            stub = self.pb_grpc.GenerationStub(ch)
            resp = stub.Generate(self.pb.GenerateRequest(
                model="tiny_llama", prompts=[self.pb.Prompt(text="hello")],
                parameters=self.pb.GenerationParameters(max_new_tokens=4, temperature=0.0)),
                timeout=30, metadata=[("authorization", f"Bearer {KEYS[1]}")])
            self.assertEqual(len(resp.completions[0].tokens), 4)
            streamed = list(stub.GenerateStream(self.pb.GenerateStreamRequest(
                model="tiny_llama", prompt=self.pb.Prompt(text="hello"),
                parameters=self.pb.GenerationParameters(max_new_tokens=4, temperature=0.0)),
                timeout=30, metadata=[("authorization", f"Bearer {KEYS[0]}")]))
            self.assertEqual("".join(m.text for m in streamed[:-1]), resp.completions[0].text)

    def test_missing_or_wrong_key_is_unauthenticated(self):
        U = self.grpc.StatusCode.UNAUTHENTICATED
        with self.channel(self.tls) as ch:
            e = self.assertCode(U, lambda: self.list_models(ch))
            self.assertIn("authorization: Bearer", e.details())
            self.assertCode(U, lambda: self.list_models(ch, "not-a-key"))
            self.assertCode(U, lambda: self.list_models(ch, KEYS[0] + "x"))
            self.assertCode(U, lambda: self.list_models(ch, KEYS[0][:-1]))
            stub = self.pb_grpc.GenerationStub(ch)
            self.assertCode(U, lambda: list(stub.GenerateStream(self.pb.GenerateStreamRequest(
                model="tiny_llama", prompt=self.pb.Prompt(text="hi")), timeout=10)))
            self.assertCode(U, lambda: stub.Tokenize(self.pb.TokenizeRequest(
                model="tiny_llama", prompt=self.pb.Prompt(text="hi")), timeout=10,
                metadata=[("authorization", KEYS[0])]))  # no "Bearer "
            # Health is open by default; reflection is off with keys unless listed.
            self.assertEqual(dt.health_check(ch), "SERVING")
            self.assertCode(self.grpc.StatusCode.UNIMPLEMENTED, lambda: dt.list_services(ch))
            # Nothing lost: a good call still works.
            self.assertEqual([m.name for m in self.list_models(ch, KEYS[0]).models], ["tiny_llama"])

    def test_plaintext_client_on_a_tls_port_fails_cleanly(self):
        with self.channel(self.tls, tls=False) as ch:
            self.assertCode(self.grpc.StatusCode.UNAVAILABLE, lambda: self.list_models(ch, KEYS[0]))
        with self.channel(self.tls) as ch:
            self.assertEqual(len(self.list_models(ch, KEYS[0]).models), 1)

    def test_mutual_tls(self):
        with self.channel(self.mtls, client="client") as ch:
            self.assertEqual(len(self.list_models(ch, KEYS[1]).models), 1)
            self.assertCode(self.grpc.StatusCode.UNAUTHENTICATED, lambda: self.list_models(ch))
            # Health keyed here; reflection open.
            self.assertCode(self.grpc.StatusCode.UNAUTHENTICATED, lambda: dt.health_check(ch))
            self.assertIn("tierserve.v1.Generation", dt.list_services(ch))
        for client in (None, "rogue_client"):
            with self.subTest(client=client), self.channel(self.mtls, client=client) as ch:
                self.assertCode(self.grpc.StatusCode.UNAVAILABLE, lambda: self.list_models(ch, KEYS[1]))
        with self.channel(self.mtls, client="client") as ch:
            self.assertEqual(len(self.list_models(ch, KEYS[0]).models), 1)

    def test_health_with_a_key_when_keyed(self):
        with self.channel(self.mtls, client="client") as ch:
            call = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b,
                                  response_deserializer=lambda b: b)
            resp = call(b"", timeout=5, metadata=[("authorization", f"Bearer {KEYS[0]}")])
            self.assertEqual(resp, b"\x08\x01")  # status: SERVING

    def test_health_command(self):
        d = self.dir

        def probe(daemon, *flags):
            r = subprocess.run([dt.BINARY, "health", f"--address=127.0.0.1:{daemon.port}", *flags],
                               capture_output=True, text=True, timeout=60)
            return r.returncode, r.stdout + r.stderr

        code, out = probe(self.tls, f"--tls_ca_file={d}/ca.crt")
        self.assertEqual(code, 0, out)
        code, out = probe(self.tls)  # plaintext against TLS
        self.assertEqual(code, 1)
        self.assertIn("UNAVAILABLE", out)
        with open(os.path.join(d, "probe_key"), "w") as f:
            f.write(KEYS[0] + "\n")
        mtls = [f"--tls_ca_file={d}/ca.crt", f"--tls_cert_file={d}/client.crt", f"--tls_key_file={d}/client.key"]
        code, out = probe(self.mtls, *mtls, f"--api_key_file={d}/probe_key")
        self.assertEqual(code, 0, out)
        code, out = probe(self.mtls, *mtls)  # health is keyed there
        self.assertEqual(code, 1)
        self.assertIn("UNAUTHENTICATED", out)

    def test_metrics_basic_auth(self):
        with self.channel(self.tls) as ch:
            self.assertCode(self.grpc.StatusCode.UNAUTHENTICATED, lambda: self.list_models(ch))
        url = f"http://127.0.0.1:{self.tls.metrics_port}/metrics"
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(url, timeout=5)
        self.assertEqual(cm.exception.code, 401)
        for user, password in ((METRICS_USER, "wrong"), ("someone", METRICS_PASSWORD)):
            req = urllib.request.Request(url, headers={"Authorization": "Basic " + base64.b64encode(
                f"{user}:{password}".encode()).decode()})
            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.urlopen(req, timeout=5)
            self.assertEqual(cm.exception.code, 401)
        req = urllib.request.Request(url, headers={"Authorization": "Basic " + base64.b64encode(
            f"{METRICS_USER}:{METRICS_PASSWORD}".encode()).decode()})
        with urllib.request.urlopen(req, timeout=5) as r:
            text = r.read().decode()
        self.assertIn("tierserve_requests_total", text)
        # Refusals are counted by code.
        self.assertIsNotNone(dt.metric_value(text, "tierserve_requests_total", code="UNAUTHENTICATED"))
        # The mutual-TLS daemon's /metrics stays open (no metrics_auth there).
        with urllib.request.urlopen(f"http://127.0.0.1:{self.mtls.metrics_port}/metrics", timeout=5) as r:
            self.assertEqual(r.status, 200)


if __name__ == "__main__":
    dt.main()
