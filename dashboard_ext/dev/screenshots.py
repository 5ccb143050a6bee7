"""Screenshots of the Live page against dev/mock_server.py, in headless Chromium.

    python dashboard_ext/dev/mock_server.py --port 8765 &
    python dashboard_ext/dev/screenshots.py --base http://127.0.0.1:8765 --out /tmp/live-shots --mic mic.wav

Takes desktop (1280x800) and phone (390x844) shots in light and dark after one typed turn,
plus the login form. Prints the page's console errors and the __liveTest log summary.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from playwright.sync_api import sync_playwright

SIZES = {"desktop": (1280, 800), "phone": (390, 844)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base", default="http://127.0.0.1:8765")
    p.add_argument("--out", default="/tmp/live-shots")
    p.add_argument("--mic", default=None, help="mono 16-bit WAV used as the microphone")
    p.add_argument("--lang", default="en-US")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    args = ["--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            "--autoplay-policy=no-user-gesture-required"]
    if a.mic:
        args.append(f"--use-file-for-fake-audio-capture={Path(a.mic).resolve()}%noloop")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=args)
        for scheme in ("light", "dark"):
            for name, (w, h) in SIZES.items():
                ctx = browser.new_context(viewport={"width": w, "height": h}, color_scheme=scheme, locale=a.lang,
                                          device_scale_factor=2 if name == "phone" else 1)
                page = ctx.new_page()
                errors: list[str] = []
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(f"{a.base}/live/?token=dev")
                page.wait_for_selector("[data-testid=connection-status][data-status=open]", timeout=10000)
                page.wait_for_timeout(800)
                page.screenshot(path=str(out / f"{name}-{scheme}-idle.png"))
                page.fill("[data-testid=text-input] input", "Hi there, tell me something nice")
                page.keyboard.press("Enter") if name == "desktop" else page.click("[data-testid=send-button]")
                page.wait_for_function("window.__liveTest.log.some(e => e.kind === 'frame' && e.t === 'metrics')",
                                       timeout=20000)
                page.wait_for_timeout(300)
                if name == "phone":
                    page.screenshot(path=str(out / f"{name}-{scheme}-turn.png"))
                    page.click("[data-testid=panel-toggle]")
                    page.wait_for_timeout(400)
                page.screenshot(path=str(out / f"{name}-{scheme}-transcript.png"))
                page.click("[data-testid=tab-latency]")
                page.wait_for_timeout(300)
                page.screenshot(path=str(out / f"{name}-{scheme}-latency.png"))
                log = page.evaluate("window.__liveTest.log")
                kinds: dict[str, int] = {}
                for e in log:
                    kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
                sent = page.evaluate("[window.__liveTest.audioFramesSent, window.__liveTest.audioBytesSent]")
                print(name, scheme, json.dumps(kinds), "audio sent", sent, "errors", errors)
                ctx.close()
        ctx = browser.new_context(viewport={"width": 390, "height": 844}, locale=a.lang)
        page = ctx.new_page()
        page.goto(f"{a.base}/live/")
        page.wait_for_selector("[data-testid=login-card]")
        page.screenshot(path=str(out / "phone-light-login.png"))
        ctx.close()
        browser.close()
        # Not a secure context: an http page on a name other than localhost gets no microphone.
        port = a.base.rsplit(":", 1)[1]
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                     args=["--no-sandbox", f"--host-resolver-rules=MAP astrbot.lan 127.0.0.1"])
        for name, (w, h) in SIZES.items():
            ctx = browser.new_context(viewport={"width": w, "height": h}, color_scheme="dark", locale="zh-CN",
                                      device_scale_factor=2 if name == "phone" else 1)
            page = ctx.new_page()
            page.goto(f"http://astrbot.lan:{port}/live/?token=dev")
            page.wait_for_selector("[data-testid=mic-notice]")
            page.wait_for_timeout(500)
            page.screenshot(path=str(out / f"{name}-dark-zh-insecure.png"))
            ctx.close()
        browser.close()


if __name__ == "__main__":
    main()
