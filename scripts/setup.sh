#!/usr/bin/env bash
# Installs everything tierserve needs to build and test, from Debian's packages.
# Idempotent: packages already present are skipped; safe to run on every CI run.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libyaml-cpp-dev prometheus-cpp-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev libicu-dev
  clang-14 libclang-rt-14-dev
  likwid linux-perf
  python3 python3-venv python3-grpcio python3-protobuf python3-h2 curl unzip libssl-dev openssl
  prometheus  # prometheus and promtool: integration.prometheus, deploy.promtool_check_config
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all Debian packages present"
fi

# Python packages from PyPI that some tests need and Debian does not package
# (tests/requirements.txt, pinned), in the project's own virtual environment:
# TIERSERVE_PYENV, default ~/.cache/tierserve/pyenv (CMake reads the same
# default). Reinstalled only when tests/requirements.txt changes.
PYENV=${TIERSERVE_PYENV:-$HOME/.cache/tierserve/pyenv}
REQUIREMENTS="$(cd "$(dirname "$0")/.." && pwd)/tests/requirements.txt"
stamp="$PYENV/requirements.sha256"
want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing tests/requirements.txt into $PYENV"
  [ -x "$PYENV/bin/python" ] || /usr/bin/python3 -m venv "$PYENV"
  "$PYENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQUIREMENTS"
  echo "$want" >"$stamp"
else
  echo "setup: $PYENV up to date"
fi
