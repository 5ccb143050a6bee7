#!/usr/bin/env bash
# Runs every test: unit, speech, integration (a real AstrBot), front end and browser.
source "$(dirname "$0")/_env.sh"
cd "$ROOT"
ensure_apt chromium espeak-ng sox ffmpeg
ensure_venv "$ROOT/requirements-dev.txt"
if [ -f dashboard_ext/package.json ]; then
  say "front end: npm ci, unit tests (vitest), and a check that the committed build matches the sources"
  (cd dashboard_ext && npm ci --no-audit --no-fund --loglevel=error && npm test --silent)
  bash scripts/check_dashboard_build.sh --in-place
fi
say "pytest"
set +e
"$VENV/bin/python" -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi
exit "$status"
