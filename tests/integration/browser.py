"""A headless Chromium driven over the DevTools protocol (websockets only, no driver package):
log in to the Airflow UI, open pages, read their text, take screenshots.

Debian's ``chromium`` package is enough (``apt-get install chromium``; ``.ci/run`` installs it);
tests that need it fail with that hint when no Chromium binary is found.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def chromium_binary() -> str | None:
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


class Browser:
    def __init__(self, ws) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    def send(self, method: str, **params) -> dict:
        call_id = next(self.ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JS error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str, settle_s: float = 1.0) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", timeout=60)
        time.sleep(settle_s)

    def wait_for(self, expression: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(RuntimeError):
                value = self.evaluate(expression)
                if value:
                    return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true after {timeout:.0f} s: {expression}")
            time.sleep(0.3)

    def type_text(self, selector: str, text: str) -> None:
        """Focus the element and type ``text`` as keyboard input (``Input.insertText``: the page
        sees the input events a person's typing makes, so React forms take the value)."""
        focused = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return false; "
            "e.focus(); return document.activeElement === e; })()"
        )
        if not focused:
            raise RuntimeError(f"cannot focus {selector}")
        self.send("Input.insertText", text=text)

    def click(self, selector: str) -> None:
        """A mouse click in the middle of the element, as a person clicks it."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null; "
            "e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); "
            "return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()"
        )
        if not box:
            raise RuntimeError(f"nothing to click: {selector}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left", clickCount=1
            )

    def login(self, base_url: str, username: str, password: str) -> None:
        """Log in as a person does: open the UI, which sends us to its login page; type the
        username and password into the form; press "Sign in"; land back in the UI."""
        self.goto(f"{base_url}/")
        self.wait_for("location.pathname.startsWith('/auth/login')", timeout=60)
        self.wait_for("!!document.querySelector('input[name=username]')", timeout=60)
        self.type_text("input[name=username]", username)
        self.type_text("input[name=password]", password)
        self.wait_for("!document.querySelector('button[type=submit]').disabled", timeout=10)
        self.click("button[type=submit]")
        self.wait_for(
            "!location.pathname.startsWith('/auth/login') && document.readyState === 'complete' "
            "&& document.body.innerText.length > 0",
            timeout=60,
        )

    def text(self, frame_selector: str | None = None) -> str:
        if frame_selector:
            return self.evaluate(
                f"(() => {{ const f = document.querySelector({json.dumps(frame_selector)}); "
                "return f && f.contentDocument ? f.contentDocument.body.innerText : ''; }})()"
            )
        return self.evaluate("document.body.innerText")

    def screenshot(self, path: Path, width: int = 1400, height: int = 1000) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        time.sleep(0.5)
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))


@contextlib.contextmanager
def headless_chromium(binary: str) -> Iterator[Browser]:
    profile = Path(tempfile.mkdtemp(prefix="pc-chromium-"))
    port_file = profile / "DevToolsActivePort"
    proc = subprocess.Popen(
        [
            binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-dev-shm-usage", "--remote-debugging-port=0", f"--user-data-dir={profile}",
            "--window-size=1400,1000", "about:blank",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        # no preloaded library: Chromium does not start under the libfaketime that
        # make test-clock-edges puts under the servers (the pages are rendered by them)
        env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"},
    )  # fmt: skip
    from websockets.sync.client import connect

    try:
        deadline = time.monotonic() + 60
        while not port_file.exists() or len(port_file.read_text().splitlines()) < 1:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.2)
        port = int(port_file.read_text().splitlines()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(t for t in targets if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024) as ws:
            browser = Browser(ws)
            browser.send("Page.enable")
            browser.send("Runtime.enable")
            yield browser
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
