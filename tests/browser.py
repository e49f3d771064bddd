"""Render a local page in headless Chromium over the DevTools protocol: every request the page makes, a few facts
read from the rendered page, and a full-page screenshot. Tests skip when Chromium is not installed (`.ci/run`
installs the Debian package `chromium`)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def chromium() -> str | None:
    "The Chromium binary, or None."
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


needs_chromium = pytest.mark.skipif(chromium() is None, reason="chromium is not installed (apt-get install chromium)")


class _CDP:
    "A minimal DevTools client: one page session, commands answered in order, events kept."

    def __init__(self, ws_url: str):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.n, self.events, self.session = 0, [], None

    def send(self, method: str, **params):
        self.n += 1
        msg = {"id": self.n, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        self.ws.settimeout(60)
        while True:
            r = json.loads(self.ws.recv())
            if r.get("id") == self.n:
                if "error" in r:
                    raise RuntimeError(f"{method}: {r['error']}")
                return r.get("result", {})
            self.events.append(r)

    def wait_for(self, event: str, timeout: float = 30):
        end = time.time() + timeout
        while time.time() < end:
            if any(e.get("method") == event for e in self.events):
                return
            self.ws.settimeout(max(0.1, end - time.time()))
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(event)

    def drain(self, seconds: float):
        "Keep collecting events for `seconds` (late requests, scripts that draw after load)."
        end = time.time() + seconds
        while time.time() < end:
            self.ws.settimeout(max(0.05, end - time.time()))
            try:
                self.events.append(json.loads(self.ws.recv()))
            except Exception:  # noqa: BLE001 - a timeout ends the wait
                break


JS_FACTS = """JSON.stringify({
  title: document.title,
  plotly_divs: document.querySelectorAll('.plotly-graph-div').length,
  plotly_drawn: Array.from(document.querySelectorAll('.plotly-graph-div')).filter(d => d.querySelector('.main-svg')).length,
  math: document.querySelectorAll('math').length,
  wide_pre: Array.from(document.querySelectorAll('pre')).filter(p => p.scrollWidth > p.clientWidth + 2)
             .map(p => getComputedStyle(p).overflowX),
  text: document.body.innerText.slice(0, 4000)
})"""


def render(page: Path, screenshot: Path, width: int = 1280, height: int = 900) -> dict:
    "Open `page` (a local file) headless; return its requests, facts from `JS_FACTS`, and write a full-page PNG."
    exe = chromium()
    assert exe, "chromium is not installed"
    prof = tempfile.mkdtemp(prefix="chromium-")
    args = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
            "--host-resolver-rules=MAP * ~NOTFOUND",  # and if anything still tried, it could not resolve
            f"--user-data-dir={prof}", "--remote-debugging-port=0", f"--window-size={width},{height}", "about:blank"]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": "disabled:"})
    try:
        ws = None
        end = time.time() + 30
        while time.time() < end and ws is None:
            line = proc.stderr.readline()
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                ws = m.group(1)
        assert ws, "chromium did not start its DevTools endpoint"
        cdp = _CDP(ws)
        target = cdp.send("Target.createTarget", url="about:blank")["targetId"]
        cdp.session = cdp.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        cdp.send("Network.enable")
        cdp.send("Runtime.enable")
        cdp.send("Page.enable")
        cdp.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        cdp.send("Page.navigate", url=page.resolve().as_uri())
        cdp.wait_for("Page.loadEventFired")
        cdp.drain(1.5)
        facts = json.loads(cdp.send("Runtime.evaluate", expression=JS_FACTS, returnByValue=True)["result"]["value"])
        shot = cdp.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        urls = [e["params"]["request"]["url"] for e in cdp.events if e.get("method") == "Network.requestWillBeSent"]
        errors = [e["params"] for e in cdp.events if e.get("method") == "Runtime.exceptionThrown"]
        cdp.ws.close()
        return {"requests": urls, "facts": facts, "errors": errors}
    finally:
        proc.kill()
        proc.wait(timeout=10)
        shutil.rmtree(prof, ignore_errors=True)


def keep_screenshot(png: Path) -> None:
    "Copy a screenshot to $DMB_SCREENSHOTS (when set), for a person to look at."
    dest = os.environ.get("DMB_SCREENSHOTS")
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(dest) / png.name)


def leaving(urls: list[str]) -> list[str]:
    "The requests that would leave the machine (anything but file:, data:, blob:, about:)."
    return [u for u in urls if not u.startswith(("file:", "data:", "blob:", "about:", "chrome:", "devtools:"))]
