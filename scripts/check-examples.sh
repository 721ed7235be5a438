#!/usr/bin/env bash
# The API contract as integrators meet it, against the running demo:
# - Python: a client generated from docs/openapi.json with
#   openapi-python-client drives casebridge (examples/python/sender.py:
#   create an org, Test & Save, typed events, the conversation read back,
#   deliveries listed), and the example receiver verifies a real delivery
#   signed by casebridge with `standardwebhooks`;
# - TypeScript: types generated with openapi-typescript, checked with
#   `tsc --noEmit`, then the same story run with Node (examples/typescript).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -r examples/python/requirements.txt
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm
fi
echo "node $(node --version), npm $(npm --version)"

work=$(mktemp -d)
demo=""
cleanup() {
    if [ -n "$demo" ]; then kill "$demo" 2>/dev/null || true; wait "$demo" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

python3 -m openapi_python_client generate --path docs/openapi.json --meta none \
    --output-path "$work/casebridge_client" >/dev/null
echo "python: generated the client ($(ls "$work/casebridge_client/api" | grep -v __init__ | tr '\n' ' '))"
(
    cd examples/typescript
    npm ci --no-audit --no-fund --silent
    npm run -s generate
    npm run -s check
    npm run -s build
)
echo "typescript: types generated, tsc --noEmit passed, built"

cargo run --release --quiet -- demo --keep-running --write-env "$work/demo.env" >"$work/demo.log" 2>&1 &
demo=$!
for _ in $(seq 1 300); do
    [ -s "$work/demo.env" ] && break
    if ! kill -0 "$demo" 2>/dev/null; then
        echo "the demo stopped:"; cat "$work/demo.log"; exit 1
    fi
    sleep 1
done
[ -s "$work/demo.env" ] || { echo "the demo was not ready within 5 minutes:"; cat "$work/demo.log"; exit 1; }
set -a
# shellcheck disable=SC1091
. "$work/demo.env"
set +a
echo "python:"
(cd examples/python && PYTHONPATH="$work" python3 sender.py)
echo "typescript:"
(cd examples/typescript && node dist/sender.js)
