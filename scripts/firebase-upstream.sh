#!/usr/bin/env bash
# Run firebase-admin-python's own integration/test_db.py against `thingstash serve
# --firebase-port`, as its CI runs it against the Firebase emulator. Its files are exported
# from a checkout you give (a clone or a bare mirror of firebase/firebase-admin-python) into a
# temporary directory, used there and removed: nothing of it enters this repository.
#
#   scripts/firebase-upstream.sh CHECKOUT [pytest args...]
#
# The service runs with an embedded Redis in a temporary data dir (or REDIS_URL if set).
set -euo pipefail

checkout=${1:?usage: scripts/firebase-upstream.sh CHECKOUT [pytest args...]}
shift
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
work=$(mktemp -d)
serve_pid=""
cleanup() {
    if [[ -n $serve_pid ]] && kill -0 "$serve_pid" 2>/dev/null; then
        kill "$serve_pid"
        wait "$serve_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

for file in integration/__init__.py integration/conftest.py integration/test_db.py \
    tests/__init__.py tests/testutils.py tests/data/dinosaurs.json tests/data/dinosaurs_index.json; do
    mkdir -p "$work/suite/$(dirname "$file")"
    git -C "$checkout" show "HEAD:$file" >"$work/suite/$file"
done
printf '[pytest]\n' >"$work/suite/pytest.ini"

ports=$("$python" -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1", 0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')
read -r native_port firebase_port <<<"$ports"
store=(--data-dir "$work/data")
if [[ -n ${REDIS_URL:-} ]]; then store=(--redis-url "$REDIS_URL"); fi
"$python" -m thingstash serve --port "$native_port" --firebase-port "$firebase_port" \
    "${store[@]}" >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 300); do
    if "$python" -c "import urllib.request, sys
urllib.request.urlopen('http://127.0.0.1:$firebase_port/.json?shallow=true', timeout=1)" 2>/dev/null; then
        break
    fi
    sleep 0.1
done

cd "$work/suite"
status=0
FIREBASE_DATABASE_EMULATOR_HOST="127.0.0.1:$firebase_port" \
    "$python" -m pytest -p no:cacheprovider -q integration/test_db.py "$@" || status=$?
exit $status
