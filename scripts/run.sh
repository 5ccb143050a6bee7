#!/usr/bin/env bash
# Starts AstrBot 4.29.1 with Live Mode and the embedded offline speech stack, in a demo root.
# Settings (environment): PORT (default 6185), LIVE_DEMO_DIR (default ./.live-demo),
# LIVE_DEMO_PASSWORD (default: a random one, made when the demo root is created),
# OPENAI_API_KEY / OPENAI_BASE_URL / OPENAI_MODEL (a chat model; without one the character says so).
source "$(dirname "$0")/_env.sh"
PORT="${PORT:-6185}"
DEMO="${LIVE_DEMO_DIR:-$ROOT/.live-demo}"
ensure_apt espeak-ng ffmpeg
ensure_venv "$ROOT/requirements-demo.txt"
say "preparing the AstrBot root in $DEMO"
mkdir -p "$DEMO"
if [ ! -e "$DEMO/.astrbot" ]; then (cd "$DEMO" && "$VENV/bin/astrbot" init -y >/dev/null); fi
# Copies the plugin in (the host shows no sidebar page for a symlinked plugin folder), writes the
# config and, on a new root, the dashboard login (saved in $DEMO/demo-login.txt).
(cd "$DEMO" && "$VENV/bin/python" "$ROOT/scripts/demo_root.py" "$DEMO" "$ROOT")
PASSWORD="$(cat "$DEMO/demo-login.txt")"
say "starting AstrBot on port $PORT"
echo
echo "   Live Mode:  http://localhost:$PORT/live/"
echo "   Dashboard:  http://localhost:$PORT/"
echo "   Log in as:  astrbot"
echo "   Password:   $PASSWORD"
echo "               (set when this demo root was made; if you changed it in the dashboard, use yours)"
echo "   Microphones need https or localhost; see the README for LAN use."
echo
cd "$DEMO"
export ASTRBOT_DISABLE_METRICS=1
exec "$VENV/bin/astrbot" run --port "$PORT"
