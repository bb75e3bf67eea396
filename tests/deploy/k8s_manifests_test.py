#!/usr/bin/env python3
"""The Kubernetes manifests of deploy/k8s/, without a cluster.

    k8s_manifests_test.py BINARY

Run with the Python of TIERSERVE_PYENV (scripts/setup.sh installs
kubernetes-validate and PyYAML there from tests/requirements.txt).

- Schemas: every object of kustomization.yaml's resources validates, strictly
  (no unknown fields), against the Kubernetes API schemas of each version in
  KUBERNETES_VERSIONS (kubernetes-validate). The ServiceMonitor is a CRD with
  no schema there: its structure is checked here.
- Cross-references: Deployment selector, pod labels, Service selectors,
  ServiceMonitor selector and port name, HPA target; container ports, Service
  target ports and probe ports against the listen addresses of the config in
  the ConfigMap; the config's path against the args and mounts; the image's
  user, volumes and ports against the Dockerfile's `cpu` stage; the
  termination grace period against the daemon's drain; the HPA metric
  against the prometheus-adapter rule.
- The real binary: `tierserve plan` and `tierserve serve` take the
  ConfigMap's config (the Deployment's args, the volume mount paths mapped to
  this checkout's models/ and a temporary offload folder, the listen
  addresses moved to loopback) and serve; each probe's health service answers
  SERVING through `tierserve health`; the HPA's metric is a gauge on the live
  /metrics; the memory limit holds the plan's bytes and the process' own; and
  the adapter rule's queries, run on a real Prometheus that scrapes the daemon
  with the labels the Prometheus Operator adds, give the pod's value.
"""
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import kubernetes_validate
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
K8S = os.path.join(ROOT, "deploy/k8s")
sys.path.insert(0, os.path.join(ROOT, "tests/integration"))
import daemon_test as dt  # noqa: E402
from prometheus_server import PrometheusServer  # noqa: E402

# The oldest Kubernetes the manifests are written for (the preStop `sleep`
# action is on by default from 1.30) and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]
# Not Kubernetes objects of the kustomization: the adapter's config fragment.
NOT_RESOURCES = {"kustomization.yaml", "prometheus-adapter-rules.yaml"}
# After server.shutdown_grace_seconds the daemon gives the calls it ends up to
# 5 s, waits 0.3 s and shuts gRPC down within 1 s (server/serve_command.cc).
DRAIN_TAIL_SECONDS = 5 + 0.3 + 1
# A stream holds at most this much unread output (README, Slow readers).
UNREAD_STREAM_BYTES = 256 << 10
BINARY = None

UNITS = {"": 1, "k": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
         "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}


def quantity_bytes(q):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(|k|M|G|T|Ki|Mi|Gi|Ti)", str(q))
    if not m:
        raise ValueError(f"cannot read the quantity {q!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def cpu_count(q):
    q = str(q)
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def plan_bytes(figure):
    """A figure of `tierserve plan`'s table: 812.1 MiB, 0 B."""
    n, unit = figure.split()
    return float(n) * {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[unit]


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def selects(match_labels, labels):
    return bool(match_labels) and all(labels.get(k) == v for k, v in match_labels.items())


def apply_images(obj, images):
    """kustomize's `images` transformer on the containers of a pod template."""
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    for c in spec.get("containers", []):
        name, _, tag = c["image"].partition(":")
        for i in images:
            if i["name"] == name:
                c["image"] = i.get("newName", name) + ":" + i.get("newTag", tag)


def load():
    """(kustomization, [(file, object)]) with kustomize's image renames applied."""
    with open(os.path.join(K8S, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    objects = []
    for name in kustomization["resources"]:
        with open(os.path.join(K8S, name)) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    apply_images(doc, kustomization.get("images", []))
                    objects.append((name, doc))
    return kustomization, objects


def of_kind(objects, kind):
    return [o for _, o in objects if o["kind"] == kind]


def one(items, what, name=None, key=lambda i: i["name"]):
    """The one item named `name` (or the only item); fails naming `what`."""
    found = [i for i in items if name is None or key(i) == name]
    if len(found) != 1:
        raise AssertionError(f"expected one {what}{' ' + str(name) if name else ''}, found {len(found)}")
    return found[0]


def the(objects, kind, name=None):
    return one(of_kind(objects, kind), kind, name, key=lambda o: o["metadata"]["name"])


def dockerfile_stage(name):
    """The instructions of one stage of the root Dockerfile, continuation lines joined."""
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        text = re.sub(r"\\\n", " ", f.read())
    stage, out = None, []
    for line in text.splitlines():
        m = re.match(r"FROM \S+ AS (\S+)", line)
        if m:
            stage = m.group(1)
        elif stage == name and line and not line.startswith("#"):
            out.append(line)
    if not out:
        raise AssertionError(f"the Dockerfile has no stage {name}")
    return out


class Manifests:
    """The parsed manifests and the config of the ConfigMap, shared by the tests."""

    def __init__(self):
        self.kustomization, self.objects = load()
        self.deployment = the(self.objects, "Deployment")
        self.pod = self.deployment["spec"]["template"]
        self.container = one(self.pod["spec"]["containers"], "container")
        self.configmap = the(self.objects, "ConfigMap")
        self.config_key, self.config_text = one(list(self.configmap["data"].items()), "ConfigMap key")
        self.config = yaml.safe_load(self.config_text)
        self.server = self.config.get("server", {})
        self.hpa = the(self.objects, "HorizontalPodAutoscaler")
        self.monitor = the(self.objects, "ServiceMonitor")
        with open(os.path.join(K8S, "prometheus-adapter-rules.yaml")) as f:
            self.adapter = yaml.safe_load(f)

    def volume(self, name):
        return one(self.pod["spec"]["volumes"], "volume", name)

    def mount(self, volume_name):
        return one(self.container["volumeMounts"], "volume mount", volume_name)["mountPath"]

    def container_port(self, name):
        return one(self.container["ports"], "container port", name)["containerPort"]

    def probes(self):
        return {k: self.container[k] for k in ("startupProbe", "readinessProbe", "livenessProbe")}

    def threads_env(self):
        """The env variable the args pass to --threads, and the value the kubelet gives it."""
        arg = [a for a in self.container["args"] if a.startswith("--threads=")]
        m = re.fullmatch(r"--threads=\$\((\w+)\)", arg[0]) if len(arg) == 1 else None
        if not m:
            raise AssertionError(f"no --threads=$(VAR) in the args {self.container['args']}")
        env = [e for e in self.container.get("env", []) if e["name"] == m.group(1)]
        ref = env[0].get("valueFrom", {}).get("resourceFieldRef", {}) if env else {}
        if ref.get("resource") != "limits.cpu" or ref.get("containerName", self.container["name"]) != \
                self.container["name"]:
            raise AssertionError(f"{m.group(1)} is not this container's limits.cpu: {env}")
        divisor = cpu_count(ref.get("divisor", "1"))
        # The kubelet rounds a resource up to a whole number of divisors.
        return m.group(1), str(math.ceil(cpu_count(self.container["resources"]["limits"]["cpu"]) / divisor))

    def adapter_metric(self):
        """(series name, metric name served to the HPA) of the one adapter rule."""
        (rule,) = self.adapter["rules"]
        series = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", rule["seriesQuery"]).group(0)
        # The rule names its metric (name.matches, name.as), as the adapter
        # applies them: the regexp on the series name, Go's $1 / ${1} groups.
        m = re.search(rule["name"]["matches"], series)
        if not m:
            raise AssertionError(f"name.matches {rule['name']['matches']!r} does not match {series}")
        return series, m.expand(re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", rule["name"]["as"]))


M = None


class StaticTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        global M
        M = Manifests()

    def test_kustomization_lists_every_manifest(self):
        files = {f for f in os.listdir(K8S) if f.endswith(".yaml")}
        self.assertEqual(set(M.kustomization["resources"]), files - NOT_RESOURCES)
        self.assertEqual(M.kustomization["kind"], "Kustomization")

    @unittest.skipUnless(shutil.which("kubectl"), "kubectl not installed: kustomize build not compared")
    def test_kustomize_builds_the_same_objects(self):
        out = subprocess.run(["kubectl", "kustomize", K8S], check=True, capture_output=True, text=True).stdout
        built = [o for o in yaml.safe_load_all(out) if o]
        key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
        self.assertEqual(sorted(map(key, built)), sorted(key(o) for _, o in M.objects))
        deployment = [o for o in built if o["kind"] == "Deployment"][0]
        self.assertEqual(deployment["spec"]["template"]["spec"]["containers"][0]["image"], M.container["image"])

    def test_schemas(self):
        checked = 0
        for version in KUBERNETES_VERSIONS:
            for name, obj in M.objects:
                if obj["apiVersion"].startswith("monitoring.coreos.com/"):
                    continue  # a CRD: test_servicemonitor_structure
                with self.subTest(version=version, file=name, object=obj["metadata"]["name"]):
                    try:
                        kubernetes_validate.validate(obj, version, strict=True)
                    except kubernetes_validate.ValidationError as e:
                        self.fail(f"{name}: {obj['kind']} {obj['metadata']['name']} against {version}: "
                                  f"{'.'.join(map(str, e.path))}: {e.message}")
                    checked += 1
        self.assertGreaterEqual(checked, 6 * len(KUBERNETES_VERSIONS))
        print(f"{checked // len(KUBERNETES_VERSIONS)} objects valid against Kubernetes "
              f"{', '.join(KUBERNETES_VERSIONS)} (strict)", flush=True)

    def test_servicemonitor_structure(self):
        sm = M.monitor
        self.assertEqual(sm["apiVersion"], "monitoring.coreos.com/v1")
        spec = sm["spec"]
        self.assertLessEqual(set(spec), {"selector", "endpoints", "namespaceSelector", "jobLabel",
                                         "targetLabels", "podTargetLabels", "sampleLimit"})
        self.assertLessEqual(set(spec["selector"]), {"matchLabels", "matchExpressions"})
        chosen = [s for s in of_kind(M.objects, "Service")
                  if selects(spec["selector"]["matchLabels"], s["metadata"].get("labels", {}))]
        self.assertEqual([s["metadata"]["name"] for s in chosen], ["tierserve"],
                         "the ServiceMonitor must select exactly the Service with the metrics port")
        (service,) = chosen
        self.assertTrue(spec["endpoints"])
        for ep in spec["endpoints"]:
            self.assertLessEqual(set(ep), {"port", "path", "interval", "scrapeTimeout", "scheme",
                                           "honorLabels", "relabelings", "metricRelabelings"})
            port = [p for p in service["spec"]["ports"] if p.get("name") == ep["port"]]
            self.assertEqual(len(port), 1, f"the Service has no port named {ep['port']!r}")
            self.assertEqual(M.container_port(port[0]["targetPort"]), port_of(M.server["metrics_listen"]),
                             "the scraped port is not server.metrics_listen")
            self.assertEqual(ep.get("path", "/metrics"), "/metrics")
            durations = {k: re.fullmatch(r"(\d+)s", ep[k]) for k in ("interval", "scrapeTimeout") if k in ep}
            self.assertTrue(all(durations.values()), f"durations in seconds: {ep}")
            if len(durations) == 2:
                self.assertLessEqual(int(durations["scrapeTimeout"].group(1)), int(durations["interval"].group(1)))

    def test_labels_and_selectors(self):
        selector = M.deployment["spec"]["selector"]["matchLabels"]
        pod_labels = M.pod["metadata"]["labels"]
        self.assertTrue(selects(selector, pod_labels), "the Deployment's selector misses its pods")
        services = of_kind(M.objects, "Service")
        self.assertEqual(len(services), 2)
        for s in services:
            self.assertTrue(selects(s["spec"]["selector"], pod_labels), f"Service {s['metadata']['name']}")
        for c in M.pod["spec"].get("topologySpreadConstraints", []):
            self.assertTrue(selects(c["labelSelector"]["matchLabels"], pod_labels))
        ref = M.hpa["spec"]["scaleTargetRef"]
        self.assertEqual((ref["apiVersion"], ref["kind"], ref["name"]),
                         (M.deployment["apiVersion"], "Deployment", M.deployment["metadata"]["name"]))
        self.assertNotIn("replicas", M.deployment["spec"], "the HPA owns the replica count")

    def test_ports_agree_with_config(self):
        grpc_port, metrics_port = port_of(M.server["listen"]), port_of(M.server["metrics_listen"])
        for key in ("listen", "metrics_listen"):
            host = M.server[key].rsplit(":", 1)[0]
            self.assertIn(host, ("0.0.0.0", "[::]"), f"server.{key}: the kubelet and Services reach the pod's IP")
        self.assertEqual(M.container_port("grpc"), grpc_port)
        self.assertEqual(M.container_port("metrics"), metrics_port)
        for p in M.container["ports"]:
            self.assertRegex(p["name"], r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")
        for s in of_kind(M.objects, "Service"):
            for p in s["spec"]["ports"]:
                M.container_port(p["targetPort"])  # a named container port
                if p["name"] == "grpc":
                    self.assertEqual(p.get("appProtocol"), "kubernetes.io/h2c")
        for kind, probe in M.probes().items():
            self.assertEqual(probe["grpc"]["port"], grpc_port, f"{kind} is not on server.listen")

    def test_health_open_to_the_probes(self):
        self.assertNotIn("tls", M.server, "the kubelet's gRPC probes speak plaintext only")
        if "api_keys_file" in M.server:
            self.assertIn("health", M.server.get("open_services", ["health"]),
                          "with API keys, health must be in server.open_services: probes carry no key")

    def test_config_mounted_where_the_args_read_it(self):
        args = M.container["args"]
        self.assertEqual(args[0], "serve")
        config_path = args[args.index("--config") + 1]
        self.assertEqual(M.volume("config")["configMap"]["name"], M.configmap["metadata"]["name"])
        self.assertEqual(config_path, f"{M.mount('config')}/{M.config_key}")
        # The image's default command reads the same path.
        cmd = [line for line in dockerfile_stage("cpu") if line.startswith("CMD")]
        self.assertIn(f'"--config", "{config_path}"', cmd[0])

    def test_image_user_volumes_ports_as_the_dockerfile(self):
        stage = dockerfile_stage("cpu")
        self.assertRegex(M.container["image"], r"(^|/)tierserve:cpu$")
        uid, gid = re.search(r"^USER (\d+):(\d+)$", "\n".join(stage), re.M).groups()
        sc = M.pod["spec"]["securityContext"]
        self.assertEqual((sc["runAsUser"], sc["runAsGroup"], sc["fsGroup"]), (int(uid), int(gid), int(gid)))
        self.assertTrue(sc["runAsNonRoot"])
        volumes = re.findall(r'"([^"]+)"', [line for line in stage if line.startswith("VOLUME")][0])
        self.assertEqual(sorted(volumes), sorted([M.mount("models"), M.mount("offload")]))
        exposed = [int(p) for p in [line for line in stage if line.startswith("EXPOSE")][0].split()[1:]]
        self.assertEqual(sorted(exposed), sorted(p["containerPort"] for p in M.container["ports"]))

    def test_volumes(self):
        models = M.volume("models")["persistentVolumeClaim"]
        pvc = the(M.objects, "PersistentVolumeClaim", models["claimName"])
        self.assertTrue(models.get("readOnly"))
        if M.hpa["spec"]["maxReplicas"] > 1:
            self.assertTrue({"ReadWriteMany", "ReadOnlyMany"} & set(pvc["spec"]["accessModes"]),
                            "replicas on several nodes share the models volume")
        # Each daemon writes and locks its offload file: never a claim shared by replicas.
        self.assertIn("volumeClaimTemplate", M.volume("offload").get("ephemeral", {}),
                      "the offload folder must be a claim per pod (an ephemeral volume)")
        for m in M.config["models"]:
            self.assertTrue(m["path"].startswith(M.mount("models") + "/"), f"{m['name']}: path off the volume")
            if "offload_folder" in m:
                self.assertEqual(m["offload_folder"].rstrip("/"), M.mount("offload"))

    def test_termination_grace_covers_the_drain(self):
        pre_stop = M.container["lifecycle"]["preStop"]["sleep"]["seconds"]
        drain = M.server.get("shutdown_grace_seconds", 30)
        self.assertGreaterEqual(M.pod["spec"]["terminationGracePeriodSeconds"],
                                pre_stop + drain + DRAIN_TAIL_SECONDS)

    def test_threads_and_resources(self):
        M.threads_env()
        resources = M.container["resources"]
        self.assertEqual(resources["requests"], resources["limits"], "Guaranteed QoS: requests equal limits")
        self.assertEqual(set(resources["limits"]), {"cpu", "memory"})
        self.assertNotIn("threads", M.server, "--threads from the CPU limit overrides it anyway")

    def test_hpa_metric_is_the_adapter_rule(self):
        (metric,) = M.hpa["spec"]["metrics"]
        self.assertEqual(metric["type"], "Pods")
        self.assertEqual(metric["pods"]["target"]["type"], "AverageValue")
        series, served = M.adapter_metric()
        self.assertEqual(metric["pods"]["metric"]["name"], served)
        (rule,) = M.adapter["rules"]
        self.assertEqual(rule["resources"]["overrides"],
                         {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}})
        for placeholder in ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"):
            self.assertIn(placeholder, rule["metricsQuery"])
        self.assertGreaterEqual(M.hpa["spec"]["maxReplicas"], M.hpa["spec"].get("minReplicas", 1))


class LiveTest(unittest.TestCase):
    """The ConfigMap's config in the real binary."""

    @classmethod
    def setUpClass(cls):
        global M
        M = M or Manifests()
        cls.tmp = tempfile.TemporaryDirectory()
        cls.daemon = None
        try:
            cls._start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _start(cls):
        # The pod's paths mapped to this machine: the models volume to this
        # checkout's models/ (scripts/fetch_model.sh), the offload volume to a
        # temporary folder. Nothing else of the text changes.
        text = M.config_text.replace(M.mount("models") + "/", os.path.join(ROOT, "models") + "/")
        text = text.replace(M.mount("offload"), os.path.join(cls.tmp.name, "offload"))
        cls.config_path = os.path.join(cls.tmp.name, M.config_key)
        with open(cls.config_path, "w") as f:
            f.write(text)
        plan = subprocess.run([BINARY, "plan", "--config", cls.config_path], capture_output=True, text=True)
        if plan.returncode != 0:
            raise AssertionError(f"tierserve plan refuses the ConfigMap's config:\n{plan.stderr}")
        cls.plan = plan.stdout
        # The Deployment's args, with the kubelet's $(VAR) expansion; the
        # listen addresses (checked against the ports above) moved to loopback.
        var, threads = M.threads_env()
        args = [a.replace(f"$({var})", threads) for a in M.container["args"][1:]]
        args[args.index("--config") + 1] = cls.config_path
        cls.daemon = dt.Daemon(*args)
        if not cls.daemon.ready.wait(120):
            raise AssertionError("the ConfigMap's config does not reach SERVING:\n" + "".join(cls.daemon.log))
        cls.metrics = cls.daemon.metrics()

    @classmethod
    def tearDownClass(cls):
        if cls.daemon:
            cls.daemon.kill()
        cls.tmp.cleanup()

    def plan_rows(self):
        """{device: {column: bytes}} of every model's plan."""
        rows = {}
        lines = self.plan.splitlines()
        header = [i for i, line in enumerate(lines) if line.split()[:2] == ["device", "budget"]]
        self.assertTrue(header, f"no table in the plan:\n{self.plan}")
        for i in header:
            cols = re.split(r"\s{2,}", lines[i].strip())[1:-1]  # budget .. total (groups is a count)
            for line in lines[i + 1:]:
                m = re.match(r"\s+(\S+)\s+(.*?)\s+(\d+)$", line)
                if not m:
                    break
                figures = re.findall(r"-|\d+(?:\.\d+)? \S+", m.group(2))
                row = rows.setdefault(m.group(1), {})
                for c, v in zip(cols, figures):
                    row[c] = row.get(c, 0) + (0 if v == "-" else plan_bytes(v))
        return rows

    def test_probes_answer_serving(self):
        for kind, probe in M.probes().items():
            service = probe["grpc"].get("service", "")
            r = subprocess.run([BINARY, "health", f"--address=127.0.0.1:{self.daemon.port}",
                                f"--service={service}", "--timeout_seconds=5"], capture_output=True, text=True)
            self.assertEqual((r.returncode, r.stdout.strip().rsplit(" ", 1)[-1]), (0, "SERVING"),
                             f"{kind} service {service!r}: {r.stderr}")

    def test_hpa_metric_is_an_exported_gauge(self):
        series, _ = M.adapter_metric()
        self.assertTrue(f"# TYPE {series} gauge\n" in self.metrics, f"{series} is no gauge on /metrics")
        for m in M.config["models"]:
            self.assertIsNotNone(dt.metric_value(self.metrics, series, model=m["name"]), f"{series} of {m['name']}")

    def test_memory_limit_holds_the_plan(self):
        """Limit >= the plan's bytes on the cpu (weights, KV cache, staging) + the
        process without its weights, measured here + the unread output bound."""
        planned = self.plan_rows()["cpu"]["total"]
        rss = dt.metric_value(self.metrics, "tierserve_process_resident_memory_bytes")
        weights = sum(float(v) for v in re.findall(r'^tierserve_model_weight_bytes\{[^}]*device="cpu"[^}]*\} (\S+)$',
                                                   self.metrics, re.M))
        self.assertGreater(weights, 0)
        unread = len(M.config["models"]) * (M.server.get("max_queued_requests", 256) + max(
            m.get("max_batch_size", 8) for m in M.config["models"])) * UNREAD_STREAM_BYTES
        need = planned + (rss - weights) + unread
        limit = quantity_bytes(M.container["resources"]["limits"]["memory"])
        print(f"memory: plan {planned / 2**20:.1f} MiB + process {(rss - weights) / 2**20:.1f} MiB + unread output "
              f"{unread / 2**20:.1f} MiB = {need / 2**20:.1f} MiB; limit {limit / 2**20:.0f} MiB", flush=True)
        self.assertGreaterEqual(limit, need)

    def test_volumes_hold_the_files(self):
        disk = self.plan_rows().get("disk", {}).get("weights", 0)
        offload = M.volume("offload")["ephemeral"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"]
        self.assertGreaterEqual(quantity_bytes(offload), disk)
        pvc = the(M.objects, "PersistentVolumeClaim", M.volume("models")["persistentVolumeClaim"]["claimName"])
        files = sum(os.path.getsize(m["path"].replace(M.mount("models"), os.path.join(ROOT, "models")))
                    for m in M.config["models"])
        self.assertGreaterEqual(quantity_bytes(pvc["spec"]["resources"]["requests"]["storage"]), files)

    def test_adapter_rule_on_prometheus(self):
        """The ServiceMonitor's scrape (path; its interval shortened to 1 s for
        the test) with the labels the operator puts on a pod's series, then the
        rule's series query and metrics query as the adapter sends them."""
        (ep,) = M.monitor["spec"]["endpoints"]
        namespace, pod = "tierserve-test", "tierserve-0"
        config = ("scrape_configs:\n  - job_name: tierserve\n    scrape_interval: 1s\n    scrape_timeout: 1s\n"
                  f"    metrics_path: {ep.get('path', '/metrics')}\n    static_configs:\n"
                  f'      - targets: ["127.0.0.1:{self.daemon.metrics_port}"]\n'
                  f'        labels: {{namespace: "{namespace}", pod: "{pod}"}}\n')
        (rule,) = M.adapter["rules"]
        series, _ = M.adapter_metric()
        with PrometheusServer(config) as prom:
            prom.wait_target_up("tierserve")
            found = prom.wait_until(f"series of {rule['seriesQuery']}",
                                    lambda: prom.api("series", **{"match[]": rule["seriesQuery"]}), 30)
            self.assertEqual({(s["namespace"], s["pod"]) for s in found}, {(namespace, pod)})
            query = (rule["metricsQuery"].replace("<<.Series>>", series)
                     .replace("<<.LabelMatchers>>", f'namespace="{namespace}",pod=~"{pod}"')
                     .replace("<<.GroupBy>>", "pod"))
            result = prom.query(query)
            self.assertEqual([r["metric"] for r in result], [{"pod": pod}], query)
            self.assertEqual(float(result[0]["value"][1]), 0.0, "no request waits on an idle daemon")
            print(f"adapter query: {query} -> {result}", flush=True)


def main():
    global BINARY
    BINARY = dt.BINARY = os.path.abspath(sys.argv.pop(1))
    result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
