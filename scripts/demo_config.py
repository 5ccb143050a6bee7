"""Writes the demo's AstrBot config: offline STT/TTS, and a chat model from OPENAI_* if set."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(root: Path) -> None:
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
    main(Path(sys.argv[1]))
