#!/usr/bin/env bash
# Rebuild the Live Mode page and check that the committed dashboard_ext/dist matches byte for byte.
#
#   scripts/check_dashboard_build.sh             # fresh copy of dashboard_ext + npm ci + npm run build
#   scripts/check_dashboard_build.sh --in-place  # reuse dashboard_ext/node_modules (npm ci only if missing)
#
# Exit status: 0 identical, 1 dist differs (rebuild with `npm run build` and commit dist/),
#              2 could not build (node/npm missing, install or build failed).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ext="$root/dashboard_ext"
mode="${1:-fresh}"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "check_dashboard_build: node and npm are required" >&2
  exit 2
fi
if [ ! -d "$ext/dist" ]; then
  echo "check_dashboard_build: $ext/dist is missing: run 'npm ci && npm run build' in dashboard_ext" >&2
  exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/live-dist-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
out="$work/dist"

run() {
  # Keep npm quiet; show its output only when it fails.
  if ! "$@" >"$work/log" 2>&1; then
    cat "$work/log" >&2
    echo "check_dashboard_build: failed: $*" >&2
    exit 2
  fi
}

if [ "$mode" = "--in-place" ]; then
  cd "$ext"
  [ -d node_modules ] || run npm ci --no-audit --no-fund
  run npx vite build --outDir "$out" --emptyOutDir
else
  mkdir "$work/src"
  tar -C "$ext" --exclude=./node_modules --exclude=./dist -cf - . | tar -C "$work/src" -xf -
  cd "$work/src"
  run npm ci --no-audit --no-fund
  run npm run build
  mv "$work/src/dist" "$out"
fi

if diff -r "$ext/dist" "$out" >"$work/diff"; then
  echo "check_dashboard_build: dashboard_ext/dist is up to date ($(find "$out" -type f | wc -l) files)"
  exit 0
fi
echo "check_dashboard_build: dashboard_ext/dist differs from a fresh build:" >&2
grep -E '^(Only in|Files|diff)' "$work/diff" | sed 's/^/  /' >&2 || head -n 20 "$work/diff" >&2
echo "Rebuild with: (cd dashboard_ext && npm ci && npm run build), then commit dashboard_ext/dist" >&2
exit 1
