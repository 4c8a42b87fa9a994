#!/usr/bin/env bash
# What `make venv` (and so `make demo` and `make test`) runs the first time: create the virtual
# environment and install tradewise with the bundled service and the test tools into it, saying
# what it is doing (about a minute on a first run, most of it downloading and unpacking wheels).
#   PYTHON=python3.12 VENV=.venv EXTRAS=dev,service scripts/venv.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
EXTRAS="${EXTRAS:-dev,service}"
LOG="$VENV/install.log"
start=$SECONDS

echo "== creating $VENV ($("$PYTHON" --version 2>&1))"
"$PYTHON" -m venv "$VENV"
: >"$LOG"
echo "== upgrading pip"
"$VENV/bin/pip" install --quiet --upgrade pip >>"$LOG" 2>&1 || { tail -30 "$LOG"; exit 1; }
echo "== installing tradewise[$EXTRAS] and its dependencies (the full log: $LOG)"
# one line per ten packages found, then one line for the install itself, instead of pip's
# hundreds of lines (or, with --quiet, a minute of silence)
set +e
"$VENV/bin/pip" install --progress-bar off -e ".[$EXTRAS]" 2>&1 | tee -a "$LOG" | awk '
  # "Collecting NAME" from an index, "Processing FILE" from a local wheel directory or mirror
  /^(Collecting|Processing) / {
    n++; last = $2; sub(/^.*\//, "", last); sub(/-[0-9].*$/, "", last)
    if (n % 10 == 0) { printf "   %3d packages found (%s)\n", n, last; fflush() }
  }
  /^Installing collected packages/ { printf "   %3d packages found; installing them\n", n; fflush() }
  /^Successfully installed/ { printf "   installed %d packages\n", NF - 2; fflush() }
'
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  echo "error: pip install failed (exit $status); the end of $LOG:"
  tail -30 "$LOG"
  exit "$status"
fi
echo "== $VENV ready in $((SECONDS - start)) s: $VENV/bin/tradewise --help"
