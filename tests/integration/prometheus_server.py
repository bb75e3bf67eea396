"""A real Prometheus server (Debian's `prometheus` package) on loopback, for
tests: a config given as text, a temporary TSDB, the port the kernel picks
(read from Prometheus' own "Listening on" log line), and its HTTP API.

    with PrometheusServer(config_text) as prom:
        prom.wait_until("target up", lambda: ..., timeout=30)
        prom.query("up")

Every wait has a deadline and names what it waited for; the process is
stopped and the TSDB removed on exit, failure included.
"""
import json
import re
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

BINARY = "/usr/bin/prometheus"
# Prometheus' HTTP API is on loopback: never through a proxy of the environment.
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url, timeout=10):
    with NO_PROXY.open(url, timeout=timeout) as r:
        return r.read().decode()


def wait_until(what, fetch, timeout, interval=0.2, alive=lambda: None):
    """Polls fetch() until it returns something truthy, which it returns. Past
    the deadline, or when alive() returns a reason to stop, fails naming
    `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        last = fetch()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what} (last: {last!r})")
        stopped = alive()
        if stopped:
            raise AssertionError(f"{stopped} while waiting for {what}")
        time.sleep(interval)


class PrometheusServer:
    def __init__(self, config_text, binary=BINARY, start_timeout=60):
        self.tmp = tempfile.TemporaryDirectory(prefix="tierserve-prometheus-")
        config = f"{self.tmp.name}/prometheus.yml"
        with open(config, "w") as f:
            f.write(config_text)
        self.log = []
        self.port = None
        self._listening = threading.Event()
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={self.tmp.name}/data",
             "--web.listen-address=127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            deadline = time.monotonic() + start_timeout
            while not self._ready.wait(0.1):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("Prometheus did not become ready (exit code "
                                       f"{self.proc.poll()}):\n" + "".join(self.log[-30:]))
            self.url = f"http://127.0.0.1:{self.port}"
        except BaseException:
            self.stop()
            raise

    def _read(self):
        server_ready = False
        for line in self.proc.stderr:
            self.log.append(line)
            m = re.search(r'msg="Listening on" address=127\.0\.0\.1:(\d+)', line)
            if m:
                self.port = int(m.group(1))
                self._listening.set()
            if "Server is ready to receive web requests" in line:
                server_ready = True
            # Ready means the port known and the TSDB open. The two lines come
            # from different goroutines, in either order (CI once saw "ready"
            # 3 ms before "Listening on").
            if server_ready and self._listening.is_set():
                self._ready.set()

    def api(self, path, **params):
        """The `data` of a successful /api/v1/<path> answer; raises on any other."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        body = json.loads(http_get(url))
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr):
        """The result vector of an instant query."""
        return self.api("query", query=expr)["result"]

    def targets(self, job):
        return [t for t in self.api("targets")["activeTargets"] if t["labels"].get("job") == job]

    def wait_until(self, what, fetch, timeout, interval=0.2):
        """wait_until(), failing at once if Prometheus exits."""
        def alive():
            if self.proc.poll() is not None:
                return "Prometheus exited:\n" + "".join(self.log[-30:])
            return None
        return wait_until(what, fetch, timeout, interval, alive)

    def wait_target_up(self, job, timeout=60):
        """Waits until every target of `job` is up after a scrape; returns them."""
        def up():
            ts = self.targets(job)
            return ts if ts and all(t["health"] == "up" for t in ts) else None
        return self.wait_until(f"the targets of job {job} up", up, timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(10)
        self.proc.stderr.close()
        self.tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
