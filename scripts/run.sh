#!/usr/bin/env bash
# Starts AstrBot 4.29.1 with Live Mode and the embedded offline speech stack.
# Then open http://localhost:6185/live/ (log in as "astrbot").
source "$(dirname "$0")/_env.sh"
PORT="${PORT:-6185}"
DEMO="${LIVE_DEMO_DIR:-$ROOT/.live-demo}"
PASSWORD="${LIVE_DEMO_PASSWORD:-live-mode-demo}"
ensure_apt espeak-ng ffmpeg
ensure_venv "$ROOT/requirements-demo.txt"
say "preparing the AstrBot root in $DEMO"
mkdir -p "$DEMO/data/plugins"
ln -sfn "$ROOT" "$DEMO/data/plugins/astrbot_plugin_live"
if [ ! -e "$DEMO/.astrbot" ]; then (cd "$DEMO" && "$VENV/bin/astrbot" init -y >/dev/null 2>&1 || touch .astrbot); fi
"$VENV/bin/python" "$ROOT/scripts/demo_config.py" "$DEMO"
say "starting AstrBot on port $PORT"
echo
echo "   Live Mode:  http://localhost:$PORT/live/"
echo "   Dashboard:  http://localhost:$PORT/   (user: astrbot, password: $PASSWORD on a new demo root)"
echo "   Microphones need https or localhost; see the README for LAN use."
echo
cd "$DEMO"
export ASTRBOT_DASHBOARD_INITIAL_PASSWORD="$PASSWORD" ASTRBOT_DISABLE_METRICS=1
exec "$VENV/bin/astrbot" run --port "$PORT"
