#!/usr/bin/env bash
# `make demo`: the main job on the embedded default environment `local` (no cluster, no Docker).
# Brings the local stack up (API under gunicorn, a Celery worker, the precompute scheduler, SQLite,
# a private redis-server when one is installed), applies a traffic profile, runs a short load test
# with live progress, prints the report and the SLO verdict, and brings the stack down again, also
# on failure or Ctrl-C. Every step is a plain `tradewise` command a user can type.
#
# Settings (environment variables):
#   DEMO_PORT         the API's port (default 8000, or a free port when 8000 is taken)
#   DEMO_REDIS_PORT   the private redis-server's port (default 6390, or a free one)
#   DEMO_DURATION     the load test's length (20s)      DEMO_USERS   its users (20)
#   DEMO_REPORT_DIR   where the report goes (reports/demo)
# The demo runs on its own copy of tradewise.yaml (.tradewise/demo/tradewise.yaml, with those
# ports and its own state dir), so it never touches a stack you started with `tradewise local up`.
set -uo pipefail
cd "$(dirname "$0")/.."
TW="${TW:-.venv/bin/tradewise}"
PY="$(dirname "$TW")/python"
[ -x "$PY" ] || PY=python3
DURATION="${DEMO_DURATION:-20s}"
USERS="${DEMO_USERS:-20}"
REPORT_DIR="${DEMO_REPORT_DIR:-reports/demo}"
DEMO_DIR=.tradewise/demo

# the ports: the one asked for (which must be free), else the default when free, else any free one
choose_port() {  # NAME WANTED DEFAULT
  "$PY" - "$@" <<'PY'
import socket, sys
name, wanted, default = sys.argv[1], sys.argv[2], int(sys.argv[3])
def free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
if wanted:
    if not wanted.isdigit() or not 0 < int(wanted) < 65536:
        sys.exit(f"demo: {name}={wanted!r} is not a port number")
    if not free(int(wanted)):
        sys.exit(f"demo: {name}={wanted}: that port is in use on 127.0.0.1; choose another")
    print(wanted)
elif free(default):
    print(default)
else:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    print(f"demo: port {default} is in use: using {port} ({name} chooses)", file=sys.stderr)
    print(port)
PY
}
API_PORT="$(choose_port DEMO_PORT "${DEMO_PORT:-}" 8000)" || exit 2
REDIS_PORT="$(choose_port DEMO_REDIS_PORT "${DEMO_REDIS_PORT:-}" 6390)" || exit 2

# the demo's own config: the project's tradewise.yaml with the local environment on those ports
mkdir -p "$DEMO_DIR"
"$PY" - "$API_PORT" "$REDIS_PORT" "$DEMO_DIR" <<'PY' || exit 2
import sys, yaml
api_port, redis_port, demo_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with open("tradewise.yaml", encoding="utf-8") as f:
    config = yaml.safe_load(f)
local = config["environments"]["local"]
local["url"] = f"http://127.0.0.1:{api_port}"
local.setdefault("local", {}).update(
    api_port=api_port, redis_port=redis_port, state_dir=f"{demo_dir}/local"
)
with open(f"{demo_dir}/tradewise.yaml", "w", encoding="utf-8") as f:
    f.write("# written by scripts/demo.sh: tradewise.yaml with the demo's ports\n")
    yaml.safe_dump(config, f, sort_keys=False)
PY
export TRADEWISE_CONFIG="$DEMO_DIR/tradewise.yaml"
echo "demo: the API on 127.0.0.1:$API_PORT, redis-server (when installed) on 127.0.0.1:$REDIS_PORT"
echo "demo: config $TRADEWISE_CONFIG (export TRADEWISE_CONFIG=$TRADEWISE_CONFIG to repeat a step)"

run() { echo; echo "\$ tradewise $*"; "$TW" "$@"; }

stack_started=no
cleanup() {
  if [ "$stack_started" = yes ]; then
    echo; echo "\$ tradewise local down"; "$TW" --env local local down
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stack_started=yes  # from here on, what `deploy local` started is stopped again on any exit
run --env local deploy local || exit $?
run --env local scale traffic medium || exit $?
run --env local local ps || exit $?
run --env local load-test "$DURATION" "$USERS" '/api/stock-analysis?symbol=AAPL' --report "$REPORT_DIR"
verdict=$?
run --env local scale status || true
echo
if [ "$verdict" -eq 0 ]; then
  echo "demo: SLOs met; report in $REPORT_DIR/ (report.html, report.json, timeseries.csv)"
else
  echo "demo: the load test exited $verdict (1 = SLO missed); report in $REPORT_DIR/"
fi
exit "$verdict"
