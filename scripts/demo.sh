#!/usr/bin/env bash
# `make demo`: the main job on the embedded default environment `local` (no cluster, no Docker).
# Brings the local stack up (API under gunicorn, a Celery worker, the precompute scheduler, SQLite,
# a private redis-server when one is installed), applies a traffic profile, runs a short load test
# with live progress, prints the report and the SLO verdict, and brings the stack down again, also
# on failure or Ctrl-C. Every step is a plain `tradewise` command a user can type.
set -uo pipefail
cd "$(dirname "$0")/.."
TW="${TW:-.venv/bin/tradewise}"
DURATION="${DEMO_DURATION:-20s}"
USERS="${DEMO_USERS:-20}"
REPORT_DIR="${DEMO_REPORT_DIR:-reports/demo}"

run() { echo; echo "\$ tradewise $*"; "$TW" "$@"; }

stack_started=no
cleanup() {
  if [ "$stack_started" = yes ]; then
    echo; echo "\$ tradewise local down"; "$TW" --env local local down
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

run --env local deploy local || exit $?
stack_started=yes
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
