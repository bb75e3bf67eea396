#!/usr/bin/env bash
# Generates the Python messages and gRPC stubs of the tierserve API into
# examples/tierserve/v1/ (generation_pb2.py, generation_pb2.pyi,
# generation_pb2_grpc.py). Clients then put examples/ on sys.path and
# `from tierserve.v1 import generation_pb2, generation_pb2_grpc`.
#
# Which Python: PYTHON (default /usr/bin/python3, which has Debian's
# python3-grpcio 1.51 and python3-protobuf 4.21). A `python3` from pyenv or a
# venv usually has neither; set PYTHON to it only if it has grpcio and
# protobuf installed.
#
# Which generator, in order:
#   1. `$PYTHON -m grpc_tools.protoc` when grpc_tools is importable (a venv
#      with `pip install grpcio-tools`, whose protobuf then matches its protoc).
#   2. Debian's protoc (protobuf-compiler) with grpc_python_plugin
#      (protobuf-compiler-grpc): their protobuf version matches Debian's
#      python3-protobuf. This is the path on a machine set up by
#      scripts/setup.sh.
# Debian's own python3-grpc-tools (1.14.1) is not used: its bundled protoc
# predates proto3 `optional` and rejects this API.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-/usr/bin/python3}"
OUT="$ROOT/examples"
PROTO_DIR="$ROOT/proto"
mapfile -t PROTOS < <(cd "$PROTO_DIR" && ls tierserve/v1/*.proto)

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "gen_python: $PYTHON not found; set PYTHON to a Python 3 with grpcio and protobuf" >&2
  exit 1
fi

mkdir -p "$OUT/tierserve/v1"
cd "$PROTO_DIR"

generated=""
if "$PYTHON" -c 'import grpc_tools.protoc' >/dev/null 2>&1; then
  if "$PYTHON" -m grpc_tools.protoc -I. --python_out="$OUT" --pyi_out="$OUT" \
       --grpc_python_out="$OUT" "${PROTOS[@]}"; then
    generated="$PYTHON -m grpc_tools.protoc"
  else
    echo "gen_python: grpc_tools.protoc of $PYTHON failed (too old for proto3 'optional'?);" \
         "trying protoc with grpc_python_plugin" >&2
  fi
fi

if [ -z "$generated" ]; then
  PROTOC="$(command -v protoc || true)"
  PLUGIN="$(command -v grpc_python_plugin || true)"
  if [ -z "$PROTOC" ] || [ -z "$PLUGIN" ]; then
    cat >&2 <<EOF
gen_python: cannot generate the Python stubs: no generator found.
  $PYTHON has no grpc_tools module, and protoc / grpc_python_plugin are not both on PATH.
  Either install Debian's generators:  apt-get install protobuf-compiler protobuf-compiler-grpc
  (scripts/setup.sh installs them), or use a venv with:  pip install grpcio grpcio-tools
  and run:  PYTHON=/path/to/venv/bin/python $0
EOF
    exit 1
  fi
  "$PROTOC" -I. --python_out="$OUT" --pyi_out="$OUT" --grpc_out="$OUT" \
    --plugin=protoc-gen-grpc="$PLUGIN" "${PROTOS[@]}"
  generated="$PROTOC with $PLUGIN"
fi

# The stubs are only useful if this Python can import them with its own
# grpcio and protobuf.
if ! (cd "$OUT" && "$PYTHON" -c 'from tierserve.v1 import generation_pb2, generation_pb2_grpc') ; then
  echo "gen_python: generated with $generated, but $PYTHON cannot import them;" \
       "it needs grpcio and a protobuf runtime at least as new as the generator" >&2
  exit 1
fi
echo "gen_python: wrote $OUT/tierserve/v1 with $generated (import with $PYTHON)"
