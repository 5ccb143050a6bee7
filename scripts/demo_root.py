"""Prepares the demo's AstrBot root: a copy of the plugin, the dashboard login, and the config.

Run by scripts/run.sh with the demo root as the working directory. The config has offline STT/TTS
and, if OPENAI_* is set, a chat model.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import string
import sys
from pathlib import Path

PLUGIN_DIR = "astrbot_plugin_live"
LOGIN_FILE = "demo-login.txt"
# Never copied into the demo: tooling, caches, and demo roots (the default one is inside the checkout).
NOT_COPIED = {".git", ".venv", "node_modules", "__pycache__", ".pytest_cache", ".hypothesis",
              ".live-demo", "test-artifacts", "results", "tests"}  # fmt: skip


def copy_plugin(root: Path, checkout: Path) -> None:
    """Copy the checkout into data/plugins, replacing the previous copy, so edits show after a re-run.

    A copy, not a symlink: the host serves no plugin page (the sidebar view) for a plugin folder
    that resolves outside data/plugins.
    """
    plugins = root / "data" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    target, staging = plugins / PLUGIN_DIR, root / f".{PLUGIN_DIR}.new"
    demo = root.resolve()

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n in NOT_COPIED or (Path(folder) / n).resolve() == demo}

    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(checkout, staging, ignore=ignore, symlinks=True)
    if target.is_symlink() or target.is_file():
        target.unlink()  # an older demo root symlinked the checkout
    elif target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    print(f"plugin: copied from {checkout} (re-run to pick up your edits)")


def _new_password() -> str:
    """Random, and meets the host's policy (8+ characters, upper and lower case, a digit)."""
    alphabet = string.ascii_letters + string.digits
    while True:
        word = "".join(secrets.choice(alphabet) for _ in range(12))
        if any(c.isupper() for c in word) and any(c.islower() for c in word) and any(c.isdigit() for c in word):
            return "Live-" + word


def set_login(root: Path) -> None:
    """On a new root (or with LIVE_DEMO_PASSWORD), set the dashboard password the host's own way.

    `astrbot conf set dashboard.password` stores the hashes and clears the host's "change the
    password on first login" flag, so the printed credentials log straight in.
    """
    login_file = root / LOGIN_FILE
    wanted = os.environ.get("LIVE_DEMO_PASSWORD") or None
    if login_file.exists() and (wanted is None or wanted == login_file.read_text(encoding="utf-8").strip()):
        return
    password = wanted or _new_password()
    os.environ["ASTRBOT_ROOT"] = str(root)  # importing the host's code creates its data folder there
    import click

    from astrbot.cli.commands.cmd_conf import set_config

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its "Config updated" lines
            set_config.main(["dashboard.password", password], prog_name="astrbot conf set", standalone_mode=False)
    except click.ClickException as exc:  # the host's password policy refused LIVE_DEMO_PASSWORD
        sys.exit(f"LIVE_DEMO_PASSWORD: {exc.format_message()}")
    login_file.write_text(password + "\n", encoding="utf-8")
    login_file.chmod(0o600)
    print(f"dashboard login: astrbot, password saved in {login_file}")


def write_config(root: Path) -> None:
    """Offline STT/TTS for Live Mode, and a chat model from OPENAI_* if set."""
    data = root / "data"
    (data / "config").mkdir(parents=True, exist_ok=True)
    providers = [
        {"id": "live_local_stt", "type": "live_local_stt", "provider": "live_mode",
         "provider_type": "speech_to_text", "enable": True, "model": "tiny.en", "cpu_threads": 2, "preload": True},
        {"id": "live_local_tts", "type": "live_local_tts", "provider": "live_mode",
         "provider_type": "text_to_speech", "enable": True, "engine": "piper", "preload": True},
    ]  # fmt: skip
    settings: dict = {"enable": True, "streaming_response": True}
    key, base = os.environ.get("OPENAI_API_KEY"), os.environ.get("OPENAI_BASE_URL")
    if key or base:
        providers.append(
            {"id": "demo_chat", "provider": "openai", "type": "openai_chat_completion",
             "provider_type": "chat_completion", "enable": True, "key": [key or "none"],
             "api_base": base or "https://api.openai.com/v1", "model": os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
             "timeout": 60}
        )  # fmt: skip
        settings["default_provider_id"] = "demo_chat"
        print(f"chat model: {os.environ.get('OPENAI_MODEL', 'gpt-4o-mini')} at {base or 'https://api.openai.com/v1'}")
    else:
        print("chat model: none (set OPENAI_API_KEY / OPENAI_BASE_URL / OPENAI_MODEL to add one)")
    config_path = data / "cmd_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8-sig")) if config_path.exists() else {}
    config["provider"] = [p for p in config.get("provider", []) if p["id"] not in {q["id"] for q in providers}] + providers
    config.setdefault("provider_settings", {}).update(settings)
    config["provider_stt_settings"] = {"enable": True, "provider_id": "live_local_stt"}
    config.setdefault("provider_tts_settings", {}).update({"enable": False, "provider_id": "live_local_tts"})
    config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8-sig")
    plugin_config = data / "config" / "astrbot_plugin_live_config.json"
    current = json.loads(plugin_config.read_text(encoding="utf-8-sig")) if plugin_config.exists() else {}
    current.update({"stt_provider_id": "live_local_stt", "tts_provider_id": "live_local_tts"})
    plugin_config.write_text(json.dumps(current, indent=2), encoding="utf-8-sig")


if __name__ == "__main__":
    demo_root, checkout = Path(sys.argv[1]), Path(sys.argv[2])
    copy_plugin(demo_root, checkout)
    set_login(demo_root)
    write_config(demo_root)
