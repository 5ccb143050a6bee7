# Shared by run.sh and test.sh: a Python 3.12 virtual environment in .venv with uv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LIVE_VENV:-$ROOT/.venv}"
say() { printf '\033[1;36m==>\033[0m %s\n' "$*"; }

find_python312() {
  for candidate in python3.12 "$HOME/.pyenv/versions/3.12"*/bin/python3.12 /usr/bin/python3.12 /usr/local/bin/python3.12; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

ensure_venv() {
  local requirements="$1"
  local python
  python="$(find_python312)" || { echo "Python 3.12 is required (AstrBot 4.29 needs it); install python3.12 and retry." >&2; exit 1; }
  export PATH="$HOME/.local/bin:$PATH"  # where an earlier run installed uv
  if ! command -v uv >/dev/null 2>&1; then
    say "installing uv (fast Python package installer) from PyPI"
    python3 -m pip install --quiet --user uv 2>/dev/null || "$python" -m pip install --quiet --user uv
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating the Python 3.12 virtual environment in $VENV"
    uv venv --quiet --python "$python" "$VENV"
  fi
  say "installing Python packages from $(basename "$requirements") (astrbot==4.29.1 pinned)"
  uv pip install --quiet --python "$VENV/bin/python" -r "$requirements"
}

ensure_apt() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}
