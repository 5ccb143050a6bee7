"""The host's Quart compatibility layer loads with the plugin, not at the first `/api/plug/` request.

AstrBot imports Quart on the first request to any plugin's web API, on its event loop (~0.75-1 s in
which no live microphone is read); the plugin's dashboard module imports it first.
"""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_loading_the_dashboard_module_loads_quart():
    probe = "import sys; import live.host.dashboard; print('quart' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
