#!/usr/bin/env python3
"""The KServe v2 / Triton inference protocol (inference.GRPCInferenceService)
of the real `tierserve serve` binary, driven by Triton's own Python client,
`tritonclient.grpc` from PyPI, unchanged.

    kserve_test.py BINARY [TESTS...]

Runs with the project's virtual environment (TIERSERVE_PYENV, made by
scripts/setup.sh from tests/requirements.txt), whose grpcio and protobuf are
tritonclient's. The native tierserve.v1 API, which the generated text is
compared with, is called from the same process without generated stubs: its
messages are built from a descriptor set that protoc writes at test time,
in a descriptor pool of their own, so nothing clashes with tritonclient's
definitions. The daemon is started as daemon_test.py does (tiny model,
loopback ports the kernel picks); tests wait on events, not sleeps.
"""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_test as dt  # noqa: E402

try:
    import grpc
    import numpy as np
    import tritonclient.grpc as triton
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc
    from tritonclient.utils import InferenceServerException, serialize_byte_tensor
except ImportError as e:  # the wrong Python, or scripts/setup.sh not run
    sys.exit(f"kserve_test: {e}; run it with the project's venv (TIERSERVE_PYENV, made by scripts/setup.sh "
             f"from tests/requirements.txt), not {sys.executable}")

MODEL = "tiny_llama"
KEY = "kserve-test-key-4d2a9c"
ALLOWED = "allowed: max_tokens (int64), temperature (double), top_k (int64)"


class NativeApi:
    """tierserve.v1.Generation/Generate over a plain grpc channel, its messages
    made from a descriptor set of generation.proto in a pool of their own."""

    def __init__(self, tmp):
        path = os.path.join(tmp, "generation.pb")
        subprocess.run(["protoc", f"--proto_path={dt.ROOT}/proto", "--include_imports",
                        f"--descriptor_set_out={path}", "tierserve/v1/generation.proto"], check=True)
        with open(path, "rb") as f:
            files = descriptor_pb2.FileDescriptorSet.FromString(f.read())
        pool = descriptor_pool.DescriptorPool()
        for fd in files.file:
            pool.Add(fd)
        self.msg = lambda name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tierserve.v1.{name}"))
        self.request = self.msg("GenerateRequest")
        self.response = self.msg("GenerateResponse")

    def generate(self, port, prompts, model=MODEL, metadata=None, **params):
        req = self.request(model=model)
        for p in prompts:
            req.prompts.add(text=p)
        for k, v in params.items():
            if k == "stop":
                req.parameters.stop.extend(v)
            else:
                setattr(req.parameters, k, v)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            call = ch.unary_unary("/tierserve.v1.Generation/Generate", request_serializer=req.SerializeToString,
                                  response_deserializer=self.response.FromString)
            return call(req, timeout=60, metadata=metadata).completions


def text_input(prompts, shape=None):
    inp = triton.InferInput("text_input", shape or [len(prompts)], "BYTES")
    inp.set_data_from_numpy(np.array([p.encode() for p in prompts], dtype=np.object_).reshape(shape or [-1]))
    return inp


def texts(result):
    return [t.decode() for t in result.as_numpy("text_output").reshape(-1)]


def param(response, name):
    """A response parameter's value, whichever its type."""
    p = response.parameters[name]
    return getattr(p, p.WhichOneof("parameter_choice"))


class StreamCollector:
    """The callback of a tritonclient stream: responses by request id, an event
    per request set by its final response, and the errors (tritonclient hands
    an error response over without its request's id)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.responses = {}  # id -> [ModelInferResponse]
        self.errors = []
        self.error = threading.Event()
        self.done = {}  # id -> threading.Event
        self.first = threading.Event()

    def expect(self, request_id):
        self.done[request_id] = threading.Event()
        self.responses[request_id] = []

    def __call__(self, result, error):
        with self.lock:
            if error is not None:
                self.errors.append(error)
                self.error.set()
                return
            resp = result.get_response()
            self.responses[resp.id].append(resp)
            self.first.set()
            if param(resp, "triton_final_response"):
                self.done[resp.id].set()

    def wait(self, request_id, timeout=60):
        if not self.done[request_id].wait(timeout):
            raise AssertionError(f"no final response for {request_id!r} within {timeout} s")
        return self.responses[request_id]

    def wait_error(self, timeout=60):
        if not self.error.wait(timeout):
            raise AssertionError(f"no error within {timeout} s")
        with self.lock:
            return self.errors[0]


def stream_text(responses):
    out = ""
    for r in responses:
        if r.outputs:
            out += "".join(t.decode() for t in triton.InferResult(r).as_numpy("text_output").reshape(-1))
    return out


class KServeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.native = NativeApi(cls.tmp.name)
        cls.daemon = dt.Daemon()
        assert cls.daemon.ready.wait(60), "model did not load:\n" + "".join(cls.daemon.log)
        cls.url = f"127.0.0.1:{cls.daemon.port}"
        cls.client = triton.InferenceServerClient(cls.url)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.daemon.kill()
        cls.tmp.cleanup()

    def infer(self, prompts, shape=None, **params):
        return self.client.infer(MODEL, [text_input(prompts, shape)], parameters=params or None, client_timeout=60)

    def expect_error(self, status, fragment, fn, *args, **kw):
        with self.assertRaises(InferenceServerException) as cm:
            fn(*args, **kw)
        self.assertEqual(cm.exception.status(), f"StatusCode.{status}", cm.exception.message())
        self.assertIn(fragment, cm.exception.message())
        return cm.exception

    def test_server_live_and_ready(self):
        self.assertTrue(self.client.is_server_live())
        self.assertTrue(self.client.is_server_ready())

    def test_model_ready(self):
        self.assertTrue(self.client.is_model_ready(MODEL))
        self.assertTrue(self.client.is_model_ready(MODEL, "1"))
        # As Triton: an unknown model or version is not ready, and no error.
        self.assertFalse(self.client.is_model_ready("nope"))
        self.assertFalse(self.client.is_model_ready(MODEL, "2"))

    def test_server_metadata(self):
        md = self.client.get_server_metadata()
        self.assertEqual(md.name, "tierserve")
        version = subprocess.run([dt.BINARY, "version"], capture_output=True, text=True, check=True).stdout
        self.assertTrue(md.version and md.version in version, (md.version, version))
        self.assertIn("parameters", md.extensions)

    def test_model_metadata(self):
        md = self.client.get_model_metadata(MODEL)
        self.assertEqual(md.name, MODEL)
        self.assertEqual(list(md.versions), ["1"])
        self.assertEqual(md.platform, "tierserve")
        self.assertEqual([(t.name, t.datatype, list(t.shape)) for t in md.inputs], [("text_input", "BYTES", [-1])])
        self.assertEqual([(t.name, t.datatype, list(t.shape)) for t in md.outputs], [("text_output", "BYTES", [-1])])
        self.assertEqual(self.client.get_model_metadata(MODEL, "1").name, MODEL)
        self.expect_error("NOT_FOUND", 'unknown model "nope"; served models: tiny_llama',
                          self.client.get_model_metadata, "nope")
        self.expect_error("NOT_FOUND", 'has no version "2"', self.client.get_model_metadata, MODEL, "2")

    def test_model_config(self):
        """Triton's model configuration, read by tritonclient's own messages (model_config.proto)."""
        c = self.client.get_model_config(MODEL).config
        self.assertEqual(c.name, MODEL)
        self.assertEqual(c.platform, "tierserve")
        self.assertEqual(c.max_batch_size, 0)
        string = model_config_pb2.DataType.Value("TYPE_STRING")
        self.assertEqual([(t.name, t.data_type, list(t.dims)) for t in c.input], [("text_input", string, [-1])])
        self.assertEqual([(t.name, t.data_type, list(t.dims)) for t in c.output], [("text_output", string, [-1])])
        self.assertTrue(c.model_transaction_policy.decoupled)
        self.assertEqual(self.client.get_model_config(MODEL, "1").config.name, MODEL)
        self.expect_error("NOT_FOUND", 'unknown model "nope"; served models: tiny_llama',
                          self.client.get_model_config, "nope")
        self.expect_error("NOT_FOUND", 'has no version "2"', self.client.get_model_config, MODEL, "2")
        # The configuration describes what ModelInfer takes: a text_input of
        # shape [-1] as it says is answered.
        self.assertEqual(len(texts(self.infer(["a", "b"], max_tokens=2, temperature=0))), 2)

    def test_model_statistics(self):
        """Triton's inference statistics, read by tritonclient: each request, sequence and
        forward pass of the model is counted once."""
        def stats(name=MODEL):
            return self.client.get_inference_statistics(name).model_stats
        (before,) = stats()
        t0_ms = int(time.time() * 1000)
        self.assertEqual(len(texts(self.infer(["one", "two"], max_tokens=3, temperature=0, ignore_eos=True))), 2)
        self.expect_error("INVALID_ARGUMENT", "unknown parameter", self.infer, ["x"], nope=1)
        (after,) = stats()
        self.assertEqual((after.name, after.version), (MODEL, "1"))
        b, a = before.inference_stats, after.inference_stats
        self.assertEqual(a.success.count - b.success.count, 1)
        self.assertGreater(a.success.ns, b.success.ns)
        self.assertGreaterEqual(a.fail.count - b.fail.count, 1)
        self.assertEqual(after.inference_count - before.inference_count, 2)
        # Two sequences of 3 tokens: at least 3 forward passes (more if the prompts prefill apart).
        self.assertGreaterEqual(after.execution_count - before.execution_count, 3)
        self.assertEqual(a.queue.count - b.queue.count, 2)
        self.assertEqual(a.compute_infer.count - b.compute_infer.count, 2)
        self.assertGreater(a.compute_infer.ns, b.compute_infer.ns)
        self.assertGreaterEqual(after.last_inference, t0_ms)
        # "": every configured model; a version other than 1, or an unknown model, is NOT_FOUND.
        self.assertEqual([m.name for m in stats("")], [MODEL])
        self.assertEqual(self.client.get_inference_statistics(MODEL, "1").model_stats[0].name, MODEL)
        self.expect_error("NOT_FOUND", 'unknown model "nope"; served models: tiny_llama',
                          self.client.get_inference_statistics, "nope")
        self.expect_error("NOT_FOUND", 'has no version "2"', self.client.get_inference_statistics, MODEL, "2")

    def test_infer_is_the_native_generate(self):
        cases = [dict(max_tokens=12, temperature=0),  # greedy; Python's 0 arrives as int64_param
                 dict(max_tokens=10, temperature=0.8, top_k=20, top_p=0.9, seed=7),
                 dict(max_tokens=9, temperature=1.3, min_p=0.05, repetition_penalty=1.2, seed=11),
                 dict(max_tokens=16, temperature=0.0, ignore_eos=True)]
        for params in cases:
            with self.subTest(**params):
                result = self.infer(["hello world"], **params)
                native_params = {("max_new_tokens" if k == "max_tokens" else k): v for k, v in params.items()}
                [want] = self.native.generate(self.daemon.port, ["hello world"], **native_params)
                self.assertEqual(texts(result), [want.text])
                resp = result.get_response()
                self.assertEqual(resp.model_name, MODEL)
                self.assertEqual(resp.model_version, "1")
                self.assertEqual(list(resp.outputs[0].shape), [1])
                self.assertEqual(param(resp, "completion_tokens"), want.usage.completion_tokens)
                self.assertEqual(param(resp, "prompt_tokens"), want.usage.prompt_tokens)
                self.assertEqual(param(resp, "finish_reason"), "length")
        # A stop string ends the text before it, as natively.
        [free] = self.native.generate(self.daemon.port, ["hello world"], max_new_tokens=12, temperature=0.0)
        stop = free.text[3:5]
        self.assertTrue(stop.strip(), free.text)
        [want] = self.native.generate(self.daemon.port, ["hello world"], max_new_tokens=12, temperature=0.0,
                                      stop=[stop])
        for value in (stop, f'["{stop}", "never-seen"]'):
            result = self.infer(["hello world"], max_tokens=12, temperature=0.0, stop=value)
            self.assertEqual(texts(result), [want.text])
            self.assertEqual(param(result.get_response(), "finish_reason"), "stop")

    def test_a_request_id_is_echoed(self):
        result = self.client.infer(MODEL, [text_input(["hi"])], request_id="req-42",
                                   parameters={"max_tokens": 2, "temperature": 0})
        self.assertEqual(result.get_response().id, "req-42")

    def test_several_prompts(self):
        prompts = ["one", "two two", "three three three"]
        want = [c.text for c in self.native.generate(self.daemon.port, prompts, max_new_tokens=8, temperature=0.0)]
        result = self.infer(prompts, max_tokens=8, temperature=0)
        self.assertEqual(texts(result), want)
        self.assertEqual(list(result.get_response().outputs[0].shape), [3])
        self.assertEqual(param(result.get_response(), "finish_reason"), "length,length,length")
        # [N, 1], the shape of Triton models with a batch dimension.
        result = self.infer(prompts[:2], shape=[2, 1], max_tokens=8, temperature=0)
        self.assertEqual(result.as_numpy("text_output").shape, (2, 1))
        self.assertEqual(texts(result), want[:2])

    def test_typed_contents_are_answered_in_contents(self):
        req = service_pb2.ModelInferRequest(model_name=MODEL)
        inp = req.inputs.add(name="text_input", datatype="BYTES", shape=[1])
        inp.contents.bytes_contents.append(b"hello world")
        req.parameters["max_tokens"].int64_param = 6
        req.parameters["temperature"].double_param = 0.0
        with grpc.insecure_channel(self.url) as ch:
            resp = service_pb2_grpc.GRPCInferenceServiceStub(ch).ModelInfer(req, timeout=60)
        [want] = self.native.generate(self.daemon.port, ["hello world"], max_new_tokens=6, temperature=0.0)
        self.assertEqual(len(resp.raw_output_contents), 0)
        self.assertEqual(list(resp.outputs[0].contents.bytes_contents), [want.text.encode()])

    def test_stream_deltas_concatenate_to_the_unary_text(self):
        params = {"max_tokens": 14, "temperature": 0}
        unary = texts(self.infer(["hello world"], **params))[0]
        for empty_final in (False, True):
            with self.subTest(empty_final=empty_final):
                client = triton.InferenceServerClient(self.url)
                collect = StreamCollector()
                collect.expect("s1")
                client.start_stream(callback=collect)
                try:
                    client.async_stream_infer(MODEL, [text_input(["hello world"])], request_id="s1",
                                              parameters=params, enable_empty_final_response=empty_final)
                    responses = collect.wait("s1")
                finally:
                    client.stop_stream()
                    client.close()
                self.assertEqual(collect.errors, [])
                *deltas, final = responses
                self.assertGreater(len(deltas), 1)
                for d in deltas:
                    self.assertFalse(param(d, "triton_final_response"))
                    self.assertEqual(list(d.outputs[0].shape), [1])
                    self.assertTrue(stream_text([d]), "a delta with no text was sent")
                self.assertEqual(stream_text(deltas), unary)
                self.assertTrue(param(final, "triton_final_response"))
                self.assertEqual(param(final, "finish_reason"), "length")
                self.assertEqual(param(final, "completion_tokens"), 14)
                if empty_final:
                    self.assertEqual(len(final.outputs), 0)
                else:
                    self.assertEqual(stream_text([final]), "")

    def test_one_stream_carries_concurrent_requests_and_survives_errors(self):
        prompts = {"a": "one", "b": "two two", "c": "three three three"}
        want = {k: c.text for k, c in zip(prompts, self.native.generate(
            self.daemon.port, list(prompts.values()), max_new_tokens=10, temperature=0.0))}
        client = triton.InferenceServerClient(self.url)
        collect = StreamCollector()
        for k in [*prompts, "after"]:
            collect.expect(k)
        client.start_stream(callback=collect)
        try:
            for k, p in prompts.items():
                client.async_stream_infer(MODEL, [text_input([p])], request_id=k,
                                          parameters={"max_tokens": 10, "temperature": 0})
            # A bad request is answered with an error on the stream; the stream goes on.
            client.async_stream_infer(MODEL, [text_input(["x"])], request_id="bad", parameters={"nope": 1})
            client.async_stream_infer(MODEL, [text_input(["two two"])], request_id="after",
                                      parameters={"max_tokens": 10, "temperature": 0})
            got = {k: stream_text(collect.wait(k)) for k in prompts}
            error = collect.wait_error()
            after = stream_text(collect.wait("after"))
        finally:
            client.stop_stream()  # half-closes and waits for the server to end the stream
            client.close()
        self.assertEqual(got, want)
        self.assertEqual(after, want["b"])
        self.assertEqual(len(collect.errors), 1, collect.errors)
        self.assertIn('INVALID_ARGUMENT: unknown parameter "nope"; ' + ALLOWED, error.message())

    def test_stream_takes_one_prompt_per_request(self):
        client = triton.InferenceServerClient(self.url)
        collect = StreamCollector()
        client.start_stream(callback=collect)
        try:
            client.async_stream_infer(MODEL, [text_input(["a", "b"])], request_id="two")
            collect.wait_error()
        finally:
            client.stop_stream()
            client.close()
        self.assertEqual(len(collect.errors), 1)
        self.assertIn("INVALID_ARGUMENT: text_input has shape [2], 2 prompts; at most 1 per request "
                      "(ModelStreamInfer streams one prompt per request", collect.errors[0].message())

    def test_stop_stream_with_cancel_requests(self):
        """tritonclient's cancel of a running stream: the request leaves the engine and
        the daemon serves on (that generation ends early: KServeUnreadStreamTest)."""
        client = triton.InferenceServerClient(self.url)
        collect = StreamCollector()
        collect.expect("long")
        client.start_stream(callback=collect)
        client.async_stream_infer(MODEL, [text_input(["hello"])], request_id="long",
                                  parameters={"max_tokens": 250, "temperature": 0, "ignore_eos": True})
        self.assertTrue(collect.first.wait(30))
        client.stop_stream(cancel_requests=True)
        client.close()
        deadline = time.monotonic() + 30
        while dt.metric_value(self.daemon.metrics(), "tierserve_requests_running", model=MODEL) != 0:
            self.assertLess(time.monotonic(), deadline, "the request still runs")
            time.sleep(0.05)
        self.assertEqual(len(texts(self.infer(["ok"], max_tokens=3, temperature=0))), 1)

    def test_bad_requests_are_invalid_argument_and_the_daemon_serves_on(self):
        bad = [
            ({"nope": 1}, 'unknown parameter "nope"; ' + ALLOWED),
            ({"max_new_tokens": 4}, 'unknown parameter "max_new_tokens"'),
            ({"temperature": "hot"}, "parameter temperature is a string (string_param); it must be a number"),
            ({"max_tokens": 1000}, "text_input[0]: max_tokens is 1000; it must be between 1 and 256"),
            ({"max_tokens": 0}, "max_tokens is 0"),
            ({"top_p": 1.5}, "top_p must be in (0, 1]"),
            ({"seed": -1}, "parameter seed is -1; it must be >= 0"),
            ({"stop": "[oops"}, "parameter stop begins with '[' but is not a JSON array"),
        ]
        for params, fragment in bad:
            with self.subTest(params=params):
                self.expect_error("INVALID_ARGUMENT", fragment, self.infer, ["hi"], **params)
        # Tensors: missing text_input, wrong datatype, too many prompts, empty prompt.
        other = triton.InferInput("prompt", [1], "BYTES")
        other.set_data_from_numpy(np.array([b"hi"], dtype=np.object_))
        self.expect_error("INVALID_ARGUMENT", 'unknown input tensor "prompt"; send one input tensor, text_input',
                          self.client.infer, MODEL, [other])
        ints = triton.InferInput("text_input", [1], "INT32")
        ints.set_data_from_numpy(np.array([1], dtype=np.int32))
        self.expect_error("INVALID_ARGUMENT", 'text_input has datatype "INT32"; it must be BYTES',
                          self.client.infer, MODEL, [ints])
        self.expect_error("INVALID_ARGUMENT", "9 prompts; at most 8 per request (the model's max_batch_size)",
                          self.infer, ["p"] * 9)
        self.expect_error("INVALID_ARGUMENT", "text_input[0] is empty", self.infer, [""])
        self.expect_error("INVALID_ARGUMENT", "unknown output \"logits\"", self.client.infer, MODEL,
                          [text_input(["hi"])], outputs=[triton.InferRequestedOutput("logits")])
        # Model and version.
        self.expect_error("NOT_FOUND", 'unknown model "nope"', self.client.infer, "nope", [text_input(["hi"])])
        self.expect_error("NOT_FOUND", 'model tiny_llama has no version "3"', self.client.infer, MODEL,
                          [text_input(["hi"])], model_version="3")
        # Raw contents whose element length runs past the end, and bytes that are no message at all.
        req = service_pb2.ModelInferRequest(model_name=MODEL)
        req.inputs.add(name="text_input", datatype="BYTES", shape=[1])
        req.raw_input_contents.append(b"\x09\x00\x00\x00hello")
        with grpc.insecure_channel(self.url) as ch:
            with self.assertRaises(grpc.RpcError) as cm:
                service_pb2_grpc.GRPCInferenceServiceStub(ch).ModelInfer(req, timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("text_input: element 0 says it has 9 bytes, but only 5 bytes of the raw contents are left",
                          cm.exception.details())
            raw_call = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer")
            with self.assertRaises(grpc.RpcError) as cm:
                raw_call(b"\x0f\xff\xff", timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("not a valid inference.ModelInferRequest", cm.exception.details())
            # On a stream, undecodable bytes are answered there, and the stream goes on.
            stream = ch.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
            replies = stream(iter([b"\x0f\xff\xff"]), timeout=10)
            reply = service_pb2.ModelStreamInferResponse.FromString(next(replies))
            self.assertIn("INVALID_ARGUMENT: the request is not a valid inference.ModelInferRequest",
                          reply.error_message)
            self.assertEqual(list(replies), [])  # then it ends with OK
            # A method tierserve does not serve.
            with self.assertRaises(grpc.RpcError) as cm:
                service_pb2_grpc.GRPCInferenceServiceStub(ch).RepositoryIndex(
                    service_pb2.RepositoryIndexRequest(), timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        # The daemon serves on.
        self.assertTrue(self.client.is_server_ready())
        self.assertEqual(len(texts(self.infer(["ok"], max_tokens=3, temperature=0))), 1)

    def test_metrics_count_the_kserve_methods(self):
        def value(text, name, **labels):
            return dt.metric_value(text, name, **labels) or 0.0
        before = self.daemon.metrics()
        self.infer(["count me"], max_tokens=5, temperature=0, ignore_eos=True)
        self.expect_error("INVALID_ARGUMENT", "unknown parameter", self.infer, ["x"], nope=1)
        self.client.is_model_ready(MODEL)
        self.client.get_model_config(MODEL)
        after = self.daemon.metrics()
        total = "tierserve_requests_total"
        self.assertEqual(value(after, total, model=MODEL, method="ModelInfer", code="OK") -
                         value(before, total, model=MODEL, method="ModelInfer", code="OK"), 1)
        self.assertEqual(value(after, total, model=MODEL, method="ModelInfer", code="INVALID_ARGUMENT") -
                         value(before, total, model=MODEL, method="ModelInfer", code="INVALID_ARGUMENT"), 1)
        self.assertEqual(value(after, total, method="ModelReady", code="OK") -
                         value(before, total, method="ModelReady", code="OK"), 1)
        self.assertEqual(value(after, total, method="ModelConfig", code="OK") -
                         value(before, total, method="ModelConfig", code="OK"), 1)
        self.assertEqual(value(after, "tierserve_generated_tokens_total", model=MODEL) -
                         value(before, "tierserve_generated_tokens_total", model=MODEL), 5)
        self.assertGreater(value(after, "tierserve_request_duration_seconds_count", method="ModelInfer"),
                           value(before, "tierserve_request_duration_seconds_count", method="ModelInfer"))

    def test_health_names_the_service(self):
        with grpc.insecure_channel(self.url) as ch:
            self.assertEqual(dt.health_check(ch, "inference.GRPCInferenceService"), "SERVING")


class KServeApiKeyTest(unittest.TestCase):
    """With API keys every KServe method is keyed, but for ServerLive and
    ServerReady, which follow the health service's openness."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        with open(os.path.join(d, "api_keys"), "w") as f:
            f.write(KEY + "\n")
        cls.daemons = {}
        for name, extra in (("open", ""), ("keyed", "  open_services: []\n")):
            path = os.path.join(d, f"{name}.yaml")
            with open(path, "w") as f:
                f.write(f"server:\n  api_keys_file: {d}/api_keys\n{extra}"
                        f"models:\n  - name: {MODEL}\n    path: {dt.MODEL}\n")
            daemon = dt.Daemon(f"--config={path}")
            cls.daemons[name] = daemon
            assert daemon.ready.wait(60), "model did not load:\n" + "".join(daemon.log)

    @classmethod
    def tearDownClass(cls):
        for d in cls.daemons.values():
            d.kill()
        cls.tmp.cleanup()

    def client(self, name):
        return triton.InferenceServerClient(f"127.0.0.1:{self.daemons[name].port}")

    def unauthenticated(self, fn, *args, **kw):
        with self.assertRaises(InferenceServerException) as cm:
            fn(*args, **kw)
        self.assertEqual(cm.exception.status(), "StatusCode.UNAUTHENTICATED", cm.exception.message())
        self.assertIn("authorization: Bearer", cm.exception.message())

    def test_missing_or_wrong_key_is_unauthenticated(self):
        c = self.client("open")
        good = {"authorization": f"Bearer {KEY}"}
        for headers in (None, {"authorization": "Bearer wrong"}, {"authorization": KEY}):
            with self.subTest(headers=headers):
                self.unauthenticated(c.is_model_ready, MODEL, headers=headers)
                self.unauthenticated(c.get_server_metadata, headers=headers)
                self.unauthenticated(c.get_model_metadata, MODEL, headers=headers)
                self.unauthenticated(c.infer, MODEL, [text_input(["hi"])], headers=headers,
                                     parameters={"max_tokens": 2})
        # The stream is refused as a whole, as soon as it opens: the request
        # may find it refused already.
        collect = StreamCollector()
        c.start_stream(callback=collect)
        try:
            c.async_stream_infer(MODEL, [text_input(["hi"])], request_id="x")
        except InferenceServerException as e:
            self.assertIn("no longer in valid state", e.message())
        collect.wait_error()
        c.stop_stream()
        self.assertEqual(len(collect.errors), 1)
        self.assertEqual(collect.errors[0].status(), "StatusCode.UNAUTHENTICATED")
        # With the key.
        self.assertTrue(c.is_model_ready(MODEL, headers=good))
        self.assertEqual(c.get_server_metadata(headers=good).name, "tierserve")
        result = c.infer(MODEL, [text_input(["hi"])], headers=good, parameters={"max_tokens": 3, "temperature": 0})
        self.assertEqual(len(texts(result)), 1)
        c.close()

    def test_probes_follow_the_health_service(self):
        open_client, keyed = self.client("open"), self.client("keyed")
        self.assertTrue(open_client.is_server_live())
        self.assertTrue(open_client.is_server_ready())
        self.unauthenticated(keyed.is_server_live)
        self.unauthenticated(keyed.is_server_ready)
        self.assertTrue(keyed.is_server_live(headers={"authorization": f"Bearer {KEY}"}))
        open_client.close()
        keyed.close()


class KServeUnreadStreamTest(unittest.TestCase):
    """Streams whose client leaves the output unread. Every response echoes its
    request's id: a 4 kB id makes the 240 tokens' ~200 responses overflow the
    client's flow-control window and the transport's buffers, so the output
    waits unwritten until the client reads, and a small unread bound pauses the
    request. The clients here are plain gRPC streams: tritonclient always reads."""

    PARAMS = {"max_tokens": 240, "temperature": 0, "ignore_eos": True}

    @classmethod
    def setUpClass(cls):
        cls.daemon = dt.Daemon("--testing_max_unread_stream_bytes=1024")
        assert cls.daemon.ready.wait(60), "model did not load:\n" + "".join(cls.daemon.log)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.kill()

    def request(self, prompt):
        req = service_pb2.ModelInferRequest(model_name=MODEL, id=prompt + "-" * 4000)
        req.inputs.add(name="text_input", datatype="BYTES", shape=[1])
        req.raw_input_contents.append(serialize_byte_tensor(np.array([prompt.encode()], np.object_)).item())
        for k, v in self.PARAMS.items():
            if isinstance(v, bool):
                req.parameters[k].bool_param = v
            else:
                req.parameters[k].int64_param = v
        return req

    def channel(self):
        # Without BDP probing the client's flow-control window stays at its initial 64 KiB.
        return grpc.insecure_channel(f"127.0.0.1:{self.daemon.port}", options=[("grpc.http2.bdp_probe", 0)])

    def metric(self, name):
        return dt.metric_value(self.daemon.metrics(), name, model=MODEL)

    def wait_metric(self, name, value, what):
        deadline = time.monotonic() + 30
        while self.metric(name) != value:
            self.assertLess(time.monotonic(), deadline, what)
            time.sleep(0.05)

    def test_unread_output_pauses_the_stream_and_reading_resumes_it(self):
        """Output waiting unwritten past the bound pauses the stream's request
        (tierserve_requests_paused) and holds back reading the stream's next
        requests; as the client reads, everything goes on: each request's text
        is what it gets alone, and the stream ends with OK once the client has
        closed its side."""
        prompts = ("a", "b", "c")
        client = triton.InferenceServerClient(f"127.0.0.1:{self.daemon.port}")
        want = {p: texts(client.infer(MODEL, [text_input([p])], parameters=self.PARAMS))[0] for p in prompts}
        client.close()
        paused, sent, release = threading.Event(), threading.Event(), threading.Event()

        def requests():
            yield self.request("a")
            paused.wait(60)
            # The server reads "b" (its read was already waiting), then holds
            # reading back: "c" is read only once the client reads.
            yield self.request("b")
            yield self.request("c")
            sent.set()
            release.wait(60)  # then the client closes its side

        try:
            with self.channel() as ch:
                responses = service_pb2_grpc.GRPCInferenceServiceStub(ch).ModelStreamInfer(requests(), timeout=60)
                self.wait_metric("tierserve_requests_paused", 1, "the unread stream never paused")
                paused.set()
                self.assertTrue(sent.wait(30))
                got, finals = dict.fromkeys(prompts, ""), 0
                for r in responses:
                    self.assertEqual(r.error_message, "")
                    resp = r.infer_response
                    got[resp.id[0]] += stream_text([resp])
                    finals += param(resp, "triton_final_response")
                    if finals == len(prompts):
                        break
                release.set()
                self.assertEqual(list(responses), [])  # ends with OK, nothing more
            self.assertEqual(got, want)
        finally:
            release.set()

    def test_cancelling_a_paused_stream_ends_its_generation(self):
        release = threading.Event()

        def requests():
            yield self.request("a")
            release.wait(60)

        generated = self.metric("tierserve_generated_tokens_total") or 0
        try:
            with self.channel() as ch:
                responses = service_pb2_grpc.GRPCInferenceServiceStub(ch).ModelStreamInfer(requests(), timeout=60)
                self.wait_metric("tierserve_requests_paused", 1, "the unread stream never paused")
                responses.cancel()
                # The engine drops the request at once: nothing runs, and it ended
                # short of its 240 tokens (its tokens are counted when it ends).
                self.wait_metric("tierserve_requests_running", 0, "the cancelled request still runs")
                self.wait_metric("tierserve_requests_paused", 0, "the cancelled request is still paused")
                self.assertLess(self.metric("tierserve_generated_tokens_total") - generated, 240)
        finally:
            release.set()
        self.assertTrue(triton.InferenceServerClient(f"127.0.0.1:{self.daemon.port}").is_server_ready())


class KServeLoadingTest(unittest.TestCase):
    def test_live_but_not_ready_while_loading(self):
        d = dt.Daemon("--testing_load_delay_ms=3000")
        try:
            client = triton.InferenceServerClient(f"127.0.0.1:{d.port}")
            self.assertFalse(d.ready.is_set())
            self.assertTrue(client.is_server_live())
            self.assertFalse(client.is_server_ready())
            self.assertFalse(client.is_model_ready(MODEL))
            # A configured model is described before it loads.
            self.assertEqual(client.get_model_metadata(MODEL).name, MODEL)
            with self.assertRaises(InferenceServerException) as cm:
                client.infer(MODEL, [text_input(["x"])])
            self.assertEqual(cm.exception.status(), "StatusCode.UNAVAILABLE")
            self.assertIn("still loading", cm.exception.message())
            self.assertTrue(d.ready.wait(60), "".join(d.log))
            self.assertTrue(client.is_server_ready())
            self.assertTrue(client.is_model_ready(MODEL))
            client.close()
        finally:
            d.kill()


class KServeShutdownTest(unittest.TestCase):
    def test_an_idle_open_stream_does_not_hold_the_drain(self):
        """A stream whose requests are all answered is not work in flight: on
        SIGTERM the daemon drains and exits at once, well within the grace period,
        and the open stream is ended."""
        daemon = dt.Daemon()
        try:
            self.assertTrue(daemon.ready.wait(60), "".join(daemon.log))
            client = triton.InferenceServerClient(f"127.0.0.1:{daemon.port}")
            collect = StreamCollector()
            collect.expect("one")
            client.start_stream(callback=collect)
            client.async_stream_infer(MODEL, [text_input(["hi"])], request_id="one",
                                      parameters={"max_tokens": 4, "temperature": 0})
            self.assertEqual(len(stream_text(collect.wait("one"))) > 0, True)
            t0 = time.monotonic()
            daemon.proc.send_signal(signal.SIGTERM)
            self.assertEqual(daemon.proc.wait(20), 0, "".join(daemon.log))
            self.assertLess(time.monotonic() - t0, 10, "the idle stream held the drain")
            collect.wait_error(timeout=10)  # the stream's end reaches the client as an error
            self.assertEqual(len(collect.errors), 1)
            client.stop_stream(cancel_requests=True)
            client.close()
        finally:
            daemon.kill()


@dt.model_scale
class SmolLm2KServeTest(unittest.TestCase):
    """SmolLM2 through tritonclient: the same text as the native API, and the answer."""

    def test_capital_of_france(self):
        with tempfile.TemporaryDirectory() as tmp:
            native = NativeApi(tmp)
            daemon = dt.Daemon(model=dt.SMOLLM2)
            try:
                self.assertTrue(daemon.ready.wait(120), "".join(daemon.log))
                client = triton.InferenceServerClient(f"127.0.0.1:{daemon.port}")
                prompt = "The capital of France is"
                model = "SmolLM2-135M-Instruct.Q4_1"
                result = client.infer(model, [text_input([prompt])], client_timeout=120,
                                      parameters={"max_tokens": 8, "temperature": 0})
                [want] = native.generate(daemon.port, [prompt], model=model, max_new_tokens=8, temperature=0.0)
                self.assertEqual(texts(result), [want.text])
                self.assertIn("Paris", want.text)
                collect = StreamCollector()
                collect.expect("s")
                client.start_stream(callback=collect)
                client.async_stream_infer(model, [text_input([prompt])], request_id="s",
                                          parameters={"max_tokens": 8, "temperature": 0})
                self.assertEqual(stream_text(collect.wait("s", timeout=120)), want.text)
                client.stop_stream()
                client.close()
            finally:
                daemon.kill()


def main():
    dt.BINARY = os.path.abspath(sys.argv.pop(1))
    result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
